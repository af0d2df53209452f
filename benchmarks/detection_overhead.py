"""The whole per-step cost of the suite on a detector: ObjectDetector + EnlightenmentCallback vs a plain module.

Both sides are Lightning fits of the same torchvision detector (same initial weights) on the same real tree-crown
batches (4 tiles of 400x400, loaded once, handed to both fits in the same order), same optimizer (AdamW, lr 2e-4,
weight decay 1e-4: ``ObjectDetector``'s default), same ``Trainer`` settings and ``CSVLogger``:

- **suite**: the shipped ``ObjectDetector`` with detection Mixup α 0.2 (the tree-crown recipe's) and
  ``EnlightenmentCallback()`` with its default strategy, ``"auto"``, which on a module that mixes is **Mixup
  Pause**: the strategy docs/detection.md describes for the detector (its default callback on the tree-crown
  recipe). The fit stays *inside* the period (threshold 0.999, no ``max_duration`` guard), so the strategy acts:
  Mixup is paused (α 0 in force), the running foreground accuracy is counted every step and checked every 10
  steps, the step record, per-image losses and the callback's per-step hooks all run.
- **plain**: a plain ``LightningModule`` holding the same torchvision model: ``sum(model(images,
  targets).values())``, the loss logged, no Mixup (what is in force on the suite side inside the period).

A step is the time between two ``on_train_batch_start`` hooks (forward, backward, optimizer, every callback and
logging); each fit runs ``warm-up + steps + 1`` steps and its mean over the ``steps`` after the warm-up is one
timing. Fits come in pairs, which side goes first alternating, after one warm-up pair (not recorded). The ratio
(suite / plain, per pair) is reported as mean ± std with its 95 % interval (``_common.ratio_stats``); the goal
(ratio <= 1.01) is judged on that interval: met only if its upper bound <= 1.01, missed if its lower bound > 1.01,
else not resolved (``_common.goal_verdict``). Run it on a quiet machine.

Expected cost of the full run on 2 quiet cores, estimated from the last saved run's step time (about 1.5 s a step
at 400 px; not yet measured with these settings): 16 fits (warm-up pair + 7 pairs) of 7 steps, about 170 s, plus
model builds and data loading: about 3-4 min.

    python benchmarks/detection_overhead.py           # full: 7 pairs x 5 steps -> results/detection_overhead.*
    python benchmarks/detection_overhead.py --quick   # 2 pairs x 1 step at 64 px (smoke test)
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # the scripts run as files, not as a package

# The repo paths whose change would change what this script measures (tests/benchmarks/test_stale_results.py).
# _common.py is left out: its statistics and reports change no measurement (test_benchmark_provenance regenerates
# the tables). The fits are built here, not with _common.quiet_trainer.
MEASURES = (
    "src/lit_early_phase/modules/detector.py",
    "src/lit_early_phase/modules/detection_losses.py",
    "src/lit_early_phase/modules/detection_models.py",
    "src/lit_early_phase/modules/factories.py",
    "src/lit_early_phase/modules/mixin.py",
    "src/lit_early_phase/modules/rng.py",
    "src/lit_early_phase/modules/manifold.py",
    "src/lit_early_phase/functional",
    "src/lit_early_phase/callbacks",
    "src/lit_early_phase/strategies",
    "src/lit_early_phase/datamodules/detection",
    "src/lit_early_phase/datamodules/loaders.py",
    "benchmarks/detection_overhead.py",
)

STEM = C.ROOT / "benchmarks" / "results" / "detection_overhead"
GOAL = 1.01  # suite step / plain step, judged on the interval
ALPHA = 0.2  # the tree-crown recipe's detection Mixup α (paused inside the period)
LR, WEIGHT_DECAY = 2e-4, 1e-4  # ObjectDetector's default AdamW


def _plain_module(model: Any) -> Any:
    """A plain ``LightningModule`` around the torchvision detector: its summed losses, the same AdamW."""
    import lightning as L
    import torch

    class PlainDetector(L.LightningModule):
        """What a user writes without the suite: torchvision's summed loss, logged."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            images, targets = batch
            loss = sum(self.model(list(images), list(targets)).values())
            self.log("train/loss", loss, prog_bar=True, batch_size=len(images))
            return loss

        def configure_optimizers(self) -> Any:
            params = [p for p in self.parameters() if p.requires_grad]
            return torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)

    return PlainDetector()


