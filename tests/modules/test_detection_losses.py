"""detection_losses: per-image losses from one forward pass, checked against torchvision's own batch losses."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torchvision")

from lit_early_phase.modules.detection_losses import DetectionLosses, detection_losses
from lit_early_phase.modules.detection_models import build_detector

FASTER = "fasterrcnn_mobilenet_v3_large_fpn"


def _batch(weights: list[list[float]] | None = None):
    """Three 96x128 images: two boxes, none (background only), one box."""
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(3, 96, 128, generator=g) for _ in range(3)]
    targets = [
        {"boxes": torch.tensor([[5.0, 5.0, 50.0, 60.0], [60.0, 20.0, 120.0, 90.0]]), "labels": torch.tensor([1, 2])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
        {"boxes": torch.tensor([[10.0, 30.0, 40.0, 80.0]]), "labels": torch.tensor([2])},
    ]
    if weights is not None:
        for t, w in zip(targets, weights, strict=True):
            t["weights"] = torch.tensor(w, dtype=torch.float32)
    return images, targets


def _model(name: str = FASTER) -> torch.nn.Module:
    torch.manual_seed(0)
    size = {"min_size": 64, "max_size": 64} if name.startswith("ssd") else {"min_size": 64, "max_size": 96}
    return build_detector(name, num_classes=3, **size)


def _run(model, images, targets, seed: int = 5) -> DetectionLosses:
    torch.manual_seed(seed)  # Faster R-CNN samples anchors / proposals at random
    return detection_losses(model, images, targets)


def _plain(model, images, targets, seed: int = 5) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return model(images, targets)


@pytest.mark.parametrize("name", [FASTER, "retinanet_resnet50_fpn", "fasterrcnn_efficientnet_lite0_fpn"])
def test_mean_of_per_image_losses_is_torchvisions_batch_loss(name):
    model = _model(name)
    images, targets = _batch()
    out = _run(model, images, targets)
    plain = _plain(model, images, targets)
    assert set(out.losses) == set(plain)
    for key, value in plain.items():
        torch.testing.assert_close(out.losses[key], value)
        torch.testing.assert_close(out.per_image_terms[key].mean(), value)
    assert out.per_image.shape == (3,)
    torch.testing.assert_close(out.per_image.mean(), out.total)
    torch.testing.assert_close(out.total, sum(plain.values()))
    # the images differ: the background-only image has no box terms
    assert len(set(out.per_image.tolist())) == 3
    box_key = "loss_box_reg" if name.startswith("fasterrcnn") else "bbox_regression"
    assert out.per_image_terms[box_key][1] == 0
    assert out.num_foreground[1] == 0 and out.num_foreground[0] > 0


@pytest.mark.parametrize("name", ["fcos_resnet50_fpn", "ssdlite320_mobilenet_v3_large"])
def test_fcos_and_ssd_optimise_torchvisions_batch_loss_and_normalise_per_image(name):
    model = _model(name)
    images, targets = _batch()
    out = _run(model, images, targets)
    plain = _plain(model, images, targets)
    n = out.num_foreground.to(torch.float32)
    for key, value in plain.items():
        torch.testing.assert_close(out.losses[key], value)  # what a plain loop optimises
        # the documented relation: torchvision divides the batch's sums by the batch's foreground count
        rebuilt = (out.per_image_terms[key] * n.clamp(min=1)).sum() / n.sum().clamp(min=1)
        torch.testing.assert_close(rebuilt, value)
    # so the mean of the per-image values is not the batch loss: a documented, bounded difference
    gap = (out.per_image.mean() - out.total).abs() / out.total
    assert 1e-3 < gap < 1.0, gap


@pytest.mark.parametrize(
    "name", [FASTER, "retinanet_resnet50_fpn", "fcos_resnet50_fpn", "ssdlite320_mobilenet_v3_large"]
)
def test_one_forward_pass_of_the_backbone(name):
    model = _model(name)
    calls = []
    model.backbone.register_forward_hook(lambda *_: calls.append(1))
    images, targets = _batch()
    _run(model, images, targets)
    assert len(calls) == 1


def _patched_attributes(model) -> list[str]:
    owners = {"model": model, "head": getattr(model, "head", None), "rpn": getattr(model, "rpn", None)}
    owners["roi_heads"] = getattr(model, "roi_heads", None)
    found = [f"{k}.{a}" for k, o in owners.items() if o is not None for a in vars(o) if a in _PATCHED]
    if hasattr(model, "roi_heads"):
        found += ["box_predictor hook"] * len(model.roi_heads.box_predictor._forward_hooks)
    return found


_PATCHED = {"compute_loss", "select_training_samples"}  # fg_bg_sampler is an instance attribute anyway


@pytest.mark.parametrize("name", [FASTER, "retinanet_resnet50_fpn", "ssdlite320_mobilenet_v3_large"])
def test_wrapped_methods_are_restored_after_the_call_and_after_an_exception(name):
    model = _model(name)
    sampler = getattr(getattr(model, "rpn", None), "fg_bg_sampler", None)
    images, targets = _batch()
    _run(model, images, targets)
    assert _patched_attributes(model) == []
    # a degenerate box makes torchvision raise inside the forward, while the wrappers are in place
    targets[0]["boxes"][0] = torch.tensor([50.0, 5.0, 50.0, 60.0])
    with pytest.raises(AssertionError, match="positive height and width"):
        _run(model, images, targets)
    assert _patched_attributes(model) == []
    if sampler is not None:
        assert model.rpn.fg_bg_sampler is sampler
    plain = _plain(model, *_batch())  # the model still works as torchvision's
    assert set(plain) == set(_run(model, *_batch()).losses)


def test_weights_all_ones_change_nothing_and_scale_the_roi_classification_linearly():
    model = _model()
    images, targets = _batch()
    plain = _run(model, images, targets)
    ones = _run(model, *_batch([[1.0, 1.0], [], [1.0]]))
    for key in plain.losses:
        torch.testing.assert_close(ones.losses[key], plain.losses[key])
        torch.testing.assert_close(ones.per_image_terms[key], plain.per_image_terms[key])
    # down-weighting image 0's boxes lowers its classification term only, linearly in the weight
    cls = {w: _run(model, *_batch([[w, w], [], [1.0]])).per_image_terms["loss_classifier"] for w in (0.0, 0.5)}
    cls[1.0] = ones.per_image_terms["loss_classifier"]
    assert 0 < cls[0.0][0] < cls[0.5][0] < cls[1.0][0]  # > 0: background proposals keep weight 1
    torch.testing.assert_close(cls[0.5][0], (cls[0.0][0] + cls[1.0][0]) / 2)
    torch.testing.assert_close(cls[0.0][1:], cls[1.0][1:])
    # one box: down-weighting only the second box of image 0 lowers it less than both
    one = _run(model, *_batch([[1.0, 0.0], [], [1.0]])).per_image_terms["loss_classifier"][0]
    assert cls[0.0][0] < one < cls[1.0][0]
    # the optimiser sees the weighted term; the box terms stay torchvision's
    half = _run(model, *_batch([[0.5, 0.5], [], [0.5]]))
    assert half.losses["loss_classifier"] < plain.losses["loss_classifier"]
    torch.testing.assert_close(half.per_image_terms["loss_classifier"].mean(), half.losses["loss_classifier"])
    torch.testing.assert_close(half.losses["loss_box_reg"], plain.losses["loss_box_reg"])
    torch.testing.assert_close(half.per_image.mean(), half.total)


def test_other_models_ignore_weights():
    model = _model("retinanet_resnet50_fpn")
    plain = _run(model, *_batch())
    half = _run(model, *_batch([[0.5, 0.5], [], [0.5]]))
    torch.testing.assert_close(half.per_image, plain.per_image)


@pytest.mark.parametrize("name", [FASTER, "fcos_resnet50_fpn"])
def test_gradients_flow_from_each_image_loss(name):
    model = _model(name)
    model.backbone.body.requires_grad_(False)  # a backward through ResNet-50 is slow; the heads are what matters
    out = _run(model, *_batch())
    out.per_image[1].backward()  # the background-only image
    head = model.roi_heads.box_predictor.cls_score if name == FASTER else model.head.classification_head.cls_logits
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    model.zero_grad()
    out = _run(model, *_batch())
    out.per_image[0].backward()
    box = model.roi_heads.box_predictor.bbox_pred if name == FASTER else model.head.regression_head.bbox_reg
    assert box.weight.grad.abs().sum() > 0


def test_faster_rcnn_foreground_accuracy_counts_the_sampled_proposals():
    model = _model()
    with torch.no_grad():  # the classifier now says class 1 for every proposal
        model.roi_heads.box_predictor.cls_score.bias[1] = 100.0
    out = _run(model, *_batch())
    assert out.fg_total == out.num_foreground.sum() > 0
    labels = [t["labels"] for t in _batch()[1]]
    assert all((lab == 2).all() for lab in labels[1:])
    # image 2's proposals are all class 2 (wrong); image 0 has classes 1 and 2: some right, not all
    assert 0 < out.fg_correct < out.fg_total
    one_class = _batch()
    for t in one_class[1]:
        t["labels"] = torch.ones_like(t["labels"])
    all_right = _run(model, *one_class)
    assert all_right.fg_correct == all_right.fg_total


@pytest.mark.parametrize("name", ["retinanet_resnet50_fpn", "fcos_resnet50_fpn"])
def test_anchor_models_foreground_accuracy_counts_the_foreground_anchors(name):
    model = _model(name)
    with torch.no_grad():
        model.head.classification_head.cls_logits.bias.view(-1, 3)[:, 2] = 100.0  # class 2 everywhere
    out = _run(model, *_batch())
    assert out.fg_total == out.num_foreground.sum() > 0
    images, targets = _batch()
    for t in targets:
        t["labels"] = torch.full_like(t["labels"], 2)
    assert _run(model, images, targets).fg_correct == out.fg_total
    for t in targets:
        t["labels"] = torch.full_like(t["labels"], 1)
    assert _run(model, images, targets).fg_correct == 0


def test_bad_inputs_are_refused():
    model = _model()
    images, targets = _batch()
    with pytest.raises(ValueError, match=r"`targets\[0\]\['weights'\]` must have shape \(2,\)"):
        detection_losses(model, images, [{**targets[0], "weights": torch.ones(3)}, *targets[1:]])
    with pytest.raises(ValueError, match="same length"):
        detection_losses(model, images, targets[:2])
    with pytest.raises(ValueError, match="'boxes' and 'labels'"):
        detection_losses(model, images, [{"boxes": torch.zeros(0, 4)}, *targets[1:]])
    with pytest.raises(TypeError, match="non-empty lists"):
        detection_losses(model, torch.stack(images), targets)
    with pytest.raises(TypeError, match="must be a torchvision FasterRCNN"):
        detection_losses(torch.nn.Linear(2, 2), images, targets)
    model.eval()
    with pytest.raises(ValueError, match="training mode"):
        detection_losses(model, images, targets)
