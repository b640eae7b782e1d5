"""numba kernels of the sIPTW bootstrap: PS refit, weights and weighted Cox per resample.

Two stages, each one call over every resample (``prange``; each resample writes only
its own output slot, so the results are the same bit for bit whatever the thread
count): :func:`_bootstrap_ps` refits the propensity score (shared by every outcome and
estimand of a data set), :func:`_bootstrap_effect` computes the weights and the Cox fit.

Kernels of other modules called here (their signatures must not change):

* ``_logistic_kernels``: ``_cholesky_solve`` (ML Newton step), ``_firth_logistic``.
* nothing of ``_cox_kernels`` (the Cox fit of a binary covariate is reduced to sums).

Per resample, in the layout of a from-scratch fit on the resampled rows:

1. **PS** (ML): Newton on the resample's distinct rows, each with its multiplicity as a
   frequency weight (the same likelihood as the repeated rows, ~63% of the rows), from
   one Newton step off the full-sample fit (its coefficients and information), with the
   stopping rule of ``_newton_logistic`` (so the same MLE to rounding).  Firth:
   ``_firth_logistic`` on the repeated rows.  Columns are rescaled by the rule of
   :func:`estimators.scaling.power_of_two_scale` computed on the resample.
2. **Weights** of :mod:`estimators.weighting` from the logit (stabilised over the
   resample's rows per arm, or by one constant for ATO / ATM; truncated at numpy's
   linear percentiles), after its ATT / ATC overlap check.
3. **Cox** on the treatment, centred as ``_cox_fit`` does: the resample's rows visited
   in the full sample's time order (multiplicities, no sort), reduced to per-event-group
   sums by arm (a binary covariate's risk-set sums are ``W0 e^(b x0) + W1 e^(b x1)``),
   so a Newton pass costs O(events), not O(n); the terms of ``_cox_kernels._cox_pass``
   (weighted Efron as R survival), the Newton rule of ``_cox_kernels._newton`` (R's) and
   the divergence check of ``cox._diagnose``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._logistic_kernels import CONVERGED as LOGIT_CONVERGED
from ._logistic_kernels import MAX_ITER as LOGIT_MAX_ITER
from ._logistic_kernels import SINGULAR as LOGIT_SINGULAR
from ._logistic_kernels import _cholesky_solve, _firth_logistic
from .scaling import _HIGH, _LOW

# resample status codes (index into bootstrap.FAILURES)
OK = 0
ONE_ARM = 1
NO_EVENTS = 2
PS_COLLINEAR = 3
PS_NOT_CONVERGED = 4
INFINITE_WEIGHTS = 5
COX_NOT_CONVERGED = 6
COX_DIVERGED = 7
NO_OVERLAP = 8
TRIM_EMPTY_ARM = 9

# estimand codes (index into bootstrap.KERNEL_ESTIMANDS)
ATE, ATT, ATC, ATO, ATM = 0, 1, 2, 3, 4

PS_EPS = 1e-8  # as estimators.propensity.PS_EPS (checked equal by the tests)


@njit(cache=True, error_model="numpy")
def _percentile_sorted(v: np.ndarray, q: float) -> float:
    """numpy's default (linear) ``percentile(v, q)`` of sorted ``v``, same arithmetic."""
    n = v.shape[0]
    vi = (n - 1) * (q / 100.0)
    if vi >= n - 1:
        return v[n - 1]
    prev = np.floor(vi)
    i = int(prev)
    gamma = vi - prev
    a = v[i]
    b = v[i + 1]
    diff = b - a
    if gamma >= 0.5:
        return b - diff * (1.0 - gamma)
    return a + diff * gamma


@njit(cache=True, error_model="numpy")
def _pow2_scale(X: np.ndarray) -> np.ndarray:
    """Column divisors of ``power_of_two_scale(X, centred=False)`` (1 where none)."""
    n, p = X.shape
    d = np.ones(p)
    for j in range(p):
        lo = np.inf
        hi = -np.inf
        for i in range(n):
            lo = min(lo, X[i, j])
            hi = max(hi, X[i, j])
        s = max(hi, -lo)
        if s > _HIGH or (s < _LOW and s > 0.0):
            d[j] = np.exp2(np.rint(np.log2(s)))
    return d


