"""lit-early-phase: detect the enlightenment period of training and change the data distribution inside it.

The callback, the strategies and the core load eagerly (Lightning and torch only); the LightningModules load on
first use, so ``import lit_early_phase.strategies`` pulls in neither timm nor transformers.

Example:
    >>> import lightning as L
    >>> from lit_early_phase import EnlightenmentCallback
    >>> trainer = L.Trainer(callbacks=[EnlightenmentCallback()], logger=False, enable_progress_bar=False)
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

from lit_early_phase.callbacks import Duration, EnlightenmentCallback, EnlightenmentDiagnostics
from lit_early_phase.knobs import Enlightenable, Knobs, StepRecord
from lit_early_phase.strategies import AlphaBoost, HighLossRemoval, MixupPause, Strategy

if TYPE_CHECKING:
    from lit_early_phase.modules import CausalLMFineTune, EnlightenmentMixin, ImageClassifier, ObjectDetector

try:
    __version__ = importlib.metadata.version("lit-early-phase")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source tree on sys.path, never installed
    # pyproject.toml holds the one version string; a checkout used without `pip install` has no metadata to read
    # it from, and a second copy here would drift. "0+unknown" is a valid version that sorts below every release.
    __version__ = "0+unknown"

# PEP 562 lazy attributes: the name -> the module that defines it (imported on first access).
_LAZY = {
    "CausalLMFineTune": "lit_early_phase.modules.causal_lm",
    "EnlightenmentMixin": "lit_early_phase.modules.mixin",
    "ImageClassifier": "lit_early_phase.modules.classifier",
    "ObjectDetector": "lit_early_phase.modules.detector",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lit_early_phase' has no attribute {name!r}")


__all__ = [
    "AlphaBoost",
    "CausalLMFineTune",
    "Duration",
    "Enlightenable",
    "EnlightenmentCallback",
    "EnlightenmentDiagnostics",
    "EnlightenmentMixin",
    "HighLossRemoval",
    "ImageClassifier",
    "Knobs",
    "MixupPause",
    "ObjectDetector",
    "StepRecord",
    "Strategy",
    "__version__",
]
