"""``aiptw(ps_covariates=, outcome_covariates=)``: separate covariate sets for the
propensity and outcome models, to show double robustness (one model missing a
confounder is harmless, both missing it is not)."""

from __future__ import annotations

import pytest

import estimators
import simulator
from estimators.exceptions import EstimatorInputError
from simulator.study import Study
from simulator.study.exceptions import StudyError
from simulator.study.spec import DEFAULT_COVARIATES

COVS = list(DEFAULT_COVARIATES)
WITHOUT_ECOG = [c for c in COVS if c != "ecog"]
ARGS = ("pfs_months", "pfs_event", "treated")


@pytest.fixture(scope="module")
def cohort():
    return simulator.simulate("flatiron", n=600, seed=4)


@pytest.fixture(scope="module")
def big():
    # treatment model log-odds doubled: ECOG is a strong confounder
    return simulator.simulate("strong-confounding", n=20_000, seed=7)


def test_the_default_sets_are_the_covariates(cohort):
    plain = estimators.aiptw(cohort, *ARGS, COVS)
    same = estimators.aiptw(cohort, *ARGS, COVS, ps_covariates=COVS, outcome_covariates=COVS)
    assert (plain.estimate, plain.se) == (same.estimate, same.se)
    other = estimators.aiptw(cohort, *ARGS, COVS, ps_covariates=WITHOUT_ECOG)
    assert other.estimate != plain.estimate
    assert other.diagnostics["propensity"].covariates == tuple(WITHOUT_ECOG)


def test_one_wrong_model_is_harmless_and_two_are_not(big):
    """Leaving ECOG out of one model moves the estimate little; out of both, as much as
    an outcome-model-only (g-computation) or PS-only (weighted KM) estimator without it."""
    full = estimators.aiptw(big, *ARGS, COVS).estimate
    ps_wrong = estimators.aiptw(big, *ARGS, COVS, ps_covariates=WITHOUT_ECOG).estimate
    out_wrong = estimators.aiptw(big, *ARGS, COVS, outcome_covariates=WITHOUT_ECOG).estimate
    both = estimators.aiptw(
        big, *ARGS, COVS, ps_covariates=WITHOUT_ECOG, outcome_covariates=WITHOUT_ECOG
    ).estimate
    km = estimators.iptw_km(big, *ARGS, WITHOUT_ECOG, measure="surv_diff").estimate
    g = estimators.gcomp(big, *ARGS, WITHOUT_ECOG, measure="surv_diff", n_boot=0).estimate
    shift = abs(both - full)
    assert shift > 0.01  # a confounder left out of both models: biased
    assert abs(ps_wrong - full) < shift / 3 and abs(out_wrong - full) < shift / 10
    assert abs(km - both) < shift / 3 and abs(g - both) < shift / 3


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"ps_covariates": "age"}, r"ps_covariates: covariates='age' must be a list"),
        ({"outcome_covariates": ["age", "age"]}, r"outcome_covariates: .* more than once"),
        ({"ps_covariates": ["nope"]}, r"ps_covariates: \['nope'\] are not columns of df"),
        ({"outcome_covariates": ["age", "nope"]}, r"outcome_covariates: \['nope'\] are not"),
    ],
)
def test_bad_covariate_sets_are_refused(cohort, options, match):
    with pytest.raises(EstimatorInputError, match=match):
        estimators.aiptw(cohort, *ARGS, COVS, **options)


def test_a_study_checks_the_sets_before_any_work():
    variants = {"aiptw_ps": {"base": "aiptw", "ps_covariates": WITHOUT_ECOG}}
    Study(reps=2, estimators=("aiptw_ps",), variants=variants)
    bad = {"aiptw_ps": {"base": "aiptw", "ps_covariates": ["age", "pfs_months"]}}
    with pytest.raises(
        StudyError, match=r"aiptw_ps.ps_covariates: 'pfs_months' is not a covariate"
    ):
        Study(reps=2, estimators=("aiptw_ps",), variants=bad)
