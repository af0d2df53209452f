"""Shared machinery of the in-memory image DataModules: split, subset, transforms, loaders."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lit_early_phase.datamodules.loaders import SplitLoadersMixin


class ImageTensorDataset(Dataset):
    """``(N, H, W)`` or ``(N, C, H, W)`` uint8 images with labels, turned into normalised float tensors.

    Args:
        images: uint8 tensor of images.
        labels: ``(N,)`` integer labels.
        mean: per-channel mean used for normalisation (of the [0, 1] scaled images).
        std: per-channel standard deviation.
        augment: a torchvision v2 transform applied to each ``(C, H, W)`` uint8 image, or ``None``.
    """

    def __init__(self, images: Tensor, labels: Tensor, *, mean: float, std: float, augment: Any | None = None) -> None:
        self.images = images if images.dim() == 4 else images.unsqueeze(1)
        self.labels = labels.long()
        self.mean, self.std, self.augment = mean, std, augment

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = self.images[index]
        if self.augment is not None:
            image = self.augment(image)
        return (image.float().div_(255.0).sub_(self.mean).div_(self.std)), self.labels[index]


class InMemoryImageDataModule(SplitLoadersMixin, L.LightningDataModule):
    """Base class: subclasses implement :meth:`load_arrays`; this class splits, subsets and serves the data.

    The validation split is carved from the training split with a fixed generator (``split_seed``), so it is
    the same on every rank and on every resume; the test split stays untouched.

    Args:
        batch_size: training batch size (evaluation uses the same).
        val_size: images held out from the training split for validation (int) or a fraction (float < 1).
        train_subset: keep only this many training images (after the validation split), e.g. for quick runs.
        augment: random crop (padding 2) + horizontal flip on training images.
        num_workers: DataLoader workers.
        persistent_workers: keep workers alive across epochs (when ``num_workers > 0``).
        pin_memory: pin host memory for faster transfer to an accelerator.
        split_seed: seed of the validation split and of the subset.

    Raises:
        ValueError: for a non-positive batch size or a validation size that leaves nothing to train on.
    """

    mean: float = 0.5
    std: float = 0.5
    hflip: bool = True

    def __init__(
        self,
        batch_size: int = 128,
        val_size: int | float = 5000,
        train_subset: int | None = None,
        augment: bool = True,
        num_workers: int = 0,
        persistent_workers: bool = False,
        pin_memory: bool = False,
        split_seed: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be an int >= 1, got {batch_size!r}.")
        if not ((isinstance(val_size, int) and val_size >= 0) or (isinstance(val_size, float) and 0 <= val_size < 1)):
            raise ValueError(f"`val_size` must be an int >= 0 or a fraction in [0, 1), got {val_size!r}.")
        if train_subset is not None and (not isinstance(train_subset, int) or train_subset < 1):
            raise ValueError(f"`train_subset` must be an int >= 1 or None, got {train_subset!r}.")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"`num_workers` must be an int >= 0, got {num_workers!r}.")
        self.batch_size = batch_size
        self.val_size = val_size
        self.train_subset = train_subset
        self.augment = augment
        self.num_workers = num_workers
        self.persistent_workers = persistent_workers and num_workers > 0
        self.pin_memory = pin_memory
        self.split_seed = split_seed
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    # subclasses --------------------------------------------------------------------------------------------
    def load_arrays(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Return ``(train_images, train_labels, test_images, test_labels)`` as uint8 / int64 tensors."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        raise NotImplementedError

    # Lightning hooks ---------------------------------------------------------------------------------------
    def _augmentation(self) -> Any | None:
        if not self.augment:
            return None
        from torchvision.transforms import v2

        steps = [v2.RandomCrop(self.image_size, padding=2)]
        if self.hflip:
            steps.append(v2.RandomHorizontalFlip())
        return v2.Compose(steps)

    def setup(self, stage: str | None = None) -> None:
        """Load the arrays once and build the train/val/test datasets."""
        if self.train_set is not None:
            return
        x_train, y_train, x_test, y_test = self.load_arrays()
        self.image_size = tuple(x_train.shape[-2:])
        n = x_train.shape[0]
        n_val = round(self.val_size * n) if isinstance(self.val_size, float) else self.val_size
        if n_val >= n:
            raise ValueError(f"`val_size={self.val_size}` leaves no training images out of {n}.")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = order[:n_val], order[n_val:]
        if self.train_subset is not None:
            train_idx = train_idx[: self.train_subset]
        kw = {"mean": self.mean, "std": self.std}
        self.train_set = ImageTensorDataset(x_train[train_idx], y_train[train_idx], augment=self._augmentation(), **kw)
        self.val_set = ImageTensorDataset(x_train[val_idx], y_train[val_idx], **kw) if n_val else None
        self.test_set = ImageTensorDataset(x_test, y_test, **kw)
