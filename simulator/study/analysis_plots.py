"""Figures and the output folder of ``rwesim analyze`` (:func:`estimators.analysis.analyze`).

Four figures, each a :class:`matplotlib.figure.Figure` on an Agg canvas (no pyplot):

* :func:`love_plot`: the SMD of every covariate level before adjustment, after each
  weighting and after matching, with the customary 0.1 threshold;
* :func:`ps_overlap`: histograms of the propensity score by arm;
* :func:`km_plot`: Kaplan-Meier curves per arm, unadjusted, ATE-, ATT-, ATO-weighted
  and matched (one panel each);
* :func:`weight_plot`: the distribution of the stabilized weights of each weighting by
  arm (log scale).

:func:`write_analysis` writes the CSV tables and the PNGs to a folder.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from estimators.analysis import KM_WEIGHTINGS, AnalysisResult
from estimators.validation import WEIGHT_ESTIMANDS

from .exceptions import StudyError
from .plots import _new_figure, save_figure

ARM_COLOURS = {0: "#0072b2", 1: "#d55e00"}
ARM_LABELS = {0: "control", 1: "treated"}
ADJUSTMENT_STYLE = {  # marker, colour of each adjustment in the love plot
    "unadjusted": ("o", "#222222"),
    "ATE": ("s", "#1b9e77"),
    "ATT": ("^", "#d95f02"),
    "ATC": ("v", "#7570b3"),
    "ATO": ("D", "#e7298a"),
    "ATM": ("P", "#66a61e"),
    "matched": ("X", "#a6761d"),
}
SMD_THRESHOLD = 0.1

TABLES = {  # file name -> AnalysisResult attribute
    "estimates.csv": "estimates",
    "balance.csv": "balance",
    "patients.csv": "patients",
    "km.csv": "km",
}
FIGURES = ("love_plot.png", "ps_overlap.png", "km.png", "weights.png")
OUTPUTS = (*TABLES, *FIGURES, "analysis.json")
"""Every file :func:`write_analysis` writes (and, with ``overwrite``, replaces)."""


def love_plot(balance: pd.DataFrame) -> Figure:
    """Absolute SMD of each covariate level (rows) per adjustment (markers)."""
    names = list(dict.fromkeys(balance["covariate"]))
    fig = _new_figure(7.0, 1.2 + 0.32 * len(names))
    ax = fig.add_subplot()
    y = {c: i for i, c in enumerate(reversed(names))}
    for label, g in balance.groupby("adjustment", sort=False):
        marker, colour = ADJUSTMENT_STYLE.get(label, ("o", "#999999"))
        ax.scatter(
            np.abs(g["smd"].to_numpy()),
            [y[c] for c in g["covariate"]],
            marker=marker,
            color=colour,
            label=label,
            s=28,
            alpha=0.85,
            zorder=3,
        )
    ax.axvline(SMD_THRESHOLD, color="#888888", ls="--", lw=1)
    ax.set_yticks(list(y.values()), list(y.keys()))
    ax.set_xlabel("absolute standardized mean difference")
    ax.set_xlim(left=0)
    ax.grid(axis="y", color="#eeeeee", zorder=0)
    ax.legend(loc="lower right", fontsize="small", frameon=True)
    ax.set_title("Covariate balance before and after adjustment")
    return fig


def ps_overlap(patients: pd.DataFrame) -> Figure:
    """Histogram of the propensity score in each arm (treated up, control down)."""
    fig = _new_figure(7.0, 4.0)
    ax = fig.add_subplot()
    bins = np.linspace(0.0, 1.0, 41)
    for arm, sign in ((1, 1.0), (0, -1.0)):
        ps = patients.loc[patients["treatment"] == arm, "ps"].to_numpy()
        counts, edges = np.histogram(ps, bins=bins)
        ax.bar(
            edges[:-1],
            sign * counts,
            width=np.diff(edges),
            align="edge",
            color=ARM_COLOURS[arm],
            alpha=0.8,
            label=f"{ARM_LABELS[arm]} (n={ps.size})",
        )
    ax.axhline(0.0, color="#444444", lw=0.8)
    ticks = ax.get_yticks()
    ax.set_yticks(ticks, [f"{abs(t):g}" for t in ticks])
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("propensity score")
    ax.set_ylabel("patients (treated above, control below)")
    ax.legend(fontsize="small")
    ax.set_title("Propensity-score overlap")
    return fig


def km_plot(km: pd.DataFrame, time_label: str = "time") -> Figure:
    """Kaplan-Meier curve of each arm, one panel per weighting (x axis: ``time_label``)."""
    labels = [w for w in KM_WEIGHTINGS if w in set(km["weighting"])]
    cols = min(3, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig = _new_figure(4.0 * cols, 3.3 * rows)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for ax, label in zip(axes.flat, labels, strict=False):
        for arm in (0, 1):
            g = km[(km["weighting"] == label) & (km["arm"] == arm)]
            t = np.concatenate([[0.0], g["time"].to_numpy()])
            s = np.concatenate([[1.0], g["survival"].to_numpy()])
            ax.step(t, s, where="post", color=ARM_COLOURS[arm], label=ARM_LABELS[arm])
        ax.set_title(label if label in ("unadjusted", "matched") else f"{label}-weighted")
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel(time_label)
        ax.grid(color="#eeeeee")
    for ax in axes.flat[len(labels) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("survival")
    axes.flat[0].legend(fontsize="small", loc="lower left")
    return fig


def weight_plot(patients: pd.DataFrame) -> Figure:
    """Box plots of each weighting's stabilized weights by arm (log scale)."""
    fig = _new_figure(7.0, 4.0)
    ax = fig.add_subplot()
    data, positions, colours = [], [], []
    for i, est in enumerate(WEIGHT_ESTIMANDS):
        for arm in (0, 1):
            w = patients.loc[patients["treatment"] == arm, f"w_{est}"].to_numpy()
            data.append(w[w > 0])
            positions.append(3 * i + arm)
            colours.append(ARM_COLOURS[arm])
    parts = ax.boxplot(data, positions=positions, widths=0.8, patch_artist=True, sym=".")
    for patch, colour in zip(parts["boxes"], colours, strict=True):
        patch.set_facecolor(colour)
        patch.set_alpha(0.7)
    ax.set_yscale("log")
    ax.set_xticks([3 * i + 0.5 for i in range(len(WEIGHT_ESTIMANDS))], list(WEIGHT_ESTIMANDS))
    ax.set_ylabel("stabilized weight (log scale)")
    ax.set_title("Weight distribution by weighting (control left, treated right)")
    ax.grid(axis="y", color="#eeeeee")
    return fig


