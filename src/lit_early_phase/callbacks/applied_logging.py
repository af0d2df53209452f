"""What the callback writes to the loggers, only on the steps Lightning writes (keys from ``lit_early_phase.keys``)."""

from __future__ import annotations

from typing import Any

from lit_early_phase import _compat
from lit_early_phase.keys import APPLIED_KEYS, BOUNDARY_KEYS, MONITOR_KEY
from lit_early_phase.knobs import StepRecord


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
        The values written (keys of ``APPLIED_KEYS``, and ``MONITOR_KEY`` at a check), or ``None`` on a
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
