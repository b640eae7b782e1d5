# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 8. Plasmode simulation on a real breast-cancer cohort (GBSG2)
#
# A *plasmode* study keeps the covariates of a real cohort and simulates only what we
# need to know the truth of.  Here the cohort is the German Breast Cancer Study Group 2
# trial data that ships with lifelines (`load_gbsg2`): 686 node-positive women, 246 of
# them on hormonal therapy (tamoxifen), with recurrence-free survival.  We treat it as an
# observational cohort: who got hormonal therapy depends on age and menopausal status.
#
# `simulator.plasmode.plasmode` fits, once, to this cohort:
#
# * a Weibull proportional-hazards outcome model on the covariates and the exposure
#   (maximum likelihood), whose exposure log-HR we may keep or replace;
# * a logistic propensity model for the exposure;
# * a Weibull model for the censoring times.
#
# A replicate draws rows with replacement, then either **simulates** a new exposure from
# the propensity model (the default) or **keeps** each row's observed exposure, then
# simulates the outcome and the censoring.  The truths are computed on the resampling
# population itself (the 686 rows), from both potential outcomes of every row.
#
# This notebook runs both exposure designs and shows why the default is to simulate the
# exposure (docs/guide/plasmode.md).  `REPS` replicates per design (1,000 for a reader's
# run; CI runs a handful, so its Monte Carlo errors are large; the 1,000-replicate
# numbers of `tests/test_plasmode.py`'s slow study are quoted at the end).

# %%
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import display
from lifelines.datasets import load_gbsg2

from simulator.plasmode import iptw_limit, plasmode, save_plasmode
from simulator.study import Study, open_results, run_study, summarize

REPS = int(os.environ.get("RWESIM_NOTEBOOK_REPS", "1000"))

gbsg2 = load_gbsg2()
gbsg2["months"] = gbsg2["time"] / 30.4375
gbsg2["hormonal"] = (gbsg2["horTh"] == "yes").astype(int)
COVS = ["age", "menostat", "tsize", "tgrade", "pnodes", "progrec", "estrec"]
n_treated, n_events = gbsg2["hormonal"].sum(), gbsg2["cens"].sum()
print(f"{len(gbsg2)} patients, {n_treated} on hormonal therapy, {n_events} events; "
      f"follow-up up to {gbsg2['months'].max():.1f} months")  # fmt: skip

# %% [markdown]
# ## The fitted plasmode
#
# With no `log_hr` the exposure keeps the log-HR fitted to the data; the horizon of the
# survival and RMST truths is 60 months.

# %%
sc = plasmode(gbsg2, COVS, "hormonal", "months", "cens", horizon=60.0)
print(f"fitted conditional log-HR of hormonal therapy: {sc.fitted_log_hr:+.4f} "
      f"(HR {np.exp(sc.fitted_log_hr):.3f})")  # fmt: skip
print(f"outcome Weibull shape {sc.outcome_model.shape:.3f}; "
      f"censoring Weibull shape {sc.censoring_model.shape:.3f}")  # fmt: skip
display(
    pd.DataFrame(
        {"outcome log-HR": pd.Series(sc.outcome_model.coef), "propensity log-OR": pd.Series(sc.ps)}
    ).round(4)
)

# %% [markdown]
# ## Truths on the resampling population
#
# The conditional log-HR is the model's parameter.  The marginal log-HRs are the Cox
# population limits of both potential outcomes of the 686 rows, weighted for the target
# population, by quadrature (error: the change when the grid is doubled); "admin" censors
# at the end of follow-up only, "study" also by the fitted censoring model, the same for
# both potential outcomes.  sIPTW estimates the marginal HR under the censoring the data
# have, so with fitted censoring it is scored against the "study" truth.

# %%
tr = sc.truth()
rows = []
for est in ("conditional", "ATE", "ATT", "ATC", "ATO"):
    for cens in ("admin", "study"):
        theta, err = tr.estimand("os", est, cens, "log_hr")
        rows.append({"estimand": est, "censoring": cens, "log-HR": theta, "error": err})
display(pd.DataFrame(rows).round(6))
for m in ("surv_diff", "rmst_diff"):
    print(f"ATE {m} at 60 months: {tr.estimand('os', 'ATE', 'admin', m, 60.0)[0]:+.4f}")

