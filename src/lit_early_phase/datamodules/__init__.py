"""DataModules on real data that installs offline (one file per source)."""

from lit_early_phase.datamodules.fashion_mnist import FashionMNISTDataModule, find_fashion_mnist, read_idx
from lit_early_phase.datamodules.images import ImageTensorDataset, InMemoryImageDataModule
from lit_early_phase.datamodules.mnist5k import MNIST5kDataModule

__all__ = [
    "FashionMNISTDataModule",
    "ImageTensorDataset",
    "InMemoryImageDataModule",
    "MNIST5kDataModule",
    "find_fashion_mnist",
    "read_idx",
]
