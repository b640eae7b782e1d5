"""Kaplan-Meier, medians and RMST vs lifelines, naive references and sampling checks.

lifelines truncates weighted numbers at risk to integers in its variance, so its
confidence bands serve as an oracle only without weights or with integer weights;
with fractional weights the oracle for the variance is the naive reference.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from cohorts import confounded_cohort
from hypothesis import given
from hypothesis import strategies as st
from lifelines import KaplanMeierFitter
from lifelines.utils import median_survival_times, restricted_mean_survival_time
from naive import kaplan_meier_naive, rmst_naive

from estimators import EstimatorInputError
from estimators.survival import kaplan_meier, kaplan_meier_by_arm, survival_summary


def survival_data(seed: int, n: int, ties: bool, weights: str):
    rng = np.random.default_rng(seed)
    t = rng.exponential(10.0, n) + 0.05
    if ties:
        t = np.ceil(t)
    e = rng.binomial(1, 0.7, n)
    e[np.argmax(t)] = 0  # last time censored: S stays > 0 (lifelines fills S = 0 bands with 1)
    w = {
        "none": None,
        "integer": rng.integers(1, 4, n).astype(float),
        "fractional": rng.uniform(0.2, 3.0, n),
    }[weights]
    return t, e, w


def lifelines_km(t, e, w) -> KaplanMeierFitter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-integer weights note
        return KaplanMeierFitter().fit(t, e, weights=w)


@given(
    seed=st.integers(0, 2**31),
    n=st.integers(5, 150),
    ties=st.booleans(),
    weights=st.sampled_from(["none", "integer", "fractional"]),
)
def test_matches_lifelines(seed, n, ties, weights):
    t, e, w = survival_data(seed, n, ties, weights)
    km = kaplan_meier(t, e, w)
    ref = lifelines_km(t, e, w)
    np.testing.assert_allclose(km.time, ref.timeline[1:], rtol=0)
    np.testing.assert_allclose(km.survival, ref.survival_function_.iloc[1:, 0], atol=1e-12)
    # lifelines sums logs: where S is exactly 0.5 its rounding decides "S <= 0.5"
    on_the_edge = np.abs(np.r_[km.survival, *km.confidence_band()] - 0.5) < 1e-9
    if not on_the_edge.any():
        assert km.median() == ref.median_survival_time_
    tau = float(np.median(t))
    assert km.rmst(tau)[0] == pytest.approx(restricted_mean_survival_time(ref, tau), abs=1e-9)
    if weights != "fractional":
        lower, upper = km.confidence_band()
        band = ref.confidence_interval_.iloc[1:].to_numpy()
        np.testing.assert_allclose(lower, band[:, 0], atol=1e-12)
        np.testing.assert_allclose(upper, band[:, 1], atol=1e-12)
        ref_ci = median_survival_times(ref.confidence_interval_).to_numpy()[0]
        if not on_the_edge.any():
            assert km.median_ci() == tuple(ref_ci)


@given(
    seed=st.integers(0, 2**31),
    n=st.integers(2, 40),
    ties=st.booleans(),
    weights=st.sampled_from(["none", "fractional"]),
)
def test_matches_naive_reference_including_weighted_variance(seed, n, ties, weights):
    t, e, w = survival_data(seed, n, ties, weights)
    km = kaplan_meier(t, e, w)
    times, surv, greenwood = kaplan_meier_naive(list(t), list(e), w)
    np.testing.assert_array_equal(km.time, times)
    np.testing.assert_allclose(km.survival, surv, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(km.var_log, greenwood, rtol=1e-10, atol=1e-15)
    tau = float(t.max()) * 0.7
    np.testing.assert_allclose(km.rmst(tau), rmst_naive(list(t), list(e), tau, w), rtol=1e-10)


@given(seed=st.integers(0, 2**31), n=st.integers(2, 40))
def test_integer_weights_equal_replicated_rows(seed, n):
    t, e, w = survival_data(seed, n, True, "integer")
    rep = np.repeat(np.arange(n), w.astype(int))
    a, b = kaplan_meier(t, e, w), kaplan_meier(t[rep], e[rep])
    for field in ("time", "survival", "at_risk", "events", "var_log"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-12)
    assert a.median_ci() == b.median_ci()
    assert a.rmst(float(t.max())) == pytest.approx(b.rmst(float(t.max())), rel=1e-12)


def test_standard_errors_match_the_sampling_spread():
    """Sampling check: Greenwood SE of S(10) and the RMST(15) SE vs the empirical SD.

    2,000 samples of n = 200: the empirical SD has relative MC error
    1 / sqrt(2 * 1999) = 1.6%; the delta-method SEs carry O(1/n) bias (~1%).  The mean
    SE must be within 4 x 1.6% + 1% = 7.4% of the empirical SD.
    """
    rng = np.random.default_rng(12)
    s10, se10, rmst, se_rmst = [], [], [], []
    for _ in range(2000):
        t_ev = rng.exponential(10.0, 200)
        t_c = rng.uniform(5.0, 40.0, 200)
        km = kaplan_meier(np.minimum(t_ev, t_c), (t_ev <= t_c).astype(int))
        i = np.searchsorted(km.time, 10.0, side="right") - 1
        s10.append(km.survival[i])
        se10.append(km.std_err[i])
        r, se = km.rmst(15.0)
        rmst.append(r)
        se_rmst.append(se)
    assert np.mean(se10) / np.std(s10, ddof=1) == pytest.approx(1.0, abs=0.074)
    assert np.mean(se_rmst) / np.std(rmst, ddof=1) == pytest.approx(1.0, abs=0.074)
    # and the estimates are unbiased for the truth exp(-1) and 10 (1 - exp(-1.5))
    assert np.mean(s10) == pytest.approx(np.exp(-1.0), abs=4 * np.std(s10) / np.sqrt(2000))
    assert np.mean(rmst) == pytest.approx(
        10 * (1 - np.exp(-1.5)), abs=4 * np.std(rmst) / np.sqrt(2000)
    )


def test_step_function_median_and_hand_values():
    t = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
    e = np.array([1, 1, 0, 1, 0])
    km = kaplan_meier(t, e)
    # S: 1 -> 4/5 at t=1 -> 4/5 * 3/4 = 3/5 at t=2 -> 3/5 * 1/2 = 3/10 at t=3
    np.testing.assert_allclose(km.survival, [0.8, 0.6, 0.3, 0.3])
    np.testing.assert_allclose(km.survival_at([0.5, 1.0, 2.5, 3.0, 10.0]), [1, 0.8, 0.6, 0.3, 0.3])
    assert km.median() == 3.0
    assert km.rmst(4.0)[0] == pytest.approx(1 + 0.8 + 0.6 + 0.3)
    never = kaplan_meier(np.array([1.0, 2.0, 3.0]), np.array([1, 0, 0]))
    assert never.median() == np.inf and never.median_ci()[1] == np.inf


def test_by_arm_and_summary_table():
    df = confounded_cohort(400, seed=2)
    curves = kaplan_meier_by_arm(df, "pfs_months", "pfs_event", "treated")
    for arm in (0, 1):
        ref = kaplan_meier(df.pfs_months[df.treated == arm], df.pfs_event[df.treated == arm])
        np.testing.assert_array_equal(curves[arm].survival, ref.survival)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(df))
    table = survival_summary(
        df.assign(w=w), "pfs_months", "pfs_event", "treated", weights="w", tau=24.0, at=[12, 24]
    )
    assert list(table.index) == [0, 1]
    assert list(table.columns) == [
        "n",
        "events",
        "median",
        "median_ci_low",
        "median_ci_high",
        "surv_12",
        "surv_24",
        "rmst",
        "rmst_se",
    ]
    km1 = kaplan_meier(
        df.pfs_months[df.treated == 1], df.pfs_event[df.treated == 1], w[df.treated == 1]
    )
    assert table.loc[1, "n"] == pytest.approx(w[df.treated == 1].sum())
    assert table.loc[1, "surv_12"] == km1.survival_at(12.0)
    assert (table.loc[1, "rmst"], table.loc[1, "rmst_se"]) == km1.rmst(24.0)
    assert table.loc[1, "median"] > table.loc[0, "median"]  # treatment helps in this cohort
    same = survival_summary(df, "pfs_months", "pfs_event", "treated", weights=w, tau=24.0)
    assert same["rmst"].tolist() == table["rmst"].tolist()


T = np.array([1.0, 2.0, 3.0, 4.0])
E = np.array([1, 0, 1, 0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"time": np.array([1.0, -2.0, 3.0, 4.0])}, "non-positive"),
        ({"time": np.array([1.0, 0.0, 3.0, 4.0])}, "non-positive"),
        ({"time": np.array([1.0, np.nan, 3.0, 4.0])}, "non-finite"),
        ({"event": np.array([1, 2, 0, 0])}, "event must hold only 0 and 1"),
        ({"event": np.array([1, 0, 0])}, "same length"),
        ({"weights": np.array([1.0, 0.0, 1.0, 1.0])}, "weights must be finite and > 0"),
        ({"weights": np.array([1.0, -1.0, 1.0, 1.0])}, "non-positive"),
        ({"weights": np.array([1.0, np.inf, 1.0, 1.0])}, "non-finite"),
        ({"weights": np.ones(3)}, r"weights has shape \(3,\)"),
        ({"alpha": 0.0}, "alpha=0.0 is not allowed"),
        ({"alpha": 1.5}, "alpha=1.5 is not allowed"),
    ],
)
def test_bad_input_raises(kwargs, match):
    args = {"time": T, "event": E} | kwargs
    with pytest.raises(EstimatorInputError, match=match):
        kaplan_meier(**args)


@pytest.mark.parametrize("tau", [0.0, -1.0, 4.5, np.nan])
def test_bad_tau_raises(tau):
    with pytest.raises(EstimatorInputError, match=f"tau={tau!r} is not allowed"):
        kaplan_meier(T, E).rmst(tau)


def test_bad_frame_input_raises():
    df = pd.DataFrame({"t": T, "e": E, "a": [1, 1, 1, 1]})
    with pytest.raises(EstimatorInputError, match="single arm"):
        kaplan_meier_by_arm(df, "t", "e", "a")
    with pytest.raises(EstimatorInputError, match="weights='w' is not a column"):
        kaplan_meier_by_arm(df.assign(a=[0, 1, 0, 1]), "t", "e", "a", weights="w")
    with pytest.raises(EstimatorInputError, match=r"weights has shape \(2,\)"):
        kaplan_meier_by_arm(df.assign(a=[0, 1, 0, 1]), "t", "e", "a", weights=np.ones(2))
    with pytest.raises(EstimatorInputError, match="at=-1 is not allowed"):
        survival_summary(df.assign(a=[0, 1, 0, 1]), "t", "e", "a", at=[-1])
