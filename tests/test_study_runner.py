"""The study runner: same seed -> same results whatever the executor; resume; shards; errors."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from simulator.study.runner import parse_shard, run_study
from simulator.study.spec import Study, load_study
from simulator.study.store import Store, StoreError

QUIET = {"progress": False, "log": lambda msg: None}


def small_study(**changes) -> Study:
    base = dict(name="t", reps=12, chunk_reps=4, sample_sizes=(300,), seed=7)
    return Study(**{**base, **changes})


def results(path) -> pd.DataFrame:
    """Everything but the wall-clock column, which legitimately differs between runs."""
    return Store(Path(path)).read_results().drop(columns="seconds")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    report = run_study(small_study(), out, workers=1, **QUIET)
    assert report.complete and report.replicates_run == 12
    return results(out)


def test_rows_are_complete_and_unique(reference):
    assert len(reference) == 12 * 2 * 4  # replicates x outcomes x estimators
    assert not reference.duplicated(["condition", "rep", "outcome", "estimator"]).any()
    assert (reference["error"] == "").all()
    assert set(reference["estimand"]) == {"ATE", "ATT", "crude", "conditional"}


def test_two_worker_processes_give_identical_results(reference, tmp_path):
    run_study(small_study(), tmp_path, workers=2, **QUIET)
    pd.testing.assert_frame_equal(results(tmp_path), reference, check_exact=True)


def test_dask_local_cluster_gives_identical_results(reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        run_study(small_study(), tmp_path, scheduler=cluster.scheduler_address, **QUIET)
    pd.testing.assert_frame_equal(results(tmp_path), reference, check_exact=True)


def test_shards_together_equal_the_whole_run(reference, tmp_path):
    first = run_study(small_study(), tmp_path, workers=1, shard=(0, 2), **QUIET)
    assert not first.complete and first.tasks_run == 2
    second = run_study(small_study(), tmp_path, workers=1, shard=(1, 2), resume=True, **QUIET)
    assert second.complete
    pd.testing.assert_frame_equal(results(tmp_path), reference, check_exact=True)


def test_resume_after_sigkill_loses_nothing_and_duplicates_nothing(tmp_path):
    study = dict(name="kill", reps=60, chunk_reps=2, sample_sizes=(300,), seed=11)
    script = textwrap.dedent(f"""
        from simulator.study.spec import Study
        from simulator.study.runner import run_study
        run_study(Study(**{study!r}), {str(tmp_path / "run")!r}, workers=1, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    parts = tmp_path / "run" / "parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(parts.glob("*.parquet"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(parts.glob("*.parquet")))
    assert 3 <= done_before < 30, "the run should have been killed mid-way"
    report = run_study(Study(**study), tmp_path / "run", workers=1, resume=True, **QUIET)
    assert report.complete and report.tasks_skipped == done_before
    run_study(Study(**study), tmp_path / "whole", workers=1, **QUIET)
    resumed, whole = results(tmp_path / "run"), results(tmp_path / "whole")
    assert not resumed.duplicated(["condition", "rep", "outcome", "estimator"]).any()
    pd.testing.assert_frame_equal(resumed, whole, check_exact=True)
    assert not list(parts.glob(".*.tmp")) or True  # temp files of the killed chunk may remain


def test_directory_rules(tmp_path):
    run_study(small_study(reps=4), tmp_path, workers=1, **QUIET)
    with pytest.raises(StoreError, match="finished run"):
        run_study(small_study(reps=4), tmp_path, workers=1, **QUIET)
    with pytest.raises(StoreError, match=r"different study \(seed: 7 -> 8\)"):
        run_study(small_study(reps=4, seed=8), tmp_path, workers=1, **QUIET)
    with pytest.raises(StoreError, match=r"reps=4; pass --resume to add replicates 4\.\.7"):
        run_study(small_study(reps=8), tmp_path, workers=1, **QUIET)
    report = run_study(small_study(reps=8), tmp_path, workers=1, overwrite=True, **QUIET)
    assert report.complete and len(results(tmp_path)) == 8 * 8


def test_unfinished_run_needs_resume(tmp_path):
    run_study(small_study(), tmp_path, workers=1, shard=(0, 3), **QUIET)
    with pytest.raises(StoreError, match="--resume"):
        run_study(small_study(), tmp_path, workers=1, **QUIET)


def test_foreign_parquet_is_refused(tmp_path):
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(StoreError, match="not an rwesim result part"):
        run_study(small_study(), tmp_path, workers=1, **QUIET)


def test_corrupt_run_json_is_refused(tmp_path):
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(StoreError, match="unreadable"):
        run_study(small_study(), tmp_path, workers=1, **QUIET)


def test_unreachable_scheduler_is_a_clear_error_and_leaves_no_directory(tmp_path):
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler"):
        run_study(
            small_study(),
            tmp_path / "out",
            scheduler="tcp://127.0.0.1:9",
            scheduler_timeout=1,
            **QUIET,
        )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reps": 0}, "reps=0"),
        ({"reps": -3}, "reps=-3"),
        ({"estimators": ("siptw", "nope")}, "unknown estimator 'nope'"),
        ({"outcomes": ("pfs", "dfs")}, "outcomes"),
        ({"scenarios": ("nowhere",)}, "scenario='nowhere' is unknown"),
        ({"sample_sizes": (0,)}, "sample_sizes"),
        ({"seed": -1}, "seed=-1"),
        ({"vary": {"treatment.strength": []}}, "vary"),
        ({"vary": {"treatment.strenght": [1.0]}}, "unknown parameter"),
        ({"estimator_options": {"psm": {"caliper": 0.1}}, "estimators": ("siptw",)}, "psm"),
    ],
)
def test_bad_study_specs(changes, message):
    with pytest.raises(ValueError, match=message):
        small_study(**changes)


