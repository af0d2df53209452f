"""W&B runs of ``WandbLogger``: the period's metric definitions, the callback in the run config, a run summary.

Only when a ``WandbLogger`` is attached (``wandb`` is then installed: the logger refuses to start without it);
rank zero writes (``WandbLogger.experiment`` is a dummy on the other ranks). Works in ``WANDB_MODE=offline``:
the run folder is synced later with ``wandb sync``.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_only

from lit_early_phase.keys import ENLIGHTENMENT_GLOB, SUMMARY_KEYS, WANDB_STEP_KEY


def wandb_loggers(loggers: list[Any]) -> list[Any]:
    """The ``WandbLogger`` instances among ``loggers``."""
    from lightning.pytorch.loggers import WandbLogger

    return [lg for lg in loggers if isinstance(lg, WandbLogger)]


@rank_zero_only
def start_runs(loggers: list[Any], config: dict[str, Any]) -> None:
    """Define ``enlightenment/*`` against ``trainer/global_step`` and put the callback's ``config`` in each run.

    Args:
        loggers: ``trainer.loggers`` (only the ``WandbLogger`` ones are touched).
        config: the callback's arguments and the resolved strategy (stored under the run config's
            ``enlightenment`` key).
    """
    for logger in wandb_loggers(loggers):
        run = logger.experiment
        run.define_metric(WANDB_STEP_KEY)
        run.define_metric(ENLIGHTENMENT_GLOB, step_metric=WANDB_STEP_KEY, step_sync=True)
        run.config.update({"enlightenment": config}, allow_val_change=True)
        if getattr(run.settings, "mode", None) == "offline" or getattr(run.settings, "_offline", False):
            rank_zero_info(
                f"W&B runs offline: the enlightenment period's history, summary and figure are in {run.dir}; "
                f"upload them with `wandb sync {run.settings.sync_dir}`."
            )


@rank_zero_only
def write_summaries(loggers: list[Any], summary: dict[str, Any]) -> None:
    """Write ``summary`` (keys of :data:`~lit_early_phase.keys.SUMMARY_KEYS`) into each W&B run's summary."""
    unknown = set(summary) - set(SUMMARY_KEYS)
    assert not unknown, f"summary keys not in SUMMARY_KEYS: {sorted(unknown)}"
    for logger in wandb_loggers(loggers):
        logger.experiment.summary.update(summary)
