"""RMST and survival-probability differences from weighted and matched Kaplan-Meier curves.

=============  ==========================================  ==============================
function       method                                      estimand
=============  ==========================================  ==============================
iptw_km        Kaplan-Meier per arm weighted by IPT        ATE (``"ATT"`` with ATT
               weights; influence-function SE, with or     weights)
               without the PS-estimation term
matched_km     Kaplan-Meier per arm in the 1:1 PS-matched  ATT
               set; pair-clustered influence-function SE
=============  ==========================================  ==============================

Both return ``theta = F(S_1) - F(S_0)`` (treated minus control) where ``F`` is
``measure="rmst_diff"``: the restricted mean survival ``int_0^tau S(t) dt`` (months), or
``measure="surv_diff"``: ``S(tau)``, at ``horizon = tau`` months.

**Influence function.**  Arm ``a``'s weighted KM (Hajek form: weighted events
``D_k`` over weighted number at risk ``Y_k`` at each distinct time ``t_k``) is a smooth
function of the weights; its exact derivative gives patient i's influence value::

    phi_i = w_i dF/dw_i = -w_i [ delta_i h_{k(i)} 1(t_k(i) <= tau)
                                 - sum_{t_k <= min(T_i, tau)} h_k D_k / Y_k ]
    h_k = A_k / (Y_k - D_k),   A_k = int_{t_k}^tau S   (RMST),   A_k = S(tau)   (S(tau))

(``h_k = 0`` where ``Y_k = D_k``, as Greenwood's sum counts such a term 0).  Unweighted,
``sum phi_i^2`` is exactly Greenwood's variance (RMST: Klein & Moeschberger's).  With the
weights held fixed, ``Var(theta) = sum_i phi_i^2`` over both arms (control values enter
with a minus sign): ``variance="if-fixed-ps"``, R ``survfit(robust=TRUE)``'s infinitesimal
jackknife.

**PS estimation** (``variance="if"``, the default).  The weights are functions of the
logistic coefficients ``gamma``; the stacked estimating equations (logistic score, KM)
add to each ``phi_i`` the term ``D' I^{-1} x_i (a_i - e_i)`` with ``I`` the logistic
information (``PropensityModel.fit.cov`` is ``I^{-1}``) and
``D = d theta / d gamma = sum_i phi_i g_i x_i``, where ``g_i = d log w_i / d logit``:
``-(1 - e_i)`` for treated and ``e_i`` for control ATE weights, 0 for treated and 1 for
control ATT weights.  For the ATE this term usually makes the SE smaller (Lunceford &
Davidian 2004).  Stabilizing the weights rescales each arm by a constant, which leaves
every KM curve unchanged.

**Matched set** (:func:`matched_km`).  Unweighted KM per arm among the matched patients;
each pair's two influence values are summed and ``Var = sum_pairs (phi_t - phi_c)^2``
(pairs are the independent units).  Matching is taken as fixed.

These are the Hajek (normalised) weighted KM curves of R ``survfit(weights=)``;
``riskRegression::ate(estimator = "IPTW")`` is instead the Horvitz-Thompson mean
``sum_i 1(A_i = a) w_i 1(T_i > tau) / n`` (with censoring weights), which equals it only
when the PS model has an intercept alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._km_kernels import _km_functional
from .balance import balance_table
from .effects import _inputs, _no_covariates, _propensity
from .estimands import MEASURES, MEASURES_WITH_HORIZON
from .exceptions import EstimatorInputError
from .ipcw import admin_times, check_ipcw, check_ipcw_options, fit_censoring_model, ipcw_km
from .matching import Matching, _match
from .propensity import PropensityModel
from .result import EffectEstimate
from .shared import Outcome, SharedInputs, outcome_arrays
from .validation import (
    Data,
    check_caliper,
    check_covariates,
    check_estimand,
    check_frame,
    check_order,
    check_pool_rare,
    check_probability,
    check_ps_method,
    check_random_state,
    check_weights,
)
from .weighting import _weights_from_logit, ess_by_arm, kish_ess, weight_summary

__all__ = ["KM_MEASURES", "KM_VARIANCES", "iptw_km", "km_difference", "matched_km"]

KM_MEASURES: tuple[str, ...] = tuple(m for m in MEASURES if m in MEASURES_WITH_HORIZON)
"""The measures a KM functional estimates here: ``rmst_diff`` and ``surv_diff``."""
KM_VARIANCES: tuple[str, ...] = ("if", "if-fixed-ps")
""":func:`iptw_km` variances: influence function with / without the PS-estimation term."""

_ARM = ("control", "treated")


KM_ESTIMANDS = ("ATE", "ATT")
"""Weightings of :func:`iptw_km` (its PS-estimation term is derived for these)."""


def check_measure(measure: str) -> str:
    """A KM-functional measure: one of :data:`KM_MEASURES`."""
    if measure not in KM_MEASURES:
        raise EstimatorInputError(
            f"measure={measure!r} is not allowed; use one of {KM_MEASURES} (a Kaplan-Meier "
            f"estimator has no {measure!r})"
            if measure in MEASURES
            else f"measure={measure!r} is not allowed; use one of {KM_MEASURES}"
        )
    return measure


def check_horizon(horizon: float) -> float:
    """A horizon: a finite number of months > 0."""
    if (
        isinstance(horizon, bool)
        or not isinstance(horizon, int | float | np.integer | np.floating)
        or not (math.isfinite(horizon) and horizon > 0)
    ):
        raise EstimatorInputError(
            f"horizon={horizon!r} is not allowed; give a finite number of months > 0"
        )
    return float(horizon)


def check_variance(variance: str) -> str:
    """An :func:`iptw_km` variance: one of :data:`KM_VARIANCES`."""
    if variance not in KM_VARIANCES:
        raise EstimatorInputError(
            f"variance={variance!r} is not allowed; use one of {KM_VARIANCES}"
        )
    return variance


def _functional(
    oc: Outcome, w: np.ndarray, group: np.ndarray, measure: str, tau: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each arm's functional and every row's influence value; raises where not identifiable."""
    est, phi, last_time, last_surv, events = _km_functional(
        oc.time, oc.event, w, oc.order, group, tau, measure == "rmst_diff"
    )
    for g in (0, 1):
        if math.isnan(last_time[g]):
            raise EstimatorInputError(f"the {_ARM[g]} arm is empty; both arms are required")
        if last_time[g] < tau and last_surv[g] > 0.0:
            if events[g] == 0.0:
                raise EstimatorInputError(
                    f"horizon={tau:g} is not allowed: every patient of the {_ARM[g]} arm is "
                    f"censored before it (last follow-up {last_time[g]:g} months, no events); "
                    f"the {measure} is not identifiable. Use a horizon <= {last_time[g]:g}"
                )
            raise EstimatorInputError(
                f"horizon={tau:g} is not allowed: it is beyond the last follow-up of the "
                f"{_ARM[g]} arm ({last_time[g]:g} months), where its Kaplan-Meier curve is "
                f"undefined and the {measure} is not identifiable. Use a horizon <= "
                f"{last_time[g]:g}"
            )
    return est, phi


