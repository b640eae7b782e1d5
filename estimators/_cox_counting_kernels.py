"""numba kernels for the Cox model on counting-process (start, stop] data.

A separate family from :mod:`estimators._cox_kernels` (used only when an entry time is
given), so fits without delayed entry keep their own kernels unchanged.

Layout: rows sorted by stratum, then stop time *descending*.  A tie group is a run of
rows with the same stratum and stop time.  The risk set at a group's time t is
``{i : entry_i < t <= stop_i}``: the sweep adds each group's rows to running sums, then
removes every row of the stratum whose entry is >= t, before the group's event terms.
A removed row was always added before (entry < stop), so the sums stay those of the
risk set.  Efron / Breslow terms as R ``survival`` (agfit4.c).

Everything that does not depend on the coefficients is done once, before the Newton
loop, by :func:`_cp_prepare`: the gather into the stop order, the tie groups, the
*removal list* (the rows leaving the risk set at each group, in the order the sweep
meets them, so the pass reads it sequentially instead of searching an entry order), the
events per group and the events' part of the score
and log-likelihood (``sum w x`` and ``sum w`` over events).  A Newton pass
(:func:`_cp_pass`) is then one exp per row, O(p^2) running second moments per row added
or removed, visiting only the groups with events (the rows added and removed between
two of them are contiguous blocks), and Efron's tied-event sums only for groups with two
or more events.
Each pass also keeps, per group with events, the hazard increments and their products
with the risk-set means, so the score residuals (:func:`_cp_score_residuals`) need no
further risk-set sweep: O(n p), a difference per row of two cumulative sums (up to its
stop and up to its entry).
Large temporaries are few and allocated once (fresh pages fault, ~2 us each here).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._cox_kernels import (
    CONVERGED,
    MAX_ITER,
    NONFINITE,
    SINGULAR,
    _chol_solve,
    _cholesky,
    _log_term,
)


@njit(cache=True, error_model="numpy")
def _dense_codes(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Codes 0 .. m-1 in order of first appearance, and m; m = -1 (codes unchanged)
    when the range of ``codes`` is too wide for a lookup table (caller falls back)."""
    n = codes.shape[0]
    if n == 0:
        return codes.copy(), 0
    lo = codes[0]
    hi = codes[0]
    for i in range(n):
        lo = min(lo, codes[i])
        hi = max(hi, codes[i])
    if float(hi) - float(lo) > 4.0 * n + 1024.0:  # floats: hi - lo may overflow int64
        return codes.copy(), -1
    table = np.full(hi - lo + 1, -1, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        k = codes[i] - lo
        if table[k] < 0:
            table[k] = m
            m += 1
        out[i] = table[k]
    return out, m


@njit(cache=True, error_model="numpy")
def _first_overlap(entry, stop, codes, n_codes, order):
    """First pair of overlapping intervals of one cluster, or (-1, -1).

    ``order`` sorts rows by stop descending; a stable bucket sort by the dense cluster
    ``codes`` (0 .. n_codes-1) puts each cluster's rows in stop-descending order, and
    intervals sorted by stop are disjoint iff each one's entry >= the next one's stop.
    """
    n = entry.shape[0]
    count = np.zeros(n_codes + 1, dtype=np.int64)
    for i in range(n):
        count[codes[i] + 1] += 1
    for c in range(n_codes):
        count[c + 1] += count[c]
    byc = np.empty(n, dtype=np.int64)
    for k in range(n):
        i = order[k]
        byc[count[codes[i]]] = i
        count[codes[i]] += 1
    for k in range(n - 1):
        a = byc[k]
        b = byc[k + 1]
        if codes[a] == codes[b] and entry[a] < stop[b]:
            return b, a
    return -1, -1


@njit(cache=True, error_model="numpy")
def _cp_prepare(stop, entry, event, X, w, strata, order, eorder):
    """Sorted, centred data and the coefficient-free structure of the sweep.

    Parameters
    ----------
    stop, entry : (n,) float64 months, entry < stop.  event : (n,) int8.
    X : (n, p) float64.  w : (n,) float64.  strata : (n,) int64.  All in the caller's
    row order.
    order : (n,) int64 permutation by stratum, then stop descending.
    eorder : (m,) int64 rows by stratum, then entry descending; rows with entry 0 (never
    removed: every event time is > 0) may be left out.

    Returns
    -------
    xs (n, p) centred covariates, ws (n,), es (n,) int8 in the stop order;
    starts (G + 1,), newstrat (G,) tie groups; rlist (R,) rows (stop-order positions)
    in the order they leave the risk set, rstart (G + 1,) each group's slice of it;
    nd (G,) events per group; blk (E, 7) int64 per group with events: first row added
    since the previous such group of the stratum, the group's first row, its end, the
    slice of rlist removed since then, a new-stratum flag, the number of events; bdwt
    (E,) their total weight; u0 (p,) ``sum w x`` and wev ``sum w`` over events.
    """
    n, p = X.shape
    mean = np.zeros(p)
    for i in range(n):
        for j in range(p):
            mean[j] += X[i, j]
    mean /= n
    pos = np.empty(n, dtype=np.int64)
    ws = np.empty(n)
    es = np.empty(n, dtype=np.int8)
    xs = np.empty((n, p))
    starts = np.empty(n + 1, dtype=np.int64)
    newstrat = np.empty(n, dtype=np.bool_)
    ng = 0
    for i in range(n):
        o = order[i]
        pos[o] = i
        ws[i] = w[o]
        es[i] = event[o]
        for j in range(p):
            xs[i, j] = X[o, j] - mean[j]
        new_s = i == 0 or strata[o] != strata[order[i - 1]]
        if new_s or stop[o] != stop[order[i - 1]]:
            starts[ng] = i
            newstrat[ng] = new_s
            ng += 1
    starts[ng] = n
    starts = starts[: ng + 1]
    newstrat = newstrat[:ng]
    rlist = np.empty(n, dtype=np.int64)
    rstart = np.empty(ng + 1, dtype=np.int64)
    nd = np.zeros(ng, dtype=np.int64)
    dwt = np.zeros(ng)
    u0 = np.zeros(p)
    wev = 0.0
    nr = 0
    ep = 0
    ne = eorder.shape[0]
    for g in range(ng):
        a = starts[g]
        st = strata[order[a]]
        t = stop[order[a]]
        if newstrat[g]:
            while ep < ne and strata[eorder[ep]] < st:  # rows of earlier strata
                ep += 1
        rstart[g] = nr
        while ep < ne and strata[eorder[ep]] == st and entry[eorder[ep]] >= t:
            i = pos[eorder[ep]]
            rlist[nr] = i
            nr += 1
            ep += 1
        for i in range(a, starts[g + 1]):
            if es[i]:
                nd[g] += 1
                dwt[g] += ws[i]
                wev += ws[i]
                for j in range(p):
                    u0[j] += ws[i] * xs[i, j]
    rstart[ng] = nr
    # event blocks: per group with events, the rows added since the previous one of its
    # stratum (contiguous in the stop order), the removals since then (contiguous in
    # rlist); groups after a stratum's last event never matter
    nev = 0
    for g in range(ng):
        if nd[g] > 0:
            nev += 1
    blk = np.empty((nev, 7), dtype=np.int64)
    bdwt = np.empty(nev)
    k = 0
    row0 = 0
    rem0 = 0
    fresh = True
    for g in range(ng):
        if newstrat[g]:
            row0, rem0, fresh = starts[g], rstart[g], True
        if nd[g] == 0:
            continue
        blk[k, 0] = row0
        blk[k, 1] = starts[g]  # the group's own rows (Efron's tied-event sums)
        blk[k, 2] = starts[g + 1]
        blk[k, 3] = rem0
        blk[k, 4] = rstart[g + 1]
        blk[k, 5] = fresh
        blk[k, 6] = nd[g]
        bdwt[k] = dwt[g]
        row0, rem0, fresh = starts[g + 1], rstart[g + 1], False
        k += 1
    return xs, ws, es, starts, newstrat, rlist[:nr], rstart, nd, blk, bdwt, u0, wev


@njit(cache=True, error_model="numpy")
def _cp_risk(X, w, beta, risk):
    """Fill ``risk`` (n,) with w exp(eta - max eta); returns max eta."""
    n, p = X.shape
    top = -np.inf
    for i in range(n):
        s = 0.0
        for j in range(p):
            s += X[i, j] * beta[j]
        risk[i] = s
        top = max(top, s)
    for i in range(n):
        risk[i] = w[i] * np.exp(risk[i] - top)
    return top


@njit(cache=True, error_model="numpy")
def _cp_pass(X, w, event, rlist, blk, bdwt, u0, wev, beta, efron, u, imat, risk, terms):
    """Weighted log partial likelihood of (start, stop] data; fills score and information.

    Inputs as returned by :func:`_cp_prepare`; the sweep visits only the groups with
    events (``blk``), adding each block of rows and removing each block of ``rlist``
    in tight loops.  ``u`` (p,), ``imat`` (p, p) and the workspace ``risk`` (n,) are
    overwritten.  ``terms`` (E, 2 + 3p) receives, per group with events, the hazard
    increment ``sum_k dH_k``, its Efron share ``sum_k (1 - k/d) dH_k`` of the tied
    events themselves, then p columns each of ``sum_k dH_k xbar_k``,
    ``sum_k (1 - k/d) dH_k xbar_k`` and ``mean_k xbar_k``: what the score residuals
    need at this ``beta``, kept so that they cost no further sweep.  Returns the log
    partial likelihood.
    """
    p = X.shape[1]
    top = _cp_risk(X, w, beta, risk)
    s1 = np.zeros(p)
    s2 = np.zeros((p, p))
    d1 = np.zeros(p)
    d2 = np.zeros((p, p))
    xb = np.zeros(p)
    loglik = -top * wev
    for j in range(p):
        u[j] = u0[j]
        loglik += beta[j] * u0[j]
    imat[:, :] = 0.0
    s0 = 0.0
    prod, prodwt = 1.0, 0.0
    for kk in range(blk.shape[0]):
        if blk[kk, 5]:
            s0 = 0.0
            s1[:] = 0.0
            s2[:, :] = 0.0
        for i in range(blk[kk, 0], blk[kk, 2]):
            r = risk[i]
            s0 += r
            for j in range(p):
                rx = r * X[i, j]
                s1[j] += rx
                for k in range(j + 1):
                    s2[j, k] += rx * X[i, k]
        for q in range(blk[kk, 3], blk[kk, 4]):
            i = rlist[q]
            r = risk[i]
            s0 -= r
            for j in range(p):
                rx = r * X[i, j]
                s1[j] -= rx
                for k in range(j + 1):
                    s2[j, k] -= rx * X[i, k]
        nterm = blk[kk, 6] if efron else 1
        d0 = 0.0
        if nterm > 1:  # the tied events' own sums, for Efron's down-weighting
            d1[:] = 0.0
            d2[:, :] = 0.0
            for i in range(blk[kk, 1], blk[kk, 2]):
                if event[i]:
                    r = risk[i]
                    d0 += r
                    for j in range(p):
                        rx = r * X[i, j]
                        d1[j] += rx
                        for k in range(j + 1):
                            d2[j, k] += rx * X[i, k]
        wt = bdwt[kk] / nterm
        row = terms[kk]
        row[:] = 0.0
        for t in range(nterm):
            f = t / nterm
            den = s0 - f * d0
            inv = 1.0 / den
            loglik, prod, prodwt = _log_term(loglik, prod, prodwt, wt, den)
            for j in range(p):
                xb[j] = (s1[j] - f * d1[j]) * inv
                u[j] -= wt * xb[j]
            for j in range(p):
                for k in range(j + 1):
                    imat[j, k] += wt * (inv * (s2[j, k] - f * d2[j, k]) - xb[j] * xb[k])
            dh = wt * inv
            row[0] += dh
            row[1] += (1.0 - f) * dh
            for j in range(p):
                row[2 + j] += dh * xb[j]
                row[2 + p + j] += (1.0 - f) * dh * xb[j]
                row[2 + 2 * p + j] += xb[j] / nterm
    loglik -= prodwt * np.log(prod)
    for j in range(p):
        for k in range(j):
            imat[k, j] = imat[j, k]
    return loglik


@njit(cache=True, error_model="numpy")
def _cp_newton(X, w, event, rlist, blk, bdwt, u0, wev, beta0, efron, tol, max_iter):
    """Newton-Raphson with step halving, the rule of ``_cox_kernels._newton_t``.

    Returns beta (p,), loglik, score (p,), information (p, p), iterations, status and
    the per-event-group ``terms`` of :func:`_cp_pass` at the returned beta.
    """
    p = beta0.shape[0]
    beta = beta0.copy()
    u = np.empty(p)
    imat = np.empty((p, p))
    u_new = np.empty(p)
    imat_new = np.empty((p, p))
    nev = blk.shape[0]
    terms = np.empty((nev, 2 + 3 * p))
    terms_new = np.empty((nev, 2 + 3 * p))
    args = (X, w, event, rlist, blk, bdwt, u0, wev)
    risk = np.empty(X.shape[0])  # one workspace for every pass (allocations fault pages)
    loglik = _cp_pass(*args, beta, efron, u, imat, risk, terms)
    if not np.isfinite(loglik):
        return beta, loglik, u, imat, 0, NONFINITE, terms
    low, ok = _cholesky(imat)
    if not ok:
        return beta, loglik, u, imat, 0, SINGULAR, terms
    newbeta = beta + _chol_solve(low, u)
    halving = False
    for it in range(1, max_iter + 1):
        newlik = _cp_pass(*args, newbeta, efron, u_new, imat_new, risk, terms_new)
        finite = np.isfinite(newlik)
        if finite and not halving and abs(newlik - loglik) <= tol * abs(newlik):
            return newbeta, newlik, u_new, imat_new, it, CONVERGED, terms_new
        if not finite or newlik < loglik:
            halving = True
            newbeta = 0.5 * (newbeta + beta)
            continue
        halving = False
        beta[:] = newbeta
        loglik = newlik
        u[:] = u_new
        imat[:, :] = imat_new
        terms, terms_new = terms_new, terms
        low, ok = _cholesky(imat)
        if not ok:
            return beta, loglik, u, imat, it, SINGULAR, terms
        newbeta = beta + _chol_solve(low, u)
    return beta, loglik, u, imat, max_iter, MAX_ITER, terms


@njit(cache=True, error_model="numpy")
def _cp_score_residuals(X, event, starts, newstrat, rlist, rstart, nd, beta, terms, w, codes,
                        n_codes, order):  # fmt: skip
    """Score residuals of (start, stop] rows, or their weighted sums per cluster.

    ``n_codes == 0``: the residuals (n, p), unweighted, in the stop order (``w``,
    ``codes``, ``order`` unused).  Else the cluster totals ``sum_i w_i r_i`` (n_codes,
    p), row i of the stop order belonging to cluster ``codes[order[i]]``: accumulated
    as the residuals are built, with no (n, p) array.

    ``r_i = delta_i (x_i - xbar_g(i)) - e_i sum_{entry_i < s <= stop_i} sum_k c_ik dH_sk
    (x_i - xbar_sk)`` (R ``residuals.coxph(type="score")`` for counting-process data),
    from the per-event-group ``terms`` of the pass at ``beta`` (:func:`_cp_pass`).  One
    sweep, time ascending, carries their cumulative sums: a row gets
    ``+e_i (x_i H - XH)`` at the group where it leaves the risk set (its entry) and
    ``-e_i (x_i H - XH)`` at its own group (its stop), so the sum runs over
    ``entry_i < s <= stop_i``.  O(n p).
    """
    n, p = X.shape
    ng = starts.shape[0] - 1
    ex = np.empty(n)
    top = -np.inf
    for i in range(n):
        v = 0.0
        for j in range(p):
            v += X[i, j] * beta[j]
        ex[i] = v
        top = max(top, v)
    for i in range(n):
        ex[i] = np.exp(ex[i] - top)  # exp(eta - max eta), as in the passes
    nev = terms.shape[0]
    clustered = n_codes > 0
    resid = np.zeros((n_codes if clustered else n, p))
    cum = 0.0
    cumx = np.zeros(p)
    kk = nev
    row = terms[0]  # every fit has an event
    for g in range(ng - 1, -1, -1):  # time ascending within each stratum
        if g == ng - 1 or newstrat[g + 1]:
            cum = 0.0
            cumx[:] = 0.0
        own = nd[g] > 0
        if own:
            kk -= 1
            row = terms[kk]
        for i in range(starts[g], starts[g + 1]):
            e = ex[i]
            o = i
            if clustered:
                o = codes[order[i]]
                e *= w[i]
            if not own:
                for j in range(p):
                    resid[o, j] -= e * (X[i, j] * cum - cumx[j])
            elif event[i]:
                h = cum + row[1]
                c = w[i] if clustered else 1.0
                for j in range(p):
                    xh = cumx[j] + row[2 + p + j]
                    resid[o, j] += c * (X[i, j] - row[2 + 2 * p + j]) - e * (X[i, j] * h - xh)
            else:
                h = cum + row[0]
                for j in range(p):
                    resid[o, j] -= e * (X[i, j] * h - (cumx[j] + row[2 + j]))
        if own:
            cum += row[0]
            for j in range(p):
                cumx[j] += row[2 + j]
        for q in range(rstart[g], rstart[g + 1]):  # rows entering at or after t_g
            i = rlist[q]
            e = ex[i]
            o = i
            if clustered:
                o = codes[order[i]]
                e *= w[i]
            for j in range(p):
                resid[o, j] += e * (X[i, j] * cum - cumx[j])
    return resid