# %% [markdown]
# ## The two exposure designs
#
# Keeping each row's observed exposure looks more "real", but it changes the population
# the replicates are drawn from: every row of a continuous-covariate cohort is unique, so
# in the resampling population each covariate pattern is either always or never exposed.
# The propensity score of that population is 0 or 1 per row, and no logistic model is
# correct for it.  sIPTW with a logistic propensity score then converges to something
# else than the ATE of that population.  `iptw_limit` computes what it converges to,
# without Monte Carlo error: the marginal Cox log-HR of the population with the treated
# rows weighted by 1 / e_hat and the control rows by 1 / (1 - e_hat).
#
# With the simulated exposure, the logistic model *is* the exposure model: the limit is
# the truth.

# %%
limits = []
for exposure in ("simulate", "observed"):
    s = sc.replace(exposure=exposure)
    theta = s.truth().estimand("os", "ATE", "study", "log_hr")[0]
    lim = iptw_limit(s, "study")
    limits.append({"exposure": exposure, "ATE truth": theta, "sIPTW limit": lim,
                   "asymptotic bias": lim - theta})  # fmt: skip
display(pd.DataFrame(limits).set_index("exposure").round(4))

# %% [markdown]
# ## A study of both designs
#
# The scenario is saved as a TOML file next to a Parquet file of its rows; a study names
# the file like any scenario and varies the exposure design.  Replicates of ten times the
# cohort's size (n = 6,860) make the artefact stand out of the Monte Carlo error, which a
# larger replicate does not remove: the asymptotic bias above does not depend on n.

# %%
tmp = Path(tempfile.mkdtemp(prefix="rwesim-plasmode-"))
path = save_plasmode(sc, tmp / "gbsg2_plasmode.toml")
study = Study(
    name="gbsg2-plasmode",
    scenarios=(str(path),),
    vary={"exposure": ["simulate", "observed"]},
    sample_sizes=(6860,),
    reps=REPS,
    seed=2026,
    estimators=("siptw", "psm", "naive_cox", "adjusted_cox"),
    outcomes=("os",),
    covariates=tuple(COVS),
    truth_censoring="study",
)
report = run_study(study, tmp / "out", workers=1, progress=False, log=lambda m: None)
print(f"{report.replicates_run} replicates in {report.seconds:.0f} s")
table = summarize(open_results(report.out_dir))


def cell(est: pd.Series, mcse: pd.Series, digits: int) -> pd.Series:
    return est.round(digits).astype(str) + " (" + mcse.round(digits).astype(str) + ")"


shown = pd.DataFrame(
    {
        "exposure": np.where(table["condition"] == 0, "simulate", "observed"),
        "estimator": table["estimator"],
        "estimand": table["estimand"],
        "truth": table["theta"].round(4),
        "mean": table["mean"].round(4),
        "bias (MCSE)": cell(table["bias"], table["bias_mcse"], 4),
        "coverage (MCSE)": cell(table["coverage"], table["coverage_mcse"], 3),
        "n_sim": table["n_sim"],
    }
)
display(shown.set_index(["exposure", "estimator"]))

# %% [markdown]
# ## What 1,000 replicates show
#
# From the slow test `test_gbsg2_designs_siptw_unbiased_when_exposure_is_simulated`
# (1,000 replicates of n = 6,860 per design, sIPTW against the ATE truth under the study
# censoring, -0.3405):
#
# | exposure design | sIPTW mean | bias (MCSE) | predicted limit |
# |---|---|---|---|
# | simulate (default) | -0.3399 | +0.0005 (0.0013) | -0.3405 |
# | observed | -0.3336 | +0.0069 (0.0013) | -0.3329 |
#
# Under the simulated design sIPTW is unbiased for its own truth.  Under the observed
# design it sits five Monte Carlo SEs away from it, where `iptw_limit` predicts: the
# "bias" belongs to the simulation design, not to sIPTW.  On GBSG2 the artefact is small
# (about 2% of the log-HR) because the outcome model has one log-HR for everyone and the
# logistic model is not far from the cohort's allocation; it grows with how far the
# analyst's propensity model is from a 0/1 allocation and with effect heterogeneity, and
# it does not shrink with the replicate size.