def check_output_folder(folder: Path, overwrite: bool) -> None:
    """A clear error, before any work, for an output folder that holds something."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise StudyError(f"--output={folder} is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise StudyError(
            f"--output={folder} is not empty; pass --overwrite to replace the analysis in it"
        )
    parent = folder.parent if not folder.exists() else folder
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise StudyError(f"--output={folder} is not writable (permission denied)")


def write_analysis(
    result: AnalysisResult, folder: str | Path, *, overwrite: bool = False
) -> list[Path]:
    """Write the tables (CSV), the figures (PNG) and ``analysis.json`` (the inputs) to
    ``folder``; returns the paths.  A non-empty folder is refused unless ``overwrite``
    (then the files of :data:`OUTPUTS` are replaced; nothing else is touched)."""
    folder = Path(folder)
    check_output_folder(folder, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, attr in TABLES.items():
        p = folder / name
        getattr(result, attr).to_csv(p, index=attr == "patients", index_label="row")
        paths.append(p)
    figures = (
        love_plot(result.balance),
        ps_overlap(result.patients),
        km_plot(result.km, f"time ({result.info.get('time', '')})"),
        weight_plot(result.patients),
    )
    for name, fig in zip(FIGURES, figures, strict=True):
        paths.append(save_figure(fig, folder / name))
    info = {k: list(v) if isinstance(v, tuple) else v for k, v in result.info.items()}
    p = folder / "analysis.json"
    p.write_text(json.dumps(info, indent=2, default=str) + "\n")
    paths.append(p)
    return paths
