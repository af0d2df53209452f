"""Callbacks: the boundary decision, the diagnostics of the period, and writing predictions."""

from lit_early_phase.callbacks.diagnostics import EnlightenmentDiagnostics
from lit_early_phase.callbacks.duration import Duration
from lit_early_phase.callbacks.enlightenment import EnlightenmentCallback
from lit_early_phase.callbacks.predictions import JSONLPredictionWriter

__all__ = ["Duration", "EnlightenmentCallback", "EnlightenmentDiagnostics", "JSONLPredictionWriter"]
