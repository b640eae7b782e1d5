"""Binary-outcome estimators (estimators/binary.py) against R glm / survey::svyglm golden
values (tests/reference/make_response_reference.R), statsmodels, a slow obvious
M-estimation sandwich (tests/naive.py) and a Monte Carlo coverage check; and the study
plumbing of the ``response`` outcome."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm
from naive import iptw_binary_sandwich_naive

import estimators as E
import simulator
from estimators.exceptions import EstimatorInputError
from estimators.registry import get_estimator
from estimators.shared import SharedInputs
from simulator.exceptions import ScenarioError
from simulator.study import Study, run_study
from simulator.study.exceptions import StudyError
from simulator.study.store import Store

REFERENCE = json.loads(
    (Path(__file__).parent / "reference" / "r" / "response_reference.json").read_text()
)
CASES = REFERENCE["cases"]
COVS = ["x1", "x2"]


def _data(case):
    return {k: np.asarray(v, dtype=np.float64) for k, v in case["data"].items()}


# ---- against R ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"n{c['n']}")
def test_crude_and_adjusted_log_or_equal_r_glm(case):
    df = _data(case)
    crude = E.naive_binary(df, None, "y", "trt", [], measure="log_or")
    adj = E.adjusted_logistic(df, None, "y", "trt", COVS)
    # glm stops at a relative deviance change of 1e-8: its coefficients carry ~1e-7 of error
    assert crude.estimate == pytest.approx(case["crude"]["coef"], abs=1e-9)
    assert crude.se == pytest.approx(case["crude"]["se"], rel=1e-6)
    assert adj.estimate == pytest.approx(case["adjusted"]["coef"], abs=1e-6)
    assert adj.se == pytest.approx(case["adjusted"]["se"], rel=1e-4)
    assert adj.estimand == "conditional" and crude.estimand == "crude"


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"n{c['n']}")
@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
@pytest.mark.parametrize("measure", ["risk_diff", "log_or"])
def test_iptw_with_known_weights_equals_svyglm(case, estimand, measure):
    df = _data(case)
    r = E.iptw_binary(
        df, None, "y", "trt", COVS, measure=measure, estimand=estimand, variance="robust"
    )
    ref = case["weighted"][estimand][measure]
    n = case["n"]
    assert r.estimate == pytest.approx(ref["coef"], abs=1e-9)
    # svyglm's sandwich carries the finite-population factor n / (n - 1)
    assert r.se * math.sqrt(n / (n - 1)) == pytest.approx(ref["se"], rel=1e-9)


# ---- the M-estimation sandwich -------------------------------------------------------------
@pytest.mark.parametrize("estimand", ["ATE", "ATT", "ATC", "ATO", "ATM"])
def test_iptw_mestimation_equals_the_naive_stacked_sandwich(estimand):
    df = _data(CASES[1])
    y, a = df["y"], df["trt"]
    X = np.column_stack([np.ones(y.size), df["x1"], df["x2"]])
    p1, p0, V = iptw_binary_sandwich_naive(y, a.astype(int), X, estimand)
    rd = E.iptw_binary(df, None, "y", "trt", COVS, estimand=estimand)
    lor = E.iptw_binary(df, None, "y", "trt", COVS, estimand=estimand, measure="log_or")
    assert rd.estimate == pytest.approx(p1 - p0, abs=1e-12)
    g = np.array([1.0, -1.0])
    assert rd.se == pytest.approx(math.sqrt(g @ V @ g), rel=1e-6)
    g = np.array([1 / (p1 * (1 - p1)), -1 / (p0 * (1 - p0))])
    assert lor.se == pytest.approx(math.sqrt(g @ V @ g), rel=1e-6)
    # estimating the PS does not increase the ATE's variance (Lunceford & Davidian 2004)
    if estimand == "ATE":
        known = E.iptw_binary(df, None, "y", "trt", COVS, variance="robust")
        assert rd.se <= known.se


def test_crude_equals_statsmodels_and_the_two_by_two_table():
    df = _data(CASES[0])
    y, a = df["y"], df["trt"]
    lor = E.naive_binary(df, None, "y", "trt", [], measure="log_or")
    fit = sm.Logit(y, sm.add_constant(a)).fit(disp=0, tol=1e-12)
    assert lor.estimate == pytest.approx(fit.params[1], abs=1e-8)
    assert lor.se == pytest.approx(fit.bse[1], rel=1e-8)
    rd = E.naive_binary(df, None, "y", "trt", [])
    p1, p0 = y[a == 1].mean(), y[a == 0].mean()
    assert rd.estimate == pytest.approx(p1 - p0, abs=1e-15)
    se = math.sqrt(p1 * (1 - p1) / (a == 1).sum() + p0 * (1 - p0) / (a == 0).sum())
    assert rd.se == pytest.approx(se, rel=1e-12)


def test_matched_uses_psms_pairs_and_paired_differences():
    df = simulator.simulate("po25-response", 907, 4)
    covs = ["age", "ecog", "visceral", "bone_only"]
    shared = SharedInputs(df, "treated", covs)
    r = E.matched_binary(None, None, "response", "treated", covs, shared=shared)
    m = r.diagnostics["matching"]
    # psm's matching: greedy 1:1 on the logit PS, caliper 0.2 SD, random order, seed 0
    ps = E.fit_propensity(df, "treated", covs)
    want = E.match_pairs(ps.logit, df["treated"].to_numpy(), caliper=0.2, random_state=0)
    np.testing.assert_array_equal(m.treated, want.treated)
    np.testing.assert_array_equal(m.control, want.control)
    # and psm's memo key: another call on the same shared inputs reuses the pairs
    again = E.matched_binary(None, None, "response", "treated", covs, shared=shared)
    assert again.diagnostics["matching"] is m
    d = df["response"].to_numpy()[m.treated] - df["response"].to_numpy()[m.control]
    assert r.estimate == pytest.approx(d.mean(), abs=1e-15)
    assert r.se == pytest.approx(d.std(ddof=1) / math.sqrt(d.size), rel=1e-12)
    assert r.estimand == "ATT" and r.n == 2 * d.size


# ---- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda d: E.naive_binary(d, "time", "y", "trt", []), r"time='time' is not allowed"),
        (lambda d: E.naive_binary(d, None, "y", "trt", [], measure="log_hr"), r"measure='log_hr'"),
        (
            lambda d: E.adjusted_logistic(d, None, "y", "trt", COVS, measure="risk_diff"),
            r"measure='risk_diff' is not allowed for a binary outcome; use one of \['log_or'\]",
        ),
        (lambda d: E.naive_binary(d, None, "x1", "trt", []), r"event must hold only 0 and 1"),
        (lambda d: E.naive_binary(d, None, "nope", "trt", []), r"nope"),
        (
            lambda d: E.iptw_binary(d, None, "y", "trt", COVS, variance="boot"),
            r"variance='boot' is not allowed",
        ),
        (
            lambda d: E.iptw_binary(d, None, "y", "trt", COVS, ps_method="firth"),
            r"ps_method='firth' is not allowed with variance='mestimation'",
        ),
        (
            lambda d: E.iptw_binary(d, None, "y", "trt", COVS, estimand="conditional"),
            r"estimand='conditional' is not allowed",
        ),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(call, match):
    with pytest.raises(EstimatorInputError, match=match):
        call(_data(CASES[1]))


def test_an_arm_without_responders_gives_a_flagged_nan_log_or():
    df = _data(CASES[1])
    df["y"] = np.where(df["trt"] == 1, df["y"], 0.0)
    with pytest.warns(E.EstimatorWarning, match="log odds ratio is not finite"):
        r = E.naive_binary(df, None, "y", "trt", [], measure="log_or")
    assert math.isnan(r.estimate) and not r.converged
    assert E.naive_binary(df, None, "y", "trt", []).converged  # the risk difference is fine


def test_registry_declares_binary_measures():
    assert get_estimator("naive_binary").measures == ("risk_diff", "log_or")
    assert get_estimator("adjusted_logistic").measures == ("log_or",)
    assert get_estimator("iptw_binary").estimand == "ATE"
    assert get_estimator("matched_binary").estimand == "ATT"


# ---- coverage (Monte Carlo) -----------------------------------------------------------------
@pytest.mark.slow
def test_iptw_mestimation_coverage_on_the_r_design():
    # 2,000 data sets of the R script's design (n = 500): the ATE risk difference's 95%
    # intervals cover the true value within 4 binomial SEs of 0.95
    rng = np.random.default_rng(20261213)
    n, reps, hits = 500, 2000, 0

    def draw(m):
        x1, x2 = rng.normal(size=m), (rng.random(m) < 0.4).astype(float)
        trt = (rng.random(m) < 1 / (1 + np.exp(-(-0.2 + 0.7 * x1 + 0.5 * x2)))).astype(float)
        return x1, x2, trt

    x1, x2, _ = draw(2_000_000)
    p = lambda a: 1 / (1 + np.exp(-(-1.0 + 0.6 * a + 0.5 * x1 - 0.4 * x2)))  # noqa: E731
    theta = float(np.mean(p(1.0) - p(0.0)))
    for _ in range(reps):
        x1, x2, trt = draw(n)
        y = (rng.random(n) < 1 / (1 + np.exp(-(-1.0 + 0.6 * trt + 0.5 * x1 - 0.4 * x2)))) * 1.0
        r = E.iptw_binary({"y": y, "trt": trt, "x1": x1, "x2": x2}, None, "y", "trt", COVS)
        hits += r.ci_low <= theta <= r.ci_high
    assert abs(hits / reps - 0.95) < 4 * math.sqrt(0.95 * 0.05 / reps)


# ---- studies --------------------------------------------------------------------------------
QUIET = {"progress": False, "log": lambda msg: None}
BINARY = ("naive_binary", "iptw_binary", "matched_binary", "adjusted_logistic")


def test_study_pairs_binary_estimators_with_response(tmp_path):
    study = Study(
        name="resp",
        scenarios=("po25-response",),
        sample_sizes=(400,),
        reps=2,
        chunk_reps=2,
        seed=9,
        estimators=("naive_cox", *BINARY),
        outcomes=("pfs", "response"),
    )
    run_study(study, tmp_path, workers=1, **QUIET)
    rows = Store(tmp_path).read_results()
    pairs = set(zip(rows["outcome"], rows["estimator"], rows["measure"], strict=True))
    assert pairs == {
        ("pfs", "naive_cox", "log_hr"),
        ("response", "naive_binary", "risk_diff"),
        ("response", "iptw_binary", "risk_diff"),
        ("response", "matched_binary", "risk_diff"),
        ("response", "adjusted_logistic", "log_or"),
    }
    assert len(rows) == 2 * 5 and (rows["error"] == "").all()
    truths = Store(tmp_path).truths()
    resp = truths[truths["outcome"] == "response"]
    assert set(resp["measure"]) == {"risk_diff", "log_or"}
    # a replicate's estimate equals the estimator on the cohort simulate() gives
    from simulator.study.replicate import replicate_seed

    df = simulator.simulate("po25-response", 400, replicate_seed(9, 0, 1))
    want = E.iptw_binary(df, None, "response", "treated", list(study.covariates_for("iptw_binary")))
    got = rows[(rows["rep"] == 1) & (rows["estimator"] == "iptw_binary")]["estimate"].item()
    assert got == want.estimate


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (
            {"scenarios": ("flatiron",), "outcomes": ("pfs", "response")},
            r"'response' is not allowed for condition 'flatiron, n=300': its scenario has no",
        ),
        (
            {"estimators": ("naive_cox", "naive_binary"), "outcomes": ("pfs",)},
            r"'naive_binary' reports \['risk_diff'\] of a binary outcome.*add 'response'",
        ),
        (
            {"estimators": ("naive_cox", "naive_binary"), "outcomes": ("response",)},
            r"'naive_cox' reports \['log_hr'\] of a time to event.*add 'pfs' or 'os'",
        ),
        (
            {"outcomes": ("pfs", "response")},
            r"outcomes: 'response' is not analysed by any of the study's estimators",
        ),
        ({"outcomes": ("pfs", "responses")}, r"outcomes\[\]='responses' .* 'response'\]"),
    ],
)
def test_bad_response_studies_fail_before_any_work(changes, match):
    base = {"scenarios": ("po25-response",), "sample_sizes": (300,), "reps": 2}
    # StudyError, or the ScenarioError of the shared choice check (both ValueErrors)
    with pytest.raises((StudyError, ScenarioError), match=match):
        Study(**{**base, "estimators": ("naive_cox",), **changes})


def test_adjusted_logistic_separation_speaks_of_the_outcome_not_the_propensity_score():
    """The outcome model shares the PS fitter; its separation messages name the outcome
    and fitted probabilities (they used to say treatment and propensity scores)."""
    rng = np.random.default_rng(3)
    n = 200
    a = (rng.random(n) < 0.5).astype(np.int8)
    x = rng.normal(size=n)
    rare = np.zeros(n, dtype=np.int8)
    rare[:6] = 1
    y = (rng.random(n) < 0.3).astype(np.int8)
    y[:6] = 1  # every patient with rare = 1 responds: quasi-complete separation
    df = {"resp": y, "a": a, "x": x, "rare": rare}
    with pytest.warns(E.SeparationWarning) as caught:
        est = E.adjusted_logistic(df, None, "resp", "a", ["x", "rare"])
    msg = " ".join(str(w.message) for w in caught)
    assert "perfectly predict event='resp'" in msg and "fitted probabilit" in msg
    assert "propensity" not in msg and "treatment" not in msg
    assert not est.converged
    y_all = (x > 0).astype(np.int8)  # complete separation by x
    with pytest.raises(E.SeparationError, match="event='resp' is perfectly predicted"):
        E.adjusted_logistic({**df, "resp": y_all}, None, "resp", "a", ["x"])
