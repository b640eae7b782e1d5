"""numba kernel for per-column summaries of a design matrix (one pass, any layout)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _column_ranges(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of ``X`` (n, p): min (p,), max (p,) and whether every value is finite.

    NaN / inf values are left out of min and max; ``X`` must have at least one row.
    """
    n, p = X.shape
    lo = np.full(p, np.inf)
    hi = np.full(p, -np.inf)
    finite = np.ones(p, dtype=np.bool_)
    for i in range(n):
        for j in range(p):
            v = X[i, j]
            if not np.isfinite(v):
                finite[j] = False
            else:
                if v < lo[j]:
                    lo[j] = v
                if v > hi[j]:
                    hi[j] = v
    return lo, hi, finite
