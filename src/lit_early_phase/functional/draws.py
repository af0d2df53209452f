"""The random draws of mixing, each a rule in one place: Beta λ, pairing, CutMix box, Manifold Mixup block.

Pure tensor code (no Lightning), on the CPU, driven by one ``torch.Generator``; used by
:mod:`~lit_early_phase.functional.mix_params`, which decides which draws a batch needs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

# Both Gamma(α) draws of a λ reach the float64 floor (where torch clamps them) only for tiny α.
_FLOOR = torch.finfo(torch.float64).tiny


def beta_from_gammas(x: Any, y: Any, coin: Callable[[], Any]) -> Any:
    """λ = X / (X + Y) from two Gamma(α) draws, and the tiny-α rule in its one place.

    Where both draws sit at the float64 floor, X / (X + Y) would be 0.5; Beta(α, α) tends to a fair coin between
    0 and 1 there, so λ is ``coin()``. Works on Python floats (a per-batch draw: ``coin`` is called only then)
    and on tensors (per-element draws: ``coin()`` gives one coin per element, used where needed).

    Args:
        x: Gamma(α) draw(s), a float or a float64 tensor.
        y: the paired draw(s), same kind.
        coin: gives the fair coin(s): a bool, or a bool tensor shaped like ``x``.

    Returns:
        λ: a float, or a float64 tensor shaped like ``x``.

    Example:
        >>> beta_from_gammas(1.0, 3.0, lambda: True), beta_from_gammas(0.0, 0.0, lambda: True)
        (0.25, 1.0)
    """
    above = (x > _FLOOR) | (y > _FLOOR)
    if isinstance(above, Tensor):
        return torch.where(above, x / (x + y), coin().double())
    return x / (x + y) if above else float(coin())


def sample_beta(alpha: float, size: int, *, generator: torch.Generator | None = None) -> Tensor:
    """Sample ``size`` values from ``Beta(alpha, alpha)`` on the CPU, driven by a ``torch.Generator``.

    ``torch.distributions.Beta`` takes no generator, so λ = X / (X + Y) with X, Y ~ Gamma(α) drawn by
    ``torch._standard_gamma``, which does: the torch generator stays the single source of randomness.

    Args:
        alpha: the Beta concentration, > 0.
        size: number of samples.
        generator: torch generator to draw from (the global one when ``None``).

    Returns:
        A float32 CPU tensor of shape ``(size,)`` in ``[0, 1]``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> lam = sample_beta(0.4, 3, generator=g)
        >>> bool(((lam >= 0) & (lam <= 1)).all())
        True
    """
    x, y = gamma_pairs(alpha, size, generator=generator).unbind(0)
    if alpha >= _NO_UNDERFLOW_ALPHA:
        return (x / (x + y)).float()
    # below it, the coins of the tiny-α rule are drawn for all elements at once (one vectorised draw)
    coin = torch.rand(size, generator=generator, dtype=torch.float64) < 0.5
    return beta_from_gammas(x, y, lambda: coin).float()


# Gamma(α) in float64 is about U ** (1 / α): both draws of one λ reach the float64 floor with odds near
# 10 ** (-615 α), nil from α = 0.1 on (1e-61), so the per-element coins are drawn for smaller α only.
_NO_UNDERFLOW_ALPHA = 0.1


def gamma_pairs(alpha: float, size: int, *, generator: torch.Generator | None = None) -> Tensor:
    """``(2, size)`` float64 Gamma(α) draws: the X and Y of ``size`` Beta(α, α) draws λ = X / (X + Y)."""
    return torch._standard_gamma(_alpha_grid(float(alpha), size), generator=generator)


@functools.lru_cache(maxsize=16)
def _alpha_grid(alpha: float, size: int) -> Tensor:
    """``(2, size)`` float64 tensor of α: the concentrations of ``size`` Beta draws (cached: it is only read)."""
    return torch.full((2, size), alpha, dtype=torch.float64)


def _clip(value: Any, low: float, high: float) -> Any:
    return value.clamp(low, high) if isinstance(value, Tensor) else min(max(value, low), high)


def _trunc(value: Any) -> Any:
    return value.long() if isinstance(value, Tensor) else int(value)


def cutmix_box(lam: Any, u: Sequence[Any], spatial_shape: tuple[int, ...]) -> tuple[list[Any], Any]:
    """The CutMix box rule (timm's ``rand_bbox``): a box of area ~ ``1 - λ``, centred uniformly, clipped.

    Written once for both sampling paths: on Python numbers (one box for the batch, a few µs) and on ``(N,)``
    tensors (one box per sample, vectorised); ``_clip`` and ``_trunc`` are the only two operations that differ.

    Args:
        lam: λ of the box: a float, or an ``(N,)`` float tensor (its dtype is the arithmetic's).
        u: one uniform in ``[0, 1)`` per spatial dim (floats, or ``(N,)`` tensors): the box centre, as a share.
        spatial_shape: the ``S`` spatial sizes.

    Returns:
        ``(box, kept)``: ``[start_0, end_0, start_1, end_1, ...]`` (ints, or ``(N,)`` long tensors) and the
        share of the input outside the box, which λ becomes once the box is clipped to the input.

    Example:
        >>> cutmix_box(0.75, [0.5, 0.5], (8, 8))
        ([2, 6, 2, 6], 0.75)
        >>> box, kept = cutmix_box(torch.tensor([0.75]), [torch.tensor([0.5])] * 2, (8, 8))
        >>> torch.stack(box, 1).tolist(), kept.tolist()
        ([[2, 6, 2, 6]], [0.75])
    """
    cut_frac = _clip(1.0 - lam, 0.0, 1.0) ** (1.0 / len(spatial_shape))
    box, inside = [], 1.0
    for d, size in enumerate(spatial_shape):
        half, centre = _trunc(cut_frac * size) // 2, _trunc(u[d] * size)
        start, end = _clip(centre - half, 0, size), _clip(centre + half, 0, size)
        box += [start, end]
        inside = inside * (end - start) / size
    return box, 1.0 - inside


@functools.lru_cache(maxsize=64)
def _successor(batch_size: int) -> Tensor:
    """``[1, 2, ..., B - 1, 0]``: read through it, a permutation gives each entry the next one, cyclically."""
    return torch.arange(1, batch_size + 1) % batch_size


def random_pairing(batch_size: int, generator: torch.Generator | None) -> Tensor:
    """Partner of each sample: the next one in a random order, cyclically (a derangement for ``B >= 2``)."""
    order = torch.randperm(batch_size, generator=generator)
    # partner[order[i]] = order[i + 1]; an out-of-place scatter over `order` itself writes every position once.
    # (Three small ops: ``roll`` + ``index_put_`` cost twice as much at the batch sizes where this matters.)
    return order.scatter(0, order, order.index_select(0, _successor(batch_size)))


def sample_block(num_blocks: int, *, generator: torch.Generator | None = None) -> int:
    """Index of the block whose hidden state Manifold Mixup mixes, uniform over ``num_blocks`` candidates.

    One ``randint`` from the step's generator, taken after the λ and pairing draws, so those stay exactly the
    draws input Mixup would take at the same step.

    Args:
        num_blocks: number of candidate blocks, >= 1.
        generator: torch generator to draw from (the global one when ``None``).

    Returns:
        An index in ``[0, num_blocks)``.

    Raises:
        ValueError: for ``num_blocks < 1``.

    Example:
        >>> sample_block(4, generator=torch.Generator().manual_seed(0)) in range(4)
        True
    """
    if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
        raise ValueError(f"`num_blocks` must be an int >= 1, got {num_blocks!r}.")
    return int(torch.randint(num_blocks, (1,), generator=generator).item())
