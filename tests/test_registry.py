"""Estimator registry: built-ins, user-registered estimators, errors."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from cohorts import COVARIATES, confounded_cohort

import estimators
from estimators import EffectEstimate, EstimatorInputError
from estimators.estimands import BINARY_MEASURES
from estimators.registry import (
    available_estimators,
    get_estimator,
    register_estimator,
    unregister_estimator,
)
from estimators.switching import SWITCH_ESTIMATORS

ARGS = ("pfs_months", "pfs_event", "treated", COVARIATES)


@pytest.fixture(scope="module")
def cohort():
    return confounded_cohort(300, seed=8)


@pytest.fixture
def custom():
    """A user estimator: unweighted difference in log event rates (a toy)."""

    def log_rate_ratio(df, time, event, treatment, covariates, scale=1.0):
        a = df[treatment].to_numpy() == 1
        d1, d0 = df[event][a].sum(), df[event][~a].sum()
        t1, t0 = df[time][a].sum(), df[time][~a].sum()
        log_hr = scale * np.log((d1 / t1) / (d0 / t0))
        return EffectEstimate.from_fit(
            "log_rate_ratio", "crude", log_hr, np.sqrt(1 / d1 + 1 / d0), len(df), d1 + d0
        )

    register_estimator("log_rate_ratio", log_rate_ratio, estimand="crude")
    yield log_rate_ratio
    unregister_estimator("log_rate_ratio")


def test_builtins_are_registered_with_their_estimands():
    assert available_estimators()[:4] == ("siptw", "psm", "naive_cox", "adjusted_cox")
    declared = {name: get_estimator(name).estimand for name in available_estimators()[:4]}
    assert declared == {
        "siptw": "ATE",
        "psm": "ATT",
        "naive_cox": "crude",
        "adjusted_cox": "conditional",
    }


@pytest.mark.parametrize(
    ("name", "func"),
    [
        ("siptw", estimators.siptw),
        ("psm", estimators.psm),
        ("naive_cox", estimators.naive_cox),
        ("adjusted_cox", estimators.adjusted_cox),
    ],
)
def test_running_a_builtin_by_name_equals_calling_it(cohort, name, func):
    est = get_estimator(name)(cohort, *ARGS)
    assert est == func(cohort, *ARGS)
    assert est.estimand == get_estimator(name).estimand


def test_options_pass_through(cohort):
    est = get_estimator("siptw")(cohort, *ARGS, estimand="ATT", truncate=(1, 99))
    assert est == estimators.siptw(cohort, *ARGS, estimand="ATT", truncate=(1, 99))
    assert est.estimand == "ATT"


def test_user_estimator_runs_like_a_builtin(cohort, custom):
    assert "log_rate_ratio" in available_estimators()
    est = get_estimator("log_rate_ratio")
    assert est.estimand == "crude" and est.func is custom
    result = est(cohort, *ARGS)
    assert isinstance(result, EffectEstimate) and result.method == "log_rate_ratio"
    assert est(cohort, *ARGS, scale=2.0).log_hr == pytest.approx(2 * result.log_hr)
    # every registered estimator can be driven by the same loop (the treatment-switching
    # ones need a cohort with switching columns: tests/test_crossover.py; the switching
    # kind's take a switch-time column, not a 0/1 arm: tests/test_switching.py)
    for name in available_estimators():
        if name in SWITCH_ESTIMATORS:
            continue
        if "switch" in inspect.signature(get_estimator(name).func).parameters:
            continue
        if set(get_estimator(name).measures) <= BINARY_MEASURES:
            continue  # binary outcome: time=None (tests/test_response_estimators.py)
        assert isinstance(get_estimator(name)(cohort, *ARGS), EffectEstimate)


def test_duplicate_names_need_replace(custom):
    with pytest.raises(EstimatorInputError, match="already registered; pass replace=True"):
        register_estimator("log_rate_ratio", custom, "crude")
    replaced = register_estimator("log_rate_ratio", custom, "ATE", replace=True)
    assert get_estimator("log_rate_ratio") is replaced and replaced.estimand == "ATE"


def test_unknown_name_lists_the_allowed_ones():
    with pytest.raises(EstimatorInputError, match=r"unknown estimator 'ipw'.*'siptw', 'psm'"):
        get_estimator("ipw")
    with pytest.raises(ValueError, match="unknown estimator"):
        unregister_estimator("ipw")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", len, "ATE"), "name='' is not allowed"),
        ((3, len, "ATE"), "name=3 is not allowed"),
        (("x", "not callable", "ATE"), "is not callable"),
        (("x", len, "ITT"), "estimand='ITT' is not allowed"),
    ],
)
def test_bad_registrations(args, match):
    with pytest.raises(EstimatorInputError, match=match):
        register_estimator(*args)
    assert "x" not in available_estimators()


def test_a_result_that_is_not_an_effect_estimate_is_an_error(cohort):
    register_estimator("broken", lambda *a, **k: 0.5, "ATE")
    try:
        with pytest.raises(TypeError, match="returned float, not EffectEstimate"):
            get_estimator("broken")(cohort, *ARGS)
    finally:
        unregister_estimator("broken")


def test_builtins_declare_the_shared_inputs_they_accept():
    accepts = {name: get_estimator(name).accepts for name in available_estimators()[:4]}
    assert accepts == {
        "siptw": {"shared", "propensity", "balance"},
        "psm": {"shared", "propensity", "balance"},
        "naive_cox": {"shared"},
        "adjusted_cox": {"shared", "design"},
    }
    assert not any(get_estimator(n).frame for n in accepts)


def test_user_estimator_capabilities_come_from_its_signature():
    def plain(df, time, event, treatment, covariates):
        raise AssertionError

    def with_ps(df, time, event, treatment, covariates, propensity=None, *, balance=True):
        raise AssertionError

    try:
        assert register_estimator("plain", plain, "crude").accepts == frozenset()
        est = register_estimator("with_ps", with_ps, "ATE", frame=False)
        assert est.accepts == {"propensity", "balance"} and not est.frame
    finally:
        for name in ("plain", "with_ps"):
            if name in available_estimators():
                unregister_estimator(name)


def test_bad_frame_flag():
    with pytest.raises(EstimatorInputError, match="frame='no' is not allowed"):
        register_estimator("bad", lambda *a: None, "crude", frame="no")
