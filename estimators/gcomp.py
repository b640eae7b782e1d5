"""G-computation and doubly robust (AIPTW) estimators of S(tau) and RMST(tau) differences.

=======  ===============================================  ===========================
function method                                          estimand / SE
=======  ===============================================  ===========================
gcomp    Cox outcome model on treatment + covariates,     ATE, ATT, ATC; bootstrap SE
         Breslow baseline; each patient's S_i(t | a)
         averaged over the target population
aiptw    augmented IPT- and IPC-weighted S_a(tau)         ATE; influence-function SE
         (riskRegression ``ate(estimator =
         "AIPTW,AIPCW")``)
=======  ===============================================  ===========================

**G-formula.**  A Cox model ``lambda(t | a, x) = lambda_0(t) exp(b a + x' g)`` is fitted
(Breslow ties by default) and ``Lambda_0`` is Breslow's estimator
``Lambda_0(t) = sum_{u_k <= t} d_k / sum_{T_j >= u_k} exp(lp_j)`` over the distinct event
times ``u_k``.  Then ``S_i(t | a) = exp(-Lambda_0(t) exp(b a + x_i' g))`` and the
population curve ``S_a(t)`` is the mean of ``S_i(t | a)`` over everyone (ATE), the treated
(ATT) or the controls (ATC).  ``surv_diff = S_1(tau) - S_0(tau)``; ``rmst_diff`` integrates
both averaged step curves from 0 to ``tau`` (months).  SE: nonparametric bootstrap (rows
resampled, Cox model refitted, seeded).

**AIPTW** (ATE, ``surv_diff`` only).  With ``pi_i`` the logistic propensity score
(``pi_a`` = probability of arm ``a``), an outcome Cox model as above giving
``F_i(t | a) = 1 - S_i(t | a)``, and a Cox model for the censoring hazard on treatment +
covariates giving ``G_i(t)`` (Breslow baseline), the risk ``F_a(tau)`` is estimated by::

    F_a = 1/n sum_i [ F_i(tau|a) + 1(A_i=a)/pi_a(X_i) ( Delta_i 1(T_i <= tau) / G_i(T_i-)
                      - F_i(tau|a)
                      + sum_{u_k <= min(T_i,tau)} (F_i(tau|a) - F_i(u_k|a))
                        / (S_i(u_k-|a) G_i(u_k-)) dM^C_i(u_k) ) ]

over the distinct censoring times ``u_k``, with ``dM^C_i(u) = dN^C_i(u) - 1(T_i >= u)
dLambda^C_i(u)`` the censoring martingale increment, and ``S_a(tau) = 1 - F_a``.  This is
riskRegression's ``ate(estimator = "AIPTW,AIPCW")`` (Ozenne et al. 2020, Biometrical
Journal 62:751) with the same left limits; riskRegression 2022.11.28 runs the sum over
the *sorted censoring times with ties repeated* (``G`` at the preceding grid point), so
tied censoring times count their martingale increment once per tie -
``censoring_grid="riskregression"`` reproduces it (to 1e-10 on GBSG2; the default grid
differs from it by up to 6e-4 there).  The SE is ``sqrt(sum_i IF_i^2) / n`` with ``IF_i``
the bracket above minus ``F_a`` (its efficient influence function): the nuisance
models are treated as known, riskRegression's ``known.nuisance = TRUE``.  R's default adds
the terms of the three nuisance fits; on GBSG2 the two SEs differ by about 1-2 % (the
tests record both).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from ._gcomp_kernels import _aipcw_augmentation
from .bootstrap import draw_resamples
from .cox import _fit_clean
from .effects import _inputs, _no_covariates, _propensity
from .exceptions import BootstrapWarning, EstimatorInputError
from .km_effects import check_horizon, check_measure
from .result import EffectEstimate
from .shared import SharedInputs
from .survival import breslow_cumhaz
from .validation import (
    Data,
    check_covariates,
    check_probability,
    check_random_state,
    check_ties,
)

__all__ = [
    "AIPTW_CENSORING_GRIDS",
    "AIPTW_MEASURES",
    "GCOMP_ESTIMANDS",
    "aiptw",
    "breslow_baseline",
    "gcomp",
]

GCOMP_ESTIMANDS: tuple[str, ...] = ("ATE", "ATT", "ATC")
"""Populations :func:`gcomp` averages over."""

_ARM = ("control", "treated")


def breslow_baseline(
    time: np.ndarray, event: np.ndarray, lp: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Breslow's cumulative baseline hazard at the distinct event times
    (:func:`estimators.survival.breslow_cumhaz` of ``exp(lp)``).

    Parameters
    ----------
    time : ndarray, shape (n,)
        Follow-up, months.
    event : ndarray, shape (n,)
        1 = event, 0 = censored.
    lp : ndarray, shape (n,)
        Linear predictor ``x_i' beta`` of the fitted Cox model.

    Returns
    -------
    times : ndarray, shape (k,)
        Distinct event times, ascending (months).
    cumhaz : ndarray, shape (k,)
        ``Lambda_0`` at ``times`` for ``lp = 0``.
    """
    return breslow_cumhaz(time, event, np.exp(lp))


