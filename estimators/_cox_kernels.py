"""numba kernels for the Cox proportional-hazards model.

Layout shared by every kernel: rows are sorted by stratum, then by time
*descending*.  A *tie group* is a run of rows with the same stratum and time; the
risk set of a group is every row from the start of its stratum to the end of the
group, so risk-set sums are running sums: a likelihood pass costs O(n p) plus
O(n p^2) for the information, and no kernel loops over risk sets.

exp(eta) is computed once per distinct linear predictor among the last two seen (a
binary treatment alone has two): the same values, without an ``exp`` per row.  A single
two-valued column (the treatment-only fits of sIPTW, PSM and naive Cox) goes further:
its risk-set sums are ``W0 exp(b x0) + W1 exp(b x1)`` with running weights at risk per
value, so :func:`_binary_groups` reduces the data to per-event-group sums once and each
Newton pass (:func:`_binary_pass`) costs O(event groups).

Weighted Efron ties follow R ``survival`` (coxfit6.c): the ``d`` tied events of a
group share their mean weight, and the k-th of the ``d`` Efron terms
(k = 0..d-1) removes ``k/d`` of the tied events' risk from the denominator.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._column_kernels import _columns_times, _transposed_dot, _weighted_gram
from ._vexp import _exp_into

CHOL_TOL = 1.8189894035458617e-12  # eps ** 0.75, R survival's toler.chol

CONVERGED = 0
MAX_ITER = 1
SINGULAR = 2
NONFINITE = 3

DIRECT_P = 3  # up to this many covariates the information uses running second moments

# sum_k wt_k log(den_k) of the log-likelihood is taken as log of products of consecutive
# denominators with the same weight (every one when unweighted), flushed when a product
# leaves [LOG_SAFE_LOW, LOG_SAFE_HIGH]: a log per ~100 event terms instead of one each
LOG_SAFE_LOW = 1e-100
LOG_SAFE_HIGH = 1e100


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def _linear_predictor(X: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, float]:
    """eta = X beta (n,) and max(eta)."""
    n, p = X.shape
    eta = np.empty(n)
    top = -np.inf
    for i in range(n):
        s = 0.0
        for j in range(p):
            s += X[i, j] * beta[j]
        eta[i] = s
        top = max(top, s)
    return eta, top


@njit(cache=True, error_model="numpy")
def _risk(X: np.ndarray, w: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relative risk exp(eta - max eta) and weighted risk w exp(eta - max eta), each (n,)."""
    rel, top = _linear_predictor(X, beta)
    risk = np.empty(rel.shape[0])
    eta1 = eta2 = np.nan  # as in _cox_pass: exp of the last two distinct values reused
    ex1 = ex2 = 0.0
    for i in range(rel.shape[0]):
        eta = rel[i] - top
        if eta == eta1:
            ex = ex1
        elif eta == eta2:
            ex = ex2
        else:
            ex = np.exp(eta)
            eta2, ex2, eta1, ex1 = eta1, ex1, eta, ex
        rel[i] = ex
        risk[i] = w[i] * ex
    return rel, risk


@njit(cache=True, error_model="numpy")
def _log_term(loglik, prod, prodwt, wt, den):
    """``loglik - wt log(den)``, the log taken later on a running product of the
    denominators sharing the weight ``prodwt`` (see LOG_SAFE_LOW); a NaN, zero or
    extreme ``den`` is taken at once.  Returns (loglik, prod, prodwt); the caller
    subtracts ``prodwt * log(prod)`` at the end."""
    if den >= LOG_SAFE_LOW and den <= LOG_SAFE_HIGH:  # not NaN, no over/underflow
        if wt != prodwt:
            loglik -= prodwt * np.log(prod)
            prod, prodwt = 1.0, wt
        prod *= den
        if not LOG_SAFE_LOW <= prod <= LOG_SAFE_HIGH:
            loglik -= prodwt * np.log(prod)
            prod = 1.0
        return loglik, prod, prodwt
    return loglik - wt * np.log(den), prod, prodwt


@njit(cache=True, error_model="numpy")
def _cox_pass(X, w, event, starts, newstrat, beta, efron, u, imat):
    """:func:`_cox_pass_t` computing the transposed covariates itself."""
    Z = np.empty((0, 0)) if X.shape[1] <= DIRECT_P else np.ascontiguousarray(X.T)
    return _cox_pass_t(X, Z, w, event, starts, newstrat, beta, efron, u, imat)


