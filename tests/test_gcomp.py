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
from estimators.gcomp import gcomp

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
