"""StreamingImageDataModule on shards written from a real image folder (Fashion-MNIST PNGs): what holds."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import make_image_folder
from torch import nn

pytest.importorskip("litdata")
pytest.importorskip("timm")

from lit_early_phase.datamodules import (
    StreamingImageDataModule,
    find_fashion_mnist,
    read_idx,
    write_image_shards,
)

FILES = find_fashion_mnist()
pytestmark = pytest.mark.skipif(FILES is None, reason="needs Fashion-MNIST (Debian package dataset-fashion-mnist)")

N_IMAGES = 60


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("streaming")
    folder = make_image_folder(root / "folder", N_IMAGES)
    classes = write_image_shards(folder, str(root / "shards"), chunk_bytes="4KB")
    assert classes == sorted(p.name for p in folder.iterdir())
    return root / "shards"


def datamodule(shards: Path, **kwargs) -> StreamingImageDataModule:
    kw = {"batch_size": 8, "image_size": 24, "in_chans": 1, "mean": (0.5,), "std": (0.5,), "seed": 3}
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


def fingerprints(loader) -> list[list[bytes]]:
    """One epoch of ``loader``: per batch, each image's bytes (distinct for distinct Fashion-MNIST images)."""
    return [[image.numpy().tobytes() for image in x] for x, _ in loader]


def rank_loader(shards: Path, monkeypatch: pytest.MonkeyPatch, rank: int, world_size: int, **kwargs):
    """The training loader of ``rank`` out of ``world_size``, as LitData sees it under DDP (its env detection)."""
    from litdata.utilities.env import _DistributedEnv

    env = _DistributedEnv(world_size=world_size, global_rank=rank, num_nodes=1)
    monkeypatch.setattr(_DistributedEnv, "detect", classmethod(lambda cls: env))
    dm = datamodule(shards, augment=False, **kwargs)
    dm.setup("fit")
    return dm.train_dataloader()


def test_classes_beside_the_shards(shards: Path) -> None:
    dm = datamodule(shards)
    assert json.loads((shards / "classes.json").read_text())["classes"] == list(dm.classes)
    assert dm.num_classes == len({int(v) for v in read_idx(FILES["train_labels"])[:N_IMAGES]}) == len(dm.classes)


def test_missing_classes_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="write_image_shards"):
        _ = datamodule(tmp_path).num_classes


