"""A whole simulation study: `rwesim run flatiron --reps 1000` against the same work in
lifelines + scikit-learn.

rwesim: 1,000 replicates of the default study (n = 1,430; sIPTW, PSM, naive and adjusted
Cox; rwPFS and OS) through ``run_study`` with 2 worker processes, kernels cached (a
warm-up study runs first).  Baseline: the same replicates (same simulated cohorts)
analysed by the lifelines + scikit-learn pipeline of ``bench_helpers.baseline_suite``,
timed on ``BASELINE_REPS`` replicates (one round; minutes per hundred) and projected to
1,000 in ``extra_info``.
"""

from __future__ import annotations

import shutil

import pytest
from bench_helpers import baseline_suite

import simulator
from simulator.study.replicate import replicate_seed
from simulator.study.runner import run_study
from simulator.study.spec import DEFAULT_COVARIATES, OUTCOMES, Study

REPS = 1000
BASELINE_REPS = 10
GROUP = "study: flatiron, 1,000 replicates x 4 estimators x 2 outcomes, n=1,430"
QUIET = {"progress": False, "log": lambda msg: None}


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """Compile / load every kernel and the shipped truths before timing."""
    run_study(Study(reps=4, chunk_reps=2), tmp_path_factory.mktemp("warm"), workers=1, **QUIET)


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
