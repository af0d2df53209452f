"""DataModules on real data that installs offline, by domain over one loader core.

``loaders`` is the core every DataModule shares (resumable train/val/test loaders, the argument checks); the
domains are subpackages: ``vision`` (in-memory images; image folders with timm's transforms), ``series`` (UCR/UEA),
``detection`` (boxes, tiling, folders, tree crowns) and ``text`` (instruction data). Every public name imports
from here.
"""

from lit_early_phase.datamodules.detection.base import DetectionDataModule
from lit_early_phase.datamodules.detection.dataset import DetectionDataset, detection_collate
from lit_early_phase.datamodules.detection.folders import (
    CocoDetectionDataModule,
    FolderDetectionDataModule,
    VOCDetectionDataModule,
)
from lit_early_phase.datamodules.detection.tree_crowns import TreeCrownDataModule
from lit_early_phase.datamodules.loaders import ResumableLoader, ResumableSampler, SampleKey
from lit_early_phase.datamodules.series.aeon_archive import offline_classification_sets
from lit_early_phase.datamodules.series.ucr import UCRDataModule
from lit_early_phase.datamodules.text.instructions import InstructionDataModule
from lit_early_phase.datamodules.text.records import load_chatterbot, read_jsonl
from lit_early_phase.datamodules.vision.fashion_mnist import FashionMNISTDataModule, find_fashion_mnist, read_idx
from lit_early_phase.datamodules.vision.folder import (
    FolderListing,
    ImageFileDataset,
    ImageFolderDataModule,
    list_image_folder,
)
from lit_early_phase.datamodules.vision.images import ImageTensorDataset, InMemoryImageDataModule
from lit_early_phase.datamodules.vision.mnist5k import MNIST5kDataModule
from lit_early_phase.datamodules.vision.shards import write_image_shards
from lit_early_phase.datamodules.vision.streaming import StreamingImageDataModule
from lit_early_phase.datamodules.vision.transforms import ImageFileError, ImageTransforms, apply_keyed, load_rgb

__all__ = [
    "CocoDetectionDataModule",
    "DetectionDataModule",
    "DetectionDataset",
    "FashionMNISTDataModule",
    "FolderDetectionDataModule",
    "FolderListing",
    "ImageFileDataset",
    "ImageFileError",
    "ImageFolderDataModule",
    "ImageTensorDataset",
    "ImageTransforms",
    "InMemoryImageDataModule",
    "InstructionDataModule",
    "MNIST5kDataModule",
    "ResumableLoader",
    "ResumableSampler",
    "SampleKey",
    "StreamingImageDataModule",
    "TreeCrownDataModule",
    "UCRDataModule",
    "VOCDetectionDataModule",
    "apply_keyed",
    "detection_collate",
    "find_fashion_mnist",
    "list_image_folder",
    "load_chatterbot",
    "load_rgb",
    "offline_classification_sets",
    "read_idx",
    "read_jsonl",
    "write_image_shards",
]