@njit(cache=True, error_model="numpy")
def _cox_pass_t(X, Z, w, event, starts, newstrat, beta, efron, u, imat):
    """Weighted log partial likelihood at ``beta``; fills score ``u`` and information ``imat``.

    One sweep in the kernels' row order gives, for every Efron term k of every tie
    group, the weight ``wt`` (mean weight of the tied events; their total for
    Breslow), the denominator ``den`` and the risk-set mean ``xbar``.  The information
    ``sum wt ((S2 - f D2) / den - xbar xbar')`` is built in one of two equal ways:

    - p <= DIRECT_P: running second moments S2 (O(p^2) per row, all in registers), here;
    - larger p: :func:`_gram_pass`, from two Gram sums (faster from p = 4 at n ~ 1,400).

    Parameters
    ----------
    X : (n, p) float64, sorted (and preferably centred) covariates.
    Z : (p, n) float64, ``X`` transposed (C-contiguous) when p > DIRECT_P, else unused.
    w : (n,) float64 weights.  event : (n,) int8 0/1.
    starts, newstrat : tie groups from :func:`_tie_groups`.
    beta : (p,) coefficients.  efron : bool (False = Breslow).
    u : (p,) and imat : (p, p) outputs, overwritten.

    Returns
    -------
    float : log partial likelihood.
    """
    p = X.shape[1]
    if p > DIRECT_P:
        return _gram_pass(X, Z, w, event, starts, newstrat, beta, efron, u, imat)
    ng = starts.shape[0] - 1
    s1 = np.zeros(p)
    d1 = np.zeros(p)
    xb = np.zeros(p)
    s2 = np.zeros((p, p))
    d2 = np.zeros((p, p))
    risk, top = _linear_predictor(X, beta)  # eta now, weighted relative risk after the sweep
    u[:] = 0.0
    imat[:, :] = 0.0
    s0 = 0.0
    loglik = 0.0
    prod, prodwt = 1.0, 0.0  # running product of denominators sharing the weight prodwt
    eta1 = eta2 = np.nan  # the last two distinct linear predictors and their exp
    ex1 = ex2 = 0.0
    for g in range(ng):
        if newstrat[g]:
            s0 = 0.0
            s1[:] = 0.0
            s2[:, :] = 0.0
        nd = 0
        deadwt = 0.0
        d0 = 0.0
        for i in range(starts[g], starts[g + 1]):
            eta = risk[i] - top
            if eta == eta1:  # a covariate pattern seen last or next-to-last: exp known
                ex = ex1
            elif eta == eta2:
                ex = ex2
            else:
                ex = np.exp(eta)
                eta2, ex2, eta1, ex1 = eta1, ex1, eta, ex
            r = w[i] * ex
            risk[i] = r
            s0 += r
            for j in range(p):
                rx = r * X[i, j]
                s1[j] += rx
                for k in range(j + 1):
                    s2[j, k] += rx * X[i, k]
            if event[i]:
                nd += 1
                deadwt += w[i]
                loglik += w[i] * eta
                d0 += r
                for j in range(p):
                    u[j] += w[i] * X[i, j]
        if nd == 0:
            continue
        nterm = nd if efron else 1
        if nterm > 1:  # the tied events' own sums, for Efron's down-weighting
            d1[:] = 0.0
            d2[:, :] = 0.0
            for i in range(starts[g], starts[g + 1]):
                if event[i]:
                    for j in range(p):
                        rx = risk[i] * X[i, j]
                        d1[j] += rx
                        for k in range(j + 1):
                            d2[j, k] += rx * X[i, k]
        wt = deadwt / nterm
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
    loglik -= prodwt * np.log(prod)
    for j in range(p):
        for k in range(j):
            imat[k, j] = imat[j, k]
    return loglik


