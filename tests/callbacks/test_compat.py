"""Each private Lightning read in ``lit_early_phase._compat`` checked against what Lightning does in public.

When a Lightning release moves one of these attributes, the matching test fails here (by its name in
``_compat.py``'s docstrings) instead of the callback logging at the wrong steps or the mixin replaying the wrong
mixing draws.
"""

from __future__ import annotations

import lightning as L
from helpers import ScriptedModule, random_loader, trainer_kwargs
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger

from lit_early_phase import EnlightenmentCallback, _compat
from lit_early_phase.strategies import HighLossRemoval


class RecordingLogger(Logger):
    """Keeps every ``log_metrics`` call as ``(step, keys)``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, set[str]]] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.calls.append((step, set(metrics)))


class Probe(Callback):
    def __init__(self) -> None:
        self.started: list[int] = []
        self.writes: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.started.append(_compat.batches_started(trainer))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.writes.append(_compat.should_write_logs(trainer))


class LoggingModule(ScriptedModule):
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("train/x", float(self.trainer.global_step), on_step=True, on_epoch=False)
        return loss


def test_batches_started_counts_batches(tmp_path):
    probe = Probe()
    trainer = L.Trainer(**trainer_kwargs(tmp_path, max_epochs=2, callbacks=[probe]))
    trainer.fit(ScriptedModule(), random_loader(n=24, batch_size=8))
    assert probe.started == [1, 2, 3, 1, 2, 3]  # per epoch, counted when the batch starts


def test_logging_step_matches_self_log(tmp_path):
    # the callback's values land on exactly the steps where Lightning wrote the module's own `self.log` values
    logger = RecordingLogger()
    callback = EnlightenmentCallback(strategy=HighLossRemoval(), duration="3st", verbose=False)
    trainer = L.Trainer(
        **trainer_kwargs(tmp_path, max_epochs=1, logger=logger, log_every_n_steps=2, callbacks=[callback])
    )
    trainer.fit(LoggingModule(), random_loader(n=64, batch_size=8))
    own = sorted(step for step, keys in logger.calls if "train/x" in keys)
    ours = sorted(step for step, keys in logger.calls if "enlightenment/phase" in keys)
    assert own == [1, 3, 5, 7] and ours == own


def test_should_write_logs_follows_log_every_n_steps(tmp_path):
    probe = Probe()
    trainer = L.Trainer(
        **trainer_kwargs(tmp_path, max_epochs=1, logger=RecordingLogger(), log_every_n_steps=3, callbacks=[probe])
    )
    trainer.fit(ScriptedModule(), random_loader(n=64, batch_size=8))
    assert [i for i, w in enumerate(probe.writes) if w] == [2, 5]  # batches 3 and 6 of 8


def test_a_gloo_group_is_destroyed_at_exit(tmp_path, monkeypatch):
    import atexit

    import torch.distributed as dist

    handlers = []
    monkeypatch.setattr(atexit, "register", handlers.append)
    monkeypatch.setattr(_compat, "_GLOO_EXIT_REGISTERED", False)
    assert _compat.destroy_gloo_group_at_exit() is False and handlers == []  # no group: nothing to destroy
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert _compat.destroy_gloo_group_at_exit() is True
        assert _compat.destroy_gloo_group_at_exit() is False  # once per process
        assert len(handlers) == 1
        handlers[0]()  # what atexit runs
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
