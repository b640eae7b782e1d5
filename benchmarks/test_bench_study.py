"""A whole simulation study: `rwesim run flatiron --reps 1000`, side by side with the v0.1
runner and with the same work in lifelines + scikit-learn.

* ``test_rwesim_study``: 1,000 replicates of the default study (n = 1,430; sIPTW, PSM,
  naive and adjusted Cox; rwPFS and OS) through ``run_study`` with 2 worker processes,
  kernels cached (a warm-up study runs first); the wall time includes the pool's
  start-up.
* ``test_v01_study``: the same study run by the v0.1 revision (``V01_COMMIT``, checked
  out by ``git archive`` into a temporary folder, own numba cache) in a subprocess,
  timed inside it the same way.
* ``test_replicate_cpu``: per-replicate CPU time (``time.process_time``) on one core
  with one numba thread, current code and v0.1 in the same run (best of 3 rounds of 200
  replicates, in fresh subprocesses); on a shared machine CPU time is the stable number.
* Baseline: the same replicates analysed by the lifelines + scikit-learn pipeline of
  ``bench_helpers.baseline_suite``, timed on ``BASELINE_REPS`` replicates and projected
  to 1,000 in ``extra_info``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bench_helpers import (
    REPLICATE_CPU,
    STUDY_WALL,
    V01_COMMIT,
    baseline_suite,
    revision_tree,
    run_in,
)

import simulator
from simulator.study.replicate import replicate_seed
from simulator.study.runner import run_study
from simulator.study.spec import DEFAULT_COVARIATES, OUTCOMES, Study

REPS = 1000
CPU_REPS = 200
BASELINE_REPS = 10
GROUP = "study: flatiron, 1,000 replicates x 4 estimators x 2 outcomes, n=1,430"
CPU_GROUP = "study replicate, one core: current vs v0.1 (CPU time in extra_info)"
QUIET = {"progress": False, "log": lambda msg: None}
HERE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """Compile / load every kernel and the shipped truths before timing."""
    run_study(Study(reps=4, chunk_reps=2), tmp_path_factory.mktemp("warm"), workers=1, **QUIET)


@pytest.fixture(scope="module")
def v01():
    tree = revision_tree(V01_COMMIT)
    if tree is None:
        pytest.skip(f"git archive {V01_COMMIT} not available")
    return tree


@pytest.mark.benchmark(group=GROUP)
def test_rwesim_study(benchmark, warm, tmp_path):
    out = tmp_path / "run"

    def run():
        shutil.rmtree(out, ignore_errors=True)
        return run_study(Study(reps=REPS), out, workers=2, **QUIET)

    report = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(
        reps=REPS,
        workers=2,
        seconds=report.seconds,
        replicates_per_second=report.replicates_per_second,
        seconds_per_replicate=report.seconds / REPS,
    )


@pytest.mark.benchmark(group=GROUP)
def test_v01_study(benchmark, v01):
    result = benchmark.pedantic(lambda: run_in(v01, STUDY_WALL, REPS), rounds=1, iterations=1)
    benchmark.extra_info.update(
        commit=V01_COMMIT, reps=REPS, workers=2, wall_inside_subprocess=result["wall"]
    )
    benchmark.extra_info["replicate_phase_seconds"] = result["replicate_phase"]


@pytest.mark.benchmark(group=CPU_GROUP)
@pytest.mark.parametrize("revision", ["current", "v0.1"])
def test_replicate_cpu(benchmark, revision, request):
    tree = HERE if revision == "current" else request.getfixturevalue("v01")
    result = benchmark.pedantic(lambda: run_in(tree, REPLICATE_CPU, CPU_REPS, 3), rounds=1)
    benchmark.extra_info.update(
        revision=revision,
        cpu_ms_per_replicate=1e3 * result["cpu"],
        wall_ms_per_replicate=1e3 * result["wall"],
        projected_seconds_for_1000_on_2_workers=result["cpu"] * REPS / 2,
    )


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
            for time_col, event_col in OUTCOMES.values():
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
