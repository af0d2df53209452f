"""Object-detection samples: images with box targets, box-aware augmentation keyed by the sample, list batches.

A batch is torchvision's ``(images, targets)``: ``images`` a list of float32 ``(3, H, W)`` tensors in ``[0, 1]``
(sizes may differ), ``targets`` a list of ``{"boxes": float32 (N, 4) xyxy pixels, "labels": int64 (N,)}`` with
labels ``1..K`` (``N`` may be 0).

Augmentation (training only) is a torchvision ``transforms.v2`` transform called as ``augment(image, target)``
with the boxes as ``tv_tensors.BoundingBoxes``, so flips, crops and resizes move the boxes with the pixels. With a
:class:`~lit_early_phase.datamodules.loaders.SampleKey` it draws from the global RNG seeded by
``(seed, epoch, index)`` (:func:`~lit_early_phase.functional.keyed_global_rng`), as
:class:`~lit_early_phase.datamodules.ImageTensorDataset` does: the same augmentation with any number of workers or
ranks and after a resume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lit_early_phase.datamodules.detection.boxes import BOX_TOLERANCE, check_target
from lit_early_phase.datamodules.loaders import SampleKey
from lit_early_phase.functional.seeding import keyed_global_rng

#: file endings read as images
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

Target = dict[str, Tensor]


def load_image(path: str | Path) -> Tensor:
    """Decode an image file with PIL into a uint8 ``(3, H, W)`` tensor (RGB; no size limit, for large mosaics)."""
    import numpy as np
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # airborne mosaics exceed PIL's decompression-bomb guard
    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1).contiguous()


def detection_collate(batch: Sequence[tuple[Tensor, Target]]) -> tuple[list[Tensor], list[Target]]:
    """Keep a batch as ``(list of images, list of targets)``: images differ in size and targets in box count.

    Example:
        >>> images, targets = detection_collate([(torch.zeros(3, 4, 4), {"boxes": torch.zeros(0, 4)})] * 2)
        >>> type(images).__name__, len(images), type(targets).__name__
        ('list', 2, 'list')
    """
    return [image for image, _ in batch], [target for _, target in batch]


def flip_augmentation(hflip: bool = True, vflip: bool = True) -> Any | None:
    """Random horizontal and vertical flips (each with probability 0.5) that move the boxes too; ``None`` if neither.

    Top-down imagery (tree crowns) has no up or down, so both flips are label-preserving.
    """
    from torchvision.transforms import v2

    steps = ([v2.RandomHorizontalFlip()] if hflip else []) + ([v2.RandomVerticalFlip()] if vflip else [])
    return v2.Compose(steps) if steps else None


class DetectionDataset(Dataset):
    """uint8 ``(3, H, W)`` images with ``{"boxes", "labels"}`` targets, served as float ``[0, 1]`` images.

    Every target is checked when the dataset is built (:func:`.boxes.check_target`):
    boxes ``xyxy`` inside the image (overhangs up to ``tolerance`` px clipped), labels ``1..num_classes - 1``.
    Indexed by an ``int`` or a :class:`SampleKey` (see the module docstring for the keyed augmentation).

    Args:
        images: uint8 ``(3, H, W)`` tensors.
        targets: one dict per image with ``"boxes"`` and ``"labels"``.
        num_classes: torchvision's count, background included.
        augment: a ``transforms.v2`` transform of ``(image, target)`` or ``None``.
        names: each image's name, for messages (default: its index).
        tolerance: see :func:`~lit_early_phase.datamodules.detection.boxes.check_boxes`.

    Raises:
        ValueError: for mismatched lengths, a non-uint8 or non-RGB image, or a bad box or label (naming the image).

    Example:
        >>> data = DetectionDataset([torch.zeros(3, 8, 10, dtype=torch.uint8)] * 2,
        ...                         [{"boxes": [[0, 0, 2, 4]], "labels": [1]}] * 2, num_classes=2,
        ...                         augment=flip_augmentation(vflip=False))
        >>> key = SampleKey(index=0, epoch=0, seed=3)
        >>> torch.equal(data[key][1]["boxes"], data[key][1]["boxes"]), data[0][0].dtype
        (True, torch.float32)
    """

    def __init__(
        self,
        images: Sequence[Tensor],
        targets: Sequence[Any],
        *,
        num_classes: int,
        augment: Callable[..., Any] | None = None,
        names: Sequence[str] | None = None,
        tolerance: float = BOX_TOLERANCE,
    ) -> None:
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets; give one target per image.")
        self.names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]
        self.images, self.targets = list(images), []
        for image, target, name in zip(self.images, targets, self.names, strict=True):
            if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
                raise ValueError(f"{name}: images must be uint8 (3, H, W), got {image.dtype} {tuple(image.shape)}.")
            h, w = image.shape[-2:]
            self.targets.append(
                check_target(target, num_classes=num_classes, width=w, height=h, where=name, tolerance=tolerance)
            )
        self.num_classes, self.augment = num_classes, augment

    def __len__(self) -> int:
        return len(self.images)

    def _augmented(self, image: Tensor, target: Target) -> tuple[Tensor, Target]:
        from torchvision import tv_tensors

        boxes = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=tuple(image.shape[-2:]))
        out_image, out = self.augment(tv_tensors.Image(image), {**target, "boxes": boxes})
        # back to plain tensors: what a model receives does not depend on the augmentation being on
        return out_image.as_subclass(Tensor), {**out, "boxes": out["boxes"].as_subclass(Tensor)}

    def __getitem__(self, key: int | SampleKey) -> tuple[Tensor, Target]:
        index = key.index if isinstance(key, SampleKey) else key
        image, target = self.images[index], dict(self.targets[index])
        if self.augment is not None:
            if isinstance(key, SampleKey):
                # as ImageTensorDataset: v2 draws from the global CPU RNG; seed it for this sample, then restore
                with keyed_global_rng(key.seed, key.epoch, key.index):
                    image, target = self._augmented(image, target)
            else:
                image, target = self._augmented(image, target)
        return image.float().div_(255.0), target
