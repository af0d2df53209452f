"""LightningModules and the mixin that implements the :class:`~lit_early_phase.knobs.Enlightenable` protocol.

The causal-LM names load on first use (they import transformers and peft). The protocol itself lives in the core
(:mod:`lit_early_phase.knobs`); the transformers plumbing (``load_tokenizer``, ``load_finetuned``, ...) in
:mod:`lit_early_phase.hf`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lit_early_phase.modules.classifier import ImageClassifier, create_backbone
from lit_early_phase.modules.detection_models import DETECTION_MODELS, build_detector
from lit_early_phase.modules.detector import ObjectDetector
from lit_early_phase.modules.manifold import default_manifold_blocks
from lit_early_phase.modules.mixin import ClassificationStep, EnlightenmentMixin, EnlightenmentState

if TYPE_CHECKING:
    from lit_early_phase.modules.causal_lm import CausalLMFineTune, LMStep

_LAZY = ("CausalLMFineTune", "LMStep")


def __getattr__(name: str) -> Any:
    # PEP 562: the causal-LM code (transformers, peft) is imported only when one of its names is used.
    if name in _LAZY:
        return getattr(importlib.import_module("lit_early_phase.modules.causal_lm"), name)
    raise AttributeError(f"module 'lit_early_phase.modules' has no attribute {name!r}")


__all__ = [
    "DETECTION_MODELS",
    "CausalLMFineTune",
    "ClassificationStep",
    "EnlightenmentMixin",
    "EnlightenmentState",
    "ImageClassifier",
    "LMStep",
    "ObjectDetector",
    "build_detector",
    "create_backbone",
    "default_manifold_blocks",
]
