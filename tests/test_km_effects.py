"""iptw_km / matched_km: RMST and survival differences from weighted and matched KM curves.

Oracles:

* R golden values (tests/reference/make_km_reference.R -> km_reference.json):
  ``survival::survfit(weights=)`` point estimates per arm and its infinitesimal-jackknife
  influence values (the fixed-weight SE), and ``riskRegression::ate(estimator="IPTW")``
  with its influence-function SE where it is the same estimator (intercept-only PS, KM
  censoring model per arm; elsewhere riskRegression's IPTW is Horvitz-Thompson, not the
  Hajek weighted KM).
* Closed forms: unweighted, the IF variance is Greenwood's (S) and Klein-Moeschberger's
  (RMST) exactly, as computed by :mod:`estimators.survival`; lifelines'
  ``KaplanMeierFitter(weights=)`` point estimates.
* Slow references (tests/naive.py): the stacked estimating equations differentiated
  numerically (PS-aware and fixed-PS SEs), and the pair-clustered matched SE.
* Monte Carlo: bias and coverage against the exact marginal truth of an exponential
  cohort.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cohorts import COVARIATES, confounded_cohort
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import KaplanMeierFitter
from naive import iptw_km_naive, km_functional_naive, matched_km_naive

from estimators import (
    EstimatorInputError,
    NoCovariatesWarning,
    SharedInputs,
    get_estimator,
    iptw_km,
    km_difference,
    matched_km,
    psm,
    siptw,
)
from estimators.design_matrix import design_matrix
from estimators.survival import kaplan_meier

REFERENCE = json.loads((Path(__file__).parent / "reference" / "km_reference.json").read_text())
MEASURE_KEY = {"surv_diff": "surv", "rmst_diff": "rmst"}


def _frame(case: dict) -> pd.DataFrame:
    return pd.DataFrame(case["data"])


# ---- R golden values ------------------------------------------------------------------
@pytest.mark.parametrize("measure", ["surv_diff", "rmst_diff"])
@pytest.mark.parametrize("case", REFERENCE["weighted"], ids=lambda c: c["name"])
def test_weighted_km_matches_survfit(case, measure):
    """Per-arm weighted KM functionals and the fixed-weight IF SE equal survfit's (its
    influence.surv, integrated over the steps for the RMST): floating-point agreement."""
    df = _frame(case)
    for h in case["horizons"]:
        r = iptw_km(
            df, "time", "status", "trt", ["x1", "x2"], measure=measure, horizon=h["tau"],
            estimand=case["estimand"], variance="if-fixed-ps",
        )  # fmt: skip
        key = MEASURE_KEY[measure]
        assert r.diagnostics["treated"] == pytest.approx(h[f"{key}_treated"], rel=1e-12)
        assert r.diagnostics["control"] == pytest.approx(h[f"{key}_control"], rel=1e-12)
        assert r.estimate == pytest.approx(h[f"{key}_treated"] - h[f"{key}_control"], abs=1e-12)
        assert r.se == pytest.approx(h[f"{measure}_se_fixed"], rel=1e-10)
        assert r.se == r.diagnostics["se_if_fixed_ps"]
        assert (r.measure, r.horizon, r.estimand) == (measure, float(h["tau"]), case["estimand"])


def test_ps_coefficients_match_glm():
    """The weights behind the golden cases come from the same logistic fit as R's glm."""
    for case in REFERENCE["weighted"]:
        r = iptw_km(_frame(case), "time", "status", "trt", ["x1", "x2"], horizon=6.0)
        coef = r.diagnostics["propensity"].fit.coef
        np.testing.assert_allclose(coef, case["ps_coef"], rtol=1e-9, atol=1e-12)


