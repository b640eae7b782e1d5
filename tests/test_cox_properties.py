"""Invariances the Cox partial likelihood must have (hypothesis).

The partial likelihood depends on times only through their order (ties included), on
weights only up to a common factor (which scales the information by c), and a single
stratum is no stratification.  Fits are compared to 1e-8: both sides converge to
tol = 1e-12 and differ only by summation order.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from estimators import ConvergenceWarning, fit_cox_arrays

TOL = 1e-8
FIT = {"tol": 1e-12, "max_iter": 100}


def data(seed: int, n: int, tied: bool, n_strata: int):
    rng = np.random.default_rng(seed)
    X = np.c_[rng.integers(0, 2, n), rng.normal(0, 1, (n, 2))]
    t = rng.exponential(12.0 / np.exp(X @ [-0.5, 0.3, 0.1]))
    c = rng.uniform(3.0, 40.0, n)
    time = np.minimum(t, c)
    if tied:
        time = np.ceil(time)
    return {
        "time": time,
        "event": (t <= c).astype(np.int64),
        "X": X,
        "weights": rng.uniform(0.2, 5.0, n),
        "strata": rng.integers(0, n_strata, n) if n_strata > 1 else None,
        "cluster": rng.integers(0, n // 3, n),
    }


cases = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31),
        "n": st.integers(60, 250),
        "tied": st.booleans(),
        "n_strata": st.integers(1, 3),
    }
)
ties = st.sampled_from(["efron", "breslow"])


def fit(d, **kw):
    args = {**d, **kw}
    res = fit_cox_arrays(
        args.pop("time"), args.pop("event"), args.pop("X"), robust=True, **args, **FIT
    )
    assert res.converged
    return res


def assert_same_fit(a, b):
    np.testing.assert_allclose(a.params, b.params, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(a.se, b.se, rtol=TOL)
    np.testing.assert_allclose(a.model_se, b.model_se, rtol=TOL)


@given(case=cases, ties=ties, perm_seed=st.integers(0, 2**31))
def test_row_order_does_not_matter(case, ties, perm_seed):
    d = data(**case)
    perm = np.random.default_rng(perm_seed).permutation(case["n"])
    shuffled = {k: None if v is None else v[perm] for k, v in d.items()}
    assert_same_fit(fit(d, ties=ties), fit(shuffled, ties=ties))


TRANSFORMS = {  # strictly increasing maps onto (0, inf): times must stay > 0
    "cube": lambda t: t**3,
    "log": lambda t: np.log(t) - np.log(t).min() + 0.5,
    "log1p": np.log1p,
    "exp": lambda t: np.exp(t / 8.0),
    "affine": lambda t: 1e-3 + 7.0 * t,
}


@given(case=cases, ties=ties, transform=st.sampled_from(sorted(TRANSFORMS)))
def test_strictly_increasing_time_transform_does_not_matter(case, ties, transform):
    d = data(**case)
    f = TRANSFORMS[transform]
    new = f(d["time"])
    assert (np.argsort(new, kind="stable") == np.argsort(d["time"], kind="stable")).all()
    assert_same_fit(fit(d, ties=ties), fit({**d, "time": new}, ties=ties))


@given(case=cases, ties=ties, c=st.floats(0.01, 100.0))
def test_uniform_weight_scaling(case, ties, c):
    d = data(**case)
    a = fit(d, ties=ties)
    b = fit({**d, "weights": c * d["weights"]}, ties=ties)
    np.testing.assert_allclose(b.params, a.params, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(b.se, a.se, rtol=TOL)  # robust: unchanged
    np.testing.assert_allclose(b.model_se**2, a.model_se**2 / c, rtol=TOL)  # model: 1/c


@given(case=cases, ties=ties, code=st.integers(-(2**40), 2**40))
def test_one_stratum_equals_no_strata(case, ties, code):
    d = {**data(**case), "strata": None}
    one = {**d, "strata": np.full(case["n"], code)}
    assert_same_fit(fit(d, ties=ties), fit(one, ties=ties))


@given(case=cases)
def test_breslow_duplicated_rows_equal_weight_two(case):
    """Breslow treats a weight-2 row exactly like two copies (Efron does not: copies tie)."""
    d = {**data(**case), "cluster": None}
    double = {k: None if v is None else np.concatenate([v, v]) for k, v in d.items()}
    a = fit({**d, "weights": 2.0 * d["weights"]}, ties="breslow")
    b = fit({**double, "weights": double["weights"]}, ties="breslow")
    np.testing.assert_allclose(a.params, b.params, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(a.model_se, b.model_se, rtol=TOL)


@given(case=cases, ties=ties)
def test_between_strata_covariate_has_no_information(case, ties):
    """Strata have their own baseline: a covariate constant within strata is not estimable."""
    d = data(**{**case, "n_strata": 3})
    assume(np.unique(d["strata"]).size > 1)
    X = np.c_[d["strata"], d["X"]]
    with pytest.warns(ConvergenceWarning, match="information matrix is singular"):
        res = fit_cox_arrays(d["time"], d["event"], X, strata=d["strata"], ties=ties)
    assert not res.converged
    unstratified = fit_cox_arrays(d["time"], d["event"], X, ties=ties)
    assert unstratified.converged


@given(case=cases, ties=ties, extra=st.integers(1, 40))
def test_stratum_without_events_changes_nothing(case, ties, extra):
    """Rows of an event-free stratum are in no risk set and have zero score residuals."""
    d = {**data(**case), "strata": np.zeros(case["n"], dtype=np.int64)}
    rng = np.random.default_rng(case["seed"] + 1)
    more = {
        "time": rng.uniform(0.5, 50.0, extra),
        "event": np.zeros(extra, dtype=np.int64),
        "X": rng.normal(0, 3, (extra, 3)),
        "weights": rng.uniform(0.2, 5.0, extra),
        "strata": np.full(extra, 7),
        "cluster": rng.integers(0, 5, extra),
    }
    both = {k: np.concatenate([d[k], more[k]]) for k in d}
    assert_same_fit(fit(d, ties=ties), fit(both, ties=ties))


@given(
    n=st.integers(2, 60),
    seed=st.integers(0, 2**31),
    efron=st.booleans(),
    strata=st.booleans(),
    beta=st.floats(-3.0, 3.0),
)
def test_two_valued_column_pass_by_event_group_equals_the_row_pass(n, seed, efron, strata, beta):
    """The event-group pass of a two-valued covariate (treatment) gives the row-by-row
    pass's log-likelihood, score and information to rounding: weights, tied times,
    strata, both tie methods."""
    from estimators import _cox_kernels as k

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n).astype(float)
    x[0], x[-1] = 0.0, 1.0  # both values present
    t = rng.integers(1, 6, n).astype(float)  # heavy ties
    e = rng.integers(0, 2, n).astype(np.int8)
    w = rng.uniform(0.2, 3.0, n)
    s = rng.integers(0, 2, n) if strata else np.zeros(n, dtype=np.int64)
    order = np.lexsort((-t, s))
    X = (x - x.mean())[order, None]
    ts, es, ws, ss = t[order], e[order], w[order], s[order]
    starts, newstrat = k._tie_groups(ts, ss)
    levels, groups, sums = k._binary_groups(X, ws, es, starts, newstrat)
    assert groups.shape[0] == 6
    u1, i1, u2, i2 = np.empty(1), np.empty((1, 1)), np.empty(1), np.empty((1, 1))
    b = np.array([beta])
    ll1 = k._cox_pass(X, ws, es, starts, newstrat, b, efron, u1, i1)
    ll2 = k._binary_pass(levels, groups, sums, b, efron, u2, i2)
    scale = 1.0 + abs(ll1)
    assert abs(ll1 - ll2) <= 1e-11 * scale
    np.testing.assert_allclose(u2, u1, rtol=1e-10, atol=1e-11 * scale)
    np.testing.assert_allclose(i2, i1, rtol=1e-10, atol=1e-12 * scale)


def test_binary_groups_leave_other_columns_to_the_row_pass():
    from estimators import _cox_kernels as k

    t = np.array([3.0, 2.0, 1.0])
    starts, newstrat = k._tie_groups(t, np.zeros(3, dtype=np.int64))
    e = np.ones(3, dtype=np.int8)
    for X in (np.array([[0.0], [1.0], [2.0]]), np.ones((3, 1)), np.zeros((3, 2))):
        assert k._binary_groups(X, np.ones(3), e, starts, newstrat)[1].shape[0] == 0
