"""numba kernels: Cox and Kaplan-Meier sums with time-varying (IPCW) weights.

Private: :mod:`estimators.ipcw` validates every input.  Rows are sorted by time
**ascending**; ``jfirst[j]`` is the first row with time >= ``tj[j]`` (the j-th distinct
event time, ascending) and ``jlast[j]`` one past the last row with time == ``tj[j]``, so
the risk set at ``tj[j]`` is rows ``jfirst[j]:n`` and its candidate events rows
``jfirst[j]:jlast[j]``.

The weight of row i at event time j is ``w[i] * f(i, j)`` with the censoring factor

    f(i, j) = min(cap, num[arm[i], j] * exp(cumhaz[grp[i], j] * risk[i]))

``cumhaz[g, j]`` the censoring model's baseline cumulative hazard of group ``g`` just
before ``tj[j]`` (so ``exp(-cumhaz * risk) = K_i(t_j-)``), ``risk[i]`` the row's
censoring relative risk, ``num[a, j]`` the stabilising numerator (arm a's marginal
Kaplan-Meier censoring survival just before ``tj[j]``; 1 unstabilised), ``cap`` the
truncation (``inf``: none).  The factors are computed once per fit
(:func:`_factors_at_risk`) and the weights ``w[i] f(i, j)`` stored flat
(:func:`_pair_weights`: O(n x distinct event times) memory, ~4 MB at n = 1,430); every
pass then reads them: O(n x distinct event times) work, no exponential.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def _factor(cap, num, cumhaz, risk, arm, grp, i, j):
    f = num[arm[i], j] * math.exp(cumhaz[grp[i], j] * risk[i])
    return f if f < cap else cap


@njit(cache=True)
def _factors_at_risk(jfirst, num, cumhaz, risk, arm, grp):
    """Every (row at risk, event time) factor, uncapped: flat (sum_j (n - jfirst[j]),)."""
    n = risk.size
    total = 0
    for j in range(jfirst.size):
        total += n - jfirst[j]
    out = np.empty(total)
    pos = 0
    for j in range(jfirst.size):
        for i in range(jfirst[j], n):
            out[pos] = _factor(np.inf, num, cumhaz, risk, arm, grp, i, j)
            pos += 1
    return out


@njit(cache=True)
def _pair_weights(w, f, jfirst, cap):
    """Flat pair weights ``w[i] min(f, cap)`` in the layout of :func:`_factors_at_risk`,
    and each event time's offset (D,)."""
    n = w.size
    offs = np.empty(jfirst.size, dtype=np.int64)
    pw = np.empty(f.size)
    pos = 0
    for j in range(jfirst.size):
        offs[j] = pos
        for i in range(jfirst[j], n):
            x = f[pos]
            pw[pos] = w[i] * (x if x < cap else cap)
            pos += 1
    return pw, offs


