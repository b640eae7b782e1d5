"""Estimator variants: a registered estimator with options under a name of its own.

In Python (``Estimator.variant``, ``Study(variants=...)``), in the study file
(``[estimators.NAME]`` tables) and on the command line with a process pool.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from estimators import EstimatorInputError, get_estimator, siptw
from simulator import simulate
from simulator.study import Study, load_study, run_study
from simulator.study import workers as W
from simulator.study.cli import app
from simulator.study.exceptions import StudyError
from simulator.study.performance import summarize
from simulator.study.plots import estimate_distributions
from simulator.study.replicate import chunk_estimators
from simulator.study.runner import plan_chunks
from simulator.study.spec import DEFAULT_COVARIATES, study_from_dict
from simulator.study.store import Store

ATT = {"base": "siptw", "estimand": "ATT"}
SMALL = dict(reps=3, chunk_reps=2, sample_sizes=(300,), outcomes=("pfs",))


def _run(study: Study, out: Path, **kw) -> pd.DataFrame:
    run_study(study, out, progress=False, log=lambda _m: None, **kw)
    return Store(out).read_results()


def _fits(rows: pd.DataFrame) -> pd.DataFrame:
    """Everything but the wall time, in a fixed order."""
    return (
        rows.drop(columns="seconds")
        .sort_values(["condition", "rep", "outcome", "estimator"])
        .reset_index(drop=True)
    )


# ---- Estimator.variant ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return simulate("flatiron", n=400, seed=5)


def test_variant_runs_its_base_with_the_options(cohort):
    v = get_estimator("siptw").variant("siptw_att", estimand="ATT", truncate=(1, 99))
    args = (cohort, "pfs_months", "pfs_event", "treated", list(DEFAULT_COVARIATES))
    got = v(*args)
    want = siptw(*args, estimand="ATT", truncate=(1, 99))
    assert (got.estimate, got.se, got.estimand) == (want.estimate, want.se, "ATT")
    assert v.name == "siptw_att" and v.estimand == "ATT"
    assert v.accepts == get_estimator("siptw").accepts and v.frame is False


def test_variant_estimand_follows_only_an_estimand_option():
    assert get_estimator("ps_strata_cox").variant("s10", n_strata=10).estimand == "ATE"
    assert get_estimator("psm").variant("psm_wide", caliper=None).estimand == "ATT"
    assert get_estimator("siptw").variant("plain").estimand == "ATE"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"trunc": (1, 99)}, r"siptw_x: unknown option 'trunc' for siptw; it accepts \['estimand'"),
        ({"estimand": "ATX"}, r"siptw_x: estimand='ATX' is not allowed; use one of"),
    ],
)
def test_variant_bad_options(options, match):
    with pytest.raises(EstimatorInputError, match=match):
        get_estimator("siptw").variant("siptw_x", **options)


def test_variant_needs_a_name():
    with pytest.raises(EstimatorInputError, match=r"name='' is not allowed"):
        get_estimator("siptw").variant("")


# ---- the study spec ------------------------------------------------------------------------
def test_study_with_variants_validates_and_round_trips():
    s = Study(
        estimators=("siptw", "siptw_att", "adj_breslow"),
        variants={"siptw_att": ATT, "adj_breslow": {"base": "adjusted_cox", "ties": "breslow"}},
        **SMALL,
    )
    assert s.options_for("siptw_att") == {"estimand": "ATT"}
    assert s.base_of("siptw_att") == "siptw" and s.base_of("siptw") == "siptw"
    # a variant of adjusted Cox adjusts for the same organ sites as adjusted Cox
    assert s.covariates_for("adj_breslow") == s.covariates_for("adjusted_cox")
    assert study_from_dict(s.to_dict()) == s


def test_a_study_without_variants_keeps_its_identity():
    assert "variants" not in Study().to_dict()  # run.json of earlier versions is resumable


def test_variant_covariates_option():
    s = Study(
        estimators=("ps_cox", "ps_cox_small"),
        variants={"ps_cox_small": {"base": "ps_cox", "covariates": ["age", "ecog"]}},
        **SMALL,
    )
    assert s.covariates_for("ps_cox_small") == ["age", "ecog"]
    chunk = plan_chunks(s, s.conditions())[0]
    assert chunk.bases == {"ps_cox_small": "ps_cox"}
    assert chunk.options["ps_cox_small"] == {}  # covariates travel in chunk.covariates


def test_chunks_carry_variants_as_data():
    s = Study(estimators=("siptw", "siptw_att"), variants={"siptw_att": ATT}, **SMALL)
    chunk = plan_chunks(s, s.conditions())[0]
    ests = chunk_estimators(chunk)
    assert [e.name for e in ests] == ["siptw", "siptw_att"]
    assert [e.estimand for e in ests] == ["ATE", "ATT"]


@pytest.mark.parametrize(
    ("estimators", "variants", "extra", "match"),
    [
        (("v",), {"v": {"base": "nope"}}, {}, r"\[estimators.v\]: base='nope' is not allowed; use"),
        (
            ("v", "w"),
            {"v": ATT, "w": {"base": "v"}},
            {},
            r"\[estimators.w\]: base='v' is not allowed \(a variant's base must be a registered",
        ),
        (("psm",), {"psm": ATT}, {}, r"\[estimators.psm\]: 'psm' is a registered estimator"),
        (
            ("v",),
            {"v": {"base": "siptw", "trunc": 1}},
            {},
            r"\[estimators.v\]: unknown option 'trunc'; siptw accepts \['covariates', 'estimand'",
        ),
        (
            ("v",),
            {"v": {"base": "siptw", "estimand": "ATX"}},
            {},
            r"\[estimators.v\]: v: estimand='ATX' is not allowed",
        ),
        (("v",), {"v": 3}, {}, r"\[estimators.v\]=3 is not allowed; give a table with base ="),
        (("v",), {"v": {"estimand": "ATT"}}, {}, r"\[estimators.v\] has no base; add base ="),
        (("v",), {"v": {"base": ["siptw"]}}, {}, r"base=\['siptw'\] is not allowed"),
        (("siptw",), [("v", ATT)], {}, r"variants=\[.*is not allowed; give a table"),
        (("siptw", "w"), {"v": ATT}, {}, r"unknown estimator 'w'; available: \[.*'v'\]"),
        (
            ("v",),
            {"v": ATT},
            {"estimator_options": {"v": {"truncate": [1, 99]}}},
            r"estimator_options\['v'\]: 'v' is a variant; give its options in its own table",
        ),
        (
            ("v",),
            {"v": {"base": "ps_cox", "covariates": ["age", "pfs_months"]}},
            {},
            r"v.covariates: 'pfs_months' is not a covariate column",
        ),
    ],
)
def test_bad_variants_are_clear_errors(estimators, variants, extra, match):
    with pytest.raises(StudyError, match=match):
        Study(estimators=estimators, variants=variants, **extra, **SMALL)


def _study_file(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "study.toml"
    p.write_text(textwrap.dedent(body))
    return p


def test_study_file_variant_tables(tmp_path):
    p = _study_file(
        tmp_path,
        """
        [study]
        name = "variants"
        estimators = ["siptw", "siptw_att", "ps_strata10"]

        [estimators.siptw_att]
        base = "siptw"
        estimand = "ATT"
        truncate = [1, 99]

        [estimators.ps_strata10]
        base = "ps_strata_cox"
        n_strata = 10
        """,
    )
    s = load_study(p)
    assert s.variants == {
        "siptw_att": {"base": "siptw", "estimand": "ATT", "truncate": [1, 99]},
        "ps_strata10": {"base": "ps_strata_cox", "n_strata": 10},
    }
    assert s.options_for("ps_strata10") == {"n_strata": 10}


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (
            'estimators = ["siptw"]\n[study]\nname = "x"\n',
            r"estimators=\['siptw'\] at the top level is not allowed; the list of estimators",
        ),
        (
            '[study]\nname = "x"\n[study.variants.v]\nbase = "siptw"\n',
            r"define variants as top-level \[estimators.NAME\] tables",
        ),
        ('[study]\nestimators = ["v"]\n[estimators]\nv = 3\n', r"\[estimators.v\]=3"),
    ],
)
def test_bad_study_file_shapes(tmp_path, body, match):
    with pytest.raises(StudyError, match=match):
        load_study(_study_file(tmp_path, body))


# ---- running them ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> pd.DataFrame:
    """siptw, psm and ps_cox without any variant."""
    s = Study(name="b", estimators=("siptw", "psm", "ps_cox"), **SMALL)
    return _run(s, tmp_path_factory.mktemp("b") / "out", workers=1)


VARIANTS = {
    "siptw_att": ATT,
    "psm_nocal": {"base": "psm", "caliper": None, "random_state": 7},
    "ps_cox_few": {"base": "ps_cox", "covariates": ["age", "ecog", "liver_mets"]},
    "ps_spline6": {"base": "ps_spline_cox", "spline_df": 6, "ps_method": "firth"},
}


@pytest.fixture(scope="module")
def with_variants(tmp_path_factory):
    s = Study(
        name="v", estimators=("siptw", "psm", "ps_cox", *VARIANTS), variants=VARIANTS, **SMALL
    )
    out = tmp_path_factory.mktemp("v") / "out"
    return s, out, _run(s, out, workers=1)


def test_adding_variants_changes_no_other_result(baseline, with_variants):
    _, _, rows = with_variants
    others = rows[rows["estimator"].isin(["siptw", "psm", "ps_cox"])]
    pd.testing.assert_frame_equal(_fits(others), _fits(baseline))


def test_variant_rows_equal_the_base_with_those_options(tmp_path, with_variants):
    _, _, rows = with_variants
    s = Study(
        name="o",
        estimators=("siptw", "psm"),
        estimator_options={
            "siptw": {"estimand": "ATT"},
            "psm": {"caliper": None, "random_state": 7},
        },
        **SMALL,
    )
    direct = _run(s, tmp_path / "o", workers=1)
    for variant, base in (("siptw_att", "siptw"), ("psm_nocal", "psm")):
        got = _fits(rows[rows["estimator"] == variant]).drop(columns="estimator")
        want = _fits(direct[direct["estimator"] == base]).drop(columns="estimator")
        pd.testing.assert_frame_equal(got, want)
    assert set(rows.loc[rows["estimator"] == "siptw_att", "estimand"]) == {"ATT"}
    assert set(rows.loc[rows["estimator"] == "siptw_att", "method"]) == {"siptw"}


def test_variants_are_summarized_against_their_own_estimand(with_variants):
    _, out, rows = with_variants
    store = Store(out)
    table = summarize(rows, store.truths()).set_index("estimator")
    assert set(VARIANTS) <= set(table.index)
    truths = store.truths()
    att = truths[(truths["estimand"] == "ATT") & (truths["outcome"] == "pfs")]["theta"].iloc[0]
    ate = truths[(truths["estimand"] == "ATE") & (truths["outcome"] == "pfs")]["theta"].iloc[0]
    assert att != ate
    assert table.loc["siptw_att", "theta"] == att and table.loc["siptw", "theta"] == ate
    assert table.loc["ps_spline6", "estimand"] == "ATE"
    assert (table["n_sim"] == SMALL["reps"]).all()


def test_variants_in_the_figures(with_variants):
    _, out, rows = with_variants
    store = Store(out)
    fig = estimate_distributions(rows, store.truths(), store.read_meta()["conditions"], "pfs")
    ticks = " ".join(t.get_text() for ax in fig.axes for t in ax.get_xticklabels())
    for name in VARIANTS:
        assert name in ticks
    assert "siptw_att\nATT" in ticks


def test_spawned_workers_rebuild_variants(tmp_path, monkeypatch, with_variants):
    """A spawned worker knows only the registry's built-ins: variants reach it as data."""
    s, _, rows = with_variants
    monkeypatch.setattr(W, "start_method", lambda: "spawn")
    pooled = _run(s, tmp_path / "pool", workers=2)
    pd.testing.assert_frame_equal(_fits(pooled), _fits(rows))


