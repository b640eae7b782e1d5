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

For speed in simulation studies, fit the propensity score once per data set with
:func:`fit_propensity` and pass it as ``propensity=`` to :func:`siptw` and
:func:`psm` (and its ``design`` to :func:`adjusted_cox`), for every outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._validation import check_events, check_frame, check_times, check_treatment, float_column
from .balance import balance_table
from .cox import TIES, CoxResult, fit_cox_arrays
from .design_matrix import Design, design_matrix
from .exceptions import EstimatorInputError
from .matching import check_caliper, check_order, check_random_state, match_pairs
from .propensity import PropensityModel, fit_propensity
from .result import EffectEstimate
from .weighting import (
    check_estimand,
    check_truncate,
    ess_by_arm,
    iptw_weights_from_logit,
    kish_ess,
    weight_summary,
)


def _check_ties(ties: str) -> None:
    if ties not in TIES:
        raise EstimatorInputError(f"ties={ties!r} is not allowed; use one of {TIES}")


def _outcome(
    df: pd.DataFrame, time: str, event: str, treatment: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated time (months, > 0), event (0/1, >= 1 event) and treatment (0/1, 2 arms)."""
    check_frame(df, time=time, event=event, treatment=treatment)
    t = check_times(float_column(df, time, "time"), "time")
    e = check_events(float_column(df, event, "event"), "event")
    a = check_treatment(float_column(df, treatment, "treatment"), "treatment")
    return t, e, a


def _propensity(
    df: pd.DataFrame,
    treatment: str,
    covariates: Sequence[str],
    a: np.ndarray,
    propensity: PropensityModel | None,
) -> PropensityModel:
    """Fit the PS, or check that a precomputed one belongs to these data."""
    if propensity is None:
        return fit_propensity(df, treatment, covariates)
    if not isinstance(propensity, PropensityModel):
        raise EstimatorInputError(
            f"propensity must be a PropensityModel from fit_propensity, got "
            f"{type(propensity).__name__}"
        )
    if tuple(covariates) != propensity.covariates:
        raise EstimatorInputError(
            f"propensity was fitted on covariates {list(propensity.covariates)}, not "
            f"{list(covariates)}"
        )
    if propensity.treatment.shape != a.shape or not np.array_equal(propensity.treatment, a):
        raise EstimatorInputError(
            f"propensity was fitted to a different treatment vector (or data set) than "
            f"treatment={treatment!r} of df ({propensity.treatment.size} vs {a.size} rows)"
        )
    return propensity


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
    df: pd.DataFrame,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    estimand: str = "ATE",
    truncate: Sequence[float] | None = None,
    ties: str = "efron",
    propensity: PropensityModel | None = None,
    balance: bool = True,
) -> EffectEstimate:
    """Stabilized inverse-probability-of-treatment-weighted Cox regression.

    Cox model on treatment only, weighted by stabilized IPT weights (see
    :mod:`estimators.weighting`), with the robust (Lin-Wei sandwich) variance, as in
    the published Flatiron analysis.  The robust SE ignores estimation of the PS and
    is conservative for the ATE.

    Parameters
    ----------
    df : DataFrame
    time, event, treatment : str
        Column names: follow-up (months, > 0), event (0/1), treatment (0/1).
    covariates : sequence of str
        Propensity-score covariates.
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

    Returns
    -------
    EffectEstimate
        ``ess`` is the Kish effective sample size of the weights.  ``diagnostics``:
        ``balance`` (SMDs before/after weighting), ``ess_by_arm``, ``weights``
        (summary), ``analysis_weights`` (the weights, shape (n,)), ``propensity``.
    """
    check_estimand(estimand)
    check_truncate(truncate)
    _check_ties(ties)
    t, e, a = _outcome(df, time, event, treatment)
    model = _propensity(df, treatment, covariates, a, propensity)
    w = iptw_weights_from_logit(model.logit, a, estimand, True, truncate)
    fit = fit_cox_arrays(t, e, a[:, None], weights=w, robust=True, ties=ties)
    return _estimate(
        "siptw",
        estimand,
        fit,
        ess=kish_ess(w),
        extra_warnings=model.warnings,
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


def psm(
    df: pd.DataFrame,
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
    check_caliper(caliper)
    check_order(order)
    check_random_state(random_state)
    _check_ties(ties)
    t, e, a = _outcome(df, time, event, treatment)
    model = _propensity(df, treatment, covariates, a, propensity)
    m = match_pairs(model.logit, a, caliper=caliper, order=order, random_state=random_state)
    rows, pair = m.rows_and_pairs()
    if not e[rows].any():
        raise EstimatorInputError(
            f"no events among the {rows.size} matched patients; a Cox fit needs at least one"
        )
    fit = fit_cox_arrays(t[rows], e[rows], a[rows, None], cluster=pair, ties=ties)
    extra = {}
    if balance:
        in_matched_set = np.zeros(a.size)
        in_matched_set[rows] = 1.0
        extra["balance"] = balance_table(model.design.X, a, model.names, in_matched_set)
    return _estimate(
        "psm",
        "ATT",
        fit,
        extra_warnings=model.warnings,
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
    df: pd.DataFrame,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str] | None = None,
    ties: str = "efron",
) -> EffectEstimate:
    """Unadjusted Cox regression on treatment only (crude, confounded contrast).

    ``covariates`` is accepted for a uniform estimator signature and ignored.
    """
    _check_ties(ties)
    t, e, a = _outcome(df, time, event, treatment)
    return _estimate("naive_cox", "crude", fit_cox_arrays(t, e, a[:, None], ties=ties))


def adjusted_cox(
    df: pd.DataFrame,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    ties: str = "efron",
    design: Design | None = None,
) -> EffectEstimate:
    """Multivariable Cox regression on treatment plus covariates (conditional log-HR).

    Parameters
    ----------
    df, time, event, treatment, covariates
        As in :func:`siptw`; categorical covariates are one-hot coded.
    ties : {"efron", "breslow"}
    design : Design, optional
        ``design_matrix(df, covariates)`` already built (e.g.
        ``PropensityModel.design``), to skip rebuilding it.
    """
    _check_ties(ties)
    t, e, a = _outcome(df, time, event, treatment)
    if design is None:
        design = design_matrix(df, covariates)
    elif not isinstance(design, Design) or design.X.shape[0] != a.size:
        raise EstimatorInputError(
            f"design must be a Design with one row per patient of df ({a.size})"
        )
    constant = np.flatnonzero(design.X.min(axis=0) == design.X.max(axis=0))
    if constant.size:
        raise EstimatorInputError(
            f"covariate column(s) {[design.names[j] for j in constant]} are constant; "
            "drop them: a constant has no coefficient in a Cox model"
        )
    X = np.empty((a.size, design.X.shape[1] + 1))
    X[:, 0] = a
    X[:, 1:] = design.X
    fit = fit_cox_arrays(t, e, X, ties=ties, names=(treatment, *design.names))
    return _estimate("adjusted_cox", "conditional", fit)
