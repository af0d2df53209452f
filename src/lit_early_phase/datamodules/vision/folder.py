"""Your own images: a folder of class subfolders (torchvision's ``ImageFolder`` layout) with timm's transforms.

Two layouts, told apart by a ``train/`` subfolder of the root::

    root/<class>/<image>                      one folder, split into train/val by a seeded share per class
    root/train/<class>/<image>                train/ and val/ given (val/ optional: else the seeded split);
    root/val/<class>/<image>                  test/ optional, the test split
    root/test/<class>/<image>

Images are files with one of :data:`IMAGE_EXTENSIONS` (torchvision's list; other files are skipped, as
torchvision skips them), found in a class folder and its subfolders, sorted by path: the same listing on every
machine. Classes are the sorted subfolder names of ``root`` (or ``root/train``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lit_early_phase._validation import check_int, check_number
from lit_early_phase.datamodules.loaders import SampleKey, SplitLoadersMixin, check_batch_size, check_loader_args
from lit_early_phase.datamodules.vision.transforms import ImageTransforms, apply_keyed, load_rgb

#: the file endings read as images (torchvision's ``IMG_EXTENSIONS``), compared in lower case
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLITS: tuple[str, ...] = ("train", "val", "test")


class ImageFileDataset(Dataset):
    """``(path, label)`` samples read by :func:`load_rgb` and transformed; keyed augmentation for a ``SampleKey``.

    Args:
        samples: ``(path, class index)`` pairs.
        transform: applied to an image indexed by an ``int`` (e.g. timm's evaluation pipeline).
        keyed_transform: applied through :func:`apply_keyed` to an image indexed by a
            :class:`~lit_early_phase.datamodules.loaders.SampleKey` (timm's training pipeline); ``None``: ``transform``.
        in_chans: 3 (RGB) or 1 (grayscale).

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.png"
        >>> Image.new("RGB", (20, 20)).save(path)
        >>> transforms = ImageTransforms(image_size=16)
        >>> data = ImageFileDataset([(str(path), 0)], transforms.eval(), keyed_transform=transforms.train())
        >>> x, y = data[SampleKey(index=0, epoch=0, seed=0)]
        >>> x.shape, int(y)
        (torch.Size([3, 16, 16]), 0)
    """

    def __init__(
        self,
        samples: list[tuple[str, int]],
        transform: Any,
        *,
        keyed_transform: Any | None = None,
        in_chans: int = 3,
    ) -> None:
        self.samples = samples
        self.transform = transform
        self.keyed_transform = keyed_transform
        self.in_chans = in_chans

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | SampleKey) -> tuple[Tensor, Tensor]:
        index = key.index if isinstance(key, SampleKey) else key
        path, label = self.samples[index]
        image = load_rgb(path, in_chans=self.in_chans)
        if isinstance(key, SampleKey) and self.keyed_transform is not None:
            x = apply_keyed(self.keyed_transform, image, seed=key.seed, epoch=key.epoch, index=key.index)
        else:
            x = self.transform(image)
        return x, torch.tensor(label)


@dataclass(frozen=True)
class FolderListing:
    """What :func:`list_image_folder` found: the classes and each split's samples (``None``: no such folder).

    Attributes:
        root: the root folder.
        classes: class names, sorted (the subfolders of ``root`` or ``root/train``).
        train: ``(path, class index)`` of the training folder (all of ``root`` in the one-folder layout).
        val: the same for ``root/val``, ``None`` without it.
        test: the same for ``root/test``, ``None`` without it.
    """

    root: Path
    classes: tuple[str, ...]
    train: list[tuple[str, int]]
    val: list[tuple[str, int]] | None
    test: list[tuple[str, int]] | None


def _images(folder: Path) -> list[str]:
    found = []
    for directory, subdirs, files in os.walk(folder, followlinks=True):
        subdirs.sort()
        found.extend(os.path.join(directory, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
    return sorted(found)


def _class_folders(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def list_image_folder(root: str | os.PathLike) -> FolderListing:
    """List an image folder (either layout, see the module docstring) and check its shape.

    Only the listing is read (no image is opened): cheap enough for ImageNet's 1.28M files.

    Args:
        root: the folder.

    Returns:
        The classes and the samples of each split found.

    Raises:
        FileNotFoundError: when ``root`` (or, given ``val/`` or ``test/``, ``root/train``) is missing.
        ValueError: for no class folders, a class folder without images, or a ``val/``/``test/`` class that
            ``train/`` does not have; each message names the path and what to do.

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for name in ("cat/1.png", "cat/2.png", "dog/1.jpg"):
        ...     (root / name).parent.mkdir(exist_ok=True)
        ...     Image.new("RGB", (8, 8)).save(root / name)
        >>> listing = list_image_folder(root)
        >>> listing.classes, len(listing.train), listing.val
        (('cat', 'dog'), 3, None)
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise FileNotFoundError(
            f"Image folder {str(root)!r} {what}. Give `data_dir` as a folder of class subfolders "
            f"(data_dir/<class>/<image>) or with train/ and val/ subfolders (data_dir/train/<class>/<image>)."
        )
    split_layout = (root / "train").is_dir() or (root / "val").is_dir()
    base = root / "train" if split_layout else root
    if split_layout and not base.is_dir():
        raise FileNotFoundError(
            f"{str(root)!r} has a val/ folder but no train/ folder {str(base)!r}. Put the training images in "
            f"{str(base)!r}/<class>/, or put the class folders directly in {str(root)!r} (the split is then seeded)."
        )
    classes = _class_folders(base)
    if not classes:
        raise ValueError(
            f"No class folders in {str(base)!r}: an image folder holds one subfolder per class with the images "
            f"inside ({str(base)!r}/<class>/<image>{IMAGE_EXTENSIONS[0]}). Move the images into class folders."
        )
    index = {name: i for i, name in enumerate(classes)}

    def read(folder: Path, *, split: str) -> list[tuple[str, int]]:
        samples: list[tuple[str, int]] = []
        for name in _class_folders(folder):
            if name not in index:
                raise ValueError(
                    f"Class folder {str(folder / name)!r} of {split}/ has no counterpart in {str(base)!r} (whose "
                    f"classes are {list(classes)}): the model would never be trained on it. Add "
                    f"{str(base / name)!r} with training images, rename the folder to a training class, or remove it."
                )
            files = _images(folder / name)
            if not files and split == "train":
                raise ValueError(
                    f"Class folder {str(folder / name)!r} holds no image files (endings {', '.join(IMAGE_EXTENSIONS)}"
                    f"): add its images or remove the folder (an empty class would never be seen in training)."
                )
            samples.extend((path, index[name]) for path in files)
        return samples

    train = read(base, split="train")
    val = read(root / "val", split="val") if split_layout and (root / "val").is_dir() else None
    test = read(root / "test", split="test") if split_layout and (root / "test").is_dir() else None
    return FolderListing(root=root, classes=tuple(classes), train=train, val=val, test=test)


def split_by_class(
    samples: list[tuple[str, int]], *, fraction: float, seed: int
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Hold out ``round(fraction * n)`` samples of each class (at most ``n - 1``), chosen by a seeded permutation.

    Args:
        samples: ``(path, class index)`` pairs, in listing order.
        fraction: share of each class held out, in ``[0, 1)``.
        seed: seed of the permutations.

    Returns:
        ``(train, val)``, each in listing order.

    Example:
        >>> samples = [(f"{c}{i}", c) for c in range(2) for i in range(10)]
        >>> train, val = split_by_class(samples, fraction=0.2, seed=0)
        >>> len(train), len(val), sorted({label for _, label in val})
        (16, 4, [0, 1])
    """
    generator = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for position, (_, label) in enumerate(samples):
        by_class.setdefault(label, []).append(position)
    held: set[int] = set()
    for label in sorted(by_class):
        positions = by_class[label]
        n_val = min(round(fraction * len(positions)), len(positions) - 1)
        order = torch.randperm(len(positions), generator=generator)[:n_val].tolist()
        held.update(positions[i] for i in order)
    train = [s for i, s in enumerate(samples) if i not in held]
    val = [s for i, s in enumerate(samples) if i in held]
    return train, val


class ImageFolderDataModule(SplitLoadersMixin, L.LightningDataModule):
    """Images from a folder of class subfolders, with timm's transforms and resumable, keyed training batches.

    ``data_dir`` is either one folder of class subfolders, split into train/val by ``val_fraction`` of each
    class (seeded by ``split_seed``: the same split on every rank and every resume), or a folder with ``train/``
    and ``val/`` (and optionally ``test/``) subfolders of class folders; see
    :mod:`lit_early_phase.datamodules.vision.folder`. ``num_classes``, ``classes`` and ``in_chans`` are known as
    soon as the DataModule exists (the CLI links ``num_classes`` and ``in_chans`` into the model).

    Training images go through timm's training pipeline (:class:`ImageTransforms`: random-resized crop, flip,
    ``auto_augment``, random erasing, normalisation), every random draw seeded by ``(seed, epoch, index)``
    (:func:`apply_keyed`), so a run resumed mid-epoch sees exactly the batches of the uninterrupted run, whatever
    ``num_workers``; validation and test images go through timm's evaluation pipeline (resize, centre crop).

    What is checked, and when. At ``setup`` (before training; also when ``num_classes`` is first read): the
    listing only (a missing root, no class folders, a class folder without image files, a ``val/``/``test/``
    class missing in ``train/``), then ``verify_images`` files (a seeded sample over the whole set) are fully
    decoded. Decoding all of a big set there (``verify_images=-1``) costs as long as an epoch of reading, so by
    default a bad file beyond the sample is met when training reads it: it raises the same
    :class:`~lit_early_phase.datamodules.ImageFileError` naming the file, in the main process too (not a worker
    traceback). Files with other endings than :data:`IMAGE_EXTENSIONS` are skipped, as torchvision does.

    Colour: every image is converted to RGB (``in_chans=3``) or grayscale (``in_chans=1``) by :func:`load_rgb`
    (palette, CMYK, 16-bit grayscale; transparency composited on white).

    Args:
        data_dir: the image folder (either layout).
        val_fraction: share of each class held out for validation when there is no ``val/`` folder, in ``[0, 1)``
            (``0``: no validation); ignored with a ``val/`` folder.
        split_seed: seed of that split and of the ``verify_images`` sample.
        image_size: side of the square training and evaluation crops, in pixels.
        auto_augment: a timm auto-augment policy string (``"rand-m9-mstd0.5"``...) or ``None``.
        re_prob: random-erasing probability.
        hflip: horizontal-flip probability.
        scale: area range of the random-resized crop.
        color_jitter: timm's colour jitter without ``auto_augment`` (``0``: none).
        interpolation: resize interpolation; ``None``: ``model_name``'s, else bilinear.
        mean: normalisation mean; ``None``: ``model_name``'s pretrained config, else ImageNet's.
        std: normalisation standard deviation; ``None`` as for ``mean``.
        crop_pct: evaluation centre-crop share; ``None``: ``model_name``'s, else 0.875.
        model_name: a timm model name whose pretrained config gives the normalisation (no download).
        in_chans: 3 (RGB) or 1 (grayscale): what the model takes (the CLI links it).
        augment: use the training pipeline for training images (``False``: the evaluation one, no randomness).
        verify_images: files fully decoded at ``setup`` (a seeded sample); ``-1``: all of them; ``0``: none.
        batch_size: training batch size (evaluation uses the same), at least 2.
        num_workers: DataLoader workers (decoding JPEGs wants several).
        persistent_workers: keep workers alive across epochs; ``None``: whenever ``num_workers > 0``.
        pin_memory: pin host memory for faster transfer to an accelerator.
        seed: seed of the training order and augmentation; ``None`` takes ``seed_everything``'s (else 0).

    Raises:
        ValueError: for a bad argument, at once; for a bad folder or image file, at ``setup`` (see above).
        FileNotFoundError: at ``setup`` for a missing ``data_dir``.

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for c, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        ...     (root / c).mkdir()
        ...     for i in range(5):
        ...         Image.new("RGB", (40, 30), colour).save(root / c / f"{i}.png")
        >>> dm = ImageFolderDataModule(root, image_size=32, batch_size=4, val_fraction=0.2)
        >>> dm.classes, dm.num_classes, dm.in_chans
        (('blue', 'red'), 2, 3)
        >>> dm.setup("fit")
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> x.shape, len(dm.train_set), len(dm.val_set)
        (torch.Size([4, 3, 32, 32]), 8, 2)
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        image_size: int = 224,
        auto_augment: str | None = None,
        re_prob: float = 0.0,
        hflip: float = 0.5,
        scale: tuple[float, float] = (0.08, 1.0),
        color_jitter: float = 0.4,
        interpolation: str | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        crop_pct: float | None = None,
        model_name: str | None = None,
        in_chans: int = 3,
        augment: bool = True,
        verify_images: int = 256,
        batch_size: int = 64,
        num_workers: int = 0,
        persistent_workers: bool | None = None,
        pin_memory: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_batch_size(batch_size, typical="32-256 for images")
        check_number("val_fraction", val_fraction, low=0.0, high=1.0, high_open=True, hint="e.g. 0.1; 0: none.")
        check_int("split_seed", split_seed)
        check_int("verify_images", verify_images, minimum=-1, hint="-1: every file; 0: none.")
        check_loader_args(
            num_workers=num_workers, persistent_workers=persistent_workers, pin_memory=pin_memory, seed=seed
        )
        #: the transform settings (timm's ``create_transform``), shared with the benchmark's plain baseline
        self.transforms = ImageTransforms(
            image_size=image_size,
            auto_augment=auto_augment,
            re_prob=re_prob,
            hflip=hflip,
            scale=scale,
            color_jitter=color_jitter,
            interpolation=interpolation,
            mean=mean,
            std=std,
            crop_pct=crop_pct,
            model_name=model_name,
            in_chans=in_chans,
        )
        self.data_dir = Path(data_dir).expanduser()
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        #: image channels, what the model's ``in_chans`` should be (the CLI links it)
        self.in_chans = in_chans
        self.augment = augment
        self.verify_images = verify_images
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.persistent_workers = persistent_workers
        self.pin_memory = pin_memory
        self.seed = seed
        self.sample_keys = augment  # the training set draws its augmentation from the sampler's keys
        self._listing: FolderListing | None = None
        self.train_set: ImageFileDataset | None = None
        self.val_set: ImageFileDataset | None = None
        self.test_set: ImageFileDataset | None = None

    @property
    def listing(self) -> FolderListing:
        """The folder's listing, read (and checked) once: see :func:`list_image_folder`."""
        if self._listing is None:
            self._listing = list_image_folder(self.data_dir)
        return self._listing

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names, sorted: class index ``i`` is ``classes[i]``."""
        return self.listing.classes

    @property
    def num_classes(self) -> int:
        """Number of class folders."""
        return len(self.classes)

    def _verify(self, samples: list[tuple[str, int]]) -> None:
        if self.verify_images == 0 or not samples:
            return
        if self.verify_images < 0 or self.verify_images >= len(samples):
            chosen = range(len(samples))
        else:
            generator = torch.Generator().manual_seed(self.split_seed)
            chosen = sorted(torch.randperm(len(samples), generator=generator)[: self.verify_images].tolist())
        for i in chosen:
            load_rgb(samples[i][0], in_chans=self.in_chans)  # ImageFileError names the file

    def setup(self, stage: str | None = None) -> None:
        """List and check the folder, decode the ``verify_images`` sample, build the train/val/test datasets.

        Raises:
            FileNotFoundError: for a missing ``data_dir``.
            ValueError: for a bad folder (see :func:`list_image_folder`) or split.
            ImageFileError: for a sampled file that is not a readable image.
        """
        if self.train_set is not None:
            return
        listing = self.listing
        if listing.val is not None:
            train, val = listing.train, listing.val
        else:
            train, val = split_by_class(listing.train, fraction=self.val_fraction, seed=self.split_seed)
        self._verify(train + (val or []) + (listing.test or []))
        evaluation = self.transforms.eval()
        keyed = self.transforms.train() if self.augment else None
        self.train_set = ImageFileDataset(train, evaluation, keyed_transform=keyed, in_chans=self.in_chans)
        self.val_set = ImageFileDataset(val, evaluation, in_chans=self.in_chans) if val else None
        test = listing.test
        self.test_set = ImageFileDataset(test, evaluation, in_chans=self.in_chans) if test else None

    def test_dataloader(self) -> DataLoader:
        """Batches of ``data_dir/test``.

        Raises:
            RuntimeError: before ``setup``, or when the folder has no ``test/`` split.
        """
        if self.train_set is not None and self.test_set is None:
            raise RuntimeError(
                f"{str(self.data_dir)!r} has no test/ folder of class folders: add data_dir/test/<class>/<image> "
                f"(next to train/) to test, or validate instead (`lit-early-phase validate`)."
            )
        return super().test_dataloader()
