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
