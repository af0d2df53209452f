"""lit-early-phase: detect the enlightenment period of training and change the data distribution inside it.

Example:
    >>> import lightning as L
    >>> from lit_early_phase import EnlightenmentCallback
    >>> trainer = L.Trainer(callbacks=[EnlightenmentCallback()], logger=False, enable_progress_bar=False)
"""

from lit_early_phase.callbacks import Duration, EnlightenmentCallback
from lit_early_phase.modules import CausalLMFineTune, EnlightenmentMixin, ImageClassifier, Knobs
from lit_early_phase.strategies import AlphaBoost, HighLossRemoval, MixupPause, Strategy

__version__ = "0.1.0"

__all__ = [
    "AlphaBoost",
    "CausalLMFineTune",
    "Duration",
    "EnlightenmentCallback",
    "EnlightenmentMixin",
    "HighLossRemoval",
    "ImageClassifier",
    "Knobs",
    "MixupPause",
    "Strategy",
    "__version__",
]
