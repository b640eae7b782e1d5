"""estimators.analyze and ``rwesim analyze``: R golden values on GBSG2, the tables, bad input
case by case, the command line.

GBSG2 (lifelines' copy, tests/reference/data/gbsg2.csv; 686 patients, 246 on hormonal
therapy, 299 recurrence-free-survival events) is coded as in
tests/reference/r/make_analyze_reference.R and docs/guide/analyze.md: treatment
``horTh == "yes"``, time ``time / (365.25 / 12)`` months, event ``cens``, covariates age,
tsize, pnodes, progrec, estrec (linear) and menostat, tgrade (categorical, reference the
first level alphabetically: Post, I).  The R script fits the PS with glm, the weighted Cox
models with coxph(robust = TRUE), the weighted KM curves with survfit(robust = TRUE):
analyze must reproduce them to 1e-6 (both fit to ~1e-10: the gap is iteration error).
"""

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import estimators
from estimators import EffectEstimate, EstimatorInputError
from estimators.analysis import (
    ESTIMATE_COLUMNS,
    TREATMENT,
    analysis_plan,
    analyze,
    check_analysis_data,
    default_horizons,
)
from simulator.study.cli import app

HERE = Path(__file__).parent
CSV = HERE / "reference" / "data" / "gbsg2.csv"
REF = json.loads((HERE / "reference" / "r" / "analyze_reference.json").read_text())
COVARIATES = ["age", "menostat", "tsize", "tgrade", "pnodes", "progrec", "estrec"]
HORIZONS = (36.0, 60.0)
TOL = 1e-6
N_BOOT = 10  # bootstrap rows are not checked against R; few resamples keep this fast


def gbsg2() -> pd.DataFrame:
    d = pd.read_csv(CSV)
    d["months"] = d["time"] / (365.25 / 12)
    return d


@pytest.fixture(scope="module")
def result():
    return analyze(
        gbsg2(), "months", "cens", "horTh", COVARIATES, treated="yes", horizons=HORIZONS,
        n_boot=N_BOOT, seed=3,
    )  # fmt: skip


def rows(res, estimator, **options):
    """The fits of ``estimator`` whose options include ``options``."""
    t = res.estimates
    want = {f"{k}={v}" for k, v in options.items()}
    return t[(t.estimator == estimator) & t.options.map(lambda o: want <= set(o.split()))]


def one(res, estimator, measure="log_hr", horizon=None, **options):
    r = rows(res, estimator, **options)
    r = r[r.measure == measure]
    if horizon is not None:
        r = r[r.horizon == horizon]
    assert len(r) == 1, (estimator, options, r)
    return r.iloc[0]


# ---- R golden values ---------------------------------------------------------------------
def test_the_data_are_those_of_the_r_script(result):
    assert (result.info["n"], result.info["events"], result.info["treated_n"]) == (
        REF["n"],
        REF["events"],
        REF["treated"],
    )
    assert list(REF["covariates"]) == COVARIATES


def test_propensity_score_matches_glm(result):
    np.testing.assert_allclose(result.patients["ps"], REF["ps"], rtol=0, atol=TOL)
    coef = result.propensity.coef
    r_coef = REF["ps_coef"]
    assert coef["Intercept"] == pytest.approx(r_coef["(Intercept)"], abs=TOL)
    # rwesim names a level c[l], R cl; the reference levels (Post, I) agree
    for name, value in r_coef.items():
        if name != "(Intercept)":
            ours = re.sub(r"^(menostat|tgrade)(.+)$", r"\1[\2]", name)
            assert coef[ours] == pytest.approx(value, abs=TOL), name


@pytest.mark.parametrize("estimand", ["ATE", "ATT", "ATC", "ATO", "ATM"])
def test_weights_match_r(result, estimand):
    np.testing.assert_allclose(
        result.patients[f"w_{estimand}"], REF["siptw"][estimand]["weights"], rtol=0, atol=TOL
    )


@pytest.mark.parametrize("estimand", ["ATE", "ATT", "ATC", "ATO", "ATM"])
def test_weighted_cox_matches_coxph_robust(result, estimand):
    ref = REF["siptw"][estimand]
    robust = one(result, "siptw", estimand=estimand, variance="robust")
    assert robust.estimate == pytest.approx(ref["log_hr"], abs=TOL)
    assert robust.se == pytest.approx(ref["se_robust"], abs=TOL)
    assert robust.hr == pytest.approx(math.exp(ref["log_hr"]), abs=TOL)
    naive = one(result, "siptw", estimand=estimand, variance="naive")
    assert naive.estimate == pytest.approx(ref["log_hr"], abs=TOL)
    assert naive.se == pytest.approx(ref["se_naive"], abs=TOL)