def test_matches_riskregression_where_the_estimators_coincide():
    """Intercept-only PS, KM censoring per arm: riskRegression's Horvitz-Thompson IPTW is
    the Hajek weighted KM, and its influence-function SE (PS and censoring model
    included) is ours.  Estimates agree to rounding at every horizon.  SEs agree to
    rounding at 6 months, before the first censoring (censoring starts at 10 months),
    and within 1e-4 relative later (observed 2e-8 at 12 and 1.1e-5 at 24 months, growing
    with the censorings before the horizon).  The pattern fits riskRegression
    linearising its censoring survival as ``exp(-Lambda_c)`` (without the product-limit
    factor ``1 / (1 - dLambda_c)``) where our derivative of the product is exact; that
    is a hypothesis, not checked term by term, and 1e-4 is ~10x the largest observed
    difference: this case checks agreement of method, the exact cases check digits."""
    case = REFERENCE["riskregression"][0]
    df = _frame(case)
    for h in case["horizons"]:
        with pytest.warns(NoCovariatesWarning):
            r = iptw_km(df, "time", "status", "trt", [], measure="surv_diff", horizon=h["tau"])
        assert r.diagnostics["treated"] == pytest.approx(h["surv_treated"], abs=1e-12)
        assert r.diagnostics["control"] == pytest.approx(h["surv_control"], abs=1e-12)
        assert r.estimate == pytest.approx(h["surv_diff"], abs=1e-12)
        rtol = 1e-12 if h["tau"] == 6 else 1e-4
        assert r.se == pytest.approx(h["surv_diff_se"], rel=rtol)
        # an intercept-only PS moves every weight of an arm together: no PS term
        assert r.se == pytest.approx(r.diagnostics["se_if_fixed_ps"], rel=1e-12)


# ---- closed forms and lifelines ---------------------------------------------------------
def _survival_data(seed: int, n: int, ties: bool):
    rng = np.random.default_rng(seed)
    t = rng.exponential(12.0, n) + 0.1
    if ties:
        t = np.ceil(t)
    e = rng.binomial(1, 0.7, n)
    a = rng.binomial(1, 0.5, n)
    return t, e, a


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("tau", [3.0, 12.0, 20.5])
def test_unweighted_if_variance_is_greenwood(ties, tau):
    t, e, a = _survival_data(3, 240, ties)
    k1, k0 = (kaplan_meier(t[a == g], e[a == g]) for g in (1, 0))
    est, se, _ = km_difference(t, e, a, measure="rmst_diff", horizon=tau)
    (r1, s1), (r0, s0) = k1.rmst(tau), k0.rmst(tau)
    assert est == pytest.approx(r1 - r0, rel=1e-12, abs=1e-12)
    assert se == pytest.approx(math.hypot(s1, s0), rel=1e-12)
    est, se, _ = km_difference(t, e, a, measure="surv_diff", horizon=tau)
    i1, i0 = (np.searchsorted(k.time, tau, side="right") - 1 for k in (k1, k0))
    assert est == pytest.approx(k1.survival[i1] - k0.survival[i0], abs=1e-14)
    assert se == pytest.approx(math.hypot(k1.std_err[i1], k0.std_err[i0]), rel=1e-12)


@pytest.mark.filterwarnings("ignore:It looks like your weights are not integers")
@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
def test_weighted_curves_match_lifelines(estimand):
    df = confounded_cohort(500, seed=4)
    r = iptw_km(df, "pfs_months", "pfs_event", "treated", COVARIATES, measure="surv_diff",
                horizon=15.0, estimand=estimand)  # fmt: skip
    w = r.diagnostics["analysis_weights"]
    for arm, key in ((1, "treated"), (0, "control")):
        s = df["treated"].to_numpy() == arm
        kmf = KaplanMeierFitter().fit(
            df["pfs_months"][s], df["pfs_event"][s], weights=w[s]
        )  # fmt: skip
        assert r.diagnostics[key] == pytest.approx(float(kmf.predict(15.0)), rel=1e-10)


