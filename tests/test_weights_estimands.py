"""Weights of every estimand (ATE, ATT, ATC, ATO, ATM), trimming, and the weighted Cox
fit against R survival::coxph / survey::svycoxph golden values.

Golden values: tests/reference/r/make_siptw_reference.R (glm PS with epsilon 1e-14, coxph
with eps 1e-12): our PS fit (Newton to 1e-10 relative steps) agrees with glm to ~1e-10,
so weights, coefficients and SEs agree far inside the 1e-6 asserted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cohorts import confounded_cohort
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from naive import iptw_weights_naive, ps_weights_naive

from estimators import EstimatorInputError, siptw
from estimators.exceptions import NoOverlapError
from estimators.validation import WEIGHT_ESTIMANDS
from estimators.weighting import iptw_weights, iptw_weights_from_logit

REFERENCE = json.loads(
    (Path(__file__).parent / "reference" / "r" / "siptw_reference.json").read_text()
)
CASES = {c["name"]: c for c in REFERENCE["cases"]}
TOL = 1e-6


@st.composite
def scores_and_arms(draw, min_size: int = 4, max_size: int = 60):
    n = draw(st.integers(min_size, max_size))
    ps = draw(arrays(np.float64, n, elements=st.floats(0.01, 0.99)))
    a = draw(arrays(np.int64, n, elements=st.integers(0, 1)))
    a[0], a[1] = 0, 1  # both arms present
    ps[0], ps[1] = 0.5, 0.5  # ... and overlapping (ATT / ATC need it)
    return ps, a


def test_every_weight_estimand_is_in_the_vocabulary():
    from estimators.estimands import ESTIMANDS

    assert set(WEIGHT_ESTIMANDS) == {"ATE", "ATT", "ATC", "ATO", "ATM"} <= set(ESTIMANDS)


@given(data=scores_and_arms(), estimand=st.sampled_from(WEIGHT_ESTIMANDS), stab=st.booleans())
def test_weights_match_textbook_formulas(data, estimand, stab):
    ps, a = data
    w = iptw_weights(ps, a, estimand=estimand, stabilized=stab)
    np.testing.assert_allclose(w, ps_weights_naive(ps, a, estimand, stab), rtol=1e-12)


@given(data=scores_and_arms(), estimand=st.sampled_from(["ATE", "ATT"]), stab=st.booleans())
def test_new_reference_agrees_with_the_v1_reference(data, estimand, stab):
    ps, a = data
    np.testing.assert_allclose(
        ps_weights_naive(ps, a, estimand, stab), iptw_weights_naive(ps, a, estimand, stab)
    )


@given(
    data=scores_and_arms(min_size=8),
    estimand=st.sampled_from(WEIGHT_ESTIMANDS),
    trim=st.sampled_from([None, 0.05, 0.2, (0.0, 0.7), (0.3, 1.0)]),
    seed=st.integers(0, 2**32 - 1),
)
def test_weights_invariant_to_row_order(data, estimand, trim, seed):
    ps, a = data
    perm = np.random.default_rng(seed).permutation(a.size)
    w = iptw_weights(ps, a, estimand=estimand, trim=trim)
    wp = iptw_weights(ps[perm], a[perm], estimand=estimand, trim=trim)
    np.testing.assert_allclose(wp, w[perm], rtol=1e-12)


@given(data=scores_and_arms())
def test_overlap_and_matching_weights_are_bounded(data):
    ps, a = data
    ato = iptw_weights(ps, a, "ATO", stabilized=False)
    atm = iptw_weights(ps, a, "ATM", stabilized=False)
    assert np.all((ato > 0) & (ato < 1))
    assert np.all((atm > 0) & (atm <= 1))
    # ATM weights never exceed the ATE ones, and are 1 for a patient in the arm e makes
    # the less likely (min(e, 1 - e) is that arm's probability)
    assert np.all(atm <= iptw_weights(ps, a, "ATE", stabilized=False))
    rarer = np.where(a == 1, ps <= 0.5, ps >= 0.5)
    assert np.all(atm[rarer] == 1.0) and np.all(atm[~rarer] < 1.0)
    for estimand in ("ATO", "ATM"):  # stabilized: one common constant, mean 1 overall
        w = iptw_weights(ps, a, estimand)
        raw = ato if estimand == "ATO" else atm
        np.testing.assert_allclose(w, raw * a.size / raw.sum(), rtol=1e-12)
        assert w.mean() == pytest.approx(1.0, rel=1e-12)


@given(data=scores_and_arms(), estimand=st.sampled_from(["ATC", "ATT"]))
def test_att_atc_stabilize_only_the_weighted_arm(data, estimand):
    ps, a = data
    w = iptw_weights(ps, a, estimand=estimand)
    fixed, weighted = (a == 1, a == 0) if estimand == "ATT" else (a == 0, a == 1)
    assert np.all(w[fixed] == 1.0)
    assert w[weighted].mean() == pytest.approx(1.0, rel=1e-12)


@given(
    data=scores_and_arms(min_size=10),
    estimand=st.sampled_from(WEIGHT_ESTIMANDS),
    trim=st.sampled_from([0.05, 0.1, (0.02, 0.9), (0.2, 0.6)]),
)
def test_trimming_drops_patients_outside_the_bounds_then_stabilizes(data, estimand, trim):
    ps, a = data
    low, high = (trim, 1 - trim) if isinstance(trim, float) else trim
    kept = (ps >= low) & (ps <= high)
    if not (kept & (a == 1)).any() or not (kept & (a == 0)).any():
        with pytest.raises(EstimatorInputError, match=r"trim=.* leaves no (treated|control)"):
            iptw_weights(ps, a, estimand=estimand, trim=trim)
        return
    try:
        w = iptw_weights(ps, a, estimand=estimand, trim=trim)
    except NoOverlapError:  # ATT / ATC on the kept patients
        return
    assert np.all(w[~kept] == 0.0) and np.all(w[kept] > 0.0)
    np.testing.assert_allclose(w, ps_weights_naive(ps, a, estimand, True, (low, high)), rtol=1e-12)


def test_weights_from_extreme_logits_stay_finite_where_defined():
    logit = np.array([-800.0, 800.0, -2.0, 3.0, 0.0, 0.5])
    a = np.array([0, 1, 1, 0, 1, 0])
    for estimand in ("ATO", "ATM", "ATT", "ATC"):
        if estimand in ("ATT", "ATC"):  # e / (1 - e) of the extreme control overflows
            continue
        w = iptw_weights_from_logit(logit, a, estimand, stabilized=False)
        assert np.all(np.isfinite(w)) and np.all(w >= 0)
    # ATE: 1 / (1 - e) with e = 1 - 1e-348 is not finite: a clear error, not inf
    with pytest.raises(EstimatorInputError, match="infinite"):
        iptw_weights_from_logit(np.array([-800.0, 800.0, 0.1, 0.2]), np.array([1, 0, 1, 0]))


def test_ato_raw_arm_totals_estimate_the_same_mass():
    """E[A (1 - e)] = E[(1 - A) e]: with the true PS the raw ATO (and ATM) arm totals
    differ by sampling error only.  SE of the difference of the two sums, sum_i d_i with
    d_i = A_i (1 - e_i) - (1 - A_i) e_i = A_i - e_i (mean 0, variance e (1 - e)), is
    sqrt(sum e (1 - e)); z <= 4."""
    df = confounded_cohort(20_000, seed=4)
    e, a = df["ps_true"].to_numpy(), df["treated"].to_numpy()
    for estimand in ("ATO", "ATM"):
        w = iptw_weights(e, a, estimand, stabilized=False)
        diff = w[a == 1].sum() - w[a == 0].sum()
        var = (
            np.sum(e * (1 - e))
            if estimand == "ATO"
            else np.sum(np.where(e < 0.5, e / (1 - e), (1 - e) / e) * np.minimum(e, 1 - e))
        )
        assert abs(diff) <= 4 * math.sqrt(var)


# ------------------------------------------------------------------- bad input

PS = np.array([0.2, 0.5, 0.7, 0.4, 0.95, 0.05])
A = np.array([1, 0, 1, 0, 1, 0])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"estimand": "ATX"}, EstimatorInputError, r"estimand='ATX' is not allowed; use one of"),
        ({"trim": 0.5}, EstimatorInputError, r"trim=0.5 is not allowed.*\(0, 0.5\)"),
        ({"trim": 0.0}, EstimatorInputError, r"trim=0.0 is not allowed"),
        ({"trim": -0.1}, EstimatorInputError, r"trim=-0.1 is not allowed"),
        ({"trim": True}, EstimatorInputError, r"trim=True is not allowed"),
        ({"trim": (0.6, 0.4)}, EstimatorInputError, r"0 <= low < high <= 1"),
        ({"trim": (0.1, 1.2)}, EstimatorInputError, r"0 <= low < high <= 1"),
        ({"trim": (0.1, 0.5, 0.9)}, EstimatorInputError, r"two propensity-score bounds"),
        ({"trim": "0.1"}, EstimatorInputError, r"trim='0.1' is not allowed"),
        # every treated patient has e >= 0.2 and every control e <= 0.5
        ({"trim": (0.55, 1.0)}, EstimatorInputError, r"trim=\(0.55, 1.0\) leaves no control"),
        ({"trim": (0.0, 0.15)}, EstimatorInputError, r"leaves no treated.*\[0.2, 0.95\]"),
    ],
)
def test_bad_weight_input_raises(kwargs, error, match):
    with pytest.raises(error, match=match):
        iptw_weights(PS, A, **({"estimand": "ATE"} | kwargs))


def test_att_without_controls_in_the_treated_range_is_a_clear_error():
    ps = np.array([0.6, 0.7, 0.9, 0.1, 0.3, 0.5])
    a = np.array([1, 1, 1, 0, 0, 0])
    with pytest.raises(NoOverlapError, match=r"estimand='ATT': no control .* \[0.6, 0.9\]"):
        iptw_weights(ps, a, "ATT")
    with pytest.raises(NoOverlapError, match=r"estimand='ATC': no treated .* \[0.1, 0.5\]"):
        iptw_weights(ps, a, "ATC")
    for estimand in ("ATE", "ATO", "ATM"):  # defined without overlap (extrapolation)
        assert np.all(np.isfinite(iptw_weights(ps, a, estimand)))


# ------------------------------------------------------------- R golden values


def _r_frame() -> pd.DataFrame:
    return pd.DataFrame(REFERENCE["data"])


def _kwargs(case: dict) -> dict:
    out = {"estimand": case["estimand"], "ties": case["ties"]}
    if case.get("trim"):  # R's NULL is written as {}
        out["trim"] = tuple(case["trim"])
    if case.get("truncate"):
        out["truncate"] = tuple(case["truncate"])
    return out


def test_reference_cases_cover_the_features():
    assert {c["estimand"] for c in CASES.values()} == set(WEIGHT_ESTIMANDS)
    assert {c["ties"] for c in CASES.values()} == {"efron", "breslow"}
    assert any(c.get("trim") for c in CASES.values())
    assert any(c.get("truncate") for c in CASES.values())
    t, d = np.array(REFERENCE["data"]["time"]), np.array(REFERENCE["data"]["status"])
    assert len(t[d == 1]) - len(np.unique(t[d == 1])) > 100  # heavily tied event times


def test_propensity_matches_glm():
    df = _r_frame()
    est = siptw(df, "time", "status", "trt", REFERENCE["covariates"])
    model = est.diagnostics["propensity"]
    np.testing.assert_allclose(model.fit.coef, REFERENCE["ps_coef"], rtol=1e-8)
    np.testing.assert_allclose(model.ps, REFERENCE["ps"], rtol=1e-9)


@pytest.mark.parametrize("name", sorted(CASES))
def test_siptw_matches_r_coxph_and_svycoxph(name):
    case = CASES[name]
    df = _r_frame()
    robust = siptw(df, "time", "status", "trt", REFERENCE["covariates"], **_kwargs(case))
    np.testing.assert_allclose(
        robust.diagnostics["analysis_weights"], case["weights"], rtol=1e-8, atol=1e-12
    )
    assert robust.n == case["n_kept"]
    assert robust.log_hr == pytest.approx(case["coef"], abs=TOL)
    assert robust.se == pytest.approx(case["robust_se"], rel=TOL)
    # svycoxph: the same estimate; design-based variance = n / (n - 1) x Lin-Wei
    n = case["n_kept"]
    assert robust.log_hr == pytest.approx(case["svy_coef"], abs=TOL)
    assert robust.se * math.sqrt(n / (n - 1)) == pytest.approx(case["svy_se"], rel=TOL)
    naive = siptw(
        df, "time", "status", "trt", REFERENCE["covariates"], variance="naive", **_kwargs(case)
    )
    assert naive.log_hr == robust.log_hr
    assert naive.se == pytest.approx(case["naive_se"], rel=TOL)
    assert (robust.diagnostics["variance"], naive.diagnostics["variance"]) == ("robust", "naive")


def test_trimmed_fit_is_the_fit_on_the_kept_patients():
    case = CASES["ATE_trim_0.1"]
    df = _r_frame()
    est = siptw(df, "time", "status", "trt", REFERENCE["covariates"], **_kwargs(case))
    w = est.diagnostics["analysis_weights"]
    assert est.diagnostics["trimmed"] == len(df) - case["n_kept"] == int((w == 0).sum())
    kept = df[w > 0]
    assert est.events == kept["status"].sum()
