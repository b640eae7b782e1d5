"""IPT weights: textbook formulas, stabilization, truncation, ESS, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from cohorts import COVARIATES, confounded_cohort
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from naive import iptw_weights_naive

from estimators import EstimatorInputError
from estimators.balance import balance_arrays
from estimators.propensity import fit_propensity
from estimators.weighting import ess_by_arm, iptw_weights, kish_ess, weight_summary


@st.composite
def scores_and_arms(draw, min_size: int = 4, max_size: int = 60):
    n = draw(st.integers(min_size, max_size))
    ps = draw(arrays(np.float64, n, elements=st.floats(0.01, 0.99)))
    a = draw(arrays(np.int64, n, elements=st.integers(0, 1)))
    a[0], a[1] = 0, 1  # both arms present
    ps[0], ps[1] = 0.5, 0.5  # ... overlapping: ATT needs a control in the treated's range
    return ps, a


@given(data=scores_and_arms(), estimand=st.sampled_from(["ATE", "ATT"]), stab=st.booleans())
def test_weights_match_textbook_formulas(data, estimand, stab):
    ps, a = data
    w = iptw_weights(ps, a, estimand=estimand, stabilized=stab)
    np.testing.assert_allclose(w, iptw_weights_naive(ps, a, estimand, stab), rtol=1e-12)


@given(data=scores_and_arms(), estimand=st.sampled_from(["ATE", "ATT"]))
def test_stabilized_weights_average_one_within_each_arm(data, estimand):
    ps, a = data
    w = iptw_weights(ps, a, estimand=estimand)
    for arm in (0, 1):
        assert np.mean(w[a == arm]) == pytest.approx(1.0, rel=1e-12)
    if estimand == "ATT":
        assert np.all(w[a == 1] == 1.0)


def test_stabilized_ate_weight_is_marginal_over_conditional_probability():
    ps = np.array([0.2, 0.5, 0.8, 0.4, 0.6])
    a = np.array([1, 1, 0, 0, 0])
    w = iptw_weights(ps, a)
    # P(A=1) estimated by n_1 / sum(1/e) = 2 / (5 + 2); P(A=0) by 3 / (5 + 5/3 + 5/2)
    np.testing.assert_allclose(w[:2], (2 / 7) / ps[:2], rtol=1e-14)
    np.testing.assert_allclose(w[2:], (18 / 55) / (1 - ps[2:]), rtol=1e-14)


@given(
    data=scores_and_arms(min_size=10),
    estimand=st.sampled_from(["ATE", "ATT"]),
    low=st.floats(0, 49),
    high=st.floats(51, 100),
)
def test_truncation_clips_at_weight_percentiles(data, estimand, low, high):
    ps, a = data
    raw = iptw_weights(ps, a, estimand=estimand)
    w = iptw_weights(ps, a, estimand=estimand, truncate=(low, high))
    est = np.ones(a.size, bool) if estimand == "ATE" else a == 0
    lo, hi = np.percentile(raw[est], [low, high])
    np.testing.assert_array_equal(w[est], np.clip(raw[est], lo, hi))
    np.testing.assert_array_equal(w[~est], raw[~est])  # ATT treated weights stay 1


def test_weighting_balances_covariates_in_a_large_sample():
    """Statistical check: correctly specified PS -> weighted SMDs within MC error of 0.

    SE of a Hajek weighted mean: sqrt(sum w^2 (x - mean_w)^2) / sum w (treating the
    weights as known, which is conservative: estimating the PS reduces the variance).
    z = 4 per column keeps the family-wise false-alarm rate below 1e-3 for 6 columns.
    """
    df = confounded_cohort(20_000, seed=11)
    model = fit_propensity(df, "treated", COVARIATES)
    a = model.treatment
    w = iptw_weights(model.ps, a)
    X = model.design.X
    bal = balance_arrays(X, a, w)
    var = 0.0
    for arm in (a == 1, a == 0):
        wa, xa = w[arm], X[arm]
        mean = wa @ xa / wa.sum()
        var = var + (wa**2 @ (xa - mean) ** 2) / wa.sum() ** 2
    sd = (bal["mean_treated"] - bal["mean_control"]) / bal["smd"]
    se_smd = np.sqrt(var) / sd
    assert np.all(np.abs(bal["smd_after"]) <= 4.0 * se_smd)
    assert abs(bal["smd"][0]) > 10 * se_smd[0]  # age was badly imbalanced: the check has power


def test_kish_ess_and_by_arm():
    assert kish_ess(np.ones(10)) == pytest.approx(10.0)
    assert kish_ess(np.array([1.0, 1.0, 2.0])) == pytest.approx(16 / 6)
    w = np.array([1.0, 3.0, 1.0, 1.0])
    a = np.array([1, 1, 0, 0])
    assert ess_by_arm(w, a) == pytest.approx({"treated": 16 / 10, "control": 2.0})


@given(w=arrays(np.float64, st.integers(1, 50), elements=st.floats(0.01, 100)))
def test_weight_summary_percentiles_match_numpy(w):
    s = weight_summary(w)
    expected = np.percentile(w, [1, 5, 25, 50, 75, 95, 99])
    got = [s[k] for k in ("p1", "p5", "p25", "p50", "p75", "p95", "p99")]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert (s["min"], s["max"]) == (w.min(), w.max())


def test_weight_summary():
    w = np.arange(1.0, 102.0)
    s = weight_summary(w)
    assert list(s) == ["min", "mean", "p1", "p5", "p25", "p50", "p75", "p95", "p99", "max"]
    assert (s["min"], s["p1"], s["p50"], s["p99"], s["max"], s["mean"]) == (
        1.0,
        2.0,
        51.0,
        100.0,
        101.0,
        51.0,
    )


# ------------------------------------------------------------------- bad input

PS = np.array([0.2, 0.5, 0.7, 0.4])
A = np.array([1, 0, 1, 0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ps": np.array([0.0, 0.5, 0.7, 0.4])}, r"outside \(0, 1\).*row 0: 0.0"),
        ({"ps": np.array([0.2, 1.0, 0.7, 0.4])}, "outside"),
        ({"ps": np.array([0.2, np.nan, 0.7, 0.4])}, "outside"),
        ({"ps": np.array([0.2, 0.5, 0.7])}, r"shape \(3,\); expected \(4,\)"),
        ({"treatment": np.array([1, 0, 2, 0])}, "only 0 and 1"),
        ({"treatment": np.array([1, 1, 1, 1])}, "single arm"),
        ({"estimand": "ATX"}, "estimand='ATX' is not allowed"),
        ({"truncate": (-1, 99)}, r"truncate=\(-1, 99\) is not allowed"),
        ({"truncate": (1, 101)}, "0 <= low < high <= 100"),
        ({"truncate": (99, 1)}, "0 <= low < high <= 100"),
        ({"truncate": (50, 50)}, "0 <= low < high <= 100"),
        ({"truncate": (1, np.nan)}, "0 <= low < high <= 100"),
        ({"truncate": 99}, "give two percentiles"),
        ({"truncate": (1, 2, 3)}, "give two percentiles"),
        ({"truncate": ("a", "b")}, "give two percentiles"),
    ],
)
def test_bad_input_raises(kwargs, match):
    args = {"ps": PS, "treatment": A} | kwargs
    with pytest.raises(EstimatorInputError, match=match):
        iptw_weights(**args)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 300))
def test_one_pass_ess_equals_the_arm_by_arm_kish_ess(seed, n):
    """sIPTW's memoised ESS (two bincounts) equals ess_by_arm / kish_ess to round-off."""
    from estimators.weighting import _ess_all, ess_by_arm, kish_ess

    rng = np.random.default_rng(seed)
    a = np.zeros(n, dtype=np.int8)
    a[rng.choice(n, size=rng.integers(1, n), replace=False)] = 1
    w = rng.lognormal(0.0, 1.0, n) * (rng.random(n) > 0.1)  # some trimmed (0) weights
    w[np.flatnonzero(a)[0]] = w[np.flatnonzero(a == 0)[0]] = 1.0  # each arm keeps one
    by_arm, total = _ess_all(w, a)
    want = ess_by_arm(w, a)
    for arm in ("treated", "control"):
        assert by_arm[arm] == pytest.approx(want[arm], rel=1e-12)
    assert total == pytest.approx(kish_ess(w), rel=1e-12)
