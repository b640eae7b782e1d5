"""Every built-in estimator and variance option on one real cohort: :func:`analyze`.

:func:`analyze` validates the data once (:func:`check_analysis_data`: one clear error
naming the column), fits one propensity model shared by every estimator
(:class:`~estimators.shared.SharedInputs`), then runs the suite of :func:`analysis_plan`
and returns an :class:`AnalysisResult`:

``estimates``
    one row per fit (estimator, options, estimand, measure, horizon, estimate, SE, CI,
    HR and its CI for log-HR rows, p, n, events, ESS, converged, error, warnings); a fit
    that fails is a row with its ``error``, not an exception;
``balance``
    the SMD (and means, variance ratio) of every covariate level before adjustment,
    after each weighting (ATE, ATT, ATC, ATO, ATM) and after 1:1 matching;
``patients``
    one row per patient: treatment, propensity score, its logit, the stabilized
    weights of each weighting and the matching weight;
``km``
    Kaplan-Meier curves per arm, unadjusted, weighted (ATE, ATT, ATO) and matched.

Pure computation: no files, no plots (the ``rwesim analyze`` command of the study layer
writes them).  Times are in whatever unit the data use; the docs say months.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .balance import balance_arrays
from .exceptions import EstimatorInputError, EstimatorWarning
from .matching import Matching, match_pairs
from .propensity import PropensityModel
from .registry import get_estimator
from .result import EffectEstimate
from .shared import SharedInputs
from .survival import _kaplan_meier
from .validation import (
    MATCH_VARIANCES,
    VARIANCES,
    WEIGHT_ESTIMANDS,
    check_covariates,
    check_events,
    check_n_boot,
    check_times,
    is_categorical,
    numeric_values,
)
from .weighting import iptw_weights_from_logit

__all__ = [
    "BUILTIN_SUITE",
    "AnalysisResult",
    "analysis_plan",
    "analyze",
    "check_analysis_data",
    "default_horizons",
]

BUILTIN_SUITE = (
    "siptw",
    "psm",
    "naive_cox",
    "adjusted_cox",
    "ps_cox",
    "ps_spline_cox",
    "ps_strata_cox",
    "iptw_km",
    "matched_km",
)
"""The registered built-ins :func:`analyze` runs by default, each over its option grid."""

KM_WEIGHTINGS = ("unadjusted", "ATE", "ATT", "ATO", "matched")
"""The Kaplan-Meier curves per arm in :attr:`AnalysisResult.km`."""

TREATMENT = "_treated"
"""Name of the 0/1 treatment column of the validated frame :func:`analyze` works on."""

_RECORD_COLUMNS = tuple(
    f.name for f in dataclasses.fields(EffectEstimate) if f.name not in ("method", "diagnostics")
)
_HR_COLUMNS = ("hr", "hr_ci_low", "hr_ci_high")
_AFTER_CI = _RECORD_COLUMNS.index("ci_high") + 1
ESTIMATE_COLUMNS = (
    "estimator",
    "options",
    *_RECORD_COLUMNS[:_AFTER_CI],
    *_HR_COLUMNS,
    *_RECORD_COLUMNS[_AFTER_CI:],
)
"""The estimates table's columns: the :class:`EffectEstimate` fields (``method`` is the
``estimator`` column) with the hazard-ratio scale after the CI, and the options text."""


# ---- validation ------------------------------------------------------------------------
def _first_bad(mask: np.ndarray, values: Any) -> str:
    i = int(np.flatnonzero(mask)[0])
    v = values[i]
    return f"{int(mask.sum())} value(s), first at row {i}: {v!r}"


def _column(df: pd.DataFrame, col: str, param: str) -> pd.Series:
    s = df[col]
    if not isinstance(s, pd.Series):  # pragma: no cover (duplicate names are caught first)
        raise EstimatorInputError(f"{param}={col!r} names more than one column of df")
    return s


def _missing(s: pd.Series, param: str, col: str) -> None:
    bad = s.isna().to_numpy()
    if bad.any():
        raise EstimatorInputError(
            f"{param}={col!r} has missing values (NaN) in {_first_bad(bad, s.to_numpy())}; "
            "drop or impute those rows first"
        )


def _numeric(s: pd.Series, param: str, col: str) -> np.ndarray:
    if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
        raise EstimatorInputError(f"{param}={col!r} must be numeric, got dtype {s.dtype}")
    x = numeric_values(s)
    bad = ~np.isfinite(x)
    if bad.any():
        raise EstimatorInputError(
            f"{param}={col!r} has infinite values in {_first_bad(bad, x)}; values must be finite"
        )
    return x


def _same(value: object, treated: object) -> bool:
    """``treated`` names ``value``: equal, equal as text, or equal as numbers ("2" and 2.0)."""
    if value == treated or str(value) == str(treated):
        return True
    try:
        return float(value) == float(treated)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _treatment(s: pd.Series, col: str, treated: object) -> np.ndarray:
    _missing(s, "treatment", col)
    levels = pd.unique(s)
    if len(levels) != 2:
        shown = sorted(map(str, levels))[:10]
        raise EstimatorInputError(
            f"treatment={col!r} has {len(levels)} distinct value(s) {shown}; it must take "
            "exactly two (treated and control)"
        )
    if treated is None:
        if pd.api.types.is_bool_dtype(s):
            return s.to_numpy(dtype=bool).astype(np.float64)
        if pd.api.types.is_numeric_dtype(s) and set(numeric_values(s)) == {0.0, 1.0}:
            return numeric_values(s)
        raise EstimatorInputError(
            f"treatment={col!r} takes the values {sorted(map(str, levels))}, not 0/1; say "
            "which is the treated arm with treated= (rwesim analyze --treated)"
        )
    hit = [v for v in levels if _same(v, treated)]
    if not hit:
        raise EstimatorInputError(
            f"treated={treated!r} is not a value of treatment={col!r}; its values are "
            f"{sorted(map(str, levels))}"
        )
    return (s == hit[0]).to_numpy(dtype=np.float64)


def _covariate(s: pd.Series, col: str) -> pd.Series:
    _missing(s, "covariates", col)
    if not is_categorical(s):
        _numeric(s, "covariates", col)
    levels = pd.unique(s)
    if len(levels) < 2:
        raise EstimatorInputError(
            f"covariates={col!r} has a single level (every value {levels[0]!r}); drop it: "
            "a constant cannot be adjusted for"
        )
    return s


def check_analysis_data(
    df: pd.DataFrame,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    treated: object = None,
) -> pd.DataFrame:
    """Validate a cohort for :func:`analyze`; return the analysis frame.

    Checks, in this order, each failing with one :class:`EstimatorInputError` that names
    the column: ``df`` is a non-empty DataFrame with unique column names; every named
    column exists; no covariate repeats or is the time / event / treatment column;
    ``time`` is numeric, without NaN, finite and **strictly positive** (a zero follow-up
    is rejected: no Cox or Kaplan-Meier risk set can hold it, and it is usually a
    data-cut artefact; drop those rows or set them to a small positive value
    deliberately); ``event`` is 0/1 without NaN and has at least one event;
    ``treatment`` has no NaN and exactly two values (0/1 or booleans, else ``treated``
    names the treated value); each covariate has no NaN, is numeric (finite) or
    categorical (object / string / category), and has at least two distinct values.

    Returns
    -------
    DataFrame
        Columns ``time``, ``event`` (float64), :data:`TREATMENT` (0.0 / 1.0) and the
        covariates as given, in ``df``'s row order (a fresh RangeIndex).
    """
    if not isinstance(df, pd.DataFrame):
        raise EstimatorInputError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    dup = df.columns[df.columns.duplicated()].unique()
    if len(dup):
        raise EstimatorInputError(
            f"df has duplicate column names {list(dup)}; every column name must be unique"
        )
    if len(df) == 0:
        raise EstimatorInputError("df has no rows; at least one patient per arm is required")
    covs = check_covariates(covariates)
    for param, cols in (("time", [time]), ("event", [event]), ("treatment", [treatment])):
        for c in cols:
            if not isinstance(c, str) or c not in df.columns:
                raise EstimatorInputError(
                    f"{param}={c!r} is not a column of df; columns are {list(df.columns)}"
                )
    for c in covs:
        if c not in df.columns:
            raise EstimatorInputError(
                f"covariates: {c!r} is not a column of df; columns are {list(df.columns)}"
            )
        if c in (time, event, treatment):
            raise EstimatorInputError(
                f"covariates: {c!r} is the time, event or treatment column; it cannot be "
                "adjusted for"
            )
    s = _column(df, time, "time")
    _missing(s, "time", time)
    t = check_times(_numeric(s, "time", time), f"time={time!r}")
    s = _column(df, event, "event")
    _missing(s, "event", event)
    e = check_events(_numeric(s, "event", event), f"event={event!r}")
    a = _treatment(_column(df, treatment, "treatment"), treatment, treated)
    out = {"time": t, "event": e.astype(np.float64), TREATMENT: a}
    for c in covs:
        out[c] = _covariate(_column(df, c, "covariates"), c).reset_index(drop=True)
    return pd.DataFrame(out)


# ---- the plan --------------------------------------------------------------------------
def default_horizons(time: np.ndarray, treatment: np.ndarray) -> tuple[float, ...]:
    """One horizon: the median observed time, rounded down to two significant digits and
    capped at the shorter arm's last observed time."""
    last = min(float(time[treatment == 1].max()), float(time[treatment == 0].max()))
    h = min(float(np.median(time)), last)
    digits = 1 - math.floor(math.log10(h))
    h_round = math.floor(h * 10**digits) / 10**digits
    return (h_round if h_round > 0 else h,)


