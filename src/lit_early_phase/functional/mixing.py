"""On-device Mixup and CutMix with soft targets, per-batch or per-element λ, and any batch size.

Pure tensor code (no Lightning). The batch is mixed where it already lives (usually the accelerator, in the
main process), so a run-time change of α takes effect at the very next batch: nothing is frozen inside
DataLoader workers.

Design notes (after timm's ``data/mixup.py`` and Composer's ``mixup_batch``, minus their sharp edges):

* pairing is a random cyclic shift over a random permutation, so every sample gets a partner other than itself
  whenever ``B >= 2``, odd batch sizes work, and ``B == 1`` is a no-op rather than an error;
* the parameters (who is mixed, with whom, with which λ, which box) are sampled first and returned, then
  applied, so callers can log exactly what happened;
* targets are always dense ``(B, num_classes)`` float tensors, mixed or not, so the loss never changes format
  when a strategy switches mixing on or off.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

MixMode = Literal["batch", "elem"]
MIX_MODES: tuple[str, ...] = ("batch", "elem")


class MixParams:
    """What one call of :func:`sample_mix_params` decided for a batch.

    A per-batch draw is kept as a few Python numbers and its per-sample tensors are built only when read, so that
    the common case (one λ for the batch) costs no tensor allocations beyond the pairing.

    Attributes:
        partner: ``(B,)`` long, index of the sample each sample is mixed with.
        lam: ``(B,)`` float, weight of each sample's own input and label (1.0 where not mixed). For CutMix it
            is the share of the image that stays the sample's own after the box is clipped to the image.
        mixed: ``(B,)`` bool, whether the sample was mixed.
        cutmix: ``(B,)`` bool, whether the sample was mixed by CutMix (else Mixup, or not at all).
        boxes: ``(B, 2 * S)`` long, the CutMix box per sample as ``(start_0, end_0, start_1, end_1, ...)`` over
            the ``S`` spatial dims (all zero where there is no box).
        alpha: the Mixup α in effect when the parameters were sampled.
        cutmix_alpha: the CutMix α in effect when the parameters were sampled.
        shared_lam: the one λ of a per-batch draw where every sample was mixed the same way by Mixup (lets
            :func:`apply_mix` blend with a scalar), else ``None``.
        any_mixed: whether at least one sample was mixed (a Python bool: no device sync to ask).
        any_cutmix: whether at least one sample was mixed by CutMix.

    Example:
        >>> p = sample_mix_params(4, (8, 8), mixup_alpha=1.0, generator=torch.Generator().manual_seed(0))
        >>> p.any_mixed, p.lam.shape, p.mixed.tolist()
        (True, torch.Size([4]), [True, True, True, True])
    """

    __slots__ = (
        "_box", "_boxes", "_cutmix", "_lam", "_lam_value", "_mixed", "_n_spatial", "_partner", "_size", "_uniform",
        "alpha", "any_cutmix", "any_mixed", "cutmix_alpha", "shared_lam",
    )  # fmt: skip

    def __init__(
        self,
        batch_size: int,
        n_spatial: int,
        *,
        alpha: float,
        cutmix_alpha: float,
        partner: Tensor | None = None,
        lam: Tensor | float = 1.0,
        mixed: Tensor | bool = False,
        cutmix: Tensor | bool = False,
        boxes: Tensor | tuple[int, ...] | None = None,
    ) -> None:
        set_ = object.__setattr__  # the public attributes are read-only (see __setattr__)
        self._size, self._n_spatial = batch_size, n_spatial
        set_(self, "alpha", float(alpha))
        set_(self, "cutmix_alpha", float(cutmix_alpha))
        self._partner = partner
        # a tensor argument is the per-sample value; a Python value is shared by the whole batch (built on read)
        self._lam = lam if isinstance(lam, Tensor) else None
        self._lam_value = None if isinstance(lam, Tensor) else float(lam)
        self._mixed = mixed if isinstance(mixed, Tensor) else None
        self._cutmix = cutmix if isinstance(cutmix, Tensor) else None
        self._boxes = boxes if isinstance(boxes, Tensor) else None
        self._box = boxes if isinstance(boxes, tuple) else (0,) * (2 * n_spatial)
        # one draw for the whole batch: every per-sample value given as a Python value
        self._uniform = all(not isinstance(v, Tensor) for v in (lam, mixed, cutmix, boxes))
        set_(self, "any_mixed", bool(mixed.any()) if isinstance(mixed, Tensor) else bool(mixed))
        set_(self, "any_cutmix", bool(cutmix.any()) if isinstance(cutmix, Tensor) else bool(cutmix))
        uniform_mixup = self._uniform and self.any_mixed and not self.any_cutmix
        set_(self, "shared_lam", self._lam_value if uniform_mixup else None)

    def __setattr__(self, name: str, value: object) -> None:
        if not name.startswith("_"):
            raise AttributeError(f"MixParams is read-only: cannot set {name!r}.")
        object.__setattr__(self, name, value)

    @property
    def partner(self) -> Tensor:
        """``(B,)`` long, the index of each sample's partner (itself where nothing is mixed)."""
        if self._partner is None:
            self._partner = torch.arange(self._size)
        return self._partner

    @property
    def lam(self) -> Tensor:
        """``(B,)`` float, each sample's own weight (1.0 where not mixed)."""
        if self._lam is None:
            self._lam = torch.full((self._size,), self._lam_value)
        return self._lam

    @property
    def mixed(self) -> Tensor:
        """``(B,)`` bool, whether each sample was mixed."""
        if self._mixed is None:
            self._mixed = torch.full((self._size,), self.any_mixed)
        return self._mixed

    @property
    def cutmix(self) -> Tensor:
        """``(B,)`` bool, whether each sample was mixed by CutMix."""
        if self._cutmix is None:
            self._cutmix = torch.full((self._size,), self.any_cutmix)
        return self._cutmix

    @property
    def boxes(self) -> Tensor:
        """``(B, 2 * S)`` long, each sample's CutMix box (zeros where there is none)."""
        if self._boxes is None:
            self._boxes = torch.tensor(self._box, dtype=torch.long).expand(self._size, -1).clone()
        return self._boxes

    @property
    def lam_mean(self) -> Tensor:
        """Mean λ over the batch (1.0 when nothing was mixed)."""
        return self._lam.mean() if self._lam is not None else torch.tensor(self._lam_value)

    @property
    def mixed_fraction(self) -> Tensor:
        """Fraction of the samples of the batch that were mixed."""
        return self._mixed.float().mean() if self._mixed is not None else torch.tensor(float(self.any_mixed))

    def __repr__(self) -> str:
        return (
            f"MixParams(batch_size={self._size}, alpha={self.alpha}, cutmix_alpha={self.cutmix_alpha}, "
            f"any_mixed={self.any_mixed}, any_cutmix={self.any_cutmix}, shared_lam={self.shared_lam})"
        )


