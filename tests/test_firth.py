"""Firth-penalised propensity model and pooling of rare levels.

Oracles: the closed form of the 2 x 2 table (with one binary covariate Firth's estimate
is the log odds ratio with 1/2 added to every cell, Firth 1993 / Heinze & Schemper
2002: the penalty log|I|/2 of a saturated model is that of the Haldane-corrected table),
a dense BFGS reference (tests/naive.py) and a naive re-coding of the rare levels.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from naive import firth_logistic_naive, pool_rare_naive

from estimators import EstimatorInputError, SeparationWarning, fit_propensity, psm, siptw
from estimators._logistic_kernels import _firth_evaluate
from estimators.design_matrix import design_matrix
from estimators.propensity import fit_logistic, pool_rare_levels


@given(a=st.integers(0, 30), b=st.integers(0, 30), c=st.integers(0, 30), d=st.integers(0, 30))
def test_two_by_two_is_haldane_corrected_log_odds_ratio(a, b, c, d):
    # rows x = 1: a with y = 1, b with y = 0; x = 0: c with y = 1, d with y = 0
    assume(a + b > 0 and c + d > 0 and a + c > 0 and b + d > 0)
    x = np.r_[np.ones(a + b), np.zeros(c + d)]
    y = np.r_[np.ones(a), np.zeros(b), np.ones(c), np.zeros(d)]
    fit = fit_logistic(np.c_[np.ones(x.size), x], y, method="firth")
    assert fit.converged
    log_or = np.log((a + 0.5) * (d + 0.5) / ((b + 0.5) * (c + 0.5)))
    intercept = np.log((c + 0.5) / (d + 0.5))
    # the fit stops at a step < 1e-10 * max(1, max|coef|), or < 1e-5 * max(1, max|coef|)
    # once no step increases the penalised likelihood beyond its rounding: within that
    # of the optimum (the ML log odds ratio differs from the corrected one by > 1e-2)
    bound = 1e-5 * max(1.0, np.abs(fit.coef).max())
    np.testing.assert_allclose(fit.coef, [intercept, log_or], rtol=0, atol=bound)


@given(n=st.integers(30, 200), p=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_matches_dense_bfgs_reference(n, p, seed):
    rng = np.random.default_rng(seed)
    X = np.c_[np.ones(n), rng.normal(size=(n, p))]
    X[:, 1] = rng.binomial(1, 0.15, n)  # a rare indicator: often quasi-separated
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-X @ rng.normal(size=p + 1))), n).astype(float)
    assume(0 < y.sum() < n and 0 < X[:, 1].sum() < n)  # both arms; the indicator varies
    fit = fit_logistic(X, y, method="firth")
    assert fit.converged
    ref = firth_logistic_naive(X, y)
    # BFGS stops at gradient ~1e-8 on a strictly concave objective with curvature ~n/10:
    # its coefficients are within ~1e-6 of the optimum
    np.testing.assert_allclose(fit.coef, ref, atol=1e-5)


@pytest.mark.parametrize("seed", [1266, 1340, 1344, 1428, 1441, 1517, 1551, 22289])
def test_slow_modified_score_cases_converge(seed):
    # n = 30, p = 3 near separation: the modified-score (Fisher) steps converge only
    # linearly here and stopped at 50 iterations up to 1e-2 from the optimum; the exact-
    # Hessian Newton steps after FISHER_STEPS reach it
    n, p = 30, 3
    rng = np.random.default_rng(seed)
    X = np.c_[np.ones(n), rng.normal(size=(n, p))]
    X[:, 1] = rng.binomial(1, 0.15, n)
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-X @ rng.normal(size=p + 1))), n).astype(float)
    fit = fit_logistic(X, y, method="firth")
    assert fit.converged
    assert fit.n_iter < 50
    np.testing.assert_allclose(fit.coef, firth_logistic_naive(X, y), atol=1e-5)


def _slow_case(seed):
    n, p = 30, 3
    rng = np.random.default_rng(seed)
    X = np.c_[np.ones(n), rng.normal(size=(n, p))]
    X[:, 1] = rng.binomial(1, 0.15, n)
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-X @ rng.normal(size=p + 1))), n).astype(float)
    return X, y


def test_saddle_point_is_left_for_the_maximum():
    # seed 312: the modified score vanished at a saddle point (penalised loglik -7.58,
    # an ascent direction of curvature +0.26); the fit now leaves it for the maximum
    X, y = _slow_case(312)
    fit = fit_logistic(X, y, method="firth")
    assert fit.converged
    np.testing.assert_allclose(fit.coef, firth_logistic_naive(X, y), atol=1e-5)


def test_bimodal_penalised_likelihood_reaches_a_maximum():
    # seed 357: two patients carry the rare indicator (one event); the penalised
    # likelihood has two maxima of equal height in its coefficient. The fit stopped at a
    # saddle between them; now it ends at a maximum: as high as the reference's and with
    # a negative definite Hessian
    X, y = _slow_case(357)
    fit = fit_logistic(X, y, method="firth")
    assert fit.converged
    ref = firth_logistic_naive(X, y)
    pll = _firth_evaluate(X, y, fit.coef)[0]
    np.testing.assert_allclose(pll, _firth_evaluate(X, y, ref)[0], rtol=0, atol=1e-9)
    h = 1e-4  # central differences of the penalised loglik
    f = lambda b: _firth_evaluate(X, y, b)[0]  # noqa: E731
    k = X.shape[1]
    hess = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * h, np.eye(k)[j] * h
            hess[i, j] = (
                f(fit.coef + ei + ej)
                - f(fit.coef + ei - ej)
                - f(fit.coef - ei + ej)
                + f(fit.coef - ei - ej)
            ) / (4 * h * h)
    assert np.linalg.eigvalsh(hess).max() < 0


def test_quasi_separation_gives_finite_converged_scores():
    rng = np.random.default_rng(3)
    n = 300
    x = rng.normal(size=n)
    rare = np.zeros(n)
    rare[:6] = 1.0
    y = rng.binomial(1, 0.5, n).astype(float)
    y[:6] = 1.0  # every patient with the rare level is treated: quasi-complete separation
    X = np.c_[np.ones(n), x, rare]
    with pytest.warns(SeparationWarning):
        ml = fit_logistic(X, y)
    assert not ml.converged
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        firth = fit_logistic(X, y, method="firth")
    assert firth.converged and np.isfinite(firth.coef).all()
    assert np.min(np.minimum(firth.prob, 1 - firth.prob)) > 1e-4
    np.testing.assert_allclose(firth.coef, firth_logistic_naive(X, y), atol=1e-5)


def _separated_cohort(seed=0, n=400):
    rng = np.random.default_rng(seed)
    race = rng.choice(["White", "Black", "Asian", "Other"], n, p=[0.7, 0.15, 0.13, 0.02])
    treated = rng.binomial(1, 0.5, n)
    treated[race == "Other"] = 1
    t = rng.exponential(12.0, n)
    return pd.DataFrame(
        {
            "time": t,
            "event": rng.binomial(1, 0.7, n),
            "treated": treated,
            "age": rng.normal(65, 10, n),
            "race": pd.Categorical(race, categories=["White", "Black", "Asian", "Other"]),
        }
    )


def test_siptw_and_psm_with_firth_converge_under_separation():
    df = _separated_cohort()
    args = (df, "time", "event", "treated", ["age", "race"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = siptw(*args)
    assert not ml.converged
    for fit in (siptw(*args, ps_method="firth"), psm(*args, ps_method="firth")):
        assert fit.converged and np.isfinite(fit.log_hr) and fit.se > 0
        assert fit.diagnostics["propensity"].method == "firth"


def test_pool_rare_matches_naive_recoding():
    rng = np.random.default_rng(1)
    n = 600
    levels = ["White", "Black", "Asian", "Native", "Other"]
    race = rng.choice(levels, n, p=[0.6, 0.2, 0.1, 0.05, 0.05])
    df = pd.DataFrame(
        {"age": rng.normal(65, 10, n), "race": pd.Categorical(race, categories=levels)}
    )
    a = rng.binomial(1, 0.5, n)
    survived = set()
    for m in (1, 10, 14, 20, 40, 200):
        pooled = pool_rare_levels(design_matrix(df, ["age", "race"]), a, m)
        codes = df["race"].cat.codes.to_numpy().copy()
        ref = pool_rare_naive(codes, a, m, other=len(levels))
        names = [*levels, "other"]
        expect = pd.DataFrame({"age": df["age"], "race": [names[c] for c in ref]})
        expect["race"] = pd.Categorical(expect["race"], categories=names)
        want = design_matrix(expect, ["age", "race"])
        assert pooled.names == want.names
        np.testing.assert_array_equal(pooled.X, want.X)
        survived |= {nm for nm in pooled.names if nm == "race[other]"}
    assert survived == {"race[other]"}  # some m pools into "other", others into the reference


def test_pool_rare_removes_the_separation():
    df = _separated_cohort()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = fit_propensity(df, "treated", ["age", "race"], pool_rare=10)
    assert model.converged
    assert "race[Other]" not in model.names


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "lasso"}, "ps_method='lasso' is not allowed"),
        ({"pool_rare": 0}, "pool_rare=0 is not allowed"),
        ({"pool_rare": 2.5}, "pool_rare=2.5 is not allowed"),
    ],
)
def test_bad_options(kwargs, match):
    df = _separated_cohort()
    with pytest.raises(EstimatorInputError, match=match):
        fit_propensity(df, "treated", ["age"], **kwargs)


def test_precomputed_model_of_another_method_is_refused():
    df = _separated_cohort()
    model = fit_propensity(df, "treated", ["age"])
    with pytest.raises(EstimatorInputError, match="method='ml', not ps_method='firth'"):
        siptw(df, "time", "event", "treated", ["age"], propensity=model, ps_method="firth")
