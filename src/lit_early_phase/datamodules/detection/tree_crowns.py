"""`TreeCrownDataModule`: deepforest's airborne RGB images with tree-crown boxes, offline.

The PyPI package ``deepforest`` (2.1.0, MIT; install it with ``pip install --no-deps deepforest==2.1.0``) ships
four annotated images in its ``data/`` folder, Pascal-VOC XML beside each PNG. It is never imported (it needs
packages this project does not install): the folder is found with ``importlib.util.find_spec``.

=========================================  ==========  =====  ==================
image                                      size        boxes  used for
=========================================  ==========  =====  ==================
2019_YELL_2_528000_4978000_image_crop2     2299x2472   574    training (tiled)
2019_YELL_2_541000_4977000_image_crop      1249x1035   279    training (tiled)
OSBS_029                                   400x400     61     validation, test
SOAP_061                                   400x400     37     validation, test
=========================================  ==========  =====  ==================

The split is by image, so no pixel of a validation image is ever trained on. With the defaults (400 px tiles,
at least 10 % overlap, remnants under half a crown dropped) training has 61 tiles with 1 247 boxes (a crown cut
by a tile edge appears in each tile that shows enough of it; 212 remnants dropped); validation has 2 images with
98 boxes. The test split is the validation split: deepforest ships no other annotated image, so test numbers are
not independent of anything chosen on validation.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lit_early_phase._validation import check_int, check_number
from lit_early_phase.datamodules.detection.base import DetectionDataModule
from lit_early_phase.datamodules.detection.boxes import BOX_TOLERANCE, check_boxes, read_voc
from lit_early_phase.datamodules.detection.dataset import DetectionDataset, load_image
from lit_early_phase.datamodules.detection.tiling import tile_image

log = logging.getLogger(__name__)

TRAIN_IMAGES: tuple[str, ...] = ("2019_YELL_2_528000_4978000_image_crop2", "2019_YELL_2_541000_4977000_image_crop")
VAL_IMAGES: tuple[str, ...] = ("OSBS_029", "SOAP_061")


def deepforest_data_dir() -> Path:
    """Deepforest's ``data`` folder, found without importing the package.

    Raises:
        ModuleNotFoundError: if deepforest is not installed (the message says how to install it).
    """
    spec = importlib.util.find_spec("deepforest")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "TreeCrownDataModule reads deepforest's bundled images: `pip install --no-deps deepforest==2.1.0` "
            "(no dependencies needed, it is never imported), or pass `data_dir` to a folder with the same files."
        )
    return Path(spec.submodule_search_locations[0]) / "data"


@functools.lru_cache(maxsize=8)
def _decoded(path: str, mtime: float) -> Tensor:
    """Decode once per process (the 2299x2472 PNG takes ~1 s); callers never modify the tensor."""
    return load_image(path)


def _read(folder: Path, stem: str, tolerance: float) -> tuple[Tensor, Tensor, list[str], str]:
    """``(image, boxes, names, file)`` of ``<stem>.png`` and ``<stem>.xml`` in ``folder``."""
    png, xml = folder / f"{stem}.png", folder / f"{stem}.xml"
    if not png.is_file():
        raise FileNotFoundError(f"{str(png)!r} is missing; `data_dir` must hold deepforest's data files.")
    ann = read_voc(xml)
    image = _decoded(str(png), png.stat().st_mtime)
    h, w = image.shape[-2:]
    boxes = check_boxes(ann.boxes, width=w, height=h, where=str(xml), tolerance=tolerance)
    return image, boxes, ann.names, png.name


class TreeCrownDataModule(DetectionDataModule):
    """Tree-crown detection: tiles of the two YELL mosaics to train, OSBS_029 and SOAP_061 whole to validate.

    See the module docstring for the images and counts. Built on
    :class:`~lit_early_phase.datamodules.DetectionDataModule`: batches are ``(list of images, list of targets)``,
    images float32 ``(3, H, W)`` in ``[0, 1]``, boxes ``xyxy`` pixels, every label 1 ("Tree"). Training tiles are
    flipped horizontally and vertically at random (boxes follow), keyed by ``(seed, epoch, index)``; training
    batches resume mid-epoch and never hold a single tile (:mod:`lit_early_phase.datamodules.loaders`). Decoded
    tiles stay in memory (about 30 MB as uint8).

    Args:
        data_dir: folder of deepforest's data files; ``None``: the installed package's ``data`` folder.
        batch_size: images per batch, at least 2.
        tile_size: side of the training tiles in pixels.
        overlap: least overlap of neighbouring tiles: a share of ``tile_size`` in ``[0, 1)`` or pixels (int).
        min_visible: least share of a crown's area a tile must show for the clipped box to be kept.
        min_side: least width and height, in pixels, of a kept clipped box.
        label_set: ``"tree"``: one class, every box label 1 (``classes == ["Tree"]``, ``num_classes`` 2).
            ``"alive_dead"`` is refused: only SOAP_061, a validation image, labels crowns Alive/Dead; the training
            mosaics say "Tree" for all.
        augment: random flips of training tiles.
        box_tolerance: pixels an annotated box may overhang its image and be clipped.
        num_workers: DataLoader workers.
        persistent_workers: keep workers alive across epochs; ``None``: whenever ``num_workers > 0``.
        pin_memory: pin host memory.
        seed: seed of the training order and augmentation; ``None`` takes ``seed_everything``'s (else 0).

    Raises:
        ValueError: for a bad argument.
        ModuleNotFoundError: with ``data_dir=None`` and deepforest not installed.

    Example:
        >>> dm = TreeCrownDataModule(batch_size=2, tile_size=800, overlap=0)
        >>> dm.setup("fit")
        >>> len(dm.train_set), len(dm.val_set), dm.num_classes
        (16, 2, 2)
        >>> images, targets = next(iter(dm.train_dataloader()))
        >>> images[0].shape, targets[0]["boxes"].dtype, targets[0]["labels"].unique().tolist()
        (torch.Size([3, 800, 800]), torch.float32, [1])
    """

    typical_batch_size = "2-8 tiles of 400 px"

    def __init__(
        self,
        data_dir: str | None = None,
        batch_size: int = 4,
        tile_size: int = 400,
        overlap: int | float = 0.1,
        min_visible: float = 0.5,
        min_side: float = 2.0,
        label_set: str = "tree",
        augment: bool = True,
        box_tolerance: float = BOX_TOLERANCE,
        num_workers: int = 0,
        persistent_workers: bool | None = None,
        pin_memory: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            augment=augment,
            box_tolerance=box_tolerance,
            num_workers=num_workers,
            persistent_workers=persistent_workers,
            pin_memory=pin_memory,
            seed=seed,
        )
        check_int("tile_size", tile_size, minimum=16, hint="Typical: 400 (what the validation images measure).")
        self.overlap_px = _overlap_px(overlap, tile_size)
        check_number("min_visible", min_visible, low=0, high=1)
        check_number("min_side", min_side, low=0)
        if label_set == "alive_dead":
            raise ValueError(
                "`label_set='alive_dead'` is not available: only SOAP_061 (a validation image) labels its crowns "
                "Alive/Dead, the training mosaics label every crown 'Tree', so no training box would carry those "
                "classes. Use label_set='tree', or VOCDetectionDataModule(..., classes=['Alive', 'Dead']) on images "
                "labelled that way."
            )
        if label_set != "tree":
            raise ValueError(f"`label_set` must be 'tree', got {label_set!r}.")
        self.data_dir = Path(data_dir) if data_dir is not None else deepforest_data_dir()
        if not self.data_dir.is_dir():
            raise FileNotFoundError(f"`data_dir` {str(data_dir)!r} is not a folder.")
        self.tile_size, self.overlap = tile_size, overlap
        self.min_visible, self.min_side, self.label_set = float(min_visible), float(min_side), label_set
        #: clipped remnants dropped while tiling (set by ``setup``)
        self.dropped_boxes: int | None = None
        self.save_hyperparameters()

    @property
    def classes(self) -> list[str]:
        """Foreground class names; label ``i + 1`` is ``classes[i]`` (as ``DetectionDataModule.classes``)."""
        return ["Tree"]

    def build_splits(self) -> tuple[DetectionDataset, DetectionDataset]:
        """Decode and tile the training mosaics, read the validation images.

        Returns:
            ``(training tiles, validation images)``.
        """
        images, targets, names, dropped = [], [], [], 0
        for stem in TRAIN_IMAGES:
            image, boxes, _, file = _read(self.data_dir, stem, self.box_tolerance)
            labels = torch.ones(len(boxes), dtype=torch.long)  # every crown is "Tree"
            tiles, n = tile_image(image, boxes, labels, tile_size=self.tile_size, overlap=self.overlap_px,
                                  min_visible=self.min_visible, min_side=self.min_side, source=file)  # fmt: skip
            dropped += n
            images += [t.image for t in tiles]
            targets += [{"boxes": t.boxes, "labels": t.labels} for t in tiles]
            names += [f"{file} tile at x={t.x}, y={t.y}" for t in tiles]
        self.dropped_boxes = dropped
        train_set = self.make_dataset(images, targets, names=names, train=True)
        #: the file each training tile was cut from
        self.tile_sources = [name.split(" tile at ")[0] for name in names]
        val_images, val_targets, val_names = [], [], []
        for stem in VAL_IMAGES:
            image, boxes, _, file = _read(self.data_dir, stem, self.box_tolerance)
            val_images.append(image)
            val_targets.append({"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.long)})
            val_names.append(file)
        val_set = self.make_dataset(val_images, val_targets, names=val_names, train=False)
        n_boxes = sum(len(t["boxes"]) for t in train_set.targets)
        log.info(
            "TreeCrownDataModule: %d training tiles of %d px (overlap >= %d px) with %d boxes; %d clipped remnants "
            "dropped (min_visible=%g, min_side=%g); %d validation images with %d boxes.",
            len(train_set), self.tile_size, self.overlap_px, n_boxes, dropped, self.min_visible, self.min_side,
            len(val_set), sum(len(t["boxes"]) for t in val_targets),
        )  # fmt: skip
        return train_set, val_set


def _overlap_px(overlap: Any, tile_size: int) -> int:
    """``overlap`` in pixels: a share in ``[0, 1)`` of ``tile_size``, or an int count below it."""
    ok = not isinstance(overlap, bool) and (
        (isinstance(overlap, float) and 0 <= overlap < 1) or (isinstance(overlap, int) and 0 <= overlap < tile_size)
    )
    if not ok:
        raise ValueError(
            f"`overlap` must be a share of tile_size in [0, 1) or an int number of pixels in [0, {tile_size}), got "
            f"{overlap!r}. Typical: 0.1."
        )
    return round(overlap * tile_size) if isinstance(overlap, float) else overlap
