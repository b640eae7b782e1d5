"""One chunk of replicates: simulate, estimate, return tidy rows (runs in worker processes).

Replicate ``rep`` of condition ``c`` draws its cohort from
``SeedSequence(study_seed, spawn_key=(c, rep))``, so it is the same whatever the
executor, the number of workers or the order in which chunks run.  Each estimator call
is isolated: an exception, a fit running past ``fit_timeout`` or a result that is not a
numeric :class:`~estimators.EffectEstimate` becomes a row with ``error`` set and NaN
estimates (:func:`simulator.study.record.failed_row`), never a lost replicate.

Warnings: the project's own (:class:`~simulator.exceptions.SimulatorWarning`,
:class:`~simulator.study.exceptions.StudyWarning`,
:class:`~estimators.exceptions.EstimatorWarning`) are recorded in each row's
``warnings`` instead of printed; every other warning (numpy's ``RuntimeWarning``, ...)
is left to the normal filters.

Fast path: a replicate's cohort stays in arrays (:func:`cohort_columns`; a DataFrame is
built only for an estimator registered with ``frame=True``), and the work estimators
share -- validated treatment and outcome arrays, their time order, one design matrix
of every covariate any estimator uses, the propensity fit -- is done once per replicate
by a :class:`estimators.SharedInputs`, handed to each estimator through the shared-input
parameters it declares (``Estimator.accepts``).  Results equal those of calling each
estimator on the DataFrame of ``simulate`` bit for bit.

Variants (:mod:`simulator.study.spec`) travel as data -- their base's name in
``Chunk.bases`` and their options in ``Chunk.options`` -- and are rebuilt in the worker
(:func:`chunk_estimators`); their rows are keyed by the variant's name.  No estimator
draws from a stream shared with another, so adding one leaves the others' rows as they
were.
"""

from __future__ import annotations

import math
import numbers
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from estimators.exceptions import EstimatorInputError, EstimatorWarning
from estimators.registry import Estimator, get_estimator
from estimators.result import EffectEstimate
from estimators.shared import SharedInputs
from estimators.validation import Coded

from .. import calibration
from ..exceptions import SimulatorWarning
from ..generate import (
    CATEGORICAL_COLUMNS,
    CROSSOVER_FLOAT_COLUMNS,
    CROSSOVER_INT_COLUMNS,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    CohortArrays,
    simulate_arrays,
    to_frame,
)
from ..scenario import Scenario
from . import record
from .exceptions import StudyWarning
from .kinds import ScenarioKind, is_kind
from .spec import OUTCOMES, TREATMENT, EstimatorRun, fits_outcome
from .workers import FitTimeout, deadline, set_status

PROJECT_WARNINGS = (SimulatorWarning, StudyWarning, EstimatorWarning)


@dataclass(frozen=True)
class Chunk:
    """Everything a worker needs to run replicates ``reps`` of one condition (picklable)."""

    condition: int
    chunk: int
    reps: tuple[int, int]  # [start, stop)
    scenario: Scenario | ScenarioKind  # a kind: the generic path (_run_kind_chunk)
    calibration: calibration.Calibration | None  # None for a scenario kind
    n: int
    seed: int
    estimators: tuple[str, ...]
    outcomes: tuple[str, ...]
    covariates: dict[str, list[str]]  # estimator -> covariates
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # without covariates
    fit_timeout: float | None = None  # seconds per estimator call; None: no limit
    bases: dict[str, str] = field(default_factory=dict)  # variant -> registered base or path
    estimands: dict[str, str] = field(default_factory=dict)  # estimator -> declared estimand
    refs: dict[str, str] = field(default_factory=dict)  # user-registered name -> import path
    # the fits of each replicate and outcome (Study.runs); empty: each estimator once
    runs: tuple[EstimatorRun, ...] = ()


