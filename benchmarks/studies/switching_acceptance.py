"""Switching acceptance Monte Carlo (docs/guide/estimators.md, "Treatment switching").

Replicates of the built-in ``switching`` scenario at n = 1,500 (replicate r seeded by
``SeedSequence(20261206, spawn_key=(r,))``): the naive "ever switched" Cox, the
time-dependent Cox, the landmark Cox at 6 months (usual, and censoring later switches)
against the conditional switch log-HR; clone-censor-weight (grace 6 months, bootstrap
SE from 100 resamples) against the strategy truths at 36 months.  Prints and writes
(``benchmarks/results/switching_acceptance.json``) bias +- Monte Carlo SE, empirical SE,
mean SE and 95% coverage +- MCSE.

Run from the repository root:
``PYTHONPATH=. python benchmarks/studies/switching_acceptance.py [reps] [n_boot]``.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from estimators.switching import ccw, ever_switched_cox, landmark_cox, td_cox
from simulator.switching import COVARIATES, simulate_switching, switching_scenario, switching_truth

N = 1500
ARGS = ("os_months", "os_event", "switch_months", list(COVARIATES))


def summarise(est: np.ndarray, se: np.ndarray, truth: float) -> dict:
    """Bias, empirical SE, mean SE and coverage, with Monte Carlo SEs (Morris et al.)."""
    ok = np.isfinite(est) & np.isfinite(se)
    e, s = est[ok], se[ok]
    k = e.size
    emp = float(np.std(e, ddof=1))
    cover = np.mean(np.abs(e - truth) <= 1.959964 * s)
    return {
        "n_ok": int(k),
        "truth": truth,
        "mean": float(e.mean()),
        "bias": float(e.mean() - truth),
        "bias_mcse": emp / math.sqrt(k),
        "empirical_se": emp,
        "mean_se": float(s.mean()),
        "coverage": float(cover),
        "coverage_mcse": float(math.sqrt(cover * (1 - cover) / k)),
    }


def main(reps: int = 1000, n_boot: int = 100) -> dict:
    warnings.simplefilter("ignore")
    sc = switching_scenario()
    tr = switching_truth(sc)
    names = ["ever_switched_cox", "td_cox", "landmark_cox", "landmark_cox_censor_later",
             "ccw_surv_diff", "ccw_rmst_diff"]  # fmt: skip
    est = {k: np.full(reps, np.nan) for k in names}
    se = {k: np.full(reps, np.nan) for k in names}
    t0 = time.time()
    for r in range(reps):
        df = simulate_switching(sc, N, np.random.SeedSequence(20261206, spawn_key=(r,)))
        fits = {
            "ever_switched_cox": ever_switched_cox(df, *ARGS),
            "td_cox": td_cox(df, *ARGS),
            "landmark_cox": landmark_cox(df, *ARGS, landmark=sc.landmark),
            "landmark_cox_censor_later": landmark_cox(
                df, *ARGS, landmark=sc.landmark, censor_later_switch=True
            ),
        }
        for k, f in fits.items():
            est[k][r], se[k][r] = f.estimate, f.se
        c = ccw(df, *ARGS, grace=sc.grace, horizon=sc.horizon, n_boot=n_boot, random_state=r)
        cur = c.diagnostics.get("curves")
        if cur is not None:
            est["ccw_surv_diff"][r], se["ccw_surv_diff"][r] = (
                cur.surv_diff,
                c.diagnostics["se"]["surv_diff"],
            )
            est["ccw_rmst_diff"][r], se["ccw_rmst_diff"][r] = (
                cur.rmst_diff,
                c.diagnostics["se"]["rmst_diff"],
            )
        if (r + 1) % 50 == 0:
            print(f"{r + 1} replicates, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    truths = {
        "ever_switched_cox": tr.log_hr_switch,
        "td_cox": tr.log_hr_switch,
        "landmark_cox": tr.log_hr_switch,
        "landmark_cox_censor_later": tr.log_hr_switch,
        "ccw_surv_diff": tr.surv_diff,
        "ccw_rmst_diff": tr.rmst_diff,
    }
    out = {
        "scenario": sc.to_dict(),
        "n": N,
        "reps": reps,
        "n_boot": n_boot,
        "seconds": round(time.time() - t0, 1),
        "truth": {
            "log_hr_switch": tr.log_hr_switch,
            "surv_diff": tr.surv_diff,
            "surv_diff_mcse": tr.surv_diff_mcse,
            "rmst_diff": tr.rmst_diff,
            "rmst_diff_mcse": tr.rmst_diff_mcse,
        },
        "results": {k: summarise(est[k], se[k], truths[k]) for k in names},
    }
    print(f"{'estimator':28s} {'truth':>8s} {'bias':>9s} {'+-MCSE':>8s} {'empSE':>7s} "
          f"{'meanSE':>7s} {'cover':>6s}")  # fmt: skip
    for k, v in out["results"].items():
        print(
            f"{k:28s} {v['truth']:8.4f} {v['bias']:9.4f} {v['bias_mcse']:8.4f} "
            f"{v['empirical_se']:7.4f} {v['mean_se']:7.4f} {v['coverage']:6.3f}"
        )
    return out


if __name__ == "__main__":
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    n_boot = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    res = main(reps, n_boot)
    if reps >= 1000:
        path = Path("benchmarks/results/switching_acceptance.json")
        path.write_text(json.dumps(res, indent=1) + "\n")
