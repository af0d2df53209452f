import pytest
import torch

from lit_early_phase.functional import apply_mix, mix_batch, sample_beta, sample_mix_params, smooth_one_hot


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("b", [2, 7, 32])
def test_mixup_targets_sum_to_one_and_inputs_are_the_applied_blend(mode, b):
    x, y = torch.randn(b, 3, 8, 8), torch.randint(0, 5, (b,))
    out = mix_batch(x, y, num_classes=5, mixup_alpha=0.7, mode=mode, generator=gen())
    p = out.params
    torch.testing.assert_close(out.targets.sum(1), torch.ones(b))
    assert bool(((p.lam >= 0) & (p.lam <= 1)).all())
    assert bool(p.mixed.all())
    assert bool((p.partner != torch.arange(b)).all()), "nobody is paired with itself"
    assert sorted(p.partner.tolist()) == list(range(b)), "the pairing is a permutation"
    lam = p.lam.view(-1, 1, 1, 1)
    torch.testing.assert_close(out.inputs, lam * x + (1 - lam) * x[p.partner])
    expected_t = p.lam[:, None] * smooth_one_hot(y, 5) + (1 - p.lam[:, None]) * smooth_one_hot(y[p.partner], 5)
    torch.testing.assert_close(out.targets, expected_t)
    dominant = torch.where(p.lam >= 0.5, y, y[p.partner])
    assert torch.equal(out.dominant, dominant)


def test_per_batch_shares_lambda_per_element_does_not():
    x, y = torch.randn(16, 1, 4, 4), torch.arange(16) % 4
    batch = mix_batch(x, y, num_classes=4, mixup_alpha=1.0, mode="batch", generator=gen())
    elem = mix_batch(x, y, num_classes=4, mixup_alpha=1.0, mode="elem", generator=gen())
    assert batch.params.lam.unique().numel() == 1
    assert elem.params.lam.unique().numel() == 16


def test_batch_of_one_is_a_no_op():
    x, y = torch.randn(1, 3, 8, 8), torch.tensor([2])
    out = mix_batch(x, y, num_classes=3, mixup_alpha=1.0, cutmix_alpha=1.0, generator=gen())
    assert torch.equal(out.inputs, x)
    torch.testing.assert_close(out.targets, torch.tensor([[0.0, 0.0, 1.0]]))
    assert out.params.lam.tolist() == [1.0] and not bool(out.params.mixed.any())


def test_reproducible_under_a_seed_and_different_across_seeds():
    x, y = torch.randn(9, 2, 6, 6), torch.arange(9) % 3
    kw = {"num_classes": 3, "mixup_alpha": 0.4, "cutmix_alpha": 1.0, "mode": "elem"}
    a, b = mix_batch(x, y, generator=gen(1), **kw), mix_batch(x, y, generator=gen(1), **kw)
    c = mix_batch(x, y, generator=gen(2), **kw)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.params.lam, b.params.lam)
    assert not torch.equal(a.params.lam, c.params.lam)


def test_alpha_zero_or_prob_zero_mixes_nothing_but_keeps_target_format():
    x, y = torch.randn(5, 1, 4, 4), torch.arange(5) % 2
    for kw in ({"mixup_alpha": 0.0}, {"mixup_alpha": 1.0, "prob": 0.0}):
        out = mix_batch(x, y, num_classes=2, label_smoothing=0.1, generator=gen(), **kw)
        assert torch.equal(out.inputs, x)
        assert out.targets.shape == (5, 2)
        torch.testing.assert_close(out.targets, smooth_one_hot(y, 2, smoothing=0.1))
        assert out.mixed_fraction.item() == 0.0 and out.lam_mean.item() == 1.0


def test_elementwise_probability_mixes_about_that_share():
    x, y = torch.randn(4000, 1, 2, 2), torch.arange(4000) % 2
    out = mix_batch(x, y, num_classes=2, mixup_alpha=1.0, prob=0.3, mode="elem", generator=gen())
    assert abs(out.mixed_fraction.item() - 0.3) < 0.03  # applied once per sample, not squared (kornia #4649)
    unmixed = ~out.params.mixed
    assert torch.equal(out.inputs[unmixed], x[unmixed])


@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("shape", [(3, 16, 16), (2, 50)])
def test_cutmix_lambda_is_the_kept_share(shape, mode):
    b = 9
    x = torch.zeros(b, *shape)
    for i in range(b):
        x[i] = i + 1  # each sample a constant: the pasted region is identifiable
    y = torch.arange(b) % 3
    out = mix_batch(x, y, num_classes=3, mixup_alpha=0.0, cutmix_alpha=1.0, mode=mode, generator=gen(3))
    p = out.params
    assert bool(p.cutmix.all())
    for i in range(b):
        own = (out.inputs[i] == i + 1).float().mean().item()
        assert own == pytest.approx(p.lam[i].item(), abs=1e-6)
        pasted = (out.inputs[i] == p.partner[i].item() + 1).float().mean().item()
        assert own + pasted == pytest.approx(1.0)


def test_cutmix_refuses_inputs_without_spatial_dims():
    with pytest.raises(ValueError, match="cutmix_alpha=0"):
        mix_batch(torch.randn(4, 8), torch.arange(4) % 2, num_classes=2, mixup_alpha=0, cutmix_alpha=1.0)


def test_mixup_works_on_vectors_and_series_and_in_bf16():
    for x in (torch.randn(6, 8), torch.randn(6, 3, 40), torch.randn(6, 1, 8, 8).bfloat16()):
        out = mix_batch(x, torch.arange(6) % 2, num_classes=2, mixup_alpha=0.5, generator=gen())
        assert out.inputs.dtype == x.dtype and out.inputs.shape == x.shape
        assert out.mixed_fraction.item() == 1.0


def test_switch_prob_selects_cutmix_or_mixup_per_sample():
    x, y = torch.randn(2000, 1, 8, 8), torch.arange(2000) % 2
    out = mix_batch(
        x, y, num_classes=2, mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=0.25, mode="elem", generator=gen()
    )
    assert abs(out.params.cutmix.float().mean().item() - 0.25) < 0.04


def test_apply_mix_on_sampled_params_is_deterministic():
    x, y = torch.randn(5, 1, 8, 8), torch.arange(5)
    p = sample_mix_params(5, (8, 8), mixup_alpha=1.0, cutmix_alpha=1.0, mode="elem", generator=gen())
    a, b = apply_mix(x, y, p, num_classes=5), apply_mix(x, y, p, num_classes=5)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mixup_alpha": -0.1}, "mixup_alpha"),
        ({"mixup_alpha": float("nan")}, "mixup_alpha"),
        ({"mixup_alpha": 0.2, "cutmix_alpha": -1}, "cutmix_alpha"),
        ({"mixup_alpha": 0.2, "prob": 1.5}, "mix_prob"),
        ({"mixup_alpha": 0.2, "mode": "pairs"}, "mix_mode"),
        ({"mixup_alpha": 0.2, "label_smoothing": 1.0}, "label_smoothing"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mix_batch(torch.randn(4, 1, 4, 4), torch.arange(4) % 2, num_classes=2, **kwargs)


def test_float_labels_are_refused():
    with pytest.raises(ValueError, match="integer"):
        mix_batch(torch.randn(4, 2), torch.rand(4), num_classes=2, mixup_alpha=1.0)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_beta_draws_have_the_beta_mean_and_variance(alpha):
    lam = sample_beta(alpha, 20000, generator=gen())
    assert lam.mean().item() == pytest.approx(0.5, abs=0.01)
    assert lam.var().item() == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.05)
