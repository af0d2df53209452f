"""The train/val/test DataLoaders that every DataModule of this package builds the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import DataLoader, Dataset


class SplitLoadersMixin:
    """``train/val/test_dataloader`` over ``train_set``/``val_set``/``test_set`` with the module's loader settings.

    The DataModule sets ``batch_size``, ``num_workers``, ``persistent_workers``, ``pin_memory`` and the three sets
    (``val_set`` may be ``None``: no validation); it may set ``collate_fn``.
    """

    batch_size: int
    num_workers: int
    persistent_workers: bool
    pin_memory: bool
    train_set: Dataset | None
    val_set: Dataset | None
    test_set: Dataset | None
    collate_fn: Callable[[list[Any]], Any] | None = None

    def _loader(self, dataset: Dataset | None, *, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("No data for this stage: call `setup()` first.")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.persistent_workers,
            pin_memory=self.pin_memory,
            collate_fn=self.collate_fn,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches (empty when there is no validation split)."""
        return self._loader(self.val_set, shuffle=False) if self.val_set is not None else []

    def test_dataloader(self) -> DataLoader:
        """Batches of the official test split."""
        return self._loader(self.test_set, shuffle=False)
