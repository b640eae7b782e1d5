"""Calibration plus every truth of an unshipped scenario: exact engine vs Monte Carlo.

Scenario: ``flatiron`` with ``treatment.strength = 1.7`` (one cell of a ``vary`` grid, not
shipped), caches off (a temporary RWESIM_CACHE_DIR and ``use_cache=False``).

* exact: ``calibrate`` + ``truth`` with the default exact engine (warm JIT cache; the
  first call's time, which loads or compiles the kernels, is reported apart in
  ``extra_info["first_call_seconds"]``), with the memoised intermediate solves cleared
  before every round, so that nothing computed for another scenario is reused; CPU
  seconds (both threads) in ``extra_info["cpu_seconds"]``, since the machine is shared;
* Monte Carlo: ``calibrate(method="montecarlo")`` + ``truth(method="montecarlo")`` on the
  scenario's 4 million patients (one round);
* grid: 12 cells (strength 1.0 to 3.2) by the exact engine, memoised solves cleared
  before the grid only (its cells share the outcome solve, which does not depend on the
  treatment model when the HR target is the ATE's).

The previous version of the engine is measured by running this file from a checkout of
that commit (same machine, interleaved runs); docs/truth.md reports both.

Compare the groups' means: the ratio Monte Carlo / exact is the speed-up.
"""

from __future__ import annotations

import time

import pytest

import simulator
from simulator import calibration as cal
from simulator.study import truth as truth_mod

GROUP = "truth: unshipped flatiron (strength 1.7), calibration + every truth"
CELL = {"treatment.strength": 1.7}
GRID = [round(1.0 + 0.2 * k, 1) for k in range(12)]


@pytest.fixture(scope="module")
def first_call(tmp_path_factory):
    """Load / compile every kernel on another scenario; returns that call's seconds."""
    import os

    os.environ["RWESIM_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    sc = simulator.get_scenario("flatiron").replace(**{"treatment.strength": 1.3})
    start = time.perf_counter()
    simulator.calibrate(sc, use_cache=False)
    truth_mod.truth(sc, use_cache=False)
    return time.perf_counter() - start


def _forget() -> None:
    """Clear the memoised intermediate solves (a new scenario in a fresh process)."""
    cal._STEPS.clear()


def _exact(sc):
    simulator.calibrate(sc, use_cache=False)
    return truth_mod.truth(sc, use_cache=False)


@pytest.mark.benchmark(group=GROUP)
def test_exact_engine(benchmark, first_call):
    sc = simulator.get_scenario("flatiron").replace(**CELL)
    cpu = []

    def run():
        _forget()
        start = time.process_time()
        _exact(sc)
        cpu.append(time.process_time() - start)

    benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info.update(first_call_seconds=first_call, engine="exact", cpu_seconds=min(cpu))


@pytest.mark.benchmark(group=GROUP)
def test_monte_carlo_engine(benchmark, first_call):
    sc = simulator.get_scenario("flatiron").replace(**CELL)

    def run():
        simulator.calibrate(sc, use_cache=False, method="montecarlo")
        return truth_mod.truth(sc, use_cache=False, method="montecarlo")

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(engine="montecarlo", population=sc.calibration.population)


@pytest.mark.benchmark(group="truth: 12-cell vary grid (treatment.strength), exact engine")
def test_exact_grid(benchmark, first_call):
    cells = [simulator.get_scenario("flatiron").replace(**{"treatment.strength": s}) for s in GRID]

    cpu = []

    def run():
        _forget()
        start = time.process_time()
        for sc in cells:
            _exact(sc)
        cpu.append(time.process_time() - start)

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(cells=len(cells), strengths=GRID, cpu_seconds=cpu[0])
