"""The rwesim command line: happy paths and one-line errors (exit 2, no traceback)."""

import errno
import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import simulator
from estimators.exceptions import EstimatorInputError
from simulator.study.cli import UserError, app
from simulator.study.exceptions import StoreError, StudyError

runner = CliRunner()


def rwesim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "simulator.study", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_scenarios_lists_every_builtin():
    res = runner.invoke(app, ["scenarios"])
    assert res.exit_code == 0
    for name in (
        "flatiron",
        "flatiron-lung",
        "flatiron-liver",
        "po25-rct",
        "null",
        "strong-confounding",
        "unmeasured-confounding",
        "poor-overlap",
    ):
        assert name in res.output


def test_show_json_has_the_documented_keys():
    res = runner.invoke(app, ["show", "flatiron", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["scenario"] == "flatiron"
    keys = {
        "conditional_log_hr",
        "ate_log_hr",
        "att_log_hr",
        "median_control",
        "median_treated",
        "rmst24_control",
        "rmst24_treated",
    }
    for outcome in ("pfs", "os"):
        assert keys <= set(doc["truth"][outcome])
        assert keys <= set(doc["truth"][outcome]["mcse"])


def test_show_toml_round_trips(tmp_path):
    res = runner.invoke(app, ["show", "po25-rct", "--toml"])
    assert res.exit_code == 0
    path = tmp_path / "s.toml"
    path.write_text(res.stdout)
    import simulator

    assert simulator.load_scenario(path) == simulator.get_scenario("po25-rct")


def test_simulate_writes_the_cohort(tmp_path):
    out = tmp_path / "c.parquet"
    res = runner.invoke(
        app,
        [
            "simulate",
            "flatiron",
            "-n",
            "500",
            "--seed",
            "3",
            "-o",
            str(out),
            "--potential-outcomes",
        ],
    )
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(out)
    assert len(df) == 500 and "os_months_1" in df
    import simulator

    expected = simulator.simulate("flatiron", 500, 3, potential_outcomes=True)
    pd.testing.assert_frame_equal(df, expected)
    again = runner.invoke(app, ["simulate", "flatiron", "-n", "5", "-o", str(out)])
    assert again.exit_code == 2 and "--force" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "flatiron-typo"], "scenario='flatiron-typo' is unknown"),
        (["simulate", "flatiron", "-n", "0", "-o", "x.parquet"], "n=0 is not allowed"),
        (["simulate", "flatiron", "--seed", "-4", "-o", "x.parquet"], "seed=-4"),
        (["simulate", "flatiron", "-o", "x.txt"], "use a .parquet or .csv"),
        (["run", "flatiron", "--reps", "0", "-o", "out"], "reps=0"),
        (["run", "flatiron", "-e", "bogus", "-o", "out"], "unknown estimator 'bogus'"),
        (["run", "nope", "-o", "out"], "scenario='nope' is unknown"),
        (["run", "flatiron", "--shard", "5/2", "-o", "out"], "--shard='5/2'"),
        (["summarize", "no-such-dir"], "not an rwesim results directory"),
    ],
)
def test_user_errors_are_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output