def chunk_estimators(chunk: Chunk) -> list[Estimator]:
    """The chunk's estimators, looked up in this process: registered ones by name (a
    user's registered in the parent by the import path of its function, ``Chunk.refs``),
    import paths by importing them, variants rebuilt from their base's name or path and
    options (so they reach every worker, whatever its start method).

    A lookup that fails here (a module a worker cannot import, say) does not abort the
    chunk: that estimator's every fit becomes a failed row carrying the error.
    """
    out = []
    for name in chunk.estimators:
        try:
            base = chunk.bases.get(name, name)
            est = get_estimator(chunk.refs.get(base, base))
            if name in chunk.bases:
                est = est.variant(name, **chunk.options.get(name, {}))
            elif est.name != name:  # found by reference: keep the study's name
                est = replace(est, name=name)
            if name in chunk.estimands:
                est = replace(est, estimand=chunk.estimands[name])
        except Exception as exc:  # reported in every row of the estimator
            est = _unavailable(name, chunk.estimands.get(name, "ATE"), exc)
        out.append(est)
    return out


def _unavailable(name: str, estimand: str, exc: Exception) -> Estimator:
    """A stand-in whose every call raises the error that made ``name`` unavailable."""
    message = f"estimator {name!r} is not available in this worker: {exc}"

    def unavailable(*args: Any, **kwargs: Any) -> EffectEstimate:
        raise EstimatorInputError(message)

    return Estimator(name, unavailable, estimand, frozenset(), False)


def replicate_seed(seed: int, condition: int, rep: int) -> np.random.SeedSequence:
    """Seed of one replicate (independent of executor, workers and order)."""
    return np.random.SeedSequence(seed, spawn_key=(condition, rep))


_local = threading.local()  # .sink: project warnings of the running fit (this thread)
_hook_lock = threading.Lock()
_hook: dict[str, Any] = {"users": 0}


@contextmanager
def _recording_project_warnings() -> Iterator[None]:
    """Route the project's warnings to this thread's ``_local.sink``; leave every other
    warning to the normal filters.

    Thread-safe (Dask runs chunks in threads): the first chunk running in the process
    installs the hook (an ``always`` filter for the project's categories, so a repeated
    warning is recorded every time, whatever ran before, and a ``showwarning`` router);
    the last one restores the previous state.
    """
    with _hook_lock:
        if _hook["users"] == 0:
            _hook["saved"] = (warnings.filters[:], warnings.showwarning)
            show = warnings.showwarning

            def router(message, category, filename, lineno, file=None, line=None):
                sink = getattr(_local, "sink", None)
                if sink is not None and issubclass(category, PROJECT_WARNINGS):
                    sink.append(str(message))
                else:
                    show(message, category, filename, lineno, file, line)

            for category in PROJECT_WARNINGS:
                warnings.filterwarnings("always", category=category)
            warnings.showwarning = router
        _hook["users"] += 1
    _local.sink = []
    try:
        yield
    finally:
        _local.sink = None
        with _hook_lock:
            _hook["users"] -= 1
            if _hook["users"] == 0:
                filters, show = _hook.pop("saved")
                warnings.filters[:] = filters
                warnings._filters_mutated()  # as catch_warnings does
                warnings.showwarning = show


def _caught() -> list[str]:
    sink = getattr(_local, "sink", None)
    return [] if sink is None else sink


