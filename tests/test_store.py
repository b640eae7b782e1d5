"""The results record and the results store: one declaration, format versions, the
directory claim, study identity in every part, corrupt parts, overwrite, early checks,
adding replicates."""

import json
import math
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from estimators import EffectEstimate
from estimators.estimands import MEASURES
from simulator.study import open_results, plots, record, runner, summarize
from simulator.study.runner import run_study
from simulator.study.spec import Study
from simulator.study.store import SCHEMA, Store, StoreError, open_store, study_identity

QUIET = {"progress": False, "log": lambda msg: None}


def small(**changes) -> Study:
    base = dict(
        name="s", reps=8, chunk_reps=4, sample_sizes=(300,), seed=5, estimators=("naive_cox",)
    )
    return Study(**{**base, **changes})


def rows_of(path) -> pd.DataFrame:
    return Store(Path(path)).read_results().drop(columns="seconds")


# ---- the EffectEstimate record ------------------------------------------------------------
def test_from_fit_keeps_its_positional_order_and_log_hr_properties():
    e = EffectEstimate.from_fit("m", "ATE", -0.5, 0.1, 100, 40)
    assert (e.estimate, e.se, e.n, e.events, e.measure) == (-0.5, 0.1, 100, 40, "log_hr")
    assert math.isnan(e.horizon) and e.error == "" and e.converged
    assert e.log_hr == -0.5 and e.hr == pytest.approx(math.exp(-0.5))
    assert e.hr_ci == pytest.approx((math.exp(e.ci_low), math.exp(e.ci_high)))
    assert e.ci_low == pytest.approx(-0.5 - 1.959963984540054 * 0.1)
    assert EffectEstimate.from_fit("m", "ATE", log_hr=-0.5, se=0.1, n=100, events=40) == e
    assert "HR 0.607" in e.summary()


def test_other_measures_carry_a_horizon_and_have_no_hr():
    e = EffectEstimate.from_fit("km", "ATE", 1.5, 0.4, 200, 80, measure="rmst_diff", horizon=24)
    assert e.measure == "rmst_diff" and e.horizon == 24.0 and e.estimate == 1.5
    with pytest.raises(AttributeError, match="measure='log_hr' only"):
        _ = e.hr
    with pytest.raises(AttributeError, match="measure='log_hr' only"):
        _ = e.log_hr
    assert "rmst_diff at 24 months +1.5000" in e.summary()
    with pytest.raises(ValueError, match="measure='hr' is not allowed"):
        EffectEstimate.from_fit("m", "ATE", 1.0, 0.1, 10, 5, measure="hr")
    with pytest.raises(ValueError, match="horizon=nan is not allowed for measure='surv_diff'"):
        EffectEstimate.from_fit("m", "ATE", 0.1, 0.1, 10, 5, measure="surv_diff")
    with pytest.raises(ValueError, match="horizon=12 is not allowed for measure='log_hr'"):
        EffectEstimate.from_fit("m", "ATE", 0.1, 0.1, 10, 5, horizon=12)
    assert set(MEASURES) >= {"log_hr", "rmst_diff", "surv_diff", "median_diff"}


def test_failed_record():
    e = EffectEstimate.failed("siptw", "ATE", "SeparationError: x")
    assert e.error == "SeparationError: x" and not e.converged
    assert all(math.isnan(getattr(e, f)) for f in ("estimate", "se", "ci_low", "p_value", "ess"))
    assert (e.n, e.events) == (0, 0)
    assert "FAILED: SeparationError: x" in e.summary()
    with pytest.raises(ValueError, match="error=''"):
        EffectEstimate.failed("siptw", "ATE", "")


# ---- one declaration ----------------------------------------------------------------------
def test_schema_row_failed_row_and_figure_columns_derive_from_one_record():
    est_fields = [f.name for f in fields(EffectEstimate) if f.name != "diagnostics"]
    assert record.NAMES == ("condition", "rep", "outcome", "estimator", *est_fields, "seconds")
    assert SCHEMA.names == list(record.NAMES) and SCHEMA is record.SCHEMA
    coords = {"condition": 0, "rep": 3, "outcome": "os", "estimator": "x"}
    good = record.row(coords, EffectEstimate.from_fit("x", "ATT", 0.2, 0.1, 50, 20), 0.01)
    bad = record.failed_row(coords, "x", "ATT", "ValueError: no", 0.02)
    assert list(good) == list(bad) == list(record.NAMES)
    assert math.isnan(bad["estimate"]) and bad["error"] == "ValueError: no"
    assert set(plots.RESULT_COLUMNS) <= set(record.NAMES)
    assert set(record.SCORE_COLUMNS) <= set(record.NAMES)
    # the schema holds both rows
    table = pa.Table.from_pandas(record.frame([good, bad]), schema=SCHEMA, preserve_index=False)
    assert table.num_rows == 2