def _step(times: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Right-continuous step function (0 before ``times[0]``) evaluated at ``t``."""
    k = np.searchsorted(times, t, side="right")
    return np.where(k > 0, values[np.maximum(k - 1, 0)], 0.0)


def _check_follow_up(time: np.ndarray, a: np.ndarray, tau: float, measure: str) -> None:
    for g in (0, 1):
        last = float(time[a == g].max())
        if tau > last:
            raise EstimatorInputError(
                f"horizon={tau:g} is not allowed: it is beyond the last follow-up of the "
                f"{_ARM[g]} arm ({last:g} months), where the {measure} is not identifiable. "
                f"Use a horizon <= {last:g}"
            )


def _cox(time, event, X, ties, names):
    return _fit_clean(time, event, X, None, None, None, False, ties, 1e-9, 50, None, names)


def _gformula(
    time: np.ndarray,
    event: np.ndarray,
    a: np.ndarray,
    Z: np.ndarray,
    pop: np.ndarray,
    tau: float,
    rmst: bool,
    ties: str,
    names: tuple[str, ...],
) -> tuple[float, float, bool]:
    """Population-averaged functional of arm 1 and arm 0, and the fit's convergence."""
    X = np.column_stack([a.astype(np.float64), Z])
    fit = _cox(time, event, X, ties, names)
    beta = fit.params
    lp = Z @ beta[1:]
    lp = lp - lp.mean()  # any centring: S_i(t | a) does not depend on it
    u, H = breslow_baseline(time, event, lp + beta[0] * a)
    if rmst:
        keep = u < tau
        knots = np.concatenate([[0.0], u[keep]])
        widths = np.diff(np.concatenate([knots, [tau]]))
        Hk = np.concatenate([[0.0], H[keep]])
    else:
        Hk = np.array([_step(u, H, np.array([tau]))[0]])
    out = []
    for arm in (1, 0):
        risk = np.exp(lp[pop] + beta[0] * arm)
        curve = np.exp(-np.outer(risk, Hk)).mean(axis=0)
        out.append(float(curve @ widths) if rmst else float(curve[0]))
    return out[0], out[1], fit.converged


def gcomp(
    df: Data | None,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    *,
    measure: str = "rmst_diff",
    horizon: float = 24.0,
    estimand: str = "ATE",
    variance: str = "bootstrap",
    n_boot: int = 200,
    random_state: int | np.random.Generator = 0,
    ties: str = "breslow",
    alpha: float = 0.05,
    shared: SharedInputs | None = None,
) -> EffectEstimate:
    """G-computation (Cox outcome model, Breslow baseline) of an RMST or S(tau) difference.

    Parameters
    ----------
    df : DataFrame or mapping of column name to array
        May be None when ``shared`` is given.
    time, event, treatment : str
        Follow-up (months, > 0), event (0/1), treatment (0/1) columns.
    covariates : sequence of str
        Outcome-model covariates (categoricals one-hot coded), besides the treatment.
    measure : {"rmst_diff", "surv_diff"}
    horizon : float
        ``tau``, months, > 0 and within both arms' follow-up.
    estimand : {"ATE", "ATT", "ATC"}
        Population the predicted curves are averaged over.
    variance : {"bootstrap"}
        Nonparametric bootstrap SE.
    n_boot : int
        Bootstrap resamples (>= 2); 0 skips the bootstrap (SE NaN).
    random_state : int or numpy.random.Generator
        Seed of the bootstrap.
    ties : {"breslow", "efron"}
        Ties of the Cox fit (the baseline hazard is Breslow's either way).
    alpha : float
        The CI has level ``1 - alpha``.
    shared : SharedInputs, optional

    Returns
    -------
    EffectEstimate
        ``diagnostics``: ``treated`` / ``control`` (each arm's S(tau) or RMST),
        ``n_boot``, ``n_failed``, ``n_flagged`` (resamples whose outcome fit was flagged
        not converged, e.g. a covariate level without events: their finite estimates are
        kept, like the point estimate's), ``boot_estimates`` (ndarray, shape (n_boot,),
        NaN where a resample failed).
    """
    check_measure(measure)
    tau = check_horizon(horizon)
    if estimand not in GCOMP_ESTIMANDS:
        raise EstimatorInputError(
            f"estimand={estimand!r} is not allowed; use one of {GCOMP_ESTIMANDS} (gcomp)"
        )
    if variance != "bootstrap":
        raise EstimatorInputError(f"variance={variance!r} is not allowed; use 'bootstrap'")
    if (
        isinstance(n_boot, bool)
        or not isinstance(n_boot, int | np.integer)
        or n_boot < 0
        or (n_boot == 1)
    ):
        raise EstimatorInputError(f"n_boot={n_boot!r} is not allowed; give 0 or an int >= 2")
    rng = check_random_state(random_state)
    check_ties(ties)
    alpha = check_probability(alpha, "alpha", open_interval=True)
    covs = check_covariates(covariates)
    shared, oc = _inputs(df, time, event, treatment, shared)
    a = oc.treatment
    _check_follow_up(oc.time, a, tau, measure)
    Z = shared.design(covs).X if covs else np.empty((a.size, 0))
    names = (treatment, *shared.design(covs).names) if covs else (treatment,)
    rmst = measure == "rmst_diff"

    def population(arm: np.ndarray) -> np.ndarray:
        if estimand == "ATE":
            return np.ones(arm.size, dtype=bool)
        return arm == (1 if estimand == "ATT" else 0)

    s1, s0, converged = _gformula(oc.time, oc.event, a, Z, population(a), tau, rmst, ties, names)
    est = s1 - s0
    boot = np.full(int(n_boot), math.nan)
    n_flagged = 0
    for b, idx in enumerate(draw_resamples(a.size, int(n_boot), rng)):
        ab = a[idx]
        try:
            _check_follow_up(oc.time[idx], ab, tau, measure)
            if ab.min() == ab.max() or oc.event[idx].sum() == 0:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                b1, b0, ok = _gformula(
                    oc.time[idx],
                    oc.event[idx],
                    ab,
                    Z[idx],
                    population(ab),
                    tau,
                    rmst,
                    ties,
                    names,
                )
        except EstimatorInputError:
            continue
        # a flagged outcome fit (a diverging coefficient: a covariate level without
        # events) still gives finite predictions; kept, as the point estimate's is
        if math.isfinite(b1 - b0):
            boot[b] = b1 - b0
            n_flagged += not ok
    good = boot[np.isfinite(boot)]
    n_failed = int(n_boot) - good.size
    warn = list(_no_covariates("gcomp", estimand, covs))
    if n_failed:
        msg = f"gcomp: {n_failed} of {n_boot} bootstrap resamples failed and are excluded"
        warnings.warn(msg, BootstrapWarning, stacklevel=2)
        warn.append(msg)
    if n_flagged:
        msg = (
            f"gcomp: the outcome model was flagged (not converged) in {n_flagged} of "
            f"{n_boot} bootstrap resamples; their finite estimates are kept"
        )
        warnings.warn(msg, BootstrapWarning, stacklevel=2)
        warn.append(msg)
    se = float(good.std(ddof=1)) if good.size >= 2 else math.nan
    return EffectEstimate.from_fit(
        "gcomp",
        estimand,
        estimate=est,
        se=se,
        n=a.size,
        events=int(oc.event.sum()),
        converged=converged,
        warnings=tuple(warn),
        diagnostics={
            "treated": s1,
            "control": s0,
            "n_boot": int(n_boot),
            "n_failed": n_failed,
            "n_flagged": n_flagged,
            "boot_estimates": boot,
        },
        alpha=alpha,
        measure=measure,
        horizon=tau,
    )


AIPTW_CENSORING_GRIDS: tuple[str, ...] = ("unique", "riskregression")
AIPTW_MEASURES: tuple[str, ...] = ("surv_diff",)
"""The measure :func:`aiptw` estimates: the S(tau) difference."""
""":func:`aiptw` grids of the censoring integral: distinct censoring times (default) or
riskRegression 2022.11's sorted censoring times with ties repeated."""


def _model_covariates(covariates: object, model: str) -> tuple[str, ...]:
    """``ps_covariates`` / ``outcome_covariates`` of :func:`aiptw`: distinct column names."""
    try:
        return check_covariates(covariates)
    except EstimatorInputError as exc:
        raise EstimatorInputError(f"{model}_covariates: {exc}") from None


def _left(times: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Left limit at ``t`` of the right-continuous step function of :func:`_step`."""
    k = np.searchsorted(times, t, side="left")
    return np.where(k > 0, values[np.maximum(k - 1, 0)], 0.0)


def aiptw(
    df: Data | None,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    *,
    measure: str = "surv_diff",
    horizon: float = 24.0,
    estimand: str = "ATE",
    variance: str = "if",
    censoring_grid: str = "unique",
    ties: str = "breslow",
    ps_method: str = "ml",
    alpha: float = 0.05,
    shared: SharedInputs | None = None,
    ps_covariates: Sequence[str] | None = None,
    outcome_covariates: Sequence[str] | None = None,
) -> EffectEstimate:
    """Doubly robust AIPTW (with AIPCW for censoring) difference S_1(tau) - S_0(tau), ATE.

    Parameters
    ----------
    df, time, event, treatment, covariates
        As in :func:`gcomp`; the covariates of the censoring Cox model (with the
        treatment), and of the propensity score (logistic) and the outcome Cox model
        unless ``ps_covariates`` / ``outcome_covariates`` say otherwise.
    measure : {"surv_diff"}
    horizon : float
        ``tau``, months, > 0 and within both arms' follow-up.
    estimand : {"ATE"}
    variance : {"if"}
        Influence-function SE with the nuisance models taken as known (module notes).
    censoring_grid : {"unique", "riskregression"}
        Points of the censoring-martingale integral: the distinct censoring times
        (default, the estimator of the module notes) or, to reproduce riskRegression
        2022.11.28 exactly, every censoring time with ties repeated, ``G`` taken at the
        preceding grid point (with tied censoring times this counts the martingale
        increment once per tie; on GBSG2 the two differ by up to 6e-4).
    ties : {"breslow", "efron"}
        Ties of both Cox fits (baselines are Breslow's).
    ps_method : {"ml", "firth"}
    alpha : float
    shared : SharedInputs, optional
    ps_covariates, outcome_covariates : sequence of str, optional
        Covariates of the propensity model and of the outcome Cox model (default
        ``covariates``), to study misspecification: the estimate stays consistent when
        either model is correct (doubly robust), not when both are wrong.  Each a list of
        distinct column names of ``df``; ``[]`` fits that model on the intercept (PS) or
        the treatment alone (outcome).

    Returns
    -------
    EffectEstimate
        ``diagnostics``: ``treated`` / ``control`` (each arm's S(tau)), ``influence``
        (ndarray, shape (n,), the influence values of the difference; SE is
        ``sqrt(sum IF^2) / n``), ``propensity``.
    """
    if measure not in AIPTW_MEASURES:
        check_measure(measure)
        raise EstimatorInputError(
            f"measure={measure!r} is not allowed; use 'surv_diff' (aiptw estimates S(tau))"
        )
    tau = check_horizon(horizon)
    if estimand != "ATE":
        raise EstimatorInputError(f"estimand={estimand!r} is not allowed; use 'ATE' (aiptw)")
    if variance != "if":
        raise EstimatorInputError(f"variance={variance!r} is not allowed; use 'if'")
    if censoring_grid not in AIPTW_CENSORING_GRIDS:
        raise EstimatorInputError(
            f"censoring_grid={censoring_grid!r} is not allowed; use one of {AIPTW_CENSORING_GRIDS}"
        )
    check_ties(ties)
    alpha = check_probability(alpha, "alpha", open_interval=True)
    covs = check_covariates(covariates)
    ps_covs = covs if ps_covariates is None else _model_covariates(ps_covariates, "ps")
    out_covs = (
        covs if outcome_covariates is None else _model_covariates(outcome_covariates, "outcome")
    )
    shared, oc = _inputs(df, time, event, treatment, shared)
    for model_name, names_ in (("ps", ps_covs), ("outcome", out_covs)):
        missing = [c for c in names_ if c not in shared.df]
        if missing:
            raise EstimatorInputError(
                f"{model_name}_covariates: {missing} are not columns of df; columns are "
                f"{list(shared.df)}"
            )
    a = oc.treatment
    T, D = oc.time, oc.event
    _check_follow_up(T, a, tau, measure)
    if D.min() == 1:
        raise EstimatorInputError(
            "event has no censored rows; aiptw needs a censoring model (use gcomp)"
        )
    model = _propensity(shared, ps_covs, a, None, ps_method, None)

    def cox_design(names_: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """(covariate matrix, with the treatment first, column names) of a Cox model."""
        design = shared.design(names_) if names_ else None
        Z_ = design.X if design is not None else np.empty((a.size, 0))
        labels = (treatment, *design.names) if design is not None else (treatment,)
        return Z_, np.column_stack([a.astype(np.float64), Z_]), labels

    Z, X, names = cox_design(covs)
    Zo, Xo, names_o = (Z, X, names) if out_covs == covs else cox_design(out_covs)
    outcome = _cox(T, D, Xo, ties, names_o)
    censor = _cox(T, (1 - D).astype(np.int8), X, ties, names)
    lp = Zo @ outcome.params[1:]
    shift = lp.mean()
    u, H = breslow_baseline(T, D, lp - shift + outcome.params[0] * a)
    lpc = X @ censor.params
    lpc = lpc - lpc.mean()
    c, Hc = breslow_baseline(T, (1 - D).astype(np.int8), lpc)
    rc = np.exp(lpc)
    if censoring_grid == "unique":
        ck = c[c <= tau]
        g_at = _left(c, Hc, ck)
    else:
        ck = np.sort(T[D == 0])
        ck = ck[ck <= tau]
        g_at = np.concatenate([[0.0], _step(c, Hc, ck[:-1])])
    dHc = _step(c, Hc, ck) - _left(c, Hc, ck)
    ipcw = D * (T <= tau) / np.exp(-_left(c, Hc, T) * rc)
    H_tau = float(_step(u, H, np.array([tau]))[0])
    censored = (D == 0).astype(np.int8)
    H_at, H_before = _step(u, H, ck), _left(u, H, ck)
    e = model.ps
    surv, influence = {}, {}
    for arm in (1, 0):
        r = np.exp(lp - shift + outcome.params[0] * arm)
        F_tau = 1.0 - np.exp(-r * H_tau)
        aug = _aipcw_augmentation(
            T, censored, np.flatnonzero(a == arm), r, rc, ck, dHc, g_at, H_at, H_before, H_tau
        )
        w = (a == arm) / (e if arm == 1 else 1.0 - e)
        term = F_tau + w * (ipcw - F_tau + aug)
        risk = float(term.mean())
        surv[arm] = 1.0 - risk
        influence[arm] = -(term - risk)
    phi = influence[1] - influence[0]
    n = a.size
    se = float(np.sqrt(phi @ phi)) / n
    return EffectEstimate.from_fit(
        "aiptw",
        "ATE",
        estimate=surv[1] - surv[0],
        se=se,
        n=n,
        events=int(D.sum()),
        converged=outcome.converged and censor.converged and model.converged,
        warnings=_no_covariates("aiptw", "ATE", covs + ps_covs + out_covs) + model.warnings,
        diagnostics={
            "treated": surv[1],
            "control": surv[0],
            "influence": phi,
            "propensity": model,
        },
        alpha=alpha,
        measure="surv_diff",
        horizon=tau,
    )