@njit(cache=True, error_model="numpy")
def _loglik_counts(X, y, k, beta, r, c):
    """Frequency-weighted logistic log-likelihood and eta = X beta (m,) at ``beta``.

    Row i counts ``k[i]`` times.  Fills ``r`` (m,) with ``k (y - p)`` and ``c`` (m,) with
    ``k p (1 - p)``, from which :func:`_derivatives` gives the score and information.
    The ``log(1 + exp(-|eta|))`` terms are summed as the log of their running product
    (one ``log`` per ~800 rows): only ascent is judged from this log-likelihood.
    """
    m = X.shape[0]
    eta = X @ beta
    ll = 0.0
    prod = 1.0
    for i in range(m):
        e = eta[i]
        a = np.exp(-abs(e))
        opa = 1.0 + a
        inv = 1.0 / opa
        pr = inv if e >= 0.0 else a * inv
        ki = k[i]
        ll += ki * (y[i] * e - max(e, 0.0))
        f = opa
        for _ in range(1, int(ki)):
            f *= opa
        prod *= f
        if prod > 1e250:  # each factor <= 2**k: no overflow before the next log
            ll -= np.log(prod)
            prod = 1.0
        r[i] = ki * (y[i] - pr)
        c[i] = ki * (a * inv * inv)  # p (1 - p) without cancellation
    return ll - np.log(prod), eta


@njit(cache=True, error_model="numpy")
def _derivatives(X, r, c, Xc):
    """Score ``X' r`` (p,) and information ``X' diag(c) X`` (p, p); ``Xc`` (m, p) scratch."""
    m, p = X.shape
    for i in range(m):
        for j in range(p):
            Xc[i, j] = X[i, j] * c[i]
    return X.T @ r, Xc.T @ X


@njit(cache=True, error_model="numpy")
def _logistic_counts(X, y, k, beta0, tol, max_iter):
    """ML logistic regression with frequency weights ``k``: Newton with step halving from
    ``beta0``, the rule of ``_logistic_kernels._newton_logistic`` (score and information
    are computed only where a step is taken).

    Returns ``(eta (m,), n_iter, status)``.
    """
    m, p = X.shape
    beta = beta0.copy()
    step = np.zeros(p)
    r = np.empty(m)
    c = np.empty(m)
    Xc = np.empty((m, p))
    ll_old = -np.inf
    n_iter = 0
    halvings = 0
    while True:
        ll, eta = _loglik_counts(X, y, k, beta, r, c)
        if not ll >= ll_old - 1e-12 * abs(ll_old) and halvings < 40:
            step *= 0.5  # step halving: never accept a lower log-likelihood
            beta = beta - step
            halvings += 1
            continue
        halvings = 0
        if n_iter > 0 and np.max(np.abs(step)) <= tol * max(1.0, np.max(np.abs(beta))):
            return eta, n_iter, LOGIT_CONVERGED
        if n_iter == max_iter:
            return eta, n_iter, LOGIT_MAX_ITER
        g, H = _derivatives(X, r, c, Xc)
        step, ok = _cholesky_solve(H, g)
        if not ok:
            return eta, n_iter, LOGIT_SINGULAR
        beta = beta + step
        ll_old = ll
        n_iter += 1


@njit(cache=True, error_model="numpy")
def _raw_weight(logit: float, treated: bool, estimand: int) -> float:
    """Unstabilised weight of one patient from the logit of its PS."""
    if estimand == ATE:
        return 1.0 + np.exp(-logit if treated else logit)
    if estimand == ATT:
        return 1.0 if treated else np.exp(logit)
    if estimand == ATC:
        return np.exp(-logit) if treated else 1.0
    if estimand == ATO:
        return 1.0 / (1.0 + np.exp(logit if treated else -logit))
    return min(1.0, np.exp(-logit if treated else logit))  # ATM


