"""Every input check of the estimators, in one place (fail fast, name the parameter).

Public functions validate their inputs once, at the boundary, with these checks; the
private array-level functions below them assume clean input.  Each check raises
:class:`EstimatorInputError` naming the parameter, the offending value and what is
allowed.

Data may be a pandas DataFrame or a mapping of column name to a 1-d numpy array (numeric
or boolean) or a :class:`Coded` categorical column: the simulation study's fast path
passes its arrays without building a DataFrame.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._column_kernels import _column_ranges
from .exceptions import EstimatorInputError

TIES = ("efron", "breslow")
WEIGHT_ESTIMANDS = ("ATE", "ATT", "ATC", "ATO", "ATM")
VARIANCES = ("robust", "mestimation", "naive", "bootstrap")
ORDERS = ("random", "largest", "smallest", "data")
PS_METHODS = ("ml", "firth")
MATCH_VARIANCES = ("cluster", "austin-cafri", "bootstrap")
BOOT_CIS = ("normal", "percentile")


@dataclass(frozen=True)
class Coded:
    """A categorical column as integer codes into ``levels``.

    Attributes
    ----------
    codes : ndarray of int, shape (n,)
        Index of each row's level; -1 marks a missing value.
    levels : tuple of str
        Level names in their natural order (the first present level is the reference).
    """

    codes: np.ndarray
    levels: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.codes.shape[0])


Data = pd.DataFrame | Mapping[str, Any]
"""A DataFrame, or a mapping of column name to a 1-d array or a :class:`Coded` column."""


def _describe(values: np.ndarray, bad: np.ndarray) -> str:
    i = int(np.flatnonzero(bad)[0])
    value = values[i].item() if hasattr(values[i], "item") else values[i]
    return f"{int(bad.sum())} bad value(s), first at row {i}: {value!r}"


def n_rows(df: Data) -> int:
    """Rows of a DataFrame or of a column mapping (length of its first column)."""
    if isinstance(df, pd.DataFrame):
        return len(df)
    for v in df.values():
        return len(v)
    return 0


def check_frame(df: object, **columns: str | Sequence[str] | None) -> None:
    """Check ``df`` is non-empty data holding every named column, each name once.

    Keyword names are the parameter names (``time="pfs_months"``) so errors say
    which argument pointed at a missing column.
    """
    if isinstance(df, pd.DataFrame):
        names = df.columns
        dup = names[names.duplicated()].unique()
        if len(dup):
            raise EstimatorInputError(
                f"df has duplicate column names {list(dup)}; every column name must be unique"
            )
    elif isinstance(df, Mapping):
        names = df.keys()
        lengths = {len(v) for v in df.values()}
        if len(lengths) > 1:
            raise EstimatorInputError(f"df columns have different lengths {sorted(lengths)}")
    else:
        raise EstimatorInputError(
            f"df must be a pandas DataFrame (or a mapping of column name to array), got "
            f"{type(df).__name__}"
        )
    if n_rows(df) == 0:
        raise EstimatorInputError("df has no rows; at least one patient per arm is required")
    check_columns(df, **columns)


def check_columns(df: Data, **columns: str | Sequence[str] | None) -> None:
    """Every named column is in ``df`` (checked by :func:`check_frame` already)."""
    names = df.columns if isinstance(df, pd.DataFrame) else df.keys()
    for param, cols in columns.items():
        if cols is None:
            continue
        for c in [cols] if isinstance(cols, str) else cols:
            if c not in names:
                raise EstimatorInputError(
                    f"{param}={c!r} is not a column of df; columns are {list(names)}"
                )


def check_covariates(covariates: object) -> tuple[str, ...]:
    """A sequence of distinct column names (a bare string is a mistake)."""
    # a list or tuple first: the abstract-class check below costs microseconds, and a
    # study asks for the covariates a dozen times per replicate
    if type(covariates) not in (list, tuple) and (
        isinstance(covariates, str) or not isinstance(covariates, Sequence | pd.Index)
    ):
        raise EstimatorInputError(
            f"covariates={covariates!r} must be a list of column names, not "
            f"{type(covariates).__name__}"
        )
    covs = tuple(covariates)
    try:
        distinct = len(set(covs)) == len(covs)
    except TypeError:  # an unhashable entry (a list in the list) is no column name
        bad = next(c for c in covs if not isinstance(c, Hashable))
        raise EstimatorInputError(
            f"covariates={list(covs)} must be column names; {bad!r} is not one"
        ) from None
    if not distinct:
        dup = sorted({c for c in covs if covs.count(c) > 1})
        raise EstimatorInputError(f"covariates={list(covs)} names {dup} more than once")
    return covs


def numeric_values(s: pd.Series) -> np.ndarray:
    """A numeric or boolean Series as float64, with missing values (NaN, pd.NA) as NaN."""
    if isinstance(s.dtype, np.dtype):  # numpy-backed: NaN survives the cast, and it is fast
        return s.to_numpy(dtype=np.float64)
    return s.to_numpy(dtype=np.float64, na_value=np.nan)  # nullable dtypes hold pd.NA


def is_categorical(s: object) -> bool:
    """True for a :class:`Coded` column or an object / string / categorical Series."""
    if isinstance(s, Coded):
        return True
    if isinstance(s, pd.Series):
        return bool(
            isinstance(s.dtype, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(s)
            or pd.api.types.is_string_dtype(s)
        )
    return np.asarray(s).dtype.kind in "OUSV"


def raw_float_column(df: Data, col: str, param: str) -> np.ndarray:
    """A numeric or boolean column as float64 (NaN kept); non-numeric is an error."""
    s = df[col]
    if isinstance(s, pd.Series):
        if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
            raise EstimatorInputError(f"{param}={col!r} must be numeric, got dtype {s.dtype}")
        return numeric_values(s)
    a = s if isinstance(s, np.ndarray) else np.asarray(s)
    if isinstance(s, Coded) or a.dtype.kind not in "biuf":
        kind = "categorical" if isinstance(s, Coded) else f"dtype {a.dtype}"
        raise EstimatorInputError(f"{param}={col!r} must be numeric, got {kind}")
    if a.ndim != 1:
        raise EstimatorInputError(f"{param}={col!r} must be 1-dimensional, got shape {a.shape}")
    return a.astype(np.float64, copy=False)


def float_column(df: Data, col: str, param: str) -> np.ndarray:
    """Column as a finite float64 array (NaN / inf / non-numeric rejected)."""
    x = raw_float_column(df, col, param)
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


def time_column(df: Data, col: str, param: str = "time") -> np.ndarray:
    """A column of finite times > 0 (months) as float64: :func:`float_column` and
    :func:`check_times` in two reductions when the values are fine (NaN fails both),
    their errors when not."""
    t = raw_float_column(df, col, param)
    if t.size and t.min() > 0.0 and t.max() < np.inf:
        return t
    return check_times(float_column(df, col, param), param)


def binary_column(df: Data, col: str, param: str) -> np.ndarray:
    """A 0/1 column as int8 (a new array): :func:`float_column` then :func:`check_binary`,
    without the float copy for an integer or boolean array whose values are fine."""
    s = df[col]
    if isinstance(s, np.ndarray) and s.ndim == 1 and s.size and s.dtype.kind in "biu":
        if s.dtype.kind == "b" or (s.min() >= 0 and s.max() <= 1):
            return s.astype(np.int8)
    return check_binary(float_column(df, col, param), param)


def check_binary(x: np.ndarray, param: str) -> np.ndarray:
    """Values must be 0 or 1; returned as int8."""
    bad = (x != 0) & (x != 1)
    if bad.any():
        raise EstimatorInputError(f"{param} must hold only 0 and 1 ({_describe(x, bad)})")
    return x.astype(np.int8)


def check_events(e: np.ndarray, param: str = "event", *, binary: bool = False) -> np.ndarray:
    """Event indicator in {0, 1} with at least one event (``binary``: ``e`` is already a
    checked int8 0/1 array, from :func:`binary_column`)."""
    if not binary:
        e = check_binary(e, param)
    if not e.any():
        raise EstimatorInputError(f"{param} has no events (all 0); a Cox fit needs at least one")
    return e


def check_treatment(a: np.ndarray, param: str = "treatment", *, binary: bool = False) -> np.ndarray:
    """Treatment in {0, 1} with both arms present; returned as int8 (``binary``: ``a`` is
    already a checked int8 0/1 array, from :func:`binary_column`)."""
    if not binary:
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


def float_array(x: object, param: str, ndim: int) -> np.ndarray:
    """C-contiguous float64 array (one kernel specialisation whatever the input layout)."""
    try:
        a = np.ascontiguousarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise EstimatorInputError(f"{param} must be numeric: {err}") from None
    if a.ndim != ndim:
        raise EstimatorInputError(f"{param} must be {ndim}-dimensional, got shape {a.shape}")
    return a


def check_length(a: np.ndarray, param: str, n: int, of: str = "time") -> None:
    """``a`` must have ``n`` rows (as many as ``of``)."""
    if a.shape[0] != n:
        raise EstimatorInputError(
            f"{param} has {a.shape[0]} rows but {of} has {n}; lengths must match"
        )


def int_codes(x: object, param: str, n: int) -> np.ndarray:
    """Integer group codes (any integers) as int64, shape (n,)."""
    a = np.asarray(x)
    if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise EstimatorInputError(
            f"{param} must be a 1-d array of integer codes, got dtype {a.dtype}, shape {a.shape}"
        )
    check_length(a, param, n)
    return np.ascontiguousarray(a, dtype=np.int64)


def check_design_columns(
    X: np.ndarray,
    names: Sequence[str],
    ranges: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> None:
    """Design columns must be finite and not constant (a constant has no coefficient).

    ``ranges``: the columns' ``(min, max, all finite)`` when already known
    (``Design.ranges``).
    """
    if X.shape[0] == 0 or X.shape[1] == 0:
        return
    lo, hi, finite = _column_ranges(np.asarray(X, dtype=np.float64)) if ranges is None else ranges
    if not finite.all():
        j = int(np.flatnonzero(~finite)[0])
        raise EstimatorInputError(
            f"covariate {names[j]!r} contains NaN or inf; all values must be finite"
        )
    const = np.flatnonzero(lo == hi)
    if len(const):
        j = int(const[0])
        raise EstimatorInputError(
            f"covariate {names[j]!r} is constant (every value {float(X[0, j])!r}); covariate "
            f"column(s) {[names[i] for i in const]} are constant: drop them, a constant has "
            "no coefficient in a Cox model"
        )


def check_ties(ties: object) -> str:
    """``ties`` must be one of :data:`TIES`."""
    if ties not in TIES:
        raise EstimatorInputError(f"ties={ties!r} is not allowed; use one of {TIES}")
    return ties  # type: ignore[return-value]


def check_iteration(tol: object, max_iter: object) -> None:
    """``tol`` a number in (0, 1) and ``max_iter`` an integer >= 1."""
    if not (isinstance(tol, numbers.Real) and not isinstance(tol, bool) and 0.0 < tol < 1.0):
        raise EstimatorInputError(f"tol={tol!r} is not allowed; it must be a number in (0, 1)")
    if not (
        isinstance(max_iter, numbers.Integral) and not isinstance(max_iter, bool) and max_iter >= 1
    ):
        raise EstimatorInputError(
            f"max_iter={max_iter!r} is not allowed; it must be an integer >= 1"
        )


def check_truncate(truncate: Sequence[float] | None) -> tuple[float, float] | None:
    """Validate ``truncate=(low, high)`` percentiles: 0 <= low < high <= 100."""
    if truncate is None:
        return None
    try:
        low, high = (float(v) for v in truncate)
    except (TypeError, ValueError):
        raise EstimatorInputError(
            f"truncate={truncate!r} is not allowed; give two percentiles (low, high), "
            "e.g. (1, 99), or None"
        ) from None
    if not (0.0 <= low < high <= 100.0):
        raise EstimatorInputError(
            f"truncate={truncate!r} is not allowed; percentiles must satisfy 0 <= low < high <= 100"
        )
    return low, high


def check_estimand(estimand: str) -> str:
    """A weighting estimand: one of :data:`WEIGHT_ESTIMANDS`."""
    if estimand not in WEIGHT_ESTIMANDS:
        raise EstimatorInputError(
            f"estimand={estimand!r} is not allowed; use one of {WEIGHT_ESTIMANDS}"
        )
    return estimand


def check_trim(trim: object) -> tuple[float, float] | None:
    """Validate ``trim``: None, ``alpha`` in (0, 0.5), or ``(low, high)`` with
    ``0 <= low < high <= 1``; returned as the kept interval ``(low, high)``."""
    if trim is None:
        return None
    if isinstance(trim, numbers.Real) and not isinstance(trim, bool):
        if not (np.isfinite(trim) and 0.0 < trim < 0.5):
            raise EstimatorInputError(
                f"trim={trim!r} is not allowed; a single value is alpha in (0, 0.5) (patients "
                "with propensity score outside [alpha, 1 - alpha] are dropped), e.g. 0.1"
            )
        return float(trim), 1.0 - float(trim)
    try:
        low, high = (float(v) for v in trim)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise EstimatorInputError(
            f"trim={trim!r} is not allowed; give alpha in (0, 0.5), two propensity-score "
            "bounds (low, high), e.g. (0.05, 0.95), or None"
        ) from None
    if not (0.0 <= low < high <= 1.0):
        raise EstimatorInputError(
            f"trim={trim!r} is not allowed; bounds must satisfy 0 <= low < high <= 1"
        )
    return low, high


def check_variance(variance: object) -> str:
    """A variance of :func:`estimators.siptw`: one of :data:`VARIANCES`."""
    if variance not in VARIANCES:
        raise EstimatorInputError(f"variance={variance!r} is not allowed; use one of {VARIANCES}")
    return variance  # type: ignore[return-value]


def check_ps(ps: np.ndarray, n: int) -> np.ndarray:
    """Propensity scores: float array of length ``n`` strictly inside (0, 1)."""
    ps = np.asarray(ps, dtype=np.float64)
    if ps.shape != (n,):
        raise EstimatorInputError(f"ps has shape {ps.shape}; expected ({n},), one per patient")
    bad = ~((ps > 0.0) & (ps < 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise EstimatorInputError(
            f"ps has {int(bad.sum())} value(s) outside (0, 1), first at row {i}: {float(ps[i])!r}; "
            "propensity scores must be strictly between 0 and 1"
        )
    return ps


def check_logit(logit: object, n: int) -> np.ndarray:
    """Logit propensity scores: finite, one per patient."""
    logit = np.asarray(logit, dtype=np.float64)
    if logit.shape != (n,) or not np.isfinite(logit).all():
        raise EstimatorInputError(
            f"logit must be finite with one value per patient; got shape {logit.shape} "
            f"for {n} patients"
        )
    return logit


def check_caliper(caliper: float | None) -> float:
    """Caliper multiplier: a finite number > 0, or None (returned as ``inf``)."""
    if caliper is None:
        return np.inf
    if isinstance(caliper, bool) or not (
        isinstance(caliper, numbers.Real) and np.isfinite(caliper) and caliper > 0
    ):
        raise EstimatorInputError(
            f"caliper={caliper!r} is not allowed; use a finite number > 0 (a multiple of "
            "the SD of the logit propensity score) or None for no caliper"
        )
    return float(caliper)


def check_order(order: str) -> str:
    """Matching order must be one of :data:`ORDERS`."""
    if order not in ORDERS:
        raise EstimatorInputError(f"order={order!r} is not allowed; use one of {ORDERS}")
    return order


def check_random_state(random_state: int | np.random.Generator) -> np.random.Generator:
    """An int seed >= 0 or a numpy Generator (global random state is never used)."""
    seed = check_seed(random_state)
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def check_seed(random_state: int | np.random.Generator) -> int | np.random.Generator:
    """:func:`check_random_state` without making the Generator (an estimator that may
    not draw validates with this and makes it when it does)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if (
        isinstance(random_state, int | np.integer)
        and not isinstance(random_state, bool)
        and (random_state >= 0)
    ):
        return int(random_state)
    raise EstimatorInputError(
        f"random_state={random_state!r} is not allowed; use an int >= 0 or a numpy.random.Generator"
    )


