"""functional/detection.py: detection Mixup (pairs blended and padded, both box sets kept, weighted by λ)."""

import pytest
import torch

from lit_early_phase.functional import DetectionMixOutput, mix_detection


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def target(boxes, labels, **extra):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.long),
        **extra,
    }


def batch(n, seed=0, sizes=None):
    g = gen(seed)
    sizes = sizes or [(8 + i, 10 + 2 * i) for i in range(n)]
    images = [torch.rand(3, h, w, generator=g) for h, w in sizes]
    targets = [target([[0, 0, 2 + i, 3 + i]] * (i % 3), [1 + i] * (i % 3)) for i in range(n)]
    return images, targets


def test_pair_keeps_both_box_sets_with_their_weights_and_labels():
    a, b = torch.rand(3, 20, 30, generator=gen(1)), torch.rand(3, 25, 18, generator=gen(2))
    ta = target([[1, 2, 5, 6], [10, 10, 20, 15]], [1, 2], image_id=torch.tensor([7]))
    tb = target([[0, 0, 4, 4]], [3], image_id=torch.tensor([8]))
    out = mix_detection([a, b], [ta, tb], alpha=1.0, generator=gen())
    assert isinstance(out, DetectionMixOutput)
    assert out.partner.tolist() == [1, 0] and out.mixed.tolist() == [True, True]
    lam = out.lam.tolist()
    assert lam[0] == lam[1] and 0.0 < lam[0] < 1.0, "batch mode: one λ for the batch"
    t0, t1 = out.targets
    assert torch.equal(t0["boxes"], torch.cat([ta["boxes"], tb["boxes"]]))
    assert t0["labels"].tolist() == [1, 2, 3]
    assert t0["weights"].dtype == torch.float32
    assert torch.equal(t0["weights"], torch.tensor([lam[0], lam[0], 1 - lam[0]]))
    assert torch.equal(t1["boxes"], torch.cat([tb["boxes"], ta["boxes"]]))
    assert t1["labels"].tolist() == [3, 1, 2]
    assert torch.equal(t1["weights"], torch.tensor([lam[1], 1 - lam[1], 1 - lam[1]]))
    assert t0["image_id"].tolist() == [7] and t1["image_id"].tolist() == [8], "other keys: the image's own"
    assert "weights" not in ta and ta["labels"].tolist() == [1, 2], "input dicts are not modified"


def test_pixels_are_the_blend_exactly_and_padding_is_zero_bottom_right():
    a, b = torch.rand(3, 20, 30, generator=gen(1)) + 0.5, torch.rand(3, 25, 18, generator=gen(2)) + 0.5
    out = mix_detection([a, b], [target([], []), target([], [])], alpha=0.4, generator=gen(3))
    m0, m1 = out.images
    assert m0.shape == m1.shape == (3, 25, 30), "padded to the pair's max H and W"
    lam = out.lam[0]  # float32 tensor: recomputing in float32 gives the same bits
    overlap = lam * a[:, :20, :18] + (1 - lam) * b[:, :20, :18]
    assert torch.equal(m0[:, :20, :18], overlap)
    assert m0[1, 7, 5].item() == (lam * a[1, 7, 5] + (1 - lam) * b[1, 7, 5]).item()
    assert torch.equal(m0[:, :20, 18:], lam * a[:, :, 18:]), "only a there: b is padded with zeros"
    assert torch.equal(m0[:, 20:, :18], (1 - lam) * b[:, 20:, :]), "only b there: a is padded with zeros"
    assert torch.equal(m0[:, 20:, 18:], torch.zeros(3, 5, 12)), "neither: zeros"
    lam1 = out.lam[1]
    assert torch.equal(m1[:, :20, :18], lam1 * b[:, :20, :18] + (1 - lam1) * a[:, :20, :18])
    # the λ reported is the one applied: read it back from the pixels where only `a` contributes
    torch.testing.assert_close(m0[:, :20, 18:] / a[:, :, 18:], torch.full((3, 20, 12), lam.item()))
    assert out.lam_mean.item() == pytest.approx(lam.item()) and out.mixed_fraction.item() == 1.0