def fit_once(side: str, model_name: str, init: dict[str, Any], batches: list, warmup: int, size: int, log_dir: str):
    """One fit of ``side`` (``suite`` or ``plain``) over ``batches``; mean step time (s) after ``warmup`` steps.

    Returns the mean step time and, for the suite, the strategy in force and whether the period was still open.
    """
    import lightning as L
    import numpy as np
    import torch
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import CSVLogger

    from lit_early_phase import EnlightenmentCallback, ObjectDetector

    class StepTimer(Callback):
        def __init__(self) -> None:
            self.starts: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.starts.append(time.perf_counter())

    L.seed_everything(0, verbose=False)
    timer = StepTimer()
    callbacks: list[Any] = [timer]
    suite = ObjectDetector(
        model_name,
        min_size=size,
        max_size=size,
        mixup_alpha=ALPHA,
        optimizer=lambda p: torch.optim.AdamW(p, lr=LR, weight_decay=WEIGHT_DECAY),
    )
    suite.model.load_state_dict(init)
    cb = None
    if side == "suite":
        cb = EnlightenmentCallback(threshold=0.999, max_duration=None, verbose=False, figure=False)
        callbacks.append(cb)
        module = suite
    else:
        module = _plain_module(suite.model)  # the same torchvision model, the same initial weights
    loader = torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=lambda b: b)
    trainer = L.Trainer(
        max_steps=len(batches), max_epochs=-1, logger=CSVLogger(log_dir, name=side), enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        callbacks=callbacks, accelerator="cpu", devices=1,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)
    step = float(np.diff(np.asarray(timer.starts))[warmup:].mean())
    if cb is None:
        return step, None
    return step, {"strategy": type(cb.strategy).__name__, "in_period": cb.in_period, "checks": cb.num_checks}


def measure(*, model_name: str, repeats: int, steps: int, warmup: int, size: int) -> dict[str, Any]:
    """``repeats`` pairs of fits (suite, plain; which goes first alternating) after one warm-up pair."""
    import lightning as L
    import torch

    from lit_early_phase import ObjectDetector
    from lit_early_phase.datamodules import TreeCrownDataModule

    torch.set_num_threads(2)
    L.seed_everything(0, verbose=False)
    dm = TreeCrownDataModule(batch_size=4, augment=False)
    dm.setup("fit")
    n = warmup + steps + 1  # diff of the batch starts: the last step's end is the next start
    batches = [b for _, b in zip(range(n), dm.train_dataloader(), strict=False)]
    assert len(batches) == n, f"the tree-crown train split gave {len(batches)} batches, {n} needed"
    init = copy.deepcopy(ObjectDetector(model_name, min_size=size, max_size=size).model.state_dict())
    times: dict[str, list[float]] = {"suite": [], "plain": []}
    suite_runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as log_dir:
        for side in ("suite", "plain"):  # imports, allocator, thread pools: not recorded
            fit_once(side, model_name, init, batches, warmup, size, log_dir)
        for r in range(repeats):
            for side in ("suite", "plain") if r % 2 == 0 else ("plain", "suite"):
                step, info = fit_once(side, model_name, init, batches, warmup, size, log_dir)
                times[side].append(step)
                if info is not None:
                    suite_runs.append(info)
    ratio = C.ratio_stats(times["suite"], times["plain"])
    return {
        "goal_max": GOAL,
        "verdict": C.goal_verdict(ratio["ci95"], GOAL),
        "strategy": suite_runs[0]["strategy"],
        "in_period_at_end": all(r["in_period"] for r in suite_runs),
        "checks_per_fit": suite_runs[0]["checks"],
        "plain_step_s": C.mean_std(times["plain"]),
        "suite_step_s": C.mean_std(times["suite"]),
        "plain_s": times["plain"],
        "suite_s": times["suite"],
        "ratio": ratio,
    }


