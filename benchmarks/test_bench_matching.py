"""Matching and the matched-set bootstrap against their baselines, side by side.

* Greedy 1:1 caliper matching vs a scikit-learn ``NearestNeighbors`` matcher.
* 1:5 caliper matching with replacement at n = 20,000 vs one batch
  ``NearestNeighbors.kneighbors`` query (identical sets asserted).
* 200 matched-set bootstrap resamples of the matched Cox fit (n = 1,430): the numba
  kernel over resamples vs a Python loop of ``fit_cox_arrays`` (same estimates).

Greedy 1:1 details:

Both match the treated in the same random order (seed 0) to the nearest unused control
within 0.2 SD of the logit PS and must return identical pairs.  ``match_pairs`` sorts
the controls once and finds the nearest free control with union-find (O(n log n));
the baseline queries the 32 nearest neighbours of every treated patient in one batch
and re-queries with twice as many when all of them are taken.  numba is warmed up
first.  At n = 20,000 the baseline runs one round (~10 s).

Run: ``pytest benchmarks --benchmark-enable``.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from bench_helpers import sklearn_greedy_match

from estimators import match_pairs


@cache
def _logits(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Logit PS of a confounded cohort: ~54% treated, partial overlap."""
    rng = np.random.default_rng(7)
    logit = 0.15 + 0.9 * rng.normal(size=n)
    treated = rng.binomial(1, 1.0 / (1.0 + np.exp(-(logit + 0.3 * rng.normal(size=n)))))
    return logit, treated


@pytest.mark.parametrize("n", [1_430, 20_000])
@pytest.mark.parametrize("impl", ["rwesim", "sklearn-NearestNeighbors"])
def test_greedy_matching(benchmark, n, impl):
    benchmark.group = f"greedy 1:1 caliper matching, n={n}"
    logit, a = _logits(n)
    fits = {
        "rwesim": lambda: match_pairs(logit, a, caliper=0.2, order="random", random_state=0),
        "sklearn-NearestNeighbors": lambda: sklearn_greedy_match(logit, a, 0.2, seed=0),
    }
    if impl == "rwesim":
        fits[impl]()  # warm-up: numba loads or compiles here
    if n < 10_000:
        result = benchmark(fits[impl])
    else:  # the baseline takes ~10 s here: one round
        result = benchmark.pedantic(fits[impl], rounds=3 if impl == "rwesim" else 1)
    m = match_pairs(logit, a, caliper=0.2, order="random", random_state=0)
    pairs = result if isinstance(result, list) else list(zip(m.treated, m.control, strict=True))
    assert pairs == list(zip(m.treated.tolist(), m.control.tolist(), strict=True))
    benchmark.extra_info.update(n=n, treated=int(a.sum()), pairs=m.n_pairs)


# ---- 1:k with replacement, and the matched-set bootstrap ------------------------------------
def sklearn_nearest_k(logit: np.ndarray, a: np.ndarray, ratio: int, caliper: float) -> list:
    """Each treated patient's ``ratio`` nearest controls within the caliper, by one batch
    ``NearestNeighbors.kneighbors`` query (what an analyst would write)."""
    from sklearn.neighbors import NearestNeighbors

    width = caliper * np.std(logit, ddof=1)
    treated = np.flatnonzero(a == 1)
    controls = np.flatnonzero(a == 0)
    nn = NearestNeighbors(n_neighbors=ratio).fit(logit[controls, None])
    dist, idx = nn.kneighbors(logit[treated, None])
    return [
        (int(t), controls[j[d <= width]].tolist())
        for t, d, j in zip(treated, dist, idx, strict=True)
        if d[0] <= width
    ]


@pytest.mark.parametrize("impl", ["rwesim", "sklearn-NearestNeighbors"])
def test_one_to_five_with_replacement(benchmark, impl):
    n = 20_000
    benchmark.group = f"1:5 caliper matching with replacement, n={n}"
    logit, a = _logits(n)
    fits = {
        "rwesim": lambda: match_pairs(logit, a, caliper=0.2, order="data", ratio=5, replace=True),
        "sklearn-NearestNeighbors": lambda: sklearn_nearest_k(logit, a, 5, 0.2),
    }
    fits["rwesim"]()  # warm-up: numba loads or compiles here
    result = benchmark(fits[impl])
    m = match_pairs(logit, a, caliper=0.2, order="data", ratio=5, replace=True)
    sets = [
        (int(m.treated[m.set_id == s][0]), m.control[m.set_id == s].tolist())
        for s in range(m.n_sets)
    ]
    if impl != "rwesim":  # continuous logits: no distance ties, the same sets
        assert result == sets
    benchmark.extra_info.update(n=n, treated=int(a.sum()), sets=m.n_sets, pairs=m.n_pairs)


@pytest.mark.parametrize("impl", ["rwesim-kernel", "fit_cox_arrays-loop"])
def test_matched_set_bootstrap(benchmark, impl):
    """200 matched-set resamples of the 1:1 matched Cox fit at n = 1,430 (~650 pairs):
    the numba kernel over resamples vs a Python loop of from-scratch ``fit_cox_arrays``."""
    from bench_helpers import flatiron_like

    from estimators import fit_cox_arrays, fit_propensity
    from estimators.matched_cox import matched_set_bootstrap

    df = flatiron_like(1_430)
    model = fit_propensity(df, "treated", ["age", "ecog", "visceral", "n_met_sites"])
    m = match_pairs(model.logit, df["treated"].to_numpy(), random_state=0)
    rows, sets = m.rows_and_pairs()
    t = df["pfs_months"].to_numpy()[rows]
    e = df["pfs_event"].to_numpy()[rows].astype(np.int8)
    x = df["treated"].to_numpy()[rows].astype(float)
    w = m.row_weights()
    draws = np.random.default_rng(1).integers(0, m.n_sets, size=(200, m.n_sets))
    by_set = [np.flatnonzero(sets == s) for s in range(m.n_sets)]

    def kernel():
        return matched_set_bootstrap(
            t, e, x, w, sets, m.n_sets, False, True, 200, None, draws=draws
        ).estimates

    def loop():
        out = np.empty(200)
        for b, drawn in enumerate(draws):
            idx = np.concatenate([by_set[s] for s in drawn])
            out[b] = fit_cox_arrays(t[idx], e[idx], x[idx, None], w[idx]).params[0]
        return out

    kernel()  # warm-up
    benchmark.group = "matched-set bootstrap, 200 resamples, n=1,430"
    result = benchmark(kernel if impl == "rwesim-kernel" else loop)
    np.testing.assert_allclose(result, kernel(), rtol=1e-12)
    benchmark.extra_info.update(pairs=m.n_pairs)
