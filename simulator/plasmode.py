"""Plasmode simulation: synthetic outcomes on a user's own cohort.

A plasmode study (Franklin et al., 2014) keeps the covariates of a real cohort and
simulates what the analyst needs to know the truth of: the outcome and, optionally, the
exposure.  :func:`plasmode` fits the models to the user's data once and returns a
:class:`PlasmodeScenario` (frozen, picklable); ``scenario.simulate(n, seed)`` draws a
replicate and ``scenario.truth()`` holds the truths of the *resampling population* (the
base rows).  The scenario follows the study runner's scenario-kind protocol
(:mod:`simulator.study.kinds`), so a study runs it like a built-in scenario; saved with
:func:`save_plasmode` (a TOML file next to a Parquet file of the base rows) it is a
scenario file ``rwesim run`` and ``Study(scenarios=("plasmode.toml",))`` accept.

Model (times in the unit of the user's time column; ``docs/guide/plasmode.md``):

* covariates: rows of the base cohort drawn with replacement;
* exposure, ``exposure="simulate"`` (the default, the sound design):
  ``A ~ Bernoulli(e(x))`` with ``logit e(x) = ps' [1, x]`` from the logistic regression
  fitted to the base cohort (or ``ps_coef`` given); ``exposure="observed"``: the row's
  own observed exposure is kept;
* outcome: Weibull proportional hazards ``H(t | x, a) = t^k exp(b0 + beta' x + gamma a)``
  with ``k``, ``b0`` and ``beta`` fitted by maximum likelihood to the base cohort and
  ``gamma = log_hr`` chosen (default: the fitted one), or calibrated so that the marginal
  ATE log-HR equals ``marginal_target``; the time is the exact inverse of ``H`` at a unit
  exponential;
* censoring, ``censoring="fitted"``: a Weibull PH model on the covariates (not the
  exposure) fitted to the censoring times of the base cohort, and the end of follow-up
  ``followup``; ``censoring="administrative"``: ``followup`` only.

The design matrix of the fitted models codes numeric (and boolean) covariates as they are
and categorical (or string) covariates as indicators of every level but the first.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

from .exceptions import ScenarioError
from .streams import SeedLike, as_seed_sequence

EXPOSURES = ("simulate", "observed")
CENSORINGS = ("fitted", "administrative")
TRUTH_GRID = 1000  # quadrature nodes of the marginal log-HR (checked against 2x as many)
DEFAULT_ESTIMATORS = ("siptw", "psm", "naive_cox", "adjusted_cox")
_OBSERVED = "__observed_treatment__"  # base-frame column of the observed exposure (0/1)


# ---- design and fits --------------------------------------------------------------------
def _is_categorical(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or s.dtype == "string"


def _levels(s: pd.Series) -> list:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return [lv for lv in s.cat.categories if (s == lv).any()]
    return sorted(pd.unique(s.dropna()).tolist(), key=str)


def design_columns(base: pd.DataFrame, covariates: Sequence[str]) -> tuple[tuple[str, ...], dict]:
    """Names of the design columns and the levels of each categorical covariate.

    Returns
    -------
    names : tuple of str
        ``"c"`` for a numeric covariate, ``"c[level]"`` for every level of a categorical
        one but its first.
    levels : dict of str to list
        Levels of each categorical covariate (first = reference).
    """
    names: list[str] = []
    levels: dict[str, list] = {}
    for c in covariates:
        s = base[c]
        if _is_categorical(s):
            lv = _levels(s)
            levels[c] = lv
            names += [f"{c}[{v}]" for v in lv[1:]]
        else:
            names.append(c)
    return tuple(names), levels


def design(df: pd.DataFrame, covariates: Sequence[str], levels: Mapping[str, list]) -> np.ndarray:
    """Design matrix, shape (n, p), of ``df`` (no intercept; see :func:`design_columns`)."""
    cols = []
    for c in covariates:
        s = df[c]
        if c in levels:
            v = s.astype(object).to_numpy()
            cols += [(v == lv).astype(float) for lv in levels[c][1:]]
        else:
            cols.append(s.to_numpy(dtype=float))
    return np.column_stack(cols) if cols else np.zeros((len(df), 0))


def _standardize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return (X - mu) / sd, mu, sd


def fit_weibull_ph(
    time: np.ndarray, event: np.ndarray, X: np.ndarray
) -> tuple[float, float, np.ndarray]:
    """Maximum-likelihood Weibull proportional-hazards regression.

    ``H(t | x) = t^k exp(b0 + beta' x)`` (hazard ``k t^(k-1) exp(b0 + beta' x)``).

    Parameters
    ----------
    time : ndarray (n,)
        Observed times (> 0).
    event : ndarray (n,)
        1 = event, 0 = censored.
    X : ndarray (n, p)
        Design matrix (no intercept).

    Returns
    -------
    (k, b0, beta)
        Shape, intercept, coefficients (p,): log hazard ratios per unit of each column.
    """
    Z, mu, sd = _standardize(X)
    scale = float(np.median(time))
    lt = np.log(time / scale)
    d = event.astype(float)
    n, p = Z.shape

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        k = math.exp(theta[0])
        eta = theta[1] + Z @ theta[2:]
        hk = np.exp(np.clip(k * lt + eta, -700, 700))
        ll = np.sum(d * (theta[0] + (k - 1) * lt + eta)) - hk.sum()
        g_eta = d - hk
        g = np.empty(p + 2)
        g[0] = np.sum(d * (1 + k * lt)) - np.sum(hk * k * lt)
        g[1] = g_eta.sum()
        g[2:] = Z.T @ g_eta
        return -ll / n, -g / n

    x0 = np.zeros(p + 2)
    x0[1] = math.log(max(d.sum(), 1.0) / n)
    res = optimize.minimize(nll, x0, jac=True, method="BFGS", options={"gtol": 1e-10})
    k = math.exp(res.x[0])
    beta = res.x[2:] / sd
    b0 = res.x[1] - float(beta @ mu) - k * math.log(scale)
    return k, float(b0), beta


def fit_logistic(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Maximum-likelihood logistic regression by Newton-Raphson.

    Returns
    -------
    ndarray (p + 1,)
        Intercept, then one coefficient per column of ``X``.
    """
    Z, mu, sd = _standardize(X)
    Z1 = np.column_stack([np.ones(len(y)), Z])
    b = np.zeros(Z1.shape[1])
    for _ in range(100):
        e = special.expit(Z1 @ b)
        H = (Z1 * (e * (1 - e))[:, None]).T @ Z1
        step = np.linalg.solve(H + 1e-12 * np.eye(len(b)), Z1.T @ (y - e))
        b += step
        if np.max(np.abs(step)) < 1e-12:
            break
    coef = b[1:] / sd
    return np.concatenate([[b[0] - coef @ mu], coef])