def test_naive_and_adjusted_cox_match_coxph(result):
    for name in ("naive_cox", "adjusted_cox"):
        r = one(result, name)
        assert r.estimate == pytest.approx(REF[name]["log_hr"], abs=TOL), name
        assert r.se == pytest.approx(REF[name]["se"], abs=TOL), name


@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
@pytest.mark.parametrize("case", range(len(HORIZONS)))
def test_weighted_km_matches_survfit(result, estimand, case):
    ref = REF["km"][estimand][case]
    tau = ref["tau"]
    for measure, key in (("rmst_diff", "rmst"), ("surv_diff", "surv")):
        r = one(result, "iptw_km", measure, tau, estimand=estimand, variance="if-fixed-ps")
        assert r.estimate == pytest.approx(ref[f"{key}_treated"] - ref[f"{key}_control"], abs=TOL)
        assert r.se == pytest.approx(ref[f"{measure}_se_fixed"], abs=TOL)
    # the weighted curves of the km table are those survfit draws
    km = result.km[result.km.weighting == estimand]
    for arm, side in ((0, "control"), (1, "treated")):
        curve = km[km.arm == arm]
        s = curve.survival.to_numpy()[np.searchsorted(curve.time.to_numpy(), tau, "right") - 1]
        assert s == pytest.approx(ref[f"surv_{side}"], abs=TOL)


# ---- the tables ----------------------------------------------------------------------------
def test_estimates_table_has_one_row_per_planned_fit(result):
    t = result.estimates
    assert list(t.columns) == list(ESTIMATE_COLUMNS)
    assert len(t) == len(analysis_plan(estimators.analysis.BUILTIN_SUITE, HORIZONS, N_BOOT, 3))
    assert (t.error == "").all() and t.converged.all()
    assert len(t.drop_duplicates(["estimator", "options", "measure", "horizon"])) == len(t)
    hr = t[t.measure == "log_hr"]
    np.testing.assert_allclose(hr.hr, np.exp(hr.estimate), rtol=1e-15)
    np.testing.assert_allclose(hr.hr_ci_low, np.exp(hr.ci_low), rtol=1e-15)
    assert t[t.measure != "log_hr"].hr.isna().all()
    assert set(t.horizon.dropna()) == set(HORIZONS)
    # every variance option is there: 5 estimands x 4 variances of siptw, 3 of psm (+ strata)
    assert len(t[t.estimator == "siptw"]) == 20
    assert set(t[t.estimator == "psm"].options) == {
        "variance=cluster",
        "variance=austin-cafri",
        f"variance=bootstrap n_boot={N_BOOT}",
        "strata=True",
    }


def test_an_estimate_is_what_the_estimator_gives_alone(result):
    d = check_analysis_data(gbsg2(), "months", "cens", "horTh", COVARIATES, treated="yes")
    alone = estimators.siptw(d, "time", "event", TREATMENT, COVARIATES, variance="mestimation")
    assert one(result, "siptw", estimand="ATE", variance="mestimation").se == alone.se
    m = estimators.psm(d, "time", "event", TREATMENT, COVARIATES, random_state=3)
    assert one(result, "psm", variance="cluster").estimate == m.estimate


def test_weights_and_matching_are_those_the_estimators_used(result):
    keys = zip(result.estimates.estimator, result.estimates.options, strict=True)
    fits = dict(zip(keys, result.fits, strict=True))
    for est in ("ATE", "ATT", "ATO"):
        w = fits[("siptw", f"estimand={est} variance=robust")].diagnostics["analysis_weights"]
        np.testing.assert_array_equal(result.patients[f"w_{est}"], w)
    m = fits[("psm", "variance=cluster")].diagnostics["matching"]
    np.testing.assert_array_equal(result.patients.w_matched, m.unit_weights(REF["n"]))


