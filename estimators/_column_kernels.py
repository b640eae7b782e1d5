"""numba kernels on the columns of a design matrix: ranges, and the weighted sums of
products of the Newton fits (on transposed, C-contiguous covariates ``Z`` (p, n)).

The sums are the only code here compiled with reassociation (``fastmath``), so that
numba vectorises them; their order is fixed by the compiled code, hence the same
whatever the thread count or the caller.
"""

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


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _weighted_gram(Z: np.ndarray, c: np.ndarray, m: int) -> np.ndarray:
    """sum_{i < m} c_i z_i z_i' (p, p) from the transposed rows ``Z`` (p, >= m).

    One contiguous dot product per element of the lower triangle, mirrored.
    """
    p = Z.shape[0]
    out = np.empty((p, p))
    v = np.empty(m)
    for j in range(p):
        zj = Z[j]
        for i in range(m):
            v[i] = c[i] * zj[i]
        for k in range(j + 1):
            zk = Z[k]
            s = 0.0
            for i in range(m):
                s += v[i] * zk[i]
            out[j, k] = s
            out[k, j] = s
    return out


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _transposed_dot(Z: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``Z @ c`` (p,) = sum_i c_i z_i from the transposed rows ``Z`` (p, n)."""
    p, n = Z.shape
    out = np.empty(p)
    for j in range(p):
        zj = Z[j]
        s = 0.0
        for i in range(n):
            s += zj[i] * c[i]
        out[j] = s
    return out


@njit(cache=True, error_model="numpy")
def _columns_times(Z: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``X @ beta`` (n,) from the transposed rows ``Z`` (p, n), column by column: each
    element summed in the order of a row dot product (no reassociation), vectorised
    along the patients."""
    p, n = Z.shape
    eta = np.zeros(n)
    for j in range(p):
        b = beta[j]
        zj = Z[j]
        for i in range(n):
            eta[i] += zj[i] * b
    return eta
