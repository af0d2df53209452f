"""1-D backbones: shapes for any length, the padding mask, the name registry, and mixing on series."""

from __future__ import annotations

import pytest
import torch

from lit_early_phase.backbones import (
    FCN,
    SERIES_BACKBONES,
    InceptionTime,
    ResNet1D,
    create_series_backbone,
    masked_global_avg_pool,
)
from lit_early_phase.functional import apply_mix, mix_batch, sample_mix_params
from lit_early_phase.modules import ImageClassifier, create_backbone

SMALL = {
    "fcn": {"widths": (8, 16, 8)},
    "resnet1d": {"widths": (8, 16)},
    "inception_time": {"nb_filters": 4, "depth": 3, "kernel_sizes": (9, 5, 3), "bottleneck": 4},
}


def _randomise_norms(net: torch.nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2.0)


def test_registry_names_and_classes():
    assert {"fcn": FCN, "resnet1d": ResNet1D, "inception_time": InceptionTime} == SERIES_BACKBONES


@pytest.mark.parametrize("name", list(SERIES_BACKBONES))
@pytest.mark.parametrize("length", [1, 7, 150])
@pytest.mark.parametrize("channels", [1, 6])
def test_any_length_and_channels(name, length, channels):
    net = create_series_backbone(name, num_classes=5, in_chans=channels, **SMALL[name])
    out = net(torch.randn(3, channels, length))
    assert out.shape == (3, 5)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(SERIES_BACKBONES))
def test_paper_sized_defaults_build(name):
    net = create_series_backbone(name, num_classes=2, in_chans=1)
    assert net(torch.randn(2, 1, 64)).shape == (2, 2)
    widths = {"fcn": 128, "resnet1d": 128, "inception_time": 128}  # inception: 4 branches x 32
    assert net.num_features == widths[name]


@pytest.mark.parametrize("name", list(SERIES_BACKBONES))
def test_padded_with_mask_channel_equals_unpadded(name):
    """In eval mode a padded series with its mask channel gives the same logits as the series alone."""
    torch.manual_seed(0)
    net = create_series_backbone(name, num_classes=3, in_chans=2, **SMALL[name]).eval()
    _randomise_norms(net)
    short, long = torch.randn(1, 2, 10), torch.randn(1, 2, 25)
    batch = torch.zeros(2, 3, 25)
    batch[0, :2, :10], batch[0, 2, :10] = short[0], 1.0
    batch[1, :2], batch[1, 2] = long[0], 1.0
    with torch.no_grad():
        together = net(batch)
        alone = torch.cat([net(short), net(long)])
        explicit = net(batch[:, :2], mask=batch[:, 2] > 0)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(explicit, alone, atol=1e-5, rtol=1e-5)
    # without the mask, padding changes the result: the mask is really used
    with torch.no_grad():
        unmasked = net(batch[:1, :2])
    assert not torch.allclose(unmasked, alone[:1], atol=1e-4)


def test_masked_pool_ignores_padding():
    h = torch.tensor([[[1.0, 2.0, 3.0, 50.0], [4.0, 4.0, 4.0, -9.0]]])
    pooled = masked_global_avg_pool(h, torch.tensor([[True, True, True, False]]))
    assert pooled.tolist() == [[2.0, 4.0]]
    assert masked_global_avg_pool(h, None).tolist() == [[14.0, 0.75]]
    assert masked_global_avg_pool(h, torch.zeros(1, 4, dtype=torch.bool)).tolist() == [[0.0, 0.0]]


def test_bad_inputs_give_clear_errors():
    net = FCN(num_classes=2, in_chans=3, widths=(4, 4, 4))
    with pytest.raises(ValueError, match=r"built for in_chans=3 \(or 4 with a trailing padding-mask channel\)"):
        net(torch.randn(2, 5, 10))
    with pytest.raises(ValueError, match=r"expects series of shape \(B, C, L\), got \(2, 10\)"):
        net(torch.randn(2, 10))
    with pytest.raises(ValueError, match=r"`mask` must have shape \(B, L\) = \(2, 10\)"):
        net(torch.randn(2, 3, 10), mask=torch.ones(2, 9))


def test_bad_names_and_arguments():
    with pytest.raises(ValueError, match=r"`name='fnc'` is not a series backbone. Close matches: \['fcn'\]"):
        create_series_backbone("fnc", num_classes=2, in_chans=1)
    with pytest.raises(ValueError, match=r"Available: \['fcn', 'resnet1d', 'inception_time'\]"):
        create_series_backbone("lstm", num_classes=2, in_chans=1)
    with pytest.raises(TypeError, match=r"Bad arguments \['depth'\] for series backbone 'fcn' \(FCN\)"):
        create_series_backbone("fcn", num_classes=2, in_chans=1, depth=3)
    with pytest.raises(ValueError, match=r"`widths` must be a non-empty sequence of ints >= 1, got \(8, 0\)"):
        FCN(num_classes=2, in_chans=1, widths=(8, 0), kernel_sizes=(3, 3))
    with pytest.raises(ValueError, match="same length"):
        FCN(num_classes=2, in_chans=1, widths=(8, 8), kernel_sizes=(3,))
    with pytest.raises(ValueError, match=r"`in_chans` must be an int >= 1, got 0"):
        ResNet1D(num_classes=2, in_chans=0)
    with pytest.raises(ValueError, match=r"`depth=4` must be a multiple of `residual_every=3`"):
        InceptionTime(num_classes=2, in_chans=1, depth=4)


