"""Sampling the Mixup / CutMix parameters of a batch: who is mixed, with whom, with which λ, which box.

Pure tensor code (no Lightning), all on the CPU and driven by one ``torch.Generator``. Applying them to a
batch is :mod:`lit_early_phase.functional.mixing`; building the soft targets is
:mod:`lit_early_phase.functional.targets`.

* pairing is a random cyclic shift over a random permutation, so every sample gets a partner other than itself
  whenever ``B >= 2``, odd batch sizes work, and ``B == 1`` is a no-op rather than an error;
* a per-batch draw is a :class:`BatchMixParams` (Python numbers: the common case costs no tensor allocations
  beyond the pairing), a per-element draw an :class:`ElemMixParams` (per-sample tensors). Both are plain frozen
  dataclasses with the same read API (``partner``, ``lam``, ``mixed``, ``cutmix``, ``boxes``, ...);
* the draws themselves (Beta λ with its tiny-α rule, the pairing, the CutMix box) are one rule each, in
  :mod:`~lit_early_phase.functional.draws`, whichever path takes them.
"""

from __future__ import annotations

import functools
from dataclasses import FrozenInstanceError, dataclass
from typing import Literal

import torch
from torch import Tensor

from lit_early_phase._validation import check_choice, check_number
from lit_early_phase.functional.draws import (
    beta_from_gammas,
    cutmix_box,
    gamma_pairs,
    random_pairing,
    sample_beta,
)

#: Whether one mixing draw serves the whole batch (``"batch"``) or each sample draws its own (``"elem"``).
MixMode = Literal["batch", "elem"]
#: The values of :data:`MixMode`, for validation.
MIX_MODES: tuple[str, ...] = ("batch", "elem")


def _read_only(cls: type) -> type:
    """``dataclass(frozen=True)`` whose assignment error says "read-only" (and names the field)."""
    cls = dataclass(frozen=True, eq=False)(cls)  # eq=False: tensor fields, so equality is identity

    def refuse(self: object, name: str, value: object = None) -> None:
        raise FrozenInstanceError(f"{type(self).__name__} is read-only: cannot set {name!r}.")

    # the generated __init__ writes through object.__setattr__, and functools.cached_property through __dict__
    cls.__setattr__ = refuse  # type: ignore[method-assign, assignment]
    cls.__delattr__ = refuse  # type: ignore[method-assign, assignment]
    return cls


@_read_only
class BatchMixParams:
    """One draw for the whole batch, kept as Python numbers; its per-sample tensors are built when read.

    Attributes:
        batch_size: ``B``.
        n_spatial: number of spatial dims ``S`` of the inputs.
        alpha: the Mixup α in effect when the parameters were sampled.
        cutmix_alpha: the CutMix α in effect when the parameters were sampled.
        pairing: ``(B,)`` long, each sample's partner (``None``: every sample is its own).
        batch_lam: the one λ of the batch (1.0 where nothing is mixed; for CutMix the share really kept).
        any_mixed: whether the batch was mixed.
        any_cutmix: whether it was mixed by CutMix.
        box: the CutMix box ``(start_0, end_0, start_1, end_1, ...)`` (empty where there is none).

    Example:
        >>> p = sample_mix_params(4, (8, 8), mixup_alpha=1.0, generator=torch.Generator().manual_seed(0))
        >>> type(p).__name__, p.any_mixed, p.lam.shape, p.mixed.tolist()
        ('BatchMixParams', True, torch.Size([4]), [True, True, True, True])
    """

    batch_size: int
    n_spatial: int
    alpha: float
    cutmix_alpha: float
    pairing: Tensor | None = None
    batch_lam: float = 1.0
    any_mixed: bool = False
    any_cutmix: bool = False
    box: tuple[int, ...] = ()

    @functools.cached_property
    def partner(self) -> Tensor:
        """``(B,)`` long, the index of each sample's partner (itself where nothing is mixed)."""
        return self.pairing if self.pairing is not None else torch.arange(self.batch_size)

    @functools.cached_property
    def lam(self) -> Tensor:
        """``(B,)`` float, each sample's own weight (1.0 where not mixed)."""
        return torch.full((self.batch_size,), self.batch_lam)

    @functools.cached_property
    def mixed(self) -> Tensor:
        """``(B,)`` bool, whether each sample was mixed."""
        return torch.full((self.batch_size,), self.any_mixed)

    @functools.cached_property
    def cutmix(self) -> Tensor:
        """``(B,)`` bool, whether each sample was mixed by CutMix."""
        return torch.full((self.batch_size,), self.any_cutmix)

    @functools.cached_property
    def boxes(self) -> Tensor:
        """``(B, 2 * S)`` long, each sample's CutMix box (zeros where there is none)."""
        box = self.box or (0,) * (2 * self.n_spatial)
        return torch.tensor(box, dtype=torch.long).expand(self.batch_size, -1).clone()

    @property
    def shared_lam(self) -> float | None:
        """The λ of a batch mixed by Mixup (lets the blend use a scalar), else ``None``."""
        return self.batch_lam if self.any_mixed and not self.any_cutmix else None

    @property
    def lam_mean(self) -> Tensor:
        """Mean λ over the batch (1.0 when nothing was mixed)."""
        return torch.tensor(self.batch_lam)

    @property
    def mixed_fraction(self) -> Tensor:
        """Fraction of the samples of the batch that were mixed."""
        return torch.tensor(float(self.any_mixed))


