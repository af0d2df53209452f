"""What ObjectDetector's training step costs over the same torchvision model in a plain loop.

Both sides train a copy of the same detector (same initial weights) on the same real tree-crown batches (4 tiles
of 400x400): the plain side runs ``sum(model(images, targets).values())``, backward, AdamW step; the
``ObjectDetector`` side runs its ``training_step`` (detection Mixup machinery with α = 0, per-image losses,
removal at 0, the step record), backward, the same optimizer step. Repeats are interleaved (plain, module,
plain, module, ...) after a warm-up of each; each repeat times ``--steps`` steps. Run it on a quiet machine.
The goal (ratio <= 1.01) is judged on the ratio's 95 % interval: met only if its upper bound <= 1.01, missed if
its lower bound > 1.01, else not resolved (``_common.goal_verdict``).

    python benchmarks/detection_overhead.py           # full: 7 repeats x 5 steps -> results/detection_overhead.*
    python benchmarks/detection_overhead.py --quick   # 2 repeats x 1 step at 64 px (smoke test)
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # the scripts run as files, not as a package

# The repo paths whose change would change what this script measures (tests/benchmarks/test_stale_results.py).
# _common.py is left out: its statistics and reports change no measurement (test_benchmark_provenance regenerates
# the tables); its quiet_trainer sets the step budget and turns output off. List it if it starts shaping training.
MEASURES = (
    "src/lit_early_phase/modules/detector.py",
    "src/lit_early_phase/modules/detection_losses.py",
    "src/lit_early_phase/modules/detection_models.py",
    "src/lit_early_phase/modules/factories.py",
    "src/lit_early_phase/modules/mixin.py",
    "src/lit_early_phase/modules/rng.py",
    "src/lit_early_phase/modules/manifold.py",
    "src/lit_early_phase/functional",
    "src/lit_early_phase/datamodules/detection",
    "src/lit_early_phase/datamodules/loaders.py",
    "benchmarks/detection_overhead.py",
)

STEM = C.ROOT / "benchmarks" / "results" / "detection_overhead"
GOAL = 1.01  # ObjectDetector step / plain torchvision step, judged on the interval


def measure(*, model_name: str, repeats: int, steps: int, size: int) -> dict[str, Any]:
    """Interleaved timings of ``steps`` training steps: plain torchvision loop vs ``ObjectDetector``."""
    import lightning as L
    import torch

    from lit_early_phase import ObjectDetector
    from lit_early_phase.datamodules import TreeCrownDataModule

    torch.set_num_threads(2)
    L.seed_everything(0)
    dm = TreeCrownDataModule(batch_size=4, augment=False)
    dm.setup("fit")
    batches = [b for _, b in zip(range(steps), dm.train_dataloader(), strict=False)]
    module = ObjectDetector(model_name, min_size=size, max_size=size)
    plain = copy.deepcopy(module.model)
    opt_module = torch.optim.AdamW(module.parameters(), lr=2e-4)
    opt_plain = torch.optim.AdamW(plain.parameters(), lr=2e-4)

    def plain_steps() -> float:
        t0 = time.perf_counter()
        for images, targets in batches:
            loss = sum(plain(list(images), list(targets)).values())
            loss.backward()
            opt_plain.step()
            opt_plain.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    def module_steps() -> float:
        t0 = time.perf_counter()
        for i, batch in enumerate(batches):
            module.begin_enlightenment_step()
            loss = module.training_step(batch, i)
            loss.backward()
            opt_module.step()
            opt_module.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    warnings.filterwarnings("ignore")  # self.log outside a Trainer
    plain_steps(), module_steps()  # warm-up
    plain_t, module_t = [], []
    for _ in range(repeats):
        plain_t.append(plain_steps())
        module_t.append(module_steps())
    ratio = C.ratio_stats(module_t, plain_t)
    return {
        "goal_max": GOAL,
        "verdict": C.goal_verdict(ratio["ci95"], GOAL),
        "plain_s": plain_t,
        "module_s": module_t,
        "plain_step_s": C.mean_std(t / steps for t in plain_t),
        "module_step_s": C.mean_std(t / steps for t in module_t),
        "ratio": ratio,
    }


def markdown(result: dict[str, Any]) -> str:
    """One row per model: step times (mean ± std), the ratio (mean ± std, 95 % interval) and the goal's verdict.

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
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = C.arg_parser(__doc__, quick="2 repeats x 1 step at 64 px (smoke test)", out="output stem")
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
    repeats, steps, size = (2, 1, 64) if args.quick else (args.repeats, args.steps, 400)
    config = {"models": args.models, "repeats": repeats, "steps": steps, "size": size, "batch_size": 4}
    header = C.header("benchmarks/detection_overhead.py", mode=mode, seeds=[0], config=config, git=git, threads=2)
    models = {m: measure(model_name=m, repeats=repeats, steps=steps, size=size) for m in args.models}
    result = {"header": header, "models": models}
    C.write_results(stem, result, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
