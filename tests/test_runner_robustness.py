"""The runner when things go wrong: concurrent runs, dead workers, Ctrl-C, a killed parent,
fits that hang, misbehaving estimators, bad options, warnings, explicit calibration."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from estimators import EffectEstimate
from estimators.exceptions import ConvergenceWarning
from estimators.registry import register_estimator, unregister_estimator
from simulator.study import StudyError, summarize
from simulator.study.replicate import run_chunk
from simulator.study.runner import plan_chunks, run_study
from simulator.study.spec import Study
from simulator.study.store import Store

QUIET = {"progress": False, "log": lambda msg: None}
ROOT = Path(__file__).resolve().parents[1]

# Estimators used by the subprocess tests (imported by the script and so by its workers,
# forked from it or, spawned, re-importing it).
HELPERS = """
import os, time
from estimators import EffectEstimate
from estimators.registry import register_estimator

def killer(df, time_col, event, treatment, covariates, at_rep=6):
    if int(os.environ.get("RW_REP", "-1")) == at_rep:
        os._exit(3)
    return EffectEstimate.from_fit("killer", "crude", 0.0, 0.1, len(df), 1)

def sleeper(df, time_col, event, treatment, covariates, seconds=60.0):
    time.sleep(seconds)
    return EffectEstimate.from_fit("sleeper", "crude", 0.0, 0.1, len(df), 1)

