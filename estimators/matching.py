"""Greedy 1:1 nearest-neighbour propensity-score matching without replacement.

Treated patients are taken one at a time in the chosen ``order`` and matched to the
free control whose logit of the propensity score is nearest, provided the distance
is within the caliper; each control is used at most once.

* **Caliper**: ``caliper`` times the standard deviation of the logit PS over all
  patients (both arms together, ddof = 1), 0.2 by default (Austin 2011).  A distance
  equal to the caliper is accepted.  ``caliper=None`` matches without a caliper.
* **Order** of the treated: ``"random"`` (a permutation drawn from ``random_state``),
  ``"largest"`` (descending PS), ``"smallest"`` (ascending PS) or ``"data"`` (row
  order).  Equal scores keep row order under ``"largest"`` and ``"smallest"``.
* **Ties**: among free controls at exactly the same distance, the one with the
  smallest row index is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._matching_kernels import _greedy_match
from .exceptions import NoOverlapError
from .validation import (
    ORDERS,
    check_caliper,
    check_logit,
    check_order,
    check_random_state,
    check_treatment,
)

__all__ = ["ORDERS", "Matching", "match_pairs"]


@dataclass(frozen=True)
class Matching:
    """Matched pairs.

    Attributes
    ----------
    treated, control : ndarray of int, shape (n_pairs,)
        Row indices of each pair's treated and control patient, in the order the
        pairs were formed.
    distance : ndarray, shape (n_pairs,)
        Absolute logit-PS distance within each pair.
    caliper : float
        Caliper on the logit scale actually used (``inf`` without a caliper).
    n_treated : int
        Treated patients available for matching.
    """

    treated: np.ndarray
    control: np.ndarray
    distance: np.ndarray
    caliper: float
    n_treated: int

    @property
    def n_pairs(self) -> int:
        """Number of matched pairs."""
        return int(self.treated.size)

    @property
    def n_unmatched(self) -> int:
        """Treated patients left without a match."""
        return self.n_treated - self.n_pairs

    @property
    def unmatched_share(self) -> float:
        """Share of treated patients left without a match."""
        return self.n_unmatched / self.n_treated

    def rows_and_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of the matched set (treated then controls) and their pair ids."""
        ids = np.arange(self.n_pairs)
        return np.concatenate([self.treated, self.control]), np.concatenate([ids, ids])


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
) -> Matching:
    """Greedy 1:1 nearest-neighbour matching on the logit of the propensity score.

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
    a = check_treatment(np.asarray(treatment, dtype=np.float64), "treatment").astype(bool)
    return _match(check_logit(logit, a.size), a, multiplier, caliper, order, rng)


def _match(
    logit: np.ndarray,
    a: np.ndarray,
    multiplier: float,
    caliper: float | None,
    order: str,
    rng: np.random.Generator,
) -> Matching:
    """:func:`match_pairs` on clean input (``a`` boolean with both arms, finite logit)."""
    width = multiplier * float(np.std(logit, ddof=1)) if np.isfinite(multiplier) else np.inf
    treated_rows = np.flatnonzero(a)
    control_rows = np.flatnonzero(~a)
    t_order = treated_rows[treated_order(logit[treated_rows], order, rng)]
    c_sort = np.argsort(logit[control_rows], kind="stable")
    c_rows = control_rows[c_sort]
    c_logit = logit[c_rows]
    new_block = np.r_[True, c_logit[1:] != c_logit[:-1]]
    block_start = np.maximum.accumulate(np.where(new_block, np.arange(c_logit.size), 0))
    pos = _greedy_match(logit[t_order], c_logit, c_rows, block_start, width)
    hit = pos >= 0
    if not hit.any():
        raise NoOverlapError(
            f"no treated patient has a control within the caliper ({caliper} SD = {width:.4g} "
            "on the logit scale); zero matched pairs. Widen the caliper or check overlap"
        )
    t, c = t_order[hit], c_rows[pos[hit]]
    return Matching(
        treated=t,
        control=c,
        distance=np.abs(logit[t] - logit[c]),
        caliper=width,
        n_treated=int(treated_rows.size),
    )
