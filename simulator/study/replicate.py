"""One chunk of replicates: simulate, estimate, return tidy rows (runs in worker processes).

Replicate ``rep`` of condition ``c`` draws its cohort from
``SeedSequence(study_seed, spawn_key=(c, rep))``, so it is the same whatever the
executor, the number of workers or the order in which chunks run.  Each estimator call
is isolated: an exception becomes a row with ``error`` set and NaN estimates, never a
lost replicate.

Fast path: a replicate's cohort stays in arrays (:func:`cohort_columns`; a DataFrame is
built only for an estimator registered with ``frame=True``), and the work estimators
share -- validated treatment and outcome arrays, their time order, one design matrix
of every covariate any estimator uses, the propensity fit -- is done once per replicate
by a :class:`estimators.SharedInputs`, handed to each estimator through the shared-input
parameters it declares (``Estimator.accepts``).  Results equal those of calling each
estimator on the DataFrame of ``simulate`` bit for bit.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from estimators.registry import Estimator, get_estimator
from estimators.shared import SharedInputs
from estimators.validation import Coded

from .. import calibration
from ..generate import (
    CATEGORICAL_COLUMNS,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    CohortArrays,
    simulate_arrays,
    to_frame,
)
from ..scenario import Scenario
from .spec import OUTCOMES, TREATMENT


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
    ests = [get_estimator(name) for name in chunk.estimators]
    with warnings.catch_warnings():
        # estimators' warnings are recorded in each row's ``warnings``; no console noise
        warnings.simplefilter("ignore")
        for rep in range(*chunk.reps):
            seed = replicate_seed(chunk.seed, chunk.condition, rep)
            arrays = simulate_arrays(chunk.scenario, chunk.n, seed)
            data = _Data(arrays, chunk, ests)
            for outcome in chunk.outcomes:
                for est in ests:
                    rows.append(_estimate(data.for_(est), chunk, rep, outcome, est.name, data))
    return pd.DataFrame(rows)


def cohort_columns(arrays: CohortArrays) -> dict[str, Any]:
    """The cohort's columns as arrays (categoricals :class:`Coded`), no DataFrame: what
    the estimators registered with ``frame=False`` read (same values as ``to_frame``)."""
    cols: dict[str, Any] = {name: arrays.floats[row] for name, (row, _) in FLOAT_COLUMNS.items()}
    cols |= {name: arrays.ints[row] for name, (row, _) in INT_COLUMNS.items()}
    for name, (row, levels, first, _) in CATEGORICAL_COLUMNS.items():
        codes = arrays.ints[row] - np.int8(first) if first else arrays.ints[row]
        cols[name] = Coded(codes, tuple(levels))
    return cols


class _Data:
    """One replicate's data: column arrays, a DataFrame only if an estimator needs one,
    and the inputs shared by every estimator (validated and computed once)."""

    def __init__(self, arrays: CohortArrays, chunk: Chunk, ests: list[Estimator]) -> None:
        self.arrays = arrays
        self.columns = cohort_columns(arrays)
        self._frame: pd.DataFrame | None = None
        union = [c for e in ests for c in chunk.covariates[e.name]]
        self.shared = SharedInputs(self.columns, TREATMENT, union)

    def for_(self, est: Estimator) -> Any:
        """The data argument for ``est``: column arrays, or a DataFrame if it needs one."""
        if not est.frame:
            return self.columns
        if self._frame is None:
            self._frame = to_frame(self.arrays)
        return self._frame


def _shared_inputs(data: _Data, est: Estimator, covariates: list[str], outcome: str):
    """Keyword arguments of the shared work ``est`` declares it accepts (``est.accepts``).

    An estimator taking ``shared=`` gets the :class:`SharedInputs` and asks it for what
    it needs; otherwise ``propensity=`` / ``design=`` / ``outcome=`` are computed here
    (once per replicate) and left out when that fails, for the estimator to report.
    """
    kwargs: dict[str, Any] = {}
    if "balance" in est.accepts:
        kwargs["balance"] = False
    if "shared" in est.accepts:
        kwargs["shared"] = data.shared
        return kwargs
    make = {
        "propensity": lambda: data.shared.propensity(covariates),
        "design": lambda: data.shared.design(covariates),
        "outcome": lambda: data.shared.outcome(*OUTCOMES[outcome]),
    }
    for key in est.accepts & make.keys():
        try:
            kwargs[key] = make[key]()
        except ValueError:
            pass
    return kwargs


def _estimate(df, chunk: Chunk, rep: int, outcome: str, name: str, data) -> dict[str, Any]:
    time_col, event_col = OUTCOMES[outcome]
    est = get_estimator(name)
    shared = _shared_inputs(data, est, chunk.covariates[name], outcome)
    opts = {**shared, **chunk.options.get(name, {})}
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
