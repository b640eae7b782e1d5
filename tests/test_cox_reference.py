"""Cox engine against R survival::coxph on data with tied times, weights, clusters, strata.

Expected values come from tests/reference/make_cox_reference.R (R fitted with
eps = 1e-12, so its coefficients are accurate to far better than the 1e-6 asserted).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from estimators import CoxPH, fit_cox_arrays
from estimators.cox import _cox_score_residuals

REFERENCE = json.loads((Path(__file__).parent / "reference" / "cox_reference.json").read_text())
CASES = {c["name"]: c for c in REFERENCE["cases"]}
TOL = 1e-6


def _frame(case: dict) -> pd.DataFrame:
    return pd.DataFrame(case["data"])


def _expected(case: dict, key: str) -> np.ndarray:
    p = len(case["covariates"])
    return np.asarray(case[key], dtype=float).reshape((p, p) if key.endswith("var") else (p,))


def test_reference_cases_cover_the_features():
    cases = REFERENCE["cases"]
    assert len(cases) >= 8
    assert {c["ties"] for c in cases} == {"efron", "breslow"}
    assert all(c["n_ties"] > 50 for c in cases)  # many tied event times in every data set
    assert any(c["cluster"] and c["weights"] and c["strata"] for c in cases)
    assert any(len(c["strata"]) == 2 for c in cases)


@pytest.mark.parametrize("name", sorted(CASES))
def test_coxph_matches_r(name):
    case = CASES[name]
    df = _frame(case)
    cph = CoxPH(ties=case["ties"]).fit(
        df,
        "time",
        "status",
        covariates=case["covariates"],
        weights_col="w" if case["weights"] else None,
        cluster_col="cl" if case["cluster"] else None,
        strata=case["strata"] or None,
        robust=True,
    )
    assert cph.converged_
    np.testing.assert_allclose(cph.params_.to_numpy(), _expected(case, "coef"), rtol=0, atol=TOL)
    np.testing.assert_allclose(
        cph.model_standard_errors_.to_numpy(), _expected(case, "model_se"), rtol=TOL
    )
    np.testing.assert_allclose(
        cph.standard_errors_.to_numpy(), _expected(case, "robust_se"), rtol=TOL
    )
    np.testing.assert_allclose(
        cph.variance_matrix_.to_numpy(),
        _expected(case, "robust_var"),
        rtol=TOL,
        atol=TOL * np.abs(_expected(case, "robust_var")).max(),
    )
    assert cph.log_likelihood_ == pytest.approx(case["loglik"], rel=1e-10)


@pytest.mark.parametrize("name", sorted(CASES))
def test_arrays_model_based_matches_r(name):
    case = CASES[name]
    df = _frame(case)
    strata = df.groupby(case["strata"]).ngroup().to_numpy() if case["strata"] else None
    res = fit_cox_arrays(
        df["time"],
        df["status"],
        df[case["covariates"]].to_numpy(float),
        weights=df["w"].to_numpy() if case["weights"] else None,
        strata=strata,
        ties=case["ties"],
    )
    naive_var = _expected(case, "naive_var")
    np.testing.assert_allclose(res.cov, naive_var, rtol=TOL, atol=TOL * np.abs(naive_var).max())
    np.testing.assert_allclose(res.se, _expected(case, "model_se"), rtol=TOL)


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if "score_resid" in c))
def test_score_residuals_match_r(name):
    """R residuals.coxph(type='score') at R's coefficients: checks Efron's tie adjustment."""
    case = CASES[name]
    df = _frame(case)
    strata = df.groupby(case["strata"]).ngroup().to_numpy() if case["strata"] else None
    X = df[case["covariates"]].to_numpy(float)
    r = _cox_score_residuals(
        df["time"],
        df["status"],
        X,
        df["w"].to_numpy() if case["weights"] else None,
        strata,
        _expected(case, "coef"),
        case["ties"],
    )
    expected = np.asarray(case["score_resid"], dtype=float).reshape(X.shape)
    np.testing.assert_allclose(r, expected, rtol=0, atol=TOL * np.abs(expected).max())
