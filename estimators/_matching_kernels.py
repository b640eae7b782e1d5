"""numba kernels for nearest-neighbour matching on the logit propensity score.

Controls are sorted by logit (ties by row index).

* Without replacement (:func:`_greedy_match`): two union-find structures over sorted
  positions give, in near-constant amortised time, the nearest *available* control at
  or to the right of a position and at or to the left of it, so each treated patient
  costs one position look-up plus a few finds per round, instead of
  the O(n_treated x n_control) distance matrix.
* With replacement (:func:`_nearest_k`): every control stays available; from the
  treated patient's position two pointers walk outwards block by block
  (a block is a run of equal control logits), O(k) per treated patient.

The starting position (first control with logit >= the treated logit) comes from a
bucket table over the controls' range (:func:`_bucket_index`) and a binary search
over the few buckets around it: exact, without a full binary search's cache misses.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import _cox_kernels as _ck


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
def _bucket_index(sorted_x: np.ndarray) -> np.ndarray:
    """Lower-bound table of sorted values over n equal-width buckets of their range.

    ``first[b]`` is the first position whose value is >= the left edge of bucket b
    (edges ``lo + b (hi - lo) / n``), so :func:`_lower_bound` starts next to the answer
    (a search over a few buckets) instead of a binary search over all (cache misses).
    """
    n = sorted_x.size
    first = np.empty(n + 1, dtype=np.int64)
    lo = sorted_x[0]
    width = (sorted_x[n - 1] - lo) / n
    pos = 0
    for b in range(n + 1):
        edge = lo + b * width
        while pos < n and sorted_x[pos] < edge:
            pos += 1
        first[b] = pos
    return first


@njit(cache=True)
def _lower_bound(sorted_x: np.ndarray, first: np.ndarray, x: float) -> int:
    """First position with ``sorted_x >= x`` (``np.searchsorted(sorted_x, x)``), exact: a
    binary search within the few buckets around ``x`` (a short, cached range)."""
    n = sorted_x.size
    lo = sorted_x[0]
    span = sorted_x[n - 1] - lo
    if not x > lo:
        return 0
    if x > sorted_x[n - 1]:
        return n
    b = int((x - lo) / span * n)  # x in bucket b up to rounding: the answer lies in
    a = first[max(b - 1, 0)]  # [first[b - 1], first[b + 2]]; binary search there
    z = first[min(b + 2, n)]
    while a < z:
        mid = (a + z) // 2
        if sorted_x[mid] < x:
            a = mid + 1
        else:
            z = mid
    while a > 0 and sorted_x[a - 1] >= x:  # guards: exact whatever the rounding
        a -= 1
    while a < n and sorted_x[a] < x:
        a += 1
    return a


@njit(cache=True)
def _greedy_match(
    treated_logit: np.ndarray,
    control_logit: np.ndarray,
    control_row: np.ndarray,
    block_start: np.ndarray,
    caliper: float,
    ratio: int,
) -> np.ndarray:
    """``ratio`` rounds of greedy 1:1 matching without replacement.

    In each round every treated patient, in the given order, takes the nearest free
    control within the caliper (a treated patient left without a control in one round
    is skipped in the later ones: the free controls only get fewer).

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
    ratio : int
        Rounds (controls per treated patient at most), >= 1.

    Returns
    -------
    ndarray, shape (n1, ratio)
        Sorted control position taken by each treated patient in each round, -1 if
        none.  Among free controls at the same distance the smallest row index wins.
    """
    n1 = treated_logit.size
    n0 = control_logit.size
    # right[k]: smallest free position >= k (n0 = none); left[k + 1]: largest free
    # position <= k, stored shifted by one (0 = none).
    right = np.arange(n0 + 1)
    left = np.arange(n0 + 1)
    out = np.full((n1, ratio), -1, dtype=np.int64)
    first = _bucket_index(control_logit)
    for rnd in range(ratio):
        for t in range(n1):
            if rnd > 0 and out[t, rnd - 1] < 0:
                continue
            x = treated_logit[t]
            pos = _lower_bound(control_logit, first, x)  # first control with logit >= x
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
                out[t, rnd] = best
                right[best] = best + 1
                left[best + 1] = best
    return out


@njit(cache=True)
def _nearest_k(
    treated_logit: np.ndarray,
    control_logit: np.ndarray,
    control_row: np.ndarray,
    block_start: np.ndarray,
    block_end: np.ndarray,
    caliper: float,
    ratio: int,
) -> np.ndarray:
    """The ``ratio`` nearest controls of every treated patient (with replacement).

    Parameters
    ----------
    treated_logit, control_logit, control_row, block_start, caliper, ratio
        As in :func:`_greedy_match`.
    block_end : ndarray, shape (n0,)
        For each sorted position, the last position holding the same logit.

    Returns
    -------
    ndarray, shape (n1, ratio)
        Sorted control positions of each treated patient, nearest first, ties in
        distance by row index; -1 pads a treated patient with fewer than ``ratio``
        controls within the caliper.
    """
    n1 = treated_logit.size
    n0 = control_logit.size
    out = np.full((n1, ratio), -1, dtype=np.int64)
    first = _bucket_index(control_logit)
    for t in range(n1):
        x = treated_logit[t]
        r = _lower_bound(control_logit, first, x)  # a block start: first logit >= x
        lft = r - 1  # a block end: last logit < x
        got = 0
        while got < ratio:
            dl = x - control_logit[lft] if lft >= 0 else np.inf
            dr = control_logit[r] - x if r < n0 else np.inf
            d = min(dl, dr)
            if d > caliper or d == np.inf:
                break
            i = block_start[lft] if dl == d else n0  # left block, ascending row
            i_end = lft + 1 if dl == d else n0
            j = r if dr == d else n0  # right block, ascending row
            j_end = block_end[r] + 1 if dr == d else n0
            if dl == d:
                lft = block_start[lft] - 1
            if dr == d:
                r = j_end
            while got < ratio and (i < i_end or j < j_end):
                if j >= j_end or (i < i_end and control_row[i] < control_row[j]):
                    out[t, got] = i
                    i += 1
                else:
                    out[t, got] = j
                    j += 1
                got += 1
    return out


# ---- matched-set bootstrap of the Cox fit ---------------------------------------------------
BOOT_OK = 0
BOOT_NO_EVENTS = 1
BOOT_ONE_ARM = 2
BOOT_NOT_CONVERGED = 3
BOOT_DIVERGING = 4
BOOT_REASONS = ("", "no events", "a single arm", "no convergence", "a diverging coefficient")


@njit(cache=True, error_model="numpy")
def _boot_cox(time, event, a, w, set_start, by_time, draws, stratified, efron, tol, max_iter):
    """Cox log-HR of treatment in each matched-set bootstrap resample.

    The resample's rows are emitted already in the kernels' layout (stratum, then time
    descending), so no resample is sorted: unstratified, every row of ``by_time``
    (all rows, time descending) is repeated as often as its set was drawn; stratified,
    the drawn sets follow each other (stratum j = the j-th draw), each set's rows
    stored time descending.

    Parameters
    ----------
    time : (m,) float64 months.  event : (m,) int8.  a : (m,) float64 0/1 treatment.
    w : (m,) float64 row weights.  Rows grouped by matched set, time descending within
    a set: set s holds rows ``set_start[s] : set_start[s + 1]``.
    by_time : (m,) int64
        The rows sorted by time descending.
    draws : (n_boot, n_sets) int64
        The sets drawn (with replacement) for each resample.
    stratified : bool
        Stratify on the drawn set (a set drawn twice is two strata).
    efron : bool.  tol : float.  max_iter : int.

    Returns
    -------
    estimates : (n_boot,) float64, NaN where the resample failed.
    status : (n_boot,) int64, ``BOOT_OK`` or the reason of the failure.
    """
    n_boot, n_draw = draws.shape
    n_sets = set_start.shape[0] - 1
    m_all = time.shape[0]
    set_of = np.empty(m_all, dtype=np.int64)
    for s in range(n_sets):
        for i in range(set_start[s], set_start[s + 1]):
            set_of[i] = s
    est = np.full(n_boot, np.nan)
    status = np.zeros(n_boot, dtype=np.int64)
    root = np.sqrt(tol)
    count = np.zeros(n_sets, dtype=np.int64)
    for b in range(n_boot):
        count[:] = 0
        m = 0
        for j in range(n_draw):
            s = draws[b, j]
            count[s] += 1
            m += set_start[s + 1] - set_start[s]
        ts = np.empty(m)
        es = np.empty(m, dtype=np.int8)
        ws = np.empty(m)
        ss = np.zeros(m, dtype=np.int64)
        xs = np.empty((m, 1))
        pos = 0
        if stratified:
            for j in range(n_draw):
                s = draws[b, j]
                for i in range(set_start[s], set_start[s + 1]):
                    ts[pos] = time[i]
                    es[pos] = event[i]
                    xs[pos, 0] = a[i]
                    ws[pos] = w[i]
                    ss[pos] = j
                    pos += 1
        else:
            for o in range(m_all):
                i = by_time[o]
                for _ in range(count[set_of[i]]):
                    ts[pos] = time[i]
                    es[pos] = event[i]
                    xs[pos, 0] = a[i]
                    ws[pos] = w[i]
                    pos += 1
        n_ev = 0
        mean = 0.0
        for i in range(m):
            n_ev += es[i]
            mean += xs[i, 0]
        if n_ev == 0:
            status[b] = BOOT_NO_EVENTS
            continue
        if mean == 0.0 or mean == m:
            status[b] = BOOT_ONE_ARM
            continue
        mean /= m
        for i in range(m):
            xs[i, 0] -= mean
        starts, newstrat = _ck._tie_groups(ts, ss)
        beta, _, u, imat, _, st = _ck._newton(
            xs, ws, es, starts, newstrat, np.zeros(1), efron, tol, max_iter
        )
        if st != _ck.CONVERGED:
            status[b] = BOOT_NOT_CONVERGED
            continue
        low, ok = _ck._cholesky(imat)
        if not ok:
            status[b] = BOOT_NOT_CONVERGED
            continue
        step = _ck._chol_solve(low, u)
        if not np.isfinite(step[0]) or abs(step[0]) > root * max(1.0, abs(beta[0])):
            status[b] = BOOT_DIVERGING
            continue
        est[b] = beta[0]
    return est, status