@dataclass(frozen=True)
class MixOutput:
    """A mixed batch and the record of what was applied.

    Attributes:
        inputs: the mixed inputs, same shape and dtype as the inputs given.
        targets: ``(B, num_classes)`` float soft targets (label smoothing applied, then blended by λ).
        dominant: ``(B,)`` long, the label that carries the larger weight in each target (the sample's own
            label where ``lam >= 0.5``): what accuracy is counted against while mixing.
        params: the sampled :class:`MixParams`.
    """

    inputs: Tensor
    targets: Tensor
    dominant: Tensor
    params: MixParams

    @property
    def lam_mean(self) -> Tensor:
        """Mean λ over the batch (1.0 when nothing was mixed)."""
        return self.params.lam_mean

    @property
    def mixed_fraction(self) -> Tensor:
        """Fraction of the samples of the batch that were mixed."""
        return self.params.mixed_fraction


def _check_alpha(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(
            f"`{name}` must be a finite number >= 0 (0 turns it off), got {value!r}. "
            f"Typical values: 0.2-1.0 for Mixup, 1.0 for CutMix."
        )


def _check_prob(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ValueError(f"`{name}` must be a probability in [0, 1], got {value!r}.")


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
        ValueError: `mixup_alpha` must be a finite number >= 0 (0 turns it off), got -1.0. ...
    """
    _check_alpha("mixup_alpha", mixup_alpha)
    _check_alpha("cutmix_alpha", cutmix_alpha)
    _check_prob("mix_prob", prob)
    _check_prob("switch_prob", switch_prob)
    if mode not in MIX_MODES:
        raise ValueError(f"`mix_mode` must be one of {MIX_MODES}, got {mode!r}.")
    if not (isinstance(label_smoothing, int | float) and 0.0 <= label_smoothing < 1.0):
        raise ValueError(f"`label_smoothing` must be in [0, 1), got {label_smoothing!r}.")


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
    gammas = torch._standard_gamma(_alpha_grid(float(alpha), size), generator=generator)
    x, y = gammas.unbind(0)
    if alpha >= _NO_UNDERFLOW_ALPHA:
        return (x / (x + y)).float()
    # For tiny α both draws can underflow; torch clamps them to the smallest normal float64, which would give
    # λ = 0.5. Beta(α, α) tends to a fair coin between 0 and 1 there, so such pairs get a coin instead.
    tiny = torch.finfo(torch.float64).tiny
    coin = torch.rand(size, generator=generator, dtype=torch.float64) < 0.5
    lam = torch.where((x > tiny) | (y > tiny), x / (x + y), coin.double())
    return lam.float()


# Gamma(α) in float64 is about U ** (1 / α): both draws of one λ reach the float64 floor with odds near
# 10 ** (-615 α), nil from α = 0.1 on (1e-61), so the guard and its extra draws are kept for smaller α only.
_NO_UNDERFLOW_ALPHA = 0.1


@functools.lru_cache(maxsize=16)
def _alpha_grid(alpha: float, size: int) -> Tensor:
    """``(2, size)`` float64 tensor of α: the concentrations of ``size`` Beta draws (cached: it is only read)."""
    return torch.full((2, size), alpha, dtype=torch.float64)


@functools.lru_cache(maxsize=64)
def _successor(batch_size: int) -> Tensor:
    """``[1, 2, ..., B - 1, 0]``: read through it, a permutation gives each entry the next one, cyclically."""
    return torch.arange(1, batch_size + 1) % batch_size


def _random_pairing(batch_size: int, generator: torch.Generator | None) -> Tensor:
    """Partner of each sample: the next one in a random order, cyclically (a derangement for ``B >= 2``)."""
    order = torch.randperm(batch_size, generator=generator)
    # partner[order[i]] = order[i + 1]; an out-of-place scatter over `order` itself writes every position once.
    # (Three small ops: ``roll`` + ``index_put_`` cost twice as much at the batch sizes where this matters.)
    return order.scatter(0, order, order.index_select(0, _successor(batch_size)))


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
) -> MixParams:
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
        The sampled :class:`MixParams`.

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
        return MixParams(b, n_spatial, alpha=mixup_alpha, cutmix_alpha=cutmix_alpha)
    partner = _random_pairing(b, generator)
    if mode == "batch":
        return _sample_batch_params(b, spatial_shape, partner, mixup_alpha, cutmix_alpha, prob, switch_prob, generator)

    both = mixup_alpha > 0 and cutmix_alpha > 0
    gate = torch.rand(b, generator=generator) < prob if prob < 1 else None
    use_cutmix = torch.rand(b, generator=generator) < switch_prob if both else None
    if both:
        lam = torch.where(
            use_cutmix,
            sample_beta(cutmix_alpha, b, generator=generator),
            sample_beta(mixup_alpha, b, generator=generator),
        )
    else:
        lam = sample_beta(mixup_alpha if mixup_alpha > 0 else cutmix_alpha, b, generator=generator)
    mixed: Tensor | bool = True if gate is None else gate
    if cutmix_alpha <= 0:
        cut: Tensor | bool = False
        boxes = None
    else:
        cut = (use_cutmix if use_cutmix is not None else torch.ones(b, dtype=torch.bool)) & mixed
        # Box of area ~ (1 - λ) of the input centred uniformly, clipped to the input (timm's rand_bbox); λ is
        # then corrected to the share that is really kept.
        cut_frac = (1.0 - lam).clamp(0, 1) ** (1.0 / n_spatial)
        kept_share = torch.ones(b)
        box_rand = torch.rand(b, n_spatial, generator=generator)
        boxes = torch.zeros(b, 2 * n_spatial, dtype=torch.long)
        for d, size in enumerate(spatial_shape):
            half = (cut_frac * size).long() // 2
            centre = (box_rand[:, d] * size).long()
            start = (centre - half).clamp(0, size)
            end = (centre + half).clamp(0, size)
            boxes[:, 2 * d] = torch.where(cut, start, 0)
            boxes[:, 2 * d + 1] = torch.where(cut, end, 0)
            kept_share = kept_share * (end - start).float() / size
        lam = torch.where(cut, 1.0 - kept_share, lam)
    if gate is not None:
        lam = torch.where(gate, lam, 1.0)
    return MixParams(
        b, n_spatial, alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, partner=partner, lam=lam, mixed=mixed,
        cutmix=cut, boxes=boxes,
    )  # fmt: skip


def _sample_batch_params(
    b: int,
    spatial_shape: tuple[int, ...],
    partner: Tensor,
    mixup_alpha: float,
    cutmix_alpha: float,
    prob: float,
    switch_prob: float,
    generator: torch.Generator | None,
) -> MixParams:
    """Per-batch draws as Python numbers: one gate, one method, one λ, one box (fixed cost matters here).

    Only the uniforms a draw needs are taken from the generator (none for plain Mixup at ``prob=1``).
    """
    n_spatial = len(spatial_shape)
    both = mixup_alpha > 0 and cutmix_alpha > 0
    if prob < 1 and torch.rand(1, generator=generator).item() >= prob:
        return MixParams(b, n_spatial, alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, partner=partner)
    use_cut = torch.rand(1, generator=generator).item() < switch_prob if both else cutmix_alpha > 0
    alpha = cutmix_alpha if use_cut else mixup_alpha
    x, y = torch._standard_gamma(_alpha_grid(float(alpha), 1), generator=generator).view(2).tolist()
    # both draws reach the float64 floor only for tiny α: Beta(α, α) then tends to a fair coin between 0 and 1
    tiny = torch.finfo(torch.float64).tiny
    lam = x / (x + y) if max(x, y) > tiny else float(torch.rand(1, generator=generator).item() < 0.5)
    if not use_cut:
        return MixParams(
            b, n_spatial, alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, partner=partner, lam=lam, mixed=True
        )
    # the same box rule as the per-element path (timm's rand_bbox), then λ = the share really kept
    box_u = torch.rand(n_spatial, generator=generator).tolist()
    cut_frac = min(max(1.0 - lam, 0.0), 1.0) ** (1.0 / n_spatial)
    kept_share, box = 1.0, []
    for d, size in enumerate(spatial_shape):
        half, centre = int(cut_frac * size) // 2, int(box_u[d] * size)
        start, end = min(max(centre - half, 0), size), min(max(centre + half, 0), size)
        box += [start, end]
        kept_share *= (end - start) / size
    return MixParams(
        b, n_spatial, alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, partner=partner, lam=1.0 - kept_share,
        mixed=True, cutmix=True, boxes=tuple(box),
    )  # fmt: skip


# One-hot rows are read from a cached (smoothed) identity up to this many classes (1,024 classes: 4 MB per
# device): one gather instead of allocate + scatter, which is most of the fixed cost of small batches.
_EYE_MAX_CLASSES = 1024


@functools.lru_cache(maxsize=16)
def _smoothed_eye(num_classes: int, smoothing: float, device: torch.device) -> Tensor:
    off = smoothing / num_classes
    eye = torch.full((num_classes, num_classes), off, device=device, dtype=torch.float32)
    return eye.fill_diagonal_(1.0 - smoothing + off)


def smooth_one_hot(labels: Tensor, num_classes: int, *, smoothing: float = 0.0) -> Tensor:
    """Dense targets from integer labels, with label smoothing.

    Args:
        labels: ``(B,)`` integer labels.
        num_classes: ``K``.
        smoothing: mass spread uniformly over all classes (``1 - smoothing + smoothing / K`` on the label).

    Returns:
        ``(B, K)`` float32 targets whose rows sum to 1 (a new tensor: callers may write to it).

    Example:
        >>> smooth_one_hot(torch.tensor([1]), 4, smoothing=0.2)
        tensor([[0.0500, 0.8500, 0.0500, 0.0500]])
    """
    if labels.dtype not in (torch.long, torch.int32):
        labels = labels.long()
    if num_classes <= _EYE_MAX_CLASSES:
        return _smoothed_eye(num_classes, float(smoothing), labels.device).index_select(0, labels)
    off = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off, device=labels.device, dtype=torch.float32)
    return targets.scatter_(1, labels.long().unsqueeze(1), 1.0 - smoothing + off)


def _box_mask(boxes: Tensor, spatial_shape: tuple[int, ...], device: torch.device) -> Tensor:
    """``(B, 1, *spatial)`` bool mask that is True inside each sample's box."""
    mask = None
    for d, size in enumerate(spatial_shape):
        pos = torch.arange(size, device=device)
        inside = (pos >= boxes[:, 2 * d, None]) & (pos < boxes[:, 2 * d + 1, None])  # (B, size)
        view = [boxes.shape[0]] + [1] * len(spatial_shape)
        view[1 + d] = size
        inside = inside.view(view)
        mask = inside if mask is None else mask & inside
    assert mask is not None  # internal invariant: spatial_shape is non-empty for CutMix
    return mask.unsqueeze(1)


def apply_mix(inputs: Tensor, labels: Tensor, params: MixParams, *, num_classes: int, smoothing: float = 0.0):
    """Apply sampled :class:`MixParams` to a batch on its own device.

    Args:
        inputs: ``(B, C, *spatial)`` inputs (for Mixup any ``(B, ...)`` shape works).
        labels: ``(B,)`` integer labels.
        params: parameters from :func:`sample_mix_params` for this batch size.
        num_classes: ``K`` for the dense targets.
        smoothing: label smoothing.

    Returns:
        A :class:`MixOutput`.

    Example:
        >>> x, y = torch.zeros(2, 1, 4, 4), torch.tensor([0, 1])
        >>> x[1] = 1.0
        >>> p = sample_mix_params(2, (4, 4), mixup_alpha=1.0, generator=torch.Generator().manual_seed(0))
        >>> out = apply_mix(x, y, p, num_classes=2)
        >>> torch.allclose(out.inputs[0].mean(), 1 - p.lam[0])  # sample 0 received (1 - λ) of sample 1
        True
    """
    device = inputs.device
    labels = labels if labels.dtype == torch.long else labels.long()
    targets = smooth_one_hot(labels, num_classes, smoothing=smoothing)
    if not params.any_mixed:
        return MixOutput(inputs, targets, labels, params)
    partner = params.partner.to(device, non_blocking=True)
    other = inputs.index_select(0, partner)
    other_targets = targets.index_select(0, partner)
    if params.shared_lam is not None:  # one λ for the batch, all Mixup: scalar blends, in place
        lam = params.shared_lam
        mixed = other.lerp_(inputs, lam)
        targets = other_targets.lerp_(targets, lam)
        dominant = labels if lam >= 0.5 else labels.index_select(0, partner)
        return MixOutput(mixed, targets, dominant, params)
    if params._uniform and params.any_cutmix:  # one box for the whole batch: paste it by slicing
        lam = params._lam_value
        mixed = inputs.clone()
        region = (..., *(slice(params._box[2 * d], params._box[2 * d + 1]) for d in range(params._n_spatial)))
        mixed[region] = other[region]
        targets = other_targets.lerp_(targets, lam)
        dominant = labels if lam >= 0.5 else labels.index_select(0, partner)
        return MixOutput(mixed, targets, dominant, params)
    lam = params.lam.to(device, non_blocking=True)
    lam_x = lam.to(inputs.dtype).view(-1, *([1] * (inputs.dim() - 1)))
    if params.any_cutmix:
        # Mixup weight 1 for CutMix samples leaves them to the box, pasted from `other` afterwards.
        cut = params.cutmix.to(device).view(-1, *([1] * (inputs.dim() - 1)))
        mixed = torch.lerp(other, inputs, torch.where(cut, 1.0, lam_x))
        mask = _box_mask(params.boxes.to(device), tuple(inputs.shape[2:]), device)
        mixed = torch.where(mask & cut, other, mixed)
    else:
        mixed = other.lerp_(inputs, lam_x)
    targets = other_targets.lerp_(targets, lam.unsqueeze(1))
    dominant = torch.where(lam >= 0.5, labels, labels.index_select(0, partner))
    return MixOutput(mixed, targets, dominant, params)


def mix_batch(
    inputs: Tensor,
    labels: Tensor,
    *,
    num_classes: int,
    mixup_alpha: float,
    cutmix_alpha: float = 0.0,
    prob: float = 1.0,
    switch_prob: float = 0.5,
    mode: MixMode = "batch",
    label_smoothing: float = 0.0,
    generator: torch.Generator | None = None,
) -> MixOutput:
    """Mix a batch with Mixup and/or CutMix and build soft targets, in one call.

    Args:
        inputs: ``(B, C, *spatial)`` inputs on any device.
        labels: ``(B,)`` integer labels on the same device.
        num_classes: ``K``.
        mixup_alpha: Mixup α (0 = off).
        cutmix_alpha: CutMix α (0 = off).
        prob: probability of mixing the batch (``"batch"``) or each sample (``"elem"``).
        switch_prob: probability of CutMix rather than Mixup when both are on.
        mode: ``"batch"`` or ``"elem"`` (per-sample λ, gate and method).
        label_smoothing: label smoothing applied before blending.
        generator: CPU torch generator for the random draws (seed it per rank).

    Returns:
        A :class:`MixOutput` with the mixed inputs, dense targets, dominant labels and the parameters.

    Raises:
        ValueError: for out-of-range arguments or labels that are not a ``(B,)`` integer tensor.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> out = mix_batch(torch.randn(3, 1, 8, 8), torch.tensor([0, 1, 2]), num_classes=3,
        ...                 mixup_alpha=0.4, generator=g)
        >>> out.targets.sum(1)
        tensor([1., 1., 1.])
    """
    if labels.dim() != 1 or labels.dtype.is_floating_point or labels.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"`labels` must be a 1-D integer tensor with one label per input, got shape {tuple(labels.shape)} "
            f"and dtype {labels.dtype} for inputs of shape {tuple(inputs.shape)}."
        )
    validate_mix_args(
        mixup_alpha=mixup_alpha,
        cutmix_alpha=cutmix_alpha,
        prob=prob,
        switch_prob=switch_prob,
        mode=mode,
        label_smoothing=label_smoothing,
    )
    params = sample_mix_params(
        inputs.shape[0],
        tuple(inputs.shape[2:]),
        mixup_alpha=mixup_alpha,
        cutmix_alpha=cutmix_alpha,
        prob=prob,
        switch_prob=switch_prob,
        mode=mode,
        generator=generator,
        _validated=True,
    )
    return apply_mix(inputs, labels, params, num_classes=num_classes, smoothing=label_smoothing)
