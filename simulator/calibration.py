"""Solve a scenario's targets: by exact integration (default) or on a simulated super-population.

``method="exact"`` (default) root-finds on the marginal functions of :mod:`simulator.exact`
(closed-form conditional survival integrated over a quasi-random covariate sample on a
time grid; seconds).  ``method="montecarlo"`` is the original solve on
``calibration.population`` simulated patients with common random numbers (minutes), kept
as an independent oracle.  Both follow the same order and targets:

Order of the solve (each step is a monotone one-dimensional root or a convex problem):

1. ECOG-missingness intercept (MAR / MNAR) so that the share unknown is as asked;
2. treatment model: coefficients matching the per-arm target means (moment equations of
   the logistic MLE, Newton), times ``strength``, then the intercept for the treated
   fraction;
3. Weibull scales: progression and death-before-progression scaled together for the
   control rwPFS median, their ratio for the death share, post-progression death for the
   control OS median (medians of the control potential outcome over the population);
4. ``gamma_pfs`` for the marginal rwPFS HR (ATE: Cox on both potential outcomes of
   everyone; ATT: of the treated) under the scenario's administrative censoring, or for
   the treated median; then ``gamma_os`` likewise for OS;
5. with a ``response`` block, the two response intercepts for the population response
   probabilities (:func:`simulator.response.calibrate_intercepts`), on the population of
   steps 1-4, which are those of the scenario without the block (calibrated, or read
   from the caches, as such).

The population (covariate sample or super-population) is the same for every trial value,
so each target is a smooth function of its parameter.  Unreachable targets raise
:class:`~simulator.exceptions.CalibrationError` naming the target and the reachable range.
Results are cached per scenario (a bounded in-memory LRU, the shipped data of built-in
scenarios, the user cache directory).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logit

from . import _cohort_kernels as K
from . import cache, exact, response
from .exceptions import CalibrationError
from .features import FEATURES, INDEX, N_FEATURES
from .marginal import censor, marginal_log_hr
from .plan import (
    Solved,
    build_plan,
    coef_vector,
    outcome_matrix,
    scenario_shapes,
    solved_outcome_matrix,
)
from .scenario import Scenario
from .streams import as_seed_sequence, chunk_streams

CALIBRATION_VERSION = 2
METHODS = ("exact", "montecarlo")
GAMMA_RANGE = (-3.0, 3.0)  # conditional log-HRs the solve may use (HR 0.05 to 20)
MIN_POPULATION = 10_000
MEMORY_SIZE = 256


class LRU(OrderedDict):
    """A dict that keeps the ``size`` most recently used entries (module-level caches)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get(self, key, default=None):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


_MEMORY: LRU = LRU(MEMORY_SIZE)
_KEYS: LRU = LRU(MEMORY_SIZE)
# intermediate solves keyed by a digest of their inputs (treatment moment matching; the
# outcome steps 3-4 of the exact solve), shared by scenarios that differ elsewhere
_STEPS: LRU = LRU(64)


# ---- the super-population --------------------------------------------------------------
@dataclass
class Population:
    """What calibration and truth need of a super-population, drawn like the cohort kernel.

    feats (n, N_FEATURES) float32; u_treat, frailty, c_admin (n,); lp, ee (3, n): the
    covariate linear predictors (no treatment term) and exponential draws of the three
    transitions.  ``treated`` is filled once the treatment model is known.
    """

    feats: np.ndarray
    u_treat: np.ndarray
    frailty: np.ndarray
    lp: np.ndarray
    ee: np.ndarray
    c_admin: np.ndarray
    treated: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.u_treat.size

    def head(self, k: int) -> Population:
        """The first ``k`` patients (copies, so kernels see contiguous arrays)."""
        t = None if self.treated is None else self.treated[:k].copy()
        return Population(
            self.feats[:k].copy(),
            self.u_treat[:k].copy(),
            self.frailty[:k].copy(),
            np.ascontiguousarray(self.lp[:, :k]),
            np.ascontiguousarray(self.ee[:, :k]),
            self.c_admin[:k].copy(),
            t,
        )


def draw_population(sc: Scenario, solved: Solved, n: int, seed) -> Population:
    """Draw ``n`` patients of ``sc`` (same draws as ``simulate(sc, n, seed)``)."""
    plan = build_plan(sc, solved)
    gn, gu, ge = chunk_streams(seed, n)
    pop = Population(
        feats=np.empty((n, N_FEATURES), dtype=np.float32),
        u_treat=np.empty(n),
        frailty=np.empty(n),
        lp=np.empty((3, n)),
        ee=np.empty((3, n)),
        c_admin=np.empty(n),
    )
    K._population(
        gn,
        gu,
        ge,
        n,
        *plan.patient_args,
        pop.feats,
        pop.u_treat,
        pop.frailty,
        pop.lp,
        pop.ee,
        pop.c_admin,
    )
    return pop


def potential_times(pop: Population, om: np.ndarray, a: float) -> tuple[np.ndarray, np.ndarray]:
    """Uncensored potential (rwPFS, OS) in months under arm ``a`` for the population."""
    pfs, os_ = np.empty(pop.n), np.empty(pop.n)
    K._potential_times(pop.lp, pop.ee, float(a), om, pfs, os_)
    return pfs, os_