def test_balance_table_agrees_with_the_estimators_balance(result):
    b = result.balance
    assert set(b.adjustment) == {"unadjusted", "ATE", "ATT", "ATC", "ATO", "ATM", "matched"}
    levels = set(b.covariate)
    assert {"menostat[Post]", "menostat[Pre]", "tgrade[I]", "tgrade[II]", "tgrade[III]"} <= levels
    fit = result.fits[0]  # siptw ATE robust
    ref = fit.diagnostics["balance"]
    ate = b[b.adjustment == "ATE"].set_index("covariate")
    raw = b[b.adjustment == "unadjusted"].set_index("covariate")
    for name in ref.index:
        assert ate.smd[name] == pytest.approx(ref.smd_after[name], abs=1e-12)
        assert raw.smd[name] == pytest.approx(ref.smd[name], abs=1e-12)
    # a two-level factor: its two indicators have opposite SMDs
    assert raw.smd["menostat[Pre]"] == pytest.approx(-raw.smd["menostat[Post]"], abs=1e-12)
    assert abs(raw.smd["age"]) > 0.5 and abs(ate.smd["age"]) < 0.05  # weighting balances


def test_same_seed_same_table_and_the_seed_reaches_the_random_parts(result):
    args = (gbsg2(), "months", "cens", "horTh", COVARIATES)
    again = analyze(*args, treated="yes", horizons=HORIZONS, n_boot=N_BOOT, seed=3)
    pd.testing.assert_frame_equal(again.estimates, result.estimates)
    pd.testing.assert_frame_equal(again.balance, result.balance)
    other = analyze(*args, treated="yes", horizons=HORIZONS, n_boot=N_BOOT, seed=4)
    boot = other.estimates.options.str.contains("bootstrap")
    assert not np.array_equal(other.estimates.se[boot], result.estimates.se[boot])
    fixed = ~boot & ~other.estimates.estimator.isin(["psm", "matched_km"])
    np.testing.assert_array_equal(other.estimates.se[fixed], result.estimates.se[fixed])


def test_a_failed_fit_is_a_row_with_its_error():
    # a horizon beyond follow-up: the KM rows fail, everything else is fitted
    res = analyze(
        gbsg2(), "months", "cens", "horTh", COVARIATES, treated="yes", horizons=(500.0,),
        estimators=["naive_cox", "iptw_km"],
    )  # fmt: skip
    t = res.estimates
    km = t[t.estimator == "iptw_km"]
    assert len(km) == 8 and (km.error != "").all() and km.estimate.isna().all()
    assert (km.horizon == 500.0).all() and set(km.measure) == {"rmst_diff", "surv_diff"}
    assert (t[t.estimator == "naive_cox"].error == "").all()


def test_a_user_estimator_runs_and_its_failure_is_recorded():
    def broken(df, time, event, treatment, covariates):
        raise RuntimeError("boom")

    def crude(df, time, event, treatment, covariates, shared=None):
        r = estimators.naive_cox(df, time, event, treatment, covariates, shared=shared)
        return EffectEstimate.from_fit("crude_mine", "crude", r.estimate, r.se, r.n, r.events)

    estimators.register_estimator("test_broken", broken, "ATE")
    estimators.register_estimator("test_crude", crude, "crude")
    try:
        res = analyze(
            gbsg2(), "months", "cens", "horTh", COVARIATES, treated="yes",
            estimators=["naive_cox", "test_broken", "test_crude"],
        )  # fmt: skip
    finally:
        estimators.unregister_estimator("test_broken")
        estimators.unregister_estimator("test_crude")
    t = res.estimates.set_index("estimator")
    assert t.loc["test_broken", "error"] == "RuntimeError: boom"
    assert t.loc["test_crude", "estimate"] == t.loc["naive_cox", "estimate"]


def test_default_horizon_is_the_rounded_median_time():
    t = np.array([1.0, 2.0, 13.7, 40.0, 50.0, 60.0])
    assert default_horizons(t, np.array([0, 1, 0, 1, 0, 1])) == (26.0,)  # median 26.85
    assert default_horizons(t, np.array([1, 1, 0, 0, 0, 0])) == (2.0,)  # capped: treated end at 2


# ---- bad input, case by case ------------------------------------------------------------------
def _bad(change):
    d = gbsg2()
    change(d)
    return d


def _set(col, i, value):
    def f(d):
        text = value is None or isinstance(value, str)
        d[col] = d[col].astype(object) if text else d[col].astype(float)
        d.loc[i, col] = value

    return f


