"""numba kernels of the RPSFTM g-estimation: counterfactual times and the log-rank z.

Private: called by :mod:`estimators.rpsftm` on validated arrays only (float64 months,
int8 0/1 indicators, equal lengths).  Times in months.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def _counterfactual(t_off, t_on, cens, event, psi, recensor):
    """Counterfactual untreated times U = T_off + exp(psi) T_on and their events.

    Patients with ``recensor[i]`` (n,) bool are censored at C* = C min(1, exp(psi))
    (``cens``: the potential censoring time C): time min(U, C*), event
    ``event and U <= C*``.  Returns (time (n,), event (n,) int8, cut (n,) bool: U > C*,
    the time was cut).
    """
    n = t_off.shape[0]
    f = np.exp(psi)
    shrink = min(1.0, f)
    u = np.empty(n)
    ev = np.empty(n, dtype=np.int8)
    cut = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        v = t_off[i] + f * t_on[i]
        e = event[i]
        if recensor[i]:
            c = cens[i] * shrink
            if v > c:
                v = c
                e = 0
                cut[i] = True
        u[i] = v
        ev[i] = e
    return u, ev, cut


@njit(cache=True, error_model="numpy")
def _logrank_z(time, event, arm):
    """Signed log-rank z of arm 1 vs arm 0: sum (O1 - E1) / sqrt(sum V).

    Ties: at each distinct event time t with d events among n at risk (n1 in arm 1),
    E1 = d n1 / n and V = d (n1 / n)(1 - n1 / n)(n - d) / (n - 1); rows censored at t
    are at risk at t.  z > 0: arm 1 has more events than expected (HR > 1).  NaN when
    the variance is 0.
    """
    n = time.shape[0]
    order = np.argsort(time)
    n1 = 0
    for i in range(n):
        n1 += arm[i]
    at_risk = n
    at_risk1 = n1
    oe = 0.0
    var = 0.0
    k = 0
    while k < n:
        t = time[order[k]]
        d = 0
        d1 = 0
        m = 0
        m1 = 0
        while k + m < n and time[order[k + m]] == t:
            i = order[k + m]
            if event[i]:
                d += 1
                d1 += arm[i]
            m1 += arm[i]
            m += 1
        if d > 0:
            p1 = at_risk1 / at_risk
            oe += d1 - d * p1
            if at_risk > 1:
                var += d * p1 * (1.0 - p1) * (at_risk - d) / (at_risk - 1.0)
        at_risk -= m
        at_risk1 -= m1
        k += m
    if var <= 0.0:
        return np.nan
    return oe / np.sqrt(var)


@njit(cache=True, error_model="numpy")
def _z_at(psi, t_off, t_on, cens, event, arm, recensor):
    """Log-rank z of the counterfactual times U(psi) between the randomised arms."""
    u, ev, _ = _counterfactual(t_off, t_on, cens, event, psi, recensor)
    return _logrank_z(u, ev, arm)


@njit(cache=True, error_model="numpy")
def _z_grid(psis, t_off, t_on, cens, event, arm, recensor):
    """:func:`_z_at` at every value of ``psis`` (m,); returns z (m,)."""
    z = np.empty(psis.shape[0])
    for k in range(psis.shape[0]):
        z[k] = _z_at(psis[k], t_off, t_on, cens, event, arm, recensor)
    return z
