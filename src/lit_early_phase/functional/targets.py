"""Dense soft targets: one-hot rows with label smoothing, then blended by λ with each sample's partner.

Pure tensor code (no Lightning). Targets are always ``(B, num_classes)`` float tensors, mixed or not, so the
loss never changes format when a strategy switches mixing on or off.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

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


def blend_targets(targets: Tensor, labels: Tensor, partner: Tensor, lam: Tensor | float) -> tuple[Tensor, Tensor]:
    """Blend each sample's target with its partner's by λ, and name the label that carries more weight.

    Args:
        targets: ``(B, K)`` dense targets (read only).
        labels: ``(B,)`` long labels.
        partner: ``(B,)`` long partner indices, on the targets' device.
        lam: ``(B,)`` λ on the targets' device, or one λ for the batch.

    Returns:
        ``(blended, dominant)``: ``(B, K)`` targets ``λ · own + (1 - λ) · partner's`` (a new tensor) and the
        ``(B,)`` label with the larger weight (the sample's own where ``λ >= 0.5``): what accuracy is counted
        against while mixing.

    Example:
        >>> t, d = blend_targets(torch.eye(2), torch.tensor([0, 1]), torch.tensor([1, 0]), 0.75)
        >>> t.tolist(), d.tolist()
        ([[0.75, 0.25], [0.25, 0.75]], [0, 1])
    """
    other = targets.index_select(0, partner)
    if isinstance(lam, Tensor):
        return other.lerp_(targets, lam.unsqueeze(1)), torch.where(lam >= 0.5, labels, labels.index_select(0, partner))
    return other.lerp_(targets, lam), labels if lam >= 0.5 else labels.index_select(0, partner)