@njit(cache=True, error_model="numpy")
def _gram_pass(X, Z, w, event, starts, newstrat, beta, efron, u, imat):
    """:func:`_cox_pass_t` for p > DIRECT_P: the information as
    ``X' diag(r_i H_i) X - XBAR' diag(wt) XBAR``, where ``H_i`` sums ``c_ik wt / den``
    over the terms whose risk set holds row i (c = 1 - k/d for the tied events
    themselves in Efron's k-th term, else 1): a backward sweep and two vectorised Gram
    sums (:func:`_weighted_gram`, on the transposed covariates ``Z`` and the term means)
    instead of triangular O(p^2) updates per row and per event.

    Written in stages that LLVM vectorises: the linear predictor as column updates on
    ``Z`` (each element summed in the order of a row dot product), every ``exp`` at once
    with the branch-free exponential of :mod:`estimators._vexp` (within 1 ulp of libm),
    a sweep of running sums, and the event rows' part of the score (which does not
    depend on ``beta``) apart from the risk-set means' part.  ``Z`` is required here.
    """
    n, p = X.shape
    ng = starts.shape[0] - 1
    eta = _columns_times(Z, beta)
    top = -np.inf
    for i in range(n):
        top = max(top, eta[i])
    for i in range(n):
        eta[i] -= top
    risk = np.empty(n)
    work = np.empty(n)
    _exp_into(eta, risk, work)
    for i in range(n):
        risk[i] *= w[i]
    xbar = np.empty((p, n))  # term means, transposed for the Gram sum
    twt = np.empty(n)
    haz = np.zeros(ng)
    hazd = np.zeros(ng)
    s1 = np.zeros(p)
    d1 = np.zeros(p)
    ux = _transposed_dot(Z, w * event)  # sum over events of w x
    ub = np.zeros(p)  # sum over terms of wt xbar
    s0 = 0.0
    loglik = 0.0
    prod, prodwt = 1.0, 0.0
    nt = 0
    for g in range(ng):
        if newstrat[g]:
            s0 = 0.0
            s1[:] = 0.0
        nd = 0
        deadwt = 0.0
        d0 = 0.0
        for i in range(starts[g], starts[g + 1]):
            r = risk[i]
            s0 += r
            for j in range(p):
                s1[j] += r * X[i, j]
            if event[i]:
                wi = w[i]
                nd += 1
                deadwt += wi
                loglik += wi * eta[i]
                d0 += r
        if nd == 0:
            continue
        nterm = nd if efron else 1
        if nterm > 1:  # the tied events' own sums, for Efron's down-weighting
            d1[:] = 0.0
            for i in range(starts[g], starts[g + 1]):
                if event[i]:
                    r = risk[i]
                    for j in range(p):
                        d1[j] += r * X[i, j]
        wt = deadwt / nterm
        for t in range(nterm):
            f = t / nterm
            den = s0 - f * d0
            inv = 1.0 / den
            loglik, prod, prodwt = _log_term(loglik, prod, prodwt, wt, den)
            haz[g] += wt * inv
            hazd[g] += (1.0 - f) * wt * inv
            twt[nt] = wt
            if nterm > 1:
                for j in range(p):
                    xb = (s1[j] - f * d1[j]) * inv
                    xbar[j, nt] = xb
                    ub[j] += wt * xb
            else:
                for j in range(p):
                    xb = s1[j] * inv
                    xbar[j, nt] = xb
                    ub[j] += wt * xb
            nt += 1
    loglik -= prodwt * np.log(prod)
    for j in range(p):
        u[j] = ux[j] - ub[j]
    cum = 0.0  # c_i = r_i H_i, overwriting risk; ascending time within stratum
    for g in range(ng - 1, -1, -1):
        for i in range(starts[g], starts[g + 1]):
            risk[i] *= cum + (hazd[g] if event[i] else haz[g])
        cum = 0.0 if newstrat[g] else cum + haz[g]
    imat[:, :] = _weighted_gram(Z, risk, n) - _weighted_gram(xbar, twt, nt)
    return loglik


