"""Nonparametric bootstrap of the sIPTW log hazard ratio: the full pipeline per resample.

Each resample draws ``n`` patients with replacement and repeats the whole analysis on
them: the propensity-score fit (maximum likelihood or Firth, as the full-sample model),
the weights of :mod:`estimators.weighting` for the estimand (stabilised, truncated at
percentiles of the resample's own weights) and the weighted Cox model on treatment
(Efron or Breslow ties).  The spread of the resample estimates therefore includes the
estimation of the propensity score, which the robust (Lin-Wei) SE ignores (Austin 2016,
Stat Med 35:5642).

Reproducibility: the resample indices are drawn at once in Python, ``(n_boot, n)``
integers from the Generator (:func:`draw_resamples`), then numba kernels fit every
resample, in two stages: the PS (:func:`bootstrap_propensity`, shared by every outcome
and estimand of a data set), then the weights and the Cox model (in parallel over
resamples when numba has several threads; the results are the same bit for bit
whatever the thread count).  A resample can be recomputed from
scratch from its row indices with the public functions (``fit_logistic`` /
``fit_propensity``, ``iptw_weights``, ``fit_cox_arrays``); the kernel's estimate equals
that fit up to floating-point summation order (tests/test_bootstrap.py, 1e-10).

Failed resamples (one arm only, no events, a collinear or non-converged / separated
propensity model, no overlap for ATT / ATC weights, a trimming that leaves an arm empty,
infinite weights, a Cox fit that does not converge or diverges, e.g. an arm without
events) are counted by reason in
:attr:`BootstrapResult.failures`, their estimate is NaN, and a :class:`BootstrapWarning`
is issued; the SE and intervals are those of the successful resamples.  Memory: the
indices take ``8 * n_boot * n`` bytes.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from . import _bootstrap_kernels as bk
from .exceptions import BootstrapWarning, EstimatorInputError
from .propensity import FIRTH_MAX_STEP, PropensityModel
from .shared import Outcome
from .validation import (
    BOOT_CIS,
    check_boot_ci,
    check_n_boot,
    check_random_state,
    check_ties,
    check_truncate,
)

__all__ = [
    "BOOT_CIS",
    "FAILURES",
    "KERNEL_ESTIMANDS",
    "BootstrapResult",
    "PropensityResamples",
    "bootstrap_propensity",
    "check_boot_ci",
    "check_n_boot",
    "draw_resamples",
    "siptw_bootstrap",
]

KERNEL_ESTIMANDS: tuple[str, ...] = ("ATE", "ATT", "ATC", "ATO", "ATM")
"""Weight estimands of the bootstrap kernel, in the order of its integer codes."""

FAILURES: tuple[str, ...] = (
    "ok",
    "one arm",
    "no events",
    "propensity columns collinear",
    "propensity fit not converged or separated",
    "infinite weights",
    "Cox fit not converged",
    "Cox coefficient diverges (monotone likelihood)",
    "no overlap (ATT: no control, ATC: no treated inside the other arm's PS range)",
    "trimming leaves an arm empty",
)
"""Status of a resample, indexed by the kernel's status code (0 = fitted)."""

"""Bootstrap confidence intervals: estimate +/- z * bootstrap SE, or percentiles."""

