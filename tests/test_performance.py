"""Performance measures (Morris, White & Crowther 2019) against hand-computed values and
against simulation of an estimator whose sampling distribution is known."""

import math

import numpy as np
import pandas as pd
import pytest

from simulator.study.performance import (
    DENOMINATOR_NOTE,
    error_counts,
    performance,
    required_reps,
    required_reps_bias,
    summarize,
    wilson_interval,
)

EST = np.array([0.1, 0.3, -0.2, 0.0])
SE = np.array([0.1, 0.2, 0.1, 0.2])


def test_hand_computed_values():
    p = performance(EST, SE, 0.0)
    # worked by hand: deviations from the mean 0.05 are .05, .25, -.25, -.05
    assert p.n_sim == 4 and p.mean == pytest.approx(0.05)
    assert p.bias == pytest.approx(0.05)
    assert p.empse == pytest.approx(math.sqrt(0.13 / 3))
    assert p.bias_mcse == pytest.approx(math.sqrt(0.13 / 3) / 2)
    assert p.empse_mcse == pytest.approx(math.sqrt(0.13 / 3) / math.sqrt(6))
    assert p.mse == pytest.approx(0.035)
    assert p.mse_mcse == pytest.approx(math.sqrt(0.0049 / 3) / 2)
    assert p.modse == pytest.approx(math.sqrt(0.025))
    var_s2 = np.var(SE**2, ddof=1)  # 0.0003
    assert var_s2 == pytest.approx(0.0003)
    assert p.modse_mcse == pytest.approx(math.sqrt(0.0003 / (4 * 4 * 0.025)))
    ratio = math.sqrt(0.025) / math.sqrt(0.13 / 3)
    assert p.relerr_modse == pytest.approx(100 * (ratio - 1))
    assert p.relerr_modse_mcse == pytest.approx(
        100 * ratio * math.sqrt(0.0003 / (4 * 4 * 0.025**2) + 1 / 6)
    )
    # Wald 95% CIs: the third, [-0.396, -0.004], misses 0; the others cover 0 and 0.05
    assert p.coverage == 0.75 and p.be_coverage == 0.75
    assert p.coverage_mcse == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    assert p.power == 0.25  # only |z| = 2 rejects at 5%
    hr = np.exp(EST)
    assert p.rel_bias_hr == pytest.approx(100 * (hr.mean() - 1))
    assert p.rel_bias_hr_mcse == pytest.approx(100 * hr.std(ddof=1) / 2)


def test_given_intervals_and_pvalues_are_used():
    lo, hi = EST - 10, EST + 10
    p = performance(EST, SE, 0.0, ci_low=lo, ci_high=hi, p_values=np.array([0.01, 0.5, 0.5, 0.5]))
    assert p.coverage == 1.0 and p.power == 0.25


def test_failed_are_counted_not_used_nonconverged_used_by_default():
    est = np.array([0.1, np.nan, 0.3, -0.2, 0.0, 5.0])
    se = np.array([0.1, 0.1, 0.2, 0.1, 0.2, 0.0])  # last: se 0 is a failed fit too
    conv = np.array([True, True, True, True, True, True])
    p = performance(est, se, 0.0, converged=conv)
    assert (p.n_total, p.n_failed, p.n_nonconverged, p.n_sim) == (6, 2, 0, 4)
    assert p.bias == pytest.approx(performance(EST, SE, 0.0).bias)
    conv[0] = False
    # default denominator: every finite estimate, the non-converged one included
    p = performance(est, se, 0.0, converged=conv)
    assert (p.n_failed, p.n_nonconverged, p.n_sim) == (2, 1, 4)
    assert p.bias == pytest.approx(np.mean(EST))
    # converged fits only: the flagged one left out
    p = performance(est, se, 0.0, converged=conv, denominator="converged")
    assert (p.n_failed, p.n_nonconverged, p.n_sim) == (2, 1, 3)
    assert p.bias == pytest.approx(np.mean(EST[1:]))
    with pytest.raises(ValueError, match="denominator='all'"):
        performance(est, se, 0.0, denominator="all")


