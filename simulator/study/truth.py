"""The true estimands of a scenario, with their error bounds (docs/truth.md).

Two engines compute the same definitions:

* ``method="exact"`` (default, seconds): every marginal estimand by integrating the
  generating model's closed-form conditional survival over a quasi-random covariate
  sample on a time grid (:mod:`simulator.exact`), the conditional log-HR included (the
  root of the adjusted Cox model's population score);
* ``method="montecarlo"`` (the independent oracle, about a minute): everything on
  ``calibration.truth_population`` simulated patients (``truth_seed``).

For each outcome (rwPFS with the true, not visit-recorded, progression time; OS) both
potential outcomes of every patient are compared:

* ``{pop}_log_hr`` — the marginal Cox log-HR of the two-arm potential-outcome population
  ``pop`` (``ate`` everyone, ``att`` weights e(x), ``atc`` 1 - e(x), ``ato`` e(1 - e),
  ``atm`` min(e, 1 - e), with the true propensity score e) under the scenario's
  administrative censoring (staggered entry, data cutoff), ``*_uncensored`` without it,
  ``*_study_censoring`` under the whole observation process (administrative, loss to
  follow-up with its covariate dependence, next-therapy for rwPFS) at the control arm's
  rates, so that both potential outcomes of a patient are censored identically; the
  marginal hazards are not proportional, so the Cox estimand depends on the censoring;
* ``conditional_log_hr`` — the treatment coefficient of a Cox model adjusted for every
  covariate of the outcome model (and the frailty, when there is one) in the stacked,
  administratively censored data: the estimand of a correctly adjusted Cox model;
* ``generating_log_hr`` — the coefficient used to generate the data (``gamma_pfs``;
  for OS ``gamma_os``, which acts on post-progression death only, so it is not an OS HR);
* per arm (uncensored): ``median_*``, ``rmst{tau}_*``, ``survival{tau}_*`` and their
  treated-minus-control ``*_diff``, unprefixed for the whole population (ATE) and
  prefixed ``att_``, ``atc_``, ``ato_``, ``atm_`` for the others (exact engine).

A scenario with a ``response`` block has a third outcome, ``response``
(:func:`simulator.response.response_truth`): per population ``{pop}_risk_diff``,
``{pop}_log_or`` and the two potential response probabilities, ``conditional_log_or``
and ``generating_log_or``; exact averages of the known response probabilities (no
Bernoulli noise), with the sampling error of the covariate sample (exact engine: the
spread over its scramblings; Monte Carlo: batch means).

Errors: ``mcse`` is the standard error of the engine's sampling (exact: covariate
sampling over independent scramblings;
Monte Carlo: batch means, the iid formula for RMST); the exact engine adds ``numerical``
(grid refinement plus tail truncation) and ``error`` = numerical + 2 mcse, the bound
:meth:`Truth.estimand` returns.  Results are cached per scenario.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from estimators import fit_cox_arrays
from estimators.estimands import (
    BINARY_MEASURES,
    ESTIMANDS,
    MEASURES,
    MEASURES_WITH_HORIZON,
    scored_against,
)

from .. import cache, crossover, exact
from .. import calibration as cal
from ..catalog import get_scenario
from ..exceptions import ScenarioError
from ..marginal import censor, marginal_log_hr
from ..plan import annual_to_monthly_rate, coef_vector, solved_outcome_matrix
from ..response import response_truth
from ..scenario import Scenario
from ..streams import as_seed_sequence

TRUTH_VERSION = 4
METHODS = ("exact", "montecarlo")
RMST_HORIZONS = (24.0, 36.0)  # the Monte Carlo engine's
KEYS = (
    "conditional_log_hr",
    "ate_log_hr",
    "att_log_hr",
    "ate_log_hr_uncensored",
    "att_log_hr_uncensored",
    "ate_log_hr_study_censoring",
    "att_log_hr_study_censoring",
    "generating_log_hr",
    "median_control",
    "median_treated",
    "rmst24_control",
    "rmst24_treated",
    "rmst36_control",
    "rmst36_treated",
)
CENSORING = ("admin", "study", "none")
_SUFFIX = {"admin": "", "study": "_study_censoring", "none": "_uncensored"}
_MEMORY = cal.LRU(cal.MEMORY_SIZE)


@dataclass(frozen=True)
class OutcomeTruth:
    """True estimands of one outcome (log-HRs; months; probabilities) and their errors."""

    values: dict[str, float]
    mcse: dict[str, float]
    numerical: dict[str, float] = field(default_factory=dict)
    error: dict[str, float] = field(default_factory=dict)

    def __getattr__(self, name: str) -> float:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def bound(self, key: str) -> float:
        """The error bound of ``key`` (exact engine: ``error``; Monte Carlo: its MCSE)."""
        return self.error.get(key, self.mcse[key])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.values, "mcse": dict(self.mcse)}
        if self.error:
            out["numerical"] = dict(self.numerical)
            out["error"] = dict(self.error)
        return out

    @classmethod
    def from_dict(cls, x: dict[str, Any]) -> OutcomeTruth:
        meta = ("mcse", "numerical", "error")
        return cls(
            values={k: v for k, v in x.items() if k not in meta},
            mcse=dict(x["mcse"]),
            numerical=dict(x.get("numerical", {})),
            error=dict(x.get("error", {})),
        )


@dataclass(frozen=True)
class Truth:
    """Computed truths of a scenario: ``truth.pfs.ate_log_hr``, ``truth["os"].mcse[...]``."""

    scenario: str
    key: str
    population: int
    pfs: OutcomeTruth
    os: OutcomeTruth
    method: str = "montecarlo"
    crossover_without_tp: bool = False  # Monte Carlo truth of a crossover scenario
    response: OutcomeTruth | None = None  # scenarios with a response block

    def __getitem__(self, outcome: str) -> OutcomeTruth:
        if outcome not in self.outcomes:
            raise KeyError(f"outcome {outcome!r}; use one of {list(self.outcomes)}")
        return getattr(self, outcome)

    @property
    def outcomes(self) -> tuple[str, ...]:
        """The outcomes this truth holds: pfs, os, and response when the scenario has one."""
        return ("pfs", "os") if self.response is None else ("pfs", "os", "response")

    def estimand(
        self,
        outcome: str,
        estimand: str,
        censoring: str = "admin",
        measure: str = "log_hr",
        horizon: float | None = None,
    ) -> tuple[float, float]:
        """(true value, its error bound) of an estimand and effect measure.

        Parameters
        ----------
        outcome : {"pfs", "os", "response"}
            ``response`` (scenarios with one) takes the binary measures ``risk_diff``
            and ``log_or`` (``conditional``: ``log_or`` only); pfs and os the others.
        estimand : one of estimators.estimands.ESTIMANDS
            ``crude`` has no truth of its own: it is scored against the ATE.
            ``treatment_policy`` (as randomised) is the ATE's truth except for OS in a
            crossover scenario, where it is the ``tp_`` truth (:mod:`simulator.crossover`);
            ``hypothetical`` (no switching) is scored against the ATE.
        censoring : {"admin", "study", "none"}
            For ``log_hr`` only (the marginal Cox estimand depends on the censoring; the
            conditional one is computed under administrative censoring for all three).
            RMST, survival and median differences are of the uncensored potential outcomes.
        measure : one of estimators.estimands.MEASURES
        horizon : float, months
            Required for ``rmst_diff`` and ``surv_diff`` (a horizon the truth holds).
        """
        if outcome not in self.outcomes:
            raise ScenarioError(
                f"outcome={outcome!r} is not allowed; use one of {list(self.outcomes)}"
                + (
                    " (scenario has no response block)"
                    if outcome == "response" and self.response is None
                    else ""
                )
            )
        if estimand not in ESTIMANDS:
            raise ScenarioError(f"estimand={estimand!r} is not allowed; use one of {ESTIMANDS}")
        if censoring not in CENSORING:
            raise ScenarioError(f"censoring={censoring!r} is not allowed; use one of {CENSORING}")
        if measure not in MEASURES:
            raise ScenarioError(f"measure={measure!r} is not allowed; use one of {MEASURES}")
        if (outcome == "response") != (measure in BINARY_MEASURES):
            allowed = (
                sorted(BINARY_MEASURES)
                if outcome == "response"
                else [m for m in MEASURES if m not in BINARY_MEASURES]
            )
            raise ScenarioError(
                f"measure={measure!r} is not allowed for outcome={outcome!r}; use one of {allowed}"
            )
        if outcome == "response":
            return self._response_estimand(estimand, measure, horizon)
        needs_h = measure in MEASURES_WITH_HORIZON
        if needs_h and horizon is None:
            raise ScenarioError(f"measure={measure!r} needs a horizon (months)")
        if not needs_h and horizon is not None:
            raise ScenarioError(f"horizon={horizon!r} is not allowed with measure={measure!r}")
        target = scored_against(estimand)
        tp = ""
        if target == "treatment_policy":  # as randomised: its own OS truths under crossover
            target = "ATE"
            if any(k.startswith(crossover.TP_PREFIX) for k in self[outcome].values):
                tp = crossover.TP_PREFIX
            elif outcome == "os" and self.crossover_without_tp:
                raise ScenarioError(
                    f"the {self.method} truth of {self.scenario!r} has no as-randomised "
                    "(treatment-policy) OS truth: the Monte Carlo engine does not simulate "
                    "the crossover; use method='exact'"
                )
        if target == "conditional":
            if measure != "log_hr":
                raise ScenarioError(
                    f"measure={measure!r} is not allowed with estimand='conditional'; the "
                    "conditional estimand is a log hazard ratio (measure='log_hr')"
                )
            key = "conditional_log_hr"
        elif measure == "log_hr":
            key = f"{target.lower()}_log_hr{_SUFFIX[censoring]}"
        else:
            p = "" if target == "ATE" else f"{target.lower()}_"
            stem = {"rmst_diff": "rmst", "surv_diff": "survival"}.get(measure)
            key = f"{p}median_diff" if stem is None else f"{p}{stem}{float(horizon):g}_diff"
        key = tp + key
        o = self[outcome]
        if key not in o.values:
            raise ScenarioError(
                f"the {self.method} truth of {self.scenario!r} has no {key!r} "
                f"({estimand}, {measure}, horizon={horizon}); the exact engine computes every "
                "population and the horizons it was asked for"
            )
        return o.values[key], o.bound(key)

    def _response_estimand(
        self, estimand: str, measure: str, horizon: float | None
    ) -> tuple[float, float]:
        if horizon is not None:
            raise ScenarioError(f"horizon={horizon!r} is not allowed with measure={measure!r}")
        target = scored_against(estimand)
        if target == "conditional" and measure != "log_or":
            raise ScenarioError(
                f"measure={measure!r} is not allowed with estimand='conditional'; the "
                "conditional response estimand is a log odds ratio (measure='log_or')"
            )
        key = f"{target.lower()}_{measure}"
        o = self.response
        if key not in o.values:
            raise ScenarioError(f"the {self.method} truth of {self.scenario!r} has no {key!r}")
        return o.values[key], o.bound(key)

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of ``rwesim show --json``."""
        out = {
            "pfs": self.pfs.to_dict(),
            "os": self.os.to_dict(),
            "population": self.population,
            "key": self.key,
            "method": self.method,
        }
        if self.crossover_without_tp:
            out["crossover_without_tp"] = True
        if self.response is not None:  # only then: other truths keep their layout
            out["response"] = self.response.to_dict()
        return out

    @classmethod
    def from_dict(cls, scenario: str, d: dict[str, Any]) -> Truth:
        return cls(
            scenario,
            d["key"],
            d["population"],
            OutcomeTruth.from_dict(d["pfs"]),
            OutcomeTruth.from_dict(d["os"]),
            d.get("method", "montecarlo"),
            bool(d.get("crossover_without_tp", False)),
            OutcomeTruth.from_dict(d["response"]) if "response" in d else None,
        )


