"""Crossover at progression: the switching model's intercept, the kernel plan and the
as-randomised (treatment-policy) OS truths by the exact engine.

A scenario's :class:`~simulator.scenario.Crossover` block makes patients of one arm who
progress switch to the other arm's treatment at the (true) progression time with
probability ``p(x) = expit(a + x'b)`` (``b`` = ``crossover.log_or`` on baseline
features), after which their post-progression death hazard is multiplied by
``post_progression_hr``.  The intercept ``a`` is solved so that ``p(x)`` averaged over
the population's covariates (the exact engine's quasi-random sample) is
``crossover.share``.

Two OS estimands then differ:

* **hypothetical** ("had no one switched"): the potential outcomes under the treatments
  themselves, i.e. every truth the simulator computes without crossover (``ate_*``,
  ``median_*``, ...): unchanged by the crossover block;
* **treatment policy** ("as randomised", ICH E9(R1)): the potential outcomes of the
  assignment, switching included.  Keys ``tp_`` + the ATE key (``tp_ate_log_hr``,
  ``tp_median_control``, ``tp_rmst24_diff``, ...), OS only (rwPFS ends at progression,
  so its treatment-policy truth is the ATE's).

Exact engine: given x, a patient of the crossing arm has post-progression survival
``(1 - p(x)) S12(s) + p(x) S12(s)^hr`` (``S12^hr`` = the hazard times hr, a Weibull
with scale times hr).  The OS convolution is linear in that, so the arm's OS curve is
the engine's convolution of the progression masses weighted ``1 - p(x)`` with the
arm's post-progression scale plus that of the masses weighted ``p(x)`` with the scale
times hr; nothing else changes (:func:`treatment_policy_truth`).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

from . import _cohort_kernels as K
from . import exact
from .exceptions import ScenarioError
from .plan import Plan, Solved, coef_vector, solved_outcome_matrix
from .scenario import Scenario

TP_PREFIX = "tp_"
"""Prefix of the treatment-policy (as-randomised) OS truths."""

_INTERCEPTS: dict[tuple[str, str], float] = {}


def switch_probabilities(sc: Scenario, feats: np.ndarray, intercept: float) -> np.ndarray:
    """Switching probability at progression (n,) of patients with features ``feats``
    (n, N_FEATURES)."""
    if sc.crossover is None:
        raise ScenarioError(f"scenario {sc.name!r} has no crossover block")
    return expit(intercept + feats @ coef_vector(sc.crossover.log_or))


def switch_intercept(sc: Scenario, solved: Solved, sample: exact.CovariateSample | None = None):
    """The switching model's intercept: mean of ``p(x)`` over the scenario's covariate
    sample (the exact engine's, ``2**14`` points in 4 scramblings) equals
    ``crossover.share``.  Memoised per scenario fingerprint."""
    if sc.crossover is None:
        raise ScenarioError(f"scenario {sc.name!r} has no crossover block")
    key = (sc.fingerprint(), repr(solved.treatment_intercept))
    if key in _INTERCEPTS:
        return _INTERCEPTS[key]
    share = sc.crossover.share
    logit = math.log(share / (1.0 - share))
    if not sc.crossover.log_or:
        a = logit
    else:
        if sample is None:
            sample = exact.sample_for(sc, solved)
        lp = sample.feats @ coef_vector(sc.crossover.log_or)
        span = float(np.abs(lp).max()) + 1.0

        def gap(x: float) -> float:
            return float(expit(x + lp).mean()) - share

        a = brentq(gap, logit - span, logit + span, xtol=1e-14, rtol=4 * np.finfo(float).eps)
    _INTERCEPTS[key] = a
    return a


def with_crossover(plan: Plan, sc: Scenario, solved: Solved) -> Plan:
    """``plan`` with the crossover kernel arguments of ``sc`` (switching on)."""
    cx = sc.crossover
    if cx is None:
        return plan
    om = solved_outcome_matrix(sc, solved)
    X = np.zeros(K.N_X)
    X[K.X_ON] = 1.0
    X[K.X_ARM] = float(cx.arm_code)
    X[K.X_INTERCEPT] = switch_intercept(sc, solved)
    # hazard x hr on a Weibull PH transition: the time from progression / hr^(1/shape)
    X[K.X_STRETCH] = cx.post_progression_hr ** (-om[2, K.O_INV_SHAPE])
    x_b = coef_vector(cx.log_or)
    return replace(plan, X=X, x_b=x_b, nz_x=np.flatnonzero(x_b).astype(np.int64))


# ---- the treatment-policy truth ------------------------------------------------------------
def _tp_evaluate(sc, sample, om, eng, rmst_h, surv_h, intercept):
    """As-randomised OS estimands (ATE population) of the pooled sample and each group."""
    cx = sc.crossover
    n = sample.n
    p = switch_probabilities(sc, sample.feats, intercept)
    l12 = om[2, K.O_SCALE]
    sums = []
    for arm in (0, 1):
        scale = l12 * (math.exp(om[2, K.O_GAMMA]) if arm else 1.0)
        if arm == cx.arm_code:
            _, stay = eng.accumulate(sample, om, float(arm), (1.0 - p)[None, :])
            _, moved = eng.accumulate(sample, om, float(arm), p[None, :])
            os_ = eng.os_curves(stay, scale) + eng.os_curves(moved, scale * cx.post_progression_hr)
        else:
            _, sp = eng.accumulate(sample, om, float(arm), np.ones((1, n)))
            os_ = eng.os_curves(sp, scale)
        sums.append(os_[:, 0])  # (groups, G)
    grid = eng.grid
    cells = exact.admin_survival_cells(
        grid, sc.censoring.accrual_months, sc.censoring.cutoff_months
    )
    rates = exact.study_rates(sc, sample)["os"]
    constant_rate = float(rates.max() - rates.min()) == 0.0
    sizes = np.diff(sample.bounds).astype(float)
    per, tails = [], {}
    for g in [None, *range(sample.groups)]:
        sel = slice(None) if g is None else slice(g, g + 1)
        W = float(sizes[sel].sum())
        S0, S1 = sums[0][sel].sum(axis=0) / W, sums[1][sel].sum(axis=0) / W
        # covariate-dependent loss to follow-up: not computed (see treatment_policy_truth)
        rate = float(rates[0]) if constant_rate else 0.0
        study = (S0, S1, None, None, cells * np.exp(-rate * grid.mid))
        values, tail = exact._population_estimands(
            grid.t, S0, S1, cells, study, rmst_h, surv_h, "ATE"
        )
        if not constant_rate:
            values.pop("ate_log_hr_study_censoring")
        per.append(values)
        if g is None:
            tails = tail
    return per, tails


def treatment_policy_truth(
    sc: Scenario,
    solved: Solved,
    rmst_horizons: tuple[float, ...] = exact.RMST_HORIZONS,
    survival_horizons: tuple[float, ...] = exact.SURVIVAL_HORIZONS,
    sample: exact.CovariateSample | None = None,
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """As-randomised OS truths of a crossover scenario: (values, mcse, numerical), keys
    ``tp_`` + the ATE keys of :func:`simulator.exact.marginal_truth` (``tp_ate_log_hr``,
    ``tp_ate_log_hr_uncensored``, ``tp_ate_log_hr_study_censoring``,
    ``tp_median_{control,treated,diff}``, ``tp_rmst{tau}_*``, ``tp_survival{tau}_*``).

    Same numerics and error bound as the marginal truths (docs/truth.md): ``mcse`` from
    the 4 scramblings, ``numerical`` from the grids twice and four times as coarse (first
    scrambling) plus the uncensored Cox root's tail bound.  The study-censored log-HR is
    computed for a constant loss-to-follow-up rate only (left out otherwise).
    """
    if sc.crossover is None:
        raise ScenarioError(f"scenario {sc.name!r} has no crossover block")
    if sample is None:
        sample = exact.sample_for(sc, solved)
    a = switch_intercept(sc, solved, sample)
    om = solved_outcome_matrix(sc, solved)
    shapes = tuple(1.0 / om[k, K.O_INV_SHAPE] for k in range(3))
    grid = exact.truth_grid(sc)
    args = (rmst_horizons, survival_horizons, a)
    fine, tails = _tp_evaluate(sc, sample, om, exact.Engine(grid, shapes), *args)
    first = sample.first_group()
    m = exact.Engine.m_step
    coarse, _ = _tp_evaluate(sc, first, om, exact.Engine(grid.coarser(), shapes, 2 * m), *args)
    eng_cc = exact.Engine(grid.coarser().coarser(), shapes, 4 * m)
    coarser, _ = _tp_evaluate(sc, first, om, eng_cc, *args)
    pooled, groups = fine[0], fine[1:]
    values, se, numerical = {}, {}, {}
    for k in pooled:
        g = np.array([x[k] for x in groups])
        key = TP_PREFIX + k
        values[key] = float(pooled[k])
        se[key] = float(np.std(g, ddof=1) / math.sqrt(g.size))
        num = exact.SAFETY * max(
            abs(groups[0][k] - coarse[0][k]), abs(coarse[0][k] - coarser[0][k]) / 4.0
        )
        numerical[key] = float(num + tails.get(k, 0.0))
    return values, se, numerical
