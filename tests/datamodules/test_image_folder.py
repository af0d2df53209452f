"""ImageFolderDataModule on a real image folder: Fashion-MNIST PNGs (Debian package) and foolbox's ImageNet JPEGs."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lit_early_phase.datamodules import (
    ImageFileError,
    ImageFolderDataModule,
    SampleKey,
    find_fashion_mnist,
    list_image_folder,
    read_idx,
)
from lit_early_phase.datamodules.vision.folder import split_by_class

FASHION = find_fashion_mnist()
pytestmark = pytest.mark.skipif(FASHION is None, reason="Fashion-MNIST: `apt-get install dataset-fashion-mnist`")

#: Fashion-MNIST class index -> folder name; each folder gets PER_CLASS images
CLASSES = {0: "tshirt", 1: "trouser", 7: "sneaker"}
PER_CLASS = 8


def foolbox_jpegs() -> list[Path]:
    """foolbox's 20 real ImageNet JPEGs (varied sizes), or none without foolbox."""
    spec = importlib.util.find_spec("foolbox")
    if spec is None:
        return []
    return sorted((Path(spec.submodule_search_locations[0]) / "data").glob("imagenet_*.jpg"))


def write_class_folders(root: Path, *, per_class: int = PER_CLASS) -> None:
    """Fashion-MNIST images as PNG/JPEG files of every colour mode, one class folder per label, + ImageNet JPEGs.

    In each class: grayscale PNGs, one palette PNG, one RGBA PNG (half transparent) and one CMYK JPEG.
    """
    images, labels = read_idx(FASHION["test_images"]), read_idx(FASHION["test_labels"])
    for label, name in CLASSES.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i, index in enumerate(np.flatnonzero(labels == label)[:per_class]):
            gray = Image.fromarray(images[index])
            if i == 0:
                gray.convert("P").save(folder / f"{i:02d}_palette.png")
            elif i == 1:
                rgba = gray.convert("RGBA")
                rgba.putalpha(
                    Image.fromarray(np.where(np.arange(28) < 14, 0, 255).astype(np.uint8)[None].repeat(28, 0))
                )
                rgba.save(folder / f"{i:02d}_rgba.png")
            elif i == 2:
                gray.convert("CMYK").save(folder / f"{i:02d}_cmyk.jpg")
            else:
                gray.save(folder / f"{i:02d}_gray.png")
    jpegs = foolbox_jpegs()
    if jpegs:
        (root / "imagenet").mkdir()
        for path in jpegs[:per_class]:
            shutil.copy(path, root / "imagenet" / path.name)
    (root / "tshirt" / "notes.txt").write_text("not an image, and skipped: its ending is not an image's")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    write_class_folders(root)
    return root


def make(root: Path, **kwargs) -> ImageFolderDataModule:
    defaults = {"image_size": 24, "batch_size": 4, "val_fraction": 0.25, "auto_augment": "rand-m9-mstd0.5"}
    return ImageFolderDataModule(root, **{**defaults, **kwargs})


def expected_classes() -> tuple[str, ...]:
    return tuple(sorted([*CLASSES.values(), *(["imagenet"] if foolbox_jpegs() else [])]))


def test_classes_and_split(folder):
    dm = make(folder)
    assert dm.classes == expected_classes() and dm.num_classes == len(expected_classes()) and dm.in_chans == 3
    dm.setup("fit")
    n_classes = len(expected_classes())
    # round(0.25 * 8) = 2 of each class's 8 files held out; notes.txt skipped
    assert (len(dm.train_set), len(dm.val_set), dm.test_set) == (6 * n_classes, 2 * n_classes, None)
    assert sorted(label for _, label in dm.val_set.samples) == sorted(list(range(n_classes)) * 2)
    train_paths = {p for p, _ in dm.train_set.samples}
    assert not train_paths & {p for p, _ in dm.val_set.samples}
    again = make(folder)
    again.setup("fit")
    assert again.val_set.samples == dm.val_set.samples  # the seeded split is the same on every rank / resume
    other = make(folder, split_seed=1)
    other.setup("fit")
    assert other.val_set.samples != dm.val_set.samples
    none = make(folder, val_fraction=0.0)
    none.setup("fit")
    assert none.val_set is None and len(none.train_set) == PER_CLASS * n_classes and none.val_dataloader() == []


def test_split_by_class_keeps_one_training_sample_per_class():
    samples = [("a", 0), ("b", 1), ("c", 1), ("d", 1)]
    train, val = split_by_class(samples, fraction=0.9, seed=0)
    assert sorted(label for _, label in train) == [0, 1] and len(val) == 2


