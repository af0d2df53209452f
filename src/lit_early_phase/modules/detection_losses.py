"""Per-image losses of torchvision detectors from ONE forward pass, without a copy of torchvision's loss code.

torchvision returns only the batch's loss dict. High-Loss Removal needs one loss per image, so
:func:`detection_losses` runs ``model(images, targets)`` once while torchvision's own loss functions are
temporarily wrapped on the model instance (restored afterwards, also on an exception) and called once per
image on that image's slice of the head outputs (../shared/DATA.md "Verified 2026-12-01"):

- **RetinaNet, FCOS**: ``model.head.compute_loss(targets, head_outputs, anchors, matched_idxs)``; **SSD /
  SSDlite**: ``model.compute_loss(...)`` (same arguments). The anchors are matched once, for the batch.
- **Faster R-CNN**: ``model.rpn.compute_loss`` per image for the RPN terms; for the RoI head,
  ``roi_heads.select_training_samples`` is wrapped to keep each image's sampled labels, regression targets and
  matched gt indices, a forward hook on ``roi_heads.box_predictor`` keeps its outputs, and
  ``torchvision.models.detection.roi_heads.fastrcnn_loss`` is called per image slice.

How the per-image values relate to the batch loss (``losses``, what the optimiser should see):

- **RetinaNet**: torchvision's loss is the mean over images of per-image terms, so ``losses`` is that mean:
  ``per_image.mean() == total`` exactly.
- **Faster R-CNN**: torchvision averages over all sampled anchors / proposals of the batch. Each per-image term
  is scaled by ``n_i / mean(n)`` (``n_i``: that image's sampled count), which makes ``per_image.mean() ==
  total`` exactly; the scale is 1 (the image's own loss) whenever every image samples the same count, the usual
  case (``rpn_batch_size_per_image`` / ``box_batch_size_per_image`` each out of more candidates). ``losses``
  holds torchvision's own RoI terms and the RPN terms rebuilt from the per-image ones (equal to torchvision's).
- **FCOS, SSD**: torchvision divides the batch's sums by the batch's foreground count ``N``, a per-image call
  by the image's ``N_i``. ``losses`` is torchvision's own batch dict (exactly what a plain training loop
  optimises); ``per_image`` comes from per-image calls, so ``per_image.mean() != total`` in general. The exact
  relation, tested: ``batch_term == sum_i term_i * max(1, N_i) / max(1, N)``. An image without foreground is
  normalised by 1 (torchvision's ``max(1, N)``), so its per-image classification term is a plain sum.

Per-box ``"weights"`` (detection Mixup: λ for an image's own boxes, 1-λ for the partner's): torchvision's losses
take none. Only Faster R-CNN uses them, in the RoI **classification** term: each sampled proposal's
cross-entropy is weighted by the weight of the gt box it was matched to (background proposals weight 1), divided
by the sampled count as torchvision does (all-ones weights give torchvision's value). ``losses["loss_classifier"]``
is then that weighted value. The other models and the other terms ignore ``"weights"``. All five models accept
the extra key: ``GeneralizedRCNNTransform`` copies every key and resizes only ``"boxes"`` (and keypoints), never
dropping or reordering a box, so the weights stay aligned with the boxes; nothing needs stripping.

``fg_correct`` / ``fg_total`` count how often the arg-max class is the gt class: for Faster R-CNN on the RoI
head's sampled foreground proposals (the box classifier's own accuracy); for RetinaNet / FCOS / SSD on the
foreground anchors (anchors matched to a gt box; SSD's arg-max includes the background column). Device tensors,
no host sync, meant for a running accuracy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class DetectionLosses:
    """The losses of one training forward pass of a torchvision detector.

    Attributes:
        losses: the batch loss dict (torchvision's keys; see the module docstring for how each model's values
            are formed). Optimise ``total``.
        per_image: ``(B,)`` total loss per image (sum over the loss terms), differentiable.
        per_image_terms: each loss term per image, ``(B,)`` each, same keys as ``losses``.
        fg_correct: number of foreground proposals / anchors whose arg-max class is the gt class (0-dim).
        fg_total: number of foreground proposals / anchors counted (0-dim).
        num_foreground: ``(B,)`` foreground count per image: sampled foreground proposals (Faster R-CNN) or
            foreground anchors (the others).
    """

    losses: dict[str, Tensor]
    per_image: Tensor
    per_image_terms: dict[str, Tensor]
    fg_correct: Tensor | None = None
    fg_total: Tensor | None = None
    num_foreground: Tensor | None = None

    @property
    def total(self) -> Tensor:
        """The sum of the batch loss dict: the loss to optimise."""
        return sum(self.losses.values())  # type: ignore[return-value]


@contextmanager
def _patched(obj: Any, name: str, replacement: Any) -> Iterator[None]:
    # Instance attribute shadows the class's method; restored (or removed) however the block ends.
    had = name in vars(obj)
    old = vars(obj).get(name)
    setattr(obj, name, replacement)
    try:
        yield
    finally:
        if had:
            setattr(obj, name, old)
        else:
            delattr(obj, name)


def _check_inputs(model: nn.Module, images: list[Tensor], targets: list[dict[str, Tensor]]) -> None:
    if not model.training:
        raise ValueError("`model` must be in training mode (model.train()): torchvision computes losses only then.")
    if not isinstance(images, list | tuple) or not isinstance(targets, list | tuple) or not images:
        raise TypeError(
            f"`images` and `targets` must be non-empty lists, got {type(images).__name__} and {type(targets).__name__}."
        )
    if len(images) != len(targets):
        raise ValueError(f"`images` and `targets` must have the same length, got {len(images)} and {len(targets)}.")
    for i, t in enumerate(targets):
        if "boxes" not in t or "labels" not in t:
            raise ValueError(f"`targets[{i}]` must have 'boxes' and 'labels', got keys {sorted(t)}.")
        w = t.get("weights")
        if w is not None and tuple(w.shape) != (len(t["boxes"]),):
            raise ValueError(
                f"`targets[{i}]['weights']` must have shape ({len(t['boxes'])},) (one weight per box), "
                f"got {tuple(w.shape)}."
            )


def detection_losses(model: nn.Module, images: list[Tensor], targets: list[dict[str, Tensor]]) -> DetectionLosses:
    """Run one training forward pass and return the batch losses and one loss per image.

    Args:
        model: a torchvision ``FasterRCNN``, ``RetinaNet``, ``FCOS`` or ``SSD`` (SSDlite) in train mode.
        images: float images ``(3, H, W)``, sizes may differ.
        targets: per image ``"boxes"`` ``(N, 4)`` xyxy, ``"labels"`` ``(N,)`` int64 in 1..K, optionally
            ``"weights"`` ``(N,)`` (used by Faster R-CNN's RoI classification term only).

    Returns:
        :class:`DetectionLosses`.

    Raises:
        TypeError: an unsupported model (Mask / Keypoint R-CNN included), or inputs that are not lists.
        ValueError: the model is in eval mode, lengths differ, or a target lacks keys / has mis-shaped weights.

    Example:
        >>> import torch
        >>> from lit_early_phase.modules.detection_models import build_detector
        >>> model = build_detector("retinanet_resnet50_fpn", num_classes=2, min_size=64, max_size=64)
        >>> target = {"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])}
        >>> out = detection_losses(model, [torch.rand(3, 64, 64)] * 2, [target] * 2)
        >>> out.per_image.shape, bool(torch.isclose(out.per_image.mean(), out.total))
        (torch.Size([2]), True)
    """
    from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
    from torchvision.models.detection.ssd import SSD

    _check_inputs(model, images, targets)
    if isinstance(model, FasterRCNN):
        if model.roi_heads.has_mask() or model.roi_heads.has_keypoint():
            raise TypeError(f"`model` must be a plain Faster R-CNN; {type(model).__name__} adds mask/keypoint losses.")
        return _faster_rcnn_losses(model, list(images), list(targets))
    if isinstance(model, RetinaNet | FCOS):
        return _anchor_losses(
            model, model.head, list(images), list(targets), batch_is_mean=isinstance(model, RetinaNet)
        )
    if isinstance(model, SSD):
        return _anchor_losses(model, model, list(images), list(targets), batch_is_mean=False)
    raise TypeError(
        f"`model` must be a torchvision FasterRCNN, RetinaNet, FCOS or SSD, got {type(model).__name__}. "
        "Build one with lit_early_phase.modules.detection_models.build_detector."
    )


def _stack_terms(per_call: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {k: torch.stack([d[k] for d in per_call]) for k in per_call[0]}


def _anchor_losses(
    model: nn.Module, owner: nn.Module, images: list[Tensor], targets: list[dict[str, Tensor]], *, batch_is_mean: bool
) -> DetectionLosses:
    original = owner.compute_loss  # bound method of the class: (targets, head_outputs, anchors, matched_idxs)
    seen: dict[str, Any] = {}

    def per_image_compute_loss(tgts, head_outputs, anchors, matched_idxs):
        per_call = []
        for i in range(len(tgts)):  # torchvision's own loss on image i alone: its slice of every batch input
            one = slice(i, i + 1)
            outputs = {k: v[one] for k, v in head_outputs.items()}
            per_call.append(original(tgts[one], outputs, anchors[one], matched_idxs[one]))
        seen["terms"] = _stack_terms(per_call)
        with torch.no_grad():
            fg = [m >= 0 for m in matched_idxs]
            gt = [t["labels"][m[f]] for t, m, f in zip(tgts, matched_idxs, fg, strict=True)]
            pred = [c[f].argmax(-1) for c, f in zip(head_outputs["cls_logits"], fg, strict=True)]
            seen["fg_correct"] = sum((p == g).sum() for p, g in zip(pred, gt, strict=True))
            seen["num_foreground"] = torch.stack([f.sum() for f in fg])
        if batch_is_mean:  # RetinaNet: torchvision's loss is exactly this mean
            return {k: v.mean() for k, v in seen["terms"].items()}
        return original(tgts, head_outputs, anchors, matched_idxs)  # FCOS / SSD: torchvision's own batch dict

    with _patched(owner, "compute_loss", per_image_compute_loss):
        losses = model(images, targets)
    terms = seen["terms"]
    num_fg = seen["num_foreground"]
    return DetectionLosses(
        losses=dict(losses),
        per_image=sum(terms.values()),
        per_image_terms=terms,
        fg_correct=torch.as_tensor(seen["fg_correct"], device=num_fg.device),
        fg_total=num_fg.sum(),
        num_foreground=num_fg,
    )


def _count_scaled(values: list[Tensor], counts: list[Tensor]) -> Tensor:
    # term_i * n_i / mean(n): the mean over images is then torchvision's average over all samples of the batch
    n = torch.stack([c.to(values[0].dtype) for c in counts])
    return torch.stack(values) * (n / n.mean().clamp(min=1))


def _weighted_classification(
    class_logits: Tensor, labels: Tensor, matched_idxs: Tensor, box_weights: Tensor | None
) -> Tensor:
    # Written by hand because torchvision's fastrcnn_loss takes no per-box weights: each sampled foreground
    # proposal's cross-entropy is weighted by the Mixup weight of its matched gt box (background: 1), then
    # divided by the number of sampled proposals, like fastrcnn_loss's mean (all-ones weights: the same value).
    ce = F.cross_entropy(class_logits, labels, reduction="none")
    w = torch.ones_like(ce)
    if box_weights is not None and box_weights.numel():
        fg = labels > 0
        w = torch.where(fg, box_weights.to(ce.dtype)[matched_idxs], w)
    return (ce * w).sum() / max(1, labels.numel())


def _faster_rcnn_losses(model: nn.Module, images: list[Tensor], targets: list[dict[str, Tensor]]) -> DetectionLosses:
    from torchvision.models.detection.roi_heads import fastrcnn_loss

    rpn, roi_heads = model.rpn, model.roi_heads
    rpn_loss = rpn.compute_loss
    sampler = rpn.fg_bg_sampler
    select = roi_heads.select_training_samples
    seen: dict[str, Any] = {}

    def counting_sampler(matched: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        pos, neg = sampler(matched)
        seen["rpn_counts"].append(sum(p.sum() + q.sum() for p, q in zip(pos, neg, strict=True)))
        return pos, neg

    def per_image_rpn_loss(objectness, pred_bbox_deltas, labels, regression_targets):
        # objectness / deltas are (B * A, ...) image-major; one call per image draws the same random samples,
        # in the same order, as torchvision's one call for the batch (its sampler loops over the images)
        seen["rpn_counts"] = []
        objs, boxes, start = [], [], 0
        with _patched(rpn, "fg_bg_sampler", counting_sampler):
            for lab, reg in zip(labels, regression_targets, strict=True):
                stop = start + len(lab)
                o, b = rpn_loss(objectness[start:stop], pred_bbox_deltas[start:stop], [lab], [reg])
                objs.append(o)
                boxes.append(b)
                start = stop
        seen["loss_objectness"] = _count_scaled(objs, seen["rpn_counts"])
        seen["loss_rpn_box_reg"] = _count_scaled(boxes, seen["rpn_counts"])
        return seen["loss_objectness"].mean(), seen["loss_rpn_box_reg"].mean()

    def keeping_select(proposals, tgts):
        out = select(proposals, tgts)
        seen["samples"] = out  # proposals, matched_idxs, labels, regression_targets (lists, one per image)
        return out

    def keep_predictions(_module: nn.Module, _inputs: Any, output: tuple[Tensor, Tensor]) -> None:
        seen["predictions"] = output

    hook = roi_heads.box_predictor.register_forward_hook(keep_predictions)
    patches = (
        _patched(rpn, "compute_loss", per_image_rpn_loss),
        _patched(roi_heads, "select_training_samples", keeping_select),
    )
    try:
        with patches[0], patches[1]:
            losses = dict(model(images, targets))
    finally:
        hook.remove()

    _, matched_idxs, labels, regression_targets = seen["samples"]
    class_logits, box_regression = seen["predictions"]
    counts = [torch.tensor(len(lab), device=class_logits.device) for lab in labels]
    weighted = any("weights" in t for t in targets)
    cls_terms, box_terms, start = [], [], 0
    for i, (lab, reg, idx) in enumerate(zip(labels, regression_targets, matched_idxs, strict=True)):
        stop = start + len(lab)
        c, b = fastrcnn_loss(class_logits[start:stop], box_regression[start:stop], [lab], [reg])
        if weighted:
            c = _weighted_classification(class_logits[start:stop], lab, idx, targets[i].get("weights"))
        cls_terms.append(c)
        box_terms.append(b)
        start = stop
    terms = {
        "loss_classifier": _count_scaled(cls_terms, counts),
        "loss_box_reg": _count_scaled(box_terms, counts),
        "loss_objectness": seen["loss_objectness"],
        "loss_rpn_box_reg": seen["loss_rpn_box_reg"],
    }
    if weighted:  # the one place λ reaches a loss: the optimiser sees the weighted classification term
        losses["loss_classifier"] = terms["loss_classifier"].mean()
    all_labels = torch.cat(labels)
    with torch.no_grad():
        fg = all_labels > 0
        fg_correct = (class_logits.argmax(-1)[fg] == all_labels[fg]).sum()
    return DetectionLosses(
        losses=losses,
        per_image=sum(terms[k] for k in losses),
        per_image_terms={k: terms[k] for k in losses},
        fg_correct=fg_correct,
        fg_total=fg.sum(),
        num_foreground=torch.stack([(lab > 0).sum() for lab in labels]),
    )
