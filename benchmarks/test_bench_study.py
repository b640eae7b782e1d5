"""A whole simulation study: `rwesim run flatiron --reps 1000`, side by side with the v0.1
runner and with the same work in lifelines + scikit-learn.

* ``test_study_wall``: 1,000 replicates of the default study (n = 1,430; sIPTW, PSM,
  naive and adjusted Cox; rwPFS and OS) through ``run_study`` with 2 worker processes,
  by the v0.1 revision (``V01_COMMIT``, checked out by ``git archive`` into a temporary
  folder, own numba cache) and by the current code, each in a fresh subprocess with
  kernels cached (a warm-up study runs first), interleaved (v0.1, current, v0.1,
  current) so that both see the same load; the wall time includes the pool's start-up.
  ``extra_info``: run_study's wall and CPU seconds (parent + workers), the start
  method, and for the current code the ratios to the v0.1 round just before.
* ``test_replicate_cpu``: per-replicate CPU time (``time.process_time``) on one core
  with one numba thread, v0.1 and current code in the same run (best of 3 rounds of
  200 replicates, in fresh subprocesses); on a shared machine CPU time is the stable
  number.
* ``test_worker_startup``: a 2-worker pool, from its creation until both workers have
  run ``warm_up`` (imports, kernels loaded), forked (the current default on Linux) and
  spawned (v0.1's method), in a parent that has its kernels loaded.
* Baseline: the same replicates analysed by the lifelines + scikit-learn pipeline of
  ``bench_helpers.baseline_suite``, timed on ``BASELINE_REPS`` replicates and projected
  to 1,000 in ``extra_info``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_helpers import (
    REPLICATE_CPU,
    STUDY_WALL,
    V01_COMMIT,
    WORKER_STARTUP,
    baseline_suite,
    revision_tree,
    run_in,
)

import simulator
from simulator.study.replicate import replicate_seed
from simulator.study.spec import DEFAULT_COVARIATES, OUTCOMES, Study

REPS = 1000
CPU_REPS = 200
ROUNDS = 2
BASELINE_REPS = 10
GROUP = "study: flatiron, 1,000 replicates x 4 estimators x 2 outcomes, n=1,430"
CPU_GROUP = "study replicate, one core: current vs v0.1 (CPU time in extra_info)"
START_GROUP = "study worker start-up: 2 workers ready (fork vs spawn)"
HERE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def v01():
    tree = revision_tree(V01_COMMIT)
    if tree is None:
        pytest.skip(f"git archive {V01_COMMIT} not available")
    return tree


_wall_seen: dict[str, dict] = {}


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize(
    "revision, round_", [(rev, i) for i in range(ROUNDS) for rev in ("v0.1", "current")]
)
def test_study_wall(benchmark, revision, round_, request):
    """One round of one revision (rounds interleaved: v0.1, current, v0.1, current); the
    benchmark's time is the subprocess's (imports included), ``extra_info`` has the
    run_study wall measured inside it."""
    tree = HERE if revision == "current" else request.getfixturevalue("v01")
    result = benchmark.pedantic(lambda: run_in(tree, STUDY_WALL, REPS), rounds=1)
    _wall_seen[revision] = result
    benchmark.extra_info.update(
        revision=revision,
        commit=V01_COMMIT if revision == "v0.1" else "working tree",
        reps=REPS,
        workers=2,
        start_method=result["start_method"],
        run_study_wall_seconds=result["wall"],
        replicate_phase_seconds=result["replicate_phase"],
        cpu_seconds_parent_and_workers=result["cpu"],
    )
    old = _wall_seen.get("v0.1")
    if revision == "current" and old is not None:  # the v0.1 round just before this one
        benchmark.extra_info.update(
            wall_ratio_to_v01=result["wall"] / old["wall"],
            cpu_ratio_to_v01=result["cpu"] / old["cpu"],
        )


_cpu_seen: dict[str, float] = {}


@pytest.mark.benchmark(group=CPU_GROUP)
@pytest.mark.parametrize("revision", ["v0.1", "current"])
def test_replicate_cpu(benchmark, revision, request):
    tree = HERE if revision == "current" else request.getfixturevalue("v01")
    result = benchmark.pedantic(lambda: run_in(tree, REPLICATE_CPU, CPU_REPS, 3), rounds=1)
    _cpu_seen[revision] = result["cpu"]
    benchmark.extra_info.update(
        revision=revision,
        cpu_ms_per_replicate=1e3 * result["cpu"],
        wall_ms_per_replicate=1e3 * result["wall"],
        projected_seconds_for_1000_on_2_workers=result["cpu"] * REPS / 2,
    )
    if revision == "current" and "v0.1" in _cpu_seen:
        benchmark.extra_info["cpu_ratio_to_v01"] = result["cpu"] / _cpu_seen["v0.1"]


@pytest.mark.benchmark(group=START_GROUP)
@pytest.mark.parametrize("method", ["spawn", "auto"])
def test_worker_startup(benchmark, method):
    result = benchmark.pedantic(lambda: run_in(HERE, WORKER_STARTUP, method), rounds=1)
    benchmark.extra_info.update(start_method=result["start_method"], seconds=result["wall"])


def _drop_empty_levels(df):
    """pd.get_dummies keeps unused categories (an all-zero column lifelines can't fit);
    rwesim's design matrix drops them, so the baseline does too."""
    for col in df.select_dtypes("category"):
        df[col] = df[col].cat.remove_unused_categories()
    return df


@pytest.mark.benchmark(group=GROUP)
def test_lifelines_sklearn_study(benchmark):
    sc = simulator.get_scenario("flatiron")
    cohorts = [
        _drop_empty_levels(simulator.simulate(sc, 1430, replicate_seed(20_240_601, 0, r)))
        for r in range(BASELINE_REPS)
    ]
    covariates = list(DEFAULT_COVARIATES)

    def run():
        for df in cohorts:
            for time_col, event_col in (OUTCOMES[o] for o in Study().outcomes):
                frame = (
                    df.drop(columns=["pfs_months", "pfs_event"]).rename(
                        columns={time_col: "pfs_months", event_col: "pfs_event"}
                    )
                    if time_col != "pfs_months"
                    else df
                )
                baseline_suite(frame, covariates)

    benchmark.pedantic(run, rounds=1, iterations=1)
    per_rep = benchmark.stats.stats.median / BASELINE_REPS
    benchmark.extra_info.update(
        reps_timed=BASELINE_REPS,
        seconds_per_replicate=per_rep,
        projected_seconds_for_1000=per_rep * REPS,
    )
