"""The ``switching`` scenario: a time-varying treatment switch during first-line therapy.

Patients start on one aromatase inhibitor (AI) and may switch to another at a rate that
depends on their covariates; the switch multiplies the death hazard by a known hazard
ratio from the switch onwards.  This is the situation of retrospective cohorts in which
"switchers had better survival": switchers must survive long enough to switch
(immortal time), and who switches depends on prognosis (confounding).

Model (times in months from the index date, ``docs/guide/scenarios.md``):

* covariates: the baseline covariates of a built-in MBC scenario (``base``, default
  ``"flatiron"``), drawn by :func:`simulator.simulate` (the cohort generator; its
  treatment and outcomes are not used), plus ``adverse_event`` (an adverse event on
  the first AI, Bernoulli with probability ``adverse_event_share``);
* switch: Weibull hazard ``h_s(t | x) = h_s0(t) exp(alpha' x)``, time ``S``;
* death: Weibull hazard ``h(t | x, S) = h_0(t) exp(beta' x + gamma 1{t >= S})`` with
  ``gamma = log_hr_switch``; the death time is the exact inverse of the cumulative
  hazard at a unit exponential;
* censoring: administrative, uniform on ``censoring`` = (min, max) months of follow-up.

A switch is recorded when it happens before death and censoring.  The features of both
hazards (``age10 = (age - 65) / 10``, ``ecog_1``, ``ecog_2plus``, ``ecog_unknown`` of the
*recorded* ECOG, ``visceral``, ``adverse_event``) are all in the cohort, so a Cox model
on ``age``, ``ecog``, ``visceral`` and ``adverse_event`` is correctly specified.

Truths (:func:`switching_truth`): ``gamma`` itself (the conditional switch log-HR, what a
time-dependent Cox estimates) and the contrast of the strategies "switch within a grace
period ``g``" and "never switch" on both potential outcomes of a large population.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .exceptions import ScenarioError
from .generate import simulate
from .streams import SeedLike, as_seed_sequence

FEATURES: tuple[str, ...] = (
    "age10",
    "ecog_1",
    "ecog_2plus",
    "ecog_unknown",
    "visceral",
    "adverse_event",
)
"""Features a hazard's ``log_hr`` may name (age10 = (age - 65) / 10, recorded ECOG)."""

COVARIATES: tuple[str, ...] = ("age", "ecog", "visceral", "adverse_event")
"""Columns an estimator adjusts for: the features of both hazards, as cohort columns."""

BASE_COLUMNS: tuple[str, ...] = ("age", "ecog", "visceral", "n_met_sites", "de_novo")
"""Covariate columns kept from the base scenario's cohort."""

COLUMNS: dict[str, str] = {
    "id": "patient id, 0 .. n-1",
    "switch_months": "time of the switch to the second AI, months (NaN if none observed)",
    "switched": "1 = switched before death and censoring",
    "os_months": "observed OS time, months from index",
    "os_event": "1 = death observed",
    "age": "age at index, years",
    "ecog": "recorded ECOG: 0, 1, 2+ or unknown",
    "visceral": "visceral (lung and/or liver) metastases",
    "n_met_sites": "number of metastatic sites, 1, 2 or 3 (= 3 or more)",
    "de_novo": "de novo metastatic (stage IV at diagnosis)",
    "adverse_event": "adverse event on the first AI (baseline indicator)",
}
POTENTIAL: dict[str, str] = {
    "os_months_never": "uncensored potential OS under 'never switch', months",
    "os_months_grace": "uncensored potential OS under 'switch within the grace period'",
}


def _check_number(x: object, param: str, low: float, high: float, *, open_low: bool) -> float:
    ok = isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)
    if ok:
        v = float(x)
        ok = math.isfinite(v) and (v > low if open_low else v >= low) and v <= high
    if not ok:
        bound = "(" if open_low else "["
        raise ScenarioError(
            f"{param}={x!r} is not allowed; it must be a number in {bound}{low}, {high}]"
        )
    return float(x)