def run_chunk(chunk: Chunk) -> pd.DataFrame:
    """Run the chunk's replicates; one row per replicate x outcome x fit (``Chunk.runs``:
    an estimator once per measure and horizon of a study with ``measures``)."""
    rows: list[dict[str, Any]] = []
    ests = chunk_estimators(chunk)
    by_name = {e.name: e for e in ests}
    fits: list[tuple[Estimator, EstimatorRun | None]] = (
        [(by_name[r.estimator], r) for r in chunk.runs] if chunk.runs else [(e, None) for e in ests]
    )
    if is_kind(chunk.scenario):
        with _recording_project_warnings():
            _run_kind_chunk(chunk, fits, rows)
        set_status("idle\t\t\t\t")
        return record.frame(rows)
    with _recording_project_warnings():
        for rep in range(*chunk.reps):
            seed = replicate_seed(chunk.seed, chunk.condition, rep)
            set_status(f"simulating\t\t{chunk.condition}\t{rep}\t")
            _caught().clear()
            arrays = simulate_arrays(chunk.scenario, chunk.n, seed, calibration=chunk.calibration)
            sim_warnings = tuple(_caught())
            data = _Data(arrays, chunk, ests)
            for outcome in chunk.outcomes:
                for e, run in fits:
                    if not fits_outcome(run.measure if run else _measure_of(e), outcome):
                        continue  # binary estimators on response, survival ones on pfs / os
                    rows.append(
                        _estimate(data.for_(e), chunk, rep, outcome, e, data, sim_warnings, run)
                    )
    set_status("idle\t\t\t\t")
    return record.frame(rows)


def _measure_of(est: Estimator) -> str:
    """The measure of an estimator run with its own options (no ``Study.runs``)."""
    return est.measures[0]


def _run_kind_chunk(chunk: Chunk, fits, rows: list[dict[str, Any]]) -> None:
    """The generic path: each replicate is the kind's DataFrame, every estimator gets it
    with the kind's outcome and treatment columns; no shared inputs."""
    kind = chunk.scenario
    for rep in range(*chunk.reps):
        seed = replicate_seed(chunk.seed, chunk.condition, rep)
        set_status(f"simulating\t\t{chunk.condition}\t{rep}\t")
        _caught().clear()
        df = kind.simulate(chunk.n, seed)
        sim_warnings = tuple(_caught())
        data = _FrameData(df)
        for outcome in chunk.outcomes:
            for e, run in fits:
                rows.append(_estimate(df, chunk, rep, outcome, e, data, sim_warnings, run))


class _FrameData:
    """One replicate of a scenario kind: its DataFrame, nothing shared."""

    shared = None

    def __init__(self, df: pd.DataFrame) -> None:
        self.frame = df


def cohort_columns(arrays: CohortArrays, crossover: bool = False) -> dict[str, Any]:
    """The cohort's columns as arrays (categoricals :class:`Coded`), no DataFrame: what
    the estimators registered with ``frame=False`` read (same values as ``to_frame``;
    ``crossover``: with the crossover columns)."""
    cols: dict[str, Any] = {name: arrays.floats[row] for name, (row, _) in FLOAT_COLUMNS.items()}
    if arrays.response is not None:
        cols["response"] = arrays.response
    cols |= {name: arrays.ints[row] for name, (row, _) in INT_COLUMNS.items()}
    if crossover:
        cols |= {name: arrays.ints[row] for name, (row, _) in CROSSOVER_INT_COLUMNS.items()}
        cols |= {name: arrays.floats[row] for name, (row, _) in CROSSOVER_FLOAT_COLUMNS.items()}
    for name, (row, levels, first, _) in CATEGORICAL_COLUMNS.items():
        codes = arrays.ints[row] - np.int8(first) if first else arrays.ints[row]
        cols[name] = Coded(codes, tuple(levels))
    return cols


class _Data:
    """One replicate's data: column arrays, a DataFrame only if an estimator needs one,
    and the inputs shared by every estimator (validated and computed once)."""

    def __init__(self, arrays: CohortArrays, chunk: Chunk, ests: list[Estimator]) -> None:
        self.arrays = arrays
        self.crossover = chunk.scenario.crossover is not None
        self.columns = cohort_columns(arrays, self.crossover)
        self._frame: pd.DataFrame | None = None
        union = [c for e in ests for c in chunk.covariates[e.name]]
        self.shared = SharedInputs(self.columns, TREATMENT, union)

    def for_(self, est: Estimator) -> Any:
        """The data argument for ``est``: column arrays, or a DataFrame if it needs one."""
        if not est.frame:
            return self.columns
        if self._frame is None:
            self._frame = to_frame(self.arrays, crossover=self.crossover)
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
    if data.shared is None:  # a scenario kind's replicate: nothing is shared
        return kwargs
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


