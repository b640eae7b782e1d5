"""Standardized mean differences and balance tables vs plain-Python sums."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from naive import smd_naive

from estimators import EstimatorInputError
from estimators.balance import balance_arrays, balance_table, smd


@st.composite
def design_and_weights(draw):
    n = draw(st.integers(6, 40))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n)
    a[:2] = [0, 1]
    a[2:4] = [0, 1]  # at least two patients per arm (a variance needs two)
    X = np.column_stack([rng.normal(60, 10, n), rng.binomial(1, 0.4, n), rng.poisson(2, n)])
    w = rng.uniform(0.2, 5.0, n)
    return X, a, w


@given(data=design_and_weights(), weighted=st.booleans())
def test_smd_matches_naive(data, weighted):
    X, a, w = data
    w = w if weighted else None
    expected = [smd_naive(list(X[:, j]), list(a), w) for j in range(X.shape[1])]
    np.testing.assert_allclose(smd(X, a, w), expected, rtol=1e-10, atol=1e-12)


@given(data=design_and_weights(), c1=st.floats(0.1, 10), c0=st.floats(0.1, 10))
def test_weighted_smd_invariant_to_rescaling_each_arm(data, c1, c0):
    X, a, w = data
    scaled = w * np.where(a == 1, c1, c0)
    np.testing.assert_allclose(smd(X, a, scaled), smd(X, a, w), rtol=1e-9, atol=1e-12)


def test_zero_one_weights_give_the_subsample_means_over_the_full_sample_sd():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    a = np.r_[np.ones(25, int), np.zeros(25, int)]
    keep = rng.random(50) < 0.6
    keep[[0, 1, 30, 31]] = True
    bal = balance_arrays(X, a, keep.astype(float))
    m1, m0 = X[keep & (a == 1)].mean(0), X[keep & (a == 0)].mean(0)
    sd = np.sqrt((X[a == 1].var(0, ddof=1) + X[a == 0].var(0, ddof=1)) / 2)
    np.testing.assert_allclose(bal["smd_after"], (m1 - m0) / sd, rtol=1e-12)
    v1, v0 = X[keep & (a == 1)].var(0, ddof=1), X[keep & (a == 0)].var(0, ddof=1)
    np.testing.assert_allclose(bal["var_ratio_after"], v1 / v0, rtol=1e-12)


def test_hand_computed_binary_smd():
    x = np.array([[1.0], [1.0], [0.0], [1.0], [0.0], [0.0]])
    a = np.array([1, 1, 1, 0, 0, 0])
    # p1 = 2/3, p0 = 1/3; sd = sqrt((2/9 + 2/9) / 2) = sqrt(2)/3
    assert smd(x, a)[0] == pytest.approx((1 / 3) / (np.sqrt(2) / 3))


def test_constant_column_is_balanced():
    X = np.column_stack([np.ones(6), np.arange(6.0)])
    a = np.array([1, 0, 1, 0, 1, 0])
    bal = balance_arrays(X, a, np.ones(6))
    assert bal["smd"][0] == 0.0 and bal["smd_after"][0] == 0.0
    assert bal["var_ratio"][0] == 1.0


def test_balance_table_layout():
    X = np.array([[1.0, 60], [0.0, 70], [1.0, 65], [0.0, 80]])
    a = np.array([1, 0, 1, 0])
    table = balance_table(X, a, ["visceral", "age"], weights=np.array([1.0, 2.0, 1.0, 1.0]))
    assert isinstance(table, pd.DataFrame)
    assert list(table.index) == ["visceral", "age"] and table.index.name == "covariate"
    assert list(table.columns) == [
        "mean_treated",
        "mean_control",
        "smd",
        "var_ratio",
        "mean_treated_after",
        "mean_control_after",
        "smd_after",
        "var_ratio_after",
    ]
    assert table.loc["age", "mean_control_after"] == pytest.approx((2 * 70 + 80) / 3)
    assert list(balance_table(X, a, ["v", "age"]).columns) == [
        "mean_treated",
        "mean_control",
        "smd",
        "var_ratio",
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weights": np.array([1.0, -1.0, 1.0, 1.0])}, "weights must be finite, >= 0"),
        ({"weights": np.array([1.0, np.nan, 1.0, 1.0])}, "weights must be finite"),
        ({"weights": np.ones(3)}, "one per patient"),
        ({"names": ["only_one"]}, "names has 1 entries for 2 columns"),
        ({"treatment": np.array([1, 0, 1])}, "one row per patient"),
    ],
)
def test_bad_input(kwargs, match):
    args = {
        "X": np.array([[1.0, 60], [0.0, 70], [1.0, 65], [0.0, 80]]),
        "treatment": np.array([1, 0, 1, 0]),
        "names": ["visceral", "age"],
    } | kwargs
    with pytest.raises(EstimatorInputError, match=match):
        balance_table(**args)
