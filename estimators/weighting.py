"""Inverse probability of treatment weights (IPTW) and their diagnostics.

Weights for patient i in arm a (``e`` = propensity score P(A = 1 | X)):

* ``estimand="ATE"``: ``1 / e`` for the treated, ``1 / (1 - e)`` for controls;
* ``estimand="ATT"``: ``1`` for the treated, ``e / (1 - e)`` for controls.

**Stabilized** weights (default) multiply each arm's weights by a constant so that
they sum to the arm's size (mean exactly 1 within each arm).  For the ATE this is
``P(A = a) / P(A = a | X)`` with the marginal probability estimated by
``n_a / sum_{arm a} 1 / P(A = a | X)`` (the Hajek estimate; Xu et al. 2010 use
``n_a / n``, which differs by a factor tending to 1).  For the ATT only the control
weights are rescaled (treated weights stay 1).  Stabilizing leaves weighted means
within an arm unchanged and keeps the weighted sample the size of the real one.

**Truncation** ``truncate=(low, high)`` clips the weights at the ``low``-th and
``high``-th percentiles (numpy's default linear interpolation) of the distribution of
the estimated weights: all patients for the ATE, controls for the ATT (treated ATT
weights are 1 by definition).  Truncation is applied after stabilization; truncated
weights no longer average exactly 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .exceptions import EstimatorInputError
from .validation import (
    WEIGHT_ESTIMANDS,
    check_estimand,
    check_ps,
    check_treatment,
    check_truncate,
)

__all__ = ["WEIGHT_ESTIMANDS", "ess_by_arm", "iptw_weights", "iptw_weights_from_logit", "kish_ess"]

SUMMARY_PERCENTILES = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0)


def iptw_weights(
    ps: np.ndarray,
    treatment: np.ndarray,
    estimand: str = "ATE",
    stabilized: bool = True,
    truncate: Sequence[float] | None = None,
) -> np.ndarray:
    """Inverse probability of treatment weights.

    Parameters
    ----------
    ps : ndarray, shape (n,)
        Propensity scores P(A = 1 | X), strictly inside (0, 1).
    treatment : ndarray, shape (n,)
        0/1 treatment, both arms present.
    estimand : {"ATE", "ATT"}
    stabilized : bool
        Rescale each arm's (ATE) or the controls' (ATT) weights to mean 1.
    truncate : (low, high) percentiles, optional
        Clip the weights at these percentiles, ``0 <= low < high <= 100``.

    Returns
    -------
    ndarray, shape (n,)
        Positive finite weights.
    """
    check_estimand(estimand)
    check_truncate(truncate)
    a = check_treatment(np.asarray(treatment, dtype=np.float64), "treatment")
    ps = check_ps(ps, a.size)
    return iptw_weights_from_logit(
        np.log(ps) - np.log1p(-ps), treatment, estimand, stabilized, truncate
    )


def iptw_weights_from_logit(
    logit: np.ndarray,
    treatment: np.ndarray,
    estimand: str = "ATE",
    stabilized: bool = True,
    truncate: Sequence[float] | None = None,
) -> np.ndarray:
    """:func:`iptw_weights` from the logit of the propensity score.

    ``1 / e = 1 + exp(-logit)``, ``1 / (1 - e) = 1 + exp(logit)`` and
    ``e / (1 - e) = exp(logit)`` stay finite where ``e`` itself rounds to 0 or 1.
    """
    check_estimand(estimand)
    bounds = check_truncate(truncate)
    a = check_treatment(np.asarray(treatment, dtype=np.float64), "treatment").astype(bool)
    logit = np.asarray(logit, dtype=np.float64)
    if logit.shape != a.shape or np.isnan(logit).any():
        raise EstimatorInputError(
            f"logit must be one non-NaN value per patient; got shape {logit.shape} for "
            f"{a.size} patients"
        )
    return _weights_from_logit(logit, a, estimand, stabilized, bounds)


def _weights_from_logit(
    logit: np.ndarray,
    a: np.ndarray,
    estimand: str,
    stabilized: bool,
    bounds: tuple[float, float] | None,
) -> np.ndarray:
    """:func:`iptw_weights_from_logit` on clean input (``a`` boolean, both arms)."""
    if estimand == "ATE":
        w = 1.0 + np.exp(np.where(a, -logit, logit))
        estimated = np.ones(a.size, dtype=bool)
    else:
        w = np.where(a, 1.0, np.exp(logit))
        estimated = ~a
    if not np.isfinite(w).all():
        raise EstimatorInputError(
            "some weights are infinite: propensity scores of exactly 0 or 1 (positivity "
            "violated); restrict the cohort or the covariates"
        )
    if stabilized:
        for arm in (a, ~a) if estimand == "ATE" else (~a,):
            w[arm] *= arm.sum() / w[arm].sum()
    if bounds is not None:
        lo, hi = np.percentile(w[estimated], bounds)
        w[estimated] = np.clip(w[estimated], lo, hi)
    return w


def kish_ess(w: np.ndarray) -> float:
    """Kish effective sample size ``(sum w)^2 / sum w^2``."""
    w = np.asarray(w, dtype=np.float64)
    return float(w.sum() ** 2 / (w @ w))


def ess_by_arm(w: np.ndarray, treatment: np.ndarray) -> dict[str, float]:
    """Kish ESS of the treated and control weights."""
    a = np.asarray(treatment) == 1
    return {"treated": kish_ess(w[a]), "control": kish_ess(w[~a])}


def weight_summary(w: np.ndarray) -> dict[str, float]:
    """min, mean, percentiles (1, 5, 25, 50, 75, 95, 99) and max of the weights."""
    w = np.sort(np.asarray(w, dtype=np.float64))
    # numpy's default (linear) percentile: interpolate the order statistics
    pct = np.interp(np.array(SUMMARY_PERCENTILES) / 100.0 * (w.size - 1), np.arange(w.size), w)
    out = {"min": float(w[0]), "mean": float(w.mean())}
    out |= {f"p{q:g}": float(v) for q, v in zip(SUMMARY_PERCENTILES, pct, strict=True)}
    out["max"] = float(w[-1])
    return out
