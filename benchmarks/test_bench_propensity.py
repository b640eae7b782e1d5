"""Propensity-score fit speed vs statsmodels Logit and scikit-learn, same run.

Group "PS fit, n=1430 (arrays)": the same design matrix (intercept + 11 dummy-coded
columns) fitted by ``fit_logistic`` (numba Newton), statsmodels ``Logit`` (Newton) and
scikit-learn ``LogisticRegression(C=inf)`` (unpenalised) with its Newton-Cholesky
solver and with its default lbfgs.  Group "PS fit from the
DataFrame" adds the design matrix: ``fit_propensity`` vs ``pd.get_dummies`` + the
libraries.  Group "PS fit, n=100000 (arrays)" shows scaling (3 rounds each).  numba is
warmed up first.  Each result is checked against the MLE (sklearn only loosely: lbfgs
stops at its default tolerance).

Run: ``pytest benchmarks --benchmark-enable``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from bench_helpers import COVARIATES, flatiron_like
from sklearn.linear_model import LogisticRegression

from estimators import fit_logistic, fit_propensity

IMPLS = ("rwesim", "statsmodels", "sklearn-newton-cholesky", "sklearn-lbfgs")
SOLVER = {"sklearn-newton-cholesky": "newton-cholesky", "sklearn-lbfgs": "lbfgs"}
# lbfgs (scikit-learn's default) stops at tol=1e-4: only near the MLE
ATOL = {"rwesim": 1e-6, "statsmodels": 1e-6, "sklearn-newton-cholesky": 1e-6, "sklearn-lbfgs": 2e-2}


def _design(n: int) -> tuple[np.ndarray, np.ndarray]:
    df = flatiron_like(n)
    model = fit_propensity(df, "treated", COVARIATES)
    X = np.column_stack([np.ones(n), model.design.X])
    return X, df["treated"].to_numpy().astype(float)


def _array_fits(X: np.ndarray, y: np.ndarray) -> dict:
    def statsmodels_fit():
        return sm.Logit(y, X).fit(disp=0).params

    def sklearn_fit(solver: str):
        lr = LogisticRegression(C=np.inf, fit_intercept=False, solver=solver, max_iter=1000)
        return lr.fit(X, y).coef_[0]

    return {
        "rwesim": lambda: fit_logistic(X, y).coef,
        "statsmodels": statsmodels_fit,
        **{impl: lambda s=solver: sklearn_fit(s) for impl, solver in SOLVER.items()},
    }


@pytest.mark.parametrize("n", [1_430, 100_000])
@pytest.mark.parametrize("impl", IMPLS)
def test_ps_fit_arrays(benchmark, n, impl):
    benchmark.group = f"PS fit, n={n} (arrays)"
    X, y = _design(n)
    fit = _array_fits(X, y)[impl]
    fit()  # warm-up (numba load / compile)
    coef = benchmark(fit) if n < 10_000 else benchmark.pedantic(fit, rounds=3, iterations=1)
    np.testing.assert_allclose(coef, fit_logistic(X, y).coef, atol=ATOL[impl])


@pytest.mark.benchmark(group="PS fit from the DataFrame (design + fit), n=1430")
@pytest.mark.parametrize("impl", IMPLS)
def test_ps_fit_dataframe(benchmark, impl):
    df = flatiron_like(1_430)
    y = df["treated"].to_numpy()

    def dummies() -> np.ndarray:
        return pd.get_dummies(df[COVARIATES], drop_first=True, dtype=float).to_numpy()

    def sklearn_fit(solver: str) -> np.ndarray:
        X = dummies()
        lr = LogisticRegression(C=np.inf, solver=solver, max_iter=1000).fit(X, y)
        return lr.predict_proba(X)[:, 1]

    def statsmodels_fit() -> np.ndarray:
        X = np.column_stack([np.ones(len(df)), dummies()])
        return sm.Logit(y, X).fit(disp=0).predict()

    fits = {
        "rwesim": lambda: fit_propensity(df, "treated", COVARIATES).ps,
        "statsmodels": statsmodels_fit,
        **{impl: lambda s=solver: sklearn_fit(s) for impl, solver in SOLVER.items()},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits[impl]()
        ps = benchmark(fits[impl])
    ref = fit_propensity(df, "treated", COVARIATES).ps
    np.testing.assert_allclose(ps, ref, atol=1e-2 if impl == "sklearn-lbfgs" else 1e-6)


@pytest.mark.benchmark(group="PS fit, n=1430 (arrays): maximum likelihood vs Firth")
@pytest.mark.parametrize("method", ["ml", "firth"])
def test_ps_fit_method(benchmark, method):
    """Firth's step costs an extra pass for the hat values (O(n p^2)) per iteration."""
    X, y = _design(1_430)
    fit_logistic(X, y, method=method)  # warm-up (numba load / compile)
    fit = benchmark(fit_logistic, X, y, method=method)
    assert fit.converged
    # no separation here: Firth's estimate is the MLE shrunk by O(1/n)
    np.testing.assert_allclose(fit.coef, fit_logistic(X, y).coef, atol=0.1)
