"""Marginal hazard ratio of two samples: Cox partial likelihood with treatment only.

The super-population estimands (and the calibration that targets them) need the Cox
coefficient of a binary treatment on millions of rows, dozens of times.  With one
binary covariate the Breslow score depends only on the numbers at risk in each arm at
each event time, so after sorting each arm once the fit is a handful of vectorised
Newton steps.  (The general Cox engine lives in :mod:`estimators`; tests check that the
two agree.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RiskSets:
    """Events of both arms with the numbers at risk in each arm just before them."""

    arm: np.ndarray  # (d,) 1 for treated events
    n0: np.ndarray  # (d,) controls at risk
    n1: np.ndarray  # (d,) treated at risk


def risk_sets(y0: np.ndarray, d0: np.ndarray, y1: np.ndarray, d1: np.ndarray) -> RiskSets:
    """At-risk counts at every event time (ties: everyone with y >= t is at risk).

    Parameters
    ----------
    y0, y1 : ndarray (n0,), (n1,)
        Observed times (months) of the control and treated samples.
    d0, d1 : ndarray of bool
        Event indicators.
    """
    s0, s1 = np.sort(y0), np.sort(y1)
    # sorted queries make searchsorted cache-friendly (several times faster)
    t = np.concatenate([np.sort(y0[d0]), np.sort(y1[d1])])
    arm = np.concatenate([np.zeros(int(d0.sum())), np.ones(int(d1.sum()))])
    n0 = s0.size - np.searchsorted(s0, t, side="left")
    n1 = s1.size - np.searchsorted(s1, t, side="left")
    return RiskSets(arm=arm, n0=n0.astype(np.float64), n1=n1.astype(np.float64))


def log_hr(rs: RiskSets, tol: float = 1e-12, max_iter: int = 50) -> float:
    """Breslow maximum partial-likelihood log-HR (treated vs control) by Newton's method."""
    if rs.arm.size == 0:
        return float("nan")
    beta = 0.0
    for _ in range(max_iter):
        r = np.exp(beta)
        denom = rs.n0 + rs.n1 * r
        p1 = rs.n1 * r / denom
        score = float(np.sum(rs.arm - p1))
        info = float(np.sum(p1 * (1.0 - p1)))
        if info <= 0:
            return float("nan")
        step = score / info
        step = max(-2.0, min(2.0, step))
        beta += step
        if abs(step) < tol:
            break
    return beta


def marginal_log_hr(y0, d0, y1, d1) -> float:
    """Treatment-only Cox log-HR of sample 1 versus sample 0 (Breslow ties)."""
    return log_hr(
        risk_sets(np.asarray(y0), np.asarray(d0, bool), np.asarray(y1), np.asarray(d1, bool))
    )


def censor(t: np.ndarray, c: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(observed time, event) of true times ``t`` under censoring times ``c`` (None: none)."""
    if c is None:
        return t, np.ones(t.size, dtype=bool)
    return np.minimum(t, c), t <= c


def rmst(t: np.ndarray, horizon: float) -> float:
    """Restricted mean of uncensored times up to ``horizon`` (months)."""
    return float(np.mean(np.minimum(t, horizon)))
