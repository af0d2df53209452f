"""DataModules over a user's own folder of images with Pascal-VOC XML or COCO json boxes.

:class:`FolderDetectionDataModule` reads the annotations (subclasses), checks every box and splits by image;
:class:`VOCDetectionDataModule` and :class:`CocoDetectionDataModule` read the two formats (readers and checks:
:mod:`~lit_early_phase.datamodules.detection.boxes`). Batches, augmentation and loaders are the shared
:class:`~lit_early_phase.datamodules.DetectionDataModule`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lit_early_phase._validation import check_int
from lit_early_phase.datamodules.detection.base import DetectionDataModule
from lit_early_phase.datamodules.detection.boxes import Annotation, check_boxes, encode_names, read_coco, read_voc
from lit_early_phase.datamodules.detection.dataset import IMAGE_SUFFIXES, DetectionDataset, load_image
from lit_early_phase.datamodules.loaders import check_val_size


class FolderDetectionDataModule(DetectionDataModule):
    """Base of the folder DataModules: reads annotations (subclasses), checks, splits by image, serves lists.

    Subclasses implement :meth:`read_annotations` (cheap: no image decoding, so :attr:`num_classes` is known
    before ``setup``). The validation images are drawn from all images with ``split_seed`` (the same on every
    rank and resume); ``test_dataloader`` serves the validation images too (a folder has no separate test split).

    Args:
        images_dir: folder of the images.
        classes: foreground class names (label ``i + 1`` for ``classes[i]``); ``None``: every name found in the
            annotations, sorted.
        val_size: images held out for validation: a share in ``[0, 1)`` or a count; ``0`` for none.
        split_seed: seed of the validation split.
        **kwargs: :class:`~lit_early_phase.datamodules.DetectionDataModule` arguments (``batch_size``,
            ``augment``, ``box_tolerance``, ``num_workers``, ``persistent_workers``, ``pin_memory``, ``seed``).

    Raises:
        FileNotFoundError: for a missing ``images_dir``.
        ValueError: for a bad argument (naming it).
    """

    def __init__(
        self,
        images_dir: str,
        classes: Sequence[str] | None = None,
        val_size: int | float = 0.2,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_val_size(val_size, unit="images")
        check_int("split_seed", split_seed)
        if classes is not None and (isinstance(classes, str) or not classes or len(set(classes)) != len(classes)):
            raise ValueError(f"`classes` must be a non-empty list of distinct class names or None, got {classes!r}.")
        self.images_dir = Path(images_dir)
        if not self.images_dir.is_dir():
            raise FileNotFoundError(f"`images_dir` {str(images_dir)!r} is not a folder.")
        self.given_classes = list(classes) if classes is not None else None
        self.val_size, self.split_seed = val_size, split_seed
        self._records: list[tuple[Path, Annotation]] | None = None

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

    def build_splits(self) -> tuple[DetectionDataset, DetectionDataset | None]:
        """Decode the images once, check every box, split by image.

        Returns:
            ``(training set, validation set or None with val_size=0)``.

        Raises:
            ValueError: for an annotation whose stated size is not its image's, a bad box or label, or a
                ``val_size`` that leaves no training image.
        """
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

        def subset(idx: list[int], *, train: bool) -> DetectionDataset:
            pick = sorted(idx)
            return self.make_dataset([images[i] for i in pick], [targets[i] for i in pick],
                                     names=[names[i] for i in pick], train=train)  # fmt: skip

        return subset(order[n_val:], train=True), (subset(order[:n_val], train=False) if n_val else None)


def _images_in(folder: Path) -> list[Path]:
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ValueError(f"`images_dir` {str(folder)!r} holds no image ({', '.join(IMAGE_SUFFIXES)} files).")
    return found


class VOCDetectionDataModule(FolderDetectionDataModule):
    """A folder of images with one Pascal-VOC XML each (``<stem>.xml`` beside or in ``annotations_dir``).

    Images and XML files are paired by file stem (``OSBS_029.png`` with ``OSBS_029.xml``): the XML's
    ``<filename>`` is not used, since tools often write the original file's name there (deepforest's
    ``OSBS_029.xml`` names ``OSBS_029.tif``). An XML without ``<object>`` is a background-only image; an image
    without an XML is refused (so a forgotten annotation is not silently read as "no objects"). Other arguments:
    :class:`FolderDetectionDataModule`.

    Args:
        images_dir: folder of the images.
        annotations_dir: folder of the XML files; ``None``: ``images_dir``.
        **kwargs: :class:`FolderDetectionDataModule` arguments (``classes``, ``batch_size``, ``val_size``, ...).

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


class CocoDetectionDataModule(FolderDetectionDataModule):
    """A folder of images with one COCO detection json listing them (``file_name`` relative to ``images_dir``).

    Category names become labels ``1..K`` (ordered by category id, or as ``classes`` gives them), whatever the
    file's ids are. Images listed without annotations are background-only; images in the folder that the json
    does not list are not used. Crowd annotations are skipped.

    Args:
        images_dir: folder of the images.
        annotation_file: the COCO json.
        **kwargs: :class:`FolderDetectionDataModule` arguments (``classes``, ``batch_size``, ``val_size``, ...).

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
