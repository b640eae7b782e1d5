"""User estimators named by import path ("package.module:function") run on every executor.

The module lives outside the package (written into ``tmp_path``, put on ``sys.path`` and
on ``PYTHONPATH`` for spawned and Dask worker processes): in-process, a spawned process
pool and a Dask ``LocalCluster`` with worker processes give identical result tables.
What cannot be shipped (a lambda, an unimportable path, a function registered in
``__main__``) is a clear error before any work; a fit or a lookup failing in a worker is
a failed row, never an aborted run.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from estimators import EstimatorInputError, register_estimator, unregister_estimator
from estimators.registry import estimator_from_path, get_estimator, import_path_of
from simulator.study import Study, load_study, run_study
from simulator.study import runner as R
from simulator.study.exceptions import StudyError
from simulator.study.store import Store

MODULE = '''
"""A user's estimators, outside the rwesim package."""
from dataclasses import replace

import estimators


def overlap_cox(df, time, event, treatment, covariates, **options):
    """Overlap-weights Cox: sIPTW with ATO weights, relabelled."""
    r = estimators.siptw(df, time, event, treatment, covariates, estimand="ATO", **options)
    return replace(r, method="overlap_cox")


def broken(df, time, event, treatment, covariates):
    raise RuntimeError("this estimator always fails")


