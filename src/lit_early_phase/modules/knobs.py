"""The run-time knobs a strategy turns, and the record of what a training step actually applied."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from lit_early_phase.functional import validate_drop_args, validate_mix_args


@dataclass(frozen=True)
class Knobs:
    """Data-distribution settings read by the module at every training step.

    A module keeps two of these: ``knobs_base`` (what the user configured) and ``knobs`` (what is in force now).
    Strategies replace ``knobs`` with ``dataclasses.replace(module.knobs_base, ...)`` when the enlightenment
    period starts and put ``knobs_base`` back when it ends. Frozen, so every change goes through validation.

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


def _zero() -> Tensor:
    return torch.zeros(())


@dataclass
class StepRecord:
    """What one training step applied, filled by the mixin's helpers and read by the callback.

    Values are tensors where they come from the device, so reading them costs no host sync until logged.

    Attributes:
        alpha: Mixup α in force for the step.
        cutmix_alpha: CutMix α in force for the step.
        lambda_mean: mean λ over the batch (1.0 when nothing was mixed).
        mixed_fraction: fraction of samples mixed.
        removed_fraction: fraction of samples removed from the loss (non-finite losses included).
        nonfinite: how many per-sample losses were NaN or ±inf.
        correct: arg-max hits (against the dominant label for mixed samples).
        total: samples counted for accuracy.
    """

    alpha: float = 0.0
    cutmix_alpha: float = 0.0
    lambda_mean: Tensor = field(default_factory=lambda: torch.ones(()))
    mixed_fraction: Tensor = field(default_factory=_zero)
    removed_fraction: Tensor = field(default_factory=_zero)
    nonfinite: Tensor = field(default_factory=_zero)
    correct: Tensor = field(default_factory=_zero)
    total: Tensor = field(default_factory=_zero)
