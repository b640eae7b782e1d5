"""numba kernel: the AIPCW censoring-martingale integral of :func:`estimators.aiptw`."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._vexp import _exp_into


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
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

    F_i(tau) - F_i(u) = S_i(u) - S_i(tau); the survival products are evaluated for all
    the patient's grid points at once with the vectorised exp (:mod:`._vexp`), and the
    censoring martingale increment dM_ik = dN_ik - dHc_k rc_i is summed as its
    compensator part over the grid plus the jump at T_i.  The sums are vectorised
    (reassociated in an order fixed by the compiled code: the same on every call).

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
    n_k = ck.shape[0]
    out = np.zeros(T.shape[0])
    x_at = np.empty(n_k)
    x_sg = np.empty(n_k)
    s_at = np.empty(n_k)
    sg = np.empty(n_k)
    work = np.empty(n_k)
    for j in range(rows.shape[0]):
        i = rows[j]
        ri, rci = r[i], rc[i]
        m = np.searchsorted(ck, T[i], side="right")  # the grid points <= T_i
        for k in range(m):
            x_at[k] = -ri * H_at[k]
            x_sg[k] = -ri * H_before[k] - rci * g_at[k]
        _exp_into(x_at[:m], s_at, work)  # S_i(ck_k)
        _exp_into(x_sg[:m], sg, work)  # S_i(ck_k-) G_i(ck_k-)
        s_tau = math.exp(-ri * H_tau)
        acc = 0.0
        for k in range(m):  # the compensator part of dM: -dHc_k rc_i
            acc += (s_at[k] - s_tau) * (-dHc[k] * rci) / sg[k]
        if censored[i] == 1:  # the jump of N_c at T_i (repeated ties: each grid copy)
            for k in range(m - 1, -1, -1):
                if ck[k] != T[i]:
                    break
                acc += (s_at[k] - s_tau) / sg[k]
        out[i] = acc
    return out
