"""numba kernel: the AIPCW censoring-martingale integral of :func:`estimators.aiptw`."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def _aipcw_augmentation(
    T: np.ndarray,
    censored: np.ndarray,
    rows: np.ndarray,
    r: np.ndarray,
    rc: np.ndarray,
    ck: np.ndarray,
    dHc: np.ndarray,
    g_at: np.ndarray,
    H_at: np.ndarray,
    H_before: np.ndarray,
    H_tau: float,
) -> np.ndarray:
    """``sum_{ck_k <= T_i} (F_i(tau) - F_i(ck_k)) / (S_i(ck_k-) G_i(ck_k-)) dM_ik``.

    Parameters
    ----------
    T : ndarray, shape (n,)
        Follow-up, months.
    censored : ndarray, shape (n,)
        1 where the row is censored.
    rows : ndarray, shape (m,)
        Rows to compute (the others are 0).
    r, rc : ndarray, shape (n,)
        ``exp`` of the outcome / censoring linear predictors.
    ck : ndarray, shape (K,)
        Grid of censoring times <= tau, ascending (ties may repeat).
    dHc, g_at, H_at, H_before : ndarray, shape (K,)
        Censoring baseline hazard increment, censoring cumulative hazard used in ``G``,
        outcome cumulative hazard at and just before each grid point.
    H_tau : float
        Outcome cumulative baseline hazard at tau.

    Returns
    -------
    ndarray, shape (n,)
    """
    out = np.zeros(T.shape[0])
    for j in range(rows.shape[0]):
        i = rows[j]
        f_tau = 1.0 - math.exp(-r[i] * H_tau)
        acc = 0.0
        for k in range(ck.shape[0]):
            if ck[k] > T[i]:
                break
            dm = -dHc[k] * rc[i]
            if censored[i] == 1 and ck[k] == T[i]:
                dm += 1.0
            f_u = 1.0 - math.exp(-r[i] * H_at[k])
            acc += (f_tau - f_u) * dm / (math.exp(-r[i] * H_before[k] - rc[i] * g_at[k]))
        out[i] = acc
    return out
