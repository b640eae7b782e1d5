"""Estimators of the effect of a treatment *switch* during follow-up (time-varying
treatment), from one row per patient with the switch time.

Every estimator has the standard signature ``func(df, time, event, treatment,
covariates, **options)`` where ``treatment`` names the **switch time** column (months
from index; NaN = no switch observed before the end of follow-up) and builds what it
needs (the (start, stop] long frame, clones) internally:

``ever_switched_cox``
    Cox model of the outcome on "ever switched" plus covariates: the naive analysis.
    Switchers are credited with the time before their switch, during which they could
    not die *as switchers* (immortal time), so the switch looks protective.
``td_cox``
    Time-dependent Cox model on the (start, stop] long frame (:func:`counting_process`):
    the switch indicator turns on at the switch.  Consistent for the conditional switch
    log-HR when the covariates that drive switching and death are adjusted for.
``landmark_cox``
    Switch status at a landmark time, among patients alive and uncensored there, Cox
    model of the time from the landmark.  Removes immortal time; later switches of the
    not-yet-switched dilute the contrast unless ``censor_later_switch=True`` censors
    them at their switch.
``ccw``
    Clone-censor-weight for the strategies "switch within ``grace`` months" versus
    "never switch": survival difference or RMST difference at a horizon.

All times are in months.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._switching_kernels import _tv_at_risk
from .cox import CoxResult, fit_cox_arrays
from .design_matrix import design_matrix
from .exceptions import EstimatorInputError, EstimatorWarning
from .propensity import fit_logistic
from .result import EffectEstimate
from .survival import breslow_cumhaz
from .validation import (
    check_covariates,
    check_events,
    check_frame,
    check_n_boot,
    check_random_state,
    check_times,
    float_column,
    raw_float_column,
)

CCW_MEASURES: tuple[str, ...] = ("surv_diff", "rmst_diff")
SWITCH_ESTIMATORS: tuple[str, ...] = ("ever_switched_cox", "td_cox", "landmark_cox", "ccw")
"""Registry names of this module's estimators (:mod:`estimators.registry`)."""
"""Effect measures :func:`ccw` reports (strategy "switch within grace" minus "never")."""


@dataclass(frozen=True)
class SwitchData:
    """Validated arrays of a one-row-per-patient switching cohort.

    Attributes
    ----------
    time : ndarray (n,)
        Follow-up, months (> 0).
    event : ndarray (n,) int8
        1 = event.
    switch : ndarray (n,)
        Switch time in (0, time), months; NaN = no switch observed.
    X : ndarray (n, p)
        Design matrix of the covariates (no intercept).
    names : tuple of str
        Its column names.
    """

    time: np.ndarray
    event: np.ndarray
    switch: np.ndarray
    X: np.ndarray
    names: tuple[str, ...]

    @property
    def switched(self) -> np.ndarray:
        """1 = switch observed, shape (n,) float."""
        return (~np.isnan(self.switch)).astype(np.float64)

    def take(self, idx: np.ndarray) -> SwitchData:
        """The rows ``idx`` (a bootstrap resample)."""
        return SwitchData(
            self.time[idx], self.event[idx], self.switch[idx], self.X[idx], self.names
        )


def switch_data(
    df: pd.DataFrame | dict, time: str, event: str, treatment: str, covariates: Sequence[str]
) -> SwitchData:
    """Validate a switching cohort (see the module docstring) into :class:`SwitchData`.

    Raises
    ------
    EstimatorInputError
        A missing column, a time not finite and > 0, an event not 0/1 (or no event), or a
        switch time not in ``(0, time)`` (NaN = no switch), naming the first bad row.
    """
    covs = check_covariates(covariates)
    check_frame(df, time=time, event=event, treatment=treatment, covariates=list(covs))
    t = check_times(float_column(df, time, "time"), f"time={time!r}")
    e = check_events(float_column(df, event, "event"), f"event={event!r}")
    s = raw_float_column(df, treatment, "treatment")
    has = ~np.isnan(s)
    bad = has & ~((s > 0) & (s < t))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise EstimatorInputError(
            f"treatment={treatment!r} (the switch time) is {s[i]!r} at position {i}, with "
            f"{time}={t[i]!r}: a switch time must be in (0, {time}), months, or NaN for no "
            f"switch ({int(bad.sum())} bad row(s))"
        )
    if covs:
        d = design_matrix(df, covs)
        X, names = d.X, d.names
    else:
        X, names = np.zeros((t.size, 0)), ()
    return SwitchData(t, e, s, X, tuple(names))


