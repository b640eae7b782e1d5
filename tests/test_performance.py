"""Performance measures (Morris, White & Crowther 2019) against hand-computed values and
against simulation of an estimator whose sampling distribution is known."""

import math

import numpy as np
import pandas as pd
import pytest

from simulator.study.performance import performance, required_reps, required_reps_bias, summarize

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


def test_failed_and_nonconverged_are_counted_not_used():
    est = np.array([0.1, np.nan, 0.3, -0.2, 0.0, 5.0])
    se = np.array([0.1, 0.1, 0.2, 0.1, 0.2, 0.0])  # last: se 0 is a failed fit too
    conv = np.array([True, True, True, True, True, True])
    p = performance(est, se, 0.0, converged=conv)
    assert (p.n_total, p.n_failed, p.n_nonconverged, p.n_sim) == (6, 2, 0, 4)
    assert p.bias == pytest.approx(performance(EST, SE, 0.0).bias)
    conv[0] = False
    p = performance(est, se, 0.0, converged=conv)
    assert (p.n_failed, p.n_nonconverged, p.n_sim) == (2, 1, 3)


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
                log_hr=a,
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
                log_hr=b,
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
