"""The argument checks every public constructor shares: one message format, one place to change it.

Each check raises a :class:`ValueError` that names the argument, the value given, what is allowed and (when
given) what to do, before any training starts. ``bool`` is refused where an int or a number is asked for
(``True`` is an ``int`` to Python, never what a user meant by ``batch_size=True``).

Written by hand on purpose: jsonargparse validates types from the CLI, but not ranges, and not for users who
build the classes in Python.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any


def _fail(name: str, value: Any, allowed: str, hint: str) -> ValueError:
    return ValueError(f"`{name}` must be {allowed}, got {value!r}.{' ' + hint if hint else ''}")


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    allow_none: bool = False,
    hint: str = "",
) -> int | None:
    """Refuse anything but an ``int`` in ``[minimum, maximum]`` (or ``None`` when ``allow_none``).

    Args:
        name: the argument's name, as the user typed it.
        value: the value given.
        minimum: smallest allowed value (``None``: no bound).
        maximum: largest allowed value (``None``: no bound).
        allow_none: whether ``None`` is allowed.
        hint: what to do, appended to the message.

    Returns:
        ``value`` unchanged.

    Raises:
        ValueError: naming the argument, the value and the allowed range.

    Example:
        >>> check_int("window", 20, minimum=1)
        20
        >>> check_int("window", 0, minimum=1)
        Traceback (most recent call last):
        ...
        ValueError: `window` must be an int >= 1, got 0.
    """
    if value is None and allow_none:
        return None
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        if minimum is not None and maximum is not None:
            allowed = f"an int in [{minimum}, {maximum}]"
        elif minimum is not None:
            allowed = f"an int >= {minimum}"
        elif maximum is not None:
            allowed = f"an int <= {maximum}"
        else:
            allowed = "an int"
        raise _fail(name, value, allowed + (" or None" if allow_none else ""), hint)
    return value


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
    hint: str = "",
) -> float | None:
    """Refuse anything but a finite real number in the interval (``bool`` and NaN included).

    Args:
        name: the argument's name.
        value: the value given.
        low: lower bound (``None``: none).
        high: upper bound (``None``: none).
        low_open: exclude ``low`` itself.
        high_open: exclude ``high`` itself.
        allow_none: whether ``None`` is allowed.
        hint: what to do, appended to the message.

    Returns:
        ``float(value)`` (or ``None``).

    Raises:
        ValueError: naming the argument, the value and the interval.

    Example:
        >>> check_number("threshold", 0.5, low=0, high=1, low_open=True, high_open=True)
        0.5
        >>> check_number("mix_prob", 2, low=0, high=1)
        Traceback (most recent call last):
        ...
        ValueError: `mix_prob` must be a number in [0, 1], got 2.
    """
    if value is None and allow_none:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        if low is not None and high is not None:
            allowed = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            allowed = f"a finite number {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            allowed = f"a finite number {'<' if high_open else '<='} {high:g}"
        else:
            allowed = "a finite number"
        raise _fail(name, value, allowed + (" or None" if allow_none else ""), hint)
    return float(value)


def check_choice(name: str, value: Any, choices: Collection[Any], *, hint: str = "") -> Any:
    """Refuse a value that is not one of ``choices``.

    Args:
        name: the argument's name.
        value: the value given.
        choices: the allowed values.
        hint: what each choice means or what to do, appended to the message.

    Returns:
        ``value`` unchanged.

    Raises:
        ValueError: naming the argument, the value and the choices.

    Example:
        >>> check_choice("mode", "max", ("max", "min"))
        'max'
    """
    if value not in choices:
        raise _fail(name, value, f"one of {tuple(choices)!r}", hint)
    return value
