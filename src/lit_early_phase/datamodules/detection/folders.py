"""Object-detection data: a dataset of images with box targets, box-aware augmentation, and list batches.

A batch is torchvision's ``(images, targets)``: ``images`` a list of float32 ``(3, H, W)`` tensors in ``[0, 1]``
(sizes may differ), ``targets`` a list of ``{"boxes": float32 (N, 4) xyxy pixels, "labels": int64 (N,)}`` with
labels ``1..K`` (``N`` may be 0). :class:`VOCDetectionDataModule` and :class:`CocoDetectionDataModule` serve a
user's own folder of images with Pascal-VOC XML or COCO json boxes (readers and checks:
:mod:`lit_early_phase.datamodules.detection.boxes`);
:class:`~lit_early_phase.datamodules.detection.tree_crowns.TreeCrownDataModule` serves deepforest's tree crowns.

Augmentation (training only) is a torchvision ``transforms.v2`` transform called as ``augment(image, target)``
with the boxes as ``tv_tensors.BoundingBoxes``, so flips, crops and resizes move the boxes with the pixels. With a
:class:`~lit_early_phase.datamodules.loaders.SampleKey` it draws from a generator seeded by
``(seed, epoch, index)``, as :class:`~lit_early_phase.datamodules.vision.images.ImageTensorDataset` does: the same
augmentation with any number of workers or ranks and after a resume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lit_early_phase._validation import check_int, check_number
from lit_early_phase.datamodules.detection.boxes import (
    BOX_TOLERANCE,
    Annotation,
    check_boxes,
    check_target,
    encode_names,
    read_coco,
    read_voc,
)
from lit_early_phase.datamodules.loaders import (
    SampleKey,
    SplitLoadersMixin,
    check_batch_size,
    check_loader_args,
    check_val_size,
)
from lit_early_phase.datamodules.vision.images import _sample_seed

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

    Every target is checked when the dataset is built
    (:func:`~lit_early_phase.datamodules.detection.boxes.check_target`): boxes ``xyxy`` inside the image
    (overhangs up to ``tolerance`` px clipped), labels ``1..num_classes - 1``.
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
                state = torch.get_rng_state()
                try:
                    torch.default_generator.manual_seed(_sample_seed(key))
                    image, target = self._augmented(image, target)
                finally:
                    torch.set_rng_state(state)
            else:
                image, target = self._augmented(image, target)
        return image.float().div_(255.0), target


class DetectionDataModule(SplitLoadersMixin, L.LightningDataModule):
    """Base of the folder DataModules: reads annotations (subclasses), checks, splits by image, serves lists.

    Subclasses implement :meth:`read_annotations` (cheap: no image decoding, so :attr:`num_classes` is known
    before ``setup``). The validation images are drawn from all images with ``split_seed`` (the same on every
    rank and resume); ``test_dataloader`` serves the validation images too (a folder has no separate test split).

    Args:
        images_dir: folder of the images.
        classes: foreground class names (label ``i + 1`` for ``classes[i]``); ``None``: every name found in the
            annotations, sorted.
        batch_size: images per batch, at least 2.
        val_size: images held out for validation: a share in ``[0, 1)`` or a count; ``0`` for none.
        augment: random horizontal + vertical flips of training images (boxes follow).
        box_tolerance: pixels a box may overhang its image and be clipped (more is refused).
        num_workers: DataLoader workers.
        persistent_workers: keep workers alive across epochs; ``None``: whenever ``num_workers > 0``.
        pin_memory: pin host memory.
        split_seed: seed of the validation split.
        seed: seed of the training order and augmentation; ``None`` takes ``seed_everything``'s (else 0).
    """

    def __init__(
        self,
        images_dir: str,
        classes: Sequence[str] | None = None,
        batch_size: int = 4,
        val_size: int | float = 0.2,
        augment: bool = True,
        box_tolerance: float = BOX_TOLERANCE,
        num_workers: int = 0,
        persistent_workers: bool | None = None,
        pin_memory: bool = False,
        split_seed: int = 0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_batch_size(batch_size, typical="2-16 for detection")
        check_val_size(val_size, unit="images")
        check_number("box_tolerance", box_tolerance, low=0)
        check_int("split_seed", split_seed)
        check_loader_args(
            num_workers=num_workers, persistent_workers=persistent_workers, pin_memory=pin_memory, seed=seed
        )
        if classes is not None and (isinstance(classes, str) or not classes or len(set(classes)) != len(classes)):
            raise ValueError(f"`classes` must be a non-empty list of distinct class names or None, got {classes!r}.")
        self.images_dir = Path(images_dir)
        if not self.images_dir.is_dir():
            raise FileNotFoundError(f"`images_dir` {str(images_dir)!r} is not a folder.")
        self.given_classes = list(classes) if classes is not None else None
        self.batch_size, self.val_size, self.augment = batch_size, val_size, augment
        self.box_tolerance = float(box_tolerance)
        self.num_workers, self.persistent_workers, self.pin_memory = num_workers, persistent_workers, pin_memory
        self.split_seed, self.seed = split_seed, seed
        self.sample_keys = augment
        self._records: list[tuple[Path, Annotation]] | None = None
        self.train_set: DetectionDataset | None = None
        self.val_set: DetectionDataset | None = None
        self.test_set: DetectionDataset | None = None

    collate_fn = staticmethod(detection_collate)

    def read_annotations(self) -> list[tuple[Path, Annotation]]:
        """``(image file, annotation)`` for every image (subclasses)."""
        raise NotImplementedError

    def _load(self) -> list[tuple[Path, Annotation]]:
        if self._records is None:
            self._records = self.read_annotations()
        return self._records

    @property
    def classes(self) -> list[str]:
        """Foreground class names; label ``i + 1`` is ``classes[i]``."""
        if self.given_classes is not None:
            return self.given_classes
        return sorted({name for _, ann in self._load() for name in ann.names})

    @property
    def num_classes(self) -> int:
        """Foreground classes + 1 (the background): torchvision's ``num_classes``."""
        return len(self.classes) + 1

    def setup(self, stage: str | None = None) -> None:
        """Decode the images once, check every box, split by image."""
        if self.train_set is not None:
            return
        records, classes = self._load(), self.classes
        images, targets, names = [], [], []
        for path, ann in records:
            image = load_image(path)
            h, w = image.shape[-2:]
            if (ann.width, ann.height) != (None, None) and (ann.width, ann.height) != (w, h):
                raise ValueError(
                    f"{ann.source}: the annotation states a {ann.width}x{ann.height} image but {path} is {w}x{h}; "
                    f"its boxes would be in the wrong frame. Pair the file with its own image."
                )
            # checked here too so that a message names the annotation file as well as the image
            where = f"{ann.source} (image {path.name})"
            boxes = check_boxes(ann.boxes, width=w, height=h, where=where, tolerance=self.box_tolerance)
            targets.append({"boxes": boxes, "labels": encode_names(ann.names, classes, where=where)})
            images.append(image)
            names.append(str(path))
        n = len(images)
        n_val = round(self.val_size * n) if isinstance(self.val_size, float) else self.val_size
        if n_val >= n:
            raise ValueError(f"`val_size={self.val_size}` leaves no training images out of {n}; use a smaller one.")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed)).tolist()
        kw = {"num_classes": self.num_classes, "tolerance": self.box_tolerance}

        def subset(idx: list[int], augment: Any | None = None) -> DetectionDataset:
            pick = sorted(idx)
            return DetectionDataset([images[i] for i in pick], [targets[i] for i in pick],
                                    names=[names[i] for i in pick], augment=augment, **kw)  # fmt: skip

        self.train_set = subset(order[n_val:], flip_augmentation() if self.augment else None)
        self.val_set = subset(order[:n_val]) if n_val else None
        self.test_set = self.val_set

    def test_dataloader(self) -> DataLoader:
        """The validation images (see the class docstring).

        Raises:
            RuntimeError: with ``val_size=0`` (there are none).
        """
        if self.train_set is not None and self.test_set is None:
            raise RuntimeError("`test_dataloader` serves the validation images, and `val_size=0` left none.")
        return super().test_dataloader()