@njit(cache=True, error_model="numpy")
def _overlap(rows, logit, a, estimand):
    """ATT (ATC): some control (treated) row of the resample has a logit inside the
    treated (controls') range, as ``weighting._check_overlap``; True for other estimands."""
    if estimand != ATT and estimand != ATC:
        return True
    target = 1 if estimand == ATT else 0
    lo = np.inf
    hi = -np.inf
    for j in range(rows.shape[0]):
        i = rows[j]
        if a[i] == target:
            lo = min(lo, logit[i])
            hi = max(hi, logit[i])
    for j in range(rows.shape[0]):
        i = rows[j]
        if a[i] != target and logit[i] >= lo and logit[i] <= hi:
            return True
    return False


@njit(cache=True, error_model="numpy")
def _weights(rows, cnt, logit, a, estimand, stabilized, truncate, q_lo, q_hi):
    """Weights of :mod:`estimators.weighting` for the resample ``rows`` (n_b,).

    ``cnt`` (n,) multiplicities of the full sample's rows in ``rows``; ``logit`` (n,)
    the resample's PS logit by full-sample row.  Stabilising rescales to mean 1 over
    the resample's rows each arm (ATE), the controls (ATT), the treated (ATC), or
    everyone by one constant (ATO, ATM); truncation clips the estimated weights (all
    but the ATT's treated and the ATC's controls) at their ``q_lo`` / ``q_hi``
    percentiles.  Returns ``(w (n,) by full-sample row, ok)``; ``ok`` is False when a
    weight is infinite.
    """
    n = cnt.shape[0]
    nb = rows.shape[0]
    w = np.zeros(n)
    n1 = 0
    for i in range(n):
        if cnt[i]:
            n1 += cnt[i] * a[i]
            w[i] = _raw_weight(logit[i], a[i] == 1, estimand)
            if not np.isfinite(w[i]):
                return w, False
    est1 = estimand != ATT
    est0 = estimand != ATC
    if stabilized:
        s1 = 0.0
        s0 = 0.0
        for j in range(nb):  # sums over the resample's rows, as numpy's w[group].sum()
            i = rows[j]
            if a[i] == 1:
                s1 += w[i]
            else:
                s0 += w[i]
        if estimand == ATO or estimand == ATM:  # one group: everyone
            f1 = f0 = nb / (s1 + s0)
        else:
            f1 = n1 / s1
            f0 = (nb - n1) / s0
        for i in range(n):
            if cnt[i]:
                if a[i] == 1 and est1:
                    w[i] *= f1
                elif a[i] == 0 and est0:
                    w[i] *= f0
    if truncate:
        n_est = (n1 if est1 else 0) + (nb - n1 if est0 else 0)
        v = np.empty(n_est)
        r = 0
        for j in range(nb):
            i = rows[j]
            if (est1 and a[i] == 1) or (est0 and a[i] == 0):
                v[r] = w[i]
                r += 1
        v.sort()
        lo = _percentile_sorted(v, q_lo)
        hi = _percentile_sorted(v, q_hi)
        for i in range(n):
            if cnt[i] and ((est1 and a[i] == 1) or (est0 and a[i] == 0)):
                w[i] = min(max(w[i], lo), hi)
    return w, True