def check_ps_method(method: object) -> str:
    """A propensity-model fit: one of :data:`PS_METHODS`."""
    if method not in PS_METHODS:
        raise EstimatorInputError(f"ps_method={method!r} is not allowed; use one of {PS_METHODS}")
    return method  # type: ignore[return-value]


def check_pool_rare(pool_rare: object) -> int | None:
    """``pool_rare`` is None or an integer >= 1."""
    if pool_rare is None:
        return None
    if isinstance(pool_rare, bool) or not isinstance(pool_rare, int | np.integer) or pool_rare < 1:
        raise EstimatorInputError(
            f"pool_rare={pool_rare!r} is not allowed; use None or an integer >= 1 (the "
            "minimum patients per arm a categorical level needs to keep its own indicator)"
        )
    return int(pool_rare)


def check_ratio(ratio: object) -> int:
    """Controls per treated patient in matching: an integer >= 1."""
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Integral) or ratio < 1:
        raise EstimatorInputError(
            f"ratio={ratio!r} is not allowed; use an integer >= 1 (controls per treated patient)"
        )
    return int(ratio)


def check_flag(value: object, name: str) -> bool:
    """A boolean option (``True`` / ``False``; numpy booleans accepted)."""
    if not isinstance(value, bool | np.bool_):
        raise EstimatorInputError(f"{name}={value!r} is not allowed; use True or False")
    return bool(value)


def check_replace(replace: object) -> bool:
    """Matching with replacement: True or False."""
    return check_flag(replace, "replace")


def check_match_variance(variance: object) -> str:
    """Variance of the matched Cox fit: one of :data:`MATCH_VARIANCES`."""
    if variance not in MATCH_VARIANCES:
        raise EstimatorInputError(
            f"variance={variance!r} is not allowed; use one of {MATCH_VARIANCES}"
        )
    return variance  # type: ignore[return-value]


def check_n_boot(n_boot: object) -> int:
    """Bootstrap resamples: an integer >= 2."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral) or n_boot < 2:
        raise EstimatorInputError(
            f"n_boot={n_boot!r} is not allowed; use an integer >= 2 (bootstrap resamples)"
        )
    return int(n_boot)


def check_boot_ci(boot_ci: object) -> str:
    """Bootstrap confidence interval: one of :data:`BOOT_CIS`."""
    if boot_ci not in BOOT_CIS:
        raise EstimatorInputError(f"boot_ci={boot_ci!r} is not allowed; use one of {BOOT_CIS}")
    return boot_ci  # type: ignore[return-value]
