"""Callbacks: the boundary decision (and, later, diagnostics)."""

from lit_early_phase.callbacks.duration import Duration
from lit_early_phase.callbacks.enlightenment import RUNNING_ACC, EnlightenmentCallback

__all__ = ["RUNNING_ACC", "Duration", "EnlightenmentCallback"]