def counting_process(
    df: pd.DataFrame,
    time: str = "os_months",
    event: str = "os_event",
    treatment: str = "switch_months",
    covariates: Sequence[str] = (),
) -> pd.DataFrame:
    """The (start, stop] long frame of a one-row-per-patient switching cohort.

    A patient who switched at ``s`` gets rows ``(0, s]`` (``switched_now = 0``, no
    event) and ``(s, time]`` (``switched_now = 1``, the patient's event); one who did
    not switch gets ``(0, time]``.

    Returns
    -------
    DataFrame
        ``id`` (row position in ``df``), ``start``, ``stop``, ``event``,
        ``switched_now`` and ``covariates``, ordered by (id, start).
    """
    sd = switch_data(df, time, event, treatment, ())
    rows, start, stop, ev, now = _long(sd)
    out = pd.DataFrame(
        {"id": rows, "start": start, "stop": stop, "event": ev.astype(np.int8),
         "switched_now": now.astype(np.int8)}
    )  # fmt: skip
    for c in check_covariates(covariates):
        col = df[c]
        out[c] = col.array.take(rows) if isinstance(col, pd.Series) else np.asarray(col)[rows]
    return out


def _long(sd: SwitchData) -> tuple[np.ndarray, ...]:
    """(id, start, stop, event, switched_now) of the long frame, ordered by (id, start)."""
    n = sd.time.size
    has = ~np.isnan(sd.switch)
    rows = np.concatenate([np.arange(n), np.flatnonzero(has)])
    first = np.arange(rows.size) < n
    start = np.where(first, 0.0, sd.switch[rows])
    stop = np.where(first & has[rows], sd.switch[rows], sd.time[rows])
    ev = np.where(first & has[rows], 0.0, sd.event[rows])
    order = np.lexsort((start, rows))
    return rows[order], start[order], stop[order], ev[order], (~first)[order].astype(float)


def _cox_estimate(method: str, fit: CoxResult, n: int, events: int, warn=()) -> EffectEstimate:
    if not np.isfinite(fit.params[0]):
        return EffectEstimate.failed(method, "conditional", "the Cox fit did not converge")
    return EffectEstimate.from_fit(
        method,
        "conditional",
        log_hr=float(fit.params[0]),
        se=float(fit.se[0]),
        n=n,
        events=events,
        converged=fit.converged_for(0),
        warnings=(*fit.warnings, *warn),
    )


def ever_switched_cox(
    df: pd.DataFrame | dict,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
) -> EffectEstimate:
    """Naive Cox model on "ever switched" (a baseline indicator) plus ``covariates``.

    Biased: a switcher's time before the switch is counted as switched time
    (immortal-time bias), and the estimate is labelled ``conditional`` because that is
    what it claims to estimate.
    """
    sd = switch_data(df, time, event, treatment, covariates)
    X = np.column_stack([sd.switched, sd.X])
    fit = fit_cox_arrays(sd.time, sd.event, X, names=("switched", *sd.names))
    return _cox_estimate("ever_switched_cox", fit, sd.time.size, int(sd.event.sum()))


def td_cox(
    df: pd.DataFrame | dict,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    robust: bool = True,
) -> EffectEstimate:
    """Time-dependent Cox model: switch indicator on from the switch, plus ``covariates``.

    Fitted on the (start, stop] long frame (:func:`counting_process`); ``robust``: the
    sandwich variance clustered on the patient (R ``coxph(Surv(start, stop, event) ~
    switched_now + ..., cluster = id)``), else model-based.
    """
    if not isinstance(robust, bool):
        raise EstimatorInputError(f"robust={robust!r} is not allowed; use True or False")
    sd = switch_data(df, time, event, treatment, covariates)
    rows, start, stop, ev, now = _long(sd)
    X = np.column_stack([now, sd.X[rows]])
    fit = fit_cox_arrays(
        stop,
        ev,
        X,
        entry=start,
        cluster=rows if robust else None,
        ids=rows,
        names=("switched_now", *sd.names),
    )
    return _cox_estimate("td_cox", fit, sd.time.size, int(sd.event.sum()))


