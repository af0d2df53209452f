"""Detection Mixup on the device: blend image pairs, keep the boxes of both, weight each box by its image's λ.

Pure tensor code (no Lightning, no torchvision), for torchvision's batch format: ``images`` a list of
``(C, H, W)`` float tensors (sizes may differ), ``targets`` a list of dicts with ``"boxes"`` ``(N, 4)`` xyxy
absolute pixels and ``"labels"`` ``(N,)``.

How the libraries mix detection batches (the anchors), and what we do:

* Ultralytics (YOLOv5/v8 ``mixup``): ``r ~ Beta(32, 32)`` (λ close to 0.5), ``im = im * r + im2 * (1 - r)``,
  the two label sets concatenated with no weights;
* GluonCV (``MixupDetection``, Zhang et al. 2019, "Bag of Freebies for Training Object Detection Neural
  Networks"): pads both images to the pair's larger size, concatenates the boxes and attaches a per-box weight,
  λ for the image's own boxes and 1 - λ for the partner's, which scales each box's loss. **We do this.**
* mmdet (YOLOX ``MixUp``): blends 0.5 / 0.5 after a random rescale / flip of the partner and drops the boxes
  that leave the image.

So :func:`mix_detection` returns each target with a ``"weights"`` float32 ``(N,)`` key (1.0 for boxes of an
image that was not mixed). torchvision's detection losses take no per-box weight: the weights are consumed by
the detector module where it can apply them (Faster R-CNN's RoI classification loss, whose sampled proposals
carry the weight of the box they were matched to) and ignored elsewhere (the RPN, RetinaNet, FCOS and SSD
losses, and the box regression terms): there a mixed image trains as Ultralytics' unweighted concatenation.

Choices, in the words of :mod:`~lit_early_phase.functional.mixing` (the classifier Mixup) where they match:

* the draws are :func:`~lit_early_phase.functional.mix_params.sample_mix_params`' (Mixup only, spatial shape
  ``()``): the same pairing (:func:`~lit_early_phase.functional.draws.random_pairing`: the next image in a
  random order, cyclically, so every image gets a partner other than itself for ``B >= 2``, odd ``B`` included;
  pairs are not symmetric: ``i`` takes from ``j`` while ``j`` takes from ``k``), the same Beta(α, α) λ with its
  tiny-α rule, the same gate (``prob``) and modes (``"batch"``: one coin and one λ for the batch; ``"elem"``:
  one per image). λ is **not** folded to ``>= 0.5``, as the classifier does not fold it: an image can carry
  less than half of its own pixels, and its own boxes then weigh less than its partner's;
* the mixed image ``i`` is ``λ_i · img_i + (1 - λ_i) · img_partner(i)``, both zero-padded at the bottom / right
  to the pair's larger height and width (boxes need no shift), in the images' dtype; λ is rounded to float32
  first, so the reported ``lam`` is exactly the factor applied (for float32 images);
* the boxes stay where they are, none is dropped, even at λ = 0 or 1 (its weight is then 0): the downstream
  loss decides what a weight of 0 means;
* ``"weights"`` already in a target (a dataset's own per-box weights, or a batch mixed twice) are multiplied
  by λ (own boxes) or 1 - λ (the partner's) rather than replaced;
* keys other than ``"boxes"``, ``"labels"`` and ``"weights"`` (``"image_id"``, ...) are copied from the
  image's own target unchanged: per-box extras (``"area"``, ``"iscrowd"``, ``"masks"``) are **not**
  concatenated and no longer line up with the boxes of a mixed image (torchvision's box detectors read only
  ``"boxes"`` and ``"labels"``);
* images that are not mixed (and every image when α = 0, ``prob = 0`` or ``B = 1``) come back as the same
  tensor objects; their targets are shallow copies with ``"weights"`` added (all ones), so downstream code can
  rely on the key. Input dicts are never modified.

Device: the draws are taken on the CPU from ``generator`` (as for the classifier), read as Python numbers on
the CPU, and everything computed from the images lives on the images' device (the weights on the boxes'
device). No step waits for the accelerator: the per-image λ are CPU values, the ``(B,)`` records are copied
to the device with ``non_blocking=True``, and the blends, pads and concatenations are queued kernels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from lit_early_phase.functional.mix_params import MixMode, sample_mix_params, validate_mix_args

__all__ = ["DetectionMixOutput", "mix_detection"]

_BOX_KEYS = ("boxes", "labels", "weights")


@dataclass(frozen=True)
class DetectionMixOutput:
    """A mixed detection batch and the record of what was applied.

    Attributes:
        images: the images; a mixed image is the blend of its pair, zero-padded at the bottom / right to the
            pair's larger height and width; an image not mixed is the input tensor itself.
        targets: one new dict per image: ``"boxes"`` and ``"labels"`` its own followed by its partner's (own
            only where not mixed), ``"weights"`` float32 ``(N,)``: λ for its own boxes and 1 - λ for the
            partner's (times any ``"weights"`` the inputs had; 1.0 where not mixed), and the other keys of its
            own target unchanged.
        lam: ``(B,)`` float32, the λ applied to each image (1.0 where not mixed).
        partner: ``(B,)`` int64, the index of the image each image was mixed with (itself where not mixed).
        mixed: ``(B,)`` bool, whether each image was mixed.
    """

    images: list[Tensor]
    targets: list[dict[str, Tensor]]
    lam: Tensor
    partner: Tensor
    mixed: Tensor

    @property
    def lam_mean(self) -> Tensor:
        """Mean λ over the batch (1.0 when nothing was mixed, or the batch is empty)."""
        return self.lam.mean() if self.lam.numel() else self.lam.new_ones(())

    @property
    def mixed_fraction(self) -> Tensor:
        """Fraction of the images of the batch that were mixed (0.0 for an empty batch)."""
        return self.mixed.float().mean() if self.mixed.numel() else self.lam.new_zeros(())


def mix_detection(
    images: Sequence[Tensor],
    targets: Sequence[Mapping[str, Tensor]],
    *,
    alpha: float,
    prob: float = 1.0,
    mode: MixMode = "batch",
    generator: torch.Generator | None = None,
) -> DetectionMixOutput:
    """Mixup for a detection batch: blend image pairs and keep both box sets, weighted by λ and 1 - λ.

    See the module docstring for the anchors (Ultralytics, GluonCV, mmdet) and every choice made.

    Args:
        images: ``B`` float tensors ``(C, H, W)``, same ``C``, dtype and device; sizes may differ.
        targets: ``B`` mappings with ``"boxes"`` ``(N, 4)`` xyxy absolute pixels and ``"labels"`` ``(N,)``
            (``N`` may be 0), optionally ``"weights"`` ``(N,)``.
        alpha: the Mixup α of Beta(α, α) (0 = off: the batch comes back unmixed); the knobs' ``mixup_alpha``.
        prob: probability that the batch (``"batch"``) or each image (``"elem"``) is mixed; ``mix_prob``.
        mode: ``"batch"`` (one coin and one λ for the batch) or ``"elem"`` (one per image); ``mix_mode``.
        generator: CPU torch generator for the draws (the global one when ``None``; seed it per rank).

    Returns:
        A :class:`DetectionMixOutput`.

    Raises:
        ValueError: for out-of-range ``alpha`` / ``prob`` / ``mode`` (the messages name the knobs
            ``mixup_alpha``, ``mix_prob``, ``mix_mode``, as for the classifier), ``images`` and ``targets`` of
            different lengths, or an image / target of the wrong shape, dtype or device (naming its index).
        TypeError: for an image that is not a tensor or a target that is not a mapping of tensors.

    Example:
        >>> a, b = torch.ones(3, 4, 6), torch.zeros(3, 5, 2)
        >>> ta = {"boxes": torch.tensor([[0.0, 0.0, 2.0, 2.0]]), "labels": torch.tensor([1])}
        >>> tb = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
        >>> out = mix_detection([a, b], [ta, tb], alpha=1.0, generator=torch.Generator().manual_seed(0))
        >>> [tuple(img.shape) for img in out.images], out.partner.tolist()
        ([(3, 5, 6), (3, 5, 6)], [1, 0])
        >>> lam = out.lam[1].item()  # image 1 holds λ of its own zeros and 1 - λ of image 0's ones
        >>> out.targets[1]["labels"].tolist(), out.targets[1]["weights"].tolist() == [1 - lam]
        ([1], True)
    """
    validate_mix_args(mixup_alpha=alpha, cutmix_alpha=0.0, prob=prob, mode=mode)
    _validate_batch(images, targets)
    b = len(images)
    device = images[0].device if b else torch.device("cpu")
    params = sample_mix_params(b, (), mixup_alpha=alpha, prob=prob, mode=mode, generator=generator, _validated=True)
    if not params.any_mixed:  # α = 0, prob = 0 (or the coin said no), B < 2
        return DetectionMixOutput(
            list(images),
            [_weighted(t, 1.0) for t in targets],
            torch.ones(b).to(device, non_blocking=True),
            torch.arange(b).to(device, non_blocking=True),
            torch.zeros(b, dtype=torch.bool).to(device, non_blocking=True),
        )
    # CPU records read as Python numbers (no device involved); λ rounded to float32: the value reported
    lam_t = params.lam.float()
    mixed_t = params.mixed.clone()
    partner_t = torch.where(mixed_t, params.partner, torch.arange(b))
    lams, mixed, partner = lam_t.tolist(), mixed_t.tolist(), partner_t.tolist()
    out_images, out_targets = [], []
    for i in range(b):
        if not mixed[i]:
            out_images.append(images[i])
            out_targets.append(_weighted(targets[i], 1.0))
            continue
        j, lam = partner[i], lams[i]
        out_images.append(_blend(images[i], images[j], lam))
        out_targets.append(_merge(_weighted(targets[i], lam), _weighted(targets[j], 1.0 - lam)))
    return DetectionMixOutput(
        out_images,
        out_targets,
        lam_t.to(device, non_blocking=True),
        partner_t.to(device, non_blocking=True),
        mixed_t.to(device, non_blocking=True),
    )


def _blend(a: Tensor, b: Tensor, lam: float) -> Tensor:
    """``λ · a + (1 - λ) · b``, both zero-padded at the bottom / right to the larger height and width.

    Written as two products and a sum (not ``lerp``), so each pixel is exactly ``fl(fl(λ a) + fl((1 - λ) b))``
    and a caller can check it from the reported λ.
    """
    if a.shape == b.shape:
        return (a * lam).add_(b * (1.0 - lam))
    (c, ha, wa), (hb, wb) = a.shape, b.shape[1:]
    out = a.new_zeros((c, max(ha, hb), max(wa, wb)))
    torch.mul(a, lam, out=out[:, :ha, :wa])
    out[:, :hb, :wb].add_(b * (1.0 - lam))
    return out


def _weighted(target: Mapping[str, Tensor], scale: float) -> dict[str, Tensor]:
    """A shallow copy of ``target`` whose ``"weights"`` are ``scale`` (times any weights it had), float32."""
    out = dict(target)
    boxes = target["boxes"]
    old = target.get("weights")
    if old is None:
        out["weights"] = torch.full((boxes.shape[0],), scale, dtype=torch.float32, device=boxes.device)
    else:
        old = old.to(device=boxes.device, dtype=torch.float32)
        out["weights"] = old if scale == 1.0 else old * scale
    return out


def _merge(own: dict[str, Tensor], other: dict[str, Tensor]) -> dict[str, Tensor]:
    """``own`` with the partner's boxes, labels and weights appended (its other keys kept as they are)."""
    out = dict(own)
    for key in _BOX_KEYS:
        mine = own[key]
        out[key] = torch.cat([mine, other[key].to(device=mine.device, dtype=mine.dtype)])
    return out


