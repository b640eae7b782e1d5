"""Known-biased PS controls (ps_cox, ps_spline_cox, ps_strata_cox) and the spline basis.

Oracles: R (glm + survival::coxph + splines::ns) golden values written by
tests/reference/make_ps_controls_reference.R; the natural-spline space against the
closed-form truncated-power basis (Hastie, Tibshirani & Friedman, ESL eq. 5.4-5.5);
PS quintiles against pandas' qcut.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from estimators import (
    EstimatorInputError,
    NoCovariatesWarning,
    SharedInputs,
    get_estimator,
    natural_spline_basis,
    ps_cox,
    ps_spline_cox,
    ps_strata,
    ps_strata_cox,
    siptw,
)

REFERENCE = json.loads(
    (Path(__file__).parent / "reference" / "ps_controls_reference.json").read_text()
)
COVS = ["x1", "x2", "x3"]
# Newton-Raphson stops at a step below 1e-9: coefficients and SEs agree to ~1e-9
RTOL = 1e-7


def _case(i: int) -> pd.DataFrame:
    return pd.DataFrame(REFERENCE["cases"][i]["data"])


def _args(d: pd.DataFrame):
    return d, "time", "event", "trt", COVS


@pytest.mark.parametrize("i", range(len(REFERENCE["cases"])))
@pytest.mark.parametrize(
    ("key", "func", "options"),
    [
        ("ps_cox", ps_cox, {}),
        ("ps_cox_robust", ps_cox, {"robust": True}),
        ("ps_spline_cox_df4", ps_spline_cox, {}),
        ("ps_spline_cox_df3", ps_spline_cox, {"spline_df": 3}),
        ("ps_strata_cox", ps_strata_cox, {}),
    ],
)
def test_controls_match_r(i, key, func, options):
    case = REFERENCE["cases"][i]
    r = func(*_args(_case(i)), **options)
    assert r.estimate == pytest.approx(case[key]["coef"], rel=RTOL, abs=1e-9)
    assert r.se == pytest.approx(case[key]["se"], rel=RTOL)
    assert r.estimand == "ATE"
    assert r.method == func.__name__
    assert r.converged


@pytest.mark.parametrize("i", range(len(REFERENCE["cases"])))
def test_propensity_matches_glm(i):
    r = ps_cox(*_args(_case(i)))
    logit = r.diagnostics["propensity"].logit
    np.testing.assert_allclose(logit, REFERENCE["cases"][i]["logit"], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("k", range(len(REFERENCE["ns"])))
def test_spline_basis_matches_r_ns(k):
    ref = REFERENCE["ns"][k]
    basis = natural_spline_basis(np.array(ref["x"]), ref["df"])
    expected = np.array(ref["basis"], dtype=float).reshape(len(ref["x"]), ref["df"])
    np.testing.assert_allclose(basis, expected, rtol=0, atol=1e-12)


def _truncated_power_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """ESL (5.4)-(5.5): 1, x, d_k(x) - d_{K-1}(x), d_k = ((x-xi_k)_+^3 - (x-xi_K)_+^3) /
    (xi_K - xi_k): a basis of the natural cubic splines with these knots."""
    K = knots.size

    def d(k):
        return (np.clip(x - knots[k], 0, None) ** 3 - np.clip(x - knots[-1], 0, None) ** 3) / (
            knots[-1] - knots[k]
        )

    cols = [np.ones_like(x), x] + [d(k) - d(K - 2) for k in range(K - 2)]
    return np.column_stack(cols)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(30, 200),
    df=st.integers(1, 7),
    scale=st.floats(0.1, 10.0),
)
def test_spline_space_is_the_natural_cubic_splines(seed, n, df, scale):
    """[1, ns(x, df)] spans exactly the closed-form natural cubic spline space."""
    x = np.random.default_rng(seed).normal(0.0, scale, n)
    basis = np.column_stack([np.ones(n), natural_spline_basis(x, df)])
    probs = np.linspace(0, 1, df + 1)
    knots = np.quantile(x, probs)  # boundary knots at the range, interior at quantiles
    closed = _truncated_power_basis(x, knots)
    assert closed.shape[1] == basis.shape[1] == df + 1
    for a, b in ((basis, closed), (closed, basis)):  # each in the span of the other
        coef, *_ = np.linalg.lstsq(b, a, rcond=None)
        resid = a - b @ coef
        assert np.abs(resid).max() <= 1e-8 * max(1.0, np.abs(a).max())
    assert np.linalg.matrix_rank(basis) == df + 1


def test_spline_with_one_df_is_linear():
    x = np.random.default_rng(1).normal(size=50)
    b = natural_spline_basis(x, 1)[:, 0]
    slope = (b[x.argmax()] - b[x.argmin()]) / (x.max() - x.min())
    np.testing.assert_allclose(b, b[x.argmin()] + slope * (x - x.min()), atol=1e-13)
    assert b[x.argmin()] == 0.0 and slope != 0.0


@pytest.mark.parametrize("n_strata", [2, 4, 5, 10])
def test_ps_strata_are_quantile_groups(n_strata):
    logit = np.random.default_rng(n_strata).normal(size=333)
    expected = pd.qcut(logit, n_strata, labels=False)
    np.testing.assert_array_equal(ps_strata(logit, n_strata), expected)


def test_ps_strata_merge_tied_cut_points():
    logit = np.repeat([-1.0, 0.5], [70, 30])  # one binary covariate: two PS values
    s = ps_strata(logit, 5)
    assert set(s.tolist()) == {0, 1}
    np.testing.assert_array_equal(s, (logit > 0).astype(int))


@pytest.fixture(scope="module")
def data():
    return _case(0)


@pytest.mark.parametrize("func", [ps_cox, ps_spline_cox, ps_strata_cox])
def test_shared_inputs_same_result_one_ps_fit(data, func):
    direct = func(*_args(data))
    shared = SharedInputs(data, "trt", COVS)
    via = func(None, "time", "event", "trt", COVS, shared=shared)
    s = siptw(None, "time", "event", "trt", COVS, shared=shared, balance=False)
    assert via.estimate == direct.estimate and via.se == direct.se
    # one PS fit for both estimators
    assert via.diagnostics["propensity"] is s.diagnostics["propensity"]
    assert sum(1 for k in shared._cache if k[0] == "propensity") == 1


def test_precomputed_propensity_is_used(data):
    model = ps_cox(*_args(data)).diagnostics["propensity"]
    r = ps_strata_cox(*_args(data), propensity=model)
    assert r.diagnostics["propensity"] is model


def test_strata_diagnostics(data):
    r = ps_strata_cox(*_args(data), n_strata=4)
    assert r.diagnostics["n_strata"] == 4
    assert np.bincount(r.diagnostics["strata"]).tolist() == [100, 100, 100, 100]


def test_spline_knots_in_diagnostics(data):
    r = ps_spline_cox(*_args(data), spline_df=4)
    logit = r.diagnostics["propensity"].logit
    np.testing.assert_array_equal(r.diagnostics["knots"], np.quantile(logit, [0.25, 0.5, 0.75]))


@pytest.mark.parametrize("name", ["ps_cox", "ps_spline_cox", "ps_strata_cox"])
def test_registered_against_the_ate(name):
    est = get_estimator(name)
    assert est.estimand == "ATE"
    assert not est.frame
    assert "shared" in est.accepts


@pytest.mark.parametrize(
    ("func", "options", "match"),
    [
        (ps_spline_cox, {"spline_df": 0}, r"spline_df=0 is not allowed; use an integer >= 1"),
        (ps_spline_cox, {"spline_df": 2.0}, r"spline_df=2.0 is not allowed"),
        (ps_spline_cox, {"spline_df": True}, r"spline_df=True is not allowed"),
        (ps_strata_cox, {"n_strata": 1}, r"n_strata=1 is not allowed; use an integer >= 2"),
        (ps_cox, {"robust": "yes"}, r"robust='yes' is not allowed; use True or False"),
        (ps_cox, {"ties": "exact"}, r"ties"),
        (ps_strata_cox, {"ps_method": "lasso"}, r"lasso"),
    ],
)
def test_bad_options(data, func, options, match):
    with pytest.raises(EstimatorInputError, match=match):
        func(*_args(data), **options)


@pytest.mark.parametrize("func", [ps_cox, ps_spline_cox, ps_strata_cox])
def test_no_covariates_is_a_clear_error(data, func):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoCovariatesWarning)
        with pytest.raises(EstimatorInputError, match=r"propensity score is constant"):
            func(data, "time", "event", "trt", [])


def test_spline_on_tied_scores_says_use_a_smaller_df(data):
    with pytest.raises(EstimatorInputError, match=r"df=4 is not allowed for these data.*smaller"):
        ps_spline_cox(data, "time", "event", "trt", ["x2"])
    r = ps_spline_cox(data, "time", "event", "trt", ["x2"], spline_df=1)  # 2 values: linear
    assert np.isfinite(r.estimate)


@pytest.mark.parametrize("x", [np.array([]), np.array([0.0, np.nan]), np.zeros((2, 2))])
def test_spline_basis_bad_x(x):
    with pytest.raises(EstimatorInputError, match=r"x must be a non-empty 1-d array"):
        natural_spline_basis(x, 2)


def test_study_fast_path_equals_the_dataframe_path_bit_for_bit():
    """In a study the controls get column arrays and the shared PS fit: the same numbers
    as calling them on the DataFrame of ``simulate``."""
    import dataclasses

    import simulator
    from simulator.study.replicate import replicate_seed, run_chunk
    from simulator.study.runner import plan_chunks
    from simulator.study.spec import OUTCOMES, TREATMENT, Study

    names = ("siptw", "ps_cox", "ps_spline_cox", "ps_strata_cox")
    study = Study(estimators=names, sample_sizes=(551,), reps=2, chunk_reps=2)
    chunk = dataclasses.replace(plan_chunks(study, study.conditions())[0], reps=(0, 2))
    rows = run_chunk(chunk).set_index(["rep", "outcome", "estimator"])
    for rep in range(2):
        df = simulator.simulate(chunk.scenario, chunk.n, replicate_seed(study.seed, 0, rep))
        for outcome in chunk.outcomes:
            for name in names[1:]:
                r = get_estimator(name)(df, *OUTCOMES[outcome], TREATMENT, chunk.covariates[name])
                got = rows.loc[(rep, outcome, name)]
                assert (got["estimate"], got["se"], got["error"]) == (r.estimate, r.se, "")