def test_cli_run_with_variants_on_two_workers(tmp_path):
    study = _study_file(
        tmp_path,
        """
        [study]
        name = "cli-variants"
        reps = 4
        chunk_reps = 1
        sample_sizes = [300]
        outcomes = ["pfs"]
        estimators = ["siptw", "siptw_att", "ps_strata10"]

        [estimators.siptw_att]
        base = "siptw"
        estimand = "ATT"

        [estimators.ps_strata10]
        base = "ps_strata_cox"
        n_strata = 10
        """,
    )
    out, csv = tmp_path / "out", tmp_path / "t.csv"
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "NUMBA_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "simulator.study", "run", str(study), "-w", "2", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )
    assert res.returncode == 0, res.stderr
    rows = Store(out).read_results()
    assert rows.groupby("estimator").size().to_dict() == {
        "ps_strata10": 4,
        "siptw": 4,
        "siptw_att": 4,
    }
    assert (rows["error"] == "").all()
    # the same study in one process: identical fits
    one = _run(load_study(study), tmp_path / "one", workers=1)
    pd.testing.assert_frame_equal(_fits(rows), _fits(one))
    runner = CliRunner()
    res = runner.invoke(app, ["summarize", str(out), "--csv", str(csv)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(csv)
    assert dict(zip(table["estimator"], table["estimand"], strict=True)) == {
        "siptw": "ATE",
        "siptw_att": "ATT",
        "ps_strata10": "ATE",
    }
    assert "siptw_att" in res.output
    res = runner.invoke(app, ["plot", str(out), "-o", str(tmp_path / "fig")])
    assert res.exit_code == 0, res.output
    # -e picks a variant the file defines
    res = runner.invoke(
        app, ["run", str(study), "-e", "siptw_att", "-w", "1", "-o", str(tmp_path / "e")]
    )
    assert res.exit_code == 0, res.output
    assert set(Store(tmp_path / "e").read_results()["estimator"]) == {"siptw_att"}


def test_variant_row_when_a_fit_fails_carries_the_variant_estimand(tmp_path):
    """Option values are the estimator's to check (at each fit): a failed fit's row is
    labelled with the variant's declared estimand, so it is counted against its truth."""
    s = Study(
        name="f",
        estimators=("siptw", "siptw_att_bad"),
        variants={"siptw_att_bad": {"base": "siptw", "estimand": "ATT", "pool_rare": -1}},
        **SMALL,
    )
    with pytest.raises(StudyError, match=r"every fit of estimator 'siptw_att_bad'"):
        _run(s, tmp_path / "f", workers=1)
    rows = Store(tmp_path / "f").read_results()
    bad = rows[rows["estimator"] == "siptw_att_bad"]
    assert set(bad["estimand"]) == {"ATT"} and len(bad) == SMALL["reps"]
    assert bad["error"].str.contains("pool_rare").all()
    assert np.isnan(bad["estimate"]).all()
    assert (rows.loc[rows["estimator"] == "siptw", "error"] == "").all()


def test_more_estimators_than_colours_stay_distinguishable(with_variants):
    """Seven estimators (three plus four variants): the seventh line is dashed."""
    from simulator.study.plots import nested_loop_plot

    _, out, rows = with_variants
    store = Store(out)
    fig = nested_loop_plot(summarize(rows, store.truths()), store.read_meta()["conditions"])
    lines = [a for ax in fig.axes for a in ax.patches if str(a.get_gid()).startswith("measure:")]
    assert len(lines) == 7
    looks = {(tuple(a.get_edgecolor()), a.get_linestyle()) for a in lines}
    assert len(looks) == 7
