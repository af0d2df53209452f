"""The callback's errors and warnings, word for word in one place (tests match them)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.utilities.rank_zero import rank_zero_warn


def second_callback(callbacks: list[Any], module_name: str) -> ValueError:
    """Two ``EnlightenmentCallback`` s on one Trainer."""
    listed = " and ".join(repr(c) for c in callbacks)
    return ValueError(
        f"The Trainer has {len(callbacks)} EnlightenmentCallbacks: {listed}. They would turn the same "
        f"knobs of {module_name} (the first to end its period puts the configured knobs back, "
        f"undoing the other's strategy) and log the same `enlightenment/*` keys. Keep one "
        f"EnlightenmentCallback per Trainer: pick one strategy (remove the other callback from "
        f"`callbacks`, or the extra `--trainer.callbacks+=` on the command line)."
    )


def chance_needs_classes(module_name: str, *, has_classes: bool = False) -> ValueError:
    """``chance_adjusted=True`` on a module without a chance level."""
    why = (
        f"{module_name} says its running accuracy has no chance level at 1/K (`enlightenment_chance` is None)"
        if has_classes
        else f"{module_name} has no `num_classes`"
    )
    return ValueError(
        f"`chance_adjusted=True` needs a chance level: {why}. Pass `num_classes=` to EnlightenmentCallback to "
        "compare against 1/num_classes, or leave chance_adjusted off and choose the threshold."
    )


def warn_threshold_at_chance(threshold: float, k: int, chance: float) -> None:
    """The threshold is at or below chance (``chance``, usually ``1/k``)."""
    rank_zero_warn(
        f"EnlightenmentCallback: threshold {threshold} is at or below chance ({chance:.3f}) for {k} classes, so "
        f"the period may end at once. Set `chance_adjusted=True` (compares (acc - 1/K)/(1 - 1/K)) or a higher "
        f"threshold."
    )


def warn_guard_off() -> None:
    """The default ``0.2dur`` guard on a run of unknown length."""
    rank_zero_warn(
        "EnlightenmentCallback: the run has no known length; the default "
        "max_duration guard ('0.2dur') is off. Set `max_duration` in epochs or steps."
    )


def warn_nonfinite(count: int, step: int) -> None:
    """The module reported NaN/inf per-sample losses."""
    rank_zero_warn(
        f"EnlightenmentCallback: {count} per-sample training loss(es) were NaN or inf by step "
        f"{step}. While High-Loss Removal is in force they are removed first (counted in "
        f"`enlightenment/removed_fraction`, the loss stays finite); with removal off they make the loss NaN/inf "
        f"as in plain training. Look for non-finite inputs or overflowing logits (e.g. fp16), and consider "
        f"`Trainer(detect_anomaly=True)` to find where they start.",
        category=UserWarning,
    )


def warn_empty_period(monitor_name: str, step: int) -> None:
    """The monitor was past the threshold at the first check."""
    rank_zero_warn(
        f"EnlightenmentCallback: {monitor_name} was already past the threshold at the first check "
        f"(step {step}), so the enlightenment period was practically empty (a pretrained "
        f"model?). Consider a fixed short `duration` (e.g. '0.02dur' or '200st') instead of the metric.",
        category=UserWarning,
    )
