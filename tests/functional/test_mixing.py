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


@pytest.mark.parametrize("alpha", [0.001, 0.05, 0.2, 1.0, 4.0])  # below 0.1: the underflow guard
def test_beta_draws_have_the_beta_mean_and_variance(alpha):
    lam = sample_beta(alpha, 20000, generator=gen())
    assert lam.mean().item() == pytest.approx(0.5, abs=0.01)
    assert lam.var().item() == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.05)
    assert bool(lam.isfinite().all()) and bool(((lam >= 0) & (lam <= 1)).all())


@pytest.mark.parametrize("b", [2, 3, 8, 33])
def test_pairing_is_one_cycle_through_the_whole_batch(b):
    p = sample_mix_params(b, (4,), mixup_alpha=1.0, generator=gen(b))
    seen, i = [], 0
    for _ in range(b):
        seen.append(i)
        i = int(p.partner[i])
    assert i == 0 and sorted(seen) == list(range(b)), "following partners visits every sample once, then returns"


def test_per_batch_params_materialise_consistent_tensors():
    p = sample_mix_params(6, (4, 4), mixup_alpha=0.0, cutmix_alpha=1.0, generator=gen(3))
    assert p.any_cutmix and p.shared_lam is None
    assert p.cutmix.tolist() == [True] * 6 and p.mixed.tolist() == [True] * 6
    assert p.lam.unique().numel() == 1 and p.boxes.unique(dim=0).shape == (1, 4)
    start0, end0, start1, end1 = p.boxes[0].tolist()
    assert p.lam[0].item() == pytest.approx(1 - (end0 - start0) * (end1 - start1) / 16)
    assert p.lam_mean.item() == pytest.approx(p.lam.mean().item()) and p.mixed_fraction.item() == 1.0


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_one_hot_is_the_same_through_the_cached_identity_and_the_scatter(smoothing):
    y = torch.tensor([0, 3, 1023, 5, 3])
    small = smooth_one_hot(y, 1024, smoothing=smoothing)  # read from the cached identity
    large = smooth_one_hot(y, 1025, smoothing=smoothing)  # built by a scatter
    torch.testing.assert_close(small.sum(1), torch.ones(5))
    assert torch.equal(small.argmax(1), y) and torch.equal(large.argmax(1), y)
    assert small[0, 0].item() == pytest.approx(1 - smoothing + smoothing / 1024)
    assert large[0, 0].item() == pytest.approx(1 - smoothing + smoothing / 1025)
    small[0, 0] = 5.0  # a caller writing to its targets must not change the next call's
    assert smooth_one_hot(y, 1024, smoothing=smoothing)[0, 0].item() == pytest.approx(1 - smoothing + smoothing / 1024)


def test_tiny_alpha_draws_are_a_coin_not_one_half_per_batch_and_per_element():
    # torch clamps Gamma draws to the smallest float64: without the guard both draws tie and λ would be 0.5
    per_batch = torch.tensor(
        [sample_mix_params(4, (2,), mixup_alpha=0.001, generator=gen(i)).lam[0] for i in range(400)]
    )
    per_elem = sample_beta(0.001, 4000, generator=gen())
    for lam in (per_batch, per_elem):
        assert ((lam > 0.01) & (lam < 0.99)).float().mean().item() < 0.05
        assert lam.mean().item() == pytest.approx(0.5, abs=0.1)


def test_mix_params_are_read_only_and_a_hand_built_per_sample_box_is_pasted():
    p = sample_mix_params(4, (8, 8), mixup_alpha=1.0, generator=gen())
    with pytest.raises(AttributeError, match="read-only"):
        p.shared_lam = 0.3
    # a shared λ but per-sample CutMix tensors: the per-sample path, not the one-box slicing
    from lit_early_phase.functional import ElemMixParams, MixParams

    mp = ElemMixParams(
        alpha=0.0, cutmix_alpha=1.0, partner=torch.tensor([1, 0]), lam=torch.tensor([0.75, 0.75]),
        mixed=torch.tensor([True, True]), cutmix=torch.tensor([True, False]),
        boxes=torch.tensor([[0, 4, 0, 4], [0, 0, 0, 0]]),
    )  # fmt: skip
    assert isinstance(mp, MixParams) and isinstance(p, MixParams)
    x = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    out = apply_mix(x, torch.tensor([0, 1]), mp, num_classes=2)
    assert out.inputs[0].sum().item() == 16.0  # the 4x4 box pasted from sample 1
