"""Cox engine: public API, input errors, non-convergence (oracle suites live in test_cox_*.py)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import estimators
from estimators import ConvergenceWarning, CoxPH, CoxResult, EstimatorInputError, fit_cox_arrays
from estimators.cox import _cox_derivatives


def cohort(n: int = 300, seed: int = 0, grid: float | None = None) -> pd.DataFrame:
    """Small weighted cohort: binary treatment, age, a categorical ECOG, pair ids, sites."""
    rng = np.random.default_rng(seed)
    treated = rng.integers(0, 2, n)
    age = rng.normal(65, 10, n)
    ecog = rng.choice(["0", "1", "2+"], n)
    lp = -0.5 * treated + 0.03 * (age - 65) + 0.4 * (ecog == "2+")
    t_event = rng.exponential(12.0 / np.exp(lp))
    t_cens = rng.uniform(6, 48, n)
    time = np.minimum(t_event, t_cens)
    if grid is not None:
        time = np.ceil(time / grid) * grid
    return pd.DataFrame(
        {
            "pfs_months": time,
            "pfs_event": (t_event <= t_cens).astype(int),
            "treated": treated,
            "age": age,
            "ecog": ecog,
            "w": rng.uniform(0.3, 3.0, n),
            "pair": rng.integers(0, n // 3, n),
            "site": rng.integers(0, 3, n),
        }
    )


def arrays(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        df["pfs_months"].to_numpy(),
        df["pfs_event"].to_numpy(),
        df[["treated", "age"]].to_numpy(dtype=float),
    )


# ---------------------------------------------------------------------------- API


def test_public_names_exported():
    assert {"CoxPH", "CoxResult", "fit_cox_arrays"} <= set(estimators.__all__)


def test_coxph_attributes_are_consistent():
    df = cohort()
    cph = CoxPH().fit(
        df,
        "pfs_months",
        "pfs_event",
        covariates=["treated", "age", "ecog"],
        weights_col="w",
        robust=True,
    )
    names = ["treated", "age", "ecog[1]", "ecog[2+]"]
    assert list(cph.params_.index) == names
    assert list(cph.variance_matrix_.columns) == names
    np.testing.assert_allclose(cph.standard_errors_**2, np.diag(cph.variance_matrix_))
    assert not np.allclose(cph.standard_errors_, cph.model_standard_errors_)
    s = cph.summary
    z = norm.ppf(0.975)
    np.testing.assert_allclose(s["z"], s["coef"] / s["se(coef)"])
    np.testing.assert_allclose(s["p"], 2 * norm.sf(np.abs(s["z"])))
    np.testing.assert_allclose(s["exp(coef)"], np.exp(cph.params_))
    np.testing.assert_allclose(s["coef lower 95%"], cph.params_ - z * cph.standard_errors_)
    np.testing.assert_allclose(cph.confidence_intervals_["95% upper-bound"], s["coef upper 95%"])
    np.testing.assert_allclose(s["exp(coef) upper 95%"], np.exp(s["coef upper 95%"]))
    assert cph.converged_ and cph.warnings_ == ()
    assert cph.n_ == len(df) and cph.events_ == df["pfs_event"].sum()
    assert isinstance(cph.result_, CoxResult)
    assert cph.gradient_norm_ < 1e-6
    assert 1 <= cph.n_iter_ <= 10
    assert "n=300" in repr(cph)


def test_result_is_frozen():
    df = cohort()
    res = fit_cox_arrays(*arrays(df))
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.loglik = 0.0  # type: ignore[misc]


def test_mle_maximises_the_partial_likelihood():
    df = cohort(grid=1.0)
    t, e, X = arrays(df)
    w = df["w"].to_numpy()
    res = fit_cox_arrays(t, e, X, weights=w)
    ll, score, info = _cox_derivatives(t, e, X, w, None, res.params, "efron")
    assert ll == pytest.approx(res.loglik, rel=1e-12)
    assert np.abs(score).max() < 1e-6
    rng = np.random.default_rng(1)
    for _ in range(5):
        other = res.params + rng.normal(0, 0.05, 2)
        assert _cox_derivatives(t, e, X, w, None, other, "efron")[0] < res.loglik
    np.testing.assert_allclose(np.linalg.inv(info), res.cov, rtol=1e-8)


def test_covariates_none_means_all_other_columns():
    df = cohort()[["pfs_months", "pfs_event", "treated", "age", "w", "pair", "site"]]
    a = CoxPH().fit(
        df, "pfs_months", "pfs_event", weights_col="w", cluster_col="pair", strata="site"
    )
    b = CoxPH().fit(
        df,
        "pfs_months",
        "pfs_event",
        covariates=["treated", "age"],
        weights_col="w",
        cluster_col="pair",
        strata="site",
    )
    assert list(a.params_.index) == ["treated", "age"]
    pd.testing.assert_series_equal(a.params_, b.params_)


def test_dataframe_and_array_paths_agree():
    df = cohort(grid=1.0)
    t, e, X = arrays(df)
    cph = CoxPH(ties="breslow").fit(
        df,
        "pfs_months",
        "pfs_event",
        ["treated", "age"],
        weights_col="w",
        cluster_col="pair",
        strata="site",
    )
    res = fit_cox_arrays(
        t,
        e,
        X,
        weights=df["w"].to_numpy(),
        strata=df["site"].to_numpy(),
        cluster=df["pair"].to_numpy(),
        ties="breslow",
    )
    np.testing.assert_allclose(cph.params_.to_numpy(), res.params, rtol=1e-12)
    np.testing.assert_allclose(cph.standard_errors_.to_numpy(), res.se, rtol=1e-12)


def test_cluster_implies_robust_and_singleton_clusters_equal_robust():
    df = cohort()
    t, e, X = arrays(df)
    robust = fit_cox_arrays(t, e, X, robust=True)
    singleton = fit_cox_arrays(t, e, X, cluster=np.arange(len(df)) * 7 - 3)
    np.testing.assert_allclose(singleton.cov, robust.cov, rtol=1e-12)
    pairs = fit_cox_arrays(t, e, X, cluster=df["pair"].to_numpy())
    assert not np.allclose(pairs.se, robust.se, rtol=1e-3)
    np.testing.assert_array_equal(pairs.model_se, robust.model_se)
    cph = CoxPH().fit(df, "pfs_months", "pfs_event", ["treated", "age"], cluster_col="pair")
    np.testing.assert_allclose(cph.standard_errors_.to_numpy(), pairs.se, rtol=1e-12)


def test_model_based_is_default():
    df = cohort()
    res = fit_cox_arrays(*arrays(df))
    np.testing.assert_array_equal(res.se, res.model_se)


def test_strata_from_several_columns_and_string_labels():
    df = cohort(grid=2.0)
    df["region"] = np.where(df["pair"] % 2 == 0, "north", "south")
    cph = CoxPH().fit(df, "pfs_months", "pfs_event", ["treated", "age"], strata=["site", "region"])
    codes = df["site"].to_numpy() * 2 + (df["region"] == "south").to_numpy()
    res = fit_cox_arrays(*arrays(df), strata=codes)
    np.testing.assert_allclose(cph.params_.to_numpy(), res.params, rtol=1e-12)


def test_init_is_used():
    df = cohort()
    res = fit_cox_arrays(*arrays(df))
    again = fit_cox_arrays(*arrays(df), init=res.params)
    assert again.n_iter == 1 and again.converged
    np.testing.assert_allclose(again.params, res.params, atol=1e-9)


# ---------------------------------------------------------------------- bad input


def _good() -> dict:
    rng = np.random.default_rng(5)
    n = 40
    return {
        "time": rng.uniform(1, 20, n),
        "event": rng.integers(0, 2, n),
        "X": np.c_[rng.integers(0, 2, n), rng.normal(size=n)],
        "weights": rng.uniform(0.5, 2, n),
        "strata": rng.integers(0, 2, n),
        "cluster": rng.integers(0, 10, n),
    }


def _set(a, i, v):
    a = np.array(a, dtype=float)
    a[i] = v
    return a


NONPOS_TIME = r"time has non-positive or non-finite times"
BAD_WEIGHT = r"weights has non-positive or non-finite weights"
BAD_ARRAYS = {  # case: (argument, how to spoil it, expected message)
    "time_nan": ("time", lambda a: _set(a, 3, np.nan), NONPOS_TIME),
    "time_inf": ("time", lambda a: _set(a, 0, np.inf), NONPOS_TIME),
    "time_zero": ("time", lambda a: _set(a, 1, 0.0), r"first at row 1: .*0\.0.*finite and > 0"),
    "time_negative": ("time", lambda a: _set(a, 2, -1.0), NONPOS_TIME),
    "time_2d": ("time", lambda a: a[:, None], r"time must be 1-dimensional"),
    "time_text": ("time", lambda a: ["x"] * len(a), r"time must be numeric"),
    "event_two": ("event", lambda a: _set(a, 0, 2), r"event must hold only 0 and 1.*2\.0"),
    "event_nan": ("event", lambda a: _set(a, 4, np.nan), r"event must hold only 0 and 1"),
    "event_none": ("event", np.zeros_like, r"event has no events"),
    "event_length": ("event", lambda a: a[:-1], r"event has 39 rows but time has 40"),
    "weights_zero": ("weights", lambda a: _set(a, 5, 0.0), BAD_WEIGHT + r".*> 0"),
    "weights_negative": ("weights", lambda a: _set(a, 5, -2.0), BAD_WEIGHT),
    "weights_nan": ("weights", lambda a: _set(a, 0, np.nan), BAD_WEIGHT),
    "weights_length": ("weights", lambda a: a[:10], r"weights has 10 rows but time has 40"),
    "X_nan": ("X", lambda a: _set(a, (3, 1), np.nan), r"covariate 'X\[:, 1\]' contains NaN"),
    "X_inf": ("X", lambda a: _set(a, (3, 0), -np.inf), r"covariate 'X\[:, 0\]' contains NaN"),
    "X_1d": ("X", lambda a: a[:, 0], r"X must be 2-dimensional"),
    "X_no_columns": ("X", lambda a: a[:, :0], r"X has 0 columns"),
    "X_length": ("X", lambda a: a[:-2], r"X has 38 rows but time has 40"),
    "X_constant": (
        "X",
        lambda a: np.c_[a, np.full(len(a), 3.0)],
        r"covariate 'X\[:, 2\]' is constant",
    ),
    "strata_float": ("strata", lambda a: a + 0.5, r"strata must be a 1-d array of integer codes"),
    "strata_length": ("strata", lambda a: a[:-1], r"strata has 39 rows"),
    "cluster_float": ("cluster", lambda a: a.astype(float), r"cluster must be a 1-d array of int"),
    "cluster_length": ("cluster", lambda a: a[1:], r"cluster has 39 rows"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_bad_arrays_raise(case):
    key, spoil, match = BAD_ARRAYS[case]
    kwargs = _good()
    kwargs[key] = spoil(kwargs[key])
    with pytest.raises(EstimatorInputError, match=match):
        fit_cox_arrays(**kwargs)


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"ties": "exact"}, r"ties='exact' is not allowed; use one of \('efron', 'breslow'\)"),
        ({"ties": None}, r"ties=None is not allowed"),
        ({"tol": 0.0}, r"tol=0\.0 is not allowed; it must be a number in \(0, 1\)"),
        ({"tol": -1e-9}, r"tol=-1e-09 is not allowed"),
        ({"tol": float("nan")}, r"tol=nan is not allowed"),
        ({"tol": "1e-9"}, r"tol='1e-9' is not allowed"),
        ({"max_iter": 0}, r"max_iter=0 is not allowed; it must be an integer >= 1"),
        ({"max_iter": 2.5}, r"max_iter=2\.5 is not allowed"),
        ({"max_iter": True}, r"max_iter=True is not allowed"),
        ({"init": np.zeros(3)}, r"init must be 2 finite values"),
        ({"init": np.array([0.0, np.nan])}, r"init must be 2 finite values"),
    ],
)
def test_bad_options_raise(option, match):
    with pytest.raises(EstimatorInputError, match=match):
        fit_cox_arrays(**_good(), **option)


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"ties": "exact"}, r"ties='exact'"),
        ({"tol": 2.0}, r"tol=2\.0"),
        ({"max_iter": -1}, r"max_iter=-1"),
        ({"alpha": 1.5}, r"alpha=1\.5"),
    ],
)
def test_bad_constructor_options_raise(option, match):
    with pytest.raises(EstimatorInputError, match=match):
        CoxPH(**option)


def _df_nan(col):
    def make():
        df = cohort(60)
        df[col] = df[col].astype(object if col in ("pair",) else float)
        df.loc[3, col] = np.nan
        return df

    return make


BAD_FRAMES = {
    "not_a_frame": (lambda: cohort(60).to_numpy(), {}, r"df must be a pandas DataFrame"),
    "missing_duration": (
        lambda: cohort(60),
        {"duration_col": "os_months"},
        r"duration_col='os_months' is not a column of df",
    ),
    "missing_covariate": (
        lambda: cohort(60),
        {"covariates": ["treated", "bmi"]},
        r"covariates='bmi' is not a column",
    ),
    "missing_weights": (lambda: cohort(60), {"weights_col": "iptw"}, r"weights_col='iptw' is not"),
    "missing_strata": (lambda: cohort(60), {"strata": ["site", "x"]}, r"strata='x' is not"),
    "empty_covariates": (lambda: cohort(60), {"covariates": []}, r"covariates is empty"),
    "string_covariates": (
        lambda: cohort(60),
        {"covariates": "age"},
        r"covariates='age' must be a list",
    ),
    "constant_named": (
        lambda: cohort(60).assign(age=70.0),
        {"covariates": ["treated", "age"]},
        r"covariate 'age' is constant",
    ),
    "nan_covariate": (
        _df_nan("age"),
        {"covariates": ["treated", "age"]},
        r"covariate 'age' contains NaN or inf",
    ),
    "nan_duration": (_df_nan("pfs_months"), {}, r"duration_col='pfs_months' contains NaN"),
    "text_event": (
        lambda: cohort(60).assign(pfs_event="yes"),
        {},
        r"event_col='pfs_event' must be numeric",
    ),
    "nan_strata": (_df_nan("site"), {"strata": "site"}, r"strata column 'site' has missing"),
    "nan_cluster": (_df_nan("pair"), {"cluster_col": "pair"}, r"cluster_col='pair' has missing"),
    "robust_text": (lambda: cohort(60), {"robust": "yes"}, r"robust='yes' is not allowed"),
    "single_level_category": (
        lambda: cohort(60).assign(ecog="1"),
        {"covariates": ["ecog"]},
        r"X has 0 columns",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_bad_frames_raise(case):
    make, kwargs, match = BAD_FRAMES[case]
    args = {
        "duration_col": "pfs_months",
        "event_col": "pfs_event",
        "covariates": ["treated", "age"],
        **kwargs,
    }
    with pytest.raises(EstimatorInputError, match=match):
        CoxPH().fit(make(), **args)


# ------------------------------------------------------------------ non-convergence


def _no_events_in_treated() -> pd.DataFrame:
    df = cohort(200, seed=3)
    df.loc[df["treated"] == 1, "pfs_event"] = 0
    return df


def test_monotone_likelihood_warns_not_raises():
    df = _no_events_in_treated()
    with pytest.warns(ConvergenceWarning, match=r"'treated'.*diverge"):
        cph = CoxPH().fit(
            df, "pfs_months", "pfs_event", ["treated", "age"], weights_col="w", robust=True
        )
    assert not cph.converged_
    assert len(cph.warnings_) == 1 and "monotone likelihood" in cph.warnings_[0]
    assert cph.params_["treated"] < -10  # running off to -inf
    assert abs(cph.params_["age"]) < 1  # the other coefficient is still finite


def test_max_iter_reached_warns():
    df = cohort()
    with pytest.warns(ConvergenceWarning, match=r"did not converge in max_iter=1"):
        res = fit_cox_arrays(*arrays(df), max_iter=1)
    assert not res.converged and res.n_iter == 1
    assert np.isfinite(res.params).all()


def test_collinear_covariates_warn_singular():
    df = cohort()
    t, e, X = arrays(df)
    with pytest.warns(ConvergenceWarning, match=r"information matrix is singular"):
        res = fit_cox_arrays(t, e, np.c_[X, 2 * X[:, 1] + 1])
    assert not res.converged and np.isnan(res.se).all()


def test_converged_fit_emits_no_warning():
    df = cohort()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fit_cox_arrays(*arrays(df), weights=df["w"].to_numpy(), robust=True)
    assert res.converged and res.warnings == ()


def test_input_layouts_and_dtypes_share_one_compiled_kernel():
    """Strided, integer, boolean or list inputs must not trigger a new numba specialisation."""
    from estimators import _cox_kernels as _kernels

    df = cohort(grid=1.0)
    t, e, X = arrays(df)
    base = fit_cox_arrays(
        t,
        e,
        X,
        weights=df["w"].to_numpy(),
        strata=df["site"].to_numpy(),
        cluster=df["pair"].to_numpy(),
    )
    wide = np.asfortranarray(np.c_[X, X])  # strided columns, Fortran order
    again = fit_cox_arrays(
        np.repeat(t, 2)[::2],
        (e == 1).tolist(),
        wide[:, :2],
        weights=np.repeat(df["w"].to_numpy(), 2)[::2],
        strata=df["site"].to_numpy(dtype=np.int32),
        cluster=df["pair"].to_numpy(dtype=np.uint16),
    )
    np.testing.assert_allclose(again.params, base.params, rtol=1e-12)
    np.testing.assert_allclose(again.se, base.se, rtol=1e-12)
    assert len(_kernels._cox_fit.signatures) == 1
