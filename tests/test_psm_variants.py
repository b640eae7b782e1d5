"""psm variants: 1:k and with-replacement matching, Austin-Cafri and bootstrap variance,
the Cox stratified on matched set, and bad input.

Oracles: the slow references of ``tests/naive.py`` (explicit risk sets: the score at
the estimate, the clustered sandwich and the Austin-Cafri two-way sandwich), and
``fit_cox_arrays`` refitted from scratch on each bootstrap resample.  Tolerances:
the naive sums run in another order (~1e-13 relative); the estimate solves the score
equation to the Newton tolerance (|score| / information << 1e-8 in log-HR).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cohorts import COVARIATES, confounded_cohort
from naive import (
    austin_cafri_naive,
    cox_derivatives_naive,
    cox_sandwich_naive,
)

from estimators import ConvergenceWarning, EstimatorInputError, fit_cox_arrays
from estimators.effects import psm
from estimators.matched_cox import matched_set_bootstrap

ARGS = ("pfs_months", "pfs_event", "treated")


@pytest.fixture(scope="module")
def cohort():
    df = confounded_cohort(260, seed=4)
    df["pfs_months"] = np.ceil(df["pfs_months"] * 2) / 2  # half-month grid: tied times
    return df


def analysis_rows(df, est):
    """time, event, X (m, 1), row weights, sets, patient rows of a psm fit."""
    m = est.diagnostics["matching"]
    rows, sets = m.rows_and_pairs()
    t = df["pfs_months"].to_numpy()[rows]
    e = df["pfs_event"].to_numpy()[rows]
    x = df["treated"].to_numpy()[rows, None].astype(float)
    return t, e, x, m.row_weights(), sets, rows


@pytest.mark.parametrize(
    ("seed", "order", "expected"),
    [
        (0, "random", ("-0x1.f39440c55a0ddp-2", "0x1.165812a88724dp-3", 360)),
        (1, "random", ("-0x1.a07e469e04995p-2", "0x1.e6b58234cf019p-4", 430)),
        (1, "largest", ("-0x1.0dabb6b0a7328p-1", "0x1.da44db279f9b7p-4", 454)),
    ],
)
def test_default_reproduces_the_one_to_one_fit_bit_for_bit(seed, order, expected):
    # hex values recorded from psm before 1:k matching existed (commit 6562bd0); the
    # same matched sets, and since the Cox kernel's passes for a two-valued covariate go
    # by event group (its sums in another order) the same estimate and SE to rounding
    df = confounded_cohort(n=500 + 100 * seed, seed=seed)
    if seed % 2:
        df["pfs_months"] = df["pfs_months"].round(0) + 1
    est = psm(df, *ARGS, COVARIATES, order=order, random_state=seed)
    assert est.n == expected[2]
    got = np.array([est.estimate, est.se])
    np.testing.assert_allclose(got, [float.fromhex(x) for x in expected[:2]], rtol=1e-13)
    assert est.ess == est.n and est.estimand == "ATT"
    explicit = psm(
        df,
        *ARGS,
        COVARIATES,
        order=order,
        random_state=seed,
        ratio=1,
        replace=False,
        variance="cluster",
        strata=False,
    )
    assert explicit == est


@pytest.mark.parametrize("ratio", [1, 2, 5])
@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize("strata", [False, True])
def test_estimate_and_cluster_se_equal_the_naive_weighted_sandwich(cohort, ratio, replace, strata):
    est = psm(cohort, *ARGS, COVARIATES, ratio=ratio, replace=replace, strata=strata)
    t, e, x, w, sets, _ = analysis_rows(cohort, est)
    s = sets if strata else None
    beta = np.array([est.estimate])
    _, score, info = cox_derivatives_naive(t, e, x, w, s, beta, "efron")
    assert abs(score[0] / info[0, 0]) < 1e-8  # the estimate solves the weighted score
    cov = cox_sandwich_naive(t, e, x, w, s, sets, beta, "efron")
    assert est.se == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-10)
    assert est.diagnostics["cluster_se"] == est.se
    assert est.estimand == ("conditional" if strata else "ATT")
    assert est.n == t.size and est.events == e.sum()


@pytest.mark.parametrize("ratio", [1, 3])
@pytest.mark.parametrize("strata", [False, True])
def test_austin_cafri_se_equals_its_formula(cohort, ratio, strata):
    est = psm(
        cohort,
        *ARGS,
        COVARIATES,
        ratio=ratio,
        replace=True,
        variance="austin-cafri",
        strata=strata,
        caliper=None,
    )
    t, e, x, w, sets, patient = analysis_rows(cohort, est)
    assert len(np.unique(patient)) < patient.size  # controls reused: the two ways differ
    cov = austin_cafri_naive(
        t, e, x, w, sets if strata else None, sets, patient, np.array([est.estimate]), "efron"
    )
    assert est.se == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-10)
    assert est.se != pytest.approx(est.diagnostics["cluster_se"], rel=1e-3)


def test_austin_cafri_without_replacement_is_the_set_clustered_se(cohort):
    est = psm(cohort, *ARGS, COVARIATES, ratio=2, variance="austin-cafri")
    assert est.se == pytest.approx(est.diagnostics["cluster_se"], rel=1e-12)


@pytest.mark.parametrize("strata", [False, True])
@pytest.mark.parametrize(("ratio", "replace"), [(1, False), (3, True)])
def test_each_bootstrap_estimate_equals_a_from_scratch_fit(cohort, strata, ratio, replace):
    est = psm(
        cohort,
        *ARGS,
        COVARIATES,
        ratio=ratio,
        replace=replace,
        strata=strata,
        variance="bootstrap",
        n_boot=25,
        random_state=11,
    )
    boot = est.diagnostics["bootstrap"]
    t, e, x, w, sets, _ = analysis_rows(cohort, est)
    assert boot.draws.shape == (25, est.diagnostics["sets"])
    for b, drawn in enumerate(boot.draws):
        idx = np.concatenate([np.flatnonzero(sets == s) for s in drawn])
        strat = np.concatenate([np.full((sets == s).sum(), j) for j, s in enumerate(drawn)])
        ref = fit_cox_arrays(t[idx], e[idx], x[idx], w[idx], strat if strata else None)
        assert ref.converged and boot.status[b] == 0
        assert boot.estimates[b] == pytest.approx(ref.params[0], rel=1e-12, abs=1e-14)
    assert est.se == pytest.approx(np.std(boot.estimates, ddof=1), rel=1e-15)
    assert boot.n_failed == 0 and est.converged


def test_bootstrap_is_reproducible_and_percentile_ci(cohort):
    kw = dict(variance="bootstrap", n_boot=40, random_state=5, ratio=2)
    a = psm(cohort, *ARGS, COVARIATES, **kw)
    b = psm(cohort, *ARGS, COVARIATES, **kw)
    c = psm(cohort, *ARGS, COVARIATES, **kw | {"random_state": 6})
    np.testing.assert_array_equal(
        a.diagnostics["bootstrap"].draws, b.diagnostics["bootstrap"].draws
    )
    assert a.se == b.se != c.se
    # the matching is that of the seed; the resamples an independent stream of it
    assert a.estimate == psm(cohort, *ARGS, COVARIATES, ratio=2, random_state=5).estimate
    draws = np.random.default_rng(np.random.SeedSequence(5).spawn(1)[0]).integers(
        0, a.diagnostics["sets"], size=(40, a.diagnostics["sets"])
    )
    np.testing.assert_array_equal(a.diagnostics["bootstrap"].draws, draws)
    pct = psm(cohort, *ARGS, COVARIATES, **kw | {"boot_ci": "percentile"})
    est = a.diagnostics["bootstrap"].estimates
    assert (pct.ci_low, pct.ci_high) == tuple(np.percentile(est, [2.5, 97.5]))
    assert (a.ci_low, a.ci_high) == pytest.approx(
        (a.estimate - 1.959963984540054 * a.se, a.estimate + 1.959963984540054 * a.se)
    )
    assert pct.se == a.se and pct.estimate == a.estimate


def test_failed_resamples_are_counted_and_reported():
    # 3 sets; set 2 has no event and only one arm present would be impossible, so a
    # resample of set 2 alone has no events, of set 0 alone a single tied pair
    time = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    event = np.array([1, 0, 1, 1, 0, 0], dtype=np.int8)
    a = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    sets = np.array([0, 0, 1, 1, 2, 2])
    draws = np.array([[2, 2, 2], [0, 1, 2], [0, 0, 0], [1, 2, 0]])
    boot = matched_set_bootstrap(
        time, event, a, np.ones(6), sets, 3, False, True, 4, np.random.default_rng(0), draws=draws
    )
    assert boot.status.tolist()[0] == 1  # no events
    assert boot.n_failed == int((boot.status != 0).sum()) >= 1
    assert np.isnan(boot.estimates[boot.status != 0]).all()
    assert "bootstrap resamples could not be fitted (no events: 1" in boot.warning()
    for b in np.flatnonzero(boot.status == 0):
        idx = np.concatenate([np.flatnonzero(sets == s) for s in draws[b]])
        ref = fit_cox_arrays(time[idx], event[idx], a[idx, None])
        assert boot.estimates[b] == pytest.approx(ref.params[0], rel=1e-12)
    for b in np.flatnonzero(boot.status != 0):
        idx = np.concatenate([np.flatnonzero(sets == s) for s in draws[b]])
        if event[idx].any():  # a fit exists but is flagged (monotone likelihood)
            with pytest.warns(Warning):
                assert not fit_cox_arrays(time[idx], event[idx], a[idx, None]).converged


def test_failures_reach_the_estimate_as_a_warning():
    rng = np.random.default_rng(3)
    df = {  # 8 pairs, 2 events: many resamples have no event or all in one arm
        "pfs_months": rng.uniform(1, 20, 16),
        "pfs_event": np.r_[1, 0, 0, 1, np.zeros(12)].astype(int),
        "treated": np.tile([1, 0], 8),
        "x": rng.normal(size=16),
    }
    est = psm(df, *ARGS, ["x"], variance="bootstrap", n_boot=200, caliper=None)
    boot = est.diagnostics["bootstrap"]
    assert est.diagnostics["sets"] == 8
    assert "no events" in boot.failures() and len(boot.failures()) >= 2
    t, e, x, w, sets, _ = analysis_rows(pd.DataFrame(df), est)
    for b, drawn in enumerate(boot.draws):  # failed exactly where a fit is unreliable
        idx = np.concatenate([np.flatnonzero(sets == s) for s in drawn])
        if not e[idx].any():
            assert boot.status[b] == 1
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ref = fit_cox_arrays(t[idx], e[idx], x[idx], w[idx])
        assert ref.converged == (boot.status[b] == 0)
    assert any("bootstrap resamples could not be fitted" in w for w in est.warnings)
    ok = boot.estimates[boot.status == 0]
    assert est.se == pytest.approx(np.std(ok, ddof=1), rel=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ratio": 0}, r"ratio=0 is not allowed; use an integer >= 1"),
        ({"ratio": 1.5}, r"ratio=1.5 is not allowed"),
        ({"ratio": True}, r"ratio=True is not allowed"),
        ({"ratio": "2"}, r"ratio='2' is not allowed"),
        ({"replace": "yes"}, r"replace='yes' is not allowed; use True or False"),
        ({"replace": 1}, r"replace=1 is not allowed"),
        ({"variance": "robust"}, r"variance='robust' is not allowed; use one of \('cluster'"),
        ({"strata": 1}, r"strata=1 is not allowed; use True or False"),
        ({"n_boot": 1}, r"n_boot=1 is not allowed; use an integer >= 2"),
        ({"n_boot": 10.0}, r"n_boot=10.0 is not allowed"),
        (
            {"boot_ci": "bca"},
            r"boot_ci='bca' is not allowed; use one of \('normal', 'percentile'\)",
        ),
    ],
)
def test_bad_input_raises_before_any_work(kwargs, match):
    # df=None would be the next error: the option is checked first
    with pytest.raises(EstimatorInputError, match=match):
        psm(None, *ARGS, COVARIATES, **kwargs)


REFERENCE = json.loads(
    (Path(__file__).parent / "reference" / "matched_cox_reference.json").read_text()
)


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=lambda c: c["name"])
def test_psm_matches_r_coxph_on_the_r_matched_sets(case):
    # R matched with its own implementation of the rules on its glm logit; the logits
    # agree to ~1e-12, far from any distance tie or the caliper boundary
    df = pd.DataFrame(REFERENCE["data"])
    kw = dict(
        caliper=case["caliper"],
        order="data",
        ratio=case["ratio"],
        replace=case["replace"],
        strata=case["strata"],
    )
    est = psm(df, "time", "status", "trt", ["x1", "x2"], **kw)
    m = est.diagnostics["matching"]
    sets = [[int(m.set_treated[s]), *m.control[m.set_id == s].tolist()] for s in range(m.n_sets)]
    assert sets == case["sets"]
    assert est.estimate == pytest.approx(case["coef"], abs=1e-6)
    assert est.se == pytest.approx(case["cluster_se"], rel=1e-6)
    ac = psm(df, "time", "status", "trt", ["x1", "x2"], variance="austin-cafri", **kw)
    assert ac.se == pytest.approx(case["austin_cafri_se"], rel=1e-6)
    assert ac.estimate == est.estimate


def test_shared_inputs_keep_one_matching_per_ratio_and_replacement(cohort):
    from estimators import SharedInputs

    shared = SharedInputs(cohort, "treated")
    fits = {
        (k, r): psm(cohort, *ARGS, COVARIATES, ratio=k, replace=r, shared=shared)
        for k in (1, 2)
        for r in (False, True)
    }
    for (k, r), est in fits.items():
        alone = psm(cohort, *ARGS, COVARIATES, ratio=k, replace=r)
        assert est == alone
        m = est.diagnostics["matching"]
        assert (m.ratio, m.replace) == (k, r)
    again = psm(cohort, *ARGS, COVARIATES, ratio=2, replace=True, shared=shared)
    assert again.diagnostics["matching"] is fits[2, True].diagnostics["matching"]


def test_austin_cafri_unstratified_is_at_least_the_set_clustered_variance(cohort):
    for ratio in (1, 2, 5):
        est = psm(cohort, *ARGS, COVARIATES, ratio=ratio, replace=True, variance="austin-cafri")
        assert est.se >= est.diagnostics["cluster_se"] * (1 - 1e-12)


def test_a_generator_draws_the_order_then_the_resamples(cohort):
    est = psm(
        cohort,
        *ARGS,
        COVARIATES,
        variance="bootstrap",
        n_boot=10,
        random_state=np.random.default_rng(9),
    )
    g = np.random.default_rng(9)
    n_treated = int(cohort["treated"].sum())
    g.permutation(n_treated)  # the matching order
    n_sets = est.diagnostics["sets"]
    draws = g.integers(0, n_sets, size=(10, n_sets))
    np.testing.assert_array_equal(est.diagnostics["bootstrap"].draws, draws)
