import pytest
import torch

from lit_early_phase.functional import drop_highest, num_to_remove, soft_cross_entropy


def test_removes_exactly_the_highest_losses_and_normalises_by_kept_count():
    losses = torch.tensor([0.5, 3.0, 1.0, 9.0, 2.0, 0.1, 4.0, 0.7, 1.5, 2.5])
    out = drop_highest(losses, fraction=0.3)
    removed = set(torch.nonzero(~out.kept).flatten().tolist())
    assert removed == set(torch.topk(losses, 3).indices.tolist()) == {3, 6, 1}
    assert out.num_removed == 3 and out.removed_fraction == pytest.approx(0.3)
    assert out.loss.item() == pytest.approx(losses[out.kept].sum().item() / 7)


def test_count_overrides_fraction_and_zero_removes_nothing():
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert drop_highest(losses, fraction=0.5, count=1).kept.tolist() == [True, True, True, False]
    out = drop_highest(losses)
    assert bool(out.kept.all()) and out.loss.item() == pytest.approx(2.5)


def test_weights_normalise_by_kept_weight():
    per_seq_mean = torch.tensor([1.0, 5.0, 2.0])
    tokens = torch.tensor([10.0, 3.0, 2.0])
    out = drop_highest(per_seq_mean, count=1, weights=tokens)
    assert out.kept.tolist() == [True, False, True]
    assert out.loss.item() == pytest.approx((1.0 * 10 + 2.0 * 2) / 12)


def test_gradient_flows_only_through_kept_samples():
    w = torch.ones(4, requires_grad=True)
    losses = w * torch.tensor([1.0, 4.0, 2.0, 3.0])
    drop_highest(losses, count=2).loss.backward()
    torch.testing.assert_close(w.grad, torch.tensor([0.5, 0.0, 1.0, 0.0]))


def test_all_dropped_gives_a_connected_zero():
    w = torch.ones(2, requires_grad=True)
    out = drop_highest(w * 3.0, count=2)
    assert out.loss.item() == 0.0 and out.loss.requires_grad
    out.loss.backward()
    torch.testing.assert_close(w.grad, torch.zeros(2))
    masked = drop_highest(w * 3.0, weights=torch.zeros(2))  # every token masked
    assert masked.loss.item() == 0.0 and masked.loss.requires_grad


@pytest.mark.parametrize(("b", "fraction", "expected"), [(32, 0.1, 3), (10, 0.05, 1), (4, 0.1, 0), (1, 0.5, 1)])
def test_num_to_remove_rounds_half_up(b, fraction, expected):
    assert num_to_remove(b, fraction=fraction) == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fraction": 1.0}, "drop_fraction"),
        ({"fraction": -0.1}, "drop_fraction"),
        ({"count": -1}, "drop_count"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        drop_highest(torch.ones(3), **kwargs)


def test_soft_cross_entropy_matches_torch_on_hard_targets():
    logits = torch.randn(6, 5)
    y = torch.randint(0, 5, (6,))
    ours = soft_cross_entropy(logits, torch.nn.functional.one_hot(y, 5).float())
    torch.testing.assert_close(ours, torch.nn.functional.cross_entropy(logits, y, reduction="none"))
    with pytest.raises(ValueError, match="num_classes"):
        soft_cross_entropy(logits, torch.zeros(6, 4))


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("values", "kwargs", "removed", "num_nonfinite"),
    [
        # one NaN within a budget of 2: it leaves first, then the highest finite loss (4.0 at index 6)
        ([0.5, NAN, 1.0, 3.0, 2.0, 0.1, 4.0, 0.7, 1.5, 2.5], {"fraction": 0.2}, {1, 6}, 1),
        # NaN, +inf and -inf with a budget of 2: all three leave (over the budget), no finite loss does
        ([0.5, NAN, 1.0, INF, 2.0, -INF, 4.0, 0.7, 1.5, 2.5], {"fraction": 0.2}, {1, 3, 5}, 3),
        # an exact count of 1: the +inf uses it up, every finite loss stays
        ([0.5, 9.0, INF, 2.0], {"count": 1}, {2}, 1),
        # 0.1 of 4 samples rounds to a budget of 0, but removal is in force: the NaN still leaves
        ([1.0, NAN, 2.0, 3.0], {"fraction": 0.1}, {1}, 1),
    ],
)
def test_non_finite_losses_are_removed_first_and_counted(values, kwargs, removed, num_nonfinite):
    losses = torch.tensor(values)
    out = drop_highest(losses, **kwargs)
    assert set(torch.nonzero(~out.kept).flatten().tolist()) == removed
    assert int(out.num_removed) == len(removed) and int(out.num_nonfinite) == num_nonfinite
    assert float(out.removed_fraction) == pytest.approx(len(removed) / len(values))
    kept_values = [v for i, v in enumerate(values) if i not in removed]
    assert out.loss.item() == pytest.approx(sum(kept_values) / len(kept_values))


def test_non_finite_losses_with_removal_off_stay_in_the_mean():
    """Outside the period (fraction 0, or count 0) nothing is removed: the loss is NaN as in plain training."""
    losses = torch.tensor([1.0, NAN, 2.0])
    for kwargs in ({}, {"fraction": 0.5, "count": 0}):
        out = drop_highest(losses, **kwargs)
        assert bool(out.kept.all()) and int(out.num_removed) == 0 and int(out.num_nonfinite) == 1
        assert torch.isnan(out.loss)
    assert drop_highest(torch.tensor([1.0, INF]), fraction=0.0).loss.item() == INF


def test_removed_non_finite_losses_get_zero_gradient_and_weights_ignore_them():
    w = torch.tensor([1.0, INF, 1.0, 1.0], requires_grad=True)
    losses = w * torch.tensor([1.0, 2.0, 3.0, 4.0])  # [1, inf, 3, 4]: d loss_i / d w_i is finite
    out = drop_highest(losses, count=1)
    assert out.kept.tolist() == [True, False, True, True] and out.loss.item() == pytest.approx(8 / 3)
    out.loss.backward()
    torch.testing.assert_close(w.grad, torch.tensor([1 / 3, 0.0, 1.0, 4 / 3]))
    # per-sequence means with token weights: the NaN sequence leaves, the others are averaged by their tokens
    weighted = drop_highest(torch.tensor([2.0, NAN, 1.0]), count=1, weights=torch.tensor([3.0, 5.0, 1.0]))
    assert weighted.kept.tolist() == [True, False, True]
    assert weighted.loss.item() == pytest.approx((2.0 * 3 + 1.0 * 1) / 4)


def test_all_non_finite_gives_a_connected_zero():
    w = torch.ones(3, requires_grad=True)
    out = drop_highest(w * torch.tensor([NAN, INF, NAN]), fraction=0.1)
    assert out.loss.item() == 0.0 and out.loss.requires_grad and int(out.num_removed) == 3
    assert float(out.removed_fraction) == 1.0
