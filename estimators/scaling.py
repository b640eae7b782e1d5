"""Exact rescaling of design columns on a scale far from 1 (inside the fits).

A covariate in epoch seconds (SD ~ 1e7) next to 0/1 indicators makes the information
matrix look singular to a Cholesky factorisation with a tolerance relative to its
largest diagonal element.  The fits therefore divide every column whose scale lies
outside ``[2**-SCALE_LIMIT, 2**SCALE_LIMIT]`` by the power of two nearest its scale,
fit, and transform coefficients and (co)variances back.  Division by a power of two is
exact in floating point, and columns on a usual scale are left alone, so fits of
well-scaled data are unchanged bit for bit.  A column's scale is its range (or
largest absolute value, see :func:`power_of_two_scale`).
"""

from __future__ import annotations

import numpy as np

from ._column_kernels import _column_ranges

SCALE_LIMIT = 8
"""Columns whose scale is within a factor ``2**SCALE_LIMIT`` of 1 are not rescaled."""


def power_of_two_scale(
    X: np.ndarray, centred: bool, ranges: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray | None:
    """Per-column divisors (powers of two), or None when no column needs one.

    ``X`` (n, p) is finite (validated by the caller).

    ``centred=True`` measures a column's scale by its range ``max - min`` (for fits
    that centre the columns themselves, as the Cox kernel does), else by ``max |x|``.
    ``ranges``: the columns' ``(min, max)``, each (p,), when already known
    (:meth:`Design.ranges_with <estimators.design_matrix.Design.ranges_with>`).
    """
    if X.shape[0] == 0 or X.shape[1] == 0:
        return None
    lo, hi = _column_ranges(X)[:2] if ranges is None else ranges
    scale = hi - lo if centred else np.maximum(hi, -lo)
    far = (scale > _HIGH) | ((scale < _LOW) & (scale > 0.0))
    if not far.any():
        return None
    return np.where(far, np.exp2(np.round(np.log2(np.where(far, scale, 1.0)))), 1.0)


_HIGH = 2.0 ** (SCALE_LIMIT + 0.5)  # log2(scale) rounds to more than SCALE_LIMIT
_LOW = 2.0 ** -(SCALE_LIMIT + 0.5)


def unscale(
    coef: np.ndarray, cov: np.ndarray, d: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and covariance of the original columns from those of ``X / d``."""
    if d is None:
        return coef, cov
    return coef / d, cov / np.outer(d, d)