def test_cli_module_writes_shards(tmp_path: Path) -> None:
    from lit_early_phase.datamodules.vision.shards import main

    folder = make_image_folder(tmp_path / "folder", n=12)
    assert main([str(folder), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "index.json").is_file()
    assert json.loads((tmp_path / "out" / "classes.json").read_text())["classes"] == sorted(
        p.name for p in folder.iterdir()
    )


@pytest.mark.parametrize(("drop_last", "batches", "samples"), [(False, 8, N_IMAGES), (True, 7, 56)])
def test_samples_per_epoch_one_rank(shards: Path, drop_last: bool, batches: int, samples: int) -> None:
    dm = datamodule(shards, augment=False, drop_last=drop_last)
    dm.setup("fit")
    loader = dm.train_dataloader()
    epoch = fingerprints(loader)
    assert len(loader) == len(epoch) == batches
    assert sum(len(b) for b in epoch) == samples
    assert len({x for b in epoch for x in b}) == samples  # no sample twice
    second = fingerprints(loader)  # the next epoch: a new order, as many samples
    assert sum(len(b) for b in second) == samples and second != epoch


@pytest.mark.parametrize(("batch_size", "batches"), [(8, 3), (7, 4)])
def test_disjoint_samples_per_rank(
    shards: Path, monkeypatch: pytest.MonkeyPatch, batch_size: int, batches: int
) -> None:
    loaders = [rank_loader(shards, monkeypatch, rank, 2, batch_size=batch_size) for rank in (0, 1)]
    seen = [[x for batch in fingerprints(loader) for x in batch] for loader in loaders]
    # every rank the same number of whole batches: floor(floor(60 / 2) / batch_size); the tail is dropped
    assert [len(loader) for loader in loaders] == [batches, batches]
    assert [len(s) for s in seen] == [batches * batch_size] * 2
    assert not set(seen[0]) & set(seen[1])  # disjoint
    everything = {x for b in fingerprints(rank_loader(shards, monkeypatch, 0, 1, shuffle=False)) for x in b}
    assert len(everything) == N_IMAGES
    union = set(seen[0]) | set(seen[1])
    assert len(union) == 2 * batches * batch_size and union <= everything  # the epoch: both ranks' samples


def epoch_images(shards: Path, **kwargs) -> list[dict[int, bytes]]:
    """Two epochs of augmented training images, by the sample's label-and-position-free identity (its index)."""
    dm = datamodule(shards, shuffle=False, **kwargs)
    dm.setup("fit")
    loader = dm.train_dataloader()
    return [dict(enumerate(x.numpy().tobytes() for xb, _ in loader for x in xb)) for _ in range(2)]


def test_augmentation_keyed_by_epoch(shards: Path) -> None:
    first, second = epoch_images(shards)
    again = epoch_images(shards)
    assert again == [first, second]  # a fresh loader draws the same per (seed, epoch, index)
    assert first.keys() == second.keys()
    differs = sum(first[i] != second[i] for i in first)
    assert differs == len(first)  # the second epoch draws a different crop for every image
    other_seed = epoch_images(shards, seed=4)
    assert other_seed[0] != first


@pytest.mark.slow  # ~1 min: worker processes started by spawn under pytest
def test_augmentation_does_not_depend_on_workers(shards: Path) -> None:
    def two_epochs(num_workers: int) -> list[list[bytes]]:
        dm = datamodule(shards, num_workers=num_workers)
        dm.setup("fit")
        loader = dm.train_dataloader()
        return [sorted(x.numpy().tobytes() for xb, _ in loader for x in xb) for _ in range(2)]

    in_process = two_epochs(0)
    assert two_epochs(2) == in_process  # the order differs (LitData splits the shards by worker), the draws do not
    assert in_process[0] != in_process[1]


def test_resume_mid_epoch_through_ckpt_path(shards: Path, tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    L.seed_everything(0)
    full = Recorder()
    mid = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3, save_top_k=-1)
    ends = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, filename="end-{epoch}-{step}")
    trainer(tmp_path, callbacks=[mid, ends]).fit(full, datamodule=datamodule(shards))
    state = torch.load(tmp_path / "ckpt" / "epoch=0-step=3.ckpt", weights_only=True)  # plain values only
    assert state["StreamingImageDataModule"]["train_loader"]["num_samples_yielded"] == 3 * 8
    assert len(full.seen) == 16  # 2 epochs of 8 batches (60 images, batch 8)

    # mid-epoch in epoch 0 (3 and 6 batches in), at the end of epoch 0, mid-epoch in epoch 1 (1 batch in)
    for name, done in [("epoch=0-step=3", 3), ("epoch=0-step=6", 6), ("end-epoch=0-step=8", 8), ("epoch=1-step=9", 9)]:
        L.seed_everything(0)
        resumed = Recorder()
        trainer(tmp_path).fit(resumed, datamodule=datamodule(shards), ckpt_path=tmp_path / "ckpt" / f"{name}.ckpt")
        # the rest: the same images, augmented the same way, in the same batches as the uninterrupted run
        assert sorted(resumed.seen) == sorted(full.seen)[done:], name
        assert resumed.seen == {k: v for k, v in full.seen.items() if k in resumed.seen}, name


class StepsRecorder(Recorder):
    """A module whose optimizer setup asks for the run's length, as a step-wise scheduler does."""

    def configure_optimizers(self):
        assert self.trainer.estimated_stepping_batches > 0  # builds the training loader before the restore
        return super().configure_optimizers()