def test_fewer_than_two_usable_gives_nan_not_error():
    p = performance(np.array([0.1, np.nan]), np.array([0.1, 0.1]), 0.0)
    assert p.n_sim == 1 and math.isnan(p.bias) and p.n_failed == 1


def test_mcse_formulas_match_simulation_of_a_known_estimator():
    """theta_hat ~ N(theta, sigma^2) with se = sigma: coverage is exactly 95%.

    Across K = 400 independent 'studies' of n_sim = 200 replicates, the spread of each
    measure must equal its MCSE formula.  The SD of K draws has relative SE
    1/sqrt(2(K-1)) = 3.5%, so 4 of those (14%) is the tolerance.
    """
    rng = np.random.default_rng(2019)
    theta, sigma, n_sim, k = -0.5, 0.1, 200, 400
    cov, bias, empse, cov_mcse, bias_mcse = [], [], [], [], []
    for _ in range(k):
        est = rng.normal(theta, sigma, n_sim)
        p = performance(est, np.full(n_sim, sigma), theta)
        cov.append(p.coverage)
        bias.append(p.bias)
        empse.append(p.empse)
        cov_mcse.append(p.coverage_mcse)
        bias_mcse.append(p.bias_mcse)
    tol = 4 / math.sqrt(2 * (k - 1))
    assert np.std(cov, ddof=1) == pytest.approx(math.sqrt(0.95 * 0.05 / n_sim), rel=tol)
    assert np.mean(cov_mcse) == pytest.approx(np.std(cov, ddof=1), rel=tol)
    assert np.mean(bias_mcse) == pytest.approx(np.std(bias, ddof=1), rel=tol)
    assert np.std(empse, ddof=1) == pytest.approx(sigma / math.sqrt(2 * (n_sim - 1)), rel=tol)
    # and coverage itself is unbiased for 0.95 (mean of K studies, SE = 0.0154 / 20)
    assert abs(np.mean(cov) - 0.95) < 4 * math.sqrt(0.95 * 0.05 / n_sim) / math.sqrt(k)


def test_required_reps():
    assert required_reps(0.005) == 1900  # docs/design.md §5: 1,900 for 0.5% at 95%
    assert required_reps(0.01, coverage=0.5) == 2500
    assert required_reps_bias(0.005, 0.1) == 400
    for bad in (0, -0.1, 0.7, "x"):
        with pytest.raises(ValueError, match="mcse"):
            required_reps(bad)
    with pytest.raises(ValueError, match="coverage"):
        required_reps(0.01, coverage=1.2)


def test_summarize_scores_each_row_against_its_estimand():
    rows = []
    for rep, (a, b) in enumerate([(0.1, -0.1), (0.3, -0.3), (-0.2, 0.2), (0.0, 0.0)]):
        rows.append(
            dict(
                condition=0,
                rep=rep,
                outcome="pfs",
                estimator="x",
                estimand="ATE",
                estimate=a,
                se=0.1,
                ci_low=a - 0.196,
                ci_high=a + 0.196,
                p_value=0.5,
                converged=True,
            )
        )
        rows.append(
            dict(
                condition=0,
                rep=rep,
                outcome="pfs",
                estimator="y",
                estimand="ATT",
                estimate=b,
                se=0.1,
                ci_low=b - 0.196,
                ci_high=b + 0.196,
                p_value=0.5,
                converged=True,
            )
        )
    truths = pd.DataFrame(
        [(0, "pfs", "ATE", 0.05, 0.001), (0, "pfs", "ATT", -1.0, 0.001)],
        columns=["condition", "outcome", "estimand", "theta", "theta_mcse"],
    )
    table = summarize(pd.DataFrame(rows), truths).set_index("estimator")
    assert table.loc["x", "bias"] == pytest.approx(0.0)
    assert table.loc["y", "bias"] == pytest.approx(0.95)
    assert table.loc["y", "coverage"] == 0.0