# ---- validation -------------------------------------------------------------------------
def _check_columns(df: pd.DataFrame, cols: Sequence[str], param: str) -> None:
    for c in cols:
        if not isinstance(c, str) or c not in df.columns:
            raise ScenarioError(
                f"{param}: column {c!r} is not in base_df; its columns are {list(df.columns)}"
            )


def _check_number(x: object, param: str, low: float, high: float) -> float:
    ok = isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)
    if not ok or not (math.isfinite(float(x)) and low <= float(x) <= high):
        raise ScenarioError(f"{param}={x!r} is not allowed; it must be a number in [{low}, {high}]")
    return float(x)


def _check_base(
    base_df: object,
    covariates: object,
    treatment: object,
    time: object,
    event: object,
    treated_value: object,
) -> tuple[pd.DataFrame, tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(base_df, pd.DataFrame):
        raise ScenarioError(f"base_df={type(base_df).__name__} is not allowed; give a DataFrame")
    if isinstance(covariates, str) or not isinstance(covariates, Sequence) or not covariates:
        raise ScenarioError(
            f"covariates={covariates!r} is not allowed; give a non-empty list of column names"
        )
    covs = tuple(covariates)
    if len(set(covs)) < len(covs):
        raise ScenarioError(f"covariates={list(covs)!r} names a column twice")
    _check_columns(base_df, covs, "covariates")
    _check_columns(base_df, [treatment, time, event], "treatment / time / event")
    if len({treatment, time, event, *covs}) < 3 + len(covs):
        raise ScenarioError(
            "treatment, time, event and covariates must be different columns; got "
            f"treatment={treatment!r}, time={time!r}, event={event!r}, covariates={list(covs)}"
        )
    if len(base_df) < 20:
        raise ScenarioError(f"base_df has {len(base_df)} rows; a plasmode needs at least 20")
    for c in covs:
        s = base_df[c]
        bad = s.isna().to_numpy()
        if not _is_categorical(s) and not bad.any():
            try:
                bad = ~np.isfinite(s.to_numpy(dtype=float))
            except (TypeError, ValueError):
                raise ScenarioError(
                    f"covariates: column {c!r} ({s.dtype}) is neither numeric nor categorical"
                ) from None
        if bad.any():
            raise ScenarioError(
                f"covariates: column {c!r} has {int(bad.sum())} missing / non-finite values "
                f"(first at row {int(np.flatnonzero(bad)[0])}); impute or drop those rows first"
            )
        if s.nunique() < 2:
            raise ScenarioError(
                f"covariates: column {c!r} has one level ({s.iloc[0]!r}) in base_df; a constant "
                "has no coefficient, leave it out"
            )
    t_raw = base_df[time]
    try:
        t = t_raw.to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise ScenarioError(f"time: column {time!r} ({t_raw.dtype}) is not numeric") from None
    bad = ~(np.isfinite(t) & (t > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ScenarioError(
            f"time: column {time!r} has {int(bad.sum())} values that are not finite and > 0 "
            f"(first: {float(t[i])!r} at row {i}); times must be positive"
        )
    ev = base_df[event]
    vals = set(pd.unique(ev.dropna()).tolist())
    if ev.isna().any() or not vals <= {0, 1}:
        raise ScenarioError(
            f"event: column {event!r} must be 0/1 (1 = event); it has values "
            f"{sorted(vals, key=str)}" + (" and missing values" if ev.isna().any() else "")
        )
    d = ev.to_numpy(dtype=float)
    if d.sum() < 5:
        raise ScenarioError(f"event: column {event!r} has {int(d.sum())} events; need at least 5")
    tr = base_df[treatment]
    tvals = sorted(pd.unique(tr.dropna()).tolist(), key=str)
    if treated_value is not None:
        if treated_value not in tvals or len(tvals) != 2 or tr.isna().any():
            raise ScenarioError(
                f"treatment: column {treatment!r} must have exactly two values, one of them "
                f"treated_value={treated_value!r}; it has {tvals}"
                + (" and missing values" if tr.isna().any() else "")
            )
        a = (tr == treated_value).to_numpy(dtype=float)
    else:
        if tr.isna().any() or not set(tvals) <= {0, 1} or len(tvals) != 2:
            raise ScenarioError(
                f"treatment: column {treatment!r} must be binary 0/1 with both values present; "
                f"it has values {tvals}"
                + (" and missing values" if tr.isna().any() else "")
                + "; code it 0/1 or give treated_value"
            )
        a = tr.to_numpy(dtype=float)
    for arm in (0, 1):
        if (a == arm).sum() < 5:
            raise ScenarioError(
                f"treatment: column {treatment!r} has {int((a == arm).sum())} rows in arm {arm}; "
                "need at least 5 per arm"
            )
    base = base_df.loc[:, list(covs)].reset_index(drop=True).copy()
    for c in covs:
        if _is_categorical(base[c]) and not isinstance(base[c].dtype, pd.CategoricalDtype):
            base[c] = pd.Categorical(base[c].astype(str), categories=_levels(base[c].astype(str)))
    return base, covs, a, t, d


# ---- the scenario -----------------------------------------------------------------------
@dataclass(frozen=True)
class WeibullPH:
    """A fitted Weibull PH model ``H(t | x) = t^shape exp(intercept + coef' x)``.

    Attributes
    ----------
    shape : float
    intercept : float
    coef : dict of str to float
        Log-HR per unit of each design column (:func:`design_columns`).
    """

    shape: float
    intercept: float
    coef: Mapping[str, float]

    def lp(self, X: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """``intercept + coef' x`` per row of the design ``X`` (columns ``names``)."""
        b = np.array([self.coef.get(c, 0.0) for c in names])
        return self.intercept + X @ b

    def to_dict(self) -> dict[str, Any]:
        return {"shape": self.shape, "intercept": self.intercept, "coef": dict(self.coef)}


@dataclass(frozen=True, eq=False)
class PlasmodeScenario:
    """A plasmode scenario: the base rows, the fitted models and the design (immutable,
    picklable; built by :func:`plasmode`, saved by :func:`save_plasmode`).

    It is a scenario kind of the study runner (:mod:`simulator.study.kinds`): ``name``,
    ``outcomes``, ``treatment``, ``columns``, ``covariates``, ``simulate``, ``truth``.

    Attributes
    ----------
    name : str
    base : DataFrame, shape (N, len(covariates) + 1)
        The resampling population: the covariate columns and the observed exposure (0/1).
    covariates : tuple of str
    treatment, time, event, outcome : str
        Output column names and the outcome's name.
    exposure : {"simulate", "observed"}
    ps : dict of str to float
        Propensity model: ``"intercept"`` and a log-odds ratio per design column.
    outcome_model : WeibullPH
        Outcome model without the exposure (the exposure's log-HR is ``log_hr``).
    log_hr : float
        Conditional log-HR of the exposure on the outcome (``gamma``).
    fitted_log_hr : float
        The exposure's log-HR fitted to the base cohort (for the record).
    marginal_target : float or None
        The marginal ATE log-HR ``log_hr`` was calibrated to, if any.
    censoring : {"fitted", "administrative"}
    censoring_model : WeibullPH
        Censoring model on the covariates (used when ``censoring == "fitted"``).
    followup : float
        End of follow-up (time unit of the data).
    horizon : float
        Horizon of the survival and RMST differences.
    """

    name: str
    base: pd.DataFrame = field(repr=False)
    covariates: tuple[str, ...]
    treatment: str
    time: str
    event: str
    outcome: str
    exposure: str
    ps: Mapping[str, float]
    outcome_model: WeibullPH
    log_hr: float
    fitted_log_hr: float
    marginal_target: float | None
    censoring: str
    censoring_model: WeibullPH
    followup: float
    horizon: float
    levels: Mapping[str, list] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ScenarioError(f"name={self.name!r} is not allowed; give a non-empty string")
        if self.exposure not in EXPOSURES:
            raise ScenarioError(
                f"exposure={self.exposure!r} is not allowed; use one of {EXPOSURES}"
            )
        if self.censoring not in CENSORINGS:
            raise ScenarioError(
                f"censoring={self.censoring!r} is not allowed; use one of {CENSORINGS}"
            )
        set_ = object.__setattr__
        set_(self, "log_hr", _check_number(self.log_hr, "log_hr", -5.0, 5.0))
        set_(self, "followup", _check_number(self.followup, "followup", 1e-9, 1e9))
        set_(self, "horizon", _check_number(self.horizon, "horizon", 1e-9, self.followup))
        names, _ = design_columns(self.base, self.covariates)
        unknown = [k for k in self.ps if k != "intercept" and k not in names]
        if unknown:
            raise ScenarioError(
                f"ps_coef: {unknown} are not design columns; use 'intercept' and some of "
                f"{list(names)}"
            )
        for k, v in self.ps.items():
            _check_number(v, f"ps_coef[{k!r}]", -50.0, 50.0)

    # ---- kind protocol ---------------------------------------------------------------
    @property
    def design_names(self) -> tuple[str, ...]:
        return design_columns(self.base, self.covariates)[0]

    @property
    def description(self) -> str:
        return (
            f"plasmode of a user cohort ({len(self.base)} rows; exposure {self.exposure}, "
            f"censoring {self.censoring}); {self.outcome}"
        )

    @property
    def outcomes(self) -> dict[str, tuple[str, str]]:
        return {self.outcome: (self.time, self.event)}

    @property
    def columns(self) -> tuple[str, ...]:
        return ("id", *self.covariates, self.treatment, self.time, self.event)

    @property
    def estimators(self) -> tuple[str, ...]:
        return DEFAULT_ESTIMATORS

    @property
    def options(self) -> dict[str, dict[str, Any]]:
        return {}

    @property
    def truth_censoring(self) -> str:
        """The truth censoring a study of this scenario should use (``rwesim run`` takes
        it by default): ``"study"`` under fitted censoring, which applies to both
        potential outcomes alike and moves the marginal log-HR; ``"admin"`` otherwise."""
        return "study" if self.censoring == "fitted" else "admin"

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready parameters (the base rows by their hash)."""
        h = hashlib.sha256(pd.util.hash_pandas_object(self.base, index=False).to_numpy())
        return {
            "kind": "plasmode",
            "name": self.name,
            "rows": len(self.base),
            "data_sha256": h.hexdigest(),
            "covariates": list(self.covariates),
            "treatment": self.treatment,
            "time": self.time,
            "event": self.event,
            "outcome": self.outcome,
            "exposure": self.exposure,
            "ps": dict(self.ps),
            "outcome_model": self.outcome_model.to_dict(),
            "log_hr": self.log_hr,
            "fitted_log_hr": self.fitted_log_hr,
            "marginal_target": self.marginal_target,
            "censoring": self.censoring,
            "censoring_model": self.censoring_model.to_dict(),
            "followup": self.followup,
            "horizon": self.horizon,
        }

    def fingerprint(self) -> str:
        """Hash of :meth:`to_dict` (16 hex digits)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def simulate(self, n: int, seed: SeedLike) -> pd.DataFrame:
        """One replicate: ``n`` rows drawn with replacement (see :func:`simulate_plasmode`)."""
        return simulate_plasmode(self, n, seed)

    def truth(self) -> PlasmodeTruth:
        """Truths on the resampling population (computed once per fingerprint)."""
        key = self.fingerprint()
        if key not in _TRUTHS:
            _TRUTHS[key] = plasmode_truth(self)
        return _TRUTHS[key]

    def replace(self, **changes: Any) -> PlasmodeScenario:
        """The scenario with changed design parameters (a study's ``set`` / ``vary``):
        ``name``, ``exposure``, ``log_hr``, ``marginal_target`` (recalibrates
        ``log_hr``), ``censoring``, ``followup``, ``horizon``."""
        allowed = ("name", "exposure", "log_hr", "marginal_target", "censoring", "followup",
                   "horizon")  # fmt: skip
        for key in changes:
            if key not in allowed:
                raise ScenarioError(
                    f"{key!r} is not a parameter of a plasmode scenario; use one of {list(allowed)}"
                )
        if "log_hr" in changes and changes.get("marginal_target") is not None:
            raise ScenarioError("give log_hr or marginal_target, not both")
        if "log_hr" in changes:
            changes["marginal_target"] = None
        out = replace(self, **changes)
        if changes.get("marginal_target") is not None:
            out = replace(out, log_hr=calibrate_log_hr(out, changes["marginal_target"]))
        return out

    # ---- model pieces ----------------------------------------------------------------
    def _design(self) -> np.ndarray:
        return design(self.base, self.covariates, self.levels)

    def propensity(self) -> np.ndarray:
        """``e(x)`` of every base row under the exposure model, shape (N,)."""
        names = self.design_names
        b = np.array([self.ps.get(c, 0.0) for c in names])
        return special.expit(self.ps.get("intercept", 0.0) + self._design() @ b)


_TRUTHS: dict[str, PlasmodeTruth] = {}


def plasmode(
    base_df: pd.DataFrame,
    covariates: Sequence[str],
    treatment: str,
    time: str,
    event: str,
    *,
    exposure: str = "simulate",
    ps_coef: Mapping[str, float] | None = None,
    log_hr: float | None = None,
    marginal_target: float | None = None,
    censoring: str = "fitted",
    followup: float | None = None,
    horizon: float | None = None,
    treated_value: object = None,
    outcome: str = "os",
    name: str = "plasmode",
) -> PlasmodeScenario:
    """Fit a plasmode scenario to a user's cohort.

    Parameters
    ----------
    base_df : DataFrame
        One row per patient: the covariates, a binary exposure, a time and an event.
    covariates : sequence of str
        Columns to resample and to adjust for (numeric or categorical; no missing values).
    treatment, time, event : str
        Exposure column (0/1, or two values with ``treated_value``), time column (> 0,
        any unit; every time parameter is in that unit), event column (1 = event).
    exposure : {"simulate", "observed"}
        ``"simulate"`` (default): a new exposure from the propensity model for every
        resampled row; ``"observed"``: keep the row's observed exposure.  See
        ``docs/guide/plasmode.md`` for why simulating is the default.
    ps_coef : mapping, optional
        Propensity model ``{"intercept": b0, design column: log-OR, ...}`` (columns not
        named have 0); default: the logistic regression fitted to ``base_df``.
    log_hr : float, optional
        Conditional log-HR of the exposure; default: the one fitted to ``base_df``.
    marginal_target : float, optional
        Calibrate ``log_hr`` so that the marginal ATE log-HR (administrative censoring at
        ``followup``) equals this (not with ``log_hr``).
    censoring : {"fitted", "administrative"}
        Censoring from a Weibull PH model fitted to the censoring times (plus
        ``followup``), or at ``followup`` only.
    followup : float, optional
        End of follow-up; default: the longest time in ``base_df``.
    horizon : float, optional
        Horizon of the survival / RMST truths (<= ``followup``); default ``followup / 2``.
    treated_value : optional
        Value of ``treatment`` that means treated, for a non-0/1 column.
    outcome : str
        Name of the outcome (a study's ``outcomes`` entry).
    name : str
        The scenario's name.

    Raises
    ------
    ScenarioError
        Before any fitting, for a missing column, a covariate with missing values or one
        level, a time that is not > 0, an event that is not 0/1, a treatment that is not
        binary, or a bad option.
    """
    base, covs, a, t, d = _check_base(base_df, covariates, treatment, time, event, treated_value)
    if exposure not in EXPOSURES:
        raise ScenarioError(f"exposure={exposure!r} is not allowed; use one of {EXPOSURES}")
    if censoring not in CENSORINGS:
        raise ScenarioError(f"censoring={censoring!r} is not allowed; use one of {CENSORINGS}")
    if log_hr is not None and marginal_target is not None:
        raise ScenarioError(
            f"log_hr={log_hr!r} and marginal_target={marginal_target!r}: give one of them"
        )
    if marginal_target is not None:
        _check_number(marginal_target, "marginal_target", -3.0, 3.0)
    if ps_coef is not None and not isinstance(ps_coef, Mapping):
        raise ScenarioError(f"ps_coef={ps_coef!r} is not allowed; give a mapping name -> log-OR")
    for p, v in (("outcome", outcome), ("name", name)):
        if not isinstance(v, str) or not v:
            raise ScenarioError(f"{p}={v!r} is not allowed; give a non-empty string")
    fu = float(t.max()) if followup is None else _check_number(followup, "followup", 1e-9, 1e9)
    hz = fu / 2 if horizon is None else _check_number(horizon, "horizon", 1e-9, fu)
    names, levels = design_columns(base, covs)
    X = design(base, covs, levels)
    if ps_coef is not None:
        for k_, v in ps_coef.items():
            if k_ != "intercept" and k_ not in names:
                raise ScenarioError(
                    f"ps_coef[{k_!r}] is not allowed; name 'intercept' or design columns "
                    f"{list(names)}"
                )
            _check_number(v, f"ps_coef[{k_!r}]", -50.0, 50.0)
    k, b0, beta = fit_weibull_ph(t, d, np.column_stack([a, X]))
    out_model = WeibullPH(k, b0, dict(zip(names, map(float, beta[1:]), strict=True)))
    kc, c0, gc = fit_weibull_ph(t, 1.0 - d, X)
    cens_model = WeibullPH(kc, c0, dict(zip(names, map(float, gc), strict=True)))
    if ps_coef is None:
        b = fit_logistic(a, X)
        ps = {"intercept": float(b[0]), **dict(zip(names, map(float, b[1:]), strict=True))}
    else:
        ps = dict(ps_coef)
    base[_OBSERVED] = a.astype(np.int8)
    sc = PlasmodeScenario(
        name=name, base=base, covariates=covs, treatment=treatment, time=time, event=event,
        outcome=outcome, exposure=exposure, ps=ps, outcome_model=out_model,
        log_hr=float(beta[0]) if log_hr is None else log_hr, fitted_log_hr=float(beta[0]),
        marginal_target=None, censoring=censoring, censoring_model=cens_model, followup=fu,
        horizon=hz, levels=levels,
    )  # fmt: skip
    if marginal_target is not None:
        sc = replace(sc, log_hr=calibrate_log_hr(sc, marginal_target),
                     marginal_target=float(marginal_target))  # fmt: skip
    return sc


# ---- simulation -------------------------------------------------------------------------
def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n <= 0:
        raise ScenarioError(f"n={n!r} is not allowed; it must be a positive integer")
    return int(n)


def _weibull_time(model: WeibullPH, lp: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``T`` with ``T^k exp(lp) = e``."""
    return (e * np.exp(-lp)) ** (1.0 / model.shape)


def simulate_plasmode(
    scenario: PlasmodeScenario, n: int, seed: SeedLike, *, potential_outcomes: bool = False
) -> pd.DataFrame:
    """One plasmode replicate.

    Parameters
    ----------
    scenario : PlasmodeScenario
    n : int
        Rows drawn with replacement from the base rows.
    seed : int or numpy.random.SeedSequence
        Same (scenario, n, seed): a bit-identical frame.
    potential_outcomes : bool
        Add ``{time}_0`` and ``{time}_1``: the uncensored potential times (same unit
        exponential for both: common random numbers) and ``base_row``.

    Returns
    -------
    DataFrame, shape (n, len(scenario.columns) [+ 3])
        ``id``, the covariates, the exposure (int8 0/1), the time and the event (int8).
    """
    if not isinstance(scenario, PlasmodeScenario):
        raise ScenarioError(f"scenario={scenario!r} is not allowed; give a PlasmodeScenario")
    n = _check_n(n)
    rng = np.random.default_rng(as_seed_sequence(seed))
    sc = scenario
    N = len(sc.base)
    rows = rng.integers(0, N, n)
    u_a = rng.random(n)
    e = rng.standard_exponential(n)
    e_c = rng.standard_exponential(n)
    X = sc._design()
    names = sc.design_names
    if sc.exposure == "simulate":
        a = (u_a < sc.propensity()[rows]).astype(np.int8)
    else:
        a = sc.base[_OBSERVED].to_numpy()[rows].astype(np.int8)
    lp = sc.outcome_model.lp(X, names)[rows]
    t0 = _weibull_time(sc.outcome_model, lp, e)
    t1 = _weibull_time(sc.outcome_model, lp + sc.log_hr, e)
    t = np.where(a == 1, t1, t0)
    c = np.full(n, sc.followup)
    if sc.censoring == "fitted":
        lpc = sc.censoring_model.lp(X, names)[rows]
        c = np.minimum(c, _weibull_time(sc.censoring_model, lpc, e_c))
    out = pd.DataFrame({"id": np.arange(n, dtype=np.int64)})
    for col in sc.covariates:
        s = sc.base[col]
        out[col] = s.array.take(rows) if isinstance(s.dtype, pd.CategoricalDtype) else (
            s.to_numpy()[rows])  # fmt: skip
    out[sc.treatment] = a
    out[sc.time] = np.minimum(t, c)
    out[sc.event] = (t <= c).astype(np.int8)
    if potential_outcomes:
        out[f"{sc.time}_0"] = t0
        out[f"{sc.time}_1"] = t1
        out["base_row"] = rows
    return out


# ---- truths -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PlasmodeTruth:
    """Truths of a plasmode scenario on its resampling population (the base rows).

    Attributes
    ----------
    log_hr : float
        The conditional log-HR (exact).
    values : dict
        ``(estimand, censoring, measure) -> (theta, error)``: marginal log-HRs (Cox
        population limit of the stacked potential outcomes, by quadrature; error = change
        from doubling the grid) and survival / RMST differences at ``horizon`` (closed
        form; error 0).
    horizon : float
    """

    log_hr: float
    values: Mapping[tuple[str, str, str], tuple[float, float]]
    horizon: float
    outcome: str

    def estimand(
        self,
        outcome: str,
        estimand: str,
        censoring: str = "admin",
        measure: str = "log_hr",
        horizon: float | None = None,
    ) -> tuple[float, float]:
        """(true value, error) of one estimand: the study runner's truth interface.

        Raises
        ------
        ScenarioError
            (a ValueError) for one this truth does not hold.
        """
        if outcome != self.outcome:
            raise ScenarioError(
                f"outcome={outcome!r} is not allowed; this plasmode has {self.outcome!r}"
            )
        if estimand == "conditional" and measure == "log_hr":
            return self.log_hr, 0.0
        if measure in ("surv_diff", "rmst_diff"):
            if horizon is None or not math.isclose(float(horizon), self.horizon):
                raise ScenarioError(
                    f"horizon={horizon!r} is not allowed; this truth is at {self.horizon:g}"
                )
            censoring = "admin"
        key = (estimand, censoring, measure)
        if key not in self.values:
            raise ScenarioError(
                f"(estimand={estimand!r}, censoring={censoring!r}, measure={measure!r}) is not "
                f"allowed; this plasmode holds {sorted(self.values)} and conditional log_hr"
            )
        return self.values[key]


def _weights(sc: PlasmodeScenario) -> dict[str, np.ndarray]:
    N = len(sc.base)
    if sc.exposure == "simulate":
        e = sc.propensity()
        return {"ATE": np.ones(N), "ATT": e, "ATC": 1 - e, "ATO": e * (1 - e),
                "ATM": np.minimum(e, 1 - e)}  # fmt: skip
    a = sc.base[_OBSERVED].to_numpy(dtype=float)
    return {"ATE": np.ones(N), "ATT": a, "ATC": 1 - a}


def _curves(
    sc: PlasmodeScenario,
    gamma: float,
    w: np.ndarray,
    censored: bool,
    grid: int,
    w1: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """At-risk and event densities of both arms on a midpoint grid of the baseline
    cumulative hazard ``s = t^k exp(b0)`` over (0, H0(followup)]: (Y0, Y1, dN0, dN1),
    each shape (grid,).  Row weights ``w`` (N,) for both arms, or ``w`` for the control
    arm and ``w1`` for the treated arm."""
    ws = (w, w if w1 is None else w1)
    m = sc.outcome_model
    X = sc._design()
    names = sc.design_names
    eta = m.lp(X, names) - m.intercept  # beta' x
    s_max = sc.followup**m.shape * math.exp(m.intercept)
    ds = s_max / grid
    s = (np.arange(grid) + 0.5) * ds
    Y = [np.zeros(grid), np.zeros(grid)]
    dN = [np.zeros(grid), np.zeros(grid)]
    step = max(1, 2_000_000 // grid)
    if censored:
        t_of_s = (s * math.exp(-m.intercept)) ** (1.0 / m.shape)
        lpc = sc.censoring_model.lp(X, names)
    for i in range(0, len(w), step):
        sl = slice(i, i + step)
        G = np.exp(-np.exp(lpc[sl])[:, None] * t_of_s[None, :] ** sc.censoring_model.shape) if (
            censored) else 1.0  # fmt: skip
        for arm in (0, 1):
            r = np.exp(eta[sl] + gamma * arm)
            S = np.exp(-r[:, None] * s[None, :]) * G
            Y[arm] += ws[arm][sl] @ S
            dN[arm] += (ws[arm][sl] * r) @ S * ds
    return Y[0], Y[1], dN[0], dN[1]


def _marginal_log_hr(curves: tuple[np.ndarray, ...]) -> float:
    y0, y1, d0, d1 = curves

    def score(b: float) -> float:
        e = math.exp(b)
        return float(np.sum(d1 - y1 * e / (y0 + y1 * e) * (d0 + d1)))

    return float(optimize.brentq(score, -10.0, 10.0, xtol=1e-12))


def marginal_log_hr(
    sc: PlasmodeScenario, estimand: str = "ATE", censoring: str = "admin",
    gamma: float | None = None, grid: int = TRUTH_GRID,
) -> float:  # fmt: skip
    """Population-limit marginal Cox log-HR of the stacked potential outcomes of the base
    rows weighted for ``estimand``; ``censoring="admin"``: censored at ``followup`` only,
    ``"study"``: also by the fitted censoring model (both arms alike)."""
    w = _weights(sc)[estimand]
    g = sc.log_hr if gamma is None else gamma
    return _marginal_log_hr(_curves(sc, g, w, censoring == "study", grid))


def iptw_limit(sc: PlasmodeScenario, censoring: str = "study", grid: int = TRUTH_GRID) -> float:
    """What sIPTW (ATE) with a main-terms logistic propensity model converges to as the
    replicate size grows: the marginal Cox log-HR of the resampling population with the
    treated rows weighted by ``1 / e_hat`` and the control rows by ``1 / (1 - e_hat)``,
    ``e_hat`` the logistic fit of the exposure on the covariates *in that population*.

    Under ``exposure="simulate"`` the exposure model is that logistic model, so this is
    the ATE truth itself; under ``exposure="observed"`` every base row keeps its own
    exposure, the population's propensity is 0 or 1 per row, and the difference from the
    ATE truth is the design's artefact (``docs/guide/plasmode.md``).
    """
    if censoring not in ("admin", "study"):
        raise ScenarioError(f"censoring={censoring!r} is not allowed; use 'admin' or 'study'")
    cens = censoring == "study" and sc.censoring == "fitted"
    if sc.exposure == "simulate":
        w = np.ones(len(sc.base))
        return _marginal_log_hr(_curves(sc, sc.log_hr, w, cens, grid))
    a = sc.base[_OBSERVED].to_numpy(dtype=float)
    b = fit_logistic(a, sc._design())
    e = special.expit(b[0] + sc._design() @ b[1:])
    w1 = a / e * a.mean()  # stabilised; the scale does not move the Cox root
    w0 = (1 - a) / (1 - e) * (1 - a.mean())
    return _marginal_log_hr(_curves(sc, sc.log_hr, w0, cens, grid, w1=w1))


def _rmst(m: WeibullPH, lp: np.ndarray, tau: float) -> np.ndarray:
    """``int_0^tau exp(-t^k exp(lp)) dt`` per row (closed form)."""
    k = m.shape
    c = np.exp(lp)
    return c ** (-1 / k) / k * special.gamma(1 / k) * special.gammainc(1 / k, c * tau**k)


def plasmode_truth(sc: PlasmodeScenario, grid: int = TRUTH_GRID) -> PlasmodeTruth:
    """Every truth of ``sc`` on its resampling population (see :class:`PlasmodeTruth`)."""
    m = sc.outcome_model
    lp = m.lp(sc._design(), sc.design_names)
    tau = sc.horizon
    surv = [np.exp(-np.exp(lp + sc.log_hr * a) * tau**m.shape) for a in (0, 1)]
    rmst = [_rmst(m, lp + sc.log_hr * a, tau) for a in (0, 1)]
    values: dict[tuple[str, str, str], tuple[float, float]] = {}
    for est, w in _weights(sc).items():
        if w.sum() <= 0:
            continue
        values[(est, "admin", "surv_diff")] = (float(w @ (surv[1] - surv[0]) / w.sum()), 0.0)
        values[(est, "admin", "rmst_diff")] = (float(w @ (rmst[1] - rmst[0]) / w.sum()), 0.0)
        for cens in ("admin", "study"):
            if cens == "study" and sc.censoring != "fitted":
                values[(est, cens, "log_hr")] = values[(est, "admin", "log_hr")]
                continue
            fine = _marginal_log_hr(_curves(sc, sc.log_hr, w, cens == "study", 2 * grid))
            coarse = _marginal_log_hr(_curves(sc, sc.log_hr, w, cens == "study", grid))
            values[(est, cens, "log_hr")] = (fine, abs(fine - coarse))
    return PlasmodeTruth(sc.log_hr, values, tau, sc.outcome)


def calibrate_log_hr(sc: PlasmodeScenario, target: float, grid: int = 2000) -> float:
    """The conditional log-HR whose marginal ATE log-HR (administrative censoring) is
    ``target``.

    Raises
    ------
    ScenarioError
        When no conditional log-HR in [-5, 5] reaches it.
    """
    target = _check_number(target, "marginal_target", -3.0, 3.0)
    w = np.ones(len(sc.base))

    def f(g: float) -> float:
        return _marginal_log_hr(_curves(sc, g, w, False, grid)) - target

    lo, hi = f(-5.0), f(5.0)
    if lo > 0 or hi < 0:
        raise ScenarioError(
            f"marginal_target={target!r} is not reachable: conditional log-HRs in [-5, 5] give "
            f"marginal ATE log-HRs in [{lo + target:.3f}, {hi + target:.3f}]"
        )
    return float(optimize.brentq(f, -5.0, 5.0, xtol=1e-10))


# ---- files ------------------------------------------------------------------------------
def save_plasmode(sc: PlasmodeScenario, path: str | Path) -> Path:
    """Write ``path`` (TOML: the design and the fitted models) and the base rows next to
    it (``path`` with suffix ``.parquet``); returns the TOML path."""
    import tomli_w

    path = Path(path)
    if path.suffix != ".toml":
        raise ScenarioError(f"path={str(path)!r} is not allowed; give a .toml file name")
    data = path.with_suffix(".parquet")
    sc.base.to_parquet(data, index=False)
    d = sc.to_dict()
    d["data"] = data.name
    d["levels"] = {k: [str(v) for v in lv] for k, lv in sc.levels.items()}
    if d["marginal_target"] is None:
        del d["marginal_target"]
    path.write_text(tomli_w.dumps({"plasmode": d}))
    return path


def is_plasmode_file(name: object) -> bool:
    """True for a ``.toml`` file with a ``[plasmode]`` table."""
    if not isinstance(name, str | Path) or not str(name).endswith(".toml"):
        return False
    p = Path(name)
    try:
        return p.is_file() and "plasmode" in tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False  # not a plasmode file: the MBC loader reports what is wrong with it


_LOADED: dict[tuple, PlasmodeScenario] = {}


def load_plasmode(path: str | Path) -> PlasmodeScenario:
    """Read a scenario written by :func:`save_plasmode` (no refitting: the stored models).

    Raises
    ------
    ScenarioError
        A missing file or table, or base rows whose hash differs from the recorded one.
    """
    p = Path(path).resolve()
    if not p.is_file():
        raise ScenarioError(f"plasmode file {str(path)!r} does not exist")
    doc = tomllib.loads(p.read_text()).get("plasmode")
    if not isinstance(doc, dict):
        raise ScenarioError(f"{str(path)!r} has no [plasmode] table")
    data = p.parent / doc.get("data", "")
    if not data.is_file():
        raise ScenarioError(f"{str(path)!r}: its base rows {str(data)!r} do not exist")
    st, sd = p.stat(), data.stat()
    key = (str(p), st.st_mtime_ns, st.st_size, sd.st_mtime_ns, sd.st_size)
    if key in _LOADED:
        return _LOADED[key]
    base = pd.read_parquet(data)
    covs = tuple(doc["covariates"])
    levels = {k: [type_of(base[k], v) for v in lv] for k, lv in doc.get("levels", {}).items()}

    def model(m: dict) -> WeibullPH:
        return WeibullPH(float(m["shape"]), float(m["intercept"]), dict(m["coef"]))

    sc = PlasmodeScenario(
        name=doc["name"], base=base, covariates=covs, treatment=doc["treatment"],
        time=doc["time"], event=doc["event"], outcome=doc["outcome"],
        exposure=doc["exposure"], ps=dict(doc["ps"]), outcome_model=model(doc["outcome_model"]),
        log_hr=doc["log_hr"], fitted_log_hr=doc["fitted_log_hr"],
        marginal_target=doc.get("marginal_target"), censoring=doc["censoring"],
        censoring_model=model(doc["censoring_model"]), followup=doc["followup"],
        horizon=doc["horizon"], levels=levels,
    )  # fmt: skip
    if sc.to_dict()["data_sha256"] != doc.get("data_sha256"):
        raise ScenarioError(
            f"{str(data)!r} is not the data {str(path)!r} was fitted to (its hash differs)"
        )
    _LOADED[key] = sc
    return sc


def type_of(s: pd.Series, v: str) -> object:
    """A level ``v`` read back from TOML in the type of the column's values."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        for c in s.cat.categories:
            if str(c) == v:
                return c
    return v
