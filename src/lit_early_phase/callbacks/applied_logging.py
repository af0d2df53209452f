"""What the callback writes to the loggers: the keys, and writing them only on the steps Lightning writes."""

from __future__ import annotations

from typing import Any

from lit_early_phase import _compat
from lit_early_phase.knobs import StepRecord

PREFIX = "enlightenment/"
#: The logged key of the default monitor, the running training accuracy.
RUNNING_ACC = PREFIX + "running_acc"
#: what every written training step carries: the phase and what the module applied
APPLIED_KEYS: tuple[str, ...] = tuple(
    PREFIX + k for k in ("phase", "alpha", "lambda_mean", "mixed_fraction", "removed_fraction")
)
#: the monitor's value as compared with the threshold, at the checks that fall on written steps
MONITOR_KEY = PREFIX + "monitor"
#: written once, at the boundary
BOUNDARY_KEYS: tuple[str, ...] = (PREFIX + "boundary_step", PREFIX + "boundary_epoch")
#: every key the callback writes to the loggers (the W&B dashboard's panels are built from this one list)
LOGGED_KEYS: tuple[str, ...] = (*APPLIED_KEYS, MONITOR_KEY, *BOUNDARY_KEYS)


def log_applied(trainer: Any, record: StepRecord, *, in_period: bool, monitor: float | None) -> dict[str, float] | None:
    """Write what a training step applied to every logger, on the steps Lightning writes (else nothing).

    Straight to the loggers, as ``LearningRateMonitor`` does: ``pl_module.log`` would cost about 1 ms per value
    per step (Lightning's result bookkeeping), several per cent of a small model's step; this costs nothing on
    the steps that are not written (the values are not even read there, so a device tensor costs no host sync).

    Args:
        trainer: the Trainer.
        record: the module's record of the step.
        in_period: whether the step ran inside the enlightenment period.
        monitor: the monitor's value if it was checked at this step.

    Returns:
        The values written (keys of :data:`APPLIED_KEYS`, and :data:`MONITOR_KEY` at a check), or ``None`` on a
        step that is not written.
    """
    if not _compat.should_write_logs(trainer):
        return None
    applied = (in_period, record.alpha, record.lambda_mean, record.mixed_fraction, record.removed_fraction)
    # float() of lambda_mean is one host sync, only on written steps
    values = {key: float(v) for key, v in zip(APPLIED_KEYS, applied, strict=True)}
    if monitor is not None:
        values[MONITOR_KEY] = monitor
    for logger in trainer.loggers:
        logger.log_metrics(values, step=_compat.logging_step(trainer))
    return values


def log_boundary(trainer: Any, *, step: int, epoch: int) -> None:
    """Write where the period ended (``boundary_step``, ``boundary_epoch``) once to every logger."""
    for logger in trainer.loggers:
        logger.log_metrics(dict(zip(BOUNDARY_KEYS, (float(step), float(epoch)), strict=True)), step=trainer.global_step)
