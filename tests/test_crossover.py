"""Crossover at progression (simulator.crossover, estimators.crossover): off by default
and bit-identical, the kernel's switching mechanics against the potential outcomes, the
as-randomised truth, the truth lookups, the estimators against R and their input errors.

Slow: the exact as-randomised truth against a Monte Carlo cohort of 2 million patients."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simulator
from estimators import get_estimator, rpsftm
from estimators.crossover import ipcw_switch, itt_cox, per_protocol_cox, rpsftm_switch
from estimators.estimands import ESTIMANDS, scored_against
from estimators.exceptions import EstimatorInputError
from simulator import crossover as X
from simulator.calibration import calibrate
from simulator.exceptions import ScenarioError
from simulator.study import truth as truth_mod

PO25 = simulator.get_scenario("po25-crossover")
DATA = Path(__file__).parents[1] / "simulator" / "data"

# sha256 (first 16 hex) of simulate(sc, n, 11, potential_outcomes=True, latent=True)
# .to_csv(index=False) computed with the code before crossover existed (commit f14a777);
# po25-rct there had no crossover, so it is compared with crossover=None.  20,000 patients
# are two chunks (the parallel kernel), 3,000 one (the serial path).
BEFORE = {
    ("flatiron", 3000): "fef6f8c116e3c25f",
    ("flatiron", 20000): "b8331e693282283b",
    ("po25-rct", 3000): "880d6a084cf42218",
    ("po25-rct", 20000): "01c78228665a2f07",
    ("null", 3000): "9a08eb6cea938fa4",
    ("null", 20000): "5b353bd11a38b64a",
}


@pytest.mark.parametrize(("name", "n"), list(BEFORE))
def test_without_crossover_cohorts_are_bit_identical_to_before(name, n):
    sc = simulator.get_scenario(name)
    if sc.crossover is not None:
        sc = sc.replace(crossover=None)
    df = simulator.simulate(sc, n, 11, potential_outcomes=True, latent=True)
    assert "crossover" not in df.columns
    assert hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()[:16] == BEFORE[(name, n)]


def test_without_crossover_fingerprints_and_shipped_truths_are_unchanged():
    assert simulator.get_scenario("po25-rct").fingerprint() == "81593d04df88c2c1b099"  # before
    assert "crossover" not in PO25.replace(crossover=None).to_dict()
    shipped = json.loads((DATA / "truths.json").read_text())
    for name in simulator.scenario_names():
        sc = simulator.get_scenario(name)
        assert truth_mod.truth_key(sc) in shipped, name  # no recomputation needed
        if sc.crossover is None:
            assert not any(k.startswith("tp_") for k in shipped[truth_mod.truth_key(sc)]["os"])


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return simulator.simulate(PO25, 20_000, 5, potential_outcomes=True, latent=True)


def test_switching_mechanics_match_the_potential_outcomes(cohort):
    df = cohort
    stretch = 0.8 ** (-1.0 / PO25.outcomes.post_progression_death.shape)
    sw = df["crossover"] == 1
    assert sw.sum() > 3000 and (df.loc[sw, "treated"] == 0).all()  # only the control arm
    assert (df.loc[sw, "crossover_months"] == df.loc[sw, "progression_months"]).all()
    assert df.loc[~sw, "crossover_months"].isna().all()
    prog = df["progression_months"]
    assert (prog.dropna() < df.loc[prog.notna(), "os_months"]).all()  # observed before OS end
    # a switcher's death: progression + the untreated post-progression time stretched
    dead = sw & (df["os_event"] == 1)
    expect = prog[dead] + (df.loc[dead, "os_months_0"] - prog[dead]) * stretch
    np.testing.assert_allclose(df.loc[dead, "os_months"], expect, rtol=1e-12)
    # everyone else dies at their potential outcome without switching
    other = ~sw & (df["os_event"] == 1)
    pot = np.where(df["treated"] == 1, df["os_months_1"], df["os_months_0"])
    np.testing.assert_array_equal(df.loc[other, "os_months"], pot[other.to_numpy()])
    # rwPFS is untouched by the switch: the no-crossover scenario's, bit for bit
    base = simulator.simulate(PO25.replace(crossover=None), 20_000, 5)
    for col in ("pfs_months", "pfs_event", "treated", "ecog", "entry_month"):
        pd.testing.assert_series_equal(df[col], base[col])
    # fitter patients switch more often (log-ORs of the scenario)
    ctrl = df[(df["treated"] == 0) & prog.notna()]
    by_ecog = ctrl.groupby("ecog", observed=True)["crossover"].mean()
    assert by_ecog["0"] > by_ecog["1"] > by_ecog["2+"]


def test_intercept_solves_the_share_on_the_exact_sample():
    solved = calibrate(PO25).solved
    from simulator import exact

    sample = exact.sample_for(PO25, solved)
    a = X.switch_intercept(PO25, solved)
    assert X.switch_probabilities(PO25, sample.feats, a).mean() == pytest.approx(0.5, abs=1e-12)
    flat = PO25.replace(**{"crossover.log_or": {}, "crossover.share": 0.3})
    assert X.switch_intercept(flat, solved) == pytest.approx(math.log(0.3 / 0.7), abs=1e-15)


def test_crossover_cohort_is_thread_invariant_and_reproducible():
    a = simulator.simulate(PO25, 20_000, 8, threads=1)
    b = simulator.simulate(PO25, 20_000, 8)
    pd.testing.assert_frame_equal(a, b)
    c = simulator.simulate(PO25, 3_000, 8)  # the serial one-chunk path: same first rows
    pd.testing.assert_frame_equal(c, a.iloc[:3_000])


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"crossover.share": 1.0}, r"crossover.share=1.0 is not allowed"),
        ({"crossover.arm": "both"}, r"crossover.arm='both' is not allowed"),
        ({"crossover.post_progression_hr": 0.0}, r"crossover.post_progression_hr=0.0"),
        ({"crossover.log_or": {"shoe_size": 1.0}}, r"crossover.log_or has unknown feature"),
        ({"crossover.speed": 1.0}, r"crossover has unknown parameter"),
    ],
)
def test_bad_crossover_parameters_are_named(changes, match):
    with pytest.raises(ScenarioError, match=match):
        PO25.replace(**changes)


def test_crossover_round_trips_through_toml_and_is_in_the_fingerprint():
    back = simulator.scenario_from_toml(PO25.to_toml())
    assert back == PO25 and back.crossover == PO25.crossover
    other = PO25.replace(**{"crossover.share": 0.4})
    assert other.fingerprint() != PO25.fingerprint()
    assert truth_mod.truth_key(other) != truth_mod.truth_key(PO25)
    # the calibration does not see the crossover (targets: no-crossover medians)
    assert simulator.calibration.calibration_key(other) == simulator.calibration.calibration_key(
        PO25.replace(crossover=None)
    )
    assert "progression_months" in simulator.describe_columns()


def test_truth_lookups_by_estimand():
    tr = simulator.truth(PO25)
    os_ = tr.os.values
    assert "treatment_policy" in ESTIMANDS and scored_against("hypothetical") == "ATE"
    assert tr.estimand("os", "treatment_policy")[0] == os_["tp_ate_log_hr"]
    assert tr.estimand("os", "hypothetical")[0] == os_["ate_log_hr"]
    assert tr.estimand("os", "treatment_policy", "none")[0] == os_["tp_ate_log_hr_uncensored"]
    assert (
        tr.estimand("os", "treatment_policy", measure="rmst_diff", horizon=24)[0]
        == (os_["tp_rmst24_diff"])
    )
    assert tr.estimand("pfs", "treatment_policy") == tr.estimand("pfs", "ATE")  # rwPFS
    # crossover dilutes the OS benefit; the hypothetical truth is the calibrated one
    assert os_["ate_log_hr"] < os_["tp_ate_log_hr"] < 0.0
    assert os_["median_control"] == pytest.approx(30.0, abs=1e-6)
    assert os_["tp_median_control"] > 31.0
    assert os_["tp_median_treated"] == pytest.approx(os_["median_treated"], abs=1e-9)
    # every as-randomised truth meets the precision goals of docs/truth.md
    for k in os_:
        if k.startswith("tp_") and ("log_hr" in k or "survival" in k or "rmst" in k):
            goal = 2e-4 if "log_hr" in k else (5e-4 if "survival" in k else 0.01)
            assert tr.os.error[k] < goal, k
    flat = simulator.truth("flatiron")
    assert flat.estimand("os", "treatment_policy") == flat.estimand("os", "ATE")


def test_as_randomised_truth_reduces_to_the_ate_without_an_effect_of_switching():
    """post_progression_hr = 1: switching changes nothing, so every tp_ truth is the ATE
    truth of the same sample and grid (the mixture's two convolutions add up)."""
    from simulator import exact

    sc = PO25.replace(**{"crossover.post_progression_hr": 1.0})
    solved = calibrate(sc).solved
    sample = exact.sample_for(sc, solved).head(2**9)
    values, _, _ = X.treatment_policy_truth(sc, solved, sample=sample)
    ref = exact.marginal_truth(sc, solved, sample=sample).values["os"]
    for k, v in values.items():
        assert v == pytest.approx(ref[k[3:]], rel=1e-9, abs=1e-11), k


def test_the_treated_arm_can_be_the_one_that_crosses():
    """arm = "treated": switchers are experimental-arm patients (to tamoxifen), the
    control arm's truths are untouched and RPSFTM's time on treatment stops at the
    switch."""
    from simulator import exact

    sc = PO25.replace(**{"crossover.arm": "treated", "crossover.post_progression_hr": 1.5})
    df = simulator.simulate(sc, 5_000, 4, potential_outcomes=True)
    sw = df["crossover"] == 1
    assert sw.sum() > 500 and (df.loc[sw, "treated"] == 1).all()
    dead = sw & (df["os_event"] == 1)
    stretch = 1.5 ** (-1.0 / sc.outcomes.post_progression_death.shape)
    prog = df["progression_months"]
    expect = prog[dead] + (df.loc[dead, "os_months_1"] - prog[dead]) * stretch
    np.testing.assert_allclose(df.loc[dead, "os_months"], expect, rtol=1e-12)
    solved = calibrate(sc).solved
    sample = exact.sample_for(sc, solved).head(2**9)
    values, _, _ = X.treatment_policy_truth(sc, solved, sample=sample)
    ref = exact.marginal_truth(sc, solved, sample=sample).values["os"]
    assert values["tp_median_control"] == pytest.approx(ref["median_control"], abs=1e-12)
    assert values["tp_median_treated"] < ref["median_treated"] - 0.5  # hazard x 1.5
    est = rpsftm_switch(df, "os_months", "os_event", "treated", [], n_grid=61)
    t = df["os_months"].to_numpy()
    t_on = np.where(df["treated"] == 1, np.where(sw, prog, t), 0.0)
    cens = np.maximum((df["entry_month"] + df["os_months"]).max() - df["entry_month"], t)
    ref_est = rpsftm(df.assign(t_on=t_on, cens=cens), "os_months", "os_event", "treated",
                     "t_on", censor_time="cens", n_grid=61)  # fmt: skip
    assert est.diagnostics["psi"] == ref_est.diagnostics["psi"]
    assert est.diagnostics["recensored_arms"] == (1,)  # the control arm complied


# ---- estimators ---------------------------------------------------------------------------
R_REF = json.loads(
    (Path(__file__).parent / "reference" / "r" / "crossover_reference.json").read_text()
)


def _r_data() -> pd.DataFrame:
    d = pd.DataFrame(R_REF["data"])
    for c in ("crossover_months", "progression_months"):
        d[c] = pd.to_numeric(d[c].replace("NaN", np.nan))
    return d


def test_itt_and_per_protocol_match_r_coxph():
    d = _r_data()
    itt = itt_cox(d, "time", "event", "arm")
    pp = per_protocol_cox(d, "time", "event", "arm")
    assert itt.estimand == "treatment_policy" and pp.estimand == "hypothetical"
    assert itt.log_hr == pytest.approx(R_REF["itt"]["coef"], abs=1e-8)
    assert itt.se == pytest.approx(R_REF["itt"]["se"], rel=1e-7)
    assert pp.log_hr == pytest.approx(R_REF["per_protocol"]["coef"], abs=1e-8)
    assert pp.se == pytest.approx(R_REF["per_protocol"]["se"], rel=1e-7)
    assert pp.diagnostics["censored_at_switch"] == R_REF["ipcw"]["switchers"]


def test_ipcw_switch_matches_r_glm_and_weighted_coxph():
    d = _r_data()
    est = ipcw_switch(d, "time", "event", "arm", ["x1", "x2"])
    r = R_REF["ipcw"]
    assert est.estimand == "hypothetical" and est.method == "ipcw_switch"
    np.testing.assert_allclose(list(est.diagnostics["switch_model"][0].values()),
                               r["switch_model"], atol=1e-7)  # fmt: skip
    assert est.log_hr == pytest.approx(r["coef"], abs=1e-8)
    assert est.se == pytest.approx(r["robust_se"], rel=1e-7)
    assert est.diagnostics["switchers"] == r["switchers"]
    assert est.diagnostics["at_decision"] == r["at_decision"]


def test_without_switchers_ipcw_and_per_protocol_are_the_itt_analysis():
    d = _r_data().assign(crossover=0, crossover_months=np.nan)
    itt = itt_cox(d, "time", "event", "arm")
    for est in (per_protocol_cox(d, "time", "event", "arm"),
                ipcw_switch(d, "time", "event", "arm", ["x1"])):  # fmt: skip
        assert est.log_hr == pytest.approx(itt.log_hr, abs=1e-12)
    assert any("nobody switched" in w for w in ipcw_switch(d, "time", "event", "arm", []).warnings)


def test_rpsftm_switch_builds_time_on_treatment_and_the_cutoff(cohort):
    df = cohort
    est = rpsftm_switch(df, "os_months", "os_event", "treated", [], n_grid=61)
    t, a = df["os_months"].to_numpy(), df["treated"].to_numpy()
    sw = df["crossover"].to_numpy() == 1
    t_on = np.where(a == 1, t, np.where(sw, t - df["crossover_months"].fillna(0).to_numpy(), 0))
    cens = np.maximum((df["entry_month"] + df["os_months"]).max() - df["entry_month"], t)
    ref = rpsftm(df.assign(t_on=t_on, cens=cens), "os_months", "os_event", "treated", "t_on",
                 censor_time="cens", n_grid=61)  # fmt: skip
    assert est.diagnostics["psi"] == ref.diagnostics["psi"] and est.log_hr == ref.log_hr
    assert est.diagnostics["switchers"] == int(sw.sum())
    # the cutoff is the study's: accrual 36 + follow-up 18 months
    assert float((df["entry_month"] + df["os_months"]).max()) == pytest.approx(54.0, abs=1e-9)


def test_registered_with_their_estimands():
    expected = {
        "itt_cox": "treatment_policy",
        "per_protocol_cox": "hypothetical",
        "ipcw_switch": "hypothetical",
        "rpsftm": "hypothetical",
    }
    for name, estimand in expected.items():
        assert get_estimator(name).estimand == estimand


@pytest.mark.parametrize(
    ("mutate", "func", "match"),
    [
        (lambda d: d.drop(columns="crossover"), per_protocol_cox, r"switch='crossover' is not a"),
        (lambda d: d.assign(crossover_months=np.nan), per_protocol_cox,
         r"switch_time='crossover_months' must be a finite time > 0"),
        (lambda d: d.assign(crossover=d["crossover"] * 2), ipcw_switch,
         r"switch='crossover' must hold only 0 and 1"),
        (lambda d: d.assign(progression_months=np.nan), ipcw_switch,
         r"decision_time='progression_months' must be observed"),
        (lambda d: d.drop(columns="x2"), ipcw_switch, r"covariates='x2' is not a column"),
    ],
)  # fmt: skip
def test_bad_input_is_named_before_any_work(mutate, func, match):
    with pytest.raises(EstimatorInputError, match=match):
        func(mutate(_r_data()), "time", "event", "arm", ["x1", "x2"])


@pytest.mark.slow
def test_as_randomised_truth_agrees_with_a_monte_carlo_cohort():
    """2 million po25-crossover patients without loss to follow-up (so the observed OS is the
    administratively censored as-randomised outcome of the randomised arms, both with
    the population's covariates): Cox log-HR and Kaplan-Meier survival at 12 / 24 months
    against the exact tp_ truths, within 3 combined SEs (Cox model SE; Greenwood)."""
    from estimators import fit_cox_arrays, kaplan_meier

    sc = PO25.replace(**{"censoring.lost_per_year": 0.0})
    tr = simulator.truth(sc)
    df = simulator.simulate(sc, 2_000_000, 2026)
    fit = fit_cox_arrays(df["os_months"].to_numpy(), df["os_event"].to_numpy(),
                         df[["treated"]].to_numpy(float))  # fmt: skip
    theta, err = tr.estimand("os", "treatment_policy")
    z = (fit.params[0] - theta) / math.hypot(fit.se[0], err / 2)
    assert abs(z) < 3, (fit.params[0], theta, z)
    for arm, name in ((0, "control"), (1, "treated")):
        d = df[df["treated"] == arm]
        km = kaplan_meier(d["os_months"].to_numpy(), d["os_event"].to_numpy())
        for h in (12, 24):
            j = int(np.searchsorted(km.time, h, side="right")) - 1
            s, se = float(km.survival[j]), float(km.std_err[j])
            truth = tr.os.values[f"tp_survival{h}_{name}"]
            assert abs(s - truth) < 3 * math.hypot(se, tr.os.error[f"tp_survival{h}_{name}"] / 2)


def test_a_study_scores_each_estimator_against_its_estimands_truth(tmp_path):
    from simulator.study import Study, run_study, summarize

    study = Study(
        scenarios=("po25-crossover",),
        sample_sizes=(907,),
        reps=4,
        chunk_reps=4,
        outcomes=("os",),
        estimators=("itt_cox", "per_protocol_cox", "ipcw_switch", "rpsftm", "naive_cox"),
        covariates=("age", "ecog", "visceral"),
    )
    run_study(study, tmp_path / "r", workers=1)
    table = summarize(tmp_path / "r").set_index("estimator")
    tr = simulator.truth(PO25)
    assert table.loc["itt_cox", "theta"] == pytest.approx(tr.os.values["tp_ate_log_hr"])
    for name in ("per_protocol_cox", "ipcw_switch", "rpsftm", "naive_cox"):
        assert table.loc[name, "theta"] == pytest.approx(tr.os.values["ate_log_hr"]), name
    assert (table["n_failed"] == 0).all()