@pytest.mark.parametrize(("module", "restored_by_lightning"), [(Recorder, True), (StepsRecorder, False)])
def test_who_restores_the_loader(
    shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: type, restored_by_lightning: bool
) -> None:
    """LitData issue #775, checked: Lightning restores the loader unless the loader was built before the restore.

    Lightning's fit loop saves the ``StreamingDataLoader``'s state (``loops.fit_loop.state_dict.combined_loader``)
    and loads it into the loader it builds on restart; a loader built earlier (``estimated_stepping_batches`` in
    ``configure_optimizers``) is kept and never gets it, and the epoch restarts. The DataModule's own copy of the
    state covers both; here it is switched off to see what Lightning does alone.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    full = module()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3, save_top_k=-1)
    trainer(tmp_path, callbacks=[ckpt]).fit(full, datamodule=datamodule(shards))
    path = tmp_path / "ckpt" / "epoch=0-step=3.ckpt"
    assert torch.load(path, weights_only=True)["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    monkeypatch.setattr(StreamingImageDataModule, "load_state_dict", lambda self, state: None)
    resumed = module()
    trainer(tmp_path, max_epochs=1).fit(resumed, datamodule=datamodule(shards), ckpt_path=path)
    assert (resumed.seen[(0, 3)] == full.seen[(0, 3)]) is restored_by_lightning
    assert (resumed.seen[(0, 3)] == full.seen[(0, 0)]) is not restored_by_lightning  # restarted: batch 0 again
    monkeypatch.undo()
    exact = module()
    trainer(tmp_path).fit(exact, datamodule=datamodule(shards), ckpt_path=path)  # with the DataModule's state
    assert exact.seen == {k: v for k, v in full.seen.items() if k in exact.seen} and (0, 3) in exact.seen


def test_image_classifier_trains_from_shards_through_the_cli(shards: Path, tmp_path: Path) -> None:
    from lit_early_phase.cli import build_cli

    cli = build_cli(
        [
            "fit",
            "--model=ImageClassifier",
            "--model.backbone=test_resnet",
            "--model.mixup_alpha=0.4",
            "--data=StreamingImageDataModule",
            f"--data.train_dir={shards}",
            f"--data.val_dir={shards}",
            "--data.batch_size=8",
            "--data.image_size=32",
            "--data.in_chans=1",
            "--data.auto_augment=rand-m9-mstd0.5",
            "--data.re_prob=0.25",
            "--trainer.max_steps=2",
            "--trainer.limit_val_batches=1",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    assert cli.trainer.global_step == 2
    assert cli.model.hparams.num_classes == cli.datamodule.num_classes == 10  # linked from classes.json
    assert cli.model.hparams.in_chans == 1


def test_train_and_val_folders_give_two_splits_labelled_alike(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "data" / "train", n=20)
    make_image_folder(tmp_path / "data" / "val", n=6)
    classes = write_image_shards(tmp_path / "data", str(tmp_path / "shards"))
    for split in ("train", "val"):
        assert json.loads((tmp_path / "shards" / split / "classes.json").read_text())["classes"] == classes
    dm = datamodule(tmp_path / "shards" / "train", val_dir=str(tmp_path / "shards" / "val"))
    dm.setup("fit")
    labels = sorted(int(y) for _, yb in dm.val_dataloader() for y in yb)
    names = sorted(f"class_{v}" for v in read_idx(FILES["train_labels"])[:6])
    assert [classes[i] for i in labels] == names  # val images carry the training classes' labels


def test_a_broken_image_fails_while_writing(tmp_path: Path) -> None:
    from lit_early_phase.datamodules import ImageFileError

    folder = make_image_folder(tmp_path / "folder", n=4)
    bad = next(folder.iterdir()) / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises((ImageFileError, RuntimeError), match=r"broken\.png"):
        write_image_shards(folder, str(tmp_path / "out"))


class RankRecorder(Recorder):
    """Writes the fingerprints of the images this rank trained on to ``<out>/rank<r>.json`` (for ``ddp_spawn``)."""

    def __init__(self, out: str) -> None:
        super().__init__()
        self.out = out

    def on_train_end(self) -> None:
        seen = {f"{e},{b}": v for (e, b), v in self.seen.items()}
        Path(self.out, f"rank{self.global_rank}.json").write_text(json.dumps(seen))


def test_disjoint_samples_under_real_ddp_spawn(shards: Path, tmp_path: Path) -> None:
    module = RankRecorder(str(tmp_path))
    trainer(tmp_path, strategy="ddp_spawn", devices=2, max_epochs=1).fit(
        module, datamodule=datamodule(shards, augment=False)
    )
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert sorted(seen[0]) == sorted(seen[1]) == [f"0,{b}" for b in range(3)]  # 3 batches of 8 on each rank
    images = [{round(v, 3) for batch in s.values() for v in batch} for s in seen]
    assert len(images[0]) == len(images[1]) == 24
    assert not images[0] & images[1]
