"""Cox kernels against the slow explicit-risk-set references in tests/naive.py.

Random data with heavy ties, strata, weights and clusters; derivatives are compared at
random coefficients (not only at the MLE, where the score is trivially ~0).
Tolerance: both sides sum the same O(n) terms in a different order, so they agree to
a few hundred ulps of the largest term; 1e-9 relative leaves ample room while any
bookkeeping error (wrong risk set, tie handling, stratum reset) is O(1e-2) or larger.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import cox_derivatives_naive, cox_sandwich_naive, cox_score_residuals_naive

from estimators import fit_cox_arrays
from estimators.cox import _cox_derivatives, _cox_score_residuals

RTOL = 1e-9


def random_data(seed: int, n: int, n_times: int, n_strata: int, p: int, weighted: bool):
    """Times on a grid of ``n_times`` values (ties), ~60% events."""
    rng = np.random.default_rng(seed)
    return {
        "time": rng.integers(1, n_times + 1, n).astype(float) * 1.5,
        "event": (rng.random(n) < 0.6).astype(np.int64),
        "X": np.c_[rng.integers(0, 2, n), rng.normal(0, 1, (n, p - 1))],
        "weights": rng.uniform(0.2, 4.0, n) if weighted else None,
        "strata": rng.integers(0, n_strata, n) * 5 - 3 if n_strata > 1 else None,
        "cluster": rng.integers(0, max(n // 4, 1), n),
    }


# p up to 6 covers both ways the kernel forms the information (running moments for
# p <= DIRECT_P, BLAS Gram products above)
data_args = st.tuples(
    st.integers(0, 2**31),
    st.integers(8, 60),
    st.integers(2, 30),
    st.integers(1, 3),
    st.integers(1, 6),
    st.booleans(),
)


def _scale(d):
    w = np.ones(len(d["time"])) if d["weights"] is None else d["weights"]
    return w.sum() * (1.0 + np.abs(d["X"]).max()) ** 2


@given(args=data_args, ties=st.sampled_from(["efron", "breslow"]), beta_seed=st.integers(0, 99))
def test_derivatives_match_naive(args, ties, beta_seed):
    d = random_data(*args)
    if d["event"].sum() == 0:
        d["event"][0] = 1
    beta = np.random.default_rng(beta_seed).uniform(-1, 1, d["X"].shape[1])
    common = (d["time"], d["event"], d["X"], d["weights"], d["strata"], beta, ties)
    ll, u, info = _cox_derivatives(*common)
    ll0, u0, info0 = cox_derivatives_naive(*common)
    atol = RTOL * _scale(d)
    np.testing.assert_allclose(ll, ll0, rtol=RTOL, atol=atol)
    np.testing.assert_allclose(u, u0, rtol=RTOL, atol=atol)
    np.testing.assert_allclose(info, info0, rtol=RTOL, atol=atol)


@given(args=data_args, ties=st.sampled_from(["efron", "breslow"]), beta_seed=st.integers(0, 99))
def test_score_residuals_match_naive_and_sum_to_score(args, ties, beta_seed):
    d = random_data(*args)
    if d["event"].sum() == 0:
        d["event"][0] = 1
    beta = np.random.default_rng(beta_seed).uniform(-1, 1, d["X"].shape[1])
    common = (d["time"], d["event"], d["X"], d["weights"], d["strata"], beta, ties)
    r = _cox_score_residuals(*common)
    atol = RTOL * (1.0 + np.abs(d["X"]).max()) * len(d["time"])
    np.testing.assert_allclose(r, cox_score_residuals_naive(*common), rtol=RTOL, atol=atol)
    w = np.ones(len(d["time"])) if d["weights"] is None else d["weights"]
    np.testing.assert_allclose(
        w @ r, _cox_derivatives(*common)[1], rtol=RTOL, atol=RTOL * _scale(d)
    )


@settings(max_examples=25)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(60, 100),
    n_strata=st.integers(1, 3),
    p=st.sampled_from([2, 5]),
    ties=st.sampled_from(["efron", "breslow"]),
    clustered=st.booleans(),
)
def test_sandwich_matches_naive(seed, n, n_strata, p, ties, clustered):
    d = random_data(seed, n, n_times=15, n_strata=n_strata, p=p, weighted=True)
    cluster = d["cluster"] if clustered else None
    res = fit_cox_arrays(
        d["time"],
        d["event"],
        d["X"],
        weights=d["weights"],
        strata=d["strata"],
        cluster=cluster,
        robust=True,
        ties=ties,
    )
    naive = cox_sandwich_naive(
        d["time"], d["event"], d["X"], d["weights"], d["strata"], cluster, res.params, ties
    )
    np.testing.assert_allclose(res.cov, naive, rtol=1e-8, atol=1e-12 * np.abs(naive).max())
    _, _, info = cox_derivatives_naive(
        d["time"], d["event"], d["X"], d["weights"], d["strata"], res.params, ties
    )
    np.testing.assert_allclose(res.model_se, np.sqrt(np.diag(np.linalg.inv(info))), rtol=1e-8)
