"""The scenario model: TOML round-trip of every built-in, save / load, ``replace`` semantics,
fingerprints, immutability, and the built-ins' published targets (docs/design.md §8)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import sim_scenarios
from hypothesis import given
from hypothesis import strategies as st

import simulator
from simulator import (
    Censoring,
    get_scenario,
    load_scenario,
    scenario_from_dict,
    scenario_from_toml,
    scenario_names,
)

BASE = get_scenario("flatiron")

BUILTINS = scenario_names()


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_round_trips_through_toml(name):
    sc = get_scenario(name)
    back = scenario_from_toml(sc.to_toml())
    assert back == sc
    assert back.fingerprint() == sc.fingerprint()
    assert back.to_toml() == sc.to_toml()


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_save_and_load(tmp_path, name):
    sc = get_scenario(name)
    path = tmp_path / f"{name}.toml"
    sc.save(path)
    back = load_scenario(path)
    assert back == sc
    assert back.fingerprint() == sc.fingerprint()
    assert load_scenario(str(path)) == sc  # str paths work too


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_replace_without_changes_is_an_equal_copy(name):
    sc = get_scenario(name)
    copy = sc.replace()
    assert copy == sc and copy is not sc
    assert copy.fingerprint() == sc.fingerprint()


def _mode_params():
    yield pytest.param(sim_scenarios.every_option, id="every-option")
    yield pytest.param(
        lambda: BASE.replace(
            **{
                "treatment.arm_means": {},
                "treatment.coefficients": {"age10": -0.4, "ecog_obs_2plus": -0.8},
            }
        ),
        id="raw-treatment-coefficients",
    )
    yield pytest.param(
        lambda: BASE.replace(
            **{
                "outcomes.hr_estimand": "ATT",
                "treatment.ps_bounds": [0.05, 0.95],
                "covariates.ecog_missing.mechanism": "mar",
                "covariates.ecog_missing.academic_log_or": -0.5,
            }
        ),
        id="att-bounded-mar",
    )
    yield pytest.param(
        lambda: scenario_from_dict(
            {
                "outcomes": {
                    "scales": [0.05, 0.005, 0.03],
                    "pfs_hr": None,
                    "gamma_pfs": -0.5,
                    "os_hr": None,
                    "gamma_os": -0.3,
                }
            }
        ),
        id="raw-scales-and-gammas",
    )
    yield pytest.param(
        lambda: get_scenario("po25-rct").replace(**{"outcomes.os_median_treated": 40.0}),
        id="median-targets",
    )


@pytest.mark.parametrize("make", list(_mode_params()))
def test_non_default_modes_round_trip(make):
    sc = make()
    back = scenario_from_toml(sc.to_toml())
    assert back == sc
    assert back.fingerprint() == sc.fingerprint()


def test_default_scenario_round_trips():
    sc = simulator.Scenario()
    assert scenario_from_toml(sc.to_toml()) == sc
    assert scenario_from_dict({}) == sc


@given(
    pfs_median=st.floats(1.0, 60.0),
    os_median=st.floats(10.0, 120.0),
    pfs_hr=st.floats(0.1, 3.0),
    strength=st.floats(0.0, 4.0),
    lost=st.floats(0.0, 0.5),
    death_share=st.floats(0.01, 0.5),
    shape=st.floats(0.3, 4.0),
    rho=st.floats(-0.8, 0.8),
    jitter=st.floats(0.0, 1.49),
)
def test_perturbed_scenarios_round_trip(
    pfs_median, os_median, pfs_hr, strength, lost, death_share, shape, rho, jitter
):
    sc = BASE.replace(
        **{
            "outcomes.pfs_median_control": pfs_median,
            "outcomes.os_median_control": os_median,
            # a 2-year survival target must sit on the right side of the median
            "outcomes.os_survival_control": (24.0, 0.6 if os_median > 24.0 else 0.4),
            "outcomes.pfs_hr": pfs_hr,
            "treatment.strength": strength,
            "censoring.lost_per_year": lost,
            "outcomes.death_share": death_share,
            "outcomes.death.shape": shape,
            "covariates.correlation": {**BASE.covariates.correlation, "age:visceral": rho},
            "censoring.visit_interval_months": 3.0,
            "censoring.visit_jitter_months": jitter,
        }
    )
    back = scenario_from_toml(sc.to_toml())
    assert back == sc
    assert back.fingerprint() == sc.fingerprint()
    assert back.outcomes.pfs_median_control == pfs_median  # exact: TOML floats use repr


# ---- replace -------------------------------------------------------------------------------
def test_replace_returns_a_changed_copy_and_leaves_the_original():
    before = BASE.to_toml()
    sc = BASE.replace(
        **{"treatment.strength": 2.0, "outcomes.progression.shape": 1.4}, name="stronger"
    )
    assert sc.treatment.strength == 2.0
    assert sc.outcomes.progression.shape == 1.4
    assert sc.name == "stronger"
    assert sc.outcomes.progression.log_hr == BASE.outcomes.progression.log_hr
    assert BASE.treatment.strength == 1.0 and BASE.name == "flatiron"
    assert BASE.to_toml() == before


def test_replace_accepts_double_underscore_paths():
    a = BASE.replace(outcomes__pfs_hr=0.7, covariates__age__shape_sd=10.0)
    b = BASE.replace(**{"outcomes.pfs_hr": 0.7, "covariates.age.shape_sd": 10.0})
    assert a == b
    assert a.outcomes.pfs_hr == 0.7 and a.covariates.age.shape_sd == 10.0


def test_replace_with_a_section_object():
    cens = Censoring(lost_per_year=0.2, visit_interval_months=3.0)
    sc = BASE.replace(censoring=cens)
    assert sc.censoring == cens
    assert sc.outcomes == BASE.outcomes


def test_replace_of_a_mapping_replaces_it_whole():
    sc = BASE.replace(**{"outcomes.death.log_hr": {"age10": 0.7}})
    assert sc.outcomes.death.log_hr == {"age10": 0.7}


def test_replace_can_add_a_parameter_that_was_none():
    sc = BASE.replace(**{"outcomes.pfs_hr": None, "outcomes.pfs_median_treated": 20.0})
    assert sc.outcomes.pfs_hr is None and sc.outcomes.pfs_median_treated == 20.0


# ---- fingerprint -----------------------------------------------------------------------------
def test_fingerprint_ignores_name_and_description():
    sc = BASE.replace(name="other", description="same mechanism, other label")
    assert sc.fingerprint() == BASE.fingerprint()


@pytest.mark.parametrize(
    "change",
    [
        {"outcomes.pfs_hr": 0.6},
        {"treatment.strength": 1.5},
        {"censoring.followup_months": 6.0},
        {"calibration.seed": 1},
        {"covariates.dfi_shape": 1.4},
        {"outcomes.progression.log_hr": {**BASE.outcomes.progression.log_hr, "age10": -0.11}},
    ],
)
def test_fingerprint_changes_with_any_parameter(change):
    assert BASE.replace(**change).fingerprint() != BASE.fingerprint()


def test_builtin_fingerprints_are_distinct():
    prints = {get_scenario(n).fingerprint() for n in scenario_names()}
    assert len(prints) == len(scenario_names())


# ---- immutability --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("obj", "attr"),
    [
        (BASE, "name"),
        (BASE.outcomes, "pfs_hr"),
        (BASE.covariates.age, "shape_mean"),
        (BASE.treatment, "fraction"),
        (BASE.censoring, "lost_per_year"),
        (BASE.calibration, "population"),
    ],
)
def test_scenarios_are_frozen(obj, attr):
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, attr, 1.0)


def test_sequence_parameters_are_stored_as_tuples():
    sc = BASE.replace(**{"covariates.visceral_pattern": [0.6, 0.25, 0.15]})
    assert sc.covariates.visceral_pattern == (0.6, 0.25, 0.15)
    assert isinstance(sc.treatment.ps_bounds, tuple)
    assert all(isinstance(v, tuple) for v in sc.treatment.arm_means.values())


# ---- built-ins: names and published targets (docs/design.md §8) --------------------------
def test_builtin_names():
    names = scenario_names()
    assert names[0] == "flatiron"
    assert {"flatiron", "flatiron-lung", "flatiron-liver", "po25-rct", "null"} <= set(names)
    for name in names:
        assert get_scenario(name).name == name
        assert get_scenario(name) is get_scenario(name)  # built once per process


def test_flatiron_targets_are_the_published_figures():
    o, t, c = BASE.outcomes, BASE.treatment, BASE.censoring
    assert (o.pfs_median_control, o.os_median_control) == (11.9, 43.1)
    assert (o.pfs_hr, o.os_hr) == (0.58, 0.66)
    assert o.hr_estimand == "ATE"
    assert t.fraction == 772 / 1430
    age_treated, age_control = t.arm_means["age10"]
    assert 65 + 10 * age_treated == pytest.approx(65.2)
    assert 65 + 10 * age_control == pytest.approx(69.2)
    assert t.arm_means["age_75plus"] == pytest.approx((0.199, 0.377), abs=1e-3)
    assert t.arm_means["de_novo"] == (0.416, 0.386)
    assert t.arm_means["academic"] == (0.060, 0.047)
    # index window 3 Feb 2015 - 28 Feb 2019 (48.8 months), cutoff 31 May 2019 (3 more)
    assert (c.accrual_months, c.followup_months) == (48.8, 3.0)
    assert (c.lost_per_year, c.next_therapy_per_year) == (0.05, 0.10)
    assert (o.progression.shape, o.death.shape, o.post_progression_death.shape) == (1.1, 1.0, 1.0)


def test_po25_is_randomised_with_median_targets():
    sc = get_scenario("po25-rct")
    o = sc.outcomes
    assert sc.treatment.randomised and sc.treatment.fraction == 453 / 907
    assert (o.pfs_median_control, o.pfs_median_treated) == (6.0, 9.4)
    assert o.pfs_hr is None and o.os_hr is None


@pytest.mark.parametrize(
    ("name", "changed"),
    [
        ("null", {("outcomes", "pfs_hr"): 1.0, ("outcomes", "os_hr"): 1.0}),
        ("strong-confounding", {("treatment", "strength"): 2.0}),
        ("poor-overlap", {("treatment", "strength"): 3.5}),
        (
            "unmeasured-confounding",
            {
                ("treatment", "frailty_log_or"): -0.8,
                ("outcomes", "progression", "frailty_log_hr"): 0.2,
                ("outcomes", "death", "frailty_log_hr"): 0.6,
                ("outcomes", "post_progression_death", "frailty_log_hr"): 0.4,
            },
        ),
    ],
)
def test_flatiron_variants_differ_only_where_documented(name, changed):
    def flat(d, prefix=()):
        for k, v in d.items():
            if isinstance(v, dict) and k not in ("correlation", "arm_means", "log_hr"):
                yield from flat(v, (*prefix, k))
            else:
                yield (*prefix, k), v

    base, variant = dict(flat(BASE.to_dict())), dict(flat(get_scenario(name).to_dict()))
    diff = {k: variant[k] for k in base if base[k] != variant[k]}
    diff.pop(("name",)), diff.pop(("description",))
    assert diff == changed
    assert set(variant) == set(base)


def test_toml_alternative_targets_switch_the_default_off():
    # TOML has no null: giving a treated median (or raw gamma) means "no HR target"
    sc = scenario_from_toml("[outcomes]\npfs_median_treated = 20.0\ngamma_os = -0.3\n")
    assert sc.outcomes.pfs_hr is None and sc.outcomes.pfs_median_treated == 20.0
    assert sc.outcomes.os_hr is None and sc.outcomes.gamma_os == -0.3
    assert scenario_from_toml(sc.to_toml()) == sc


# ---- findings F-A, F-B, F-D, F-E, F-F (fixed) ------------------------------------------
def test_equal_scenarios_have_equal_fingerprints():
    sc = simulator.get_scenario("flatiron")
    a, b = sc.replace(**{"outcomes.pfs_hr": 1}), sc.replace(**{"outcomes.pfs_hr": 1.0})
    assert a == b and a.fingerprint() == b.fingerprint()
    c = sc.replace(**{"covariates.correlation": {**sc.covariates.correlation, "age:ecog": 0}})
    d = sc.replace(**{"covariates.correlation": {**sc.covariates.correlation, "age:ecog": 0.0}})
    assert c.fingerprint() == d.fingerprint()


def test_threads_validated_before_calibrating(monkeypatch):
    monkeypatch.setattr("simulator.generate.calibrate", lambda *a, **k: 1 / 0)
    sc = sim_scenarios.small(name="fresh", **{"outcomes.pfs_hr": 0.77})
    with pytest.raises(simulator.ScenarioError, match="threads=0"):
        simulator.simulate(sc, 10, 1, threads=0)


def test_builtin_scenarios_cannot_be_mutated():
    sc = simulator.get_scenario("flatiron")
    with pytest.raises(TypeError, match="immutable"):
        sc.covariates.correlation["age:ecog"] = 0.99
    with pytest.raises(TypeError, match="immutable"):
        sc.outcomes.progression.log_hr.update(age10=5.0)
    assert simulator.get_scenario("flatiron").outcomes.progression.log_hr["age10"] == -0.10


def test_scenarios_are_hashable_and_picklable():
    import pickle

    sc = simulator.get_scenario("flatiron")
    assert len({sc, simulator.get_scenario("flatiron"), sc.replace(name="x")}) == 2
    again = pickle.loads(pickle.dumps(sc))
    assert again == sc and again.fingerprint() == sc.fingerprint()
    with pytest.raises(TypeError):
        again.treatment.arm_means["age10"] = (0.0, 0.0)


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers():
    sc = simulator.get_scenario("flatiron").replace(
        **{"calibration.population": np.int64(30_000), "treatment.strength": np.float32(2.0)}
    )
    assert type(sc.calibration.population) is int and type(sc.treatment.strength) is float
    assert simulator.scenario_from_toml(sc.to_toml()) == sc