def truth_key(
    sc: Scenario,
    method: str = "exact",
    rmst_horizons: tuple[float, ...] = exact.RMST_HORIZONS,
    survival_horizons: tuple[float, ...] = exact.SURVIVAL_HORIZONS,
) -> str:
    """Cache key: calibration key + engine settings + administrative censoring."""
    c = sc.calibration
    parts: list[Any] = [
        cal.calibration_key(sc),
        sc.to_dict()["censoring"],
        method,
        TRUTH_VERSION,
    ]
    if method == "montecarlo":
        parts += [c.truth_population, c.truth_seed, c.truth_batches]
    else:
        parts += [list(rmst_horizons), list(survival_horizons)]
    if sc.crossover is not None:  # only then, so that other scenarios keep their keys
        parts.append({"crossover": sc.to_dict()["crossover"]})
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def truth(
    scenario: Scenario | str,
    *,
    use_cache: bool = True,
    method: str = "exact",
    rmst_horizons: tuple[float, ...] = exact.RMST_HORIZONS,
    survival_horizons: tuple[float, ...] = exact.SURVIVAL_HORIZONS,
) -> Truth:
    """True estimands of a scenario (cached; built-in scenarios ship theirs).

    Parameters
    ----------
    scenario : Scenario or str
    use_cache : bool
        False recomputes.
    method : {"exact", "montecarlo"}
        Exact integration (default; about a second) or the Monte Carlo oracle (about a
        minute at the default 4 million patients).
    rmst_horizons, survival_horizons : tuple of float, months
        Horizons of RMST and survival probabilities (exact engine).
    """
    sc = get_scenario(scenario) if isinstance(scenario, str) else scenario
    if not isinstance(sc, Scenario):
        raise ScenarioError(f"scenario={scenario!r} is not allowed; give a Scenario or a name")
    if method not in METHODS:
        raise ScenarioError(f"method={method!r} is not allowed; use one of {METHODS}")
    rmst_horizons = tuple(float(h) for h in rmst_horizons)
    survival_horizons = tuple(float(h) for h in survival_horizons)
    key = truth_key(sc, method, rmst_horizons, survival_horizons)
    found = _read(key, sc.name) if use_cache else None
    if found is None:
        if method == "exact":
            found = compute_exact_truth(sc, key, rmst_horizons, survival_horizons)
        else:
            found = compute_truth(sc, key)
        cache.write("truth", key, found.to_dict())
    _MEMORY[key] = found
    return found