def _images_in(folder: Path) -> list[Path]:
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ValueError(f"`images_dir` {str(folder)!r} holds no image ({', '.join(IMAGE_SUFFIXES)} files).")
    return found


class VOCDetectionDataModule(DetectionDataModule):
    """A folder of images with one Pascal-VOC XML each (``<stem>.xml`` beside or in ``annotations_dir``).

    Images and XML files are paired by file stem (``OSBS_029.png`` with ``OSBS_029.xml``): the XML's
    ``<filename>`` is not used, since tools often write the original file's name there (deepforest's
    ``OSBS_029.xml`` names ``OSBS_029.tif``). An XML without ``<object>`` is a background-only image; an image
    without an XML is refused (so a forgotten annotation is not silently read as "no objects"). Other arguments:
    :class:`DetectionDataModule`.

    Args:
        images_dir: folder of the images.
        annotations_dir: folder of the XML files; ``None``: ``images_dir``.
        **kwargs: :class:`DetectionDataModule` arguments (``classes``, ``batch_size``, ``val_size``, ...).

    Raises:
        FileNotFoundError: for a missing folder, or an image without its XML.
        ValueError: for an empty images folder, a bad XML, an unknown class name when ``classes`` is given, a
            bad box (see :mod:`~lit_early_phase.datamodules.detection.boxes`).

    Example:
        >>> import importlib.util
        >>> data = importlib.util.find_spec("deepforest").submodule_search_locations[0] + "/data"
        >>> import shutil, tempfile
        >>> d = tempfile.mkdtemp()
        >>> for name in ("SOAP_061.png", "SOAP_061.xml"):
        ...     _ = shutil.copy(f"{data}/{name}", d)
        >>> dm = VOCDetectionDataModule(d, batch_size=2, val_size=0)
        >>> dm.classes, dm.num_classes
        (['Alive', 'Dead'], 3)
    """

    def __init__(self, images_dir: str, annotations_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(images_dir, **kwargs)
        self.annotations_dir = Path(annotations_dir) if annotations_dir is not None else self.images_dir
        if not self.annotations_dir.is_dir():
            raise FileNotFoundError(f"`annotations_dir` {str(annotations_dir)!r} is not a folder.")
        self.save_hyperparameters()

    def read_annotations(self) -> list[tuple[Path, Annotation]]:
        """Each image with its ``<stem>.xml``."""
        records = []
        for image in _images_in(self.images_dir):
            xml = self.annotations_dir / f"{image.stem}.xml"
            if not xml.is_file():
                raise FileNotFoundError(
                    f"Image {str(image)!r} has no annotation {str(xml)!r}; write one (an XML without <object> for a "
                    f"background-only image) or move the image out of `images_dir`."
                )
            records.append((image, read_voc(xml)))
        return records


class CocoDetectionDataModule(DetectionDataModule):
    """A folder of images with one COCO detection json listing them (``file_name`` relative to ``images_dir``).

    Category names become labels ``1..K`` (ordered by category id, or as ``classes`` gives them), whatever the
    file's ids are. Images listed without annotations are background-only; images in the folder that the json
    does not list are not used. Crowd annotations are skipped.

    Args:
        images_dir: folder of the images.
        annotation_file: the COCO json.
        **kwargs: :class:`DetectionDataModule` arguments (``classes``, ``batch_size``, ``val_size``, ...).

    Raises:
        FileNotFoundError: for a missing folder, json or listed image.
        ValueError: for an empty images folder, a bad json, an unknown class name when ``classes`` is given, a
            bad box.
    """

    def __init__(self, images_dir: str, annotation_file: str, **kwargs: Any) -> None:
        super().__init__(images_dir, **kwargs)
        self.annotation_file = Path(annotation_file)
        if not self.annotation_file.is_file():
            raise FileNotFoundError(f"`annotation_file` {str(annotation_file)!r} does not exist.")
        self._coco_categories: list[str] | None = None
        self.save_hyperparameters()

    def _categories(self) -> list[str]:
        if self._coco_categories is None:
            self._coco_categories = read_coco(self.annotation_file)[1]
        return self._coco_categories

    @property
    def classes(self) -> list[str]:
        """Foreground class names: ``classes`` as given, else the json's categories by id."""
        return self.given_classes if self.given_classes is not None else self._categories()

    def read_annotations(self) -> list[tuple[Path, Annotation]]:
        """Each listed image with its boxes."""
        _images_in(self.images_dir)
        records = []
        for ann in read_coco(self.annotation_file)[0]:
            image = self.images_dir / ann.image
            if not image.is_file():
                raise FileNotFoundError(
                    f"{self.annotation_file} lists {ann.image!r}, which is not in `images_dir` "
                    f"{str(self.images_dir)!r}; copy it there or remove it from the json."
                )
            records.append((image, ann))
        return records