def test_batches_every_colour_mode_in_rgb_and_grayscale(folder):
    for in_chans in (3, 1):
        dm = make(folder, in_chans=in_chans, re_prob=0.5, model_name="resnet18")
        dm.setup("fit")
        x, y = next(iter(dm.train_dataloader()))
        assert x.shape == (4, in_chans, 24, 24) and x.dtype == torch.float32 and y.dtype == torch.int64
        xv, _ = next(iter(dm.val_dataloader()))
        assert xv.shape == (4, in_chans, 24, 24)
    rgba = next(p for p, _ in dm.train_set.samples + dm.val_set.samples if p.endswith("_rgba.png"))
    plain = make(folder, augment=False, mean=(0.0,), std=(1.0,), in_chans=1, crop_pct=1.0, image_size=28)
    x = plain.transforms.eval()(Image.open(rgba).convert("RGBA").convert("L"))
    from lit_early_phase.datamodules import load_rgb

    loaded = plain.transforms.eval()(load_rgb(rgba, in_chans=1))
    assert torch.all(loaded[:, :, :14] == 1.0)  # the transparent half is white, whatever the stored colour
    assert not torch.equal(loaded, x)


def test_keyed_augmentation_same_key_same_image_new_epoch_new_image(folder):
    dm = make(folder, re_prob=0.5)
    dm.setup("fit")
    a = dm.train_set[SampleKey(index=3, epoch=1, seed=0)][0]
    assert torch.equal(a, dm.train_set[SampleKey(index=3, epoch=1, seed=0)][0])
    assert not torch.equal(a, dm.train_set[SampleKey(index=3, epoch=2, seed=0)][0])
    assert not torch.equal(a, dm.train_set[SampleKey(index=3, epoch=1, seed=1)][0])
    assert torch.equal(dm.train_set[3][0], dm.train_set[3][0])  # an int index: the evaluation pipeline


def _batches(loader, n=None):
    out = []
    for i, (x, y) in enumerate(loader):
        if n is not None and i == n:
            break
        out.append((x, y))
    return out


def test_mid_epoch_resume_is_exact(folder):
    dm = make(folder, seed=3, re_prob=0.25)
    dm.setup("fit")
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(1)
    full = _batches(loader)
    resumed_dm = make(folder, seed=3, re_prob=0.25)
    resumed_dm.setup("fit")
    first = resumed_dm.train_dataloader()
    first.sampler.set_epoch(1)
    iterator = iter(first)
    head = [next(iterator) for _ in range(2)]
    state = resumed_dm.state_dict()
    assert state["train_loader"]["batches"] == 2 and state["train_loader"]["epoch"] == 1
    fresh = make(folder, seed=3, re_prob=0.25)
    fresh.load_state_dict(state)
    fresh.setup("fit")
    tail = _batches(fresh.train_dataloader())
    assert len(head) + len(tail) == len(full)
    for (x, y), (xf, yf) in zip(head + tail, full, strict=True):
        assert torch.equal(x, xf) and torch.equal(y, yf)


def test_train_val_test_folders(tmp_path, folder):
    for split in ("train", "val", "test"):
        for name in CLASSES.values():
            shutil.copytree(folder / name, tmp_path / split / name)
    shutil.rmtree(tmp_path / "val" / "sneaker")  # a class missing from val/ is fine
    dm = make(tmp_path)
    assert dm.classes == tuple(sorted(CLASSES.values()))
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (24, 16, 24)
    x, _ = next(iter(dm.test_dataloader()))
    assert x.shape == (4, 3, 24, 24)
    only_train = tmp_path / "only_train"
    shutil.copytree(tmp_path / "train", only_train / "train")
    dm = make(only_train)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set)) == (18, 6)  # no val/: the seeded split of train/
    with pytest.raises(RuntimeError, match="has no test/ folder"):
        dm.test_dataloader()


def test_bad_folders_are_named_before_training(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match=r"missing' does not exist.*data_dir/<class>/<image>"):
        make(tmp_path / "missing").setup("fit")
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(ValueError, match=r"No class folders in .*flat'.*Move the images into class folders"):
        _ = make(tmp_path / "flat").num_classes  # what the CLI reads to link it: before any training
    shutil.copytree(folder / "trouser", tmp_path / "withempty" / "trouser")
    (tmp_path / "withempty" / "sandal").mkdir()
    (tmp_path / "withempty" / "sandal" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"Class folder .*withempty/sandal' holds no image files.*remove the folder"):
        make(tmp_path / "withempty").setup("fit")
    for split, names in (("train", ("trouser",)), ("val", ("trouser", "sandal"))):
        for name in names:
            shutil.copytree(folder / "trouser", tmp_path / "splits" / split / name)
    with pytest.raises(ValueError, match=r"val/sandal' of val/ has no counterpart in .*splits/train'.*Add "):
        make(tmp_path / "splits").setup("fit")
    shutil.copytree(folder / "trouser", tmp_path / "noval" / "val" / "trouser")
    with pytest.raises(FileNotFoundError, match="has a val/ folder but no train/ folder"):
        make(tmp_path / "noval").setup("fit")


