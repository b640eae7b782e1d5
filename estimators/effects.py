"""The four treatment-effect estimators, each returning an :class:`EffectEstimate`.

=============  ===========================================  ==============================
function       method                                       estimand
=============  ===========================================  ==============================
siptw          Cox on treatment, stabilized IPT weights,    ATE (``"ATT"`` with ATT
               robust (Lin-Wei sandwich) variance           weights)
psm            Cox on treatment in the 1:1 matched set,     ATT
               variance clustered on matched pair
naive_cox      Cox on treatment only                        crude
adjusted_cox   Cox on treatment plus covariates             conditional
=============  ===========================================  ==============================

Each function validates its inputs once, at this boundary.  For speed when several
estimators are fitted to one data set (a simulation study), pass them one
:class:`~estimators.shared.SharedInputs` as ``shared=``: the treatment, each outcome's
arrays and time order, the design matrix and the propensity fit are then validated and
computed once for all of them (``df`` may then be None).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .balance import balance_table
from .bootstrap import (
    BootstrapResult,
    bootstrap_propensity,
    check_boot_ci,
    check_n_boot,
    siptw_bootstrap,
)
from .cox import CoxResult, _fit_clean, _sort_order
from .design_matrix import Design
from .exceptions import EstimatorInputError, NoCovariatesWarning
from .matching import Matching, _match
from .propensity import PropensityModel
from .result import EffectEstimate
from .shared import Outcome, SharedInputs
from .validation import (
    Data,
    check_caliper,
    check_covariates,
    check_design_columns,
    check_estimand,
    check_order,
    check_pool_rare,
    check_ps_method,
    check_random_state,
    check_ties,
    check_truncate,
)
from .weighting import _weights_from_logit, ess_by_arm, kish_ess, weight_summary


def _inputs(
    df: Data | None, time: str, event: str, treatment: str, shared: SharedInputs | None
) -> tuple[SharedInputs, Outcome]:
    """Shared inputs (built here when not given) and the validated outcome arrays."""
    if shared is None:
        if df is None:
            raise EstimatorInputError("df is None; pass the data (or shared=SharedInputs)")
        shared = SharedInputs(df, treatment)
    elif not isinstance(shared, SharedInputs):
        raise EstimatorInputError(f"shared must be a SharedInputs, got {type(shared).__name__}")
    elif shared.treatment_column != treatment:
        raise EstimatorInputError(
            f"shared was built for treatment={shared.treatment_column!r}, not {treatment!r}"
        )
    return shared, shared.outcome(time, event)


def _propensity(
    shared: SharedInputs,
    covariates: tuple[str, ...],
    a: np.ndarray,
    propensity: PropensityModel | None,
    method: str,
    pool_rare: int | None,
) -> PropensityModel:
    """Fit the PS (once per shared inputs), or check a precomputed one fits these data."""
    if propensity is None:
        return shared.propensity(covariates, method, pool_rare)
    if not isinstance(propensity, PropensityModel):
        raise EstimatorInputError(
            f"propensity must be a PropensityModel from fit_propensity, got "
            f"{type(propensity).__name__}"
        )
    if propensity.method != method:
        raise EstimatorInputError(
            f"propensity was fitted with method={propensity.method!r}, not ps_method={method!r}"
        )
    if covariates != propensity.covariates:
        raise EstimatorInputError(
            f"propensity was fitted on covariates {list(propensity.covariates)}, not "
            f"{list(covariates)}"
        )
    if propensity.treatment is not a and (
        propensity.treatment.shape != a.shape or not np.array_equal(propensity.treatment, a)
    ):
        raise EstimatorInputError(
            f"propensity was fitted to a different treatment vector (or data set) than "
            f"treatment={shared.treatment_column!r} of df ({propensity.treatment.size} vs "
            f"{a.size} rows)"
        )
    return propensity


def _no_covariates(method: str, estimand: str, covariates: tuple[str, ...]) -> tuple[str, ...]:
    """Warn when an adjusted estimator has nothing to adjust for."""
    if covariates:
        return ()
    msg = (
        f"{method}: covariates=[] leaves nothing to adjust for; the {estimand} estimate is "
        "the crude (unadjusted) contrast"
    )
    warnings.warn(msg, NoCovariatesWarning, stacklevel=3)
    return (msg,)


SIPTW_VARIANCES = ("robust", "bootstrap")


def _check_variance(variance: object) -> str:
    if variance not in SIPTW_VARIANCES:
        raise EstimatorInputError(
            f"variance={variance!r} is not allowed; use one of {SIPTW_VARIANCES}"
        )
    return variance  # type: ignore[return-value]


def _bootstrapped(est: EffectEstimate, boot: BootstrapResult, boot_ci: str) -> EffectEstimate:
    """``est`` with the bootstrap SE (normal p-value) and the ``boot_ci`` interval."""
    out = EffectEstimate.from_fit(
        method=est.method,
        estimand=est.estimand,
        estimate=est.estimate,
        se=boot.se,
        n=est.n,
        events=est.events,
        ess=est.ess,
        converged=est.converged,
        warnings=est.warnings + ((boot.warning,) if boot.warning else ()),
        diagnostics={**est.diagnostics, "bootstrap": boot},
    )
    if boot_ci == "normal":
        return out
    low, high = boot.ci_percentile
    return dataclasses.replace(out, ci_low=low, ci_high=high)


def _estimate(
    method: str,
    estimand: str,
    fit: CoxResult,
    ess: float | None = None,
    extra_warnings: tuple[str, ...] = (),
    converged: bool = True,
    diagnostics: dict[str, Any] | None = None,
) -> EffectEstimate:
    """EffectEstimate from the treatment coefficient (column 0) of a Cox fit."""
    return EffectEstimate.from_fit(
        method=method,
        estimand=estimand,
        log_hr=float(fit.params[0]),
        se=float(fit.se[0]),
        n=fit.n,
        events=fit.events,
        ess=ess,
        converged=converged and fit.converged_for(0),
        warnings=extra_warnings + fit.warnings,
        diagnostics=diagnostics,
    )


def siptw(
    df: Data | None,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    estimand: str = "ATE",
    truncate: Sequence[float] | None = None,
    ties: str = "efron",
    propensity: PropensityModel | None = None,
    balance: bool = True,
    ps_method: str = "ml",
    pool_rare: int | None = None,
    shared: SharedInputs | None = None,
    variance: str = "robust",
    n_boot: int = 200,
    random_state: int | np.random.Generator = 0,
    boot_ci: str = "normal",
) -> EffectEstimate:
    """Stabilized inverse-probability-of-treatment-weighted Cox regression.

    Cox model on treatment only, weighted by stabilized IPT weights (see
    :mod:`estimators.weighting`), with the robust (Lin-Wei sandwich) variance, as in
    the published Flatiron analysis.  The robust SE ignores estimation of the PS and
    is conservative for the ATE; ``variance="bootstrap"`` refits the whole pipeline on
    ``n_boot`` resamples instead (:func:`estimators.bootstrap.siptw_bootstrap`).

    Parameters
    ----------
    df : DataFrame or mapping of column name to array
        May be None when ``shared`` is given.
    time, event, treatment : str
        Column names: follow-up (months, > 0), event (0/1), treatment (0/1).
    covariates : sequence of str
        Propensity-score covariates; ``[]`` warns (:class:`NoCovariatesWarning`): the
        estimate is then the crude contrast.
    estimand : {"ATE", "ATT"}
        ATE weights (default) or ATT weights.
    truncate : (low, high), optional
        Truncate the weights at these percentiles (e.g. ``(1, 99)``).
    ties : {"efron", "breslow"}
    propensity : PropensityModel, optional
        A PS already fitted to ``df`` on ``covariates`` (skips the fit).
    balance : bool
        Compute the balance table (SMDs) and weight summary; False skips them (a
        simulation study's fast path; ``ess_by_arm`` is always there).
    ps_method : {"ml", "firth"}
        Propensity model fit: maximum likelihood (default) or Firth's penalised
        likelihood (finite scores under separation; see :mod:`estimators.propensity`).
        In the subgroup scenarios (``flatiron-lung`` / ``flatiron-liver``, n = 551,
        1,000 replicates) a rare race level quasi-separates treatment in 5.1% of the
        replicates: the ML fit is flagged ``converged=False`` there; with Firth no
        sIPTW / PSM fit is flagged (0 of 2,000 per estimator and scenario).  ML stays
        the default, in the estimators and in studies: it is the analysis published
        for the Flatiron cohort, where it never separates (n = 1,430), and studies of
        v0.1 reproduce bit for bit; studies of small subgroups should set
        ``ps_method = "firth"`` in ``[study.estimator_options.siptw]`` (and ``psm``).
    pool_rare : int, optional
        Pool categorical levels with fewer patients than this in either arm (PS only).
    shared : SharedInputs, optional
        Validated inputs shared with other estimators fitted to the same data.  With
        its propensity model, the weights (and :func:`psm`'s pairs, for an integer
        ``random_state``) are computed once and reused for every outcome: the
        ``analysis_weights`` / ``matching`` of those results are one object.
    variance : {"robust", "bootstrap"}
        Lin-Wei robust SE (default, as published), or the nonparametric bootstrap of
        the full pipeline (PS refit, weights, Cox) over ``n_boot`` resamples: ``se`` is
        the bootstrap SE, the p-value its normal approximation, the interval
        ``boot_ci``.  Failed resamples are counted (:class:`BootstrapWarning`).
    n_boot : int
        Bootstrap resamples (>= 2; ``variance="bootstrap"``).
    random_state : int or numpy.random.Generator
        Seed or Generator of the resamples (an int gives the same resamples on every
        call).
    boot_ci : {"normal", "percentile"}
        Bootstrap interval: ``log_hr -/+ z * se`` (default: consistent with the SE and
        p-value reported, and stable at 200 resamples, where the 2.5% and 97.5%
        percentiles rest on ~5 resamples each), or the percentile interval.

    Returns
    -------
    EffectEstimate
        ``ess`` is the Kish effective sample size of the weights.  ``diagnostics``:
        ``balance`` (SMDs before/after weighting), ``ess_by_arm``, ``weights``
        (summary), ``analysis_weights`` (the weights, shape (n,)), ``propensity``;
        with the bootstrap, ``bootstrap`` (:class:`~estimators.bootstrap.BootstrapResult`).
    """
    check_estimand(estimand)
    bounds = check_truncate(truncate)
    check_ties(ties)
    check_ps_method(ps_method)
    check_pool_rare(pool_rare)
    _check_variance(variance)
    n_boot = check_n_boot(n_boot)
    rng = check_random_state(random_state)
    check_boot_ci(boot_ci)
    covs = check_covariates(covariates)
    shared, oc = _inputs(df, time, event, treatment, shared)
    a = oc.treatment
    model = _propensity(shared, covs, a, propensity, ps_method, pool_rare)

    def weights() -> np.ndarray:
        return _weights_from_logit(model.logit, a.astype(bool), estimand, True, bounds)

    if propensity is None:  # the shared model: its weights are the same for every outcome
        w = shared._memo(("siptw-weights", covs, ps_method, pool_rare, estimand, bounds), weights)
    else:
        w = weights()
    fit = _fit_clean(
        oc.time,
        oc.event,
        a[:, None].astype(np.float64),
        w,
        None,
        None,
        True,
        ties,
        1e-9,
        50,
        None,
        (treatment,),
        oc.order,
        rescale=False,
    )
    est = _estimate(
        "siptw",
        estimand,
        fit,
        ess=kish_ess(w),
        extra_warnings=_no_covariates("siptw", estimand, covs) + model.warnings,
        converged=model.converged,
        diagnostics={
            **(
                {
                    "balance": balance_table(model.design.X, a, model.names, w),
                    "weights": weight_summary(w),
                }
                if balance
                else {}
            ),
            "ess_by_arm": ess_by_arm(w, a),
            "analysis_weights": w,
            "propensity": model,
        },
    )
    if variance == "robust":
        return est
    if propensity is None and not isinstance(random_state, np.random.Generator):
        # the shared model and a seed: one PS refit per resample for every outcome / estimand
        key = ("siptw-boot-ps", covs, ps_method, pool_rare, n_boot, int(random_state))
        resamples = shared._memo(key, lambda: bootstrap_propensity(model, n_boot, rng))
    else:
        resamples = bootstrap_propensity(model, n_boot, rng)
    boot = siptw_bootstrap(
        model, oc, estimand, bounds, ties, n_boot, estimate=est.estimate, resamples=resamples
    )
    return _bootstrapped(est, boot, boot_ci)


def psm(
    df: Data | None,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    caliper: float | None = 0.2,
    order: str = "random",
    random_state: int | np.random.Generator = 0,
    ties: str = "efron",
    propensity: PropensityModel | None = None,
    balance: bool = True,
    ps_method: str = "ml",
    pool_rare: int | None = None,
    shared: SharedInputs | None = None,
) -> EffectEstimate:
    """1:1 propensity-score matching, then Cox on treatment with pair-clustered SEs.

    Greedy nearest-neighbour matching on the logit PS without replacement (see
    :mod:`estimators.matching`).  The estimand is the ATT among the treated who
    found a match (all treated when none is dropped).

    Parameters
    ----------
    df, time, event, treatment, covariates
        As in :func:`siptw`.
    caliper : float or None
        Caliper in SDs of the logit PS (default 0.2); None for no caliper.
    order : {"random", "largest", "smallest", "data"}
    random_state : int or numpy.random.Generator
        Seed for ``order="random"``.
    ties : {"efron", "breslow"}
    propensity : PropensityModel, optional
    balance : bool
        Compute the balance table after matching (False skips it).
    ps_method, pool_rare, shared
        As in :func:`siptw`.

    Returns
    -------
    EffectEstimate
        ``n`` and ``events`` count the matched set; ``diagnostics``: ``balance``
        (SMDs before/after matching), ``pairs``, ``treated_unmatched``,
        ``treated_unmatched_share``, ``caliper`` (logit scale), ``matching``
        (:class:`Matching`), ``propensity``.

    Raises
    ------
    NoOverlapError
        Zero matched pairs.
    """
    multiplier = check_caliper(caliper)
    check_order(order)
    rng = check_random_state(random_state)
    check_ties(ties)
    check_ps_method(ps_method)
    check_pool_rare(pool_rare)
    covs = check_covariates(covariates)
    shared, oc = _inputs(df, time, event, treatment, shared)
    a = oc.treatment
    model = _propensity(shared, covs, a, propensity, ps_method, pool_rare)

    def match() -> Matching:
        return _match(model.logit, a.astype(bool), multiplier, caliper, order, rng)

    if propensity is None and not isinstance(random_state, np.random.Generator):
        # the shared model and a seed: the same pairs for every outcome
        key = ("psm-pairs", covs, ps_method, pool_rare, multiplier, order, int(random_state))
        m = shared._memo(key, match)
    else:
        m = match()
    rows, pair = m.rows_and_pairs()
    e = oc.event[rows]
    if not e.any():
        raise EstimatorInputError(
            f"no events among the {rows.size} matched patients; a Cox fit needs at least one"
        )
    t = oc.time[rows]
    fit = _fit_clean(
        t,
        e,
        a[rows, None].astype(np.float64),
        None,
        None,
        pair,
        True,
        ties,
        1e-9,
        50,
        None,
        (treatment,),
        _sort_order(t, None),
        rescale=False,
        n_clusters=m.n_pairs,
    )
    extra = {}
    if balance:
        in_matched_set = np.zeros(a.size)
        in_matched_set[rows] = 1.0
        extra["balance"] = balance_table(model.design.X, a, model.names, in_matched_set)
    return _estimate(
        "psm",
        "ATT",
        fit,
        extra_warnings=_no_covariates("psm", "ATT", covs) + model.warnings,
        converged=model.converged,
        diagnostics={
            **extra,
            "pairs": m.n_pairs,
            "treated_unmatched": m.n_unmatched,
            "treated_unmatched_share": m.unmatched_share,
            "caliper": m.caliper,
            "matching": m,
            "propensity": model,
        },
    )


def naive_cox(
    df: Data | None,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str] | None = None,
    ties: str = "efron",
    shared: SharedInputs | None = None,
) -> EffectEstimate:
    """Unadjusted Cox regression on treatment only (crude, confounded contrast).

    ``covariates`` is accepted for a uniform estimator signature and ignored.
    """
    check_ties(ties)
    _, oc = _inputs(df, time, event, treatment, shared)
    fit = _fit_clean(
        oc.time,
        oc.event,
        oc.treatment[:, None].astype(np.float64),
        None,
        None,
        None,
        False,
        ties,
        1e-9,
        50,
        None,
        (treatment,),
        oc.order,
        rescale=False,
    )
    return _estimate("naive_cox", "crude", fit)


def adjusted_cox(
    df: Data | None,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    ties: str = "efron",
    design: Design | None = None,
    shared: SharedInputs | None = None,
) -> EffectEstimate:
    """Multivariable Cox regression on treatment plus covariates (conditional log-HR).

    Parameters
    ----------
    df, time, event, treatment, covariates
        As in :func:`siptw`; categorical covariates are one-hot coded.  Covariates on
        any scale are fine (columns far from unit scale are rescaled inside the fit).
    ties : {"efron", "breslow"}
    design : Design, optional
        ``design_matrix(df, covariates)`` already built (e.g.
        ``PropensityModel.design``), to skip rebuilding it.
    shared : SharedInputs, optional
        As in :func:`siptw`.
    """
    check_ties(ties)
    covs = check_covariates(covariates)
    shared, oc = _inputs(df, time, event, treatment, shared)
    a = oc.treatment
    if design is None:
        design = shared.design(covs)
    elif not isinstance(design, Design) or design.X.shape[0] != a.size:
        raise EstimatorInputError(
            f"design must be a Design with one row per patient of df ({a.size})"
        )
    check_design_columns(design.X, design.names)
    X = np.empty((a.size, design.X.shape[1] + 1))
    X[:, 0] = a
    X[:, 1:] = design.X
    fit = _fit_clean(
        oc.time,
        oc.event,
        X,
        None,
        None,
        None,
        False,
        ties,
        1e-9,
        50,
        None,
        (treatment, *design.names),
        oc.order,
    )
    return _estimate(
        "adjusted_cox",
        "conditional",
        fit,
        extra_warnings=_no_covariates("adjusted_cox", "conditional", covs),
    )
