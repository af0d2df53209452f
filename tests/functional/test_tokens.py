"""Token-level losses: -100 masking, per-sequence means, token counts, accuracy, and removal normalisation."""

import math

import pytest
import torch
import torch.nn.functional as F

from lit_early_phase.functional import drop_highest
from lit_early_phase.functional.tokens import (
    IGNORE_INDEX,
    sequence_losses,
    shift_labels,
    token_accuracy_counts,
    token_cross_entropy,
)

M = IGNORE_INDEX


def _batch(seed=0, b=3, t=7, v=11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g, requires_grad=True)
    labels = torch.tensor(
        [
            [M, M, M, 4, 5, 6, 7],  # 4 response tokens (positions 3-6)
            [M, M, 1, 2, M, M, M],  # 2 response tokens, then padding
            [M, M, M, M, M, 9, 10],  # 2 response tokens
        ]
    )
    return logits, labels


def _hand_sequence_loss(logits, labels, i):
    """Mean over the response tokens of sequence i, one token at a time."""
    terms = []
    for t in range(1, labels.shape[1]):
        target = int(labels[i, t])
        if target != M:
            terms.append(-float(torch.log_softmax(logits[i, t - 1].double(), -1)[target]))
    return sum(terms) / len(terms), len(terms)


def test_per_sequence_loss_equals_hand_computation():
    logits, labels = _batch()
    out = sequence_losses(logits, labels)
    for i in range(3):
        expected, n = _hand_sequence_loss(logits.detach(), labels, i)
        assert out.losses[i].item() == pytest.approx(expected, rel=1e-5)
        assert out.num_tokens[i].item() == n
    assert out.num_tokens.tolist() == [4, 2, 2]
    assert out.losses.dtype == torch.float32


def test_prompt_and_padding_never_contribute():
    logits, labels = _batch()
    out = sequence_losses(logits, labels)
    assert torch.all(out.token_losses[~out.mask] == 0)
    out.token_mean().backward()
    grad = logits.grad[:, :-1]  # the last position predicts nothing
    learned = shift_labels(labels) != M
    # positions whose next token is prompt/padding get no gradient at all
    assert torch.all(grad[~learned] == 0)
    assert torch.all(grad[learned].abs().sum(-1) > 0)
    assert torch.all(logits.grad[:, -1] == 0)


def test_changing_prompt_logits_changes_nothing():
    logits, labels = _batch()
    before = sequence_losses(logits.detach(), labels).losses
    noisy = logits.detach().clone()
    mask = shift_labels(labels) == M
    noisy[:, :-1][mask] += 100 * torch.randn(int(mask.sum()), noisy.shape[-1])
    assert torch.allclose(sequence_losses(noisy, labels).losses, before)


def test_token_mean_and_matches_torch_reference():
    logits, labels = _batch()
    out = sequence_losses(logits, labels)
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=M)
    assert out.token_mean().item() == pytest.approx(ref.item(), rel=1e-6)


def test_removal_normalises_by_kept_tokens():
    logits, labels = _batch()
    out = sequence_losses(logits, labels)
    drop = drop_highest(out.losses, count=1, weights=out.num_tokens)
    worst = int(out.losses.argmax())
    assert drop.kept.tolist() == [i != worst for i in range(3)]
    kept_tokens = out.mask[drop.kept]
    expected = out.token_losses[drop.kept][kept_tokens].sum() / kept_tokens.sum()
    assert drop.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # not the mean of the per-sequence means (that would over-weight short answers)
    mean_of_means = out.losses[drop.kept].mean().item()
    assert not math.isclose(drop.loss.item(), mean_of_means, rel_tol=1e-4)
    # without removal it is the plain token mean of the batch
    assert drop_highest(out.losses, weights=out.num_tokens).loss.item() == pytest.approx(out.token_mean().item())


def test_ranking_is_by_sequence_mean_not_sum():
    # sequence 0: many tokens of moderate loss (big sum); sequence 1: few tokens of high loss (big mean)
    losses = torch.tensor([2.0, 5.0, 1.0])
    counts = torch.tensor([50, 2, 10])
    drop = drop_highest(losses, count=1, weights=counts)
    assert drop.kept.tolist() == [True, False, True]
    assert drop.loss.item() == pytest.approx((2.0 * 50 + 1.0 * 10) / 60)


def test_all_masked_sequence_and_batch_are_zero_but_connected():
    logits, _ = _batch()
    labels = torch.full((3, 7), M)
    out = sequence_losses(logits, labels)
    assert out.losses.tolist() == [0.0, 0.0, 0.0]
    assert out.num_tokens.tolist() == [0, 0, 0]
    loss = drop_highest(out.losses, weights=out.num_tokens).loss
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_all_dropped_batch_is_zero_but_connected():
    logits, labels = _batch()
    out = sequence_losses(logits, labels)
    drop = drop_highest(out.losses, count=3, weights=out.num_tokens)
    assert not drop.kept.any() and drop.num_removed == 3
    assert drop.loss.item() == 0.0 and drop.loss.requires_grad
    drop.loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_token_accuracy_counts_by_hand():
    logits, labels = _batch()
    correct, total = token_accuracy_counts(logits.detach(), labels)
    hits = 0
    for i in range(3):
        for t in range(1, 7):
            if labels[i, t] != M:
                hits += int(logits[i, t - 1].argmax() == labels[i, t])
    assert (int(correct), int(total)) == (hits, 8)
    # forcing every response prediction right gives 8/8
    forced = torch.zeros(3, 7, 11)
    for i in range(3):
        for t in range(1, 7):
            if labels[i, t] != M:
                forced[i, t - 1, labels[i, t]] = 5.0
    assert [int(v) for v in token_accuracy_counts(forced, labels)] == [8, 8]


def test_bf16_logits_give_float32_losses():
    logits, labels = _batch()
    out = sequence_losses(logits.detach().bfloat16(), labels)
    assert out.losses.dtype == torch.float32
    ref = sequence_losses(logits.detach().bfloat16().float(), labels)
    assert torch.allclose(out.losses, ref.losses)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="aligned with `input_ids`"):
        sequence_losses(torch.zeros(2, 5, 3), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(batch, seq_len\)"):
        shift_labels(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError):
        token_cross_entropy(torch.zeros(2, 5), torch.zeros(2, 5, dtype=torch.long))
