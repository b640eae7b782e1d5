"""Slow, obvious reference implementations used as test oracles."""

from __future__ import annotations

import numpy as np


def greedy_match_naive(
    logit: np.ndarray, treatment: np.ndarray, caliper: float, order: str, seed: int = 0
) -> list[tuple[int, int]]:
    """Greedy 1:1 matching by scanning every control for every treated patient.

    ``caliper`` is absolute (logit units, inclusive).  Treated patients are visited in
    ``order`` ("data", "largest", "smallest" with ties in row order, or "random": the
    permutation ``default_rng(seed).permutation`` of the treated in row order); each
    takes the free control at the smallest distance, ties to the smallest row index.
    Returns (treated_row, control_row) pairs in the order formed.
    """
    treated = [i for i in range(len(logit)) if treatment[i] == 1]
    controls = [i for i in range(len(logit)) if treatment[i] == 0]
    if order == "largest":
        treated = sorted(treated, key=lambda i: (-logit[i], i))
    elif order == "smallest":
        treated = sorted(treated, key=lambda i: (logit[i], i))
    elif order == "random":
        perm = np.random.default_rng(seed).permutation(len(treated))
        treated = [treated[k] for k in perm]
    used: set[int] = set()
    pairs = []
    for t in treated:
        best, best_d = None, np.inf
        for c in controls:
            if c in used:
                continue
            d = abs(logit[c] - logit[t])
            if d < best_d or (d == best_d and best is not None and c < best):
                best, best_d = c, d
        if best is not None and best_d <= caliper:
            used.add(best)
            pairs.append((t, best))
    return pairs
