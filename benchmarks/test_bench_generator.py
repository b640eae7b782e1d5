"""Cohort generator speed, side by side in one group ("generator"):

- the numba kernel (``simulate_arrays``, full ``flatiron`` scenario) at 10^6 patients on 2
  threads and on 1 thread, and at 10^5 on 1 thread;
- the plain-NumPy reference ``tests/naive.py::cohort_naive`` (same plan, same streams,
  bit-identical output) at 10^5 and at 10^6 patients;
- the raw RNG floor: the same numbers of draws per patient (``N_NORMAL`` normals,
  ``N_UNIFORM`` uniforms, ``N_EXPON`` exponentials) as bulk NumPy calls, at 10^6 and 10^5.

The rows have different n, so compare them **per patient**: every row's ``extra_info``
holds ``n``, ``ns_per_patient`` = median seconds / n * 1e9, ``patients_per_s``,
``output_bytes_per_patient`` (result arrays' nbytes / n) and ``peak_bytes_per_patient``
(tracemalloc peak of one untimed call / n; numba's own allocations are per chunk and not
traced).  A second group ("generator JIT") times the first call in a fresh process with an
empty numba cache against a process reusing that cache.

Run: ``pytest benchmarks/test_bench_generator.py --benchmark-enable``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numba
import numpy as np
import pytest

import simulator
from simulator import _cohort_kernels as K
from simulator.generate import plan_for
from simulator.streams import chunk_generator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from naive import cohort_naive

SCENARIO = "flatiron"
SEED = 20240607
DRAWS = {"normals": K.N_NORMAL, "uniforms": K.N_UNIFORM, "exponentials": K.N_EXPON}


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _run(benchmark, fn, n: int, rounds: int, **info):
    """Time ``fn`` (one warm-up round first) and record the per-patient figures."""
    benchmark.extra_info.update(
        n=n, draws_per_patient=DRAWS, peak_bytes_per_patient=_peak_bytes(fn) / n, **info
    )
    result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:  # None under --benchmark-disable
        median = stats.stats.median
        benchmark.extra_info.update(ns_per_patient=median / n * 1e9, patients_per_s=n / median)
    return result


def _kernel_cases():
    for n, threads in ((1_000_000, 2), (1_000_000, 1), (100_000, 1)):
        yield pytest.param(n, threads, id=f"numba-n{n}-threads{threads}")


@pytest.mark.benchmark(group="generator")
@pytest.mark.parametrize(("n", "threads"), list(_kernel_cases()))
def test_numba_kernel(benchmark, n, threads):
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip(f"numba has {numba.config.NUMBA_NUM_THREADS} thread(s)")
    sc = simulator.get_scenario(SCENARIO)
    simulator.simulate_arrays(sc, 2 * K.CHUNK + 1, SEED, threads=threads)  # load / compile

    def run():
        return simulator.simulate_arrays(sc, n, SEED, threads=threads)

    arr = _run(benchmark, run, n, rounds=5, threads=threads, impl="numba simulate_arrays")
    benchmark.extra_info["output_bytes_per_patient"] = (arr.floats.nbytes + arr.ints.nbytes) / n
    assert arr.n == n and np.isfinite(arr.floats[K.F_OS]).all()


@pytest.mark.benchmark(group="generator")
@pytest.mark.parametrize("n", [100_000, 1_000_000], ids=lambda n: f"numpy-naive-n{n}")
def test_numpy_reference(benchmark, n):
    sc = simulator.get_scenario(SCENARIO)
    plan = plan_for(sc)
    rounds = 5 if n <= 100_000 else 3

    def run():
        return cohort_naive(plan, n, SEED)

    out = _run(
        benchmark,
        run,
        n,
        rounds=rounds,
        threads=1,
        impl="tests/naive.py cohort_naive (NumPy, object-array exp/pow)",
    )
    benchmark.extra_info["output_bytes_per_patient"] = sum(v.nbytes for v in out.values()) / n
    kernel = simulator.simulate_arrays(sc, n, SEED)
    np.testing.assert_array_equal(out["os"], kernel.floats[K.F_OS])  # same cohort


@pytest.mark.benchmark(group="generator")
@pytest.mark.parametrize("n", [1_000_000, 100_000], ids=lambda n: f"rng-floor-n{n}")
def test_rng_floor(benchmark, n):
    root = np.random.SeedSequence(SEED)

    def run():
        gn, gu, ge = (chunk_generator(root, 0, s) for s in range(3))
        return (
            gn.standard_normal((n, K.N_NORMAL)),
            gu.random((n, K.N_UNIFORM)),
            ge.standard_exponential((n, K.N_EXPON)),
        )

    out = _run(
        benchmark,
        run,
        n,
        rounds=5,
        threads=1,
        impl="NumPy bulk draws only (5 normal, 9 uniform, 6 exponential per patient)",
    )
    benchmark.extra_info["output_bytes_per_patient"] = sum(a.nbytes for a in out) / n
    assert [a.shape[1] for a in out] == list(DRAWS.values())


# ---- JIT compile time (separate group; each round is a whole child process) ----------------
CHILD = """
import json, time
t0 = time.perf_counter()
import simulator
from simulator import _cohort_kernels as K
t1 = time.perf_counter()
sc = simulator.get_scenario("flatiron")
plan = simulator.generate.plan_for(sc)
t2 = time.perf_counter()
simulator.simulate_arrays(sc, 1430, 1)
t3 = time.perf_counter()
simulator.simulate_arrays(sc, 2 * K.CHUNK + 1, 1)
t4 = time.perf_counter()
simulator.simulate_arrays(sc, 2 * K.CHUNK + 1, 2)
t5 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "plan_s": t2 - t1, "first_serial_call_s": t3 - t2,
                  "first_parallel_call_s": t4 - t3, "second_parallel_call_s": t5 - t4}))
"""


def _child(cache_dir: str) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.benchmark(group="generator JIT: fresh process, first simulate_arrays calls")
@pytest.mark.parametrize("cache_state", ["cold-empty-cache", "warm-cached"])
def test_jit_first_call(benchmark, cache_state):
    """The whole child process is timed (rounds=1); extra_info splits it: import, plan
    (calibration read from the shipped or user cache), first single-chunk call (serial
    kernel), first multi-chunk call (parallel kernel), and a second multi-chunk call."""
    simulator.calibrate(simulator.get_scenario(SCENARIO))  # the child must not calibrate
    with tempfile.TemporaryDirectory() as cache:
        if cache_state == "warm-cached":
            _child(cache)  # populate the cache
            assert list(Path(cache).rglob("*.nbi")), "cache=True wrote no index"
        times: list[dict] = []
        benchmark.pedantic(lambda: times.append(_child(cache)), rounds=1, iterations=1)
    benchmark.extra_info.update({k: round(v, 3) for k, v in times[-1].items()})
    print(f"\n{cache_state}: {json.dumps(times[-1])}")
