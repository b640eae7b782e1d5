"""Covariate balance: standardized mean differences before and after adjustment.

The SMD of a design column is ``(mean_treated - mean_control) / sd_pooled``.  After
weighting or matching the means are **weighted** (matching = weights 1 for matched
patients, 0 otherwise), but the denominator is always the pooled SD of the
**unadjusted** arms, ``sqrt((s1^2 + s0^2) / 2)`` (Austin & Stuart 2015; Stuart 2008,
the convention of R cobalt), so a change in SMD reflects a change in means only and
not a change of scale.  Binary (0/1) columns use ``p (1 - p)`` as their variance
(Austin 2009); other columns the sample variance (ddof = 1).

The weighted variance reported in the variance ratio is
``sum(w) / (sum(w)^2 - sum(w^2)) * sum(w (x - xbar_w)^2)`` (Austin & Stuart 2015).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .exceptions import EstimatorInputError


def _arm_stats(
    X: np.ndarray, arm: np.ndarray, w: np.ndarray, binary: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted means and variances of the columns of ``X`` over rows where ``arm``."""
    wa = np.where(arm, w, 0.0)
    sw, sw2 = wa.sum(), wa @ wa
    mean = (wa @ X) / sw
    ss = wa @ np.square(X - mean)  # weighted sum of squared deviations
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(binary, mean * (1.0 - mean), ss * sw / (sw * sw - sw2))
    return mean, var


def _ratio(num: np.ndarray, den: np.ndarray, zero_by_zero: float) -> np.ndarray:
    """num / den, with 0 / 0 replaced (a column constant in both arms is balanced)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((num == 0.0) & (den == 0.0), zero_by_zero, num / den)


def smd(X: np.ndarray, treatment: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Standardized mean differences of the columns of ``X`` (treated minus control).

    Parameters
    ----------
    X : ndarray, shape (n, p)
    treatment : ndarray, shape (n,)
        0/1 arm indicator.
    weights : ndarray, shape (n,), optional
        Non-negative analysis weights (IPT weights, or 0/1 for a matched set);
        the denominator always uses the unweighted arm variances.

    Returns
    -------
    ndarray, shape (p,)
    """
    return balance_arrays(X, treatment, weights)["smd_after" if weights is not None else "smd"]


def balance_arrays(
    X: np.ndarray, treatment: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Means, SMDs and variance ratios per design column, as arrays of shape (p,).

    Keys ``mean_treated``, ``mean_control``, ``smd``, ``var_ratio`` (unadjusted) and,
    when ``weights`` is given, the same with suffix ``_after``.
    """
    X = np.asarray(X, dtype=np.float64)
    treated = np.asarray(treatment) == 1
    if X.ndim != 2 or treated.shape != (X.shape[0],):
        raise EstimatorInputError(
            f"X must be 2-d with one row per patient; got X {X.shape}, treatment {treated.shape}"
        )
    binary = ((X == 0.0) | (X == 1.0)).all(axis=0)
    ones = np.ones(X.shape[0])
    m1, v1 = _arm_stats(X, treated, ones, binary)
    m0, v0 = _arm_stats(X, ~treated, ones, binary)
    sd = np.sqrt((v1 + v0) / 2.0)
    out = {
        "mean_treated": m1,
        "mean_control": m0,
        "smd": _ratio(m1 - m0, sd, 0.0),
        "var_ratio": _ratio(v1, v0, 1.0),
    }
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != treated.shape or not (np.isfinite(w).all() and (w >= 0).all()):
            raise EstimatorInputError(
                "weights must be finite, >= 0 and one per patient "
                f"(got shape {w.shape}, min {np.min(w) if w.size else None})"
            )
        m1w, v1w = _arm_stats(X, treated, w, binary)
        m0w, v0w = _arm_stats(X, ~treated, w, binary)
        out |= {
            "mean_treated_after": m1w,
            "mean_control_after": m0w,
            "smd_after": _ratio(m1w - m0w, sd, 0.0),
            "var_ratio_after": _ratio(v1w, v0w, 1.0),
        }
    return out


def balance_table(
    X: np.ndarray,
    treatment: np.ndarray,
    names: Sequence[str],
    weights: np.ndarray | None = None,
) -> pd.DataFrame:
    """Tidy balance table, one row per design column.

    Parameters
    ----------
    X : ndarray, shape (n, p)
        Design matrix (for example ``PropensityModel.design.X``).
    treatment : ndarray, shape (n,)
    names : sequence of str, length p
    weights : ndarray, shape (n,), optional
        Analysis weights after adjustment (0/1 for a matched set).

    Returns
    -------
    DataFrame
        Index ``covariate``; columns ``mean_treated``, ``mean_control``, ``smd``,
        ``var_ratio`` before adjustment and, with weights, ``*_after`` versions.
    """
    arrays = balance_arrays(X, treatment, weights)
    if len(names) != np.shape(X)[1]:
        raise EstimatorInputError(f"names has {len(names)} entries for {np.shape(X)[1]} columns")
    return pd.DataFrame(arrays, index=pd.Index(list(names), name="covariate"))