def analysis_plan(
    estimators: Sequence[str] = BUILTIN_SUITE,
    horizons: Sequence[float] = (24.0,),
    n_boot: int = 200,
    seed: int = 0,
) -> list[tuple[str, dict[str, Any]]]:
    """The fits :func:`analyze` runs: ``(estimator name, options)`` in table order.

    ==============  ===========================================================
    estimator       options
    ==============  ===========================================================
    siptw           every estimand (ATE, ATT, ATC, ATO, ATM) x every variance
                    (robust, mestimation, naive, bootstrap)
    psm             every variance (cluster, austin-cafri, bootstrap); and the
                    matched-set-stratified fit (``strata=True``, conditional)
    naive_cox,      default options
    adjusted_cox
    ps_cox, ...     the PS-adjusted controls, model-based and robust SE
    iptw_km         RMST and survival differences at each horizon, ATE and ATT
                    weights, SE with and without the PS-estimation term
    matched_km      RMST and survival differences at each horizon
    ==============  ===========================================================

    Any other registered estimator runs once with its default options.  Every random
    choice (matching order, bootstrap resamples) is seeded by ``seed``.
    """
    boot = {"n_boot": n_boot, "random_state": seed}
    plan: list[tuple[str, dict[str, Any]]] = []
    for name in estimators:
        if name == "siptw":
            for est in WEIGHT_ESTIMANDS:
                for var in VARIANCES:
                    plan.append((name, {"estimand": est, "variance": var}))
                    if var == "bootstrap":
                        plan[-1][1].update(boot)
        elif name == "psm":
            for var in MATCH_VARIANCES:
                opts: dict[str, Any] = {"variance": var, "random_state": seed}
                plan.append((name, opts | (boot if var == "bootstrap" else {})))
            plan.append((name, {"strata": True, "random_state": seed}))
        elif name in ("ps_cox", "ps_spline_cox", "ps_strata_cox"):
            plan += [(name, {"robust": False}), (name, {"robust": True})]
        elif name == "iptw_km":
            for h in horizons:
                for measure in ("rmst_diff", "surv_diff"):
                    for est in ("ATE", "ATT"):
                        for var in ("if", "if-fixed-ps"):
                            opts = {"measure": measure, "horizon": h, "estimand": est}
                            plan.append((name, opts | {"variance": var}))
        elif name == "matched_km":
            for h in horizons:
                for measure in ("rmst_diff", "surv_diff"):
                    plan.append((name, {"measure": measure, "horizon": h, "random_state": seed}))
        else:
            plan.append((name, {}))
    return plan


