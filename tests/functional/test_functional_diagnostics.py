"""The diagnostics' pure functions against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lit_early_phase.functional import (
    activation_distance,
    benr,
    dead_fraction,
    flatten,
    interference_ratio,
    mix_batch,
    soft_cross_entropy,
)


def test_benr_is_sum_of_step_norms_over_norm_of_total() -> None:
    steps = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([-1.0, 0.0])]
    # norms 1 + 1 + 1 = 3, total update (0, 1) has norm 1
    assert benr(sum(s.norm() for s in steps), sum(steps)).item() == pytest.approx(3.0)
    # aligned steps: ratio exactly 1
    aligned = [torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0])]
    assert benr(sum(s.norm() for s in aligned), sum(aligned)).item() == pytest.approx(1.0)
    # steps that cancel: infinite
    assert math.isinf(benr(2.0, torch.zeros(2)).item())


def test_dead_fraction_counts_zero_and_negative_outputs() -> None:
    x = torch.tensor([[-3.0, -0.1, 0.0, 0.2], [1.0, 2.0, -5.0, 4.0]])
    assert dead_fraction(torch.relu(x)).item() == pytest.approx(4 / 8)
    # GELU is <= 0 exactly where its input is: same count as ReLU's zeros
    assert dead_fraction(nn.functional.gelu(x)).item() == pytest.approx(4 / 8)
    assert dead_fraction(torch.ones(3)).item() == 0.0


def test_interference_ratio_hand_values() -> None:
    assert interference_ratio(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 0.0])).item() == pytest.approx(4.0)
    # parallel (even opposite) gradients do not interfere
    assert interference_ratio(torch.tensor([-2.0, 0.0]), torch.tensor([1.0, 0.0])).item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="same parameters"):
        interference_ratio(torch.zeros(3), torch.zeros(2))


@pytest.mark.parametrize("lam", [0.1, 0.3, 0.5, 0.8])
def test_interference_ratio_linear_sigmoid_is_two_abs_lambda_minus_half(lam: float) -> None:
    """The paper's case: a linear-sigmoid model at w = 0, one pair of orthogonal inputs of equal norm.

    The clean gradient of the mean BCE loss is (x_i - x_j) / 4; the mixed sample λ x_i + (1-λ) x_j with target
    1-λ has gradient (λ - 1/2)(λ x_i + (1-λ) x_j), whose part along x_i + x_j is (λ - 1/2)(x_i + x_j)/2. With
    |x_i| = |x_j| = r the ratio is |λ - 1/2| (r√2 / 2) / (r√2 / 4) = 2|λ - 1/2|.
    """
    r = 3.0
    xi, xj = torch.tensor([r, 0.0, 0.0]), torch.tensor([0.0, r, 0.0])
    w = torch.zeros(3, requires_grad=True)

    def grad(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = nn.functional.binary_cross_entropy_with_logits(x @ w, y)
        return torch.autograd.grad(loss, w)[0]

    clean = grad(torch.stack([xi, xj]), torch.tensor([0.0, 1.0]))
    mixed = grad((lam * xi + (1 - lam) * xj)[None], torch.tensor([1 - lam]))
    assert interference_ratio(mixed, clean).item() == pytest.approx(2 * abs(lam - 0.5), abs=1e-6)


def test_interference_ratio_with_the_package_mixing_and_softmax_loss() -> None:
    """Two-class softmax at W = 0 is the linear-sigmoid case again: the package's own mix + loss give 2|λ-1/2|."""
    r = 2.0
    x = torch.tensor([[r, 0.0], [0.0, r]])
    y = torch.tensor([0, 1])
    w = torch.zeros(2, 2, requires_grad=True)
    g = torch.Generator().manual_seed(3)
    out = mix_batch(x, y, num_classes=2, mixup_alpha=1.0, generator=g)
    lam = float(out.params.lam[0])

    def grad(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(soft_cross_entropy(inputs @ w.T, targets).mean(), w)[0]

    clean = grad(x, nn.functional.one_hot(y, 2).float())
    mixed = grad(out.inputs, out.targets)
    # a batch of the pair mixed both ways: the two mixed samples' gradients cancel along x_i + x_j
    assert interference_ratio(mixed, clean).item() == pytest.approx(0.0, abs=1e-6)
    one = grad(out.inputs[:1], out.targets[:1])
    assert interference_ratio(one, clean).item() == pytest.approx(2 * abs(lam - 0.5), abs=1e-5)


def test_activation_distance_and_flatten() -> None:
    before = [torch.zeros(2, 2), torch.ones(3)]
    after = [torch.ones(2, 2), torch.ones(3)]
    assert activation_distance(before, after).item() == pytest.approx(2.0)  # sqrt(4 * 1)
    assert flatten([torch.ones(1), None]).tolist() == [1.0]
    with pytest.raises(ValueError, match="same layers"):
        activation_distance(before, after[:1])
