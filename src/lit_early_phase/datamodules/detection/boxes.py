"""Detection boxes: the checks every target passes, and readers of Pascal-VOC XML and COCO json annotations.

Every box is absolute-pixel ``xyxy`` float32 (torchvision's format): ``0 <= x1 < x2 <= width`` and
``0 <= y1 < y2 <= height``. Coordinates are taken as written in the file (no VOC "1-based" shift), as
deepforest and its CSV files do. Labels are int64 ``1..K``: ``0`` is the background in torchvision's models, so
a foreground box never has it, and ``num_classes`` counts the background (``K + 1``).

Boxes that overhang the image by at most ``tolerance`` pixels (annotation tools round outwards) are clipped to
it; a box that overhangs more, or lies fully outside, is refused with the file and the box named.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

#: default overhang, in pixels, clipped without complaint
BOX_TOLERANCE: float = 2.0


@dataclass(frozen=True)
class Annotation:
    """The boxes of one image as an annotation file gives them (class names, not yet labels).

    Attributes:
        image: the image's file name as the annotation names it (VOC ``<filename>``, COCO ``file_name``).
        width: image width the annotation states (``None``: not stated).
        height: image height the annotation states.
        boxes: ``(N, 4)`` float32 ``xyxy`` pixels, as written (not yet checked against the image).
        names: the class name of each box.
        source: where it was read, for error messages.
    """

    image: str
    width: int | None
    height: int | None
    boxes: Tensor
    names: list[str] = field(default_factory=list)
    source: str = ""


def check_boxes(boxes: Any, *, width: int, height: int, where: str, tolerance: float = BOX_TOLERANCE) -> Tensor:
    """Check ``xyxy`` boxes against an image of ``width x height``; clip the ones overhanging by <= ``tolerance``.

    Args:
        boxes: ``(N, 4)`` numbers (``N`` may be 0).
        width: image width in pixels.
        height: image height in pixels.
        where: the file or image, for messages.
        tolerance: pixels a box may overhang the image and still be clipped to it.

    Returns:
        The boxes as a float32 ``(N, 4)`` tensor, clipped to the image.

    Raises:
        ValueError: for a bad shape, a non-finite value, ``x2 <= x1`` or ``y2 <= y1``, a box fully outside the
            image or overhanging it by more than ``tolerance``, naming ``where``, the box's index and values.

    Example:
        >>> check_boxes([[0, 0, 10, 10], [395, 5, 401, 20]], width=400, height=400, where="a.png").tolist()
        [[0.0, 0.0, 10.0, 10.0], [395.0, 5.0, 400.0, 20.0]]
        >>> check_boxes([[5, 0, 5, 10]], width=400, height=400, where="a.png")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: a.png: box 0 [5.0, 0.0, 5.0, 10.0] has x2 <= x1 or y2 <= y1 (an empty box); ...
    """
    b = torch.as_tensor(boxes, dtype=torch.float32)
    if b.numel() == 0:
        return b.reshape(0, 4)
    if b.dim() != 2 or b.shape[1] != 4:
        raise ValueError(f"{where}: boxes must have shape (N, 4) (xyxy pixels), got {tuple(b.shape)}.")
    if not torch.isfinite(b).all():
        i = int((~torch.isfinite(b)).any(1).nonzero()[0])
        raise ValueError(f"{where}: box {i} {b[i].tolist()} has a non-finite coordinate.")
    for i in ((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])).nonzero().flatten().tolist()[:1]:
        raise ValueError(
            f"{where}: box {i} {b[i].tolist()} has x2 <= x1 or y2 <= y1 (an empty box); boxes are xyxy pixels "
            f"with x1 < x2, y1 < y2. Fix or remove it in the annotation."
        )
    outside = (b[:, 2] <= 0) | (b[:, 3] <= 0) | (b[:, 0] >= width) | (b[:, 1] >= height)
    for i in outside.nonzero().flatten().tolist()[:1]:
        raise ValueError(
            f"{where}: box {i} {b[i].tolist()} lies fully outside the {width}x{height} image; check that the "
            f"annotation belongs to this image (and its coordinates are pixels, xyxy), or remove the box."
        )
    overhang = torch.stack([-b[:, 0], -b[:, 1], b[:, 2] - width, b[:, 3] - height], 1).amax(1)
    for i in (overhang > tolerance).nonzero().flatten().tolist()[:1]:
        raise ValueError(
            f"{where}: box {i} {b[i].tolist()} overhangs the {width}x{height} image by {float(overhang[i]):g} px, "
            f"more than the tolerance of {tolerance:g} px; fix the annotation or raise `box_tolerance` to clip it."
        )
    return torch.stack([b[:, 0].clamp(0, width), b[:, 1].clamp(0, height), b[:, 2].clamp(0, width),
                        b[:, 3].clamp(0, height)], 1)  # fmt: skip


def check_labels(labels: Any, *, num_classes: int, where: str) -> Tensor:
    """Check foreground labels: integers in ``1..num_classes - 1``.

    Args:
        labels: ``(N,)`` integer labels.
        num_classes: torchvision's count, background included.
        where: the file or image, for messages.

    Returns:
        The labels as an int64 ``(N,)`` tensor.

    Raises:
        ValueError: for a label 0 (background), one ``>= num_classes``, or non-integer labels.

    Example:
        >>> check_labels([1, 2], num_classes=3, where="a.png").tolist()
        [1, 2]
    """
    t = torch.as_tensor(labels)
    if t.numel() == 0:  # `[]` becomes a float tensor
        return torch.zeros(0, dtype=torch.long)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise ValueError(f"{where}: labels must be integers, got dtype {t.dtype}.")
    t = t.long().reshape(-1)
    if (t == 0).any():
        i = int((t == 0).nonzero()[0])
        raise ValueError(
            f"{where}: box {i} has label 0, which torchvision's detectors reserve for the background; number "
            f"foreground classes from 1 (shift your labels by one)."
        )
    bad = (t < 0) | (t >= num_classes)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"{where}: box {i} has label {int(t[i])}, outside 1..{num_classes - 1} for num_classes={num_classes} "
            f"(which counts the background); use num_classes={int(t.max()) + 1} or fix the label."
        )
    return t


def check_target(target: Any, *, num_classes: int, width: int, height: int, where: str,
                 tolerance: float = BOX_TOLERANCE) -> dict[str, Tensor]:  # fmt: skip
    """Check a ``{"boxes", "labels"}`` target for an image of ``width x height`` (see the two checks above).

    Args:
        target: a mapping with ``"boxes"`` ``(N, 4)`` and ``"labels"`` ``(N,)``.
        num_classes: torchvision's count, background included.
        width: image width.
        height: image height.
        where: the image, for messages.
        tolerance: see :func:`check_boxes`.

    Returns:
        A new dict with float32 boxes (clipped) and int64 labels (other keys kept).

    Raises:
        ValueError: for a missing key, mismatched lengths, or a bad box or label.
    """
    if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
        raise ValueError(f"{where}: a target must be a dict with 'boxes' and 'labels', got {target!r:.80}.")
    boxes = check_boxes(target["boxes"], width=width, height=height, where=where, tolerance=tolerance)
    labels = check_labels(target["labels"], num_classes=num_classes, where=where)
    if len(labels) != len(boxes):
        raise ValueError(f"{where}: {len(boxes)} boxes but {len(labels)} labels; give one label per box.")
    return {**target, "boxes": boxes, "labels": labels}


def encode_names(names: Sequence[str], classes: Sequence[str], *, where: str) -> Tensor:
    """Class names to labels ``1..K`` in the order of ``classes``.

    Args:
        names: a class name per box.
        classes: the foreground class names (label ``i + 1`` for ``classes[i]``).
        where: the annotation file, for messages.

    Returns:
        int64 ``(N,)`` labels.

    Raises:
        ValueError: for a name not in ``classes``.

    Example:
        >>> encode_names(["Dead", "Alive"], ["Alive", "Dead"], where="a.xml").tolist()
        [2, 1]
    """
    index = {name: i + 1 for i, name in enumerate(classes)}
    for i, name in enumerate(names):
        if name not in index:
            raise ValueError(
                f"{where}: box {i} has class {name!r}, not among `classes` {list(classes)}; add it to `classes` "
                f"or fix the annotation."
            )
    return torch.tensor([index[n] for n in names], dtype=torch.long)


def _text(node: ET.Element, path: str, where: str) -> str:
    found = node.find(path)
    if found is None or found.text is None or not found.text.strip():
        raise ValueError(f"{where}: missing <{path}> in a Pascal-VOC annotation.")
    return found.text.strip()


def read_voc(path: str | Path) -> Annotation:
    """Read one Pascal-VOC XML file: ``<filename>``, ``<size>`` and each ``<object>``'s name and ``<bndbox>``.

    Args:
        path: the XML file.

    Returns:
        The :class:`Annotation` (no ``<object>``: a background-only image, zero boxes).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not XML or lacks a field (naming the file and the object).

    Example:
        >>> import importlib.util
        >>> data = importlib.util.find_spec("deepforest").submodule_search_locations[0] + "/data"
        >>> a = read_voc(data + "/OSBS_029.xml")
        >>> a.image, a.width, a.height, a.boxes.shape, a.boxes[0].tolist(), a.names[0]
        ('OSBS_029.tif', 400, 400, torch.Size([61, 4]), [203.0, 67.0, 227.0, 90.0], 'Tree')
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Pascal-VOC annotation {str(path)!r} does not exist; check the annotations folder.")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: not a readable XML file ({err}).") from err
    where = str(path)
    size = root.find("size")
    width = int(float(_text(size, "width", where))) if size is not None else None
    height = int(float(_text(size, "height", where))) if size is not None else None
    boxes, names = [], []
    for i, obj in enumerate(root.iter("object")):
        at = f"{where}, object {i}"
        names.append(_text(obj, "name", at))
        try:
            boxes.append([float(_text(obj, f"bndbox/{k}", at)) for k in ("xmin", "ymin", "xmax", "ymax")])
        except ValueError as err:
            raise ValueError(f"{at}: bad <bndbox> ({err}).") from err
    filename = root.findtext("filename", default="").strip() or path.stem
    return Annotation(filename, width, height, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), names, where)


