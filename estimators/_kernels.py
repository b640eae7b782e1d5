"""numba kernels for the Cox proportional-hazards model.

Layout shared by every kernel: rows are sorted by stratum, then by time
*descending*.  A *tie group* is a run of rows with the same stratum and time; the
risk set of a group is every row from the start of its stratum to the end of the
group, so risk-set sums are running sums.  One pass over the rows costs
O(n p^2); no kernel loops over risk sets.

Weighted Efron ties follow R ``survival`` (coxfit6.c): the ``d`` tied events of a
group share their mean weight, and the k-th of the ``d`` Efron terms
(k = 0..d-1) removes ``k/d`` of the tied events' risk from the denominator.
"""

from __future__ import annotations

import numpy as np
from numba import njit

CHOL_TOL = 1.8189894035458617e-12  # eps ** 0.75, R survival's toler.chol

CONVERGED = 0
MAX_ITER = 1
SINGULAR = 2
NONFINITE = 3


@njit(cache=True)
def _tie_groups(time: np.ndarray, strata: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tie groups of sorted data: starts (G + 1,) with n appended, new-stratum flags (G,)."""
    n = time.shape[0]
    starts = np.empty(n + 1, dtype=np.int64)
    newstrat = np.empty(n, dtype=np.bool_)
    g = 0
    for i in range(n):
        new_s = i == 0 or strata[i] != strata[i - 1]
        if new_s or time[i] != time[i - 1]:
            starts[g] = i
            newstrat[g] = new_s
            g += 1
    starts[g] = n
    return starts[: g + 1], newstrat[:g]


@njit(cache=True)
def _risk(X: np.ndarray, w: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear predictor eta - max(eta) (n,) and weighted relative risk w exp(.) (n,)."""
    n, p = X.shape
    eta = np.empty(n)
    top = -np.inf
    for i in range(n):
        s = 0.0
        for j in range(p):
            s += X[i, j] * beta[j]
        eta[i] = s
        top = max(top, s)
    risk = np.empty(n)
    for i in range(n):
        eta[i] -= top
        risk[i] = w[i] * np.exp(eta[i])
    return eta, risk


@njit(cache=True)
def _cox_pass(X, w, event, starts, newstrat, beta, efron, u, imat):
    """Weighted log partial likelihood at ``beta``; fills score ``u`` and information ``imat``.

    Parameters
    ----------
    X : (n, p) float64, sorted (and preferably centred) covariates.
    w : (n,) float64 weights.  event : (n,) int8 0/1.
    starts, newstrat : tie groups from :func:`_tie_groups`.
    beta : (p,) coefficients.  efron : bool (False = Breslow).
    u : (p,) and imat : (p, p) outputs, overwritten.

    Returns
    -------
    float : log partial likelihood.
    """
    p = X.shape[1]
    eta, risk = _risk(X, w, beta)
    u[:] = 0.0
    imat[:, :] = 0.0
    s1 = np.zeros(p)
    s2 = np.zeros((p, p))
    d1 = np.zeros(p)
    d2 = np.zeros((p, p))
    xb = np.empty(p)
    s0 = 0.0
    loglik = 0.0
    for g in range(starts.shape[0] - 1):
        if newstrat[g]:
            s0 = 0.0
            s1[:] = 0.0
            s2[:, :] = 0.0
        nd = 0
        deadwt = 0.0
        d0 = 0.0
        d1[:] = 0.0
        d2[:, :] = 0.0
        for i in range(starts[g], starts[g + 1]):
            r = risk[i]
            s0 += r
            for j in range(p):
                rx = r * X[i, j]
                s1[j] += rx
                for k in range(j + 1):
                    s2[j, k] += rx * X[i, k]
            if event[i]:
                nd += 1
                deadwt += w[i]
                loglik += w[i] * eta[i]
                d0 += r
                for j in range(p):
                    u[j] += w[i] * X[i, j]
                    if efron:
                        rx = r * X[i, j]
                        d1[j] += rx
                        for k in range(j + 1):
                            d2[j, k] += rx * X[i, k]
        if nd == 0:
            continue
        nterm = nd if efron else 1
        wt = deadwt / nterm
        for m in range(nterm):
            f = m / nterm
            den = s0 - f * d0
            loglik -= wt * np.log(den)
            for j in range(p):
                xb[j] = (s1[j] - f * d1[j]) / den
                u[j] -= wt * xb[j]
            for j in range(p):
                for k in range(j + 1):
                    imat[j, k] += wt * ((s2[j, k] - f * d2[j, k]) / den - xb[j] * xb[k])
    for j in range(p):
        for k in range(j):
            imat[k, j] = imat[j, k]
    return loglik


@njit(cache=True)
def _cholesky(a: np.ndarray) -> tuple[np.ndarray, bool]:
    """Lower Cholesky factor of a symmetric matrix; ok=False if a pivot is below
    ``CHOL_TOL`` times the largest diagonal element (not positive definite)."""
    p = a.shape[0]
    low = np.zeros((p, p))
    top = 0.0
    for j in range(p):
        top = max(top, abs(a[j, j]))
    eps = CHOL_TOL * top
    if not np.isfinite(top) or top == 0.0:
        return low, False
    for j in range(p):
        s = a[j, j]
        for k in range(j):
            s -= low[j, k] * low[j, k]
        if not s > eps:
            return low, False
        low[j, j] = np.sqrt(s)
        for i in range(j + 1, p):
            t = a[i, j]
            for k in range(j):
                t -= low[i, k] * low[j, k]
            low[i, j] = t / low[j, j]
    return low, True


@njit(cache=True)
def _chol_solve(low: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve (L L') x = b for x given the lower Cholesky factor L."""
    p = low.shape[0]
    y = np.empty(p)
    for i in range(p):
        s = b[i]
        for k in range(i):
            s -= low[i, k] * y[k]
        y[i] = s / low[i, i]
    x = np.empty(p)
    for i in range(p - 1, -1, -1):
        s = y[i]
        for k in range(i + 1, p):
            s -= low[k, i] * x[k]
        x[i] = s / low[i, i]
    return x


@njit(cache=True)
def _chol_inverse(low: np.ndarray) -> np.ndarray:
    """Inverse of L L' from its lower Cholesky factor (symmetric result)."""
    p = low.shape[0]
    inv = np.empty((p, p))
    e = np.zeros(p)
    for j in range(p):
        e[:] = 0.0
        e[j] = 1.0
        inv[:, j] = _chol_solve(low, e)
    for j in range(p):
        for k in range(j):
            m = 0.5 * (inv[j, k] + inv[k, j])
            inv[j, k] = m
            inv[k, j] = m
    return inv


@njit(cache=True)
def _newton(X, w, event, starts, newstrat, beta0, efron, tol, max_iter):
    """Newton-Raphson with step halving, stopping rule as R survival's coxph.

    Converged when ``|loglik_new - loglik_old| <= tol * |loglik_new|`` after a
    full (not halved) step; a step that lowers the log-likelihood is halved.

    Returns
    -------
    beta (p,), loglik, score u (p,) and information (p, p) at beta, iterations,
    status (CONVERGED, MAX_ITER, SINGULAR or NONFINITE).
    """
    p = beta0.shape[0]
    beta = beta0.copy()
    u = np.empty(p)
    imat = np.empty((p, p))
    u_new = np.empty(p)
    imat_new = np.empty((p, p))
    loglik = _cox_pass(X, w, event, starts, newstrat, beta, efron, u, imat)
    if not np.isfinite(loglik):
        return beta, loglik, u, imat, 0, NONFINITE
    low, ok = _cholesky(imat)
    if not ok:
        return beta, loglik, u, imat, 0, SINGULAR
    newbeta = beta + _chol_solve(low, u)
    halving = False
    for it in range(1, max_iter + 1):
        newlik = _cox_pass(X, w, event, starts, newstrat, newbeta, efron, u_new, imat_new)
        finite = np.isfinite(newlik)
        if finite and not halving and abs(newlik - loglik) <= tol * abs(newlik):
            return newbeta, newlik, u_new, imat_new, it, CONVERGED
        if not finite or newlik < loglik:
            halving = True
            newbeta = 0.5 * (newbeta + beta)
            continue
        halving = False
        beta[:] = newbeta
        loglik = newlik
        u[:] = u_new
        imat[:, :] = imat_new
        low, ok = _cholesky(imat)
        if not ok:
            return beta, loglik, u, imat, it, SINGULAR
        newbeta = beta + _chol_solve(low, u)
    return beta, loglik, u, imat, max_iter, MAX_ITER


@njit(cache=True)
def _score_residuals(X, w, event, starts, newstrat, beta, efron):
    """Score residuals r (n, p), unweighted: ``sum_i w_i r_i`` is the score at ``beta``.

    For row i with relative risk e_i = exp(eta_i),
    ``r_i = delta_i (x_i - xbar_g(i)) - e_i sum_{s <= t_i} sum_k c_ik dH_sk (x_i - xbar_sk)``
    over the Efron terms k of every event time s in the row's stratum, with
    ``dH_sk = meanwt_s / den_sk`` and ``c_ik = 1 - k/d`` for the row's own tied
    event, else 1 (R ``residuals.coxph(type="score")``).  xbar_g is the mean of
    the group's Efron-term means.
    """
    n, p = X.shape
    eta, risk = _risk(X, w, beta)
    ng = starts.shape[0] - 1
    haz = np.zeros(ng)  # sum_k dH_k
    hazd = np.zeros(ng)  # sum_k (1 - k/d) dH_k, for the tied events themselves
    xhaz = np.zeros((ng, p))  # sum_k dH_k xbar_k
    xhazd = np.zeros((ng, p))  # sum_k (1 - k/d) dH_k xbar_k
    xmean = np.zeros((ng, p))  # mean_k xbar_k
    s1 = np.zeros(p)
    d1 = np.zeros(p)
    s0 = 0.0
    for g in range(ng):
        if newstrat[g]:
            s0 = 0.0
            s1[:] = 0.0
        nd = 0
        deadwt = 0.0
        d0 = 0.0
        d1[:] = 0.0
        for i in range(starts[g], starts[g + 1]):
            r = risk[i]
            s0 += r
            for j in range(p):
                s1[j] += r * X[i, j]
            if event[i]:
                nd += 1
                deadwt += w[i]
                d0 += r
                for j in range(p):
                    d1[j] += r * X[i, j]
        if nd == 0:
            continue
        nterm = nd if efron else 1
        wt = deadwt / nterm
        for m in range(nterm):
            f = m / nterm
            den = s0 - f * d0
            dh = wt / den
            haz[g] += dh
            hazd[g] += (1.0 - f) * dh
            for j in range(p):
                xbar = (s1[j] - f * d1[j]) / den
                xhaz[g, j] += dh * xbar
                xhazd[g, j] += (1.0 - f) * dh * xbar
                xmean[g, j] += xbar / nterm
    resid = np.empty((n, p))
    cumh = 0.0
    cumxh = np.zeros(p)
    for g in range(ng - 1, -1, -1):  # ascending time within stratum
        for i in range(starts[g], starts[g + 1]):
            e = np.exp(eta[i])
            if event[i]:
                h = cumh + hazd[g]
                for j in range(p):
                    xh = cumxh[j] + xhazd[g, j]
                    resid[i, j] = X[i, j] - xmean[g, j] - e * (X[i, j] * h - xh)
            else:
                h = cumh + haz[g]
                for j in range(p):
                    resid[i, j] = -e * (X[i, j] * h - (cumxh[j] + xhaz[g, j]))
        if newstrat[g]:
            cumh = 0.0
            cumxh[:] = 0.0
        else:
            cumh += haz[g]
            for j in range(p):
                cumxh[j] += xhaz[g, j]
    return resid


@njit(cache=True)
def _meat(resid, w, cluster, n_clusters):
    """Sum over clusters of (sum_i w_i r_i)(sum_i w_i r_i)'; cluster codes in [0, n_clusters)."""
    n, p = resid.shape
    sums = np.zeros((n_clusters, p))
    for i in range(n):
        c = cluster[i]
        for j in range(p):
            sums[c, j] += w[i] * resid[i, j]
    meat = np.zeros((p, p))
    for c in range(n_clusters):
        for j in range(p):
            for k in range(j + 1):
                meat[j, k] += sums[c, j] * sums[c, k]
    for j in range(p):
        for k in range(j):
            meat[k, j] = meat[j, k]
    return meat


@njit(cache=True)
def _sandwich(bread, meat):
    """bread @ meat @ bread for small symmetric p x p matrices."""
    return bread @ meat @ bread


@njit(cache=True)
def _cox_fit(time, event, X, w, strata, cluster, n_clusters, order, efron, robust, tol,
             max_iter, beta0):
    """Fit a (weighted, stratified) Cox model; every input in the caller's row order.

    Parameters
    ----------
    time : (n,) float64 months.  event : (n,) int8.  X : (n, p) float64.
    w : (n,) float64 weights.  strata : (n,) int64 codes.
    cluster : (n,) int64 codes in [0, n_clusters), or empty for one row per cluster.
    order : (n,) int64 permutation sorting rows by stratum, then time descending.
    efron, robust : bool.  tol : float.  max_iter : int.  beta0 : (p,) start.

    Returns
    -------
    beta, loglik, score (p,), information (p, p), model covariance (p, p),
    covariance (p, p) (robust when ``robust``), next Newton step at beta (p,),
    iterations, status.  Covariances are NaN when the information is singular.
    """
    n, p = X.shape
    ts = time[order]
    es = event[order]
    ws = w[order]
    ss = strata[order]
    xs = np.empty((n, p))
    for j in range(p):
        mean = 0.0
        for i in range(n):
            mean += X[i, j]
        mean /= n
        for i in range(n):
            xs[i, j] = X[order[i], j] - mean
    starts, newstrat = _tie_groups(ts, ss)
    beta, loglik, u, imat, n_iter, status = _newton(
        xs, ws, es, starts, newstrat, beta0, efron, tol, max_iter
    )
    low, ok = _cholesky(imat)
    if not ok:
        nan = np.full((p, p), np.nan)
        return beta, loglik, u, imat, nan, nan.copy(), np.full(p, np.nan), n_iter, status
    var = _chol_inverse(low)
    step = _chol_solve(low, u)
    if not robust:
        return beta, loglik, u, imat, var, var.copy(), step, n_iter, status
    resid = _score_residuals(xs, ws, es, starts, newstrat, beta, efron)
    if cluster.shape[0] == 0:
        cl = np.arange(n)
        n_cl = n
    else:
        cl = cluster[order]
        n_cl = n_clusters
    meat = _meat(resid, ws, cl, n_cl)
    return beta, loglik, u, imat, var, _sandwich(var, meat), step, n_iter, status