def _check_log_hr(log_hr: object, param: str) -> Mapping[str, float]:
    if not isinstance(log_hr, Mapping):
        raise ScenarioError(f"{param}={log_hr!r} is not allowed; give a mapping feature -> log-HR")
    out = {}
    for k, v in log_hr.items():
        if k not in FEATURES:
            raise ScenarioError(
                f"{param}[{k!r}] is not allowed; features are {', '.join(FEATURES)}"
            )
        out[k] = _check_number(v, f"{param}[{k!r}]", -5.0, 5.0, open_low=False)
    return out


@dataclass(frozen=True)
class WeibullHazard:
    """A Weibull proportional hazard ``h(t | x) = h0(t) exp(log_hr' x)``.

    Attributes
    ----------
    shape : float
        Weibull shape (> 0; < 1 falling, > 1 rising hazard).
    median_months : float
        Median time of a patient with every feature 0 (age 65, ECOG 0, ...), months.
    log_hr : mapping of str to float
        Log hazard ratio per feature of :data:`FEATURES`; features not named have 0.
    """

    shape: float
    median_months: float
    log_hr: Mapping[str, float] = field(default_factory=dict)

    def validated(self, param: str) -> WeibullHazard:
        """A copy with checked, immutable values (errors name ``param``)."""
        return WeibullHazard(
            shape=_check_number(self.shape, f"{param}.shape", 0.0, 20.0, open_low=True),
            median_months=_check_number(
                self.median_months, f"{param}.median_months", 0.0, 1e4, open_low=True
            ),
            log_hr=_check_log_hr(self.log_hr, f"{param}.log_hr"),
        )

    @property
    def scale(self) -> float:
        """Weibull scale ``lam``: ``H0(t) = (t / lam) ** shape``, months."""
        return self.median_months / math.log(2.0) ** (1.0 / self.shape)

    def cumhaz(self, t: np.ndarray) -> np.ndarray:
        """Baseline cumulative hazard ``H0(t)`` at times ``t`` (months)."""
        return (np.asarray(t, dtype=float) / self.scale) ** self.shape

    def inverse(self, h: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`cumhaz`: the time (months) at which ``H0`` reaches ``h``."""
        return self.scale * np.asarray(h, dtype=float) ** (1.0 / self.shape)

    def linear_predictor(self, feats: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """``log_hr' x`` for every patient, shape (n,)."""
        lp = np.zeros(n)
        for k, b in self.log_hr.items():
            lp += b * feats[k]
        return lp


# *assumed* values (docs/guide/scenarios.md): fitter patients (ECOG 0, no visceral
# disease) and patients with an adverse event on the first AI switch more; switching
# lowers the death hazard by 20%.
DEFAULT_DEATH = WeibullHazard(
    shape=1.2,
    median_months=48.0,
    log_hr={"age10": 0.15, "ecog_1": 0.35, "ecog_2plus": 0.9, "ecog_unknown": 0.3,
            "visceral": 0.45, "adverse_event": 0.2},
)  # fmt: skip
DEFAULT_SWITCH = WeibullHazard(
    shape=0.8,
    median_months=30.0,
    log_hr={"age10": -0.2, "ecog_1": -0.4, "ecog_2plus": -1.0, "ecog_unknown": -0.3,
            "visceral": -0.4, "adverse_event": 1.2},
)  # fmt: skip


@dataclass(frozen=True)
class SwitchingScenario:
    """Every parameter of the ``switching`` scenario (validated, immutable).

    Attributes
    ----------
    name : str
    base : str
        Built-in MBC scenario whose covariate model draws the baseline covariates.
    death, switch : WeibullHazard
        Death hazard before any switch; switch hazard.
    log_hr_switch : float
        ``gamma``: the death log-HR from the switch onwards (conditional on covariates).
    adverse_event_share : float
        P(adverse_event = 1).
    censoring : (float, float)
        Administrative censoring uniform on (min, max) months of follow-up, min < max.
    grace : float
        Grace period of the strategy "switch within ``grace`` months", months (> 0).
    landmark : float
        Landmark of the landmark analysis, months (> 0).
    horizon : float
        Horizon of the survival difference and of the RMST difference, months (> 0).
    """

    name: str = "switching"
    base: str = "flatiron"
    death: WeibullHazard = DEFAULT_DEATH
    switch: WeibullHazard = DEFAULT_SWITCH
    log_hr_switch: float = math.log(0.8)
    adverse_event_share: float = 0.25
    censoring: tuple[float, float] = (24.0, 60.0)
    grace: float = 6.0
    landmark: float = 6.0
    horizon: float = 36.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ScenarioError(f"name={self.name!r} is not allowed; give a non-empty string")
        from .catalog import scenario_names

        if self.base not in scenario_names():
            raise ScenarioError(
                f"base={self.base!r} is not allowed; use a built-in scenario: "
                f"{', '.join(scenario_names())}"
            )
        for part in ("death", "switch"):
            h = getattr(self, part)
            if not isinstance(h, WeibullHazard):
                raise ScenarioError(f"{part}={h!r} is not allowed; give a WeibullHazard")
            object.__setattr__(self, part, h.validated(part))
        set_ = object.__setattr__
        set_(self, "log_hr_switch", _check_number(self.log_hr_switch, "log_hr_switch", -5, 5,
                                                  open_low=False))  # fmt: skip
        set_(self, "adverse_event_share", _check_number(
            self.adverse_event_share, "adverse_event_share", 0.0, 1.0, open_low=False))  # fmt: skip
        c = self.censoring
        if (
            not isinstance(c, tuple | list)
            or len(c) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in c)
            or not (0 < c[0] < c[1] < 1e4)
        ):
            raise ScenarioError(
                f"censoring={c!r} is not allowed; give (min, max) months with 0 < min < max"
            )
        set_(self, "censoring", (float(c[0]), float(c[1])))
        for p in ("grace", "landmark", "horizon"):
            set_(self, p, _check_number(getattr(self, p), p, 0.0, 1e4, open_low=True))

    # ---- identity ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain, JSON-ready parameters."""
        d: dict = {"kind": "switching", "name": self.name, "base": self.base}
        for part in ("death", "switch"):
            h = getattr(self, part)
            d[part] = {"shape": h.shape, "median_months": h.median_months,
                       "log_hr": dict(sorted(h.log_hr.items()))}  # fmt: skip
        for p in ("log_hr_switch", "adverse_event_share", "grace", "landmark", "horizon"):
            d[p] = getattr(self, p)
        d["censoring"] = list(self.censoring)
        return d

    def fingerprint(self) -> str:
        """Hash of :meth:`to_dict` (16 hex digits): same parameters, same fingerprint."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def switching_scenario(**changes: object) -> SwitchingScenario:
    """The built-in ``switching`` scenario, with optional changed parameters."""
    return SwitchingScenario(**changes)  # type: ignore[arg-type]


def _check_scenario(sc: object) -> SwitchingScenario:
    if sc is None:
        return switching_scenario()
    if not isinstance(sc, SwitchingScenario):
        raise ScenarioError(
            f"scenario={sc!r} is not allowed; give a SwitchingScenario (or None for the "
            "built-in one)"
        )
    return sc


def _check_n(n: object, param: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n <= 0:
        raise ScenarioError(f"{param}={n!r} is not allowed; it must be a positive integer")
    return int(n)


def features(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """The hazard features (:data:`FEATURES`) of a cohort frame, each shape (n,)."""
    ecog = df["ecog"].astype(str).to_numpy()
    return {
        "age10": (df["age"].to_numpy(dtype=float) - 65.0) / 10.0,
        "ecog_1": (ecog == "1").astype(float),
        "ecog_2plus": (ecog == "2+").astype(float),
        "ecog_unknown": (ecog == "unknown").astype(float),
        "visceral": df["visceral"].to_numpy(dtype=float),
        "adverse_event": df["adverse_event"].to_numpy(dtype=float),
    }


def death_times(
    h: WeibullHazard, lp: np.ndarray, gamma: float, switch: np.ndarray, e: np.ndarray
) -> np.ndarray:
    """Exact death times (months) with the death hazard multiplied by ``exp(gamma)`` from
    the switch time on.

    Parameters
    ----------
    h : WeibullHazard
        Death hazard before the switch.
    lp : ndarray (n,)
        Linear predictors ``beta' x``.
    gamma : float
        Log-HR of the switch.
    switch : ndarray (n,)
        Switch times, months (``inf`` = never).
    e : ndarray (n,)
        Unit exponential draws: the cumulative hazard at death.

    Returns
    -------
    ndarray (n,)
        ``T`` with ``Lambda(T) = e``, where ``Lambda(t) = H0(t) e^lp`` up to the switch and
        ``H0(s) e^lp + (H0(t) - H0(s)) e^(lp + gamma)`` after it.
    """
    r = np.exp(lp)
    h_s = h.cumhaz(switch)  # inf where there is no switch
    before = e <= h_s * r
    h0 = np.where(before, e / r, h_s + (e - np.where(before, 0.0, h_s * r)) / (r * math.exp(gamma)))
    return h.inverse(h0)


@dataclass(frozen=True)
class _Draws:
    cov: pd.DataFrame
    lp_death: np.ndarray
    switch: np.ndarray  # natural switch time (uncensored)
    e_death: np.ndarray
    censor: np.ndarray


def _draw(sc: SwitchingScenario, n: int, seed: SeedLike) -> _Draws:
    root = as_seed_sequence(seed)
    cov_seed, own = root.spawn(2)
    base = simulate(sc.base, n, cov_seed)
    rng = np.random.default_rng(own)
    cov = base.loc[:, list(BASE_COLUMNS)].copy()
    cov["ecog"] = cov["ecog"].astype(pd.CategoricalDtype(["0", "1", "2+", "unknown"]))
    cov["adverse_event"] = (rng.random(n) < sc.adverse_event_share).astype(np.int8)
    f = features(cov)
    lp_s = sc.switch.linear_predictor(f, n)
    s = sc.switch.inverse(rng.standard_exponential(n) * np.exp(-lp_s))
    e = rng.standard_exponential(n)
    lo, hi = sc.censoring
    c = lo + (hi - lo) * rng.random(n)
    return _Draws(cov, sc.death.linear_predictor(f, n), s, e, c)


def simulate_switching(
    scenario: SwitchingScenario | None,
    n: int,
    seed: SeedLike,
    *,
    potential_outcomes: bool = False,
) -> pd.DataFrame:
    """Simulate a switching cohort, one row per patient.

    Parameters
    ----------
    scenario : SwitchingScenario or None
        None = the built-in :func:`switching_scenario`.
    n : int
        Patients.
    seed : int or numpy.random.SeedSequence
        Same (scenario, n, seed) gives a bit-identical cohort.
    potential_outcomes : bool
        Add ``os_months_never`` and ``os_months_grace`` (uncensored potential OS under
        the two strategies of :func:`switching_truth`, months).

    Returns
    -------
    DataFrame, shape (n, 11 + extras)
        Columns :data:`COLUMNS` (times in months).
    """
    sc = _check_scenario(scenario)
    n = _check_n(n)
    if not isinstance(potential_outcomes, bool):
        raise ScenarioError(
            f"potential_outcomes={potential_outcomes!r} is not allowed; use True or False"
        )
    d = _draw(sc, n, seed)
    t = death_times(sc.death, d.lp_death, sc.log_hr_switch, d.switch, d.e_death)
    end = np.minimum(t, d.censor)
    switched = d.switch < end
    out = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "switch_months": np.where(switched, d.switch, np.nan),
            "switched": switched.astype(np.int8),
            "os_months": end,
            "os_event": (t <= d.censor).astype(np.int8),
        }
    )
    for c in d.cov.columns:
        out[c] = d.cov[c].to_numpy() if c != "ecog" else d.cov[c].array
    if potential_outcomes:
        out["os_months_never"] = death_times(
            sc.death, d.lp_death, sc.log_hr_switch, np.full(n, np.inf), d.e_death
        )
        out["os_months_grace"] = death_times(
            sc.death, d.lp_death, sc.log_hr_switch, np.minimum(d.switch, sc.grace), d.e_death
        )
    return out


def to_counting_process(
    df: pd.DataFrame,
    time: str = "os_months",
    event: str = "os_event",
    switch: str = "switch_months",
    covariates: tuple[str, ...] | list[str] | None = None,
) -> pd.DataFrame:
    """The (start, stop] long frame of a one-row-per-patient switching cohort.

    A patient who switched at ``s`` gets two rows, ``(0, s]`` with ``switched_now = 0``
    and no event, and ``(s, T]`` with ``switched_now = 1`` and the patient's event; a
    patient who did not switch (``switch`` NaN) gets one row ``(0, T]``.

    Parameters
    ----------
    df : DataFrame
        One row per patient; ``switch`` NaN when no switch was observed, else in
        ``(0, time)``.
    covariates : sequence of str, optional
        Columns copied to every row (default: :data:`COVARIATES` present in ``df``).

    Returns
    -------
    DataFrame
        Columns ``id`` (row position of the patient in ``df``), ``start``, ``stop``,
        ``event``, ``switched_now`` and the covariates, ordered by (id, start).

    Raises
    ------
    ScenarioError
        A missing column, a time that is not finite and > 0, or a switch time outside
        ``(0, time)``.
    """
    if not isinstance(df, pd.DataFrame):
        raise ScenarioError(f"df={type(df).__name__} is not allowed; give a DataFrame")
    if covariates is None:
        covariates = [c for c in COVARIATES if c in df.columns]
    for col in (time, event, switch, *covariates):
        if col not in df.columns:
            raise ScenarioError(f"column {col!r} is not in the frame; columns: {list(df.columns)}")
    t = df[time].to_numpy(dtype=float)
    e = df[event].to_numpy(dtype=float)
    s = df[switch].to_numpy(dtype=float)
    if not np.all(np.isfinite(t) & (t > 0)):
        raise ScenarioError(f"{time}={time!r} has values that are not finite and > 0 (months)")
    has = ~np.isnan(s)
    bad = has & ~((s > 0) & (s < t))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ScenarioError(
            f"{switch}={s[i]!r} at row {i} is not allowed: a switch time must be in "
            f"(0, {time}) = (0, {t[i]!r}); NaN = no switch"
        )
    n = t.size
    rows = np.concatenate([np.arange(n), np.flatnonzero(has)])
    first = np.arange(rows.size) < n
    start = np.where(first, 0.0, s[rows])
    stop = np.where(first & has[rows], s[rows], t[rows])
    ev = np.where(first & has[rows], 0.0, e[rows])
    now = (~first).astype(np.int8)
    order = np.lexsort((start, rows))
    out = pd.DataFrame(
        {
            "id": rows[order].astype(np.int64),
            "start": start[order],
            "stop": stop[order],
            "event": ev[order].astype(np.int8),
            "switched_now": now[order],
        }
    )
    for c in covariates:
        col = df[c]
        out[c] = col.array.take(rows[order]) if hasattr(col, "cat") else col.to_numpy()[rows[order]]
    return out


@dataclass(frozen=True)
class SwitchingTruth:
    """Truths of a switching scenario.

    Attributes
    ----------
    log_hr_switch : float
        The conditional switch log-HR (the model parameter; exact).
    grace, horizon : float
        Grace period and horizon, months.
    surv_never, surv_grace : float
        Survival at ``horizon`` under "never switch" / "switch within grace".
    rmst_never, rmst_grace : float
        RMST up to ``horizon`` (months) under the two strategies.
    surv_diff, rmst_diff : float
        Grace minus never.
    surv_diff_mcse, rmst_diff_mcse : float
        Monte Carlo SEs of the differences (paired: common random numbers).
    n : int
        Population size.
    """

    log_hr_switch: float
    grace: float
    horizon: float
    surv_never: float
    surv_grace: float
    rmst_never: float
    rmst_grace: float
    surv_diff: float
    rmst_diff: float
    surv_diff_mcse: float
    rmst_diff_mcse: float
    n: int

    def estimand(
        self,
        outcome: str = "os",
        estimand: str = "conditional",
        censoring: str = "admin",
        measure: str = "log_hr",
        horizon: float | None = None,
    ) -> tuple[float, float]:
        """(true value, its Monte Carlo SE) of one estimand: the study runner's truth
        interface (as :meth:`simulator.study.truth.Truth.estimand`).

        ``("conditional", "log_hr")``: the switch log-HR (exact, MCSE 0);
        ``("strategy", "surv_diff" | "rmst_diff")`` at this truth's horizon.
        ``censoring`` is accepted for the interface: none of these truths depends on it.

        Raises
        ------
        ScenarioError
            (a ValueError) for an outcome, estimand, measure or horizon this truth does
            not hold.
        """
        if outcome != "os":
            raise ScenarioError(
                f"outcome={outcome!r} is not allowed; the switching scenario has 'os'"
            )
        if estimand == "conditional" and measure == "log_hr":
            return self.log_hr_switch, 0.0
        if estimand == "strategy" and measure in ("surv_diff", "rmst_diff"):
            if horizon is None or not math.isclose(float(horizon), self.horizon):
                raise ScenarioError(
                    f"horizon={horizon!r} is not allowed; this truth is at {self.horizon:g} months"
                )
            return float(getattr(self, measure)), self.mcse(measure)
        raise ScenarioError(
            f"(estimand={estimand!r}, measure={measure!r}) is not allowed; the switching "
            "scenario has ('conditional', 'log_hr'), ('strategy', 'surv_diff'), "
            "('strategy', 'rmst_diff')"
        )

    def mcse(self, measure: str) -> float:
        """Monte Carlo SE of a truth (0 for the exact log-HR)."""
        return {"log_hr": 0.0, "surv_diff": self.surv_diff_mcse, "rmst_diff": self.rmst_diff_mcse}[
            measure
        ]


TRUTH_SEED = 20261206
TRUTH_N = 1_000_000


def switching_truth(
    scenario: SwitchingScenario | None = None,
    n: int = TRUTH_N,
    seed: SeedLike = TRUTH_SEED,
    *,
    chunk: int = 250_000,
) -> SwitchingTruth:
    """Truths of a switching scenario from both potential outcomes of ``n`` patients.

    Strategy "never switch": nobody switches.  Strategy "switch within the grace period
    ``g``": a patient whose natural switch time ``S`` is at most ``g`` switches at ``S``;
    everyone else still alive switches at ``g`` (switch time ``min(S, g)``).  This is what
    clone-censor-weight targets when the effect of a switch does not depend on when it
    happened (as here): clones not switched by ``g`` are censored there and represented by
    switchers with the same covariates.  Both potential death times share the patient's
    covariates and exponential draw (common random numbers), so the differences have
    small paired Monte Carlo SEs.
    """
    sc = _check_scenario(scenario)
    n = _check_n(n)
    _check_n(chunk, "chunk")
    root = as_seed_sequence(seed)
    tau = sc.horizon
    sums = np.zeros(6)  # S_g, S_n, d_S, d_S^2, d_R, d_R^2 ...
    rm = np.zeros(2)
    done = 0
    for k, child in enumerate(root.spawn((n + chunk - 1) // chunk)):
        m = min(chunk, n - k * chunk)
        d = _draw(sc, m, child)
        tn = death_times(sc.death, d.lp_death, sc.log_hr_switch, np.full(m, np.inf), d.e_death)
        tg = death_times(
            sc.death, d.lp_death, sc.log_hr_switch, np.minimum(d.switch, sc.grace), d.e_death
        )
        ds = (tg > tau).astype(float) - (tn > tau)
        dr = np.minimum(tg, tau) - np.minimum(tn, tau)
        sums += [np.sum(tg > tau), np.sum(tn > tau), ds.sum(), (ds**2).sum(), dr.sum(),
                 (dr**2).sum()]  # fmt: skip
        rm += [np.minimum(tg, tau).sum(), np.minimum(tn, tau).sum()]
        done += m

    def mcse(s1: float, s2: float) -> float:
        mean = s1 / done
        return math.sqrt(max(s2 / done - mean**2, 0.0) / done)

    return SwitchingTruth(
        log_hr_switch=sc.log_hr_switch,
        grace=sc.grace,
        horizon=tau,
        surv_never=float(sums[1] / done),
        surv_grace=float(sums[0] / done),
        rmst_never=float(rm[1] / done),
        rmst_grace=float(rm[0] / done),
        surv_diff=float(sums[2] / done),
        rmst_diff=float(sums[4] / done),
        surv_diff_mcse=mcse(sums[2], sums[3]),
        rmst_diff_mcse=mcse(sums[4], sums[5]),
        n=done,
    )