def test_create_backbone_prefers_series_registry_and_suggests_from_both():
    net = create_backbone("resnet1d", num_classes=4, in_chans=2, widths=(8,))
    assert isinstance(net, ResNet1D) and net.in_chans == 2
    with pytest.raises(ValueError) as err:
        create_backbone("resnet1", num_classes=2, in_chans=1)
    message = str(err.value)
    assert "neither a series backbone (['fcn', 'resnet1d', 'inception_time']) nor a timm model" in message
    assert "'resnet1d'" in message and "'resnet18'" in message  # close matches from both registries
    with pytest.raises(ValueError, match="only supported for timm backbones"):
        create_backbone("fcn", num_classes=2, in_chans=1, pretrained_file="weights.pt")
    # timm names still work
    assert create_backbone("resnet18", num_classes=3, in_chans=1)(torch.randn(2, 1, 32, 32)).shape == (2, 3)


def test_classifier_accepts_series_backbone_by_name():
    model = ImageClassifier("inception_time", num_classes=3, in_chans=2, backbone_kwargs=SMALL["inception_time"])
    assert isinstance(model.model, InceptionTime)
    assert model.hparams.backbone == "inception_time"
    assert model(torch.randn(4, 2, 33)).shape == (4, 3)


# -- mixing on (B, C, L) series ----------------------------------------------------------------------------------
def _padded_batch() -> torch.Tensor:
    """Four 1-channel series of lengths 4, 8, 6, 8 padded to 8, with the mask as the last channel."""
    x = torch.zeros(4, 2, 8)
    for i, length in enumerate([4, 8, 6, 8]):
        x[i, 0, :length] = float(i + 1)
        x[i, 1, :length] = 1.0
    return x


def test_cutmix_on_series_is_a_segment_and_carries_the_partner_mask():
    x, y = _padded_batch(), torch.tensor([0, 1, 2, 3])
    params = sample_mix_params(4, (8,), mixup_alpha=0.0, cutmix_alpha=1.0, generator=torch.Generator().manual_seed(3))
    out = apply_mix(x, y, params, num_classes=4)
    for i in range(4):
        start, end = params.boxes[i].tolist()
        j = int(params.partner[i])
        inside = torch.zeros(8, dtype=torch.bool)
        inside[start:end] = True
        torch.testing.assert_close(out.inputs[i][:, inside], x[j][:, inside])  # data and mask from partner
        torch.testing.assert_close(out.inputs[i][:, ~inside], x[i][:, ~inside])
        assert out.params.lam[i] == pytest.approx(1 - (end - start) / 8)


def test_mixup_on_series_mask_is_the_union():
    x, y = _padded_batch(), torch.tensor([0, 1, 2, 3])
    out = mix_batch(x, y, num_classes=4, mixup_alpha=1.0, generator=torch.Generator().manual_seed(0))
    partner = out.params.partner
    valid = out.inputs[:, 1] > 0
    assert torch.equal(valid, (x[:, 1] > 0) | (x[partner, 1] > 0))
    net = FCN(num_classes=4, in_chans=1, widths=(4, 4, 4))
    assert net(out.inputs).shape == (4, 4)


def test_mixing_strategies_apply_to_series_models(tmp_path):
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from lit_early_phase import EnlightenmentCallback
    from lit_early_phase.strategies import AlphaBoost, MixupPause

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(32, 2, 20, generator=g), torch.randint(0, 3, (32,), generator=g))
    for strategy, expected in (("auto", MixupPause), (AlphaBoost(alpha=2.0), AlphaBoost)):
        model = ImageClassifier("fcn", num_classes=3, in_chans=2, mixup_alpha=0.4, backbone_kwargs=SMALL["fcn"])
        seen: list[float] = []
        model.on_train_batch_end = lambda *a, m=model, s=seen: s.append(m.enlightenment_record.alpha)
        cb = EnlightenmentCallback(strategy=strategy, duration="2st", verbose=False)
        trainer = L.Trainer(
            max_steps=4, callbacks=[cb], logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=tmp_path,
        )  # fmt: skip
        trainer.fit(model, DataLoader(data, batch_size=8))
        assert isinstance(cb.strategy, expected)
        period_alpha = 0.0 if expected is MixupPause else 2.0
        assert seen == [period_alpha, period_alpha, 0.4, 0.4]