def km_difference(
    time: np.ndarray,
    event: np.ndarray,
    treatment: np.ndarray,
    weights: np.ndarray | None = None,
    measure: str = "rmst_diff",
    horizon: float = 24.0,
) -> tuple[float, float, np.ndarray]:
    """Weighted-KM difference (treated - control) of RMST or S at ``horizon``, fixed weights.

    Parameters
    ----------
    time, event, treatment : ndarray, shape (n,)
        Follow-up (months, > 0), event (0/1), treatment (0/1, both arms).
    weights : ndarray, shape (n,), optional
        Case weights > 0 (default 1), held fixed.
    measure : {"rmst_diff", "surv_diff"}
    horizon : float
        ``tau``, months.

    Returns
    -------
    estimate : float
    se : float
        ``sqrt(sum phi_i^2)``.
    phi : ndarray, shape (n,)
        Influence value of each row for the difference.
    """
    check_measure(measure)
    tau = check_horizon(horizon)
    data = {"time": np.asarray(time), "event": np.asarray(event), "a": np.asarray(treatment)}
    oc = outcome_arrays(data, "time", "event", "a")
    if weights is None:
        w = np.ones(oc.time.size)
    else:
        w = check_weights(np.asarray(weights, dtype=np.float64), "weights")
        if w.shape != oc.time.shape:
            raise EstimatorInputError(f"weights has shape {w.shape}; expected {oc.time.shape}")
    est, phi = _functional(oc, w, oc.treatment, measure, tau)
    phi = np.where(oc.treatment == 1, phi, -phi)
    return float(est[1] - est[0]), float(np.sqrt(phi @ phi)), phi


