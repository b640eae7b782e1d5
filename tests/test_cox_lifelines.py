"""Cox engine against lifelines CoxPHFitter on random data WITHOUT tied times.

lifelines stops when its Newton decrement falls below ``precision`` (a step of
~sqrt(precision / information)); at its default 1e-7 that leaves errors ~1e-4, so it
is fitted with precision 1e-18, leaving its error (~1e-12) far below the asserted 1e-6
(coefficients, absolute) and 1e-5 (SEs, relative).  Without
ties Breslow and Efron coincide and lifelines' score residuals are exact, so model,
robust and cluster-robust variances must all agree.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import CoxPHFitter

from estimators import CoxPH

COEF_ATOL = 1e-6
SE_RTOL = 1e-5
FIT_OPTIONS = {"precision": 1e-18, "r_precision": 1e-15, "max_steps": 100}


def untied_frame(seed: int, n: int, p: int, n_strata: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = np.c_[rng.integers(0, 2, n), rng.normal(0, 1, (n, p - 1))]
    t_event = rng.exponential(12.0 / np.exp(X @ np.linspace(-0.6, 0.4, p)))
    t_cens = rng.uniform(3.0, 40.0, n)
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(p)])
    df["months"] = np.minimum(t_event, t_cens)
    df["event"] = (t_event <= t_cens).astype(int)
    df["w"] = rng.lognormal(0.0, 0.6, n)
    df["cl"] = rng.integers(0, max(n // 3, 2), n)
    df["s"] = rng.integers(0, n_strata, n)
    return df


def lifelines_fit(df, covs, strata, **kw) -> CoxPHFitter:
    cols = [
        *covs,
        "months",
        "event",
        "w",
        *(["cl"] if "cluster_col" in kw else []),
        *(["s"] if strata else []),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines' advice to use robust with weights
        return CoxPHFitter().fit(
            df[cols],
            "months",
            "event",
            weights_col="w",
            strata=["s"] if strata else None,
            fit_options=FIT_OPTIONS,
            **kw,
        )


@settings(max_examples=20)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(40, 160),
    p=st.integers(1, 6),
    n_strata=st.integers(1, 3),
)
def test_matches_lifelines_without_ties(seed, n, p, n_strata):
    df = untied_frame(seed, n, p, n_strata)
    assert df["months"].nunique() == n and df["event"].sum() > 0
    covs = [f"x{j}" for j in range(p)]
    strata = "s" if n_strata > 1 else None
    ours = {
        kind: CoxPH().fit(
            df,
            "months",
            "event",
            covariates=covs,
            weights_col="w",
            strata=strata,
            robust=kind == "robust",
            cluster_col="cl" if kind == "cluster" else None,
        )
        for kind in ("model", "robust", "cluster")
    }
    theirs = {
        "model": lifelines_fit(df, covs, strata),
        "robust": lifelines_fit(df, covs, strata, robust=True),
        "cluster": lifelines_fit(df, covs, strata, cluster_col="cl"),
    }
    for kind, cph in ours.items():
        ref = theirs[kind]
        assert cph.converged_
        np.testing.assert_allclose(
            cph.params_.to_numpy(), ref.params_.to_numpy(), rtol=0, atol=COEF_ATOL
        )
        np.testing.assert_allclose(
            cph.standard_errors_.to_numpy(), ref.standard_errors_.to_numpy(), rtol=SE_RTOL
        )
        np.testing.assert_allclose(
            cph.model_standard_errors_.to_numpy(),
            theirs["model"].standard_errors_.to_numpy(),
            rtol=SE_RTOL,
        )
        np.testing.assert_allclose(cph.log_likelihood_, ref.log_likelihood_, rtol=1e-10)