def _estimate(
    df,
    chunk: Chunk,
    rep: int,
    outcome: str,
    est: Estimator,
    data: _Data,
    sim_warnings=(),
    run: EstimatorRun | None = None,
) -> dict[str, Any]:
    if is_kind(chunk.scenario):
        (time_col, event_col), treatment = (
            chunk.scenario.outcomes[outcome],
            chunk.scenario.treatment,
        )
    else:
        (time_col, event_col), treatment = OUTCOMES[outcome], TREATMENT
    name = est.name
    shared = _shared_inputs(data, est, chunk.covariates[name], outcome)
    opts = {**shared, **chunk.options.get(name, {}), **(run.options if run else {})}
    coords = {"condition": chunk.condition, "rep": rep, "outcome": outcome, "estimator": name}
    set_status(f"fitting\t{name}\t{chunk.condition}\t{rep}\t{outcome}")
    _caught().clear()
    start = time.perf_counter()
    try:
        if chunk.fit_timeout is None:
            r = est(df, time_col, event_col, treatment, chunk.covariates[name], **opts)
        else:
            with deadline(chunk.fit_timeout, f"estimator {name!r}"):
                r = est(df, time_col, event_col, treatment, chunk.covariates[name], **opts)
        seconds = time.perf_counter() - start
        _check_result(name, r)
        extra = tuple(dict.fromkeys(w for w in (*sim_warnings, *_caught()) if w not in r.warnings))
        return record.row(coords, _with_warnings(r, extra) if extra else r, seconds)
    except FitTimeout:
        error = f"FitTimeout: estimator {name!r} did not return within {chunk.fit_timeout:g} s"
    except Exception as exc:  # a failed fit is a result, not a crash
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    warned = tuple(dict.fromkeys((*sim_warnings, *_caught())))
    # the failed row carries the measure the fit was asked for (its run, else its options)
    if run is not None:
        effect = {
            "measure": run.measure,
            "horizon": math.nan if run.horizon is None else run.horizon,
        }
    else:
        effect = {k: opts[k] for k in ("measure", "horizon") if k in opts}
    try:
        return record.failed_row(
            coords, est.name, est.estimand, error, seconds, warnings=warned, **effect
        )
    except EstimatorInputError:  # an invalid measure option: the error says what failed
        return record.failed_row(coords, est.name, est.estimand, error, seconds, warnings=warned)


def _with_warnings(r: EffectEstimate, extra: tuple[str, ...]) -> EffectEstimate:
    return replace(r, warnings=(*r.warnings, *extra))


def _check_result(name: str, r: Any) -> None:
    """A result the store can hold: an EffectEstimate with real numbers (else TypeError)."""
    if not isinstance(r, EffectEstimate):  # the registry checks too; a user's wrapper may not
        raise TypeError(f"estimator {name!r} returned {type(r).__name__}, not EffectEstimate")
    for f in ("estimate", "se", "ci_low", "ci_high", "p_value", "ess"):
        v = getattr(r, f)
        if type(v) is not float and (isinstance(v, bool) or not isinstance(v, numbers.Real)):
            raise TypeError(f"estimator {name!r} returned a non-numeric {f}={v!r}")
    for f in ("n", "events"):
        v = getattr(r, f)
        if type(v) is not int and (isinstance(v, bool) or not isinstance(v, numbers.Integral)):
            raise TypeError(f"estimator {name!r} returned a non-integer {f}={v!r}")
    if not all(isinstance(w, str) for w in r.warnings):
        raise TypeError(f"estimator {name!r} returned warnings that are not strings")
    if not math.isfinite(r.estimate) and not r.error and r.converged:
        raise TypeError(f"estimator {name!r} returned estimate={r.estimate!r} marked converged")
