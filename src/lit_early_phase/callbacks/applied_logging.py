"""What the callback writes to the loggers: the keys, and writing them only on the steps Lightning writes."""

from __future__ import annotations

from typing import Any

from lit_early_phase import _compat
from lit_early_phase.knobs import StepRecord

PREFIX = "enlightenment/"
RUNNING_ACC = PREFIX + "running_acc"


def log_applied(trainer: Any, record: StepRecord, *, in_period: bool, monitor: float | None) -> None:
    """Write what a training step applied to every logger, on the steps Lightning writes (else nothing).

    Straight to the loggers, as ``LearningRateMonitor`` does: ``pl_module.log`` would cost about 1 ms per value
    per step (Lightning's result bookkeeping), several per cent of a small model's step; this costs nothing on
    the steps that are not written (the values are not even read there, so a device tensor costs no host sync).

    Args:
        trainer: the Trainer.
        record: the module's record of the step.
        in_period: whether the step ran inside the enlightenment period.
        monitor: the monitor's value if it was checked at this step.
    """
    if not _compat.should_write_logs(trainer):
        return
    values = {
        PREFIX + "phase": float(in_period),
        PREFIX + "alpha": float(record.alpha),
        PREFIX + "lambda_mean": float(record.lambda_mean),  # one host sync, only on logged steps
        PREFIX + "mixed_fraction": float(record.mixed_fraction),
        PREFIX + "removed_fraction": float(record.removed_fraction),
    }
    if monitor is not None:
        values[PREFIX + "monitor"] = monitor
    for logger in trainer.loggers:
        logger.log_metrics(values, step=_compat.logging_step(trainer))


def log_boundary(trainer: Any, *, step: int, epoch: int) -> None:
    """Write where the period ended (``boundary_step``, ``boundary_epoch``) once to every logger."""
    for logger in trainer.loggers:
        logger.log_metrics(
            {PREFIX + "boundary_step": float(step), PREFIX + "boundary_epoch": float(epoch)}, step=trainer.global_step
        )