@_read_only
class ElemMixParams:
    """Per-sample draws (``mode="elem"``), as ``(B, ...)`` CPU tensors.

    Attributes:
        alpha: the Mixup α in effect when the parameters were sampled.
        cutmix_alpha: the CutMix α in effect when the parameters were sampled.
        partner: ``(B,)`` long, index of the sample each sample is mixed with.
        lam: ``(B,)`` float, weight of each sample's own input and label (1.0 where not mixed). For CutMix it
            is the share of the input that stays the sample's own after the box is clipped to the input.
        mixed: ``(B,)`` bool, whether the sample was mixed.
        cutmix: ``(B,)`` bool, whether the sample was mixed by CutMix (else Mixup, or not at all).
        boxes: ``(B, 2 * S)`` long, the CutMix box per sample as ``(start_0, end_0, start_1, end_1, ...)`` over
            the ``S`` spatial dims (all zero where there is no box).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> p = sample_mix_params(3, (8,), mixup_alpha=0.0, cutmix_alpha=1.0, mode="elem", generator=g)
        >>> type(p).__name__, p.cutmix.tolist(), p.boxes.shape
        ('ElemMixParams', [True, True, True], torch.Size([3, 2]))
    """

    alpha: float
    cutmix_alpha: float
    partner: Tensor
    lam: Tensor
    mixed: Tensor
    cutmix: Tensor
    boxes: Tensor

    @property
    def batch_size(self) -> int:
        """``B``."""
        return self.partner.shape[0]

    @functools.cached_property
    def any_mixed(self) -> bool:
        """Whether at least one sample was mixed."""
        return bool(self.mixed.any())

    @functools.cached_property
    def any_cutmix(self) -> bool:
        """Whether at least one sample was mixed by CutMix."""
        return bool(self.cutmix.any())

    @property
    def shared_lam(self) -> None:
        """Always ``None``: per-sample draws have no λ shared by the batch."""
        return None

    @property
    def lam_mean(self) -> Tensor:
        """Mean λ over the batch (1.0 when nothing was mixed)."""
        return self.lam.mean()

    @property
    def mixed_fraction(self) -> Tensor:
        """Fraction of the samples of the batch that were mixed."""
        return self.mixed.float().mean()


#: What :func:`sample_mix_params` returns: a :class:`BatchMixParams` or an :class:`ElemMixParams` (both have the
#: same read API); ``isinstance(p, MixParams)`` holds for either. Build a record by hand with either class.
MixParams = BatchMixParams | ElemMixParams


