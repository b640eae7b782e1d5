"""The switching scenario kind in the study runner (simulator.study.kinds, the generic path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from estimators.switching import ccw, td_cox
from simulator.study.cli import _study_from_args
from simulator.study.exceptions import StudyError
from simulator.study.kinds import SwitchingKind, get_kind, is_kind
from simulator.study.replicate import replicate_seed
from simulator.study.runner import condition_meta, plan_chunks, run_study
from simulator.study.spec import Study
from simulator.study.store import Store
from simulator.switching import COVARIATES, switching_scenario

QUIET = {"progress": False, "log": lambda msg: None}


def kind_study(**changes) -> Study:
    base = dict(
        name="sw",
        scenarios=("switching",),
        reps=3,
        chunk_reps=2,
        sample_sizes=(600,),
        seed=5,
        estimators=("ever_switched_cox", "td_cox", "ccw"),
        outcomes=("os",),
        covariates=COVARIATES,
        estimator_options={"ccw": {"n_boot": 4}},
    )
    return Study(**{**base, **changes})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sw")
    report = run_study(kind_study(), out, workers=1, **QUIET)
    assert report.complete
    return out


def test_kind_rows_equal_direct_calls_bit_for_bit(run):
    rows = Store(Path(run)).read_results()
    assert len(rows) == 3 * 3 and rows["error"].eq("").all()
    kind = SwitchingKind()
    df = kind.simulate(600, replicate_seed(5, 0, 2))
    args = ("os_months", "os_event", "switch_months", list(COVARIATES))
    got = rows.set_index(["rep", "estimator"])
    assert got.loc[(2, "td_cox"), "estimate"] == td_cox(df, *args).estimate
    c = ccw(df, *args, n_boot=4)
    assert got.loc[(2, "ccw"), "estimate"] == c.estimate
    assert got.loc[(2, "ccw"), "se"] == c.se
    assert got.loc[(2, "ccw"), "estimand"] == "strategy"


def test_kind_truths_in_run_json(run):
    meta = json.loads((Path(run) / "run.json").read_text())
    (cond,) = meta["conditions"]
    assert cond["scenario"] == "switching"
    assert cond["fingerprint"] == switching_scenario().fingerprint()
    truths = {(t["estimand"], t["measure"], t["horizon"]): t["theta"] for t in cond["truth"]}
    tr = SwitchingKind().truth()
    assert truths[("conditional", "log_hr", None)] == tr.log_hr_switch
    assert truths[("strategy", "surv_diff", 36.0)] == tr.surv_diff
    assert truths[("strategy", "rmst_diff", 36.0)] == tr.rmst_diff


def test_command_line_study_of_the_kind():
    study = _study_from_args("switching", 5, None, None, None, None)
    assert study.estimators == ("ever_switched_cox", "td_cox", "landmark_cox", "ccw")
    assert study.outcomes == ("os",) and tuple(study.covariates) == COVARIATES
    assert study.estimator_options == {}
    one = _study_from_args("switching", 5, [800], None, ["td_cox"], None)
    assert one.estimators == ("td_cox",) and one.sample_sizes == (800,)


def test_set_and_vary_change_the_kind_and_its_estimators_options():
    study = kind_study(
        estimators=("ccw", "landmark_cox", "lm_pp"),
        variants={"lm_pp": {"base": "landmark_cox", "censor_later_switch": True}},
        set={"log_hr_switch": -0.5},
        vary={"grace": [3.0, 6.0]},
    )
    conds = study.conditions()
    assert [c.label for c in conds] == [
        "switching, n=600, grace=3.0",
        "switching, n=600, grace=6.0",
    ]
    assert [c.scenario.scenario.grace for c in conds] == [3.0, 6.0]
    assert {c.scenario.scenario.log_hr_switch for c in conds} == {-0.5}
    chunks = plan_chunks(study, conds)
    by_cond = {ch.condition: ch.options for ch in chunks}
    assert by_cond[0]["ccw"] == {"grace": 3.0, "n_boot": 4}  # the study's own options kept
    assert by_cond[1]["ccw"]["grace"] == 6.0
    assert by_cond[0]["lm_pp"] == {"landmark": 6.0, "censor_later_switch": True}
    metas = [condition_meta(c) for c in conds]
    diffs = [next(t["theta"] for t in m["truth"] if t["measure"] == "surv_diff") for m in metas]
    assert diffs[0] != diffs[1]  # each condition scored against its own strategy truth
    assert metas[0]["truth"][0]["theta"] == -0.5


def test_kind_errors_are_named():
    with pytest.raises(ValueError, match=r"'treatment.strength' is not a parameter of the switc"):
        kind_study(vary={"treatment.strength": [1.0]})
    with pytest.raises(ValueError, match=r"grace=0.0 is not allowed"):
        kind_study(set={"grace": 0.0})
    with pytest.raises(ValueError, match=r"outcomes\[\]='pfs' is not allowed; use one of \['os'\]"):
        kind_study(outcomes=("pfs",))
    with pytest.raises(StudyError, match="'race' is not a covariate column"):
        kind_study(covariates=("age", "race"))
    with pytest.raises(ValueError, match=r"outcomes\[\]='pfs' is not allowed; use one of \['os'\]"):
        Study(scenarios=("flatiron", "switching"), outcomes=("pfs",), covariates=("age",))


def test_kind_dispatch():
    assert get_kind("switching") is not None and get_kind("flatiron") is None
    assert is_kind(SwitchingKind())
    from simulator import get_scenario

    assert not is_kind(get_scenario("flatiron"))


def test_rwesim_run_switching_on_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from simulator.study.cli import app

    out = tmp_path / "run"
    args = ["run", "switching", "-o", str(out), "--reps", "2", "-n", "400", "-w", "1"]
    res = CliRunner().invoke(app, [*args, "-e", "td_cox", "-e", "ever_switched_cox"])
    assert res.exit_code == 0, res.output
    assert "td_cox" in res.output and "conditional" in res.output
    rows = Store(out).read_results()
    assert set(rows["estimator"]) == {"td_cox", "ever_switched_cox"} and len(rows) == 4
    assert rows["error"].eq("").all()
    bad = CliRunner().invoke(
        app, ["run", "switching", "-o", str(tmp_path / "b"), "--outcome", "pfs"]
    )
    assert bad.exit_code != 0 and "outcomes[]='pfs' is not allowed" in bad.output
    listed = CliRunner().invoke(app, ["scenarios"])
    assert listed.exit_code == 0 and "switching" in listed.output
