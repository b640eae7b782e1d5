"""One chunk of replicates: simulate, estimate, return tidy rows (runs in worker processes).

Replicate ``rep`` of condition ``c`` draws its cohort from
``SeedSequence(study_seed, spawn_key=(c, rep))``, so it is the same whatever the
executor, the number of workers or the order in which chunks run.  Each estimator call
is isolated: an exception becomes a row with ``error`` set and NaN estimates, never a
lost replicate.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from estimators.design_matrix import design_matrix
from estimators.propensity import fit_propensity
from estimators.registry import get_estimator

from .. import calibration
from ..generate import simulate
from ..scenario import Scenario
from .spec import OUTCOMES, TREATMENT

# built-ins that accept a PS fitted once per replicate (``propensity=``) and can skip
# their balance tables (``balance=False``), and the one that takes a prebuilt ``design=``
_PS_SHARING = {"siptw", "psm"}
_DESIGN_SHARING = {"adjusted_cox"}


@dataclass(frozen=True)
class Chunk:
    """Everything a worker needs to run replicates ``reps`` of one condition (picklable)."""

    condition: int
    chunk: int
    reps: tuple[int, int]  # [start, stop)
    scenario: Scenario
    calibration: calibration.Calibration
    n: int
    seed: int
    estimators: tuple[str, ...]
    outcomes: tuple[str, ...]
    covariates: dict[str, list[str]]  # estimator -> covariates
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # without covariates


def replicate_seed(seed: int, condition: int, rep: int) -> np.random.SeedSequence:
    """Seed of one replicate (independent of executor, workers and order)."""
    return np.random.SeedSequence(seed, spawn_key=(condition, rep))


def run_chunk(chunk: Chunk) -> pd.DataFrame:
    """Run the chunk's replicates; one row per replicate x outcome x estimator."""
    calibration.remember(chunk.calibration)
    rows: list[dict[str, Any]] = []
    with warnings.catch_warnings():
        # estimators' warnings are recorded in each row's ``warnings``; no console noise
        warnings.simplefilter("ignore")
        for rep in range(*chunk.reps):
            seed = replicate_seed(chunk.seed, chunk.condition, rep)
            df = simulate(chunk.scenario, chunk.n, seed)
            shared = _shared_inputs(df, chunk)
            for outcome in chunk.outcomes:
                for name in chunk.estimators:
                    rows.append(_estimate(df, chunk, rep, outcome, name, shared))
    return pd.DataFrame(rows)


def _shared_inputs(df: pd.DataFrame, chunk: Chunk) -> dict[str, dict[str, Any]]:
    """Per-estimator extra keyword arguments computed once per replicate (both outcomes).

    sIPTW and PSM share one PS fit when they use the same covariates; adjusted Cox gets
    its design matrix built once.  A failure here is left to each estimator to report.
    """
    shared: dict[str, dict[str, Any]] = {}
    users = [e for e in chunk.estimators if e in _PS_SHARING]
    for name in users:
        shared[name] = {"balance": False}
    if users and len({tuple(chunk.covariates[e]) for e in users}) == 1:
        try:
            ps = fit_propensity(df, TREATMENT, chunk.covariates[users[0]])
        except ValueError:
            ps = None
        if ps is not None:
            for name in users:
                shared[name]["propensity"] = ps
    for name in (e for e in chunk.estimators if e in _DESIGN_SHARING):
        try:
            shared[name] = {"design": design_matrix(df, chunk.covariates[name])}
        except ValueError:
            pass
    return shared


def _estimate(df, chunk: Chunk, rep: int, outcome: str, name: str, shared) -> dict[str, Any]:
    time_col, event_col = OUTCOMES[outcome]
    opts = {**shared.get(name, {}), **chunk.options.get(name, {})}
    est = get_estimator(name)
    row: dict[str, Any] = {
        "condition": chunk.condition,
        "rep": rep,
        "outcome": outcome,
        "estimator": name,
    }
    start = time.perf_counter()
    try:
        r = est(df, time_col, event_col, TREATMENT, chunk.covariates[name], **opts)
    except Exception as exc:  # a failed fit is a result, not a crash
        row.update(_failed(est.estimand, f"{type(exc).__name__}: {exc}"))
    else:
        row.update(
            estimand=r.estimand,
            log_hr=r.log_hr,
            se=r.se,
            ci_low=r.ci_low,
            ci_high=r.ci_high,
            p_value=r.p_value,
            converged=r.converged,
            n=r.n,
            events=r.events,
            ess=r.ess,
            error="",
            warnings="; ".join(r.warnings),
        )
    row["seconds"] = time.perf_counter() - start
    return row


def _failed(estimand: str, message: str) -> dict[str, Any]:
    nan = float("nan")
    return dict(
        estimand=estimand,
        log_hr=nan,
        se=nan,
        ci_low=nan,
        ci_high=nan,
        p_value=nan,
        converged=False,
        n=0,
        events=0,
        ess=nan,
        error=message,
        warnings="",
    )