def _options_text(options: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in options.items() if k not in ("random_state", "horizon", "measure")}
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())


# ---- the result ------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class AnalysisResult:
    """What :func:`analyze` computed on one cohort.

    Attributes
    ----------
    estimates : DataFrame
        One row per fit, columns :data:`ESTIMATE_COLUMNS` (``horizon`` NaN for log-HR
        rows; ``hr`` and its CI NaN for the others; ``error`` empty unless it failed).
    balance : DataFrame
        Columns ``covariate`` (design column, every level of a categorical: ``c[l]``),
        ``source`` (the covariate), ``adjustment`` (``unadjusted``, ``ATE`` ...
        ``ATM``, ``matched``), ``mean_treated``, ``mean_control``, ``smd``,
        ``var_ratio``; the SMD denominator is the unadjusted pooled SD
        (:mod:`estimators.balance`).
    patients : DataFrame
        One row per input row: ``treatment`` (0/1), ``ps``, ``logit``, ``w_ATE`` ...
        ``w_ATM`` (stabilized weights), ``w_matched`` (1 matched, 0 not).
    km : DataFrame
        Columns ``weighting`` (:data:`KM_WEIGHTINGS`), ``arm`` (0 control, 1 treated),
        ``time``, ``survival``, ``at_risk``, ``events`` (weighted).
    propensity : PropensityModel
        The logistic PS fit every estimator shares.
    fits : tuple of EffectEstimate
        The records behind ``estimates`` (their diagnostics included).
    info : dict
        ``time``, ``event``, ``treatment``, ``treated``, ``covariates``, ``n``,
        ``events``, ``treated_n``, ``horizons``, ``seed``, ``n_boot``.
    """

    estimates: pd.DataFrame
    balance: pd.DataFrame
    patients: pd.DataFrame
    km: pd.DataFrame
    propensity: PropensityModel
    fits: tuple[EffectEstimate, ...]
    info: dict[str, Any] = field(default_factory=dict)


