"""Exact rescaling of design columns on a scale far from 1 (inside the fits).

A covariate in epoch seconds (SD ~ 1e7) next to 0/1 indicators makes the information
matrix look singular to a Cholesky factorisation with a tolerance relative to its
largest diagonal element.  The fits therefore divide every column whose scale lies
outside ``[2**-SCALE_LIMIT, 2**SCALE_LIMIT]`` by the power of two nearest its scale,
fit, and transform coefficients and (co)variances back.  Division by a power of two is
exact in floating point, and columns on a usual scale are left alone, so fits of
well-scaled data are unchanged bit for bit.
"""

from __future__ import annotations

import numpy as np

SCALE_LIMIT = 8
"""Columns whose scale is within a factor ``2**SCALE_LIMIT`` of 1 are not rescaled."""


def power_of_two_scale(X: np.ndarray, centred: bool) -> np.ndarray | None:
    """Per-column divisors (powers of two), or None when no column needs one.

    ``centred=True`` measures a column's scale by its SD (for fits that centre the
    columns themselves, as the Cox kernel does), else by its root mean square.
    """
    if X.shape[0] == 0 or X.shape[1] == 0:
        return None
    scale = X.std(axis=0) if centred else np.sqrt(np.mean(np.square(X), axis=0))
    with np.errstate(divide="ignore"):
        k = np.round(np.log2(scale))
    k = np.where(np.isfinite(k) & (np.abs(k) > SCALE_LIMIT), k, 0.0)
    if not k.any():
        return None
    return np.exp2(k)


def unscale(
    coef: np.ndarray, cov: np.ndarray, d: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and covariance of the original columns from those of ``X / d``."""
    if d is None:
        return coef, cov
    return coef / d, cov / np.outer(d, d)
