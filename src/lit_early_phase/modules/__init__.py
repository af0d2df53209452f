"""LightningModules and the mixin that exposes the run-time knobs strategies turn."""

from lit_early_phase.modules.classifier import ImageClassifier, create_backbone
from lit_early_phase.modules.knobs import Knobs, StepRecord
from lit_early_phase.modules.mixin import ClassificationStep, EnlightenmentMixin

__all__ = [
    "ClassificationStep",
    "EnlightenmentMixin",
    "ImageClassifier",
    "Knobs",
    "StepRecord",
    "create_backbone",
]