def propensity(sc: Scenario, solved: Solved, pop: Population) -> np.ndarray:
    """True propensity scores of the population under the solved treatment model."""
    t = sc.treatment
    eta = solved.treatment_intercept + pop.feats @ solved.treatment_coef.astype(np.float32)
    eta = eta.astype(np.float64) + t.frailty_log_or * t.strength * pop.frailty
    lo, hi = t.ps_bounds
    return lo + (hi - lo) * expit(eta)


# ---- step 1: missingness -----------------------------------------------------------------
def _missing_intercept(sc: Scenario, pop: Population | None) -> float:
    miss = sc.covariates.ecog_missing
    if miss.share == 0.0:
        return -math.inf
    if miss.mechanism == "mcar" or pop is None:  # pop None: a first guess before the solve
        return float(logit(miss.share))
    f = pop.feats
    ecog = f[:, INDEX["ecog_1"]] + 2.0 * f[:, INDEX["ecog_2plus"]]
    lin = (
        miss.age_log_or * f[:, INDEX["age10"]]
        + miss.academic_log_or * f[:, INDEX["academic"]]
        + miss.ecog_log_or * ecog
    ).astype(np.float64)
    return _root(lambda a0: float(np.mean(expit(a0 + lin))) - miss.share, -40.0, 40.0)


# ---- step 2: treatment --------------------------------------------------------------------
def _moment_match(
    sc: Scenario, pop: Population, cols: np.ndarray, offset: np.ndarray
) -> np.ndarray:
    """Intercept and coefficients whose logistic model reproduces the treated-arm means
    (memoised on its inputs: it does not depend on ``treatment.strength``)."""
    t = sc.treatment
    key = _digest(pop.feats, cols, offset, t.fraction, t.ps_bounds, t.arm_means)
    found = _STEPS.get(key)
    if found is None:
        found = _moment_match_solve(sc, pop, cols, offset)
        _STEPS[key] = found
    return found.copy()


def _moment_match_solve(
    sc: Scenario, pop: Population, cols: np.ndarray, offset: np.ndarray
) -> np.ndarray:
    t = sc.treatment
    lo, hi = t.ps_bounds
    names = [FEATURES[c] for c in cols]
    target = np.array([t.fraction] + [t.fraction * t.arm_means[k][0] for k in names])
    theta = np.zeros(cols.size + 1)
    theta[0] = float(logit((t.fraction - lo) / (hi - lo)))

    def residual(th):
        g, h = K._logistic_moments(pop.feats, cols, th[1:], th[0], offset, lo, hi)
        return g / pop.n - target, h / pop.n

    r, h = residual(theta)
    for _ in range(100):
        if np.max(np.abs(r)) < 1e-11:
            return theta
        step = np.linalg.solve(h, r)
        for _half in range(30):
            trial = theta - step
            r_new, h_new = residual(trial)
            if np.linalg.norm(r_new) < np.linalg.norm(r):
                break
            step /= 2.0
        theta, r, h = trial, r_new, h_new
    raise CalibrationError(
        f"treatment.arm_means cannot be reproduced by a logistic treatment model "
        f"(moment equations did not converge, largest residual {np.max(np.abs(r)):.2e}); "
        "check that the per-arm targets are feasible"
    )


def _treatment(sc: Scenario, pop: Population) -> tuple[np.ndarray, float]:
    """(coefficient vector after strength, intercept) of the treatment model."""
    t = sc.treatment
    lo, hi = t.ps_bounds
    if t.randomised:
        return np.zeros(N_FEATURES), float(logit((t.fraction - lo) / (hi - lo)))
    offset = t.frailty_log_or * pop.frailty
    if t.arm_means:
        cols = np.array(sorted(INDEX[k] for k in t.arm_means), dtype=np.int64)
        theta = _moment_match(sc, pop, cols, offset)
        coef = np.zeros(N_FEATURES)
        coef[cols] = theta[1:]
    else:
        coef = coef_vector(t.coefficients)
    coef = coef * t.strength
    lin = (pop.feats @ coef.astype(np.float32)).astype(np.float64) + t.strength * offset
    b0 = _root(lambda b: float(np.mean(lo + (hi - lo) * expit(b + lin))) - t.fraction, -60.0, 60.0)
    return coef, b0


# ---- step 3: scales ----------------------------------------------------------------------
def _control_times(sc: Scenario, pop: Population, scales, which: int, shapes=None):
    om = outcome_matrix(sc, scales, 0.0, 0.0, shapes)
    return potential_times(pop, om, 0.0)[which]


def _control_median(sc: Scenario, pop: Population, scales, which: int, shapes=None) -> float:
    t = _control_times(sc, pop, scales, which, shapes)
    return float(np.median(t, overwrite_input=True))


