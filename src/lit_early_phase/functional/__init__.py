"""Pure tensor code: mixing, soft targets, per-sample losses, high-loss removal, diagnostics. No Lightning imports.

``mix_params`` samples the mixing parameters, ``mixing`` applies them, ``targets`` builds the soft targets,
``losses`` and ``tokens`` compute per-sample losses, ``removal`` keeps the lowest-loss samples, ``diagnostics``
measures the period (BENR, dead activations, mixup gradient interference, activation trajectory distance),
``seeding`` keys randomness by where training is (data augmentation, mixing draws).
"""

from lit_early_phase.functional.detection import DetectionMixOutput, mix_detection
from lit_early_phase.functional.diagnostics import (
    activation_distance,
    benr,
    dead_fraction,
    flatten,
    interference_ratio,
)
from lit_early_phase.functional.draws import sample_beta, sample_block
from lit_early_phase.functional.losses import count_correct, soft_cross_entropy
from lit_early_phase.functional.mix_params import (
    MIX_MODES,
    BatchMixParams,
    ElemMixParams,
    MixMode,
    MixParams,
    sample_mix_params,
    validate_mix_args,
)
from lit_early_phase.functional.mixing import MixOutput, apply_mix, mix_batch
from lit_early_phase.functional.removal import DropOutput, drop_highest, num_to_remove, validate_drop_args
from lit_early_phase.functional.seeding import keyed_device_rng, keyed_generator, keyed_global_rng, keyed_seed
from lit_early_phase.functional.targets import smooth_one_hot
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
    "BatchMixParams",
    "DetectionMixOutput",
    "DropOutput",
    "ElemMixParams",
    "MixMode",
    "MixOutput",
    "MixParams",
    "SequenceLosses",
    "activation_distance",
    "apply_mix",
    "benr",
    "count_correct",
    "dead_fraction",
    "drop_highest",
    "flatten",
    "interference_ratio",
    "keyed_device_rng",
    "keyed_generator",
    "keyed_global_rng",
    "keyed_seed",
    "mix_batch",
    "mix_detection",
    "num_to_remove",
    "sample_beta",
    "sample_block",
    "sample_mix_params",
    "sequence_losses",
    "smooth_one_hot",
    "soft_cross_entropy",
    "token_accuracy_counts",
    "token_cross_entropy",
    "validate_drop_args",
    "validate_mix_args",
]