# ---- slow references ------------------------------------------------------------------
@pytest.mark.parametrize("measure", ["rmst_diff", "surv_diff"])
@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
@pytest.mark.parametrize("ties", [False, True])
def test_iptw_km_matches_stacked_numerical_reference(measure, estimand, ties):
    """Both SEs against the stacked estimating equations differentiated numerically
    (central differences, step 1e-6: truncation ~1e-12, rounding ~1e-10 of each
    influence value, hence rtol 1e-6 on the SEs)."""
    df = confounded_cohort(150, seed=11 if ties else 12)
    if ties:
        df["pfs_months"] = np.ceil(df["pfs_months"])
    covs = ["age", "visceral", "n_met_sites"]
    r = iptw_km(df, "pfs_months", "pfs_event", "treated", covs, measure=measure, horizon=14.0,
                estimand=estimand)  # fmt: skip
    X = np.column_stack([np.ones(len(df)), design_matrix(df, covs).X])
    theta, se_fixed, se_ps = iptw_km_naive(
        df["pfs_months"].to_numpy(), df["pfs_event"].to_numpy(), df["treated"].to_numpy(), X,
        14.0, measure == "rmst_diff", estimand,
    )  # fmt: skip
    assert r.estimate == pytest.approx(theta, rel=1e-10, abs=1e-12)
    assert r.diagnostics["se_if_fixed_ps"] == pytest.approx(se_fixed, rel=1e-6)
    assert r.se == pytest.approx(se_ps, rel=1e-6)
    assert r.diagnostics["se_if"] != pytest.approx(se_fixed, rel=1e-4)  # the term matters


@pytest.mark.parametrize("measure", ["rmst_diff", "surv_diff"])
def test_matched_km_matches_numerical_reference_and_psm_pairs(measure):
    df = confounded_cohort(300, seed=5)
    df["pfs_months"] = np.ceil(df["pfs_months"] * 2) / 2
    r = matched_km(df, "pfs_months", "pfs_event", "treated", COVARIATES, measure=measure,
                   horizon=18.0)  # fmt: skip
    m = psm(df, "pfs_months", "pfs_event", "treated", COVARIATES).diagnostics["matching"]
    np.testing.assert_array_equal(r.diagnostics["matching"].treated, m.treated)
    np.testing.assert_array_equal(r.diagnostics["matching"].control, m.control)
    pairs = list(zip(m.treated.tolist(), m.control.tolist(), strict=True))
    theta, se = matched_km_naive(
        df["pfs_months"].to_numpy(), df["pfs_event"].to_numpy(), pairs, 18.0,
        measure == "rmst_diff",
    )  # fmt: skip
    assert r.estimate == pytest.approx(theta, rel=1e-10, abs=1e-12)
    assert r.se == pytest.approx(se, rel=1e-6)
    assert (r.estimand, r.n, r.diagnostics["pairs"]) == ("ATT", 2 * m.n_pairs, m.n_pairs)


def test_naive_functional_agrees_with_kernel_on_a_tiny_case():
    """Hand-checkable: times 1, 2, 2, 3 (events 1, 1, 0, 1), weights 1, 2, 1, 1."""
    t = np.array([1.0, 2.0, 2.0, 3.0])
    e = np.array([1, 1, 0, 1])
    w = np.array([1.0, 2.0, 1.0, 1.0])
    s1 = 1 - 1 / 5
    s2 = s1 * (1 - 2 / 4)
    assert km_functional_naive(t, e, w, 2.5, False) == pytest.approx(s2)
    assert km_functional_naive(t, e, w, 2.5, True) == pytest.approx(1 + s1 + 0.5 * s2)
    a = np.array([1, 1, 1, 1, 0, 0])
    tt, ee, ww = np.r_[t, 1.5, 4.0], np.r_[e, 1, 0], np.r_[w, 1.0, 1.0]
    est, _, _ = km_difference(tt, ee, a, ww, "rmst_diff", 2.5)
    assert est == pytest.approx((1 + s1 + 0.5 * s2) - (1.5 + 0.5 * 1.0))


