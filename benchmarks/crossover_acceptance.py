"""Acceptance of the crossover estimators on po25-crossover (issue 13): 1,000 replicate trials
of 907 patients, OS; bias +- MCSE and 95% CI coverage of ITT Cox, per-protocol Cox,
IPCW for switching and RPSFTM against both truths (treatment policy = as randomised,
hypothetical = no crossover).  Run:  python benchmarks/crossover_acceptance.py [REPS]
(about 5 minutes on 2 cores); prints a Markdown table."""

from __future__ import annotations

import math
import sys

import numpy as np

import simulator
from estimators.crossover import ipcw_switch, itt_cox, per_protocol_cox, rpsftm_switch

ESTIMATORS = {
    "itt_cox": itt_cox,
    "per_protocol_cox": per_protocol_cox,
    "ipcw_switch": ipcw_switch,
    "rpsftm": rpsftm_switch,
}
COVARIATES = ["age", "ecog", "visceral"]  # the switching model's (baseline) covariates


def main(reps: int = 1000, n: int = 907, seed: int = 2026) -> dict[str, dict[str, float]]:
    sc = simulator.get_scenario("po25-crossover")
    tr = simulator.truth(sc)
    truths = {e: tr.estimand("os", e)[0] for e in ("treatment_policy", "hypothetical")}
    est = {k: [] for k in ESTIMATORS}
    ci = {k: [] for k in ESTIMATORS}
    seeds = np.random.SeedSequence(seed).spawn(reps)
    for r in range(reps):
        df = simulator.simulate(sc, n, seeds[r])
        for k, f in ESTIMATORS.items():
            e = f(df, "os_months", "os_event", "treated", COVARIATES)
            est[k].append(e.log_hr)
            ci[k].append((e.ci_low, e.ci_high))
    out = {}
    print(
        f"po25-crossover OS, {reps} replicates of {n}; truths: "
        + ", ".join(f"{k} {v:.4f}" for k, v in truths.items())
    )
    print(
        "| estimator | failed | mean log-HR | bias vs treatment policy | bias vs hypothetical "
        "| coverage TP | coverage hyp. |"
    )
    print("|---|---|---|---|---|---|---|")
    for k in ESTIMATORS:
        x = np.asarray(est[k], float)
        lo, hi = np.asarray(ci[k], float).T
        ok = np.isfinite(x) & np.isfinite(lo) & np.isfinite(hi)
        x, lo, hi = x[ok], lo[ok], hi[ok]
        mcse = x.std(ddof=1) / math.sqrt(x.size)
        row = {"failed": int((~ok).sum()), "mean": float(x.mean()), "mcse": float(mcse)}
        cells = []
        for e, th in truths.items():
            cov = float(((lo <= th) & (th <= hi)).mean())
            row[f"bias_{e}"], row[f"coverage_{e}"] = float(x.mean() - th), cov
            cells.append(f"{x.mean() - th:+.4f} +- {mcse:.4f}")
        covs = []
        for e in truths:
            c = row[f"coverage_{e}"]
            covs.append(f"{c:.3f} +- {math.sqrt(c * (1 - c) / x.size):.3f}")
        head = f"| {k} | {row['failed']} | {x.mean():+.4f} |"
        print(f"{head} {cells[0]} | {cells[1]} | {covs[0]} | {covs[1]} |")
        out[k] = row
    return out


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