def _ps_term(model: PropensityModel, a: np.ndarray, phi: np.ndarray, estimand: str) -> np.ndarray:
    """Each row's PS-estimation term ``D' I^{-1} x_i (a_i - e_i)`` (see the module notes)."""
    e = model.ps
    if estimand == "ATE":
        g = np.where(a == 1, e - 1.0, e)
    else:
        g = np.where(a == 1, 0.0, 1.0)
    X = model.design.X
    pg = phi * g
    D = np.empty(X.shape[1] + 1)
    D[0] = pg.sum()
    D[1:] = pg @ X
    v = model.fit.cov @ D
    return (v[0] + X @ v[1:]) * (a - e)


def iptw_km(
    df: Data | None,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    measure: str = "rmst_diff",
    horizon: float = 24.0,
    estimand: str = "ATE",
    variance: str = "if",
    propensity: PropensityModel | None = None,
    balance: bool = True,
    ps_method: str = "ml",
    pool_rare: int | None = None,
    alpha: float = 0.05,
    shared: SharedInputs | None = None,
    ipcw: bool | str = False,
    ipcw_covariates: Sequence[str] | None = None,
    ipcw_by_arm: bool = True,
    ipcw_stabilized: bool = False,
    ipcw_truncate: float | None = None,
    ipcw_entry: str | None = None,
    ipcw_cutoff: float | None = None,
) -> EffectEstimate:
    """IPT-weighted Kaplan-Meier difference of RMST(tau) or S(tau), treated - control.

    Parameters
    ----------
    df : DataFrame or mapping of column name to array
        May be None when ``shared`` is given.
    time, event, treatment : str
        Column names: follow-up (months, > 0), event (0/1), treatment (0/1).
    covariates : sequence of str
        Propensity-score covariates (``[]`` warns: the crude contrast).
    measure : {"rmst_diff", "surv_diff"}
        RMST difference up to ``horizon`` (months) or survival difference at ``horizon``.
    horizon : float
        ``tau``, months, > 0 and within both arms' follow-up.
    estimand : {"ATE", "ATT"}
        ATE weights (default) or ATT weights (:mod:`estimators.weighting`).
    variance : {"if", "if-fixed-ps"}
        Influence-function SE with the PS-estimation term (default) or with the weights
        held fixed (see the module notes).
    propensity : PropensityModel, optional
        A PS already fitted to ``df`` on ``covariates``.
    balance : bool
        Compute the balance table and weight summary (False skips them).
    ps_method : {"ml", "firth"}
    pool_rare : int, optional
        As in :func:`estimators.siptw`.
    alpha : float
        The CI has level ``1 - alpha``.
    shared : SharedInputs, optional
        Validated inputs shared with other estimators; the weights are the ones
        :func:`estimators.siptw` computes (once) for the same PS.
    ipcw : False or "cox"
        Inverse probability of censoring weighting (:mod:`estimators.ipcw`): the KM of
        each arm weights patient i at risk at t by ``w_i num_a(t-) / K_i(t-)``.  The
        influence values differentiate along each patient's whole weight path with the
        censoring model taken as known (the PS term of ``variance="if"`` is kept).
    ipcw_covariates, ipcw_by_arm, ipcw_stabilized, ipcw_truncate, ipcw_entry, ipcw_cutoff
        As in :func:`estimators.siptw`.

    Returns
    -------
    EffectEstimate
        ``measure``, ``horizon``; ``ess`` is the Kish ESS of the weights.
        ``diagnostics``: ``treated`` / ``control`` (each arm's RMST or S(tau)),
        ``se_if``, ``se_if_fixed_ps`` (both SEs), ``ess_by_arm``, ``analysis_weights``,
        ``propensity`` and, with ``balance``, ``balance`` and ``weights``; with
        ``ipcw`` the censoring diagnostics of :func:`estimators.siptw`.
    """
    check_measure(measure)
    tau = check_horizon(horizon)
    check_estimand(estimand)
    if estimand not in KM_ESTIMANDS:  # the PS term below is derived for these weights
        raise EstimatorInputError(
            f"estimand={estimand!r} is not allowed; use one of {KM_ESTIMANDS} (iptw_km)"
        )
    check_variance(variance)
    check_ps_method(ps_method)
    check_pool_rare(pool_rare)
    alpha = check_probability(alpha, "alpha", open_interval=True)
    covs = check_covariates(covariates)
    ipcw_model = check_ipcw(ipcw)
    ipcw_covs = check_ipcw_options(
        ipcw_model,
        ipcw_covariates,
        covs,
        ipcw_by_arm,
        ipcw_stabilized,
        ipcw_truncate,
        ipcw_entry,
        ipcw_cutoff,
    )
    shared, oc = _inputs(df, time, event, treatment, shared)
    if ipcw_model is not None:  # censoring-model columns, before any fit
        check_frame(shared.df, ipcw_covariates=list(ipcw_covs), ipcw_entry=ipcw_entry)
    a = oc.treatment
    model = _propensity(shared, covs, a, propensity, ps_method, pool_rare)

    def weights() -> np.ndarray:
        return _weights_from_logit(model.logit, a.astype(bool), estimand, True, None)

    if propensity is None:  # the key siptw uses: one weight vector per data set
        w = shared._memo(("siptw-weights", covs, ps_method, pool_rare, estimand, None), weights)
    else:
        w = weights()
    ipcw_diag: dict = {}
    if ipcw_model is None:
        est, phi = _functional(oc, w, a, measure, tau)
    else:
        _functional(oc, w, a, measure, tau)  # the identifiability checks of the horizon
        design = shared.design(ipcw_covs)
        admin = None
        if ipcw_entry is not None:
            admin = admin_times(shared.df, ipcw_entry, float(ipcw_cutoff), oc.time)
        cens = fit_censoring_model(oc.time, oc.event, a, design.X, design.names, ipcw_by_arm, admin)
        est, phi, ipcw_diag = ipcw_km(
            oc.time,
            oc.event,
            a,
            w,
            cens,
            tau,
            measure == "rmst_diff",
            stabilized=ipcw_stabilized,
            truncate=ipcw_truncate,
        )
        ipcw_diag |= {"ipcw": ipcw_model, "censoring_model": cens}
    phi = np.where(a == 1, phi, -phi)
    se_fixed = float(np.sqrt(phi @ phi))
    total = phi + _ps_term(model, a, phi, estimand)
    se_if = float(np.sqrt(total @ total))
    diagnostics = {
        "treated": float(est[1]),
        "control": float(est[0]),
        "se_if": se_if,
        "se_if_fixed_ps": se_fixed,
        "ess_by_arm": ess_by_arm(w, a),
        "analysis_weights": w,
        "propensity": model,
        **ipcw_diag,
    }
    if balance:
        diagnostics["balance"] = balance_table(model.design.X, a, model.names, w)
        diagnostics["weights"] = weight_summary(w)
    return EffectEstimate.from_fit(
        "iptw_km",
        estimand,
        estimate=float(est[1] - est[0]),
        se=se_if if variance == "if" else se_fixed,
        n=a.size,
        events=int(oc.event.sum()),
        ess=kish_ess(w),
        converged=model.converged,
        warnings=_no_covariates("iptw_km", estimand, covs) + model.warnings,
        diagnostics=diagnostics,
        alpha=alpha,
        measure=measure,
        horizon=tau,
    )