def read_coco(path: str | Path) -> tuple[list[Annotation], list[str]]:
    """Read a COCO detection json: ``images``, ``annotations`` (``bbox`` as ``[x, y, w, h]``) and ``categories``.

    Crowd annotations (``iscrowd: 1``) are skipped, as torchvision's detection references do. Images without
    annotations are background-only.

    Args:
        path: the json file.

    Returns:
        ``(annotations, categories)``: one :class:`Annotation` per image (boxes as ``xyxy``), in the file's
        order, and the category names ordered by category id.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: for a file that is not COCO json, an annotation of an unknown image or category id, or a
            malformed ``bbox``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file {str(path)!r} does not exist; check `annotation_file`.")
    try:
        data = json.loads(path.read_text())
        images, anns, cats = data["images"], data.get("annotations", []), data["categories"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path}: not a COCO detection file (json with 'images', 'annotations', 'categories'): {err!r}."
        ) from err
    names = {int(c["id"]): str(c["name"]) for c in cats}
    per_image: dict[int, tuple[list, list]] = {int(im["id"]): ([], []) for im in images}
    for j, ann in enumerate(anns):
        at = f"{path}, annotation {j} (id {ann.get('id')})"
        if ann.get("iscrowd", 0):
            continue
        if int(ann.get("image_id", -1)) not in per_image:
            raise ValueError(f"{at}: image_id {ann.get('image_id')!r} is not among the file's images.")
        if int(ann.get("category_id", -1)) not in names:
            raise ValueError(f"{at}: category_id {ann.get('category_id')!r} is not among the file's categories.")
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise ValueError(f"{at}: bbox must be [x, y, width, height], got {bbox!r}.")
        x, y, w, h = (float(v) for v in bbox)
        boxes, labels = per_image[int(ann["image_id"])]
        boxes.append([x, y, x + w, y + h])
        labels.append(names[int(ann["category_id"])])
    out = []
    for im in images:
        boxes, labels = per_image[int(im["id"])]
        w, h = im.get("width"), im.get("height")
        tensor = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        out.append(Annotation(str(im["file_name"]), w and int(w), h and int(h), tensor, labels, f"{path}"))
    return out, [names[k] for k in sorted(names)]