def _check_months(x: object, param: str) -> float:
    if not (isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x) and x > 0):
        raise EstimatorInputError(
            f"{param}={x!r} is not allowed; it must be a finite number of months > 0"
        )
    return float(x)


def landmark_cox(
    df: pd.DataFrame | dict,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    landmark: float = 6.0,
    censor_later_switch: bool = False,
) -> EffectEstimate:
    """Landmark analysis: switch status at ``landmark`` months, Cox model from there.

    Patients alive and uncensored at ``landmark`` enter; exposure = switched at or before
    it; time = months after the landmark; adjusted for ``covariates``.
    ``censor_later_switch``: censor the not-yet-switched at a later switch (a per-protocol
    contrast that targets the conditional switch log-HR when the covariates explain
    switching); default False, the usual landmark analysis, whose reference group
    includes later switchers.

    Raises
    ------
    EstimatorInputError
        ``landmark`` not a number > 0, or nobody (or no event) after it.
    """
    lm = _check_months(landmark, "landmark")
    if not isinstance(censor_later_switch, bool):
        raise EstimatorInputError(
            f"censor_later_switch={censor_later_switch!r} is not allowed; use True or False"
        )
    sd = switch_data(df, time, event, treatment, covariates)
    keep = sd.time > lm
    if not keep.any():
        raise EstimatorInputError(
            f"landmark={lm!r} is not allowed here: no patient is followed beyond it "
            f"(longest follow-up {sd.time.max():.3g} months)"
        )
    s = sd.switch[keep]
    t = sd.time[keep] - lm
    e = sd.event[keep].astype(np.float64)
    exposed = (s <= lm).astype(np.float64)  # NaN compares False
    if censor_later_switch:
        later = s > lm
        t = np.where(later, s - lm, t)
        e = np.where(later, 0.0, e)
    if not e.any():
        raise EstimatorInputError(f"landmark={lm!r}: no events after the landmark")
    if exposed.all() or not exposed.any():
        return EffectEstimate.failed(
            "landmark_cox", "conditional", f"all or none of the patients switched by {lm}"
        )
    X = np.column_stack([exposed, sd.X[keep]])
    fit = fit_cox_arrays(t, e, X, names=("switched", *sd.names))
    return _cox_estimate("landmark_cox", fit, int(keep.sum()), int(e.sum()))


# ---- clone-censor-weight -------------------------------------------------------------


@dataclass(frozen=True)
class CcwCurves:
    """Weighted Kaplan-Meier curves of the two cloned arms of :func:`ccw`.

    Attributes
    ----------
    time_grace, surv_grace : ndarray
        Event times (months) and survival of the arm "switch within grace".
    time_never, surv_never : ndarray
        Same for "never switch".
    surv_diff, rmst_diff : float
        Grace minus never at the horizon.
    """

    time_grace: np.ndarray
    surv_grace: np.ndarray
    time_never: np.ndarray
    surv_never: np.ndarray
    surv_diff: float
    rmst_diff: float


