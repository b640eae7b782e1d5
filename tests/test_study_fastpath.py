"""The study's fitting fast path: column arrays and shared inputs, same results as the
estimators called on the simulated DataFrame; shared work by declared capability."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

import simulator
from estimators import EffectEstimate, PropensityModel, get_estimator
from estimators.design_matrix import Design
from estimators.registry import register_estimator, unregister_estimator
from simulator.study.replicate import cohort_columns, replicate_seed, run_chunk
from simulator.study.runner import plan_chunks
from simulator.study.spec import OUTCOMES, TREATMENT, Study

FIELDS = ["estimate", "se", "n", "events", "ess", "converged"]


def _chunk(study: Study, reps: int = 3):
    chunk = plan_chunks(study, study.conditions())[0]
    return dataclasses.replace(chunk, reps=(0, reps))


def _direct(study: Study, chunk, rep: int) -> pd.DataFrame:
    """Each estimator called on the DataFrame of ``simulate`` (the v0.1 path)."""
    sc = chunk.scenario
    df = simulator.simulate(sc, chunk.n, replicate_seed(study.seed, chunk.condition, rep))
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for outcome in chunk.outcomes:
            for name in chunk.estimators:
                r = get_estimator(name)(
                    df,
                    *OUTCOMES[outcome],
                    TREATMENT,
                    chunk.covariates[name],
                    **chunk.options.get(name, {}),
                )
                rows.append({"outcome": outcome, "estimator": name, **r.to_dict()})
    return pd.DataFrame(rows)[["outcome", "estimator", *FIELDS]]


@pytest.mark.parametrize("scenario", ["flatiron", "flatiron-lung"])
def test_fast_path_equals_the_dataframe_path_bit_for_bit(scenario):
    study = Study(scenarios=(scenario,), sample_sizes=(551,), reps=3, chunk_reps=3)
    chunk = _chunk(study)
    rows = run_chunk(chunk)
    for rep in range(3):
        got = rows[rows["rep"] == rep][["outcome", "estimator", *FIELDS]].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, _direct(study, chunk, rep), check_dtype=False)


def test_cohort_columns_hold_the_frame_values():
    arrays = simulator.simulate_arrays("flatiron", 200, 3)
    df = simulator.generate.to_frame(arrays)
    cols = cohort_columns(arrays)
    for name, col in cols.items():
        if isinstance(df[name].dtype, pd.CategoricalDtype):
            np.testing.assert_array_equal(col.codes, df[name].cat.codes)
            assert col.levels == tuple(df[name].cat.categories)
        else:
            np.testing.assert_array_equal(col, df[name].to_numpy())


def test_study_covariates_reach_adjusted_cox():
    # before: adjusted Cox kept its built-in covariates whatever the study's covariates
    study = Study(covariates=("age", "ecog"), estimators=("adjusted_cox",), reps=2)
    chunk = _chunk(study, 1)
    assert chunk.covariates["adjusted_cox"] == ["age", "ecog", "lung_mets", "liver_mets"]
    pd.testing.assert_frame_equal(
        run_chunk(chunk)[FIELDS].reset_index(drop=True),
        _direct(study, chunk, 0)[FIELDS],
        check_dtype=False,
    )
    exact = Study(
        estimators=("adjusted_cox",),
        estimator_options={"adjusted_cox": {"covariates": ["age", "visceral"]}},
        reps=2,
    )
    chunk = _chunk(exact, 1)
    assert chunk.covariates["adjusted_cox"] == ["age", "visceral"]
    got = run_chunk(chunk)[FIELDS].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, _direct(exact, chunk, 0)[FIELDS], check_dtype=False)
    default = run_chunk(_chunk(Study(estimators=("adjusted_cox",), reps=2), 1))
    assert not np.array_equal(got["estimate"], default["estimate"])


@pytest.fixture
def user_estimators():
    seen: dict[str, list] = {"ps": [], "design": [], "frame": []}

    def uses_ps(df, time, event, treatment, covariates, propensity=None, balance=True):
        seen["ps"].append((propensity, balance))
        seen["frame"].append(type(df))
        return get_estimator("siptw")(
            df, time, event, treatment, covariates, propensity=propensity, balance=balance
        )

    def uses_design(df, time, event, treatment, covariates, design=None):
        seen["design"].append(design)
        r = get_estimator("adjusted_cox")(df, time, event, treatment, covariates, design=design)
        return EffectEstimate.from_fit("uses_design", "conditional", r.log_hr, r.se, r.n, r.events)

    register_estimator("uses_ps", uses_ps, "ATE")
    register_estimator("uses_design", uses_design, "conditional")
    yield seen
    unregister_estimator("uses_ps")
    unregister_estimator("uses_design")


def test_user_estimators_receive_the_shared_work_they_declare(user_estimators):
    study = Study(estimators=("siptw", "uses_ps", "uses_design"), reps=2, chunk_reps=2)
    rows = run_chunk(_chunk(study, 2))
    assert (rows["error"] == "").all()
    ps, balance = zip(*user_estimators["ps"], strict=True)
    assert all(isinstance(p, PropensityModel) for p in ps) and not any(balance)
    assert len({id(p) for p in ps}) == 2  # one PS per replicate, shared by both outcomes
    assert all(isinstance(d, Design) for d in user_estimators["design"])
    assert set(user_estimators["frame"]) == {pd.DataFrame}  # user code gets a DataFrame
    siptw_rows = rows[rows["estimator"] == "siptw"].reset_index(drop=True)
    user_rows = rows[rows["estimator"] == "uses_ps"].reset_index(drop=True)
    np.testing.assert_array_equal(siptw_rows["estimate"], user_rows["estimate"])