register_estimator("killer", killer, "crude", replace=True)
register_estimator("sleeper", sleeper, "crude", replace=True)
"""


def script(tmp_path: Path, body: str) -> Path:
    (tmp_path / "rw_helpers.py").write_text(HELPERS)
    main = tmp_path / "main.py"
    main.write_text(
        "import sys\nimport rw_helpers\n"
        "from simulator.study import Study, run_study, StudyError\n"
        "if __name__ == '__main__':\n" + textwrap.indent(textwrap.dedent(body), "    ")
    )
    return main


def env() -> dict[str, str]:
    e = os.environ.copy()
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")])
    e["NUMBA_NUM_THREADS"] = "1"
    return e


def children(pid: int) -> list[int]:
    """Pool workers (forked or spawned) whose parent is ``pid`` (Linux /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"resource_tracker" not in cmd:
            out.append(int(d.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


# ---- concurrent runs into one directory ---------------------------------------------------
def test_two_concurrent_runs_with_different_seeds_cannot_both_write(tmp_path):
    main = script(
        tmp_path,
        """
        seed = int(sys.argv[1])
        study = Study(name="c", reps=40, chunk_reps=4, sample_sizes=(300,), seed=seed,
                      estimators=("naive_cox",))
        try:
            run_study(study, sys.argv[2], workers=1, progress=False)
        except StudyError as exc:
            print("error:", exc, file=sys.stderr)
            sys.exit(2)
        """,
    )
    out = tmp_path / "out"
    procs = {
        seed: subprocess.Popen(
            [sys.executable, str(main), str(seed), str(out)],
            env=env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (5, 6)
    }
    codes = {seed: (p.wait(300), p.stderr.read()) for seed, p in procs.items()}
    winners = [s for s, (code, _) in codes.items() if code == 0]
    assert len(winners) == 1, codes
    (loser,) = set(codes) - set(winners)
    assert codes[loser][0] == 2
    assert "another rwesim run" in codes[loser][1] or "different study" in codes[loser][1]
    store = Store(out)
    assert store.read_meta()["study"]["seed"] == winners[0]
    fresh = tmp_path / "fresh"
    study = Study(
        name="c",
        reps=40,
        chunk_reps=4,
        sample_sizes=(300,),
        seed=winners[0],
        estimators=("naive_cox",),
    )
    run_study(study, fresh, workers=1, **QUIET)
    pd.testing.assert_frame_equal(
        store.read_results().drop(columns="seconds"),
        Store(fresh).read_results().drop(columns="seconds"),
        check_exact=True,
    )


# ---- a worker that dies -------------------------------------------------------------------
def test_a_dead_worker_is_one_line_naming_the_estimator_and_finished_chunks_are_kept(tmp_path):
    main = script(
        tmp_path,
        """
        study = Study(name="k", reps=12, chunk_reps=2, sample_sizes=(300,), seed=1,
                      estimators=("naive_cox", "killer"), outcomes=("pfs",))
        try:
            run_study(study, sys.argv[1], workers=2, progress=False)
        except StudyError as exc:
            print("error:", exc, file=sys.stderr)
            sys.exit(2)
        """,
    )
    # tell the killer which replicate runs (in the helpers: the workers import them)
    (tmp_path / "rw_helpers.py").write_text(
        HELPERS
        + textwrap.dedent("""
        from simulator.study import replicate
        _original = replicate.replicate_seed
        def _seed_and_mark(seed, condition, rep):
            os.environ["RW_REP"] = str(rep)
            return _original(seed, condition, rep)
        replicate.replicate_seed = _seed_and_mark
        """)
    )
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, str(main), str(out)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr
    (line,) = errors
    assert "a worker process died while fitting estimator 'killer'" in line
    assert "replicate 6" in line and "exit code 3" in line
    assert "finished results are kept" in line and "use --resume" in line
    done = Store(out).done()
    assert (0, 3) not in done and len(done) >= 1  # chunk 3 holds replicate 6
    assert Store(out).read_meta()["status"] == "running"


# ---- the parent dies ----------------------------------------------------------------------
@linux
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_exit_when_the_parent_is_killed(tmp_path, sig):
    main = script(
        tmp_path,
        """
        study = Study(name="p", reps=8, chunk_reps=1, sample_sizes=(300,), seed=1,
                      estimators=("sleeper",), outcomes=("pfs",))
        run_study(study, sys.argv[1], workers=2, progress=False)
        """,
    )
    proc = subprocess.Popen(
        [sys.executable, str(main), str(tmp_path / "out")], env=env(), stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.2)
            workers = children(proc.pid)
        assert len(workers) == 2, "the pool did not start"
        time.sleep(1.0)  # the workers are inside a 60 s fit now
    finally:
        proc.send_signal(sig)
        proc.wait(30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(w) for w in workers):
        time.sleep(0.1)
    left = [w for w in workers if alive(w)]
    for w in left:  # do not leave them behind if the test fails
        os.kill(w, signal.SIGKILL)
    assert not left, f"workers {left} outlived their parent"


# ---- Ctrl-C -----------------------------------------------------------------------------
@pytest.mark.parametrize("phase", ["truths", "replicates"])
def test_ctrl_c_gives_no_worker_tracebacks(tmp_path, phase):
    main = script(
        tmp_path,
        """
        import time
        from simulator.study import runner
        phase = sys.argv[2]
        if phase == "truths":
            real = runner.condition_meta
            def slow(*a, **k):
                print("TRUTHS", flush=True)
                time.sleep(60)
                return real(*a, **k)
            runner.condition_meta = slow
        study = Study(name="i", reps=40, chunk_reps=1, sample_sizes=(300,), seed=1,
                      estimators=("naive_cox",) if phase == "truths" else ("sleeper",),
                      estimator_options={} if phase == "truths" else
                      {"sleeper": {"seconds": 0.3}}, outcomes=("pfs",))
        try:
            run_study(study, sys.argv[1], workers=2, progress=False,
                      log=lambda m: print(m, flush=True))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        """,
    )
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, str(main), str(out), phase],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the "terminal" below
    )
    deadline = time.monotonic() + 120
    ready = False
    while time.monotonic() < deadline and not ready:
        line = proc.stdout.readline()
        ready = "TRUTHS" in line if phase == "truths" else line.startswith("running")
    assert ready
    if phase == "replicates":  # wait for the first finished chunk
        while time.monotonic() < deadline and not list((out / "parts").glob("*.parquet")):
            time.sleep(0.1)
    else:
        time.sleep(3.0)  # workers are up (warming up or idle)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole group
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.strip().endswith("interrupted")
    if phase == "replicates":
        assert Store(out).done()  # finished chunks are kept for --resume


# ---- estimators that misbehave (in this process) ------------------------------------------
CALLS = {"n": 0}


def hangs_once(df, time_col, event, treatment, covariates):
    CALLS["n"] += 1
    if CALLS["n"] == 2:
        while True:  # a Python loop that never returns
            pass
    return EffectEstimate.from_fit("hangs_once", "crude", 0.0, 0.1, len(df), 1)


def not_numeric(df, time_col, event, treatment, covariates, kind="str"):
    if kind == "float":
        return 0.5
    return EffectEstimate(
        method="bad",
        estimand="ATE",
        estimate="0.5",
        se=0.1,
        ci_low=0.3,
        ci_high=0.7,
        p_value=0.01,
        n=len(df),
        events=3,
        ess=1.0,
        converged=True,
    )


def always_fails(df, time_col, event, treatment, covariates):
    if df["age"].iloc[0] > 1000:
        raise RuntimeError("never")
    raise np.linalg.LinAlgError("Singular matrix")


def warns(df, time_col, event, treatment, covariates):
    warnings.warn(ConvergenceWarning("did not converge in 3 steps"), stacklevel=1)
    np.log(np.zeros(1))  # numpy's RuntimeWarning: not the project's, left alone
    return EffectEstimate.from_fit("warns", "crude", 0.0, 0.1, len(df), 1)


@pytest.fixture
def misbehaving():
    names = {
        "hangs_once": hangs_once,
        "not_numeric": not_numeric,
        "always_fails": always_fails,
        "warns": warns,
    }
    for name, f in names.items():
        register_estimator(name, f, "ATE" if name == "not_numeric" else "crude", replace=True)
    CALLS["n"] = 0
    yield
    for name in names:
        unregister_estimator(name)


def tiny(**changes) -> Study:
    base = dict(name="m", reps=3, chunk_reps=3, sample_sizes=(200,), seed=3, outcomes=("pfs",))
    return Study(**{**base, **changes})


@pytest.mark.parametrize("in_thread", [False, True])
def test_fit_timeout_turns_a_hanging_fit_into_a_failed_row(misbehaving, tmp_path, in_thread):
    study = tiny(estimators=("hangs_once",), fit_timeout=0.5)
    box = {}

    def go():
        try:
            box["report"] = run_study(study, tmp_path / "out", workers=1, **QUIET)
        except BaseException as exc:
            box["error"] = exc

    if in_thread:  # not the main thread: no SIGALRM, an asynchronous exception instead
        t = threading.Thread(target=go)
        t.start()
        t.join(120)
        assert not t.is_alive()
    else:
        go()
    assert "error" not in box, box.get("error")
    df = Store(tmp_path / "out").read_results()
    errors = df["error"].tolist()
    assert errors[0] == "" and errors[2] == ""
    assert errors[1] == "FitTimeout: estimator 'hangs_once' did not return within 0.5 s"
    assert math.isnan(df["estimate"].iloc[1]) and not df["converged"].iloc[1]


def test_fit_timeout_is_validated():
    for bad in (0, -1, "5", math.inf, True):
        with pytest.raises(StudyError, match="fit_timeout="):
            tiny(fit_timeout=bad)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("str", "TypeError: estimator 'not_numeric' returned a non-numeric estimate='0.5'"),
        ("float", "TypeError: estimator 'not_numeric' returned float, not EffectEstimate"),
    ],
)
def test_a_non_numeric_result_is_a_failed_row_not_an_arrow_error(
    misbehaving, tmp_path, kind, message
):
    study = tiny(
        estimators=("naive_cox", "not_numeric"), estimator_options={"not_numeric": {"kind": kind}}
    )
    with pytest.raises(StudyError, match="every fit of estimator 'not_numeric'"):
        run_study(study, tmp_path / "out", workers=1, **QUIET)
    df = Store(tmp_path / "out").read_results()
    bad = df[df["estimator"] == "not_numeric"]
    assert (bad["error"] == message).all() and bad["estimate"].isna().all()
    assert (df.loc[df["estimator"] == "naive_cox", "error"] == "").all()
    assert len(summarize(tmp_path / "out")) == 2


