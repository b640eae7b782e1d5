"""numba kernel: weighted Kaplan-Meier functionals of two arms and their influence functions.

One pass over the patients in time order builds each arm's distinct times, weighted
events ``D_k`` and removals; a pass over the distinct times gives ``S``, the functional
(``S(tau)`` or the RMST up to ``tau``) and the per-time coefficients ``h_k``; a last pass
gives each patient's influence value (see :mod:`estimators.km_effects` for the formulas).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _km_functional(
    t: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    order: np.ndarray,
    group: np.ndarray,
    tau: float,
    rmst: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Functional of the weighted KM of arms 0 and 1 and every patient's influence value.

    Parameters
    ----------
    t, e, w : ndarray, shape (n,)
        Times (months, > 0), events (0/1, any integer or float dtype), weights (> 0).
    order : ndarray of int64, shape (n,)
        Row order by time **descending** (:attr:`Outcome.order`).
    group : ndarray of int8, shape (n,)
        Arm of each row (0, 1), or -1 for rows left out.
    tau : float
        Horizon, months, > 0.
    rmst : bool
        True: RMST up to ``tau``; False: ``S(tau)``.

    Returns
    -------
    estimate : ndarray, shape (2,)
        The functional of arm 0 and arm 1.
    phi : ndarray, shape (n,)
        Influence value of each row for its own arm's functional (0 for left-out rows).
    last_time, last_surv : ndarray, shape (2,)
        Each arm's last observed time and ``S`` just after it (NaN, 1 for an empty arm).
    events_to_tau : ndarray, shape (2,)
        Weighted events at times ``<= tau`` in each arm.
    """
    n = t.size
    tk = np.empty((2, n))
    dk = np.empty((2, n))
    rk = np.empty((2, n))
    kk = np.zeros(2, dtype=np.int64)
    total = np.zeros(2)
    slot = np.empty(n, dtype=np.int64)
    for pos in range(n - 1, -1, -1):  # ascending time
        i = order[pos]
        g = group[i]
        if g < 0:
            continue
        k = kk[g]
        if k == 0 or t[i] != tk[g, k - 1]:
            tk[g, k] = t[i]
            dk[g, k] = 0.0
            rk[g, k] = 0.0
            kk[g] = k + 1
        k = kk[g] - 1
        dk[g, k] += w[i] * e[i]
        rk[g, k] += w[i]
        total[g] += w[i]
        slot[i] = k
    estimate = np.empty(2)
    last_time = np.full(2, np.nan)
    last_surv = np.ones(2)
    events_to_tau = np.zeros(2)
    cum = np.empty((2, n))  # c_k = sum_{l <= k, t_l <= tau} h_l D_l / Y_l
    h = np.empty((2, n))
    ktau = np.zeros(2, dtype=np.int64)
    surv = np.empty(n)
    for g in range(2):
        K = kk[g]
        y = total[g]
        s = 1.0
        kt = 0
        for k in range(K):
            d = dk[g, k]
            ratio = d / y
            full = ratio >= 1.0 - 1e-12  # every one at risk has the event (up to rounding)
            s = 0.0 if full else s * (1.0 - ratio)
            surv[k] = s
            h[g, k] = 0.0 if full else y - d  # Y_k - D_k, turned into h_k below
            cum[g, k] = ratio
            if tk[g, k] <= tau:
                kt = k + 1
                events_to_tau[g] += d
            y -= rk[g, k]
        ktau[g] = kt
        if K > 0:
            last_time[g] = tk[g, K - 1]
            last_surv[g] = surv[K - 1]
        s_tau = surv[kt - 1] if kt > 0 else 1.0
        if rmst:
            area = s_tau * (tau - (tk[g, kt - 1] if kt > 0 else 0.0))  # A_{kt-1}
            for k in range(kt - 1, -1, -1):
                ymd = h[g, k]
                h[g, k] = area / ymd if ymd > 0.0 and surv[k] > 0.0 else 0.0
                prev_t = tk[g, k - 1] if k > 0 else 0.0
                prev_s = surv[k - 1] if k > 0 else 1.0
                area += prev_s * (tk[g, k] - prev_t)
            estimate[g] = area
        else:
            for k in range(kt):
                ymd = h[g, k]
                h[g, k] = s_tau / ymd if ymd > 0.0 and s_tau > 0.0 else 0.0
            estimate[g] = s_tau
        c = 0.0
        for k in range(kt):
            c += h[g, k] * cum[g, k]
            cum[g, k] = c
    phi = np.zeros(n)
    for i in range(n):
        g = group[i]
        if g < 0 or ktau[g] == 0:
            continue
        k = slot[i]
        kt = ktau[g]
        jump = h[g, k] * e[i] if k < kt else 0.0
        phi[i] = -w[i] * (jump - cum[g, min(k, kt - 1)])
    return estimate, phi, last_time, last_surv, events_to_tau
