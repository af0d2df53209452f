"""Resume of ObjectDetector on the real tree-crown tiles: a weights-only checkpoint resumes exactly."""

import importlib.util
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import trainer_kwargs
from lightning.pytorch.callbacks import ModelCheckpoint

from lit_early_phase import EnlightenmentCallback, ObjectDetector
from lit_early_phase.datamodules import TreeCrownDataModule
from lit_early_phase.strategies import MixupPause

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.skipif(
        importlib.util.find_spec("deepforest") is None,
        reason="the tree-crown tiles come from deepforest's data: `pip install --no-deps deepforest==2.1.0`",
    ),
]
SMALL = {"min_size": 64, "max_size": 64}  # the 400 px tiles resized to 64 by torchvision's transform: fast steps


def _data(**kwargs) -> TreeCrownDataModule:
    return TreeCrownDataModule(batch_size=4, augment=False, **kwargs)


def _fit(tmp_path: Path, max_steps: int, ckpt_path=None, every=None) -> ObjectDetector:
    L.seed_everything(3)
    model = ObjectDetector(mixup_alpha=0.5, **SMALL)
    cb = EnlightenmentCallback(strategy=MixupPause(), duration="3st")
    callbacks = [cb]
    if every:
        callbacks.append(ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=every, save_top_k=-1))
    trainer = L.Trainer(
        max_steps=max_steps,
        callbacks=callbacks,
        **trainer_kwargs(tmp_path, enable_checkpointing=bool(every)),
    )
    trainer.fit(model, _data(), ckpt_path=ckpt_path)
    return model


def test_resume_from_a_weights_only_checkpoint_is_exact(tmp_path):
    # 4 steps: saved at step 2, inside the period (3 steps); the resumed run crosses the boundary
    straight = _fit(tmp_path / "a", max_steps=4, every=2)
    ckpt = tmp_path / "a" / "ckpt" / "epoch=0-step=2.ckpt"
    assert "lit_early_phase/rng_states" in torch.load(ckpt, weights_only=True)  # Lightning's default loading
    resumed = _fit(tmp_path / "b", max_steps=4, ckpt_path=ckpt)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