def validate_mix_args(
    *,
    mixup_alpha: float,
    cutmix_alpha: float,
    prob: float = 1.0,
    switch_prob: float = 0.5,
    mode: str = "batch",
    label_smoothing: float = 0.0,
) -> None:
    """Check mixing arguments and raise a :class:`ValueError` that names the bad one.

    The names in the messages are those users type (``Knobs.mix_prob``, ``mix_mode`` of the modules).

    Args:
        mixup_alpha: Mixup α (>= 0).
        cutmix_alpha: CutMix α (>= 0).
        prob: probability that a batch (``mode="batch"``) or a sample (``mode="elem"``) is mixed.
        switch_prob: probability of CutMix rather than Mixup when both α are > 0.
        mode: ``"batch"`` (one λ per batch) or ``"elem"`` (one λ per sample).
        label_smoothing: label smoothing in ``[0, 1)``.

    Raises:
        ValueError: if any argument is out of range.

    Example:
        >>> validate_mix_args(mixup_alpha=0.2, cutmix_alpha=0.0)
        >>> validate_mix_args(mixup_alpha=-1.0, cutmix_alpha=0.0)
        Traceback (most recent call last):
        ...
        ValueError: `mixup_alpha` must be a finite number >= 0, got -1.0. 0 turns it off; ...
    """
    alpha_hint = "0 turns it off; typical values: 0.2-1.0 for Mixup, 1.0 for CutMix."
    check_number("mixup_alpha", mixup_alpha, low=0, hint=alpha_hint)
    check_number("cutmix_alpha", cutmix_alpha, low=0, hint=alpha_hint)
    check_number("mix_prob", prob, low=0, high=1, hint="It is a probability.")
    check_number("switch_prob", switch_prob, low=0, high=1, hint="It is a probability.")
    check_choice("mix_mode", mode, MIX_MODES, hint='"batch": one λ per batch; "elem": one λ per sample.')
    check_number("label_smoothing", label_smoothing, low=0, high=1, high_open=True)


def sample_mix_params(
    batch_size: int,
    spatial_shape: tuple[int, ...],
    *,
    mixup_alpha: float,
    cutmix_alpha: float = 0.0,
    prob: float = 1.0,
    switch_prob: float = 0.5,
    mode: MixMode = "batch",
    generator: torch.Generator | None = None,
    _validated: bool = False,
) -> BatchMixParams | ElemMixParams:
    """Sample who is mixed, with whom, with which λ and (for CutMix) which box. All on the CPU.

    Args:
        batch_size: ``B``.
        spatial_shape: the spatial dims of one input (``(H, W)`` for images, ``(L,)`` for series). CutMix
            needs 1 or 2 of them; Mixup works on any shape.
        mixup_alpha: Mixup α (0 = no Mixup).
        cutmix_alpha: CutMix α (0 = no CutMix).
        prob: probability that the batch (``"batch"``) or each sample (``"elem"``) is mixed.
        switch_prob: probability of CutMix rather than Mixup when both are on.
        mode: ``"batch"`` shares one λ (and one box) over the batch; ``"elem"`` draws them per sample.
        generator: torch generator (seed it per rank for distributed runs).

    Returns:
        A :class:`BatchMixParams` (``mode="batch"``, or nothing to mix) or an :class:`ElemMixParams`.

    Raises:
        ValueError: for out-of-range arguments, or CutMix on inputs with no or more than 2 spatial dims.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> p = sample_mix_params(5, (8, 8), mixup_alpha=1.0, generator=g)
        >>> bool((p.partner != torch.arange(5)).all())  # nobody is paired with itself
        True
    """
    if not _validated:
        validate_mix_args(
            mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, prob=prob, switch_prob=switch_prob, mode=mode
        )
    n_spatial = len(spatial_shape)
    if cutmix_alpha > 0 and n_spatial not in (1, 2):
        raise ValueError(
            f"CutMix needs inputs with 1 (series) or 2 (images) spatial dims after (B, C), got spatial shape "
            f"{tuple(spatial_shape)}. Set `cutmix_alpha=0` for this data."
        )
    b = batch_size
    if b < 2 or (mixup_alpha <= 0 and cutmix_alpha <= 0) or prob <= 0:
        return BatchMixParams(b, n_spatial, mixup_alpha, cutmix_alpha)
    partner = random_pairing(b, generator)
    if mode == "batch":
        return _sample_batch(b, spatial_shape, partner, mixup_alpha, cutmix_alpha, prob, switch_prob, generator)
    return _sample_elem(b, spatial_shape, partner, mixup_alpha, cutmix_alpha, prob, switch_prob, generator)


