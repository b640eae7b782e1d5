"""Rank-preserving structural failure time model (RPSFTM) for treatment switching.

In a randomised trial where control patients may switch to the experimental treatment
(and experimental patients may stop it), the intention-to-treat (ITT) hazard ratio
mixes the effect of treatment with the effect of switching.  The RPSFTM (Robins &
Tsiatis 1991; White et al. 1999) targets the **hypothetical** estimand "had no one
switched": it assumes one acceleration factor ``exp(-psi)`` for time on treatment, so
that patient i's untreated (counterfactual) survival time is

    U_i(psi) = T_off,i + exp(psi) T_on,i          (months)

where ``T_on`` is the observed time on the experimental treatment and ``T_off`` the
rest of the follow-up.  Randomisation makes U independent of the arm at the true
``psi``; g-estimation takes ``psi_hat`` as the root of a test statistic comparing
U(psi) between the randomised arms (the log-rank z, or the Wald z of a Cox model on
the arm), and the test-based confidence interval as the set of ``psi`` where that
statistic's ``|z|`` is at most ``z_{1 - alpha/2}``.  ``psi < 0``: treatment prolongs
survival.

**Re-censoring.**  Censoring is informative on the U scale (a patient's U depends on
their treatment, and so does when U would be censored).  Patients are therefore
re-censored at ``C*_i(psi) = min(C_i, C_i exp(psi))``, with ``C_i`` the potential
(administrative) censoring time, the time from randomisation to the data cutoff: the
earliest U-scale censoring time any treatment history could give; a U beyond it is
censored there, and an event after it is lost.  As R ``rpsftm`` (``autoswitch=TRUE``),
an arm in which every patient followed the assigned treatment throughout (experimental:
on treatment for the whole follow-up; control: never on it) is not re-censored: its U is
T or ``exp(psi) T``, censored at C or ``exp(psi) C``, which no treatment history
changes; ``autoswitch=False`` re-censors both arms.

**Hazard ratio.**  The hypothetical HR compares the control arm's counterfactual
untreated times ``U(psi_hat)`` (re-censored) with the experimental arm's observed
times, by Cox regression on the arm; its SE is test-based (White et al. 1999), so that
the HR's p-value is the ITT test's: ``SE = |log HR| / |z_ITT|``, with ``z_ITT`` the same
test statistic on the observed data (``= z(0)``).

Root search: the statistic is evaluated on a grid of ``n_grid`` values over
``psi_range``, every sign change (``z >= 0`` counting as positive: with few patients z
is a step function of psi and can be exactly 0) is refined by bisection to ``tol``.
No sign change: the fit fails (widen ``psi_range``).  Several: ``converged=False``,
every root is reported and ``psi_hat`` is the midpoint of the first and last.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np

from . import _rpsftm_kernels as kr
from .cox import fit_cox_arrays
from .exceptions import EstimatorInputError
from .result import EffectEstimate
from .validation import (
    Data,
    check_binary,
    check_frame,
    check_probability,
    check_ties,
    check_times,
    check_treatment,
    float_column,
    n_rows,
)

__all__ = ["TESTS", "rpsftm"]

TESTS: tuple[str, ...] = ("logrank", "wald")
"""Test statistics that g-estimation can balance between the arms."""


def _row(df: Data, i: int) -> str:
    index = getattr(df, "index", None)
    return f"row {i}" if index is None else f"row {index[i]!r} (position {i})"


def _validate(
    df: Data,
    time: str,
    event: str,
    arm: str,
    treated_months: str | None,
    on_treatment: str | None,
    censor_time: str | None,
    recensor: object,
    test: object,
    psi_range: object,
    n_grid: object,
    tol: object,
    alpha: object,
    ties: object,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """Every check before any work; returns t_off, t_on, cens, event (int8), arm (int8)
    and the psi range."""
    check_frame(
        df,
        time=time,
        event=event,
        arm=arm,
        treated_months=treated_months,
        on_treatment=on_treatment,
        censor_time=censor_time,
    )
    if (treated_months is None) == (on_treatment is None):
        raise EstimatorInputError(
            "give exactly one of treated_months= (months on the experimental treatment) "
            "and on_treatment= (fraction of follow-up on it)"
        )
    if not isinstance(recensor, bool | np.bool_):
        raise EstimatorInputError(f"recensor={recensor!r} is not allowed; use True or False")
    if test not in TESTS:
        raise EstimatorInputError(f"test={test!r} is not allowed; use one of {TESTS}")
    check_ties(ties)
    try:
        lo, hi = (float(v) for v in psi_range)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise EstimatorInputError(
            f"psi_range={psi_range!r} is not allowed; give (low, high) floats"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise EstimatorInputError(
            f"psi_range={psi_range!r} is not allowed; give finite low < high (log scale)"
        )
    if isinstance(n_grid, bool) or not isinstance(n_grid, int | np.integer) or n_grid < 3:
        raise EstimatorInputError(f"n_grid={n_grid!r} is not allowed; use an integer >= 3")
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 < tol < (hi - lo):
        raise EstimatorInputError(f"tol={tol!r} is not allowed; use 0 < tol < the psi range")
    check_probability(alpha, "alpha", open_interval=True)  # type: ignore[arg-type]

    t = check_times(float_column(df, time, "time"), f"time={time!r}")
    ev = check_binary(float_column(df, event, "event"), f"event={event!r}")
    if not ev.any():
        raise EstimatorInputError(f"event={event!r} has no events (all 0); g-estimation needs some")
    a = check_treatment(float_column(df, arm, "arm"), f"arm={arm!r}")
    if treated_months is not None:
        t_on = float_column(df, treated_months, "treated_months")
        bad = np.flatnonzero(t_on < 0)
        if bad.size:
            i = int(bad[0])
            raise EstimatorInputError(
                f"treated_months={treated_months!r} has {bad.size} negative value(s), first at "
                f"{_row(df, i)}: {t_on[i]!r}; months on treatment must be >= 0"
            )
        bad = np.flatnonzero(t_on > t)
        if bad.size:
            i = int(bad[0])
            raise EstimatorInputError(
                f"treated_months={treated_months!r} exceeds time={time!r} in {bad.size} row(s), "
                f"first at {_row(df, i)}: {t_on[i]!r} > {t[i]!r}; time on treatment is part "
                "of the follow-up"
            )
    else:
        frac = float_column(df, on_treatment, "on_treatment")  # type: ignore[arg-type]
        bad = np.flatnonzero((frac < 0) | (frac > 1))
        if bad.size:
            i = int(bad[0])
            raise EstimatorInputError(
                f"on_treatment={on_treatment!r} must be a fraction in [0, 1]; {bad.size} "
                f"value(s) outside, first at {_row(df, i)}: {frac[i]!r}"
            )
        t_on = frac * t
    if not (t_on > 0).any():
        raise EstimatorInputError(
            "nobody spent any time on the experimental treatment (all zero): psi is not identified"
        )
    if censor_time is None:
        if recensor:
            raise EstimatorInputError(
                "re-censoring needs every patient's potential censoring time (months from "
                "randomisation to the data cutoff): give censor_time=, or recensor=False "
                "(biased when censoring is administrative)"
            )
        cens = t.copy()  # unused by the kernels without re-censoring
    else:
        cens = float_column(df, censor_time, "censor_time")
        bad = np.flatnonzero(cens < t)
        if bad.size:
            i = int(bad[0])
            raise EstimatorInputError(
                f"censor_time={censor_time!r} is before time={time!r} in {bad.size} row(s), "
                f"first at {_row(df, i)}: {cens[i]!r} < {t[i]!r}; the potential censoring "
                "time (to the data cutoff) is never before the observed time"
            )
    return t - t_on, t_on, cens, ev, a, (lo, hi)


def _bisect(pred: Callable[[float], bool], a: float, b: float, tol: float) -> float:
    """The point where ``pred`` changes from ``pred(a)`` to ``pred(b)`` (they differ),
    to within ``tol``."""
    pa = pred(a)
    while b - a > tol:
        m = 0.5 * (a + b)
        if pred(m) == pa:
            a = m
        else:
            b = m
    return 0.5 * (a + b)


def _wald_z(time: np.ndarray, event: np.ndarray, arm: np.ndarray, ties: str) -> float:
    x = arm.astype(np.float64)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a diverging fit gives a non-finite z: skipped
        try:
            fit = fit_cox_arrays(time, event, x, ties=ties)
        except EstimatorInputError:  # e.g. every event re-censored away
            return math.nan
    return float(fit.params[0] / fit.se[0]) if fit.converged else math.nan


def rpsftm(
    df: Data,
    time: str,
    event: str,
    arm: str,
    treated_months: str | None = None,
    *,
    on_treatment: str | None = None,
    censor_time: str | None = None,
    recensor: bool = True,
    autoswitch: bool = True,
    test: str = "logrank",
    psi_range: Sequence[float] = (-3.0, 3.0),
    n_grid: int = 301,
    tol: float = 1e-10,
    alpha: float = 0.05,
    ties: str = "efron",
) -> EffectEstimate:
    """Hypothetical "no switching" hazard ratio by RPSFTM g-estimation.

    Parameters
    ----------
    df : DataFrame (or mapping of column name to array)
        One row per randomised patient.
    time : str
        Observed follow-up in months (> 0), from randomisation to event or censoring.
    event : str
        1 = event, 0 = censored.
    arm : str
        Randomised arm: 1 = experimental, 0 = control (both present).
    treated_months : str, optional
        Months on the experimental treatment during the follow-up (0 <= it <= time):
        the whole follow-up for an experimental patient who never stopped, the time
        after the switch for a control patient who switched, 0 for one who did not.
    on_treatment : str, optional
        Instead of ``treated_months``: the fraction of follow-up on the experimental
        treatment, in [0, 1].  Give exactly one of the two.
    censor_time : str, optional
        Potential censoring time in months (>= time): from randomisation to the data
        cutoff, known for every patient, also those with an event.  Needed when
        ``recensor``.
    recensor : bool
        Re-censor the counterfactual times at ``C min(1, exp(psi))`` (default True).
    autoswitch : bool
        With ``recensor``: leave alone an arm whose every patient followed the assigned
        treatment throughout (R ``rpsftm``'s ``autoswitch``); False re-censors both arms.
    test : {"logrank", "wald"}
        The statistic balanced between arms: the log-rank z (numba kernel) or the Wald
        z of a Cox model of U(psi) on the arm.
    psi_range : (float, float)
        Search interval for psi (log acceleration factor); also bounds the CI.
    n_grid : int
        Grid points over ``psi_range`` (>= 3) at which the statistic is evaluated
        before the sign changes are refined by bisection.
    tol : float
        Bisection tolerance on psi.
    alpha : float
        The psi interval and the HR's CI have level ``1 - alpha``.
    ties : {"efron", "breslow"}
        Ties of the Cox fits (the HR, and ``test="wald"``).

    Returns
    -------
    EffectEstimate
        ``method="rpsftm"``, ``estimand="hypothetical"``, the log HR of the control
        arm's counterfactual untreated times vs the experimental arm's observed times,
        with the test-based SE ``|log HR| / |z_ITT|`` (its p-value is the ITT test's).
        ``n`` all patients, ``events`` those of the HR fit (after re-censoring).
        ``diagnostics``: ``psi``, ``psi_ci`` (low, high; NaN where the limit is outside
        ``psi_range``), ``acceleration_factor`` ``exp(-psi)``, ``roots`` (every root
        found), ``z_itt``, ``test``, ``recensored`` / ``recensored_events`` (patients
        whose U(psi_hat) was cut at C* / events lost, both arms),
        ``recensored_control`` / ``recensored_events_control`` (the control arm, used in
        the HR), ``recensored_arms`` (the arms re-censoring applied to), ``switchers``
        (control patients with time on treatment), ``cox_se`` (the Cox model SE of the
        log HR, for comparison), ``psi_grid`` / ``z_grid`` (the psi values and the
        statistic at each).
        No root in ``psi_range`` gives a failed record (``error`` says why).

    Raises
    ------
    EstimatorInputError
        Before any work: missing columns, times <= 0, treated months < 0 or > time,
        a fraction outside [0, 1], an arm not 0/1 or a single arm, no events, no time
        on treatment at all, censor_time < time or missing with ``recensor``, bad
        options.

    References
    ----------
    Robins JM, Tsiatis AA (1991). Correcting for non-compliance in randomized trials
    using rank preserving structural failure time models. *Communications in Statistics -
    Theory and Methods* 20:2609-2631.  White IR, Babiker AG, Walker S, Darbyshire JH
    (1999). Randomization-based methods for correcting for treatment changes: examples
    from the Concorde trial. *Statistics in Medicine* 18:2617-2634.
    """
    t_off, t_on, cens, ev, a, (lo, hi) = _validate(
        df, time, event, arm, treated_months, on_treatment, censor_time, recensor, test,
        psi_range, n_grid, tol, alpha, ties,
    )  # fmt: skip
    if not isinstance(autoswitch, bool | np.bool_):
        raise EstimatorInputError(f"autoswitch={autoswitch!r} is not allowed; use True or False")
    t = t_off + t_on
    # per patient: re-censored?  Not in an arm of perfect compliance (autoswitch)
    complied = (bool((t_on[a == 1] == t[a == 1]).all()), bool((t_on[a == 0] == 0).all()))
    rc = np.full(t.shape[0], bool(recensor))
    if recensor and autoswitch:
        rc &= ~np.where(a == 1, complied[0], complied[1])
    if test == "logrank":

        def z_of(psi: float) -> float:
            return float(kr._z_at(psi, t_off, t_on, cens, ev, a, rc))

        grid = np.linspace(lo, hi, int(n_grid))
        z = kr._z_grid(grid, t_off, t_on, cens, ev, a, rc)
        z_itt = float(kr._logrank_z(t, ev, a))
    else:

        def z_of(psi: float) -> float:
            u, e, _ = kr._counterfactual(t_off, t_on, cens, ev, psi, rc)
            return _wald_z(u, e, a, ties)

        grid = np.linspace(lo, hi, int(n_grid))
        z = np.array([z_of(float(p)) for p in grid])
        z_itt = _wald_z(t, ev, a, ties)
    n_events = int(ev.sum())
    warns: list[str] = []
    finite = np.isfinite(z)
    if not finite.all():
        warns.append(
            f"the {test} statistic is undefined at {int((~finite).sum())} of {grid.size} grid "
            "values of psi (no events left after re-censoring, or a diverging fit); skipped"
        )
    pos = z >= 0.0
    brackets = [
        k for k in range(grid.size - 1) if finite[k] and finite[k + 1] and pos[k] != pos[k + 1]
    ]
    if not brackets:
        zf = z[finite]
        span = f"from {zf[0]:+.3f} to {zf[-1]:+.3f}" if zf.size else "undefined everywhere"
        return EffectEstimate.failed(
            "rpsftm",
            "hypothetical",
            f"no root of the {test} z of U(psi) in psi_range=({lo:g}, {hi:g}): z runs {span} "
            "without changing sign; widen psi_range (or the arms' exposures hardly differ)",
            warnings=tuple(warns),
        )
    roots = tuple(
        _bisect(lambda p: z_of(p) >= 0.0, float(grid[k]), float(grid[k + 1]), tol) for k in brackets
    )
    psi = roots[0] if len(roots) == 1 else 0.5 * (roots[0] + roots[-1])
    converged = True
    if len(roots) > 1:
        converged = False
        warns.append(
            f"the {test} z of U(psi) changes sign {len(roots)} times in psi_range "
            f"(roots {', '.join(f'{r:.4f}' for r in roots)}): psi is not unique; psi_hat is "
            "the midpoint of the first and last"
        )
    zcrit = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    inside = finite & (np.abs(z) <= zcrit)
    ci = [math.nan, math.nan]
    if inside.any():
        k_lo, k_hi = int(np.argmax(inside)), int(grid.size - 1 - np.argmax(inside[::-1]))

        def within(p: float) -> bool:
            v = z_of(p)
            return bool(math.isfinite(v) and abs(v) <= zcrit)

        if k_lo > 0:
            ci[0] = _bisect(within, float(grid[k_lo - 1]), float(grid[k_lo]), tol)
        if k_hi < grid.size - 1:
            ci[1] = _bisect(within, float(grid[k_hi]), float(grid[k_hi + 1]), tol)
    if not all(map(math.isfinite, ci)):
        warns.append(
            f"a limit of the {100 * (1 - alpha):g}% interval of psi lies outside "
            f"psi_range=({lo:g}, {hi:g}) (reported as NaN); widen psi_range"
        )
    # the hypothetical HR: control counterfactual (re-censored) vs experimental observed
    u, e_u, cut = kr._counterfactual(t_off, t_on, cens, ev, psi, rc)
    control = a == 0
    t_hr = np.where(control, u, t)
    e_hr = np.where(control, e_u, ev).astype(np.int8)
    lost = (ev == 1) & (e_u == 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_cox_arrays(t_hr, e_hr, a.astype(np.float64)[:, None], ties=ties)
    warns += [str(w.message) for w in caught]
    log_hr = float(fit.params[0])
    se = abs(log_hr) / abs(z_itt) if math.isfinite(z_itt) and z_itt != 0.0 else math.nan
    if not (se > 0):
        warns.append(
            f"the ITT {test} z is {z_itt!r} (or the HR is 1): the test-based SE is undefined"
        )
    switchers = int((control & (t_on > 0)).sum())
    if switchers == 0:
        warns.append(
            "no control patient spent time on the experimental treatment: nothing to "
            "correct for switching (the estimate is the ITT effect, adjusted only for "
            "experimental-arm patients off treatment)"
        )
    diagnostics = {
        "psi": psi,
        "recensored_arms": tuple(arm_ for arm_ in (0, 1) if rc[a == arm_].any()),
        "psi_ci": (ci[0], ci[1]),
        "acceleration_factor": math.exp(-psi),
        "roots": roots,
        "test": test,
        "z_itt": z_itt,
        "recensored": int(cut.sum()),
        "recensored_events": int(lost.sum()),
        "recensored_control": int((cut & control).sum()),
        "recensored_events_control": int((lost & control).sum()),
        "switchers": switchers,
        "cox_se": float(fit.se[0]),
        "psi_grid": grid,
        "z_grid": z,
        "events_observed": n_events,
    }
    return EffectEstimate.from_fit(
        "rpsftm",
        "hypothetical",
        log_hr,
        se,
        n_rows(df),
        int(e_hr.sum()),
        converged=converged and fit.converged,
        warnings=tuple(warns),
        diagnostics=diagnostics,
        alpha=alpha,
    )
