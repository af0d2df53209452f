"""The core that strategies, the callback and modules share: the knobs, the step record and the protocol.

Strategies and :class:`~lit_early_phase.EnlightenmentCallback` import only this file; modules implement
:class:`Enlightenable` (:class:`~lit_early_phase.modules.EnlightenmentMixin` is the ready implementation). So a
strategy never loads timm or transformers, and a user's own module can be driven without the mixin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from lit_early_phase.functional import validate_drop_args, validate_mix_args


@dataclass(frozen=True)
class Knobs:
    """Data-distribution settings read by the module at every training step.

    A module keeps two of these: ``knobs_base`` (what the user configured) and ``knobs`` (what is in force now).
    Strategies call ``module.set_knobs(...)`` (``knobs_base`` with some fields replaced) when the enlightenment
    period starts and ``module.set_knobs()`` (the base again) when it ends. Frozen, so every change is validated.

    Attributes:
        mixup_alpha: Mixup α (0 = no Mixup).
        cutmix_alpha: CutMix α (0 = no CutMix).
        mix_prob: probability that a batch (or sample, per-element mode) is mixed.
        drop_fraction: share of each batch's highest-loss samples removed from the loss.
        drop_count: exact number of highest-loss samples removed per batch (overrides ``drop_fraction``).

    Example:
        >>> from dataclasses import replace
        >>> base = Knobs(mixup_alpha=0.2)
        >>> replace(base, mixup_alpha=0.0).mixes, base.mixes
        (False, True)
    """

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0
    drop_fraction: float = 0.0
    drop_count: int | None = None

    def __post_init__(self) -> None:
        validate_mix_args(mixup_alpha=self.mixup_alpha, cutmix_alpha=self.cutmix_alpha, prob=self.mix_prob)
        validate_drop_args(self.drop_fraction, self.drop_count)

    @property
    def mixes(self) -> bool:
        """Whether these settings mix any batch at all."""
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.mix_prob > 0

    @property
    def removes(self) -> bool:
        """Whether High-Loss Removal is in force (``drop_count``, when set, overrides ``drop_fraction``)."""
        return self.drop_count > 0 if self.drop_count is not None else self.drop_fraction > 0


@dataclass
class StepRecord:
    """What one training step applied, filled by the mixin's helpers and read by the callback.

    Values are tensors where they come from the device, so reading them costs no host sync until logged. A field
    no helper filled keeps its default, a plain number (``1.0`` for ``lambda_mean``, ``0`` otherwise): a fresh
    record is made before every training batch, and six new tensors there cost more than the callback's whole
    per-step work (about 15 µs on a CPU, a launch each on a GPU).

    Attributes:
        alpha: Mixup α in force for the step.
        lambda_mean: mean λ over the batch (1.0 when nothing was mixed).
        mixed_fraction: fraction of samples mixed.
        removed_fraction: fraction of samples removed from the loss (non-finite losses included).
        nonfinite: how many per-sample losses were NaN or ±inf.
        correct: arg-max hits (against the dominant label for mixed samples).
        total: samples counted for accuracy.
        block: the block whose hidden state Manifold Mixup mixed (``None``: input mixing, or nothing mixed).
    """

    alpha: float = 0.0
    lambda_mean: Tensor | float = 1.0
    mixed_fraction: Tensor | float = 0.0
    removed_fraction: Tensor | float = 0.0
    nonfinite: Tensor | int = 0
    correct: Tensor | int = 0
    total: Tensor | int = 0
    block: str | None = None


@runtime_checkable
class Enlightenable(Protocol):
    """What a LightningModule offers to be driven by a strategy and the callback.

    The strategy reads ``knobs_base`` and puts knobs in force with ``set_knobs``; the callback calls
    ``begin_enlightenment_step`` before every training batch and reads ``enlightenment_record`` after it, and
    reads ``enlightenment_num_classes`` for the chance level. The module applies ``knobs`` in its
    ``training_step``. :class:`~lit_early_phase.modules.EnlightenmentMixin` implements all of it; ``isinstance``
    checks that the members exist (for the mixin: that ``configure_enlightenment`` was called).

    Example:
        >>> from lit_early_phase.modules import ImageClassifier
        >>> isinstance(ImageClassifier("test_resnet", num_classes=10, in_chans=1), Enlightenable)
        True
        >>> isinstance(object(), Enlightenable)
        False
    """

    @property
    def knobs_base(self) -> Knobs:
        """The knobs the user configured (in force outside the period)."""
        ...

    @property
    def knobs(self) -> Knobs:
        """The knobs in force now."""
        ...

    @property
    def enlightenment_num_classes(self) -> int | None:
        """Number of classes ``K`` (``None`` for modules without classes, e.g. language models)."""
        ...

    @property
    def enlightenment_record(self) -> StepRecord:
        """What the current training step applied (filled during ``training_step``)."""
        ...

    def set_knobs(self, **changes: Any) -> Knobs:
        """Put ``knobs_base`` with ``changes`` in force; no change restores the base."""
        ...

    def begin_enlightenment_step(self) -> None:
        """Start a fresh :class:`StepRecord`, so nothing of the last step is reported as applied again."""
        ...


@runtime_checkable
class Probeable(Protocol):
    """What a module offers to :class:`~lit_early_phase.callbacks.EnlightenmentDiagnostics` beyond BENR.

    ``probe_loss`` computes the mean training loss of a (probe) batch, mixed with the given Mixup α from the
    given generator (α = 0: the clean batch), through the module's own forward and loss, without logging,
    without High-Loss Removal and without touching the knobs or the step record. The diagnostics callback
    differentiates it (gradient interference) and hooks the forward (dead activations, trajectory distance).
    :class:`~lit_early_phase.modules.ImageClassifier` implements it.

    Example:
        >>> from lit_early_phase.modules import ImageClassifier
        >>> isinstance(ImageClassifier("test_resnet", num_classes=10, in_chans=1), Probeable)
        True
    """

    def probe_loss(self, batch: Any, *, mixup_alpha: float, generator: torch.Generator) -> Tensor:
        """Mean loss of ``batch`` mixed with ``mixup_alpha`` (0: clean), differentiable.

        Args:
            batch: a training batch as the module's ``training_step`` takes it.
            mixup_alpha: Mixup α of the probe (0: the clean batch).
            generator: CPU generator of the mixing draws.

        Returns:
            A 0-dim loss connected to the trainable parameters.
        """
        ...
