"""Write tests/reference/data/ipcw_300.csv: 300 patients of ``flatiron-informative``.

Columns: id, time (rwPFS months), event, treat, w (stabilised ATE IPT weights of
:func:`estimators.siptw` on the usual covariates), and the censoring-model covariates as
numbers: age, visceral, ecog_1, ecog_2plus, ecog_unknown (recorded-ECOG dummies), and
admin, the administrative censoring time (scenario cutoff minus entry, months).
Times are rounded to 0.1 month so that events and censorings tie, as in real data.
Run from the repository root: ``python tests/reference/r/make_ipcw_data.py``; then
``Rscript tests/reference/r/make_ipcw_reference.R``.
"""

from pathlib import Path

import numpy as np
import pandas as pd

import estimators
import simulator

COVARIATES = ["age", "ecog", "visceral", "bone_only", "n_met_sites", "de_novo", "academic"]

sc = simulator.get_scenario("flatiron-informative")
df = simulator.simulate(sc, 300, seed=20261206)
df["pfs_months"] = np.maximum(np.round(df["pfs_months"], 1), 0.1)
admin = np.maximum(np.round(sc.censoring.cutoff_months - df["entry_month"], 1), 0.1)
fit = estimators.siptw(df, "pfs_months", "pfs_event", "treated", COVARIATES, balance=False)
out = pd.DataFrame(
    {
        "id": np.arange(1, 301),
        "time": df["pfs_months"],
        "event": df["pfs_event"].astype(int),
        "treat": df["treated"].astype(int),
        "w": fit.diagnostics["analysis_weights"],
        "age": df["age"].round(1),
        "visceral": df["visceral"].astype(int),
        "ecog_1": (df["ecog"] == "1").astype(int),
        "ecog_2plus": (df["ecog"] == "2+").astype(int),
        "ecog_unknown": (df["ecog"] == "unknown").astype(int),
        "admin": admin,
    }
)
path = Path("tests/reference/data/ipcw_300.csv")
out.to_csv(path, index=False, float_format="%.17g")
print(f"wrote {path}: {len(out)} rows, {int(out.event.sum())} events")
