"""The simulation-study machine: design grid, runner, results store, performance measures.

One import for notebooks and scripts::

    from simulator.study import Study, run_study, open_results, summarize, plot

    report = run_study(Study(reps=200), "results/demo", workers=2)
    results = open_results("results/demo")     # the store: read_results(), truths(), ...
    table = summarize("results/demo")          # the performance table
    paths = plot("results/demo")               # PNG figures in results/demo/plots

The modules stay importable by their own paths (``simulator.study.runner``, ...).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exceptions import StoreError, StudyError, StudyWarning

if TYPE_CHECKING:
    import pandas as pd

    from .runner import RunReport, run_study
    from .spec import Study, load_study
    from .store import Store

# imported on first use, so that ``import simulator.study.truth`` (and ``simulator.truth``)
# does not load the runner, pyarrow and rich
_LAZY = {
    "RunReport": "runner",
    "run_study": "runner",
    "Study": "spec",
    "load_study": "spec",
    "Store": "store",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RunReport",
    "Store",
    "StoreError",
    "Study",
    "StudyError",
    "StudyWarning",
    "load_study",
    "open_results",
    "plot",
    "run_study",
    "summarize",
]


def open_results(directory: str | Path) -> Store:
    """The results store of a directory written by :func:`run_study` (read-only).

    Raises :class:`StoreError` when ``directory`` is not an rwesim results directory.
    """
    from .store import Store

    store = Store(Path(directory))
    if not store.meta_path.is_file():
        raise StoreError(f"{directory} is not an rwesim results directory (no run.json)")
    store.read_meta()  # format and version checks
    store.check_foreign()
    return store


def summarize(
    results: str | Path | Store, alpha: float = 0.05, *, baseline: str | None = None
) -> pd.DataFrame:
    """Performance table of a results directory (or open store), with condition labels:
    :func:`simulator.study.report.summary_table`; ``ms_per_fit`` is the median wall time
    of one fit and ``time_ratio`` its ratio to the ``baseline`` estimator's (``"siptw"``,
    say)."""
    from .report import summary_table
    from .store import Store

    store = results if isinstance(results, Store) else open_results(results)
    return summary_table(store, alpha=alpha, baseline=baseline)


def plot(results: str | Path | Store, out_dir: str | Path | None = None) -> list[Path]:
    """Write every figure of a results directory (default folder ``DIR/plots``);
    returns the PNG paths (:func:`simulator.study.plots.plot_study`)."""
    from .plots import plot_study
    from .store import Store

    store = results if isinstance(results, Store) else open_results(results)
    return plot_study(store.root, store.plots if out_dir is None else out_dir)
