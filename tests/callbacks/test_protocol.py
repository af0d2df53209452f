"""A module that implements ``Enlightenable`` by hand, without the mixin, is driven by the callback."""

from __future__ import annotations

from dataclasses import replace

import lightning as L
import pytest
import torch
from helpers import random_loader, trainer_kwargs

from lit_early_phase import Enlightenable, EnlightenmentCallback, Knobs, StepRecord
from lit_early_phase.strategies import HighLossRemoval


class NoBeginStep(L.LightningModule):
    """Five of the protocol's six members written out (no ``begin_enlightenment_step``), and a training step that
    applies ``drop_fraction`` itself."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(8, 4)
        self._base = Knobs()
        self._knobs = self._base
        self._record = StepRecord()
        self.seen: list[tuple[int, float]] = []

    knobs_base = property(lambda self: self._base)
    knobs = property(lambda self: self._knobs)
    enlightenment_num_classes = property(lambda self: 4)
    enlightenment_record = property(lambda self: self._record)

    def set_knobs(self, **changes):
        self._knobs = replace(self._base, **changes)
        return self._knobs

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.seen.append((self.global_step, self.knobs.drop_fraction))
        logits = self.net(x)
        losses = torch.nn.functional.cross_entropy(logits, y, reduction="none")
        keep = len(losses) - round(self.knobs.drop_fraction * len(losses))
        self._record.correct = (logits.detach().argmax(-1) == y).sum()
        self._record.total = torch.tensor(len(y))
        return losses.sort().values[:keep].mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class HandWritten(NoBeginStep):
    """All six members of the protocol."""

    def begin_enlightenment_step(self) -> None:
        self._record = StepRecord()


def test_a_hand_written_module_satisfies_the_protocol_and_is_driven(tmp_path):
    model = HandWritten()
    assert isinstance(model, Enlightenable)
    callback = EnlightenmentCallback(strategy=HighLossRemoval(fraction=0.25), duration="3st", verbose=False)
    L.Trainer(**trainer_kwargs(tmp_path, max_epochs=1, callbacks=[callback])).fit(model, random_loader(n=48))
    assert callback.boundary_step == 3
    assert model.seen == [(0, 0.25), (1, 0.25), (2, 0.25), (3, 0.0), (4, 0.0), (5, 0.0)]


def test_a_module_missing_a_member_is_refused_before_training(tmp_path):
    partial = NoBeginStep()
    assert not isinstance(partial, Enlightenable)
    trainer = L.Trainer(**trainer_kwargs(tmp_path, max_epochs=1, callbacks=[EnlightenmentCallback()]))
    with pytest.raises(TypeError, match="NoBeginStep does not use `EnlightenmentMixin`"):
        trainer.fit(partial, random_loader(n=16))
    assert partial.seen == []  # refused in setup, before any training step