@njit(cache=True, error_model="numpy")
def _resample_ps(rows, X, a, coef0, cov0, prob0, firth, ps_tol, ps_max_iter, firth_max_step):
    """PS logit of the resample ``rows`` by full-sample row (n,; 0 for rows not drawn), and
    its status (OK, ONE_ARM, PS_COLLINEAR or PS_NOT_CONVERGED)."""
    n, p = X.shape
    nb = rows.shape[0]
    cnt = np.zeros(n, dtype=np.int64)
    for j in range(nb):
        cnt[rows[j]] += 1
    n1 = 0
    m = 0
    for i in range(n):
        if cnt[i]:
            m += 1
            n1 += cnt[i] * a[i]
    logit = np.zeros(n)
    if n1 == 0 or n1 == nb:
        return logit, ONE_ARM
    # 1. propensity score: the logit of every distinct row (indexed by full-sample row)
    if firth:
        Xr = np.empty((nb, p))
        for j in range(nb):
            for c in range(p):
                Xr[j, c] = X[rows[j], c]
        d = _pow2_scale(Xr)
        yr = np.empty(nb)
        for j in range(nb):
            yr[j] = a[rows[j]]
            for c in range(p):
                Xr[j, c] /= d[c]
        _, it, status, _, eta, _, _ = _firth_logistic(Xr, yr, ps_tol, ps_max_iter, firth_max_step)
        for j in range(nb):
            logit[rows[j]] = eta[j]
    else:
        Xu = np.empty((m, p))
        yu = np.empty(m)
        ku = np.empty(m)
        g0 = np.zeros(p)  # the resample's score at the full-sample coefficients
        u = 0
        for i in range(n):
            if cnt[i]:
                r0 = cnt[i] * (a[i] - prob0[i])
                for c in range(p):
                    Xu[u, c] = X[i, c]
                    g0[c] += r0 * X[i, c]
                yu[u] = a[i]
                ku[u] = cnt[i]
                u += 1
        # start: one Newton step from the full-sample fit with its information (the
        # one-step estimator, O(1/n) from the resample's MLE): one iteration fewer
        start = coef0 + cov0 @ g0
        d = _pow2_scale(Xu)
        if (d != 1.0).any():
            for u in range(m):
                for c in range(p):
                    Xu[u, c] /= d[c]
        eta, it, status = _logistic_counts(Xu, yu, ku, start * d, ps_tol, ps_max_iter)
        u = 0
        for i in range(n):
            if cnt[i]:
                logit[i] = eta[u]
                u += 1
    if status == LOGIT_SINGULAR and it == 0:
        return logit, PS_COLLINEAR
    if status != LOGIT_CONVERGED:
        return logit, PS_NOT_CONVERGED
    if not firth:  # ML: a score numerically 0 or 1 (separation) is not a fit
        for i in range(n):
            if cnt[i] and abs(logit[i]) > 18.0:  # min(p, 1 - p) < 1e-8 needs |logit| > 18.4
                t = np.exp(-abs(logit[i]))
                if t / (1.0 + t) < PS_EPS:
                    return logit, PS_NOT_CONVERGED
    return logit, OK


@njit(cache=True, error_model="numpy")
def _resample_effect(
    rows, logit, a, time, event, order, estimand, stabilized, truncate, q_lo, q_hi, trim,
    t_lo, t_hi, efron, cox_tol, cox_max_iter,
):  # fmt: skip
    """(log-HR, status) of the resample ``rows`` given its PS ``logit`` by full-sample row.

    With ``trim``, the rows whose PS ``expit(logit)`` is outside ``[t_lo, t_hi]`` are
    dropped first (``weighting.trim_mask``): the weights and the Cox model are those of
    the kept rows.
    """
    n = a.shape[0]
    if trim:
        kept = np.empty(rows.shape[0], dtype=np.int64)
        nk = 0
        for j in range(rows.shape[0]):
            e = 1.0 / (1.0 + np.exp(-logit[rows[j]]))
            if e >= t_lo and e <= t_hi:
                kept[nk] = rows[j]
                nk += 1
        rows = kept[:nk]
    nb = rows.shape[0]
    cnt = np.zeros(n, dtype=np.int64)
    for j in range(nb):
        cnt[rows[j]] += 1
    n1 = 0
    n_ev = 0
    for i in range(n):
        if cnt[i]:
            n1 += cnt[i] * a[i]
            n_ev += cnt[i] * event[i]
    if n1 == 0 or n1 == nb:  # only with trim: the PS stage saw both arms
        return np.nan, TRIM_EMPTY_ARM
    if n_ev == 0:
        return np.nan, NO_EVENTS
    # 2. weights (indexed by full-sample row), stabilised and truncated over the resample
    if not _overlap(rows, logit, a, estimand):
        return np.nan, NO_OVERLAP
    w, ok = _weights(rows, cnt, logit, a, estimand, stabilized, truncate, q_lo, q_hi)
    if not ok:
        return np.nan, INFINITE_WEIGHTS
    # 3. weighted Cox on treatment: the resample's rows in the full sample's time order
    return _cox_binary(cnt, a, time, event, w, order, n1 / nb, efron, cox_tol, cox_max_iter)


