"""Check that a user's estimator function keeps the contract of the registry.

:func:`check_estimator` runs the function on a small synthetic cohort (built here with
numpy: the estimators never import the simulator) and reports every broken rule at
once: it must return an :class:`EffectEstimate`; a finite estimate with ``se > 0``
(or a failed record with ``error`` set); its estimand in the vocabulary (and the
declared one, when given); the same result twice on the same input; the input frame
left unmodified; and the keyword options a study would pass accepted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .estimands import ESTIMANDS
from .exceptions import EstimatorCheckError, EstimatorInputError
from .result import EffectEstimate

COVARIATES = ("age", "ecog", "visceral")


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_estimator` found.

    Attributes
    ----------
    name : str
        The function's qualified name.
    failures : tuple of str
        Every broken rule, one sentence each (empty: the function passed).
    result : EffectEstimate or None
        The function's result on the check cohort (None when it raised or returned
        something else).
    """

    name: str
    failures: tuple[str, ...]
    result: EffectEstimate | None

    @property
    def passed(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        if self.passed:
            return f"{self.name}: passed every check"
        return f"{self.name}: {len(self.failures)} problem(s):\n" + "\n".join(
            f"  - {f}" for f in self.failures
        )


def check_cohort(n: int = 300, seed: int = 1) -> pd.DataFrame:
    """A small confounded survival cohort: columns time (months), event, treated and
    :data:`COVARIATES`; ``n`` rows, exponential outcomes with a treatment HR of 0.7."""
    rng = np.random.default_rng(seed)
    age = rng.normal(65.0, 10.0, n)
    ecog = rng.binomial(1, 0.4, n)
    visceral = rng.binomial(1, 0.5, n)
    lin = -0.03 * (age - 65.0) - 0.6 * ecog + 0.3 * visceral
    treated = rng.binomial(1, 1.0 / (1.0 + np.exp(-lin)))
    rate = 0.05 * np.exp(np.log(0.7) * treated + 0.02 * (age - 65.0) + 0.5 * ecog)
    t = rng.exponential(1.0 / rate)
    c = rng.uniform(6.0, 48.0, n)
    return pd.DataFrame(
        {
            "time": np.minimum(t, c),
            "event": (t <= c).astype(np.int64),
            "treated": treated.astype(np.int64),
            "age": age,
            "ecog": ecog,
            "visceral": visceral,
        }
    )


def check_estimator(
    func: Callable[..., Any],
    *,
    estimand: str | None = None,
    options: dict[str, Any] | None = None,
    raise_on_failure: bool = True,
) -> CheckReport:
    """Run ``func(df, "time", "event", "treated", covariates, **options)`` on
    :func:`check_cohort` and check the estimator contract (module docstring).

    Parameters
    ----------
    func : callable
        The estimator function.
    estimand : str, optional
        The estimand it declares (one of :data:`~estimators.estimands.ESTIMANDS`); the
        result's label must equal it.
    options : dict, optional
        Keyword options a study would pass (a variant's table).
    raise_on_failure : bool
        Raise :class:`EstimatorCheckError` listing every failure (default), or return
        the report either way.

    Returns
    -------
    CheckReport
    """
    if not callable(func):
        raise EstimatorInputError(f"func={func!r} is not callable")
    if estimand is not None and estimand not in ESTIMANDS:
        raise EstimatorInputError(f"estimand={estimand!r} is not allowed; use one of {ESTIMANDS}")
    if options is not None and not isinstance(options, dict):
        raise EstimatorInputError(f"options={options!r} is not allowed; give a dict")
    name = getattr(func, "__qualname__", repr(func))
    df = check_cohort()
    before = df.copy(deep=True)
    failures: list[str] = []
    first = _call(func, df, options or {}, failures)
    if first is not None:
        _check_values(first, estimand, failures)
        second = _call(func, df.copy(deep=True), options or {}, failures)
        if second is not None and not _same(first, second):
            failures.append("not deterministic: two calls on the same data gave different results")
    try:
        pd.testing.assert_frame_equal(df, before)
    except AssertionError:
        failures.append("modified its input DataFrame (work on a copy)")
    report = CheckReport(name, tuple(failures), first)
    if failures and raise_on_failure:
        raise EstimatorCheckError(str(report))
    return report


def _call(func, df, options, failures: list[str]) -> EffectEstimate | None:
    try:
        r = func(df, "time", "event", "treated", list(COVARIATES), **options)
    except TypeError as exc:
        failures.append(f"does not take the data arguments and options {list(options)}: {exc}")
        return None
    except Exception as exc:
        failures.append(f"raised {type(exc).__name__}: {exc}")
        return None
    if not isinstance(r, EffectEstimate):
        failures.append(f"returned {type(r).__name__}, not EffectEstimate")
        return None
    return r


def _check_values(r: EffectEstimate, estimand: str | None, failures: list[str]) -> None:
    if r.error:
        if not math.isnan(r.estimate):
            failures.append(f"a failed record (error={r.error!r}) must have a NaN estimate")
    elif not (math.isfinite(r.estimate) and math.isfinite(r.se) and r.se > 0):
        failures.append(
            f"estimate={r.estimate!r}, se={r.se!r}: give a finite estimate with se > 0, or "
            "EffectEstimate.failed(...) with the error"
        )
    if estimand is not None and r.estimand != estimand:
        failures.append(f"estimand label {r.estimand!r} differs from the declared {estimand!r}")
    if not (isinstance(r.n, int) and r.n > 0):
        failures.append(f"n={r.n!r}: give the number of patients used (> 0)")


def _same(a: EffectEstimate, b: EffectEstimate) -> bool:
    da, db = a.to_dict(), b.to_dict()
    for k, v in da.items():
        w = db[k]
        if isinstance(v, float) and isinstance(w, float) and math.isnan(v) and math.isnan(w):
            continue
        if v != w:
            return False
    return True
