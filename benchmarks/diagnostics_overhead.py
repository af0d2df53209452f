"""What does ``EnlightenmentDiagnostics`` cost? Step time with / without it, measured side by side.

For two shipped-classifier settings (timm ``test_resnet`` and the small ViT of ``vit_period.py``, Fashion-MNIST,
batch 128), fits of ``STEPS`` optimizer steps without the callback and with ``EnlightenmentDiagnostics`` every
50 and every 10 steps (probe of 64 images), in rotated order within each repeat so that load changes hit all arms
alike. The time of a fit is taken from the ``WARMUP``-th step to the last (``on_train_batch_start`` to
``on_train_batch_end``, wall clock). Reported: step time per arm (mean ± std over repeats) and the per-repeat ratio
to the plain fit (mean ± std, 95 % t-interval).

    python benchmarks/diagnostics_overhead.py          # ~6 min on 2 quiet cores -> results/diagnostics_overhead.*
    python benchmarks/diagnostics_overhead.py --quick  # smoke run (numbers are not figures)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # the scripts run as files, not as a package
import effect as E  # the cached Fashion-MNIST data module
import vit_period as V  # the ViT's settings

# The repo paths whose change would change what this script measures (tests/benchmarks/test_stale_results.py).
# _common.py is left out: its statistics and reports change no measurement (test_benchmark_provenance regenerates
# the tables); its quiet_trainer sets the step budget and turns output off. List it if it starts shaping training.
MEASURES = (
    "src/lit_early_phase/callbacks",
    "src/lit_early_phase/strategies",
    "src/lit_early_phase/knobs.py",
    "src/lit_early_phase/keys.py",
    "src/lit_early_phase/modules/classifier.py",
    "src/lit_early_phase/modules/mixin.py",
    "src/lit_early_phase/modules/rng.py",
    "src/lit_early_phase/modules/factories.py",
    "src/lit_early_phase/modules/manifold.py",
    "src/lit_early_phase/backbones",
    "src/lit_early_phase/functional",
    "src/lit_early_phase/datamodules/vision/fashion_mnist.py",
    "src/lit_early_phase/datamodules/vision/images.py",
    "src/lit_early_phase/datamodules/loaders.py",
    "benchmarks/diagnostics_overhead.py",
    "benchmarks/effect.py",
    "benchmarks/vit_period.py",
)

ARMS = ("plain", "every_50", "every_10")
EVERY = {"every_50": 50, "every_10": 10}
MODELS = {
    "test_resnet": {"backbone": "test_resnet", "backbone_kwargs": {}},
    "vit": {"backbone": V.CONFIG["backbone"], "backbone_kwargs": dict(V.VIT)},
}
FULL = {"steps": 150, "warmup": 30, "repeats": 5, "threads": 2}
QUICK = {"steps": 24, "warmup": 4, "repeats": 2, "threads": 2}
CONFIG = {
    "data": "Fashion-MNIST, 8,000 training images, batch 128, no augmentation",
    "model": "ImageClassifier, Mixup α 0.4, AdamW(lr=1e-3)",
    "diagnostics": "EnlightenmentDiagnostics(every_n_steps=50 or 10, probe_size=64)",
}


class StepClock(Callback):
    """Wall time from the start of step ``warmup`` to the end of the last step."""

    def __init__(self, warmup: int) -> None:
        super().__init__()
        self.warmup, self.t0, self.t1, self.steps = warmup, None, None, 0

    def on_train_batch_start(self, trainer: Any, *_: Any) -> None:
        if trainer.global_step == self.warmup and self.t0 is None:
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: Any, *_: Any) -> None:
        if self.t0 is not None:
            self.t1, self.steps = time.perf_counter(), trainer.global_step - self.warmup


def fit_once(model_name: str, arm: str, cfg: dict[str, Any]) -> float:
    """One fit; its mean step time (ms) after the warm-up."""
    import lightning as L
    import torch

    from lit_early_phase import EnlightenmentDiagnostics, ImageClassifier

    clock = StepClock(cfg["warmup"])
    L.seed_everything(0, verbose=False)
    spec = MODELS[model_name]
    model = ImageClassifier(spec["backbone"], num_classes=10, in_chans=1, mixup_alpha=0.4,
                            backbone_kwargs=spec["backbone_kwargs"],
                            optimizer=lambda p: torch.optim.AdamW(p, lr=1e-3))  # fmt: skip
    callbacks = [clock] + ([EnlightenmentDiagnostics(every_n_steps=EVERY[arm], probe_size=64)] if arm in EVERY else [])
    trainer = C.quiet_trainer(steps=cfg["steps"], callbacks=callbacks, accelerator="cpu", devices=1,
                              limit_val_batches=0)  # fmt: skip
    trainer.fit(model, E._datamodule(8000, 128, None, False))
    return 1000 * (clock.t1 - clock.t0) / clock.steps


def measure(cfg: dict[str, Any]) -> dict[str, Any]:
    """Rotated repeats of every arm per model; step times and ratios to ``plain``."""
    out: dict[str, Any] = {}
    for model_name in MODELS:
        times: dict[str, list[float]] = {a: [] for a in ARMS}
        for r in range(cfg["repeats"]):
            for arm in ARMS[r % len(ARMS) :] + ARMS[: r % len(ARMS)]:
                times[arm].append(fit_once(model_name, arm, cfg))
                print(f"{model_name:<12} repeat {r} {arm:<9} {times[arm][-1]:7.1f} ms/step", flush=True)
        out[model_name] = {
            "step_ms": {
                a: dict(zip(("mean", "std"), C.mean_std(v), strict=True)) | {"values": v} for a, v in times.items()
            },
            "ratio_to_plain": {a: C.ratio_stats(times[a], times["plain"]) for a in EVERY},
        }
    return out


def markdown(result: dict[str, Any]) -> str:
    """The step times and ratios."""
    h, m = result["header"], result["measurements"]
    lines = [
        f"# EnlightenmentDiagnostics overhead ({h['mode']} run)",
        "",
        *C.header_markdown(h),
        f"- {CONFIG['data']}; {CONFIG['model']}; {h['run']['steps']} steps per fit, timed after step "
        f"{h['run']['warmup']}; {h['run']['repeats']} rotated repeats; {h['run']['threads']} torch threads.",
        "",
        "| model | plain step (ms) | every 50 steps (ms) | every 10 steps (ms) | ratio, every 50 | ratio, every 10 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, v in m.items():
        s, r = v["step_ms"], v["ratio_to_plain"]
        cells = [f"{s[a]['mean']:.1f} ± {s[a]['std']:.1f}" for a in ARMS]
        cells += [
            f"{r[a]['mean']:.3f} ± {r[a]['std']:.3f} [{r[a]['ci95'][0]:.3f}, {r[a]['ci95'][1]:.3f}]" for a in EVERY
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.arg_parser(__doc__, quick="smoke run: 24 steps, 2 repeats", out="output stem")
    args = parser.parse_args(argv)
    stem = "diagnostics_overhead_quick" if args.quick else "diagnostics_overhead"
    if args.report_only:
        return C.report_only(args.out or C.RESULTS / stem, markdown)
    git = C.require_committed_code("quick" if args.quick else "full", allow_dirty=args.allow_dirty)
    cfg = QUICK if args.quick else FULL
    import torch

    torch.set_num_threads(cfg["threads"])
    C.quiet()
    fit_once("test_resnet", "plain", cfg)  # warm-up: imports, data arrays, allocator
    result = {
        "header": C.header(
            "benchmarks/diagnostics_overhead.py",
            mode="quick" if args.quick else "full",
            seeds=[0],
            config=CONFIG,
            git=git,
            run=cfg,
        ),
        "measurements": measure(cfg),
    }
    table = markdown(result)
    C.write_results(args.out or C.RESULTS / stem, result, table)
    print(table)
    return result


if __name__ == "__main__":
    main()