# ---- properties -----------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(12, 80),
    grid=st.sampled_from([0.0, 1.0, 3.0]),
    measure=st.sampled_from(["rmst_diff", "surv_diff"]),
    scale=st.tuples(st.floats(0.01, 100.0), st.floats(0.01, 100.0)),
)
def test_row_order_and_weight_scale_invariance(seed, n, grid, measure, scale):
    """Permuting rows changes nothing; multiplying each arm's weights by a constant
    leaves every KM curve, hence the estimate and the fixed-weight SE, unchanged."""
    rng = np.random.default_rng(seed)
    t = rng.exponential(8.0, n) + 0.1
    if grid:
        t = np.ceil(t / grid) * grid
    e = rng.binomial(1, 0.7, n)
    a = np.r_[0, 1, rng.binomial(1, 0.5, n - 2)]
    e[:2] = 1
    w = rng.uniform(0.2, 5.0, n)
    tau = float(min(t[a == 0].max(), t[a == 1].max()))
    est, se, phi = km_difference(t, e, a, w, measure, tau)
    perm = rng.permutation(n)
    est_p, se_p, phi_p = km_difference(t[perm], e[perm], a[perm], w[perm], measure, tau)
    assert est_p == pytest.approx(est, rel=1e-12, abs=1e-12)
    assert se_p == pytest.approx(se, rel=1e-9, abs=1e-14)
    np.testing.assert_allclose(phi_p, phi[perm], rtol=1e-9, atol=1e-13)
    w_s = w * np.where(a == 1, scale[0], scale[1])
    est_s, se_s, _ = km_difference(t, e, a, w_s, measure, tau)
    assert est_s == pytest.approx(est, rel=1e-10, abs=1e-12)
    assert se_s == pytest.approx(se, rel=1e-8, abs=1e-14)


def test_iptw_km_row_order_invariant_with_ps_term():
    df = confounded_cohort(400, seed=8)
    perm = np.random.default_rng(0).permutation(len(df))
    r = iptw_km(df, "pfs_months", "pfs_event", "treated", COVARIATES, horizon=20.0)
    rp = iptw_km(df.iloc[perm].reset_index(drop=True), "pfs_months", "pfs_event", "treated",
                 COVARIATES, horizon=20.0)  # fmt: skip
    assert rp.estimate == pytest.approx(r.estimate, rel=1e-10)
    assert rp.se == pytest.approx(r.se, rel=1e-8)


# ---- Monte Carlo: bias and coverage against the exact marginal truth --------------------
def _true_rmst_diff(tau: float, estimand: str) -> float:
    """Marginal RMST difference of :func:`confounded_cohort` (exponential outcome given
    covariates: ``RMST = (1 - exp(-h tau)) / h``), averaged over 2e6 covariate draws
    (ATT: weighted by the true PS).  Its Monte Carlo error is below 1e-3 months."""
    df = confounded_cohort(2_000_000, seed=999)
    base = (
        0.06
        * np.exp(
            0.02 * (df["age"] - 67.0) + 0.5 * (df["ecog"] == "2+") + 0.3 * df["visceral"]
        ).to_numpy()
    )
    diff = (1 - np.exp(-base * np.exp(-0.5) * tau)) / (base * np.exp(-0.5)) - (
        1 - np.exp(-base * tau)
    ) / base
    weight = df["ps_true"].to_numpy() if estimand == "ATT" else np.ones(len(df))
    return float(np.average(diff, weights=weight))


@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
def test_bias_and_coverage_monte_carlo(estimand):
    """400 cohorts of 500: bias within 3 MCSE of 0 and the PS-aware SE's coverage of the
    95% interval within 3 MCSE of 0.95 (MCSE = sqrt(0.95 * 0.05 / 400) = 1.1%)."""
    tau, reps = 24.0, 400
    truth = _true_rmst_diff(tau, estimand)
    est, se = np.empty(reps), np.empty(reps)
    for k in range(reps):
        df = confounded_cohort(500, seed=10_000 + k)
        r = iptw_km(df, "pfs_months", "pfs_event", "treated", COVARIATES, horizon=tau,
                    estimand=estimand, balance=False)  # fmt: skip
        est[k], se[k] = r.estimate, r.se
    mcse = est.std(ddof=1) / math.sqrt(reps)
    assert abs(est.mean() - truth) < 3 * mcse
    cover = np.mean(np.abs(est - truth) <= 1.959964 * se)
    assert abs(cover - 0.95) < 3 * math.sqrt(0.95 * 0.05 / reps)


