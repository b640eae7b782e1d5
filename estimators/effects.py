"""The four treatment-effect estimators, each returning an :class:`EffectEstimate`.

=============  ===========================================  ==============================
function       method                                       estimand
=============  ===========================================  ==============================
siptw          Cox on treatment, stabilized PS weights,     ATE (ATT, ATC, ATO, ATM
               robust (Lin-Wei), M-estimation or naive SE   with those weights)
psm            Cox on treatment in the 1:k matched sets     ATT (``"conditional"``
               (with or without replacement), variance      stratified on matched
               clustered on matched set, Austin-Cafri or    set)
               bootstrap
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
from dataclasses import replace as replace_fields
from typing import Any

import numpy as np

from .balance import balance_table
from .bootstrap import (
    BootstrapResult,
    bootstrap_propensity,
    siptw_bootstrap,
)
from .cox import CoxResult, _fit_clean, _sort_order, _subset_order
from .design_matrix import Design
from .exceptions import EstimatorInputError, NoCovariatesWarning
from .ipcw import (
    CensoringModel,
    IpcwFit,
    admin_times,
    check_ipcw,
    check_ipcw_options,
    fit_censoring_model,
    ipcw_cox,
)
from .matched_cox import austin_cafri_cov, matched_set_bootstrap
from .matching import Matching, _match
from .propensity import PropensityModel
from .result import EffectEstimate
from .shared import Outcome, SharedInputs, resolve_shared
from .validation import (
    Data,
    check_boot_ci,
    check_caliper,
    check_covariates,
    check_design_columns,
    check_estimand,
    check_flag,
    check_frame,
    check_match_variance,
    check_n_boot,
    check_order,
    check_pool_rare,
    check_ps_method,
    check_random_state,
    check_ratio,
    check_replace,
    check_seed,
    check_ties,
    check_trim,
    check_truncate,
    check_variance,
)
from .variance import cox_score_residuals, siptw_mestimation_se
from .weighting import (
    _ess_all,
    _weights_from_logit,
    ess_by_arm,
    kish_ess,
    trim_mask,
    weight_summary,
)


def _inputs(
    df: Data | None, time: str, event: str, treatment: str, shared: SharedInputs | None
) -> tuple[SharedInputs, Outcome]:
    """Shared inputs (built here when not given) and the validated outcome arrays."""
    shared = resolve_shared(df, treatment, shared)
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
    trim: float | Sequence[float] | None = None,
    n_boot: int = 200,
    random_state: int | np.random.Generator = 0,
    boot_ci: str = "normal",
    ipcw: bool | str = False,
    ipcw_covariates: Sequence[str] | None = None,
    ipcw_by_arm: bool = True,
    ipcw_stabilized: bool = False,
    ipcw_truncate: float | None = None,
    ipcw_entry: str | None = None,
    ipcw_cutoff: float | None = None,
) -> EffectEstimate:
    """Stabilized propensity-score-weighted Cox regression.

    Cox model on treatment only, weighted by stabilized weights of ``estimand`` (see
    :mod:`estimators.weighting`), with the robust (Lin-Wei sandwich) variance by default,
    as in the published Flatiron analysis.  The robust SE ignores estimation of the PS:
    it is conservative for ATE weights (Shu et al. 2021), not necessarily for the others;
    ``variance="mestimation"`` accounts for it (:mod:`estimators.variance`), and
    ``variance="bootstrap"`` refits the whole pipeline on ``n_boot`` resamples
    (:func:`estimators.bootstrap.siptw_bootstrap`).

    Parameters
    ----------
    df : DataFrame or mapping of column name to array
        May be None when ``shared`` is given.
    time, event, treatment : str
        Column names: follow-up (months, > 0), event (0/1), treatment (0/1).
    covariates : sequence of str
        Propensity-score covariates; ``[]`` warns (:class:`NoCovariatesWarning`): the
        estimate is then the crude contrast.
    estimand : {"ATE", "ATT", "ATC", "ATO", "ATM"}
        Weights and target population (module :mod:`estimators.weighting`).
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
    variance : {"robust", "mestimation", "naive", "bootstrap"}
        ``"robust"``: Lin-Wei sandwich of the weighted Cox fit, weights taken as known
        (default).  ``"mestimation"``: sandwich of the stacked PS, stabilization and Cox
        estimating equations (not with ``truncate``; under ``ps_method="firth"`` the ML
        score's sandwich at the Firth estimate).  ``"naive"``: model-based inverse
        information of the weighted fit, a negative control (wrong by design).
        ``"bootstrap"``: the nonparametric bootstrap of the full pipeline (PS refit,
        weights, trimming, Cox) over ``n_boot`` resamples: ``se`` is the bootstrap SE,
        the p-value its normal approximation, the interval ``boot_ci``.  Failed
        resamples are counted (:class:`BootstrapWarning`).
    trim : float or (low, high), optional
        Crump trimming: drop patients whose estimated PS is outside ``[trim, 1 - trim]``
        (or ``[low, high]``) before stabilizing; this changes the target population to
        the patients with PS in that interval.
    n_boot : int
        Bootstrap resamples (>= 2; ``variance="bootstrap"``).
    random_state : int or numpy.random.Generator
        Seed or Generator of the resamples (an int gives the same resamples on every
        call).
    boot_ci : {"normal", "percentile"}
        Bootstrap interval: ``log_hr -/+ z * se`` (default: consistent with the SE and
        p-value reported, and stable at 200 resamples, where the 2.5% and 97.5%
        percentiles rest on ~5 resamples each), or the percentile interval.
    ipcw : False or "cox"
        Inverse probability of censoring weighting (:mod:`estimators.ipcw`): ``"cox"``
        fits a Cox model of the censoring hazard and weights patient i at risk at t by
        ``w_i num_a(t-) / K_i(t-)`` (a Cox fit with time-varying weights, its own
        kernel).  Only with ``variance="robust"`` (the sandwich treats the censoring
        weights, like the IPT weights, as known).  Targets the estimand without the
        censoring the model explains (the uncensored one when it explains all of it).
    ipcw_covariates : sequence of str, optional
        Censoring-model covariates (default: ``covariates``).
    ipcw_by_arm : bool
        One censoring model per arm (default) or one pooled model with the treatment as
        a covariate.
    ipcw_stabilized : bool
        Numerator of the censoring weights: 1 (default) or the arm's marginal
        Kaplan-Meier censoring survival.  The arm-specific numerator rescales the two
        arms' risk sets differently over time, which changes the estimand of a Cox
        model when the marginal hazards are not proportional (1,000 replicates on
        ``flatiron-informative``: bias -0.026 against -0.005 unstabilised); it leaves a
        Kaplan-Meier curve unchanged.
    ipcw_truncate : float, optional
        Cap the censoring factors ``num / K`` at this percentile (in (50, 100]) of their
        values over every (patient at risk, event time) pair.
    ipcw_entry, ipcw_cutoff : str and float, optional
        Administrative censoring: the index-date column (months from a common origin,
        e.g. ``"entry_month"`` of a simulated cohort) and the data cutoff (months from
        the same origin; a scenario's ``censoring.cutoff_months``).  Censorings at
        ``cutoff - entry`` are then administrative, not modelled, and left unweighted:
        the estimand keeps the administrative censoring.  Both or neither.

    Returns
    -------
    EffectEstimate
        ``n`` and ``events`` count the patients kept (all unless trimmed); ``ess`` is the
        Kish effective sample size of the weights.  ``diagnostics``: ``balance`` (SMDs
        before/after weighting), ``ess_by_arm``, ``weights`` (summary of the kept
        patients' weights), ``analysis_weights`` (the weights, shape (n,), 0 for trimmed
        patients), ``propensity``, ``variance`` (its name), ``trimmed`` (patients dropped;
        with ``trim`` only), ``bootstrap``
        (:class:`~estimators.bootstrap.BootstrapResult`, with ``variance="bootstrap"``);
        with ``ipcw``: ``ipcw`` (the model name), ``ipcw_max_weight``,
        ``ipcw_mean_weight_last``, ``ipcw_max_factor``, ``ipcw_cap``,
        ``ipcw_censoring_coef``, ``censoring_model`` and ``se_note``.

    Raises
    ------
    EstimatorInputError
        Bad input (before any work); a trimming that leaves an arm empty.
    NoOverlapError
        ATT (ATC) with no control (treated) patient in the other arm's PS range.
    """
    check_estimand(estimand)
    bounds = check_truncate(truncate)
    check_ties(ties)
    check_ps_method(ps_method)
    check_pool_rare(pool_rare)
    check_variance(variance)
    limits = check_trim(trim)
    if variance == "mestimation" and bounds is not None:
        raise EstimatorInputError(
            f"variance='mestimation' is not allowed with truncate={truncate!r}: percentile "
            "truncation is not a smooth estimating equation; use trim= (PS thresholds) or "
            "variance='robust'"
        )
    n_boot = check_n_boot(n_boot)
    check_seed(random_state)
    check_boot_ci(boot_ci)
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
    if ipcw_model is not None and variance != "robust":
        raise EstimatorInputError(
            f"variance={variance!r} is not allowed with ipcw={ipcw!r}; use variance='robust' "
            "(the sandwich with the censoring weights taken as known)"
        )
    shared, oc = _inputs(df, time, event, treatment, shared)
    if ipcw_model is not None:  # censoring-model columns, before any fit
        check_frame(shared.df, ipcw_covariates=list(ipcw_covs), ipcw_entry=ipcw_entry)
    a = oc.treatment
    model = _propensity(shared, covs, a, propensity, ps_method, pool_rare)
    treated = a.astype(bool)

    def keep_mask() -> np.ndarray | None:
        return None if limits is None else trim_mask(model.logit, treated, limits, trim)

    def weights() -> np.ndarray:
        return _weights_from_logit(model.logit, treated, estimand, True, bounds, keep_mask())

    if propensity is None:  # the shared model: its weights are the same for every outcome
        key = ("siptw-weights", covs, ps_method, pool_rare, estimand, bounds)
        wkey = key if limits is None else (*key, limits)
        w = shared._memo(wkey, weights)
        ess = shared._memo((*wkey, "ess"), lambda: _ess_all(w, a))
    else:
        w = weights()
        ess = _ess_all(w, a)
    if limits is None:
        keep, t, e, x, wk, order = None, oc.time, oc.event, a, w, oc.order
    else:
        keep = keep_mask()
        t, e, x, wk = oc.time[keep], oc.event[keep], a[keep], w[keep]
        if not e.any():
            raise EstimatorInputError(
                f"trim={trim!r} leaves no events among the {int(keep.sum())} patients kept; "
                "a Cox fit needs at least one"
            )
        order = _sort_order(t, None)
    if ipcw_model is not None:
        design = shared.design(ipcw_covs)
        Xc = design.X if keep is None else design.X[keep]
        admin = None
        if ipcw_entry is not None:
            admin = admin_times(shared.df, ipcw_entry, float(ipcw_cutoff), oc.time)
            admin = admin if keep is None else admin[keep]
        cens = fit_censoring_model(t, e, x, Xc, design.names, ipcw_by_arm, admin)
        tv = ipcw_cox(
            t,
            e,
            x,
            x[:, None].astype(np.float64),
            wk,
            cens,
            stabilized=ipcw_stabilized,
            truncate=ipcw_truncate,
            ties=ties,
        )
        return _ipcw_estimate(
            tv, cens, ipcw_model, estimand, covs, model, w, wk, a, keep, balance, t.size, e
        )
    fit = _fit_clean(
        t,
        e,
        x[:, None].astype(np.float64),
        wk,
        None,
        None,
        variance == "robust",
        ties,
        1e-9,
        50,
        None,
        (treatment,),
        order,
        rescale=False,
    )
    if variance == "mestimation":
        resid = cox_score_residuals(t, e, x, wk, float(fit.params[0]), order, ties == "efron")
        if keep is not None:  # back to one value per patient (0 for the trimmed)
            resid_kept, resid = resid, np.zeros(a.size)
            resid[keep] = resid_kept
        se = siptw_mestimation_se(
            model.design.X,
            treated,
            model.ps,
            model.logit,
            estimand,
            True,
            keep,
            w,
            resid,
            1.0 / fit.model_se[0] ** 2,
            model.fit.cov,
        )
        fit = dataclasses.replace(fit, se=np.array([se]), cov=np.array([[se * se]]))
    diagnostics: dict[str, Any] = {}
    if balance:
        diagnostics["balance"] = balance_table(model.design.X, a, model.names, w)
        diagnostics["weights"] = weight_summary(w if keep is None else wk)
    diagnostics |= {"ess_by_arm": dict(ess[0]), "analysis_weights": w, "propensity": model}
    diagnostics["variance"] = variance
    if keep is not None:
        diagnostics["trimmed"] = int(a.size - wk.size)
    est = _estimate(
        "siptw",
        estimand,
        fit,
        ess=ess[1],
        extra_warnings=_no_covariates("siptw", estimand, covs) + model.warnings,
        converged=model.converged,
        diagnostics=diagnostics,
    )
    if variance != "bootstrap":
        return est
    if propensity is None and not isinstance(random_state, np.random.Generator):
        # the shared model and a seed: one PS refit per resample for every outcome / estimand
        key = ("siptw-boot-ps", covs, ps_method, pool_rare, n_boot, int(random_state))
        resamples = shared._memo(
            key, lambda: bootstrap_propensity(model, n_boot, check_random_state(random_state))
        )
    else:
        resamples = bootstrap_propensity(model, n_boot, check_random_state(random_state))
    boot = siptw_bootstrap(
        model,
        oc,
        estimand,
        bounds,
        ties,
        n_boot,
        estimate=est.estimate,
        resamples=resamples,
        trim=limits,
    )
    return _bootstrapped(est, boot, boot_ci)


def _ipcw_estimate(
    tv: IpcwFit,
    cens: CensoringModel,
    ipcw_model: str,
    estimand: str,
    covs: tuple[str, ...],
    model: PropensityModel,
    w: np.ndarray,
    wk: np.ndarray,
    a: np.ndarray,
    keep: np.ndarray | None,
    balance: bool,
    n: int,
    e: np.ndarray,
) -> EffectEstimate:
    """The :func:`siptw` result of a time-varying-weighted (IPCW) Cox fit."""
    diagnostics: dict[str, Any] = {}
    if balance:
        diagnostics["balance"] = balance_table(model.design.X, a, model.names, w)
        diagnostics["weights"] = weight_summary(wk)
    diagnostics |= {"ess_by_arm": ess_by_arm(w, a), "analysis_weights": w, "propensity": model}
    diagnostics["variance"] = "robust"
    diagnostics["ipcw"] = ipcw_model
    diagnostics |= tv.diagnostics
    diagnostics["censoring_model"] = cens
    diagnostics["se_note"] = (
        "robust sandwich with the IPT and censoring weights taken as known (neither the "
        "propensity nor the censoring model's estimation enters the SE)"
    )
    if keep is not None:
        diagnostics["trimmed"] = int(a.size - n)
    msgs = () if tv.converged else ("ipcw: the time-varying-weighted Cox fit did not converge",)
    return EffectEstimate.from_fit(
        method="siptw",
        estimand=estimand,
        log_hr=float(tv.params[0]),
        se=float(tv.se[0]),
        n=n,
        events=int(e.sum()),
        ess=kish_ess(w),
        converged=model.converged and tv.converged,
        warnings=_no_covariates("siptw", estimand, covs) + model.warnings + msgs,
        diagnostics=diagnostics,
    )


def _austin_cafri(
    fit: CoxResult,
    t: np.ndarray,
    e: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    strata: np.ndarray | None,
    sets: np.ndarray,
    n_sets: int,
    rows: np.ndarray,
    ties: str,
) -> tuple[CoxResult, tuple[str, ...]]:
    """``fit`` with the Austin-Cafri covariance (and a warning when it is negative)."""
    bread = np.array([[fit.model_se[0] ** 2]])
    cov = austin_cafri_cov(
        t, e, x, w, strata, sets, n_sets, rows, fit.params, bread, ties == "efron"
    )
    if cov[0, 0] >= 0.0:
        return replace_fields(fit, cov=cov, se=np.sqrt(cov.diagonal())), ()
    msg = (
        f"Austin-Cafri variance is negative ({cov[0, 0]:.3g}: the patient-clustered part is "
        "smaller than the per-row part); the SE is NaN"
    )
    return replace_fields(fit, cov=cov, se=np.array([np.nan])), (msg,)


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
    ratio: int = 1,
    replace: bool = False,
    variance: str = "cluster",
    strata: bool = False,
    n_boot: int = 200,
    boot_ci: str = "normal",
) -> EffectEstimate:
    """1:k propensity-score matching, then Cox on treatment in the matched sets.

    Greedy nearest-neighbour matching on the logit PS, with or without replacement
    (see :mod:`estimators.matching` for the exact greedy and tie rules and the
    weights).  The Cox model is fitted to one row per matched-set member (a control
    matched to several treated patients appears once per set), weighted by the
    matching weights (all 1 for 1:1 without replacement).  The defaults (1:1, no
    replacement, set-clustered SE) are the published analysis.

    Estimand: ``"ATT"`` (the marginal HR among the treated who found a match; all
    treated when none is dropped).  With ``strata=True`` the Cox model has one
    baseline hazard per matched set: the *pair-conditional* HR, conditional on the
    matched set (approximately on the PS), which is neither the marginal ATT HR nor
    the covariate-conditional HR (the HR is non-collapsible; it lies between them).
    Of the vocabulary (:mod:`estimators.estimands`) it is labelled, and scored
    against, ``"conditional"``: an HR conditional on the confounders' summary, not a
    population average; a study shows how far it is from the covariate-conditional
    truth.

    Parameters
    ----------
    df, time, event, treatment, covariates
        As in :func:`siptw`.
    caliper : float or None
        Caliper in SDs of the logit PS (default 0.2); None for no caliper.
    order : {"random", "largest", "smallest", "data"}
    random_state : int or numpy.random.Generator
        Seed for ``order="random"`` and the bootstrap resamples.  A Generator is used
        for both, in that order; with an int the resamples come from the independent
        stream ``SeedSequence(random_state).spawn(1)[0]``.
    ties : {"efron", "breslow"}
    propensity : PropensityModel, optional
    balance : bool
        Compute the balance table after matching (False skips it).
    ps_method, pool_rare, shared
        As in :func:`siptw`.
    ratio : int
        Controls per treated patient (k >= 1).
    replace : bool
        Match with replacement.
    variance : {"cluster", "austin-cafri", "bootstrap"}
        ``"cluster"``: robust sandwich clustered on matched set (for 1:1, on pair);
        ``"austin-cafri"``: clustered on both set and patient (for matching with
        replacement; without it, it equals ``"cluster"`` and is allowed);
        ``"bootstrap"``: matched-set bootstrap (see :mod:`estimators.matched_cox`).
    strata : bool
        Stratify the Cox model on matched set (pair-conditional HR, see above).
    n_boot : int
        Bootstrap resamples (>= 2; ``variance="bootstrap"`` only).
    boot_ci : {"normal", "percentile"}
        Bootstrap confidence interval: estimate +/- z SE, or the percentile interval.

    Returns
    -------
    EffectEstimate
        ``n`` and ``events`` count the analysis rows; ``ess`` is the Kish effective
        sample size of the matched patients' weights.  ``diagnostics``: ``balance``
        (SMDs before/after matching, matching-weighted), ``pairs`` (treated-control
        pairs), ``sets``, ``controls`` (distinct controls), ``treated_unmatched``,
        ``treated_unmatched_share``, ``caliper`` (logit scale), ``matching``
        (:class:`Matching`), ``cluster_se`` (the set-clustered SE), ``bootstrap``
        (:class:`~estimators.matched_cox.Bootstrap`, bootstrap only), ``propensity``.

    Raises
    ------
    NoOverlapError
        Zero matched pairs.
    """
    multiplier = check_caliper(caliper)
    check_order(order)
    check_seed(random_state)
    check_ties(ties)
    check_ps_method(ps_method)
    check_pool_rare(pool_rare)
    k = check_ratio(ratio)
    rep = check_replace(replace)
    check_match_variance(variance)
    stratify = check_flag(strata, "strata")
    n_boot = check_n_boot(n_boot)
    check_boot_ci(boot_ci)
    covs = check_covariates(covariates)
    shared, oc = _inputs(df, time, event, treatment, shared)
    a = oc.treatment
    model = _propensity(shared, covs, a, propensity, ps_method, pool_rare)

    def match() -> Matching:
        rng = check_random_state(random_state)  # made when drawn: not on a memo hit
        return _match(model.logit, a.astype(bool), multiplier, caliper, order, rng, k, rep)

    if propensity is None and not isinstance(random_state, np.random.Generator):
        # the shared model and a seed: the same pairs for every outcome
        key = ("psm-pairs", covs, ps_method, pool_rare, multiplier, order, int(random_state))
        m = shared._memo(key + ((k, rep) if (k, rep) != (1, False) else ()), match)
    else:
        m = match()
    rows, sets = m.rows_and_pairs()
    e = oc.event[rows]
    if not e.any():
        raise EstimatorInputError(
            f"no events among the {rows.size} matched patients; a Cox fit needs at least one"
        )
    t = oc.time[rows]
    x = a[rows, None].astype(np.float64)
    simple = (k, rep) == (1, False)  # every row weight exactly 1
    w = np.ones(rows.size) if simple else m.row_weights()
    s = sets if stratify else None
    fit = _fit_clean(
        t,
        e,
        x,
        None if simple else w,
        s,
        sets,
        True,
        ties,
        1e-9,
        50,
        None,
        (treatment,),
        _subset_order(oc.order, rows, a.size) if simple and s is None else _sort_order(t, s),
        rescale=False,
        n_clusters=m.n_sets,
    )
    extra: dict[str, Any] = {"cluster_se": float(fit.se[0])}
    messages: tuple[str, ...] = ()
    if variance == "austin-cafri":
        fit, messages = _austin_cafri(fit, t, e, x, w, s, sets, m.n_sets, rows, ties)
    elif variance == "bootstrap":
        boot_rng = (
            random_state
            if isinstance(random_state, np.random.Generator)
            else np.random.default_rng(np.random.SeedSequence(int(random_state)).spawn(1)[0])
        )
        boot = matched_set_bootstrap(
            t, e, x[:, 0], w, sets, m.n_sets, stratify, ties == "efron", n_boot, boot_rng
        )
        fit = replace_fields(fit, se=np.array([boot.se]), cov=np.array([[boot.se**2]]))
        extra["bootstrap"] = boot
        messages = () if boot.warning() is None else (boot.warning(),)
    unit_w = m.unit_weights(a.size) if balance or not simple else None
    if balance:
        extra["balance"] = balance_table(model.design.X, a, model.names, unit_w)
    estimand = "conditional" if stratify else "ATT"
    est = _estimate(
        "psm",
        estimand,
        fit,
        ess=float(rows.size) if simple else kish_ess(unit_w[unit_w > 0]),
        extra_warnings=_no_covariates("psm", estimand, covs) + model.warnings + messages,
        converged=model.converged,
        diagnostics={
            **extra,
            "pairs": m.n_pairs,
            "sets": m.n_sets,
            "controls": m.n_controls,
            "treated_unmatched": m.n_unmatched,
            "treated_unmatched_share": m.unmatched_share,
            "caliper": m.caliper,
            "matching": m,
            "propensity": model,
        },
    )
    if variance == "bootstrap" and boot_ci == "percentile":
        lo, hi = extra["bootstrap"].percentile_ci
        est = replace_fields(est, ci_low=lo, ci_high=hi)
    return est


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

    def treatment_and_design() -> np.ndarray:
        check_design_columns(design.X, design.names, design.ranges)
        X = np.empty((a.size, design.X.shape[1] + 1))
        X[:, 0] = a
        X[:, 1:] = design.X
        return X

    if design is None:  # the shared design: one checked matrix for every outcome
        design = shared.design(covs)
        X = shared._memo(("adjusted-X", covs), treatment_and_design)
    elif not isinstance(design, Design) or design.X.shape[0] != a.size:
        raise EstimatorInputError(
            f"design must be a Design with one row per patient of df ({a.size})"
        )
    else:
        X = treatment_and_design()
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
        ranges=design.ranges_with(0.0, 1.0),
    )
    return _estimate(
        "adjusted_cox",
        "conditional",
        fit,
        extra_warnings=_no_covariates("adjusted_cox", "conditional", covs),
    )
