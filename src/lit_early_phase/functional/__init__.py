"""Pure tensor code: mixing, soft targets, per-sample losses, high-loss removal. No Lightning imports."""

from lit_early_phase.functional.losses import count_correct, soft_cross_entropy
from lit_early_phase.functional.mixing import (
    MIX_MODES,
    MixMode,
    MixOutput,
    MixParams,
    apply_mix,
    mix_batch,
    sample_beta,
    sample_mix_params,
    smooth_one_hot,
    validate_mix_args,
)
from lit_early_phase.functional.removal import DropOutput, drop_highest, num_to_remove, validate_drop_args
from lit_early_phase.functional.tokens import (
    IGNORE_INDEX,
    SequenceLosses,
    sequence_losses,
    token_accuracy_counts,
    token_cross_entropy,
)

__all__ = [
    "IGNORE_INDEX",
    "MIX_MODES",
    "DropOutput",
    "MixMode",
    "MixOutput",
    "MixParams",
    "SequenceLosses",
    "apply_mix",
    "count_correct",
    "drop_highest",
    "mix_batch",
    "num_to_remove",
    "sample_beta",
    "sample_mix_params",
    "sequence_losses",
    "smooth_one_hot",
    "soft_cross_entropy",
    "token_accuracy_counts",
    "token_cross_entropy",
    "validate_drop_args",
    "validate_mix_args",
]