@njit(cache=True)
def _tv_cox_pass(X, pw, offs, event, jfirst, jlast, beta, efron):
    """Log partial likelihood, score (p,) and information (p, p) at ``beta``.

    Weighted Cox partial likelihood whose weights change with time: at event time j
    each row weighs ``w[i] f(i, j)`` (module docstring).  Ties as R ``coxph``: Breslow,
    or Efron with the tied events' mean weight per term and ``den_k = S0 - (k/d) D0``.

    Parameters
    ----------
    X : (n, p) float64 centred covariates, rows by time ascending.
    pw : flat float64 pair weights ``w[i] f(i, j)``, row i of event time j at
    ``offs[j] + i - jfirst[j]`` (:func:`_pair_weights`).  offs : (D,) int64.
    event : (n,) int8.  jfirst, jlast : (D,) int64 row ranges of the distinct event times.
    beta : (p,).  efron : bool.
    """
    n, p = X.shape
    eta = X @ beta
    ex = np.exp(eta)
    u = np.zeros(p)
    imat = np.zeros((p, p))
    s1 = np.zeros(p)
    d1 = np.zeros(p)
    s2 = np.zeros((p, p))
    d2 = np.zeros((p, p))
    loglik = 0.0
    for j in range(jfirst.size):
        s0 = 0.0
        d0 = 0.0
        s1[:] = 0.0
        d1[:] = 0.0
        s2[:, :] = 0.0
        d2[:, :] = 0.0
        nd = 0
        deadwt = 0.0
        for i in range(jfirst[j], n):
            wi = pw[offs[j] + i - jfirst[j]]
            r = wi * ex[i]
            s0 += r
            for a in range(p):
                rx = r * X[i, a]
                s1[a] += rx
                for b in range(a + 1):
                    s2[a, b] += rx * X[i, b]
            if i < jlast[j] and event[i]:
                nd += 1
                deadwt += wi
                loglik += wi * eta[i]
                d0 += r
                for a in range(p):
                    rx = r * X[i, a]
                    u[a] += wi * X[i, a]
                    d1[a] += rx
                    for b in range(a + 1):
                        d2[a, b] += rx * X[i, b]
        nterm = nd if efron else 1
        wt = deadwt / nterm
        for k in range(nterm):
            f = k / nterm if efron else 0.0
            den = s0 - f * d0
            loglik -= wt * math.log(den)
            for a in range(p):
                xa = (s1[a] - f * d1[a]) / den
                u[a] -= wt * xa
                for b in range(a + 1):
                    xb = (s1[b] - f * d1[b]) / den
                    imat[a, b] += wt * ((s2[a, b] - f * d2[a, b]) / den - xa * xb)
    for a in range(p):
        for b in range(a):
            imat[b, a] = imat[a, b]
    return loglik, u, imat


@njit(cache=True)
def _tv_cox_scores(X, pw, offs, event, jfirst, jlast, beta, efron):
    """Each patient's weighted score contribution (n, p) at ``beta`` (they sum to the score).

    ``U_i = sum_j w_i f(i, j) [dN_i(t_j) (x_i - xmean_j)
    - exp(eta_i) sum_k c_ik dH_jk (x_i - xbar_jk)]`` over the event times j where row i
    is at risk and the Efron terms k, with ``dH_jk = wt_j / den_jk``, ``c_ik = 1 - k/d``
    for the time's own events and 1 otherwise, ``xmean_j`` the mean of the terms'
    ``xbar_jk``: the per-interval weighted score residuals of R ``coxph`` on the data
    split at every censoring-model step, summed per patient (``cluster(id)``).
    """
    n, p = X.shape
    eta = X @ beta
    ex = np.exp(eta)
    out = np.zeros((n, p))
    s1 = np.zeros(p)
    d1 = np.zeros(p)
    hx = np.zeros(p)
    hxd = np.zeros(p)
    xm = np.zeros(p)
    for j in range(jfirst.size):
        s0 = 0.0
        d0 = 0.0
        s1[:] = 0.0
        d1[:] = 0.0
        nd = 0
        deadwt = 0.0
        for i in range(jfirst[j], n):
            wi = pw[offs[j] + i - jfirst[j]]
            r = wi * ex[i]
            s0 += r
            for a in range(p):
                s1[a] += r * X[i, a]
            if i < jlast[j] and event[i]:
                nd += 1
                deadwt += wi
                d0 += r
                for a in range(p):
                    d1[a] += r * X[i, a]
        nterm = nd if efron else 1
        wt = deadwt / nterm
        h = 0.0
        hd = 0.0
        hx[:] = 0.0
        hxd[:] = 0.0
        xm[:] = 0.0
        for k in range(nterm):
            f = k / nterm if efron else 0.0
            den = s0 - f * d0
            dh = wt / den
            h += dh
            hd += (1.0 - f) * dh
            for a in range(p):
                xb = (s1[a] - f * d1[a]) / den
                hx[a] += dh * xb
                hxd[a] += (1.0 - f) * dh * xb
                xm[a] += xb / nterm
        for i in range(jfirst[j], n):
            wi = pw[offs[j] + i - jfirst[j]]
            if i < jlast[j] and event[i]:
                for a in range(p):
                    out[i, a] += wi * (X[i, a] - xm[a] - ex[i] * (X[i, a] * hd - hxd[a]))
            else:
                for a in range(p):
                    out[i, a] -= wi * ex[i] * (X[i, a] * h - hx[a])
    return out


