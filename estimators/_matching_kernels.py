"""numba kernel for greedy 1:1 nearest-neighbour matching without replacement.

Controls are sorted by logit (ties by row index).  Two union-find structures over
sorted positions give, in near-constant amortised time, the nearest *available*
control at or to the right of a position and at or to the left of it, so each
treated patient costs one binary search plus a few finds: O(n log n) overall
instead of the O(n_treated x n_control) distance matrix.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _find(parent: np.ndarray, i: int) -> int:
    """Root of ``i`` with path compression (the nearest available slot)."""
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        nxt = parent[i]
        parent[i] = root
        i = nxt
    return root


@njit(cache=True)
def _greedy_match(
    treated_logit: np.ndarray,
    control_logit: np.ndarray,
    control_row: np.ndarray,
    block_start: np.ndarray,
    caliper: float,
) -> np.ndarray:
    """Match each treated patient, in the given order, to the nearest free control.

    Parameters
    ----------
    treated_logit : ndarray, shape (n1,)
        Treated logits in matching order.
    control_logit : ndarray, shape (n0,)
        Control logits sorted ascending (ties ordered by row index).
    control_row : ndarray, shape (n0,)
        Row index of each sorted control (only used to break distance ties).
    block_start : ndarray, shape (n0,)
        For each sorted position, the first position holding the same logit.
    caliper : float
        Largest allowed absolute logit distance (inclusive); ``inf`` for none.

    Returns
    -------
    ndarray, shape (n1,)
        Sorted control position matched to each treated patient, -1 if unmatched.
        Among controls at the same distance the one with the smallest row index wins.
    """
    n1 = treated_logit.size
    n0 = control_logit.size
    # right[k]: smallest free position >= k (n0 = none); left[k + 1]: largest free
    # position <= k, stored shifted by one (0 = none).
    right = np.arange(n0 + 1)
    left = np.arange(n0 + 1)
    out = np.full(n1, -1, dtype=np.int64)
    for t in range(n1):
        x = treated_logit[t]
        pos = np.searchsorted(control_logit, x)  # first control with logit >= x
        r = _find(right, pos)
        lft = _find(left, pos) - 1
        if lft >= 0:  # earliest free control of the same logit = smallest row index
            lft = _find(right, block_start[lft])
        best = -1
        best_d = np.inf
        if lft >= 0:
            best, best_d = lft, x - control_logit[lft]
        if r < n0:
            d = control_logit[r] - x
            if best < 0 or d < best_d or (d == best_d and control_row[r] < control_row[best]):
                best, best_d = r, d
        if best >= 0 and best_d <= caliper:
            out[t] = best
            right[best] = best + 1
            left[best + 1] = best
    return out