def _validate_batch(images: Sequence[Tensor], targets: Sequence[Mapping[str, Tensor]]) -> None:
    """Refuse a batch :func:`mix_detection` cannot mix, naming the image; reads shapes only (no device sync)."""
    if isinstance(images, Tensor) or not isinstance(images, Sequence):
        raise TypeError(
            f"`images` must be a list of (C, H, W) tensors (torchvision's detection format), got "
            f"{type(images).__name__}. Pass a list, e.g. `list(batch)` for a stacked (B, C, H, W) tensor."
        )
    if not isinstance(targets, Sequence) or isinstance(targets, Mapping | str):
        raise TypeError(f"`targets` must be a list of dicts, one per image, got {type(targets).__name__}.")
    if len(images) != len(targets):
        raise ValueError(
            f"`images` and `targets` must have the same length (one target dict per image), got "
            f"{len(images)} images and {len(targets)} targets."
        )
    first = None
    for i, (img, tgt) in enumerate(zip(images, targets, strict=True)):
        if not isinstance(img, Tensor):
            raise TypeError(f"`images[{i}]` must be a tensor, got {type(img).__name__}.")
        if img.dim() != 3 or not img.is_floating_point():
            raise ValueError(
                f"`images[{i}]` must be a float (C, H, W) tensor, got shape {tuple(img.shape)} and dtype "
                f"{img.dtype}. Convert integer images first, e.g. `img.float() / 255`."
            )
        first = img if first is None else first
        if (img.shape[0], img.dtype, img.device) != (first.shape[0], first.dtype, first.device):
            raise ValueError(
                f"`images[{i}]` has {img.shape[0]} channels, dtype {img.dtype} on {img.device}, but `images[0]` "
                f"has {first.shape[0]} channels, dtype {first.dtype} on {first.device}: all images of a batch "
                f"must match in channels, dtype and device to be mixed."
            )
        _validate_target(i, tgt)


