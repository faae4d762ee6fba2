"""Checks of configuration values where they enter, with messages that name the field and its range.

Every config's ``__post_init__`` runs its fields through these helpers, so a bad value fails when the
config is built, not windows later. The rules they share:

* a number must be a real number (``int``, ``float`` or a NumPy scalar), never a ``bool`` and never a
  string: ``"1e-3"`` is rejected with a :class:`TypeError` rather than silently coerced (the CLI's
  ``--set key=value`` parses its values as TOML before they get here);
* NaN and infinities are rejected wherever a finite value is needed;
* a range is written in interval notation in the message, ``(0, 1]`` meaning ``0 < x <= 1``.

Each helper returns the value as a plain Python ``int``/``float``/``bool``/``str`` (NumPy scalars are
converted; Python ints given for a float field are kept as they are) so configs stay JSON-ready.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r} (write the number without quotes)"
    return f"{value!r} of type {type(value).__name__}"


def _bound(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"  # ints exactly: 1048576, not 1.04858e+06


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    left = "(-inf" if low is None else f"{'(' if low_open else '['}{_bound(low)}"
    right = "inf)" if high is None else f"{_bound(high)}{')' if high_open else ']'}"
    return f"{left}, {right}"


def _in_range(value: float, low: float | None, high: float | None, low_open: bool, high_open: bool) -> bool:
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or (value < high if high_open else value <= high)


def integer(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``; ``TypeError`` for non-integers, ``ValueError`` outside."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {_describe(value)}.")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        kind = "a positive integer" if minimum == 1 and maximum is None else "an integer"
        raise ValueError(f"{name} must be {kind} in {_interval(minimum, maximum, False, False)}, got {value}.")
    return value


def positive_int(name: str, value: Any) -> int:
    """An integer >= 1 (counts, sizes, widths)."""
    return integer(name, value, minimum=1)


def non_negative_int(name: str, value: Any) -> int:
    """An integer >= 0 (seeds, optional periods where 0 means "off")."""
    return integer(name, value, minimum=0)


def real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    kind: str = "number",
) -> float:
    """A finite real number in the interval given by ``low``/``high`` (``None``: unbounded on that side).

    Raises:
        TypeError: If ``value`` is not a real number (a string, a bool, ``None``, a sequence, …).
        ValueError: If it is NaN, infinite, or outside the interval; the message shows the interval.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {_describe(value)}.")
    if not isinstance(value, int | float):
        value = float(value)  # NumPy scalars: keep configs JSON-ready
    interval = _interval(low, high, low_open, high_open)
    if not math.isfinite(value) or not _in_range(value, low, high, low_open, high_open):
        raise ValueError(f"{name} must be a finite {kind} in {interval}, got {value}.")
    return value


def positive(name: str, value: Any) -> float:
    """A finite number > 0 (learning rates, scales, stabilisers)."""
    return real(name, value, low=0.0, low_open=True, kind="positive number")


def non_negative(name: str, value: Any) -> float:
    """A finite number >= 0 (weights of penalties, decays, thresholds)."""
    return real(name, value, low=0.0, kind="non-negative number")


def fraction(name: str, value: Any, *, zero: bool = True, one: bool = False) -> float:
    """A fraction in ``[0, 1)`` by default; ``zero``/``one`` say whether each end is allowed."""
    return real(name, value, low=0.0, high=1.0, low_open=not zero, high_open=not one, kind="fraction")


def optional(check: Any, name: str, value: Any, **kwargs: Any) -> Any:
    """``None``, or ``check(name, value, **kwargs)``."""
    return None if value is None else check(name, value, **kwargs)


def boolean(name: str, value: Any) -> bool:
    """``True`` or ``False`` (NumPy booleans accepted); ``"false"`` and ``0`` are rejected."""
    if isinstance(value, np.bool_):
        value = bool(value)
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} of type {type(value).__name__}.")
    return value


def text(name: str, value: Any, *, empty: bool = False) -> str:
    """A string (non-empty unless ``empty``)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {value!r} of type {type(value).__name__}.")
    if not empty and not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}.")
    return value


def path(name: str, value: Any) -> str:
    """A file-system path given as ``str`` or ``os.PathLike``, returned as ``str``."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a path (a non-empty string or os.PathLike), got {value!r}.")
    return value


def choice(name: str, value: Any, valid: Sequence[str]) -> str:
    """One of ``valid``; the message lists them."""
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {list(valid)}.")
    return value


def pair(name: str, value: Any) -> tuple[Any, Any]:
    """A sequence of exactly two items (e.g. lower and upper bound), as a tuple."""
    if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__getitem__") or len(value) != 2:
        raise TypeError(f"{name} must be a pair (low, high), got {value!r}.")
    return value[0], value[1]


def seed(name: str, value: Any) -> int | None:
    """A reset seed: ``None`` or a non-negative integer (NumPy integers accepted; bools, floats and strings refused)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative integer or None, got {_describe(value)}.")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer or None, got {value}.")
    return int(value)


def seed_list(name: str, value: Any, n: int) -> list[int | None]:
    """Seeds of ``n`` sub-envs: ``None`` (all unseeded), one int ``s`` (sub-env ``i`` gets ``s + i``) or ``n`` seeds."""
    if value is None or (isinstance(value, numbers.Integral) and not isinstance(value, bool)):
        first = seed(name, value)
        return [None if first is None else first + i for i in range(n)]
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(f"{name} must be None, a non-negative integer or a list of {n} of them (one per sub-env), "
                        f"got {_describe(value)}.")
    if len(value) != n:
        raise ValueError(f"A list of seeds needs one seed per sub-env ({n}), got {len(value)}: pass {n} seeds, one int or None.")
    return [seed(f"{name}[{i}]", s) for i, s in enumerate(value)]


def mapping(name: str, value: Any, *, fix: str = "") -> dict[str, Any]:
    """``None`` (as ``{}``) or a mapping with string keys, as a ``dict``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict (or None), got {value!r:.80} of type {type(value).__name__}{fix}.")
    bad = next((k for k in value if not isinstance(k, str)), None)
    if bad is not None:
        raise TypeError(f"{name} keys must be strings, got {bad!r}{fix}.")
    return dict(value)
