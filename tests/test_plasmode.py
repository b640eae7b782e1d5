"""Plasmode scenarios (simulator.plasmode): input checks, determinism, the fits against
lifelines / statsmodels, the truths against potential outcomes fitted independently, the
scenario file and the study runner; a slow GBSG2 study of both exposure designs."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_gbsg2

from estimators import fit_cox_arrays
from simulator.exceptions import ScenarioError
from simulator.plasmode import (
    PlasmodeScenario,
    calibrate_log_hr,
    design,
    fit_logistic,
    fit_weibull_ph,
    iptw_limit,
    load_plasmode,
    marginal_log_hr,
    plasmode,
    save_plasmode,
    simulate_plasmode,
)

COVS = ["age", "menostat", "tsize", "tgrade", "pnodes", "progrec", "estrec"]
QUIET = {"progress": False, "log": lambda msg: None}


def gbsg2() -> pd.DataFrame:
    d = load_gbsg2()
    d["months"] = d["time"] / 30.4375
    d["hormonal"] = (d["horTh"] == "yes").astype(int)
    return d


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return gbsg2()


@pytest.fixture(scope="module")
def sc(base) -> PlasmodeScenario:
    return plasmode(base, COVS, "hormonal", "months", "cens", horizon=60.0)


def _with(base: pd.DataFrame, col: str, values) -> pd.DataFrame:
    d = base.copy()
    d[col] = values
    return d


# ---- bad input, case by case ------------------------------------------------------------
def _bad_cases(b: pd.DataFrame):
    nan_age = b["age"].astype(float).copy()
    nan_age.iloc[3] = np.nan
    neg = b["months"].copy()
    neg.iloc[5] = -1.0
    three = b["hormonal"].copy()
    three.iloc[0] = 2
    ev = b["cens"].copy()
    ev.iloc[0] = 2
    args = (COVS, "hormonal", "months", "cens")
    return [
        ("nan covariate", (_with(b, "age", nan_age), *args), {}, "'age' has 1 missing"),
        ("one level", (_with(b, "menostat", "Post"), *args), {}, "'menostat' has one level"),
        ("negative time", (_with(b, "months", neg), *args), {}, "-1.0 at row 5"),
        ("zero time", (_with(b, "months", b["months"].where(b.index != 2, 0.0)), *args), {},
         "0.0 at row 2"),
        ("three-valued treatment", (_with(b, "hormonal", three), *args), {}, "[0, 1, 2]"),
        ("string treatment", (b, COVS, "horTh", "months", "cens"), {}, "treated_value"),
        ("wrong treated_value", (b, COVS, "horTh", "months", "cens"), {"treated_value": "y"},
         "treated_value='y'"),
        ("event not 0/1", (_with(b, "cens", ev), *args), {}, "must be 0/1"),
        ("missing column", (b, [*COVS, "ki67"], "hormonal", "months", "cens"), {}, "'ki67'"),
        ("covariate is the time", (b, [*COVS, "months"], "hormonal", "months", "cens"), {},
         "different columns"),
        ("not a frame", (b.to_dict(), *args), {}, "give a DataFrame"),
        ("exposure", (b, *args), {"exposure": "kept"}, "exposure='kept'"),
        ("censoring", (b, *args), {"censoring": "none"}, "censoring='none'"),
        ("both effects", (b, *args), {"log_hr": -0.2, "marginal_target": -0.2}, "give one"),
        ("ps name", (b, *args), {"ps_coef": {"grade": 1.0}}, "ps_coef['grade']"),
        ("ps value", (b, *args), {"ps_coef": {"age": "x"}}, "ps_coef['age']"),
        ("horizon", (b, *args), {"horizon": 200.0}, "horizon=200.0"),
        ("log_hr", (b, *args), {"log_hr": 9.0}, "log_hr=9.0"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(18))
def test_bad_input_is_named(base, case):
    cases = _bad_cases(base)
    assert len(cases) == 18
    _, args, kwargs, msg = cases[case]
    with pytest.raises(ScenarioError) as exc:
        plasmode(*args, **kwargs)
    assert msg in str(exc.value)


def test_bad_simulate_and_replace(sc):
    for n in (0, -3, 2.5, True):
        with pytest.raises(ScenarioError, match="n="):
            sc.simulate(n, 1)
    with pytest.raises(ScenarioError, match="'shape' is not a parameter"):
        sc.replace(shape=2.0)
    with pytest.raises(ScenarioError, match="exposure='both'"):
        sc.replace(exposure="both")
    with pytest.raises(ScenarioError, match=r"marginal_target=4\.0"):
        calibrate_log_hr(sc, 4.0)


def test_treated_value_codes_a_string_column(base, sc):
    other = plasmode(base, COVS, "horTh", "months", "cens", treated_value="yes", horizon=60.0)
    assert other.fitted_log_hr == sc.fitted_log_hr
    assert other.ps == sc.ps


# ---- determinism ------------------------------------------------------------------------
def test_same_seed_same_frame_bit_for_bit(sc):
    a = sc.simulate(500, np.random.SeedSequence(11))
    b = pickle.loads(pickle.dumps(sc)).simulate(500, np.random.SeedSequence(11))
    pd.testing.assert_frame_equal(a, b)
    c = sc.simulate(500, np.random.SeedSequence(12))
    assert not np.array_equal(a["months"], c["months"])
    assert list(a.columns) == list(sc.columns)
    assert a["tgrade"].dtype == sc.base["tgrade"].dtype  # categoricals stay categorical


def test_observed_design_keeps_each_rows_exposure(base, sc):
    obs = sc.replace(exposure="observed")
    df = simulate_plasmode(obs, 2000, 3, potential_outcomes=True)
    a = base["hormonal"].to_numpy()[df["base_row"].to_numpy()]
    assert np.array_equal(df["hormonal"].to_numpy(), a)
    # the simulated design draws it: about e(x) per row, not the row's own value
    sim = simulate_plasmode(sc, 20000, 3, potential_outcomes=True)
    e = sc.propensity()[sim["base_row"].to_numpy()]
    resid = sim["hormonal"].to_numpy() - e
    assert abs(resid.mean()) < 4 * math.sqrt(np.mean(e * (1 - e)) / len(e))


# ---- the fits against independent implementations ---------------------------------------
def test_weibull_fit_matches_lifelines(base):
    from lifelines import WeibullAFTFitter

    X = design(base, ["age", "pnodes", "progrec"], {})
    t, d = base["months"].to_numpy(), base["cens"].to_numpy()
    k, b0, beta = fit_weibull_ph(t, d, X)
    aft = WeibullAFTFitter().fit(
        base[["age", "pnodes", "progrec", "months", "cens"]], "months", "cens"
    )
    rho = math.exp(aft.params_.loc[("rho_", "Intercept")])
    lam = aft.params_.loc["lambda_"]
    assert k == pytest.approx(rho, rel=1e-4)
    for j, c in enumerate(["age", "pnodes", "progrec"]):  # PH log-HR = -shape * AFT coef
        assert beta[j] == pytest.approx(-rho * lam[c], rel=1e-3, abs=1e-6)
    assert b0 == pytest.approx(-rho * lam["Intercept"], rel=1e-4)


def test_logistic_fit_matches_statsmodels(base, sc):
    import statsmodels.api as sm

    X = design(base, COVS, sc.levels)
    y = base["hormonal"].to_numpy(dtype=float)
    ref = sm.Logit(y, sm.add_constant(X)).fit(disp=0, tol=1e-12).params
    np.testing.assert_allclose(fit_logistic(y, X), ref, rtol=1e-6, atol=1e-9)


# ---- truths against potential outcomes fitted independently -----------------------------
@pytest.fixture(scope="module")
def population(sc):
    """200,000 resampled rows with both potential times (common random numbers) and an
    independent censoring time drawn here from the censoring model."""
    df = simulate_plasmode(sc, 200_000, 2026, potential_outcomes=True)
    rng = np.random.default_rng(99)
    X = design(df, sc.covariates, sc.levels)
    m = sc.censoring_model
    lp = m.lp(X, sc.design_names)
    c = (rng.standard_exponential(len(df)) * np.exp(-lp)) ** (1 / m.shape)
    df["c"] = np.minimum(c, sc.followup)
    return df


def _stacked_cox(df, sc, censor, rows=None):
    d = df if rows is None else df[rows]
    t = np.concatenate([d["months_0"], d["months_1"]])
    c = np.concatenate([censor(d)] * 2)
    a = np.repeat([0.0, 1.0], len(d))[:, None]
    ids = np.tile(np.arange(len(d)), 2)
    fit = fit_cox_arrays(np.minimum(t, c), (t <= c).astype(float), a, cluster=ids, robust=True)
    return fit.params[0], fit.se[0]


@pytest.mark.parametrize(
    "estimand,censoring",
    [("ATE", "admin"), ("ATE", "study"), ("ATT", "admin")],
)
def test_marginal_log_hr_truth_agrees_with_stacked_cox(sc, population, estimand, censoring):
    def censor(d):
        return np.full(len(d), sc.followup) if censoring == "admin" else d["c"].to_numpy()

    rows = None if estimand == "ATE" else population["hormonal"].to_numpy() == 1
    got, se = _stacked_cox(population, sc, censor, rows)
    theta, err = sc.truth().estimand("os", estimand, censoring, "log_hr")
    assert err < 1e-6
    assert abs(got - theta) < 3 * se, (got, theta, se)
    # and it is not the conditional value (non-collapsibility shows at this precision)
    assert abs(theta - sc.log_hr) > 6 * se


@pytest.mark.parametrize("measure", ["surv_diff", "rmst_diff"])
def test_horizon_truths_agree_with_potential_outcomes(sc, population, measure):
    h = sc.horizon
    t0, t1 = population["months_0"].to_numpy(), population["months_1"].to_numpy()
    d = (t1 > h).astype(float) - (t0 > h) if measure == "surv_diff" else (
        np.minimum(t1, h) - np.minimum(t0, h))  # fmt: skip
    theta, _ = sc.truth().estimand("os", "ATE", "admin", measure, h)
    assert abs(d.mean() - theta) < 3 * d.std() / math.sqrt(len(d))


def test_conditional_truth_is_the_adjusted_coefficient(sc, population):
    d = population.iloc[:100_000]
    X = design(d, sc.covariates, sc.levels)
    t = np.concatenate([d["months_0"], d["months_1"]])
    c = np.full(len(t), sc.followup)
    Z = np.column_stack([np.repeat([0.0, 1.0], len(d)), np.vstack([X, X])])
    fit = fit_cox_arrays(np.minimum(t, c), (t <= c).astype(float), Z)
    assert sc.truth().estimand("os", "conditional", "admin", "log_hr") == (sc.log_hr, 0.0)
    assert abs(fit.params[0] - sc.log_hr) < 3 * fit.se[0]


def test_marginal_target_is_reached(sc):
    target = math.log(0.7)
    cal = sc.replace(marginal_target=target)
    assert cal.marginal_target == target
    assert marginal_log_hr(cal) == pytest.approx(target, abs=1e-6)
    assert cal.truth().estimand("os", "ATE", "admin", "log_hr")[0] == pytest.approx(
        target, abs=1e-6
    )
    assert cal.log_hr < target  # the conditional effect is further from 0


def test_truth_rejects_what_it_does_not_hold(sc):
    tr = sc.truth()
    with pytest.raises(ValueError, match="outcome='pfs'"):
        tr.estimand("os" if False else "pfs", "ATE", "admin", "log_hr")
    with pytest.raises(ValueError, match="horizon=24"):
        tr.estimand("os", "ATE", "admin", "rmst_diff", 24)
    obs = sc.replace(exposure="observed").truth()
    with pytest.raises(ValueError, match="estimand='ATO'"):
        obs.estimand("os", "ATO", "admin", "log_hr")


# ---- the scenario file and the study runner ---------------------------------------------
def test_save_load_roundtrip(sc, tmp_path):
    p = save_plasmode(sc, tmp_path / "gbsg2.toml")
    back = load_plasmode(p)
    assert back.fingerprint() == sc.fingerprint()
    pd.testing.assert_frame_equal(back.simulate(300, 4), sc.simulate(300, 4))
    changed = back.base.copy()
    changed.loc[0, "age"] += 1
    changed.to_parquet(tmp_path / "gbsg2.parquet", index=False)
    with pytest.raises(ScenarioError, match="hash differs"):
        load_plasmode(tmp_path / "gbsg2.toml")


def test_run_study_on_a_plasmode_file(sc, tmp_path):
    from estimators import siptw
    from simulator.study.kinds import get_kind, is_kind
    from simulator.study.replicate import replicate_seed
    from simulator.study.runner import run_study
    from simulator.study.spec import Study
    from simulator.study.store import Store

    p = str(save_plasmode(sc.replace(exposure="observed"), tmp_path / "pl.toml"))
    kind = get_kind(p)
    assert is_kind(kind) and kind.exposure == "observed"
    study = Study(
        name="pl", scenarios=(p,), reps=2, chunk_reps=1, sample_sizes=(400,), seed=5,
        estimators=("siptw", "adjusted_cox"), outcomes=("os",), covariates=tuple(COVS),
        truth_censoring="study", vary={"exposure": ["simulate", "observed"]},
    )  # fmt: skip
    report = run_study(study, tmp_path / "out", workers=1, **QUIET)
    assert report.complete
    rows = Store(tmp_path / "out").read_results()
    assert len(rows) == 2 * 2 * 2 and rows["error"].eq("").all()
    first = rows[(rows["condition"] == 0) & (rows["rep"] == 1) & (rows["estimator"] == "siptw")]
    df = kind.replace(exposure="simulate").simulate(400, replicate_seed(5, 0, 1))
    assert first["estimate"].iloc[0] == siptw(df, "months", "cens", "hormonal", COVS).estimate
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    truth = {(t["estimand"], t["measure"]): t["theta"] for t in run["conditions"][0]["truth"]}
    assert truth[("ATE", "log_hr")] == sc.truth().estimand("os", "ATE", "study", "log_hr")[0]


# ---- the acceptance study on GBSG2 (slow) -----------------------------------------------
def test_iptw_limit_is_the_truth_only_when_exposure_is_simulated(sc):
    theta = sc.truth().estimand("os", "ATE", "study", "log_hr")[0]
    assert iptw_limit(sc, "study") == pytest.approx(theta, abs=1e-6)
    obs = sc.replace(exposure="observed")
    assert obs.truth().estimand("os", "ATE", "study", "log_hr")[0] == theta  # same population
    assert abs(iptw_limit(obs, "study") - theta) > 1e-3  # GBSG2: +0.0076


@pytest.mark.slow
def test_gbsg2_designs_siptw_unbiased_when_exposure_is_simulated(sc):
    """1,000 replicates of n = 6,860 (ten times the cohort) per design.  Simulated
    exposure: sIPTW within 2 MCSE of the ATE truth.  Observed exposure: its mean is
    where :func:`iptw_limit` predicts (within 3 MCSE), away from the truth."""
    from estimators import siptw

    out = {}
    for exposure in ("simulate", "observed"):
        s = sc.replace(exposure=exposure)
        est = np.array(
            [
                siptw(s.simulate(6860, np.random.SeedSequence([7, r])), "months", "cens",
                      "hormonal", COVS, balance=False).estimate
                for r in range(1000)
            ]
        )  # fmt: skip
        theta = s.truth().estimand("os", "ATE", "study", "log_hr")[0]
        mcse = est.std(ddof=1) / math.sqrt(len(est))
        out[exposure] = (est.mean(), theta, mcse, iptw_limit(s, "study"))
        lim = out[exposure][3]
        print(f"{exposure}: mean {est.mean():+.4f} truth {theta:+.4f} bias "
              f"{est.mean() - theta:+.4f} (MCSE {mcse:.4f}); limit {lim:+.4f}")  # fmt: skip
    mean, theta, mcse, _ = out["simulate"]
    assert abs(mean - theta) < 2 * mcse
    mean, theta, mcse, limit = out["observed"]
    assert abs(mean - limit) < 3 * mcse


def test_cli_writes_a_scenario_rwesim_runs(base, sc, tmp_path):
    from typer.testing import CliRunner

    from simulator.study.cli import app

    base.drop(columns=["months", "hormonal"]).to_parquet(tmp_path / "gbsg2.parquet")
    args = ["plasmode", str(tmp_path / "gbsg2.parquet"), "--covariates", ",".join(COVS),
            "--treatment", "horTh", "--treated", "yes", "--time", "time", "--event", "cens",
            "-o", str(tmp_path / "gb.toml")]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    got = load_plasmode(tmp_path / "gb.toml")
    assert got.fitted_log_hr == pytest.approx(sc.fitted_log_hr, rel=1e-6)  # days, not months
    assert got.exposure == "simulate" and got.treatment == "horTh"
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--force" in again.output
    bad = CliRunner().invoke(app, [*args[:3], "age,ki67", *args[4:-1], str(tmp_path / "x.toml")])
    assert bad.exit_code == 2 and "'ki67'" in bad.output
    run = CliRunner().invoke(
        app, ["run", str(tmp_path / "gb.toml"), "--reps", "2", "-n", "300", "--workers", "1",
              "-o", str(tmp_path / "out")],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    meta = json.loads((tmp_path / "out" / "run.json").read_text())
    assert meta["study"]["truth_censoring"] == "study"  # the kind's choice under fitted censoring
