"""Propensity score: logistic MLE vs statsmodels, separation handling, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from cohorts import COVARIATES, confounded_cohort
from hypothesis import assume, given
from hypothesis import strategies as st

from estimators import (
    ConvergenceWarning,
    EstimatorInputError,
    SeparationError,
    SeparationWarning,
)
from estimators.propensity import PS_EPS, fit_logistic, fit_propensity

# Both fits stop once Newton steps are below 1e-10 (ours: relative to max|coef|;
# statsmodels: tol=1e-10); Newton converges quadratically, so each is within ~1e-12
# of the MLE.  1e-8 relative leaves a 100x margin for the conditioning of X'WX.
RTOL = 1e-8


def logistic_data(n: int, p: int, seed: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p))])
    X[:, 1] = rng.binomial(1, 0.4, n)  # one binary covariate
    beta = rng.normal(scale=scale, size=p + 1)
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-X @ beta))).astype(float)
    return X, y


def statsmodels_fit(X: np.ndarray, y: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any separation / convergence warning: skip case
        return sm.Logit(y, X).fit(disp=0, tol=1e-10, maxiter=100)


@given(
    n=st.integers(60, 400),
    p=st.integers(1, 4),
    seed=st.integers(0, 2**31),
    scale=st.floats(0.1, 1.5),
)
def test_matches_statsmodels_logit(n, p, seed, scale):
    X, y = logistic_data(n, p, seed, scale)
    assume(0 < y.sum() < n)
    try:
        ref = statsmodels_fit(X, y)
    except Exception:  # statsmodels could not fit (separation, singular): not a comparison
        assume(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_logistic(X, y)
    assume(fit.converged)
    np.testing.assert_allclose(fit.coef, ref.params, rtol=RTOL, atol=1e-10)
    np.testing.assert_allclose(fit.se, ref.bse, rtol=RTOL)
    np.testing.assert_allclose(fit.cov, ref.cov_params(), rtol=1e-7, atol=1e-12)
    assert fit.loglik == pytest.approx(ref.llf, rel=1e-10)
    np.testing.assert_allclose(fit.prob, ref.predict(), rtol=1e-8, atol=1e-12)


def test_propensity_model_on_cohort_matches_statsmodels_with_categorical_levels():
    df = confounded_cohort(800, seed=3)
    model = fit_propensity(df, "treated", COVARIATES)
    assert model.names == ("age", "ecog[1]", "ecog[2+]", "ecog[unknown]", "visceral", "n_met_sites")
    assert list(model.coef.index) == ["Intercept", *model.names]
    X = np.column_stack([np.ones(len(df)), model.design.X])
    ref = statsmodels_fit(X, df["treated"].to_numpy(float))
    np.testing.assert_allclose(model.coef.to_numpy(), ref.params, rtol=RTOL)
    np.testing.assert_allclose(model.se.to_numpy(), ref.bse, rtol=RTOL)
    np.testing.assert_allclose(model.logit, np.log(model.ps / (1 - model.ps)), rtol=1e-10)
    assert model.converged and model.warnings == ()
    assert 3 <= model.n_iter <= 10
    np.testing.assert_array_equal(model.treatment, df["treated"].to_numpy())
    assert model.covariates == tuple(COVARIATES)


@given(seed=st.integers(0, 2**31), perm_seed=st.integers(0, 2**31))
def test_ps_invariant_to_row_order(seed, perm_seed):
    df = confounded_cohort(300, seed=seed)
    perm = np.random.default_rng(perm_seed).permutation(len(df))
    a = fit_propensity(df, "treated", COVARIATES)
    b = fit_propensity(df.iloc[perm].reset_index(drop=True), "treated", COVARIATES)
    np.testing.assert_allclose(b.ps, a.ps[perm], rtol=1e-9)
    np.testing.assert_allclose(b.coef, a.coef, rtol=1e-8, atol=1e-12)


# ------------------------------------------------------------------ separation


def separated_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame({"a": (x > 0.1).astype(int), "x": x, "z": z})


def test_complete_separation_by_one_covariate_raises_and_names_it():
    with pytest.raises(SeparationError, match=r"complete separation.*\['x'\]"):
        fit_propensity(separated_frame(), "a", ["x", "z"])


def test_complete_separation_by_a_combination_names_both():
    df = separated_frame()
    df["a"] = (df["x"] + df["z"] > 0).astype(int)
    with pytest.raises(SeparationError, match=r"\['x', 'z'\]"):
        fit_propensity(df, "a", ["x", "z"])


def test_separation_error_is_a_value_error():
    with pytest.raises(ValueError):
        fit_propensity(separated_frame(), "a", ["x"])


def test_quasi_complete_separation_warns_and_flags_not_converged():
    rng = np.random.default_rng(1)
    n = 300
    level = np.where(rng.random(n) < 0.1, "rare", "common")
    a = rng.binomial(1, 0.5, n)
    a[level == "rare"] = 1  # every patient in the rare level is treated
    df = pd.DataFrame({"a": a, "level": level, "z": rng.normal(size=n)})
    with pytest.warns(SeparationWarning, match=r"quasi-complete.*\['level\[rare\]'\]"):
        model = fit_propensity(df, "a", ["level", "z"])
    assert not model.converged
    assert "quasi-complete" in model.warnings[0]
    assert np.all((model.ps > 0) & (model.ps < 1))


def test_extreme_scores_without_separation_warn():
    rng = np.random.default_rng(2)
    n = 500
    x = rng.normal(scale=10.0, size=n)
    df = pd.DataFrame({"a": rng.binomial(1, 1 / (1 + np.exp(-2 * x))), "x": x})
    with pytest.warns(SeparationWarning, match="within 1e-08 of 0 or 1"):
        model = fit_propensity(df, "a", ["x"])
    assert not model.converged
    assert np.min(np.minimum(model.ps, 1 - model.ps)) < PS_EPS


def test_iteration_limit_gives_convergence_warning():
    X, y = logistic_data(200, 2, seed=4, scale=1.0)
    with pytest.warns(ConvergenceWarning, match="did not converge in 1"):
        fit = fit_logistic(X, y, max_iter=1)
    assert not fit.converged and fit.n_iter == 1


# ------------------------------------------------------------------- bad input


@pytest.fixture
def frame() -> pd.DataFrame:
    return confounded_cohort(100, seed=5)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.drop(columns="treated"), "treatment='treated' is not a column"),
        (lambda d: d.assign(treated=d.treated.astype(float).where(d.index != 3)), "NaN or inf"),
        (lambda d: d.assign(treated=d.treated * 2), "only 0 and 1"),
        (lambda d: d.assign(treated=1), "single arm"),
        (lambda d: d.assign(treated=d.treated.astype(str)), "must be numeric"),
        (lambda d: d.assign(age=d.age.where(d.index != 7)), "'age' contains NaN"),
        (lambda d: d.assign(age=np.inf), "'age' contains NaN or inf"),
        (lambda d: d.assign(ecog=d.ecog.where(d.index != 7)), "'ecog' has missing values"),
        (lambda d: d.iloc[:0], "no rows"),
    ],
)
def test_bad_frames_raise(frame, change, match):
    with pytest.raises(EstimatorInputError, match=match):
        fit_propensity(change(frame), "treated", COVARIATES)


def test_missing_covariate_raises(frame):
    with pytest.raises(EstimatorInputError, match="covariates='bmi' is not a column"):
        fit_propensity(frame, "treated", ["age", "bmi"])


def test_covariates_as_string_raises(frame):
    with pytest.raises(EstimatorInputError, match="must be a list"):
        fit_propensity(frame, "treated", "age")


def test_collinear_covariates_raise(frame):
    frame["age2"] = 2.0 * frame["age"]
    with pytest.raises(EstimatorInputError, match=r"collinear.*'age2'"):
        fit_propensity(frame, "treated", ["age", "age2"])


@pytest.mark.parametrize(
    ("X", "y", "kwargs", "match"),
    [
        (np.ones((5, 1)), np.array([0, 1, 0]), {}, "one row per element"),
        (np.full((4, 1), np.nan), np.array([0, 1, 0, 1]), {}, "NaN or inf"),
        (np.ones((4, 1)), np.array([0, 1, 2, 1]), {}, "y must hold only 0 and 1"),
        (np.ones((4, 1)), np.array([0, 1, 0, 1]), {"tol": 0.0}, "tol=0.0"),
        (np.ones((4, 1)), np.array([0, 1, 0, 1]), {"max_iter": 0}, "max_iter=0"),
    ],
)
def test_fit_logistic_bad_input(X, y, kwargs, match):
    with pytest.raises(EstimatorInputError, match=match):
        fit_logistic(X, y, **kwargs)
