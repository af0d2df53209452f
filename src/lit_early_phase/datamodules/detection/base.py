"""`DetectionDataModule`: what every detection DataModule shares (arguments, classes, list batches, loaders).

A subclass names its classes (:attr:`DetectionDataModule.classes`) and builds its training and validation
:class:`~lit_early_phase.datamodules.detection.dataset.DetectionDataset` in :meth:`DetectionDataModule.build_splits`
(with :meth:`DetectionDataModule.make_dataset`, which adds the flips to the training set); the base serves them
through the shared resumable loaders (:class:`~lit_early_phase.datamodules.loaders.SplitLoadersMixin`), with the
validation images as test and predict data. The folder readers
(:mod:`~lit_early_phase.datamodules.detection.folders`: ``FolderDetectionDataModule`` and its VOC and COCO
subclasses) and :class:`~lit_early_phase.datamodules.TreeCrownDataModule` are built on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
from torch import Tensor
from torch.utils.data import DataLoader

from lit_early_phase._validation import check_number
from lit_early_phase.datamodules.detection.boxes import BOX_TOLERANCE
from lit_early_phase.datamodules.detection.dataset import DetectionDataset, detection_collate, flip_augmentation
from lit_early_phase.datamodules.loaders import SplitLoadersMixin, check_batch_size, check_loader_args


class DetectionDataModule(SplitLoadersMixin, L.LightningDataModule):
    """Base of the detection DataModules: checks the shared arguments, serves ``(images, targets)`` list batches.

    Subclasses implement :attr:`classes` and :meth:`build_splits`. Training batches resume mid-epoch and never
    hold a single image (:mod:`lit_early_phase.datamodules.loaders`); the training images are flipped
    horizontally and vertically at random (boxes follow), keyed by ``(seed, epoch, index)``. The test and predict
    data are the validation images (the sources of this package have no separate test split).

    Args:
        batch_size: images per batch, at least 2.
        augment: random horizontal + vertical flips of training images (boxes follow).
        box_tolerance: pixels a box may overhang its image and be clipped (more is refused).
        num_workers: DataLoader workers.
        persistent_workers: keep workers alive across epochs; ``None``: whenever ``num_workers > 0``.
        pin_memory: pin host memory.
        seed: seed of the training order and augmentation; ``None`` takes ``seed_everything``'s (else 0).

    Raises:
        ValueError: for a bad argument (naming it).

    Example:
        >>> import torch
        >>> class OneBox(DetectionDataModule):
        ...     classes = ["Tree"]
        ...     def build_splits(self):
        ...         images = [torch.zeros(3, 8, 8, dtype=torch.uint8)] * 3
        ...         targets = [{"boxes": [[0, 0, 4, 4]], "labels": [1]}] * 3
        ...         return self.make_dataset(images, targets, train=True), None
        >>> dm = OneBox(batch_size=2)
        >>> dm.setup("fit")
        >>> images, targets = next(iter(dm.train_dataloader()))
        >>> len(images), dm.num_classes, dm.val_dataloader()
        (2, 2, [])
    """

    #: typical batch sizes, for the message on a bad one
    typical_batch_size: str = "2-16 for detection"
    collate_fn = staticmethod(detection_collate)

    def __init__(
        self,
        batch_size: int = 4,
        augment: bool = True,
        box_tolerance: float = BOX_TOLERANCE,
        num_workers: int = 0,
        persistent_workers: bool | None = None,
        pin_memory: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_batch_size(batch_size, typical=self.typical_batch_size)
        check_number("box_tolerance", box_tolerance, low=0)
        check_loader_args(
            num_workers=num_workers, persistent_workers=persistent_workers, pin_memory=pin_memory, seed=seed
        )
        self.batch_size, self.augment, self.box_tolerance = batch_size, augment, float(box_tolerance)
        self.num_workers, self.persistent_workers, self.pin_memory = num_workers, persistent_workers, pin_memory
        self.seed = seed
        self.sample_keys = augment  # the training set draws its flips from the sampler's keys
        self.train_set: DetectionDataset | None = None
        self.val_set: DetectionDataset | None = None
        self.test_set: DetectionDataset | None = None

    # subclasses ----------------------------------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        """Foreground class names; label ``i + 1`` is ``classes[i]`` (subclasses)."""
        raise NotImplementedError

    def build_splits(self) -> tuple[DetectionDataset, DetectionDataset | None]:
        """``(training set, validation set or None)``, built with :meth:`make_dataset` (subclasses)."""
        raise NotImplementedError

    # shared --------------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Foreground classes + 1 (the background): torchvision's ``num_classes``."""
        return len(self.classes) + 1

    def make_dataset(
        self, images: Sequence[Tensor], targets: Sequence[Any], *, names: Sequence[str] | None = None, train: bool
    ) -> DetectionDataset:
        """A :class:`DetectionDataset` of this module's classes and tolerance; flipped at random if ``train``.

        Args:
            images: uint8 ``(3, H, W)`` tensors.
            targets: one ``{"boxes", "labels"}`` dict per image.
            names: each image's name, for messages.
            train: the training set (augmented when ``augment``).

        Returns:
            The checked dataset.
        """
        augment = flip_augmentation() if train and self.augment else None
        return DetectionDataset(
            images, targets, num_classes=self.num_classes, augment=augment, names=names, tolerance=self.box_tolerance
        )

    def setup(self, stage: str | None = None) -> None:
        """Build the splits once (:meth:`build_splits`); the test split is the validation split."""
        if self.train_set is not None:
            return
        self.train_set, self.val_set = self.build_splits()
        self.test_set = self.val_set

    def test_dataloader(self) -> DataLoader:
        """The validation images (see the class docstring).

        Raises:
            RuntimeError: when there are none (e.g. ``val_size=0``).
        """
        if self.train_set is not None and self.test_set is None:
            raise RuntimeError("`test_dataloader` serves the validation images, and `val_size=0` left none.")
        return super().test_dataloader()

    def predict_dataloader(self) -> DataLoader | list:
        """The validation images, for ``trainer.predict``."""
        return self.val_dataloader()
