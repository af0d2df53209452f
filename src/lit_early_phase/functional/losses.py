"""Per-sample losses that keep the target format constant whether a batch was mixed or not."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy against dense (soft) targets, one value per sample (``reduction="none"``).

    Computed in float32 whatever the logits' dtype, so ``bf16-mixed`` runs rank samples by the same values.

    Args:
        logits: ``(B, K)`` unnormalised scores.
        targets: ``(B, K)`` target distributions (rows sum to 1).

    Returns:
        ``(B,)`` float32 losses, connected to ``logits``.

    Raises:
        ValueError: if the shapes differ.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
        >>> soft_cross_entropy(logits, torch.tensor([[1.0, 0.0], [0.5, 0.5]]))
        tensor([0.1269, 0.6931])
    """
    if logits.shape != targets.shape:
        raise ValueError(
            f"`logits` {tuple(logits.shape)} and `targets` {tuple(targets.shape)} must have the same shape "
            f"(B, num_classes). Check that the model's `num_classes` matches the data."
        )
    return -(targets.float() * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1)


def count_correct(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Number of arg-max hits and of samples, as tensors on the logits' device (no host sync).

    Args:
        logits: ``(B, K)`` scores.
        labels: ``(B,)`` integer labels (for mixed batches: the dominant labels).

    Returns:
        ``(correct, total)`` as 0-dim long tensors.

    Example:
        >>> count_correct(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 1]))
        (tensor(1), tensor(2))
    """
    correct = (logits.argmax(dim=-1) == labels).sum()
    # filled on the device: torch.tensor(n, device=...) would copy from the host and wait for the stream on CUDA
    return correct, torch.full((), labels.numel(), dtype=torch.long, device=logits.device)
