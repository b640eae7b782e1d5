"""gcomp / aiptw: g-computation and AIPTW differences of S(tau) and RMST(tau).

Oracles:

* R golden values (tests/reference/r/make_gcomp_reference.R -> gcomp_reference.json):
  ``riskRegression::ate(estimator = "GFORMULA")`` and ``predictCox`` averages (ATE, ATT,
  ATC; S(tau) and RMST) and ``ate(estimator = "AIPTW,AIPCW")`` with its
  influence-function SEs, on GBSG2 at 12 and 24 months.
* Slow reference (tests/naive.py): the g-formula by loops over explicit risk sets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from naive import gformula_naive

from estimators import EstimatorInputError, get_estimator
from estimators.cox import fit_cox_arrays
from estimators.design_matrix import design_matrix
from estimators.exceptions import BootstrapWarning
from estimators.gcomp import aiptw, breslow_baseline, gcomp

REF = Path(__file__).parent / "reference"
GOLD = json.loads((REF / "r" / "gcomp_reference.json").read_text())
COVS = GOLD["covariates"]


@pytest.fixture(scope="module")
def gbsg2() -> pd.DataFrame:
    d = pd.read_csv(REF / "data" / "gbsg2.csv")
    d["trt"] = (d.horTh == "yes").astype(int)
    d["months"] = d.time / (365.25 / 12)
    return d


@pytest.mark.parametrize("estimand", ["ATE", "ATT", "ATC"])
@pytest.mark.parametrize("measure", ["surv_diff", "rmst_diff"])
@pytest.mark.parametrize("tau", [12, 24])
def test_gcomp_matches_riskregression(gbsg2, estimand, measure, tau):
    r = gcomp(
        gbsg2,
        "months",
        "cens",
        "trt",
        COVS,
        measure=measure,
        horizon=tau,
        estimand=estimand,
        n_boot=0,
    )
    gold = GOLD["gformula"][estimand][str(tau)]
    arm = measure.split("_")[0]
    assert r.estimate == pytest.approx(gold[measure], abs=1e-7)
    assert r.diagnostics["treated"] == pytest.approx(gold[f"{arm}_treated"], abs=1e-7)
    assert r.diagnostics["control"] == pytest.approx(gold[f"{arm}_control"], abs=1e-7)
    assert (r.measure, r.horizon, r.estimand) == (measure, float(tau), estimand)


def test_ate_table_agrees_with_riskregression_ate(gbsg2):
    # the predictCox averages equal ate(estimator = "GFORMULA") itself
    for tau, v in zip(
        GOLD["gformula_ate_check"]["time"], GOLD["gformula_ate_check"]["surv_diff"], strict=True
    ):
        assert GOLD["gformula"]["ATE"][str(tau)]["surv_diff"] == pytest.approx(v, abs=1e-12)


@pytest.mark.parametrize("measure", ["surv_diff", "rmst_diff"])
def test_gcomp_matches_naive_loops(gbsg2, measure):
    d = gbsg2.iloc[:120].reset_index(drop=True)
    covs = ["age", "tsize", "pnodes"]
    Z = design_matrix(d, covs).X
    X = np.column_stack([d.trt.to_numpy(float), Z])
    fit = fit_cox_arrays(d.months.to_numpy(), d.cens.to_numpy(), X, ties="breslow")
    for estimand, pop in [("ATE", np.ones(len(d), bool)), ("ATT", d.trt.to_numpy() == 1)]:
        r = gcomp(
            d,
            "months",
            "cens",
            "trt",
            covs,
            measure=measure,
            horizon=18,
            estimand=estimand,
            n_boot=0,
        )
        naive = gformula_naive(
            d.months.to_numpy(),
            d.cens.to_numpy(),
            d.trt.to_numpy(),
            Z,
            fit.params,
            18.0,
            measure == "rmst_diff",
            pop,
        )
        assert r.estimate == pytest.approx(naive, abs=1e-9)


def test_gcomp_bootstrap_is_seeded(gbsg2):
    a = gcomp(
        gbsg2,
        "months",
        "cens",
        "trt",
        COVS,
        measure="surv_diff",
        horizon=24,
        n_boot=30,
        random_state=7,
    )
    b = gcomp(
        gbsg2,
        "months",
        "cens",
        "trt",
        COVS,
        measure="surv_diff",
        horizon=24,
        n_boot=30,
        random_state=7,
    )
    c = gcomp(
        gbsg2,
        "months",
        "cens",
        "trt",
        COVS,
        measure="surv_diff",
        horizon=24,
        n_boot=30,
        random_state=8,
    )
    assert a.se == b.se and a.se != c.se
    assert a.diagnostics["n_failed"] == 0
    # the same order of magnitude as the AIPTW influence-function SE
    assert 0.5 < a.se / GOLD["aiptw"]["24"]["se"] < 1.5
    np.testing.assert_array_equal(a.diagnostics["boot_estimates"], b.diagnostics["boot_estimates"])


@pytest.mark.filterwarnings("ignore::estimators.exceptions.ConvergenceWarning")
def test_gcomp_bootstrap_keeps_resamples_with_a_flagged_outcome_fit(gbsg2):
    """A binary covariate whose level 1 has no events: the Cox coefficient diverges in
    the fit and in every resample that holds such a patient (flagged, not converged), but
    the predictions stay finite.  Those resamples are kept, as the flagged point
    estimate is (before: every resample dropped, SE NaN)."""
    d = gbsg2.copy()
    censored = np.flatnonzero(d["cens"].to_numpy() == 0)
    d["no_events"] = 0
    d.loc[d.index[censored[:25]], "no_events"] = 1  # 25 censored patients, no event
    with pytest.warns(BootstrapWarning, match=r"flagged \(not converged\) in \d+ of 30"):
        r = gcomp(
            d,
            "months",
            "cens",
            "trt",
            [*COVS, "no_events"],
            measure="surv_diff",
            horizon=24,
            n_boot=30,
            random_state=7,
        )
    assert not r.converged and np.isfinite(r.estimate)
    assert np.isfinite(r.se) and r.se > 0
    assert r.diagnostics["n_failed"] == 0 and r.diagnostics["n_flagged"] > 0
    # the SE is of the size of the one without the no-event covariate
    plain = gcomp(
        gbsg2,
        "months",
        "cens",
        "trt",
        COVS,
        measure="surv_diff",
        horizon=24,
        n_boot=30,
        random_state=7,
    )
    assert 0.5 < r.se / plain.se < 2.0


def test_gcomp_registered(gbsg2):
    est = get_estimator("gcomp")
    assert est.estimand == "ATE"
    r = est.func(gbsg2, "months", "cens", "trt", COVS, measure="surv_diff", horizon=12, n_boot=0)
    assert r.method == "gcomp"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"horizon": 0}, "horizon=0 is not allowed"),
        ({"horizon": -3.0}, "horizon=-3.0 is not allowed"),
        ({"horizon": 500.0}, "beyond the last follow-up"),
        ({"measure": "log_hr"}, "measure='log_hr' is not allowed"),
        ({"measure": "odds"}, "measure='odds' is not allowed"),
        ({"estimand": "ATO"}, "estimand='ATO' is not allowed"),
        ({"n_boot": 1}, "n_boot=1 is not allowed"),
        ({"variance": "if"}, "variance='if' is not allowed"),
    ],
)
def test_gcomp_bad_input(gbsg2, options, match):
    with pytest.raises(EstimatorInputError, match=match):
        gcomp(gbsg2, "months", "cens", "trt", COVS, **options)


@pytest.mark.parametrize("tau", [12, 24])
def test_aiptw_matches_riskregression_exactly_on_its_grid(gbsg2, tau):
    r = aiptw(gbsg2, "months", "cens", "trt", COVS, horizon=tau, censoring_grid="riskregression")
    gold = GOLD["aiptw"][str(tau)]
    assert r.estimate == pytest.approx(gold["surv_diff"], abs=1e-8)
    assert r.diagnostics["treated"] == pytest.approx(gold["surv_treated"], abs=1e-8)
    assert r.diagnostics["control"] == pytest.approx(gold["surv_control"], abs=1e-8)
    # influence-function SE with the nuisance models known (known.nuisance = TRUE)
    assert r.se == pytest.approx(gold["se_known_nuisance"], abs=1e-8)
    # R's default SE adds the nuisance-estimation terms: about 1-2 % smaller here
    assert 0.97 < gold["se"] / r.se < 1.0


@pytest.mark.parametrize("tau", [12, 24])
def test_aiptw_distinct_grid_close_to_riskregression(gbsg2, tau):
    r = aiptw(gbsg2, "months", "cens", "trt", COVS, horizon=tau)
    gold = GOLD["aiptw"][str(tau)]
    # tied censoring times: riskRegression counts their increment once per tie
    assert 1e-6 < abs(r.diagnostics["treated"] - gold["surv_treated"]) < 1e-3
    assert abs(r.estimate - gold["surv_diff"]) < 1e-3
    assert r.se == pytest.approx(gold["se_known_nuisance"], rel=1e-3)
    assert float(r.diagnostics["influence"].sum()) == pytest.approx(0.0, abs=1e-10)


def test_aiptw_grids_agree_without_tied_censoring(gbsg2):
    d = gbsg2.copy()
    rng = np.random.default_rng(3)
    d["months"] = d.months + rng.uniform(0, 1e-3, len(d))  # break every tie
    a = aiptw(d, "months", "cens", "trt", COVS, horizon=24)
    b = aiptw(d, "months", "cens", "trt", COVS, horizon=24, censoring_grid="riskregression")
    assert a.estimate == pytest.approx(b.estimate, abs=1e-12)
    assert a.se == pytest.approx(b.se, abs=1e-12)


def test_aiptw_without_censoring_before_tau_is_the_closed_form(gbsg2):
    # nobody censored before tau: G = 1 and the censoring augmentation vanishes, so
    # S_1 = mean(S_i(tau | 1) + A_i / e_i (1(T_i > tau) - S_i(tau | 1)))
    d = gbsg2.copy()
    d["months"] = np.where(d.cens == 0, np.maximum(d.months, 30.0), d.months)
    r = aiptw(d, "months", "cens", "trt", COVS, horizon=24)
    e = r.diagnostics["propensity"].ps
    a, surv = d.trt.to_numpy(), (d.months.to_numpy() > 24).astype(float)
    Z = design_matrix(d, COVS).X
    X = np.column_stack([a.astype(float), Z])
    fit = fit_cox_arrays(d.months.to_numpy(), d.cens.to_numpy(), X, ties="breslow")
    lp = Z @ fit.params[1:]
    u, H = breslow_baseline(d.months.to_numpy(), d.cens.to_numpy(), lp + fit.params[0] * a)
    S1 = np.exp(-H[u <= 24][-1] * np.exp(lp + fit.params[0]))
    assert r.diagnostics["treated"] == pytest.approx(np.mean(S1 + a / e * (surv - S1)), abs=1e-10)


def test_aiptw_registered(gbsg2):
    est = get_estimator("aiptw")
    assert est.estimand == "ATE"
    r = est.func(gbsg2, "months", "cens", "trt", COVS, measure="surv_diff", horizon=12)
    assert (r.method, r.measure, r.horizon) == ("aiptw", "surv_diff", 12.0)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"horizon": 0}, "horizon=0 is not allowed"),
        ({"horizon": 500.0}, "beyond the last follow-up"),
        ({"measure": "rmst_diff"}, "measure='rmst_diff' is not allowed; use 'surv_diff'"),
        ({"measure": "odds"}, "measure='odds' is not allowed"),
        ({"estimand": "ATT"}, "estimand='ATT' is not allowed"),
        ({"variance": "bootstrap"}, "variance='bootstrap' is not allowed"),
        ({"censoring_grid": "all"}, "censoring_grid='all' is not allowed"),
    ],
)
def test_aiptw_bad_input(gbsg2, options, match):
    with pytest.raises(EstimatorInputError, match=match):
        aiptw(gbsg2, "months", "cens", "trt", COVS, **options)
