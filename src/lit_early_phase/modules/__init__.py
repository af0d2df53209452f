"""LightningModules and the mixin that implements the :class:`~lit_early_phase.knobs.Enlightenable` protocol.

The causal-LM names load on first use (they import transformers and peft).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lit_early_phase.knobs import Enlightenable, Knobs, StepRecord
from lit_early_phase.modules.classifier import ImageClassifier, create_backbone
from lit_early_phase.modules.detection_models import DETECTION_MODELS, build_detector
from lit_early_phase.modules.detector import ObjectDetector
from lit_early_phase.modules.mixin import ClassificationStep, EnlightenmentMixin, EnlightenmentState

if TYPE_CHECKING:
    from lit_early_phase.modules.causal_lm import (
        CausalLMFineTune,
        LMStep,
        load_causal_lm,
        load_finetuned,
        load_tokenizer,
    )

_LAZY = ("CausalLMFineTune", "LMStep", "load_causal_lm", "load_finetuned", "load_tokenizer")


def __getattr__(name: str) -> Any:
    # PEP 562: the causal-LM code (transformers, peft) is imported only when one of its names is used.
    if name in _LAZY:
        return getattr(importlib.import_module("lit_early_phase.modules.causal_lm"), name)
    raise AttributeError(f"module 'lit_early_phase.modules' has no attribute {name!r}")


__all__ = [
    "DETECTION_MODELS",
    "CausalLMFineTune",
    "ClassificationStep",
    "Enlightenable",
    "EnlightenmentMixin",
    "EnlightenmentState",
    "ImageClassifier",
    "Knobs",
    "LMStep",
    "ObjectDetector",
    "StepRecord",
    "build_detector",
    "create_backbone",
    "load_causal_lm",
    "load_finetuned",
    "load_tokenizer",
]
