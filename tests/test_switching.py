"""The switching scenario (simulator.switching) and its estimators (estimators.switching).

Oracles: R (tests/reference/r/make_switching_reference.R on a fixed 400-patient cohort:
coxph counting-process with cluster, landmark and ever-switched Cox, and a complete
clone-censor-weight written in R), brute-force references (tests/naive.py), exact
identities of the simulator, and Monte Carlo checks whose tolerances are Monte Carlo
errors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from estimators import CoxPH
from estimators.exceptions import EstimatorInputError
from estimators.switching import (
    _tv_km,
    ccw,
    ccw_curves,
    counting_process,
    ever_switched_cox,
    landmark_cox,
    switch_data,
    td_cox,
)
from simulator.exceptions import ScenarioError
from simulator.switching import (
    COVARIATES,
    SwitchingScenario,
    WeibullHazard,
    death_times,
    simulate_switching,
    switching_scenario,
    switching_truth,
    to_counting_process,
)
from tests.naive import switch_death_time_naive, tv_weighted_km_naive

REF = Path(__file__).parent / "reference"
ARGS = ("os_months", "os_event", "switch_months", list(COVARIATES))


@pytest.fixture(scope="module")
def ref():
    return json.loads((REF / "r" / "switching_reference.json").read_text())


@pytest.fixture(scope="module")
def fixed():
    d = pd.read_csv(REF / "data" / "switching_400.csv", dtype={"ecog": str})
    d["ecog"] = pd.Categorical(d["ecog"], categories=["0", "1", "2+", "unknown"])
    return d


@pytest.fixture(scope="module")
def cohort():
    return simulate_switching(None, 2000, 11, potential_outcomes=True)


# ---- simulator ------------------------------------------------------------------------
def test_same_seed_same_cohort_bit_for_bit(cohort):
    again = simulate_switching(None, 2000, 11, potential_outcomes=True)
    pd.testing.assert_frame_equal(cohort, again, check_exact=True)
    other = simulate_switching(None, 2000, 12)
    assert not np.array_equal(other["os_months"], cohort["os_months"])
    assert switching_scenario().fingerprint() == switching_scenario().fingerprint()
    assert switching_scenario(grace=3.0).fingerprint() != switching_scenario().fingerprint()


def test_cohort_columns_and_switch_consistency(cohort):
    df = cohort
    has = df["switch_months"].notna()
    assert (df["switched"] == has).all()
    assert (df.loc[has, "switch_months"] < df.loc[has, "os_months"]).all()
    assert (df["switch_months"].dropna() > 0).all()
    lo, hi = switching_scenario().censoring
    assert df["os_months"].max() <= hi
    # censored patients were followed to their (uniform) censoring time >= lo
    assert (df.loc[df["os_event"] == 0, "os_months"] >= lo).all()
    # an observed death equals the potential outcome under the natural switch time: never
    # switching leaves it unchanged for non-switchers
    dead_no_switch = (df["os_event"] == 1) & ~has
    np.testing.assert_array_equal(
        df.loc[dead_no_switch, "os_months"], df.loc[dead_no_switch, "os_months_never"]
    )
    # protective switch (gamma < 0): switching at min(S, g) never shortens survival
    assert (df["os_months_grace"] >= df["os_months_never"] - 1e-12).all()
    assert set(df["ecog"].cat.categories) == {"0", "1", "2+", "unknown"}


def test_death_times_invert_the_cumulative_hazard_exactly():
    h = WeibullHazard(1.3, 30.0).validated("death")
    rng = np.random.default_rng(5)
    lp = rng.normal(0, 0.5, 50)
    s = np.where(rng.random(50) < 0.5, rng.uniform(0.5, 40, 50), np.inf)
    e = rng.standard_exponential(50)
    t = death_times(h, lp, -0.7, s, e)
    for i in range(50):
        ref = switch_death_time_naive(h.scale, h.shape, lp[i], -0.7, s[i], e[i])
        assert t[i] == pytest.approx(ref, rel=1e-10)


def test_truth_equals_the_potential_outcomes_of_the_same_draws():
    sc = switching_scenario()
    root = np.random.SeedSequence(3)
    tr = switching_truth(sc, n=5000, seed=root, chunk=5000)  # one chunk: root.spawn(1)[0]
    df = simulate_switching(
        sc, 5000, np.random.SeedSequence(3).spawn(1)[0], potential_outcomes=True
    )
    tau = sc.horizon
    assert tr.surv_grace == pytest.approx(np.mean(df["os_months_grace"] > tau), abs=1e-15)
    assert tr.surv_never == pytest.approx(np.mean(df["os_months_never"] > tau), abs=1e-15)
    rmst = np.mean(np.minimum(df["os_months_grace"], tau) - np.minimum(df["os_months_never"], tau))
    assert tr.rmst_diff == pytest.approx(rmst, rel=1e-12)
    assert tr.estimand("os", "conditional", "admin", "log_hr") == (sc.log_hr_switch, 0.0)
    assert tr.estimand("os", "strategy", "admin", "surv_diff", tau)[0] == tr.surv_diff
    with pytest.raises(ScenarioError, match="outcome='pfs' is not allowed"):
        tr.estimand("pfs", "conditional", "admin", "log_hr")
    with pytest.raises(ScenarioError, match="horizon=24"):
        tr.estimand("os", "strategy", "admin", "surv_diff", 24)
    with pytest.raises(ValueError, match="estimand='ATE'"):
        tr.estimand("os", "ATE", "admin", "log_hr")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"grace": 0.0}, r"grace=0.0 is not allowed.*\(0.0, 10000.0\]"),
        ({"grace": -1}, "grace=-1 is not allowed"),
        ({"landmark": math.nan}, "landmark=nan is not allowed"),
        ({"censoring": (30.0, 20.0)}, r"censoring=\(30.0, 20.0\) is not allowed"),
        ({"base": "nope"}, "base='nope' is not allowed; use a built-in scenario"),
        ({"log_hr_switch": "x"}, "log_hr_switch='x' is not allowed"),
        ({"adverse_event_share": 1.5}, "adverse_event_share=1.5 is not allowed"),
        ({"death": WeibullHazard(1.0, 10.0, {"frailty": 1.0})}, r"death.log_hr\['frailty'\]"),
        ({"switch": WeibullHazard(0.0, 10.0)}, r"switch.shape=0.0 is not allowed"),
    ],
)
def test_bad_scenario_parameters_are_named(changes, match):
    with pytest.raises(ScenarioError, match=match):
        switching_scenario(**changes)


def test_bad_simulate_arguments():
    with pytest.raises(ScenarioError, match="n=0 is not allowed"):
        simulate_switching(None, 0, 1)
    with pytest.raises(ScenarioError, match="seed=-1 is not allowed"):
        simulate_switching(None, 10, -1)
    with pytest.raises(ScenarioError, match="scenario='switching' is not allowed"):
        simulate_switching("switching", 10, 1)  # type: ignore[arg-type]


# ---- the long frame ---------------------------------------------------------------------
def test_counting_process_frame(cohort):
    lf = to_counting_process(cohort)
    has = cohort["switch_months"].notna().to_numpy()
    assert len(lf) == len(cohort) + has.sum()
    assert (lf["stop"] > lf["start"]).all()
    # one event per dead patient, on the last interval; switched_now only after the switch
    assert lf.groupby("id")["event"].sum().to_numpy().tolist() == cohort["os_event"].tolist()
    last = lf.groupby("id").tail(1)
    np.testing.assert_array_equal(last["stop"], cohort["os_months"])
    np.testing.assert_array_equal(last["switched_now"], has.astype(np.int8))
    assert (
        lf.loc[lf["switched_now"] == 1, "start"].to_numpy() == cohort["switch_months"].dropna()
    ).all()
    # the estimators' own builder gives the same frame
    mine = counting_process(cohort, *ARGS[:3], covariates=list(COVARIATES))
    pd.testing.assert_frame_equal(lf, mine, check_dtype=False)


def test_counting_process_rejects_a_switch_outside_follow_up(cohort):
    bad = cohort.copy()
    bad.loc[3, "switch_months"] = bad.loc[3, "os_months"]
    with pytest.raises(ScenarioError, match=r"switch_months=.* at row 3 is not allowed"):
        to_counting_process(bad)
    with pytest.raises(EstimatorInputError, match=r"treatment='switch_months' \(the switch time\)"):
        td_cox(bad, *ARGS)
    bad.loc[3, "switch_months"] = 0.0
    with pytest.raises(EstimatorInputError, match="must be in \\(0, os_months\\)"):
        ever_switched_cox(bad, *ARGS)


def test_long_frame_errors_stop_before_start_and_overlap(cohort):
    lf = to_counting_process(cohort.head(50))
    cox = CoxPH()
    bad = lf.copy()
    second = lf.index[lf["start"] > 0][0]
    bad.loc[second, "stop"] = bad.loc[second, "start"]
    with pytest.raises(
        EstimatorInputError, match=r"duration_col='stop' <= entry_col='start'.*needs stop > start"
    ):
        cox.fit(bad, "stop", "event", ["switched_now", "age"], entry_col="start", id_col="id")
    two = lf[lf["id"].duplicated(keep=False)].index[:2]
    over = lf.copy()
    over.loc[two[1], "start"] = over.loc[two[0], "stop"] - 0.5
    with pytest.raises(EstimatorInputError, match="overlapping interval"):
        cox.fit(over, "stop", "event", ["switched_now", "age"], entry_col="start", id_col="id")


# ---- R reference --------------------------------------------------------------------
def test_cox_estimators_match_r(fixed, ref):
    r = ever_switched_cox(fixed, *ARGS)
    assert r.estimate == pytest.approx(ref["ever_switched"]["coef"], rel=1e-8)
    assert r.se == pytest.approx(ref["ever_switched"]["se"], rel=1e-6)
    r = td_cox(fixed, *ARGS)
    assert r.estimate == pytest.approx(ref["td_cox"]["coef"], rel=1e-8)
    assert r.se == pytest.approx(ref["td_cox"]["se"], rel=1e-6)  # robust, cluster = id
    assert td_cox(fixed, *ARGS, robust=False).se == pytest.approx(
        ref["td_cox"]["naive_se"], rel=1e-6
    )
    for key, later in (("landmark", False), ("landmark_censor_later", True)):
        r = landmark_cox(fixed, *ARGS, landmark=6.0, censor_later_switch=later)
        assert r.estimate == pytest.approx(ref[key]["coef"], rel=1e-8)
        assert r.se == pytest.approx(ref[key]["se"], rel=1e-6)


def test_td_cox_equals_coxph_on_the_long_frame(fixed):
    lf = to_counting_process(fixed)
    cph = CoxPH().fit(
        lf, "stop", "event", ["switched_now", *COVARIATES], entry_col="start", cluster_col="id"
    )
    r = td_cox(fixed, *ARGS)
    assert r.estimate == pytest.approx(cph.params_["switched_now"], rel=1e-12)
    assert r.se == pytest.approx(cph.standard_errors_["switched_now"], rel=1e-10)


def test_ccw_matches_r(fixed, ref):
    sd = switch_data(fixed, *ARGS)
    c = ccw_curves(sd, 6.0, 36.0, 0.25)
    cr = ref["ccw"]
    assert c.surv_grace[-1] == pytest.approx(cr["surv_grace"], rel=1e-8)
    assert c.surv_never[-1] == pytest.approx(cr["surv_never"], rel=1e-8)
    assert c.surv_diff == pytest.approx(cr["surv_diff"], abs=1e-8)
    assert c.rmst_diff == pytest.approx(cr["rmst_diff"], abs=1e-7)
    r = ccw(fixed, *ARGS, measure="rmst_diff", n_boot=20, random_state=1)
    assert r.estimate == c.rmst_diff and r.estimand == "strategy" and r.horizon == 36.0
    assert 0 < r.se < 5 and r.diagnostics["n_failed_boot"] == 0
    assert r.diagnostics["n_warned_boot"] > 0  # ECOG 2+ rarely switches within 6 months
    again = ccw(fixed, *ARGS, measure="rmst_diff", n_boot=20, random_state=1)
    assert again.se == r.se  # same bootstrap seed, same SE


def test_time_varying_km_matches_brute_force():
    rng = np.random.default_rng(2)
    n = 60
    stop = np.round(rng.uniform(0.1, 12, n), 1)  # ties on a 0.1 grid
    event = (rng.random(n) < 0.6).astype(float)
    r = rng.normal(0, 0.7, n)
    edges = np.array([0.0, 2.0, 3.5, 7.0, 10.0])
    c = np.array([0.0, 0.4, 1.1, 0.2])

    def weight(i, t):
        k = min(max(int(np.searchsorted(edges, t, side="left")) - 1, 0), c.size - 1)
        return math.exp(c[k] * r[i])

    t, s = _tv_km(stop, event, r, edges, c, 10.0)
    tn, sn = tv_weighted_km_naive(stop, event, weight, 10.0)
    np.testing.assert_allclose(t, tn, rtol=0, atol=0)
    np.testing.assert_allclose(s, sn, rtol=1e-12)


def test_ccw_weights_converge_as_the_step_shrinks(fixed):
    sd = switch_data(fixed, *ARGS)
    fine = ccw_curves(sd, 6.0, 36.0, 0.01).surv_diff
    coarse = [abs(ccw_curves(sd, 6.0, 36.0, s).surv_diff - fine) for s in (1.0, 0.25)]
    assert coarse[1] <= coarse[0] and coarse[1] < 2e-3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"grace": 0}, "grace=0 is not allowed; it must be a finite number of months > 0"),
        ({"grace": -2.0}, "grace=-2.0 is not allowed"),
        ({"horizon": math.inf}, "horizon=inf is not allowed"),
        ({"measure": "log_hr"}, r"measure='log_hr' is not allowed; use one of \('surv_diff'"),
        ({"n_boot": 1}, "n_boot=1 is not allowed"),
        ({"step": 0}, "step=0 is not allowed"),
    ],
)
def test_ccw_bad_options(fixed, kwargs, match):
    with pytest.raises(EstimatorInputError, match=match):
        ccw(fixed, *ARGS, **kwargs)


def test_landmark_bad_options(fixed):
    with pytest.raises(EstimatorInputError, match="landmark=0 is not allowed"):
        landmark_cox(fixed, *ARGS, landmark=0)
    with pytest.raises(EstimatorInputError, match=r"landmark=500\.0 is not allowed here"):
        landmark_cox(fixed, *ARGS, landmark=500.0)
    with pytest.raises(EstimatorInputError, match="censor_later_switch=1 is not allowed"):
        landmark_cox(fixed, *ARGS, censor_later_switch=1)


# ---- Monte Carlo: one large cohort --------------------------------------------------------
def test_large_cohort_td_cox_finds_the_switch_hr_and_naive_does_not():
    """n = 40,000: td-Cox within 3.5 SE of gamma; ever-switched more than 5 SE below it."""
    sc = switching_scenario()
    df = simulate_switching(sc, 40_000, 2024)
    td = td_cox(df, *ARGS)
    assert abs(td.estimate - sc.log_hr_switch) < 3.5 * td.se
    naive = ever_switched_cox(df, *ARGS)
    assert naive.estimate < sc.log_hr_switch - 5 * naive.se
    lm = landmark_cox(df, *ARGS, landmark=6.0, censor_later_switch=True)
    assert abs(lm.estimate - sc.log_hr_switch) < 3.5 * lm.se


def test_large_cohort_ccw_finds_the_strategy_contrast():
    """n = 12,000: CCW's survival and RMST differences within 3.5 bootstrap SEs of the
    truth (whose own MCSE is 40 times smaller)."""
    sc = switching_scenario()
    tr = switching_truth(sc, n=400_000)
    df = simulate_switching(sc, 12_000, 77)
    r = ccw(df, *ARGS, grace=sc.grace, horizon=sc.horizon, n_boot=12, random_state=0)
    for m in ("surv_diff", "rmst_diff"):
        est = getattr(r.diagnostics["curves"], m)
        se = r.diagnostics["se"][m]
        assert abs(est - getattr(tr, m)) < 3.5 * math.hypot(se, tr.mcse(m)), m


# ---- slow: replicate study ------------------------------------------------------------
@pytest.mark.slow
def test_td_cox_unbiased_and_naive_biased_over_300_replicates():
    sc = switching_scenario()
    est = {"td": [], "naive": []}
    for r in range(300):
        df = simulate_switching(sc, 1500, np.random.SeedSequence(99, spawn_key=(r,)))
        est["td"].append(td_cox(df, *ARGS).estimate)
        est["naive"].append(ever_switched_cox(df, *ARGS).estimate)
    td, naive = np.array(est["td"]), np.array(est["naive"])
    mcse = td.std(ddof=1) / math.sqrt(td.size)
    assert abs(td.mean() - sc.log_hr_switch) < 3 * mcse
    assert naive.mean() - sc.log_hr_switch < -20 * naive.std(ddof=1) / math.sqrt(naive.size)


def test_scenario_is_picklable_and_its_dict_round_trips():
    import pickle

    sc = switching_scenario(grace=3.0)
    assert pickle.loads(pickle.dumps(sc)).fingerprint() == sc.fingerprint()
    d = sc.to_dict()
    assert d["kind"] == "switching" and d["grace"] == 3.0
    assert isinstance(sc, SwitchingScenario)


def test_unidentifiable_fits_are_failed_records_not_crashes(fixed):
    # nobody followed beyond a 1e-3-month grace period switched within it: no weights
    r = ccw(fixed, *ARGS, grace=1e-3, n_boot=2)
    assert not r.converged and "switched within it" in r.error and r.estimand == "strategy"
    # nobody switched by the landmark: no contrast
    late = fixed.copy()
    late.loc[late["switch_months"] <= 6.0, "switch_months"] = np.nan
    r = landmark_cox(late, *ARGS, landmark=6.0)
    assert not r.converged and "all or none of the patients switched by 6.0" in r.error
