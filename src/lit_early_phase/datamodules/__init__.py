"""DataModules on real data that installs offline (one file per source)."""

from lit_early_phase.datamodules.detection import (
    CocoDetectionDataModule,
    DetectionDataModule,
    DetectionDataset,
    VOCDetectionDataModule,
    detection_collate,
)
from lit_early_phase.datamodules.fashion_mnist import FashionMNISTDataModule, find_fashion_mnist, read_idx
from lit_early_phase.datamodules.images import ImageTensorDataset, InMemoryImageDataModule
from lit_early_phase.datamodules.instructions import InstructionDataModule, load_chatterbot, read_jsonl
from lit_early_phase.datamodules.loaders import ResumableLoader, ResumableSampler, SampleKey
from lit_early_phase.datamodules.mnist5k import MNIST5kDataModule
from lit_early_phase.datamodules.tree_crowns import TreeCrownDataModule
from lit_early_phase.datamodules.ucr import UCRDataModule, offline_classification_sets

__all__ = [
    "CocoDetectionDataModule",
    "DetectionDataModule",
    "DetectionDataset",
    "FashionMNISTDataModule",
    "ImageTensorDataset",
    "InMemoryImageDataModule",
    "InstructionDataModule",
    "MNIST5kDataModule",
    "ResumableLoader",
    "ResumableSampler",
    "SampleKey",
    "TreeCrownDataModule",
    "UCRDataModule",
    "VOCDetectionDataModule",
    "detection_collate",
    "find_fashion_mnist",
    "load_chatterbot",
    "offline_classification_sets",
    "read_idx",
    "read_jsonl",
]
