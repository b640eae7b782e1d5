"""Counting-process (start, stop] Cox fits: R golden values, splitting invariance,
entry = 0 against the usual fit, lifelines CoxTimeVaryingFitter, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import cox_derivatives_naive, cox_sandwich_naive

from estimators import CoxPH, fit_cox_arrays
from estimators.exceptions import EstimatorInputError

REFERENCE = json.loads(
    (Path(__file__).parent / "reference" / "r" / "cpcox_reference.json").read_text()
)
HEART = pd.DataFrame(REFERENCE["data"])
TOL = 1e-6


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=lambda c: c["name"])
def test_heart_matches_r_coxph(case):
    p = len(case["covariates"])
    cph = CoxPH(ties=case["ties"]).fit(
        HEART, "stop", "event", case["covariates"], cluster_col="id", entry_col="start"
    )
    assert cph.converged_
    np.testing.assert_allclose(cph.params_.to_numpy(), case["coef"], rtol=0, atol=TOL)
    naive = np.asarray(case["naive_var"]).reshape(p, p)
    robust = np.asarray(case["robust_var"]).reshape(p, p)
    np.testing.assert_allclose(
        cph.model_standard_errors_.to_numpy(), np.sqrt(naive.diagonal()), rtol=TOL
    )
    np.testing.assert_allclose(cph.variance_matrix_.to_numpy(), robust, rtol=TOL, atol=1e-12)
    assert cph.log_likelihood_ == pytest.approx(case["loglik"], rel=1e-10)


def test_heart_point_estimate_matches_lifelines():
    lifelines = pytest.importorskip("lifelines")
    cols = ["age", "year", "surgery", "transplant"]
    ctv = lifelines.CoxTimeVaryingFitter().fit(
        HEART[["id", "start", "stop", "event", *cols]],
        id_col="id",
        start_col="start",
        stop_col="stop",
        event_col="event",
    )
    ours = CoxPH().fit(HEART, "stop", "event", cols, entry_col="start")
    np.testing.assert_allclose(ours.params_.to_numpy(), ctv.params_[cols].to_numpy(), atol=1e-6)


def _patients(seed: int, n: int = 120):
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)]).astype(float)
    t = np.ceil(rng.exponential(8.0, n) * np.exp(-0.4 * x[:, 0] - 0.5 * x[:, 1]))  # ties
    e = (rng.random(n) < 0.75).astype(float)
    return t, e, x


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), ties=st.sampled_from(["efron", "breslow"]))
def test_splitting_follow_up_leaves_the_fit_unchanged(seed, ties):
    t, e, x = _patients(seed % 1000)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(t.shape[0]):
        k = rng.integers(0, 4)
        cuts = np.unique(np.r_[rng.uniform(0, t[i], k), rng.integers(1, int(t[i]) + 1, k)])
        pts = np.r_[0.0, cuts[(cuts > 0) & (cuts < t[i])], t[i]]
        for j in range(pts.shape[0] - 1):
            last = j == pts.shape[0] - 2
            rows.append((i, pts[j], pts[j + 1], e[i] if last else 0.0, *x[i]))
    a = np.asarray(rows)
    whole = fit_cox_arrays(t, e, x, ties=ties, robust=True)
    split = fit_cox_arrays(
        a[:, 2], a[:, 3], a[:, 4:], ties=ties, cluster=a[:, 0].astype(int), entry=a[:, 1]
    )
    np.testing.assert_allclose(split.params, whole.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(split.model_se, whole.model_se, rtol=1e-10)
    np.testing.assert_allclose(split.se, whole.se, rtol=1e-9)
    assert split.loglik == pytest.approx(whole.loglik, rel=1e-12)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_entry_zero_equals_the_usual_fit(ties):
    t, e, x = _patients(3, 200)
    w = np.random.default_rng(4).uniform(0.5, 2.0, t.shape[0])
    strata = (x[:, 0] > 0).astype(np.int64)
    a = fit_cox_arrays(t, e, x[:, :1], weights=w, strata=strata, robust=True, ties=ties)
    b = fit_cox_arrays(
        t, e, x[:, :1], weights=w, strata=strata, robust=True, ties=ties, entry=np.zeros(t.shape[0])
    )
    np.testing.assert_allclose(b.params, a.params, atol=1e-12)
    np.testing.assert_allclose(b.se, a.se, rtol=1e-10)
    np.testing.assert_allclose(b.model_se, a.model_se, rtol=1e-10)


def test_delayed_entry_changes_the_fit():
    t, e, x = _patients(5, 200)
    entry = np.floor(t * 0.5)
    a = fit_cox_arrays(t, e, x)
    b = fit_cox_arrays(t, e, x, entry=entry)
    assert np.abs(a.params - b.params).max() > 1e-3


@pytest.mark.parametrize(
    ("row", "col", "value", "match"),
    [
        (3, "stop", 1.0, r"duration_col='stop' <= entry_col='start', first at row 3"),
        (5, "start", -1.0, r"entry_col='start' has 1 negative .* first at row 5"),
        (5, "start", np.nan, r"entry_col='start' has 1 negative or non-finite"),
        (5, "start", 30.0, r"overlapping interval.*row 4.*row 5"),
    ],
)
def test_bad_intervals_name_column_and_row(row, col, value, match):
    df = HEART[["id", "start", "stop", "event", "age"]].copy()
    df.loc[row, col] = value
    with pytest.raises(EstimatorInputError, match=match):
        CoxPH().fit(df, "stop", "event", ["age"], cluster_col="id", entry_col="start")


def test_missing_entry_column_is_named():
    with pytest.raises(EstimatorInputError, match="entry_col='begin' is not a column"):
        CoxPH().fit(HEART, "stop", "event", ["age"], entry_col="begin")


def test_array_entry_length_checked():
    t, e, x = _patients(1, 20)
    with pytest.raises(EstimatorInputError, match="entry has 19 rows"):
        fit_cox_arrays(t, e, x, entry=np.zeros(19))


def test_id_col_checks_overlap_without_changing_the_variance():
    df = HEART[["id", "start", "stop", "event", "age", "transplant"]].copy()
    cols = ["age", "transplant"]
    plain = CoxPH().fit(df, "stop", "event", cols, entry_col="start")
    with_ids = CoxPH().fit(df, "stop", "event", cols, entry_col="start", id_col="id")
    assert not with_ids.robust_
    np.testing.assert_array_equal(with_ids.params_, plain.params_)
    np.testing.assert_array_equal(with_ids.standard_errors_, plain.standard_errors_)
    bad = df.copy()
    bad.loc[5, "start"] = 30.0  # overlaps the patient's previous interval
    with pytest.raises(EstimatorInputError, match=r"overlapping interval.*row 4.*row 5"):
        CoxPH().fit(bad, "stop", "event", cols, entry_col="start", id_col="id")
    # without an id the rows cannot be attributed to patients: no overlap check (documented)
    CoxPH().fit(bad, "stop", "event", cols, entry_col="start")


def test_id_col_needs_entry_col():
    with pytest.raises(EstimatorInputError, match="id_col='id' identifies"):
        CoxPH().fit(HEART, "stop", "event", ["age"], id_col="id")
    t, e, x = _patients(1, 20)
    with pytest.raises(EstimatorInputError, match="give entry as well"):
        fit_cox_arrays(t, e, x, ids=np.arange(20))


def test_sparse_cluster_ids_and_separate_ids_give_the_same_fit():
    """Ids far apart (no lookup table) and ids given apart from the cluster change nothing."""
    d = HEART
    cols = ["age", "year", "surgery", "transplant"]
    a = (d["start"].to_numpy(), d["stop"].to_numpy(), d["event"].to_numpy(), d[cols].to_numpy())
    ids = d["id"].to_numpy()
    ref = fit_cox_arrays(a[1], a[2], a[3], entry=a[0], cluster=ids)
    sparse = fit_cox_arrays(a[1], a[2], a[3], entry=a[0], cluster=ids * 10**12 - 7)
    big = 2**62 + 2**61
    extreme = np.where(ids % 2 == 0, ids - big, big - ids)  # max - min overflows int64
    wide = fit_cox_arrays(a[1], a[2], a[3], entry=a[0], cluster=extreme)
    np.testing.assert_allclose(wide.cov, ref.cov, rtol=1e-12)
    both = fit_cox_arrays(a[1], a[2], a[3], entry=a[0], cluster=ids, ids=ids + 5)
    np.testing.assert_allclose(sparse.cov, ref.cov, rtol=1e-12)
    np.testing.assert_array_equal(both.cov, ref.cov)
    bad_start = a[0].copy()
    bad_start[5] = 30.0
    with pytest.raises(EstimatorInputError, match="overlapping"):
        fit_cox_arrays(a[1], a[2], a[3], entry=bad_start, cluster=ids * 10**12 - 7)
    with pytest.raises(EstimatorInputError, match="overlapping"):  # ids checked, cluster not
        fit_cox_arrays(a[1], a[2], a[3], entry=bad_start, ids=ids, cluster=np.arange(ids.size))


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_stratified_counting_fit_equals_separate_sweeps(ties):
    """Strata: the same fit whatever the stratum codes' order in the data."""
    d = HEART
    cols = ["age", "year", "transplant"]
    strata = d["surgery"].to_numpy().astype(np.int64)
    args = (d["stop"].to_numpy(), d["event"].to_numpy(), d[cols].to_numpy())
    entry, ids = d["start"].to_numpy(), d["id"].to_numpy()
    a = fit_cox_arrays(*args, entry=entry, strata=strata, ties=ties, cluster=ids)
    perm = np.random.default_rng(0).permutation(len(d))
    b = fit_cox_arrays(
        *(x[perm] for x in args),
        entry=entry[perm],
        strata=1 - strata[perm],
        ties=ties,
        cluster=ids[perm],
    )
    np.testing.assert_allclose(b.params, a.params, atol=1e-12)
    np.testing.assert_allclose(b.cov, a.cov, rtol=1e-10)
    assert b.loglik == pytest.approx(a.loglik, rel=1e-13)


