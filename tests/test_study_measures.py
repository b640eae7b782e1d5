"""Study keys ``measures`` and ``horizons``: one expansion of estimators x measures x
horizons (``Study.runs``), every row scored against the truth of its own measure and
horizon, clear errors before any work, and studies without the keys unchanged bit for bit."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import estimators
from estimators.estimands import MEASURES_WITH_HORIZON
from estimators.exceptions import EstimatorInputError
from estimators.result import EffectEstimate
from simulator.study import Study, run_study
from simulator.study.cli import app
from simulator.study.exceptions import StudyError
from simulator.study.performance import summarize
from simulator.study.record import ROW_KEY
from simulator.study.replicate import run_chunk
from simulator.study.report import summary_rich, summary_table
from simulator.study.runner import plan_chunks
from simulator.study.spec import EstimatorRun, load_study, study_from_dict
from simulator.study.store import Store, study_identity
from simulator.study.truth import truth

QUIET = {"progress": False, "log": lambda msg: None}
BASELINE = Path(__file__).parent / "reference" / "study_measures_baseline.json"
EFFECTS = ("siptw", "iptw_km", "matched_km", "aiptw")


def small(**changes) -> Study:
    base = dict(
        name="measures",
        sample_sizes=(300,),
        reps=2,
        chunk_reps=2,
        seed=5,
        estimators=EFFECTS,
        measures=("log_hr", "rmst_diff", "surv_diff"),
        horizons=(12, 24),
    )
    return Study(**{**base, **changes})


# ---- the expansion --------------------------------------------------------------------
def test_runs_expand_each_estimator_over_the_measures_it_reports():
    runs = small().runs()
    got = [(r.estimator, r.measure, r.horizon) for r in runs]
    assert got == [
        ("siptw", "log_hr", None),  # a log-HR estimator: the log-HR only
        *[("iptw_km", m, h) for m in ("rmst_diff", "surv_diff") for h in (12.0, 24.0)],
        *[("matched_km", m, h) for m in ("rmst_diff", "surv_diff") for h in (12.0, 24.0)],
        ("aiptw", "surv_diff", 12.0),  # aiptw estimates S(tau) only
        ("aiptw", "surv_diff", 24.0),
    ]
    # the options each fit gets on top of its own
    assert runs[0].options == {}
    assert runs[1].options == {"measure": "rmst_diff", "horizon": 12}
    assert runs[1].label == "iptw_km (rmst_diff at 12 months)" and runs[0].label == "siptw"
    # run.json's truths follow the same expansion
    assert small().effect_measures() == (
        ("rmst_diff", 12.0),
        ("rmst_diff", 24.0),
        ("surv_diff", 12.0),
        ("surv_diff", 24.0),
    )


def test_without_measures_each_estimator_runs_once_with_its_own_options():
    variants = {"km_s12": {"base": "iptw_km", "measure": "surv_diff", "horizon": 12}}
    study = Study(reps=2, estimators=("siptw", "iptw_km", "km_s12"), variants=variants)
    assert study.runs() == (
        EstimatorRun("siptw", "log_hr", None),
        EstimatorRun("iptw_km", "rmst_diff", 24.0),  # its function's defaults
        EstimatorRun("km_s12", "surv_diff", 12.0),
    )
    assert "measures" not in study.to_dict() and "horizons" not in study.to_dict()


_MEASURE_SETS = st.lists(
    st.sampled_from(("log_hr", "rmst_diff", "surv_diff")), min_size=1, max_size=3, unique=True
)
_ESTIMATOR_SETS = st.lists(
    st.sampled_from(("siptw", "psm", "iptw_km", "matched_km", "gcomp", "aiptw")),
    min_size=1,
    max_size=6,
    unique=True,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    measures=_MEASURE_SETS,
    ests=_ESTIMATOR_SETS,
    horizons=st.lists(
        st.sampled_from((6.0, 12.0, 24.0, 36.0)), min_size=1, max_size=3, unique=True
    ),
)
def test_runs_are_the_product_of_reported_measures_and_horizons(measures, ests, horizons):
    """Every (estimator, measure, horizon) it reports runs exactly once; nothing else runs;
    or the study is refused up front saying why."""
    timed = [m for m in measures if m in MEASURES_WITH_HORIZON]
    reported = {e: estimators.get_estimator(e).measures for e in ests}
    try:
        study = Study(
            reps=2,
            estimators=tuple(ests),
            measures=tuple(measures),
            horizons=tuple(horizons) if timed else (),
        )
    except StudyError as exc:
        idle = [e for e in ests if not set(reported[e]) & set(measures)]
        unreported = [m for m in measures if not any(m in r for r in reported.values())]
        assert idle or unreported
        assert "estimators:" in str(exc) or "measures:" in str(exc)
        return
    want = {
        (e, m, float(h) if m in MEASURES_WITH_HORIZON else None)
        for e in ests
        for m in measures
        if m in reported[e]
        for h in (horizons if m in MEASURES_WITH_HORIZON else (None,))
    }
    got = [(r.estimator, r.measure, r.horizon) for r in study.runs()]
    assert len(got) == len(set(got)) and set(got) == want
    assert {r.estimator for r in study.runs()} == set(ests)  # every estimator runs
    # grouped by estimator, in the study's order
    assert list(dict.fromkeys(g[0] for g in got)) == list(ests)


# ---- a run --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    out = tmp_path_factory.mktemp("measures")
    study = small()
    run_study(study, out, workers=1, **QUIET)
    return study, out


def test_every_fit_is_a_row_keyed_by_measure_and_horizon(measured):
    study, out = measured
    rows = Store(out).read_results()
    assert len(rows) == study.reps * len(study.outcomes) * len(study.runs())
    key = rows[list(ROW_KEY)].astype({"horizon": float}).fillna({"horizon": -1.0})
    assert not key.duplicated().any()
    assert (rows["error"] == "").all()
    got = set(zip(rows["estimator"], rows["measure"], rows["horizon"].fillna(-1), strict=True))
    want = {(r.estimator, r.measure, -1 if r.horizon is None else r.horizon) for r in study.runs()}
    assert got == want
    # each part records how many rows it holds (more than replicates x estimators here)
    for p in (out / "parts").glob("*.parquet"):
        part = json.loads(pq.read_metadata(p).metadata[b"rwesim.part"])
        assert part["rows"] == pq.read_metadata(p).num_rows == 2 * 2 * len(study.runs())


def test_every_row_is_scored_against_the_truth_of_its_measure_and_horizon(measured):
    study, out = measured
    table = summarize(Store(out).read_results(), Store(out).truths())
    tr = truth(study.conditions()[0].scenario)
    assert len(table) == len(study.outcomes) * len(study.runs())
    for r in table.itertuples():
        horizon = None if math.isnan(r.horizon) else r.horizon
        estimand = "ATE" if r.estimand == "crude" else r.estimand
        theta = tr.estimand(r.outcome, estimand, "admin", r.measure, horizon)[0]
        assert r.theta == theta, (r.estimator, r.measure, r.horizon)
        assert r.n_sim == study.reps
        assert r.bias == pytest.approx(r.mean - theta)
    # RMST truths (months) grow with the horizon; S(t) differences stay in [-1, 1]
    rmst = table[(table["measure"] == "rmst_diff") & (table["estimator"] == "iptw_km")]
    for _, g in rmst.groupby("outcome"):
        assert g.sort_values("horizon")["theta"].is_monotonic_increasing
    assert table.loc[table["measure"] == "surv_diff", "theta"].abs().lt(1).all()


def test_tables_and_figures_come_per_measure_and_horizon(measured, tmp_path):
    _, out = measured
    table = summary_table(Store(out))
    effects = list(dict.fromkeys(zip(table["measure"], table["horizon"].fillna(-1), strict=True)))
    assert effects == [
        ("log_hr", -1),
        ("rmst_diff", 12),
        ("rmst_diff", 24),
        ("surv_diff", 12),
        ("surv_diff", 24),
    ]
    group = summary_rich(table, Store(out).read_meta())
    titles = [t.title for t in group.renderables[1:] if hasattr(t, "title")]
    assert titles == [
        "flatiron, n=300 - log-HR",
        *(
            f"flatiron, n=300 - {m} at {h} months"
            for m in ("rmst_diff", "surv_diff")
            for h in (12, 24)
        ),
    ]
    from simulator.study import plots

    # every figure of every measure and horizon, named by it (drawn below for one)
    drawn = []
    mp = pytest.MonkeyPatch()
    with mp.context() as m:
        m.setattr(plots, "estimate_distributions", lambda *a, **k: None)
        m.setattr(plots, "zip_plot", lambda *a, **k: None)
        m.setattr(plots, "save_figure", lambda fig, path: drawn.append(Path(path).name) or path)
        plots.plot_study(out, tmp_path / "plots")
    assert sorted(drawn) == sorted(
        f"{o}{tag}-{kind}.png"
        for o in ("pfs", "os")
        for tag in ("", "-rmst_diff12", "-rmst_diff24", "-surv_diff12", "-surv_diff24")
        for kind in ("distributions", "zip-c0000")
    )
    rows, truths = Store(out).read_results(), Store(out).truths()
    cond = Store(out).read_meta()["conditions"][0]
    fig = plots.zip_plot(rows, truths, cond, "os", measure="rmst_diff", horizon=24.0)
    assert "RMST" in " ".join(ax.get_xlabel() + ax.get_ylabel() for ax in fig.axes)


def test_a_short_part_of_a_measures_study_is_run_again(measured, tmp_path):
    import shutil

    _, out = measured
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    part = next((copy / "parts").glob("*.parquet"))
    t = pq.read_table(part)
    pq.write_table(t.slice(0, 5), part)  # metadata kept, rows lost
    check = Store(copy).scan()
    assert not check.done and f"5 rows where {t.num_rows} were written" in check.unreadable[0][1]


# ---- studies without the keys: unchanged ------------------------------------------------
def test_a_study_without_measures_gives_the_results_it_gave_before(tmp_path):
    """Bit for bit the rows of the same study run by the code before this feature
    (tests/reference/make_study_measures_baseline.py, run at the commit it names)."""
    ref = json.loads(BASELINE.read_text())
    study = study_from_dict(ref["study"])
    assert study.to_dict() == ref["study"]
    assert study_identity(json.loads(json.dumps(study.to_dict()))) == ref["identity"]
    run_study(study, tmp_path / "now", workers=1, **QUIET)
    rows = Store(tmp_path / "now").read_results()[ref["columns"]]
    got = [
        [None if isinstance(v, float) and math.isnan(v) else v for v in r]
        for r in rows.itertuples(index=False)
    ]
    got = json.loads(json.dumps(got, default=lambda v: v.item()))
    # every value equal except floats, which may move at round-off: kernels changed their
    # summation order since the baseline without changing a term (aiptw's AIPCW integral
    # takes a vectorised exp, estimators/_vexp.py, within 1 ulp of libm; the Cox fits
    # with more than DIRECT_P covariates and the logistic fits take vectorised sums of
    # the same products).  1e-12 relative is 10,000 times round-off
    assert len(got) == len(ref["rows"])
    for g, r in zip(got, ref["rows"], strict=True):
        for a, b in zip(g, r, strict=True):
            if isinstance(b, float) and isinstance(a, float):
                assert a == pytest.approx(b, rel=1e-12, abs=1e-15), (g, r)
            else:
                assert a == b, (g, r)


def test_the_legacy_chunk_path_and_log_hr_only_measures_give_the_same_rows():
    plain = Study(reps=2, chunk_reps=2, sample_sizes=(300,), seed=3)
    chunk = plan_chunks(plain, plain.conditions())[0]
    new = run_chunk(chunk).drop(columns="seconds")
    legacy = run_chunk(replace(chunk, runs=())).drop(columns="seconds")
    pd.testing.assert_frame_equal(new, legacy, check_exact=True)
    hr = Study(reps=2, chunk_reps=2, sample_sizes=(300,), seed=3, measures=("log_hr",))
    asked = run_chunk(plan_chunks(hr, hr.conditions())[0]).drop(columns="seconds")
    pd.testing.assert_frame_equal(new, asked, check_exact=True)
    assert study_identity(hr.to_dict()) != study_identity(plain.to_dict())


# ---- errors before any work ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"measures": ("hazard",)}, r"measures: measure 'hazard' is not allowed; use some of \["),
        ({"measures": ("rmst_diff", "rmst_diff")}, r"measures: 'rmst_diff' is given twice"),
        (
            {"horizons": (0,)},
            r"horizons: horizon 0 is not allowed; give a finite number of months > 0",
        ),
        ({"horizons": (-6.0,)}, r"horizon -6\.0 is not allowed"),
        ({"horizons": (12, 12.0)}, r"horizons: 12\.0 is given twice"),
        ({"horizons": ("24",)}, r"horizons: horizon '24' is not allowed"),
        (
            {"horizons": (60,)},
            r"horizons: horizon 60 is not allowed: condition 'flatiron, n=300' follows patients "
            r"for at most 51\.8 months .* use horizons in \(0, 51\.8\]",
        ),
        (
            {"horizons": ()},
            r"horizons=\[\] is not allowed with measures \['rmst_diff', 'surv_diff'\]",
        ),
        ({"measures": ("log_hr",)}, r"horizons=\[12, 24\] is not allowed: none of measures"),
        ({"measures": (), "horizons": (12,)}, r"horizons=\[12\] is not allowed without measures"),
        (
            {"estimators": ("siptw", "psm"), "horizons": (), "measures": ("log_hr", "median_diff")},
            r"measures: measure 'median_diff' is not reported by any of the study's estimators",
        ),
        (
            {"estimators": ("iptw_km", "aiptw"), "measures": ("rmst_diff",), "horizons": (24,)},
            r"estimators: 'aiptw' reports none of measures \['rmst_diff'\] \(it reports "
            r"\['surv_diff'\]\)",
        ),
        (
            {"estimators": ("siptw", "iptw_km"), "measures": ("rmst_diff",), "horizons": (24,)},
            r"estimators: 'siptw' reports none of measures \['rmst_diff'\]",
        ),
        (
            {"estimator_options": {"iptw_km": {"horizon": 12}}},
            r"estimators: 'iptw_km' fixes \['horizon'\] in its options",
        ),
        ({"measures": "rmst_diff"}, r"measures='rmst_diff' is not allowed; give a non-empty list"),
    ],
)
def test_bad_measures_and_horizons_are_one_clear_error(changes, message):
    with pytest.raises(StudyError, match=message):
        small(**changes)


def test_a_variant_fixing_the_measure_runs_it_and_is_refused_with_study_measures():
    variants = {"km_s": {"base": "iptw_km", "measure": "surv_diff", "horizon": 12}}
    with pytest.raises(StudyError, match=r"'km_s' fixes \['horizon', 'measure'\]"):
        small(estimators=("siptw", "km_s"), variants=variants)
    with pytest.raises(StudyError, match=r"\[estimators.km_s\]: km_s: measure='log_hr' is not"):
        Study(
            reps=2,
            estimators=("km_s",),
            variants={"km_s": {"base": "iptw_km", "measure": "log_hr"}},
        )


# ---- the registry capability --------------------------------------------------------------
def test_measures_are_a_registry_capability():
    assert estimators.get_estimator("siptw").measures == ("log_hr",)
    assert estimators.get_estimator("iptw_km").measures == ("rmst_diff", "surv_diff")
    assert estimators.get_estimator("aiptw").measures == ("surv_diff",)
    assert estimators.get_estimator("iptw_km").variant("s", measure="surv_diff").measures == (
        "surv_diff",
    )

    def rmst_only(df, time, event, treatment, covariates, measure="rmst_diff", horizon=24.0):
        return EffectEstimate.from_fit(
            "r", "ATE", 1.0, 0.1, 10, 1, measure=measure, horizon=horizon
        )

    def hr_only(df, time, event, treatment, covariates):
        return EffectEstimate.from_fit("h", "ATE", 0.0, 0.1, 10, 1)

    try:
        # from the signature: the default of a measure parameter, else the log-HR
        assert estimators.register_estimator("ue_rmst", rmst_only, "ATE").measures == ("rmst_diff",)
        both = estimators.register_estimator(
            "ue_rmst", rmst_only, "ATE", replace=True, measures=["rmst_diff", "surv_diff"]
        )
        assert both.measures == ("rmst_diff", "surv_diff")
        with pytest.raises(EstimatorInputError, match="takes no measure= option"):
            estimators.register_estimator("ue_hr", hr_only, "ATE", measures=["rmst_diff"])
        with pytest.raises(EstimatorInputError, match=r"measures: measure 'rmst' is not allowed"):
            estimators.register_estimator("ue_hr", hr_only, "ATE", measures=["rmst"])
        study = small(estimators=("siptw", "ue_rmst"), horizons=(24,))
        assert [(r.estimator, r.measure) for r in study.runs()] == [
            ("siptw", "log_hr"),
            ("ue_rmst", "rmst_diff"),
            ("ue_rmst", "surv_diff"),
        ]
    finally:
        for name in ("ue_rmst", "ue_hr"):
            if name in estimators.available_estimators():
                estimators.unregister_estimator(name)


# ---- files and the command line -----------------------------------------------------------
def test_study_file_and_command_line_take_measures_and_horizons(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        '[study]\nname = "m"\nreps = 1\nchunk_reps = 1\nsample_sizes = [300]\n'
        'outcomes = ["os"]\nestimators = ["siptw", "aiptw"]\n'
        'measures = ["log_hr", "surv_diff"]\nhorizons = [12, 24]\n'
    )
    study = load_study(path)
    assert study.measures == ("log_hr", "surv_diff") and study.horizons == (12, 24)
    assert len(study.runs()) == 3
    res = CliRunner().invoke(
        app,
        [
            *("run", str(path), "-o", str(tmp_path / "out"), "--workers", "1"),
            *("--measure", "surv_diff", "--horizon", "18", "-e", "aiptw"),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = Store(tmp_path / "out").read_results()
    assert set(zip(rows["estimator"], rows["measure"], rows["horizon"], strict=True)) == {
        ("aiptw", "surv_diff", 18.0)
    }
    bad = CliRunner().invoke(
        app, ["run", "flatiron", "-o", str(tmp_path / "bad"), "--measure", "rmst", "--reps", "1"]
    )
    assert bad.exit_code != 0 and "measure 'rmst' is not allowed" in bad.output


def test_nested_loop_plots_come_per_measure_and_horizon(tmp_path):
    from simulator.study import plots

    study = small(
        sample_sizes=(300, 400),
        outcomes=("os",),
        estimators=("siptw", "aiptw"),
        measures=("log_hr", "surv_diff"),
    )
    run_study(study, tmp_path / "r", workers=1, **QUIET)
    drawn = []
    with pytest.MonkeyPatch().context() as m:
        m.setattr(plots, "estimate_distributions", lambda *a, **k: None)
        m.setattr(plots, "zip_plot", lambda *a, **k: None)
        m.setattr(plots, "save_figure", lambda fig, path: drawn.append((Path(path).name, fig)))
        plots.plot_study(tmp_path / "r", tmp_path / "plots")
    nested = {name: fig for name, fig in drawn if "nested" in name}
    assert sorted(nested) == sorted(
        f"os{tag}-nested-{kind}.png"
        for tag in ("", "-surv_diff12", "-surv_diff24")
        for kind in ("bias", "coverage")
    )
    labels = [ax.get_ylabel() for ax in nested["os-surv_diff24-nested-bias.png"].axes]
    assert any("survival difference" in label for label in labels)
