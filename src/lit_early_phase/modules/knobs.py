"""Old import path of the core (``lit_early_phase.modules.knobs``), kept so that existing imports work.

The knobs, the step record and the protocol live in :mod:`lit_early_phase.knobs`.
"""

from lit_early_phase.knobs import Enlightenable, Knobs, StepRecord

__all__ = ["Enlightenable", "Knobs", "StepRecord"]
