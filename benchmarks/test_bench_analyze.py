"""``estimators.analyze`` on GBSG2 (686 patients) vs the same core fits in lifelines +
scikit-learn.

Group "analyze GBSG2, 686 patients":

* ``test_analyze``: the whole :func:`estimators.analyze` run (one PS fit, 52 fits:
  sIPTW ATE / ATT / ATC / ATO / ATM x robust, M-estimation, naive and bootstrap SEs;
  PSM with four SEs; naive and adjusted Cox; the PS controls; weighted and matched KM
  RMST / S(t) at 36 and 60 months; balance table and KM curves) with ``n_boot=200``;
* ``test_lifelines_sklearn_core``: scikit-learn's PS and lifelines' Cox for sIPTW (robust),
  PSM (cluster-robust), naive and adjusted Cox
  (:func:`bench_helpers.baseline_suite`): 4 of the 52 fits.

``extra_info`` holds the fits per second and the ratio of the baseline's time per fit to
rwesim's.  numba is warmed up by the first round.

Run: ``pytest benchmarks/test_bench_analyze.py --benchmark-enable``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from bench_helpers import baseline_suite

from estimators import analyze

CSV = Path(__file__).resolve().parents[1] / "tests" / "reference" / "data" / "gbsg2.csv"
COVARIATES = ["age", "menostat", "tsize", "tgrade", "pnodes", "progrec", "estrec"]
GROUP = "analyze GBSG2, 686 patients"
_seen: dict[str, float] = {}


def _gbsg2() -> pd.DataFrame:
    d = pd.read_csv(CSV)
    d["months"] = d["time"] / (365.25 / 12)
    return d


def _run(n_boot: int, **kwargs):
    d = _gbsg2()
    return analyze(
        d, "months", "cens", "horTh", COVARIATES, treated="yes", horizons=(36.0, 60.0),
        n_boot=n_boot, seed=1, **kwargs,
    )  # fmt: skip


@pytest.mark.benchmark(group=GROUP)
def test_analyze(benchmark):
    _run(10)  # warm-up: numba kernels loaded
    result = benchmark.pedantic(lambda: _run(200), rounds=3, iterations=1)
    fits = len(result.estimates)
    sec = benchmark.stats.stats.median
    _seen["analyze_per_fit"] = sec / fits
    benchmark.extra_info.update(fits=fits, fits_per_second=fits / sec)


@pytest.mark.benchmark(group=GROUP)
def test_lifelines_sklearn_core(benchmark):
    d = _gbsg2()
    frame = d.assign(
        treated=(d["horTh"] == "yes").astype(int), pfs_months=d["months"], pfs_event=d["cens"]
    )
    out = benchmark.pedantic(lambda: baseline_suite(frame, COVARIATES), rounds=3, iterations=1)
    per_fit = benchmark.stats.stats.median / len(out)
    benchmark.extra_info.update(fits=len(out), seconds_per_fit=per_fit)
    if "analyze_per_fit" in _seen:
        benchmark.extra_info["time_per_fit_ratio_to_rwesim"] = per_fit / _seen["analyze_per_fit"]
