"""Series in memory: label encoding, a stratified validation split, z-normalisation, a dataset, a padding collate.

Pure data handling (NumPy and torch), independent of where the series come from (see
:mod:`lit_early_phase.datamodules.series.aeon_archive` for the UCR/UEA archive).

Unequal lengths are served in one of two documented ways (``UCRDataModule(unequal=...)``): ``"pad"``, where
:class:`PadCollate` zero-pads each batch at the end to its longest series and appends the validity mask as one
extra, last channel (1 on real time points, 0 on padding), which the 1-D backbones of
:mod:`lit_early_phase.backbones` read (masked pooling); or ``"equal_length"``, the archive's resampled files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

ZNormMode = Literal["series", "channel", "none"]
ZNORM_MODES: tuple[str, ...] = ("series", "channel", "none")
_EPS = 1e-8


def encode_labels(train: Sequence[Any], test: Sequence[Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Map string labels to ``0..K-1``: numeric labels in numeric order, others in lexicographic order.

    Classes come from the training split; a test label never seen in training is an error.

    Args:
        train: training labels.
        test: test labels.

    Returns:
        ``(classes, train_codes, test_codes)`` with ``classes[code]`` the original label.

    Raises:
        ValueError: if the test split has a label that the training split lacks.

    Example:
        >>> encode_labels(["2", "10", "1"], ["10"])
        (['1', '2', '10'], array([1, 2, 0]), array([2]))
    """
    train_s = [str(v) for v in train]
    test_s = [str(v) for v in test]
    unique = set(train_s)
    try:
        classes = sorted(unique, key=float)
    except ValueError:
        classes = sorted(unique)
    unseen = sorted(set(test_s) - unique)
    if unseen:
        raise ValueError(f"The test split has labels {unseen} that the training split lacks (classes {classes}).")
    index = {c: i for i, c in enumerate(classes)}
    return (
        classes,
        np.array([index[v] for v in train_s], dtype=np.int64),
        np.array([index[v] for v in test_s], dtype=np.int64),
    )


def stratified_split(labels: Tensor, val_size: int | float, *, seed: int) -> tuple[Tensor, Tensor]:
    """Split indices into train/validation per class with a fixed generator.

    Each class gives ``val_size`` (share, or count spread over classes by largest remainder) of its members to
    validation, and always keeps at least one for training.

    Args:
        labels: ``(N,)`` integer labels.
        val_size: share in ``[0, 1)`` or count ``>= 0`` held out.
        seed: seed of the ``torch.Generator`` that orders each class.

    Returns:
        ``(train_idx, val_idx)``, each sorted.

    Raises:
        ValueError: if the split would leave no training sample or cannot place ``val_size`` samples.

    Example:
        >>> train, val = stratified_split(torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), 0.5, seed=0)
        >>> len(train), len(val), sorted(torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])[val].tolist())
        (4, 4, [0, 0, 1, 1])
    """
    n = int(labels.numel())
    n_val = round(val_size * n) if isinstance(val_size, float) else int(val_size)
    if n_val == 0:
        return torch.arange(n), torch.arange(0)
    classes, counts = torch.unique(labels, return_counts=True)
    capacity = counts - 1  # every class keeps one training sample
    if n_val > int(capacity.sum()):
        raise ValueError(
            f"`val_size={val_size!r}` asks for {n_val} validation series out of {n}, but only "
            f"{int(capacity.sum())} can leave while every class keeps one for training. Use a smaller "
            f"`val_size`."
        )
    share = counts.double() * n_val / n
    quota = torch.minimum(share.floor().long(), capacity)
    remainder = share - share.floor()
    while int(quota.sum()) < n_val:  # largest remainder first, among classes that still have room
        room = quota < capacity
        score = torch.where(room, remainder, torch.full_like(remainder, -1.0))
        best = int(score.argmax())
        quota[best] += 1
        remainder[best] = -0.5
    generator = torch.Generator().manual_seed(seed)
    val_parts = []
    for c, q in zip(classes.tolist(), quota.tolist(), strict=True):
        members = torch.nonzero(labels == c).flatten()
        val_parts.append(members[torch.randperm(len(members), generator=generator)[:q]])
    val_idx = torch.cat(val_parts).sort().values
    is_val = torch.zeros(n, dtype=torch.bool)
    is_val[val_idx] = True
    return torch.nonzero(~is_val).flatten(), val_idx


class SeriesDataset(Dataset):
    """Series of possibly different lengths with integer labels.

    Args:
        series: ``N`` float32 tensors of shape ``(C, L_i)``.
        labels: ``(N,)`` integer labels.
    """

    def __init__(self, series: list[Tensor], labels: Tensor) -> None:
        if len(series) != len(labels):
            raise ValueError(f"{len(series)} series but {len(labels)} labels.")
        self.series = series
        self.labels = labels.long()

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.series[index], self.labels[index]


class PadCollate:
    """Stack ``(C, L_i)`` series into ``(B, C, L)``, zero-padding at the end to the longest of the batch.

    Args:
        mask_channel: append the validity mask (1 real, 0 padding) as a last channel: ``(B, C + 1, L)``.

    Example:
        >>> x, y = PadCollate(mask_channel=True)([(torch.ones(1, 2), torch.tensor(0)),
        ...                                       (torch.ones(1, 3), torch.tensor(1))])
        >>> x[:, -1].tolist(), y.tolist()
        ([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], [0, 1])
    """

    def __init__(self, *, mask_channel: bool) -> None:
        self.mask_channel = mask_channel

    def __call__(self, batch: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        """Pad and stack ``[(series, label), ...]`` into ``(x, y)``."""
        length = max(s.shape[-1] for s, _ in batch)
        channels = batch[0][0].shape[0] + int(self.mask_channel)
        x = torch.zeros(len(batch), channels, length)
        for i, (s, _) in enumerate(batch):
            x[i, : s.shape[0], : s.shape[-1]] = s
            if self.mask_channel:
                x[i, -1, : s.shape[-1]] = 1.0
        return x, torch.stack([label for _, label in batch])


def znorm_series(s: np.ndarray) -> np.ndarray:
    """Scale each channel of one ``(C, L)`` series by its own mean and standard deviation (constant: zeros).

    Example:
        >>> znorm_series(np.array([[1.0, 3.0], [2.0, 2.0]])).tolist()
        [[-1.0, 1.0], [0.0, 0.0]]
    """
    mean = s.mean(axis=-1, keepdims=True)
    std = s.std(axis=-1, keepdims=True)
    return (s - mean) / np.where(std < _EPS, 1.0, std)


def normaliser(znorm: ZNormMode, fit_series: list[np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """The z-normalisation of ``znorm``, with ``"channel"`` statistics taken from ``fit_series``.

    Args:
        znorm: ``"series"`` (each series and channel by its own statistics), ``"channel"`` (one mean and
            standard deviation per channel over ``fit_series``) or ``"none"``.
        fit_series: the training series, ``(C, L_i)`` each.

    Returns:
        A function from one ``(C, L)`` series to its normalised copy.

    Example:
        >>> f = normaliser("channel", [np.array([[0.0, 2.0]]), np.array([[4.0, 6.0]])])
        >>> f(np.array([[3.0]])).tolist()
        [[0.0]]
    """
    if znorm == "series":
        return znorm_series
    if znorm == "none":
        return lambda s: s
    values = np.concatenate(fit_series, axis=-1)  # (C, sum of lengths)
    mean = values.mean(axis=-1, keepdims=True)
    std = values.std(axis=-1, keepdims=True)
    std = np.where(std < _EPS, 1.0, std)
    return lambda s: (s - mean) / std
