"""Small validators: each raises ScenarioError naming the parameter, the value and what is
allowed."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from .exceptions import ScenarioError


def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool | np.bool_)


def number(x: object, param: str) -> float:
    """A finite real number."""
    if not _is_number(x) or not math.isfinite(float(x)):  # type: ignore[arg-type]
        raise ScenarioError(f"{param}={x!r} is not allowed; it must be a finite number")
    return float(x)  # type: ignore[arg-type]


def positive(x: object, param: str, unit: str = "") -> float:
    """A finite number > 0."""
    v = number(x, param)
    if v <= 0:
        raise ScenarioError(f"{param}={x!r} is not allowed; it must be > 0{unit}")
    return v


def non_negative(x: object, param: str, unit: str = "") -> float:
    """A finite number >= 0."""
    v = number(x, param)
    if v < 0:
        raise ScenarioError(f"{param}={x!r} is not allowed; it must be >= 0{unit}")
    return v


def probability(x: object, param: str, *, open_low: bool = False, open_high: bool = False) -> float:
    """A probability in [0, 1], optionally excluding an end."""
    v = number(x, param) if _is_number(x) else math.nan
    lo_ok = v > 0 if open_low else v >= 0
    hi_ok = v < 1 if open_high else v <= 1
    if not (lo_ok and hi_ok):
        interval = ("(" if open_low else "[") + "0, 1" + (")" if open_high else "]")
        raise ScenarioError(f"{param}={x!r} is not allowed; it must be a probability in {interval}")
    return v


def shares(xs: object, param: str, n: int) -> tuple[float, ...]:
    """``n`` probabilities summing to 1 (within 1e-6)."""
    if not isinstance(xs, Sequence) or isinstance(xs, str) or len(xs) != n:
        raise ScenarioError(f"{param}={xs!r} is not allowed; it must be a list of {n} shares")
    vals = tuple(probability(x, f"{param}[{i}]") for i, x in enumerate(xs))
    if abs(sum(vals) - 1.0) > 1e-6:
        raise ScenarioError(f"{param}={list(xs)!r} is not allowed; the shares must sum to 1")
    return vals


def choice(x: object, param: str, allowed: Sequence[str]) -> str:
    """One of a fixed set of strings."""
    if x not in allowed:
        raise ScenarioError(f"{param}={x!r} is not allowed; use one of {list(allowed)}")
    return str(x)


def count(x: object, param: str) -> int:
    """A positive integer (Python or NumPy)."""
    if isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Integral) or x <= 0:
        raise ScenarioError(f"{param}={x!r} is not allowed; it must be a positive integer")
    return int(x)
