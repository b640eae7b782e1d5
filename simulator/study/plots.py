"""Figures of a simulation study: estimate distributions, zip plots, nested-loop plots.

Every function builds a :class:`matplotlib.figure.Figure` on an Agg canvas and returns
it; nothing touches pyplot's global state.  :func:`save_figure` writes one to disk and
:func:`plot_study` draws every figure of a results directory.

The figures use the performance table's default denominator
(:mod:`simulator.study.performance`): replicates whose fit failed (non-finite estimate or
SE, or SE <= 0) are left out, finite fits flagged as not converged are drawn, and how
many of each there were is printed in the figure.  Every figure shows one effect measure
(``measure``, default ``"log_hr"``; ``horizon`` for RMST / survival differences).  In
titles ``n=`` is patients per replicate; replicates are counted as "reps".  Monte Carlo
intervals of coverage use the Wilson interval (never outside [0, 1]).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from estimators.estimands import ESTIMANDS, SCORED_AGAINST, scored_against

from .. import _checks as ck
from . import record
from .exceptions import StudyError
from .performance import MEASURES, SHARES, summarize, wilson_interval
from .report import ESTIMATOR_NAMES
from .spec import OUTCOME_NAMES
from .store import Store

DPI = 120
Z95 = 1.959963984540054
TRUTH_ESTIMANDS = tuple(e for e in ESTIMANDS if e not in SCORED_AGAINST)  # with a truth
ESTIMAND_COLOURS = dict(
    zip(
        TRUTH_ESTIMANDS,
        ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#e6ab02", "#666666"),
        strict=True,
    )
)
EFFECT_LABELS = {  # axis label of an effect measure (docs/design.md §3)
    "log_hr": "log-HR",
    "rmst_diff": "RMST difference (months)",
    "surv_diff": "survival difference",
    "median_diff": "median difference (months)",
    "risk_diff": "response risk difference",
    "log_or": "response log-OR",
}
COVER_COLOUR, MISS_COLOUR = "#4477aa", "#cc3311"
ESTIMATOR_COLOURS = ("#0072b2", "#e69f00", "#555555", "#009e73", "#cc79a7", "#56b4e9")
ESTIMATOR_LINE_STYLES = ("-", "--", ":", "-.")
REFERENCE = {
    "bias": 0.0,
    "rel_bias_hr": 0.0,
    "relerr_modse": 0.0,
    "coverage": 0.95,
    "be_coverage": 0.95,
}
MEASURE_LABELS = {
    "bias": "bias ({})",
    "rel_bias_hr": "relative bias of the HR (%)",
    "empse": "empirical SE ({})",
    "mse": "mean squared error ({}²)",
    "modse": "model SE ({})",
    "relerr_modse": "relative error of model SE (%)",
    "coverage": "coverage of the 95% CI",
    "be_coverage": "bias-eliminated coverage",
    "power": "power (share p < α)",
}
RESULT_COLUMNS = record.FIGURE_COLUMNS
TRUTH_COLUMNS = tuple(c for c in record.TRUTH_COLUMNS if c != "theta_mcse")


def measure_label(measure: str, effect: str = "log_hr") -> str:
    """Axis label of a performance measure of estimates of ``effect``."""
    unit = EFFECT_LABELS.get(effect, effect).split(" (")[-1].rstrip(")")
    unit = "log-HR" if effect == "log_hr" else unit
    return MEASURE_LABELS[measure].format(unit)


# ---- small helpers ------------------------------------------------------------------------
def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write ``fig`` (format from the suffix, e.g. ``.png``); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=dpi)
    return p


def _need_columns(df: pd.DataFrame, param: str, columns: Sequence[str]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise StudyError(f"{param} must be a pandas DataFrame, not {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise StudyError(f"{param} is missing column(s) {missing}; it needs {list(columns)}")


def _for_effect(df: pd.DataFrame, measure: str, horizon: float | None) -> pd.DataFrame:
    """Rows of one effect measure (and horizon, when it has one)."""
    ck.choice(measure, "measure", sorted(df["measure"].unique()))
    rows = df[df["measure"] == measure]
    h = rows["horizon"].astype(float)
    present = sorted(float(x) for x in h.dropna().unique())
    if horizon is None:
        if len(present) > 1:
            raise StudyError(
                f"horizon=None is not allowed: measure {measure!r} has horizons {present}; pick one"
            )
        return rows
    if horizon not in present:
        raise StudyError(f"horizon={horizon!r} is not allowed; the results hold {present}")
    return rows[h == float(horizon)]


def _for_outcome(df: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """Rows of one outcome; StudyError naming the outcomes ``df`` holds otherwise."""
    ck.choice(outcome, "outcome", sorted(df["outcome"].unique()))
    return df[df["outcome"] == outcome]


def _condition_ref(c: Any, available: Sequence[int], param: str) -> tuple[int, str]:
    """(index, label) of a condition given as an int or a run.json condition dict."""
    index = c.get("index") if isinstance(c, Mapping) else c
    if isinstance(index, bool) or not isinstance(index, int | np.integer) or index not in available:
        raise StudyError(
            f"{param}={index!r} is not allowed: no such condition; the results hold conditions "
            f"{sorted(int(a) for a in available)}"
        )
    label = c.get("label") if isinstance(c, Mapping) else None
    return int(index), str(label or f"condition {index}")


def _usable(rows: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """(rows drawn, failed fits left out, non-converged fits among those drawn) -- the
    default denominator of performance()."""
    est, se = rows["estimate"].to_numpy(float), rows["se"].to_numpy(float)
    ok = np.isfinite(est) & np.isfinite(se) & (se > 0)
    conv = rows["converged"].to_numpy(bool)
    return rows[ok], int((~ok).sum()), int((ok & ~conv).sum())


def _excluded(failed: int, nonconverged: int) -> str:
    parts = [f"{failed} failed (left out)"] * bool(failed) + [
        f"{nonconverged} not converged (drawn)"
    ] * bool(nonconverged)
    return ", ".join(parts)


def _fits_note(notes: list[str]) -> str:
    return "fits: " + ("; ".join(notes) if notes else "all usable")


def _display(estimator: str) -> str:
    return ESTIMATOR_NAMES.get(estimator, estimator)


def _estimators(names: Sequence[str]) -> list[str]:
    """Known estimators in their usual order, then the others alphabetically."""
    known = list(ESTIMATOR_NAMES)
    present = set(names)
    return [e for e in known if e in present] + sorted(present - set(known))


def _colour(estimator: str, order: Sequence[str]) -> str:
    return ESTIMATOR_COLOURS[list(order).index(estimator) % len(ESTIMATOR_COLOURS)]


def _line_style(estimator: str, order: Sequence[str]) -> str:
    """Solid for the first six estimators, then dashed, dotted, ...: with variants a study
    can have more estimators than colours, and no two lines look alike."""
    styles = ESTIMATOR_LINE_STYLES
    return styles[(list(order).index(estimator) // len(ESTIMATOR_COLOURS)) % len(styles)]


def _theta(
    truths: pd.DataFrame,
    condition: int,
    outcome: str,
    estimand: str,
    measure: str = "log_hr",
    horizon: float = math.nan,
) -> float:
    """True value of the estimand an estimate is scored against (``crude``: the ATE's);
    NaN if absent."""
    sel = truths[(truths["condition"] == condition) & (truths["outcome"] == outcome)]
    sel = sel[sel["measure"] == measure]
    h = sel["horizon"].astype(float)
    sel = sel[h.isna()] if math.isnan(horizon) else sel[h == horizon]
    hit = sel.loc[sel["estimand"] == scored_against(estimand), "theta"]
    return float(hit.iloc[0]) if len(hit) else math.nan


def _grid(fig: Figure, k: int, *, sharex: bool = False) -> list[Axes]:
    """``k`` panels in up to two columns (unused cells removed, inner tick labels hidden)."""
    ncols = 1 if k == 1 else 2
    nrows = math.ceil(k / ncols)
    axes = list(fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=True).ravel())
    for ax in axes[k:]:
        ax.remove()
    for i, ax in enumerate(axes[:k]):
        ax.tick_params(labelbottom=not sharex or i + ncols >= k, labelleft=i % ncols == 0)
    return axes[:k]


def _label_outer(axes: Sequence[Axes], xlabel: str | None, ylabel: str) -> None:
    """Axis labels on the left column (y) and on panels with nothing below them (x)."""
    ncols = 1 if len(axes) == 1 else 2
    for i, ax in enumerate(axes):
        if i % ncols == 0:
            ax.set_ylabel(ylabel)
        if xlabel is not None and i + ncols >= len(axes):
            ax.set_xlabel(xlabel)


def _wrap(text: str, inches: float, fontsize: float = 8) -> str:
    """Wrap a note to a width in inches (about 0.55 em per character)."""
    return textwrap.fill(text, width=max(40, int(inches * 72 / (0.55 * fontsize))))


# ---- 1. distributions of the estimates ----------------------------------------------------
def estimate_distributions(
    results: pd.DataFrame,
    truths: pd.DataFrame,
    conditions: Sequence[Mapping[str, Any] | int],
    outcome: str,
    measure: str = "log_hr",
    horizon: float | None = None,
) -> Figure:
    """Distribution of the estimates of every estimator, one panel per condition.

    Each estimator gets a violin, a narrow box (median, quartiles) and its replicates as
    points; a short thick line marks the truth of its own estimand (``crude`` is scored
    against the ATE) and dashed lines across the panel mark the conditional, ATE and ATT
    truths.

    Parameters
    ----------
    results : DataFrame
        The store's long results table (``Store.read_results()``).
    truths : DataFrame
        ``Store.truths()``: condition, outcome, estimand, theta.
    conditions : sequence of dict or int
        Conditions to draw (``run.json`` entries with ``index`` and ``label``, or indices).
    outcome : str
        ``"pfs"`` or ``"os"`` (any outcome present in ``results``).
    measure, horizon : str, float, optional
        Effect measure to draw (default ``"log_hr"``) and its horizon (months) when the
        results hold several.
    """
    _need_columns(results, "results", RESULT_COLUMNS)
    _need_columns(truths, "truths", TRUTH_COLUMNS)
    rows = _for_effect(_for_outcome(results, outcome), measure, horizon)
    refs = _condition_list(conditions, rows)
    fig = _new_figure(6.4 if len(refs) == 1 else 11.5, 0.6 + 3.9 * math.ceil(len(refs) / 2))
    axes = _grid(fig, len(refs))
    for i, (ax, (index, label)) in enumerate(zip(axes, refs, strict=True)):
        _distribution_panel(ax, rows[rows["condition"] == index], truths, index, outcome)
        ax.set_title(label, fontsize=10)
        if measure == "log_hr" and (i % 2 == 1 or len(refs) == 1):
            ax.secondary_yaxis("right", functions=(np.exp, _safe_log)).set_ylabel("HR")
    effect = _effect_name(rows)
    _label_outer(axes, None, f"{effect} estimate")
    fig.suptitle(f"{OUTCOME_NAMES.get(outcome, outcome)}: {effect} estimates by estimator")
    fig.legend(
        handles=_truth_legend(effect),
        loc="outside lower center",
        ncols=2 if len(refs) == 1 else 4,
        fontsize=8,
        frameon=False,
    )
    return fig


def _effect_name(rows: pd.DataFrame) -> str:
    """Axis name of the rows' effect measure (with its horizon)."""
    measure = str(rows["measure"].iloc[0]) if len(rows) else "log_hr"
    h = rows["horizon"].astype(float).dropna()
    at = f" at {h.iloc[0]:g} months" if len(h) else ""
    return EFFECT_LABELS.get(measure, measure) + at


def _condition_list(conditions: Any, rows: pd.DataFrame) -> list[tuple[int, str]]:
    if isinstance(conditions, Mapping | int) or not isinstance(conditions, Sequence):
        conditions = [conditions]
    if not conditions:
        raise StudyError("conditions=[] is not allowed; give at least one condition")
    available = sorted(rows["condition"].unique())
    return [_condition_ref(c, available, f"conditions[{i}]") for i, c in enumerate(conditions)]


def _distribution_panel(
    ax: Axes, rows: pd.DataFrame, truths: pd.DataFrame, condition: int, outcome: str
) -> None:
    order = _estimators(rows["estimator"].unique())
    jitter = np.random.default_rng(0)
    ticks, notes = [], []
    for i, est in enumerate(order):
        g = rows[rows["estimator"] == est]
        kept, failed, nonconv = _usable(g)
        v = kept["estimate"].to_numpy(float)
        estimand = str(g["estimand"].iloc[0])
        measure, horizon = str(g["measure"].iloc[0]), float(g["horizon"].iloc[0])
        colour = ESTIMAND_COLOURS.get(scored_against(estimand), "0.4")
        if np.unique(v).size >= 2:
            body = ax.violinplot([v], positions=[i], widths=0.75, showextrema=False)["bodies"][0]
            body.set(facecolor=colour, edgecolor=colour, alpha=0.25)
        if v.size:
            ax.boxplot(
                [v],
                positions=[i],
                widths=0.12,
                showfliers=False,
                manage_ticks=False,
                medianprops={"color": "black"},
                whiskerprops={"color": "0.3"},
                capprops={"color": "0.3"},
                boxprops={"color": "0.3"},
            )
            ax.scatter(
                i + jitter.uniform(-0.22, 0.22, v.size),
                v,
                s=5,
                color="0.25",
                alpha=0.35,
                linewidths=0,
                zorder=3,
            )
        theta = _theta(truths, condition, outcome, estimand, measure, horizon)
        ax.hlines(
            theta, i - 0.42, i + 0.42, colors=colour, linewidths=3, zorder=5, gid=f"own-truth:{est}"
        )
        versus = f" (scored vs {SCORED_AGAINST[estimand]})" if estimand in SCORED_AGAINST else ""
        ticks.append(f"{_display(est)}\n{estimand}{versus}\n{v.size} reps")
        if failed or nonconv:
            notes.append(f"{_display(est)}: {_excluded(failed, nonconv)}")
    measure = str(rows["measure"].iloc[0])
    horizon = float(rows["horizon"].iloc[0])
    for estimand in TRUTH_ESTIMANDS:
        theta = _theta(truths, condition, outcome, estimand, measure, horizon)
        if math.isfinite(theta):
            ax.axhline(
                theta,
                color=ESTIMAND_COLOURS[estimand],
                ls="--",
                lw=0.9,
                alpha=0.9,
                zorder=1,
                gid=f"truth:{estimand}",
            )
    ax.set_xticks(range(len(order)), ticks, fontsize=8)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_xlabel(_wrap(_fits_note(notes), 4.8), fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def _safe_log(hr: np.ndarray) -> np.ndarray:
    return np.log(np.clip(hr, 1e-300, None))


def _truth_legend(effect: str = "log-HR") -> list[Line2D]:
    handles = [
        Line2D([], [], color=ESTIMAND_COLOURS[e], ls="--", label=f"true {e} {effect}")
        for e in ("conditional", "ATE", "ATT")
    ]
    handles.append(Line2D([], [], color="0.2", lw=3, label="truth of the estimator's estimand"))
    return handles


# ---- 2. zip plot --------------------------------------------------------------------------
def zip_plot(
    results: pd.DataFrame,
    truths: pd.DataFrame,
    condition: Mapping[str, Any] | int,
    outcome: str,
    measure: str = "log_hr",
    horizon: float | None = None,
) -> Figure:
    """Zip plot (Morris, White & Crowther 2019, Fig. 4) of every estimator in one condition.

    Each replicate's 95% CI is a horizontal line at the fractional centile (0-100) of
    ``|z| = |estimate - theta| / se``; blue lines cover the estimator's truth ``theta``
    (vertical line), red ones miss it.  The dotted line is the 95th centile; the shaded
    band is the Monte Carlo 95% (Wilson) interval of the coverage, where blue turns to red.

    Parameters
    ----------
    results, truths : DataFrame
        As for :func:`estimate_distributions`.
    condition : dict or int
        A ``run.json`` condition entry (index and label) or a condition index.
    outcome : str
        An outcome present in ``results``.
    measure, horizon : str, float, optional
        As for :func:`estimate_distributions`.
    """
    _need_columns(results, "results", RESULT_COLUMNS)
    _need_columns(truths, "truths", TRUTH_COLUMNS)
    rows = _for_effect(_for_outcome(results, outcome), measure, horizon)
    index, label = _condition_ref(condition, sorted(rows["condition"].unique()), "condition")
    rows = rows[rows["condition"] == index]
    order = _estimators(rows["estimator"].unique())
    fig = _new_figure(5.2 if len(order) == 1 else 10.5, 0.8 + 3.6 * math.ceil(len(order) / 2))
    axes = _grid(fig, len(order), sharex=True)
    for ax, est in zip(axes, order, strict=True):
        g = rows[rows["estimator"] == est]
        estimand = str(g["estimand"].iloc[0])
        theta = _theta(
            truths, index, outcome, estimand, str(g["measure"].iloc[0]), float(g["horizon"].iloc[0])
        )
        _zip_panel(ax, g, theta)
        versus = f" scored vs {SCORED_AGAINST[estimand]}" if estimand in SCORED_AGAINST else ""
        ax.set_title(f"{_display(est)} ({estimand}{versus}), {ax.get_title()}", fontsize=9)
    _label_outer(axes, f"{_effect_name(rows)}, 95% CI", "centile of |z|")
    fig.suptitle(f"{OUTCOME_NAMES.get(outcome, outcome)}, {label}: zip plot of 95% CIs")
    fig.legend(
        handles=_zip_legend(), loc="outside lower center", ncols=4, fontsize=8, frameon=False
    )
    return fig


def zip_coverage(lo: np.ndarray, hi: np.ndarray, theta: float) -> tuple[np.ndarray, float, float]:
    """(covers per replicate, coverage, its Monte Carlo SE) of CIs ``[lo, hi]`` for ``theta``."""
    covers = (lo <= theta) & (theta <= hi)
    c = float(covers.mean()) if covers.size else math.nan
    return covers, c, math.sqrt(c * (1 - c) / covers.size) if covers.size else math.nan


def _zip_panel(ax: Axes, rows: pd.DataFrame, theta: float) -> None:
    kept, failed, nonconv = _usable(rows)
    n = len(kept)
    excluded = _excluded(failed, nonconv)
    tail = f"; {excluded}" if excluded else ""
    if n == 0 or not math.isfinite(theta):
        ax.set_title(f"no usable fits{tail}" if n == 0 else "no truth for this estimand")
        ax.set_ylim(0, 102)
        return
    est, se = kept["estimate"].to_numpy(float), kept["se"].to_numpy(float)
    lo, hi = kept["ci_low"].to_numpy(float), kept["ci_high"].to_numpy(float)
    covers, c, _ = zip_coverage(lo, hi, theta)
    centile = np.empty(n)
    centile[np.argsort(np.abs(est - theta) / se, kind="stable")] = 100.0 * np.arange(1, n + 1) / n
    lw = float(np.clip(220.0 / n, 0.3, 2.0))
    for mask, colour, gid in (
        (covers, COVER_COLOUR, "covering"),
        (~covers, MISS_COLOUR, "missing"),
    ):
        segs = np.stack(
            [
                np.column_stack([lo[mask], centile[mask]]),
                np.column_stack([hi[mask], centile[mask]]),
            ],
            axis=1,
        )
        ax.add_collection(LineCollection(segs, colors=colour, linewidths=lw, gid=gid))
    low, high = wilson_interval(c, n, Z95)
    ax.axhspan(
        100 * low, 100 * high, color="#ddaa33", alpha=0.35, lw=0, zorder=0, gid="coverage-mcci"
    )
    ax.axhline(95, color="black", ls=":", lw=1, gid="centile95")
    ax.axvline(theta, color="black", lw=1.2, gid="theta")
    ax.autoscale_view()
    ax.set_ylim(0, 102)  # room for the line at centile 100
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(
        f"{n} reps{tail}\ncoverage {100 * c:.1f}% "
        f"(MC 95% CI {100 * low:.1f} to {100 * high:.1f}, Wilson)"
    )


def _zip_legend() -> list[Any]:
    from matplotlib.patches import Patch

    return [
        Line2D([], [], color=COVER_COLOUR, label="CI covers the truth"),
        Line2D([], [], color=MISS_COLOUR, label="CI misses the truth"),
        Line2D([], [], color="black", ls=":", label="95th centile"),
        Patch(color="#ddaa33", alpha=0.35, label="coverage, Monte Carlo 95% CI (Wilson)"),
    ]


# ---- 3. nested-loop plot ------------------------------------------------------------------
def nested_loop_plot(
    summary: pd.DataFrame,
    conditions: Sequence[Mapping[str, Any]],
    measure: str = "bias",
    outcome: str = "pfs",
    order: Sequence[str] | None = None,
    effect: str = "log_hr",
    horizon: float | None = None,
) -> Figure:
    """Nested-loop plot (Rücker & Schwarzer 2014) of one performance measure.

    Conditions are sorted lexicographically by their factors (``order``, outermost
    first; default: scenario, the varied scenario parameters as given, then ``n``) and
    drawn side by side; each estimator's measure is a step line with error bars of
    +-1.96 MCSE (for shares -- coverage, power -- the Wilson 95% interval, within [0, 1]).
    Below, one small step line per factor that takes more than one level shows its level
    at each position.

    Parameters
    ----------
    summary : DataFrame
        ``performance.summarize`` output (condition, outcome, estimator, measures, ``*_mcse``,
        ``n_failed``, ``n_nonconverged``).
    conditions : sequence of dict
        ``run.json`` condition entries (index, scenario, n, factors).
    measure : str
        One of ``performance.MEASURES``.
    outcome : str
        An outcome present in ``summary``.
    order : sequence of str, optional
        Factor names, outermost loop first; factors not named follow in the default order.
    effect, horizon : str, float, optional
        The effect measure whose performance is drawn (default ``"log_hr"``; column
        ``measure`` of the summary) and its horizon.
    """
    ck.choice(measure, "measure", MEASURES)
    _need_columns(
        summary,
        "summary",
        (
            "condition",
            "outcome",
            "estimator",
            measure,
            f"{measure}_mcse",
            "n_failed",
            "n_nonconverged",
        ),
    )
    rows = _for_outcome(summary, outcome)
    if "measure" in rows:
        rows = _for_effect(rows, effect, horizon)
    levels = _factor_table(conditions, sorted(rows["condition"].unique()))
    names = _factor_order(levels, order)
    levels = levels.sort_values(names, key=lambda s: s.map(_level_key), kind="stable")
    varying = [f for f in names if levels[f].nunique() > 1]
    fig = _new_figure(max(7.0, 1.6 + 0.42 * len(levels)), 4.6 + 0.55 * len(varying))
    axes = fig.subplots(
        1 + len(varying),
        1,
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": [7] + [1.1] * len(varying)},
    )[:, 0]
    note = _measure_panel(axes[0], rows, list(levels.index), measure, effect)
    bars = "Monte Carlo 95% CI (Wilson)" if measure in SHARES else "±1.96 Monte Carlo SE"
    axes[0].set_title(
        _wrap(f"error bars: {bars}; {note}", fig.get_figwidth() - 1.8),
        fontsize=8,
        loc="left",
    )
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        loc="outside lower center",
        ncols=6,
        fontsize=8,
        frameon=False,
    )
    for ax, f in zip(axes[1:], varying, strict=True):
        _factor_panel(ax, levels[f], f)
    _separators(axes, levels[varying[0]] if varying else None)
    fixed = [f"{f}={_fmt(levels[f].iloc[0])}" for f in names if f not in varying]
    axes[-1].set_xticks(range(len(levels)), [str(i) for i in levels.index], fontsize=7)
    axes[-1].set_xlabel("condition (sorted by " + " > ".join(varying or names) + ")")
    fig.suptitle(
        f"{OUTCOME_NAMES.get(outcome, outcome)}: {measure_label(measure, effect)}"
        + (f"  [{', '.join(fixed)}]" if fixed else ""),
        fontsize=11,
    )
    return fig


def _factor_table(conditions: Any, available: Sequence[int]) -> pd.DataFrame:
    """One row per condition (indexed by condition index): scenario, varied factors, n."""
    if isinstance(conditions, Mapping) or not isinstance(conditions, Sequence) or not conditions:
        raise StudyError(
            "conditions must be a non-empty list of run.json condition entries "
            "(dicts with index, scenario, n, factors)"
        )
    records = {}
    for i, c in enumerate(conditions):
        if not isinstance(c, Mapping):
            raise StudyError(
                f"conditions[{i}]={c!r} is not allowed; give run.json condition entries (dicts)"
            )
        index, _ = _condition_ref(c, available, f"conditions[{i}]")
        records[index] = {
            "scenario": c.get("scenario", "?"),
            **dict(c.get("factors") or {}),
            "n": c.get("n"),
        }
    return pd.DataFrame.from_dict(records, orient="index")


def _factor_order(levels: pd.DataFrame, order: Sequence[str] | None) -> list[str]:
    default = list(levels.columns)
    given = [] if order is None else list(order)
    for f in given:
        ck.choice(f, "order[]", default)
    return given + [f for f in default if f not in given]


def _level_key(v: Any) -> tuple[int, float | str]:
    """Sort key: numbers numerically, before anything else (as text)."""
    if isinstance(v, int | float | np.number) and not isinstance(v, bool):
        return (0, float(v))
    return (1, str(v))


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _measure_panel(
    ax: Axes, rows: pd.DataFrame, order: list[int], measure: str, effect: str = "log_hr"
) -> str:
    """Step line and error bars (+-1.96 MCSE; Wilson for shares) per estimator; returns
    the fits note."""
    edges = np.arange(len(order) + 1) - 0.5
    estimators = _estimators(rows["estimator"].unique())
    offsets = 0.5 * (np.arange(len(estimators)) - (len(estimators) - 1) / 2) / len(estimators)
    notes = []
    for est, dx in zip(estimators, offsets, strict=True):
        g = rows[rows["estimator"] == est].set_index("condition").reindex(order)
        y, s = g[measure].to_numpy(float), g[f"{measure}_mcse"].to_numpy(float)
        colour = _colour(est, estimators)
        ax.stairs(
            y,
            edges,
            baseline=None,
            color=colour,
            ls=_line_style(est, estimators),
            lw=1.6,
            label=_display(est),
            gid=f"measure:{est}",
        )
        if measure in SHARES:
            n = g["n_sim"].to_numpy(float)
            lo_hi = np.array(
                [
                    wilson_interval(p, int(k), Z95) if k == k else (np.nan,) * 2
                    for p, k in zip(y, n, strict=True)
                ]
            ).reshape(-1, 2)
            yerr = np.clip(np.vstack([y - lo_hi[:, 0], lo_hi[:, 1] - y]), 0.0, None)
        else:
            yerr = Z95 * s
        ax.errorbar(
            np.arange(len(order)) + dx,
            y,
            yerr=yerr,
            fmt="o",
            ms=3,
            color=colour,
            elinewidth=1,
            capsize=2,
            gid=f"mcse:{est}",
        )
        failed, nonconv = int(g["n_failed"].sum()), int(g["n_nonconverged"].sum())
        if failed or nonconv:
            notes.append(f"{_display(est)} {_excluded(failed, nonconv)}")
    if measure in REFERENCE:
        ax.axhline(REFERENCE[measure], color="0.2", ls="--", lw=1, gid="reference")
    ax.set_ylabel(measure_label(measure, effect))
    ax.grid(axis="y", alpha=0.3)
    return _fits_note(notes)


def _factor_panel(ax: Axes, values: pd.Series, name: str) -> None:
    levels = sorted(values.unique(), key=_level_key)
    rank = values.map({v: i for i, v in enumerate(levels)}).to_numpy(float)
    ax.stairs(
        rank,
        np.arange(len(rank) + 1) - 0.5,
        baseline=None,
        color="black",
        lw=1.3,
        gid=f"factor:{name}",
    )
    ax.set_yticks(range(len(levels)), [_fmt(v) for v in levels], fontsize=7)
    ax.set_ylim(-0.5, len(levels) - 0.5)
    ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _separators(axes: Sequence[Axes], outer: pd.Series | None) -> None:
    """Faint vertical lines where the outermost varying factor changes level."""
    if outer is None:
        return
    v = outer.to_numpy()
    for pos in np.flatnonzero(v[1:] != v[:-1]) + 0.5:
        for ax in axes:
            ax.axvline(pos, color="0.75", lw=0.8, zorder=0)


# ---- 4. every figure of a results directory -----------------------------------------------
def plot_study(store_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write the PNG figures of a results directory; returns their paths.

    Per outcome (and effect measure; log-HR figures carry no measure in their names,
    others ``{outcome}-{measure}[{horizon}]-...``): ``{outcome}-distributions.png``,
    ``{outcome}-zip-c{index}.png`` per condition and, with more than one condition,
    ``{outcome}-nested-bias.png`` and ``{outcome}-nested-coverage.png``.
    """
    store = Store(Path(store_dir))
    meta = store.read_meta()
    results = store.read_results()
    if results.empty:
        raise StudyError(f"store_dir={str(store_dir)!r} holds no results yet")
    truths = store.truths()
    summary = summarize(results, truths)
    done = set(results["condition"].unique())
    conditions = [c for c in meta["conditions"] if c["index"] in done]
    present = set(results["outcome"])
    outcomes = [o for o in OUTCOME_NAMES if o in present] + sorted(present - set(OUTCOME_NAMES))
    effects = (
        results[["measure", "horizon"]]
        .drop_duplicates()
        .sort_values(["measure", "horizon"])
        .itertuples(index=False)
    )
    out = Path(out_dir)
    paths = []
    for measure, horizon in list(effects):
        h = None if math.isnan(horizon) else float(horizon)
        tag = "" if measure == "log_hr" else f"-{measure}{'' if h is None else f'{h:g}'}"
        kw = {"measure": measure, "horizon": h}
        for outcome in outcomes:
            name = f"{outcome}{tag}"
            jobs = [
                (
                    f"{name}-distributions",
                    lambda o=outcome, kw=kw: estimate_distributions(
                        results, truths, conditions, o, **kw
                    ),
                )
            ]
            jobs += [
                (
                    f"{name}-zip-c{c['index']:04d}",
                    lambda c=c, o=outcome, kw=kw: zip_plot(results, truths, c, o, **kw),
                )
                for c in conditions
            ]
            if len(conditions) > 1:
                jobs += [
                    (
                        f"{name}-nested-{m}",
                        lambda m=m, o=outcome, e=measure, h=h: nested_loop_plot(
                            summary, conditions, m, o, effect=e, horizon=h
                        ),
                    )
                    for m in ("bias", "coverage")
                ]
            paths += [save_figure(make(), out / f"{name}.png") for name, make in jobs]
    return paths
