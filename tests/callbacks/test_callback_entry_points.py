"""The callback acts only in `fit`: validate / test / predict leave it and the knobs alone. One per Trainer."""

import lightning as L
import pytest
import torch
from helpers import ScriptedModule, random_loader, trainer_kwargs
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from lit_early_phase import EnlightenmentCallback, HighLossRemoval, ImageClassifier, MixupPause
from lit_early_phase.datamodules import MNIST5kDataModule


@pytest.fixture(scope="module")
def digits():
    """One MNIST5kDataModule for the file (reading the digits takes seconds; its setup keeps them)."""
    dm = MNIST5kDataModule(batch_size=16, train_subset=64, val_size=32)
    dm.setup("fit")
    return dm


def shipped():
    return ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.2)


def quick(tmp_path, **kw):
    """Trainer settings: the 1,000 test digits are cut to 2 batches for test and predict."""
    return trainer_kwargs(tmp_path, limit_test_batches=2, limit_predict_batches=2, **kw)


def held_out_loader(dm):
    dm.setup("test")
    return dm.test_dataloader()


def run_other_entry_points(trainer, model, dm, *, val_loader=None):
    """validate, test and predict on the shipped module; each must leave the callback and the knobs unchanged."""
    cb = next(c for c in trainer.callbacks if isinstance(c, EnlightenmentCallback))
    before, knobs = cb.state_dict(), model.knobs
    validated = trainer.validate(model, dm) if val_loader is None else trainer.validate(model, val_loader)
    assert cb.state_dict() == before and model.knobs == knobs, "validate changed the callback or the knobs"
    trainer.test(model, dm)
    assert cb.state_dict() == before and model.knobs == knobs, "test changed the callback or the knobs"
    predictions = trainer.predict(model, dataloaders=held_out_loader(dm))
    assert len(predictions) > 0 and predictions[0].shape[-1] == 10
    assert cb.state_dict() == before and model.knobs == knobs, "predict changed the callback or the knobs"
    return validated[0]


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"monitor": "val/acc"}, {"monitor": "val/loss", "mode": "min", "threshold": 100.0}],
    ids=["default", "val_acc", "val_loss_reached"],
)
def test_validate_test_predict_before_fit_neither_fail_nor_change_state(tmp_path, digits, kwargs):
    """Before the fix `validate()` with a validation monitor raised "`0.2dur` is a share of the run, but the run
    has no known length", and a monitor already past its threshold (val/loss <= 100) ended the period."""
    model, dm = shipped(), digits
    cb = EnlightenmentCallback(**kwargs)
    trainer = L.Trainer(callbacks=[cb], max_steps=4, **quick(tmp_path))
    run_other_entry_points(trainer, model, dm)
    assert cb.in_period and cb.boundary_step is None and cb.num_checks == 0
    assert model.knobs == model.knobs_base  # nothing entered or exited outside fit


def test_validate_after_a_fit_that_left_the_period_open_does_not_end_it(tmp_path, digits):
    """The shipped module after 4 steps is far from 95 % validation accuracy; a `validate()` on samples labelled
    with its own predictions gives 1.0, which ended the period outside training before the fix."""
    model, dm = shipped(), digits
    cb = EnlightenmentCallback(strategy=MixupPause(), monitor="val/acc", threshold=0.95, max_duration=None)
    trainer = L.Trainer(callbacks=[cb], max_steps=4, max_epochs=1, **quick(tmp_path))
    trainer.fit(model, dm)
    assert cb.in_period and cb.num_checks == 2 and cb.last_value < 0.95  # at the validation and the epoch end
    assert model.knobs.mixup_alpha == 0.0  # the pause is in force

    x = next(iter(DataLoader(held_out_loader(dm).dataset, batch_size=48)))[0]
    with torch.no_grad():
        own_labels = model.eval()(x).argmax(-1)
    perfect = DataLoader(TensorDataset(x, own_labels), batch_size=16)
    validated = run_other_entry_points(trainer, model, dm, val_loader=perfect)
    assert validated["val/acc"] == 1.0  # the validate() really produced a value past the threshold
    assert cb.in_period and cb.boundary_step is None and model.knobs.mixup_alpha == 0.0


def test_validate_with_exact_values_on_a_scripted_module(tmp_path):
    """val/acc is 0.2 in the fit's epoch and 0.9 afterwards: the fit must not end the period, validate() must not."""
    cb = EnlightenmentCallback(
        strategy=HighLossRemoval(fraction=0.25), monitor="val/acc", threshold=0.55, max_duration=None
    )
    model = ScriptedModule(val_schedule=lambda epoch: 0.2 if epoch == 0 else 0.9)
    trainer = L.Trainer(callbacks=[cb], max_epochs=1, **trainer_kwargs(tmp_path))
    trainer.validate(model, random_loader(n=16))  # before fit: no error, no check
    assert cb.num_checks == 0 and cb.last_value is None
    trainer.fit(model, random_loader(n=80), val_dataloaders=random_loader(n=16))
    assert cb.in_period and cb.last_value == pytest.approx(0.2) and cb.num_checks == 2
    before = cb.state_dict()
    trainer.validate(model, random_loader(n=16))
    assert trainer.callback_metrics["val/acc"] == pytest.approx(0.9)
    assert cb.state_dict() == before and model.knobs.drop_fraction == 0.25


def test_validate_from_a_checkpoint_keeps_the_callback_state(tmp_path):
    """`validate(ckpt_path=...)` restores the weights; the callback keeps its own state (it does not act there)."""
    cb = EnlightenmentCallback(strategy=HighLossRemoval(fraction=0.25), duration="3st")
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
    model = ScriptedModule()
    trainer = L.Trainer(callbacks=[cb, ckpt], max_epochs=1, **trainer_kwargs(tmp_path, enable_checkpointing=True))
    trainer.fit(model, random_loader(n=48))
    assert cb.boundary_step == 3
    saved_in_period = tmp_path / "ckpt" / "epoch=0-step=2.ckpt"
    assert torch.load(saved_in_period, weights_only=True)["callbacks"][cb.state_key]["in_period"] is True
    before = cb.state_dict()
    trainer.validate(model, random_loader(n=16), ckpt_path=str(saved_in_period))
    assert cb.state_dict() == before and not cb.in_period and model.knobs.drop_fraction == 0.0


def test_two_callbacks_on_one_trainer_are_refused_in_setup(tmp_path, digits):
    """Before the fix the second's end put the configured knobs back, silently undoing the first's strategy."""
    model, dm = shipped(), digits
    first = EnlightenmentCallback(strategy=MixupPause())
    second = EnlightenmentCallback(strategy=HighLossRemoval(fraction=0.2), duration="5st")
    trainer = L.Trainer(callbacks=[first, second], max_steps=8, **trainer_kwargs(tmp_path))
    with pytest.raises(ValueError) as err:
        trainer.fit(model, dm)
    message = str(err.value)
    assert "2 EnlightenmentCallbacks" in message
    assert "EnlightenmentCallback(strategy=MixupPause(), monitor=None" in message
    assert "EnlightenmentCallback(strategy=HighLossRemoval(fraction=0.2, count=None)" in message
    assert "duration='5st'" in message and "Keep one EnlightenmentCallback per Trainer" in message
    assert trainer.global_step == 0 and model.knobs == model.knobs_base
