"""Cut a large image and its boxes into overlapping tiles, for training a detector on tile-sized inputs.

Tile origins are spread evenly along each side so that the first tile starts at 0, the last ends at the image's
edge and neighbours overlap by *at least* ``overlap`` pixels (no padding, every pixel is in some tile). A side
shorter than the tile gives one tile of that side's length.

A box fully inside a tile is kept, shifted into the tile's coordinates. A box that crosses a tile's edge is
clipped to the tile; the clipped remnant is kept only if it keeps at least ``min_visible`` of the box's area and
both its sides are at least ``min_side`` pixels (a sliver of a crown teaches the detector nothing but noise).
Remnants below that are *dropped* and counted; boxes that do not touch a tile are simply not in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Tile:
    """One tile: its pixels, its boxes in tile coordinates and where it was cut from.

    Attributes:
        image: ``(C, h, w)`` tensor (a copy, not a view of the large image).
        boxes: ``(N, 4)`` float32 ``xyxy`` in tile pixels.
        labels: ``(N,)`` int64.
        source: the large image's name.
        x: column of the tile's left edge in the large image.
        y: row of the tile's top edge.
    """

    image: Tensor
    boxes: Tensor
    labels: Tensor
    source: str
    x: int
    y: int


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread tile origins along a side of ``length`` px: first at 0, last at ``length - tile``.

    Args:
        length: the side's length.
        tile: the tile's side.
        overlap: the least overlap of neighbouring tiles, ``0 <= overlap < tile``.

    Returns:
        The origins, increasing.

    Example:
        >>> tile_starts(1249, 400, 40), tile_starts(400, 400, 40), tile_starts(300, 400, 40)
        ([0, 283, 566, 849], [0], [0])
    """
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / (tile - overlap)) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def crop_boxes(
    boxes: Tensor, labels: Tensor, window: tuple[int, int, int, int], *, min_visible: float, min_side: float
) -> tuple[Tensor, Tensor, int]:
    """The boxes seen through ``window = (x1, y1, x2, y2)``, in the window's coordinates.

    Args:
        boxes: ``(N, 4)`` float ``xyxy`` in the large image.
        labels: ``(N,)`` labels.
        window: the tile's rectangle in the large image.
        min_visible: least share of a box's area its clipped remnant must keep, in ``[0, 1]``.
        min_side: least width and height of a kept remnant, in pixels.

    Returns:
        ``(boxes, labels, dropped)``: the kept boxes shifted into the window, their labels, and how many boxes
        touched the window but were dropped as too small a remnant.

    Example:
        >>> b = torch.tensor([[10.0, 10, 20, 20], [95, 10, 110, 20], [50, 50, 60, 60]])
        >>> kept, lab, dropped = crop_boxes(b, torch.tensor([1, 1, 1]), (0, 0, 100, 100), min_visible=0.5, min_side=2)
        >>> kept.tolist(), dropped
        ([[10.0, 10.0, 20.0, 20.0], [50.0, 50.0, 60.0, 60.0]], 1)
    """
    x1, y1, x2, y2 = window
    clipped = torch.stack(
        [boxes[:, 0].clamp(x1, x2), boxes[:, 1].clamp(y1, y2), boxes[:, 2].clamp(x1, x2), boxes[:, 3].clamp(y1, y2)],
        1,
    )
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    touches = (w > 0) & (h > 0)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = touches & (w * h >= min_visible * area) & (w >= min_side) & (h >= min_side)
    shift = torch.tensor([x1, y1, x1, y1], dtype=boxes.dtype)
    return clipped[keep] - shift, labels[keep], int((touches & ~keep).sum())


def tile_image(
    image: Tensor,
    boxes: Tensor,
    labels: Tensor,
    *,
    tile_size: int,
    overlap: int,
    min_visible: float = 0.5,
    min_side: float = 2.0,
    source: str = "",
) -> tuple[list[Tile], int]:
    """Cut ``image`` ``(C, H, W)`` into overlapping tiles with their boxes (see the module docstring).

    Args:
        image: the large image.
        boxes: its ``(N, 4)`` ``xyxy`` boxes.
        labels: its ``(N,)`` labels.
        tile_size: the tiles' side in pixels.
        overlap: least overlap of neighbouring tiles in pixels, ``0 <= overlap < tile_size``.
        min_visible: see :func:`crop_boxes`.
        min_side: see :func:`crop_boxes`.
        source: the image's name, kept in each :class:`Tile`.

    Returns:
        ``(tiles, dropped)``: the tiles, row by row, and the count of remnants dropped over all tiles (a box
        cut by several tile edges may count once per tile it was dropped from).

    Raises:
        ValueError: for an overlap outside ``[0, tile_size)``.

    Example:
        >>> tiles, dropped = tile_image(torch.zeros(3, 500, 700), torch.tensor([[0.0, 0, 50, 50]]),
        ...                             torch.tensor([1]), tile_size=400, overlap=40)
        >>> [(t.x, t.y, tuple(t.image.shape)) for t in tiles], dropped
        ([(0, 0, (3, 400, 400)), (300, 0, (3, 400, 400)), (0, 100, (3, 400, 400)), (300, 100, (3, 400, 400))], 0)
    """
    if not 0 <= overlap < tile_size:
        raise ValueError(f"`overlap` must be in [0, tile_size={tile_size}) pixels, got {overlap!r}.")
    height, width = image.shape[-2:]
    tiles, dropped = [], 0
    for y in tile_starts(height, tile_size, overlap):
        for x in tile_starts(width, tile_size, overlap):
            x2, y2 = min(x + tile_size, width), min(y + tile_size, height)
            kept, lab, n = crop_boxes(boxes, labels, (x, y, x2, y2), min_visible=min_visible, min_side=min_side)
            dropped += n
            tiles.append(Tile(image[:, y:y2, x:x2].clone(), kept, lab, source, x, y))
    return tiles, dropped