def _read(key: str, name: str) -> Truth | None:
    found = _MEMORY.get(key)
    if found is not None:
        return found
    record = cache.read("truth", key)
    return None if record is None else Truth.from_dict(name, record)


# ---- the exact engine ----------------------------------------------------------------------
def compute_exact_truth(
    sc: Scenario,
    key: str | None = None,
    rmst_horizons: tuple[float, ...] = exact.RMST_HORIZONS,
    survival_horizons: tuple[float, ...] = exact.SURVIVAL_HORIZONS,
) -> Truth:
    """Every estimand by the exact engine (no cache)."""
    solved = cal.calibrate(sc).solved
    sample = exact.sample_for(sc, solved)
    mt = exact.precise_marginal_truth(sc, solved, rmst_horizons, survival_horizons, sample)
    cond = exact.precise_conditional_truth(sc, solved, sample)
    out = {}
    for outcome, gamma in (("pfs", solved.gamma_pfs), ("os", solved.gamma_os)):
        values = dict(mt.values[outcome])
        mcse = dict(mt.se[outcome])
        numerical = dict(mt.numerical[outcome])
        values["generating_log_hr"], mcse["generating_log_hr"] = float(gamma), 0.0
        numerical["generating_log_hr"] = 0.0
        c = cond[outcome]
        values["conditional_log_hr"], mcse["conditional_log_hr"] = c[0], c[1]
        numerical["conditional_log_hr"] = c[2]
        if outcome == "os" and sc.crossover is not None:  # as-randomised OS truths
            tp = crossover.treatment_policy_truth(
                sc, solved, rmst_horizons, survival_horizons, sample
            )
            for d, x in zip((values, mcse, numerical), tp, strict=True):
                d.update(x)
        error = {k: numerical[k] + 2.0 * mcse[k] for k in values}
        out[outcome] = OutcomeTruth(values, mcse, numerical, error)
    key = key or truth_key(sc, "exact", rmst_horizons, survival_horizons)
    resp = None
    if sc.response is not None:
        values, mcse = response_truth(
            sc.response,
            solved.response_intercepts,
            sample.feats,
            sample.frailty,
            sample.ps,
            sample.group_spans(),
        )
        resp = OutcomeTruth(
            values, mcse, dict.fromkeys(values, 0.0), {k: 2.0 * mcse[k] for k in values}
        )
    return Truth(sc.name, key, mt.n, out["pfs"], out["os"], method="exact", response=resp)


