"""Propensity-score weights (IPTW, overlap, matching weights) and their diagnostics.

Weights for patient i in arm a (``e`` = propensity score P(A = 1 | X)), and the
population each weighting targets (the one :mod:`simulator.exact` integrates over, both
potential outcomes of every patient of it):

=========  ======================  =====================  ==================================
estimand   treated                 controls               target population (density x)
=========  ======================  =====================  ==================================
ATE        ``1 / e``               ``1 / (1 - e)``        everyone
ATT        ``1``                   ``e / (1 - e)``        the treated, ``e(x)``
ATC        ``(1 - e) / e``         ``1``                  the controls, ``1 - e(x)``
ATO        ``1 - e``               ``e``                  overlap, ``e(x) (1 - e(x))``
ATM        ``min(e, 1 - e) / e``   ``min(e,1-e)/(1-e)``   matching, ``min(e(x), 1 - e(x))``
=========  ======================  =====================  ==================================

Every weight is computed from the logit of ``e`` (``1 / e = 1 + exp(-logit)``,
``e / (1 - e) = exp(logit)``, ``e = expit(logit)``), so it stays finite where ``e``
rounds to 0 or 1.

**Stabilized** weights (default) rescale groups of patients by constants so that each
group's weights average exactly 1:

* ATE: each arm (``P(A = a) / P(A = a | X)`` with ``P(A = a)`` estimated by
  ``n_a / sum_{arm a} 1 / P(A = a | X)``, the Hajek estimate; Xu et al. 2010 use
  ``n_a / n``, which differs by a factor tending to 1);
* ATT: the controls only (treated weights stay 1); ATC, its mirror: the treated only;
* ATO, ATM: one common constant for everyone (weights average 1 over the cohort).  These
  weights are bounded already, and the two arms' raw totals estimate the same mass
  (``E[A (1 - e)] = E[(1 - A) e] = E[e (1 - e)]``, likewise for ATM): the raw weights
  give the two-arm population of equal arm sizes the truth is defined on.  Per-arm
  rescaling would tilt that arm mix, so only the common scale (which changes neither the
  Cox estimate nor its robust variance) is applied.

**Truncation** ``truncate=(low, high)`` clips the weights at the ``low``-th and
``high``-th percentiles (numpy's default linear interpolation) of the estimated weights:
everyone's for ATE / ATO / ATM, the controls' for ATT, the treated's for ATC (the other
arm's weights are 1 by definition).  Applied after stabilization; truncated weights no
longer average exactly 1.  The target population becomes implicit (a compromise between
the estimand's and the sample's): truncation trades bias for variance.

**Trimming** ``trim=alpha`` or ``trim=(low, high)`` (Crump et al. 2009) drops the
patients whose *estimated* score is outside ``[alpha, 1 - alpha]`` (or ``[low, high]``;
bounds inclusive) before stabilization; they get weight 0 and leave the outcome model
(the propensity model is not refitted).  Trimming **changes the target population** to
the patients with ``low <= e(x) <= high`` (weighted as the estimand says): a trimmed
estimate is no longer the full population's ATE / ATT / ... and is scored against it
only to show that bias.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import expit

from .exceptions import EstimatorInputError, NoOverlapError
from .validation import (
    WEIGHT_ESTIMANDS,
    check_estimand,
    check_ps,
    check_treatment,
    check_trim,
    check_truncate,
)

__all__ = [
    "WEIGHT_ESTIMANDS",
    "ess_by_arm",
    "iptw_weights",
    "iptw_weights_from_logit",
    "kish_ess",
    "trim_mask",
]

SUMMARY_PERCENTILES = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0)


def iptw_weights(
    ps: np.ndarray,
    treatment: np.ndarray,
    estimand: str = "ATE",
    stabilized: bool = True,
    truncate: Sequence[float] | None = None,
    trim: float | Sequence[float] | None = None,
) -> np.ndarray:
    """Propensity-score weights of an estimand (see the module docstring).

    Parameters
    ----------
    ps : ndarray, shape (n,)
        Propensity scores P(A = 1 | X), strictly inside (0, 1).
    treatment : ndarray, shape (n,)
        0/1 treatment, both arms present.
    estimand : {"ATE", "ATT", "ATC", "ATO", "ATM"}
    stabilized : bool
        Rescale each arm (ATE), the controls (ATT), the treated (ATC) or everyone
        (ATO, ATM) to mean weight 1.
    truncate : (low, high) percentiles, optional
        Clip the weights at these percentiles, ``0 <= low < high <= 100``.
    trim : float or (low, high), optional
        Drop (weight 0) patients with ``ps`` outside ``[trim, 1 - trim]`` (``0 < trim <
        0.5``) or ``[low, high]`` (``0 <= low < high <= 1``).

    Returns
    -------
    ndarray, shape (n,)
        Finite weights, > 0 except the trimmed patients' 0.

    Raises
    ------
    EstimatorInputError
        Bad input; a trimming that leaves an arm empty.
    NoOverlapError
        ATT (ATC): no control (treated) patient inside the treated's (controls')
        propensity-score range.
    """
    check_estimand(estimand)
    check_truncate(truncate)
    check_trim(trim)
    a = check_treatment(np.asarray(treatment, dtype=np.float64), "treatment")
    ps = check_ps(ps, a.size)
    return iptw_weights_from_logit(
        np.log(ps) - np.log1p(-ps), treatment, estimand, stabilized, truncate, trim
    )


def iptw_weights_from_logit(
    logit: np.ndarray,
    treatment: np.ndarray,
    estimand: str = "ATE",
    stabilized: bool = True,
    truncate: Sequence[float] | None = None,
    trim: float | Sequence[float] | None = None,
) -> np.ndarray:
    """:func:`iptw_weights` from the logit of the propensity score (finite where ``e``
    rounds to 0 or 1)."""
    check_estimand(estimand)
    bounds = check_truncate(truncate)
    limits = check_trim(trim)
    a = check_treatment(np.asarray(treatment, dtype=np.float64), "treatment").astype(bool)
    logit = np.asarray(logit, dtype=np.float64)
    if logit.shape != a.shape or np.isnan(logit).any():
        raise EstimatorInputError(
            f"logit must be one non-NaN value per patient; got shape {logit.shape} for "
            f"{a.size} patients"
        )
    keep = None if limits is None else trim_mask(logit, a, limits, trim)
    return _weights_from_logit(logit, a, estimand, stabilized, bounds, keep)


def trim_mask(
    logit: np.ndarray,
    a: np.ndarray,
    limits: tuple[float, float],
    trim: object = None,
) -> np.ndarray:
    """Patients kept by trimming: ``limits[0] <= e <= limits[1]``, shape (n,) bool.

    ``a`` is the boolean treatment; ``trim`` (the user's value) only labels the error.

    Raises
    ------
    EstimatorInputError
        An arm with no patient left.
    """
    e = expit(logit)
    keep = (e >= limits[0]) & (e <= limits[1])
    for arm, name in ((a, "treated"), (~a, "control")):
        if not (keep & arm).any():
            shown = limits if trim is None else trim
            raise EstimatorInputError(
                f"trim={shown!r} leaves no {name} patient (estimated propensity scores of "
                f"that arm span [{e[arm].min():.4g}, {e[arm].max():.4g}]); choose a trim "
                f"with at least one patient per arm inside [{limits[0]:g}, {limits[1]:g}], "
                "e.g. 0.05 or 0.1, or None"
            )
    return keep


def _raw_weights(
    logit: np.ndarray, a: np.ndarray, estimand: str, derivative: bool = True
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Unstabilized weights, their derivative with respect to the logit, and which
    patients' weights are estimated (the others are 1 by definition); each (n,).
    ``derivative=False``: the last two are None (not computed)."""
    with np.errstate(over="ignore"):  # an infinite weight is reported by the caller
        return _raw_weights_of(logit, a, estimand, derivative)


def _raw_weights_of(
    logit: np.ndarray, a: np.ndarray, estimand: str, derivative: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """:func:`_raw_weights` (the formulas of the module docstring, from the logit)."""
    if estimand == "ATE":
        ex = np.exp(np.where(a, -logit, logit))
        if not derivative:
            return 1.0 + ex, None, None
        return 1.0 + ex, np.where(a, -ex, ex), np.ones(a.size, dtype=bool)
    if estimand == "ATT":
        ex = np.exp(logit)
        w = np.where(a, 1.0, ex)
        return (w, np.where(a, 0.0, ex), ~a) if derivative else (w, None, None)
    if estimand == "ATC":
        ex = np.exp(-logit)
        w = np.where(a, ex, 1.0)
        return (w, np.where(a, -ex, 0.0), a.copy()) if derivative else (w, None, None)
    e, f = expit(logit), expit(-logit)  # e and 1 - e, each accurate near 0
    if estimand == "ATO":
        w = np.where(a, f, e)
        if not derivative:
            return w, None, None
        return w, np.where(a, -e * f, e * f), np.ones(a.size, dtype=bool)
    # ATM: min(e, 1-e) / e is 1 for e <= 1/2, else (1-e)/e = exp(-logit); mirror for controls
    ex = np.exp(-np.abs(logit))
    w = np.where(a, np.where(logit <= 0.0, 1.0, ex), np.where(logit >= 0.0, 1.0, ex))
    if not derivative:
        return w, None, None
    dw = np.where(a, np.where(logit <= 0.0, 0.0, -ex), np.where(logit >= 0.0, 0.0, ex))
    return w, dw, np.ones(a.size, dtype=bool)


def _stabilized_groups(a: np.ndarray, estimand: str, keep: np.ndarray | None) -> list[np.ndarray]:
    """The patient groups (boolean masks) each rescaled to mean weight 1."""
    if estimand == "ATE":
        groups = [a, ~a]
    elif estimand == "ATT":
        groups = [~a]
    elif estimand == "ATC":
        groups = [a]
    else:
        groups = [np.ones(a.size, dtype=bool)]
    return groups if keep is None else [g & keep for g in groups]


def _check_overlap(logit: np.ndarray, a: np.ndarray, estimand: str, keep) -> None:
    """ATT (ATC): some control (treated) patient inside the other arm's PS range."""
    if estimand not in ("ATT", "ATC"):
        return
    target, other = (a, ~a) if estimand == "ATT" else (~a, a)
    if keep is not None:
        target, other = target & keep, other & keep
    lo, hi = logit[target].min(), logit[target].max()
    if not ((logit[other] >= lo) & (logit[other] <= hi)).any():
        who, whom = ("control", "treated") if estimand == "ATT" else ("treated", "control")
        raise NoOverlapError(
            f"estimand={estimand!r}: no {who} patient has a propensity score inside the "
            f"{whom} patients' range [{expit(lo):.4g}, {expit(hi):.4g}]; the {estimand} "
            f"is not identified here (no overlap). Use estimand='ATO' or 'ATM', or "
            "restrict the cohort"
        )


def _weights_from_logit(
    logit: np.ndarray,
    a: np.ndarray,
    estimand: str,
    stabilized: bool,
    bounds: tuple[float, float] | None,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`iptw_weights_from_logit` on clean input (``a`` boolean, both arms;
    ``keep`` the trimming mask, both arms present, or None)."""
    _check_overlap(logit, a, estimand, keep)
    plain = keep is None and bounds is None
    w, _, estimated = _raw_weights(logit, a, estimand, derivative=not plain)
    if keep is not None:
        w[~keep] = 0.0
        estimated &= keep
    if not np.isfinite(w).all():
        raise EstimatorInputError(
            "some weights are infinite: propensity scores of exactly 0 or 1 (positivity "
            "violated); restrict the cohort or the covariates, or trim (trim=0.05)"
        )
    if stabilized:  # each group rescaled to mean weight 1, in one pass over the codes
        groups = _stabilized_groups(a, estimand, keep)
        code = np.full(a.size, len(groups), dtype=np.intp)  # the last code: not rescaled
        for i, group in enumerate(groups):
            code[group] = i
        sums = np.bincount(code, weights=w, minlength=len(groups) + 1)
        counts = np.bincount(code, minlength=len(groups) + 1)
        factor = np.ones(len(groups) + 1)
        factor[:-1] = counts[:-1] / sums[:-1]
        w *= factor[code]
    if bounds is not None:
        lo, hi = np.percentile(w[estimated], bounds)
        w[estimated] = np.clip(w[estimated], lo, hi)
    return w


def kish_ess(w: np.ndarray) -> float:
    """Kish effective sample size ``(sum w)^2 / sum w^2``."""
    w = np.asarray(w, dtype=np.float64)
    return _kish(w.sum(), w @ w)


def _kish(total: float, squares: float) -> float:
    """Kish ESS from ``sum w`` and ``sum w^2``."""
    return float(total**2 / squares)


def ess_by_arm(w: np.ndarray, treatment: np.ndarray) -> dict[str, float]:
    """Kish ESS of the treated and control weights."""
    a = np.asarray(treatment) == 1
    return {"treated": kish_ess(w[a]), "control": kish_ess(w[~a])}


def _ess_all(w: np.ndarray, a: np.ndarray) -> tuple[dict[str, float], float]:
    """:func:`ess_by_arm` and :func:`kish_ess` of float64 weights ``w`` and an int8 or
    boolean 0/1 ``a``, from one pass per sum (equal up to the order of summation)."""
    arm = a.view(np.int8)
    s = np.bincount(arm, weights=w, minlength=2)
    q = np.bincount(arm, weights=w * w, minlength=2)
    by_arm = {"treated": _kish(s[1], q[1]), "control": _kish(s[0], q[0])}
    return by_arm, _kish(s[0] + s[1], q[0] + q[1])


def weight_summary(w: np.ndarray) -> dict[str, float]:
    """min, mean, percentiles (1, 5, 25, 50, 75, 95, 99) and max of the weights."""
    w = np.sort(np.asarray(w, dtype=np.float64))
    # numpy's default (linear) percentile: interpolate the order statistics
    pct = np.interp(np.array(SUMMARY_PERCENTILES) / 100.0 * (w.size - 1), np.arange(w.size), w)
    out = {"min": float(w[0]), "mean": float(w.mean())}
    out |= {f"p{q:g}": float(v) for q, v in zip(SUMMARY_PERCENTILES, pct, strict=True)}
    out["max"] = float(w[-1])
    return out
