"""Known-biased controls for the marginal hazard ratio: Cox models adjusted for the PS.

=============  ==================================================  ================
function       method                                              scored against
=============  ==================================================  ================
ps_cox         Cox on treatment + the logit PS (linear)            ATE
ps_spline_cox  Cox on treatment + a natural cubic spline of the    ATE
               logit PS (R's ``ns``, :mod:`estimators.splines`)
ps_strata_cox  Cox on treatment, stratified on PS quantile groups  ATE
               (quintiles by default)
=============  ==================================================  ================

Why they are biased for the marginal HR.  Each conditions on the propensity score, so
its treatment coefficient is a *conditional* log-HR (within levels or strata of the PS),
not the marginal one that sIPTW and matching target: the hazard ratio is
non-collapsible, so even with the PS exactly right the conditional and marginal HRs
differ whenever the covariates are prognostic (docs/design.md §3).  Stratification adds
residual confounding within the strata.  Austin (2013, Stat Med 32:2837) found both
biased for the marginal HR where matching and weighting were not; these estimators
are declared against the ATE so that a simulation study shows how far off they are.

The PS is the same logistic model sIPTW fits (``ps_method``, ``pool_rare``); with
``shared=`` it is fitted once per data set for every estimator.  The variance is
model-based (as these analyses are usually reported) or, with ``robust=True``, the
Lin-Wei sandwich; neither accounts for estimation of the PS.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .cox import _fit_clean, _sort_order
from .effects import _estimate, _inputs, _no_covariates, _propensity
from .exceptions import EstimatorInputError
from .propensity import PropensityModel
from .result import EffectEstimate
from .shared import SharedInputs
from .splines import natural_spline_basis, spline_knots
from .validation import Data, check_covariates, check_pool_rare, check_ps_method, check_ties


def _check_robust(robust: object) -> bool:
    if not isinstance(robust, bool | np.bool_):
        raise EstimatorInputError(f"robust={robust!r} is not allowed; use True or False")
    return bool(robust)


def _check_count(value: object, param: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise EstimatorInputError(f"{param}={value!r} is not allowed; use an integer >= {low}")
    return int(value)


def _ps(
    method: str,
    df: Data | None,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    ties: str,
    propensity: PropensityModel | None,
    ps_method: str,
    pool_rare: int | None,
    shared: SharedInputs | None,
):
    """Validate the common arguments; the outcome arrays and the fitted PS model."""
    check_ties(ties)
    check_ps_method(ps_method)
    check_pool_rare(pool_rare)
    covs = check_covariates(covariates)
    shared, oc = _inputs(df, time, event, treatment, shared)
    model = _propensity(shared, covs, oc.treatment, propensity, ps_method, pool_rare)
    if np.ptp(model.logit) == 0.0:
        raise EstimatorInputError(
            f"{method}: the propensity score is constant (covariates={list(covs)}); "
            "adjusting for it needs at least one covariate that varies"
        )
    return oc, model, _no_covariates(method, "ATE", covs) + model.warnings


def _adjusted_fit(
    method: str,
    oc,
    model: PropensityModel,
    columns: np.ndarray,
    names: tuple[str, ...],
    treatment: str,
    ties: str,
    robust: bool,
    warned: tuple[str, ...],
    diagnostics: dict,
) -> EffectEstimate:
    """Cox on treatment plus ``columns`` (n, k) of the PS; the treatment coefficient."""
    a = oc.treatment
    X = np.empty((a.size, columns.shape[1] + 1))
    X[:, 0] = a
    X[:, 1:] = columns
    fit = _fit_clean(
        oc.time,
        oc.event,
        X,
        None,
        None,
        None,
        robust,
        ties,
        1e-9,
        50,
        None,
        (treatment, *names),
        oc.order,
    )
    return _estimate(
        method,
        "ATE",
        fit,
        extra_warnings=warned,
        converged=model.converged,
        diagnostics={**diagnostics, "propensity": model},
    )


def ps_cox(
    df: Data | None,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    robust: bool = False,
    ties: str = "efron",
    propensity: PropensityModel | None = None,
    ps_method: str = "ml",
    pool_rare: int | None = None,
    shared: SharedInputs | None = None,
) -> EffectEstimate:
    """Cox regression on treatment and the logit of the estimated PS (a biased control).

    Estimates the log-HR conditional on the logit PS (linear in it), declared and
    scored against the marginal ATE, for which it is biased (module docstring).

    Parameters
    ----------
    df : DataFrame or mapping of column name to array
        May be None when ``shared`` is given.
    time, event, treatment : str
        Column names: follow-up (months, > 0), event (0/1), treatment (0/1).
    covariates : sequence of str
        Propensity-score covariates (at least one that varies).
    robust : bool
        Lin-Wei robust SE instead of the model-based one (default).
    ties : {"efron", "breslow"}
    propensity : PropensityModel, optional
        A PS already fitted to ``df`` on ``covariates`` (skips the fit).
    ps_method : {"ml", "firth"}
    pool_rare : int, optional
        As in :func:`~estimators.siptw`.
    shared : SharedInputs, optional
        Validated inputs (and the PS fit) shared with other estimators.

    Returns
    -------
    EffectEstimate
        ``estimand="ATE"``; ``diagnostics``: ``propensity``.
    """
    robust = _check_robust(robust)
    oc, model, warned = _ps(
        "ps_cox", df, time, event, treatment, covariates, ties, propensity, ps_method,
        pool_rare, shared,
    )  # fmt: skip
    return _adjusted_fit(
        "ps_cox", oc, model, model.logit[:, None], ("ps_logit",), treatment, ties, robust,
        warned, {},
    )  # fmt: skip


def ps_spline_cox(
    df: Data | None,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    spline_df: int = 4,
    robust: bool = False,
    ties: str = "efron",
    propensity: PropensityModel | None = None,
    ps_method: str = "ml",
    pool_rare: int | None = None,
    shared: SharedInputs | None = None,
) -> EffectEstimate:
    """Cox regression on treatment and a natural cubic spline of the logit PS (a biased
    control).

    The spline is R's ``ns(logit, df = spline_df)``: ``spline_df - 1`` interior knots at
    quantiles of the logit PS, boundary knots at its range
    (:func:`~estimators.splines.natural_spline_basis`).  Estimates a log-HR conditional
    on the PS, declared and scored against the marginal ATE (module docstring).

    Parameters
    ----------
    df, time, event, treatment, covariates, robust, ties, propensity, ps_method,
    pool_rare, shared
        As in :func:`ps_cox`.
    spline_df : int
        Degrees of freedom of the spline (columns of its basis, >= 1; 1 is linear).

    Returns
    -------
    EffectEstimate
        ``estimand="ATE"``; ``diagnostics``: ``knots`` (interior, logit scale),
        ``propensity``.
    """
    k = _check_count(spline_df, "spline_df", 1)
    robust = _check_robust(robust)
    oc, model, warned = _ps(
        "ps_spline_cox", df, time, event, treatment, covariates, ties, propensity,
        ps_method, pool_rare, shared,
    )  # fmt: skip
    basis = natural_spline_basis(model.logit, k)
    knots, _ = spline_knots(model.logit, k)
    names = tuple(f"ps_ns{j + 1}" for j in range(k))
    return _adjusted_fit(
        "ps_spline_cox", oc, model, basis, names, treatment, ties, robust, warned,
        {"knots": knots},
    )  # fmt: skip


def ps_strata(logit: np.ndarray, n_strata: int) -> np.ndarray:
    """Quantile groups of the PS, codes 0 .. (int64, shape (n,)).

    Cut points at the quantiles ``1/n_strata, ...`` of ``logit`` (R's type 7), groups
    closed on the right as R's ``cut(..., include.lowest = TRUE)``; cut points that
    coincide (tied scores) merge groups, so there may be fewer than ``n_strata``.
    """
    cuts = np.quantile(logit, np.linspace(0.0, 1.0, n_strata + 1)[1:-1])
    codes = np.searchsorted(cuts, logit, side="left")
    _, codes = np.unique(codes, return_inverse=True)
    return codes.astype(np.int64)


def ps_strata_cox(
    df: Data | None,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    n_strata: int = 5,
    robust: bool = False,
    ties: str = "efron",
    propensity: PropensityModel | None = None,
    ps_method: str = "ml",
    pool_rare: int | None = None,
    shared: SharedInputs | None = None,
) -> EffectEstimate:
    """Cox regression on treatment stratified on PS quantile groups (a biased control).

    Separate baseline hazards in each of ``n_strata`` groups of the estimated PS
    (quintiles by default, :func:`ps_strata`); one common treatment log-HR.  Declared
    and scored against the marginal ATE, for which it is biased (module docstring).

    Parameters
    ----------
    df, time, event, treatment, covariates, robust, ties, propensity, ps_method,
    pool_rare, shared
        As in :func:`ps_cox`.
    n_strata : int
        Number of PS quantile groups (>= 2).

    Returns
    -------
    EffectEstimate
        ``estimand="ATE"``; ``diagnostics``: ``strata`` (codes, shape (n,)),
        ``n_strata`` (groups formed), ``propensity``.
    """
    k = _check_count(n_strata, "n_strata", 2)
    robust = _check_robust(robust)
    oc, model, warned = _ps(
        "ps_strata_cox", df, time, event, treatment, covariates, ties, propensity,
        ps_method, pool_rare, shared,
    )  # fmt: skip
    s = ps_strata(model.logit, k)
    a = oc.treatment
    fit = _fit_clean(
        oc.time,
        oc.event,
        a[:, None].astype(np.float64),
        None,
        s,
        None,
        robust,
        ties,
        1e-9,
        50,
        None,
        (treatment,),
        _sort_order(oc.time, s),
        rescale=False,
    )
    return _estimate(
        "ps_strata_cox",
        "ATE",
        fit,
        extra_warnings=warned,
        converged=model.converged,
        diagnostics={"strata": s, "n_strata": int(s.max()) + 1, "propensity": model},
    )