def test_malformed_toml_in_a_subprocess_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed\n")
    res = rwesim("show", str(bad))
    assert res.returncode == 2
    assert "not valid TOML" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_foreign_parquet_in_output_dir(tmp_path):
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "foreign.parquet")
    res = runner.invoke(app, ["run", "flatiron", "--reps", "2", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "not an rwesim result part" in res.output


def test_run_then_summarize_and_markdown(tmp_path):
    out = tmp_path / "res"
    res = runner.invoke(
        app, ["run", "flatiron", "--reps", "4", "-n", "300", "-w", "1", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    md = tmp_path / "t.md"
    csv = tmp_path / "t.csv"
    res = runner.invoke(app, ["summarize", str(out), "--markdown", str(md), "--csv", str(csv)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(csv)
    assert len(table) == 8 and set(table["estimator"]) == {
        "siptw",
        "psm",
        "naive_cox",
        "adjusted_cox",
    }
    assert md.read_text().startswith("| condition |")


def test_summarize_reports_ms_per_fit_and_time_against_a_baseline(tmp_path):
    out = tmp_path / "res"
    res = runner.invoke(
        app, ["run", "flatiron", "--reps", "4", "-n", "300", "-w", "1", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    csv, md = tmp_path / "t.csv", tmp_path / "t.md"
    res = runner.invoke(
        app,
        ["summarize", str(out), "--baseline", "siptw", "--csv", str(csv), "--markdown", str(md)],
    )
    assert res.exit_code == 0, res.output
    head = md.read_text().splitlines()[0]
    assert "| ms/fit |" in head and "| time vs baseline |" in head
    assert "| 1.00x |" in md.read_text()  # siptw against itself
    table = pd.read_csv(csv)
    assert (table["ms_per_fit"] > 0).all()
    mine = table[table["estimator"] == "siptw"]
    assert (mine["time_ratio"] == 1.0).all()
    expected = table["ms_per_fit"] / table["outcome"].map(mine.set_index("outcome")["ms_per_fit"])
    np.testing.assert_allclose(table["time_ratio"], expected)
    plain = runner.invoke(app, ["summarize", str(out), "--markdown", str(md)])
    assert plain.exit_code == 0, plain.output
    assert "| ms/fit |" in md.read_text() and "1.00x" not in md.read_text()
    _one_line_error(
        runner.invoke(app, ["summarize", str(out), "--baseline", "nope"]),
        "baseline='nope' is not allowed",
        "siptw",
    )


def test_unreadable_result_part_is_a_clear_error(tmp_path):
    out = tmp_path / "res"
    res = runner.invoke(
        app, ["run", "flatiron", "--reps", "2", "-n", "300", "-w", "1", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    part = next((out / "parts").glob("*.parquet"))
    part.write_bytes(b"not parquet at all")
    res = runner.invoke(app, ["summarize", str(out)])
    assert res.exit_code == 2
    assert "is not a readable Parquet file" in res.output and "Traceback" not in res.output


# ---- the error taxonomy at the command line: user errors vs. bugs ----------------------------
def _one_line_error(res, *fragments: str) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "internal error" not in res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_a_kernel_bug_is_an_internal_error_with_its_traceback(tmp_path, monkeypatch):
    """LinAlgError is a ValueError: it used to be reported as the user's mistake (exit 2)."""

    def broken_kernel(*_args):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr("simulator.generate.K._cohort_chunk", broken_kernel)
    res = runner.invoke(app, ["simulate", "flatiron", "-n", "10", "-o", str(tmp_path / "c.csv")])
    assert res.exit_code == 1, res.output
    assert res.output.startswith("internal error — please report")
    assert "Traceback (most recent call last)" in res.output
    assert "broken_kernel" in res.output and "LinAlgError: Singular matrix" in res.output
    assert not (tmp_path / "c.csv").exists()


def test_an_internal_error_in_a_subprocess_exits_1_with_the_traceback_on_stderr(tmp_path):
    code = (
        "import sys, numpy as np, simulator.generate as g\n"
        "def bad(*a): raise np.linalg.LinAlgError('Singular matrix')\n"
        "g.K._cohort_chunk = bad\n"
        "from simulator.study.cli import app\n"
        "app(['simulate', 'flatiron', '-n', '10', '-o', sys.argv[1]], prog_name='rwesim')\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "c.parquet")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 1
    assert res.stderr.startswith("internal error — please report")
    assert "Traceback (most recent call last)" in res.stderr
    assert res.stderr.rstrip().endswith("numpy.linalg.LinAlgError: Singular matrix")


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("a bare ValueError from pandas or numpy"),
        KeyError("kernel_arg"),
        OSError(errno.EIO, "Input/output error"),
        RuntimeError("numba said no"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_non_project_errors_are_internal(exc, tmp_path, monkeypatch):
    def boom(*_a, **_k):
        raise exc

    monkeypatch.setattr("simulator.study.cli.run_study", boom)
    res = runner.invoke(app, ["run", "flatiron", "--reps", "2", "-o", str(tmp_path / "r")])
    assert res.exit_code == 1, res.output
    assert "internal error — please report" in res.output and "Traceback" in res.output


@pytest.mark.parametrize(
    ("exc", "fragments"),
    [
        (simulator.ScenarioError("outcomes.pfs_hr=0 is not allowed"), ["outcomes.pfs_hr=0"]),
        (
            simulator.CalibrationError("outcomes.os_hr=50 is out of reach", target="os_hr"),
            ["out of reach"],
        ),
        (StudyError("estimators: unknown estimator 'x'"), ["unknown estimator"]),
        (StoreError("out holds a finished run"), ["finished run"]),
        (EstimatorInputError("covariates=['agee'] not in the data"), ["agee"]),
        (tomllib.TOMLDecodeError("Invalid value (at line 1, column 8)"), ["line 1"]),
        (UserError("multi\nline\nmessage"), ["multi line message"]),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/y.toml"), ["/x/y.toml"]),
        (PermissionError(errno.EACCES, "Permission denied", "/ro/out"), ["/ro/out", "denied"]),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp"), ["/tmp", "directory"]),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/x"), ["/f/x"]),
        (OSError(errno.ENOSPC, "No space left on device", "/full/p.parquet"), ["No space"]),
        (OSError(errno.EROFS, "Read-only file system", "/ro/p.parquet"), ["Read-only"]),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, BaseException) else "",
)
def test_project_and_file_errors_are_one_line_exit_2(exc, fragments, tmp_path, monkeypatch):
    def boom(*_a, **_k):
        raise exc

    monkeypatch.setattr("simulator.study.cli.run_study", boom)
    res = runner.invoke(app, ["run", "flatiron", "--reps", "2", "-o", str(tmp_path / "r")])
    _one_line_error(res, *fragments)


def test_ctrl_c_during_run_says_interrupted_and_how_to_resume(tmp_path, monkeypatch):
    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr("simulator.study.cli.run_study", interrupted)
    res = runner.invoke(app, ["run", "flatiron", "--reps", "2", "-o", str(tmp_path / "r")])
    assert res.exit_code == 130
    assert res.output.strip() == "interrupted; finished results are kept; use --resume"


def test_ctrl_c_elsewhere_is_one_word(monkeypatch):
    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr("simulator.study.cli.resolve_scenario", interrupted)
    res = runner.invoke(app, ["show", "flatiron"])
    assert res.exit_code == 130 and res.output.strip() == "interrupted"


# ---- --truth-censoring -----------------------------------------------------------------------
def test_truth_censoring_rejects_a_bogus_value(tmp_path):
    res = runner.invoke(
        app, ["run", "flatiron", "-o", str(tmp_path / "r"), "--truth-censoring", "bogus"]
    )
    assert res.exit_code == 2
    assert "'bogus'" in res.output and "admin" in res.output and "study" in res.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("target", ["flatiron", "study-file"])
def test_truth_censoring_reaches_the_study_for_scenario_names_too(target, tmp_path, monkeypatch):
    """It used to be applied to study files only and silently ignored for scenario names."""
    if target == "study-file":
        path = tmp_path / "s.toml"
        path.write_text('[study]\nname = "s"\nscenarios = ["flatiron"]\nreps = 3\n')
        target = str(path)
    seen = {}

    def fake_run_study(study, output, **_kw):
        seen["study"] = study
        return SimpleNamespace(
            replicates_run=3, seconds=1.0, replicates_per_second=3.0, complete=False
        )

    monkeypatch.setattr("simulator.study.cli.run_study", fake_run_study)
    args = ["run", target, "--reps", "3", "-o", str(tmp_path / "r"), "--truth-censoring", "study"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert seen["study"].truth_censoring == "study"
    res = runner.invoke(app, args[:-2])
    assert seen["study"].truth_censoring == "admin"  # the default when not given


# ---- simulate: size and output checks before any work ---------------------------------------
def _no_calibration(monkeypatch):
    def forbidden(*_a, **_k):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr("simulator.study.cli._calibrated", forbidden)
    monkeypatch.setattr("simulator.study.cli.simulate_cohort", forbidden)


def test_simulate_too_many_patients_is_one_line_before_any_work(tmp_path, monkeypatch):
    _no_calibration(monkeypatch)
    res = runner.invoke(
        app, ["simulate", "flatiron", "-n", str(10**12), "-o", str(tmp_path / "c.parquet")]
    )
    _one_line_error(res, "n=1000000000000", "GiB of memory", "bytes per patient", "available")


def test_simulate_too_many_patients_in_a_subprocess(tmp_path):
    res = rwesim("simulate", "flatiron", "-n", str(10**12), "-o", str(tmp_path / "c.parquet"))
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "GiB" in res.stderr


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda p: p.mkdir() or p, ["is a directory"]),
        (lambda p: p.parent / "missing" / "c.parquet", ["does not exist"]),
        (lambda p: ((p.parent / "f").write_text("x"), p.parent / "f" / "c.csv")[1], ["f"]),
    ],
    ids=["output-is-a-directory", "missing-directory", "parent-is-a-file"],
)
def test_simulate_bad_output_paths(make, fragments, tmp_path, monkeypatch):
    _no_calibration(monkeypatch)
    out = make(tmp_path / "c.parquet")
    res = runner.invoke(app, ["simulate", "flatiron", "-n", "10", "-o", str(out), "--force"])
    _one_line_error(res, "--output=", *fragments)


def test_simulate_unwritable_output_directory(tmp_path, monkeypatch):
    _no_calibration(monkeypatch)
    monkeypatch.setattr("simulator.study.cli.os.access", lambda *_a, **_k: False)
    res = runner.invoke(app, ["simulate", "flatiron", "-n", "10", "-o", str(tmp_path / "c.csv")])
    _one_line_error(res, "not writable")


def test_simulate_write_failure_is_one_line_and_leaves_no_file(tmp_path, monkeypatch):
    def full_disk(self, path, *a, **k):
        Path(path).write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("pandas.DataFrame.to_parquet", full_disk)
    out = tmp_path / "c.parquet"
    res = runner.invoke(app, ["simulate", "flatiron", "-n", "10", "-o", str(out)])
    _one_line_error(res, "No space left on device")
    assert list(tmp_path.iterdir()) == []


# ---- scenario files a hostile user would try -------------------------------------------------
@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda p: (p.write_text(""), p)[1], ["is empty"]),
        (lambda p: (p.write_text("# only a comment\n"), p)[1], ["is empty"]),
        (lambda p: p.mkdir() or p, ["is a directory"]),
        (lambda p: (p.write_bytes(b"\xff\xfe\x00bad"), p)[1], ["not UTF-8"]),
        (lambda p: (p.write_text("[study]\nname = 1\n"), p)[1], ["unknown parameter", "study"]),
        (lambda p: (p.write_text("name = 'x'\nname = 'y'\n"), p)[1], ["not valid TOML"]),
        (lambda p: (p.write_text("[outcomes]\npfs_hr = 'low'\n"), p)[1], ["pfs_hr='low'"]),
    ],
    ids=["empty", "comment-only", "directory", "binary", "study-file", "duplicate-key", "type"],
)
@pytest.mark.parametrize("command", ["show", "calibrate", "simulate"])
def test_bad_scenario_files_are_one_line(command, make, fragments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = make(tmp_path / "my.toml")
    res = runner.invoke(app, [command, str(path)])
    _one_line_error(res, *fragments)


def test_run_refuses_an_empty_scenario_file(tmp_path):
    """An empty file used to run silently as the default scenario."""
    (tmp_path / "empty.toml").write_text("")
    res = runner.invoke(app, ["run", str(tmp_path / "empty.toml"), "-o", str(tmp_path / "r")])
    _one_line_error(res, "is empty")
    assert not (tmp_path / "r").exists()


def test_run_refuses_a_binary_study_file(tmp_path):
    (tmp_path / "s.toml").write_bytes(b"\xff\xfe\x00")
    res = runner.invoke(app, ["run", str(tmp_path / "s.toml"), "-o", str(tmp_path / "r")])
    _one_line_error(res, "not a text (UTF-8) TOML file")


def test_empty_scenario_name_and_conflicting_show_flags():
    _one_line_error(runner.invoke(app, ["show", ""]), "scenario='' is not allowed")
    _one_line_error(
        runner.invoke(app, ["show", "flatiron", "--json", "--toml"]), "--json and --toml"
    )


def test_show_announces_calibration_of_an_uncalibrated_scenario(tmp_path, monkeypatch):
    monkeypatch.setenv("RWESIM_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "small.toml"
    # a target the shipped calibrations do not cover (the exact engine's calibration does
    # not depend on the Monte Carlo population settings)
    simulator.get_scenario("flatiron").replace(name="small", **{"outcomes.pfs_hr": 0.61}).save(path)
    res = runner.invoke(app, ["calibrate", str(path)])
    assert res.exit_code == 0, res.output
    assert "calibrating 'small' by exact integration (once; cached)" in res.stderr
    again = runner.invoke(app, ["calibrate", str(path)])
    assert "calibrating" not in again.stderr  # cached now


def test_run_with_too_many_patients_per_replicate_is_one_line(tmp_path):
    res = runner.invoke(app, ["run", "flatiron", "-n", str(10**12), "-o", str(tmp_path / "r")])
    _one_line_error(res, "n=1000000000000", "GiB")
    assert not (tmp_path / "r").exists()


def test_the_cli_does_not_need_click_installed(tmp_path):
    """Recent typer vendors click; importing click directly broke `pip install .` (no click)."""
    code = (
        "import sys\n"
        "sys.modules['click'] = None  # as if click were not installed\n"
        "try:\n"
        "    import typer\n"
        "except ImportError:\n"
        "    print('typer needs click'); sys.exit(0)\n"
        "from simulator.study.cli import app\n"
        "app(['simulate', 'flatiron', '-n', '0'], prog_name='rwesim')\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    if res.stdout.strip() == "typer needs click":
        pytest.skip("this typer depends on click")
    assert res.returncode == 2, res.stderr
    assert "n=0 is not allowed" in res.stderr


def test_plot_and_summarize_a_run_without_results_yet(tmp_path):
    """plots raised a bare ValueError here (now an internal error), so the CLI checks first."""
    out = tmp_path / "r"
    res = runner.invoke(
        app, ["run", "flatiron", "--reps", "2", "-n", "300", "-w", "1", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    for part in (out / "parts").glob("*.parquet"):
        part.unlink()  # as if every chunk were still running
    _one_line_error(runner.invoke(app, ["plot", str(out)]), "no finished replicates")
    _one_line_error(runner.invoke(app, ["summarize", str(out)]), "no finished replicates")


# ---- scenario kinds on the scenario commands ---------------------------------------------
def test_calibrate_refuses_a_scenario_kind_in_one_line(tmp_path):
    toml = Path(__file__).parents[1] / "simulator" / "scenarios" / "austin-vignette.toml"
    for target in ("switching", "austin-vignette", str(toml)):
        res = runner.invoke(app, ["calibrate", target])
        assert res.exit_code == 2, (target, res.output)
        assert "calibrate is for the MBC scenarios" in res.output
        assert "Traceback" not in res.output


def test_simulate_and_show_take_the_switching_kind(tmp_path):
    out = tmp_path / "s.parquet"
    res = runner.invoke(app, ["simulate", "switching", "-n", "50", "-o", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(out)
    assert len(df) == 50 and {"switch_months", "os_months", "os_event"} <= set(df.columns)
    assert "treated)" not in res.output  # a switch time, not a 0/1 arm: no count of treated
    res = runner.invoke(app, ["simulate", "switching", "-n", "5", "-o", str(out), "--latent"])
    assert res.exit_code == 2 and "not allowed for the scenario kind 'switching'" in res.output
    res = runner.invoke(app, ["show", "switching", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["treatment"] == "switch_months" and "td_cox" in doc["estimators"]
    truths = {(r["estimand"], r["measure"], r["censoring"]): r["theta"] for r in doc["truth"]}
    assert truths[("conditional", "log_hr", "admin")] == pytest.approx(math.log(0.8))
    assert ("strategy", "surv_diff", "admin") in truths
    assert runner.invoke(app, ["show", "switching", "--toml"]).exit_code == 2
