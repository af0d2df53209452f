"""`PeriodHistory`: what the callback wrote to the loggers, kept in memory for the figure and the run summary.

The boundary figure and the W&B summary are built from these values, not by reading a logger's files back: they
exist for every logger (and for none), and they are the values the loggers got. Plain lists, saved in the
callback's checkpoint state, so a resumed run's figure covers the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lit_early_phase.keys import MONITOR_KEY


@dataclass
class PeriodHistory:
    """The written steps' values, the monitor's checks, validation metrics and the boundary.

    Steps are the steps the loggers were given (Lightning's logging step: the values of optimizer step ``s + 1``
    are written at ``s``), so the history and the loggers' records line up key by key.

    Attributes:
        steps: the written training steps.
        applied: per key of :data:`~lit_early_phase.keys.APPLIED_KEYS`, one value per entry of ``steps``.
        checks: ``(step, value)`` of every check of the monitor (compared value: chance-adjusted if asked),
            written or not.
        metrics: ``name -> [(step, value)]`` for the validation metrics the figure shows (``val/acc``, ...).
        boundary_step: the optimizer step at which the period ended (``None`` while it runs).
    """

    steps: list[int] = field(default_factory=list)
    applied: dict[str, list[float]] = field(default_factory=dict)
    checks: list[tuple[int, float]] = field(default_factory=list)
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    boundary_step: int | None = None

    def record_applied(self, step: int, values: dict[str, float]) -> None:
        """Append a written step's values (the monitor, if among them, is recorded by :meth:`record_check`)."""
        self.steps.append(int(step))
        for key, value in values.items():
            if key != MONITOR_KEY:
                self.applied.setdefault(key, []).append(float(value))

    def record_check(self, step: int, value: float) -> None:
        """Append the monitor's value at a check."""
        self.checks.append((int(step), float(value)))

    def record_metric(self, name: str, step: int, value: float) -> None:
        """Append a validation metric's value."""
        self.metrics.setdefault(name, []).append((int(step), float(value)))

    def state_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (loads with ``torch.load(weights_only=True)``)."""
        return {
            "steps": list(self.steps),
            "applied": {k: list(v) for k, v in self.applied.items()},
            "checks": [list(c) for c in self.checks],
            "metrics": {k: [list(x) for x in v] for k, v in self.metrics.items()},
            "boundary_step": self.boundary_step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (an empty dict: a checkpoint saved before the history existed)."""
        self.steps = [int(s) for s in state.get("steps", [])]
        self.applied = {k: [float(x) for x in v] for k, v in state.get("applied", {}).items()}
        self.checks = [(int(s), float(v)) for s, v in state.get("checks", [])]
        self.metrics = {k: [(int(s), float(x)) for s, x in v] for k, v in state.get("metrics", {}).items()}
        self.boundary_step = state.get("boundary_step")
