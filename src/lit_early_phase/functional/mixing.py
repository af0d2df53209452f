"""On-device Mixup and CutMix with soft targets, per-batch or per-element λ, and any batch size.

Pure tensor code (no Lightning). The batch is mixed where it already lives (usually the accelerator, in the
main process), so a run-time change of α takes effect at the very next batch: nothing is frozen inside
DataLoader workers.

Three steps, one file each (after timm's ``data/mixup.py`` and Composer's ``mixup_batch``, minus their sharp
edges): :mod:`~lit_early_phase.functional.mix_params` samples who is mixed, with whom, with which λ and which
box (returned, so callers can log exactly what happened); this module applies them to the inputs;
:mod:`~lit_early_phase.functional.targets` builds the dense soft targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lit_early_phase.functional.mix_params import (
    BatchMixParams,
    ElemMixParams,
    MixMode,
    sample_mix_params,
    validate_mix_args,
)
from lit_early_phase.functional.targets import blend_targets, smooth_one_hot

__all__ = ["MixOutput", "apply_mix", "mix_batch"]


@dataclass(frozen=True)
class MixOutput:
    """A mixed batch and the record of what was applied.

    Attributes:
        inputs: the mixed inputs, same shape and dtype as the inputs given.
        targets: ``(B, num_classes)`` float soft targets (label smoothing applied, then blended by λ).
        dominant: ``(B,)`` long, the label that carries the larger weight in each target (the sample's own
            label where ``lam >= 0.5``): what accuracy is counted against while mixing.
        params: the sampled :class:`~lit_early_phase.functional.mix_params.BatchMixParams` or
            :class:`~lit_early_phase.functional.mix_params.ElemMixParams`.
    """

    inputs: Tensor
    targets: Tensor
    dominant: Tensor
    params: BatchMixParams | ElemMixParams

    @property
    def lam_mean(self) -> Tensor:
        """Mean λ over the batch (1.0 when nothing was mixed)."""
        return self.params.lam_mean

    @property
    def mixed_fraction(self) -> Tensor:
        """Fraction of the samples of the batch that were mixed."""
        return self.params.mixed_fraction


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


def apply_mix(
    inputs: Tensor,
    labels: Tensor,
    params: BatchMixParams | ElemMixParams,
    *,
    num_classes: int,
    smoothing: float = 0.0,
) -> MixOutput:
    """Apply sampled mixing parameters to a batch on its own device.

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
    if isinstance(params, BatchMixParams):
        lam = params.batch_lam
        if params.any_cutmix:  # one box for the whole batch: paste it by slicing
            mixed = inputs.clone()
            region = (..., *(slice(params.box[2 * d], params.box[2 * d + 1]) for d in range(params.n_spatial)))
            mixed[region] = other[region]
        else:  # one λ for the batch, all Mixup: a scalar blend, in place
            mixed = other.lerp_(inputs, lam)
        return MixOutput(mixed, *blend_targets(targets, labels, partner, lam), params)
    lam_t = params.lam.to(device, non_blocking=True)
    lam_x = lam_t.to(inputs.dtype).view(-1, *([1] * (inputs.dim() - 1)))
    if params.any_cutmix:
        # Mixup weight 1 for CutMix samples leaves them to the box, pasted from `other` afterwards.
        cut = params.cutmix.to(device, non_blocking=True).view(-1, *([1] * (inputs.dim() - 1)))
        mixed = torch.lerp(other, inputs, torch.where(cut, 1.0, lam_x))
        mask = _box_mask(params.boxes.to(device, non_blocking=True), tuple(inputs.shape[2:]), device)
        mixed = torch.where(mask & cut, other, mixed)
    else:
        mixed = other.lerp_(inputs, lam_x)
    return MixOutput(mixed, *blend_targets(targets, labels, partner, lam_t), params)


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
        prob: probability of mixing the batch (``"batch"``) or each sample (``"elem"``); ``Knobs.mix_prob``.
        switch_prob: probability of CutMix rather than Mixup when both are on.
        mode: ``"batch"`` or ``"elem"`` (per-sample λ, gate and method); the modules' ``mix_mode``.
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
