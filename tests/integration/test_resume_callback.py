"""Resuming from a checkpoint saved inside the period or after it continues exactly as the uninterrupted run."""

import lightning as L
import pytest
import torch
from helpers import ScriptedModule, random_loader, trainer_kwargs
from lightning.pytorch.callbacks import ModelCheckpoint

from lit_early_phase import EnlightenmentCallback, MixupPause

EPOCHS = 8  # 10 steps an epoch; the scripted accuracy reaches 0.5 at step 51 (epoch 5)


def make_run(tmp_path, name):
    cb = EnlightenmentCallback(strategy=MixupPause(), window=1, check_every_n_steps=1, max_duration=None)
    ckpt = ModelCheckpoint(dirpath=tmp_path / name, save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    trainer = L.Trainer(callbacks=[cb, ckpt], max_epochs=EPOCHS, **trainer_kwargs(tmp_path, enable_checkpointing=True))
    return ScriptedModule(mixup_alpha=0.4), cb, trainer


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    L.seed_everything(0, verbose=False)
    model, cb, trainer = make_run(tmp, "full")
    trainer.fit(model, random_loader(n=80))
    return tmp, model, cb


@pytest.mark.parametrize("resume_epoch", [2, 6], ids=["mid-period", "after-boundary"])
def test_resume_equals_uninterrupted(tmp_path, uninterrupted, resume_epoch):
    full_dir, full_model, full_cb = uninterrupted
    assert full_cb.boundary_step == 51
    L.seed_everything(0, verbose=False)
    model, cb, trainer = make_run(tmp_path, "resumed")
    trainer.fit(model, random_loader(n=80), ckpt_path=full_dir / "full" / f"epoch={resume_epoch}.ckpt")

    assert cb.boundary_step == full_cb.boundary_step
    assert cb.boundary_epoch == full_cb.boundary_epoch
    assert cb.in_period is False and cb.reason == full_cb.reason
    assert model.knobs == full_model.knobs and model.knobs.mixup_alpha == 0.4
    # every step after the resume point applied the same α and drew the same λ
    start = (resume_epoch + 1) * 10
    full_trace = {t["step"]: t for t in full_model.trace}
    assert [t["step"] for t in model.trace] == list(range(start, EPOCHS * 10))
    for t in model.trace:
        assert t["alpha"] == full_trace[t["step"]]["alpha"]
        assert torch.equal(t["lam"], full_trace[t["step"]]["lam"])
    for p, q in zip(model.parameters(), full_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_checkpoint_holds_the_latched_state(uninterrupted):
    full_dir, _, cb = uninterrupted
    state = torch.load(full_dir / "full" / "epoch=6.ckpt", weights_only=False)["callbacks"][cb.state_key]
    assert state["in_period"] is False and state["boundary_step"] == 51
    assert state["strategy"] == {"name": "mixup_pause"}
    mid = torch.load(full_dir / "full" / "epoch=2.ckpt", weights_only=False)["callbacks"][cb.state_key]
    assert mid["in_period"] is True and mid["boundary_step"] is None and len(mid["window"]) == 1
