"""Variance of the Cox fit on a matched set: Austin-Cafri two-way clustering, bootstrap.

The analysis data are one row per matched-set member (:meth:`Matching.rows_and_pairs`);
with replacement a control appears once per set it serves.

* ``"austin-cafri"`` (Austin & Cafri 2020, Stat Med 39:1623): the sandwich clustered
  both on matched set and on patient, ``V = V_set + V_patient - V_row`` (two-way
  clustering; each row is the intersection of one set and one patient, as a
  patient enters a set at most once).  ``V_c = I^-1 B_c I^-1`` with ``B_c`` summing,
  over the clusters of ``c``, the outer product of the cluster's total weighted score
  residual.  Without replacement each patient is one row, so ``V_patient = V_row`` and
  this is the set-clustered sandwich.  Unstratified it is never below ``V_set``
  (a patient's rows share one score residual, so ``B_patient >= B_row``); stratified
  on set it can be negative in tiny samples, and the SE is then NaN (with a warning).
* ``"bootstrap"`` (Austin & Small 2014, Stat Med 33:4306): resample the matched sets
  with replacement (as many as there are), refit the Cox model on their rows (weights
  carried over; stratified on the drawn set when the fit is), take the SD (ddof = 1)
  of the estimates.  Resamples that cannot be fitted (no events, a single arm, no
  convergence, a diverging coefficient) are counted and reported, and left out of
  the SD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _cox_kernels as ck
from ._matching_kernels import BOOT_OK, BOOT_REASONS, _boot_cox


def austin_cafri_cov(
    time: np.ndarray,
    event: np.ndarray,
    x: np.ndarray,
    weights: np.ndarray,
    strata: np.ndarray | None,
    sets: np.ndarray,
    n_sets: int,
    patient: np.ndarray,
    beta: np.ndarray,
    bread: np.ndarray,
    efron: bool,
) -> np.ndarray:
    """Two-way (set and patient) clustered sandwich of a fitted Cox model, (p, p).

    ``time`` (m,) months, ``event`` int8 (m,), ``x`` (m, p), ``weights`` (m,) > 0,
    ``strata`` int64 codes or None, ``sets`` int64 codes in ``[0, n_sets)``,
    ``patient`` (m,) row of each analysis row in the data, ``beta`` (p,) the estimate,
    ``bread`` (p, p) the model-based covariance (inverse information) at ``beta``.
    """
    m = time.shape[0]
    s = np.zeros(m, dtype=np.int64) if strata is None else strata
    order = np.lexsort((-time, s))
    xs = np.ascontiguousarray((x - x.mean(axis=0))[order])
    ws = np.ascontiguousarray(weights[order])
    starts, newstrat = ck._tie_groups(np.ascontiguousarray(time[order]), s[order])
    resid = ck._score_residuals(xs, ws, event[order], starts, newstrat, beta, efron)
    _, pid = np.unique(patient, return_inverse=True)
    pid = pid.astype(np.int64)
    meat = (
        ck._meat(resid, ws, np.ascontiguousarray(sets[order]), n_sets)
        + ck._meat(resid, ws, np.ascontiguousarray(pid[order]), int(pid.max()) + 1)
        - ck._meat(resid, ws, np.empty(0, dtype=np.int64), 0)
    )
    return ck._sandwich(np.ascontiguousarray(bread), meat)


@dataclass(frozen=True)
class Bootstrap:
    """A matched-set bootstrap of the log-HR.

    Attributes
    ----------
    estimates : ndarray, shape (n_boot,)
        Estimate of each resample (NaN where it failed).
    status : ndarray of int, shape (n_boot,)
        0 where the resample was fitted, else the failure code (``reasons``).
    draws : ndarray of int, shape (n_boot, n_sets)
        Matched sets drawn in each resample.
    se : float
        SD (ddof = 1) of the successful estimates; NaN with fewer than 2.
    percentile_ci : (float, float)
        Percentile interval of the successful estimates at level ``1 - alpha``.
    """

    estimates: np.ndarray
    status: np.ndarray
    draws: np.ndarray
    se: float
    percentile_ci: tuple[float, float]

    @property
    def n_boot(self) -> int:
        return int(self.estimates.size)

    @property
    def n_failed(self) -> int:
        """Resamples that could not be fitted."""
        return int(np.count_nonzero(self.status != BOOT_OK))

    def failures(self) -> dict[str, int]:
        """Failed resamples by reason."""
        codes, counts = np.unique(self.status[self.status != BOOT_OK], return_counts=True)
        return {BOOT_REASONS[c]: int(k) for c, k in zip(codes, counts, strict=True)}

    def warning(self) -> str | None:
        """A sentence on the failed resamples (None when none failed)."""
        if not self.n_failed:
            return None
        why = ", ".join(f"{k}: {v}" for k, v in self.failures().items())
        return (
            f"{self.n_failed} of {self.n_boot} bootstrap resamples could not be fitted ({why}); "
            f"the bootstrap SE uses the other {self.n_boot - self.n_failed}"
        )


def matched_set_bootstrap(
    time: np.ndarray,
    event: np.ndarray,
    a: np.ndarray,
    weights: np.ndarray,
    sets: np.ndarray,
    n_sets: int,
    stratified: bool,
    efron: bool,
    n_boot: int,
    rng: np.random.Generator,
    alpha: float = 0.05,
    draws: np.ndarray | None = None,
) -> Bootstrap:
    """Resample matched sets ``n_boot`` times and refit the Cox model on each resample.

    ``time``, ``event`` (int8), ``a`` (0/1 float), ``weights``, ``sets`` are the analysis
    rows (m,); ``draws`` (n_boot, n_sets) overrides the resamples drawn from ``rng``.
    """
    if draws is None:
        draws = rng.integers(0, n_sets, size=(n_boot, n_sets))
    grouped = np.lexsort((-time, sets))  # by set, time descending within a set
    set_start = np.r_[0, np.cumsum(np.bincount(sets, minlength=n_sets))].astype(np.int64)
    t = time[grouped]
    est, status = _boot_cox(
        t,
        np.ascontiguousarray(event[grouped], dtype=np.int8),
        np.ascontiguousarray(a[grouped], dtype=np.float64),
        np.ascontiguousarray(weights[grouped], dtype=np.float64),
        set_start,
        np.argsort(-t, kind="stable"),
        np.ascontiguousarray(draws, dtype=np.int64),
        stratified,
        efron,
        1e-9,
        50,
    )
    ok = est[status == BOOT_OK]
    se = float(np.std(ok, ddof=1)) if ok.size >= 2 else np.nan
    if ok.size:
        lo, hi = np.percentile(ok, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        ci = (float(lo), float(hi))
    else:
        ci = (np.nan, np.nan)
    return Bootstrap(est, status, draws, se, ci)
