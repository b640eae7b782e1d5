"""numba kernel: weighted numbers at risk of a Kaplan-Meier curve whose weights vary in
time, ``w_i(t) = exp(c_k r_i)`` on the intervals ``(edges[k], edges[k + 1]]`` (the
clone-censor-weight curves of :mod:`estimators.switching`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def _tv_at_risk(
    stop_desc: np.ndarray,
    r_desc: np.ndarray,
    ev_t: np.ndarray,
    k_ev: np.ndarray,
    c: np.ndarray,
) -> np.ndarray:
    """Weighted number at risk ``Y_j = sum_{stop_i >= t_j} exp(c_{k_j} r_i)``.

    Parameters
    ----------
    stop_desc, r_desc : ndarray, shape (n,)
        Rows' end of follow-up (months), descending, and their weight exponents.
    ev_t : ndarray, shape (m,)
        Distinct event times, ascending, months.
    k_ev : ndarray, shape (m,) int64
        Interval of each event time (non-decreasing).
    c : ndarray, shape (K,)
        Weight multiplier of each interval.

    Returns
    -------
    ndarray, shape (m,)
        ``Y_j``.  One pass from the last event time down; the running sum is rebuilt
        over the rows already added whenever the interval changes, so the cost is about
        n times the number of intervals holding events.
    """
    n, m = stop_desc.size, ev_t.size
    out = np.empty(m)
    i = 0
    cur = -1
    acc = 0.0
    for j in range(m - 1, -1, -1):
        k = k_ev[j]
        ck = c[k]
        if k != cur:
            acc = 0.0
            for q in range(i):
                acc += math.exp(ck * r_desc[q])
            cur = k
        t = ev_t[j]
        while i < n and stop_desc[i] >= t:
            acc += math.exp(ck * r_desc[i])
            i += 1
        out[j] = acc
    return out