@njit(cache=True, error_model="numpy")
def _binary_pass(beta, x0, x1, gw0, gw1, ge0, ge1, gnd, gdead, swx, sw, efron):
    """Log partial likelihood, score and information of a Cox model on one binary
    covariate taking the (centred) values ``x0`` / ``x1``, from per-event-group sums.

    For event group g: ``gw0/gw1`` the weight at risk in each arm, ``ge0/ge1`` the tied
    events' weight in each arm, ``gnd`` their number, ``gdead`` their total weight;
    ``swx``, ``sw``: sum of w x and of w over all events.  The same terms as
    ``_cox_kernels._cox_pass`` (weighted Efron as R survival), the risk-set sums being
    ``W0 exp(beta x0) + W1 exp(beta x1)``: O(events) per pass instead of O(n).
    """
    top = max(beta * x0, beta * x1)  # as _cox_pass: exp(eta - max eta)
    e0 = np.exp(beta * x0 - top)
    e1 = np.exp(beta * x1 - top)
    loglik = beta * swx - top * sw
    u = swx
    imat = 0.0
    for g in range(gw0.shape[0]):
        r0 = gw0[g] * e0
        r1 = gw1[g] * e1
        s0 = r0 + r1
        s1 = x0 * r0 + x1 * r1
        s2 = x0 * x0 * r0 + x1 * x1 * r1
        q0 = ge0[g] * e0
        q1 = ge1[g] * e1
        d0 = q0 + q1
        d1 = x0 * q0 + x1 * q1
        d2 = x0 * x0 * q0 + x1 * x1 * q1
        nterm = gnd[g] if efron else 1
        wt = gdead[g] / nterm
        for t in range(nterm):
            f = t / nterm
            den = s0 - f * d0
            inv = 1.0 / den
            loglik -= wt * np.log(den)
            xb = (s1 - f * d1) * inv
            u -= wt * xb
            imat += wt * (inv * (s2 - f * d2) - xb * xb)
    return loglik, u, imat


@njit(cache=True, error_model="numpy")
def _cox_binary(cnt, a, time, event, w, order, mean, efron, tol, max_iter):
    """(log-HR, status) of the weighted Cox model on treatment of the resample with row
    multiplicities ``cnt``: rows visited in the full sample's time-descending ``order``
    (a tie group is a run of equal times), then Newton as ``_cox_kernels._newton`` (R's
    rule) and the divergence check of ``cox._diagnose``."""
    n = cnt.shape[0]
    x0 = 0.0 - mean
    x1 = 1.0 - mean
    ng = 0
    for i in range(n):
        if cnt[i] and event[i]:
            ng += 1  # an upper bound on the event groups
    gw0 = np.empty(ng)
    gw1 = np.empty(ng)
    ge0 = np.empty(ng)
    ge1 = np.empty(ng)
    gnd = np.empty(ng, dtype=np.int64)
    gdead = np.empty(ng)
    w0 = 0.0
    w1 = 0.0
    swx = 0.0
    sw = 0.0
    g = 0
    o = 0
    while o < n:  # one tie group of the full sample per sweep (rows absent skipped)
        t = time[order[o]]
        e0 = 0.0
        e1 = 0.0
        nd = 0
        dead = 0.0
        while o < n and time[order[o]] == t:
            i = order[o]
            o += 1
            c = cnt[i]
            if c == 0:
                continue
            for _ in range(c):  # the copies one by one, as rows of a from-scratch fit
                if a[i]:
                    w1 += w[i]
                else:
                    w0 += w[i]
                if event[i]:
                    nd += 1
                    dead += w[i]
                    if a[i]:
                        e1 += w[i]
                    else:
                        e0 += w[i]
                    swx += w[i] * (x1 if a[i] else x0)
                    sw += w[i]
        if nd:
            gw0[g] = w0
            gw1[g] = w1
            ge0[g] = e0
            ge1[g] = e1
            gnd[g] = nd
            gdead[g] = dead
            g += 1
    gw0, gw1, ge0, ge1, gnd, gdead = gw0[:g], gw1[:g], ge0[:g], ge1[:g], gnd[:g], gdead[:g]
    beta = 0.0
    loglik, u, imat = _binary_pass(beta, x0, x1, gw0, gw1, ge0, ge1, gnd, gdead, swx, sw, efron)
    if not np.isfinite(loglik):
        return np.nan, COX_NOT_CONVERGED
    if not (np.isfinite(imat) and imat > 0.0):
        return np.nan, COX_NOT_CONVERGED
    root = np.sqrt(imat)
    newbeta = beta + (u / root) / root  # as _cox_kernels._chol_solve for p = 1
    halving = False
    converged = False
    for _ in range(max_iter):
        newlik, nu, nimat = _binary_pass(
            newbeta, x0, x1, gw0, gw1, ge0, ge1, gnd, gdead, swx, sw, efron
        )
        finite = np.isfinite(newlik)
        if finite and not halving and abs(newlik - loglik) <= tol * abs(newlik):
            beta, u, imat = newbeta, nu, nimat
            converged = True
            break
        if not finite or newlik < loglik:
            halving = True
            newbeta = 0.5 * (newbeta + beta)
            continue
        halving = False
        beta, loglik, u, imat = newbeta, newlik, nu, nimat
        if not (np.isfinite(imat) and imat > 0.0):
            return np.nan, COX_NOT_CONVERGED
        root = np.sqrt(imat)
        newbeta = beta + (u / root) / root
    if not converged:
        return np.nan, COX_NOT_CONVERGED
    if not (np.isfinite(imat) and imat > 0.0):
        return np.nan, COX_DIVERGED  # information vanished at the "maximum"
    root = np.sqrt(imat)
    step = (u / root) / root
    if not np.isfinite(step) or abs(step) > np.sqrt(tol) * max(1.0, abs(beta)):
        return np.nan, COX_DIVERGED
    return beta, OK