@pytest.mark.parametrize("extra", [0, 3], ids=["p3", "p6"])
@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_weighted_stratified_clustered_fit_matches_naive_loops(ties, extra):
    """Strata (one of them without delayed entry), weights, tied times, clusters: the
    score vanishes and loglik, information and sandwich equal explicit risk-set loops,
    with 3 or 6 covariates."""
    rng = np.random.default_rng(11)
    rows = []
    for i in range(150):
        stratum = i % 3
        x = (rng.normal(), float(rng.integers(0, 2)))
        t_end = float(np.ceil(rng.exponential(10.0 * np.exp(-0.5 * x[1]))))  # ties
        cuts = [] if stratum == 0 else sorted(set(rng.integers(1, 12, 2)) - {0})
        pts = [0.0 if stratum != 2 else 0.5, *[c for c in cuts if c < t_end], t_end]
        if pts[0] >= pts[-1]:
            continue
        ev = float(rng.random() < 0.7)
        for j in range(len(pts) - 1):
            tv = float(rng.integers(0, 2))
            last = j == len(pts) - 2
            rows.append((i, stratum, pts[j], pts[j + 1], ev if last else 0.0, *x, tv))
    a = np.asarray(rows)
    ids, strata, start, stop, event, X = (
        a[:, 0].astype(int),
        a[:, 1].astype(int),
        a[:, 2],
        a[:, 3],
        a[:, 4],
        a[:, 5:],
    )
    w = rng.uniform(0.5, 2.0, a.shape[0])
    X = np.c_[X, rng.normal(size=(a.shape[0], extra))]
    fit = fit_cox_arrays(stop, event, X, weights=w, strata=strata, cluster=ids, entry=start,
                         ties=ties, tol=1e-12)  # fmt: skip
    assert fit.converged
    ll, score, info = cox_derivatives_naive(stop, event, X, w, strata, fit.params, ties, start)
    np.testing.assert_allclose(score, 0.0, atol=1e-7)
    assert fit.loglik == pytest.approx(ll, rel=1e-12)
    np.testing.assert_allclose(fit.model_se, np.sqrt(np.diag(np.linalg.inv(info))), rtol=1e-9)
    sandwich = cox_sandwich_naive(stop, event, X, w, strata, ids, fit.params, ties, start)
    np.testing.assert_allclose(fit.cov, sandwich, rtol=1e-8, atol=1e-14)