@njit(cache=True, error_model="numpy")
def _binary_groups(X, w, event, starts, newstrat):
    """Per-event-group sums of a one-column ``X`` taking exactly two values.

    Returns ``(levels (3,), groups (6, G), sums (2,))``: the two values and the most
    events in a group; for each of the G tie groups with an event, the weight at risk
    at each level (running over the stratum), the tied events' weight at each level,
    their number and total weight; ``sums`` holds ``sum w x`` and ``sum w`` over the
    events.  ``groups`` has no rows when ``X`` is
    not two-valued (or not one column): then the general pass is used.
    """
    none = np.empty((0, 0))
    n, p = X.shape
    if p != 1 or n == 0:
        return np.empty(0), none, np.zeros(2)
    x0 = X[0, 0]
    x1 = x0
    for i in range(n):
        v = X[i, 0]
        if v != x0:
            if x1 == x0:
                x1 = v
            elif v != x1:
                return np.empty(0), none, np.zeros(2)
    if x1 == x0:
        return np.empty(0), none, np.zeros(2)
    ng = 0
    for g in range(starts.shape[0] - 1):
        for i in range(starts[g], starts[g + 1]):
            if event[i]:
                ng += 1
                break
    groups = np.empty((6, ng))
    # branch-free sums (the level and the event status are random from row to row, so
    # branches on them mispredict): adding w * 0.0 leaves a sum unchanged bit for bit
    sx = 0.0
    sw = 0.0
    w0 = 0.0
    w1 = 0.0
    k = 0
    most = 0  # the most events in a group
    for g in range(starts.shape[0] - 1):
        if newstrat[g]:
            w0 = 0.0
            w1 = 0.0
        e0 = 0.0
        e1 = 0.0
        nd = 0
        for i in range(starts[g], starts[g + 1]):
            hi = 1.0 if X[i, 0] == x1 else 0.0
            wi = w[i]
            w1 += wi * hi
            w0 += wi * (1.0 - hi)
            ev = event[i]
            we = wi * ev
            nd += ev
            e1 += we * hi
            e0 += we * (1.0 - hi)
            sx += we * X[i, 0]
            sw += we
        if nd:
            groups[0, k] = w0
            groups[1, k] = w1
            groups[2, k] = e0
            groups[3, k] = e1
            groups[4, k] = nd
            groups[5, k] = e0 + e1
            k += 1
            most = max(most, nd)
    sums = np.array([sx, sw])
    return np.array([x0, x1, float(most)]), groups, sums


@njit(cache=True, error_model="numpy")
def _binary_pass(levels, groups, sums, beta, efron, u, imat):
    """:func:`_cox_pass_t` for a two-valued column from :func:`_binary_groups`: the
    risk-set sums are ``W0 exp(b x0) + W1 exp(b x1)``, so a pass costs O(event groups)
    instead of O(n) (the same terms; sums in another order)."""
    x0 = levels[0]
    x1 = levels[1]
    b = beta[0]
    top = max(b * x0, b * x1)  # as _cox_pass_t: exp(eta - max eta)
    ex0 = np.exp(b * x0 - top)
    ex1 = np.exp(b * x1 - top)
    loglik = b * sums[0] - top * sums[1]
    if not efron or levels[2] == 1.0:  # one Efron term per group: vectorised sums
        return _binary_pass_single(groups, x0, x1, ex0, ex1, loglik, sums[0], u, imat)
    score = sums[0]
    info = 0.0
    prod, prodwt = 1.0, 0.0
    for g in range(groups.shape[1]):
        r0 = groups[0, g] * ex0
        r1 = groups[1, g] * ex1
        s0 = r0 + r1
        s1 = x0 * r0 + x1 * r1
        s2 = x0 * x0 * r0 + x1 * x1 * r1
        q0 = groups[2, g] * ex0
        q1 = groups[3, g] * ex1
        d0 = q0 + q1
        d1 = x0 * q0 + x1 * q1
        d2 = x0 * x0 * q0 + x1 * x1 * q1
        nterm = int(groups[4, g]) if efron else 1
        wt = groups[5, g] / nterm
        for t in range(nterm):
            f = t / nterm
            den = s0 - f * d0
            inv = 1.0 / den
            loglik, prod, prodwt = _log_term(loglik, prod, prodwt, wt, den)
            xb = (s1 - f * d1) * inv
            score -= wt * xb
            info += wt * (inv * (s2 - f * d2) - xb * xb)
    loglik -= prodwt * np.log(prod)
    u[0] = score
    imat[0, 0] = info
    return loglik


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _binary_sums(groups, x0, x1, ex0, ex1, den):
    """Score and information terms of :func:`_binary_pass_single`, vectorised (the only
    part compiled with reassociation; the order is fixed by the compiled code)."""
    score = 0.0
    info = 0.0
    for g in range(groups.shape[1]):
        r0 = groups[0, g] * ex0
        r1 = groups[1, g] * ex1
        d = r0 + r1
        den[g] = d
        inv = 1.0 / d
        xb = (x0 * r0 + x1 * r1) * inv
        wt = groups[5, g]
        score += wt * xb
        info += wt * (inv * (x0 * x0 * r0 + x1 * x1 * r1) - xb * xb)
    return score, info


