"""Validated inputs computed once per data set and shared by every estimator fitted to it.

A simulation study fits four estimators to two outcomes of one cohort: the treatment
vector, the covariate design matrix, the propensity-score fit and each outcome's time
order are the same for all of them.  :class:`SharedInputs` validates and computes each
once, on first request, and hands the same object to every estimator that asks
(``siptw(..., shared=s)``); an estimator registered with a ``shared`` (or
``propensity`` / ``design`` / ``outcome``) parameter receives it from the study runner
(see :mod:`estimators.registry`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cox import _sort_order
from .design_matrix import Design, design_matrix
from .exceptions import EstimatorInputError
from .propensity import PropensityModel, _fit_propensity
from .validation import (
    Data,
    binary_column,
    check_columns,
    check_covariates,
    check_events,
    check_frame,
    check_pool_rare,
    check_ps_method,
    check_treatment,
    time_column,
)


@dataclass(frozen=True, eq=False)
class Outcome:
    """Validated analysis arrays of one survival outcome.

    Attributes
    ----------
    time : ndarray, shape (n,)
        Follow-up in months, finite and > 0 (float64).
    event : ndarray, shape (n,)
        1 = event, 0 = censored (int8), at least one event.
    treatment : ndarray, shape (n,)
        0/1 treatment (int8), both arms present.
    order : ndarray, shape (n,)
        Row order by time descending (the Cox kernels' layout), int64.
    """

    time: np.ndarray
    event: np.ndarray
    treatment: np.ndarray
    order: np.ndarray


def _treatment(df: Data, treatment: str) -> np.ndarray:
    return check_treatment(binary_column(df, treatment, "treatment"), "treatment", binary=True)


def outcome_arrays(
    df: Data,
    time: str,
    event: str,
    treatment: str,
    a: np.ndarray | None = None,
    frame_checked: bool = False,
) -> Outcome:
    """Validate the time, event and treatment columns of ``df`` once.

    ``a`` is the already validated treatment (int8), if known; ``frame_checked``: ``df``
    itself was checked (:func:`check_frame`: data, equal column lengths), so only the
    named columns' presence is.
    """
    if frame_checked:
        check_columns(df, time=time, event=event, treatment=treatment)
    else:
        check_frame(df, time=time, event=event, treatment=treatment)
    t = time_column(df, time, "time")
    e = check_events(binary_column(df, event, "event"), "event", binary=True)
    if a is None:
        a = _treatment(df, treatment)
    return Outcome(t, e, a, _sort_order(t, None))


class SharedInputs:
    """Lazily computed, cached inputs of every estimator fitted to one data set.

    Parameters
    ----------
    df : DataFrame or mapping of column name to array
    treatment : str
        The 0/1 treatment column.
    covariates : sequence of str, optional
        Every covariate any estimator will ask for: one design matrix is built from
        them and each request takes its columns (:meth:`Design.select`).

    Every method validates on first use and raises :class:`EstimatorInputError` as the
    public estimators do; a failure is remembered and raised again on the next request.
    """

    def __init__(self, df: Data, treatment: str, covariates: Sequence[str] = ()) -> None:
        check_frame(df, treatment=treatment)
        self.df = df
        self.treatment_column = treatment
        self.covariates = tuple(dict.fromkeys(covariates))
        self._cache: dict[tuple, Any] = {}

    def _get(self, key: tuple, make):
        hit = self._cache.get(key)
        if hit is None:
            try:
                hit = (True, make())
            except ValueError as exc:  # a user error: every estimator asking reports it
                hit = (False, exc)
            self._cache[key] = hit
        ok, value = hit
        if not ok:
            raise value
        return value

    def _memo(self, key: tuple, make):
        """``make()`` once per ``key`` (hashable): work an estimator repeats for every
        outcome of these data (its weights, its matching), deterministic in ``key``."""
        return self._get(("memo", *key), make)

    def treatment(self) -> np.ndarray:
        """The validated 0/1 treatment (int8)."""
        return self._get(("treatment",), lambda: _treatment(self.df, self.treatment_column))

    def outcome(self, time: str, event: str) -> Outcome:
        """Validated arrays and time order of one outcome."""
        return self._get(
            ("outcome", time, event),
            lambda: outcome_arrays(
                self.df, time, event, self.treatment_column, self.treatment(), frame_checked=True
            ),
        )

    def design(self, covariates: Sequence[str]) -> Design:
        """The design matrix of ``covariates`` (columns of the shared one when possible)."""
        covs = check_covariates(covariates)
        if self.covariates and set(covs) <= set(self.covariates):
            try:
                full = self._get(("design", self.covariates), lambda: self._full_design())
            except ValueError:
                pass  # build this request alone below, so its own error is reported
            else:
                return full.select(covs)
        return self._get(("design", covs), lambda: design_matrix(self.df, covs))

    def _full_design(self) -> Design:
        return design_matrix(self.df, self.covariates)

    def propensity(
        self, covariates: Sequence[str], method: str = "ml", pool_rare: int | None = None
    ) -> PropensityModel:
        """The propensity model of ``covariates`` (fitted once per method / pooling)."""
        covs = check_covariates(covariates)
        check_ps_method(method)
        check_pool_rare(pool_rare)
        return self._get(
            ("propensity", covs, method, pool_rare),
            lambda: _fit_propensity(self.design(covs), self.treatment(), covs, method, pool_rare),
        )


def resolve_shared(df: Data | None, treatment: str, shared: SharedInputs | None) -> SharedInputs:
    """The :class:`SharedInputs` an estimator works from: ``shared`` when given (checked to
    be one, built for ``treatment``), else built from ``df``."""
    if shared is None:
        if df is None:
            raise EstimatorInputError("df is None; pass the data (or shared=SharedInputs)")
        shared = SharedInputs(df, treatment)
    elif not isinstance(shared, SharedInputs):
        raise EstimatorInputError(f"shared must be a SharedInputs, got {type(shared).__name__}")
    elif shared.treatment_column != treatment:
        raise EstimatorInputError(
            f"shared was built for treatment={shared.treatment_column!r}, not {treatment!r}"
        )
    return shared