def _row(name: str, options: Mapping[str, Any], r: EffectEstimate) -> dict[str, Any]:
    row: dict[str, Any] = {"estimator": name, "options": _options_text(options)}
    row.update((c, getattr(r, c)) for c in _RECORD_COLUMNS)
    row["warnings"] = "; ".join(r.warnings)
    is_hr = r.measure == "log_hr" and math.isfinite(r.estimate)
    for c, v in zip(_HR_COLUMNS, (r.estimate, r.ci_low, r.ci_high), strict=True):
        row[c] = math.exp(v) if is_hr and math.isfinite(v) else math.nan
    return row


def _run(est, data, covariates, shared, options) -> EffectEstimate:
    """One fit; any exception becomes a failed record (project warnings recorded)."""
    kwargs = dict(options)
    if "shared" in est.accepts:
        kwargs["shared"] = shared
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            r = est(data, "time", "event", TREATMENT, list(covariates), **kwargs)
            error = ""
        except Exception as exc:  # a failed fit is a row, not a crash
            error = f"{type(exc).__name__}: {exc}"
    ours = []
    for w in caught:
        if issubclass(w.category, EstimatorWarning):
            ours.append(str(w.message))
        else:  # not ours: to the normal filters
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if error:
        effect = {k: options[k] for k in ("measure", "horizon") if k in options}
        try:
            return EffectEstimate.failed(
                est.name, est.estimand, error, warnings=tuple(dict.fromkeys(ours)), **effect
            )
        except EstimatorInputError:
            return EffectEstimate.failed(est.name, est.estimand, error)
    extra = tuple(dict.fromkeys(m for m in ours if m not in r.warnings))
    if extra:
        from dataclasses import replace

        r = replace(r, warnings=(*r.warnings, *extra))
    return r


def _balance_design(data: pd.DataFrame, covariates: Sequence[str]):
    """Every covariate level as its own column (reference levels included)."""
    cols, names, sources = [], [], []
    for c in covariates:
        s = data[c]
        if is_categorical(s):
            if isinstance(s.dtype, pd.CategoricalDtype):
                codes, levels = s.cat.codes.to_numpy(), s.cat.categories
            else:
                codes, levels = pd.factorize(s, sort=True)
            for k in np.flatnonzero(np.bincount(codes, minlength=len(levels))):
                cols.append((codes == k).astype(np.float64))
                names.append(f"{c}[{levels[k]}]")
                sources.append(c)
        else:
            cols.append(numeric_values(s))
            names.append(c)
            sources.append(c)
    X = np.column_stack(cols) if cols else np.empty((len(data), 0))
    return X, names, sources


