"""Bad input, case by case: every invalid scenario parameter or ``simulate`` argument raises
``ScenarioError`` (a ``ValueError``) naming the parameter (dotted path), the offending value
and what is allowed, before any work is done.

Each case lists message fragments that must all appear, in order: the parameter path with
the offending value first, then the rule.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import tomli_w

import simulator
from simulator import ScenarioError, get_scenario, load_scenario, scenario_from_toml

BASE = get_scenario("flatiron")


def _case(changes: dict, *fragments: str, id: str):
    return pytest.param(changes, fragments, id=id)


def _assert_message(err: pytest.ExceptionInfo, fragments) -> None:
    pattern = ".*".join(re.escape(f) for f in fragments)
    assert re.search(pattern, str(err.value), flags=re.S), (
        f"message {str(err.value)!r} lacks {list(fragments)}"
    )


# ---- positive quantities: medians, hazard ratios, shapes, scales, rates ---------------------
POSITIVE = [
    _case(
        {"outcomes.pfs_median_control": 0.0},
        "outcomes.pfs_median_control=0.0",
        "> 0 months",
        id="pfs-median-zero",
    ),
    _case(
        {"outcomes.pfs_median_control": -11.9},
        "outcomes.pfs_median_control=-11.9",
        "> 0 months",
        id="pfs-median-negative",
    ),
    _case(
        {"outcomes.os_median_control": 0.0},
        "outcomes.os_median_control=0.0",
        "> 0 months",
        id="os-median-zero",
    ),
    _case(
        {"outcomes.os_median_control": -43.1},
        "outcomes.os_median_control=-43.1",
        "> 0 months",
        id="os-median-negative",
    ),
    _case({"outcomes.pfs_hr": 0.0}, "outcomes.pfs_hr=0.0", "> 0", id="pfs-hr-zero"),
    _case({"outcomes.pfs_hr": -0.58}, "outcomes.pfs_hr=-0.58", "> 0", id="pfs-hr-negative"),
    _case({"outcomes.os_hr": 0.0}, "outcomes.os_hr=0.0", "> 0", id="os-hr-zero"),
    _case({"outcomes.os_hr": -1.0}, "outcomes.os_hr=-1.0", "> 0", id="os-hr-negative"),
    _case(
        {"outcomes.pfs_hr": None, "outcomes.pfs_median_treated": -20.0},
        "outcomes.pfs_median_treated=-20.0",
        "> 0 months",
        id="pfs-median-treated-negative",
    ),
    _case(
        {"outcomes.os_hr": None, "outcomes.os_median_treated": 0.0},
        "outcomes.os_median_treated=0.0",
        "> 0 months",
        id="os-median-treated-zero",
    ),
    _case(
        {"outcomes.progression.shape": 0.0},
        "outcomes.progression.shape=0.0",
        "> 0",
        id="shape-zero",
    ),
    _case(
        {"outcomes.post_progression_death.shape": -1.0},
        "outcomes.post_progression_death.shape=-1.0",
        "> 0",
        id="shape-negative",
    ),
    _case(
        {"outcomes.scales": [0.05, 0.0, 0.02], "outcomes.gamma_pfs": -0.5, "outcomes.pfs_hr": None},
        "outcomes.scales[1]=0.0",
        "> 0",
        id="scale-zero",
    ),
    _case(
        {"outcomes.scales": [0.05, 0.01]},
        "outcomes.scales=(0.05, 0.01)",
        "3 scales",
        id="scales-length",
    ),
    _case(
        {"covariates.age.shape_sd": 0.0},
        "covariates.age.shape_sd=0.0",
        "> 0 years",
        id="age-sd-zero",
    ),
    _case(
        {"covariates.dfi_median_years": -1.0},
        "covariates.dfi_median_years=-1.0",
        "> 0 years",
        id="dfi-median-negative",
    ),
    _case({"covariates.dfi_shape": 0.0}, "covariates.dfi_shape=0.0", "> 0", id="dfi-shape-zero"),
    _case(
        {"censoring.followup_months": 0.0},
        "censoring.followup_months=0.0",
        "> 0 months",
        id="followup-zero",
    ),
    _case(
        {"censoring.accrual_months": -1.0},
        "censoring.accrual_months=-1.0",
        ">= 0 months",
        id="accrual-negative",
    ),
    _case(
        {"censoring.lost_hr_treated": 0.0},
        "censoring.lost_hr_treated=0.0",
        "> 0",
        id="lost-hr-zero",
    ),
    _case(
        {"censoring.next_therapy_hr_treated": -2.0},
        "censoring.next_therapy_hr_treated=-2.0",
        "> 0",
        id="next-hr-negative",
    ),
    _case(
        {"censoring.visit_interval_months": -3.0},
        "censoring.visit_interval_months=-3.0",
        ">= 0 months",
        id="visit-interval-negative",
    ),
    _case(
        {"censoring.visit_jitter_months": -0.1},
        "censoring.visit_jitter_months=-0.1",
        ">= 0 months",
        id="jitter-negative",
    ),
    _case({"treatment.strength": -1.0}, "treatment.strength=-1.0", ">= 0", id="strength-negative"),
]

# ---- non-finite numbers and wrong types ------------------------------------------------------
NUMBERS = [
    _case(
        {"outcomes.pfs_median_control": math.nan},
        "outcomes.pfs_median_control=nan",
        "finite number",
        id="median-nan",
    ),
    _case({"outcomes.os_hr": math.inf}, "outcomes.os_hr=inf", "finite number", id="hr-inf"),
    _case(
        {"outcomes.pfs_median_control": "11.9"},
        "outcomes.pfs_median_control='11.9'",
        "finite number",
        id="median-string",
    ),
    _case(
        {"outcomes.pfs_median_control": True},
        "outcomes.pfs_median_control=True",
        "finite number",
        id="median-bool",
    ),
    _case(
        {"outcomes.pfs_median_control": None},
        "outcomes.pfs_median_control=None",
        "finite number",
        id="median-missing",
    ),
    _case(
        {"censoring.accrual_months": "48.8"},
        "censoring.accrual_months='48.8'",
        "finite number",
        id="accrual-string",
    ),
    _case(
        {"treatment.frailty_log_or": math.nan},
        "treatment.frailty_log_or=nan",
        "finite number",
        id="frailty-or-nan",
    ),
    _case(
        {"outcomes.death.frailty_log_hr": "big"},
        "outcomes.death.frailty_log_hr='big'",
        "finite number",
        id="frailty-hr-string",
    ),
    _case(
        {"outcomes.progression.log_hr": {"age10": "x"}},
        "outcomes.progression.log_hr['age10']='x'",
        "finite number",
        id="log-hr-string",
    ),
    _case(
        {"outcomes.death.log_hr": {"age10": math.inf}},
        "outcomes.death.log_hr['age10']=inf",
        "finite number",
        id="log-hr-inf",
    ),
    _case(
        {"treatment.arm_means": {}, "treatment.coefficients": {"age10": math.nan}},
        "treatment.coefficients['age10']=nan",
        "finite number",
        id="coefficient-nan",
    ),
    _case(
        {"censoring.lost_log_hr": {"age10": "0.3"}},
        "censoring.lost_log_hr['age10']='0.3'",
        "finite number",
        id="lost-log-hr-string",
    ),
    _case(
        {"covariates.age.shape_mean": math.inf},
        "covariates.age.shape_mean=inf",
        "finite number",
        id="age-mean-inf",
    ),
    _case(
        {"covariates.ecog": "0.5,0.4,0.1"},
        "covariates.ecog='0.5,0.4,0.1'",
        "a list",
        id="shares-string",
    ),
    _case(
        {"covariates.ecog": ["a", 0.5, 0.5]},
        "covariates.ecog[0]='a'",
        "probability",
        id="share-string",
    ),
    _case(
        {"treatment.fraction": "0.5"},
        "treatment.fraction='0.5'",
        "probability in (0, 1)",
        id="fraction-string",
    ),
    _case(
        {"covariates.correlation": 0.3},
        "covariates.correlation=0.3",
        "table",
        id="correlation-not-table",
    ),
    _case(
        {"treatment.arm_means": {"visceral": 0.4}},
        "treatment.arm_means['visceral']=0.4",
        "[treated, control]",
        id="arm-mean-not-pair",
    ),
    _case(
        {"treatment.arm_means": {"visceral": [0.4, 0.4, 0.4]}},
        "treatment.arm_means['visceral']=(0.4, 0.4, 0.4)",
        "[treated, control]",
        id="arm-mean-triple",
    ),
    _case(
        {"treatment.arm_means": {"age10": ["old", 0.4]}},
        "treatment.arm_means['age10'][0]='old'",
        "finite number",
        id="arm-mean-string",
    ),
    _case(
        {"outcomes.progression": 1.1},
        "outcomes.progression",
        "table",
        "1.1",
        id="section-not-table",
    ),
    _case({"outcomes": "weibull"}, "outcomes", "table", "'weibull'", id="outcomes-not-table"),
    _case({"name": ""}, "name=''", "non-empty string", id="name-empty"),
    _case({"name": 7}, "name=7", "non-empty string", id="name-number"),
]

# ---- probabilities: every share, fraction, bound and annual rate ----------------------------
PROBABILITIES = [
    _case({f"covariates.{k}": v}, f"covariates.{k}={v}", "probability in [0, 1]", id=f"{k}-{v}")
    for k in ("visceral", "bone_only", "de_novo", "academic")
    for v in (-0.1, 1.5)
] + [
    _case(
        {"covariates.ecog_missing.share": 1.0},
        "covariates.ecog_missing.share=1.0",
        "probability in [0, 1)",
        id="ecog-missing-one",
    ),
    _case(
        {"covariates.ecog_missing.share": -0.2},
        "covariates.ecog_missing.share=-0.2",
        "probability in [0, 1)",
        id="ecog-missing-negative",
    ),
    _case(
        {"treatment.fraction": 0.0},
        "treatment.fraction=0.0",
        "probability in (0, 1)",
        id="fraction-zero",
    ),
    _case(
        {"treatment.fraction": 1.0},
        "treatment.fraction=1.0",
        "probability in (0, 1)",
        id="fraction-one",
    ),
    _case(
        {"treatment.fraction": 1.3},
        "treatment.fraction=1.3",
        "probability in (0, 1)",
        id="fraction-above-one",
    ),
    _case(
        {"treatment.ps_bounds": [-0.1, 0.9]},
        "treatment.ps_bounds[0]=-0.1",
        "probability in [0, 1]",
        id="ps-bound-low",
    ),
    _case(
        {"treatment.ps_bounds": [0.1, 1.2]},
        "treatment.ps_bounds[1]=1.2",
        "probability in [0, 1]",
        id="ps-bound-high",
    ),
    _case(
        {"treatment.ps_bounds": [0.9, 0.1]},
        "treatment.ps_bounds=[0.9, 0.1]",
        "lo must be < hi",
        id="ps-bounds-reversed",
    ),
    _case(
        {"treatment.ps_bounds": [0.1]},
        "treatment.ps_bounds=(0.1,)",
        "[lo, hi]",
        id="ps-bounds-length",
    ),
    _case(
        {"treatment.ps_bounds": [0.6, 0.95]},
        f"treatment.fraction={772 / 1430!r}",
        "ps_bounds=(0.6, 0.95)",
        "strictly inside",
        id="fraction-outside-ps-bounds",
    ),
    _case(
        {"treatment.arm_means": {"visceral": [1.2, 0.2]}},
        "treatment.arm_means['visceral'][0]=1.2",
        "probability in [0, 1]",
        id="arm-mean-share-above-one",
    ),
    _case(
        {"outcomes.death_share": 0.0},
        "outcomes.death_share=0.0",
        "probability in (0, 1)",
        id="death-share-zero",
    ),
    _case(
        {"outcomes.death_share": 1.0},
        "outcomes.death_share=1.0",
        "probability in (0, 1)",
        id="death-share-one",
    ),
    _case(
        {"outcomes.death_share": -0.1},
        "outcomes.death_share=-0.1",
        "probability in (0, 1)",
        id="death-share-negative",
    ),
    _case(
        {"censoring.lost_per_year": 1.0},
        "censoring.lost_per_year=1.0",
        "probability in [0, 1)",
        id="lost-one",
    ),
    _case(
        {"censoring.lost_per_year": -0.05},
        "censoring.lost_per_year=-0.05",
        "probability in [0, 1)",
        id="lost-negative",
    ),
    _case(
        {"censoring.lost_per_year": 5.0},
        "censoring.lost_per_year=5.0",
        "probability in [0, 1)",
        id="lost-above-one",
    ),
    _case(
        {"censoring.next_therapy_per_year": 1.0},
        "censoring.next_therapy_per_year=1.0",
        "probability in [0, 1)",
        id="next-therapy-one",
    ),
    _case(
        {"censoring.next_therapy_per_year": -0.1},
        "censoring.next_therapy_per_year=-0.1",
        "probability in [0, 1)",
        id="next-therapy-negative",
    ),
]

# ---- shares that must sum to 1 ------------------------------------------------------------
SHARES = [
    _case(
        {"covariates.ecog": [0.5, 0.5, 0.5]},
        "covariates.ecog=[0.5, 0.5, 0.5]",
        "sum to 1",
        id="ecog-sum",
    ),
    _case(
        {"covariates.ecog": [0.6, 0.5, -0.1]},
        "covariates.ecog[2]=-0.1",
        "probability in [0, 1]",
        id="ecog-negative-share",
    ),
    _case(
        {"covariates.ecog": [0.5, 0.5]},
        "covariates.ecog=(0.5, 0.5)",
        "list of 3 shares",
        id="ecog-length",
    ),
    _case(
        {"covariates.sites": [0.6, 0.3, 0.2]},
        "covariates.sites=[0.6, 0.3, 0.2]",
        "sum to 1",
        id="sites-sum",
    ),
    _case(
        {"covariates.visceral_pattern": [0.6, 0.3, 0.2]},
        "covariates.visceral_pattern=[0.6, 0.3, 0.2]",
        "sum to 1",
        id="pattern-sum",
    ),
    _case(
        {"covariates.race": [0.5, 0.1, 0.1, 0.1, 0.1, 0.2]},
        "covariates.race=[0.5, 0.1, 0.1, 0.1, 0.1, 0.2]",
        "sum to 1",
        id="race-sum",
    ),
    _case(
        {"covariates.race": [1.0]}, "covariates.race=(1.0,)", "list of 6 shares", id="race-length"
    ),
    _case(
        {"covariates.age.band_shares": [0.1, 0.2, 0.3, 0.5]},
        "covariates.age.band_shares=[0.1, 0.2, 0.3, 0.5]",
        "sum to 1",
        id="age-bands-sum",
    ),
]

# ---- correlation -----------------------------------------------------------------------------
CORRELATION = [
    _case(
        {"covariates.correlation": {"age:ecog": 1.0}},
        "covariates.correlation['age:ecog']=1.0",
        "(-1, 1)",
        id="correlation-one",
    ),
    _case(
        {"covariates.correlation": {"sites:visceral": -1.2}},
        "covariates.correlation['sites:visceral']=-1.2",
        "(-1, 1)",
        id="correlation-below",
    ),
    _case(
        {"covariates.correlation": {"age:frailty": 0.2}},
        "covariates.correlation",
        "'age:frailty'",
        "allowed",
        "age:ecog",
        id="correlation-unknown-key",
    ),
    _case(
        {"covariates.correlation": {"age:age": 0.2}},
        "covariates.correlation",
        "'age:age'",
        "allowed",
        id="correlation-self",
    ),
    _case(
        {"covariates.correlation": {"age-ecog": 0.2}},
        "covariates.correlation",
        "'age-ecog'",
        "allowed",
        id="correlation-malformed-key",
    ),
    _case(
        {"covariates.correlation": {"age:ecog": "0.3"}},
        "covariates.correlation['age:ecog']='0.3'",
        "finite number",
        id="correlation-string",
    ),
    _case(
        {"covariates.correlation": {"age:ecog": 0.9, "age:sites": 0.9, "ecog:sites": -0.9}},
        "covariates.correlation=",
        "0.9",
        "not positive definite",
        id="correlation-not-positive-definite",
    ),
]

# ---- feature names, model structure, consistency -------------------------------------------
STRUCTURE = [
    _case(
        {"outcomes.progression.log_hr": {"agee10": 0.1}},
        "outcomes.progression.log_hr",
        "['agee10']",
        "allowed features",
        "age10",
        id="log-hr-unknown-feature",
    ),
    _case(
        {"outcomes.post_progression_death.log_hr": {"frailty": 0.1}},
        "outcomes.post_progression_death.log_hr",
        "['frailty']",
        "allowed features",
        id="log-hr-frailty-not-a-feature",
    ),
    _case(
        {"treatment.arm_means": {"viscerl": [0.4, 0.4]}},
        "treatment.arm_means",
        "['viscerl']",
        "allowed features",
        id="arm-means-unknown-feature",
    ),
    _case(
        {"treatment.arm_means": {}, "treatment.coefficients": {"ECOG": 0.5}},
        "treatment.coefficients",
        "['ECOG']",
        "allowed features",
        id="coefficients-unknown-feature",
    ),
    _case(
        {"censoring.lost_log_hr": {"age": 0.5}},
        "censoring.lost_log_hr",
        "['age']",
        "allowed features",
        id="lost-log-hr-unknown-feature",
    ),
    _case(
        {"treatment.coefficients": {"age10": -0.3}},
        "treatment.arm_means",
        "treatment.coefficients",
        "not both",
        "coefficients={'age10': -0.3}",
        id="arm-means-and-coefficients",
    ),
    _case(
        {"treatment.arm_means": {"visceral": [0.9, 0.9]}},
        "treatment.arm_means['visceral']=(0.9, 0.9)",
        "population mean of 0.9000",
        "covariate model gives 0.389",
        id="arm-means-inconsistent-with-marginal",
    ),
    _case(
        {"treatment.arm_means": {"age10": [1.5, 1.5]}},
        "treatment.arm_means['age10']=(1.5, 1.5)",
        "covariate model gives",
        id="arm-means-age-inconsistent",
    ),
    _case(
        {"covariates.bone_only": 0.9},
        "covariates.bone_only=0.9",
        "exceeds",
        "single non-visceral site",
        id="bone-only-infeasible",
    ),
    _case(
        {"covariates.visceral": 1.0, "covariates.bone_only": 0.01, "treatment.arm_means": {}},
        "covariates.bone_only=0.01",
        "exceeds",
        "(0.000)",
        id="bone-only-all-visceral",
    ),
    _case(
        {"covariates.ecog_missing.mechanism": "random"},
        "covariates.ecog_missing.mechanism='random'",
        "['mcar', 'mar', 'mnar']",
        id="missing-mechanism",
    ),
    _case(
        {"covariates.ecog_missing.academic_log_or": -0.4},
        "covariates.ecog_missing.academic_log_or=-0.4",
        "mechanism 'mcar'",
        "'mar' or 'mnar'",
        id="mcar-with-log-or",
    ),
    _case(
        {"covariates.ecog_missing.mechanism": "mar", "covariates.ecog_missing.ecog_log_or": 0.5},
        "covariates.ecog_missing.ecog_log_or=0.5",
        "'mar'",
        "'mnar'",
        id="mar-with-ecog-or",
    ),
    _case(
        {"outcomes.hr_estimand": "ATC"},
        "outcomes.hr_estimand='ATC'",
        "['ATE', 'ATT']",
        id="hr-estimand",
    ),
    _case(
        {"covariates.age.min_age": 10.0},
        "covariates.age.min_age=10.0",
        "[18, 50)",
        id="min-age-below-18",
    ),
    _case(
        {"covariates.age.max_age": 70.0},
        "covariates.age.max_age=70.0",
        "> 75",
        id="max-age-too-low",
    ),
    _case(
        {"censoring.visit_interval_months": 3.0, "censoring.visit_jitter_months": 1.5},
        "censoring.visit_jitter_months=1.5",
        "half of visit_interval_months (3.0)",
        id="jitter-half-interval",
    ),
    _case(
        {"censoring.visit_interval_months": 3.0, "censoring.visit_jitter_months": 2.0},
        "censoring.visit_jitter_months=2.0",
        "half of visit_interval_months",
        id="jitter-above-half-interval",
    ),
    _case(
        {"censoring.visit_jitter_months": 0.5},
        "censoring.visit_jitter_months=0.5",
        "without visits",
        id="jitter-without-visits",
    ),
    _case(
        {"calibration.population": 0},
        "calibration.population=0",
        "positive integer",
        id="population-zero",
    ),
    _case(
        {"calibration.population": 1e6},
        "calibration.population=1000000.0",
        "positive integer",
        id="population-float",
    ),
    _case(
        {"calibration.truth_batches": -1},
        "calibration.truth_batches=-1",
        "positive integer",
        id="batches-negative",
    ),
    _case({"calibration.seed": -1}, "calibration.seed=-1", "integer >= 0", id="seed-negative"),
    _case(
        {"calibration.truth_seed": 2.5},
        "calibration.truth_seed=2.5",
        "integer >= 0",
        id="truth-seed-float",
    ),
    _case(
        {"calibration.truth_population": 1000},
        "calibration.truth_population=1000",
        "100 patients per batch",
        id="truth-population-too-small",
    ),
]

# ---- exactly one effect target per outcome -------------------------------------------------
EFFECTS = [
    _case(
        {"outcomes.pfs_hr": None},
        "pfs_hr",
        "pfs_median_treated",
        "gamma_pfs",
        "none",
        id="pfs-no-effect-target",
    ),
    _case(
        {"outcomes.os_hr": None},
        "os_hr",
        "os_median_treated",
        "gamma_os",
        "none",
        id="os-no-effect-target",
    ),
    _case(
        {"outcomes.pfs_median_treated": 20.0},
        "exactly one of",
        "outcomes.pfs_hr=0.58, outcomes.pfs_median_treated=20.0",
        id="pfs-hr-and-median",
    ),
    _case(
        {"outcomes.gamma_os": -0.4},
        "exactly one of",
        "outcomes.os_hr=0.66, outcomes.gamma_os=-0.4",
        id="os-hr-and-gamma",
    ),
    _case(
        {"outcomes.pfs_median_treated": 20.0, "outcomes.gamma_pfs": 0.1},
        "exactly one of",
        "outcomes.pfs_hr=0.58, outcomes.pfs_median_treated=20.0, outcomes.gamma_pfs=0.1",
        id="pfs-all-three-targets",
    ),
    _case(
        {
            "outcomes.scales": [0.05, 0.01, 0.02],
            "outcomes.pfs_hr": None,
            "outcomes.pfs_median_treated": 20.0,
        },
        "outcomes.pfs_median_treated=20.0",
        "raw outcomes.scales",
        id="median-target-with-raw-scales",
    ),
]

# ---- unknown parameters (typos) ------------------------------------------------------------
UNKNOWN = [
    _case(
        {"outcomes.pfs_medain_control": 11.9},
        "outcomes",
        "['pfs_medain_control']",
        "allowed",
        "pfs_median_control",
        id="typo-in-section",
    ),
    _case(
        {"censoring.lost_per_yr": 0.05},
        "censoring",
        "['lost_per_yr']",
        "allowed",
        "lost_per_year",
        id="typo-in-censoring",
    ),
    _case(
        {"outcome.pfs_hr": 0.5},
        "scenario",
        "['outcome']",
        "allowed",
        "outcomes",
        id="typo-in-section-name",
    ),
    _case(
        {"outcomes.pfs_hr.value": 0.5},
        "'outcomes.pfs_hr.value'",
        "does not name a scenario parameter",
        id="path-below-a-number",
    ),
]

ALL_CASES = (
    POSITIVE + NUMBERS + PROBABILITIES + SHARES + CORRELATION + STRUCTURE + EFFECTS + UNKNOWN
)


@pytest.mark.parametrize(("changes", "fragments"), ALL_CASES)
def test_replace_rejects_bad_parameter(changes, fragments):
    with pytest.raises(ScenarioError) as err:
        BASE.replace(**changes)
    _assert_message(err, fragments)


def _toml_cases():
    # the same cases read from a TOML file (lists, not tuples; TOML's own types); cases that
    # TOML cannot express (None) or that only make sense for replace() are left out
    for case in ALL_CASES:
        changes = case.values[0]
        if any(v is None for v in changes.values()) or case.id == "path-below-a-number":
            continue
        yield case


@pytest.mark.parametrize(("changes", "fragments"), list(_toml_cases()))
def test_scenario_from_toml_rejects_bad_parameter(changes, fragments):
    data = BASE.to_dict()
    for key, value in changes.items():
        *sections, last = key.split(".")
        node = data
        for part in sections:
            node = node.setdefault(part, {})
        node[last] = value
    text = tomli_w.dumps(data)
    with pytest.raises(ScenarioError) as err:
        scenario_from_toml(text)
    _assert_message(err, fragments)


def test_fraction_must_lie_inside_ps_bounds():
    with pytest.raises(
        ScenarioError,
        match=r"treatment\.fraction=0\.5 is not allowed with "
        r"ps_bounds=\(0\.5, 0\.9\); it must lie strictly inside",
    ):
        simulator.Treatment(fraction=0.5, ps_bounds=(0.5, 0.9))


def test_failed_replace_leaves_original_untouched():
    before = BASE.to_toml()
    with pytest.raises(ScenarioError):
        BASE.replace(**{"outcomes.pfs_hr": -1.0})
    assert BASE.to_toml() == before


def test_direct_construction_is_validated_too():
    message = r"outcomes\.pfs_hr=0(\.0)? is not allowed; it must be > 0"
    with pytest.raises(ScenarioError, match=message):
        simulator.Outcomes(pfs_hr=0)
    with pytest.raises(ScenarioError, match=r"treatment must be a Treatment, got dict"):
        simulator.Scenario(treatment={"fraction": 0.5})


# ---- TOML ------------------------------------------------------------------------------------
def test_malformed_toml_is_a_value_error_naming_the_source():
    text = BASE.to_toml().replace("pfs_hr = 0.58", "pfs_hr = = 0.58")
    with pytest.raises(
        ScenarioError, match=r"scenario file my\.toml is not valid TOML: .*line \d+"
    ):
        scenario_from_toml(text, source="my.toml")


def test_toml_typo_names_the_unknown_key_and_allowed_ones():
    text = BASE.to_toml().replace("death_share = ", "deaths_share = ")
    with pytest.raises(
        ScenarioError,
        match=r"outcomes has unknown parameter\(s\) \['deaths_share'\]"
        r"; allowed: .*'death_share'",
    ):
        scenario_from_toml(text)


def test_toml_unknown_section_is_rejected():
    text = BASE.to_toml() + "\n[censorship]\nlost_per_year = 0.1\n"
    with pytest.raises(
        ScenarioError, match=r"scenario has unknown parameter\(s\) \['censorship'\]"
    ):
        scenario_from_toml(text)


def test_toml_string_where_a_number_goes():
    text = BASE.to_toml().replace("pfs_median_control = 11.9", 'pfs_median_control = "11.9"')
    with pytest.raises(ScenarioError, match=r"outcomes\.pfs_median_control='11\.9' is not allowed"):
        scenario_from_toml(text)


def test_toml_table_where_a_number_goes():
    text = BASE.to_toml().replace("accrual_months = 48.8", "accrual_months = { months = 48.8 }")
    with pytest.raises(ScenarioError, match=r"censoring\.accrual_months=\{'months': 48\.8\}"):
        scenario_from_toml(text)


def test_load_scenario_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ScenarioError, match=r"scenario file '.*nope\.toml' does not exist"):
        load_scenario(path)


def test_unknown_builtin_scenario_lists_the_known_ones():
    with pytest.raises(
        ScenarioError,
        match=r"scenario='flatiron2' is unknown; built-in scenarios "
        r"are \['flatiron', .*'po25-rct'",
    ):
        get_scenario("flatiron2")


# ---- simulate() arguments ------------------------------------------------------------------
SIM_ARGS = [
    pytest.param({"n": 0}, "n=0", "positive integer", id="n-zero"),
    pytest.param({"n": -5}, "n=-5", "positive integer", id="n-negative"),
    pytest.param({"n": 10.0}, "n=10.0", "positive integer", id="n-float"),
    pytest.param({"n": "10"}, "n='10'", "positive integer", id="n-string"),
    pytest.param({"n": True}, "n=True", "positive integer", id="n-bool"),
    pytest.param({"seed": -1}, "seed=-1", "integer >= 0 or a SeedSequence", id="seed-negative"),
    pytest.param({"seed": 1.5}, "seed=1.5", "integer >= 0 or a SeedSequence", id="seed-float"),
    pytest.param({"seed": "1"}, "seed='1'", "integer >= 0 or a SeedSequence", id="seed-string"),
    pytest.param({"seed": None}, "seed=None", "integer >= 0 or a SeedSequence", id="seed-none"),
    pytest.param({"seed": False}, "seed=False", "integer >= 0", id="seed-bool"),
    pytest.param({"threads": 0}, "threads=0", "use 1..", id="threads-zero"),
    pytest.param({"threads": 10_000}, "threads=10000", "use 1..", id="threads-too-many"),
    pytest.param({"threads": 1.0}, "threads=1.0", "use 1..", id="threads-float"),
    pytest.param({"threads": "2"}, "threads='2'", "use 1..", id="threads-string"),
    pytest.param(
        {"scenario": "flatiron2"},
        "scenario='flatiron2'",
        "built-in scenarios",
        id="scenario-unknown-name",
    ),
    pytest.param({"scenario": BASE.to_dict()}, "scenario={", "give a Scenario", id="scenario-dict"),
]


@pytest.mark.parametrize(("kwargs", "where", "rule"), SIM_ARGS)
@pytest.mark.parametrize("fn", [simulator.simulate, simulator.simulate_arrays])
def test_simulate_rejects_bad_arguments(fn, kwargs, where, rule):
    args = {"scenario": BASE, "n": 10, "seed": 1, **kwargs}
    with pytest.raises(ScenarioError) as err:
        fn(args.pop("scenario"), args.pop("n"), args.pop("seed"), **args)
    _assert_message(err, (where, rule))


class _Calibrated(Exception):
    pass


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"n": 0}, "n=0"),
        ({"seed": -3}, "seed=-3"),
        ({"scenario": 3}, "scenario=3"),
    ],
)
def test_simulate_validates_before_calibrating(monkeypatch, kwargs, where):
    def forbidden(*_a, **_k):
        raise _Calibrated

    monkeypatch.setattr("simulator.generate.calibrate", forbidden)
    args = {"scenario": BASE, "n": 10, "seed": 1, **kwargs}
    with pytest.raises(ScenarioError, match=re.escape(where)):
        simulator.simulate(args.pop("scenario"), args.pop("n"), args.pop("seed"))


def test_seed_sequence_and_numpy_integers_are_accepted():
    a = simulator.simulate_arrays(BASE, 20, np.int64(7))
    b = simulator.simulate_arrays(BASE, np.int32(20), np.random.SeedSequence(7))
    np.testing.assert_array_equal(a.floats, b.floats)


# ---- inputs a hostile user tries from Python ------------------------------------------------
@pytest.mark.parametrize(
    ("call", "fragments"),
    [
        (
            lambda: BASE.replace(**{"treatment.strength": 2.0, "treatment__strength": 3.0}),
            ("'treatment.strength' and 'treatment__strength'", "same parameter"),
        ),
        (lambda: BASE.replace(description=5), ("description=5", "must be a string")),
        (lambda: load_scenario(123), ("path=123", "scenario file name")),
        (lambda: load_scenario(None), ("path=None",)),
        (lambda: load_scenario(""), ("path=''",)),
        (lambda: scenario_from_toml(b"name = 'x'"), ("bytes", "decode it first")),
        (lambda: scenario_from_toml(None), ("text=None", "as a str")),
        (lambda: scenario_from_toml(""), ("is empty",)),
        (lambda: get_scenario(["flatiron"]), ("scenario=['flatiron'] is unknown",)),
        (lambda: simulator.simulate(BASE, 5, 1, latent="no"), ("latent='no'", "True or False")),
        (
            lambda: simulator.simulate_arrays(BASE, 5, 1, potential_outcomes=1),
            ("potential_outcomes=1", "True or False"),
        ),
    ],
    ids=[
        "replace-same-parameter-twice",
        "description-not-str",
        "load-int",
        "load-none",
        "load-empty",
        "toml-bytes",
        "toml-none",
        "toml-empty",
        "name-list",
        "latent-not-bool",
        "potential-not-bool",
    ],
)
def test_hostile_python_inputs_are_scenario_errors(call, fragments):
    with pytest.raises(ScenarioError) as err:
        call()
    _assert_message(err, fragments)


def test_load_scenario_refuses_directories_binary_and_empty_files(tmp_path):
    (tmp_path / "d.toml").mkdir()
    with pytest.raises(ScenarioError, match=r"is a directory, not a TOML file"):
        load_scenario(tmp_path / "d.toml")
    (tmp_path / "b.toml").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ScenarioError, match=r"is not UTF-8 text"):
        load_scenario(tmp_path / "b.toml")
    (tmp_path / "e.toml").write_text("\n# nothing\n")
    with pytest.raises(ScenarioError, match=r"e\.toml is empty"):
        load_scenario(tmp_path / "e.toml")


def test_simulate_checks_memory_before_calibrating(monkeypatch):
    def forbidden(*_a, **_k):
        raise _Calibrated

    monkeypatch.setattr("simulator.generate.calibrate", forbidden)
    for fn in (simulator.simulate, simulator.simulate_arrays):
        with pytest.raises(ScenarioError, match=r"n=1000000000000 is not allowed here: .* GiB"):
            fn(BASE, 10**12, 1)