def test_odd_batch_every_image_gets_another_partner_and_its_boxes():
    images, targets = batch(3)
    out = mix_detection(images, targets, alpha=1.0, generator=gen(4))
    partner = out.partner.tolist()
    assert all(p != i for i, p in enumerate(partner)) and sorted(partner) == [0, 1, 2]
    for i, j in enumerate(partner):
        lam = out.lam[i].item()
        n_i, n_j = len(targets[i]["labels"]), len(targets[j]["labels"])
        t = out.targets[i]
        assert torch.equal(t["boxes"], torch.cat([targets[i]["boxes"], targets[j]["boxes"]]))
        assert torch.equal(t["labels"], torch.cat([targets[i]["labels"], targets[j]["labels"]]))
        assert torch.equal(t["weights"], torch.tensor([lam] * n_i + [1 - lam] * n_j))
        h = max(images[i].shape[1], images[j].shape[1])
        w = max(images[i].shape[2], images[j].shape[2])
        assert out.images[i].shape == (3, h, w)
        # pixel (0, 0) is inside both images
        expected = out.lam[i] * images[i][:, 0, 0] + (1 - out.lam[i]) * images[j][:, 0, 0]
        assert torch.equal(out.images[i][:, 0, 0], expected)


def test_batch_of_one_comes_back_unchanged_with_unit_weights():
    images, targets = [torch.rand(3, 6, 7)], [target([[0, 0, 3, 3]], [2])]
    out = mix_detection(images, targets, alpha=1.0, generator=gen())
    assert out.images[0] is images[0]
    assert out.lam.tolist() == [1.0] and out.partner.tolist() == [0] and out.mixed.tolist() == [False]
    assert out.targets[0]["weights"].tolist() == [1.0] and out.targets[0]["boxes"] is targets[0]["boxes"]
    assert out.mixed_fraction.item() == 0.0 and out.lam_mean.item() == 1.0


@pytest.mark.parametrize("kw", [{"alpha": 0.0}, {"alpha": 1.0, "prob": 0.0}])
def test_off_returns_the_inputs_with_unit_weights(kw):
    images, targets = batch(4)
    out = mix_detection(images, targets, generator=gen(), **kw)
    assert all(o is i for o, i in zip(out.images, images, strict=True))
    assert out.lam.tolist() == [1.0] * 4 and out.partner.tolist() == [0, 1, 2, 3]
    assert not out.mixed.any()
    for o, t in zip(out.targets, targets, strict=True):
        assert o["boxes"] is t["boxes"] and o["labels"] is t["labels"]
        assert o["weights"].dtype == torch.float32 and torch.equal(o["weights"], torch.ones(len(t["labels"])))
        assert "weights" not in t


def test_background_only_images_mix_fine():
    a, b = torch.ones(3, 5, 5), torch.zeros(3, 5, 5)
    empty = target([], [])
    out = mix_detection([a, b], [empty, target([[1, 1, 3, 3]], [4])], alpha=1.0, generator=gen(5))
    lam = out.lam[0].item()
    assert out.targets[0]["boxes"].shape == (1, 4) and out.targets[0]["labels"].tolist() == [4]
    assert out.targets[0]["weights"].tolist() == [pytest.approx(1 - lam)]
    assert out.targets[1]["labels"].tolist() == [4] and out.targets[1]["weights"].tolist() == [pytest.approx(lam)]
    both_empty = mix_detection([a, b], [empty, empty], alpha=1.0, generator=gen(5))
    assert [t["boxes"].shape for t in both_empty.targets] == [(0, 4), (0, 4)]
    assert [t["weights"].shape for t in both_empty.targets] == [(0,), (0,)]
    assert torch.equal(both_empty.images[0], torch.full((3, 5, 5), both_empty.lam[0].item()))


def test_generator_makes_it_reproducible():
    images, targets = batch(5)
    kw = {"alpha": 0.5, "mode": "elem", "prob": 0.6}
    x, y = (mix_detection(images, targets, generator=gen(9), **kw) for _ in range(2))
    z = mix_detection(images, targets, generator=gen(10), **kw)
    assert torch.equal(x.lam, y.lam) and torch.equal(x.partner, y.partner) and torch.equal(x.mixed, y.mixed)
    assert all(torch.equal(p, q) for p, q in zip(x.images, y.images, strict=True))
    assert all(torch.equal(p["weights"], q["weights"]) for p, q in zip(x.targets, y.targets, strict=True))
    assert not torch.equal(x.lam, z.lam), "another seed, other draws"