BAD = [
    (
        "nan covariate",
        _set("tsize", 5, np.nan),
        {},
        r"covariates='tsize' has missing values.*row 5",
    ),
    ("nan categorical", _set("tgrade", 7, None), {}, r"covariates='tgrade' has missing values"),
    (
        "one-level",
        lambda d: d.__setitem__("menostat", "Post"),
        {},
        r"'menostat' has a single level",
    ),
    ("constant numeric", lambda d: d.__setitem__("age", 50), {}, r"'age' has a single level"),
    ("inf covariate", _set("pnodes", 2, np.inf), {}, r"covariates='pnodes' has infinite"),
    ("negative time", _set("months", 3, -1.0), {}, r"time='months' has non-positive.*row 3"),
    ("zero time", _set("months", 4, 0.0), {}, r"time='months' has non-positive.*row 4"),
    ("nan time", _set("months", 9, np.nan), {}, r"time='months' has missing values.*row 9"),
    ("string time", _set("months", 0, "x"), {}, r"time='months' must be numeric"),
    ("event 2", _set("cens", 1, 2.0), {}, r"event='cens' must hold only 0 and 1.*row 1"),
    ("nan event", _set("cens", 6, np.nan), {}, r"event='cens' has missing values"),
    ("no event", lambda d: d.__setitem__("cens", 0), {}, r"event='cens' has no events"),
    ("3 arms", _set("horTh", 0, "maybe"), {}, r"treatment='horTh' has 3 distinct"),
    ("1 arm", lambda d: d.__setitem__("horTh", "yes"), {}, r"treatment='horTh' has 1 distinct"),
    ("nan treatment", _set("horTh", 2, None), {}, r"treatment='horTh' has missing values"),
    ("treated absent", lambda d: None, {"treated": "oui"}, r"treated='oui' is not a value"),
    ("no treated level", lambda d: None, {"treated": None}, r"horTh.*not 0/1; say which"),
    ("unknown time", lambda d: None, {"time": "tim"}, r"time='tim' is not a column"),
    ("unknown event", lambda d: None, {"event": "status"}, r"event='status' is not a column"),
    ("unknown treatment", lambda d: None, {"treatment": "arm"}, r"treatment='arm' is not a col"),
    ("unknown covariate", lambda d: None, {"covariates": ["age", "bmi"]}, r"'bmi' is not a col"),
    ("covariate = time", lambda d: None, {"covariates": ["age", "months"]}, r"'months' is the"),
    ("repeated covariate", lambda d: None, {"covariates": ["age", "age"]}, r"more than once"),
    ("bare string", lambda d: None, {"covariates": "age"}, r"must be a list of column names"),
    ("empty", lambda d: d.drop(d.index, inplace=True), {}, r"df has no rows"),
    ("unknown estimator", lambda d: None, {"estimators": ["sipwt"]}, r"unknown estimator 'sipwt'"),
    ("bad horizon", lambda d: None, {"horizons": [36, -1]}, r"horizons: -1 is not allowed"),
    ("bad n_boot", lambda d: None, {"n_boot": 1}, r"n_boot=1 is not allowed"),
    ("bad seed", lambda d: None, {"seed": -1}, r"seed=-1 is not allowed"),
]


