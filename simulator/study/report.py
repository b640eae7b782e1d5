"""Performance tables of a results directory: pandas, terminal (rich) and Markdown.

Measures are over the default denominator of :mod:`simulator.study.performance` (every
replicate with a finite estimate; the heading says so), with the converged-only bias and
coverage beside them, the counts of both, and why fits failed.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich import box
from rich.console import Group
from rich.table import Table

from estimators.estimands import SCORED_AGAINST

from .performance import DENOMINATOR_NOTE, summarize
from .spec import OUTCOME_NAMES
from .store import Store

ESTIMATOR_NAMES = {
    "siptw": "sIPTW",
    "psm": "PSM",
    "naive_cox": "naive Cox",
    "adjusted_cox": "adjusted Cox",
    "ps_cox": "PS-adjusted Cox",
    "ps_spline_cox": "PS-spline Cox",
    "ps_strata_cox": "PS-stratified Cox",
}


def summary_table(
    store: Store, alpha: float = 0.05, *, baseline: str | None = None
) -> pd.DataFrame:
    """Performance measures per condition x outcome x estimator x measure x horizon, with
    condition labels (and run times relative to ``baseline``:
    :func:`~simulator.study.performance.summarize`); the log-HR rows of a condition and
    outcome come first, then each other measure and horizon."""
    results = store.read_results()
    if results.empty:
        return pd.DataFrame()
    table = summarize(results, store.truths(), alpha=alpha, baseline=baseline)
    labels = {c["index"]: c["label"] for c in store.read_meta()["conditions"]}
    table.insert(1, "label", table["condition"].map(labels))
    order = {name: i for i, name in enumerate(ESTIMATOR_NAMES)}
    table["_o"] = table["estimator"].map(lambda e: order.get(e, len(order)))
    table["_m"] = table["measure"] != "log_hr"
    return (
        table.sort_values(
            ["condition", "outcome", "_m", "measure", "horizon", "_o"],
            ascending=[True, False, True, True, True, True],
            kind="stable",
        )
        .drop(columns=["_o", "_m"])
        .reset_index(drop=True)
    )


def _pm(x: float, se: float, digits: int = 3) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x:.{digits}f} ({se:.{digits}f})"


def _estimand(estimand: str) -> str:
    """``crude (scored vs ATE)``: an estimand scored against another's truth says so."""
    return (
        f"{estimand} (scored vs {SCORED_AGAINST[estimand]})"
        if estimand in SCORED_AGAINST
        else estimand
    )


def display_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Formatted cells: estimate (Monte Carlo SE).

    A table of log-HRs only keeps the v0.1 columns (``true HR``, ``bias log-HR``); one
    with other measures (RMST, survival differences) has the same columns in every row:
    ``measure``, ``truth`` and ``bias`` on the measure's scale (the log-HR for a HR).
    """
    measures = table["measure"] if "measure" in table else pd.Series(["log_hr"] * len(table))
    only_hr = bool((measures == "log_hr").all())
    rows = []
    for r in table.itertuples(index=False):
        measure = getattr(r, "measure", "log_hr")
        log_hr = measure == "log_hr"
        if only_hr:
            effect = {
                "true HR": f"{math.exp(r.theta):.3f}",
                "bias log-HR": _pm(r.bias, r.bias_mcse, 4),
            }
        else:
            effect = {
                "measure": "log-HR" if log_hr else _measure(measure, r.horizon),
                "truth": f"{r.theta:.4f}",
                "bias": _pm(r.bias, r.bias_mcse, 4),
            }
        rows.append(
            {
                "condition": r.label,
                "outcome": OUTCOME_NAMES.get(r.outcome, r.outcome),
                "estimator": ESTIMATOR_NAMES.get(r.estimator, r.estimator),
                "estimand": _estimand(r.estimand),
                **effect,
                "rel. bias HR %": _pm(r.rel_bias_hr, r.rel_bias_hr_mcse, 1) if log_hr else "-",
                "EmpSE": _pm(r.empse, r.empse_mcse),
                "ModSE": _pm(r.modse, r.modse_mcse),
                "rel. err ModSE %": _pm(r.relerr_modse, r.relerr_modse_mcse, 1),
                "coverage": _pm(r.coverage, r.coverage_mcse),
                "power": _pm(r.power, r.power_mcse),
                "n_sim": str(r.n_sim),
                "failed/nonconv": f"{r.n_failed}/{r.n_nonconverged}",
                "bias, converged only": _pm(r.bias_converged, r.bias_converged_mcse, 4),
                "coverage, converged only": _pm(r.coverage_converged, r.coverage_converged_mcse),
                "n_converged": str(r.n_converged),
                "why fits failed": r.errors or "-",
                "ms/fit": _ms(getattr(r, "ms_per_fit", math.nan)),
                "time vs baseline": _ratio(getattr(r, "time_ratio", math.nan)),
            }
        )
    return rows


def _ms(x: float) -> str:
    """Median milliseconds per fit, to 3 significant digits ("-" when unknown)."""
    return f"{x:.3g}" if math.isfinite(x) else "-"


def _ratio(x: float) -> str:
    return f"{x:.2f}x" if math.isfinite(x) else "-"


def _measure(measure: str, horizon: float) -> str:
    return measure if not math.isfinite(horizon) else f"{measure} at {horizon:g} months"


TERMINAL = (
    "outcome",
    "estimator",
    "estimand",
    "true HR",
    "bias log-HR",
    "EmpSE",
    "ModSE",
    "coverage",
    "power",
    "failed/nonconv",
    "ms/fit",
)
TERMINAL_MEASURES = (*TERMINAL[:3], "measure", "truth", "bias", *TERMINAL[5:])
"""Terminal columns of a table with measures other than the log-HR."""


def summary_rich(table: pd.DataFrame, meta: dict[str, Any]) -> Group:
    """Compact tables for the terminal, one per condition and effect measure (and horizon;
    CSV / Markdown carry every measure)."""
    study = meta["study"]
    rows = display_rows(table)
    tables = []
    columns = TERMINAL if not rows or "true HR" in rows[0] else TERMINAL_MEASURES
    if any(r["time vs baseline"] != "-" for r in rows):  # summarize --baseline
        columns = (*columns, "time vs baseline")
    panel = [(r["condition"], r.get("measure", "")) for r in rows]
    for key in dict.fromkeys(panel):
        title = key[0] if not key[1] else f"{key[0]} - {key[1]}"
        t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
        for col in columns:
            t.add_column(col, justify="left" if col in columns[:4] else "right")
        for r, k in zip(rows, panel, strict=True):
            if k == key:
                t.add_row(*(r[c] for c in columns))
        tables.append(t)
    head = (
        f"[bold]{study['name']}[/]: estimate (Monte Carlo SE) over {study['reps']} replicates "
        f"per condition; each estimator against its own estimand's truth; {DENOMINATOR_NOTE}"
    )
    failures = [
        f"  {r['condition']} / {r['outcome']} / {r['estimator']}: {r['why fits failed']}"
        for r in rows
        if r["why fits failed"] != "-"
    ]
    if failures:
        tables.append("why fits failed:\n" + "\n".join(failures))
    return Group(head, *tables)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """GitHub Markdown table of a list of same-keyed dicts (``_(none)_`` when empty)."""
    if not rows:
        return "_(none)_\n"
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def summary_markdown(table: pd.DataFrame) -> str:
    """The performance table as GitHub Markdown."""
    return markdown_table(display_rows(table))
