"""The results record of a simulation study, declared once.

One row per replicate x outcome x estimator: the study coordinates (:data:`COORDINATES`),
then every scalar field of :class:`estimators.EffectEstimate` in its order, then the fit's
wall time (``seconds``).  The row (:func:`row`), the NaN twin of a failed fit
(:func:`failed_row`), the Parquet schema of the results store (:data:`SCHEMA`), the
columns the figures need (:data:`FIGURE_COLUMNS`) and the columns the performance
measures read (:data:`SCORE_COLUMNS`) all derive from here; a new field of
``EffectEstimate`` is a new column everywhere.

Format versions: ``FORMAT_VERSION = 2`` is this measure-generic record (``measure``,
``horizon``, ``estimate``).  Version 1 (rwesim 0.1) stored the estimate as ``log_hr``
and had no ``method``/``measure``/``horizon``; :func:`upgrade` maps such a table to this
record (``estimate = log_hr``, ``measure = "log_hr"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import pandas as pd
import pyarrow as pa

from estimators.result import EffectEstimate

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class Column:
    """One column of the results table."""

    name: str
    type: pa.DataType
    doc: str


# The Python types of EffectEstimate's fields, as stored
_ARROW = {
    "str": pa.string(),
    "float": pa.float64(),
    "int": pa.int32(),
    "bool": pa.bool_(),
    "tuple[str, ...]": pa.string(),  # joined by "; "
}

COORDINATES: tuple[Column, ...] = (
    Column("condition", pa.int32(), "index of the design-grid cell (run.json conditions)"),
    Column("rep", pa.int32(), "replicate number within the condition, from 0"),
    Column("outcome", pa.string(), "outcome analysed: pfs, os or response (spec.OUTCOMES)"),
    Column("estimator", pa.string(), "registered estimator or study variant name"),
)
ESTIMATE: tuple[Column, ...] = tuple(
    Column(f.name, _ARROW[str(f.type)], "EffectEstimate." + f.name)
    for f in fields(EffectEstimate)
    if f.name != "diagnostics"
)
TIMING: tuple[Column, ...] = (Column("seconds", pa.float64(), "wall time of the fit, seconds"),)
COLUMNS: tuple[Column, ...] = COORDINATES + ESTIMATE + TIMING
NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
SCHEMA = pa.schema([(c.name, c.type) for c in COLUMNS])
KEY: tuple[str, ...] = tuple(c.name for c in COORDINATES)
ROW_KEY: tuple[str, ...] = (*KEY, "measure", "horizon")
"""What identifies a row: a study with ``measures`` fits an estimator once per measure and
horizon (``simulator.study.spec.Study.runs``), so those complete the coordinates."""

# what one estimate is scored on, and against which truth row it is merged
SCORE_COLUMNS = ("estimate", "se", "ci_low", "ci_high", "p_value", "converged", "error")
TRUTH_KEY = ("condition", "outcome", "estimand", "measure", "horizon")
TRUTH_COLUMNS = (*TRUTH_KEY, "theta", "theta_mcse")
FIGURE_COLUMNS = (
    "condition",
    "outcome",
    "estimator",
    "estimand",
    "measure",
    "horizon",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "converged",
)


def row(coordinates: dict[str, Any], estimate: EffectEstimate, seconds: float) -> dict[str, Any]:
    """One results row (a dict keyed by :data:`NAMES`)."""
    return {**coordinates, **estimate.to_dict(), "seconds": float(seconds)}


def failed_row(
    coordinates: dict[str, Any],
    method: str,
    estimand: str,
    error: str,
    seconds: float = math.nan,
    *,
    measure: str = "log_hr",
    horizon: float = math.nan,
    warnings: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The NaN twin of a row, for a fit that failed with ``error``."""
    est = EffectEstimate.failed(
        method, estimand, error, measure=measure, horizon=horizon, warnings=warnings
    )
    return row(coordinates, est, seconds)


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a DataFrame with every column of the record, in order (empty allowed)."""
    if not rows:
        return SCHEMA.empty_table().to_pandas()
    return pd.DataFrame(rows, columns=list(NAMES))


def upgrade(df: pd.DataFrame, version: int) -> pd.DataFrame:
    """A results table of format ``version`` as this version's record."""
    if version == FORMAT_VERSION:
        return df
    if version != 1:
        raise ValueError(
            f"results format version {version} is not readable; know {READABLE_VERSIONS}"
        )
    out = df.rename(columns={"log_hr": "estimate"})
    out["method"] = out["estimator"]
    out["measure"] = "log_hr"
    out["horizon"] = math.nan
    return out[list(NAMES)]
