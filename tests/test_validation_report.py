"""`rwesim validate` regenerates docs/validation.md from computed numbers."""

import json

import pytest
from typer.testing import CliRunner

from simulator.study.cli import app


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("validate")
    bench = tmp / "bench.json"
    bench.write_text(
        json.dumps(
            {
                "benchmarks": [
                    {"group": "g", "name": "test_x[rwesim]", "stats": {"median": 0.001}},
                    {"group": "g", "name": "test_x[lifelines]", "stats": {"median": 0.25}},
                ]
            }
        )
    )
    out = tmp / "validation.md"
    res = CliRunner().invoke(
        app,
        [
            "validate",
            "--reps",
            "2",
            "-o",
            str(out),
            "--results",
            str(tmp / "results"),
            "--benchmarks",
            str(bench),
            "-w",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    return out.read_text()


def test_sections_and_command(report):
    assert report.startswith("# rwesim validation report")
    assert "rwesim validate --reps 2" in report
    for section in ("## 1. Calibration", "## 2. Bias and coverage", "## 3. Speed"):
        assert section in report


def test_calibration_rows_hit_the_published_targets(report):
    row = next(
        line for line in report.splitlines() if line.startswith("| flatiron | rwPFS marginal HR")
    )
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "0.58" and float(cells[4]) < 3  # |diff|/bound
    assert "published 78.3% vs 68.0%" in report


def test_every_scenario_and_estimator_is_scored(report):
    for name in ("flatiron,", "po25-rct,", "flatiron-lung,", "unmeasured-confounding,"):
        assert name in report
    for est in ("sIPTW", "PSM", "naive Cox", "adjusted Cox"):
        assert f"| {est} |" in report


def test_speed_ratio_is_computed(report):
    assert "250.0x" in report


def test_bad_reps_is_a_user_error(tmp_path):
    res = CliRunner().invoke(app, ["validate", "--reps", "0", "-o", str(tmp_path / "x.md")])
    assert res.exit_code == 2 and "--reps=0" in res.output