@njit(cache=True, error_model="numpy")
def _binary_pass_single(groups, x0, x1, ex0, ex1, loglik, score, u, imat):
    """:func:`_binary_pass` when every group has one Efron term (no tied events, or
    Breslow): the sums vectorised, the log-likelihood's logs as :func:`_log_term`."""
    den = np.empty(groups.shape[1])
    s, info = _binary_sums(groups, x0, x1, ex0, ex1, den)
    prod, prodwt = 1.0, 0.0
    for g in range(groups.shape[1]):
        loglik, prod, prodwt = _log_term(loglik, prod, prodwt, groups[5, g], den[g])
    loglik -= prodwt * np.log(prod)
    u[0] = score - s
    imat[0, 0] = info
    return loglik


@njit(cache=True, error_model="numpy")
def _pass(X, Z, w, event, starts, newstrat, beta, efron, u, imat, levels, groups, sums):
    """The likelihood pass: by event groups for a two-valued column, else row by row."""
    if groups.shape[0]:
        return _binary_pass(levels, groups, sums, beta, efron, u, imat)
    return _cox_pass_t(X, Z, w, event, starts, newstrat, beta, efron, u, imat)


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def _newton(X, w, event, starts, newstrat, beta0, efron, tol, max_iter):
    """:func:`_newton_t` computing the transposed covariates itself."""
    Z = np.empty((0, 0)) if X.shape[1] <= DIRECT_P else np.ascontiguousarray(X.T)
    none = np.empty((0, 0))
    return _newton_t(
        X,
        Z,
        w,
        event,
        starts,
        newstrat,
        beta0,
        efron,
        tol,
        max_iter,
        np.empty(0),
        none,
        np.zeros(2),
    )


