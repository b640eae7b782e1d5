"""The four effect estimators: lifelines oracles, propensity reuse, flags, bad input.

lifelines is fitted with ``precision=1e-18`` so its own error (~1e-12) is far below the
asserted 1e-6 (log-HR, absolute) and 1e-5 (SE, relative).  The cohorts have
continuous times (no ties), where lifelines' Efron fit and robust variance are exact.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from cohorts import COVARIATES, confounded_cohort
from lifelines import CoxPHFitter
from scipy.stats import norm

import estimators
from estimators import (
    ConvergenceWarning,
    EffectEstimate,
    EstimatorInputError,
    NoOverlapError,
    SeparationError,
    SeparationWarning,
    design_matrix,
    fit_propensity,
    iptw_weights,
)
from estimators.effects import adjusted_cox, naive_cox, psm, siptw

ARGS = ("pfs_months", "pfs_event", "treated")
COEF_ATOL = 1e-6
SE_RTOL = 1e-5
FIT_OPTIONS = {"precision": 1e-18, "r_precision": 1e-15, "max_steps": 100}


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return confounded_cohort(700, seed=21)


def lifelines(frame: pd.DataFrame, **kwargs) -> CoxPHFitter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines' notes on non-integer weights
        return CoxPHFitter().fit(
            frame, "pfs_months", "pfs_event", fit_options=FIT_OPTIONS, **kwargs
        )


def assert_matches(est: EffectEstimate, cph: CoxPHFitter, column: str = "treated") -> None:
    assert est.log_hr == pytest.approx(cph.params_[column], abs=COEF_ATOL)
    assert est.se == pytest.approx(cph.standard_errors_[column], rel=SE_RTOL)


@pytest.mark.parametrize(("estimand", "truncate"), [("ATE", None), ("ATE", (1, 99)), ("ATT", None)])
def test_siptw_equals_lifelines_weighted_robust_cox(cohort, estimand, truncate):
    est = siptw(cohort, *ARGS, COVARIATES, estimand=estimand, truncate=truncate)
    model = fit_propensity(cohort, "treated", COVARIATES)
    w = iptw_weights(model.ps, model.treatment, estimand, truncate=truncate)
    np.testing.assert_allclose(est.diagnostics["analysis_weights"], w, rtol=1e-12)
    frame = cohort[["pfs_months", "pfs_event", "treated"]].assign(w=w)
    assert_matches(est, lifelines(frame, weights_col="w", robust=True))
    assert (est.method, est.estimand, est.n, est.events) == (
        "siptw",
        estimand,
        len(cohort),
        cohort["pfs_event"].sum(),
    )
    assert est.ess == pytest.approx(w.sum() ** 2 / (w @ w))
    assert est.converged and est.warnings == ()


def test_psm_equals_lifelines_cluster_robust_cox_on_the_matched_set(cohort):
    est = psm(cohort, *ARGS, COVARIATES, random_state=3)
    m = est.diagnostics["matching"]
    rows, pair = m.rows_and_pairs()
    frame = cohort.iloc[rows][["pfs_months", "pfs_event", "treated"]].assign(pair=pair)
    assert_matches(est, lifelines(frame, cluster_col="pair", robust=True))
    assert (est.method, est.estimand, est.n) == ("psm", "ATT", 2 * m.n_pairs)
    assert est.events == frame["pfs_event"].sum()
    d = est.diagnostics
    assert d["pairs"] == m.n_pairs and d["treated_unmatched"] == m.n_unmatched
    assert d["treated_unmatched_share"] == pytest.approx(m.n_unmatched / cohort.treated.sum())
    assert est.ess == 2 * m.n_pairs


def test_naive_cox_equals_lifelines(cohort):
    est = naive_cox(cohort, *ARGS)
    assert_matches(est, lifelines(cohort[["pfs_months", "pfs_event", "treated"]]))
    assert (est.estimand, est.ess, est.n) == ("crude", len(cohort), len(cohort))


def test_adjusted_cox_equals_lifelines_with_dummy_coding(cohort):
    est = adjusted_cox(cohort, *ARGS, COVARIATES)
    d = design_matrix(cohort, COVARIATES)
    frame = pd.DataFrame(d.X, columns=list(d.names)).assign(
        treated=cohort["treated"].to_numpy(),
        pfs_months=cohort["pfs_months"].to_numpy(),
        pfs_event=cohort["pfs_event"].to_numpy(),
    )
    assert_matches(est, lifelines(frame))
    assert est.estimand == "conditional"
    assert adjusted_cox(cohort, *ARGS, COVARIATES, design=d) == est


def test_wald_interval_and_p_value(cohort):
    est = naive_cox(cohort, *ARGS)
    z = norm.ppf(0.975)
    assert (est.ci_low, est.ci_high) == pytest.approx(
        (est.log_hr - z * est.se, est.log_hr + z * est.se), rel=1e-14
    )
    assert est.p_value == pytest.approx(2 * norm.sf(abs(est.log_hr) / est.se), rel=1e-12)
    assert est.hr == pytest.approx(math.exp(est.log_hr))


def test_precomputed_propensity_gives_identical_estimates(cohort):
    model = fit_propensity(cohort, "treated", COVARIATES)
    assert siptw(cohort, *ARGS, COVARIATES, propensity=model) == siptw(cohort, *ARGS, COVARIATES)
    assert psm(cohort, *ARGS, COVARIATES, propensity=model) == psm(cohort, *ARGS, COVARIATES)
    # the same model serves a second outcome
    other = cohort.assign(pfs_months=cohort["pfs_months"] * 1.5)
    assert siptw(other, *ARGS, COVARIATES, propensity=model).events == cohort.pfs_event.sum()


def test_propensity_from_other_data_is_rejected(cohort):
    model = fit_propensity(cohort, "treated", COVARIATES)
    with pytest.raises(EstimatorInputError, match="fitted on covariates"):
        siptw(cohort, *ARGS, ["age"], propensity=model)
    with pytest.raises(EstimatorInputError, match="different treatment vector"):
        psm(cohort.iloc[:300], *ARGS, COVARIATES, propensity=model)
    with pytest.raises(EstimatorInputError, match="must be a PropensityModel"):
        siptw(cohort, *ARGS, COVARIATES, propensity=model.ps)


def test_balance_diagnostics(cohort):
    est = siptw(cohort, *ARGS, COVARIATES)
    bal = est.diagnostics["balance"]
    assert list(bal.index) == list(design_matrix(cohort, COVARIATES).names)
    assert abs(bal.loc["age", "smd"]) > 0.2  # confounded by age ...
    assert abs(bal.loc["age", "smd_after"]) < 0.1  # ... and balanced by weighting
    assert set(est.diagnostics["ess_by_arm"]) == {"treated", "control"}
    assert est.diagnostics["weights"]["min"] > 0
    m = psm(cohort, *ARGS, COVARIATES).diagnostics
    assert abs(m["balance"].loc["age", "smd_after"]) < 0.1


def test_quasi_separation_flags_the_estimate(cohort):
    df = cohort.assign(level=np.where(cohort.index % 10 == 0, "rare", "common"))
    df.loc[df.level == "rare", "treated"] = 1
    with pytest.warns(SeparationWarning):
        est = siptw(df, *ARGS, ["age", "level"])
    assert not est.converged
    assert any("quasi-complete" in w for w in est.warnings)


# ------------------------------------------------------------------- bad input


def _set(col, value):
    def change(df):
        df = df.copy()
        df[col] = df[col].astype(float)
        df.loc[3, col] = value
        return df

    return change


BAD_FRAMES = [
    (_set("pfs_months", np.nan), "time='pfs_months' contains NaN or inf"),
    (_set("pfs_months", np.inf), "contains NaN or inf"),
    (_set("pfs_months", -1.0), "non-positive"),
    (_set("pfs_months", 0.0), "non-positive"),
    (_set("pfs_event", 2.0), "event must hold only 0 and 1"),
    (_set("pfs_event", np.nan), "event='pfs_event' contains NaN"),
    (_set("treated", 0.5), "treatment must hold only 0 and 1"),
    (lambda d: d.assign(treated=0), "single arm"),
    (lambda d: d.assign(pfs_event=0), "no events"),
    (_set("age", np.nan), "'age' contains NaN"),
    (lambda d: d.drop(columns="pfs_event"), "event='pfs_event' is not a column"),
]


@pytest.mark.parametrize("estimator", [siptw, psm, naive_cox, adjusted_cox])
@pytest.mark.parametrize(("change", "match"), BAD_FRAMES)
def test_bad_data_raise(cohort, estimator, change, match):
    if estimator is naive_cox and "age" in match:
        pytest.skip("naive Cox ignores covariates")
    with pytest.raises(EstimatorInputError, match=match):
        estimator(change(cohort), *ARGS, COVARIATES)


@pytest.mark.parametrize(
    ("estimator", "kwargs", "match"),
    [
        (siptw, {"estimand": "ATX"}, "estimand='ATX' is not allowed"),
        (siptw, {"truncate": (1, 101)}, "truncate"),
        (siptw, {"truncate": (99, 1)}, "0 <= low < high <= 100"),
        (siptw, {"ties": "exact"}, "ties='exact' is not allowed"),
        (psm, {"caliper": 0}, "caliper=0 is not allowed"),
        (psm, {"caliper": -0.1}, "caliper=-0.1 is not allowed"),
        (psm, {"order": "best"}, "order='best' is not allowed"),
        (psm, {"random_state": -3}, "random_state=-3 is not allowed"),
        (naive_cox, {"ties": "exact"}, "ties='exact' is not allowed"),
        (adjusted_cox, {"ties": "exact"}, "ties='exact' is not allowed"),
        (adjusted_cox, {"design": "x"}, "design must be a Design"),
    ],
)
def test_bad_options_raise(cohort, estimator, kwargs, match):
    with pytest.raises(EstimatorInputError, match=match):
        estimator(cohort, *ARGS, COVARIATES, **kwargs)


@pytest.mark.parametrize("estimator", [siptw, psm])
def test_perfect_separation_raises(cohort, estimator):
    df = cohort.assign(marker=cohort["treated"] * 2.0 + 1.0)
    with pytest.raises(SeparationError, match="marker"):
        estimator(df, *ARGS, ["age", "marker"])


def test_zero_matched_pairs_raise(cohort):
    with pytest.raises(NoOverlapError, match="zero matched pairs"):
        psm(cohort, *ARGS, COVARIATES, caliper=1e-12)


def test_constant_covariate_raises_in_adjusted_cox(cohort):
    with pytest.raises(EstimatorInputError, match=r"\['flat'\] are constant"):
        adjusted_cox(cohort.assign(flat=2.0), *ARGS, ["age", "flat"])


def test_diverging_nuisance_coefficient_does_not_flag_the_treatment_estimate():
    """A rare covariate level without events (monotone likelihood in *its* coefficient) is
    R's "coefficient may be infinite" warning; the treatment estimate stays valid."""
    rng = np.random.default_rng(5)
    n = 400
    a = rng.integers(0, 2, n)
    time = rng.exponential(1 / np.exp(-0.5 * a))
    event = (rng.random(n) < 0.8).astype(int)
    rare = np.zeros(n)
    rare[:12] = 1
    event[:12] = 0  # no events in the rare level: its log-HR runs off to -inf
    df = pd.DataFrame({"t": time, "e": event, "a": a, "rare": rare})
    with pytest.warns(ConvergenceWarning):
        res = estimators.adjusted_cox(df, "t", "e", "a", ["rare"])
    assert res.converged
    assert any("'rare'" in w for w in res.warnings)
    ref = estimators.naive_cox(df.iloc[12:], "t", "e", "a")
    # without the event-free rows the treatment estimate is (almost) the same
    assert res.log_hr == pytest.approx(ref.log_hr, abs=0.02)


def test_diverging_treatment_coefficient_is_not_converged():
    rng = np.random.default_rng(6)
    n = 300
    a = rng.integers(0, 2, n)
    df = pd.DataFrame(
        {"t": rng.exponential(size=n), "e": (a == 1).astype(int), "a": a, "x": rng.normal(size=n)}
    )
    with pytest.warns(ConvergenceWarning):
        res = estimators.adjusted_cox(df, "t", "e", "a", ["x"])
    assert not res.converged
