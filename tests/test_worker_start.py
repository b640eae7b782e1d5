"""How local pool workers start (simulator.study.workers.start_method): forked from the
parent where that is safe, spawned otherwise, with the same results either way."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from simulator.study import workers as W
from simulator.study.runner import run_study
from simulator.study.spec import Study
from simulator.study.store import Store

ROOT = Path(__file__).resolve().parents[1]
QUIET = {"progress": False, "log": lambda msg: None}
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is Linux-only")


def small() -> Study:
    return Study(name="w", reps=6, chunk_reps=2, sample_sizes=(300,), seed=3)


def python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return out.stdout.strip()


@linux
def test_fork_in_a_fresh_single_threaded_process_spawn_after_numba_threads_or_threads():
    out = python(
        """
        import threading
        import numpy as np
        from numba import njit, prange
        from simulator.study.workers import start_method
        print(start_method())
        t = threading.Thread(target=lambda: threading.Event().wait(5), daemon=True)
        t.start()
        print(start_method())  # a second Python thread: forking is not safe
        @njit(parallel=True)
        def total(x):
            s = 0.0
            for i in prange(x.size):
                s += x[i]
            return s
        total(np.ones(10_000))  # starts numba's thread pool
        print(start_method())
        """
    )
    assert out.splitlines() == ["fork", "spawn", "spawn"]


def test_not_linux_spawns(monkeypatch):
    monkeypatch.setattr(W.sys, "platform", "darwin")
    assert W.start_method() == "spawn"


@linux
def test_forked_and_spawned_pools_give_the_rows_of_one_process(tmp_path, monkeypatch):
    run_study(small(), tmp_path / "one", workers=1, **QUIET)
    python(
        f"""
        from simulator.study.workers import start_method
        assert start_method() == "fork"
        from simulator.study.runner import run_study
        from simulator.study.spec import Study
        run_study(Study(name="w", reps=6, chunk_reps=2, sample_sizes=(300,), seed=3),
                  {str(tmp_path / "forked")!r}, workers=2, progress=False, log=lambda m: None)
        """
    )
    monkeypatch.setattr(W, "start_method", lambda: "spawn")
    run_study(small(), tmp_path / "spawned", workers=2, **QUIET)
    one = Store(tmp_path / "one").read_results().drop(columns="seconds")
    for other in ("forked", "spawned"):
        pd.testing.assert_frame_equal(
            one, Store(tmp_path / other).read_results().drop(columns="seconds"), check_exact=True
        )


@linux
def test_a_parallel_kernel_in_the_warm_up_makes_the_pool_spawn(tmp_path):
    """The bootstrap kernel is parallel: the parent's warm-up starts numba's OpenMP
    thread pool, after which a forked worker aborts ("fork() called from a process
    already using GNU OpenMP").  The pool's start method is chosen after the warm-up."""
    out = python(
        f"""
        from simulator.study.runner import run_study
        from simulator.study.spec import Study
        from simulator.study.store import Store
        from simulator.study import workers as W
        variants = {{"boot": {{"base": "siptw", "variance": "bootstrap", "n_boot": 20}}}}
        study = Study(name="b", reps=2, chunk_reps=1, sample_sizes=(300,), seed=5,
                      estimators=("siptw", "boot"), variants=variants)
        assert W.start_method() == "fork"  # a fresh single-threaded process
        run_study(study, {str(tmp_path / "r")!r}, workers=2, progress=False, log=lambda m: None)
        rows = Store({str(tmp_path / "r")!r}).read_results()
        print(W.start_method(), len(rows), int((rows["error"] == "").sum()))
        """
    )
    assert out.splitlines()[-1] == "spawn 8 8"