# ---- the Monte Carlo engine ----------------------------------------------------------------
# ---- computation -------------------------------------------------------------------------
def compute_truth(sc: Scenario, key: str | None = None) -> Truth:
    """Compute every estimand on a fresh simulated super-population (the oracle; no cache)."""
    solved = cal.calibrate(sc).solved
    c = sc.calibration
    pop = cal.draw_population(sc, solved, c.truth_population, as_seed_sequence(c.truth_seed))
    pop.treated = pop.u_treat < cal.propensity(sc, solved, pop)
    om = solved_outcome_matrix(sc, solved)
    t0, t1 = cal.potential_times(pop, om, 0.0), cal.potential_times(pop, om, 1.0)
    X = _adjustment_matrix(sc, pop)
    study_c = _study_censoring(sc, pop)
    out = {}
    for which, name, gamma in ((0, "pfs", solved.gamma_pfs), (1, "os", solved.gamma_os)):
        censorings = {"": pop.c_admin, "_uncensored": None, "_study_censoring": study_c[name]}
        out[name] = _outcome_truth(t0[which], t1[which], pop, X, c.truth_batches, gamma, censorings)
    key = key or truth_key(sc, "montecarlo")
    resp = None
    if sc.response is not None:
        spans = [(s.start, s.stop) for s in _batches(pop.n, c.truth_batches)]
        ps = cal.propensity(sc, solved, pop)
        values, mcse = response_truth(
            sc.response, solved.response_intercepts, pop.feats, pop.frailty, ps, spans
        )
        resp = OutcomeTruth(values=values, mcse=mcse)
    return Truth(
        sc.name,
        key,
        pop.n,
        out["pfs"],
        out["os"],
        method="montecarlo",
        crossover_without_tp=sc.crossover is not None,
        response=resp,
    )


