"""High-Loss Removal: keep the lowest-loss samples of a batch and normalise by what is kept."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from lit_early_phase._validation import check_int, check_number


@dataclass(frozen=True)
class DropOutput:
    """Result of :func:`drop_highest`.

    The counts are 0-dim tensors on the losses' device, so a training step reads them without a host sync
    (how many samples leave depends on how many losses are non-finite); ``float()`` / ``int()`` them to read.

    Attributes:
        loss: scalar loss over the kept samples (a zero still connected to the graph if none is kept).
        kept: ``(B,)`` bool mask of the samples that count.
        num_removed: 0-dim int64 tensor, how many samples were removed (non-finite ones included).
        removed_fraction: 0-dim float tensor, ``num_removed / B`` (0 for an empty batch).
        num_nonfinite: 0-dim int64 tensor, how many losses were NaN or ±inf (removed when removal is in force,
            left in the mean otherwise).
    """

    loss: Tensor
    kept: Tensor
    num_removed: Tensor
    removed_fraction: Tensor
    num_nonfinite: Tensor


def validate_drop_args(fraction: float, count: int | None) -> None:
    """Raise a :class:`ValueError` naming the bad High-Loss Removal argument.

    Args:
        fraction: share of each batch to remove, in ``[0, 1)``.
        count: exact number to remove per batch (``None`` to use ``fraction``), ``>= 0``.

    Raises:
        ValueError: if ``fraction`` is outside ``[0, 1)`` or ``count`` is negative or not an int.

    Example:
        >>> validate_drop_args(0.1, None)
        >>> validate_drop_args(1.0, None)
        Traceback (most recent call last):
        ...
        ValueError: `drop_fraction` must be a number in [0, 1), got 1.0. It is the share of each batch removed: ...
    """
    check_number(
        "drop_fraction", fraction, low=0, high=1, high_open=True,
        hint="It is the share of each batch removed: use a small value such as 0.05-0.1, or `drop_count` for an "
        "exact number.",
    )  # fmt: skip
    check_int("drop_count", count, minimum=0, allow_none=True)


def num_to_remove(batch_size: int, *, fraction: float = 0.0, count: int | None = None) -> int:
    """How many samples a batch of ``batch_size`` loses: ``count`` if given, else ``round(fraction * B)``.

    Rounding half up (not down) so that small batches still lose a sample at fractions like 0.1 on 5-9
    samples; never more than the batch.

    Args:
        batch_size: ``B``.
        fraction: share to remove, in ``[0, 1)``.
        count: exact number to remove, or ``None``.

    Returns:
        The number of samples to remove.

    Example:
        >>> num_to_remove(32, fraction=0.1), num_to_remove(4, fraction=0.1), num_to_remove(3, count=5)
        (3, 0, 3)
    """
    validate_drop_args(fraction, count)
    k = count if count is not None else math.floor(fraction * batch_size + 0.5)
    return min(k, batch_size)


def drop_highest(
    losses: Tensor,
    *,
    fraction: float = 0.0,
    count: int | None = None,
    weights: Tensor | None = None,
) -> DropOutput:
    """Remove the highest per-sample losses of a batch and average the rest by what is kept.

    With ``weights`` (e.g. the number of response tokens of each sequence, with ``losses`` the per-sequence
    mean), samples are ranked by ``losses`` and the result is ``sum(w * loss) / sum(w)`` over the kept ones, i.e.
    normalised by kept tokens. When nothing is kept (or every weight is 0) the loss is ``0 * losses.sum()``: zero,
    but still connected to the parameters, so DDP's gradient all-reduce does not hang on this rank.

    **Non-finite losses** (NaN, ±inf) while removal is in force (``fraction > 0`` or ``count >= 1``): they rank
    above every finite loss, so they are removed first and use up the removal budget; if there are more of them
    than the budget, all of them are removed anyway (``num_removed`` then exceeds the budget and
    ``removed_fraction`` the ``fraction``), so the kept mean is always finite. They get zero gradient from this
    loss; if they came from non-finite inputs or activations, the backward pass through the network can still
    carry NaN into the parameters (0 · NaN = NaN): clean the data. With removal off (``fraction=0`` and no
    ``count``, e.g. after the enlightenment period) nothing is removed and the loss is NaN/inf as in plain
    training, so the problem stays visible; ``num_nonfinite`` counts them in both cases.

    Args:
        losses: ``(B,)`` per-sample losses.
        fraction: share of the batch to remove (see :func:`num_to_remove`).
        count: exact number to remove per batch (overrides ``fraction``).
        weights: optional ``(B,)`` non-negative weights of each sample in the average.

    Returns:
        A :class:`DropOutput`.

    Raises:
        ValueError: for a bad ``fraction``/``count`` or a ``losses`` tensor that is not 1-D.

    Example:
        >>> out = drop_highest(torch.tensor([1.0, 5.0, 2.0, 3.0]), fraction=0.25)
        >>> out.loss, out.kept.tolist()
        (tensor(2.), [True, False, True, True])
        >>> out = drop_highest(torch.tensor([1.0, float("nan"), 2.0, float("inf")]), fraction=0.25)
        >>> out.loss, out.kept.tolist(), int(out.num_removed), int(out.num_nonfinite)
        (tensor(1.5000), [True, False, True, False], 2, 2)
        >>> drop_highest(torch.tensor([1.0, float("nan")])).loss  # removal off: NaN stays visible
        tensor(nan)
    """
    if losses.dim() != 1:
        raise ValueError(f"`losses` must be 1-D (one loss per sample), got shape {tuple(losses.shape)}.")
    b = losses.shape[0]
    k = num_to_remove(b, fraction=fraction, count=count)
    active = count > 0 if count is not None else fraction > 0  # removal in force (k may round to 0)
    detached = losses.detach()
    finite = torch.isfinite(detached)
    if active:
        kept = finite.clone()  # every non-finite loss leaves, whatever the budget
        if k > 0:
            # Non-finite losses rank above every finite one, so they use up the budget first (NaN would also
            # sort first in topk, -inf last: the key makes all of them +inf).
            key = torch.where(finite, detached, torch.full_like(detached, math.inf))
            kept[torch.topk(key, k).indices] = False
    else:
        kept = torch.ones(b, dtype=torch.bool, device=losses.device)
    w = kept.to(losses.dtype) if weights is None else weights.to(losses.dtype) * kept
    total = w.sum()
    # `where`, not `losses * w`: a removed NaN times its zero weight would still be NaN. Removed samples stay in
    # the graph with zero gradient; the clamp avoids 0/0 for the all-dropped batch.
    weighted = torch.where(kept, losses * w, torch.zeros((), dtype=losses.dtype, device=losses.device))
    loss = weighted.sum() / total.clamp_min(torch.finfo(losses.dtype).tiny)
    num_removed = (~kept).sum()
    removed_fraction = num_removed / b if b else torch.zeros((), device=losses.device)
    return DropOutput(loss, kept, num_removed, removed_fraction, (~finite).sum())
