"""Fashion-MNIST from the Debian package `dataset-fashion-mnist`, a directory of IDX files, or a download."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lit_early_phase.datamodules.vision.images import InMemoryImageDataModule

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip or plain) into a NumPy array, using the shape in its header.

    Written by hand on purpose: it is 10 lines, and torchvision's reader insists on its own folder layout.

    Args:
        path: the ``.gz`` or plain IDX file.

    Returns:
        ``uint8`` array of shape ``(N,)`` (labels) or ``(N, H, W)`` (images).

    Raises:
        ValueError: if the file is not an unsigned-byte IDX file.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = data[0] << 8 | data[1], data[2], data[3]
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file.")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (
        directory / f"{stem}.gz",
        directory / stem,
        directory / "FashionMNIST" / "raw" / stem,
        directory / "FashionMNIST" / "raw" / f"{stem}.gz",
    ):
        if candidate.is_file():
            return candidate
    return None


def find_fashion_mnist(data_dir: str | os.PathLike | None = None) -> dict[str, Path] | None:
    """Locate the four Fashion-MNIST IDX files in ``data_dir`` (or the Debian package folder).

    Args:
        data_dir: a folder with the IDX files (gzip or plain, flat or torchvision's ``FashionMNIST/raw``);
            ``None`` looks in ``$FASHION_MNIST_DIR`` and then ``/usr/share/datasets/fashion-mnist``.

    Returns:
        Paths by role, or ``None`` if any file is missing.
    """
    if data_dir is not None:
        dirs = [Path(data_dir).expanduser()]
    else:
        dirs = [Path(p) for p in [os.environ.get("FASHION_MNIST_DIR")] if p] + [DEBIAN_DIR]
    for directory in dirs:
        found = {role: _find(directory, stem) for role, stem in FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


class FashionMNISTDataModule(InMemoryImageDataModule):
    """Fashion-MNIST (60,000 train / 10,000 test, 28x28 grey, 10 classes), in memory.

    Found automatically in the Debian package ``dataset-fashion-mnist`` (``make`` installs it), or in
    ``data_dir``, or downloaded by torchvision with ``download=True`` (online users).

    Args:
        data_dir: folder with the IDX files; with ``download=True`` the download target.
        download: download with torchvision when the files are not found (needs a network).
        **kwargs: :class:`~lit_early_phase.datamodules.vision.images.InMemoryImageDataModule` arguments
            (``batch_size``, ``val_size``, ``train_subset``, ``augment``, ``num_workers`` ...).

    Raises:
        FileNotFoundError: at ``setup`` when the files are not found and ``download`` is off.

    Example:
        >>> dm = FashionMNISTDataModule(batch_size=64, train_subset=1000)
        >>> dm.setup("fit")
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> x.shape, dm.num_classes
        (torch.Size([64, 1, 28, 28]), 10)
    """

    mean = 0.2860
    std = 0.3530
    classes = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )

    def __init__(self, data_dir: str | None = None, download: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_dir = data_dir
        self.download = download

    @property
    def num_classes(self) -> int:
        """10."""
        return len(self.classes)

    def prepare_data(self) -> None:
        """Download with torchvision if asked and not found (rank zero only, as Lightning calls it)."""
        if find_fashion_mnist(self.data_dir) is None and self.download:
            from torchvision.datasets import FashionMNIST

            root = self.data_dir or os.path.join(os.getcwd(), "data")
            self.data_dir = root
            FashionMNIST(root, train=True, download=True)
            FashionMNIST(root, train=False, download=True)

    def load_arrays(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Read the four IDX files."""
        found = find_fashion_mnist(self.data_dir)
        if found is None:
            where = f"`data_dir={self.data_dir!r}`" if self.data_dir else str(DEBIAN_DIR)
            raise FileNotFoundError(
                f"Fashion-MNIST not found in {where}. Offline on Debian: `apt-get install dataset-fashion-mnist` "
                f"(root; `make demo`/`make test` do it). Or pass `data_dir` pointing at the four IDX files, or "
                f"`download=True` when online."
            )
        arrays = {role: torch.from_numpy(read_idx(path).copy()) for role, path in found.items()}
        return arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]