def test_every_fit_failing_says_why_and_keeps_the_results(misbehaving, tmp_path):
    study = tiny(estimators=("naive_cox", "always_fails"))
    with pytest.raises(StudyError) as info:
        run_study(study, tmp_path / "out", workers=1, **QUIET)
    msg = str(info.value)
    assert (
        "every fit of estimator 'always_fails' (3 of 3 with: LinAlgError: Singular matrix)" in msg
    )
    assert "results are kept" in msg
    store = Store(tmp_path / "out")
    assert store.read_meta()["status"] == "complete" and len(store.read_results()) == 6
    table = summarize(tmp_path / "out").set_index("estimator")
    assert table.loc["always_fails", "errors"] == "3 x LinAlgError: Singular matrix"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"estimator_options": {"psm": {"calipr": 0.1}}},
            r"estimator_options\['psm'\]: unknown option 'calipr'; psm accepts \['covariates', "
            r"'caliper'",
        ),
        (
            {"estimator_options": {"adjusted_cox": {"covariates": ["age", "ecgo"]}}},
            r"adjusted_cox\.covariates: 'ecgo' is not a covariate column",
        ),
        ({"covariates": ("age", "ecgo")}, r"^covariates: 'ecgo' is not a covariate column"),
        ({"covariates": ("age", "pfs_months")}, "'pfs_months' is not a covariate column"),
        ({"covariates": "age"}, "covariates='age' is not allowed"),
    ],
)
def test_misspelt_options_and_covariates_are_refused_up_front(changes, message):
    with pytest.raises(StudyError, match=message):
        Study(**changes)


