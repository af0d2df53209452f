"""transformers / peft mechanics of the language-model side: model sources, loading, saving, LoRA, schedule.

Below both :mod:`lit_early_phase.modules` (``CausalLMFineTune``) and :mod:`lit_early_phase.datamodules`
(``InstructionDataModule`` loads its tokenizer here), and importing neither. transformers and peft are imported on
first use (:func:`require`), so importing this package costs torch only.
"""

from lit_early_phase.hf.checkpoints import FineTuneSavingMixin
from lit_early_phase.hf.generation import greedy_answers, greedy_reply
from lit_early_phase.hf.imports import require
from lit_early_phase.hf.loading import (
    DTYPES,
    SIDECAR,
    Dtype,
    load_causal_lm,
    load_finetuned,
    load_tokenizer,
    plain_model,
    save_finetuned,
)
from lit_early_phase.hf.lora import DEFAULT_LORA_TARGETS, add_lora, check_adapter_keys
from lit_early_phase.hf.optim import (
    DEFAULT_BETAS,
    DEFAULT_LR,
    DEFAULT_MIN_LR_RATIO,
    DEFAULT_WARMUP,
    DEFAULT_WEIGHT_DECAY,
    check_argument,
    param_groups,
    resolve_optimizer_factory,
    warmup_cosine_schedule,
)
from lit_early_phase.hf.precision import BF16_CPU_SLOWDOWN, cpu_has_native_bf16, slow_bf16_warning
from lit_early_phase.hf.sources import (
    SMOLLM2,
    SMOLLM2_GGUF,
    SMOLLM2_PACKAGE,
    ModelSource,
    resolve_model_source,
    smollm2_gguf,
)

__all__ = [
    "BF16_CPU_SLOWDOWN",
    "DEFAULT_BETAS",
    "DEFAULT_LORA_TARGETS",
    "DEFAULT_LR",
    "DEFAULT_MIN_LR_RATIO",
    "DEFAULT_WARMUP",
    "DEFAULT_WEIGHT_DECAY",
    "DTYPES",
    "SIDECAR",
    "SMOLLM2",
    "SMOLLM2_GGUF",
    "SMOLLM2_PACKAGE",
    "Dtype",
    "FineTuneSavingMixin",
    "ModelSource",
    "add_lora",
    "check_adapter_keys",
    "check_argument",
    "cpu_has_native_bf16",
    "greedy_answers",
    "greedy_reply",
    "load_causal_lm",
    "load_finetuned",
    "load_tokenizer",
    "param_groups",
    "plain_model",
    "require",
    "resolve_model_source",
    "resolve_optimizer_factory",
    "save_finetuned",
    "slow_bf16_warning",
    "smollm2_gguf",
    "warmup_cosine_schedule",
]
