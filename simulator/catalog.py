"""Built-in scenarios, calibrated to the published studies in ``docs/design.md`` §8.

Per-arm baseline tables are written as published ("Table 1"); population marginals and
the treatment model's per-arm targets are derived from them, so the numbers below can be
checked line by line against the sources.  *Assumed* values are marked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scipy.optimize import brentq

from .covariates import age_mean
from .exceptions import ScenarioError
from .features import RACES
from .scenario import (
    AgeModel,
    Censoring,
    Covariates,
    Crossover,
    EcogMissingness,
    Outcomes,
    Response,
    Scenario,
    Transition,
    Treatment,
    load_scenario,
)

Pair = tuple[float, float]


@dataclass(frozen=True)
class Table1:
    """Per-arm baseline shares, each as (treated, control); shares as fractions."""

    age_mean: Pair
    age_bands: tuple[tuple[float, ...], tuple[float, ...]] | None
    ecog: tuple[tuple[float, ...], tuple[float, ...]]  # 0 / 1 / 2+ / unknown
    visceral: Pair
    bone_only: Pair
    sites: tuple[tuple[float, ...], tuple[float, ...]]
    de_novo: Pair
    academic: Pair
    race: tuple[tuple[float, ...], tuple[float, ...]]


# DeMichele et al., Breast Cancer Res 2021 (Flatiron); ECOG, visceral, bone-only and
# sites are *assumed* (docs/design.md §8).  Treated P+L first, then L.
FLATIRON_TABLE1 = Table1(
    age_mean=(65.2, 69.2),
    age_bands=((0.067, 0.394, 0.339, 0.199), (0.046, 0.284, 0.293, 0.377)),
    ecog=((0.30, 0.25, 0.05, 0.40), (0.25, 0.25, 0.12, 0.38)),
    visceral=(0.38, 0.40),
    bone_only=(0.27, 0.28),
    sites=((0.45, 0.30, 0.25), (0.50, 0.30, 0.20)),
    de_novo=(0.416, 0.386),
    academic=(0.060, 0.047),
    race=((0.680, 0.070, 0.017, 0.028, 0.0, 0.205), (0.678, 0.091, 0.015, 0.023, 0.0, 0.193)),
)
FLATIRON_FRACTION = 772 / 1430

# *assumed* latent correlations (age, true ECOG, number of sites, visceral disease)
CORRELATION = {
    "age:ecog": 0.30,
    "age:sites": -0.10,
    "ecog:sites": 0.15,
    "ecog:visceral": 0.10,
    "sites:visceral": 0.45,
}
# lung only / liver only / both, among patients with lung or liver metastases (Brufsky 2022)
VISCERAL_PATTERN = (0.641, 0.223, 0.136)

# *assumed* prognostic log-HRs (per decade of age, per site, indicators otherwise)
PROGRESSION = Transition(
    shape=1.1,
    log_hr={
        "age10": -0.10,
        "ecog_1": 0.15,
        "ecog_2plus": 0.35,
        "visceral": 0.15,
        "liver": 0.30,
        "bone_only": -0.25,
        "sites": 0.10,
        "de_novo": -0.15,
        "dfi_lt2": 0.25,
        "race_black": 0.10,
    },
)
DEATH = Transition(
    shape=1.0,
    log_hr={
        "age10": 0.50,
        "ecog_1": 0.35,
        "ecog_2plus": 0.90,
        "visceral": 0.20,
        "liver": 0.30,
        "sites": 0.10,
    },
)
POST_PROGRESSION_DEATH = Transition(
    shape=1.0,
    log_hr={
        "age10": 0.25,
        "ecog_1": 0.20,
        "ecog_2plus": 0.60,
        "visceral": 0.25,
        "liver": 0.45,
        "sites": 0.10,
        "dfi_lt2": 0.20,
    },
)


def _mix(pi: float, pair) -> float | tuple[float, ...]:
    t, c = pair
    if isinstance(t, tuple):
        out = tuple(pi * a + (1 - pi) * b for a, b in zip(t, c, strict=True))
        total = sum(out)
        return tuple(x / total for x in out)
    return pi * t + (1 - pi) * c


def _norm(xs: tuple[float, ...]) -> tuple[float, ...]:
    s = sum(xs)
    return tuple(x / s for x in xs)


def _age_model(bands: tuple[float, ...], mean: float, sd: float = 11.0) -> AgeModel:
    """Age model with the band shares whose overall mean is ``mean`` (years)."""

    def gap(m: float) -> float:
        return age_mean(AgeModel(band_shares=bands, shape_mean=m, shape_sd=sd)) - mean

    return AgeModel(
        band_shares=bands, shape_mean=float(brentq(gap, 30.0, 100.0, xtol=1e-9)), shape_sd=sd
    )


def _arm_means(t1: Table1) -> dict[str, Pair]:
    """Treatment-model targets: per-arm means of the features in the table."""
    pairs: dict[str, Pair] = {"age10": ((t1.age_mean[0] - 65) / 10, (t1.age_mean[1] - 65) / 10)}
    if t1.age_bands is not None:
        bt, bc = _norm(t1.age_bands[0]), _norm(t1.age_bands[1])
        for k, name in enumerate(("age_50_64", "age_65_74", "age_75plus"), start=1):
            pairs[name] = (bt[k], bc[k])
    et, ec = t1.ecog
    for k, name in enumerate(("ecog_obs_1", "ecog_obs_2plus", "ecog_obs_unknown"), start=1):
        pairs[name] = (et[k], ec[k])
    pairs["visceral"] = t1.visceral
    pairs["bone_only"] = t1.bone_only
    pairs["sites"] = tuple(sum((k + 1) * s for k, s in enumerate(arm)) for arm in t1.sites)
    pairs["de_novo"] = t1.de_novo
    pairs["academic"] = t1.academic
    for k, race in enumerate(RACES[1:], start=1):
        pairs[f"race_{race}"] = (t1.race[0][k], t1.race[1][k])
    # a feature that is constant in both arms carries no information (and no coefficient)
    return {k: v for k, v in pairs.items() if not (v[0] == v[1] and v[0] in (0.0, 1.0))}


def from_table1(
    t1: Table1,
    fraction: float,
    *,
    population_bands: tuple[float, ...] | None = None,
    visceral_pattern: tuple[float, float, float] = VISCERAL_PATTERN,
) -> tuple[Covariates, Treatment]:
    """Population covariates and treatment targets that reproduce a per-arm table."""
    mix = lambda pair: _mix(fraction, pair)  # noqa: E731
    bands = mix(t1.age_bands) if t1.age_bands is not None else population_bands
    observed = mix(t1.ecog)
    missing = observed[3]
    cov = Covariates(
        age=_age_model(bands, mix(t1.age_mean)),
        ecog=_norm(observed[:3]),
        ecog_missing=EcogMissingness(share=missing, mechanism="mcar"),
        visceral=mix(t1.visceral),
        visceral_pattern=visceral_pattern,
        sites=mix(t1.sites),
        bone_only=mix(t1.bone_only),
        de_novo=mix(t1.de_novo),
        academic=mix(t1.academic),
        race=mix(t1.race),
        correlation=dict(CORRELATION),
    )
    return cov, Treatment(fraction=fraction, arm_means=_arm_means(t1))


def _flatiron_outcomes(**targets) -> Outcomes:
    return Outcomes(
        progression=PROGRESSION,
        death=DEATH,
        post_progression_death=POST_PROGRESSION_DEATH,
        **targets,
    )


def flatiron() -> Scenario:
    cov, trt = from_table1(FLATIRON_TABLE1, FLATIRON_FRACTION)
    return Scenario(
        name="flatiron",
        description=(
            "Flatiron EHR, 1st-line HR+/HER2- MBC, palbociclib + letrozole vs letrozole "
            "(DeMichele 2021): control medians rwPFS 11.9 / OS 43.1 months, marginal ATE "
            "HR 0.58 / 0.66; channeling of younger, fitter patients to the combination"
        ),
        covariates=cov,
        treatment=trt,
        outcomes=_flatiron_outcomes(
            pfs_median_control=11.9,
            os_median_control=43.1,
            pfs_hr=0.58,
            os_hr=0.66,
            os_survival_control=(24.0, 0.68),
        ),
        censoring=Censoring(
            accrual_months=48.8, followup_months=3.0, lost_per_year=0.05, next_therapy_per_year=0.10
        ),
    )


def _variant(name: str, description: str, **changes) -> Callable[[], Scenario]:
    def build() -> Scenario:
        return flatiron().replace(name=name, description=description, **changes)

    return build


# Lung / liver subgroups (Brufsky 2022): 59.9% treated, median age 66 vs 71, P+L more
# often >= 3 sites (*assumed* split).  Published HRs are adjusted estimates, used here as
# marginal ATE targets (*assumed* equivalence).
def _subgroup(
    name: str, pattern: tuple[float, float, float], description: str, **targets
) -> Scenario:
    t1 = Table1(
        age_mean=(65.5, 70.0),
        age_bands=None,
        ecog=FLATIRON_TABLE1.ecog,
        visceral=(1.0, 1.0),
        bone_only=(0.0, 0.0),
        sites=((0.25, 0.35, 0.40), (0.33, 0.35, 0.32)),
        de_novo=FLATIRON_TABLE1.de_novo,
        academic=FLATIRON_TABLE1.academic,
        race=FLATIRON_TABLE1.race,
    )
    fraction = 330 / 551
    bands = _mix(FLATIRON_FRACTION, FLATIRON_TABLE1.age_bands)
    cov, trt = from_table1(t1, fraction, population_bands=bands, visceral_pattern=pattern)
    return Scenario(
        name=name,
        description=description,
        covariates=cov,
        treatment=trt,
        outcomes=_flatiron_outcomes(**targets),
        censoring=flatiron().censoring,
    )


def flatiron_lung() -> Scenario:
    return _subgroup(
        "flatiron-lung",
        (0.825, 0.0, 0.175),
        "Flatiron, patients with lung metastases (Brufsky 2022): rwPFS 16.5 vs 10.5 months "
        "(HR 0.52), OS not reached vs 40.3 (HR 0.60)",
        pfs_median_control=10.5,
        os_median_control=40.3,
        pfs_hr=0.52,
        os_hr=0.60,
    )


def flatiron_liver() -> Scenario:
    return _subgroup(
        "flatiron-liver",
        (0.0, 0.621, 0.379),
        "Flatiron, patients with liver metastases (Brufsky 2022): OS 30.1 vs 16.8 months "
        "(HR 0.56); rwPFS control median 7.5 and HR 0.55 *assumed* (not published)",
        pfs_median_control=7.5,
        os_median_control=16.8,
        pfs_hr=0.55,
        os_hr=0.56,
        death_share=0.15,
    )


# Crossover at progression in PO25 (issue 13), values *assumed*: the trial allowed it but
# its rates by prognosis are not published.  Half of the progressing tamoxifen (control)
# patients switch to letrozole, fitter ones (ECOG 0, no visceral disease, younger) more
# often, so censoring at the switch is informative; a switcher's post-progression death
# hazard is multiplied by 0.8.  The OS calibration targets (30 / 34 months) are taken as
# the no-crossover medians (the calibration does not see the crossover); the
# as-randomised medians follow (docs/guide/scenarios.md).
PO25_CROSSOVER = Crossover(
    share=0.5,
    log_or={"age10": -0.3, "ecog_obs_1": -0.5, "ecog_obs_2plus": -1.5, "visceral": -0.7},
    post_progression_hr=0.8,
    arm="control",
)


# Objective response (issue 13), values *assumed*: lower odds of response with recorded
# ECOG 1 / 2+ and bone-only (often non-measurable) disease, higher with visceral disease;
# the shared frailty (log-OR -1 per SD, progression log-HR +0.5 per SD) makes responders
# progress later.  docs/guide/scenarios.md gives the resulting association.
RESPONSE_LOG_OR = {"ecog_obs_1": -0.2, "ecog_obs_2plus": -0.5, "bone_only": -1.0, "visceral": 0.3}
RESPONSE_FRAILTY_LOG_OR = -1.0
RESPONSE_FRAILTY_LOG_HR = 0.5


def po25_rct() -> Scenario:
    base = flatiron()
    cov = base.covariates
    cov = Covariates(**{**cov.__dict__, "ecog_missing": EcogMissingness(share=0.0)})
    return Scenario(
        name="po25-rct",
        description=(
            "PO25 phase 3 RCT, letrozole (treated) vs tamoxifen, 1:1 randomised (Mouridsen): "
            "TTP medians 9.4 vs 6.0 months; OS 34 vs 30 months *assumed* (no crossover; "
            "po25-crossover adds it). The no-confounding control: every estimator should be "
            "unbiased here"
        ),
        covariates=cov,
        treatment=Treatment(fraction=453 / 907),
        outcomes=_flatiron_outcomes(
            pfs_median_control=6.0,
            pfs_median_treated=9.4,
            pfs_hr=None,
            os_median_control=30.0,
            os_median_treated=34.0,
            os_hr=None,
            death_share=0.05,
        ),
        censoring=Censoring(
            accrual_months=36.0, followup_months=18.0, lost_per_year=0.02, next_therapy_per_year=0.0
        ),
    )


def po25_response() -> Scenario:
    """po25-rct with objective response (ORR 32% vs 21%, Mouridsen): a response block and
    a progression frailty loading that makes responders progress later (values *assumed*:
    :data:`RESPONSE_LOG_OR`, :data:`RESPONSE_FRAILTY_LOG_OR`,
    :data:`RESPONSE_FRAILTY_LOG_HR`); calibrated to the same TTP / OS medians."""
    base = po25_rct()
    return base.replace(
        name="po25-response",
        description=(
            "po25-rct with objective response 32% vs 21% (column response): lower odds with "
            "recorded ECOG 1 / 2+ and bone-only disease (*assumed*), and a shared frailty "
            "that makes responders progress later; the same TTP and OS medians. "
            "No confounding: every estimator should be unbiased here"
        ),
        **{"outcomes.progression.frailty_log_hr": RESPONSE_FRAILTY_LOG_HR},
        response=Response(
            probability_treated=0.32,
            probability_control=0.21,
            log_or=RESPONSE_LOG_OR,
            frailty_log_or=RESPONSE_FRAILTY_LOG_OR,
        ),
    )


def po25_crossover() -> Scenario:
    """po25-rct as the trial was run: crossover at progression (:data:`PO25_CROSSOVER`)."""
    return po25_rct().replace(
        name="po25-crossover",
        description=(
            "po25-rct with crossover at progression, as the trial allowed: half of the "
            "progressing tamoxifen patients switch to letrozole (*assumed*), fitter ones "
            "more often, a switcher's post-progression death hazard x0.8. rwPFS as in "
            "po25-rct; for OS the as-randomised (treatment-policy) effect differs from "
            "the no-crossover (hypothetical) one"
        ),
        crossover=PO25_CROSSOVER,
    )


# Informative censoring (issue 11), values *assumed*: next therapy without documented
# progression and loss to follow-up both depend on recorded ECOG and visceral disease with
# the same log-HRs (poor-prognosis patients leave observation early; one vector keeps the
# censoring hazard proportional within each arm, so a Cox censoring model per arm is
# correctly specified), the control arm moves on to a next therapy 1 / 0.3 times as fast,
# and ECOG and visceral disease are more prognostic than in flatiron (else censoring on
# them hardly matters).  Chosen so that unweighted sIPTW / IPTW-KM are visibly biased;
# docs/guide/scenarios.md gives the numbers.
INFORMATIVE_CENSORING_LOG_HR = {"ecog_obs_1": 0.5, "ecog_obs_2plus": 1.5, "visceral": 1.0}
INFORMATIVE = {
    "censoring.lost_per_year": 0.10,
    "censoring.lost_log_hr": INFORMATIVE_CENSORING_LOG_HR,
    "censoring.next_therapy_per_year": 0.30,
    "censoring.next_therapy_hr_treated": 0.3,
    "censoring.next_therapy_log_hr": INFORMATIVE_CENSORING_LOG_HR,
    "outcomes.progression.log_hr": {
        **PROGRESSION.log_hr,
        "ecog_1": 0.40,
        "ecog_2plus": 1.00,
        "visceral": 0.60,
    },
    "outcomes.death.log_hr": {**DEATH.log_hr, "ecog_2plus": 1.20, "visceral": 0.40},
}


BUILTIN: dict[str, Callable[[], Scenario]] = {
    "flatiron": flatiron,
    "flatiron-lung": flatiron_lung,
    "flatiron-liver": flatiron_liver,
    "po25-rct": po25_rct,
    "po25-response": po25_response,
    "po25-crossover": po25_crossover,
    "null": _variant(
        "null",
        "flatiron with no treatment effect (marginal HRs 1): type I error and "
        "pure confounding bias",
        **{"outcomes.pfs_hr": 1.0, "outcomes.os_hr": 1.0},
    ),
    "strong-confounding": _variant(
        "strong-confounding",
        "flatiron with the treatment model's log-odds doubled "
        "(stronger channeling; same ATE truths)",
        **{"treatment.strength": 2.0},
    ),
    "unmeasured-confounding": _variant(
        "unmeasured-confounding",
        "flatiron plus an unmeasured frailty: frailer patients "
        "get letrozole alone and die sooner; no estimator sees it",
        **{
            "treatment.frailty_log_or": -0.8,
            "outcomes.progression.frailty_log_hr": 0.2,
            "outcomes.death.frailty_log_hr": 0.6,
            "outcomes.post_progression_death.frailty_log_hr": 0.4,
        },
    ),
    "poor-overlap": _variant(
        "poor-overlap",
        "flatiron with the treatment model's log-odds x3.5: extreme "
        "propensity scores, near-violations of positivity",
        **{"treatment.strength": 3.5},
    ),
    "flatiron-informative": _variant(
        "flatiron-informative",
        "flatiron with informative censoring: next therapy and loss to follow-up depend "
        "on recorded ECOG and visceral disease (log-HRs 0.5 / 1.5 / 1.0), next therapy "
        "3.3 times as fast under letrozole alone, ECOG and visceral disease more "
        "prognostic; same targets (control medians, marginal HRs)",
        **INFORMATIVE,
    ),
}
_CACHE: dict[str, Scenario] = {}


def scenario_names() -> list[str]:
    """Names of the built-in scenarios (the default first)."""
    return list(BUILTIN)


def resolve_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario TOML file by path."""
    if not isinstance(name_or_path, str) or not name_or_path:
        raise ScenarioError(
            f"scenario={name_or_path!r} is not allowed; give a built-in scenario name "
            f"({', '.join(scenario_names())}) or a scenario TOML file"
        )
    if name_or_path in BUILTIN:
        return get_scenario(name_or_path)
    if name_or_path.endswith(".toml") or Path(name_or_path).exists():
        return load_scenario(name_or_path)
    return get_scenario(name_or_path)  # raises the unknown-name error


def get_scenario(name: str) -> Scenario:
    """A built-in scenario by name (validated, frozen)."""
    if not isinstance(name, str) or name not in BUILTIN:
        raise ScenarioError(
            f"scenario={name!r} is unknown; built-in scenarios are {scenario_names()} (a "
            "scenario kind such as 'switching' or 'austin-vignette' is run by the study "
            "runner: simulator.study.kinds.get_kind(name), rwesim run / show / simulate)"
        )
    if name not in _CACHE:
        _CACHE[name] = BUILTIN[name]()
    return _CACHE[name]