def _sample_batch(
    b: int,
    spatial_shape: tuple[int, ...],
    partner: Tensor,
    mixup_alpha: float,
    cutmix_alpha: float,
    prob: float,
    switch_prob: float,
    generator: torch.Generator | None,
) -> BatchMixParams:
    """Per-batch draws as Python numbers: one gate, one method, one λ, one box (fixed cost matters here).

    Only the uniforms a draw needs are taken from the generator (none for plain Mixup at ``prob=1``).
    """
    n_spatial = len(spatial_shape)
    both = mixup_alpha > 0 and cutmix_alpha > 0
    if prob < 1 and torch.rand(1, generator=generator).item() >= prob:
        return BatchMixParams(b, n_spatial, mixup_alpha, cutmix_alpha, partner)
    use_cut = torch.rand(1, generator=generator).item() < switch_prob if both else cutmix_alpha > 0
    alpha = cutmix_alpha if use_cut else mixup_alpha
    x, y = gamma_pairs(alpha, 1, generator=generator).view(2).tolist()
    lam = beta_from_gammas(x, y, lambda: torch.rand(1, generator=generator).item() < 0.5)
    if not use_cut:
        return BatchMixParams(b, n_spatial, mixup_alpha, cutmix_alpha, partner, lam, any_mixed=True)
    box, kept = cutmix_box(lam, torch.rand(n_spatial, generator=generator).tolist(), spatial_shape)
    return BatchMixParams(
        b, n_spatial, mixup_alpha, cutmix_alpha, partner, kept, any_mixed=True, any_cutmix=True, box=tuple(box)
    )


def _sample_elem(
    b: int,
    spatial_shape: tuple[int, ...],
    partner: Tensor,
    mixup_alpha: float,
    cutmix_alpha: float,
    prob: float,
    switch_prob: float,
    generator: torch.Generator | None,
) -> ElemMixParams:
    """Per-sample draws as tensors: a gate, a method, a λ and a box for each sample."""
    n_spatial = len(spatial_shape)
    both = mixup_alpha > 0 and cutmix_alpha > 0
    gate = torch.rand(b, generator=generator) < prob if prob < 1 else None
    use_cutmix = torch.rand(b, generator=generator) < switch_prob if both else None
    if use_cutmix is not None:
        lam = torch.where(
            use_cutmix,
            sample_beta(cutmix_alpha, b, generator=generator),
            sample_beta(mixup_alpha, b, generator=generator),
        )
    else:
        lam = sample_beta(mixup_alpha if mixup_alpha > 0 else cutmix_alpha, b, generator=generator)
    mixed = torch.ones(b, dtype=torch.bool) if gate is None else gate
    if cutmix_alpha <= 0:
        cut = torch.zeros(b, dtype=torch.bool)
        boxes = torch.zeros(b, 2 * n_spatial, dtype=torch.long)
    else:
        cut = (use_cutmix if use_cutmix is not None else torch.ones(b, dtype=torch.bool)) & mixed
        box, kept = cutmix_box(lam, torch.rand(b, n_spatial, generator=generator).unbind(1), spatial_shape)
        boxes = torch.stack([torch.where(cut, edge, 0) for edge in box], dim=1)
        lam = torch.where(cut, kept, lam)
    if gate is not None:
        lam = torch.where(gate, lam, 1.0)
    return ElemMixParams(mixup_alpha, cutmix_alpha, partner, lam, mixed, cut, boxes)
