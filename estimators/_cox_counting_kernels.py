"""numba kernels for the Cox model on counting-process (start, stop] data.

A separate family from :mod:`estimators._cox_kernels` (used only when an entry time is
given), so fits without delayed entry keep their own kernels unchanged.

Layout: rows sorted by stratum, then stop time *descending* (``order``), and a second
permutation ``eorder`` by stratum, then entry time descending.  A tie group is a run of
rows with the same stratum and stop time.  The risk set at a group's time t is
``{i : entry_i < t <= stop_i}``: the sweep adds each group's rows to running sums, then
removes (via ``eorder``) every row of the stratum whose entry is >= t, before the
group's event terms.  A removed row was always added before (entry < stop), so the sums
stay those of the risk set.  Efron / Breslow terms as R ``survival`` (agfit4.c).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._cox_kernels import CONVERGED, MAX_ITER, NONFINITE, SINGULAR, _chol_solve, _cholesky


@njit(cache=True, error_model="numpy")
def _exp_risk(X, w, beta):
    """exp(eta - max eta) and w exp(eta - max eta), each (n,); the max eta."""
    n, p = X.shape
    eta = np.empty(n)
    top = -np.inf
    for i in range(n):
        s = 0.0
        for j in range(p):
            s += X[i, j] * beta[j]
        eta[i] = s
        top = max(top, s)
    ex = np.empty(n)
    r = np.empty(n)
    for i in range(n):
        ex[i] = np.exp(eta[i] - top)
        r[i] = w[i] * ex[i]
    return ex, r, eta, top


@njit(cache=True, error_model="numpy")
def _cp_pass(X, w, event, stop, entry, strata, starts, newstrat, eorder, beta, efron, u, imat):
    """Weighted log partial likelihood of (start, stop] data; fills score and information.

    ``X, w, event, stop, strata`` in the stop order; ``entry`` and ``strata`` indexed by
    the same rows, ``eorder`` (n,) the rows (positions in the stop order) sorted by
    stratum then entry descending.  Returns the log-likelihood; also the group index at
    which each row left the risk set through its entry (-1: never), (n,).
    """
    n, p = X.shape
    ng = starts.shape[0] - 1
    _, risk, eta, top = _exp_risk(X, w, beta)
    removed_at = np.full(n, -1, dtype=np.int64)
    s1 = np.zeros(p)
    s2 = np.zeros((p, p))
    d1 = np.zeros(p)
    d2 = np.zeros((p, p))
    xb = np.zeros(p)
    u[:] = 0.0
    imat[:, :] = 0.0
    s0 = 0.0
    loglik = 0.0
    ep = 0  # next row of eorder to consider for removal
    for g in range(ng):
        a, b = starts[g], starts[g + 1]
        st = strata[a]
        t = stop[a]
        if newstrat[g]:
            s0 = 0.0
            s1[:] = 0.0
            s2[:, :] = 0.0
            while ep < n and strata[eorder[ep]] != st:  # rows of earlier strata
                ep += 1
        for i in range(a, b):
            r = risk[i]
            s0 += r
            for j in range(p):
                rx = r * X[i, j]
                s1[j] += rx
                for k in range(j + 1):
                    s2[j, k] += rx * X[i, k]
        while ep < n and strata[eorder[ep]] == st and entry[eorder[ep]] >= t:
            i = eorder[ep]
            r = risk[i]
            s0 -= r
            for j in range(p):
                rx = r * X[i, j]
                s1[j] -= rx
                for k in range(j + 1):
                    s2[j, k] -= rx * X[i, k]
            removed_at[i] = g
            ep += 1
        nd = 0
        deadwt = 0.0
        d0 = 0.0
        d1[:] = 0.0
        d2[:, :] = 0.0
        for i in range(a, b):
            if event[i]:
                nd += 1
                deadwt += w[i]
                loglik += w[i] * (eta[i] - top)
                r = risk[i]
                d0 += r
                for j in range(p):
                    u[j] += w[i] * X[i, j]
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
            inv = 1.0 / den
            loglik -= wt * np.log(den)
            for j in range(p):
                xb[j] = (s1[j] - f * d1[j]) * inv
                u[j] -= wt * xb[j]
            for j in range(p):
                for k in range(j + 1):
                    imat[j, k] += wt * (inv * (s2[j, k] - f * d2[j, k]) - xb[j] * xb[k])
    for j in range(p):
        for k in range(j):
            imat[k, j] = imat[j, k]
    return loglik, removed_at


@njit(cache=True, error_model="numpy")
def _cp_newton(
    X, w, event, stop, entry, strata, starts, newstrat, eorder, beta0, efron, tol, max_iter
):
    """Newton-Raphson with step halving, the rule of ``_cox_kernels._newton_t``.

    Returns beta (p,), loglik, score (p,), information (p, p), iterations, status.
    """
    p = beta0.shape[0]
    beta = beta0.copy()
    u = np.empty(p)
    imat = np.empty((p, p))
    u_new = np.empty(p)
    imat_new = np.empty((p, p))
    args = (X, w, event, stop, entry, strata, starts, newstrat, eorder)
    loglik, _ = _cp_pass(*args, beta, efron, u, imat)
    if not np.isfinite(loglik):
        return beta, loglik, u, imat, 0, NONFINITE
    low, ok = _cholesky(imat)
    if not ok:
        return beta, loglik, u, imat, 0, SINGULAR
    newbeta = beta + _chol_solve(low, u)
    halving = False
    for it in range(1, max_iter + 1):
        newlik, _ = _cp_pass(*args, newbeta, efron, u_new, imat_new)
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


@njit(cache=True, error_model="numpy")
def _cp_score_residuals(X, w, event, stop, entry, strata, starts, newstrat, eorder, beta, efron):
    """Score residuals (n, p) of (start, stop] rows, unweighted, in the stop order.

    ``r_i = delta_i (x_i - xbar_g(i)) - e_i sum_{entry_i < s <= stop_i} sum_k c_ik dH_sk
    (x_i - xbar_sk)`` (R ``residuals.coxph(type="score")`` for counting-process data):
    the sum over event times is a difference of cumulative sums up to stop_i and up to
    entry_i, the latter taken at the group where the row left the risk set.
    """
    n, p = X.shape
    ng = starts.shape[0] - 1
    u = np.empty(p)
    imat = np.empty((p, p))
    _, removed_at = _cp_pass(
        X, w, event, stop, entry, strata, starts, newstrat, eorder, beta, efron, u, imat
    )
    ex, risk, _, _ = _exp_risk(X, w, beta)
    haz = np.zeros(ng)
    hazd = np.zeros(ng)
    xhaz = np.zeros((ng, p))
    xhazd = np.zeros((ng, p))
    xmean = np.zeros((ng, p))
    s1 = np.zeros(p)
    d1 = np.zeros(p)
    s0 = 0.0
    ep = 0
    for g in range(ng):  # the pass again, first moments only, keeping per-group terms
        a, b = starts[g], starts[g + 1]
        st = strata[a]
        t = stop[a]
        if newstrat[g]:
            s0 = 0.0
            s1[:] = 0.0
            while ep < n and strata[eorder[ep]] != st:
                ep += 1
        for i in range(a, b):
            s0 += risk[i]
            for j in range(p):
                s1[j] += risk[i] * X[i, j]
        while ep < n and strata[eorder[ep]] == st and entry[eorder[ep]] >= t:
            i = eorder[ep]
            s0 -= risk[i]
            for j in range(p):
                s1[j] -= risk[i] * X[i, j]
            ep += 1
        nd = 0
        deadwt = 0.0
        d0 = 0.0
        d1[:] = 0.0
        for i in range(a, b):
            if event[i]:
                nd += 1
                deadwt += w[i]
                d0 += risk[i]
                for j in range(p):
                    d1[j] += risk[i] * X[i, j]
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
    # cumulative sums over groups at or after g within its stratum (times <= t_g)
    cum = np.zeros(ng + 1)
    cumx = np.zeros((ng + 1, p))
    for g in range(ng - 1, -1, -1):
        last = g == ng - 1 or newstrat[g + 1]
        base = 0.0 if last else cum[g + 1]
        cum[g] = base + haz[g]
        for j in range(p):
            cumx[g, j] = (0.0 if last else cumx[g + 1, j]) + xhaz[g, j]
    resid = np.empty((n, p))
    for g in range(ng):
        for i in range(starts[g], starts[g + 1]):
            e = ex[i]
            h = cum[g] - haz[g] + (hazd[g] if event[i] else haz[g])
            q = removed_at[i]
            he = cum[q] if q >= 0 else 0.0
            for j in range(p):
                xh = cumx[g, j] - xhaz[g, j] + (xhazd[g, j] if event[i] else xhaz[g, j])
                xe = cumx[q, j] if q >= 0 else 0.0
                r = -e * (X[i, j] * (h - he) - (xh - xe))
                if event[i]:
                    r += X[i, j] - xmean[g, j]
                resid[i, j] = r
    return resid


@njit(cache=True, error_model="numpy")
def _cp_fit(stop, entry, event, X, w, strata, order, eorder_rank, efron, tol, max_iter, beta0):
    """Fit a (weighted, stratified) Cox model on (start, stop] rows.

    Parameters
    ----------
    stop, entry : (n,) float64 months, entry < stop.  event : (n,) int8.
    X : (n, p) float64.  w : (n,) float64.  strata : (n,) int64.  All in the caller's
    row order.
    order : (n,) int64 permutation by stratum, then stop descending.
    eorder_rank : (n,) int64 permutation by stratum, then entry descending.
    efron : bool.  tol : float.  max_iter : int.  beta0 : (p,) start.

    Returns
    -------
    beta, loglik, score (p,), information (p, p), iterations, status, the sorted
    centred covariates (n, p) and the sorted inputs needed for residuals.
    """
    n, p = X.shape
    mean = np.zeros(p)
    for i in range(n):
        for j in range(p):
            mean[j] += X[i, j]
    mean /= n
    pos = np.empty(n, dtype=np.int64)  # position in the stop order of each input row
    ts = np.empty(n)
    en = np.empty(n)
    es = np.empty(n, dtype=np.int8)
    ws = np.empty(n)
    ss = np.empty(n, dtype=np.int64)
    xs = np.empty((n, p))
    for i in range(n):
        o = order[i]
        pos[o] = i
        ts[i] = stop[o]
        en[i] = entry[o]
        es[i] = event[o]
        ws[i] = w[o]
        ss[i] = strata[o]
        for j in range(p):
            xs[i, j] = X[o, j] - mean[j]
    eorder = np.empty(n, dtype=np.int64)
    for i in range(n):
        eorder[i] = pos[eorder_rank[i]]
    starts = np.empty(n + 1, dtype=np.int64)
    newstrat = np.empty(n, dtype=np.bool_)
    g = 0
    for i in range(n):
        new_s = i == 0 or ss[i] != ss[i - 1]
        if new_s or ts[i] != ts[i - 1]:
            starts[g] = i
            newstrat[g] = new_s
            g += 1
    starts[g] = n
    starts = starts[: g + 1]
    newstrat = newstrat[:g]
    beta, loglik, u, imat, n_iter, status = _cp_newton(
        xs, ws, es, ts, en, ss, starts, newstrat, eorder, beta0, efron, tol, max_iter
    )
    return beta, loglik, u, imat, n_iter, status, xs, ws, es, ts, en, ss, starts, newstrat, eorder
