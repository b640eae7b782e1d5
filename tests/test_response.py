"""Objective response (simulator side): the scenario block, the draws, calibration and
truths.  Tolerances are Monte Carlo errors of the quantities compared (binomial SEs,
order-statistic bands), never tuned."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.special import expit

import simulator
from simulator import _cohort_kernels as K
from simulator import response as R
from simulator.calibration import calibrate, calibration_key, draw_population
from simulator.exceptions import ScenarioError
from simulator.features import FEATURES
from simulator.streams import as_seed_sequence
from simulator.study.truth import truth, truth_key

PO25 = simulator.get_scenario("po25-response")
Z = 4.0  # |z| bound of the Monte Carlo comparisons: a correct run fails 6e-5 of the time


def _no_response(sc):
    return sc.replace(response=None)


# ---- the scenario block ----------------------------------------------------------------
def test_scenarios_without_response_keep_fingerprints_and_keys():
    # the values of main before response existed: shipped calibrations and truths still apply
    sc = simulator.get_scenario("flatiron")
    assert sc.response is None and "response" not in sc.to_dict()
    assert sc.fingerprint() == "bcb7144e7ad3b0771963"
    assert calibration_key(sc) == "dbada08d8c6fedf87b074032"
    assert truth_key(sc) == "269dc041df216361a077adbf"


def test_response_block_round_trips_and_enters_the_calibration_key():
    sc = PO25
    assert simulator.scenario.scenario_from_toml(sc.to_toml()) == sc
    other = sc.replace(**{"response.probability_treated": 0.30})  # keys only: no solve
    assert calibration_key(other) != calibration_key(sc)
    assert calibration_key(_no_response(sc)) != calibration_key(sc)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"response.probability_control": None}, r"response\.probability_control is missing"),
        ({"response.probability_treated": 1.0}, r"response\.probability_treated=1\.0"),
        ({"response.intercepts": [-1.0, -0.5]}, r"either the targets .* or raw intercepts"),
        (
            {"response.log_or": {"ecog": 1.0}},
            r"response\.log_or has unknown feature\(s\) \['ecog'\]",
        ),
        ({"response.frailty_log_or": "x"}, r"response\.frailty_log_or='x'"),
    ],
)
def test_bad_response_blocks_name_the_parameter(changes, match):
    with pytest.raises(ScenarioError, match=match):
        PO25.replace(**changes)


FLATIRON = simulator.get_scenario("flatiron")
ON = {"response.probability_treated": 0.4, "response.probability_control": 0.3}


def test_raw_intercepts_are_used_as_given_and_steps_1_to_4_are_shared():
    sc = FLATIRON.replace(**{"response.intercepts": [-1.2, -0.4]})
    cal = calibrate(sc)
    assert cal.solved.response_intercepts == (-1.2, -0.4)
    # the response does not enter the rest of the solve: the same parameters as without it
    base = calibrate(FLATIRON).to_json()["solved"]
    assert {k: v for k, v in cal.to_json()["solved"].items() if k in base} == base


# ---- draws ------------------------------------------------------------------------------
def test_kernel_columns_do_not_change_when_response_is_on():
    # the response is drawn after the kernel from a stream of its own: same cohort otherwise
    on = simulator.simulate(FLATIRON.replace(**ON), 3000, 11, potential_outcomes=True)
    off = simulator.simulate(FLATIRON, 3000, 11, potential_outcomes=True)
    assert "response" not in off and list(on.columns[:6]) == [*off.columns[:5], "response"]
    assert on.drop(columns=["response", "response_0", "response_1"]).equals(off)


def test_same_seed_same_response_and_potential_responses_are_coupled():
    a = simulator.simulate(PO25, 2 * K.CHUNK + 100, 5, potential_outcomes=True)
    b = simulator.simulate(PO25, 2 * K.CHUNK + 100, 5, potential_outcomes=True)
    assert a["response"].equals(b["response"])
    observed = np.where(a["treated"] == 1, a["response_1"], a["response_0"])
    np.testing.assert_array_equal(a["response"], observed)
    # alpha_1 > alpha_0: one uniform, so responding under control implies under treatment
    assert (a["response_1"] >= a["response_0"]).all()
    assert a["response"].dtype == np.int8


def test_cohort_features_equal_the_kernels():
    sc = simulator.get_scenario("flatiron")  # ECOG missing: observed and true ECOG differ
    n, seed = K.CHUNK + 500, 21
    arr = simulator.simulate_arrays(sc, n, seed)
    pop = draw_population(sc, calibrate(sc).solved, n, as_seed_sequence(seed))
    got = R.cohort_features(arr.floats, arr.ints, FEATURES).astype(np.float32)
    np.testing.assert_array_equal(got, pop.feats)


def test_response_uses_its_own_uniforms():
    # response = u < p_A with u from the chunk's RESPONSE_STREAM generator
    n, seed = 1000, 3
    arr = simulator.simulate_arrays(PO25, n, seed)
    root = as_seed_sequence(seed)
    u = simulator.streams.chunk_generator(root, 0, R.RESPONSE_STREAM).random(n)
    feats = R.cohort_features(arr.floats, arr.ints, FEATURES)
    lp = R.linear_predictor(PO25.response, feats, arr.floats[K.F_FRAILTY])
    p0, p1 = R.probabilities(calibrate(PO25).solved.response_intercepts, lp)
    p = np.where(arr.ints[K.I_TREATED] == 1, p1, p0)
    np.testing.assert_array_equal(arr.response, (u < p).astype(np.int8))


# ---- the acceptance: PO25 ORR 32% / 21% with TTP 9.4 / 6.0 --------------------------------
def _median_band(x: np.ndarray, target: float) -> bool:
    """target lies between the order statistics n/2 -+ Z sqrt(n)/2 (the median's band)."""
    s = np.sort(x)
    n = s.size
    half = Z * math.sqrt(n) / 2.0
    return s[int(n / 2 - half)] <= target <= s[int(n / 2 + half)]


def test_po25_orr_and_ttp_reproduced_within_monte_carlo_error():
    df = simulator.simulate(PO25, 400_000, 20_261_206, potential_outcomes=True)
    for arm, target in ((1, 0.32), (0, 0.21)):
        r = df["response"][df["treated"] == arm]
        se = math.sqrt(target * (1 - target) / r.size)
        assert abs(r.mean() - target) < Z * se, (arm, r.mean())
        pot = df[f"response_{arm}"]  # population average of the potential response
        assert abs(pot.mean() - target) < Z * math.sqrt(target * (1 - target) / pot.size)
    # TTP (rwPFS) medians of the potential outcomes over the population
    assert _median_band(df["pfs_months_1"].to_numpy(), 9.4)
    assert _median_band(df["pfs_months_0"].to_numpy(), 6.0)
    # responders progress later (the shared frailty): a clear gap in control TTP medians
    ctl = df["pfs_months_0"]
    assert ctl[df["response_0"] == 1].median() > 1.3 * ctl[df["response_0"] == 0].median()


def test_calibration_population_hits_the_targets():
    a = calibrate(PO25).achieved
    assert a["response_probability_treated"] == pytest.approx(0.32, abs=1e-10)
    assert a["response_probability_control"] == pytest.approx(0.21, abs=1e-10)
    assert a["pfs_median_treated"] == pytest.approx(9.4, abs=1e-8)
    assert a["pfs_median_control"] == pytest.approx(6.0, abs=1e-8)


# ---- truths ---------------------------------------------------------------------------------
def _sample(n=20_000, seed=1):
    rng = np.random.default_rng(seed)
    feats = np.zeros((n, len(FEATURES)))
    feats[:, FEATURES.index("visceral")] = rng.random(n) < 0.4
    feats[:, FEATURES.index("age10")] = rng.normal(size=n)
    return feats, rng.normal(size=n), expit(rng.normal(size=n))


def test_conditional_truth_is_the_generating_log_or_when_the_model_is_logistic():
    feats, frailty, ps = _sample()
    r = simulator.scenario.Response(
        probability_treated=0.4, probability_control=0.3, log_or={"visceral": 0.7, "age10": -0.3}
    )
    (a0, a1), _ = R.calibrate_intercepts(r, feats, frailty)
    values, _ = R.response_truth(r, (a0, a1), feats, frailty, ps, [(0, 10_000), (10_000, 20_000)])
    assert values["conditional_log_or"] == pytest.approx(a1 - a0, abs=1e-10)
    assert values["ate_probability_treated"] == pytest.approx(0.4, abs=1e-12)
    assert values["ate_risk_diff"] == pytest.approx(0.1, abs=1e-12)
    assert values["ate_log_or"] == pytest.approx(math.log(0.4 / 0.6) - math.log(0.3 / 0.7))
    # the ATT weights the probabilities by the true propensity score
    lp = R.linear_predictor(r, feats, frailty)
    p0, p1 = R.probabilities((a0, a1), lp)
    assert values["att_risk_diff"] == pytest.approx(ps @ (p1 - p0) / ps.sum(), abs=1e-12)


def test_conditional_truth_with_frailty_equals_statsmodels_fractional_glm():
    feats, frailty, ps = _sample(4000, 2)
    r = simulator.scenario.Response(
        probability_treated=0.35, probability_control=0.2, log_or={"visceral": 0.5},
        frailty_log_or=-1.2,
    )  # fmt: skip
    (a0, a1), _ = R.calibrate_intercepts(r, feats, frailty)
    values, _ = R.response_truth(r, (a0, a1), feats, frailty, ps, [(0, 2000), (2000, 4000)])
    p0, p1 = R.probabilities((a0, a1), R.linear_predictor(r, feats, frailty))
    n = p0.size
    v = feats[:, FEATURES.index("visceral")]
    D = np.column_stack([np.ones(2 * n), np.repeat([0.0, 1.0], n), np.concatenate([v, v])])
    fit = sm.GLM(np.concatenate([p0, p1]), D, family=sm.families.Binomial()).fit(tol=1e-14)
    assert values["conditional_log_or"] == pytest.approx(fit.params[1], abs=1e-9)
    # the frailty is left out: non-collapsibility pulls it towards 0
    assert 0 < values["conditional_log_or"] < a1 - a0


def test_po25_truth_has_response_and_refuses_mismatched_measures():
    tr = truth(PO25)
    assert tr.outcomes == ("pfs", "os", "response")
    theta, bound = tr.estimand("response", "ATE", measure="risk_diff")
    assert theta == pytest.approx(0.11, abs=1e-9) and 0 < bound < 1e-3
    cond, _ = tr.estimand("response", "conditional", measure="log_or")
    assert 0 < cond < tr.response.generating_log_or
    with pytest.raises(ScenarioError, match=r"measure='log_hr' is not allowed for outcome"):
        tr.estimand("response", "ATE")
    with pytest.raises(ScenarioError, match=r"measure='risk_diff' is not allowed for outcome"):
        tr.estimand("pfs", "ATE", measure="risk_diff")
    with pytest.raises(ScenarioError, match=r"conditional response estimand is a log odds"):
        tr.estimand("response", "conditional", measure="risk_diff")
    flat = truth("flatiron")
    assert flat.response is None and "response" not in flat.to_dict()
    with pytest.raises(ScenarioError, match=r"scenario has no response block"):
        flat.estimand("response", "ATE", measure="risk_diff")


@pytest.mark.slow
def test_exact_and_monte_carlo_response_truths_agree():
    ex = truth(PO25).response
    mc = truth(PO25, method="montecarlo").response
    for k in ex.values:
        err = math.hypot(ex.mcse[k], mc.mcse[k])
        if err == 0:
            assert ex.values[k] == mc.values[k]
            continue
        assert abs(ex.values[k] - mc.values[k]) < Z * err, k


def test_show_json_has_the_response_truth_only_when_there_is_one():
    import json

    from typer.testing import CliRunner

    from simulator.study.cli import app

    for name, has in (("po25-response", True), ("flatiron", False)):
        res = CliRunner().invoke(app, ["show", name, "--json"])
        assert res.exit_code == 0, res.output
        doc = json.loads(res.stdout)
        assert ("response" in doc["truth"]) is has
        if has:
            assert doc["truth"]["response"]["ate_risk_diff"] == pytest.approx(0.11, abs=1e-9)
