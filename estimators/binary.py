"""Treatment effects on a binary outcome (objective response): risk difference and log-OR.

=================  ==========================================  ===========================
function           method                                      estimand
=================  ==========================================  ===========================
naive_binary       arm proportions, Wald SEs                   crude
iptw_binary        PS-weighted (Hajek) arm proportions;        ATE (ATT, ATC, ATO, ATM
                   M-estimation sandwich stacking the PS       with those weights)
                   logistic model (or weights taken as known)
matched_binary     arm proportions in 1:1 PS-matched pairs,    ATT
                   paired (pair-clustered) SEs
adjusted_logistic  logistic regression on treatment plus       conditional (log-OR only)
                   covariates, model-based SE
=================  ==========================================  ===========================

Measures (:data:`~estimators.estimands.BINARY_MEASURES`): ``risk_diff`` = p1 - p0 and
``log_or`` = logit(p1) - logit(p0), treated vs control, on the estimator's population.
The SE of the log-OR is the delta method on the same covariance of (p1, p0) as the risk
difference's.  When an arm's proportion is 0 or 1 the log-OR is not finite: the result
has NaN estimate and SE, ``converged=False`` and a warning.

The functions share the estimators' signature ``(df, time, event, treatment, covariates,
**options)``: a binary outcome has no time, so ``time`` must be None and ``event`` names
the 0/1 outcome column (a simulated cohort's ``response``).  ``covariates`` is accepted
and ignored by :func:`naive_binary`.  ``shared=`` (:class:`~estimators.shared.SharedInputs`)
shares the propensity fit and the matching with the survival estimators of the same data.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from .design_matrix import Design
from .effects import _no_covariates, _propensity
from .estimands import BINARY_MEASURES
from .exceptions import EstimatorInputError, EstimatorWarning
from .matching import Matching, _match
from .propensity import INTERCEPT, PropensityModel, _fit_logistic
from .result import EffectEstimate
from .shared import SharedInputs, resolve_shared
from .validation import (
    Data,
    check_binary,
    check_caliper,
    check_covariates,
    check_design_columns,
    check_estimand,
    check_frame,
    check_order,
    check_pool_rare,
    check_probability,
    check_ps_method,
    check_random_state,
    float_column,
)
from .weighting import kish_ess

IPTW_VARIANCES = ("mestimation", "robust")
PROPORTION_MEASURES = ("risk_diff", "log_or")
"""What the proportion estimators report (all of :data:`~estimators.estimands.BINARY_MEASURES`)."""
ADJUSTED_MEASURES = ("log_or",)
assert set(PROPORTION_MEASURES) == BINARY_MEASURES


def check_binary_measure(measure: object, allowed: Sequence[str] = PROPORTION_MEASURES) -> str:
    """``measure`` must be one of ``allowed`` (binary-outcome measures)."""
    if measure not in allowed:
        raise EstimatorInputError(
            f"measure={measure!r} is not allowed for a binary outcome; use one of {list(allowed)}"
        )
    return measure  # type: ignore[return-value]


def _inputs(
    df: Data | None, time: object, event: str, treatment: str, shared: SharedInputs | None
) -> tuple[SharedInputs, np.ndarray, np.ndarray]:
    """Shared inputs, the validated 0/1 outcome (float64) and treatment (int8)."""
    if time is not None:
        raise EstimatorInputError(
            f"time={time!r} is not allowed for a binary outcome; pass time=None and the 0/1 "
            "outcome column as event (e.g. event='response')"
        )
    shared = resolve_shared(df, treatment, shared)
    if not isinstance(event, str):
        raise EstimatorInputError(f"event={event!r} is not allowed; name the 0/1 outcome column")

    def outcome() -> np.ndarray:
        check_frame(shared.df, event=event)
        return check_binary(float_column(shared.df, event, "event"), "event").astype(np.float64)

    y = shared._memo(("binary-outcome", event), outcome)
    return shared, y, shared.treatment()


def _result(
    method: str,
    estimand: str,
    measure: str,
    p1: float,
    p0: float,
    cov: np.ndarray,
    n: int,
    events: int,
    ess: float | None = None,
    warn: tuple[str, ...] = (),
    diagnostics: dict | None = None,
    alpha: float = 0.05,
) -> EffectEstimate:
    """The record of ``measure`` from arm proportions and their 2x2 covariance (p1, p0)."""
    if measure == "risk_diff":
        g = np.array([1.0, -1.0])
        est = p1 - p0
    elif 0.0 < p1 < 1.0 and 0.0 < p0 < 1.0:
        g = np.array([1.0 / (p1 * (1.0 - p1)), -1.0 / (p0 * (1.0 - p0))])
        est = math.log(p1 / (1.0 - p1)) - math.log(p0 / (1.0 - p0))
    else:
        msg = (
            f"{method}: an arm's response proportion is 0 or 1 (treated {p1:.3g}, control "
            f"{p0:.3g}); the log odds ratio is not finite"
        )
        warnings.warn(msg, EstimatorWarning, stacklevel=3)
        g, est, warn = np.array([math.nan, math.nan]), math.nan, (*warn, msg)
    se = float(math.sqrt(max(float(g @ cov @ g), 0.0))) if math.isfinite(est) else math.nan
    diag = {"p_treated": p1, "p_control": p0, **(diagnostics or {})}
    return EffectEstimate.from_fit(
        method,
        estimand,
        est,
        se,
        n,
        events,
        ess=ess,
        warnings=warn,
        diagnostics=diag,
        alpha=alpha,
        measure=measure,
    )


def naive_binary(
    df: Data | None,
    time: None,
    event: str,
    treatment: str,
    covariates: Sequence[str] | None = None,
    measure: str = "risk_diff",
    alpha: float = 0.05,
    shared: SharedInputs | None = None,
) -> EffectEstimate:
    """Unadjusted (crude) risk difference or log odds ratio with Wald SEs.

    ``p_a`` is the share of responders in arm ``a``; var(p_a) = p_a (1 - p_a) / n_a, so
    the log-OR SE is sqrt(1/a + 1/b + 1/c + 1/d) of the 2x2 table.

    Parameters
    ----------
    df : DataFrame or mapping of column name to array
    time : None
        A binary outcome has no time.
    event : str
        The 0/1 outcome column (``"response"``).
    treatment : str
        0/1 treatment column.
    covariates : sequence of str, optional
        Accepted for a uniform estimator signature and ignored.
    measure : {"risk_diff", "log_or"}
    alpha : float
        1 - confidence level of the Wald interval.
    shared : SharedInputs, optional
        Work shared with other estimators of the same data.
    """
    check_binary_measure(measure)
    alpha = check_probability(alpha, "alpha", open_interval=True)
    _, y, a = _inputs(df, time, event, treatment, shared)
    t = a.astype(bool)
    n1, n0 = int(t.sum()), int((~t).sum())
    p1, p0 = float(y[t].mean()), float(y[~t].mean())
    cov = np.diag([p1 * (1.0 - p1) / n1, p0 * (1.0 - p0) / n0])
    return _result("naive_binary", "crude", measure, p1, p0, cov, a.size, int(y.sum()), alpha=alpha)


# ---- inverse probability of treatment weighting -------------------------------------------
def _tilt(e: np.ndarray, estimand: str) -> tuple[np.ndarray, np.ndarray]:
    """Tilting function h(e) of the target population and its derivative h'(e)."""
    if estimand == "ATE":
        return np.ones_like(e), np.zeros_like(e)
    if estimand == "ATT":
        return e, np.ones_like(e)
    if estimand == "ATC":
        return 1.0 - e, -np.ones_like(e)
    if estimand == "ATO":
        return e * (1.0 - e), 1.0 - 2.0 * e
    return np.minimum(e, 1.0 - e), np.where(e < 0.5, 1.0, -1.0)  # ATM