@njit(cache=True)
def _tv_km(t, pw, offs, event, arm, jfirst, jlast, tau, rmst):
    """Weighted KM functional of arms 0 and 1 with time-varying weights, and influence.

    Per arm g and event time j: ``D_gj`` = sum of ``w_i f(i, j)`` over the arm's events
    at ``tj[j]``, ``Y_gj`` over the arm's rows at risk; ``S_g = prod (1 - D/Y)``.  The
    functional is ``S_g(tau)`` or ``int_0^tau S_g`` (months), and row i's influence value
    (the derivative of its arm's functional along a scaling of the row's whole weight
    path, the weights held fixed otherwise)::

        phi_i = -[dN_i w_i f(i, k_i) h_{k_i} - sum_{t_k <= min(T_i, tau)} w_i f(i, k) h_k D_k / Y_k]

    with ``h_k = A_k / (Y_k - D_k)`` (0 where ``Y_k = D_k``), ``A_k = int_{t_k}^tau S``
    (RMST) or ``S(tau)``, as in :mod:`estimators._km_kernels` (equal to it when every
    factor is 1).

    Returns
    -------
    estimate : (2,)   phi : (n,)   surv : (2, D) S_g just after each event time.
    """
    n = t.size
    D = jfirst.size
    dk = np.zeros((2, D))
    yk = np.zeros((2, D))
    for j in range(D):
        for i in range(jfirst[j], n):
            wi = pw[offs[j] + i - jfirst[j]]
            g = arm[i]
            yk[g, j] += wi
            if i < jlast[j] and event[i]:
                dk[g, j] += wi
    surv = np.ones((2, D))
    h = np.zeros((2, D))
    estimate = np.zeros(2)
    for g in range(2):
        s = 1.0
        kt = 0
        for j in range(D):
            if yk[g, j] > 0.0 and dk[g, j] > 0.0:
                ratio = dk[g, j] / yk[g, j]
                s = 0.0 if ratio >= 1.0 - 1e-12 else s * (1.0 - ratio)
            surv[g, j] = s
            if t[jfirst[j]] <= tau:
                kt = j + 1
        s_tau = surv[g, kt - 1] if kt > 0 else 1.0
        if rmst:
            area = s_tau * (tau - (t[jfirst[kt - 1]] if kt > 0 else 0.0))
            for j in range(kt - 1, -1, -1):
                ymd = yk[g, j] - dk[g, j]
                full = dk[g, j] >= yk[g, j] * (1.0 - 1e-12)
                h[g, j] = area / ymd if ymd > 0.0 and not full and surv[g, j] > 0.0 else 0.0
                prev_t = t[jfirst[j - 1]] if j > 0 else 0.0
                prev_s = surv[g, j - 1] if j > 0 else 1.0
                area += prev_s * (t[jfirst[j]] - prev_t)
            estimate[g] = area
        else:
            for j in range(kt):
                ymd = yk[g, j] - dk[g, j]
                full = dk[g, j] >= yk[g, j] * (1.0 - 1e-12)
                h[g, j] = s_tau / ymd if ymd > 0.0 and not full and s_tau > 0.0 else 0.0
            estimate[g] = s_tau
    phi = np.zeros(n)
    for j in range(D):
        if t[jfirst[j]] > tau:
            break
        for i in range(jfirst[j], n):
            g = arm[i]
            if yk[g, j] <= 0.0:
                continue
            wi = pw[offs[j] + i - jfirst[j]]
            phi[i] += wi * h[g, j] * dk[g, j] / yk[g, j]
            if i < jlast[j] and event[i]:
                phi[i] -= wi * h[g, j]
    return estimate, phi, surv
