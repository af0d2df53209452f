"""The boundary rule: does the enlightenment period end at this check, and why. Pure: no Trainer, no Lightning.

:class:`~lit_early_phase.EnlightenmentCallback` keeps the hooks and the latched state and asks a
:class:`BoundaryRule` at every check; the rule reads only its configuration and the arguments of the call (the
monitor's value, optimizer steps and whole epochs done, the run's length), so it is table-tested without a Trainer
(``tests/callbacks/test_boundary_rule.py``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

from lit_early_phase.callbacks.duration import Duration
from lit_early_phase.keys import RUNNING_ACC

Mode = Literal["max", "min"]
Cause = Literal["duration", "max_duration", "monitor"]

#: the one comparator per mode: ``(reached(compared, threshold), the sign shown in the reason)``
COMPARATORS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "max": (operator.ge, ">="),
    "min": (operator.le, "<="),
}


#: ``EnlightenmentCallback(max_duration=...)``'s default, a fifth of the run, and the sentinel of the default guard:
#: recognised by identity (``max_duration is DEFAULT_MAX_DURATION``), never by its text. The default guard switches
#: itself off on a run of unknown length; a guard the user gives, even ``"0.2dur"``, is kept and refuses such a run.
#: A plain ``str`` built at import (equal to no other string object), so the command line and YAML recipes show and
#: dump it as text and pass this very object on when the argument is not given.
DEFAULT_MAX_DURATION: str = "".join(("0.2", "dur"))


class Boundary(NamedTuple):
    """A decision of :meth:`BoundaryRule.decide`.

    Attributes:
        cause: ``None`` (the period goes on), ``"duration"``, ``"max_duration"`` or ``"monitor"``.
        reason: the sentence logged at the boundary (``""`` while the period goes on).
    """

    cause: Cause | None
    reason: str

    @property
    def ended(self) -> bool:
        """Whether the period ends at this check."""
        return self.cause is not None


GO_ON = Boundary(None, "")


@dataclass(frozen=True)
class BoundaryRule:
    """When the enlightenment period ends: a fixed length, a guard, or the monitor reaching a threshold.

    The first that holds, at a check: ``min_duration`` not yet reached -> go on; a fixed ``duration`` -> end once
    it is reached (the monitor is ignored); ``max_duration`` reached -> end (a guard); the monitor's (chance-adjusted)
    value at or past ``threshold`` in ``mode``'s direction -> end. Lengths compare with ``>=``, so a check past
    the boundary (a resumed run) still ends the period; NaN never reaches a threshold.

    Attributes:
        threshold: the value the monitor must reach (``"max"``) or fall to (``"min"``).
        mode: ``"max"`` (accuracy-like) or ``"min"`` (loss-like).
        monitor_name: the monitor's name, for the reason.
        chance: the chance level subtracted by :meth:`adjust` (``None``: compare the raw value).
        duration: a fixed length of the period.
        min_duration: the period lasts at least this long.
        max_duration: the guard: the period lasts at most this long.
        default_guard: ``max_duration`` is the default guard (the constructor got :data:`DEFAULT_MAX_DURATION`).

    Example:
        >>> rule = BoundaryRule(threshold=0.5, max_duration=Duration.parse("20st", name="max_duration"))
        >>> rule.decide(value=0.4, step=10, epochs_done=0, total_steps=100)
        Boundary(cause=None, reason='')
        >>> rule.decide(value=0.6, step=10, epochs_done=0, total_steps=100).reason
        'enlightenment/running_acc = 0.6000 >= threshold 0.5'
        >>> rule.decide(value=None, step=20, epochs_done=0, total_steps=100, last_value=0.4).cause
        'max_duration'
    """

    threshold: float
    mode: Mode = "max"
    monitor_name: str = RUNNING_ACC
    chance: float | None = None
    duration: Duration | None = None
    min_duration: Duration | None = None
    max_duration: Duration | None = None
    default_guard: bool = False

    def __post_init__(self) -> None:
        if self.mode not in COMPARATORS:
            raise ValueError(f"`mode` must be one of {sorted(COMPARATORS)}, got {self.mode!r}.")

    def adjust(self, value: float) -> float:
        """The value compared with the threshold: ``(value - chance) / (1 - chance)``, or the value itself."""
        if self.chance is not None:
            return (value - self.chance) / (1.0 - self.chance)
        return value

    def reached(self, value: float) -> bool:
        """Whether an (adjusted) value reaches the threshold in ``mode``'s direction (NaN never does)."""
        compare, _ = COMPARATORS[self.mode]
        return compare(value, self.threshold)

    def decide(
        self,
        *,
        value: float | None,
        step: int,
        epochs_done: int,
        total_steps: float = math.inf,
        last_value: float | None = None,
    ) -> Boundary:
        """Decide whether the period ends at this check.

        Args:
            value: the monitor's value (reduced over ranks, not adjusted), or ``None`` when the monitor is not
                checked now.
            step: optimizer steps done.
            epochs_done: whole epochs done.
            total_steps: the run's optimizer steps (``inf``: unknown).
            last_value: the monitor's last value (shown when the guard ends the period; ``None``: never checked).

        Returns:
            ``(cause, reason)`` as a :class:`Boundary`.

        Raises:
            ValueError: a share of the run (``"dur"``) on a run of unknown length.
        """
        at = {"step": step, "epochs_done": epochs_done, "total_steps": total_steps}
        if self.min_duration is not None and not self.min_duration.reached(**at):
            return GO_ON
        if self.duration is not None:
            if self.duration.reached(**at):
                return Boundary("duration", f"fixed duration {self.duration.spec} reached")
            return GO_ON
        if self.max_duration is not None and self.max_duration.reached(**at):
            shown = "never checked" if last_value is None else f"last {self.adjust(last_value):.4f}"
            return Boundary(
                "max_duration",
                f"max_duration guard {self.max_duration.spec} reached before {self.monitor_name} got to "
                f"{self.threshold} ({shown})",
            )
        if value is not None:
            compared = self.adjust(value)
            if self.reached(compared):
                what = "chance-adjusted " if self.chance is not None else ""
                sign = COMPARATORS[self.mode][1]
                return Boundary(
                    "monitor", f"{what}{self.monitor_name} = {compared:.4f} {sign} threshold {self.threshold}"
                )
        return GO_ON

    def for_run(self, total_steps: float) -> tuple[BoundaryRule, bool]:
        """The rule for a run of ``total_steps`` optimizer steps.

        On a run of unknown length (``inf``) the default guard is off; any other share of the run raises.

        Args:
            total_steps: the run's optimizer steps (``trainer.estimated_stepping_batches``).

        Returns:
            ``(rule, guard_dropped)``: the rule to decide with, and whether the default guard was switched off.

        Raises:
            ValueError: a ``"dur"`` length given by the user on a run of unknown length.
        """
        if math.isfinite(total_steps):
            return self, False
        dropped = False
        rule = self
        for name in ("duration", "min_duration", "max_duration"):
            d = getattr(self, name)
            if d is None or d.unit != "dur":
                continue
            if name == "max_duration" and self.default_guard:
                rule, dropped = replace(rule, max_duration=None, default_guard=False), True
            else:
                d.end_step(total_steps=total_steps)  # raises a clear error
        return rule, dropped
