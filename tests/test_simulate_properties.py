"""Structural properties every simulated cohort must have, whatever the scenario, size or seed.

The checks use the potential outcomes (uncensored) of the patient's own arm as the truth
the observed columns must be consistent with: an observed event time *is* the true time,
a censored time lies strictly before it, and every time stops at the data cutoff.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pandas as pd
import pytest
import sim_scenarios
from hypothesis import given
from hypothesis import strategies as st

import simulator
from simulator import _cohort_kernels as K

SCENARIOS = {
    "flatiron": lambda: simulator.get_scenario("flatiron"),
    "po25-rct": lambda: simulator.get_scenario("po25-rct"),
    "po25-crossover": lambda: simulator.get_scenario("po25-crossover"),
    "flatiron-liver": lambda: simulator.get_scenario("flatiron-liver"),
    # frailty, MNAR ECOG, informative loss, arm-dependent next therapy, visits every 3 +- 0.5
    "every-option": sim_scenarios.every_option,
    # administrative censoring only, extreme but bounded propensity scores
    "admin-only-bounded-ps": lambda: sim_scenarios.small(
        name="admin-only-bounded-ps",
        **{
            "censoring.lost_per_year": 0.0,
            "censoring.next_therapy_per_year": 0.0,
            "treatment.strength": 3.0,
            "treatment.ps_bounds": [0.1, 0.9],
        },
    ),
}


@cache
def scenario(name: str) -> simulator.Scenario:
    return SCENARIOS[name]()


def _arm(df: pd.DataFrame, outcome: str) -> np.ndarray:
    a = df["treated"].to_numpy() == 1
    return np.where(a, df[f"{outcome}_months_1"], df[f"{outcome}_months_0"])


def check_cohort(df: pd.DataFrame, sc: simulator.Scenario) -> None:
    """Assert every structural invariant of a cohort simulated with potential outcomes and
    latent columns."""
    cens = sc.censoring
    pfs, os_ = df["pfs_months"].to_numpy(), df["os_months"].to_numpy()
    pfs_ev, os_ev = df["pfs_event"].to_numpy() == 1, df["os_event"].to_numpy() == 1
    pfs_r, os_r = df["pfs_reason"].astype(str).to_numpy(), df["os_reason"].astype(str).to_numpy()
    pfs_true, os_true = _arm(df, "pfs"), _arm(df, "os")
    entry = df["entry_month"].to_numpy()
    follow = cens.cutoff_months - entry  # months from index to the data cutoff
    if sc.crossover is not None:  # a switcher's death: its post-progression time stretched
        from simulator import _cohort_kernels as K
        from simulator.generate import plan_for

        sw = df["crossover"].to_numpy() == 1
        prog_t, x_t = df["progression_months"].to_numpy(), df["crossover_months"].to_numpy()
        assert np.all(df["treated"].to_numpy()[sw] == sc.crossover.arm_code)
        assert np.array_equal(x_t[sw], prog_t[sw]) and np.all(np.isnan(x_t[~sw]))
        seen = ~np.isnan(prog_t)
        assert np.all(prog_t[seen] < os_[seen]) and np.all(prog_t[seen] > 0)
        stretch = plan_for(sc).X[K.X_STRETCH]
        os_true = np.where(sw, prog_t + (os_true - prog_t) * stretch, os_true)

    # times: positive, finite, within follow-up; rwPFS never after OS
    for col in (
        "pfs_months",
        "os_months",
        "pfs_months_0",
        "pfs_months_1",
        "os_months_0",
        "os_months_1",
    ):
        x = df[col].to_numpy()
        assert np.all(np.isfinite(x) & (x > 0)), col
    assert np.all((entry >= 0) & (entry <= cens.accrual_months))
    assert np.all(os_ <= follow) and np.all(pfs <= os_)
    for a in "01":
        assert np.all(df[f"pfs_months_{a}"] <= df[f"os_months_{a}"])

    # OS: observed death = true death; censoring strictly before it, by cutoff or last visit
    assert set(os_r) <= {"death", "admin", "lost"}
    assert np.array_equal(os_ev, os_r == "death")
    assert np.array_equal(os_[os_ev], os_true[os_ev])
    assert np.all(os_[~os_ev] < os_true[~os_ev])
    assert np.array_equal(os_[os_r == "admin"], follow[os_r == "admin"])
    assert np.all(os_[os_r == "lost"] < follow[os_r == "lost"])

    # rwPFS: reasons agree with events and with OS
    assert np.array_equal(pfs_ev, np.isin(pfs_r, ["progression", "death"]))
    died = pfs_r == "death"
    assert np.all(os_ev[died]) and np.array_equal(pfs[died], os_[died])
    assert np.array_equal(pfs[died], os_true[died])
    for reason in ("admin", "lost"):  # the same censoring ends both outcomes
        sel = pfs_r == reason
        assert np.all(os_r[sel] == reason) and np.array_equal(pfs[sel], os_[sel])
    nxt = pfs_r == "next_therapy"  # rwPFS only: OS follow-up continues past it
    assert np.all(os_[nxt] > pfs[nxt])
    prog = pfs_r == "progression"
    assert np.all(pfs[prog] < os_true[prog])  # progression recorded before death
    assert np.all(pfs[~pfs_ev] < os_true[~pfs_ev])
    if cens.visit_interval_months == 0.0:
        assert np.array_equal(pfs[pfs_ev], pfs_true[pfs_ev])
        assert np.all(pfs[~pfs_ev] < pfs_true[~pfs_ev])
    else:  # recorded at the first visit k * interval + offset (k >= 1, |offset| <= jitter)
        step, jitter = cens.visit_interval_months, cens.visit_jitter_months
        rec, true = pfs[prog], pfs_true[prog]
        assert np.all(rec >= true) and np.all(rec - true <= step + jitter)
        assert np.all(rec >= step - jitter)
        off_grid = np.abs(rec - step * np.round(rec / step))
        assert np.all(off_grid <= jitter + 1e-9)

    # covariates
    age = df["age"].to_numpy()
    assert np.all((age >= max(18.0, sc.covariates.age.min_age)) & (age <= 95.0))
    expected_group = np.searchsorted([50.0, 65.0, 75.0], age, side="right")
    assert np.array_equal(df["age_group"].cat.codes.to_numpy(), expected_group)
    de_novo = df["de_novo"].to_numpy() == 1
    dfi = df["dfi_years"].to_numpy()
    assert np.array_equal(np.isnan(dfi), de_novo) and np.all(dfi[~de_novo] > 0)
    bone = df["bone_only"].to_numpy() == 1
    assert np.all(df["visceral"].to_numpy()[bone] == 0)
    assert np.all(df["n_met_sites"].to_numpy()[bone] == 1)
    lung_or_liver = (df["lung_mets"].to_numpy() == 1) | (df["liver_mets"].to_numpy() == 1)
    assert np.array_equal(lung_or_liver, df["visceral"].to_numpy() == 1)
    ps = df["ps_true"].to_numpy()
    lo, hi = sc.treatment.ps_bounds
    assert np.all((ps > 0) & (ps < 1) & (ps >= lo) & (ps <= hi))
    known = df["ecog"].astype(str).to_numpy() != "unknown"
    assert np.array_equal(df["ecog"].cat.codes.to_numpy()[known], df["ecog_true"].to_numpy()[known])
    nan_ok = ["dfi_years", "progression_months", "crossover_months"]
    no_nan = df.drop(columns=[c for c in nan_ok if c in df]).select_dtypes("number")
    assert not no_nan.isna().any().any()


def _simulate(name: str, n: int, seed: int) -> pd.DataFrame:
    return simulator.simulate(scenario(name), n, seed, potential_outcomes=True, latent=True)


@given(
    name=st.sampled_from(list(SCENARIOS)), n=st.integers(1, 4000), seed=st.integers(0, 2**63 - 1)
)
def test_every_cohort_is_consistent(name, n, seed):
    check_cohort(_simulate(name, n, seed), scenario(name))


N_BIG = 2 * K.CHUNK + 321


@cache
def big(name: str) -> pd.DataFrame:
    return _simulate(name, N_BIG, 4242)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_large_cohorts_are_consistent_and_exercise_every_branch(name):
    sc, df = scenario(name), big(name)
    check_cohort(df, sc)
    reasons = set(df["pfs_reason"].astype(str))
    expected = {"progression", "death", "admin"}
    if sc.censoring.lost_per_year > 0:
        expected.add("lost")
    if sc.censoring.next_therapy_per_year > 0:
        expected.add("next_therapy")
    assert reasons == expected  # and nothing switched off ever appears
    assert set(df["os_reason"].astype(str)) == expected & {"death", "admin", "lost"}
    assert set(df["treated"]) == {0, 1}
    if "next_therapy" in expected:  # deaths after next therapy are still observed
        nxt = df["pfs_reason"] == "next_therapy"
        assert df.loc[nxt, "os_event"].sum() > 0


def test_liver_subgroup_has_liver_metastases_only_patients():
    df = big("flatiron-liver")
    assert (df["liver_mets"] == 1).all() and (df["visceral"] == 1).all()
    assert (df["bone_only"] == 0).all()


def test_randomised_scenario_has_a_constant_propensity():
    sc, df = scenario("po25-rct"), big("po25-rct")
    np.testing.assert_allclose(df["ps_true"], sc.treatment.fraction, rtol=1e-12)


def test_visits_shift_recorded_progression_later():
    df = big("every-option")
    prog = df["pfs_reason"] == "progression"
    shift = df.loc[prog, "pfs_months"] - _arm(df, "pfs")[prog.to_numpy()]
    assert prog.sum() > 1000 and (shift > 0).mean() > 0.999
    # on average half an interval: the true time is ~uniform between two visits
    assert 1.0 < shift.mean() < 2.0


def test_frailty_is_an_unmeasured_confounder_when_switched_on():
    df = big("every-option")  # treatment.frailty_log_or = -0.7
    bound = 4.0 / math.sqrt(len(df))  # SE of a correlation under independence
    assert df["frailty"].corr(df["treated"].astype(float)) < -bound
    assert abs(df["frailty"].mean()) < 4.0 / math.sqrt(len(df))  # standard normal
    assert abs(df["frailty"].std() - 1.0) < 4.0 / math.sqrt(2 * len(df))


def test_common_random_numbers_make_a_beneficial_treatment_monotone():
    """With gamma_pfs < 0 both first transitions of every patient are stretched by the same
    factor, so each patient's rwPFS under treatment is at least that under control."""
    sc = scenario("flatiron")
    assert simulator.calibrate(sc).solved.gamma_pfs < 0
    df = big("flatiron")
    assert np.all(df["pfs_months_1"] >= df["pfs_months_0"])
    assert (df["pfs_months_1"] > df["pfs_months_0"]).all()


def test_null_effect_gives_identical_potential_outcomes():
    sc = sim_scenarios.small(name="null-small", **{"outcomes.pfs_hr": 1.0, "outcomes.os_hr": 1.0})
    df = simulator.simulate(sc, 5000, 3, potential_outcomes=True)
    np.testing.assert_array_equal(df["pfs_months_0"], df["pfs_months_1"])
    np.testing.assert_array_equal(df["os_months_0"], df["os_months_1"])
