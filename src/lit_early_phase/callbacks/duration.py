"""Lengths of training given as epochs, optimizer steps or a fraction of the run (``"10ep"``, ``"500st"``...)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

Unit = Literal["ep", "st", "dur"]
_UNITS = {
    "ep": "ep",
    "epoch": "ep",
    "epochs": "ep",
    "st": "st",
    "step": "st",
    "steps": "st",
    # Composer's spelling: there a batch is one optimizer step (micro-batches live inside it). Under Lightning's
    # accumulate_grad_batches=N one optimizer step is N loader batches; these aliases count optimizer steps.
    "ba": "st",
    "batch": "st",
    "batches": "st",
    "dur": "dur",
    "%": "dur",
}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*([a-z%]+)\s*$")
# A bare number given as text (what a command line or a quoted YAML value delivers): an int is epochs, anything
# else with a point or an exponent is a share of the run, exactly as the int and float it spells.
_INT_TEXT = re.compile(r"^\s*[0-9]+\s*$")
_FLOAT_TEXT = re.compile(r"^\s*(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?:\.[0-9]*)?e[-+]?[0-9]+)\s*$")
FORMS = (
    "'10ep' (epochs), '500st' (optimizer steps), '0.1dur' or '10%' (share of the run), an int (epochs) or a "
    "float in (0, 1] (share of the run), also as text ('10', '0.1')"
)


@dataclass(frozen=True)
class Duration:
    """A length of training. Parse user input with :meth:`parse`.

    Attributes:
        value: the amount (epochs, steps, or a share of the run in ``(0, 1]``).
        unit: ``"ep"``, ``"st"`` or ``"dur"``.
        spec: the text the user gave, for messages.

    Example:
        >>> Duration.parse("10ep", name="duration")
        Duration(value=10.0, unit='ep', spec='10ep')
        >>> Duration.parse(0.05, name="max_duration").unit
        'dur'
        >>> Duration.parse("10", name="duration").unit, Duration.parse("0.1", name="duration").value
        ('ep', 0.1)
        >>> Duration.parse("0.05dur", name="d").end_step(total_steps=1000)
        50
    """

    value: float
    unit: Unit
    spec: str

    @classmethod
    def parse(cls, spec: str | int | float, *, name: str) -> Duration:
        """Parse ``spec``; ``name`` is the argument named in the error.

        Args:
            spec: ``"10ep"``, ``"500st"``, ``"0.1dur"``, ``"10%"``, an int (epochs) or a float in (0, 1]; a
                number as text (``"10"``, ``"0.1"``, what a command line passes) means the same as the number.
            name: argument name for the error message.

        Returns:
            The :class:`Duration`.

        Raises:
            ValueError: for anything else.
        """
        text = str(spec)
        if isinstance(spec, bool):
            raise ValueError(f"`{name}` must be one of {FORMS}; got {spec!r}.")
        if isinstance(spec, int):
            value, unit = float(spec), "ep"
        elif isinstance(spec, float):
            value, unit = spec, "dur"
        elif isinstance(spec, str) and _INT_TEXT.match(spec):
            value, unit = float(spec), "ep"
        elif isinstance(spec, str) and _FLOAT_TEXT.match(spec.lower()):
            value, unit = float(spec), "dur"
        elif isinstance(spec, str) and (match := _PATTERN.match(spec.lower())) and match.group(2) in _UNITS:
            value, unit = float(match.group(1)), _UNITS[match.group(2)]
            if match.group(2) == "%":
                value /= 100.0
        else:
            raise ValueError(f"`{name}` must be one of {FORMS}; got {spec!r}.")
        if unit == "dur" and not 0 < value <= 1:
            raise ValueError(f"`{name}={spec!r}`: a share of the run must be in (0, 1].")
        if unit in ("ep", "st") and (value < 1 or value != int(value)):
            raise ValueError(f"`{name}={spec!r}`: epochs and steps must be whole numbers >= 1.")
        return cls(value, unit, text.strip())  # type: ignore[arg-type]

    def end_step(self, *, total_steps: float) -> int | None:
        """The optimizer step at which this length is reached, or ``None`` when counted in epochs.

        Args:
            total_steps: the run's total optimizer steps (``trainer.estimated_stepping_batches``).

        Returns:
            A step for ``"st"`` and ``"dur"`` units, ``None`` for epochs.

        Raises:
            ValueError: for a share of a run with no known length.
        """
        if self.unit == "st":
            return int(self.value)
        if self.unit == "dur":
            if not math.isfinite(total_steps):
                raise ValueError(
                    f"`{self.spec}` is a share of the run, but the run has no known length (set `max_epochs` or "
                    f"`max_steps` on the Trainer, or give the length in epochs/steps such as '2ep' or '500st')."
                )
            return max(1, math.ceil(self.value * total_steps))
        return None

    def reached(self, *, step: int, epochs_done: int, total_steps: float) -> bool:
        """Whether the length is reached after ``step`` optimizer steps and ``epochs_done`` whole epochs."""
        end = self.end_step(total_steps=total_steps)
        return epochs_done >= self.value if end is None else step >= end