def _tv_km(
    stop: np.ndarray,
    event: np.ndarray,
    r: np.ndarray,
    edges: np.ndarray,
    c: np.ndarray,
    horizon: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier with time-varying weights ``w_i(t) = exp(c_k r_i)`` for ``t`` in
    ``(edges[k], edges[k + 1]]`` (piecewise constant); events after ``horizon`` ignored.

    Returns (event times (m,) ascending, survival just after each).
    """
    ev_t = np.unique(stop[(event > 0) & (stop <= horizon)])
    if ev_t.size == 0:
        return ev_t, np.ones(0)
    order = np.argsort(-stop, kind="stable")
    k_ev = np.clip(np.searchsorted(edges, ev_t, side="left") - 1, 0, c.size - 1)
    Y = _tv_at_risk(stop[order], r[order], ev_t, k_ev.astype(np.int64), c)
    d_rows = np.flatnonzero((event > 0) & (stop <= horizon))
    j = np.searchsorted(ev_t, stop[d_rows])
    k = np.clip(np.searchsorted(edges, stop[d_rows], side="left") - 1, 0, c.size - 1)
    D = np.zeros(ev_t.size)
    np.add.at(D, j, np.exp(c[k] * r[d_rows]))
    return ev_t, np.cumprod(1.0 - D / Y)


def _at(t: np.ndarray, s: np.ndarray, x: float) -> float:
    i = np.searchsorted(t, x, side="right")
    return 1.0 if i == 0 else float(s[i - 1])


def _rmst(t: np.ndarray, s: np.ndarray, tau: float) -> float:
    grid = np.concatenate([[0.0], t[t <= tau], [tau]])
    vals = np.concatenate([[1.0], s[t <= tau]])
    return float(np.sum(vals * np.diff(grid)))


def _edges(horizon: float, grace: float, step: float) -> np.ndarray:
    e = np.unique(np.concatenate([np.arange(0.0, horizon, step), [min(grace, horizon), horizon]]))
    return e


def ccw_curves(sd: SwitchData, grace: float, horizon: float, step: float) -> CcwCurves:
    """The two weighted curves of :func:`ccw` on validated data (one fit, no SE).

    Arm "never switch": clones censored at their switch, weighted by the inverse
    probability of not having switched, ``exp(H_s(t | x))`` from a Cox model of the
    switching hazard on the covariates (Breslow baseline, evaluated at the middle of
    ``step``-month intervals).  Arm "switch within grace": clones not switched by
    ``grace`` are censored there; from ``grace`` on, switchers are weighted by
    ``1 / P(switched by grace | x, followed beyond grace)`` from a logistic regression
    among the patients followed beyond ``grace``.
    """
    n = sd.time.size
    sw = sd.switched > 0
    # -- arm never: censored at the switch --
    stop_n = np.where(sw, sd.switch, sd.time)
    ev_n = np.where(sw, 0, sd.event).astype(np.float64)
    t_s = np.where(sw, sd.switch, sd.time)
    edges = _edges(horizon, grace, step)
    if sd.X.shape[1]:
        fit = fit_cox_arrays(t_s, sd.switched, sd.X)
        if not np.all(np.isfinite(fit.params)):
            raise FloatingPointError("the switching-hazard Cox model did not converge")
        risk = np.exp(sd.X @ fit.params)
    else:
        risk = np.ones(n)
    u, H = breslow_cumhaz(t_s, sd.switched, risk)
    mid = 0.5 * (edges[:-1] + edges[1:])
    c_never = np.concatenate([[0.0], H])[np.searchsorted(u, mid, side="right")]
    tn, sn = _tv_km(stop_n, ev_n, risk, edges, c_never, horizon)
    # -- arm grace: censored at grace if not switched by then --
    by_g = sw & (sd.switch <= grace)
    followed = sd.time > grace
    stop_g = np.where(followed & ~by_g, grace, sd.time)
    ev_g = np.where(followed & ~by_g, 0, sd.event).astype(np.float64)
    r_g = np.zeros(n)
    if grace < horizon and followed.any():
        y = by_g[followed].astype(np.float64)
        if y.all() or not y.any():
            raise FloatingPointError(
                f"all or none of the {int(followed.sum())} patients followed beyond the "
                f"grace period ({grace} months) switched within it"
            )
        Xl = np.column_stack([np.ones(int(followed.sum())), sd.X[followed]])
        lf = fit_logistic(Xl, y)
        p = lf.prob
        r_g[followed] = np.where(y > 0, -np.log(p), 0.0)
    c_grace = (edges[:-1] >= grace).astype(np.float64)
    tg, sg = _tv_km(stop_g, ev_g, r_g, edges, c_grace, horizon)
    return CcwCurves(
        tg,
        sg,
        tn,
        sn,
        _at(tg, sg, horizon) - _at(tn, sn, horizon),
        _rmst(tg, sg, horizon) - _rmst(tn, sn, horizon),
    )


def ccw(
    df: pd.DataFrame | dict,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    grace: float = 6.0,
    measure: str = "surv_diff",
    horizon: float = 36.0,
    n_boot: int = 200,
    random_state: int | np.random.Generator = 0,
    step: float = 0.25,
    alpha: float = 0.05,
) -> EffectEstimate:
    """Clone-censor-weight: "switch within ``grace`` months" minus "never switch".

    Every patient is cloned into both strategies; a clone is censored when its patient
    deviates (arm "never": at the switch; arm "switch within grace": at ``grace`` if
    not switched by then) and the remaining clones are weighted by the inverse
    probability of not being censored given the covariates (:func:`ccw_curves`).  The
    strategy contrast is read off the two weighted Kaplan-Meier curves.

    Parameters
    ----------
    df, time, event, treatment, covariates
        As in the module docstring (``treatment`` = switch time column).
    grace : float
        Grace period, months (> 0).
    measure : {"surv_diff", "rmst_diff"}
        Survival difference at ``horizon``, or RMST difference up to it (months).
    horizon : float
        Months (> 0).
    n_boot : int
        Bootstrap resamples of patients (both clones together) for the SE (>= 2).
    random_state : int or numpy.random.Generator
        Bootstrap seed.
    step : float
        Width of the intervals on which the "never" arm's weights are held constant,
        months (> 0); the weights are exact as ``step`` -> 0.
    alpha : float
        1 - confidence level of the Wald interval.

    Returns
    -------
    EffectEstimate
        ``estimand="strategy"``; ``diagnostics["curves"]`` holds the :class:`CcwCurves`,
        ``diagnostics["se"]`` the bootstrap SE of both measures (same resamples),
        ``diagnostics["n_failed_boot"]`` the resamples whose models failed (left out),
        ``diagnostics["n_warned_boot"]`` those whose weight models warned (e.g.
        separation in the grace arm's logistic model; kept, not printed).

    Raises
    ------
    EstimatorInputError
        ``grace``, ``horizon`` or ``step`` not a number of months > 0, an unknown
        ``measure``, or bad data (:func:`switch_data`).
    """
    g = _check_months(grace, "grace")
    tau = _check_months(horizon, "horizon")
    step = _check_months(step, "step")
    if measure not in CCW_MEASURES:
        raise EstimatorInputError(f"measure={measure!r} is not allowed; use one of {CCW_MEASURES}")
    n_boot = check_n_boot(n_boot)
    rng = check_random_state(random_state)
    sd = switch_data(df, time, event, treatment, covariates)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EstimatorWarning)
        try:
            curves = ccw_curves(sd, g, tau, step)
        except FloatingPointError as exc:
            return EffectEstimate.failed("ccw", "strategy", str(exc), measure=measure, horizon=tau)
    warned = tuple(dict.fromkeys(str(w.message) for w in caught))
    n = sd.time.size
    boots = np.full((n_boot, 2), np.nan)  # both measures from one set of resamples
    n_warned = 0
    for b in range(n_boot):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EstimatorWarning)
            try:
                cb = ccw_curves(sd.take(rng.integers(0, n, n)), g, tau, step)
            except (FloatingPointError, EstimatorInputError):
                continue
        n_warned += bool(caught)
        boots[b] = cb.surv_diff, cb.rmst_diff
    ok = boots[np.isfinite(boots).all(axis=1)]
    ses = np.std(ok, axis=0, ddof=1) if len(ok) >= 2 else np.full(2, np.nan)
    se = dict(zip(CCW_MEASURES, map(float, ses), strict=True))
    return EffectEstimate.from_fit(
        "ccw",
        "strategy",
        estimate=getattr(curves, measure),
        se=se[measure],
        n=n,
        events=int(sd.event.sum()),
        measure=measure,
        horizon=tau,
        alpha=alpha,
        warnings=warned,
        diagnostics={
            "curves": curves,
            "se": se,
            "n_failed_boot": int(n_boot - len(ok)),
            "n_warned_boot": n_warned,
        },
    )
