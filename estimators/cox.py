"""Cox proportional-hazards regression.

Weighted partial likelihood with Breslow or Efron ties, optional strata (separate
baseline hazards, common coefficients), Newton-Raphson with step halving, and
model-based or robust (Lin-Wei sandwich, optionally clustered) variance.  Results
match R ``survival::coxph`` (including weighted Efron ties and robust variance)
and lifelines ``CoxPHFitter`` (data without ties).

Two entry points: :func:`fit_cox_arrays`, the fast path on numpy arrays, and
:class:`CoxPH`, a lifelines-like wrapper on a DataFrame.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from . import _cox_counting_kernels as kc
from . import _cox_kernels as k
from .design_matrix import design_matrix
from .exceptions import ConvergenceWarning, EstimatorInputError
from .scaling import power_of_two_scale, unscale
from .validation import (
    TIES,
    check_design_columns,
    check_events,
    check_frame,
    check_iteration,
    check_length,
    check_ties,
    check_times,
    check_weights,
    float_array,
    float_column,
    int_codes,
    raw_float_column,
)

__all__ = ["TIES", "CoxPH", "CoxResult", "fit_cox_arrays"]


@dataclass(frozen=True, eq=False)
class CoxResult:
    """Result of :func:`fit_cox_arrays`.

    Attributes
    ----------
    params : ndarray (p,)
        Log hazard ratios.
    se : ndarray (p,)
        Standard errors from ``cov`` (robust when requested, else model-based).
    model_se : ndarray (p,)
        Model-based standard errors (inverse of the weighted information).
    cov : ndarray (p, p)
        Covariance of ``params``: robust sandwich when robust or clustered, else
        model-based.  NaN when the information matrix is singular.
    loglik : float
        Log partial likelihood at ``params``.
    n_iter : int
        Newton-Raphson iterations (halvings included).
    converged : bool
        False when the fit stopped early, the information is singular or a
        coefficient diverges (monotone likelihood).
    gradient_norm : float
        Euclidean norm of the score at ``params``.
    warnings : tuple of str
        Why ``converged`` is False (empty when it is True).
    n, events : int
        Rows and events (unweighted counts).
    diverging : tuple of int
        Columns whose coefficient runs off to +/-inf (monotone likelihood) while the
        log-likelihood itself converged; empty otherwise.
    """

    params: np.ndarray
    se: np.ndarray
    model_se: np.ndarray
    cov: np.ndarray
    loglik: float
    n_iter: int
    converged: bool
    gradient_norm: float
    warnings: tuple[str, ...]
    n: int
    events: int
    diverging: tuple[int, ...] = ()

    def converged_for(self, column: int) -> bool:
        """True when the fit is reliable for coefficient ``column``.

        A coefficient of another column diverging (e.g. a rare category with no events,
        R's "coefficient may be infinite") leaves the others at their converged values.
        """
        if self.converged:
            return True
        return bool(self.diverging) and column not in self.diverging


def _sort_order(time: np.ndarray, strata: np.ndarray | None) -> np.ndarray:
    """Row order by stratum, then time descending (the kernels' layout)."""
    if strata is None:
        return np.argsort(-time)
    return np.lexsort((-time, strata))


def _subset_order(order: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """Kernel row order (time descending, one stratum) of the distinct rows ``rows`` of
    n-row data whose order is ``order``: that order restricted to them (O(n), no sort).
    Returns positions in ``rows``."""
    pos = np.full(n, -1, dtype=np.int64)
    pos[rows] = np.arange(rows.size)
    sub = pos[order]
    return sub[sub >= 0]


def fit_cox_arrays(
    time: np.ndarray,
    event: np.ndarray,
    X: np.ndarray,
    weights: np.ndarray | None = None,
    strata: np.ndarray | None = None,
    cluster: np.ndarray | None = None,
    robust: bool = False,
    ties: str = "efron",
    tol: float = 1e-9,
    max_iter: int = 50,
    init: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    entry: np.ndarray | None = None,
    ids: np.ndarray | None = None,
) -> CoxResult:
    """Fit a Cox proportional-hazards model on arrays (fast path).

    Parameters
    ----------
    time : array (n,)
        Follow-up times in months, finite and > 0.
    event : array (n,)
        1 = event, 0 = censored; at least one event.
    X : array (n, p)
        Covariates, p >= 1, no constant column, no intercept.
    weights : array (n,), optional
        Case weights, finite and > 0 (default all 1).
    strata : array (n,) of int, optional
        Stratum codes: separate baseline hazard per stratum.
    cluster : array (n,) of int, optional
        Cluster ids for the robust variance (implies ``robust``).
    robust : bool
        Lin-Wei sandwich variance (weighted score residuals, Efron-adjusted).
    ties : {"efron", "breslow"}
    tol : float
        Converged when the relative change of the log partial likelihood after a
        full Newton step is <= tol (R ``coxph`` rule).
    max_iter : int
        Maximum Newton-Raphson iterations.
    init : array (p,), optional
        Starting coefficients (default 0).
    names : sequence of str, optional
        Column names of ``X`` used in messages (default ``"X[:, j]"``).
    entry : array (n,), optional
        Entry (start) times in months, finite, >= 0 and < ``time``: counting-process
        (start, stop] rows (delayed entry, time-varying covariates).  Row i is at risk
        at t when ``entry_i < t <= time_i``.  Rows of one patient (``ids``, else
        ``cluster``) must not overlap.  None = every row at risk from 0 (the usual fit).
    ids : array (n,) of int, optional
        Patient ids of (start, stop] rows (with ``entry`` only), used to check that a
        patient's intervals do not overlap; the variance is unchanged (``cluster``
        clusters it).  Without ``ids`` and ``cluster`` rows cannot be attributed to
        patients and overlap is not checked.

    Returns
    -------
    CoxResult
        Non-convergence or divergence (monotone likelihood) gives
        ``converged=False`` and warning strings, and emits ConvergenceWarning.
    """
    if entry is not None:
        return _fit_counting(
            entry,
            time,
            event,
            X,
            weights,
            strata,
            cluster,
            robust,
            ties,
            tol,
            max_iter,
            init,
            names=names,
            ids=ids,
        )
    if ids is not None:
        raise EstimatorInputError("ids identify (start, stop] rows; give entry as well")
    return _fit(
        time, event, X, weights, strata, cluster, robust, ties, tol, max_iter, init, names=names
    )


def _fit(
    time,
    event,
    X,
    weights,
    strata,
    cluster,
    robust,
    ties,
    tol,
    max_iter,
    init,
    names: Sequence[str] | None,
) -> CoxResult:
    """Validate, then :func:`_fit_clean`; ``names`` label covariates in messages."""
    check_ties(ties)
    check_iteration(tol, max_iter)
    t = check_times(float_array(time, "time", 1), "time")
    n = t.shape[0]
    if n == 0:
        raise EstimatorInputError("time is empty; at least one row is required")
    ev = float_array(event, "event", 1)
    check_length(ev, "event", n)
    ev = check_events(ev, "event")
    x = float_array(X, "X", 2)
    names = tuple(names) if names is not None else tuple(f"X[:, {j}]" for j in range(x.shape[1]))
    check_length(x, "X", n)
    if x.shape[1] == 0:
        raise EstimatorInputError("X has 0 columns; a Cox model needs at least one covariate")
    check_design_columns(x, names)
    if weights is None:
        w = None
    else:
        w = float_array(weights, "weights", 1)
        check_length(w, "weights", n)
        check_weights(w, "weights")
    s = None if strata is None else int_codes(strata, "strata", n)
    cl = None if cluster is None else int_codes(cluster, "cluster", n)
    beta0 = None if init is None else float_array(init, "init", 1)
    if beta0 is not None and (beta0.shape != (x.shape[1],) or not np.isfinite(beta0).all()):
        raise EstimatorInputError(f"init must be {x.shape[1]} finite values (one per column of X)")
    return _fit_clean(
        t, ev, x, w, s, cl, bool(robust), ties, float(tol), int(max_iter), beta0, names
    )


def _fit_clean(
    t: np.ndarray,
    ev: np.ndarray,
    x: np.ndarray,
    w: np.ndarray | None,
    s: np.ndarray | None,
    cluster: np.ndarray | None,
    robust: bool,
    ties: str,
    tol: float,
    max_iter: int,
    beta0: np.ndarray | None,
    names: Sequence[str],
    order: np.ndarray | None = None,
    rescale: bool = True,
    n_clusters: int | None = None,
    ranges: tuple[np.ndarray, np.ndarray] | None = None,
) -> CoxResult:
    """Sort, run the kernel, package, on validated input.

    ``t`` float64 (n,) > 0; ``ev`` int8 (n,) with an event; ``x`` C-contiguous float64
    (n, p), finite, no constant column; ``w`` float64 > 0 or None; ``s`` / ``cluster``
    int64 codes or None; ``order`` the kernels' row order if already known;
    ``rescale=False`` when every column is known to be on unit scale (a 0/1 treatment);
    ``n_clusters`` when ``cluster`` already holds every code ``0 .. n_clusters - 1``;
    ``ranges`` the columns' (min, max) when known.
    """
    n, p = x.shape
    if w is None:
        w = np.ones(n)
    if cluster is None:
        cl, n_cl = np.empty(0, dtype=np.int64), 0
    elif n_clusters is not None:
        cl, n_cl = cluster, n_clusters
    else:
        uniq, cl = np.unique(cluster, return_inverse=True)
        cl, n_cl = cl.astype(np.int64, copy=False), uniq.shape[0]
    d = power_of_two_scale(x, centred=True, ranges=ranges) if rescale else None
    xs = x if d is None else x / d
    beta0 = np.zeros(p) if beta0 is None else (beta0 if d is None else beta0 * d)
    if order is None:
        order = _sort_order(t, s)
    beta, loglik, u, _, var, cov, step, n_iter, status = k._cox_fit(
        t,
        ev,
        xs,
        w,
        np.zeros(n, dtype=np.int64) if s is None else s,
        cl,
        n_cl,
        order,
        ties == "efron",
        robust or cluster is not None,
        tol,
        max_iter,
        beta0.copy(),
    )
    msgs, diverging = _diagnose(status, n_iter, step, beta, tol, max_iter, names)
    for m in msgs:
        warnings.warn(m, ConvergenceWarning, stacklevel=4)
    _, var = unscale(beta, var, d)
    beta, cov = unscale(beta, cov, d)
    return CoxResult(
        params=beta,
        se=np.sqrt(cov.diagonal()),
        model_se=np.sqrt(var.diagonal()),
        cov=cov,
        loglik=float(loglik),
        n_iter=int(n_iter),
        converged=not msgs,
        gradient_norm=float(np.sqrt(u @ u) if d is None else np.sqrt((u * d) @ (u * d))),
        warnings=msgs,
        n=n,
        events=int(np.count_nonzero(ev)),
        diverging=diverging,
    )


def _row(labels: Sequence[object] | None, i: int) -> str:
    """How a message names row ``i``: its DataFrame index label, else its position."""
    return f"row {i}" if labels is None else f"row {labels[i]!r} (position {i})"


def check_intervals(
    entry: np.ndarray,
    stop: np.ndarray,
    cluster: np.ndarray | None,
    entry_param: str = "entry",
    stop_param: str = "time",
    labels: Sequence[object] | None = None,
    order: np.ndarray | None = None,
) -> tuple[np.ndarray, int] | None:
    """(start, stop] rows: entry finite and >= 0, stop > entry, no overlap within a cluster.

    Raises EstimatorInputError naming the parameter, the first bad row and what is
    allowed.  ``cluster`` (patient id codes) is needed for the overlap check: without
    it rows cannot be attributed to patients and overlap is not checked.  ``order``
    (rows by stop descending) saves a sort when the caller has it.  Returns the dense
    cluster codes (0 .. m-1) and m, or None without ``cluster``.
    """
    bad = np.flatnonzero(~np.isfinite(entry) | (entry < 0))
    if bad.size:
        i = int(bad[0])
        raise EstimatorInputError(
            f"{entry_param} has {bad.size} negative or non-finite value(s), first at "
            f"{_row(labels, i)}: {entry[i]!r}; entry times must be finite and >= 0 (months)"
        )
    bad = np.flatnonzero(~(stop > entry))
    if bad.size:
        i = int(bad[0])
        raise EstimatorInputError(
            f"{bad.size} row(s) have {stop_param} <= {entry_param}, first at {_row(labels, i)}: "
            f"({entry[i]!r}, {stop[i]!r}]; every (start, stop] interval needs stop > start"
        )
    if cluster is None:
        return None
    codes, n_codes = _dense(cluster)
    if order is None:
        order = np.argsort(-stop)
    first, _ = kc._first_overlap(entry, stop, codes, n_codes, order)
    if first < 0:
        return codes, n_codes
    # an error: name the first overlapping pair in (cluster, entry) order, off the fast path
    o = np.lexsort((entry, cluster))
    same = cluster[o[1:]] == cluster[o[:-1]]
    bad = np.flatnonzero(same & (entry[o[1:]] < stop[o[:-1]]))
    i, j = int(o[bad[0]]), int(o[bad[0] + 1])
    raise EstimatorInputError(
        f"{bad.size} overlapping interval(s) within one cluster (patient), first "
        f"({entry[i]!r}, {stop[i]!r}] at {_row(labels, i)} and ({entry[j]!r}, {stop[j]!r}] "
        f"at {_row(labels, j)}; a patient's intervals must not overlap "
        f"(next {entry_param} >= previous {stop_param})"
    )


def _dense(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer codes recoded 0 .. m-1, and m."""
    dense, m = kc._dense_codes(codes)
    if m < 0:  # ids too spread out for a lookup table
        _, dense = np.unique(codes, return_inverse=True)
        dense = dense.astype(np.int64, copy=False)
        m = int(dense.max()) + 1
    return dense, int(m)


def _desc_order(key: np.ndarray, s: np.ndarray, stratified: bool) -> np.ndarray:
    """Rows by stratum, then ``key`` descending (ties in a fixed, unspecified order)."""
    order = np.argsort(-key)
    if stratified:
        order = order[np.argsort(s[order], kind="stable")]
    return order


def _entry_order(entry: np.ndarray, s: np.ndarray, stratified: bool) -> np.ndarray:
    """Rows with entry > 0 by stratum, then entry descending (entry 0 never leaves a
    risk set, every event time being > 0)."""
    late = np.flatnonzero(entry > 0.0)
    if late.shape[0] == entry.shape[0]:
        return _desc_order(entry, s, stratified)
    return late[_desc_order(entry[late], s[late], stratified)]


def _fit_counting(
    entry,
    time,
    event,
    X,
    weights,
    strata,
    cluster,
    robust,
    ties,
    tol,
    max_iter,
    init,
    names: Sequence[str] | None,
    entry_param: str = "entry",
    stop_param: str = "time",
    labels: Sequence[object] | None = None,
    ids=None,
    ids_param: str = "ids",
) -> CoxResult:
    """Validate counting-process input, then :func:`_fit_counting_clean`.

    Overlap is checked within ``ids`` when given, else within ``cluster``.
    """
    check_ties(ties)
    check_iteration(tol, max_iter)
    t = check_times(float_array(time, stop_param, 1), stop_param)
    n = t.shape[0]
    if n == 0:
        raise EstimatorInputError(f"{stop_param} is empty; at least one row is required")
    en = float_array(entry, entry_param, 1)
    check_length(en, entry_param, n, of=stop_param)
    ev = float_array(event, "event", 1)
    check_length(ev, "event", n)
    ev = check_events(ev, "event")
    x = float_array(X, "X", 2)
    names = tuple(names) if names is not None else tuple(f"X[:, {j}]" for j in range(x.shape[1]))
    check_length(x, "X", n)
    if x.shape[1] == 0:
        raise EstimatorInputError("X has 0 columns; a Cox model needs at least one covariate")
    check_design_columns(x, names)
    if weights is None:
        w = np.ones(n)
    else:
        w = float_array(weights, "weights", 1)
        check_length(w, "weights", n)
        check_weights(w, "weights")
    s = np.zeros(n, dtype=np.int64) if strata is None else int_codes(strata, "strata", n)
    stratified = strata is not None and n > 0 and s.min() != s.max()
    cl = None if cluster is None else int_codes(cluster, "cluster", n)
    pid = None if ids is None else int_codes(ids, ids_param, n)
    order = _desc_order(t, s, stratified)
    checked = check_intervals(
        en, t, cl if pid is None else pid, entry_param, stop_param, labels, order=order
    )
    if pid is None:
        dense = checked  # the cluster codes, or None
    else:
        dense = None if cl is None else _dense(cl)
    p = x.shape[1]
    beta0 = np.zeros(p) if init is None else float_array(init, "init", 1)
    if beta0.shape != (p,) or not np.isfinite(beta0).all():
        raise EstimatorInputError(f"init must be {p} finite values (one per column of X)")
    return _fit_counting_clean(
        en,
        t,
        ev,
        x,
        w,
        s,
        dense,
        bool(robust),
        ties,
        float(tol),
        int(max_iter),
        beta0,
        names,
        order,
        _entry_order(en, s, stratified),
    )


def _fit_counting_clean(
    en: np.ndarray,
    t: np.ndarray,
    ev: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    s: np.ndarray,
    cluster: tuple[np.ndarray, int] | None,
    robust: bool,
    ties: str,
    tol: float,
    max_iter: int,
    beta0: np.ndarray,
    names: Sequence[str],
    order: np.ndarray,
    eorder: np.ndarray,
) -> CoxResult:
    """Run the counting-process kernels and package, on validated input.

    ``cluster``: dense codes (n,) in the caller's row order and their number, or None;
    ``order`` / ``eorder``: rows by stratum, then stop / entry descending.
    """
    p = x.shape[1]
    d = power_of_two_scale(x, centred=True)
    xs = x if d is None else x / d
    beta0 = beta0 if d is None else beta0 * d
    efron = ties == "efron"
    xc, ws, es, starts, newstrat, rlist, rstart, nd, blk, bdwt, u0, wev = kc._cp_prepare(
        t, en, ev, xs, w, s, order, eorder
    )
    beta, loglik, u, imat, n_iter, status, terms = kc._cp_newton(
        xc, ws, es, rlist, blk, bdwt, u0, wev, beta0.copy(), efron, tol, max_iter
    )
    low, ok = k._cholesky(imat)
    if not ok:
        var = np.full((p, p), np.nan)
        cov, step = var.copy(), np.full(p, np.nan)
    else:
        var = k._chol_inverse(low)
        step = k._chol_solve(low, u)
        cov = var.copy()
        if robust or cluster is not None:
            codes, n_cl = (np.empty(0, dtype=np.int64), 0) if cluster is None else cluster
            scores = kc._cp_score_residuals(
                xc, es, starts, newstrat, rlist, rstart, nd, beta, terms, ws, codes, n_cl, order
            )  # per row (unweighted), or weighted totals per cluster
            none = np.empty(0, dtype=np.int64)
            unit = np.ones(scores.shape[0]) if n_cl else ws
            cov = k._sandwich(var, k._meat(scores, unit, none, 0))
    msgs, diverging = _diagnose(status, n_iter, step, beta, tol, max_iter, names)
    for m in msgs:
        warnings.warn(m, ConvergenceWarning, stacklevel=4)
    _, var = unscale(beta, var, d)
    beta, cov = unscale(beta, cov, d)
    return CoxResult(
        params=beta,
        se=np.sqrt(cov.diagonal()),
        model_se=np.sqrt(var.diagonal()),
        cov=cov,
        loglik=float(loglik),
        n_iter=int(n_iter),
        converged=not msgs,
        gradient_norm=float(np.sqrt(u @ u) if d is None else np.sqrt((u * d) @ (u * d))),
        warnings=msgs,
        n=t.shape[0],
        events=int(np.count_nonzero(ev)),
        diverging=diverging,
    )


def _at_least_one(b: float) -> float:
    """``np.maximum(1.0, abs(b))`` for one float (NaN propagates)."""
    m = abs(b)
    return m if m > 1.0 or m != m else 1.0


def _diagnose(
    status, n_iter, step, beta, tol, max_iter, names
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(warning strings, diverging columns) of a fit; both empty at a finite maximum."""
    if status == k.MAX_ITER:
        msg = (
            f"Cox fit did not converge in max_iter={max_iter} Newton iterations "
            f"(relative log-likelihood change still > tol={tol}); estimates unreliable"
        )
        return (msg,), ()
    if status == k.SINGULAR:
        msg = (
            f"Cox information matrix is singular at iteration {n_iter} (collinear "
            "covariates, no variation within risk sets, or a diverging coefficient); "
            "estimates unreliable"
        )
        return (msg,), ()
    if status == k.NONFINITE:
        return ("Cox log partial likelihood is not finite at the initial values (init)",), ()
    steps, betas = step.tolist(), beta.tolist()  # p is small: plain floats beat ufuncs
    if not all(map(math.isfinite, steps)):  # information vanished at the "maximum"
        msg = (
            "Cox information matrix is singular at the estimate: the log partial likelihood "
            "is monotone (e.g. every event in one group, or too few patients), so the "
            "coefficients run off to +/-inf; estimates and SEs are meaningless"
        )
        return (msg,), ()
    # R's check: a further Newton step still moves a coefficient -> likelihood is monotone
    root = math.sqrt(tol)
    pairs = enumerate(zip(steps, betas, strict=True))
    bad = [j for j, (d, b) in pairs if abs(d) > root * _at_least_one(b)]
    if bad:
        which = ", ".join(repr(names[j]) for j in bad)
        msg = (
            f"Cox coefficient(s) {which} diverge to +/-inf (monotone likelihood, e.g. no "
            "events in one group): the log-likelihood converged but those estimates and "
            "their SEs are meaningless"
        )
        return (msg,), tuple(int(j) for j in bad)
    return (), ()


def _strata_codes(df: pd.DataFrame, strata: str | Sequence[str]) -> np.ndarray:
    cols = [strata] if isinstance(strata, str) else list(strata)
    if not cols:
        raise EstimatorInputError("strata=[] is not allowed; give column name(s) or None")
    missing = df[cols].isna().any()
    if missing.any():
        raise EstimatorInputError(
            f"strata column {missing.idxmax()!r} has missing values; code them as a level"
        )
    return df.groupby(cols, sort=False).ngroup().to_numpy(dtype=np.int64)


def _cluster_codes(df: pd.DataFrame, col: str, param: str = "cluster_col") -> np.ndarray:
    codes, _ = pd.factorize(df[col])
    if (codes < 0).any():
        raise EstimatorInputError(f"{param}={col!r} has missing values; every row needs an id")
    return codes.astype(np.int64, copy=False)


class CoxPH:
    """Cox proportional-hazards model on a DataFrame (lifelines-like interface).

    Parameters
    ----------
    ties : {"efron", "breslow"}
    tol : float
        Relative log-likelihood change for convergence (R ``coxph`` rule).
    max_iter : int
        Maximum Newton-Raphson iterations.
    alpha : float
        Confidence intervals have level ``1 - alpha``.

    Examples
    --------
    >>> cph = CoxPH().fit(df, duration_col="pfs_months", event_col="pfs_event",
    ...                   covariates=["treated"], weights_col="w", robust=True)
    >>> cph.summary
    """

    def __init__(
        self, ties: str = "efron", tol: float = 1e-9, max_iter: int = 50, alpha: float = 0.05
    ) -> None:
        check_ties(ties)
        check_iteration(tol, max_iter)
        if not (isinstance(alpha, numbers.Real) and 0.0 < alpha < 1.0):
            raise EstimatorInputError(f"alpha={alpha!r} is not allowed; it must be in (0, 1)")
        self.ties, self.tol, self.max_iter, self.alpha = ties, tol, max_iter, float(alpha)

    def fit(
        self,
        df: pd.DataFrame,
        duration_col: str,
        event_col: str,
        covariates: Sequence[str] | None = None,
        weights_col: str | None = None,
        cluster_col: str | None = None,
        strata: str | Sequence[str] | None = None,
        robust: bool = False,
        entry_col: str | None = None,
        id_col: str | None = None,
    ) -> CoxPH:
        """Fit the model; returns ``self``.

        Parameters
        ----------
        df : DataFrame
            One row per patient, or with ``entry_col`` one row per (start, stop]
            interval (counting-process / long format).
        duration_col : str
            Follow-up time in months (> 0); the interval's stop with ``entry_col``.
        event_col : str
            1 = event, 0 = censored.
        covariates : list of str, optional
            Model columns (categoricals one-hot coded, see
            :func:`estimators.design_matrix`).  None = every column not named by
            another argument (lifelines convention).
        weights_col : str, optional
            Case weights (> 0).
        cluster_col : str, optional
            Cluster id for the robust variance (implies ``robust``).
        strata : str or list of str, optional
            Stratification column(s).
        robust : bool
            Lin-Wei sandwich variance.
        entry_col : str, optional
            Entry (start) time in months (lifelines' name): the row is at risk on
            (start, stop], for delayed entry and time-varying covariates.  Needs
            start >= 0 and stop > start; with ``cluster_col`` (the patient id, as R
            ``coxph(..., cluster = id)``) one patient's intervals must not overlap.
        id_col : str, optional
            Patient id of (start, stop] rows (lifelines' name; with ``entry_col`` only):
            a patient's intervals must not overlap.  It does not change the variance
            (``cluster_col`` does).  Without ``id_col`` and ``cluster_col`` rows cannot
            be attributed to patients and overlap is not checked.
        """
        if not isinstance(robust, bool | np.bool_):
            raise EstimatorInputError(f"robust={robust!r} is not allowed; use True or False")
        strata_cols = [strata] if isinstance(strata, str) else list(strata or [])
        check_frame(
            df,
            duration_col=duration_col,
            event_col=event_col,
            covariates=covariates,
            weights_col=weights_col,
            cluster_col=cluster_col,
            strata=strata_cols,
            entry_col=entry_col,
            id_col=id_col,
        )
        if id_col is not None and entry_col is None:
            raise EstimatorInputError(
                f"id_col={id_col!r} identifies (start, stop] rows; give entry_col as well"
            )
        used = {
            duration_col, event_col, weights_col, cluster_col, entry_col, id_col, *strata_cols
        }  # fmt: skip
        if covariates is None:
            covariates = [c for c in df.columns if c not in used]
        if len(covariates) == 0:
            raise EstimatorInputError(
                "covariates is empty; a Cox model needs at least one covariate column"
            )
        design = design_matrix(df, covariates)
        if entry_col is not None:
            res = _fit_counting(
                raw_float_column(df, entry_col, "entry_col"),
                float_column(df, duration_col, "duration_col"),
                float_column(df, event_col, "event_col"),
                design.X,
                None if weights_col is None else float_column(df, weights_col, "weights_col"),
                None if strata is None else _strata_codes(df, strata),
                None if cluster_col is None else _cluster_codes(df, cluster_col),
                robust,
                self.ties,
                self.tol,
                self.max_iter,
                None,
                names=design.names,
                entry_param=f"entry_col={entry_col!r}",
                stop_param=f"duration_col={duration_col!r}",
                labels=getattr(df, "index", None),
                ids=None if id_col is None else _cluster_codes(df, id_col, "id_col"),
                ids_param=f"id_col={id_col!r}",
            )
            self._store(res, design.names, robust or cluster_col is not None)
            return self
        res = _fit(
            float_column(df, duration_col, "duration_col"),
            float_column(df, event_col, "event_col"),
            design.X,
            None if weights_col is None else float_column(df, weights_col, "weights_col"),
            None if strata is None else _strata_codes(df, strata),
            None if cluster_col is None else _cluster_codes(df, cluster_col),
            robust,
            self.ties,
            self.tol,
            self.max_iter,
            None,
            names=design.names,
        )
        self._store(res, design.names, robust or cluster_col is not None)
        return self

    def _store(self, res: CoxResult, names: Sequence[str], robust: bool) -> None:
        self.result_ = res
        self.robust_ = robust
        self._names = tuple(names)
        self.log_likelihood_ = res.loglik
        self.n_iter_ = res.n_iter
        self.converged_ = res.converged
        self.gradient_norm_ = res.gradient_norm
        self.warnings_ = res.warnings
        self.n_ = res.n
        self.events_ = res.events

    # pandas views of ``result_``, built on access (fits in loops pay nothing for them)
    @property
    def _index(self) -> pd.Index:
        return pd.Index(self._names, name="covariate")

    @property
    def params_(self) -> pd.Series:
        """Log hazard ratios, indexed by design column."""
        return pd.Series(self.result_.params, index=self._index, name="coef")

    @property
    def standard_errors_(self) -> pd.Series:
        """SEs from ``variance_matrix_`` (robust when robust / clustered)."""
        return pd.Series(self.result_.se, index=self._index, name="se(coef)")

    @property
    def model_standard_errors_(self) -> pd.Series:
        """Model-based SEs (inverse information), whatever ``robust``."""
        return pd.Series(self.result_.model_se, index=self._index, name="model se(coef)")

    @property
    def variance_matrix_(self) -> pd.DataFrame:
        """Covariance of ``params_`` (robust when robust / clustered, else model-based)."""
        return pd.DataFrame(self.result_.cov, index=self._index, columns=self._index)

    @property
    def hazard_ratios_(self) -> pd.Series:
        """exp(params_)."""
        return np.exp(self.params_).rename("exp(coef)")

    def _bounds(self) -> tuple[str, np.ndarray, np.ndarray]:
        z = ndtri(1.0 - self.alpha / 2.0)
        b, se = self.result_.params, self.result_.se
        return f"{100 * (1 - self.alpha):g}%", b - z * se, b + z * se

    @property
    def confidence_intervals_(self) -> pd.DataFrame:
        """Wald confidence limits for the log hazard ratios (level 1 - alpha)."""
        pct, lo, hi = self._bounds()
        return pd.DataFrame({f"{pct} lower-bound": lo, f"{pct} upper-bound": hi}, index=self._index)

    @property
    def summary(self) -> pd.DataFrame:
        """coef, exp(coef), se(coef), confidence limits on both scales, z and p."""
        pct, lo, hi = self._bounds()
        b, se = self.result_.params, self.result_.se
        z = b / se
        return pd.DataFrame(
            {
                "coef": b,
                "exp(coef)": np.exp(b),
                "se(coef)": se,
                f"coef lower {pct}": lo,
                f"coef upper {pct}": hi,
                f"exp(coef) lower {pct}": np.exp(lo),
                f"exp(coef) upper {pct}": np.exp(hi),
                "z": z,
                "p": 2.0 * ndtr(-np.abs(z)),
            },
            index=self._index,
        )

    def __repr__(self) -> str:
        if not hasattr(self, "result_"):
            return f"CoxPH(ties={self.ties!r}) (not fitted)"
        flag = "" if self.converged_ else ", NOT CONVERGED"
        return (
            f"CoxPH(ties={self.ties!r}, n={self.n_}, events={self.events_}, "
            f"loglik={self.log_likelihood_:.4f}{flag})"
        )


def _cox_derivatives(time, event, X, weights, strata, beta, ties):
    """Log partial likelihood, score (p,) and information (p, p) at ``beta`` (test hook)."""
    t, x, w, e, s = _prepare(time, event, X, weights, strata)
    order = _sort_order(t, s)
    starts, newstrat = k._tie_groups(t[order], s[order])
    u = np.empty(x.shape[1])
    imat = np.empty((x.shape[1], x.shape[1]))
    ll = k._cox_pass(
        x[order],
        w[order],
        e[order],
        starts,
        newstrat,
        np.asarray(beta, dtype=np.float64),
        ties == "efron",
        u,
        imat,
    )
    return ll, u, imat


def _cox_score_residuals(time, event, X, weights, strata, beta, ties):
    """Unweighted score residuals (n, p) at ``beta``, in the input row order (test hook)."""
    t, x, w, e, s = _prepare(time, event, X, weights, strata)
    order = _sort_order(t, s)
    starts, newstrat = k._tie_groups(t[order], s[order])
    r = k._score_residuals(
        x[order],
        w[order],
        e[order],
        starts,
        newstrat,
        np.asarray(beta, dtype=np.float64),
        ties == "efron",
    )
    out = np.empty_like(r)
    out[order] = r
    return out


def _prepare(time, event, X, weights, strata):
    t = np.asarray(time, dtype=np.float64)
    x = np.ascontiguousarray(X, dtype=np.float64)
    w = np.ones(t.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    s = np.zeros(t.shape[0], np.int64) if strata is None else np.asarray(strata, np.int64)
    return t, x, w, np.asarray(event).astype(np.int8), s