def test_options_of_an_estimator_taking_kwargs_are_not_second_guessed(misbehaving):
    def anything(df, time_col, event, treatment, covariates, **options):
        return EffectEstimate.from_fit("anything", "crude", 0.0, 0.1, len(df), 1)

    register_estimator("anything", anything, "crude", replace=True)
    try:
        Study(estimators=("anything",), estimator_options={"anything": {"whatever": 1}})
    finally:
        unregister_estimator("anything")


def test_the_study_covariates_reach_adjusted_cox():
    study = Study(covariates=("age", "ecog"))
    assert study.covariates_for("adjusted_cox") == ["age", "ecog", "lung_mets", "liver_mets"]
    assert Study().covariates_for("adjusted_cox")[-2:] == ["lung_mets", "liver_mets"]
    chunk = plan_chunks(study, study.conditions())[0]
    assert chunk.covariates["adjusted_cox"] == ["age", "ecog", "lung_mets", "liver_mets"]


def test_project_warnings_are_recorded_per_row_numpy_ones_are_not_silenced(misbehaving):
    study = tiny(estimators=("warns",), reps=2, chunk_reps=2)
    chunk = plan_chunks(study, study.conditions())[0]
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        rows = run_chunk(chunk)
    assert (rows["warnings"] == "did not converge in 3 steps").all()
    categories = {w.category for w in shown}
    assert RuntimeWarning in categories  # passed through to the normal machinery
    assert ConvergenceWarning not in categories  # recorded in the row instead


def test_the_chunk_carries_its_calibration(monkeypatch):
    from simulator import calibration, generate

    study = tiny(estimators=("naive_cox",), reps=1, chunk_reps=1)
    chunk = plan_chunks(study, study.conditions())[0]
    monkeypatch.setattr(generate, "_PLANS", {})
    monkeypatch.setattr(calibration, "_MEMORY", {})

    def no_global(*args, **kwargs):
        raise AssertionError("calibration looked up instead of taken from the chunk")

    monkeypatch.setattr(generate, "calibrate", no_global)
    monkeypatch.setattr(calibration, "calibrate", no_global)
    rows = run_chunk(chunk)
    assert (rows["error"] == "").all()
    assert not hasattr(calibration, "remember") or calibration._MEMORY == {}


def test_simulate_takes_a_calibration_and_checks_it_is_the_scenarios():
    import simulator
    from simulator.calibration import calibrate
    from simulator.generate import simulate

    sc = simulator.get_scenario("flatiron")
    cal = calibrate(sc)
    pd.testing.assert_frame_equal(simulate(sc, 200, 4, calibration=cal), simulate(sc, 200, 4))
    other = sc.replace(**{"treatment.strength": 1.3})
    with pytest.raises(ValueError, match="not the calibration of scenario"):
        simulate(other, 200, 4, calibration=cal)


def test_a_failed_fit_of_another_measure_keeps_its_measure_and_horizon(tmp_path):
    def rmst_fails(df, time_col, event, treatment, covariates, measure="rmst_diff", horizon=36.0):
        if len(df) > 150:
            raise ValueError("horizon beyond follow-up")
        return EffectEstimate.from_fit(
            "r", "ATE", 1.0, 0.5, len(df), 1, measure=measure, horizon=horizon
        )

    register_estimator("rmst_fails", rmst_fails, "ATE", replace=True)
    try:
        study = tiny(
            estimators=("naive_cox", "rmst_fails"),
            estimator_options={"rmst_fails": {"measure": "rmst_diff", "horizon": 24.0}},
        )
        with pytest.raises(StudyError, match="every fit of estimator 'rmst_fails'"):
            run_study(study, tmp_path / "out", workers=1, **QUIET)
    finally:
        unregister_estimator("rmst_fails")
    df = Store(tmp_path / "out").read_results()
    bad = df[df["estimator"] == "rmst_fails"]
    assert (bad["measure"] == "rmst_diff").all() and (bad["horizon"] == 24.0).all()
    assert (bad["error"] == "ValueError: horizon beyond follow-up").all()
