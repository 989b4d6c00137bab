"""Argument checks shared by the public functions: each raises ValueError naming the argument.

Every check returns the value (as an ``int`` or ``float``) so that a caller can write
``batch_size = positive_int("batch_size", batch_size)`` at the top of a function, before any
work. Booleans are refused where a number is expected (``True`` is not a batch size), and
NaN and infinities are refused where a finite number is expected. :func:`one_line` puts an
exception on one line for the messages that report it.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

__all__ = [
    "finite",
    "finite_range",
    "int_at_least",
    "non_negative_finite",
    "non_negative_int",
    "one_line",
    "positive_finite",
    "positive_int",
]


def _integer(name: str, value: Any) -> int:
    """``value`` as an int, or ValueError if it is not an integer (bools refused)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}.") from None


def _finite(name: str, value: Any) -> float:
    """``value`` as a finite float, or ValueError if it is not a finite real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}.")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    return number


def finite(name: str, value: Any) -> float:
    """``value`` as a finite float, else ValueError."""
    return _finite(name, value)


def int_at_least(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``, else ValueError."""
    number = _integer(name, value)
    if number < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}.")
    return number


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1, else ValueError."""
    return int_at_least(name, value, 1)


def non_negative_int(name: str, value: Any) -> int:
    """``value`` as an int >= 0, else ValueError."""
    return int_at_least(name, value, 0)


def positive_finite(name: str, value: Any) -> float:
    """``value`` as a finite float > 0, else ValueError."""
    number = _finite(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return number


def non_negative_finite(name: str, value: Any) -> float:
    """``value`` as a finite float >= 0, else ValueError."""
    number = _finite(name, value)
    if number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return number


def finite_range(name: str, value: Any, low: float = 0.0) -> tuple[float, float]:
    """``value`` as a pair ``(a, b)`` of finite floats with ``low < a <= b``, else ValueError."""
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}.") from None
    a, b = _finite(name, a), _finite(name, b)
    if not low < a <= b:
        raise ValueError(f"{name} must satisfy {low:g} < low <= high, got {value!r}.")
    return a, b


def one_line(err: BaseException, with_type: bool = True) -> str:
    """``err`` on one line (its whitespace collapsed): ``Type: message``, or the message alone
    without ``with_type``; the type's name when there is no message."""
    message = " ".join(str(err).split())
    if not message:
        return type(err).__name__
    return f"{type(err).__name__}: {message}" if with_type else message