def _markdown_before_suite(result: dict[str, Any]) -> list[str]:
    """Rows of a result saved before the whole-suite comparison: ``ObjectDetector.training_step`` outside a Trainer.

    A result saved before the verdict existed is shown as it was generated then (no goal column).
    """
    judged = all("verdict" in r for r in result["models"].values())
    lines = ["# ObjectDetector step vs the plain torchvision loop", "", *C.header_markdown(result["header"])]
    if judged:
        lines.append(
            f"- goal: ratio <= {GOAL}, judged on the 95 % interval: met only if its upper bound <= {GOAL}, missed "
            f"if its lower bound > {GOAL}, else not resolved."
        )
    lines += [
        "",
        "| model | plain step (s) | ObjectDetector step (s) | ratio | 95 % interval |"
        + (" goal <= | goal: interval |" if judged else ""),
        "|---|---|---|---|---|" + ("---|---|" if judged else ""),
    ]
    for name, r in result["models"].items():
        (pm, ps), (mm, ms), q = r["plain_step_s"], r["module_step_s"], r["ratio"]
        lines.append(
            f"| {name} | {pm:.3f} ± {ps:.3f} | {mm:.3f} ± {ms:.3f} | {q['mean']:.3f} ± {q['std']:.3f} | "
            f"[{q['ci95'][0]:.3f}, {q['ci95'][1]:.3f}] |" + (f" {r['goal_max']} | {r['verdict']} |" if judged else "")
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    """One row per model: step times (mean ± std), the ratio (mean ± std, 95 % interval) and the goal's verdict.

    A result saved before the whole-suite comparison (``module_step_s``) is shown as it was generated then.
    """
    if not all("suite_step_s" in r for r in result["models"].values()):
        return "\n".join(_markdown_before_suite(result)) + "\n"
    lines = [
        "# The whole per-step cost on a detector: ObjectDetector + EnlightenmentCallback vs a plain LightningModule",
        "",
        *C.header_markdown(result["header"]),
        f"- suite: `ObjectDetector` (detection Mixup α {ALPHA}) + `EnlightenmentCallback()` (strategy `auto`), "
        "inside its period; plain: a `LightningModule` with the same torchvision model, batches, AdamW and logger.",
        f"- goal: ratio <= {GOAL}, judged on the 95 % interval: met only if its upper bound <= {GOAL}, missed "
        f"if its lower bound > {GOAL}, else not resolved.",
        "",
        "| model | strategy | still in period | plain step (s) | suite step (s) | ratio | 95 % interval | goal <= "
        "| goal: interval |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["models"].items():
        (pm, ps), (sm, ss), q = r["plain_step_s"], r["suite_step_s"], r["ratio"]
        lines.append(
            f"| {name} | {r['strategy']} | {'yes' if r['in_period_at_end'] else 'no'} | {pm:.3f} ± {ps:.3f} | "
            f"{sm:.3f} ± {ss:.3f} | {q['mean']:.3f} ± {q['std']:.3f} | [{q['ci95'][0]:.3f}, {q['ci95'][1]:.3f}] | "
            f"{r['goal_max']} | {r['verdict']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = C.arg_parser(__doc__, quick="2 pairs x 1 step at 64 px (smoke test)", out="output stem")
    parser.add_argument("--models", nargs="+", default=["fasterrcnn_mobilenet_v3_large_fpn"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    stem = args.out or (Path(tempfile.mkdtemp()) / "detection_overhead" if args.quick else STEM)
    if args.report_only:
        C.report_only(stem, markdown)
        return
    mode = "quick" if args.quick else "full"
    git = C.require_committed_code(mode, allow_dirty=args.allow_dirty)
    C.quiet()
    repeats, steps, warmup, size = (2, 1, 1, 64) if args.quick else (args.repeats, args.steps, 1, 400)
    config = {
        "models": args.models,
        "repeats": repeats,
        "steps": steps,
        "warmup": warmup,
        "size": size,
        "batch_size": 4,
        "mixup_alpha": ALPHA,
        "callback": "EnlightenmentCallback(strategy='auto', threshold=0.999, max_duration=None)",
        "optimizer": f"AdamW(lr={LR}, weight_decay={WEIGHT_DECAY})",
    }
    header = C.header("benchmarks/detection_overhead.py", mode=mode, seeds=[0], config=config, git=git, threads=2)
    models = {m: measure(model_name=m, repeats=repeats, steps=steps, warmup=warmup, size=size) for m in args.models}
    result = {"header": header, "models": models}
    C.write_results(stem, result, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
