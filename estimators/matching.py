"""Greedy 1:k nearest-neighbour propensity-score matching, with or without replacement.

Matching is on the logit of the propensity score.

* **Caliper**: ``caliper`` times the standard deviation of the logit PS over all
  patients (both arms together, ddof = 1), 0.2 by default (Austin 2011).  A distance
  equal to the caliper is accepted.  ``caliper=None`` matches without a caliper.
* **Order** of the treated: ``"random"`` (a permutation drawn from ``random_state``),
  ``"largest"`` (descending PS), ``"smallest"`` (ascending PS) or ``"data"`` (row
  order).  Equal scores keep row order under ``"largest"`` and ``"smallest"``.
* **Without replacement** (default), ``ratio = k``: *k rounds of greedy 1:1 matching*.
  In round r every treated patient, in the order above, takes the nearest control
  not yet used by anyone, if it is within the caliper.  This is what MatchIt's
  ``method = "nearest", ratio = k`` does (its C++ loop runs over rounds, then over the
  treated): early treated patients cannot take all the close controls before later ones
  have had their first.  Each control is used at most once; a treated patient ends
  with 0 to k controls (0: unmatched, dropped).  ``ratio = 1`` is the classic greedy
  1:1 matching.
* **With replacement**: every treated patient takes its k nearest controls within the
  caliper; a control may serve many treated patients (the order then only numbers
  the matched sets).
* **Ties**: among (free) controls at exactly the same distance, the one with the
  smallest row index is chosen first.  Distances are compared as computed,
  ``|logit_t - logit_c|`` in floating point.

A *matched set* is one matched treated patient with its controls.  Sets are numbered
in matching order; the pairs (treated, control) of :class:`Matching` are listed set by
set, each set's controls in the order taken (round, or nearest first).

**Weights** (:meth:`Matching.row_weights`, ATT weights as MatchIt's): a treated
patient weighs 1; a control of a set with k_i controls weighs ``s / k_i`` in that set,
with ``s`` = (distinct controls matched) / (matched sets), so that a control's total
weight (the sum over the sets it serves) sums, over controls, to the number of
distinct controls matched.  For 1:1 without replacement every weight is 1; for a
fixed 1:k without replacement with every set full, too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._matching_kernels import _greedy_match, _nearest_k
from .exceptions import NoOverlapError
from .validation import (
    ORDERS,
    check_caliper,
    check_logit,
    check_order,
    check_random_state,
    check_ratio,
    check_replace,
    check_treatment,
)

__all__ = ["ORDERS", "Matching", "match_pairs"]


@dataclass(frozen=True)
class Matching:
    """Matched sets, as (treated, control) pairs.

    Attributes
    ----------
    treated, control : ndarray of int, shape (n_pairs,)
        Row indices of each pair's treated and control patient, set by set (a set's
        treated patient repeats for each of its controls).
    distance : ndarray, shape (n_pairs,)
        Absolute logit-PS distance within each pair.
    set_id : ndarray of int, shape (n_pairs,)
        Matched set of each pair, ``0 .. n_sets - 1`` in matching order.
    caliper : float
        Caliper on the logit scale actually used (``inf`` without a caliper).
    n_treated : int
        Treated patients available for matching.
    ratio : int
        Controls asked for per treated patient (k).
    replace : bool
        Matching with replacement.
    """

    treated: np.ndarray
    control: np.ndarray
    distance: np.ndarray
    set_id: np.ndarray
    caliper: float
    n_treated: int
    ratio: int = 1
    replace: bool = False

    @property
    def n_pairs(self) -> int:
        """Number of (treated, control) pairs (= matched sets for 1:1)."""
        return int(self.treated.size)

    @property
    def n_sets(self) -> int:
        """Number of matched sets (matched treated patients)."""
        return int(self.set_id[-1]) + 1 if self.set_id.size else 0

    @property
    def set_size(self) -> np.ndarray:
        """Controls in each matched set, shape (n_sets,)."""
        return np.bincount(self.set_id, minlength=self.n_sets)

    @property
    def set_treated(self) -> np.ndarray:
        """Treated row of each matched set, shape (n_sets,)."""
        first = np.empty(self.set_id.size, dtype=bool)
        first[:1] = True
        np.not_equal(self.set_id[1:], self.set_id[:-1], out=first[1:])
        return self.treated[first]

    @property
    def n_controls(self) -> int:
        """Distinct controls matched."""
        return int(np.unique(self.control).size) if self.replace else self.n_pairs

    @property
    def n_unmatched(self) -> int:
        """Treated patients left without a match."""
        return self.n_treated - self.n_sets

    @property
    def unmatched_share(self) -> float:
        """Share of treated patients left without a match."""
        return self.n_unmatched / self.n_treated

    def rows_and_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The analysis layout: one row per set member.

        Returns
        -------
        rows : ndarray of int, shape (n_sets + n_pairs,)
            Row indices: each set's treated patient (set order), then each pair's
            control.  With replacement a control appears once per set it serves.
        sets : ndarray of int, same shape
            Matched set of each row (the pair id for 1:1).
        """
        ids = np.arange(self.n_sets)
        return np.concatenate([self.set_treated, self.control]), np.concatenate([ids, self.set_id])

    def row_weights(self) -> np.ndarray:
        """Weight of each row of :meth:`rows_and_pairs` (see the module docstring)."""
        k = self.set_size
        scale = self.n_controls / self.n_sets
        return np.concatenate([np.ones(self.n_sets), scale / k[self.set_id]])

    def unit_weights(self, n: int) -> np.ndarray:
        """Matching weight of each of the ``n`` patients (0 when unmatched), shape (n,)."""
        rows, _ = self.rows_and_pairs()
        return np.bincount(rows, weights=self.row_weights(), minlength=n)