def test_elem_mode_draws_one_lambda_per_image_and_gates_each():
    images, targets = batch(8, sizes=[(6, 6)] * 8)
    out = mix_detection(images, targets, alpha=1.0, mode="elem", generator=gen(6))
    assert out.lam.unique().numel() == 8 and out.mixed.all()
    for i, j in enumerate(out.partner.tolist()):
        lam = out.lam[i]
        assert torch.equal(out.images[i], lam * images[i] + (1 - lam) * images[j])
    gated = mix_detection(images, targets, alpha=1.0, mode="elem", prob=0.5, generator=gen(7))
    mixed = gated.mixed.tolist()
    assert 0 < sum(mixed) < 8, "this seed mixes some images and not others"
    for i, m in enumerate(mixed):
        if m:
            assert gated.partner[i].item() != i and gated.lam[i].item() < 1.0
        else:
            assert gated.partner[i].item() == i and gated.lam[i].item() == 1.0
            assert gated.images[i] is images[i]
            assert torch.equal(gated.targets[i]["weights"], torch.ones(len(targets[i]["labels"])))
    assert gated.mixed_fraction.item() == pytest.approx(sum(mixed) / 8)


def test_existing_weights_are_scaled_not_replaced():
    ta = target([[0, 0, 1, 1]], [1], weights=torch.tensor([0.5]))
    tb = target([[0, 0, 2, 2]], [2], weights=torch.tensor([0.25]))
    out = mix_detection([torch.rand(3, 4, 4), torch.rand(3, 4, 4)], [ta, tb], alpha=1.0, generator=gen())
    lam = out.lam[0]
    torch.testing.assert_close(out.targets[0]["weights"], torch.stack([0.5 * lam, 0.25 * (1 - lam)]))


def test_image_dtype_is_kept():
    images = [torch.rand(3, 4, 4, dtype=torch.float64), torch.rand(3, 4, 5, dtype=torch.float64)]
    out = mix_detection(images, [target([], []), target([], [])], alpha=1.0, generator=gen())
    assert [img.dtype for img in out.images] == [torch.float64, torch.float64]
    assert out.lam.dtype == torch.float32 and out.partner.dtype == torch.int64 and out.mixed.dtype == torch.bool


def good():
    return [torch.rand(3, 4, 4), torch.rand(3, 5, 4)], [target([], []), target([[0, 0, 1, 1]], [1])]


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda im, t: (im, t[:1]), ValueError, r"same length .* 2 images and 1 targets"),
        (lambda im, t: ([im[0], torch.rand(1, 5, 4)], t), ValueError, r"`images\[1\]` has 1 channels"),
        (lambda im, t: ([im[0], im[1].double()], t), ValueError, r"`images\[1\]` .*dtype torch.float64"),
        (lambda im, t: ([im[0], torch.zeros(3, 4, 4, dtype=torch.uint8)], t), ValueError, r"images\[1\].*float"),
        (lambda im, t: ([im[0], torch.rand(5, 4)], t), ValueError, r"`images\[1\]` must be a float \(C, H, W\)"),
        (lambda im, t: (torch.stack([im[0], im[0]]), t), TypeError, r"`images` must be a list"),
        (lambda im, t: (im, [t[0], {"labels": t[1]["labels"]}]), ValueError, r"`targets\[1\]` has no 'boxes'"),
        (lambda im, t: (im, [{"boxes": t[0]["boxes"]}, t[1]]), ValueError, r"`targets\[0\]` has no 'labels'"),
        (lambda im, t: (im, [t[0], target([0, 0, 1, 1], [1]) | {"boxes": torch.zeros(4)}]), ValueError,
         r"`targets\[1\]\['boxes'\]` must have shape \(N, 4\).*got \(4,\)"),
        (lambda im, t: (im, [t[0], target([[0, 0, 1, 1]], [1, 2])]), ValueError,
         r"`targets\[1\]\['labels'\]` must have shape \(1,\)"),
        (lambda im, t: (im, [t[0], [1, 2]]), TypeError, r"`targets\[1\]` must be a dict"),
    ],
)  # fmt: skip
def test_bad_inputs_are_refused_naming_the_image(mutate, error, match):
    images, targets = mutate(*good())
    with pytest.raises(error, match=match):
        mix_detection(images, targets, alpha=1.0, generator=gen())


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"alpha": -1.0}, "mixup_alpha"),
        ({"alpha": 1.0, "prob": 2.0}, "mix_prob"),
        ({"alpha": 1.0, "mode": "x"}, "mix_mode"),
    ],
)
def test_bad_arguments_are_refused_as_for_the_classifier(kw, match):
    with pytest.raises(ValueError, match=match):
        mix_detection(*good(), generator=gen(), **kw)
