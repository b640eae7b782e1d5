"""The true estimands of a scenario, computed on a large super-population, with Monte Carlo SEs.

For each outcome (rwPFS, OS), on ``calibration.truth_population`` patients drawn with
``calibration.truth_seed`` (independent of the calibration population), both potential
outcomes of every patient are simulated with the same random numbers and:

* ``ate_log_hr`` / ``att_log_hr`` — Cox log-HR on treatment alone in the stacked potential
  outcomes of everyone / of the patients the scenario treats, under the scenario's
  administrative censoring (staggered entry, data cutoff) applied identically to both;
  ``*_uncensored`` without it; ``*_study_censoring`` under the whole observation process
  (administrative, loss to follow-up, next-therapy for rwPFS) — the marginal hazards are
  not proportional, so the Cox estimand depends on the censoring pattern;
* ``conditional_log_hr`` — the treatment coefficient of a Cox model adjusted for every
  covariate of the outcome model (and the frailty, when there is one) in the same stacked
  data: the estimand of a correctly adjusted Cox model.  For rwPFS it equals the
  generating coefficient up to the Cox model's misspecification of a sum of two hazards;
* ``generating_log_hr`` — the coefficient used to generate the data (``gamma_pfs``;
  for OS ``gamma_os``, which acts on post-progression death only, so it is not an OS HR);
* medians and restricted mean survival (24 and 36 months) per arm, uncensored, over the
  whole population.

Monte Carlo SEs: batch means over ``truth_batches`` equal batches for medians and
marginal log-HRs, the iid formula for RMST, a cluster-robust (patient) sandwich for the
conditional log-HR.  Results are cached per scenario.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from estimators import fit_cox_arrays

from .. import cache
from .. import calibration as cal
from ..catalog import get_scenario
from ..features import INDEX
from ..marginal import censor, marginal_log_hr
from ..plan import annual_to_monthly_rate, coef_vector, solved_outcome_matrix
from ..scenario import Scenario
from ..streams import as_seed_sequence

TRUTH_VERSION = 2
RMST_HORIZONS = (24.0, 36.0)
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
CENSORING = ("admin", "study")
_MEMORY: dict[str, Truth] = {}


@dataclass(frozen=True)
class OutcomeTruth:
    """True estimands of one outcome (log-HRs; medians and RMST in months) and their MCSEs."""

    values: dict[str, float]
    mcse: dict[str, float]

    def __getattr__(self, name: str) -> float:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        return {**self.values, "mcse": dict(self.mcse)}


@dataclass(frozen=True)
class Truth:
    """Computed truths of a scenario: ``truth.pfs.ate_log_hr``, ``truth["os"].mcse[...]``."""

    scenario: str
    key: str
    population: int
    pfs: OutcomeTruth
    os: OutcomeTruth

    def __getitem__(self, outcome: str) -> OutcomeTruth:
        if outcome not in ("pfs", "os"):
            raise KeyError(f"outcome {outcome!r}; use 'pfs' or 'os'")
        return getattr(self, outcome)

    def estimand(
        self, outcome: str, estimand: str, censoring: str = "admin"
    ) -> tuple[float, float]:
        """(true log-HR, its MCSE) for an estimand ``conditional``, ``ATE``, ``ATT`` or ``crude``.

        ``crude`` has no truth of its own: it is scored against the ATE (docs/design.md §3).
        ``censoring="admin"`` (docs/design.md §3): the marginal HRs under administrative censoring;
        ``"study"``: under the scenario's whole observation process (loss to follow-up and
        next-therapy censoring too).  The marginal hazards are not proportional, so the
        two differ slightly; the conditional log-HR is the same for both.
        """
        if censoring not in CENSORING:
            raise ValueError(f"censoring={censoring!r} is not allowed; use one of {CENSORING}")
        suffix = "_study_censoring" if censoring == "study" else ""
        key = {
            "conditional": "conditional_log_hr",
            "ATE": f"ate_log_hr{suffix}",
            "ATT": f"att_log_hr{suffix}",
            "crude": f"ate_log_hr{suffix}",
        }.get(estimand)
        if key is None:
            raise ValueError(
                f"estimand={estimand!r} is not allowed; use conditional, ATE, ATT or crude"
            )
        o = self[outcome]
        return o.values[key], o.mcse[key]

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of ``rwesim show --json``."""
        return {
            "pfs": self.pfs.to_dict(),
            "os": self.os.to_dict(),
            "population": self.population,
            "key": self.key,
        }

    @classmethod
    def from_dict(cls, scenario: str, d: dict[str, Any]) -> Truth:
        def outcome(x):
            x = dict(x)
            return OutcomeTruth(values={k: x[k] for k in KEYS}, mcse=dict(x["mcse"]))

        return cls(scenario, d["key"], d["population"], outcome(d["pfs"]), outcome(d["os"]))