PS_TOL, PS_MAX_ITER = 1e-10, 50  # as estimators.propensity._fit_propensity
COX_TOL, COX_MAX_ITER = 1e-9, 50  # as estimators.effects.siptw


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Bootstrap distribution of a log hazard ratio.

    Attributes
    ----------
    estimates : ndarray, shape (n_boot,)
        Log-HR of each resample; NaN where it failed (see ``status``).
    status : ndarray, shape (n_boot,), int8
        0 for a fitted resample, else the index of its reason in :data:`FAILURES`.
    estimate : float
        The full-sample log-HR (centre of the normal interval).
    se : float
        Standard deviation (ddof 1) of the successful resample estimates; NaN with fewer
        than two.
    ci_normal, ci_percentile : (float, float)
        ``estimate -/+ z_{1-alpha/2} se``, and the ``alpha/2`` and ``1 - alpha/2``
        quantiles (numpy's linear) of the successful estimates.
    alpha : float
        Intervals have level ``1 - alpha``.
    failures : dict of str to int
        Failed resamples by reason (only reasons that occurred).
    warning : str
        The :class:`BootstrapWarning` text issued when some resamples failed, else "".
    """

    estimates: np.ndarray
    status: np.ndarray
    estimate: float
    se: float
    ci_normal: tuple[float, float]
    ci_percentile: tuple[float, float]
    alpha: float
    failures: dict[str, int]
    warning: str = ""

    @property
    def n_boot(self) -> int:
        """Resamples drawn."""
        return int(self.estimates.shape[0])

    @property
    def n_failed(self) -> int:
        """Resamples that failed to fit."""
        return int(np.count_nonzero(self.status))

    def ci(self, kind: str) -> tuple[float, float]:
        """The interval of ``kind`` (one of :data:`BOOT_CIS`)."""
        check_boot_ci(kind)
        return self.ci_normal if kind == "normal" else self.ci_percentile


def _check_alpha(alpha: object) -> float:
    if not (isinstance(alpha, numbers.Real) and not isinstance(alpha, bool) and 0 < alpha < 1):
        raise EstimatorInputError(f"alpha={alpha!r} is not allowed; it must be in (0, 1)")
    return float(alpha)


def draw_resamples(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices of ``n_boot`` resamples of ``n`` patients, shape (n_boot, n), int64.

    ``rng.integers(0, n, size=(n_boot, n))``: resample ``b`` is row ``b``, so any one can
    be recomputed from the same Generator state.
    """
    return rng.integers(0, n, size=(n_boot, n), dtype=np.int64)


@dataclass(frozen=True, eq=False)
class PropensityResamples:
    """The propensity score refitted on every resample (stage 1 of the bootstrap).

    Depends only on the data's treatment and PS design, not on the outcome or the
    estimand: :func:`siptw` computes it once per data set (shared inputs, integer seed)
    for all its outcomes and estimands.

    Attributes
    ----------
    model : PropensityModel
        The full-sample model refitted.
    idx : ndarray, shape (n_boot, n), int64
        Rows of each resample (:func:`draw_resamples`).
    logits : ndarray, shape (n_boot, n)
        Each resample's PS logit by full-sample row (0 for rows not drawn).
    status : ndarray, shape (n_boot,), int8
        0, or the index in :data:`FAILURES` of why the PS could not be fitted.
    """

    model: PropensityModel
    idx: np.ndarray
    logits: np.ndarray
    status: np.ndarray

    @property
    def n_boot(self) -> int:
        """Resamples."""
        return int(self.idx.shape[0])


def bootstrap_propensity(
    model: PropensityModel, n_boot: int = 200, random_state: int | np.random.Generator = 0
) -> PropensityResamples:
    """Draw ``n_boot`` resamples (:func:`draw_resamples`) and refit the PS on each.

    ML fits run Newton on the resample's distinct rows weighted by their multiplicity,
    starting one Newton step off the full-sample fit; Firth fits run on the repeated
    rows.  Pooled rare levels (``pool_rare``) stay pooled as in the full sample.
    """
    if not isinstance(model, PropensityModel):
        raise EstimatorInputError(
            f"model must be a PropensityModel from fit_propensity, got {type(model).__name__}"
        )
    n_boot = check_n_boot(n_boot)
    rng = check_random_state(random_state)
    return _propensity_resamples(model, draw_resamples(model.treatment.size, n_boot, rng))


def _propensity_resamples(model: PropensityModel, idx: np.ndarray) -> PropensityResamples:
    n = model.treatment.size
    X = np.empty((n, model.design.X.shape[1] + 1))
    X[:, 0] = 1.0
    X[:, 1:] = model.design.X
    p = X.shape[1]
    fit = model.fit
    usable = model.converged and np.isfinite(fit.coef).all() and np.isfinite(fit.cov).all()
    coef0 = fit.coef.copy() if usable else np.zeros(p)
    cov0 = np.ascontiguousarray(fit.cov) if usable else np.zeros((p, p))
    prob0 = fit.prob if usable else np.full(n, 0.5)
    logits, status = bk._bootstrap_ps(
        idx,
        X,
        model.treatment.astype(np.int64),
        coef0,
        cov0,
        prob0,
        model.method == "firth",
        PS_TOL,
        PS_MAX_ITER,
        FIRTH_MAX_STEP,
    )
    return PropensityResamples(model, idx, logits, status)


def siptw_bootstrap(
    model: PropensityModel,
    outcome: Outcome,
    estimand: str = "ATE",
    truncate: Sequence[float] | None = None,
    ties: str = "efron",
    n_boot: int = 200,
    random_state: int | np.random.Generator = 0,
    alpha: float = 0.05,
    estimate: float | None = None,
    stabilized: bool = True,
    resamples: PropensityResamples | None = None,
    trim: tuple[float, float] | None = None,
) -> BootstrapResult:
    """Bootstrap the sIPTW log-HR: PS refit, weights and weighted Cox per resample.

    Parameters
    ----------
    model : PropensityModel
        The full-sample propensity model (:func:`~estimators.fit_propensity`): its
        design (``model.design.X``, intercept added here), treatment and ``method``
        (``"ml"`` or ``"firth"``) are refitted on every resample.
    outcome : Outcome
        Validated time (months), event and time order of the same patients
        (:func:`~estimators.outcome_arrays`).
    estimand : {"ATE", "ATT", "ATC", "ATO", "ATM"}
        Weights (see :mod:`estimators.weighting`).
    truncate : (low, high) percentiles, optional
        Truncate each resample's weights at its own percentiles.
    ties : {"efron", "breslow"}
    n_boot : int
        Resamples, >= 2.
    random_state : int or numpy.random.Generator
        Seed or Generator the indices are drawn from (:func:`draw_resamples`).
    alpha : float
        Intervals of level ``1 - alpha``.
    estimate : float, optional
        The full-sample estimate the normal interval is centred on; by default the
        kernel computes it (the identity resample).
    stabilized : bool
        Stabilised weights (default), as :func:`~estimators.iptw_weights`.
    resamples : PropensityResamples, optional
        ``bootstrap_propensity(model, n_boot, random_state)`` already computed (then
        ``random_state`` is not used): the PS stage shared by several outcomes.
    trim : (low, high), optional
        Propensity-score bounds, ``0 <= low < high <= 1`` (Crump trimming, as
        ``weighting.trim_mask``): each resample drops its patients whose refitted score
        is outside ``[low, high]`` before the weights and the Cox model.

    Returns
    -------
    BootstrapResult

    Warns
    -----
    BootstrapWarning
        When some resamples failed to fit (counted in ``failures``).
    """
    if estimand not in KERNEL_ESTIMANDS:
        raise EstimatorInputError(
            f"estimand={estimand!r} is not allowed; use one of {KERNEL_ESTIMANDS}"
        )
    bounds = check_truncate(truncate)
    check_ties(ties)
    n_boot = check_n_boot(n_boot)
    rng = check_random_state(random_state)
    alpha = _check_alpha(alpha)
    if not isinstance(model, PropensityModel):
        raise EstimatorInputError(
            f"model must be a PropensityModel from fit_propensity, got {type(model).__name__}"
        )
    if not isinstance(outcome, Outcome):
        raise EstimatorInputError(
            f"outcome must be an Outcome from outcome_arrays, got {type(outcome).__name__}"
        )
    n = outcome.time.shape[0]
    if model.treatment.shape != (n,) or not np.array_equal(model.treatment, outcome.treatment):
        raise EstimatorInputError(
            f"model and outcome are not the same patients: treatment vectors differ "
            f"({model.treatment.size} vs {n} rows)"
        )
    finite = isinstance(estimate, numbers.Real) and math.isfinite(estimate)
    if estimate is not None and not finite:
        raise EstimatorInputError(f"estimate={estimate!r} is not allowed; give a finite number")
    if not isinstance(stabilized, bool | np.bool_):
        raise EstimatorInputError(f"stabilized={stabilized!r} is not allowed; use True or False")
    limits = _check_trim_limits(trim)
    if resamples is None:
        resamples = _propensity_resamples(model, draw_resamples(n, n_boot, rng))
    elif not isinstance(resamples, PropensityResamples) or resamples.model is not model:
        raise EstimatorInputError(
            "resamples must be the PropensityResamples of this model (bootstrap_propensity)"
        )
    elif resamples.n_boot != n_boot:
        raise EstimatorInputError(
            f"resamples hold {resamples.n_boot} resamples, not n_boot={n_boot}"
        )
    args = _effect_args(outcome, estimand, bounds, limits, ties, bool(stabilized))
    est, status = bk._bootstrap_effect(resamples.idx, resamples.logits, resamples.status, *args)
    if estimate is None:
        full_ps = _propensity_resamples(model, np.arange(n, dtype=np.int64)[None, :])
        full, full_status = bk._bootstrap_effect(full_ps.idx, full_ps.logits, full_ps.status, *args)
        if full_status[0] != bk.OK:
            raise EstimatorInputError(
                f"the full sample cannot be fitted: {FAILURES[full_status[0]]}; nothing to "
                "bootstrap"
            )
        estimate = float(full[0])
    return _summarise(est, status, float(estimate), alpha)


def _check_trim_limits(trim: object) -> tuple[float, float] | None:
    """``trim``: None or PS bounds ``(low, high)``, ``0 <= low < high <= 1``."""
    if trim is None:
        return None
    try:
        low, high = (float(v) for v in trim)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        low = high = math.nan
    if not (0.0 <= low < high <= 1.0):
        raise EstimatorInputError(
            f"trim={trim!r} is not allowed; give propensity-score bounds (low, high) with "
            "0 <= low < high <= 1, or None"
        )
    return low, high


def _effect_args(
    outcome: Outcome,
    estimand: str,
    bounds: tuple[float, float] | None,
    limits: tuple[float, float] | None,
    ties: str,
    stabilized: bool,
) -> tuple:
    """Arguments of ``_bootstrap_effect`` after the resamples, from validated inputs."""
    lo, hi = bounds if bounds is not None else (0.0, 100.0)
    t_lo, t_hi = limits if limits is not None else (0.0, 1.0)
    return (
        outcome.treatment.astype(np.int64),
        outcome.time,
        outcome.event.astype(np.int64),
        outcome.order.astype(np.int64, copy=False),
        KERNEL_ESTIMANDS.index(estimand),
        stabilized,
        bounds is not None,
        float(lo),
        float(hi),
        limits is not None,
        float(t_lo),
        float(t_hi),
        ties == "efron",
        COX_TOL,
        COX_MAX_ITER,
    )


def _summarise(est: np.ndarray, status: np.ndarray, estimate: float, alpha: float):
    """SE and intervals of the successful resamples; count and warn about the others."""
    ok = est[status == bk.OK]
    codes, counts = np.unique(status[status != bk.OK], return_counts=True)
    failures = {FAILURES[c]: int(k) for c, k in zip(codes, counts, strict=True)}
    msg = ""
    if failures:
        detail = ", ".join(f"{k} {why}" for why, k in failures.items())
        msg = (
            f"{est.size - ok.size} of {est.size} bootstrap resamples failed to fit ({detail}); "
            f"SE and intervals use the other {ok.size}"
        )
        warnings.warn(msg, BootstrapWarning, stacklevel=3)
    if ok.size >= 2:
        se = float(np.std(ok, ddof=1))
        q_lo, q_hi = np.quantile(ok, [alpha / 2.0, 1.0 - alpha / 2.0])
        pct = (float(q_lo), float(q_hi))
    else:
        se, pct = math.nan, (math.nan, math.nan)
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    return BootstrapResult(
        estimates=est,
        status=status,
        estimate=estimate,
        se=se,
        ci_normal=(estimate - z * se, estimate + z * se),
        ci_percentile=pct,
        alpha=alpha,
        failures=failures,
        warning=msg,
    )


def _resample_weights(
    logit: np.ndarray,
    treatment: np.ndarray,
    rows: np.ndarray,
    estimand: str,
    stabilized: bool = True,
    truncate: tuple[float, float] | None = None,
) -> np.ndarray:
    """The kernel's weights of the resample ``rows`` given its PS logit by full-sample row,
    in the order of ``rows`` (test hook: compared with :func:`~estimators.iptw_weights`)."""
    n = logit.shape[0]
    rows = np.asarray(rows, dtype=np.int64)
    cnt = np.bincount(rows, minlength=n).astype(np.int64)
    lo, hi = truncate if truncate is not None else (0.0, 100.0)
    w, ok = bk._weights(
        rows,
        cnt,
        np.asarray(logit, dtype=np.float64),
        np.asarray(treatment).astype(np.int64),
        KERNEL_ESTIMANDS.index(estimand),
        stabilized,
        truncate is not None,
        float(lo),
        float(hi),
    )
    if not ok:
        raise EstimatorInputError("some weights are infinite")
    return w[rows]