@njit(cache=True, error_model="numpy", parallel=True)
def _bootstrap_ps(idx, X, a, coef0, cov0, prob0, firth, ps_tol, ps_max_iter, firth_max_step):
    """PS refit of every resample (stage 1, shared by every outcome and estimand).

    Parameters
    ----------
    idx : (B, n) int64, rows of the full sample drawn for each resample.
    X : (n, p) float64 PS design with the intercept column.  a : (n,) int64 0/1.
    coef0, cov0, prob0 : full-sample PS coefficients (p,), their model covariance (p, p)
        and fitted probabilities (n,) (the ML start; zeros when the full-sample fit
        did not converge).
    firth : bool.  Tolerance, iteration limit and Firth step cap of the fit.

    Returns
    -------
    logits (B, n) float64 by full-sample row (0 for rows not drawn), status (B,) int8.
    """
    nb, n = idx.shape
    logits = np.empty((nb, n))
    status = np.empty(nb, dtype=np.int8)
    for b in prange(nb):
        lg, st = _resample_ps(
            idx[b], X, a, coef0, cov0, prob0, firth, ps_tol, ps_max_iter, firth_max_step
        )
        logits[b] = lg
        status[b] = st
    return logits, status


@njit(cache=True, error_model="numpy", parallel=True)
def _bootstrap_effect(
    idx, logits, ps_status, a, time, event, order, estimand, stabilized, truncate, q_lo, q_hi,
    trim, t_lo, t_hi, efron, cox_tol, cox_max_iter,
):  # fmt: skip
    """Weights and weighted Cox of every resample (stage 2, one outcome and estimand).

    Parameters
    ----------
    idx, logits, ps_status : resamples and the output of :func:`_bootstrap_ps`.
    a : (n,) int64 0/1.  time : (n,) float64 months.  event : (n,) int64 0/1.
    order : (n,) int64, full-sample rows by time descending.
    estimand : int code.  stabilized, truncate, efron : bool.
    q_lo, q_hi : truncation percentiles.  trim : bool, t_lo, t_hi : PS trimming bounds.
    cox_tol, cox_max_iter : Cox Newton rule.

    Returns
    -------
    estimates (B,) float64 (NaN where the resample failed), status (B,) int8.
    """
    nb = idx.shape[0]
    est = np.empty(nb)
    status = np.empty(nb, dtype=np.int8)
    for b in prange(nb):
        if ps_status[b] != OK:
            est[b] = np.nan
            status[b] = ps_status[b]
            continue
        e, st = _resample_effect(
            idx[b], logits[b], a, time, event, order, estimand, stabilized, truncate, q_lo,
            q_hi, trim, t_lo, t_hi, efron, cox_tol, cox_max_iter,
        )  # fmt: skip
        est[b] = e
        status[b] = st
    return est, status
