"""StreamingImageDataModule on shards written from a real image folder (Fashion-MNIST PNGs): what holds."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("litdata")
pytest.importorskip("timm")

from lit_early_phase.datamodules import (  # noqa: E402
    StreamingImageDataModule,
    find_fashion_mnist,
    read_idx,
    write_image_shards,
)

FILES = find_fashion_mnist()
pytestmark = pytest.mark.skipif(FILES is None, reason="needs Fashion-MNIST (Debian package dataset-fashion-mnist)")

N_IMAGES = 60


def make_image_folder(root: Path, n: int = N_IMAGES) -> Path:
    """``n`` Fashion-MNIST training images as PNGs in ``root/<class name>/``."""
    from PIL import Image

    images, labels = read_idx(FILES["train_images"])[:n], read_idx(FILES["train_labels"])[:n]
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("streaming")
    folder = make_image_folder(root / "folder")
    classes = write_image_shards(folder, str(root / "shards"), chunk_bytes="4KB")
    assert classes == sorted(p.name for p in folder.iterdir())
    return root / "shards"


def datamodule(shards: Path, **kwargs) -> StreamingImageDataModule:
    kw = {"batch_size": 8, "img_size": 24, "in_chans": 1, "mean": (0.5,), "std": (0.5,), "seed": 3}
    return StreamingImageDataModule(str(shards), **{**kw, **kwargs})


class Recorder(L.LightningModule):
    """A linear classifier that records a fingerprint of every training image it sees, per (epoch, batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(24 * 24, 10)
        self.seen: dict[tuple[int, int], list[float]] = {}

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.seen[(self.current_epoch, batch_idx)] = x.flatten(1).sum(1).tolist()
        return nn.functional.cross_entropy(self.net(x.flatten(1)), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    kw = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 2,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": tmp_path,
    }
    return L.Trainer(**{**kw, **kwargs})


def test_classes_beside_the_shards(shards: Path) -> None:
    dm = datamodule(shards)
    assert json.loads((shards / "classes.json").read_text())["classes"] == dm.classes
    assert dm.num_classes == len({int(v) for v in read_idx(FILES["train_labels"])[:N_IMAGES]})


def test_resume_mid_epoch_through_ckpt_path(shards: Path, tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    L.seed_everything(0)
    full = Recorder()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3, save_top_k=-1)
    trainer(tmp_path, callbacks=[ckpt]).fit(full, datamodule=datamodule(shards))
    path = tmp_path / "ckpt" / "epoch=0-step=3.ckpt"
    assert path.exists(), sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    state = torch.load(path, weights_only=True)
    print({k: v for k, v in state.items() if k not in ("state_dict", "optimizer_states")}.keys())
    print(state["loops"]["fit_loop"].get("combined_loader"))
    print(state.get("StreamingImageDataModule"))

    L.seed_everything(0)
    resumed = Recorder()
    trainer(tmp_path).fit(resumed, datamodule=datamodule(shards), ckpt_path=path)
    after = {k: v for k, v in full.seen.items() if k not in [(0, 0), (0, 1), (0, 2)]}
    print(sorted(full.seen), sorted(resumed.seen))
    assert resumed.seen == after