@njit(cache=True, error_model="numpy")
def _newton_t(X, Z, w, event, starts, newstrat, beta0, efron, tol, max_iter, levels, groups, sums):
    """Newton-Raphson with step halving, stopping rule as R survival's coxph.

    ``levels, groups, sums``: :func:`_binary_groups` of a two-valued column (passes by
    event group), or empty (row-by-row passes).

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
    loglik = _pass(X, Z, w, event, starts, newstrat, beta, efron, u, imat, levels, groups, sums)
    if not np.isfinite(loglik):
        return beta, loglik, u, imat, 0, NONFINITE
    low, ok = _cholesky(imat)
    if not ok:
        return beta, loglik, u, imat, 0, SINGULAR
    newbeta = beta + _chol_solve(low, u)
    halving = False
    for it in range(1, max_iter + 1):
        newlik = _pass(
            X, Z, w, event, starts, newstrat, newbeta, efron, u_new, imat_new, levels, groups, sums
        )
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
    if p == 1:
        return _score_residuals_1(X, w, event, starts, newstrat, beta, efron)
    expeta, risk = _risk(X, w, beta)
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
            for j in range(p):
                s1[j] = 0.0
        nd = 0
        deadwt = 0.0
        d0 = 0.0
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
        for j in range(p):
            d1[j] = 0.0
    resid = np.empty((n, p))
    cumh = 0.0
    cumxh = np.zeros(p)
    for g in range(ng - 1, -1, -1):  # ascending time within stratum
        for i in range(starts[g], starts[g + 1]):
            e = expeta[i]
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
            for j in range(p):
                cumxh[j] = 0.0
        else:
            cumh += haz[g]
            for j in range(p):
                cumxh[j] += xhaz[g, j]
    return resid


@njit(cache=True, error_model="numpy")
def _score_residuals_1(X, w, event, starts, newstrat, beta, efron):
    """:func:`_score_residuals` for one covariate: the same terms with scalar running
    sums and per-group arrays (the treatment-only fits of sIPTW and PSM)."""
    n = X.shape[0]
    expeta, risk = _risk(X, w, beta)
    ng = starts.shape[0] - 1
    haz = np.zeros(ng)
    hazd = np.zeros(ng)
    xhaz = np.zeros(ng)
    xhazd = np.zeros(ng)
    xmean = np.zeros(ng)
    s0 = 0.0
    s1 = 0.0
    for g in range(ng):
        if newstrat[g]:
            s0 = 0.0
            s1 = 0.0
        nd = 0
        deadwt = 0.0
        d0 = 0.0
        d1 = 0.0
        for i in range(starts[g], starts[g + 1]):
            r = risk[i]
            rx = r * X[i, 0]
            s0 += r
            s1 += rx
            if event[i]:
                nd += 1
                deadwt += w[i]
                d0 += r
                d1 += rx
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
            xbar = (s1 - f * d1) / den
            xhaz[g] += dh * xbar
            xhazd[g] += (1.0 - f) * dh * xbar
            xmean[g] += xbar / nterm
    resid = np.empty((n, 1))
    cumh = 0.0
    cumxh = 0.0
    for g in range(ng - 1, -1, -1):  # ascending time within stratum
        hd = cumh + hazd[g]
        xhd = cumxh + xhazd[g]
        hc = cumh + haz[g]
        xhc = cumxh + xhaz[g]
        xm = xmean[g]
        for i in range(starts[g], starts[g + 1]):
            e = expeta[i]
            x = X[i, 0]
            if event[i]:
                resid[i, 0] = x - xm - e * (x * hd - xhd)
            else:
                resid[i, 0] = -e * (x * hc - xhc)
        if newstrat[g]:
            cumh = 0.0
            cumxh = 0.0
        else:
            cumh += haz[g]
            cumxh += xhaz[g]
    return resid


@njit(cache=True, error_model="numpy")
def _meat(resid, w, cluster, n_clusters):
    """sum over clusters of (sum_i w_i r_i)(sum_i w_i r_i)'.

    ``cluster`` holds codes in [0, n_clusters); empty means one row per cluster.
    """
    n, p = resid.shape
    meat = np.zeros((p, p))
    if cluster.shape[0] == 0:
        for i in range(n):
            for j in range(p):
                for k in range(j + 1):
                    meat[j, k] += w[i] * w[i] * resid[i, j] * resid[i, k]
    else:
        sums = np.zeros((n_clusters, p))
        for i in range(n):
            for j in range(p):
                sums[cluster[i], j] += w[i] * resid[i, j]
        for c in range(n_clusters):
            for j in range(p):
                for k in range(j + 1):
                    meat[j, k] += sums[c, j] * sums[c, k]
    for j in range(p):
        for k in range(j):
            meat[k, j] = meat[j, k]
    return meat


@njit(cache=True, error_model="numpy")
def _sandwich(bread, meat):
    """bread @ meat @ bread for small symmetric p x p matrices (plain loops, no BLAS)."""
    p = bread.shape[0]
    half = np.zeros((p, p))
    for i in range(p):
        for k in range(p):
            for j in range(p):
                half[i, j] += bread[i, k] * meat[k, j]
    out = np.zeros((p, p))
    for i in range(p):
        for k in range(p):
            for j in range(p):
                out[i, j] += half[i, k] * bread[k, j]
    return out


@njit(cache=True, error_model="numpy")
def _cox_fit(
    time, event, X, w, strata, cluster, n_clusters, order, efron, robust, tol, max_iter, beta0
):
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
    mean = np.zeros(p)  # centring keeps exp() and the information well conditioned
    for i in range(n):
        for j in range(p):
            mean[j] += X[i, j]
    mean /= n
    ts = np.empty(n)
    es = np.empty(n, dtype=np.int8)
    ws = np.empty(n)
    ss = np.empty(n, dtype=np.int64)
    xs = np.empty((n, p))
    for i in range(n):  # one gather loop: overlapping cache misses
        o = order[i]
        ts[i] = time[o]
        es[i] = event[o]
        ws[i] = w[o]
        ss[i] = strata[o]
        for j in range(p):
            xs[i, j] = X[o, j] - mean[j]
    starts, newstrat = _tie_groups(ts, ss)
    Z = np.empty((0, 0)) if p <= DIRECT_P else np.ascontiguousarray(xs.T)
    levels, groups, sums = _binary_groups(xs, ws, es, starts, newstrat)
    beta, loglik, u, imat, n_iter, status = _newton_t(
        xs, Z, ws, es, starts, newstrat, beta0, efron, tol, max_iter, levels, groups, sums
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
    meat = _meat(resid, ws, cluster[order] if cluster.shape[0] else cluster, n_clusters)
    return beta, loglik, u, imat, var, _sandwich(var, meat), step, n_iter, status