def _balance(X, names, sources, a, adjustments: Mapping[str, np.ndarray | None]) -> pd.DataFrame:
    frames = []
    for label, w in adjustments.items():
        b = balance_arrays(X, a, w)
        sfx = "" if w is None else "_after"
        frames.append(
            pd.DataFrame(
                {
                    "covariate": names,
                    "source": sources,
                    "adjustment": label,
                    "mean_treated": b["mean_treated" + sfx],
                    "mean_control": b["mean_control" + sfx],
                    "smd": b["smd" + sfx],
                    "var_ratio": b["var_ratio" + sfx],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _km(data: pd.DataFrame, a: np.ndarray, weights: Mapping[str, np.ndarray]) -> pd.DataFrame:
    t, e = data["time"].to_numpy(), data["event"].to_numpy()
    frames = []
    for label, w in weights.items():
        for arm in (0, 1):
            s = (a == arm) & (w > 0)
            if not s.any():
                continue
            km = _kaplan_meier(t[s], e[s], w[s], 0.05)
            frames.append(
                pd.DataFrame(
                    {
                        "weighting": label,
                        "arm": arm,
                        "time": km.time,
                        "survival": km.survival,
                        "at_risk": km.at_risk,
                        "events": km.events,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def analyze(
    df: pd.DataFrame,
    time: str,
    event: str,
    treatment: str,
    covariates: Sequence[str],
    *,
    estimators: Sequence[str] | None = None,
    horizons: Sequence[float] | None = None,
    treated: object = None,
    n_boot: int = 200,
    seed: int = 0,
) -> AnalysisResult:
    """Run every built-in estimator and variance option on one cohort.

    Parameters
    ----------
    df : DataFrame
        One row per patient.
    time, event, treatment : str
        Column names: follow-up (> 0; months in the docs, any unit works), event
        (0/1), treatment (two values: 0/1, booleans, or any two with ``treated``).
    covariates : sequence of str
        Confounders: numeric columns enter linearly, categorical (object / string /
        category) columns are one-hot coded against their first level.
    estimators : sequence of str, optional
        Registered estimator names (default :data:`BUILTIN_SUITE`); a built-in runs over
        its option grid (:func:`analysis_plan`), any other once with its defaults.
    horizons : sequence of float, optional
        Horizons of the RMST and survival differences (time unit of ``time``), each
        > 0; default :func:`default_horizons`.  A horizon beyond an arm's follow-up
        gives failed KM rows, not an error.
    treated : scalar, optional
        The treated value of a treatment column that is not 0/1.
    n_boot : int
        Bootstrap resamples of the bootstrap variances (>= 2).
    seed : int
        Seed of the matching order and the bootstrap resamples (>= 0).

    Returns
    -------
    AnalysisResult

    Raises
    ------
    EstimatorInputError
        Bad data or arguments, before any fit (see :func:`check_analysis_data`), or a
        propensity model that cannot be fitted (separation, collinearity): every
        weighting and matching needs it.
    """
    n_boot = check_n_boot(n_boot)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise EstimatorInputError(f"seed={seed!r} is not allowed; use an int >= 0")
    seed = int(seed)
    names = tuple(BUILTIN_SUITE if estimators is None else estimators)
    if isinstance(estimators, str) or not names:
        raise EstimatorInputError(
            f"estimators={estimators!r} is not allowed; give a non-empty list of names"
        )
    ests = {n: get_estimator(n) for n in names}  # unknown names fail here, before any work
    data = check_analysis_data(df, time, event, treatment, covariates, treated)
    covs = tuple(covariates)
    a = data[TREATMENT].to_numpy().astype(np.int8)
    if horizons is None:
        horizons = default_horizons(data["time"].to_numpy(), a)
    else:
        if isinstance(horizons, str | int | float):
            horizons = (horizons,)
        hs = []
        for h in horizons:
            if isinstance(h, bool) or not isinstance(h, int | float | np.integer | np.floating):
                raise EstimatorInputError(f"horizons: {h!r} is not a number; give times > 0")
            if not (math.isfinite(h) and h > 0):
                raise EstimatorInputError(f"horizons: {h!r} is not allowed; give times > 0")
            hs.append(float(h))
        horizons = tuple(hs)
    shared = SharedInputs(data, TREATMENT, covs)
    model = shared.propensity(covs)  # raises the PS fit's user error, before any estimator
    fits, rows = [], []
    for name, options in analysis_plan(names, horizons, n_boot, seed):
        r = _run(ests[name], data, covs, shared, options)
        fits.append(r)
        rows.append(_row(name, options, r))
    estimates = pd.DataFrame(rows, columns=list(ESTIMATE_COLUMNS))

    weights = {e: iptw_weights_from_logit(model.logit, a, e) for e in WEIGHT_ESTIMANDS}
    matching: Matching = match_pairs(model.logit, a, caliper=0.2, random_state=seed)
    matched = matching.unit_weights(a.size)
    X, bnames, sources = _balance_design(data, covs)
    balance = _balance(X, bnames, sources, a, {"unadjusted": None, **weights, "matched": matched})
    patients = pd.DataFrame(
        {
            "treatment": a,
            "ps": model.ps,
            "logit": model.logit,
            **{f"w_{e}": w for e, w in weights.items()},
            "w_matched": matched,
        }
    )
    km = _km(
        data,
        a,
        {
            "unadjusted": np.ones(a.size),
            **{e: weights[e] for e in ("ATE", "ATT", "ATO")},
            "matched": matched,
        },
    )
    info = {
        "time": time,
        "event": event,
        "treatment": treatment,
        "treated": treated,
        "covariates": covs,
        "n": int(a.size),
        "events": int(data["event"].sum()),
        "treated_n": int(a.sum()),
        "horizons": horizons,
        "seed": seed,
        "n_boot": n_boot,
    }
    return AnalysisResult(estimates, balance, patients, km, model, tuple(fits), info)
