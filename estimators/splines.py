"""Natural cubic spline basis, as R's ``splines::ns(x, df)`` computes it (numpy only).

A natural cubic spline is cubic between knots, twice continuously differentiable, and
linear beyond the boundary knots.  :func:`natural_spline_basis` places ``df - 1``
interior knots at equally spaced quantiles of ``x`` (R's type-7 quantiles, numpy's
default) and the boundary knots at its range, evaluates the cubic B-splines of those
knots (Cox-de Boor recursion), drops the first one (no intercept) and projects out the
two directions with a non-zero second derivative at the boundaries by the same
Householder QR R uses, so the columns equal ``ns(x, df = df)``'s (tests hold R golden
values).  Any basis of the same space gives the same Cox fit of the other coefficients.
"""

from __future__ import annotations

import numpy as np

from .exceptions import EstimatorInputError

_ORDER = 4  # cubic


def _bsplines(x: np.ndarray, t: np.ndarray, order: int, deriv: int = 0) -> np.ndarray:
    """B-splines of ``order`` on knots ``t`` (or their ``deriv``-th derivative) at ``x``.

    Shape (x.size, t.size - order).  Each basis function is right-continuous except at
    the last knot, where the last non-empty interval's polynomial is used (as R's
    ``splineDesign``), so the right boundary belongs to the spline.
    """
    m = t.size - order
    if deriv > 0:
        lower = _bsplines(x, t, order - 1, deriv - 1)
        out = np.zeros((x.size, m))
        for i in range(m):
            left, right = t[i + order - 1] - t[i], t[i + order] - t[i + 1]
            if left > 0:
                out[:, i] += (order - 1) * lower[:, i] / left
            if right > 0:
                out[:, i] -= (order - 1) * lower[:, i + 1] / right
        return out
    # order 1: indicator of the knot interval holding x (the last non-empty one at t[-1])
    last = int(np.flatnonzero(t[:-1] < t[1:])[-1])
    cell = np.searchsorted(t, x, side="right") - 1
    cell = np.where(x >= t[last + 1], last, cell)
    b = np.zeros((x.size, t.size - 1))
    inside = (cell >= 0) & (cell < t.size - 1)
    b[np.flatnonzero(inside), cell[inside]] = 1.0
    for k in range(2, order + 1):
        nxt = np.zeros((x.size, t.size - k))
        for i in range(t.size - k):
            left, right = t[i + k - 1] - t[i], t[i + k] - t[i + 1]
            if left > 0:
                nxt[:, i] += (x - t[i]) / left * b[:, i]
            if right > 0:
                nxt[:, i] += (t[i + k] - x) / right * b[:, i + 1]
        b = nxt
    return b


def spline_knots(x: np.ndarray, df: int) -> tuple[np.ndarray, tuple[float, float]]:
    """Interior knots (``df - 1`` quantiles of ``x``) and boundary knots (its range)."""
    probs = np.linspace(0.0, 1.0, df + 1)[1:-1]
    return np.quantile(x, probs), (float(x.min()), float(x.max()))


def natural_spline_basis(x: np.ndarray, df: int = 4) -> np.ndarray:
    """Natural cubic spline basis of ``x`` without intercept (R's ``ns(x, df)``).

    Parameters
    ----------
    x : ndarray, shape (n,)
        Finite values (e.g. the logit of a propensity score).
    df : int
        Columns of the basis (>= 1): ``df - 1`` interior knots at the quantiles
        ``1/df, ..., (df-1)/df`` of ``x``; ``df = 1`` is a linear function of ``x``.

    Returns
    -------
    ndarray, shape (n, df)

    Raises
    ------
    EstimatorInputError
        ``df`` not an integer >= 1, non-finite ``x``, or knots that coincide (fewer
        distinct values of ``x`` than the basis needs).
    """
    if isinstance(df, bool) or not isinstance(df, int | np.integer) or df < 1:
        raise EstimatorInputError(f"df={df!r} is not allowed; use an integer >= 1")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all():
        raise EstimatorInputError("x must be a non-empty 1-d array of finite values")
    interior, (lo, hi) = spline_knots(x, int(df))
    knots = np.concatenate(([lo], interior, [hi]))
    if not (np.diff(knots) > 0).all():
        raise EstimatorInputError(
            f"df={df} is not allowed for these data: its knots {knots.tolist()} (quantiles "
            f"of {np.unique(x).size} distinct values) coincide; use a smaller df"
        )
    t = np.concatenate(([lo] * _ORDER, interior, [hi] * _ORDER))
    basis = _bsplines(x, t, _ORDER)[:, 1:]
    const = _bsplines(np.array([lo, hi]), t, _ORDER, deriv=2)[:, 1:]
    q, _ = np.linalg.qr(const.T, mode="complete")
    return np.ascontiguousarray((basis @ q)[:, 2:])
