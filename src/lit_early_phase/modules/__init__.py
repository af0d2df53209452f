"""LightningModules and the mixin that exposes the run-time knobs strategies turn."""

from lit_early_phase.modules.causal_lm import CausalLMFineTune, LMStep, load_causal_lm, load_finetuned, load_tokenizer
from lit_early_phase.modules.classifier import ImageClassifier, create_backbone
from lit_early_phase.modules.knobs import Knobs, StepRecord
from lit_early_phase.modules.mixin import ClassificationStep, EnlightenmentMixin

__all__ = [
    "CausalLMFineTune",
    "ClassificationStep",
    "EnlightenmentMixin",
    "ImageClassifier",
    "Knobs",
    "LMStep",
    "StepRecord",
    "create_backbone",
    "load_causal_lm",
    "load_finetuned",
    "load_tokenizer",
]