def treated_order(
    logit_treated: np.ndarray, order: str, random_state: int | np.random.Generator = 0
) -> np.ndarray:
    """Positions (into the treated patients in row order) in matching order."""
    if order == "data":
        return np.arange(logit_treated.size)
    if order == "largest":
        return np.argsort(-logit_treated, kind="stable")
    if order == "smallest":
        return np.argsort(logit_treated, kind="stable")
    return check_random_state(random_state).permutation(logit_treated.size)


def match_pairs(
    logit: np.ndarray,
    treatment: np.ndarray,
    *,
    caliper: float | None = 0.2,
    order: str = "random",
    random_state: int | np.random.Generator = 0,
    ratio: int = 1,
    replace: bool = False,
) -> Matching:
    """Greedy 1:k nearest-neighbour matching on the logit of the propensity score.

    Parameters
    ----------
    logit : ndarray, shape (n,)
        Logit of the propensity score (``PropensityModel.logit``).
    treatment : ndarray, shape (n,)
        0/1 treatment, both arms present.
    caliper : float or None
        Caliper in SDs of ``logit`` (all patients, ddof = 1); None for no caliper.
    order : {"random", "largest", "smallest", "data"}
        Order in which treated patients are matched.
    random_state : int or numpy.random.Generator
        Seed for ``order="random"``.
    ratio : int
        Controls per treated patient (k >= 1); fewer when the caliper or the supply
        of controls runs out.
    replace : bool
        Match with replacement (a control may serve several treated patients).

    Returns
    -------
    Matching

    Raises
    ------
    NoOverlapError
        No treated patient has a control within the caliper.
    """
    multiplier = check_caliper(caliper)
    check_order(order)
    rng = check_random_state(random_state)
    k = check_ratio(ratio)
    rep = check_replace(replace)
    a = check_treatment(np.asarray(treatment, dtype=np.float64), "treatment").astype(bool)
    return _match(check_logit(logit, a.size), a, multiplier, caliper, order, rng, k, rep)


def _match(
    logit: np.ndarray,
    a: np.ndarray,
    multiplier: float,
    caliper: float | None,
    order: str,
    rng: np.random.Generator,
    ratio: int = 1,
    replace: bool = False,
) -> Matching:
    """:func:`match_pairs` on clean input (``a`` boolean with both arms, finite logit)."""
    width = multiplier * float(np.std(logit, ddof=1)) if np.isfinite(multiplier) else np.inf
    treated_rows = np.flatnonzero(a)
    control_rows = np.flatnonzero(~a)
    t_order = treated_rows[treated_order(logit[treated_rows], order, rng)]
    c_sort = np.argsort(logit[control_rows], kind="stable")
    c_rows = control_rows[c_sort]
    c_logit = logit[c_rows]
    new_block = np.empty(c_logit.size, dtype=bool)  # first of a run of equal logits
    new_block[:1] = True
    np.not_equal(c_logit[1:], c_logit[:-1], out=new_block[1:])
    idx = np.arange(c_logit.size)
    block_start = np.maximum.accumulate(np.where(new_block, idx, 0))
    if replace:
        last = np.r_[new_block[1:], True]
        block_end = np.minimum.accumulate(np.where(last, idx, c_logit.size)[::-1])[::-1]
        pos = _nearest_k(logit[t_order], c_logit, c_rows, block_start, block_end, width, ratio)
    else:
        pos = _greedy_match(logit[t_order], c_logit, c_rows, block_start, width, ratio)
    matched = pos[:, 0] >= 0
    if not matched.any():
        raise NoOverlapError(
            f"no treated patient has a control within the caliper ({caliper} SD = {width:.4g} "
            "on the logit scale); zero matched pairs. Widen the caliper or check overlap"
        )
    pos = pos[matched]
    hit = pos >= 0  # a prefix of each row
    set_id = np.broadcast_to(np.arange(pos.shape[0])[:, None], pos.shape)[hit]
    t = t_order[matched][set_id]
    c = c_rows[pos[hit]]
    return Matching(
        treated=t,
        control=c,
        distance=np.abs(logit[t] - logit[c]),
        set_id=np.ascontiguousarray(set_id, dtype=np.int64),
        caliper=width,
        n_treated=int(treated_rows.size),
        ratio=int(ratio),
        replace=bool(replace),
    )
