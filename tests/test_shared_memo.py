"""Work an estimator repeats for every outcome of one data set (sIPTW's weights, PSM's
pairs) is done once through SharedInputs, with the results of separate calls."""

from __future__ import annotations

import numpy as np
import pytest

import simulator
from estimators import SharedInputs, psm, siptw
from simulator.study.spec import DEFAULT_COVARIATES, DEFAULT_OUTCOMES, OUTCOMES

SURVIVAL = [OUTCOMES[o] for o in DEFAULT_OUTCOMES]  # rwPFS and OS (not the response)

COVS = list(DEFAULT_COVARIATES)


@pytest.fixture(scope="module")
def df():
    return simulator.simulate(simulator.get_scenario("flatiron"), 700, 11)


def same(a, b) -> bool:
    return (a.estimate, a.se, a.n, a.events, a.ess) == (b.estimate, b.se, b.n, b.events, b.ess)


@pytest.mark.parametrize("estimator", [siptw, psm])
def test_shared_results_equal_separate_calls_for_every_outcome(df, estimator):
    shared = SharedInputs(df, "treated", COVS)
    for time, event in SURVIVAL:
        alone = estimator(df, time, event, "treated", COVS)
        assert same(estimator(df, time, event, "treated", COVS, shared=shared), alone)


def test_weights_and_pairs_are_computed_once_per_data_set(df):
    shared = SharedInputs(df, "treated", COVS)
    (t1, e1), (t2, e2) = SURVIVAL
    w1 = siptw(df, t1, e1, "treated", COVS, shared=shared).diagnostics["analysis_weights"]
    w2 = siptw(df, t2, e2, "treated", COVS, shared=shared).diagnostics["analysis_weights"]
    assert w1 is w2
    other = siptw(df, t2, e2, "treated", COVS, shared=shared, estimand="ATT")
    assert other.diagnostics["analysis_weights"] is not w1  # another estimand: own weights
    m1 = psm(df, t1, e1, "treated", COVS, shared=shared).diagnostics["matching"]
    m2 = psm(df, t2, e2, "treated", COVS, shared=shared).diagnostics["matching"]
    assert m1 is m2
    m3 = psm(df, t2, e2, "treated", COVS, shared=shared, random_state=1).diagnostics["matching"]
    assert m3 is not m1


def test_a_generator_is_consumed_each_call_not_reused(df):
    shared = SharedInputs(df, "treated", COVS)
    rng = np.random.default_rng(5)
    (t1, e1), (t2, e2) = SURVIVAL
    m1 = psm(df, t1, e1, "treated", COVS, shared=shared, random_state=rng)
    m2 = psm(df, t2, e2, "treated", COVS, shared=shared, random_state=rng)
    assert m1.diagnostics["matching"] is not m2.diagnostics["matching"]
    again = np.random.default_rng(5)
    psm(df, t1, e1, "treated", COVS, random_state=again)  # advances as the first call did
    alone = psm(df, t2, e2, "treated", COVS, random_state=again)
    assert same(m2, alone)
