"""The rwesim command line: happy paths and one-line errors (exit 2, no traceback)."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from simulator.study.cli import app

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
