"""Shared machinery of the in-memory image DataModules: split, subset, transforms, loaders."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lit_early_phase._validation import check_int
from lit_early_phase.datamodules.loaders import (
    SampleKey,
    SplitLoadersMixin,
    check_batch_size,
    check_loader_args,
    check_val_size,
)
from lit_early_phase.functional.seeding import keyed_global_rng


class ImageTensorDataset(Dataset):
    """``(N, H, W)`` or ``(N, C, H, W)`` uint8 images with labels, turned into normalised float tensors.

    Indexed by an ``int`` or by a :class:`~lit_early_phase.datamodules.loaders.SampleKey` (what the training
    loaders of the DataModules pass). With a key, ``augment`` draws its randomness from the global RNG seeded by
    ``(seed, epoch, index)`` (:func:`~lit_early_phase.functional.keyed_global_rng`), so a sample's augmentation is
    fixed by where training is: the same with any number of workers or ranks, and after resuming from a checkpoint.
    With an ``int``, it draws from the global RNG as it is, as a torchvision transform does.

    Args:
        images: uint8 tensor of images.
        labels: ``(N,)`` integer labels.
        mean: per-channel mean used for normalisation (of the [0, 1] scaled images).
        std: per-channel standard deviation.
        augment: a torchvision v2 transform applied to each ``(C, H, W)`` uint8 image, or ``None``.

    Example:
        >>> from torchvision.transforms import v2
        >>> data = ImageTensorDataset(torch.zeros(4, 8, 8, dtype=torch.uint8) + torch.arange(8, dtype=torch.uint8),
        ...                           torch.arange(4), mean=0.0, std=1.0, augment=v2.RandomHorizontalFlip())
        >>> key = SampleKey(index=1, epoch=3, seed=0)
        >>> torch.equal(data[key][0], data[key][0])  # the same key, the same augmentation
        True
    """

    def __init__(self, images: Tensor, labels: Tensor, *, mean: float, std: float, augment: Any | None = None) -> None:
        self.images = images if images.dim() == 4 else images.unsqueeze(1)
        self.labels = labels.long()
        self.mean, self.std, self.augment = mean, std, augment

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, key: int | SampleKey) -> tuple[Tensor, Tensor]:
        index = key.index if isinstance(key, SampleKey) else key
        image = self.images[index]
        if self.augment is not None:
            if isinstance(key, SampleKey):
                # torchvision's transforms draw from the global CPU RNG and take no generator: seed it for this
                # sample and put the global state back afterwards (nothing else is disturbed).
                # Keyed draws rather than saving the RNG in the checkpoint: they need no state at all, and the
                # same holds in worker processes, whose RNG a checkpoint of the main process does not reach.
                with keyed_global_rng(key.seed, key.epoch, key.index):
                    image = self.augment(image)
            else:
                image = self.augment(image)
        return (image.float().div_(255.0).sub_(self.mean).div_(self.std)), self.labels[index]


class InMemoryImageDataModule(SplitLoadersMixin, L.LightningDataModule):
    """Base class: subclasses implement :meth:`load_arrays`; this class splits, subsets and serves the data.

    The validation split is carved from the training split with a fixed generator (``split_seed``), so it is
    the same on every rank and on every resume; the test split stays untouched.

    Training batches are resumable mid-epoch and never hold a single sample (see
    :mod:`lit_early_phase.datamodules.loaders`): the order comes from ``(seed, epoch)``, each image's crop and
    flip from ``(seed, epoch, index)``, so a run resumed from any checkpoint sees the same batches as the
    uninterrupted one, whatever ``num_workers``.

    Args:
        batch_size: training batch size (evaluation uses the same), at least 2.
        val_size: images held out from the training split for validation (int) or a fraction (float < 1).
        train_subset: keep only this many training images (after the validation split), e.g. for quick runs.
        augment: random crop (padding 2) + horizontal flip on training images.
        num_workers: DataLoader workers.
        persistent_workers: keep workers alive across epochs; ``None`` (default): whenever ``num_workers > 0``.
        pin_memory: pin host memory for faster transfer to an accelerator.
        split_seed: seed of the validation split and of the subset.
        seed: seed of the training order and augmentation; ``None`` takes ``seed_everything``'s (else 0).

    Raises:
        ValueError: for a batch size below 2, a validation size that leaves nothing to train on, or another bad
            argument.
    """

    mean: float = 0.5
    std: float = 0.5
    hflip: bool = True
    #: image channels, what the model's ``in_chans`` should be (the CLI links it); grayscale sets have 1
    in_chans: int = 1

    def __init__(
        self,
        batch_size: int = 128,
        val_size: int | float = 5000,
        train_subset: int | None = None,
        augment: bool = True,
        num_workers: int = 0,
        persistent_workers: bool | None = None,
        pin_memory: bool = False,
        split_seed: int = 0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_batch_size(batch_size, typical="32-256 for images")
        check_val_size(val_size, unit="training images")
        check_int("train_subset", train_subset, minimum=1, allow_none=True)
        check_int("split_seed", split_seed)
        check_loader_args(
            num_workers=num_workers, persistent_workers=persistent_workers, pin_memory=pin_memory, seed=seed
        )
        self.batch_size = batch_size
        self.val_size = val_size
        self.train_subset = train_subset
        self.augment = augment
        self.num_workers = num_workers
        self.persistent_workers = persistent_workers  # resolved by SplitLoadersMixin.keep_workers
        self.pin_memory = pin_memory
        self.split_seed = split_seed
        self.seed = seed
        self.sample_keys = augment  # the training set draws its augmentation from the sampler's keys
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