def iptw_arms(
    y: np.ndarray, a: np.ndarray, X: np.ndarray, e: np.ndarray, estimand: str, variance: str
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Weighted arm proportions and their covariance (the M-estimation sandwich).

    Parameters
    ----------
    y : ndarray (n,)
        0/1 outcome.
    a : ndarray (n,)
        0/1 treatment.
    X : ndarray (n, p)
        The PS model's design, intercept column included.
    e : ndarray (n,)
        Fitted propensity scores (the logistic MLE of ``a`` on ``X``).
    estimand : {"ATE", "ATT", "ATC", "ATO", "ATM"}
    variance : {"mestimation", "robust"}
        ``"mestimation"``: the sandwich of the stacked estimating equations
        ``X (a - e)`` (PS score), ``a w (y - p1)`` and ``(1 - a) w (y - p0)`` with
        ``w = h(e) / e`` resp. ``h(e) / (1 - e)``, so the PS estimation is accounted
        for; ``"robust"``: the weights taken as known (the last two equations alone,
        what ``survey::svyglm`` reports up to its n / (n - 1) factor).

    Returns
    -------
    p1, p0 : float
    cov : ndarray (2, 2)
        Covariance of (p1, p0).
    w : ndarray (n,)
        The analysis weights.
    """
    t = a.astype(bool)
    h, dh = _tilt(e, estimand)
    w = np.where(t, h / e, h / (1.0 - e))
    p1 = float(w[t] @ y[t] / w[t].sum())
    p0 = float(w[~t] @ y[~t] / w[~t].sum())
    r1 = np.where(t, w * (y - p1), 0.0)
    r0 = np.where(t, 0.0, w * (y - p0))
    if variance == "robust":
        A = np.diag([w[t].sum(), w[~t].sum()])
        psi = np.column_stack([r1, r0])
        Ainv = np.linalg.inv(A)
        return p1, p0, Ainv @ (psi.T @ psi) @ Ainv.T, w
    p = X.shape[1]
    # d w / d eta with eta the PS logit: w'(e) * e (1 - e)
    dw1 = (dh * e - h) / e**2 * e * (1.0 - e)
    dw0 = (dh * (1.0 - e) + h) / (1.0 - e) ** 2 * e * (1.0 - e)
    A = np.zeros((p + 2, p + 2))  # minus the derivative of the summed equations
    A[:p, :p] = (X * (e * (1.0 - e))[:, None]).T @ X
    A[p, :p] = -(np.where(t, dw1 * (y - p1), 0.0)) @ X
    A[p, p] = w[t].sum()
    A[p + 1, :p] = -(np.where(t, 0.0, dw0 * (y - p0))) @ X
    A[p + 1, p + 1] = w[~t].sum()
    psi = np.column_stack([X * (a - e)[:, None], r1, r0])
    Ainv = np.linalg.inv(A)
    V = Ainv @ (psi.T @ psi) @ Ainv.T
    return p1, p0, V[p:, p:], w


def iptw_binary(
    df: Data | None,
    time: None,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    measure: str = "risk_diff",
    estimand: str = "ATE",
    variance: str = "mestimation",
    ps_method: str = "ml",
    pool_rare: int | None = None,
    propensity: PropensityModel | None = None,
    alpha: float = 0.05,
    shared: SharedInputs | None = None,
) -> EffectEstimate:
    """Inverse-probability-of-treatment-weighted risk difference or log odds ratio.

    The arm proportions are weighted means (Hajek: weights normalised within arm) with
    weights ``1 / e`` (treated) and ``1 / (1 - e)`` (controls) for the ATE, tilted by
    ``h(e)`` for the others (ATT ``e``, ATC ``1 - e``, ATO ``e (1 - e)``, ATM
    ``min(e, 1 - e)``).  The SE is the M-estimation sandwich of :func:`iptw_arms`.

    Parameters
    ----------
    df, time, event, treatment
        As in :func:`naive_binary`.
    covariates : sequence of str
        The propensity-score model's covariates.
    measure : {"risk_diff", "log_or"}
    estimand : {"ATE", "ATT", "ATC", "ATO", "ATM"}
    variance : {"mestimation", "robust"}
        Stack the PS model's score (default; accounts for the PS being estimated) or
        take the weights as known (conservative for the ATE).
    ps_method : {"ml", "firth"}
    pool_rare : int, optional
        As in :func:`estimators.fit_propensity`.
    propensity : PropensityModel, optional
        A PS model already fitted to these data and covariates (``ps_method="ml"``
        only for the M-estimation SE: the stacked score is the ML one).
    alpha : float
    shared : SharedInputs, optional

    Returns
    -------
    EffectEstimate
        ``ess`` is Kish's effective sample size of the weights; ``diagnostics`` holds
        ``p_treated``, ``p_control`` and ``propensity``.
    """
    check_binary_measure(measure)
    estimand = check_estimand(estimand)
    if variance not in IPTW_VARIANCES:
        raise EstimatorInputError(
            f"variance={variance!r} is not allowed; use one of {list(IPTW_VARIANCES)}"
        )
    if variance == "mestimation" and ps_method != "ml":
        raise EstimatorInputError(
            f"ps_method={ps_method!r} is not allowed with variance='mestimation' (the stacked "
            "score is the ML one); use ps_method='ml' or variance='robust'"
        )
    check_ps_method(ps_method)
    check_pool_rare(pool_rare)
    alpha = check_probability(alpha, "alpha", open_interval=True)
    covs = check_covariates(covariates)
    shared, y, a = _inputs(df, time, event, treatment, shared)
    model = _propensity(shared, covs, a, propensity, ps_method, pool_rare)
    X = np.column_stack([np.ones(a.size), model.design.X])
    p1, p0, cov, w = iptw_arms(y, a, X, model.ps, estimand, variance)
    warn = (*model.warnings, *_no_covariates("iptw_binary", estimand, covs))
    return _result(
        "iptw_binary",
        estimand,
        measure,
        p1,
        p0,
        cov,
        a.size,
        int(y.sum()),
        ess=kish_ess(w),
        warn=warn,
        diagnostics={"propensity": model},
        alpha=alpha,
    )


# ---- matching ------------------------------------------------------------------------------
def matched_binary(
    df: Data | None,
    time: None,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    measure: str = "risk_diff",
    caliper: float | None = 0.2,
    order: str = "random",
    random_state: int | np.random.Generator = 0,
    ps_method: str = "ml",
    pool_rare: int | None = None,
    propensity: PropensityModel | None = None,
    alpha: float = 0.05,
    shared: SharedInputs | None = None,
) -> EffectEstimate:
    """Risk difference or log odds ratio in 1:1 propensity-score-matched pairs (ATT).

    Greedy nearest-neighbour matching on the logit PS without replacement, as
    :func:`estimators.psm` (with ``shared=`` the very same pairs).  ``p1`` and ``p0``
    are the response shares of the matched treated and controls; their covariance is
    the paired one, ``cov(y_treated, y_control) / m`` over the ``m`` pairs (ddof 1),
    so the risk-difference SE is that of the paired differences.

    Parameters
    ----------
    df, time, event, treatment, covariates
        As in :func:`iptw_binary`.
    measure : {"risk_diff", "log_or"}
    caliper : float or None
        Caliper in SDs of the logit PS (default 0.2); None for no caliper.
    order : {"random", "largest", "smallest", "data"}
    random_state : int or numpy.random.Generator
    ps_method, pool_rare, propensity, alpha, shared
        As in :func:`iptw_binary`.

    Returns
    -------
    EffectEstimate
        ``n`` counts the matched patients; ``diagnostics``: ``pairs``,
        ``treated_unmatched``, ``matching``.
    """
    check_binary_measure(measure)
    multiplier = check_caliper(caliper)
    check_order(order)
    check_ps_method(ps_method)
    check_pool_rare(pool_rare)
    alpha = check_probability(alpha, "alpha", open_interval=True)
    covs = check_covariates(covariates)
    shared, y, a = _inputs(df, time, event, treatment, shared)
    model = _propensity(shared, covs, a, propensity, ps_method, pool_rare)

    def match() -> Matching:
        rng = check_random_state(random_state)  # made when drawn: not on a memo hit
        return _match(model.logit, a.astype(bool), multiplier, caliper, order, rng, 1, False)

    if propensity is None and not isinstance(random_state, np.random.Generator):
        # psm's key: the same pairs as psm and matched_km on these data
        key = ("psm-pairs", covs, ps_method, pool_rare, multiplier, order, int(random_state))
        m = shared._memo(key, match)
    else:
        m = match()
    if m.n_pairs < 2:
        raise EstimatorInputError(
            f"matched_binary: {m.n_pairs} matched pair(s); a paired SE needs at least 2"
        )
    y1, y0 = y[m.treated], y[m.control]
    cov = np.cov(np.vstack([y1, y0]), ddof=1) / m.n_pairs
    return _result(
        "matched_binary",
        "ATT",
        measure,
        float(y1.mean()),
        float(y0.mean()),
        cov,
        2 * m.n_pairs,
        int(y1.sum() + y0.sum()),
        warn=tuple(model.warnings),
        diagnostics={
            "pairs": m.n_pairs,
            "treated_unmatched": m.n_unmatched,
            "matching": m,
        },
        alpha=alpha,
    )


# ---- covariate adjustment -------------------------------------------------------------------
def adjusted_logistic(
    df: Data | None,
    time: None,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    measure: str = "log_or",
    design: Design | None = None,
    alpha: float = 0.05,
    shared: SharedInputs | None = None,
) -> EffectEstimate:
    """Logistic regression of the outcome on treatment plus covariates (conditional log-OR).

    Maximum likelihood (Newton, the propensity model's fitter); the SE is model-based
    (inverse information), as R's ``glm(..., family = binomial)``.  Estimand
    ``"conditional"``: the odds ratio is non-collapsible, so this is neither the
    marginal log-OR nor comparable with a risk difference; ``measure`` is ``"log_or"``.

    Parameters
    ----------
    df, time, event, treatment, covariates
        As in :func:`iptw_binary`; categorical covariates are one-hot coded.
    measure : {"log_or"}
    design : Design, optional
        ``design_matrix(df, covariates)`` already built.
    alpha : float
    shared : SharedInputs, optional

    Returns
    -------
    EffectEstimate
        ``converged=False`` under quasi-separation (a covariate level where every
        patient responds or none does).
    """
    check_binary_measure(measure, ADJUSTED_MEASURES)
    alpha = check_probability(alpha, "alpha", open_interval=True)
    covs = check_covariates(covariates)
    shared, y, a = _inputs(df, time, event, treatment, shared)
    if design is None:
        design = shared.design(covs)
    elif not isinstance(design, Design) or design.X.shape[0] != a.size:
        raise EstimatorInputError(
            f"design must be a Design with one row per patient of df ({a.size})"
        )
    check_design_columns(design.X, design.names)
    X = np.empty((a.size, design.X.shape[1] + 2))
    X[:, 0] = 1.0
    X[:, 1] = a
    X[:, 2:] = design.X
    names = [INTERCEPT, treatment, *design.names]
    if y.min() == y.max():
        raise EstimatorInputError(
            f"event={event!r} is constant ({int(y[0])} for every patient); a logistic "
            "regression needs both outcomes"
        )
    fit = _fit_logistic(X, y, names, "ml", 1e-10, 50, outcome=f"event={event!r}")
    warn = (*fit.warnings, *_no_covariates("adjusted_logistic", "conditional", covs))
    return EffectEstimate.from_fit(
        "adjusted_logistic",
        "conditional",
        float(fit.coef[1]),
        float(fit.se[1]),
        a.size,
        int(y.sum()),
        converged=fit.converged,
        warnings=warn,
        diagnostics={"coef": dict(zip(names, fit.coef.tolist(), strict=True))},
        alpha=alpha,
        measure="log_or",
    )
