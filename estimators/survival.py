"""Weighted Kaplan-Meier curves, medians with confidence intervals, and RMST.

* Survival: ``S(t) = prod_{t_j <= t} (1 - d_j / Y_j)`` with ``d_j`` and ``Y_j`` the
  (weighted) events and number at risk at each distinct time ``t_j`` (months).
* Variance of ``log S``: Greenwood's sum ``sum d_j / (Y_j (Y_j - d_j))`` on the weighted
  counts (a term with ``Y_j = d_j`` counts 0, as in lifelines).  With non-integer
  (e.g. IPT) weights this treats them as frequency weights: point estimates are
  right, intervals approximate.
* Pointwise confidence band: log-log ("exponential Greenwood") transform,
  ``S ** exp(+/- z sqrt(var_log) / log S)`` (lifelines' choice; R ``survfit``
  ``conf.type="log-log"``).  The band is 1 where ``S = 1`` and 0 where ``S = 0``.
* Median: first time with ``S(t) <= 0.5`` (``inf`` if never reached; lifelines'
  definition, R instead averages over an interval where ``S`` equals 0.5 exactly).
  Its confidence interval (Brookmeyer & Crowley 1982) is the first times the lower
  and the upper band reach 0.5.
* RMST up to ``tau``: the area under the step function ``S`` on ``[0, tau]``, with
  ``Var = sum_{t_j <= tau} A_j^2 d_j / (Y_j (Y_j - d_j))``, ``A_j = int_{t_j}^{tau} S``
  (Klein & Moeschberger 2003, section 4.5; R ``print.survfit`` ``rmean``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from .exceptions import EstimatorInputError
from .validation import (
    check_binary,
    check_frame,
    check_probability,
    check_times,
    check_treatment,
    check_weights,
    float_column,
)


@dataclass(frozen=True)
class KaplanMeier:
    """A (weighted) Kaplan-Meier curve.

    Attributes
    ----------
    time : ndarray, shape (k,)
        Distinct observed times (events and censorings), ascending, months.
    survival : ndarray, shape (k,)
        ``S(t)`` just after each time.
    at_risk, events : ndarray, shape (k,)
        Weighted number at risk just before, and weighted events at, each time.
    var_log : ndarray, shape (k,)
        Greenwood variance of ``log S(t)``.
    alpha : float
        Confidence intervals have level ``1 - alpha``.
    """

    time: np.ndarray
    survival: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    var_log: np.ndarray
    alpha: float = 0.05

    @property
    def std_err(self) -> np.ndarray:
        """Greenwood standard error of ``S(t)``, shape (k,)."""
        return self.survival * np.sqrt(self.var_log)

    def confidence_band(self) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise log-log confidence limits (lower, upper), each shape (k,)."""
        z = norm.ppf(1.0 - self.alpha / 2.0)
        s = self.survival
        inside = (s > 0.0) & (s < 1.0)
        log_s = np.log(np.where(inside, s, 0.5))
        power = np.exp(z * np.sqrt(self.var_log) / np.abs(log_s))  # >= 1
        lower = np.where(inside, s**power, s)
        upper = np.where(inside, s ** (1.0 / power), s)
        return lower, upper

    def survival_at(self, t: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """``S(t)`` (right-continuous step function; 1 before the first time)."""
        t = np.asarray(t, dtype=np.float64)
        idx = np.searchsorted(self.time, t, side="right") - 1
        return np.where(idx >= 0, self.survival[np.maximum(idx, 0)], 1.0)

    def _first_at_or_below(self, curve: np.ndarray, q: float) -> float:
        hit = np.flatnonzero(curve <= q)
        return float(self.time[hit[0]]) if hit.size else np.inf

    def median(self) -> float:
        """Median survival time (``inf`` if ``S`` never reaches 0.5)."""
        return self._first_at_or_below(self.survival, 0.5)

    def median_ci(self) -> tuple[float, float]:
        """Brookmeyer-Crowley confidence interval of the median (log-log band)."""
        lower, upper = self.confidence_band()
        return self._first_at_or_below(lower, 0.5), self._first_at_or_below(upper, 0.5)

    def rmst(self, tau: float) -> tuple[float, float]:
        """Restricted mean survival time up to ``tau`` months and its standard error."""
        if not (isinstance(tau, int | float) and 0.0 < tau <= self.time[-1]):
            raise EstimatorInputError(
                f"tau={tau!r} is not allowed; it must be in (0, {self.time[-1]:g}], the "
                "last follow-up time (the curve is undefined beyond it)"
            )
        keep = self.time <= tau
        t = np.r_[0.0, self.time[keep], tau]
        s = np.r_[1.0, self.survival[keep]]
        pieces = s * np.diff(t)  # area of each step
        area_after = np.cumsum(pieces[::-1])[::-1][1:]  # A_j for each kept time
        d, y = self.events[keep], self.at_risk[keep]
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(y > d, d / (y * (y - d)), 0.0)
        return float(pieces.sum()), float(np.sqrt(np.sum(area_after**2 * g)))


def kaplan_meier(
    time: np.ndarray,
    event: np.ndarray,
    weights: np.ndarray | None = None,
    alpha: float = 0.05,
) -> KaplanMeier:
    """Weighted Kaplan-Meier estimate (array path).

    Parameters
    ----------
    time : ndarray, shape (n,)
        Follow-up times, months, finite and > 0.
    event : ndarray, shape (n,)
        1 = event, 0 = censored.
    weights : ndarray, shape (n,), optional
        Case weights, finite and > 0 (default 1).
    alpha : float
        1 - confidence level, in (0, 1).

    Returns
    -------
    KaplanMeier
    """
    t = check_times(np.asarray(time, dtype=np.float64), "time")
    e = check_binary(np.asarray(event, dtype=np.float64), "event")
    if t.ndim != 1 or e.shape != t.shape:
        raise EstimatorInputError(f"time {t.shape} and event {e.shape} must be 1-d, same length")
    if t.size == 0:
        raise EstimatorInputError("time is empty; at least one patient is required")
    if weights is None:
        w = np.ones(t.size)
    else:
        w = check_weights(np.asarray(weights, dtype=np.float64), "weights")
        if w.shape != t.shape:
            raise EstimatorInputError(f"weights has shape {w.shape}; expected {t.shape}")
    return _kaplan_meier(t, e, w, check_probability(alpha, "alpha", open_interval=True))


def _kaplan_meier(t: np.ndarray, e: np.ndarray, w: np.ndarray, alpha: float) -> KaplanMeier:
    """:func:`kaplan_meier` on validated arrays (times > 0, events 0/1, weights > 0)."""
    times, idx = np.unique(t, return_inverse=True)
    removed = np.bincount(idx, weights=w, minlength=times.size)
    d = np.bincount(idx, weights=w * e, minlength=times.size)
    y = np.cumsum(removed[::-1])[::-1]
    surv = np.cumprod(1.0 - d / y)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(y > d, d / (y * (y - d)), 0.0)
    return KaplanMeier(times, surv, y, d, np.cumsum(g), alpha)


def kaplan_meier_by_arm(
    df: pd.DataFrame,
    time: str,
    event: str,
    treatment: str,
    weights: str | np.ndarray | None = None,
    alpha: float = 0.05,
) -> dict[int, KaplanMeier]:
    """Kaplan-Meier curve of each arm: ``{0: control, 1: treated}``.

    ``weights`` is a column name of ``df`` or an array with one weight per row (for
    example the sIPTW weights, giving the adjusted curves).
    """
    check_frame(df, time=time, event=event, treatment=treatment)
    t = check_times(float_column(df, time, "time"), "time")
    e = check_binary(float_column(df, event, "event"), "event")
    a = check_treatment(float_column(df, treatment, "treatment"), "treatment")
    if isinstance(weights, str):
        check_frame(df, weights=weights)
        w = check_weights(float_column(df, weights, "weights"), "weights")
    elif weights is None:
        w = np.ones(a.size)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != a.shape:
            raise EstimatorInputError(f"weights has shape {w.shape}; expected ({a.size},)")
        check_weights(w, "weights")
    alpha = check_probability(alpha, "alpha", open_interval=True)
    return {arm: _kaplan_meier(t[a == arm], e[a == arm], w[a == arm], alpha) for arm in (0, 1)}


def survival_summary(
    df: pd.DataFrame,
    time: str,
    event: str,
    treatment: str,
    weights: str | np.ndarray | None = None,
    tau: float | None = None,
    at: Sequence[float] = (),
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Per-arm medians (with CI), survival at given times and RMST up to ``tau``.

    Returns
    -------
    DataFrame
        Index ``arm`` (0 = control, 1 = treated); columns ``n`` and ``events`` (sums
        of weights: head counts when unweighted), ``median``, ``median_ci_low``,
        ``median_ci_high``, ``surv_<t>`` for each ``t`` in ``at`` and, with ``tau``,
        ``rmst`` and ``rmst_se``.
    """
    for t in at:
        if not (isinstance(t, int | float) and np.isfinite(t) and t >= 0):
            raise EstimatorInputError(f"at={t!r} is not allowed; times must be finite and >= 0")
    curves = kaplan_meier_by_arm(df, time, event, treatment, weights, alpha)
    rows = []
    for arm, km in curves.items():
        lo, hi = km.median_ci()
        row = {
            "arm": arm,
            "n": km.at_risk[0],
            "events": km.events.sum(),
            "median": km.median(),
            "median_ci_low": lo,
            "median_ci_high": hi,
        }
        row |= {f"surv_{t:g}": float(km.survival_at(t)) for t in at}
        if tau is not None:
            row["rmst"], row["rmst_se"] = km.rmst(tau)
        rows.append(row)
    return pd.DataFrame(rows).set_index("arm")


def breslow_cumhaz(
    time: np.ndarray, event: np.ndarray, risk: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Breslow's cumulative baseline hazard at the distinct event times, from the
    relative risks ``risk`` (n,) = exp(linear predictor) of a fitted Cox model.

    Returns (times (k,), distinct event times ascending, months; cumulative hazard (k,)
    there).  Used for the outcome models of g-computation / AIPTW
    (:func:`estimators.gcomp.breslow_baseline`) and for IPCW's censoring model.
    """
    order = np.argsort(time, kind="stable")
    ts = time[order]
    at_risk = np.cumsum(risk[order][::-1])[::-1]
    u, d = np.unique(time[event == 1], return_counts=True)
    return u, np.cumsum(d / at_risk[np.searchsorted(ts, u, side="left")])
