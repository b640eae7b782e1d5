"""A study scores estimators of RMST / survival differences against the truth of the same
measure, horizon and population (run.json carries those truths)."""

from __future__ import annotations

import math

import pytest

from simulator.study import Study
from simulator.study.runner import condition_meta
from simulator.study.truth import truth

VARIANTS = {
    "km_s12": {"base": "iptw_km", "measure": "surv_diff", "horizon": 12},
    "km_rmst30_att": {"base": "iptw_km", "measure": "rmst_diff", "horizon": 30, "estimand": "ATT"},
}


def test_effect_measures_come_from_options_and_defaults():
    study = Study(estimators=("siptw", "iptw_km", *VARIANTS), variants=VARIANTS, reps=2)
    # iptw_km's own defaults (rmst_diff at 24 months), then each variant's options, once
    assert study.effect_measures() == (
        ("rmst_diff", 24.0),
        ("surv_diff", 12.0),
        ("rmst_diff", 30.0),
    )
    assert Study(reps=2).effect_measures() == ()


def test_condition_meta_holds_a_truth_per_measure_and_horizon():
    study = Study(estimators=("siptw", *VARIANTS), variants=VARIANTS, reps=2)
    cond = study.conditions()[0]
    meta = condition_meta(cond, "admin", study.effect_measures())
    got = {
        (t["outcome"], t["estimand"], t["measure"], t["horizon"]): t["theta"] for t in meta["truth"]
    }
    tr12 = truth(cond.scenario)
    assert (
        got[("os", "ATE", "surv_diff", 12.0)]
        == tr12.estimand("os", "ATE", "admin", "surv_diff", 12.0)[0]
    )
    # 30 months is not a shipped horizon: the exact engine computes it
    tr30 = truth(cond.scenario, rmst_horizons=(12.0, 24.0, 30.0, 36.0))
    theta = got[("pfs", "ATT", "rmst_diff", 30.0)]
    assert theta == tr30.estimand("pfs", "ATT", "admin", "rmst_diff", 30.0)[0]
    below, above = (tr30.estimand("pfs", "ATT", "admin", "rmst_diff", h)[0] for h in (24.0, 36.0))
    assert below < theta < above  # the treated gain RMST steadily over these horizons
    # no RMST truth for the conditional estimand (a log hazard ratio only)
    assert not [k for k in got if k[1] == "conditional" and k[2] != "log_hr"]
    assert all(math.isfinite(v) for v in got.values())


@pytest.mark.parametrize("horizon", [24.0])
def test_log_hr_records_are_unchanged_by_extra_measures(horizon):
    plain = Study(reps=2)
    extra = Study(estimators=("siptw", "iptw_km"), reps=2)
    cond = plain.conditions()[0]
    a = [t for t in condition_meta(cond, "admin")["truth"]]
    b = [
        t
        for t in condition_meta(cond, "admin", extra.effect_measures())["truth"]
        if t["measure"] == "log_hr"
    ]
    assert a == b


def test_mixed_measures_summarize_into_one_table(tmp_path):
    """A study of log-HR and RMST estimators: every row has the same columns (the
    Markdown writer took the first row's keys and failed on the others)."""
    from simulator.study import open_results, run_study, summarize
    from simulator.study.report import display_rows, summary_markdown

    study = Study(estimators=("siptw", "iptw_km"), reps=2, sample_sizes=(400,), outcomes=("os",))
    run_study(study, tmp_path / "r", workers=1, progress=False, log=lambda m: None)
    table = summarize(open_results(tmp_path / "r"))
    rows = display_rows(table)
    assert {tuple(r) for r in rows} == {tuple(rows[0])} and "measure" in rows[0]
    assert {r["measure"] for r in rows} == {"log-HR", "rmst_diff at 24 months"}
    md = summary_markdown(table)
    assert md.count("\n") == len(rows) + 2 and "rmst_diff at 24 months" in md
