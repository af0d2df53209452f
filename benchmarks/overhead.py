"""What does the enlightenment machinery cost? Whole step, callback, mixing and 2-process DDP, side by side.

Five measurements, each a ratio taken in one run with interleaved repeats after a warm-up, so that a change in
machine load hits both sides alike. Every goal is judged on the 95 % interval of its ratio: "met" only if the
whole interval lies on the goal's side, "missed" if it lies wholly beyond, else "not resolved"
(``_common.goal_verdict``); the mean alone, or the hooks' own time, never declares a goal met.

0. **The whole per-step cost** (the headline; goal <= 1.01): the shipped ``ImageClassifier`` +
   ``EnlightenmentCallback`` (what the module records per step included) / a plain ``LightningModule`` with the
   same timm backbone that applies ``timm.data.Mixup`` itself (same batch, optimizer, logger), pairs of fits in
   alternating order; and the same at a *fast step* (batch 8: a few ms per CPU step, standing in for a GPU step,
   where the hooks' Python cost shows; goal <= 1.02).
1. **Callback overhead** (goal <= 1.01): training-step time of ``ImageClassifier`` with ``EnlightenmentCallback``
   + each strategy / without any callback, with the *same knobs in force* on both sides, inside the period
   (checks of the running accuracy every 10 steps, never reaching the threshold) and after it (latched). A step is
   the time between two ``on_train_batch_start`` hooks of a Lightning fit: loading, mixing, forward, backward,
   optimizer, every callback and logging. Measured twice: as separate fits per arm (rotated repeats; their
   spread is several per cent) and *within one fit*: the callback's per-step hooks switched on and off in
   alternating blocks of steps, so both sides share the process, model, data and minute (the time inside the
   hooks is reported too, as a description).
2. **High-Loss Removal step / plain step** (goal <= 1.01, reusing the forward pass: forward calls per step are
   counted).
3. **Our on-device mixing + targets vs timm's** ``Mixup`` on the same tensors (speed-up = timm time / ours; goal
   >= 1 per batch, >= 10 per element on small images), several batch and image sizes, and ours on the odd batch
   sizes that timm refuses.
4. **DDP**: samples/s of 2 CPU processes (``strategy="ddp"``) / 1 process, both with Mixup Pause, and the
   optimizer step at which each rank ended the period (must be identical).

Expected cost of the full run on 2 quiet cores, estimated from the step times of the last saved run (about 60 ms
per step at batch 128; not yet measured with these settings): whole ~1.5 min + fast ~0.5 min, step part ~2 min,
toggled part ~5 min, mixing and DDP ~1.5 min: about 10 min.

    python benchmarks/overhead.py            # full, ~10 min on 2 cores; run it on a quiet machine -> results/overhead.*
    python benchmarks/overhead.py --quick    # smoke run (~1 min; numbers are not figures) -> results/overhead_quick.*
    python benchmarks/overhead.py --accelerator cuda --precision bf16-mixed --parts whole step toggle mix   # GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

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
    "benchmarks/overhead.py",
)

PARTS = ("whole", "step", "toggle", "mix", "ddp")
ALPHA = 0.4
BOOST = 1.0
DROP = 0.1
# Arms of the step measurement: module knobs and the callback (None = no callback).
STEP_ARMS: dict[str, dict[str, Any]] = {
    "plain": {"mixup_alpha": 0.0, "drop_fraction": 0.0, "callback": None},
    "mixup": {"mixup_alpha": ALPHA, "drop_fraction": 0.0, "callback": None},
    "mixup_boosted": {"mixup_alpha": BOOST, "drop_fraction": 0.0, "callback": None},
    "removal": {"mixup_alpha": 0.0, "drop_fraction": DROP, "callback": None},
    "pause_in": {"mixup_alpha": ALPHA, "drop_fraction": 0.0, "callback": ("mixup_pause", "in")},
    "pause_after": {"mixup_alpha": ALPHA, "drop_fraction": 0.0, "callback": ("mixup_pause", "after")},
    "boost_in": {"mixup_alpha": ALPHA, "drop_fraction": 0.0, "callback": ("alpha_boost", "in")},
    "boost_after": {"mixup_alpha": ALPHA, "drop_fraction": 0.0, "callback": ("alpha_boost", "after")},
    "hlr_in": {"mixup_alpha": 0.0, "drop_fraction": 0.0, "callback": ("high_loss_removal", "in")},
    "hlr_after": {"mixup_alpha": 0.0, "drop_fraction": 0.0, "callback": ("high_loss_removal", "after")},
}
# (name, arm measured, reference arm with the same knobs in force, goal)
COMPARISONS = (
    ("MixupPause, in the period (α 0) / no callback, α 0", "pause_in", "plain", 1.01),
    ("MixupPause, after the period (α 0.4) / no callback, α 0.4", "pause_after", "mixup", 1.01),
    ("AlphaBoost, in the period (α 1.0) / no callback, α 1.0", "boost_in", "mixup_boosted", 1.01),
    ("AlphaBoost, after the period (α 0.4) / no callback, α 0.4", "boost_after", "mixup", 1.01),
    ("HighLossRemoval, in the period (10 %) / no callback, 10 % removed", "hlr_in", "removal", 1.01),
    ("HighLossRemoval, after the period / no callback", "hlr_after", "plain", 1.01),
    ("High-Loss Removal step (10 %) / plain step, no callback", "removal", "plain", 1.01),
)
# (name, arm, what is switched on and off in alternating blocks of steps within one fit, goal)
TOGGLED = (
    ("MixupPause, in the period (α 0)", "pause_in", "callback", 1.01),
    ("MixupPause, after the period (α 0.4)", "pause_after", "callback", 1.01),
    ("AlphaBoost, in the period (α 1.0)", "boost_in", "callback", 1.01),
    ("AlphaBoost, after the period (α 0.4)", "boost_after", "callback", 1.01),
    ("HighLossRemoval, in the period (10 %)", "hlr_in", "callback", 1.01),
    ("HighLossRemoval, after the period", "hlr_after", "callback", 1.01),
    ("High-Loss Removal step (10 %) / plain step", "plain", "removal", 1.01),
)
# (name, preset key, goal) of the headline: the whole per-step cost of the suite against a plain Mixup step
WHOLE_ROWS = (
    ("ImageClassifier + callback / plain step with timm Mixup", "model", 1.01),
    ("fast step: the same at a few ms per step", "fast", 1.02),
)
FULL = {
    "whole": {
        "model": {"steps": 60, "warmup": 10, "repeats": 12, "batch_size": 128},
        "fast": {"steps": 200, "warmup": 30, "repeats": 12, "batch_size": 8},
    },
    "step": {"steps": 50, "warmup": 10, "repeats": 3, "batch_size": 128},
    "toggle": {"block": 20, "warmup": 20, "pairs": 8, "repeats": 2, "batch_size": 128},
    "mix": {"shapes": [(1, 28, 28), (3, 32, 32), (3, 224, 224)], "batch_sizes": [32, 128, 256], "max_elems": 2e7},
    "ddp": {"steps": 80, "warmup": 10, "repeats": 3, "batch_size": 128},
}
QUICK = {
    "whole": {
        "model": {"steps": 6, "warmup": 2, "repeats": 2, "batch_size": 32},
        "fast": {"steps": 8, "warmup": 2, "repeats": 2, "batch_size": 8},
    },
    "step": {"steps": 6, "warmup": 2, "repeats": 1, "batch_size": 32},
    "toggle": {"block": 2, "warmup": 2, "pairs": 2, "repeats": 1, "batch_size": 32},
    "mix": {"shapes": [(1, 28, 28), (3, 32, 32)], "batch_sizes": [32], "max_elems": 2e7},
    "ddp": {"steps": 10, "warmup": 2, "repeats": 1, "batch_size": 32},
}


# ------------------------------------------------------------------------------------------------------------
# shared pieces
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _callbacks_module() -> Any:
    """Callbacks defined lazily (Lightning is imported only where needed)."""
    from lightning.pytorch.callbacks import Callback

    class StepTimer(Callback):
        """Time stamps at every ``on_train_batch_start`` (first in the callback list): a step is their difference."""

        def __init__(self, device: str) -> None:
            self.device = device
            self.starts: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            _sync(self.device)
            self.starts.append(time.perf_counter())

    return StepTimer


def _enlightenment(strategy: str, phase: str) -> Any:
    """The callback of a step arm: ``in`` never reaches its threshold (checks every 10 steps, no guard);
    ``after`` ends the period after the first step and stays latched."""
    from lit_early_phase import EnlightenmentCallback
    from lit_early_phase.strategies import AlphaBoost, HighLossRemoval, MixupPause

    make = {
        "mixup_pause": MixupPause,
        "alpha_boost": lambda: AlphaBoost(alpha=BOOST),
        "high_loss_removal": lambda: HighLossRemoval(fraction=DROP),
    }[strategy]
    if phase == "in":
        return EnlightenmentCallback(strategy=make(), threshold=0.999, max_duration=None, verbose=False)
    return EnlightenmentCallback(strategy=make(), duration="1st", verbose=False)


def _datamodule(batch_size: int) -> Any:
    from lit_early_phase.datamodules import FashionMNISTDataModule

    dm = FashionMNISTDataModule(batch_size=batch_size, val_size=0, augment=False, num_workers=0)
    dm.setup("fit")
    return dm


def _model(mixup_alpha: float, drop_fraction: float) -> Any:
    import torch

    from lit_early_phase import ImageClassifier

    return ImageClassifier(
        "test_resnet",
        num_classes=10,
        in_chans=1,
        mixup_alpha=mixup_alpha,
        drop_fraction=drop_fraction,
        optimizer=lambda params: torch.optim.AdamW(params, lr=3e-3, weight_decay=0.05),
    )


# ------------------------------------------------------------------------------------------------------------
# 0: the whole per-step cost (the headline)
def _plain_mixup_module(mixup_alpha: float) -> Any:
    """A plain ``LightningModule`` with the same timm backbone and optimizer that applies ``timm.data.Mixup``."""
    import lightning as L
    import timm
    import torch
    from timm.data import Mixup

    class PlainMixup(L.LightningModule):
        """What a user writes without the suite: timm's Mixup, soft-target cross-entropy, the loss logged."""

        def __init__(self) -> None:
            super().__init__()
            self.model = timm.create_model("test_resnet", num_classes=10, in_chans=1)
            self.mixup = Mixup(mixup_alpha=mixup_alpha, cutmix_alpha=0.0, label_smoothing=0.0, num_classes=10)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            x, targets = self.mixup(x, y)
            loss = torch.sum(-targets * torch.log_softmax(self.model(x), dim=-1), dim=-1).mean()
            self.log("train/loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.AdamW(self.parameters(), lr=3e-3, weight_decay=0.05)

    return PlainMixup()


def fit_whole(side: str, dm: Any, cfg: dict[str, Any], device: str, accelerator: str, precision: str, log_dir: str):
    """One fit of one side of the headline; mean step time (s) over the steps after the warm-up.

    ``suite``: the shipped ``ImageClassifier`` (Mixup α 0.4) + ``EnlightenmentCallback(AlphaBoost(alpha=0.4))``
    inside its period (the same α in force, the running accuracy checked every 10 steps, threshold never reached).
    ``plain``: :func:`_plain_mixup_module`. Both with a ``CSVLogger`` writing every 50 steps (Lightning's default).
    """
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from lit_early_phase import EnlightenmentCallback
    from lit_early_phase.strategies import AlphaBoost

    L.seed_everything(0, verbose=False)
    timer = _callbacks_module()(device)
    callbacks: list[Any] = [timer]
    if side == "suite":
        model = _model(ALPHA, 0.0)
        cb = EnlightenmentCallback(strategy=AlphaBoost(alpha=ALPHA), threshold=0.999, max_duration=None, verbose=False)
        callbacks.append(cb)
    else:
        model = _plain_mixup_module(ALPHA)
    trainer = L.Trainer(
        max_steps=cfg["steps"], max_epochs=-1, logger=CSVLogger(log_dir, name=side), enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        callbacks=callbacks, accelerator=accelerator, precision=precision, devices=1,
    )  # fmt: skip
    trainer.fit(model, dm)
    steps = np.diff(np.asarray(timer.starts))[cfg["warmup"] :]
    return float(steps.mean())


def measure_whole(cfg: dict[str, Any], device: str, accelerator: str, precision: str) -> dict[str, Any]:
    """Per row: ``repeats`` pairs of fits (suite, plain), which side goes first alternating; per-pair ratios."""
    rows = []
    with tempfile.TemporaryDirectory() as log_dir:
        for name, key, goal in WHOLE_ROWS:
            row_cfg = {**cfg, **cfg[key]}
            dm = _datamodule(row_cfg["batch_size"])
            warm = {"steps": row_cfg["warmup"] + 3, "warmup": row_cfg["warmup"]}
            for side in ("suite", "plain"):  # imports, allocator, thread pools: not recorded
                fit_whole(side, dm, warm, device, accelerator, precision, log_dir)
            times: dict[str, list[float]] = {"suite": [], "plain": []}
            for r in range(row_cfg["repeats"]):
                for side in ("suite", "plain") if r % 2 == 0 else ("plain", "suite"):
                    times[side].append(fit_whole(side, dm, row_cfg, device, accelerator, precision, log_dir))
            stats = C.ratio_stats(times["suite"], times["plain"])
            verdict = C.goal_verdict(stats["ci95"], goal)
            rows.append(
                {
                    "name": name,
                    "key": key,
                    "batch_size": row_cfg["batch_size"],
                    "steps": row_cfg["steps"],
                    "warmup": row_cfg["warmup"],
                    "repeats": row_cfg["repeats"],
                    "suite_ms": C.mean_std(1e3 * t for t in times["suite"]),
                    "plain_ms": C.mean_std(1e3 * t for t in times["plain"]),
                    "extra_ms_per_step": float(1e3 * (np.mean(times["suite"]) - np.mean(times["plain"]))),
                    "ratio": stats,
                    "goal_max": goal,
                    "verdict": verdict,
                }
            )
            lo, hi = stats["ci95"]
            print(f"  whole {name:<48} ratio {stats['mean']:.4f} [{lo:.4f}, {hi:.4f}] goal <= {goal}: {verdict}")
    return {"config": cfg, "comparisons": rows}


# ------------------------------------------------------------------------------------------------------------
# 1 + 2: step time
def fit_timed(arm: str, dm: Any, cfg: dict[str, Any], device: str, accelerator: str, precision: str) -> dict:
    """One short fit of ``arm``; mean/median step time over the steps after the warm-up."""
    import lightning as L

    spec = STEP_ARMS[arm]
    L.seed_everything(0, verbose=False)
    model = _model(spec["mixup_alpha"], spec["drop_fraction"])
    calls = [0]
    model.model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    timer = _callbacks_module()(device)
    cb = None if spec["callback"] is None else _enlightenment(*spec["callback"])
    callbacks = [timer] + ([cb] if cb is not None else [])
    trainer = C.quiet_trainer(
        steps=cfg["steps"], callbacks=callbacks, accelerator=accelerator, precision=precision, devices=1,
        limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(model, dm)
    steps = np.diff(np.asarray(timer.starts))[cfg["warmup"] :]
    return {
        "arm": arm,
        "step_ms_mean": float(steps.mean() * 1e3),
        "step_ms_median": float(np.median(steps) * 1e3),
        "step_ms_std": float(steps.std(ddof=1) * 1e3) if steps.size > 1 else 0.0,
        "steps_timed": int(steps.size),
        "forward_calls_per_step": calls[0] / max(1, trainer.global_step),
        "in_period_at_end": None if cb is None else cb.in_period,
        "boundary_step": None if cb is None else cb.boundary_step,
    }


def measure_steps(cfg: dict[str, Any], device: str, accelerator: str, precision: str) -> dict[str, Any]:
    """Every step arm once per repeat, the order rotated each repeat; ratios per repeat for each comparison."""
    dm = _datamodule(cfg["batch_size"])
    arms = list(STEP_ARMS)
    # warm-up fit (imports, allocator, thread pools) not recorded
    fit_timed("mixup", dm, {**cfg, "steps": cfg["warmup"] + 3}, device, accelerator, precision)
    per_arm: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
    for r in range(cfg["repeats"]):
        order = arms[r % len(arms) :] + arms[: r % len(arms)]
        for arm in order:
            res = fit_timed(arm, dm, cfg, device, accelerator, precision)
            per_arm[arm].append(res)
            print(f"  step repeat {r + 1}/{cfg['repeats']} {arm:<14} {res['step_ms_mean']:8.2f} ms/step", flush=True)
    comparisons = []
    for name, arm, ref, goal in COMPARISONS:
        num = [x["step_ms_mean"] for x in per_arm[arm]]
        den = [x["step_ms_mean"] for x in per_arm[ref]]
        stats = C.ratio_stats(num, den)
        comparisons.append(
            {
                "name": name,
                "arm": arm,
                "reference": ref,
                "arm_ms": C.mean_std(num),
                "reference_ms": C.mean_std(den),
                "extra_ms_per_step": float(np.mean(num) - np.mean(den)),
                "ratio": stats,
                "goal_max": goal,
                "verdict": C.goal_verdict(stats["ci95"], goal),
                "forward_calls_per_step": per_arm[arm][0]["forward_calls_per_step"],
                "in_period_at_end": per_arm[arm][0]["in_period_at_end"],
            }
        )
    return {"config": cfg, "arms": per_arm, "comparisons": comparisons}


def _gate_step_hooks(callback: Any, on: Any, spent: dict[int, float]) -> None:
    """Let ``callback``'s per-step hooks run only for the batches where ``on(batch_idx)`` is true.

    Lightning looks hooks up on the instance, so instance attributes shadow the class's methods; every other hook
    (setup, fit start, epoch end, state) runs as usual. The time spent inside the hooks is added to
    ``spent[batch_idx]`` (host time: on a GPU that is what the hooks cost unless they synchronise).
    """
    for name in ("on_train_batch_start", "on_train_batch_end"):
        hook = getattr(callback, name)

        def gated(*args: Any, _hook: Any = hook) -> None:
            batch_idx = args[-1]  # the last positional argument of both hooks
            if on(batch_idx):
                start = time.perf_counter()
                _hook(*args)
                spent[batch_idx] = spent.get(batch_idx, 0.0) + time.perf_counter() - start

        setattr(callback, name, gated)


def fit_toggled(name: str, arm: str, what: str, cfg: dict[str, Any], dm: Any, repeat: int, device: str, **kw: Any):
    """One fit whose callback (or removal) is on in every other block of ``cfg['block']`` steps.

    Both sides of each ratio then come from the same process, model, data stream and minute, so slow drifts and
    per-fit offsets (memory layout, thread pools), which dominate the spread of separate fits, cancel. The side
    that goes first alternates with ``repeat``.
    """
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    block, warmup = cfg["block"], cfg["warmup"]
    total = warmup + 2 * cfg["pairs"] * block

    def on(batch_idx: int) -> bool:
        return (batch_idx // block + repeat) % 2 == 0

    spec = STEP_ARMS[arm]
    L.seed_everything(0, verbose=False)
    model = _model(spec["mixup_alpha"], spec["drop_fraction"])
    timer = _callbacks_module()(device)
    callbacks: list[Any] = [timer]
    spent: dict[int, float] = {}
    if what == "callback":
        cb = _enlightenment(*spec["callback"])
        _gate_step_hooks(cb, on, spent)
        callbacks.append(cb)
    else:  # the module's removal knob, set before every step on both sides (the setter's cost cancels)

        class ToggleRemoval(Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
                pl_module.set_knobs(drop_fraction=DROP if on(batch_idx) else 0.0)

        callbacks.append(ToggleRemoval())
    trainer = C.quiet_trainer(
        steps=total + 1, callbacks=callbacks, accelerator=kw["accelerator"], precision=kw["precision"], devices=1,
        limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(model, dm)
    steps = np.diff(np.asarray(timer.starts))  # step i: from its batch start to the next one
    idx = np.arange(steps.size)
    ratios = []
    for k in range(cfg["pairs"]):
        first = warmup + 2 * k * block
        a, b = steps[first : first + block], steps[first + block : first + 2 * block]
        on_block, off_block = (a, b) if on(first) else (b, a)
        ratios.append(float(on_block.mean() / off_block.mean()))
    measured = idx >= warmup
    on_mask = np.array([on(i) for i in idx]) & measured
    off_mask = ~np.array([on(i) for i in idx]) & measured
    hooks = np.array([spent.get(int(i), 0.0) for i in idx[on_mask]])
    return {
        "name": name,
        "repeat": repeat,
        "pair_ratios": ratios,
        "on_ms": float(steps[on_mask].mean() * 1e3),
        "off_ms": float(steps[off_mask].mean() * 1e3),
        "hook_us_per_step": float(hooks.mean() * 1e6) if what == "callback" else None,
        "hook_us_max": float(hooks.max() * 1e6) if what == "callback" else None,
    }


def measure_toggled(cfg: dict[str, Any], device: str, accelerator: str, precision: str) -> dict[str, Any]:
    """Each comparison as ``repeats`` fits with the thing measured switched on and off in alternating blocks."""
    dm = _datamodule(cfg["batch_size"])
    fit_timed("mixup", dm, {"steps": 13, "warmup": 10}, device, accelerator, precision)  # warm-up, not recorded
    rows = []
    for name, arm, what, goal in TOGGLED:
        fits = [
            fit_toggled(name, arm, what, cfg, dm, r, device, accelerator=accelerator, precision=precision)
            for r in range(cfg["repeats"])
        ]
        ratios = [x for f in fits for x in f["pair_ratios"]]
        mean, lo, hi = C.t_interval(ratios)
        on_ms, off_ms = [f["on_ms"] for f in fits], [f["off_ms"] for f in fits]
        hook_us = [f["hook_us_per_step"] for f in fits if f["hook_us_per_step"] is not None]
        # the callback's own cost as a share of a step: hook time / step time without the hooks (precise, because
        # it is timed around the hooks themselves; it leaves out only Lightning's dispatch of the two hook calls)
        hook_share = float(np.mean(hook_us) / 1e3 / np.mean(off_ms)) if hook_us else None
        rows.append(
            {
                "name": name,
                "arm": arm,
                "toggled": what,
                "fits": fits,
                "on_ms": C.mean_std(on_ms),
                "off_ms": C.mean_std(off_ms),
                "extra_ms_per_step": float(np.mean(on_ms) - np.mean(off_ms)),
                "ratio": {"mean": mean, "std": C.mean_std(ratios)[1], "ci95": [lo, hi], "n_pairs": len(ratios)},
                "goal_max": goal,
                "verdict": C.goal_verdict([lo, hi], goal),
                "hook_us_per_step": C.mean_std(hook_us) if hook_us else None,
                "hook_us_max": max(f["hook_us_max"] for f in fits) if hook_us else None,
                "hook_share": hook_share,  # a description of the hooks' own cost, never a verdict on the goal
            }
        )
        hooks = (
            "" if hook_share is None else f", in the hooks {np.mean(hook_us):.0f} us/step ({100 * hook_share:.3f} %)"
        )
        print(f"  toggled {name:<45} ratio {mean:.4f} [{lo:.4f}, {hi:.4f}]{hooks}", flush=True)
    return {"config": cfg, "comparisons": rows}


# ------------------------------------------------------------------------------------------------------------
# 3: mixing
def measure_mixing(cfg: dict[str, Any], device: str, quick: bool) -> list[dict[str, Any]]:
    """Ours (``mix_batch``, inputs + dense targets) vs ``timm.data.Mixup`` on clones of the same tensors."""
    import torch
    from timm.data import Mixup

    from lit_early_phase.functional import mix_batch

    rows = []
    for mode in ("batch", "elem"):
        for shape in cfg["shapes"]:
            for b in cfg["batch_sizes"]:
                elems = b * math.prod(shape)
                if elems > cfg["max_elems"]:
                    continue
                reps = 5 if quick else (200 if elems <= 1e6 else 30)
                warm = 2 if quick else 10
                gen = torch.Generator().manual_seed(0)
                x = torch.randn(b, *shape, device=device)
                y = torch.randint(0, 10, (b,), device=device)
                x_odd, y_odd = x[:-1].clone(), y[:-1].clone()
                mixer = Mixup(mixup_alpha=ALPHA, cutmix_alpha=0.0, mode=mode, label_smoothing=0.0, num_classes=10)

                def ours(xx: Any, yy: Any, mode: str = mode, gen: Any = gen) -> Any:
                    return mix_batch(xx, yy, num_classes=10, mixup_alpha=ALPHA, mode=mode, generator=gen)

                times: dict[str, list[float]] = {"ours": [], "timm": [], "ours_odd": []}
                for i in range(warm + reps):
                    xa, xb, xc = x.clone(), x.clone(), x_odd.clone()  # timm mixes in place: fresh inputs each time
                    _sync(device)
                    order = ("ours", "timm", "ours_odd") if i % 2 == 0 else ("timm", "ours", "ours_odd")
                    for who in order:
                        t = time.perf_counter()
                        if who == "ours":
                            ours(xa, y)
                        elif who == "timm":
                            mixer(xb, y)
                        else:
                            ours(xc, y_odd)
                        _sync(device)
                        if i >= warm:
                            times[who].append(time.perf_counter() - t)
                try:
                    mixer(x_odd.clone(), y_odd)
                    timm_odd = "accepted"
                except AssertionError as err:
                    timm_odd = f"refused: AssertionError({str(err)!r})"
                ours_us = np.asarray(times["ours"]) * 1e6
                timm_us = np.asarray(times["timm"]) * 1e6
                odd_us = np.asarray(times["ours_odd"]) * 1e6
                # ratio of medians: one preempted call on a shared machine must not decide a row
                speedup = float(np.median(timm_us) / np.median(ours_us))
                # per-call ratios on a log scale (a preempted call must not swamp the interval): geometric mean
                _, log_lo, log_hi = C.t_interval(np.log(timm_us / ours_us))
                per_call_ci = [float(np.exp(log_lo)), float(np.exp(log_hi))]
                small = shape[-1] <= 32
                goal = 1.0 if mode == "batch" else (10.0 if small else None)
                row = {
                    "mode": mode,
                    "shape": [b, *shape],
                    "reps": reps,
                    "ours_us": C.mean_std(ours_us),
                    "timm_us": C.mean_std(timm_us),
                    "ours_us_median": float(np.median(ours_us)),
                    "timm_us_median": float(np.median(timm_us)),
                    "speedup": speedup,
                    "speedup_of_means": float(timm_us.mean() / ours_us.mean()),
                    "goal_min": goal,
                    # judged on the interval of the per-call ratios (interleaved calls), as every goal here
                    "speedup_ci95": per_call_ci,
                    "verdict": None if goal is None else C.goal_verdict(per_call_ci, goal, at_most=False),
                    "odd_batch": b - 1,
                    "ours_odd_us": C.mean_std(odd_us),
                    "timm_odd": timm_odd,
                }
                rows.append(row)
                print(
                    f"  mix {mode:<5} {b}x{'x'.join(map(str, shape)):<10} ours {row['ours_us'][0]:9.1f} us, timm "
                    f"{row['timm_us'][0]:9.1f} us, speed-up {speedup:5.2f}",
                    flush=True,
                )
    return rows


# ------------------------------------------------------------------------------------------------------------
# 4: DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_worker(args: argparse.Namespace) -> None:
    """Entry point of one DDP measurement (Lightning relaunches this same command for rank 1)."""
    import torch

    C.quiet()
    torch.set_num_threads(args.threads)
    import lightning as L

    from lit_early_phase import EnlightenmentCallback
    from lit_early_phase.strategies import MixupPause

    dm = _datamodule(args.batch_size)
    L.seed_everything(0, verbose=False)
    model = _model(ALPHA, 0.0)
    timer = _callbacks_module()("cpu")
    cb = EnlightenmentCallback(strategy=MixupPause(), verbose=False)
    strategy = "ddp" if args.devices > 1 else "auto"
    trainer = C.quiet_trainer(
        steps=args.steps, callbacks=[timer, cb], accelerator="cpu", precision="32-true", devices=args.devices,
        strategy=strategy, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(model, dm)
    steps = np.diff(np.asarray(timer.starts))[args.warmup :]
    step_s = float(steps.mean())
    record = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "threads": torch.get_num_threads(),
        "batch_size_per_process": args.batch_size,
        "global_step": trainer.global_step,
        "step_ms_mean": step_s * 1e3,
        "step_ms_std": float(steps.std(ddof=1) * 1e3) if steps.size > 1 else 0.0,
        "samples_per_s": trainer.world_size * args.batch_size / step_s,
        "boundary_step": cb.boundary_step,
        "boundary_epoch": cb.boundary_epoch,
        "reason": cb.reason,
        "running_acc_at_last_check": cb.last_value,
    }
    out = Path(args.worker_out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record, indent=2) + "\n")


def _run_ddp(devices: int, threads: int, cfg: dict[str, Any], tmp: Path, tag: str) -> list[dict[str, Any]]:
    out = tmp / tag
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--ddp-worker",
        "--devices",
        str(devices),
        "--threads",
        str(threads),
        "--steps",
        str(cfg["steps"]),
        "--warmup",
        str(cfg["warmup"]),
        "--batch-size",
        str(cfg["batch_size"]),
        "--worker-out",
        str(out),
    ]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "PYTHONWARNINGS": "ignore"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        raise RuntimeError(f"DDP worker {cmd} failed with exit code {proc.returncode}:\n{tail}")
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(devices)]
    return ranks


def measure_ddp(cfg: dict[str, Any], threads: int) -> dict[str, Any]:
    """1 process (``threads`` threads) and 2 processes (half as many each), interleaved; throughput, boundaries."""
    layouts = {1: threads, 2: max(1, threads // 2)}
    runs: dict[int, list[list[dict[str, Any]]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(cfg["repeats"]):
            for devices in (1, 2) if r % 2 == 0 else (2, 1):
                ranks = _run_ddp(devices, layouts[devices], cfg, Path(tmp), f"r{r}_d{devices}")
                runs[devices].append(ranks)
                print(
                    f"  ddp repeat {r + 1}/{cfg['repeats']} {devices} process(es): "
                    f"{ranks[0]['samples_per_s']:.0f} samples/s, boundary steps {[x['boundary_step'] for x in ranks]}",
                    flush=True,
                )
    one = [rk[0]["samples_per_s"] for rk in runs[1]]
    two = [rk[0]["samples_per_s"] for rk in runs[2]]
    boundaries = [[x["boundary_step"] for x in rk] for rk in runs[2]]
    return {
        "config": cfg,
        "threads_per_process": {str(k): v for k, v in layouts.items()},
        "runs": {str(k): v for k, v in runs.items()},
        "samples_per_s": {"1": C.mean_std(one), "2": C.mean_std(two)},
        "ratio": C.ratio_stats(two, one),
        "boundary_steps_per_rank": boundaries,
        "boundary_identical_on_ranks": all(len(set(b)) == 1 and b[0] is not None for b in boundaries),
    }


# ------------------------------------------------------------------------------------------------------------
def _ms(ms: tuple[float, float]) -> str:
    return f"{ms[0]:.2f} ± {ms[1]:.2f}"


def _us(us: tuple[float, float]) -> str:
    return f"{us[0]:,.0f} ± {us[1]:,.0f}" if us[0] >= 100 else f"{us[0]:.1f} ± {us[1]:.1f}"


def _ok(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "**no**")


def _verdict(verdict: str | None) -> str:
    """A goal's verdict as the tables show it (only the interval decides: met / missed / not resolved)."""
    return "-" if verdict is None else {"missed": "**missed**"}.get(verdict, verdict)


def _legacy(rows: list[dict[str, Any]]) -> bool:
    """Rows saved before goals were judged on their interval (``meets_goal`` instead of ``verdict``)."""
    return bool(rows) and "verdict" not in rows[0]


def _verdict_head(rows: list[dict[str, Any]], *, legacy: str = "met") -> str:
    """The verdict column's heading (a saved older result keeps its own)."""
    return legacy if _legacy(rows) else "goal: interval"


def _row_verdict(row: dict[str, Any], *, hooks: bool = False) -> str:
    """A row's verdict cell; a saved older result is shown as it was generated then (its mean-based flags)."""
    if "verdict" in row:
        return _verdict(row["verdict"])
    if hooks:
        return f"{_ok(row['meets_goal'])}; {_ok(row.get('meets_goal_by_hook_time'))}"
    return _ok(row["meets_goal"])


def _ci(ci95: list[float]) -> str:
    return "" if math.isnan(ci95[0]) else f"[{ci95[0]:.4f}, {ci95[1]:.4f}]"


def _whole_markdown(w: dict[str, Any]) -> list[str]:
    """The headline table: the suite's whole per-step cost against a plain step with timm's Mixup."""
    lines = [
        "",
        "## The whole per-step cost: ImageClassifier + EnlightenmentCallback / a plain step with timm `Mixup`",
        "",
        "Suite: the shipped `ImageClassifier` (Mixup α 0.4, its step record, accuracy counts and logging) with "
        "`EnlightenmentCallback(strategy=AlphaBoost(alpha=0.4))` inside its period (the same α in force, the running "
        "accuracy checked every 10 steps, threshold 0.999 never reached). Plain: a `LightningModule` with the same "
        "timm backbone that applies `timm.data.Mixup` (α 0.4) itself, soft-target cross-entropy, the loss logged. "
        "Same data, batch, AdamW; both with a `CSVLogger` (written every 50 steps). Each repeat is a pair of fits "
        "(which side goes first alternates) after a warm-up fit of each; a step is the time between two "
        "`on_train_batch_start` hooks, averaged over the steps after the warm-up. Ratio = mean ± std of the per-pair "
        "ratios [95 % t-interval]; the goal is met only if the upper bound <= goal, missed if the lower bound > goal, "
        "else not resolved. The fast row is the same comparison at a batch whose step takes a few ms, where the "
        "hooks' Python cost shows.",
        "",
        "| comparison | batch | steps (warm-up) x pairs | suite (ms/step) | plain (ms/step) | extra (ms/step) | "
        "ratio [95 % CI] | goal <= | goal: interval |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for c in w["comparisons"]:
        r = c["ratio"]
        lines.append(
            f"| {c['name']} | {c['batch_size']} | {c['steps']} ({c['warmup']}) x {c['repeats']} | "
            f"{_ms(c['suite_ms'])} | {_ms(c['plain_ms'])} | {c['extra_ms_per_step']:+.2f} | "
            f"{r['mean']:.4f} ± {r['std']:.4f} {_ci(r['ci95'])} | {c['goal_max']} | {_verdict(c['verdict'])} |"
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    """Tables of the four measurements."""
    h = result["header"]
    lines = [
        f"# Overhead: callback, High-Loss Removal, mixing, DDP ({h['mode']} run)",
        "",
        *C.header_markdown(h),
        f"- torch threads: {h['threads']} (step and mixing parts; DDP as stated below); device `{h['device']}`, "
        f"precision `{h['precision']}`. GPU: {h['gpu_note']}",
        "- Model timm `test_resnet` on Fashion-MNIST 28x28 (no augmentation, loaded in memory), AdamW.",
    ]
    if "whole" in result:
        lines += _whole_markdown(result["whole"])
    if "step" in result:
        s = result["step"]
        cfg = s["config"]
        lines += [
            "",
            f"## Training step with the callback / without (batch {cfg['batch_size']})",
            "",
            f"Each arm is a Lightning fit of {cfg['steps']} steps; the first {cfg['warmup']} are warm-up; a step "
            "is the time between two `on_train_batch_start` hooks (loading, mixing, forward, backward, optimizer, "
            f"callbacks, logging), averaged over the timed steps (a mean, not a median: the checks happen on every "
            f"10th step only). {cfg['repeats']} repeat(s), every arm once per repeat in a rotated order; ratio = "
            "mean ± std over repeats of the per-repeat ratio [95 % t-interval]. Both sides of a row have the same "
            "knobs in force, so the ratio is the cost of the callback (or of the removal) alone. 'in the period': "
            "threshold 0.999, never reached, running accuracy checked (and reduced) every 10 steps; 'after': "
            "`duration='1st'`, latched after step 1.",
            "",
            "| comparison | with (ms/step) | reference (ms/step) | extra (ms/step) | ratio [95 % CI] | goal <= | "
            f"{_verdict_head(s['comparisons'])} | forward calls/step |",
            "|---|---:|---:|---:|---:|---:|---|---:|",
        ]
        for c in s["comparisons"]:
            r = c["ratio"]
            ci = f"[{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}]" if not math.isnan(r["ci95"][0]) else ""
            lines.append(
                f"| {c['name']} | {_ms(c['arm_ms'])} | {_ms(c['reference_ms'])} | {c['extra_ms_per_step']:+.2f} | "
                f"{r['mean']:.4f} ± {r['std']:.4f} {ci} | {c['goal_max']} | {_row_verdict(c)} | "
                f"{c['forward_calls_per_step']:.2f} |"
            )
    if "toggle" in result:
        t = result["toggle"]
        cfg = t["config"]
        lines += [
            "",
            "## Training step with the callback / without, switched within one fit (the goal's measurement)",
            "",
            f"The spread between separate fits (above) is several per cent, too wide to resolve 1 %. Here each row is "
            f"{cfg['repeats']} fit(s) in which the callback's per-step hooks (or the removal knob) are on in every "
            f"other block of {cfg['block']} steps and off in the blocks between, after {cfg['warmup']} warm-up "
            f"steps; the module's knobs are the same on both sides (the strategy set them at the start; 'after': "
            f"latched). Ratio = mean over adjacent on/off block pairs ({cfg['pairs']} per fit, which side comes "
            "first alternating between fits) of mean step time on / off, ± std, [95 % t-interval]. The callback "
            f"checks every 10 steps, so each on-block holds {cfg['block'] / 10:g} of its checks. 'In the hooks': "
            "`perf_counter` around the callback's two per-step hooks themselves, mean per step (checks included) and "
            + (
                "the slowest step; 1 + its share of the off-step time is the callback's own cost as a ratio, free of "
                "the step-to-step noise that limits the block ratio."
                if _legacy(t["comparisons"])
                else "the slowest step; 1 + its share of the off-step time describes the callback's own cost (it "
                "leaves out Lightning's dispatch and any effect on the rest of the step), so the goal is judged on "
                "the ratio's interval only: met if its upper bound <= goal, missed if its lower bound > goal, else "
                "not resolved."
            ),
            "",
            "| comparison | on (ms/step) | off (ms/step) | extra (ms/step) | ratio [95 % CI] | in the hooks (µs/step; "
            f"max) | 1 + hooks / step | goal <= | {_verdict_head(t['comparisons'], legacy='met (ratio; hooks)')} |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for c in t["comparisons"]:
            r = c["ratio"]
            ci = f"[{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}]" if not math.isnan(r["ci95"][0]) else ""
            hooks, share = "-", "-"
            if c.get("hook_us_per_step"):
                hooks = f"{_us(c['hook_us_per_step'])}; {c['hook_us_max']:,.0f}"
                share = f"{1 + c['hook_share']:.4f}"
            lines.append(
                f"| {c['name']} | {_ms(c['on_ms'])} | {_ms(c['off_ms'])} | {c['extra_ms_per_step']:+.2f} | "
                f"{r['mean']:.4f} ± {r['std']:.4f} {ci} | {hooks} | {share} | {c['goal_max']} | "
                f"{_row_verdict(c, hooks=True)} |"
            )
    if "mix" in result:
        legacy_mix = _legacy(result["mix"])
        lines += [
            "",
            "## Mixing + targets: ours (`functional.mix_batch`) vs timm `Mixup` on the same tensors",
            "",
            f"Mixup α {ALPHA}, CutMix off, no label smoothing, 10 classes; ours includes the sampling (pairing, λ, "
            "on a seeded generator), the mixed inputs, dense targets and dominant labels; timm's call mixes in place "
            "and returns its targets (inputs are cloned outside the timed region). Interleaved, alternating which "
            "goes first; time per call mean ± std in µs; speed-up = median timm / median ours (> 1: ours is faster; "
            "medians, so that a call preempted by another process does not decide a row)"
            + (
                ". "
                if legacy_mix
                else "; the goal is judged on the 95 % interval of the geometric mean of the per-call ratios timm / "
                "ours (a t-interval of their logarithms): met if its lower bound >= goal, missed if its upper bound "
                "< goal, else not resolved. "
            )
            + "timm asserts an even batch: the odd batch (B − 1) is timed for ours only.",
            "",
            "| λ | input | ours (µs) | timm (µs) | speed-up | goal >= | met | ours on B − 1 (µs) | timm on B − 1 |"
            if legacy_mix
            else "| λ | input | ours (µs) | timm (µs) | speed-up | per-call ratio, 95 % CI (geometric) | goal >= | "
            "goal: interval | ours on B − 1 (µs) | timm on B − 1 |",
            "|---|---|---:|---:|---:|---:|---|---:|---|"
            if legacy_mix
            else "|---|---|---:|---:|---:|---:|---:|---|---:|---|",
        ]
        for row in result["mix"]:
            shape = "x".join(map(str, row["shape"]))
            per = "per batch" if row["mode"] == "batch" else "per element"
            goal = "-" if row["goal_min"] is None else f"{row['goal_min']:g}"
            lines.append(
                f"| {per} | {shape} | {_us(row['ours_us'])} | {_us(row['timm_us'])} | {row['speedup']:.2f} | "
                + ("" if legacy_mix else f"{_ci(row['speedup_ci95'])} | ")
                + f"{goal} | {_row_verdict(row)} | {_us(row['ours_odd_us'])} | "
                f"{'refused (AssertionError)' if row['timm_odd'].startswith('refused') else row['timm_odd']} |"
            )
    if "ddp" in result:
        d = result["ddp"]
        cfg = d["config"]
        lines += [
            "",
            "## DDP on CPU: 2 processes / 1 process",
            "",
            f"`Trainer(strategy='ddp', devices=2, accelerator='cpu')` vs one process, both with "
            f"`EnlightenmentCallback(strategy=MixupPause())` defaults, batch {cfg['batch_size']} per process, "
            f"{cfg['steps']} steps ({cfg['warmup']} warm-up), {cfg['repeats']} interleaved repeat(s), each a fresh "
            f"launch. torch threads: {d['threads_per_process']['1']} for the single process, "
            f"{d['threads_per_process']['2']} for each of the 2 processes.",
            "",
            "| processes | samples/s | ratio to 1 process | period ended at step (per rank, per repeat) | "
            "identical on ranks |",
            "|---:|---:|---:|---|---|",
            f"| 1 | {d['samples_per_s']['1'][0]:.0f} ± {d['samples_per_s']['1'][1]:.0f} | 1 | "
            f"{[rk[0]['boundary_step'] for rk in d['runs']['1']]} | - |",
            f"| 2 | {d['samples_per_s']['2'][0]:.0f} ± {d['samples_per_s']['2'][1]:.0f} | "
            f"{d['ratio']['mean']:.3f} ± {d['ratio']['std']:.3f} | {d['boundary_steps_per_rank']} | "
            f"{_ok(d['boundary_identical_on_ranks'])} |",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.arg_parser(
        __doc__,
        quick="smoke run: a few steps and shapes (not figures)",
        out="output stem (default results/overhead[_cuda_<precision>][_quick])",
    )
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads (default: all cores; quick: 1); DDP: 1 process gets them all, 2 get half each",
    )
    parser.add_argument("--accelerator", default="cpu", help="Lightning accelerator of the step part (cpu, cuda)")
    parser.add_argument("--precision", default="32-true", help="Lightning precision of the step part (bf16-mixed)")
    parser.add_argument("--repeats", type=int, help="override the repeats of the step and DDP parts")
    # internal: one DDP measurement
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=128, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ddp_worker:
        ddp_worker(args)
        return {}
    if args.report_only:
        return C.report_only(args.out or C.RESULTS / ("overhead_quick" if args.quick else "overhead"), markdown)

    git = C.require_committed_code("quick" if args.quick else "full", allow_dirty=args.allow_dirty)
    import torch

    C.quiet()
    # quick mode: 1 thread, so that a smoke run on a busy machine does not oversubscribe the cores
    threads = args.threads or (1 if args.quick else os.cpu_count() or 1)
    torch.set_num_threads(threads)
    device = "cuda" if args.accelerator in ("cuda", "gpu") else "cpu"
    preset = {k: dict(v) for k, v in (QUICK if args.quick else FULL).items()}
    if args.repeats:
        preset["step"]["repeats"] = preset["toggle"]["repeats"] = preset["ddp"]["repeats"] = args.repeats
        for row in preset["whole"].values():
            row["repeats"] = args.repeats
    gpu_note = (
        f"measured on {torch.cuda.get_device_name(0)}."
        if device == "cuda"
        else "none was available for this run (CPU only); run with `--accelerator cuda --precision bf16-mixed "
        "--parts step toggle mix` where one is."
    )
    result: dict[str, Any] = {
        "header": C.header(
            "benchmarks/overhead.py",
            mode="quick" if args.quick else "full",
            seeds=[0],
            config=preset,
            git=git,
            parts=args.parts,
            threads=threads,
            device=device,
            precision=args.precision,
            gpu_note=gpu_note,
            note="Timing results: run on a quiet machine. Quick-mode numbers are smoke tests, not figures.",
        )
    }
    started = time.monotonic()
    if "whole" in args.parts:
        print("whole per-step cost:", flush=True)
        result["whole"] = measure_whole(preset["whole"], device, args.accelerator, args.precision)
    if "step" in args.parts:
        print("step time:", flush=True)
        result["step"] = measure_steps(preset["step"], device, args.accelerator, args.precision)
    if "toggle" in args.parts:
        print("step time, toggled within one fit:", flush=True)
        result["toggle"] = measure_toggled(preset["toggle"], device, args.accelerator, args.precision)
    if "mix" in args.parts:
        print("mixing:", flush=True)
        result["mix"] = measure_mixing(preset["mix"], device, args.quick)
    if "ddp" in args.parts:
        if device != "cpu":
            print("ddp: skipped (the DDP part is measured on CPU processes)", flush=True)
        else:
            print("ddp:", flush=True)
            result["ddp"] = measure_ddp(preset["ddp"], threads)
    result["header"]["wall_s"] = round(time.monotonic() - started, 1)
    name = "overhead" if device == "cpu" else f"overhead_{device}_{args.precision}"
    out = args.out or C.RESULTS / (f"{name}_quick" if args.quick else name)
    table = markdown(result)
    C.write_results(out, result, table)
    print(table)
    print(f"wrote {out.with_suffix('.json')}, {out.with_suffix('.md')} in {result['header']['wall_s']:.0f} s")
    return result


if __name__ == "__main__":
    main()