def _study_censoring(sc: Scenario, pop: cal.Population) -> dict[str, np.ndarray]:
    """Censoring times of the scenario's whole observation process, per outcome (months).

    Administrative censoring plus loss to follow-up (its covariate dependence included)
    and, for rwPFS, next-therapy censoring (``next_therapy_log_hr`` included), at the
    control arm's rates so that both potential outcomes of a patient are censored
    identically.  Drawn from a stream of
    its own (``truth_seed``, spawn key 10**9).
    """
    cs = sc.censoring
    rng = np.random.default_rng(
        np.random.SeedSequence(sc.calibration.truth_seed, spawn_key=(10**9,))
    )
    lost_rate = annual_to_monthly_rate(cs.lost_per_year)
    next_rate = annual_to_monthly_rate(cs.next_therapy_per_year)
    c_os = pop.c_admin.copy()
    if lost_rate > 0:
        lp = pop.feats @ coef_vector(cs.lost_log_hr).astype(np.float32)
        c_os = np.minimum(c_os, rng.standard_exponential(pop.n) / (lost_rate * np.exp(lp)))
    c_pfs = c_os
    if next_rate > 0:
        rate = next_rate
        if cs.next_therapy_log_hr:  # informative next-therapy censoring
            lp = pop.feats @ coef_vector(cs.next_therapy_log_hr).astype(np.float32)
            rate = next_rate * np.exp(lp)
        c_pfs = np.minimum(c_os, rng.standard_exponential(pop.n) / rate)
    return {"pfs": c_pfs, "os": c_os}