@pytest.mark.parametrize(("case", "change", "kwargs", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_clear_error_before_any_work(monkeypatch, case, change, kwargs, message):
    def no_work(*args, **kw):
        raise AssertionError("work started before the input was validated")

    monkeypatch.setattr(estimators.analysis, "SharedInputs", no_work)
    args = {"time": "months", "event": "cens", "treatment": "horTh", "covariates": COVARIATES}
    args |= {k: v for k, v in kwargs.items() if k in args}
    opts = {"treated": "yes", "horizons": HORIZONS}
    opts |= {k: v for k, v in kwargs.items() if k not in args}
    with pytest.raises(EstimatorInputError, match=message) as exc:
        analyze(_bad(change), **args, **opts)
    assert "\n" not in str(exc.value)


def test_zero_one_and_boolean_treatments_need_no_treated_level():
    d = gbsg2()
    d["a01"] = (d.horTh == "yes").astype(int)
    d["abool"] = d.horTh == "yes"
    ref = check_analysis_data(d, "months", "cens", "horTh", COVARIATES, treated="yes")
    for col in ("a01", "abool"):
        got = check_analysis_data(d, "months", "cens", col, COVARIATES)
        np.testing.assert_array_equal(got[TREATMENT], ref[TREATMENT])


def test_treated_names_a_value_as_text_or_number():
    d = gbsg2()
    ref = check_analysis_data(d, "months", "cens", "horTh", COVARIATES, treated="yes")
    d["arm"] = np.where(d.horTh == "yes", 2.0, 1.0)  # a 1/2 column, as the CLI passes "2"
    for treated in ("2", 2, 2.0):
        got = check_analysis_data(d, "months", "cens", "arm", COVARIATES, treated=treated)
        np.testing.assert_array_equal(got[TREATMENT], ref[TREATMENT])
    with pytest.raises(EstimatorInputError, match=r"treatment='arm' takes the values"):
        check_analysis_data(d, "months", "cens", "arm", COVARIATES)


def test_a_separating_covariate_is_a_user_error_before_the_estimators():
    d = gbsg2()
    d["leak"] = np.where(d.horTh == "yes", "on", "off")
    with pytest.raises(EstimatorInputError, match="separat"):
        analyze(d, "months", "cens", "horTh", ["age", "leak"], treated="yes")


# ---- the command line -----------------------------------------------------------------------
runner = CliRunner()
CLI = [
    "analyze", str(CSV), "--time", "time", "--event", "cens", "--treatment", "horTh",
    "--treated", "yes", "--covariates", ",".join(COVARIATES), "--horizons", "1095,1825",
    "--n-boot", "5", "--seed", "3",
]  # fmt: skip
FILES = {
    "estimates.csv", "balance.csv", "patients.csv", "km.csv", "analysis.json",
    "love_plot.png", "ps_overlap.png", "km.png", "weights.png",
}  # fmt: skip


def test_cli_writes_the_folder_and_prints_the_table(tmp_path):
    out = tmp_path / "gb"
    res = runner.invoke(app, [*CLI, "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == FILES
    assert "Treatment-effect estimates" in res.stdout and "adjusted_cox" in res.stdout
    written = pd.read_csv(out / "estimates.csv", keep_default_na=False, na_values=[""])
    api = analyze(
        pd.read_csv(CSV), "time", "cens", "horTh", COVARIATES, treated="yes",
        horizons=(1095, 1825), n_boot=5, seed=3,
    ).estimates  # fmt: skip
    np.testing.assert_allclose(written.estimate, api.estimate, rtol=1e-14)
    # time in days here: the Cox estimates are those of the months analysis
    sipw = written[
        (written.estimator == "siptw") & (written.options == "estimand=ATE variance=robust")
    ]
    assert sipw.estimate.iloc[0] == pytest.approx(REF["siptw"]["ATE"]["log_hr"], abs=TOL)
    patients = pd.read_csv(out / "patients.csv")
    assert len(patients) == REF["n"] and {"row", "ps", "w_ATE", "w_matched"} <= set(patients)
    for png in (p for p in FILES if p.endswith(".png")):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    out = tmp_path / "gb"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    res = runner.invoke(app, [*CLI, "-o", str(out)])
    assert res.exit_code == 2
    assert "not empty; pass --overwrite" in res.stderr and len(res.stderr.splitlines()) == 1
    res = runner.invoke(app, [*CLI, "-o", str(out), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert (out / "notes.txt").read_text() == "mine" and (out / "estimates.csv").is_file()


def test_cli_reads_parquet(tmp_path):
    pq = tmp_path / "gbsg2.parquet"
    pd.read_csv(CSV).to_parquet(pq)
    args = [a if a != str(CSV) else str(pq) for a in CLI]
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--covariates", "age,bmi"], "'bmi' is not a column"),
        (["--covariates", " , "], "--covariates=' , ' names no column"),
        (["--time", "horTh"], "time='horTh' must be numeric"),
        (["--horizons", "36,x"], "--horizons='36,x' is not allowed"),
        (["--treated", "oui"], "treated='oui' is not a value"),
        (["--n-boot", "1"], "n_boot=1 is not allowed"),
    ],
)
def test_cli_user_errors_are_one_line_exit_2(tmp_path, change, message):
    args = list(CLI)
    opt = change[0]
    args[args.index(opt) + 1] = change[1]
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_cli_bad_file(tmp_path):
    for path, message in ((tmp_path / "none.csv", "no such file"), (tmp_path / "c.txt", ".csv or")):
        if path.suffix == ".txt":
            path.write_text("a,b\n1,2\n")
        args = [str(path) if a == str(CSV) else a for a in CLI]
        res = runner.invoke(app, [*args, "-o", str(tmp_path / "o")])
        assert res.exit_code == 2 and message in res.stderr, res.output


def test_cli_bad_data_in_a_subprocess_is_one_line_without_traceback(tmp_path):
    import subprocess
    import sys

    d = pd.read_csv(CSV)
    d.loc[11, "pnodes"] = np.nan
    path = tmp_path / "cohort.csv"
    d.to_csv(path, index=False)
    args = [str(path) if a == str(CSV) else a for a in CLI]
    res = subprocess.run(
        [sys.executable, "-m", "simulator.study", *args, "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert (
        "covariates='pnodes' has missing values (NaN) in 1 value(s), first at row 11" in res.stderr
    )