# ---- shared inputs, registry ------------------------------------------------------------
def test_shared_inputs_reuse_siptw_weights_and_psm_pairs():
    df = confounded_cohort(400, seed=9)
    s = SharedInputs(df, "treated", COVARIATES)
    w_siptw = siptw(None, "pfs_months", "pfs_event", "treated", COVARIATES, shared=s)
    r = iptw_km(None, "pfs_months", "pfs_event", "treated", COVARIATES, shared=s, horizon=12)
    assert r.diagnostics["analysis_weights"] is w_siptw.diagnostics["analysis_weights"]
    alone = iptw_km(df, "pfs_months", "pfs_event", "treated", COVARIATES, horizon=12)
    assert (r.estimate, r.se) == (alone.estimate, alone.se)
    m = psm(None, "pfs_months", "pfs_event", "treated", COVARIATES, shared=s)
    mk = matched_km(None, "pfs_months", "pfs_event", "treated", COVARIATES, shared=s)
    assert mk.diagnostics["matching"] is m.diagnostics["matching"]


def test_registered_with_estimand_and_fast_path():
    for name, estimand in (("iptw_km", "ATE"), ("matched_km", "ATT")):
        est = get_estimator(name)
        assert (est.estimand, est.frame) == (estimand, False)
        assert {"shared", "propensity", "balance"} <= est.accepts
    df = confounded_cohort(300, seed=2)
    cols = {c: df[c].to_numpy() for c in ("pfs_months", "pfs_event", "treated", "age",
                                           "visceral")}  # fmt: skip
    r = get_estimator("iptw_km")(cols, "pfs_months", "pfs_event", "treated", ["age", "visceral"],
                                 measure="surv_diff", horizon=12)  # fmt: skip
    ref = iptw_km(df, "pfs_months", "pfs_event", "treated", ["age", "visceral"],
                  measure="surv_diff", horizon=12)  # fmt: skip
    assert (r.estimate, r.se, r.measure, r.horizon) == (ref.estimate, ref.se, "surv_diff", 12.0)


# ---- bad input ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def cohort():
    return confounded_cohort(300, seed=1)


@pytest.mark.parametrize("func", [iptw_km, matched_km])
@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"horizon": 0}, r"horizon=0 is not allowed; give a finite number of months > 0"),
        ({"horizon": -3.0}, r"horizon=-3.0 is not allowed"),
        ({"horizon": math.nan}, r"horizon=nan is not allowed"),
        ({"horizon": True}, r"horizon=True is not allowed"),
        ({"horizon": "24"}, r"horizon='24' is not allowed"),
        ({"measure": "rmst"}, r"measure='rmst' is not allowed; use one of \('rmst_diff'"),
        ({"measure": "log_hr"}, r"a Kaplan-Meier estimator has no 'log_hr'"),
        ({"horizon": 60.0}, r"horizon=60 is not allowed: it is beyond the last follow-up"),
    ],
)
def test_bad_input_is_named(cohort, func, options, match):
    with pytest.raises(EstimatorInputError, match=match):
        func(cohort, "pfs_months", "pfs_event", "treated", COVARIATES, **options)


def test_bad_iptw_options(cohort):
    for options, match in (
        ({"variance": "bootstrap"}, r"variance='bootstrap' is not allowed; use one of"),
        ({"estimand": "ATO"}, r"estimand='ATO' is not allowed; use one of \('ATE', 'ATT'\)"),
        ({"alpha": 1.5}, r"alpha"),
    ):
        with pytest.raises(EstimatorInputError, match=match):
            iptw_km(cohort, "pfs_months", "pfs_event", "treated", COVARIATES, **options)


