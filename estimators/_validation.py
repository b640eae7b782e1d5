"""Input checks shared by the estimators (fail fast, name the parameter)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .exceptions import EstimatorInputError


def _describe(values: np.ndarray, bad: np.ndarray) -> str:
    i = int(np.flatnonzero(bad)[0])
    value = values[i].item() if hasattr(values[i], "item") else values[i]
    return f"{int(bad.sum())} bad value(s), first at row {i}: {value!r}"


def check_frame(df: object, **columns: str | Sequence[str] | None) -> None:
    """Check ``df`` is a non-empty DataFrame holding every named column.

    Keyword names are the parameter names (``time="pfs_months"``) so errors say
    which argument pointed at a missing column.
    """
    if not isinstance(df, pd.DataFrame):
        raise EstimatorInputError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise EstimatorInputError("df has no rows; at least one patient per arm is required")
    for param, cols in columns.items():
        if cols is None:
            continue
        for c in [cols] if isinstance(cols, str) else cols:
            if c not in df.columns:
                raise EstimatorInputError(
                    f"{param}={c!r} is not a column of df; columns are {list(df.columns)}"
                )


def numeric_values(s: pd.Series) -> np.ndarray:
    """A numeric or boolean Series as float64, with missing values (NaN, pd.NA) as NaN."""
    if isinstance(s.dtype, np.dtype):  # numpy-backed: NaN survives the cast, and it is fast
        return s.to_numpy(dtype=np.float64)
    return s.to_numpy(dtype=np.float64, na_value=np.nan)  # nullable dtypes hold pd.NA


def float_column(df: pd.DataFrame, col: str, param: str) -> np.ndarray:
    """Column as a finite float64 array (NaN / inf / non-numeric rejected)."""
    s = df[col]
    if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
        raise EstimatorInputError(f"{param}={col!r} must be numeric, got dtype {s.dtype}")
    x = numeric_values(s)
    bad = ~np.isfinite(x)
    if bad.any():
        raise EstimatorInputError(
            f"{param}={col!r} contains NaN or inf ({_describe(x, bad)}); all values must be finite"
        )
    return x


def check_times(t: np.ndarray, param: str = "time") -> np.ndarray:
    """Times must be finite and strictly positive (months)."""
    bad = ~np.isfinite(t) | (t <= 0)
    if bad.any():
        raise EstimatorInputError(
            f"{param} has non-positive or non-finite times ({_describe(t, bad)}); "
            "times must be finite and > 0"
        )
    return t


def check_binary(x: np.ndarray, param: str) -> np.ndarray:
    """Values must be 0 or 1; returned as int8."""
    bad = (x != 0) & (x != 1)
    if bad.any():
        raise EstimatorInputError(f"{param} must hold only 0 and 1 ({_describe(x, bad)})")
    return x.astype(np.int8)


def check_events(e: np.ndarray, param: str = "event") -> np.ndarray:
    """Event indicator in {0, 1} with at least one event."""
    e = check_binary(e, param)
    if not e.any():
        raise EstimatorInputError(f"{param} has no events (all 0); a Cox fit needs at least one")
    return e


def check_treatment(a: np.ndarray, param: str = "treatment") -> np.ndarray:
    """Treatment in {0, 1} with both arms present."""
    a = check_binary(a, param)
    n1 = int(a.sum())
    if n1 == 0 or n1 == a.size:
        arm = "treated (1)" if n1 else "control (0)"
        raise EstimatorInputError(
            f"{param} has a single arm: every patient is {arm}; both arms are required"
        )
    return a


def check_weights(w: np.ndarray, param: str = "weights") -> np.ndarray:
    """Weights must be finite and strictly positive."""
    bad = ~np.isfinite(w) | (w <= 0)
    if bad.any():
        raise EstimatorInputError(
            f"{param} has non-positive or non-finite weights ({_describe(w, bad)}); "
            "weights must be finite and > 0"
        )
    return w


def check_probability(p: float, param: str, *, open_interval: bool = False) -> float:
    """A scalar probability in [0, 1] (or (0, 1))."""
    ok = (0.0 < p < 1.0) if open_interval else (0.0 <= p <= 1.0)
    if not (isinstance(p, int | float) and np.isfinite(p) and ok):
        allowed = "(0, 1)" if open_interval else "[0, 1]"
        raise EstimatorInputError(f"{param}={p!r} is not allowed; it must be in {allowed}")
    return float(p)
