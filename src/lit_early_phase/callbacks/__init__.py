"""Callbacks: the boundary decision, and writing predictions."""

from lit_early_phase.callbacks.applied_logging import RUNNING_ACC
from lit_early_phase.callbacks.duration import Duration
from lit_early_phase.callbacks.enlightenment import EnlightenmentCallback
from lit_early_phase.callbacks.predictions import JSONLPredictionWriter

__all__ = ["RUNNING_ACC", "Duration", "EnlightenmentCallback", "JSONLPredictionWriter"]