def test_everyone_censored_before_the_horizon():
    df = confounded_cohort(300, seed=3)
    control = df["treated"] == 0
    df.loc[control, "pfs_event"] = 0
    df.loc[control, "pfs_months"] = np.minimum(df.loc[control, "pfs_months"], 10.0)
    with pytest.raises(EstimatorInputError, match=r"every patient of the control arm is censored"):
        iptw_km(df, "pfs_months", "pfs_event", "treated", COVARIATES, horizon=12.0)
    # at or before the last follow-up the curve is defined (flat at 1 in that arm)
    r = iptw_km(df, "pfs_months", "pfs_event", "treated", COVARIATES, horizon=10.0,
                measure="surv_diff")  # fmt: skip
    assert r.diagnostics["control"] == 1.0


def test_horizon_beyond_follow_up_is_fine_once_the_curve_hits_zero():
    """The last patient's event takes S to 0: S(t) = 0 and the RMST are defined beyond."""
    t = np.array([1.0, 2.0, 3.0, 1.5, 2.5])
    e = np.array([1, 1, 1, 1, 0])
    a = np.array([1, 1, 1, 0, 0])
    est, _, _ = km_difference(t, e, a, measure="rmst_diff", horizon=2.5)
    assert est == pytest.approx((1 + 2 / 3 + 0.5 / 3) - (1.5 + 0.5))
    with pytest.raises(EstimatorInputError, match=r"beyond the last follow-up of the control"):
        km_difference(t, e, a, measure="rmst_diff", horizon=4.0)
    t[4] = 5.0
    est, _, _ = km_difference(t, e, a, measure="surv_diff", horizon=4.0)
    assert est == pytest.approx(0.0 - 0.5)


def test_errors_before_work(cohort):
    """A bad option is reported even when the data are unusable (checked first)."""
    with pytest.raises(EstimatorInputError, match="horizon"):
        iptw_km(None, "x", "y", "z", COVARIATES, horizon=-1)
    with pytest.raises(EstimatorInputError, match="measure"):
        matched_km(cohort, "no_such_column", "y", "z", COVARIATES, measure="hr")


# ---- a study ------------------------------------------------------------------------
def test_a_study_runs_them_with_measure_options(tmp_path):
    """``[study.estimator_options.iptw_km] measure = "rmst_diff", horizon = 24`` runs; the
    rows carry the measure and horizon that the truth engine holds a value for."""
    from simulator.study.runner import run_study
    from simulator.study.spec import Study
    from simulator.study.store import Store
    from simulator.study.truth import truth

    options = {
        "iptw_km": {"measure": "rmst_diff", "horizon": 24},
        "matched_km": {"measure": "surv_diff", "horizon": 12},
    }
    study = Study(name="km", reps=4, chunk_reps=2, sample_sizes=(400,), seed=3,
                  estimators=("iptw_km", "matched_km"), estimator_options=options)  # fmt: skip
    run_study(study, tmp_path, workers=1, progress=False, log=lambda msg: None)
    res = Store(tmp_path).read_results()
    assert len(res) == 4 * 2 * 2 and (res["error"] == "").all()
    for name, opts in options.items():
        rows = res[res["estimator"] == name]
        assert set(rows["measure"]) == {opts["measure"]}
        assert set(rows["horizon"]) == {float(opts["horizon"])}
        assert np.isfinite(rows["estimate"]).all() and (rows["se"] > 0).all()
    tr = truth(study.conditions()[0].scenario)
    for outcome in ("pfs", "os"):
        value, error = tr.estimand(outcome, "ATE", measure="rmst_diff", horizon=24.0)
        assert math.isfinite(value) and error < 0.05
        value, error = tr.estimand(outcome, "ATT", measure="surv_diff", horizon=12.0)
        assert math.isfinite(value) and error < 0.01
