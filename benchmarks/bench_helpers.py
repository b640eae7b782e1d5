"""Benchmark data and the baseline (lifelines + scikit-learn) pipeline.

The cohort follows the simulator's column names and dtypes (ECOG and race as pandas
categoricals, binary indicators as int) without importing the simulator.  The
baseline is what an analyst would write with the standard libraries: dummy coding
with ``pd.get_dummies``, scikit-learn's *unpenalised* logistic regression (``C=inf``,
Newton-Cholesky solver), greedy caliper matching on ``NearestNeighbors``, lifelines'
Cox.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors

COVARIATES = ["age", "ecog", "visceral", "n_met_sites", "de_novo", "academic", "race"]


@cache
def flatiron_like(n: int = 1_430, seed: int = 1) -> pd.DataFrame:
    """n patients, ~54% treated; younger, fitter patients treated more often.

    Outcome: exponential rwPFS (control median ~12 months, conditional HR ~0.6) with
    uniform censoring over 3-50 months; continuous times (no ties).
    """
    rng = np.random.default_rng(seed)
    age = rng.normal(67.0, 11.0, n)
    ecog = rng.choice(4, n, p=[0.28, 0.25, 0.08, 0.39])
    race = rng.choice(4, n, p=[0.68, 0.08, 0.04, 0.20])
    visceral = rng.binomial(1, 0.39, n)
    sites = rng.choice([1, 2, 3], n, p=[0.47, 0.30, 0.23])
    de_novo = rng.binomial(1, 0.40, n)
    academic = rng.binomial(1, 0.05, n)
    lp = 0.2 - 0.04 * (age - 67.0) + 0.3 * (ecog == 0) - 0.6 * (ecog == 2) + 0.1 * visceral
    treated = rng.binomial(1, expit(lp))
    hazard = (
        np.log(2.0)
        / 12.0
        * np.exp(-0.5 * treated + 0.02 * (age - 67.0) + 0.5 * (ecog == 2) + 0.4 * visceral)
    )
    t_event = rng.exponential(1.0 / hazard)
    t_cens = rng.uniform(3.0, 50.0, n)
    return pd.DataFrame(
        {
            "treated": treated,
            "pfs_months": np.minimum(t_event, t_cens),
            "pfs_event": (t_event <= t_cens).astype(int),
            "age": age,
            "ecog": pd.Categorical.from_codes(ecog, categories=["0", "1", "2+", "unknown"]),
            "visceral": visceral,
            "n_met_sites": sites,
            "de_novo": de_novo,
            "academic": academic,
            "race": pd.Categorical.from_codes(
                race, categories=["White", "Black", "Asian", "Other"]
            ),
        }
    )


def sklearn_propensity(df: pd.DataFrame, covariates: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Dummy-coded design and unpenalised scikit-learn PS.

    ``solver="newton-cholesky"`` is scikit-learn's fastest and most accurate solver for
    n >> p (the default lbfgs needs ~150 iterations on unscaled age and stops at
    tol=1e-4, ~30x slower here).
    """
    X = pd.get_dummies(df[covariates], drop_first=True, dtype=float)
    lr = LogisticRegression(C=np.inf, solver="newton-cholesky").fit(
        X.to_numpy(), df["treated"].to_numpy()
    )
    return X, lr.predict_proba(X.to_numpy())[:, 1]


def sklearn_greedy_match(
    logit: np.ndarray, treatment: np.ndarray, caliper: float = 0.2, seed: int = 0
) -> list[tuple[int, int]]:
    """Greedy 1:1 caliper matching in random order on ``NearestNeighbors`` (batch query).

    Each treated patient takes its nearest unused control within ``caliper`` SDs of the
    logit, scanning its 32 nearest controls from one batch query; when those are all
    used (and within the caliper) it re-queries with twice as many neighbours.
    """
    width = caliper * np.std(logit, ddof=1)
    treated = np.flatnonzero(treatment == 1)
    controls = np.flatnonzero(treatment == 0)
    order = treated[np.random.default_rng(seed).permutation(treated.size)]
    nn = NearestNeighbors(n_neighbors=1).fit(logit[controls, None])
    k = min(controls.size, 32)
    dist, idx = nn.kneighbors(logit[order, None], n_neighbors=k)
    used = np.zeros(controls.size, dtype=bool)
    pairs = []
    for i, t in enumerate(order):
        d_row, j_row = dist[i], idx[i]
        while True:
            free = np.flatnonzero(~used[j_row])
            if free.size or d_row[-1] > width or j_row.size == controls.size:
                break
            k_more = min(2 * j_row.size, controls.size)  # all taken: look further
            d_row, j_row = (r[0] for r in nn.kneighbors(logit[[t], None], n_neighbors=k_more))
        if free.size and d_row[free[0]] <= width:
            used[j_row[free[0]]] = True
            pairs.append((int(t), int(controls[j_row[free[0]]])))
    return pairs


