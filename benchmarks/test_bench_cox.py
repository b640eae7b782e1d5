"""Cox engine speed, side by side with lifelines ``CoxPHFitter`` in the same run.

Groups (one table each, ratios to the fastest in parentheses):
- weighted robust Cox on a binary treatment at n = 1,430 / 10,000 / 100,000:
  ``fit_cox_arrays`` (the path sIPTW uses), ``CoxPH.fit`` on the DataFrame, lifelines
  ``fit(weights_col=..., robust=True)``.  lifelines at 100,000 runs one round (~20-60 s:
  its robust variance is O(n^2)).
- 11-covariate unweighted Cox at n = 1,430.
- JIT: first call in a fresh process with an empty numba cache vs a warm cache (the
  child's own wall and CPU times of that call are printed and kept in extra_info; run
  this group with the default wall-clock timer).
Numba is warmed up before timing; data are built outside the timed call.

Run: ``pytest benchmarks --benchmark-enable``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from lifelines import CoxPHFitter

from estimators import CoxPH, fit_cox_arrays

SIZES = (1_430, 10_000, 100_000)
IMPLS = ("rwesim-arrays", "rwesim-CoxPH", "lifelines")


def _lifelines(df, **kw) -> CoxPHFitter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines' advice about non-integer weights
        return CoxPHFitter().fit(df, "months", "event", **kw)


def _weighted_robust(impl: str, d):
    frame = d.df[["months", "event", "treated", "w"]]  # selected outside the timed call
    if impl == "rwesim-arrays":
        return lambda: fit_cox_arrays(d.time, d.event, d.X, weights=d.weights, robust=True)
    if impl == "rwesim-CoxPH":
        return lambda: CoxPH().fit(frame, "months", "event", weights_col="w", robust=True)
    return lambda: _lifelines(frame, weights_col="w", robust=True)


def _params(impl, fit):
    return fit.params if impl == "rwesim-arrays" else np.asarray(fit.params_)


def _weighted_cases():
    for n in SIZES:
        for impl in IMPLS:
            yield pytest.param(
                n,
                impl,
                id=f"n{n}-{impl}",
                marks=pytest.mark.benchmark(group=f"weighted robust Cox, binary treatment, n={n}"),
            )


@pytest.mark.parametrize(("n", "impl"), list(_weighted_cases()))
def test_weighted_robust_cox(benchmark, make_cox_data, n, impl):
    d = make_cox_data(n, 1)
    fit = _weighted_robust(impl, d)
    benchmark.extra_info.update(n=n, events=int(d.event.sum()), p=1)
    if impl == "lifelines" and n >= 100_000:
        result = benchmark.pedantic(fit, rounds=1, iterations=1)
    else:
        fit()  # warm-up: numba loads or compiles here, not in the timed rounds
        result = benchmark(fit)
    reference = fit_cox_arrays(d.time, d.event, d.X, weights=d.weights, robust=True)
    np.testing.assert_allclose(_params(impl, result), reference.params, atol=1e-6)


@pytest.mark.benchmark(group="11-covariate unweighted Cox, n=1430")
@pytest.mark.parametrize("impl", IMPLS)
def test_eleven_covariate_cox(benchmark, make_cox_data, impl):
    d = make_cox_data(1_430, 11)
    frame = d.df[["months", "event", *d.covariates]]
    fits = {
        "rwesim-arrays": lambda: fit_cox_arrays(d.time, d.event, d.X),
        "rwesim-CoxPH": lambda: CoxPH().fit(frame, "months", "event"),
        "lifelines": lambda: _lifelines(frame),
    }
    fits[impl]()
    benchmark.extra_info.update(n=1_430, events=int(d.event.sum()), p=11)
    result = benchmark(fits[impl])
    np.testing.assert_allclose(
        _params(impl, result), fit_cox_arrays(d.time, d.event, d.X).params, atol=1e-6
    )


CHILD = """
import json, time
t0 = time.perf_counter()
import numpy as np
from estimators import fit_cox_arrays
import_s = time.perf_counter() - t0
rng = np.random.default_rng(0)
x = rng.integers(0, 2, (500, 1)).astype(float)
t, w = rng.exponential(10.0, 500), rng.uniform(0.5, 2.0, 500)
e = (rng.random(500) < 0.6).astype(int)
c1, t1 = time.process_time(), time.perf_counter()
fit_cox_arrays(t, e, x, weights=w, robust=True)
t2, c2 = time.perf_counter(), time.process_time()
fit_cox_arrays(t, e, x, weights=w, robust=True)
t3 = time.perf_counter()
print(json.dumps({"import_s": import_s, "first_call_s": t2 - t1, "first_call_cpu_s": c2 - c1,
                  "second_call_s": t3 - t2}))
"""


def _child(cache_dir: str) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.benchmark(group="Cox JIT: fresh process, first fit_cox_arrays call")
@pytest.mark.parametrize("cache_state", ["cold-empty-cache", "warm-cached"])
def test_jit_first_call(benchmark, cache_state):
    """Whole child process is timed; extra_info holds the first call alone (compile/load)."""
    with tempfile.TemporaryDirectory() as shared:
        if cache_state == "warm-cached":
            _child(shared)  # populate the cache
            assert list(Path(shared).rglob("*_cox_fit*.nbi")), "cache=True wrote no index"

        def setup():
            fresh = tempfile.mkdtemp(dir=shared)
            return ((fresh if cache_state == "cold-empty-cache" else shared,), {})

        times = []
        benchmark.pedantic(lambda d: times.append(_child(d)), setup=setup, rounds=2)
    first = [round(t["first_call_s"], 3) for t in times]
    cpu = [round(t["first_call_cpu_s"], 3) for t in times]
    benchmark.extra_info.update(
        first_call_s=first,
        first_call_cpu_s=cpu,
        import_s=[t["import_s"] for t in times],
        second_call_s=[t["second_call_s"] for t in times],
    )
    print(f"\n{cache_state}: first fit_cox_arrays call {first} s wall, {cpu} s CPU")