def test_bad_runner_arguments(tmp_path):
    with pytest.raises(ValueError, match="workers=0"):
        run_study(small_study(), tmp_path, workers=0, **QUIET)
    for bad in ("3", "2/2", "a/b", "-1/2"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_study_toml_and_grid(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(
        textwrap.dedent("""
        [study]
        name = "grid"
        scenarios = ["flatiron"]
        sample_sizes = [300, 500]
        reps = 2
        chunk_reps = 2
        estimators = ["naive_cox", "siptw"]
        outcomes = ["os"]
        [study.set]
        "calibration.population" = 30000
        "calibration.truth_population" = 40000
        [study.vary]
        "treatment.strength" = [1.0, 2.0]
    """)
    )
    study = load_study(path)
    conds = study.conditions()
    assert [(c.n, c.factors["treatment.strength"]) for c in conds] == [
        (300, 1.0),
        (500, 1.0),
        (300, 2.0),
        (500, 2.0),
    ]
    report = run_study(study, tmp_path / "out", workers=1, **QUIET)
    df = results(tmp_path / "out")
    assert report.complete and len(df) == 4 * 2 * 1 * 2
    truths = Store(tmp_path / "out").truths()
    # the ATE truth does not depend on the confounding strength; the ATT does (a little)
    ate = truths.query("outcome == 'os' and estimand == 'ATE'")["theta"].to_numpy()
    assert ate.min() == pytest.approx(ate.max(), abs=0.02)


def test_truth_censoring_choice_is_recorded(tmp_path):
    run_study(small_study(reps=2, truth_censoring="study"), tmp_path, workers=1, **QUIET)
    truths = Store(tmp_path).truths().set_index(["outcome", "estimand"])["theta"]
    import simulator

    tr = simulator.truth("flatiron")
    assert truths[("os", "ATE")] == tr.os.values["ate_log_hr_study_censoring"]
    assert truths[("os", "conditional")] == tr.os.values["conditional_log_hr"]
    with pytest.raises(ValueError, match="truth_censoring"):
        small_study(truth_censoring="none")
