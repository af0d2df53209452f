"""Every read of Lightning internals in one place, each pinned by a test (``tests/callbacks/test_compat.py``).

Lightning has no public API for these three facts; when a release moves one, the test named beside it fails
instead of the suite silently logging at the wrong steps or replaying the wrong mixing draws.
"""

from __future__ import annotations

from typing import Any


def batches_started(trainer: Any) -> int:
    """Training batches started in the current epoch, counted as a checkpoint restores them.

    ``fit_loop.epoch_loop.batch_progress.current.ready``: unlike ``batch_idx`` it survives a mid-epoch resume with
    a stateful loader, so the per-step seeds it keys replay exactly. Test: ``test_batches_started_counts_batches``.
    """
    return int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)


def logging_step(trainer: Any) -> int:
    """The step Lightning's own ``self.log`` calls write at (``epoch_loop._batches_that_stepped``).

    Test: ``test_logging_step_matches_self_log``.
    """
    return int(trainer.fit_loop.epoch_loop._batches_that_stepped)


def should_write_logs(trainer: Any) -> bool:
    """Whether this step is one Lightning writes to the loggers (``log_every_n_steps``, ``fast_dev_run``).

    ``_logger_connector.should_update_logs``, as ``LearningRateMonitor`` reads it. Test:
    ``test_should_write_logs_follows_log_every_n_steps``.
    """
    return bool(trainer.loggers) and (trainer._logger_connector.should_update_logs or bool(trainer.fast_dev_run))


_GLOO_EXIT_REGISTERED = False


def destroy_gloo_group_at_exit() -> bool:
    """Destroy a Gloo process group at interpreter exit, as Lightning already does for NCCL.

    Lightning registers ``torch.distributed.destroy_process_group`` with ``atexit`` for NCCL only
    (``lightning.fabric.utilities.distributed._init_dist_connection``). Without it, Gloo's worker threads can abort
    the finalization of a ``ddp_spawn`` child on the CPU ("terminate called without an active exception",
    SIGABRT after ``fit`` has finished; torch PR 179291 describes the cause). Registered once per process, only
    while a Gloo group is initialized. Test: ``test_a_gloo_group_is_destroyed_at_exit``.

    Returns:
        Whether the handler was registered by this call.
    """
    global _GLOO_EXIT_REGISTERED
    import torch.distributed as dist

    if _GLOO_EXIT_REGISTERED or not (dist.is_available() and dist.is_initialized()):
        return False
    if dist.get_backend() != "gloo":
        return False
    import atexit

    atexit.register(destroy_process_group)
    _GLOO_EXIT_REGISTERED = True
    return True


def destroy_process_group() -> None:
    """``torch.distributed.destroy_process_group()`` if a group is still initialized (the handler at exit)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
