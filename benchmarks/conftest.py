"""Shared benchmark data: synthetic survival cohorts built once per session, outside timing.

Run the suites with ``pytest benchmarks --benchmark-enable`` (pyproject disables
benchmarks by default so the test run stays fast).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
import pytest


@dataclass(frozen=True)
class CoxData:
    """One cohort in both forms: a DataFrame (lifelines, CoxPH) and arrays (fast path)."""

    df: pd.DataFrame
    time: np.ndarray
    event: np.ndarray
    X: np.ndarray
    weights: np.ndarray
    covariates: tuple[str, ...]


@cache
def cox_data(n: int, p: int = 1, seed: int = 2024) -> CoxData:
    """Treatment (column ``treated``) plus ``p - 1`` covariates (half binary), months.

    Exponential event times (control median ~12 months, log-HR -0.55 for treatment),
    uniform censoring over 3-48 months (about 60% events), continuous times (no ties)
    and IPTW-like lognormal weights.
    """
    rng = np.random.default_rng(seed)
    n_bin = (p - 1) // 2
    X = np.c_[
        rng.integers(0, 2, (n, 1 + n_bin)),
        rng.normal(0.0, 1.0, (n, p - 1 - n_bin)),
    ].astype(np.float64)
    beta = np.r_[-0.55, rng.normal(0.0, 0.25, p - 1)]
    t_event = rng.exponential(12.0 / np.log(2.0) / np.exp(X @ beta))
    t_cens = rng.uniform(3.0, 48.0, n)
    covariates = ("treated", *(f"x{j}" for j in range(1, p)))
    df = pd.DataFrame(X, columns=list(covariates))
    df["months"] = np.minimum(t_event, t_cens)
    df["event"] = (t_event <= t_cens).astype(np.int64)
    df["w"] = rng.lognormal(0.0, 0.5, n)
    return CoxData(
        df=df,
        time=df["months"].to_numpy(),
        event=df["event"].to_numpy(),
        X=X,
        weights=df["w"].to_numpy(),
        covariates=covariates,
    )


@pytest.fixture(scope="session")
def make_cox_data():
    """Factory fixture: ``make_cox_data(n, p)`` -> cached :class:`CoxData`."""
    return cox_data
