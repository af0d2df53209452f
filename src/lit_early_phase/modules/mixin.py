"""`EnlightenmentMixin`: the knobs and helpers that let any LightningModule serve the strategies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from lit_early_phase._compat import batches_started
from lit_early_phase.functional import (
    DropOutput,
    MixMode,
    MixOutput,
    count_correct,
    drop_highest,
    mix_batch,
    sample_block,
    sample_mix_params,
    soft_cross_entropy,
    validate_mix_args,
)
from lit_early_phase.functional.seeding import keyed_generator
from lit_early_phase.knobs import Knobs, StepRecord
from lit_early_phase.modules.manifold import manifold_forward


@dataclass
class EnlightenmentState:
    """All the mixin keeps on a module, in one attribute (``module.enlightenment_state``).

    Attributes:
        num_classes: ``K`` for soft targets and the chance level (``None``: no classes).
        base: the configured knobs.
        knobs: the knobs in force.
        switch_prob: probability of CutMix rather than Mixup when both α > 0.
        mix_mode: ``"batch"`` or ``"elem"``.
        label_smoothing: label smoothing of the soft targets.
        mix_seed: seed of the mixing draws (``None``: the global seed).
        record: what the current step applied.
        mix_calls: mixing calls made outside a Trainer (keys their draws).
    """

    num_classes: int | None
    base: Knobs
    knobs: Knobs
    switch_prob: float = 0.5
    mix_mode: MixMode = "batch"
    label_smoothing: float = 0.0
    mix_seed: int | None = None
    record: StepRecord = field(default_factory=StepRecord)
    mix_calls: int = 0


@dataclass(frozen=True)
class ClassificationStep:
    """Everything :meth:`EnlightenmentMixin.classification_step` computed for one batch.

    Attributes:
        loss: scalar training loss (after High-Loss Removal, normalised by the kept samples).
        logits: ``(B, K)`` model outputs on the (possibly mixed) inputs.
        mix: the :class:`~lit_early_phase.functional.MixOutput` (inputs, targets, dominant labels, λ).
        losses: ``(B,)`` per-sample losses before removal.
        drop: the :class:`~lit_early_phase.functional.DropOutput` (which samples were kept).
    """

    loss: Tensor
    logits: Tensor
    mix: MixOutput
    losses: Tensor
    drop: DropOutput


class EnlightenmentMixin:
    """Run-time data-distribution knobs for a LightningModule, and helpers that apply them in ``training_step``.

    Put it first in the bases, call :meth:`configure_enlightenment` in ``__init__`` and use either the one-call
    :meth:`classification_step` or its parts (:meth:`mix`, :meth:`reduce_losses`, :meth:`record_accuracy`).
    It implements :class:`~lit_early_phase.knobs.Enlightenable`: the
    :class:`~lit_early_phase.EnlightenmentCallback` turns ``knobs`` through a strategy and reads
    ``enlightenment_record`` after each step. Everything it keeps is one :class:`EnlightenmentState` in
    ``enlightenment_state``.

    Mixing happens on the batch's device in the main process. λ comes from a CPU ``torch.Generator`` seeded at
    each step from ``(mix_seed, global rank, epoch, batch index)``: ranks draw different λ, a run is reproducible
    under a seed, and resuming from a checkpoint replays exactly the same draws, with no generator state to save.

    Example:
        >>> import lightning as L
        >>> class Tiny(EnlightenmentMixin, L.LightningModule):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.net = torch.nn.Linear(4, 3)
        ...         self.configure_enlightenment(num_classes=3, mixup_alpha=0.2)
        ...     def training_step(self, batch, batch_idx):
        ...         x, y = batch
        ...         return self.classification_step(x, y, self.net).loss
        >>> m = Tiny()
        >>> step = m.classification_step(torch.randn(6, 4), torch.arange(6) % 3, m.net)
        >>> step.mix.targets.shape, m.enlightenment_record.alpha
        (torch.Size([6, 3]), 0.2)
    """

    enlightenment_state: EnlightenmentState

    def configure_enlightenment(
        self,
        *,
        num_classes: int | None,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        mix_prob: float = 1.0,
        switch_prob: float = 0.5,
        mix_mode: MixMode = "batch",
        label_smoothing: float = 0.0,
        drop_fraction: float = 0.0,
        drop_count: int | None = None,
        mix_seed: int | None = None,
    ) -> None:
        """Set the configured (base) knobs and the fixed mixing settings.

        Args:
            num_classes: number of classes ``K`` (``None`` for modules that do not classify into classes, e.g.
                causal LMs; then chance-adjusted thresholds are unavailable and mixing is refused).
            mixup_alpha: configured Mixup α (0 = off).
            cutmix_alpha: configured CutMix α (0 = off).
            mix_prob: probability of mixing a batch (or sample, ``mix_mode="elem"``).
            switch_prob: probability of CutMix rather than Mixup when both α > 0.
            mix_mode: ``"batch"`` (one λ per batch) or ``"elem"`` (one λ per sample).
            label_smoothing: label smoothing of the soft targets, in ``[0, 1)``.
            drop_fraction: configured High-Loss Removal share (normally 0; strategies set it in the period).
            drop_count: configured exact removal count per batch (normally ``None``).
            mix_seed: seed of the mixing draws; ``None`` derives it from the global seed (``seed_everything``).

        Raises:
            ValueError: for ``num_classes < 2`` or any out-of-range mixing or removal argument.
        """
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
        ):
            raise ValueError(
                f"`num_classes` must be an int >= 2 (the number of classes in the data), got {num_classes!r}."
            )
        validate_mix_args(
            mixup_alpha=mixup_alpha,
            cutmix_alpha=cutmix_alpha,
            prob=mix_prob,
            switch_prob=switch_prob,
            mode=mix_mode,
            label_smoothing=label_smoothing,
        )
        if num_classes is None and (mixup_alpha > 0 or cutmix_alpha > 0):
            raise ValueError("Mixing needs `num_classes` for its soft targets; set `num_classes` or α = 0.")
        base = Knobs(
            mixup_alpha=float(mixup_alpha),
            cutmix_alpha=float(cutmix_alpha),
            mix_prob=float(mix_prob),
            drop_fraction=float(drop_fraction),
            drop_count=drop_count,
        )
        self.enlightenment_state = EnlightenmentState(
            num_classes=num_classes,
            base=base,
            knobs=base,
            switch_prob=float(switch_prob),
            mix_mode=mix_mode,
            label_smoothing=float(label_smoothing),
            mix_seed=mix_seed,
        )

    # ----------------------------------------------------------------------------------------------------------
    # the Enlightenable protocol
    @property
    def knobs_base(self) -> Knobs:
        """The configured knobs (in force outside the enlightenment period)."""
        return self.enlightenment_state.base

    @property
    def knobs(self) -> Knobs:
        """The knobs in force now."""
        return self.enlightenment_state.knobs

    @property
    def enlightenment_num_classes(self) -> int | None:
        """Number of classes ``K`` (``None``: a module without classes)."""
        return self.enlightenment_state.num_classes

    @enlightenment_num_classes.setter
    def enlightenment_num_classes(self, value: int | None) -> None:
        self.enlightenment_state.num_classes = value

    @property
    def enlightenment_record(self) -> StepRecord:
        """What the current training step applied."""
        return self.enlightenment_state.record

    def begin_enlightenment_step(self) -> None:
        """Start a fresh step record (the callback calls it before every training batch)."""
        self.enlightenment_state.record = StepRecord()

    # ----------------------------------------------------------------------------------------------------------
    # knobs
    def set_knobs(self, **changes: Any) -> Knobs:
        """Put ``knobs_base`` with ``changes`` in force (validated); no change restores the base.

        Args:
            **changes: fields of :class:`Knobs` to override.

        Returns:
            The knobs now in force.

        Raises:
            ValueError: for an out-of-range value.
            TypeError: for a name that is not a knob.
        """
        state = self.enlightenment_state
        state.knobs = replace(state.base, **changes)
        return state.knobs

    # ----------------------------------------------------------------------------------------------------------
    # randomness
    def _step_generator(self) -> torch.Generator:
        """A generator for this step, seeded from (seed, rank, epoch, batch) when attached to a Trainer.

        A fresh ``torch.Generator`` per step (it costs microseconds) rather than one kept on the module: the
        draws then depend only on where training is, so a resumed run replays them, and the module holds no
        generator, which ``ddp_spawn`` could not send to its processes.
        """
        state = self.enlightenment_state
        seed = torch.initial_seed() if state.mix_seed is None else state.mix_seed
        trainer = getattr(self, "_trainer", None)
        if trainer is None:  # used outside a Trainer: a reproducible stream of calls
            state.mix_calls += 1
            return keyed_generator(seed, state.mix_calls)
        # the data's keyed seed too: neighbouring keys give unrelated streams
        return keyed_generator(seed, int(trainer.global_rank), int(trainer.current_epoch), batches_started(trainer))

    # ----------------------------------------------------------------------------------------------------------
    # helpers for training_step
    def mix(self, inputs: Tensor, labels: Tensor) -> MixOutput:
        """Mix a batch with the knobs in force and record α, mean λ and the mixed fraction.

        Args:
            inputs: ``(B, C, *spatial)`` inputs on the device.
            labels: ``(B,)`` integer labels.

        Returns:
            The :class:`~lit_early_phase.functional.MixOutput`; its targets are dense even when nothing is mixed.
        """
        state = self.enlightenment_state
        if state.num_classes is None:
            raise RuntimeError("`mix` needs `num_classes`; this module was configured without classes.")
        k = state.knobs
        out = mix_batch(
            inputs,
            labels,
            num_classes=state.num_classes,
            mixup_alpha=k.mixup_alpha,
            cutmix_alpha=k.cutmix_alpha,
            prob=k.mix_prob,
            switch_prob=state.switch_prob,
            mode=state.mix_mode,
            label_smoothing=state.label_smoothing,
            generator=self._step_generator() if k.mixes else None,
        )
        self.record_mixing(out)
        return out

    def mix_manifold(
        self, inputs: Tensor, labels: Tensor, model: nn.Module, blocks: Sequence[str]
    ) -> tuple[Tensor, MixOutput]:
        """Manifold Mixup: forward through ``model``, mixing the hidden state at one block drawn from ``blocks``.

        The λ, pairing and mixing gate are drawn exactly as :meth:`mix` draws them at the same step (same knobs,
        same step generator, same order); the block index is drawn after them from that generator
        (:func:`~lit_early_phase.functional.sample_block`), so resumes and ranks behave as for input Mixup. The
        targets are blended as for input Mixup. Records α, mean λ, the mixed fraction and the block
        (``record.block``; ``None`` when the step mixed nothing).

        Args:
            inputs: ``(B, ...)`` inputs on the device (left unmixed).
            labels: ``(B,)`` integer labels.
            model: the network whose submodules ``blocks`` names.
            blocks: the candidate blocks (submodule names of ``model``).

        Returns:
            The logits and the :class:`~lit_early_phase.functional.MixOutput` (its ``inputs`` are the unmixed
            inputs).

        Raises:
            RuntimeError: without ``num_classes``, or when the knobs in force carry a CutMix α (a strategy such
                as ``AlphaBoost(cutmix_alpha=...)``): CutMix has no meaning on a hidden state.
        """
        state = self.enlightenment_state
        if state.num_classes is None:
            raise RuntimeError("`mix_manifold` needs `num_classes`; this module was configured without classes.")
        k = state.knobs
        if k.cutmix_alpha > 0:
            raise RuntimeError(
                f"Manifold Mixup mixes hidden states by Mixup only, but CutMix α={k.cutmix_alpha} is in force "
                f"(set by a strategy, e.g. `AlphaBoost(cutmix_alpha=...)`). Leave the strategy's `cutmix_alpha` "
                f"unset, or use `mix_at='input'`."
            )
        generator = self._step_generator() if k.mixes else None
        params = sample_mix_params(
            inputs.shape[0],
            tuple(inputs.shape[2:]),
            mixup_alpha=k.mixup_alpha,
            prob=k.mix_prob,
            switch_prob=state.switch_prob,
            mode=state.mix_mode,
            generator=generator,
        )
        block = blocks[sample_block(len(blocks), generator=generator)] if params.any_mixed else None
        logits, out = manifold_forward(
            model, block, inputs, labels, params, num_classes=state.num_classes, smoothing=state.label_smoothing
        )
        self.record_mixing(out)
        state.record.block = block
        return logits, out

    def record_mixing(self, out: Any) -> None:
        """Record the step's α (the knobs in force) and what a mixing call applied (its mean λ, mixed share).

        Args:
            out: a mixing result with ``lam_mean`` and ``mixed_fraction`` (classification or detection Mixup).
        """
        rec = self.enlightenment_state.record
        rec.alpha = self.enlightenment_state.knobs.mixup_alpha
        rec.lambda_mean, rec.mixed_fraction = out.lam_mean, out.mixed_fraction

    def reduce_losses(self, losses: Tensor, weights: Tensor | None = None) -> DropOutput:
        """Average per-sample losses, removing the highest ones if the knobs say so, and record the share.

        Args:
            losses: ``(B,)`` per-sample losses (per-sequence means for language models).
            weights: optional ``(B,)`` weights (e.g. response tokens per sequence) to normalise by.

        Returns:
            The :class:`~lit_early_phase.functional.DropOutput`; ``.loss`` is what to return from the step.
        """
        k = self.knobs
        out = drop_highest(losses, fraction=k.drop_fraction, count=k.drop_count, weights=weights)
        self.enlightenment_record.removed_fraction = out.removed_fraction
        self.enlightenment_record.nonfinite = out.num_nonfinite
        return out

    def record_accuracy(self, correct: Tensor, total: Tensor) -> None:
        """Record the step's correct/total counts that the callback's running accuracy is built from.

        Args:
            correct: number of correct predictions (0-dim tensor).
            total: number of predictions counted (0-dim tensor).
        """
        self.enlightenment_record.correct, self.enlightenment_record.total = correct.detach(), total.detach()

    def classification_step(
        self,
        inputs: Tensor,
        labels: Tensor,
        forward: Callable[[Tensor], Tensor],
        *,
        manifold_blocks: Sequence[str] = (),
    ) -> ClassificationStep:
        """Mix, forward, per-sample soft cross-entropy, High-Loss Removal and accuracy counts, in one call.

        While High-Loss Removal is in force, a sample whose logits are not finite (an overflow) gets the loss
        ``+inf``, which :func:`~lit_early_phase.functional.drop_highest` removes first, and exactly zero gradient:
        its loss is computed from zeroed logits, so no ``0 · NaN`` of ``log_softmax``'s backward reaches the
        parameters. Non-finite *inputs* still make the network's backward NaN (clean the data). With removal off
        the loss is computed as in plain training (NaN stays visible).

        Args:
            inputs: ``(B, C, *spatial)`` inputs.
            labels: ``(B,)`` integer labels.
            forward: the model, called once on the mixed inputs (no extra forward pass for removal).
            manifold_blocks: candidate blocks (submodule names of ``forward``, then an ``nn.Module``) for
                Manifold Mixup (:meth:`mix_manifold`); empty (the default): input Mixup/CutMix (:meth:`mix`).

        Returns:
            A :class:`ClassificationStep`; return its ``.loss`` from ``training_step``.

        Raises:
            TypeError: for ``manifold_blocks`` with a ``forward`` that is not an ``nn.Module``.
        """
        if manifold_blocks:
            if not isinstance(forward, nn.Module):
                raise TypeError(
                    f"Manifold Mixup hooks a block of the network: `forward` must be an nn.Module, got "
                    f"{type(forward).__name__}."
                )
            logits, mixed = self.mix_manifold(inputs, labels, forward, manifold_blocks)
        else:
            mixed = self.mix(inputs, labels)
            logits = forward(mixed.inputs)
        if self.knobs.removes:
            bad = ~torch.isfinite(logits.detach()).all(dim=-1)
            zero = torch.zeros((), dtype=logits.dtype, device=logits.device)
            safe = soft_cross_entropy(torch.where(bad.unsqueeze(-1), zero, logits), mixed.targets)
            losses = torch.where(bad, torch.full((), float("inf"), dtype=safe.dtype, device=safe.device), safe)
        else:
            losses = soft_cross_entropy(logits, mixed.targets)
        drop = self.reduce_losses(losses)
        self.record_accuracy(*count_correct(logits.detach(), mixed.dominant))
        return ClassificationStep(drop.loss, logits, mixed, losses, drop)