def matched_km(
    df: Data | None,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    measure: str = "rmst_diff",
    horizon: float = 24.0,
    caliper: float | None = 0.2,
    order: str = "random",
    random_state: int | np.random.Generator = 0,
    propensity: PropensityModel | None = None,
    balance: bool = True,
    ps_method: str = "ml",
    pool_rare: int | None = None,
    alpha: float = 0.05,
    shared: SharedInputs | None = None,
) -> EffectEstimate:
    """Kaplan-Meier difference of RMST(tau) or S(tau) in the 1:1 PS-matched set (ATT).

    The matching is :func:`estimators.psm`'s (greedy nearest neighbour on the logit PS
    without replacement; with ``shared`` and an integer ``random_state`` the very same
    pairs).  SE: the pair-clustered influence function (module notes).

    Parameters
    ----------
    df, time, event, treatment, covariates
        As in :func:`iptw_km`.
    measure, horizon
        As in :func:`iptw_km`; the horizon must lie within both matched arms' follow-up.
    caliper : float or None
        Caliper in SDs of the logit PS (default 0.2); None for no caliper.
    order : {"random", "largest", "smallest", "data"}
    random_state : int or numpy.random.Generator
    propensity, balance, ps_method, pool_rare, alpha, shared
        As in :func:`iptw_km`.

    Returns
    -------
    EffectEstimate
        ``n`` and ``events`` count the matched set; ``diagnostics``: ``treated`` /
        ``control``, ``pairs``, ``treated_unmatched``, ``treated_unmatched_share``,
        ``caliper`` (logit scale), ``matching``, ``propensity`` (and ``balance``).
    """
    check_measure(measure)
    tau = check_horizon(horizon)
    multiplier = check_caliper(caliper)
    check_order(order)
    rng = check_random_state(random_state)
    check_ps_method(ps_method)
    check_pool_rare(pool_rare)
    alpha = check_probability(alpha, "alpha", open_interval=True)
    covs = check_covariates(covariates)
    shared, oc = _inputs(df, time, event, treatment, shared)
    a = oc.treatment
    model = _propensity(shared, covs, a, propensity, ps_method, pool_rare)

    def match() -> Matching:
        return _match(model.logit, a.astype(bool), multiplier, caliper, order, rng)

    if propensity is None and not isinstance(random_state, np.random.Generator):
        key = ("psm-pairs", covs, ps_method, pool_rare, multiplier, order, int(random_state))
        m = shared._memo(key, match)
    else:
        m = match()
    group = np.full(a.size, -1, dtype=np.int8)
    group[m.treated] = 1
    group[m.control] = 0
    est, phi = _functional(oc, np.ones(a.size), group, measure, tau)
    per_pair = phi[m.treated] - phi[m.control]
    se = float(np.sqrt(per_pair @ per_pair))
    rows = np.concatenate([m.treated, m.control])
    diagnostics = {
        "treated": float(est[1]),
        "control": float(est[0]),
        "pairs": m.n_pairs,
        "treated_unmatched": m.n_unmatched,
        "treated_unmatched_share": m.unmatched_share,
        "caliper": m.caliper,
        "matching": m,
        "propensity": model,
    }
    if balance:
        diagnostics["balance"] = balance_table(
            model.design.X, a, model.names, (group >= 0).astype(np.float64)
        )
    return EffectEstimate.from_fit(
        "matched_km",
        "ATT",
        estimate=float(est[1] - est[0]),
        se=se,
        n=rows.size,
        events=int(oc.event[rows].sum()),
        converged=model.converged,
        warnings=_no_covariates("matched_km", "ATT", covs) + model.warnings,
        diagnostics=diagnostics,
        alpha=alpha,
        measure=measure,
        horizon=tau,
    )