not_callable = 42
'''
SMALL = dict(reps=4, chunk_reps=2, sample_sizes=(300,), outcomes=("pfs",))
PATH = "ue_userest_mod:overlap_cox"
QUIET = dict(progress=False, log=lambda _m: None)


@pytest.fixture
def user_module(tmp_path, monkeypatch) -> str:
    """The module ``ue_userest_mod`` importable here and in every child process."""
    folder = tmp_path / "userpkg"
    folder.mkdir()
    (folder / "ue_userest_mod.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(folder))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(folder), old) if p))
    yield "ue_userest_mod"
    sys.modules.pop("ue_userest_mod", None)
    estimator_from_path.cache_clear()


def _fits(out: Path) -> pd.DataFrame:
    rows = Store(out).read_results().drop(columns="seconds")
    return rows.sort_values(["condition", "rep", "outcome", "estimator"]).reset_index(drop=True)


def _study(**kw) -> Study:
    return Study(estimators=("siptw", PATH), **{**SMALL, **kw})


# ---- resolution -------------------------------------------------------------------------
def test_path_resolves_to_an_estimator(user_module):
    est = get_estimator(PATH)
    assert est.name == PATH and est.estimand == "ATE" and est.frame
    assert import_path_of(est.func) == PATH


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("ue_userest_mod:missing", "has no attribute 'missing'"),
        ("ue_userest_mod:not_callable", "not callable"),
        ("ue_userest_mod:", "use 'package.module:function'"),
        ("a:b:c", "use 'package.module:function'"),
    ],
)
def test_bad_paths_are_clear_errors_before_any_work(user_module, tmp_path, entry, match):
    with pytest.raises(StudyError, match=match):
        Study(estimators=("siptw", entry), **SMALL)
    with pytest.raises(EstimatorInputError, match=match):
        estimator_from_path(entry)


def test_a_lambda_or_local_function_is_refused(user_module, monkeypatch):
    import ue_userest_mod

    monkeypatch.setattr(ue_userest_mod, "lam", lambda *a, **k: None, raising=False)

    def local(df, time, event, treatment, covariates):
        return None

    monkeypatch.setattr(ue_userest_mod, "local", local, raising=False)
    for name in ("lam", "local"):
        with pytest.raises(StudyError, match="cannot import by name"):
            Study(estimators=(f"ue_userest_mod:{name}",), **SMALL)


def test_path_variant_declares_its_estimand(user_module, tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(
        textwrap.dedent(
            f"""
            [study]
            estimators = ["siptw", "mine"]
            reps = 2
            sample_sizes = [300]
            outcomes = ["pfs"]

            [estimators.mine]
            path = "{PATH}"
            estimand = "ATO"
            """
        )
    )
    s = load_study(f)
    assert s.estimand_of("mine") == "ATO" and s.base_of("mine") == PATH
    assert s.options_for("mine") == {"estimand": "ATO"} or s.options_for("mine") == {}
    bad = f.read_text().replace('estimand = "ATO"', 'estimand = "XYZ"')
    f.write_text(bad)
    with pytest.raises(StudyError, match=r"\[estimators.mine\]: estimand='XYZ'"):
        load_study(f)


# ---- every executor: identical results ---------------------------------------------------
def test_in_process_spawned_pool_and_dask_agree(user_module, tmp_path, monkeypatch):
    study = _study()
    one = _fits_of(study, tmp_path / "one", workers=1)
    mine = one[one["estimator"] == PATH]
    assert len(mine) == 4 and (mine["error"] == "").all()
    assert (mine["method"] == "overlap_cox").all() and (mine["estimand"] == "ATO").all()
    # spawned workers start with the built-ins only: they import the module themselves
    monkeypatch.setattr(R.W, "start_method", lambda: "spawn")
    two = _fits_of(study, tmp_path / "two", workers=2)
    pd.testing.assert_frame_equal(one, two)
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        dask = _fits_of(study, tmp_path / "dask", scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(one, dask)


def _fits_of(study: Study, out: Path, **kw) -> pd.DataFrame:
    run_study(study, out, **kw, **QUIET)
    return _fits(out)


def test_shards_with_a_path_entry_make_the_unsharded_table(user_module, tmp_path, monkeypatch):
    """Two shards into one directory (as two SLURM array tasks would, here with spawned
    workers that import the module themselves) give the unsharded run's rows."""
    study = _study()
    whole = _fits_of(study, tmp_path / "whole", workers=1)
    monkeypatch.setattr(R.W, "start_method", lambda: "spawn")
    out = tmp_path / "sharded"
    first = run_study(study, out, workers=2, shard=(0, 2), **QUIET)
    assert not first.complete
    second = run_study(study, out, workers=2, shard=(1, 2), resume=True, **QUIET)
    assert second.complete
    pd.testing.assert_frame_equal(whole, _fits(out))


# ---- failures are rows ----------------------------------------------------------------------
def test_a_fit_that_raises_is_a_failed_row(user_module, tmp_path):
    study = Study(estimators=("siptw", "ue_userest_mod:broken"), **SMALL)
    # the run finishes; that every fit of one estimator failed is said at the end
    with pytest.raises(StudyError, match="every fit of estimator 'ue_userest_mod:broken'"):
        run_study(study, tmp_path / "r", workers=1, **QUIET)
    rows = Store(tmp_path / "r").read_results()
    bad = rows[rows["estimator"] == "ue_userest_mod:broken"]
    assert len(bad) == 4 and bad["estimate"].isna().all()
    assert bad["error"].str.contains("RuntimeError: this estimator always fails").all()
    good = rows[rows["estimator"] == "siptw"]
    assert (good["error"] == "").all()


def test_a_lookup_failing_in_a_worker_is_a_failed_row(user_module, tmp_path):
    from simulator.study.replicate import run_chunk

    study = _study()
    chunk = R.plan_chunks(study, study.conditions())[0]
    sys.modules.pop("ue_userest_mod", None)
    estimator_from_path.cache_clear()
    sys.path.remove(next(p for p in sys.path if p.endswith("userpkg")))  # as a worker without it
    rows = run_chunk(chunk)
    bad = rows[rows["estimator"] == PATH]
    assert len(bad) == 2 and bad["estimate"].isna().all()
    assert bad["error"].str.contains("not available in this worker").all()
    assert bad["error"].str.contains("cannot import module 'ue_userest_mod'").all()
    assert (rows.loc[rows["estimator"] == "siptw", "error"] == "").all()


# ---- registered in the parent ----------------------------------------------------------------
def test_registered_from_a_module_ships_by_its_import_path(user_module, tmp_path, monkeypatch):
    import ue_userest_mod

    register_estimator("overlap_reg", ue_userest_mod.overlap_cox, "ATO")
    try:
        study = Study(estimators=("siptw", "overlap_reg"), **SMALL)
        assert R.user_references(study) == {"overlap_reg": PATH}
        monkeypatch.setattr(R.W, "start_method", lambda: "spawn")
        two = _fits_of(study, tmp_path / "two", workers=2)
        one = _fits_of(study, tmp_path / "one", workers=1)
        pd.testing.assert_frame_equal(one, two)
        assert (two.loc[two["estimator"] == "overlap_reg", "error"] == "").all()
    finally:
        unregister_estimator("overlap_reg")


def test_registered_in_main_is_a_clear_error_with_spawned_workers(tmp_path, monkeypatch):
    def mine(df, time, event, treatment, covariates):
        return get_estimator("siptw")(df, time, event, treatment, covariates)

    mine.__module__ = "__main__"
    register_estimator("main_only", mine, "ATE")
    try:
        study = Study(estimators=("main_only",), **SMALL)
        monkeypatch.setattr(R.W, "start_method", lambda: "spawn")
        with pytest.raises(StudyError, match="import path") as err:
            run_study(study, tmp_path / "out", workers=2, **QUIET)
        assert "--workers 1" in str(err.value)
        assert not (tmp_path / "out").exists()  # before any work: nothing left behind
        run_study(study, tmp_path / "ok", workers=1, **QUIET)  # in-process it works
        assert (Store(tmp_path / "ok").read_results()["error"] == "").all()
    finally:
        unregister_estimator("main_only")


# ---- timing in summarize ----------------------------------------------------------------------
def test_summarize_reports_median_ms_per_fit_and_ratio_to_a_baseline():
    from simulator.study.performance import summarize

    rows = []
    for est, secs in (("siptw", [0.010, 0.020, 0.030]), ("mine", [0.040, 0.050, 0.200])):
        for rep, sec in enumerate(secs):
            rows.append(
                dict(condition=0, rep=rep, outcome="pfs", estimator=est, estimand="ATE",
                     estimate=0.1 * rep, se=0.1, ci_low=-1.0, ci_high=1.0, p_value=0.5,
                     converged=True, error="", seconds=sec)
            )  # fmt: skip
    truths = pd.DataFrame([dict(condition=0, outcome="pfs", estimand="ATE", theta=0.0,
                                theta_mcse=0.0)])  # fmt: skip
    table = summarize(pd.DataFrame(rows), truths, baseline="siptw").set_index("estimator")
    assert table.loc["siptw", "ms_per_fit"] == pytest.approx(20.0)
    assert table.loc["mine", "ms_per_fit"] == pytest.approx(50.0)
    assert table.loc["mine", "time_ratio"] == pytest.approx(2.5)
    assert table.loc["siptw", "time_ratio"] == pytest.approx(1.0)
    assert summarize(pd.DataFrame(rows), truths)["time_ratio"].isna().all()
    with pytest.raises(StudyError, match="baseline='psm' is not allowed"):
        summarize(pd.DataFrame(rows), truths, baseline="psm")


# ---- check_estimator ---------------------------------------------------------------------------
def _good(df, time, event, treatment, covariates, **options):
    from estimators import siptw

    return siptw(df, time, event, treatment, covariates, **options)


def test_check_estimator_passes_a_good_function():
    from estimators import check_estimator

    report = check_estimator(_good, estimand="ATE", options={"estimand": "ATE"})
    assert report.passed and report.result.estimand == "ATE"
    assert "passed" in str(report)


def _not_an_estimate(df, time, event, treatment, covariates):
    return 0.5


def _nan(df, time, event, treatment, covariates):
    from estimators import EffectEstimate

    return EffectEstimate.from_fit("nan", "ATE", math.nan, 0.1, len(df), 10)


def _random(df, time, event, treatment, covariates):
    from dataclasses import replace

    r = _good(df, time, event, treatment, covariates)
    return replace(r, estimate=r.estimate + np.random.default_rng().normal())


def _mutates(df, time, event, treatment, covariates):
    df["age"] = df["age"] / 10.0
    return _good(df, time, event, treatment, covariates)


def _no_options(df, time, event, treatment, covariates):
    return _good(df, time, event, treatment, covariates)


def _raises(df, time, event, treatment, covariates):
    raise ZeroDivisionError("oops")


@pytest.mark.parametrize(
    ("func", "kw", "match"),
    [
        (_not_an_estimate, {}, "returned float, not EffectEstimate"),
        (_nan, {}, "give a finite estimate with se > 0"),
        (_random, {}, "not deterministic"),
        (_mutates, {}, "modified its input DataFrame"),
        (_no_options, {"options": {"truncate": (1, 99)}}, "does not take the data arguments"),
        (_raises, {}, "raised ZeroDivisionError: oops"),
        (_good, {"estimand": "ATT"}, "estimand label 'ATE' differs from the declared 'ATT'"),
    ],
)
def test_check_estimator_reports_each_broken_contract(func, kw, match):
    from estimators import EstimatorCheckError, check_estimator

    with pytest.raises(EstimatorCheckError, match=match):
        check_estimator(func, **kw)
    assert not check_estimator(func, raise_on_failure=False, **kw).passed


def test_check_estimator_lists_every_failure_and_checks_its_arguments():
    from estimators import check_estimator

    def both(df, time, event, treatment, covariates):
        df["age"] = 0.0
        return _nan(df, time, event, treatment, covariates)

    report = check_estimator(both, raise_on_failure=False)
    assert len(report.failures) == 2
    with pytest.raises(EstimatorInputError, match="estimand='XYZ' is not allowed"):
        check_estimator(_good, estimand="XYZ")
    with pytest.raises(EstimatorInputError, match="is not callable"):
        check_estimator(3)
