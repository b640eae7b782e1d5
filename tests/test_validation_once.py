"""Validation at the boundary, once: duplicate columns, column mappings, shared inputs,
and the audit defects of the estimators (each test failed before its fix)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from cohorts import COVARIATES, confounded_cohort
from hypothesis import given, settings
from hypothesis import strategies as st

import estimators
import estimators.effects as effects_module
import estimators.shared as shared_module
from estimators import (
    Coded,
    ConvergenceWarning,
    CoxPH,
    EstimatorInputError,
    NoCovariatesWarning,
    SharedInputs,
    adjusted_cox,
    design_matrix,
    fit_cox_arrays,
    fit_propensity,
    kaplan_meier_by_arm,
    naive_cox,
    psm,
    siptw,
)

OUT = ("pfs_months", "pfs_event", "treated")


@pytest.fixture(scope="module")
def cohort():
    return confounded_cohort(500, seed=11)


def _duplicated(df, col):
    return pd.concat([df, df[[col]]], axis=1)


CALLS = {
    "siptw": lambda df: siptw(df, *OUT, COVARIATES),
    "psm": lambda df: psm(df, *OUT, COVARIATES),
    "naive_cox": lambda df: naive_cox(df, *OUT),
    "adjusted_cox": lambda df: adjusted_cox(df, *OUT, COVARIATES),
    "fit_propensity": lambda df: fit_propensity(df, "treated", COVARIATES),
    "design_matrix": lambda df: design_matrix(df, COVARIATES),
    "CoxPH": lambda df: CoxPH().fit(df, "pfs_months", "pfs_event", ["treated", "age"]),
    "kaplan_meier_by_arm": lambda df: kaplan_meier_by_arm(df, *OUT),
}


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("col", ["age", "pfs_months", "treated"])
def test_duplicate_column_names_are_a_clear_error(cohort, name, col):
    # before: a pandas traceback (a DataFrame where a Series was expected)
    with pytest.raises(EstimatorInputError, match=rf"duplicate column names \['{col}'\]"):
        CALLS[name](_duplicated(cohort, col))


def test_covariates_named_twice_is_an_error(cohort):
    with pytest.raises(EstimatorInputError, match=r"names \['age'\] more than once"):
        siptw(cohort, *OUT, ["age", "ecog", "age"])


def test_unhashable_covariate_is_a_clear_error(cohort):
    with pytest.raises(EstimatorInputError, match=r"must be column names; \['ecog'\] is not one"):
        siptw(cohort, *OUT, ["age", ["ecog"]])


def _columns(df):
    cols = {}
    for c in df.columns:
        s = df[c]
        if s.dtype == object:
            codes, levels = pd.factorize(s, sort=True)
            cols[c] = Coded(codes, tuple(levels))
        else:
            cols[c] = s.to_numpy()
    return cols


@pytest.mark.parametrize("name", ["siptw", "psm", "naive_cox", "adjusted_cox"])
def test_column_mapping_gives_the_dataframe_result_bit_for_bit(cohort, name):
    a, b = CALLS[name](cohort), CALLS[name](_columns(cohort))
    assert (a.log_hr, a.se, a.n, a.events, a.converged) == (
        b.log_hr,
        b.se,
        b.n,
        b.events,
        b.converged,
    )


@pytest.mark.parametrize("name", ["siptw", "psm", "naive_cox", "adjusted_cox"])
def test_shared_inputs_give_the_plain_result_bit_for_bit(cohort, name):
    shared = SharedInputs(cohort, "treated", [*COVARIATES, "pfs_event"])
    fn = getattr(estimators, name)
    covs = [] if name == "naive_cox" else COVARIATES
    plain = fn(cohort, *OUT, covs)
    for _ in range(2):  # the second call reuses every cached input
        fast = fn(None, *OUT, covs, shared=shared)
        assert (fast.log_hr, fast.se, fast.ess) == (plain.log_hr, plain.se, plain.ess)


def test_siptw_validates_the_treatment_once(cohort, monkeypatch):
    # before: four treatment checks and two time checks in one call
    calls = {"treatment": 0, "times": 0}
    for module in (shared_module,):
        for fname, key in (("check_treatment", "treatment"), ("time_column", "times")):
            original = getattr(module, fname)

            def counted(*args, _original=original, _key=key, **kwargs):
                calls[_key] += 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(module, fname, counted)
    siptw(cohort, *OUT, COVARIATES)
    assert calls == {"treatment": 1, "times": 1}
    # and every other module's check is the boundary of its own public function only
    import estimators.propensity as prop
    import estimators.weighting as wt

    for module in (prop, wt, effects_module):
        monkeypatch.setattr(
            module,
            "check_treatment",
            lambda *a, **k: pytest.fail("treatment validated twice"),
            raising=False,
        )
    siptw(cohort, *OUT, COVARIATES)


def test_siptw_without_covariates_warns_crude(cohort):
    # before: the crude contrast labelled ATE, no warning
    with pytest.warns(NoCovariatesWarning, match="crude"):
        r = siptw(cohort, *OUT, [])
    assert r.estimand == "ATE"
    assert any("crude" in w for w in r.warnings)
    crude = naive_cox(cohort, *OUT)
    np.testing.assert_allclose(r.log_hr, crude.log_hr, rtol=1e-10)
    with pytest.warns(NoCovariatesWarning):
        psm(cohort, *OUT, [])


@pytest.mark.parametrize(
    "time, event, x",
    [
        ([1.0, 2.0], [1, 1], [1.0, 0.0]),  # two patients: log-HR ran off to 38 silently
        ([1.0, 2.0], [1, 0], [1.0, 0.0]),
        ([1.0, 2.0, 3.0, 4.0], [1, 1, 0, 0], [1.0, 1.0, 0.0, 0.0]),
    ],
)
def test_monotone_likelihood_warns_and_is_not_converged(time, event, x):
    with pytest.warns(ConvergenceWarning, match="monotone"):
        fit = fit_cox_arrays(np.array(time), np.array(event), np.array(x)[:, None])
    assert not fit.converged and not fit.converged_for(0)
    df = pd.DataFrame({"t": time, "e": event, "a": x})
    with pytest.warns(ConvergenceWarning):
        est = naive_cox(df, "t", "e", "a")
    assert not est.converged


def _epoch(cohort, scale):
    """The cohort with an index date in seconds (SD ~ 3e7 at scale 1)."""
    rng = np.random.default_rng(5)
    days = rng.uniform(0.0, 3 * 365.25, len(cohort))
    return cohort.assign(index_date=1.6e9 + days * 86400.0 * scale)


def test_large_scale_covariate_fits_as_the_same_covariate_in_years(cohort):
    # before: a false "collinear" error (sIPTW, PSM) and HR 1.000 with SE NaN (adjusted Cox)
    secs = _epoch(cohort, 1.0)
    years = secs.assign(index_date=(secs["index_date"] - 1.6e9) / (86400.0 * 365.25))
    covs = [*COVARIATES, "index_date"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fn in (siptw, psm, adjusted_cox):
            a, b = fn(secs, *OUT, covs), fn(years, *OUT, covs)
            assert a.converged and b.converged
            # a linear change of one covariate leaves the treatment effect unchanged (the
            # PS and the Cox partial likelihood are invariant); Newton stops ~1e-10 away
            np.testing.assert_allclose(a.log_hr, b.log_hr, rtol=1e-7)
            np.testing.assert_allclose(a.se, b.se, rtol=1e-6)
    ps_s = fit_propensity(secs, "treated", covs)
    ps_y = fit_propensity(years, "treated", covs)
    factor = 86400.0 * 365.25
    np.testing.assert_allclose(ps_s.coef["index_date"] * factor, ps_y.coef["index_date"], rtol=1e-6)
    np.testing.assert_allclose(ps_s.se["index_date"] * factor, ps_y.se["index_date"], rtol=1e-6)
    np.testing.assert_allclose(ps_s.ps, ps_y.ps, rtol=1e-8)


def test_rescaling_is_exact_for_cox():
    # columns far from unit scale are divided by a power of two: the fit of X * 2**30 is
    # the fit of X with coefficients / 2**30, bit for bit
    rng = np.random.default_rng(2)
    n = 200
    X = np.c_[rng.binomial(1, 0.5, n), rng.normal(size=n)]
    t = rng.exponential(10.0, n)
    e = rng.binomial(1, 0.8, n)
    a = fit_cox_arrays(t, e, X)
    big = X.copy()
    big[:, 1] *= 2.0**30
    b = fit_cox_arrays(t, e, big)
    assert b.params[0] == a.params[0] and b.se[0] == a.se[0]
    assert b.params[1] * 2.0**30 == a.params[1]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    take=st.lists(st.sampled_from(["x", "k", "b", "c", "i"]), min_size=1, max_size=5, unique=True),
)
def test_design_ranges_filled_while_building_equal_a_scan_of_the_matrix(n, seed, take):
    """design_matrix and select fill Design.ranges as they build (no scan of X): the
    same min / max / finite as the column-range kernel computes from the matrix."""
    from estimators._column_kernels import _column_ranges

    rng = np.random.default_rng(seed)
    cols = {
        "x": rng.normal(size=n) * 10.0 ** rng.integers(-3, 8),
        "k": rng.integers(-5, 5, size=n).astype(np.int8),
        "b": rng.random(n) < 0.5,
        "c": pd.Categorical(rng.choice(["a", "b", "c"], size=n)),
        "i": rng.integers(0, 2, size=n),
    }
    d = design_matrix(pd.DataFrame(cols), take)
    kept = list(dict.fromkeys(d.sources))  # a categorical with one level has no column
    for design in (d, d.select(kept[::-1]), d.select(kept[:1])):
        filled = design.__dict__.get("ranges")
        assert filled is not None
        for got, want in zip(filled, _column_ranges(design.X), strict=True):
            np.testing.assert_array_equal(got, want)


def _outcome_or_error(f):
    try:
        return f()
    except EstimatorInputError as exc:
        return str(exc)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.sampled_from([0, 1, 0, 1, 2, -1, 0.5, np.nan, np.inf]), min_size=1),
    dtype=st.sampled_from(["int8", "int64", "uint8", "bool", "float64"]),
)
def test_binary_column_fast_path_gives_the_checks_result(values, dtype):
    """An integer column skips the float copy: same int8 values, same errors."""
    from estimators.validation import binary_column, check_binary, float_column

    x = np.array(values, dtype=float)
    if dtype != "float64":
        x = x[np.isfinite(x)]
        x = x.astype(dtype) if dtype != "bool" else x != 0
    cols = {"e": x}
    slow = _outcome_or_error(lambda: check_binary(float_column(cols, "e", "event"), "event"))
    fast = _outcome_or_error(lambda: binary_column(cols, "e", "event"))
    if isinstance(slow, str):
        assert fast == slow
    else:
        assert fast.dtype == np.int8 and np.array_equal(fast, slow)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([0.5, 3.0, 0.0, -1.0, np.nan, np.inf, -np.inf]), min_size=1))
def test_time_column_fast_path_gives_the_checks_result(values):
    from estimators.validation import check_times, float_column, time_column

    cols = {"t": np.array(values)}
    slow = _outcome_or_error(lambda: check_times(float_column(cols, "t", "time"), "time"))
    fast = _outcome_or_error(lambda: time_column(cols, "t", "time"))
    if isinstance(slow, str):
        assert fast == slow
    else:
        assert np.array_equal(fast, slow)