def truth_key(sc: Scenario) -> str:
    """Cache key: calibration key + truth settings + administrative censoring."""
    c = sc.calibration
    parts = [
        cal.calibration_key(sc),
        c.truth_population,
        c.truth_seed,
        c.truth_batches,
        sc.censoring.accrual_months,
        sc.censoring.followup_months,
        TRUTH_VERSION,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


def truth(scenario: Scenario | str, *, use_cache: bool = True) -> Truth:
    """True estimands of a scenario (cached; built-in scenarios ship theirs).

    Parameters
    ----------
    scenario : Scenario or str
    use_cache : bool
        False recomputes (several seconds to a minute at the default 4 million patients).
    """
    sc = get_scenario(scenario) if isinstance(scenario, str) else scenario
    if not isinstance(sc, Scenario):
        raise ValueError(f"scenario={scenario!r} is not allowed; give a Scenario or a name")
    key = truth_key(sc)
    found = _read(key, sc.name) if use_cache else None
    if found is None:
        found = compute_truth(sc, key)
        cache.write("truth", key, found.to_dict())
    _MEMORY[key] = found
    return found


def _read(key: str, name: str) -> Truth | None:
    if key in _MEMORY:
        return _MEMORY[key]
    record = cache.read("truth", key)
    return None if record is None else Truth.from_dict(name, record)


# ---- computation -------------------------------------------------------------------------
def compute_truth(sc: Scenario, key: str | None = None) -> Truth:
    """Compute every estimand on a fresh super-population (no cache)."""
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
    return Truth(sc.name, key or truth_key(sc), pop.n, out["pfs"], out["os"])


def _study_censoring(sc: Scenario, pop: cal.Population) -> dict[str, np.ndarray]:
    """Censoring times of the scenario's whole observation process, per outcome (months).

    Administrative censoring plus loss to follow-up (its covariate dependence included)
    and, for rwPFS, next-therapy censoring, at the control arm's rates so that both
    potential outcomes of a patient are censored identically.  Drawn from a stream of
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
        c_pfs = np.minimum(c_os, rng.standard_exponential(pop.n) / next_rate)
    return {"pfs": c_pfs, "os": c_os}


def _adjustment_matrix(sc: Scenario, pop: cal.Population) -> np.ndarray:
    """Covariates of the outcome model (plus frailty when it acts): (n, q) float64."""
    o = sc.outcomes
    trans = (o.progression, o.death, o.post_progression_death)
    names = sorted({k for t in trans for k, v in t.log_hr.items() if v}, key=INDEX.get)
    cols = [pop.feats[:, INDEX[k]].astype(np.float64) for k in names]
    cols = [c for c in cols if c.min() < c.max()]  # constant in a subgroup (e.g. visceral)
    if any(t.frailty_log_hr for t in trans):
        cols.append(pop.frailty)
    return np.column_stack(cols) if cols else np.empty((pop.n, 0))


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