def _validate_target(i: int, tgt: Mapping[str, Tensor]) -> None:
    if not isinstance(tgt, Mapping):
        raise TypeError(f"`targets[{i}]` must be a dict with 'boxes' and 'labels', got {type(tgt).__name__}.")
    for key in ("boxes", "labels"):
        if key not in tgt:
            raise ValueError(
                f"`targets[{i}]` has no {key!r} (keys: {sorted(tgt)}): each target needs 'boxes' (N, 4) xyxy "
                f"and 'labels' (N,); an image with no object has boxes of shape (0, 4) and labels of shape (0,)."
            )
    for key in _BOX_KEYS:
        if key in tgt and not isinstance(tgt[key], Tensor):
            raise TypeError(f"`targets[{i}][{key!r}]` must be a tensor, got {type(tgt[key]).__name__}.")
    boxes = tgt["boxes"]
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(
            f"`targets[{i}]['boxes']` must have shape (N, 4) (xyxy, absolute pixels), got {tuple(boxes.shape)}. "
            f"An image with no object has boxes of shape (0, 4), e.g. `torch.zeros(0, 4)`."
        )
    n = boxes.shape[0]
    for key in ("labels", "weights"):
        if key in tgt and tuple(tgt[key].shape) != (n,):
            raise ValueError(
                f"`targets[{i}][{key!r}]` must have shape ({n},), one per box, got {tuple(tgt[key].shape)}."
            )