def _cox(frame: pd.DataFrame, **kwargs) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines' notes on non-integer weights
        cph = CoxPHFitter().fit(frame, "pfs_months", "pfs_event", **kwargs)
    return float(cph.params_["treated"])


def baseline_suite(df: pd.DataFrame, covariates: list[str], adjusted: bool = True) -> dict:
    """PS once, then sIPTW, PSM, naive (and adjusted) Cox with lifelines."""
    X, ps = sklearn_propensity(df, covariates)
    a = df["treated"].to_numpy()
    w = np.where(a == 1, 1.0 / ps, 1.0 / (1.0 - ps))
    for arm in (a == 1, a == 0):  # stabilized: each arm's weights average 1
        w[arm] *= arm.sum() / w[arm].sum()
    outcome = df[["pfs_months", "pfs_event", "treated"]]
    out = {"siptw": _cox(outcome.assign(w=w), weights_col="w", robust=True)}
    pairs = np.array(sklearn_greedy_match(np.log(ps / (1.0 - ps)), a))
    matched = outcome.iloc[pairs.T.ravel()].assign(pair=np.tile(np.arange(len(pairs)), 2))
    out["psm"] = _cox(matched, cluster_col="pair", robust=True)
    out["naive_cox"] = _cox(outcome)
    if adjusted:
        out["adjusted_cox"] = _cox(pd.concat([outcome, X], axis=1))
    return out


# --- the v0.1 study runner, for side-by-side study benchmarks ----------------------------
V01_COMMIT = "d3de24b"
"""Last revision before validation-once / shared inputs / the array fast path (v0.1's
per-replicate path: one DataFrame per replicate, validation in every estimator call)."""

REPLICATE_CPU = """
import dataclasses, json, sys, time
from simulator.study.spec import Study
from simulator.study.runner import plan_chunks
from simulator.study.replicate import run_chunk
reps, rounds = int(sys.argv[1]), int(sys.argv[2])
study = Study(reps=reps, chunk_reps=reps)
chunk = plan_chunks(study, study.conditions())[0]
run_chunk(dataclasses.replace(chunk, reps=(0, 3)))  # load kernels, shipped truths
cpu, wall = [], []
for _ in range(rounds):
    c0, w0 = time.process_time(), time.perf_counter()
    run_chunk(chunk)
    cpu.append((time.process_time() - c0) / reps)
    wall.append((time.perf_counter() - w0) / reps)
print(json.dumps({"cpu": min(cpu), "wall": min(wall)}))
"""

STUDY_WALL = """
import json, os, sys, tempfile, time
from simulator.study.runner import run_study
from simulator.study.spec import Study
try:
    from simulator.study.workers import start_method
except ImportError:  # v0.1: spawn
    start_method = lambda: "spawn"
quiet = {"progress": False, "log": lambda msg: None}
if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        run_study(Study(reps=4, chunk_reps=2), tmp + "/warm", workers=1, **quiet)
        method = start_method()
        c0, t0 = os.times(), time.perf_counter()
        report = run_study(Study(reps=int(sys.argv[1])), tmp + "/run", workers=2, **quiet)
        wall, c1 = time.perf_counter() - t0, os.times()
    cpu = sum(c1[:4]) - sum(c0[:4])  # this process and its (joined) workers
    print(json.dumps({"wall": wall, "replicate_phase": report.seconds, "cpu": cpu,
                      "start_method": method}))
"""

WORKER_STARTUP = """
import json, multiprocessing as mp, os, sys, time
from concurrent.futures import ProcessPoolExecutor, wait
from simulator.study import workers as W
from simulator.study.runner import warm_up
if __name__ == "__main__":
    warm_up()  # the parent has its kernels loaded, as in run_study
    method = sys.argv[1] if sys.argv[1] != "auto" else W.start_method()
    ctx = mp.get_context(method)
    t0 = time.perf_counter()
    ex = ProcessPoolExecutor(2, mp_context=ctx, initializer=W.init_worker,
                             initargs=(os.getpid(),))
    wait([ex.submit(warm_up) for _ in range(2)])
    wall = time.perf_counter() - t0
    ex.shutdown()
    print(json.dumps({"wall": wall, "start_method": method}))
"""


def revision_tree(commit: str = V01_COMMIT) -> Path | None:
    """The source tree of ``commit`` (git archive into a cache folder), or None without git."""
    root = Path(__file__).resolve().parents[1]
    dest = Path(tempfile.gettempdir()) / f"rwesim-{commit}"
    if (dest / "estimators").is_dir():
        return dest
    try:
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", commit], check=True, capture_output=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def run_in(tree: Path, script: str, *args: object) -> dict:
    """Run ``script`` with ``tree`` first on the path (its own numba cache in the temp
    folder), one numba thread; returns the JSON it prints."""
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "NUMBA_NUM_THREADS": "1",
        "NUMBA_CACHE_DIR": str(Path(tempfile.gettempdir()) / f"numba-cache-{tree.name}"),
    }
    out = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