# ---- format versions -------------------------------------------------------------------------
V1_SCHEMA = pa.schema(
    [
        ("condition", pa.int32()),
        ("rep", pa.int32()),
        ("outcome", pa.string()),
        ("estimator", pa.string()),
        ("estimand", pa.string()),
        ("log_hr", pa.float64()),
        ("se", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("p_value", pa.float64()),
        ("converged", pa.bool_()),
        ("n", pa.int32()),
        ("events", pa.int32()),
        ("ess", pa.float64()),
        ("seconds", pa.float64()),
        ("error", pa.string()),
        ("warnings", pa.string()),
    ]
)


def write_v1(root: Path) -> None:
    """A results directory as rwesim 0.1 wrote it."""
    (root / "parts").mkdir(parents=True)
    rng = np.random.default_rng(1)
    b = -0.4 + rng.normal(0, 0.1, 20)
    df = pd.DataFrame(
        {
            "condition": 0,
            "rep": range(20),
            "outcome": "pfs",
            "estimator": "naive_cox",
            "estimand": "crude",
            "log_hr": b,
            "se": 0.1,
            "ci_low": b - 0.196,
            "ci_high": b + 0.196,
            "p_value": 0.01,
            "converged": True,
            "n": 300,
            "events": 200,
            "ess": 300.0,
            "seconds": 0.001,
            "error": "",
            "warnings": "",
        }
    )
    pq.write_table(
        pa.Table.from_pandas(df, schema=V1_SCHEMA, preserve_index=False),
        root / "parts" / "c0000-k00000.parquet",
    )
    truth = {"pfs": {"conditional": [-0.5, 0.001], "ATE": [-0.4, 0.001], "crude": [-0.4, 0.001]}}
    meta = {
        "format": "rwesim-results",
        "format_version": 1,
        "status": "complete",
        "study": small(reps=20, chunk_reps=20).to_dict(),
        "conditions": [
            {"index": 0, "label": "flatiron, n=300", "fingerprint": "x", "n": 300, "truth": truth}
        ],
    }
    (root / "run.json").write_text(json.dumps(meta))


def test_v1_directory_is_read_as_the_generic_record(tmp_path):
    write_v1(tmp_path)
    store = open_results(tmp_path)
    df = store.read_results()
    assert list(df.columns) == list(record.NAMES)
    assert (df["measure"] == "log_hr").all() and df["horizon"].isna().all()
    v1 = pq.read_table(tmp_path / "parts" / "c0000-k00000.parquet").to_pandas()
    assert df["estimate"].tolist() == v1["log_hr"].tolist()
    table = summarize(tmp_path)
    assert table.loc[0, "bias"] == pytest.approx(v1["log_hr"].mean() + 0.4)
    assert table.loc[0, "estimand"] == "crude" and table.loc[0, "theta"] == -0.4


def test_v1_directory_cannot_be_resumed_and_says_which_version(tmp_path):
    write_v1(tmp_path)
    with pytest.raises(StoreError, match=r"format version 1 \(rwesim 0\.1\).*not resumed"):
        run_study(small(reps=20, chunk_reps=20), tmp_path, workers=1, resume=True, **QUIET)


def test_unknown_format_version_is_refused(tmp_path):
    write_v1(tmp_path)
    meta = json.loads((tmp_path / "run.json").read_text())
    meta["format_version"] = 9
    (tmp_path / "run.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=r"format version 9.*reads format versions \[1, 2\]"):
        open_results(tmp_path)


# ---- the claim ---------------------------------------------------------------------------
def test_a_claimed_directory_is_refused_to_a_second_run(tmp_path):
    spec = small().to_dict()
    first = open_store(tmp_path, spec, resume=False, overwrite=False)
    try:
        # a second run of another seed, started while the first one computes its truths
        with pytest.raises(StoreError, match=r"another rwesim run is writing to .*\(pid \d+"):
            run_study(small(seed=6), tmp_path, workers=1, **QUIET)
        with pytest.raises(StoreError, match="another rwesim run"):
            open_store(tmp_path, spec, resume=True, overwrite=False)
    finally:
        first.release()
    # the claim is written at once: a later run of another seed is a different study
    with pytest.raises(StoreError, match=r"different study \(seed: 5 -> 6\)"):
        run_study(small(seed=6), tmp_path, workers=1, **QUIET)


def test_shards_share_a_directory_but_not_a_shard(tmp_path):
    spec = small().to_dict()
    a = open_store(tmp_path, spec, resume=True, overwrite=False, shard=(0, 2))
    try:
        b = open_store(tmp_path, spec, resume=True, overwrite=False, shard=(1, 2))
        b.release()
        with pytest.raises(StoreError, match="another rwesim run"):
            open_store(tmp_path, spec, resume=True, overwrite=False, shard=(0, 2))
        with pytest.raises(StoreError, match="another rwesim run"):
            open_store(tmp_path, spec, resume=True, overwrite=False)  # unsharded: everything
    finally:
        a.release()


def test_whole_spec_is_checked_on_resume(tmp_path):
    run_study(small(), tmp_path, workers=1, shard=(0, 2), **QUIET)
    with pytest.raises(StoreError, match=r"different study \(outcomes"):
        run_study(small(outcomes=("os",)), tmp_path, workers=1, resume=True, **QUIET)
    with pytest.raises(StoreError, match=r"different study \(fit_timeout: None -> 5"):
        run_study(small(fit_timeout=5), tmp_path, workers=1, resume=True, **QUIET)


# ---- identity, corrupt parts -----------------------------------------------------------------
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    run_study(small(), out, workers=1, **QUIET)
    return out


def test_every_part_is_stamped_with_the_study_identity(reference):
    identity = study_identity(json.loads(json.dumps(small().to_dict())))
    assert Store(reference).identity == identity
    for p in (reference / "parts").glob("*.parquet"):
        md = pq.read_metadata(p).metadata
        assert md[b"rwesim.study"].decode() == identity
        assert json.loads(md[b"rwesim.part"])["reps"] in ([0, 4], [4, 8])
    # reps is not part of the identity (replicates can be added); the seed is
    assert study_identity({**small().to_dict(), "reps": 99}) == identity
    assert study_identity(small(seed=6).to_dict()) != identity


def test_a_part_copied_from_another_study_is_refused_not_merged(reference, tmp_path):
    other = tmp_path / "other"
    run_study(small(seed=6), other, workers=1, **QUIET)
    mine = tmp_path / "mine"
    run_study(small(), mine, workers=1, shard=(0, 2), **QUIET)
    shutil.copy(other / "parts" / "c0000-k00001.parquet", mine / "parts")
    with pytest.raises(StoreError, match=r"c0000-k00001\.parquet belongs to another study"):
        Store(mine).read_results()
    with pytest.raises(StoreError, match="belongs to another study"):
        run_study(small(), mine, workers=1, resume=True, **QUIET)
    with pytest.raises(StoreError, match="belongs to another study"):
        summarize(mine)


def test_a_corrupt_part_is_not_done_and_is_run_again(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    meta = json.loads((out / "run.json").read_text())
    meta["status"] = "running"
    (out / "run.json").write_text(json.dumps(meta))
    part = out / "parts" / "c0000-k00001.parquet"
    part.write_bytes(part.read_bytes()[:100])  # truncated by a full disk, say
    assert Store(out).done() == {(0, 0)}
    with pytest.raises(StoreError, match=r"not a readable Parquet file.*--resume"):
        Store(out).read_results()
    notes = []
    report = run_study(small(), out, workers=1, resume=True, progress=False, log=notes.append)
    assert report.tasks_run == 1 and report.complete
    assert any("c0000-k00001.parquet is unreadable" in n and "runs again" in n for n in notes)
    pd.testing.assert_frame_equal(rows_of(out), rows_of(reference), check_exact=True)


# ---- overwrite, early checks ------------------------------------------------------------------
def test_overwrite_removes_old_plots(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    (out / "plots").mkdir()
    (out / "plots" / "pfs-zip-c0007.png").write_bytes(b"old")
    run_study(small(seed=9), out, workers=1, overwrite=True, **QUIET)
    assert not (out / "plots").exists()
    assert Store(out).read_meta()["study"]["seed"] == 9


def test_edited_scenario_is_refused_on_resume_before_any_truth(tmp_path, monkeypatch):
    import simulator

    scenario = tmp_path / "my.toml"
    scenario.write_text(simulator.get_scenario("flatiron").to_toml())
    study = small(scenarios=(str(scenario),))
    before = study.conditions()[0].scenario.fingerprint()
    run_study(study, tmp_path / "out", workers=1, shard=(0, 2), **QUIET)
    text = scenario.read_text()
    assert "truth_batches = 20" in text
    scenario.write_text(text.replace("truth_batches = 20", "truth_batches = 25"))
    edited = small(scenarios=(str(scenario),))
    assert edited.conditions()[0].scenario.fingerprint() != before

    def no_truths(*args, **kwargs):
        raise AssertionError("truths computed before the resume check")

    monkeypatch.setattr(runner, "condition_meta", no_truths)
    monkeypatch.setattr(runner, "warm_up", no_truths)
    with pytest.raises(StoreError, match=r"has changed since the run .* started"):
        run_study(edited, tmp_path / "out", workers=1, resume=True, **QUIET)


def test_unusable_output_directory_is_reported_before_warm_up(tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the directory check")

    monkeypatch.setattr(runner, "warm_up", no_work)
    monkeypatch.setattr(runner, "condition_meta", no_work)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create output directory"):
        run_study(small(), tmp_path / "file" / "out", workers=2, **QUIET)


@pytest.mark.skipif(
    not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
    reason="root writes anywhere",
)
def test_read_only_output_directory_is_reported_before_warm_up(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "warm_up", lambda *a: pytest.fail("warm-up before the check"))
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="not writable"):
            run_study(small(), out, workers=2, **QUIET)
    finally:
        out.chmod(0o755)


def test_a_failed_fresh_run_leaves_no_directory(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "condition_meta", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_study(small(), tmp_path / "out", workers=1, **QUIET)
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(KeyboardInterrupt):
        run_study(small(), tmp_path / "empty", workers=1, **QUIET)
    assert list((tmp_path / "empty").iterdir()) == []


# ---- adding replicates -----------------------------------------------------------------------
def test_adding_replicates_runs_only_the_new_ones(tmp_path):
    out = tmp_path / "grow"
    run_study(small(reps=6), out, workers=1, **QUIET)  # chunks [0, 4), [4, 6)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "parts").iterdir()}
    with pytest.raises(StoreError, match=r"--resume to add replicates 6\.\.10"):
        run_study(small(reps=11), out, workers=1, **QUIET)
    report = run_study(small(reps=11), out, workers=1, resume=True, **QUIET)
    assert report.complete and report.replicates_run == 5 and report.tasks_run == 2
    after = {p.name: p.stat().st_mtime_ns for p in (out / "parts").iterdir()}
    assert all(after[k] == v for k, v in before.items())  # old parts untouched
    meta = Store(out).read_meta()
    assert meta["rep_segments"] == [[0, 6], [6, 11]] and meta["study"]["reps"] == 11
    run_study(small(reps=11), tmp_path / "fresh", workers=1, **QUIET)
    pd.testing.assert_frame_equal(rows_of(out), rows_of(tmp_path / "fresh"), check_exact=True)
    with pytest.raises(StoreError, match="reps=4 is fewer"):
        run_study(small(reps=4), out, workers=1, resume=True, **QUIET)


def test_a_renamed_part_is_refused_and_a_short_part_is_run_again(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    parts = out / "parts"
    (parts / "c0000-k00001.parquet").rename(parts / "c0000-k00002.parquet")
    with pytest.raises(StoreError, match=r"holds chunk 1 of condition 0: it was renamed"):
        Store(out).done()
    (parts / "c0000-k00002.parquet").rename(parts / "c0000-k00001.parquet")
    t = pq.read_table(parts / "c0000-k00001.parquet")
    pq.write_table(t.slice(0, 3), parts / "c0000-k00001.parquet")  # metadata kept, rows lost
    check = Store(out).scan()
    assert check.done == {(0, 0)}
    assert "3 rows where 8 were written" in check.unreadable[0][1]


def test_a_run_losing_the_race_for_a_new_directory_leaves_the_winners_directory(
    tmp_path, monkeypatch
):
    """Two runs start on a missing directory; the other claims it first.  The loser must
    not remove what it did not claim (it used to delete the winner's directory)."""
    import fcntl
    import os

    from simulator.study import store as store_mod

    out = tmp_path / "new"
    spec = json.loads(json.dumps(Study(reps=2).to_dict()))
    real_lock = store_mod.Store._lock
    winner: list[int] = []

    def winner_claims_first(self, name, shared, holder):
        if not winner:  # the other run takes the lock and writes run.json just before us
            fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            winner.append(fd)
            (self.root / "run.json").write_text("{}")
        return real_lock(self, name, shared, holder)

    monkeypatch.setattr(store_mod.Store, "_lock", winner_claims_first)
    try:
        with pytest.raises(StoreError, match="another rwesim run"):
            open_store(out, spec, resume=False, overwrite=False)
        assert (out / "run.json").is_file()  # the winner's directory is intact
    finally:
        for fd in winner:
            os.close(fd)