def _scales(sc: Scenario, pop: Population):
    """(scales, shapes or None): Weibull scales for the control medians (and the shape of
    post-progression death for a control OS survival target)."""
    o = sc.outcomes
    if o.scales is not None:
        return o.scales, None
    med, share = o.pfs_median_control, o.death_share
    h = math.log(2.0) / med
    x = (math.log(h * (1.0 - share)), math.log(share / (1.0 - share)))
    if pop.n > 200_000:  # a prefix solve puts the full solve next to the root
        x = _pfs_scales(sc, pop.head(pop.n // 10), med, share, x, width=10.0)
    x = _pfs_scales(sc, pop, med, share, x, width=0.05)
    l01, l02, _ = _pair(*x)
    if o.os_survival_control is None:
        return (l01, l02, _os_scale(sc, pop, l01, l02, None)), None
    t_star, s_star = o.os_survival_control
    base = scenario_shapes(sc)

    def survival_gap(log_nu):
        shapes = (base[0], base[1], math.exp(log_nu))
        l12 = _os_scale(sc, pop, l01, l02, shapes)
        t = _control_times(sc, pop, (l01, l02, l12), 1, shapes)
        return float(np.mean(t > t_star)) - s_star

    log_nu = _root(survival_gap, math.log(base[2]) - 1.0, math.log(base[2]) + 1.0, xtol=1e-7)
    shapes = (base[0], base[1], math.exp(log_nu))
    return (l01, l02, _os_scale(sc, pop, l01, l02, shapes)), shapes


def _os_scale(sc: Scenario, pop: Population, l01: float, l02: float, shapes) -> float:
    """Post-progression death scale for the control OS median."""
    omed = sc.outcomes.os_median_control

    def os_gap(l12):
        return math.log(_control_median(sc, pop, (l01, l02, math.exp(l12)), 1, shapes) / omed)

    start = math.log(math.log(2.0) / omed)
    return math.exp(_root(os_gap, start - 10.0, start + 10.0))


def _pfs_scales(sc, pop, med, share, x, width):
    """(log overall scale, log lambda_02/lambda_01) for the rwPFS median and death share.

    Alternates two monotone roots: the share of deaths is a step function of the ratio
    on a finite population (so it is solved to 1e-7, far below its Monte Carlo error),
    the median a continuous function of the overall scale (solved to 1e-12).
    """
    log_c, log_ratio = x
    for _ in range(25):

        def pfs_gap(lc, lr=log_ratio):
            return math.log(_control_median(sc, pop, _pair(lc, lr), 0) / med)

        log_c = _root(pfs_gap, log_c - width, log_c + width)

        def share_gap(lr, lc=log_c):
            return (
                K._death_first_share(pop.lp, pop.ee, outcome_matrix(sc, _pair(lc, lr), 0.0, 0.0))
                - share
            )

        new_ratio = _root(share_gap, log_ratio - width, log_ratio + width, xtol=1e-7)
        moved, log_ratio = abs(new_ratio - log_ratio), new_ratio
        # the share is a step function on a finite population: on small ones the ratio
        # can hop between neighbouring steps, so the stopping rule scales with 1/n
        if moved < 1e-6 * max(1.0, 1e6 / pop.n):
            break
    pfs_gap_final = lambda lc: math.log(_control_median(sc, pop, _pair(lc, log_ratio), 0) / med)  # noqa: E731
    return _root(pfs_gap_final, log_c - width, log_c + width), log_ratio


def _pair(log_c: float, log_ratio: float) -> tuple[float, float, float]:
    return math.exp(log_c), math.exp(log_c + log_ratio), 1.0


# ---- step 4: treatment effects -----------------------------------------------------------
def _effect_gap(sc: Scenario, pop: Population, scales, shapes, outcome: str, gamma_pfs: float):
    """Function gamma -> (achieved - target) on the log scale, for one outcome."""
    o = sc.outcomes
    which = 0 if outcome == "pfs" else 1
    sel = slice(None) if o.hr_estimand == "ATE" else pop.treated
    c = pop.c_admin[sel]

    def gammas(g):
        return (g, 0.0) if outcome == "pfs" else (gamma_pfs, g)

    t0 = potential_times(pop, outcome_matrix(sc, scales, *gammas(0.0), shapes), 0.0)[which]
    target_hr = getattr(o, f"{outcome}_hr")
    if target_hr is not None:
        y0, d0 = censor(t0[sel], c)

        def gap(g):
            t1 = potential_times(pop, outcome_matrix(sc, scales, *gammas(g), shapes), 1.0)[which]
            y1, d1 = censor(t1[sel], c)
            return marginal_log_hr(y0, d0, y1, d1) - math.log(target_hr)

        return gap, target_hr == 1.0
    target_med = getattr(o, f"{outcome}_median_treated")
    same = target_med == getattr(o, f"{outcome}_median_control")

    def gap_med(g):
        t1 = potential_times(pop, outcome_matrix(sc, scales, *gammas(g), shapes), 1.0)[which]
        return math.log(float(np.median(t1)) / target_med)

    return gap_med, same


def _gamma(
    sc: Scenario, pop: Population, scales, shapes, outcome: str, gamma_pfs: float = 0.0
) -> float:
    raw = getattr(sc.outcomes, f"gamma_{outcome}")
    if raw is not None:
        return raw
    gap, is_null = _effect_gap(sc, pop, scales, shapes, outcome, gamma_pfs)
    if is_null:
        return 0.0
    lo, hi = -5.0, 5.0
    if pop.n > 200_000:  # a prefix solve narrows the bracket for the full population
        g0 = _gamma(sc, pop.head(pop.n // 10), scales, shapes, outcome, gamma_pfs)
        lo, hi = g0 - 0.03, g0 + 0.03
    return _root(gap, lo, hi, xtol=1e-9)


# ---- root finding --------------------------------------------------------------------------
def _root(f, lo: float, hi: float, xtol: float = 1e-12) -> float:
    """brentq on [lo, hi], widening the bracket (x2 around the middle) up to 8 times."""
    flo, fhi = f(lo), f(hi)
    for _ in range(8):
        if flo * fhi <= 0:
            return float(brentq(f, lo, hi, xtol=xtol, rtol=4 * np.finfo(float).eps))
        mid, half = (lo + hi) / 2.0, (hi - lo)
        lo, hi = mid - half, mid + half
        flo, fhi = f(lo), f(hi)
    raise CalibrationError("calibration target is out of reach: no sign change of the target gap")


# ---- the calibration record and cache ------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """Solved parameters of a scenario and what they achieve on the calibration population."""

    key: str
    solved: Solved
    achieved: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        s = asdict(self.solved)
        s["treatment_coef"] = {
            FEATURES[i]: float(v) for i, v in enumerate(self.solved.treatment_coef) if v
        }
        s["scales"] = list(self.solved.scales)
        if self.solved.shapes is None:
            del s["shapes"]
        else:
            s["shapes"] = list(self.solved.shapes)
        if self.solved.response_intercepts is None:  # no response: the layout as before
            del s["response_intercepts"]
        else:
            s["response_intercepts"] = list(self.solved.response_intercepts)
        return {"key": self.key, "solved": s, "achieved": self.achieved}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Calibration:
        s = dict(d["solved"])
        s["treatment_coef"] = coef_vector(s["treatment_coef"])
        s["scales"] = tuple(s["scales"])
        if s.get("shapes") is not None:
            s["shapes"] = tuple(s["shapes"])
        if s.get("response_intercepts") is not None:
            s["response_intercepts"] = tuple(s["response_intercepts"])
        return cls(key=d["key"], solved=Solved(**s), achieved=d.get("achieved", {}))


def calibration_key(sc: Scenario, method: str = "exact") -> str:
    """Cache key: only the parameters calibration depends on (plus format versions)."""
    fp = (sc.fingerprint(), method)
    found = _KEYS.get(fp)
    if found is None:
        found = _KEYS[fp] = _calibration_key(sc, method)
    return found


def _calibration_key(sc: Scenario, method: str) -> str:
    d = sc.to_dict()
    relevant = {
        "covariates": d["covariates"],
        "treatment": d["treatment"],
        "outcomes": d["outcomes"],
        "admin": [sc.censoring.accrual_months, sc.censoring.followup_months],
        "versions": [K.LAYOUT_VERSION, CALIBRATION_VERSION],
    }
    if "response" in d:  # only then: scenarios without a response keep their keys
        relevant["response"] = d["response"]
    if method == "montecarlo":
        relevant["population"] = [sc.calibration.population, sc.calibration.seed]
    else:
        relevant["exact"] = [
            exact.SAMPLE_LOG2,
            exact.SAMPLE_GROUPS,
            exact.STEP,
            sc.calibration.seed,
        ]
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:24]


def _read_cache(key: str) -> Calibration | None:
    found = _MEMORY.get(key)
    if found is not None:
        return found
    record = cache.read("calibration", key)
    try:
        return None if record is None else Calibration.from_json(record)
    except (ValueError, KeyError, TypeError):
        return None


def remember(cal: Calibration) -> None:
    """Put a calibration computed elsewhere (e.g. in a parent process) in the memory cache."""
    _MEMORY[cal.key] = cal


def is_calibrated(sc: Scenario, method: str = "exact") -> bool:
    """Whether a calibration of ``sc`` is in memory, shipped or in the user cache (no solve)."""
    _check_method(method)
    key = calibration_key(sc, method)
    return key in _MEMORY or cache.read("calibration", key) is not None


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise CalibrationError(f"method={method!r} is not allowed; use one of {METHODS}")


def calibrate(sc: Scenario, *, use_cache: bool = True, method: str = "exact") -> Calibration:
    """Solved parameters for ``sc`` (from cache when available).

    Parameters
    ----------
    sc : Scenario
    use_cache : bool
        False forces a fresh solve (the result still refreshes the caches).
    method : {"exact", "montecarlo"}
        Exact integration (seconds) or the simulated super-population (the oracle).

    Raises
    ------
    CalibrationError
        A target the model cannot reach (names the target and the reachable range).
    """
    _check_method(method)
    validate_targets(sc)
    key = calibration_key(sc, method)
    cal = _read_cache(key) if use_cache else None
    if cal is None:
        if sc.response is not None:  # steps 1-4 are those of the scenario without it
            base = calibrate(sc.replace(response=None), use_cache=use_cache, method=method)
            cal = _solve_response(sc, key, base, method)
        else:
            cal = _solve_exact(sc, key) if method == "exact" else _solve(sc, key)
        cache.write("calibration", key, cal.to_json())
    _MEMORY[key] = cal
    return cal


# ---- semantic validation -------------------------------------------------------------------
def validate_targets(sc: Scenario) -> None:
    """Targets that no illness-death model can meet, found before any work."""
    o, c = sc.outcomes, sc.calibration
    if c.population < MIN_POPULATION:
        raise CalibrationError(
            f"calibration.population={c.population!r} is not allowed; the super-population "
            f"needs at least {MIN_POPULATION:,} patients",
            target="calibration.population",
            value=c.population,
        )
    for arm in ("control", "treated"):
        pfs, os_ = getattr(o, f"pfs_median_{arm}"), getattr(o, f"os_median_{arm}")
        if pfs is not None and os_ is not None and os_ <= pfs:
            raise CalibrationError(
                f"outcomes.os_median_{arm}={os_!r} is not allowed with "
                f"outcomes.pfs_median_{arm}={pfs!r}: OS cannot end before rwPFS (death ends "
                f"rwPFS too), so the OS median must be > {pfs!r} months",
                target=f"outcomes.os_median_{arm}",
                value=os_,
                reachable=(pfs, math.inf),
            )


def _unreachable(target: str, value: float, lo: float, hi: float, unit: str, why: str):
    lo, hi = min(lo, hi), max(lo, hi)
    return CalibrationError(
        f"{target}={value!r} cannot be reached: {why} it ranges over "
        f"[{lo:.4g}, {hi:.4g}]{unit}; choose a target in that range",
        target=target,
        value=value,
        reachable=(lo, hi),
    )


def _bracketed_root(f, lo: float, hi: float, x0: float, width: float, xtol: float) -> float | None:
    """Root of f in [lo, hi] near x0 (None when f has one sign at both ends)."""
    a, b = max(lo, x0 - width), min(hi, x0 + width)
    fa, fb = f(a), f(b)
    if fa * fb > 0:
        a, b = lo, hi
        fa, fb = f(a), f(b)
        if fa * fb > 0:
            return None
    return float(brentq(f, a, b, xtol=xtol, rtol=4 * np.finfo(float).eps))


def _secant_root(f, x0: float, lo: float, hi: float, xtol: float) -> float | None:
    """Root of a smooth monotone f near x0 by the secant method, falling back to a
    bracketed search on [lo, hi] (None when f has one sign at both ends)."""
    a, b = x0, x0 + 0.01
    fa, fb = f(a), f(b)
    for _ in range(30):
        if fb == fa:
            break
        c = b - fb * (b - a) / (fb - fa)
        if not lo <= c <= hi or not math.isfinite(c):
            break
        a, fa, b = b, fb, c
        fb = f(b)
        if abs(b - a) < xtol:
            return b
    return _bracketed_root(f, lo, hi, x0, 0.15, xtol)


def _newton2(f, x0, tol: float, names: str, max_iter: int = 40, J0=None) -> np.ndarray:
    """Two equations: Newton with Broyden updates of the Jacobian, starting from ``J0``
    (an approximate Jacobian) or a finite-difference one; a stale Jacobian is refreshed
    by finite differences."""
    x = np.asarray(x0, dtype=np.float64)
    r = f(x)
    J = None if J0 is None else np.array(J0, dtype=np.float64)
    for _ in range(max_iter):
        if np.max(np.abs(r)) < tol:
            return x
        fresh = J is None
        if fresh:
            J = np.empty((2, 2))
            for k in range(2):
                e = np.zeros(2)
                e[k] = 1e-6
                J[:, k] = (f(x + e) - r) / 1e-6
        step = np.linalg.solve(J, r)
        for _half in range(40):
            trial = x - step
            r_new = f(trial)
            if np.all(np.isfinite(r_new)) and np.linalg.norm(r_new) < np.linalg.norm(r):
                break
            step = step / 2.0
        else:
            if fresh:
                break
            J = None  # a stale Broyden Jacobian: refresh it
            continue
        dx, dr = trial - x, r_new - r
        J = J + np.outer(dr - J @ dx, dx) / float(dx @ dx)
        x, r = trial, r_new
    raise CalibrationError(
        f"{names} cannot be reached together (largest relative gap {np.max(np.abs(r)):.2e} "
        "after Newton steps); check that the targets are compatible",
        target=names,
    )


# ---- the exact solve -------------------------------------------------------------------------
def _solve_exact(sc: Scenario, key: str) -> Calibration:
    start = time.perf_counter()
    points = exact.sobol_points(exact.SAMPLE_LOG2, exact.SAMPLE_GROUPS, sc.calibration.seed)
    base = Solved(
        np.zeros(N_FEATURES), 0.0, _missing_intercept(sc, None), (1.0, 1.0, 1.0), 0.0, 0.0
    )
    sample = exact.sample_for(sc, base, points)
    if sc.covariates.ecog_missing.mechanism != "mcar":
        base = replace(base, missing_intercept=_missing_intercept(sc, sample))
        sample = exact.sample_for(sc, base, points)
    coef, b0 = _treatment(sc, sample)
    base = replace(base, treatment_coef=coef, treatment_intercept=b0)
    sample = exact.sample_for(sc, base, points)
    key34 = _outcome_solve_key(sc, sample)
    found = _STEPS.get(key34)
    if found is None:
        solver = _ExactSolver(sc, sample)
        scales, shapes = solver.scales()
        g_pfs = solver.gamma(scales, shapes, "pfs")
        g_os = solver.gamma(scales, shapes, "os", g_pfs)
        found = (scales, shapes, g_pfs, g_os, dict(solver.achieved))
        _STEPS[key34] = found
    scales, shapes, g_pfs, g_os, achieved34 = found
    solved = replace(base, scales=scales, gamma_pfs=g_pfs, gamma_os=g_os, shapes=shapes)
    achieved = {
        "method": "exact",
        "population": sample.n,
        "treated_fraction": float(sample.ps.mean()),
        **achieved34,
    }
    e = sample.ps
    achieved["treated_means"] = dict(
        zip(FEATURES, (e @ sample.feats / e.sum()).tolist(), strict=True)
    )
    achieved["control_means"] = dict(
        zip(FEATURES, ((1 - e) @ sample.feats / (1 - e).sum()).tolist(), strict=True)
    )
    achieved["seconds"] = round(time.perf_counter() - start, 3)
    return Calibration(key=key, solved=solved, achieved=achieved)


def _digest(*parts) -> str:
    """Hash of arrays (their bytes, shape and type) and JSON-able values."""
    h = hashlib.blake2b(digest_size=16)
    for x in parts:
        if isinstance(x, np.ndarray):
            a = np.ascontiguousarray(x)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.data)
        else:
            h.update(json.dumps(x, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _outcome_solve_key(sc: Scenario, sample: exact.CovariateSample) -> str:
    """Everything steps 3-4 of the exact solve read: the outcome and censoring settings,
    the sample's linear predictors and the weights of the HR population (the treatment
    model enters only through them, so e.g. the cells of a ``treatment.strength`` grid
    with an ATE target share one solve)."""
    d = sc.to_dict()
    wts = sample.weights(sc.outcomes.hr_estimand) if sc.outcomes.hr_estimand != "ATE" else None
    return _digest(d["outcomes"], d["censoring"], sample.bounds, sample.lp, wts)


class _ExactSolver:
    """Steps 3-4 of the solve on the exact engine's marginal functions."""

    def __init__(self, sc: Scenario, sample: exact.CovariateSample) -> None:
        self.sc, self.sample = sc, sample
        self.grid = exact.truth_grid(sc)
        self.ones = np.ones((1, sample.n))
        self.achieved: dict[str, Any] = {}

    def _engine(self, months: float | None, shapes, tail: bool = False) -> exact.Engine:
        g = self.grid
        if tail:  # a coarse tail: enough for the (smooth) death share
            grid = exact.TimeGrid.build(g.h, min(months, g.t[g.j_uniform]), exact.T_MAX, 1.25)
        else:
            grid = exact.prefix(g, months)
        return exact.Engine(grid, shapes)

    def _rows(self, population: str) -> np.ndarray:
        return self.sample.weights(population)[None, :]

    # -- step 3
    def scales(self):
        o = self.sc.outcomes
        if o.scales is not None:
            return o.scales, None
        base = scenario_shapes(self.sc)
        med, share = o.pfs_median_control, o.death_share
        eng = self._engine(1.6 * med, base, tail=True)

        def pfs_gaps(x):
            om = outcome_matrix(self.sc, _pair(*x), 0.0, 0.0, base)
            c, _ = eng.accumulate(self.sample, om, 0.0, self.ones, want_os=False, want_share=True)
            S = c.pooled("pfs")[0]
            m = exact.median(eng.grid.t, S)
            d = float(c.death.sum() / c.wsum.sum())
            if not math.isfinite(m):
                m = 2.0 * eng.grid.t[eng.grid.j_uniform]
            self.achieved["pfs_median_control"] = m
            self.achieved["death_share_control"] = d
            return np.array([math.log(m / med), float(logit(d) - logit(share))])

        h = math.log(2.0) / med
        x0 = (math.log(h * (1.0 - share)), math.log(share / (1.0 - share)))
        # the Jacobian of a homogeneous population (both hazards scale with exp(log_c), so
        # the median with exp(-log_c / nu); logit(share) moves one-for-one with the log
        # ratio) saves the finite-difference one; Broyden updates correct it
        nu = (1.0 - share) * base[0] + share * base[1]
        J0 = ((-1.0 / nu, -share / nu), (0.0, 1.0))
        # the last evaluation is the accepted point: achieved holds its values
        x = _newton2(
            pfs_gaps, x0, 1e-11, "outcomes.pfs_median_control and outcomes.death_share", J0=J0
        )
        l01, l02, _ = _pair(*x)
        omed = o.os_median_control
        eng_os = self._engine(2.5 * omed, base)
        om = outcome_matrix(self.sc, (l01, l02, 1.0), 0.0, 0.0, base)
        _, sp = eng_os.accumulate(self.sample, om, 0.0, self.ones)
        W = float(self.ones.sum())
        t = eng_os.grid.t

        def os_curve(l12, nu):
            return eng_os.os_curves(sp, l12, nu=nu).sum(axis=0)[0] / W

        def os_median(l12, nu):
            m = exact.median(t, os_curve(l12, nu))
            return 2.0 * t[-1] if not math.isfinite(m) else m

        def scale_for_median(nu, x0=None):
            start = math.log(math.log(2.0) / omed) if x0 is None else x0
            gap = lambda lx: math.log(os_median(math.exp(lx), nu) / omed)  # noqa: E731
            root = _bracketed_root(gap, start - 14.0, start + 14.0, start, 1.0, 1e-12)
            if root is None:
                lo, hi = (
                    os_median(math.exp(start + 14.0), nu),
                    os_median(math.exp(start - 14.0), nu),
                )
                hi_txt = hi if hi < t[-1] else math.inf
                raise _unreachable(
                    "outcomes.os_median_control",
                    omed,
                    lo,
                    hi_txt,
                    " months",
                    f"with pfs_median_control={med} and death_share={share} the OS median "
                    "depends only on post-progression death, and",
                )
            return root

        if o.os_survival_control is None:
            l12 = math.exp(scale_for_median(base[2]))
            self.achieved["os_median_control"] = os_median(l12, base[2])
            return (l01, l02, l12), None
        t_star, s_star = o.os_survival_control
        lx0 = scale_for_median(base[2])

        def os_gaps(x):
            l12, nu = math.exp(x[0]), math.exp(x[1])
            S = os_curve(l12, nu)
            m = exact.median(t, S)
            m = 2.0 * t[-1] if not math.isfinite(m) else m
            s = exact.survival_at(t, S, t_star)
            self.achieved["os_median_control"] = m
            self.achieved[f"os_survival{t_star:g}_control"] = s
            return np.array(
                [math.log(m / omed), float(logit(min(max(s, 1e-300), 1 - 1e-16)) - logit(s_star))]
            )

        x = _newton2(
            os_gaps,
            (lx0, math.log(base[2])),
            1e-11,
            "outcomes.os_median_control and outcomes.os_survival_control",
        )
        shapes = (base[0], base[1], math.exp(x[1]))
        return (l01, l02, math.exp(x[0])), shapes

    # -- step 4
    def gamma(self, scales, shapes, outcome: str, gamma_pfs: float = 0.0) -> float:
        sc, o = self.sc, self.sc.outcomes
        raw = getattr(o, f"gamma_{outcome}")
        if raw is not None:
            return raw
        shapes_ = scenario_shapes(sc) if shapes is None else shapes
        target_hr = getattr(o, f"{outcome}_hr")
        target_med = getattr(o, f"{outcome}_median_treated")
        if target_hr is not None:
            if target_hr == 1.0:
                return 0.0
            population = o.hr_estimand
            months = sc.censoring.cutoff_months
            target, value, goal = f"outcomes.{outcome}_hr", target_hr, math.log(target_hr)
            start = 1.05 * goal
        else:
            if target_med == getattr(o, f"{outcome}_median_control"):
                return 0.0
            population = "ATE"
            months = 2.5 * target_med
            target, value = f"outcomes.{outcome}_median_treated", target_med
            goal = math.log(target_med)
            start = -math.log(target_med / getattr(o, f"{outcome}_median_control"))
        eng = self._engine(months, shapes_)
        t = eng.grid.t
        rows = self._rows(population)
        W = float(rows.sum())
        cells = exact.admin_survival_cells(
            eng.grid, sc.censoring.accrual_months, sc.censoring.cutoff_months
        )

        def measure(S0, S1):
            if target_hr is not None:
                return exact.cox_root(S0, S1, cells)[0]
            m = exact.median(t, S1)
            return math.log(2.0 * t[-1] if not math.isfinite(m) else m)

        om0 = outcome_matrix(sc, scales, gamma_pfs if outcome == "os" else 0.0, 0.0, shapes_)
        want_os = outcome == "os"
        c0, sp0 = eng.accumulate(self.sample, om0, 0.0, rows, want_os=want_os)
        if outcome == "pfs":
            S0 = c0.pooled("pfs")[0]

            def value_at(g):
                om1 = outcome_matrix(sc, scales, g, 0.0, shapes_)
                c1, _ = eng.accumulate(self.sample, om1, 1.0, rows, want_os=False)
                return measure(S0, c1.pooled("pfs")[0])
        else:
            S0 = eng.os_curves(sp0, scales[2]).sum(axis=0)[0] / W
            om1 = outcome_matrix(sc, scales, gamma_pfs, 0.0, shapes_)
            _, sp1 = eng.accumulate(self.sample, om1, 1.0, rows)

            def value_at(g):
                return measure(S0, eng.os_curves(sp1, scales[2] * math.exp(g)).sum(axis=0)[0] / W)

        seen: dict[float, float] = {}

        def gap(g):
            if g not in seen:
                seen[g] = value_at(g)
            return seen[g] - goal

        lo, hi = GAMMA_RANGE
        root = _secant_root(gap, start, lo, hi, 1e-10)
        if root is None:
            a, b = math.exp(gap(hi) + goal), math.exp(gap(lo) + goal)
            what = "marginal HR" if target_hr is not None else "treated median"
            raise _unreachable(
                target,
                value,
                a,
                b,
                "" if target_hr is not None else " months",
                f"with the conditional log-HR of treatment in [{lo:g}, {hi:g}] the {what} "
                f"({population}, given the other parameters)",
            )
        key = (
            f"{outcome}_hr_{population.lower()}"
            if target_hr is not None
            else f"{outcome}_median_treated"
        )
        self.achieved[key] = math.exp(gap(root) + goal)
        return root


def _solve_response(sc: Scenario, key: str, base: Calibration, method: str) -> Calibration:
    """Step 5: the response intercepts, on top of the calibration of the scenario without
    its response block (the response does not enter steps 1-4, so a scenario and its
    response variant share them; a built-in's shipped calibration serves both)."""
    start = time.perf_counter()
    if method == "exact":
        pop = exact.sample_for(sc, base.solved)  # the points of steps 1-4
    else:
        c = sc.calibration
        pop = draw_population(sc, base.solved, c.population, as_seed_sequence(c.seed))
    intercepts, reached = response.calibrate_intercepts(sc.response, pop.feats, pop.frailty)
    achieved = {**base.achieved, **reached}
    achieved["seconds"] = round(base.achieved.get("seconds", 0.0) + time.perf_counter() - start, 3)
    solved = replace(base.solved, response_intercepts=intercepts)
    return Calibration(key=key, solved=solved, achieved=achieved)


def _solve(sc: Scenario, key: str) -> Calibration:
    """The Monte Carlo solve on ``calibration.population`` simulated patients."""
    start = time.perf_counter()
    m, seed = sc.calibration.population, as_seed_sequence(sc.calibration.seed)
    base = Solved(
        np.zeros(N_FEATURES), 0.0, _missing_intercept(sc, None), (1.0, 1.0, 1.0), 0.0, 0.0
    )
    pop = draw_population(sc, base, m, seed)
    if sc.covariates.ecog_missing.mechanism != "mcar":
        base = Solved(base.treatment_coef, 0.0, _missing_intercept(sc, pop), base.scales, 0.0, 0.0)
        pop = draw_population(sc, base, m, seed)
    coef, b0 = _treatment(sc, pop)
    solved = Solved(coef, b0, base.missing_intercept, base.scales, 0.0, 0.0)
    pop.treated = pop.u_treat < propensity(sc, solved, pop)
    scales, shapes = _scales(sc, pop)
    g_pfs = _gamma(sc, pop, scales, shapes, "pfs")
    g_os = _gamma(sc, pop, scales, shapes, "os", g_pfs)
    solved = Solved(coef, b0, base.missing_intercept, scales, g_pfs, g_os, shapes)
    achieved = {"method": "montecarlo", **_achieved(sc, solved, pop)}
    achieved["seconds"] = round(time.perf_counter() - start, 2)
    return Calibration(key=key, solved=solved, achieved=achieved)


def _achieved(sc: Scenario, solved: Solved, pop: Population) -> dict[str, Any]:
    """What the solved parameters give on the calibration population (a report)."""
    om0 = solved_outcome_matrix(sc, solved)
    t0, t1 = potential_times(pop, om0, 0.0), potential_times(pop, om0, 1.0)
    a = pop.treated
    sel = slice(None) if sc.outcomes.hr_estimand == "ATE" else a
    out: dict[str, Any] = {
        "population": pop.n,
        "treated_fraction": float(a.mean()),
        "death_share_control": float(K._death_first_share(pop.lp, pop.ee, om0)),
    }
    for which, name in ((0, "pfs"), (1, "os")):
        y0, d0 = censor(t0[which][sel], pop.c_admin[sel])
        y1, d1 = censor(t1[which][sel], pop.c_admin[sel])
        out[f"{name}_median_control"] = float(np.median(t0[which]))
        out[f"{name}_median_treated"] = float(np.median(t1[which]))
        out[f"{name}_survival24_control"] = float(np.mean(t0[which] > 24.0))
        out[f"{name}_survival24_treated"] = float(np.mean(t1[which] > 24.0))
        out[f"{name}_hr_{sc.outcomes.hr_estimand.lower()}"] = math.exp(
            marginal_log_hr(y0, d0, y1, d1)
        )
    f = pop.feats
    out["treated_means"] = {k: float(v) for k, v in zip(FEATURES, f[a].mean(axis=0), strict=True)}
    out["control_means"] = {k: float(v) for k, v in zip(FEATURES, f[~a].mean(axis=0), strict=True)}
    return out
