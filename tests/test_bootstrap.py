"""siptw_bootstrap: every resample equals a from-scratch fit, thread-count invariance,
SE convergence, failed resamples counted, the ``siptw(variance="bootstrap")`` wiring,
bad input.

Tolerance of the from-scratch comparison, ``FROM_SCRATCH_ATOL = 1e-10`` on the log-HR:
the kernel and the public pipeline (``fit_logistic``, ``iptw_weights``,
``fit_cox_arrays`` on the resampled rows) solve the same equations in different
floating-point order (the PS likelihood over distinct rows with multiplicities vs the
repeated rows, BLAS vs loops, numpy's pairwise sums vs sequential ones, the Cox sums
per event group vs per row, libm vs numpy ``exp``), and the PS Newton starts from the
full-sample coefficients instead of 0.  Each is a relative perturbation of the order of
``1e-16`` times the number of terms (~1e3) of smooth estimating equations; both fits
stop by the same rules (PS: last Newton step <= 1e-10, so by quadratic convergence the
PS is exact to rounding; Cox: R's rule from the same start), so the estimates differ
by ~1e-13 (observed: at most 1.2e-15).  A real discrepancy (a wrong weight, percentile or
Efron term) moves the log-HR by > 1e-6.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cohorts import COVARIATES, confounded_cohort
from hypothesis import given
from hypothesis import strategies as st
from naive import iptw_weights_all_naive
from scipy.special import expit
from scipy.stats import norm

from estimators import (
    BootstrapWarning,
    EstimatorInputError,
    SharedInputs,
    fit_cox_arrays,
    fit_logistic,
    fit_propensity,
    iptw_weights,
    outcome_arrays,
    siptw,
    siptw_bootstrap,
)
from estimators import _bootstrap_kernels as bk
from estimators.bootstrap import (
    FAILURES,
    KERNEL_ESTIMANDS,
    _resample_weights,
    bootstrap_propensity,
    draw_resamples,
)
from estimators.propensity import PS_EPS

ARGS = ("pfs_months", "pfs_event", "treated")
FROM_SCRATCH_ATOL = 1e-10
MAIN_ESTIMANDS = KERNEL_ESTIMANDS  # estimators.weighting has every estimand the kernel has
COX_FAILURES = {FAILURES[bk.COX_NOT_CONVERGED], FAILURES[bk.COX_DIVERGED]}


def cohort(n: int, seed: int, tied: bool = False):
    df = confounded_cohort(n, seed=seed)
    if tied:  # whole months: many tied times in the full sample too
        df["pfs_months"] = np.ceil(df["pfs_months"])
    return df


def inputs(df, method: str = "ml", covariates=COVARIATES):
    model = fit_propensity(df, "treated", covariates, method=method)
    return model, outcome_arrays(df, *ARGS)


def reference_weights(ps, a, estimand, truncate):
    """Public iptw_weights for the estimands weighting.py has, else the naive formulas
    (switch to iptw_weights at merge with the branch adding ATC / ATO / ATM)."""
    if estimand in MAIN_ESTIMANDS:
        return iptw_weights(ps, a, estimand, truncate=truncate)
    w = iptw_weights_all_naive(ps, a, estimand, stabilized=True)
    return truncated(w, a, estimand, truncate)


def truncated(w, a, estimand, truncate):
    """Weights clipped at the percentiles of the estimated ones (not the ATT's treated, not
    the ATC's controls), as estimators.weighting does."""
    if truncate is None:
        return w
    est = {"ATT": a == 0, "ATC": a == 1}.get(estimand, np.ones(a.size, bool))
    lo, hi = np.percentile(w[est], truncate)
    w = w.copy()
    w[est] = np.clip(w[est], lo, hi)
    return w


def from_scratch(model, oc, rows, estimand, truncate, ties) -> float:
    """The log-HR of resample ``rows`` by the public functions; NaN if any fit fails."""
    X = np.column_stack([np.ones(oc.time.size), model.design.X])[rows]
    a = oc.treatment[rows].astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ps = fit_logistic(X, a, method=model.method)
        except EstimatorInputError:  # collinear / separated resample
            return np.nan
        if not ps.converged:
            return np.nan
        w = reference_weights(ps.prob, a, estimand, truncate)
        fit = fit_cox_arrays(oc.time[rows], oc.event[rows], a[:, None], weights=w, ties=ties)
    return float(fit.params[0]) if fit.converged else np.nan


@pytest.mark.parametrize(
    ("estimand", "truncate", "ties", "method", "tied"),
    [
        ("ATE", None, "efron", "ml", False),
        ("ATE", None, "breslow", "ml", True),
        ("ATE", (5, 95), "efron", "ml", True),
        ("ATT", None, "efron", "ml", True),
        ("ATT", (1, 99), "breslow", "ml", False),
        ("ATE", None, "efron", "firth", True),
        ("ATT", (5, 95), "efron", "firth", False),
        ("ATC", (5, 95), "efron", "ml", True),
        ("ATO", None, "efron", "ml", True),
        ("ATM", (2, 98), "breslow", "ml", False),
    ],
)
def test_each_resample_equals_a_from_scratch_fit(estimand, truncate, ties, method, tied):
    df = cohort(300, seed=11, tied=tied)
    model, oc = inputs(df, method)
    n_boot, seed = 25, 7
    res = siptw_bootstrap(model, oc, estimand, truncate, ties, n_boot, seed)
    rows = draw_resamples(oc.time.size, n_boot, np.random.default_rng(seed))
    ref = np.array([from_scratch(model, oc, r, estimand, truncate, ties) for r in rows])
    assert (res.status == 0).all() and np.isfinite(ref).all()
    np.testing.assert_allclose(res.estimates, ref, rtol=0, atol=FROM_SCRATCH_ATOL)
    assert res.estimates.std() > 0.01  # the resamples really differ


def test_identity_resample_is_the_siptw_estimate():
    df = cohort(300, seed=12, tied=True)
    model, oc = inputs(df)
    for estimand in MAIN_ESTIMANDS:
        res = siptw_bootstrap(model, oc, estimand, (1, 99), n_boot=2)
        est = siptw(df, *ARGS, COVARIATES, estimand=estimand, truncate=(1, 99))
        assert res.estimate == pytest.approx(est.log_hr, abs=FROM_SCRATCH_ATOL)


@pytest.mark.parametrize("estimand", KERNEL_ESTIMANDS)
@pytest.mark.parametrize("stabilized", [True, False])
@pytest.mark.parametrize("truncate", [None, (1, 99), (10, 75)])
def test_kernel_weights_equal_weighting(estimand, stabilized, truncate):
    df = cohort(200, seed=13)
    model, oc = inputs(df)
    rows = draw_resamples(200, 1, np.random.default_rng(3))[0]
    a = oc.treatment[rows]
    got = _resample_weights(model.logit, oc.treatment, rows, estimand, stabilized, truncate)
    ps = expit(model.logit[rows])
    if estimand in MAIN_ESTIMANDS:
        want = iptw_weights(ps, a, estimand, stabilized, truncate)
    else:
        want = truncated(iptw_weights_all_naive(ps, a, estimand, stabilized), a, estimand, truncate)
    np.testing.assert_allclose(got, want, rtol=1e-13)


@given(
    st.lists(st.floats(0.01, 100.0), min_size=1, max_size=60),
    st.floats(0.0, 100.0),
)
def test_percentile_is_numpys(values, q):
    v = np.sort(np.array(values))
    assert bk._percentile_sorted(v, q) == np.percentile(v, q)


def test_kernel_constants_are_the_estimators():
    assert bk.PS_EPS == PS_EPS
    assert KERNEL_ESTIMANDS[bk.ATE : bk.ATM + 1] == ("ATE", "ATT", "ATC", "ATO", "ATM")


_THREADS_SCRIPT = """
import json, sys
import numpy as np
import pandas as pd
sys.path.insert(0, {tests!r})
from cohorts import COVARIATES, confounded_cohort
from estimators import fit_propensity, outcome_arrays, siptw_bootstrap
import numba
df = confounded_cohort(300, seed=14)
m = fit_propensity(df, "treated", COVARIATES)
oc = outcome_arrays(df, "pfs_months", "pfs_event", "treated")
r = siptw_bootstrap(m, oc, "ATE", (1, 99), n_boot=64, random_state=5)
print(json.dumps([numba.get_num_threads(), r.estimates.tobytes().hex()]))
"""


def test_bit_identical_whatever_the_thread_count():
    root = Path(__file__).resolve().parents[1]
    script = _THREADS_SCRIPT.format(tests=str(root / "tests"))
    out = {}
    for threads in (1, 2):
        env = {**os.environ, "NUMBA_NUM_THREADS": str(threads), "PYTHONPATH": str(root)}
        run = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        got_threads, hexed = json.loads(run.stdout.strip().splitlines()[-1])
        assert got_threads == threads
        out[threads] = hexed
    assert out[1] == out[2]
    df = confounded_cohort(300, seed=14)
    model, oc = inputs(df)
    here = siptw_bootstrap(model, oc, "ATE", (1, 99), n_boot=64, random_state=5)
    assert here.estimates.tobytes().hex() == out[1]


def independent_se(df, covariates) -> tuple[float, str]:
    """The SE the bootstrap SE converges to: the M-estimation SE of sIPTW-ATE, which
    accounts for the PS estimation (consistent; with no covariates the weights are all 1
    and it is the robust SE)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        se = siptw(df, *ARGS, covariates, estimand="ATE", variance="mestimation").se
    return se, "consistent"


@pytest.mark.parametrize("covariates", [COVARIATES, []])
def test_bootstrap_se_converges(covariates):
    """n_boot = 2,000 on n = 2,000.  The SE of a bootstrap SE is ~ SE / sqrt(2 n_boot)
    (1.6% here); the bound allows 4 of those (the bootstrap and the sandwich variance
    differ by O(1/n) beyond Monte Carlo error, 0.05% at this n)."""
    df = cohort(2000, seed=15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit_propensity(df, "treated", covariates)
    oc = outcome_arrays(df, *ARGS)
    n_boot = 2000
    res = siptw_bootstrap(model, oc, "ATE", n_boot=n_boot, random_state=16)
    assert res.n_failed == 0
    ref, kind = independent_se(df, covariates)
    mc = 4.0 / np.sqrt(2.0 * n_boot)
    if kind == "consistent":
        assert abs(res.se / ref - 1.0) <= mc
    else:
        assert res.se <= ref * (1.0 + mc)
    assert res.se > 0.5 * ref  # and not degenerate


def test_failed_resamples_are_counted_not_dropped():
    """One treated event only: every resample that misses it has a treated arm without
    events (the Cox coefficient diverges).  PS on age and visceral disease (no rare
    level that a resample could separate)."""
    rng = np.random.default_rng(17)
    n = 60
    df = confounded_cohort(n, seed=18)
    treated = np.flatnonzero(df["treated"].to_numpy() == 1)
    df.loc[df.index[treated[1:]], "pfs_event"] = 0
    df.loc[df.index[treated[0]], "pfs_event"] = 1
    model, oc = inputs(df, covariates=["age", "visceral"])
    n_boot = 200
    with pytest.warns(BootstrapWarning, match="of 200 bootstrap resamples failed"):
        res = siptw_bootstrap(model, oc, n_boot=n_boot, random_state=rng)
    rows = draw_resamples(n, n_boot, np.random.default_rng(17))
    missed = ~(rows == treated[0]).any(axis=1)
    assert 40 < missed.sum() < 110  # about 200 (59/60)^60 = 73
    np.testing.assert_array_equal(res.status != 0, missed)
    assert res.n_failed == missed.sum() == sum(res.failures.values())
    assert set(res.failures) <= COX_FAILURES
    assert np.isnan(res.estimates[missed]).all() and np.isfinite(res.estimates[~missed]).all()
    assert res.se == pytest.approx(np.std(res.estimates[~missed], ddof=1), rel=1e-14)
    ref = np.array([from_scratch(model, oc, r, "ATE", None, "efron") for r in rows])
    np.testing.assert_array_equal(np.isnan(ref), missed)
    np.testing.assert_allclose(res.estimates[~missed], ref[~missed], atol=FROM_SCRATCH_ATOL)
    assert "failed to fit" in res.warning


def test_one_arm_resamples_are_counted():
    df = confounded_cohort(40, seed=19)
    df["treated"] = 0
    df.loc[df.index[:2], "treated"] = 1
    model, oc = inputs(df, "firth")
    with pytest.warns(BootstrapWarning):
        res = siptw_bootstrap(model, oc, n_boot=100, random_state=20)
    rows = draw_resamples(40, 100, np.random.default_rng(20))
    no_treated = ~(rows < 2).any(axis=1)
    assert res.failures[FAILURES[bk.ONE_ARM]] == no_treated.sum() > 0
    assert (res.status[no_treated] == bk.ONE_ARM).all()


def test_siptw_bootstrap_variance():
    df = cohort(400, seed=21)
    robust = siptw(df, *ARGS, COVARIATES)
    est = siptw(df, *ARGS, COVARIATES, variance="bootstrap", n_boot=100, random_state=22)
    boot = est.diagnostics["bootstrap"]
    assert est.log_hr == robust.log_hr == boot.estimate
    assert est.se == boot.se != robust.se
    z = norm.ppf(0.975)
    assert (est.ci_low, est.ci_high) == pytest.approx(boot.ci_normal, rel=1e-14)
    assert est.ci_low == pytest.approx(est.log_hr - z * est.se, rel=1e-14)
    assert est.p_value == pytest.approx(2 * norm.sf(abs(est.log_hr) / est.se), rel=1e-12)
    assert boot.n_boot == 100 and est.converged
    model, oc = inputs(df)
    again = siptw_bootstrap(model, oc, n_boot=100, random_state=np.random.default_rng(22))
    np.testing.assert_array_equal(again.estimates, boot.estimates)  # bit for bit
    pct = siptw(
        df, *ARGS, COVARIATES, variance="bootstrap", n_boot=100, random_state=22,
        boot_ci="percentile",
    )  # fmt: skip
    assert (pct.ci_low, pct.ci_high) == boot.ci_percentile
    assert boot.ci_percentile == tuple(np.quantile(boot.estimates, [0.025, 0.975]))
    assert pct.se == est.se and pct.p_value == est.p_value
    assert "bootstrap" not in robust.diagnostics


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_boot": 1}, "n_boot=1 is not allowed"),
        ({"n_boot": 2.5}, "n_boot=2.5"),
        ({"n_boot": True}, "n_boot=True"),
        ({"n_boot": "200"}, "n_boot='200'"),
        ({"boot_ci": "basic"}, "boot_ci='basic' is not allowed"),
        ({"variance": "jackknife"}, "variance='jackknife' is not allowed"),
        ({"random_state": -1}, "random_state=-1"),
    ],
)
def test_bad_input_is_refused_before_any_work(kwargs, match):
    with pytest.raises(EstimatorInputError, match=match):
        siptw(None, *ARGS, COVARIATES, **({"variance": "bootstrap"} | kwargs))


def test_bad_bootstrap_arguments():
    df = cohort(100, seed=23)
    model, oc = inputs(df)
    with pytest.raises(EstimatorInputError, match="estimand='ATX'"):
        siptw_bootstrap(model, oc, "ATX")
    with pytest.raises(EstimatorInputError, match="n_boot=0"):
        siptw_bootstrap(model, oc, n_boot=0)
    with pytest.raises(EstimatorInputError, match=r"alpha=1\.5"):
        siptw_bootstrap(model, oc, alpha=1.5)
    other = outcome_arrays(cohort(100, seed=24), *ARGS)
    with pytest.raises(EstimatorInputError, match="not the same patients"):
        siptw_bootstrap(model, other)
    with pytest.raises(EstimatorInputError, match="outcome must be an Outcome"):
        siptw_bootstrap(model, df)


def test_att_resamples_without_overlap_are_counted():
    """Controls on both sides of the treated (no separation), one control among them:
    a resample that misses it has no control inside the treated's PS range (ATT)."""
    rng = np.random.default_rng(25)
    x = np.r_[rng.uniform(0, 1, 20), rng.uniform(-2, -0.1, 20), rng.uniform(1.1, 3, 20), 0.5]
    a = np.r_[np.ones(20), np.zeros(41)].astype(int)
    t = rng.exponential(10.0, x.size)
    df = pd.DataFrame({"treated": a, "pfs_months": t, "pfs_event": 1, "x": x})
    model, oc = inputs(df, covariates=["x"])
    n_boot = 100
    with pytest.warns(BootstrapWarning, match="no overlap"):
        res = siptw_bootstrap(model, oc, "ATT", n_boot=n_boot, random_state=26)
    rows = draw_resamples(x.size, n_boot, np.random.default_rng(26))
    X = np.column_stack([np.ones(x.size), x])
    expected = []
    for r in rows:
        logit = fit_logistic(X[r], a[r]).eta
        inside = (logit >= logit[a[r] == 1].min()) & (logit <= logit[a[r] == 1].max())
        expected.append(not (inside & (a[r] == 0)).any())
    expected = np.array(expected)
    assert 10 < expected.sum() < 80
    np.testing.assert_array_equal(res.status == bk.NO_OVERLAP, expected)
    assert res.failures[FAILURES[bk.NO_OVERLAP]] == expected.sum() == res.n_failed


def test_the_ps_stage_is_shared_by_outcomes_and_estimands():
    df = cohort(300, seed=27)
    df["os_months"] = df["pfs_months"] * 1.7
    df["os_event"] = df["pfs_event"]
    shared = SharedInputs(df, "treated")
    kw = {"variance": "bootstrap", "n_boot": 50, "random_state": 28, "shared": shared}
    cases = [(out, estimand) for out in ("pfs", "os") for estimand in MAIN_ESTIMANDS]
    got = {
        (out, estimand): siptw(
            None, f"{out}_months", f"{out}_event", "treated", COVARIATES, estimand, **kw
        )
        for out, estimand in cases
    }
    stage = [k for k in shared._cache if k[:2] == ("memo", "siptw-boot-ps")]
    assert len(stage) == 1  # one PS refit per resample for all four
    for (out, estimand), est in got.items():
        kw_alone = kw | {"shared": None}
        alone = siptw(
            df, f"{out}_months", f"{out}_event", "treated", COVARIATES, estimand, **kw_alone
        )
        np.testing.assert_array_equal(
            est.diagnostics["bootstrap"].estimates, alone.diagnostics["bootstrap"].estimates
        )
    model, oc = inputs(df)
    ps = bootstrap_propensity(model, 50, 28)
    with pytest.raises(EstimatorInputError, match="not n_boot=40"):
        siptw_bootstrap(model, oc, n_boot=40, resamples=ps)
    with pytest.raises(EstimatorInputError, match="resamples must be"):
        siptw_bootstrap(inputs(df)[0], oc, n_boot=50, resamples=ps)


def from_scratch_trimmed(model, oc, rows, estimand, truncate, ties, trim) -> float:
    """As :func:`from_scratch`, dropping the resample's patients whose refitted PS is
    outside ``trim`` before the weights and the Cox model."""
    X = np.column_stack([np.ones(oc.time.size), model.design.X])[rows]
    a = oc.treatment[rows].astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ps = fit_logistic(X, a, method=model.method).prob
        keep = (ps >= trim[0]) & (ps <= trim[1])
        w = reference_weights(ps[keep], a[keep], estimand, truncate)
        t, e = oc.time[rows][keep], oc.event[rows][keep]
        fit = fit_cox_arrays(t, e, a[keep, None], weights=w, ties=ties)
    return float(fit.params[0]) if fit.converged else np.nan


@pytest.mark.parametrize(
    ("estimand", "truncate", "trim"),
    [("ATE", None, (0.1, 0.9)), ("ATT", (1, 99), (0.12, 0.88)), ("ATO", None, (0.1, 0.9))],
)
def test_trimmed_resamples_equal_a_from_scratch_fit(estimand, truncate, trim):
    df = confounded_cohort(300, seed=29, confounding=2.5)
    df["pfs_months"] = np.ceil(df["pfs_months"])
    model, oc = inputs(df)
    assert ((model.ps < trim[0]) | (model.ps > trim[1])).mean() > 0.05  # trimming bites
    res = siptw_bootstrap(model, oc, estimand, truncate, n_boot=20, random_state=30, trim=trim)
    rows = draw_resamples(300, 20, np.random.default_rng(30))
    ref = [from_scratch_trimmed(model, oc, r, estimand, truncate, "efron", trim) for r in rows]
    assert (res.status == 0).all()
    np.testing.assert_allclose(res.estimates, ref, rtol=0, atol=FROM_SCRATCH_ATOL)


def test_a_trim_that_empties_an_arm_is_counted_and_bad_trims_refused():
    df = cohort(100, seed=31)
    model, oc = inputs(df)
    with pytest.warns(BootstrapWarning, match="trimming leaves an arm empty"):
        res = siptw_bootstrap(model, oc, n_boot=10, estimate=0.0, trim=(0.999, 1.0))
    assert res.failures == {FAILURES[bk.TRIM_EMPTY_ARM]: 10}
    for bad in [(0.9, 0.1), (-0.1, 0.5), 0.1, (0.1, 1.5)]:
        with pytest.raises(EstimatorInputError, match=r"trim=.* is not allowed"):
            siptw_bootstrap(model, oc, n_boot=10, trim=bad)