def _with_bad_file(root: Path, folder: Path, kind: str) -> Path:
    shutil.copytree(folder / "trouser", root / "trouser")
    shutil.copytree(folder / "sneaker", root / "sneaker")
    bad = root / "sneaker" / "zz_bad.jpg"
    if kind == "not an image":
        bad.write_text("<html>a web page saved with an image's name</html>")
    else:
        data = (root / "sneaker" / "02_cmyk.jpg").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    return bad


@pytest.mark.parametrize(("kind", "why"), [("not an image", "UnidentifiedImageError"), ("truncated", "OSError")])
def test_a_bad_image_file_is_named_at_setup(tmp_path, folder, kind, why):
    bad = _with_bad_file(tmp_path, folder, kind)
    with pytest.raises(ImageFileError, match=rf"Cannot read '{bad}' as an image \({why}: .*replace or delete it"):
        make(tmp_path, verify_images=-1).setup("fit")
    make(tmp_path, verify_images=0).setup("fit")  # unchecked: met in training, below


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_bad_file_met_in_training_raises_the_same_error(tmp_path, folder, num_workers):
    bad = _with_bad_file(tmp_path, folder, "truncated")
    dm = make(tmp_path, verify_images=0, val_fraction=0.0, num_workers=num_workers, batch_size=16)
    dm.setup("fit")
    with pytest.raises(ImageFileError) as error:
        _batches(dm.train_dataloader())
    message = str(error.value)
    assert message.startswith(f"Cannot read '{bad}' as an image (OSError: ")  # PIL's words vary
    assert "Traceback" not in message
    assert message.endswith("(met in a DataLoader worker)") == (num_workers > 0)


def test_bad_arguments():
    for kwargs, match in (
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"verify_images": -2}, "verify_images"),
        ({"batch_size": 1}, "batch_size"),
        ({"in_chans": 4}, "in_chans"),
        ({"auto_augment": "randaugment"}, "not a timm policy string"),
    ):
        with pytest.raises(ValueError, match=match):
            ImageFolderDataModule("anywhere", **kwargs)


def test_listing_skips_other_files_and_sorts(folder):
    listing = list_image_folder(folder)
    assert not any(p.endswith(".txt") for p, _ in listing.train)
    assert [p for p, _ in listing.train] == sorted(p for p, _ in listing.train)


def test_cli_fit_links_the_classes_and_channels(folder, tmp_path):
    from lit_early_phase.cli import build_cli

    cli = build_cli(
        [
            "fit", "--model", "ImageClassifier", "--model.backbone", "test_resnet",
            "--data", "ImageFolderDataModule", "--data.data_dir", str(folder), "--data.image_size", "32",
            "--data.batch_size", "4", "--data.in_chans", "1", "--data.auto_augment", "rand-m9-mstd0.5",
            "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.logger", "false",
            "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path),
        ]
    )  # fmt: skip
    assert cli.model.num_classes == len(expected_classes()) == len(cli.datamodule.classes)
    assert cli.model.hparams.in_chans == 1
    assert cli.trainer.global_step == 2


@pytest.mark.parametrize("num_workers", [0, 1])
def test_mid_epoch_resume_through_the_trainer_equals_the_uninterrupted_run(folder, tmp_path, num_workers):
    """Checkpoint at step 4 of a 6-batch epoch; the resumed run sees the same augmented batches from step 5 on."""
    import lightning as L
    from helpers import trainer_kwargs
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint

    from lit_early_phase import ImageClassifier

    class Batches(Callback):
        def __init__(self) -> None:
            self.seen: dict[int, torch.Tensor] = {}

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.seen[trainer.global_step + 1] = batch[0].clone()

    def run(ckpt_path=None, save=False):
        L.seed_everything(0, verbose=False)
        dm = make(folder, val_fraction=0.0, batch_size=len(expected_classes()) + 1, num_workers=num_workers)
        model = ImageClassifier("test_resnet", num_classes=dm.num_classes, in_chans=3, mixup_alpha=0.4)
        batches = Batches()
        callbacks = [batches]
        if save:
            callbacks.append(ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1))
        kw = trainer_kwargs(tmp_path, enable_checkpointing=save, limit_val_batches=0)
        trainer = L.Trainer(max_steps=9, callbacks=callbacks, **kw)  # across the end of the first epoch
        trainer.fit(model, dm, ckpt_path=ckpt_path)
        return model, batches.seen, trainer

    full, full_seen, trainer = run(save=True)
    assert 4 < trainer.num_training_batches < 9  # the checkpoint is mid-epoch, the run crosses into epoch 1
    (path,) = [p for p in (tmp_path / "ckpt").iterdir() if "step=4" in p.name]
    resumed, seen, _ = run(ckpt_path=path)
    assert sorted(seen) == [s for s in sorted(full_seen) if s > 4]
    assert all(torch.equal(seen[s], full_seen[s]) for s in seen)
    assert all(
        torch.equal(p, q) for p, q in zip(resumed.state_dict().values(), full.state_dict().values(), strict=True)
    )
