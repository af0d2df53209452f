"""Token-level losses of causal language models: ``-100`` masking, per-sequence means, token counts, accuracy.

Pure tensor code (no Lightning). Conventions follow Hugging Face: ``labels`` are aligned with ``input_ids``
and shifted here (position ``t`` predicts token ``t + 1``); a label of ``-100`` (:data:`IGNORE_INDEX`) marks a
token that is not learned (prompt, padding). High-Loss Removal ranks *sequences* by the mean loss over their
response tokens and normalises the batch loss by the number of kept response tokens: pass
:attr:`SequenceLosses.losses` and :attr:`SequenceLosses.num_tokens` to
:func:`~lit_early_phase.functional.drop_highest` as ``losses`` and ``weights``; the result is ``sum(kept token
losses) / kept tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch  # noqa: F401 (the examples use it)
import torch.nn.functional as F
from torch import Tensor

#: The label of a token that no loss or accuracy counts (prompt and padding), as in ``torch.nn.CrossEntropyLoss``.
IGNORE_INDEX = -100


@dataclass(frozen=True)
class SequenceLosses:
    """Per-token and per-sequence losses of a batch (see :func:`sequence_losses`).

    Attributes:
        token_losses: ``(B, T - 1)`` float32 cross-entropy of each predicted token, 0 where masked.
        mask: ``(B, T - 1)`` bool, the tokens that count (shifted labels ``!= -100``).
        num_tokens: ``(B,)`` long, response tokens per sequence.
        losses: ``(B,)`` float32 mean loss over each sequence's response tokens; 0 (still connected to the
            logits) for a sequence with none.
    """

    token_losses: Tensor
    mask: Tensor
    num_tokens: Tensor
    losses: Tensor

    def token_mean(self) -> Tensor:
        """The plain token-level mean over the whole batch (no removal): ``sum(token losses) / tokens``.

        A graph-connected zero when no token counts.
        """
        total = self.num_tokens.sum()
        return self.token_losses.sum() / total.clamp_min(1).to(self.token_losses.dtype)


def shift_labels(labels: Tensor) -> Tensor:
    """Targets of the logits at positions ``0 .. T-2``: ``labels[:, 1:]``.

    Args:
        labels: ``(B, T)`` labels aligned with ``input_ids`` (``-100`` = not learned).

    Returns:
        ``(B, T - 1)`` labels.

    Raises:
        ValueError: for a tensor that is not ``(B, T)``.

    Example:
        >>> shift_labels(torch.tensor([[-100, 5, 6]]))
        tensor([[5, 6]])
    """
    if labels.dim() != 2:
        raise ValueError(f"`labels` must be (batch, seq_len), got shape {tuple(labels.shape)}.")
    return labels[:, 1:]


def _check(logits: Tensor, labels: Tensor) -> None:
    if logits.dim() != 3 or labels.dim() != 2 or logits.shape[:2] != labels.shape:
        raise ValueError(
            f"`logits` must be (batch, seq_len, vocab) and `labels` (batch, seq_len) with the same batch and "
            f"length, got {tuple(logits.shape)} and {tuple(labels.shape)}. Pass labels aligned with "
            f"`input_ids` (not shifted); the shift happens here."
        )


def token_cross_entropy(logits: Tensor, labels: Tensor, *, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Next-token cross-entropy of every position, 0 where the shifted label is ``ignore_index``.

    Computed in float32 whatever the logits' dtype (``bf16-mixed`` ranks by the same values as fp32).

    Args:
        logits: ``(B, T, V)`` model outputs for ``input_ids``.
        labels: ``(B, T)`` labels aligned with ``input_ids``.
        ignore_index: the label of tokens that are not learned.

    Returns:
        ``(B, T - 1)`` float32 losses.

    Raises:
        ValueError: if the shapes do not fit.

    Example:
        >>> logits = torch.zeros(1, 3, 4)
        >>> token_cross_entropy(logits, torch.tensor([[-100, -100, 2]]))
        tensor([[0.0000, 1.3863]])
    """
    _check(logits, labels)
    targets = shift_labels(labels)
    flat = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    losses = F.cross_entropy(flat, targets.reshape(-1), ignore_index=ignore_index, reduction="none")
    return losses.view(targets.shape)


def sequence_losses(logits: Tensor, labels: Tensor, *, ignore_index: int = IGNORE_INDEX) -> SequenceLosses:
    """Per-sequence mean loss over the response tokens (for ranking) and the token counts (for normalising).

    Args:
        logits: ``(B, T, V)`` model outputs for ``input_ids``.
        labels: ``(B, T)`` labels aligned with ``input_ids``, ``ignore_index`` on prompt and padding.
        ignore_index: the label of tokens that are not learned.

    Returns:
        A :class:`SequenceLosses`.

    Raises:
        ValueError: if the shapes do not fit.

    Example:
        >>> logits = torch.zeros(2, 3, 4)
        >>> out = sequence_losses(logits, torch.tensor([[-100, 1, 2], [-100, -100, -100]]))
        >>> out.losses, out.num_tokens
        (tensor([1.3863, 0.0000]), tensor([2, 0]))
    """
    token_losses = token_cross_entropy(logits, labels, ignore_index=ignore_index)
    mask = shift_labels(labels) != ignore_index
    num_tokens = mask.sum(dim=1)
    # masked positions are exact zeros already; clamp avoids 0/0 for a sequence without response tokens
    losses = token_losses.sum(dim=1) / num_tokens.clamp_min(1).to(token_losses.dtype)
    return SequenceLosses(token_losses, mask, num_tokens, losses)


def token_accuracy_counts(logits: Tensor, labels: Tensor, *, ignore_index: int = IGNORE_INDEX) -> tuple[Tensor, Tensor]:
    """Next-token arg-max hits and the number of counted tokens (shifted labels ``!= ignore_index``).

    Both as 0-dim long tensors on the logits' device (no host sync), ready for
    :meth:`~lit_early_phase.modules.EnlightenmentMixin.record_accuracy`.

    Args:
        logits: ``(B, T, V)`` model outputs for ``input_ids``.
        labels: ``(B, T)`` labels aligned with ``input_ids``.
        ignore_index: the label of tokens that are not counted.

    Returns:
        ``(correct, total)``.

    Raises:
        ValueError: if the shapes do not fit.

    Example:
        >>> logits = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]])
        >>> token_accuracy_counts(logits, torch.tensor([[-100, 1, 1]]))
        (tensor(1), tensor(2))
    """
    _check(logits, labels)
    targets = shift_labels(labels)
    mask = targets != ignore_index
    hits = (logits[:, :-1].argmax(dim=-1) == targets) & mask
    return hits.sum(), mask.sum()