def _adjustment_matrix(sc: Scenario, pop: cal.Population) -> np.ndarray:
    """Covariates of the outcome model (plus frailty when it acts): (n, q) float64."""
    return exact.adjustment_matrix(sc, pop.feats, pop.frailty)


def _batches(n: int, k: int) -> list[slice]:
    edges = np.linspace(0, n, k + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _batch_mcse(stat, k: int, n: int) -> float:
    vals = np.array([stat(s) for s in _batches(n, k)])
    return float(np.std(vals, ddof=1) / math.sqrt(k))


def _outcome_truth(
    t0, t1, pop: cal.Population, X, k: int, gamma: float, censorings: dict[str, np.ndarray | None]
) -> OutcomeTruth:
    n, a, c = pop.n, pop.treated, pop.c_admin
    values: dict[str, float] = {"generating_log_hr": float(gamma)}
    mcse: dict[str, float] = {"generating_log_hr": 0.0}

    def hr(sel, cens):
        cc = None if cens is None else cens[sel]
        y0, d0 = censor(t0[sel], cc)
        y1, d1 = censor(t1[sel], cc)
        return marginal_log_hr(y0, d0, y1, d1)

    for name, treated_only in (("ate", False), ("att", True)):
        for suffix, cens in censorings.items():

            def stat(s, t=treated_only, cz=cens):
                idx = np.arange(n)[s]
                return hr(idx[a[s]] if t else idx, cz)

            key = f"{name}_log_hr{suffix}"
            values[key] = stat(slice(None))
            mcse[key] = _batch_mcse(stat, k, n)
    for arm, t in (("control", t0), ("treated", t1)):
        values[f"median_{arm}"] = float(np.median(t))
        mcse[f"median_{arm}"] = _batch_mcse(lambda s, t=t: float(np.median(t[s])), k, n)
        for h in (24, 36):
            m = np.minimum(t, float(h))
            values[f"rmst{h}_{arm}"] = float(m.mean())
            mcse[f"rmst{h}_{arm}"] = float(m.std(ddof=1) / math.sqrt(n))
    values["conditional_log_hr"], mcse["conditional_log_hr"] = _conditional(t0, t1, c, X)
    return OutcomeTruth(values=values, mcse=mcse)


def _conditional(t0, t1, c, X) -> tuple[float, float]:
    """Adjusted Cox coefficient of treatment in the stacked data, patient-clustered SE."""
    n = t0.size
    y0, d0 = censor(t0, c)
    y1, d1 = censor(t1, c)
    time = np.concatenate([y0, y1])
    event = np.concatenate([d0, d1]).astype(np.float64)
    arm = np.concatenate([np.zeros(n), np.ones(n)])
    design = np.column_stack([arm, np.vstack([X, X])])
    ids = np.concatenate([np.arange(n), np.arange(n)])
    res = fit_cox_arrays(time, event, design, cluster=ids, ties="breslow")
    return float(res.params[0]), float(res.se[0])