def test_wilson_interval_against_statsmodels_and_inside_0_1():
    from statsmodels.stats.proportion import proportion_confint

    for k, n in [(0, 10), (10, 10), (19, 20), (950, 1000), (3, 7)]:
        lo, hi = wilson_interval(k / n, n)
        ref = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert (lo, hi) == pytest.approx(ref, abs=1e-12)
        assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert all(math.isnan(x) for x in wilson_interval(0.5, 0))


def summary_rows(estimates, converged, errors=None, measure="log_hr", horizon=np.nan):
    errors = errors or [""] * len(estimates)
    return pd.DataFrame(
        {
            "condition": 0,
            "rep": range(len(estimates)),
            "outcome": "pfs",
            "estimator": "x",
            "estimand": "crude",
            "measure": measure,
            "horizon": horizon,
            "estimate": estimates,
            "se": 0.1,
            "ci_low": np.asarray(estimates) - 0.196,
            "ci_high": np.asarray(estimates) + 0.196,
            "p_value": 0.5,
            "converged": converged,
            "error": errors,
        }
    )


TRUTH = pd.DataFrame(
    [
        (0, "pfs", "ATE", "log_hr", np.nan, 0.0, 0.001),
        (0, "pfs", "ATE", "rmst_diff", 24.0, 2.0, 0.01),
    ],
    columns=["condition", "outcome", "estimand", "measure", "horizon", "theta", "theta_mcse"],
)


def test_summarize_reports_both_denominators_their_counts_and_why_fits_failed():
    est = [0.1, 0.3, -0.2, 0.0, 2.0, np.nan, np.nan, np.nan]
    conv = [True, True, True, True, False, False, False, False]
    errors = [""] * 5 + ["SeparationError: x"] * 2 + ["LinAlgError: y"]
    row = summarize(summary_rows(est, conv, errors), TRUTH).iloc[0]
    # crude is scored against the ATE truth
    assert row["estimand"] == "crude" and row["theta"] == 0.0
    assert row["denominator"] == "finite" and "finite estimate" in DENOMINATOR_NOTE
    assert (row["n_total"], row["n_failed"], row["n_nonconverged"]) == (8, 3, 1)
    assert (row["n_sim"], row["n_converged"]) == (5, 4)
    assert row["bias"] == pytest.approx(np.mean(est[:5]))
    assert row["bias_converged"] == pytest.approx(np.mean(est[:4]))
    # Wald CIs +-0.196 cover 0 for 0.1 and 0.0 only
    assert row["coverage"] == pytest.approx(0.4) and row["coverage_converged"] == 0.5
    assert row["coverage_converged_mcse"] == pytest.approx(math.sqrt(0.5 * 0.5 / 4))
    assert row["errors"] == "2 x SeparationError: x; 1 x LinAlgError: y"


def test_summarize_is_generic_over_measures_and_horizons():
    est = [1.9, 2.1, 2.2, 1.8]
    rows = pd.concat(
        [
            summary_rows([0.1, -0.1, 0.2, 0.0], [True] * 4),
            summary_rows(est, [True] * 4, measure="rmst_diff", horizon=24.0),
        ]
    )
    table = summarize(rows, TRUTH).set_index("measure")
    assert table.loc["rmst_diff", "bias"] == pytest.approx(np.mean(est) - 2.0)
    assert table.loc["rmst_diff", "horizon"] == 24.0
    assert math.isnan(table.loc["rmst_diff", "rel_bias_hr"])  # an HR-only measure
    assert table.loc["log_hr", "bias"] == pytest.approx(0.05)
    assert math.isfinite(table.loc["log_hr", "rel_bias_hr"])


def test_error_counts():
    assert error_counts(pd.Series(["", "a", "b", "a", "c", "d", "d", "d"]), top=2) == (
        "3 x d; 2 x a; 2 x other errors"
    )
    assert error_counts(pd.Series(["", ""])) == ""


def test_summarize_names_missing_record_columns():
    rows = summary_rows([0.1, 0.2], [True, True]).drop(columns=["se", "p_value"])
    with pytest.raises(ValueError, match=r"results is missing column\(s\) \['se', 'p_value'\]"):
        summarize(rows, TRUTH)
