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
# # 3. Visceral subgroups: lung and liver metastases
#
# Brufsky et al. (Front Oncol 2022) analysed the Flatiron patients with lung or liver
# metastases: 551 patients (330 P+L, 221 L); 64.1% lung only, 22.3% liver only, 13.6%
# both.  The built-in scenarios `flatiron-lung` and `flatiron-liver` are calibrated to
# the published subgroup figures:
#
# | subgroup | outcome | P+L | L | adjusted HR |
# |---|---|---|---|---|
# | lung | rwPFS median | 16.5 | 10.5 | 0.52 |
# | lung | OS median | not reached | 40.3 | 0.60 |
# | liver | OS median | 30.1 | 16.8 | 0.56 |
#
# The control medians and the HRs are the scenarios' targets; the published *adjusted*
# HRs are used as marginal ATE targets (an assumption: the paper's adjustment method is
# not reproduced).  Liver rwPFS was not published: its control median 7.5 and HR 0.55
# are *assumed* (docs/design.md §8.2).  This notebook checks the calibration, analyses
# one cohort of each subgroup's size, runs a small bias/coverage study per subgroup, and
# compares the maximum-likelihood propensity score with Firth's penalised one where rare
# covariate levels separate treatment (n = 551, all PS covariates).

# %%
# %matplotlib inline
import math
import os
import tempfile

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

import estimators
import simulator
from simulator.study import Study, open_results, run_study, summarize

# not in the façade: the formatted table cells, the study's default covariates and the
# notebook-sized distribution plot (the façade's `plot` writes every figure to files)
from simulator.study.plots import estimate_distributions
from simulator.study.report import display_rows
from simulator.study.spec import DEFAULT_COVARIATES

REPS = int(os.environ.get("RWESIM_NOTEBOOK_REPS", "1000"))
SEED = 2022
Z95 = 1.959963984540054
OUTCOMES = {"pfs": ("pfs_months", "pfs_event", "rwPFS"), "os": ("os_months", "os_event", "OS")}
pd.set_option("display.precision", 4)
pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 30)

# Published (Brufsky 2022); None = not published; inf = not reached.
PUBLISHED = {
    "flatiron-lung": {
        "pfs": {"median_treated": 16.5, "median_control": 10.5, "hr": 0.52},
        "os": {"median_treated": math.inf, "median_control": 40.3, "hr": 0.60},
    },
    "flatiron-liver": {
        "pfs": {"median_treated": None, "median_control": None, "hr": None},
        "os": {"median_treated": 30.1, "median_control": 16.8, "hr": 0.56},
    },
}
# Cohort sizes from the published shares of 551 patients: lung = lung only + both,
# liver = liver only + both.
SIZES = {
    "flatiron-lung": round(551 * (0.641 + 0.136)),
    "flatiron-liver": round(551 * (0.223 + 0.136)),
}
# Every subgroup patient has visceral disease, none bone-only disease, and every lung
# (liver) patient has lung (liver) metastases: constant columns cannot enter a model.
# Race and age bands are left out too (see the text).
PS_COVARIATES = [
    c for c in DEFAULT_COVARIATES if c not in ("visceral", "bone_only", "race", "age_group")
]
ORGAN = {"flatiron-lung": "liver_mets", "flatiron-liver": "lung_mets"}
print(f"REPS = {REPS}; cohort sizes {SIZES}; PS covariates {PS_COVARIATES}")

# %% [markdown]
# ## Calibration check: truths against the published targets
#
# As in notebook 1: the true control medians and marginal ATE log-HRs (exact engine) must
# match the targets within √2 × their error bound (|z| ≤ 3.29); calibration solves on the
# same engine, so they match to round-off.  The true
# treated medians were *not* targets; they follow from the control median, the HR and
# the Weibull shapes.

# %%
Z_CHECK = 3.29
truths = {name: simulator.truth(name) for name in SIZES}
rows = []
for name, tr in truths.items():
    sc = simulator.get_scenario(name)
    for outcome, (_, _, label) in OUTCOMES.items():
        targets = {
            "median_control": getattr(sc.outcomes, f"{outcome}_median_control"),
            "ate_log_hr": math.log(getattr(sc.outcomes, f"{outcome}_hr")),
        }
        for key, target in targets.items():
            value, mcse = tr[outcome].values[key], tr[outcome].mcse[key]
            rows.append(
                {
                    "subgroup": name,
                    "outcome": label,
                    "quantity": key,
                    "target": target,
                    "truth": value,
                    "MCSE": mcse,
                    "z": (value - target) / (math.sqrt(2) * mcse),
                }
            )
        rows.append(
            {
                "subgroup": name,
                "outcome": label,
                "quantity": "median_treated (not a target)",
                "target": PUBLISHED[name][outcome]["median_treated"],
                "truth": tr[outcome].median_treated,
                "MCSE": tr[outcome].mcse["median_treated"],
            }
        )
check = pd.DataFrame(rows).set_index(["subgroup", "outcome", "quantity"])
display(check.round(4))
bad = check[check["z"].abs() > Z_CHECK]
assert bad.empty, f"subgroup calibration drift: |z| > {Z_CHECK} in\n{bad}"
print(f"all targets within |z| <= {Z_CHECK}")

# %% [markdown]
# The targets are met.  The true treated medians are *not* the published ones: lung
# rwPFS about 19.5 months (published 16.5) and liver OS about 26 (published 30.1).  With
# shapes near 1 and proportional conditional hazards, a control median of 10.5 and a
# marginal HR of 0.52 imply a treated median near 10.5 / 0.52 ≈ 20; the published
# 16.5 vs 10.5 at HR 0.52 is not reproducible by such a model (the published medians come
# from arms of at most a few hundred patients, with wide intervals, and the HR from a
# different, adjusted model).  The scenarios match what they were asked to match —
# control median and HR — and the treated medians follow.
#
# ## One cohort of each subgroup
#
# Sizes from the published shares (lung 428, liver 198 patients; the paper's per-arm
# split within each subgroup is not used: treatment is drawn from the propensity model,
# about 60% treated).
#
# **Covariates.**  In subgroups of a few hundred patients, rare categories separate:
# with the full default set, the PS model of the liver subgroup (n = 198) fails to
# converge in about half of the cohorts, because a rare level (Asian or Hispanic, a
# handful of patients) falls entirely in one arm.  We therefore use age (linear), ECOG,
# number of sites, de novo disease and practice type; race (a weak confounder here:
# 7.0% vs 9.1% Black, with only a small effect on progression) and age bands (not in
# these scenarios' treatment model) are left out.  The adjusted Cox model adds the other
# organ's metastases.  The last section keeps every covariate and fits the PS by Firth's
# penalised likelihood instead, the other standard answer to separation.

# %%
cohorts, fits, weights = {}, {}, {}
for name, n in SIZES.items():
    df = simulator.simulate(name, n=n, seed=SEED)
    cohorts[name] = df
    ps = estimators.fit_propensity(df, "treated", PS_COVARIATES)
    fits[name] = {}
    for outcome, (time_col, event_col, _) in OUTCOMES.items():
        args = (df, time_col, event_col, "treated")
        fits[name][outcome] = {
            "sIPTW": estimators.siptw(*args, PS_COVARIATES, propensity=ps),
            "PSM": estimators.psm(*args, PS_COVARIATES, propensity=ps),
            "naive Cox": estimators.naive_cox(*args),
            "adjusted Cox": estimators.adjusted_cox(*args, [*PS_COVARIATES, ORGAN[name]]),
        }
    weights[name] = fits[name]["pfs"]["sIPTW"].diagnostics["analysis_weights"]
    k = int(df["treated"].sum())
    m = fits[name]["pfs"]["PSM"].diagnostics
    print(
        f"{name}: n = {n}, {k} P+L / {n - k} L; PSM {m['pairs']} pairs "
        f"({m['treated_unmatched']} treated unmatched); sIPTW ESS "
        f"{fits[name]['pfs']['sIPTW'].ess:.0f}"
    )


# %%
def fmt_median(km) -> str:
    lo, hi = km.median_ci()
    return f"{km.median():.1f} ({lo:.1f}–{hi:.1f})"


def fmt(x) -> str:
    return "–" if x is None else f"{x:.2f}" if isinstance(x, float) and x < 1 else f"{x}"


rows = []
for name, df in cohorts.items():
    tr = truths[name]
    for outcome, (time_col, event_col, label) in OUTCOMES.items():
        pub = PUBLISHED[name][outcome]
        curves = estimators.kaplan_meier_by_arm(df, time_col, event_col, "treated", weights[name])
        rows.append(
            {
                "subgroup": name,
                "outcome": label,
                "method": "published",
                "median P+L": fmt(pub["median_treated"]),
                "median L": fmt(pub["median_control"]),
                "HR (95% CI)": fmt(pub["hr"]),
            }
        )
        for method, est in fits[name][outcome].items():
            theta, mcse = tr.estimand(outcome, est.estimand)
            lo, hi = est.hr_ci
            rows.append(
                {
                    "subgroup": name,
                    "outcome": label,
                    "method": method,
                    "estimand": est.estimand,
                    "median P+L": fmt_median(curves[1]) if method == "sIPTW" else "",
                    "median L": fmt_median(curves[0]) if method == "sIPTW" else "",
                    "HR (95% CI)": f"{est.hr:.2f} ({lo:.2f}–{hi:.2f})",
                    "true HR ± MCSE": f"{math.exp(theta):.4f} ± {math.exp(theta) * mcse:.4f}",
                    "z vs truth": round((est.log_hr - theta) / est.se, 2),
                }
            )
        t_out = tr[outcome]
        rows.append(
            {
                "subgroup": name,
                "outcome": label,
                "method": "truth",
                "estimand": "ATE",
                "median P+L": f"{t_out.median_treated:.2f}",
                "median L": f"{t_out.median_control:.2f}",
                "HR (95% CI)": f"{math.exp(t_out.ate_log_hr):.4f}",
            }
        )
display(pd.DataFrame(rows).set_index(["subgroup", "outcome", "method"]).fillna(""))

# %% [markdown]
# Medians are from the sIPTW-weighted Kaplan–Meier curves (95% Brookmeyer–Crowley
# intervals; `inf` = not reached).  With a few hundred patients the HR intervals are
# wide: one cohort cannot tell the published HR from the truth apart, and neither could
# the published study (compare the interval widths with the gap between the published
# and the true HR).

# %%
ARMS = {1: ("P+L", "#0072b2"), 0: ("L", "#d55e00")}
fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharey=True)
for row, (name, df) in zip(axes, cohorts.items(), strict=True):
    for ax, (outcome, (time_col, event_col, label)) in zip(row, OUTCOMES.items(), strict=True):
        curves = estimators.kaplan_meier_by_arm(df, time_col, event_col, "treated", weights[name])
        for arm, (arm_name, colour) in ARMS.items():
            km = curves[arm]
            low, high = km.confidence_band()
            ax.step(km.time, km.survival, where="post", color=colour, label=arm_name)
            ax.fill_between(km.time, low, high, step="post", color=colour, alpha=0.15, lw=0)
            published = PUBLISHED[name][outcome]["median_treated" if arm else "median_control"]
            if published is not None and math.isfinite(published):
                ax.plot(published, 0.5, "o", color=colour, mec="black", ms=6)
        ax.axhline(0.5, color="0.7", lw=0.8)
        ax.set(xlim=(0, 54), ylim=(0, 1.02), title=f"{name}: {label}")
    row[0].set_ylabel("survival probability")
for ax in axes[1]:
    ax.set_xlabel("months from start of therapy")
axes[0, 1].legend(loc="upper right")
fig.suptitle("sIPTW-weighted Kaplan–Meier (dots: published medians)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Bias and coverage in each subgroup
#
# `REPS` cohorts of each subgroup's size, the four estimators with the covariates above,
# each scored against its own estimand (1,000 replicates by default: coverage MCSE about
# 0.7%; CI runs a handful).  One study per subgroup because their sizes differ.

# %%
tables, stores = {}, {}
for name, n in SIZES.items():
    study = Study(
        name=f"{name}-n{n}",
        scenarios=(name,),
        sample_sizes=(n,),
        reps=REPS,
        seed=SEED,
        covariates=tuple(PS_COVARIATES),
        estimator_options={"adjusted_cox": {"covariates": [*PS_COVARIATES, ORGAN[name]]}},
    )
    out = tempfile.mkdtemp(prefix=f"rwesim-{name}-")
    report = run_study(study, out, workers=2, progress=False, log=print)
    stores[name] = open_results(report.out_dir)
    tables[name] = summarize(stores[name])
performance = pd.concat(
    [pd.DataFrame(display_rows(t)) for t in tables.values()], ignore_index=True
).set_index(["condition", "outcome", "estimator"])
display(performance.drop(columns=["power", "rel. bias HR %"]))

# %% [markdown]
# ### Which replicates count: the two denominators
#
# Every measure above is over all replicates with a finite estimate, converged or not
# (*n_sim*; docs/design.md §5).  A fit flagged as not converged — here a PS model with
# quasi-separation on a rare level — still returns a finite estimate that an analyst
# would report, so dropping it would make the measures conditional on a data-dependent
# event and could hide the very bias a study should show.  `summarize` also reports every
# measure over the converged fits only (the `*_converged` columns, *n_converged*);
# *failed/nonconv* counts the fits with no finite estimate (which enter neither) and the
# finite but flagged ones.  Side by side for the two PS methods:

# %%
ESTIMATOR_LABELS = {"siptw": "sIPTW", "psm": "PSM"}


def denominators(table: pd.DataFrame) -> pd.DataFrame:
    """Bias and coverage of sIPTW / PSM over both denominators, with the counts."""
    t = table[table["estimator"].isin(list(ESTIMATOR_LABELS))]
    return pd.DataFrame(
        {
            "condition": t["label"],
            "outcome": t["outcome"].map({k: v[2] for k, v in OUTCOMES.items()}),
            "estimator": t["estimator"].map(ESTIMATOR_LABELS),
            "n_total": t["n_total"],
            "flagged": t["n_nonconverged"],
            "failed": t["n_failed"],
            "n_sim (finite)": t["n_sim"],
            "bias (finite)": t["bias"],
            "coverage (finite)": t["coverage"],
            "n_converged": t["n_converged"],
            "bias (converged)": t["bias_converged"],
            "coverage (converged)": t["coverage_converged"],
        }
    ).set_index(["condition", "outcome", "estimator"])


display(pd.concat([denominators(t) for t in tables.values()]).round(4))

# %%
for store in stores.values():
    results, truth_rows = store.read_results(), store.truths()
    condition = store.read_meta()["conditions"][0]
    display(estimate_distributions(results, truth_rows, [condition], "os"))

# %% [markdown]
# What we saw in a run of this notebook at the default 1,000 replicates per subgroup
# (seed 2022; each measure's MCSE in parentheses in the table; CI's 40 replicates cannot
# confirm these statements):
#
# * the subgroup cohorts are small, so empirical SEs are large — about 0.14–0.23 on the
#   log-HR scale for lung and 0.19–0.25 for liver, against 0.07–0.12 at n = 1,430 in
#   notebook 2 — and a bias has to be compared with its MCSE (EmpSE / √REPS) before it
#   means anything;
# * naive Cox is confounded, most for OS (about −0.14 to −0.16 on the log-HR scale, with
#   coverage well below 95%), as in the full Flatiron scenario;
# * in the lung subgroup (n = 428) sIPTW and PSM are unbiased within Monte Carlo error
#   and cover at about 94–95%; in the liver subgroup (n = 198) sIPTW, PSM and adjusted
#   Cox lie below their truths on average (about −0.01 to −0.035), beyond 2 MCSE for OS
#   and for adjusted Cox — the finite-sample bias of Cox estimates away from the null,
#   largest for adjusted Cox, which estimates the most coefficients — with coverage of
#   93–95%;
# * at these sizes the sandwich and model SEs are, if anything, a few percent *smaller*
#   than the empirical SEs: the conservativeness of the sIPTW robust SE in theory does
#   not show here;
# * with about 60% treated, 1:1 matching leaves at least a third of the treated
#   unmatched (there are only two controls for every three treated), so PSM estimates
#   the ATT among the matched and, discarding patients, is the least precise method
#   (largest EmpSE in every row);
# * *failed/nonconv*: even with the reduced covariate set, about 2% of the liver cohorts
#   (21 of 1,000) show quasi-complete separation in the PS model (sIPTW and PSM share
#   the flag).  Their finite estimates count in the measures (the default denominator)
#   and the converged-only measures are shown beside them; with so few flagged fits the
#   two agree well within Monte Carlo error.  In a real subgroup analysis, check
#   separation before trusting a PS model, or fit it by Firth's method (next section).

# %% [markdown]
# ## Separation with every PS covariate, and Firth's penalised propensity score
#
# Dropping race and the age bands avoided separation above but mis-specifies the PS model
# a little.  The alternative keeps the study's default PS covariates — the true treatment
# model's, race and age bands included (`DEFAULT_COVARIATES`; the study leaves out the
# columns a subgroup makes constant, visceral and bone-only) — and changes how the model
# is fitted.  Both subgroups at n = 551, the size of the whole published visceral cohort
# (as in the shipped validation report, docs/validation.md), sIPTW and PSM with the PS
# fitted by maximum likelihood (`ps_method="ml"`, the default) and by Firth's penalised
# likelihood (`ps_method="firth"`), set per estimator through the study's
# `estimator_options` (in a study TOML: `ps_method = "firth"` under
# `[study.estimator_options.siptw]` and `[study.estimator_options.psm]`).  The same seed
# gives both studies the same cohorts, so the two PS fits are compared replicate by
# replicate.

# %%
PS_METHODS = {"ml": "ML", "firth": "Firth"}
FIRTH_N = 551
ps_stores, ps_tables = {}, {}
for method in PS_METHODS:
    study = Study(
        name=f"subgroups-n{FIRTH_N}-{method}",
        scenarios=tuple(SIZES),
        sample_sizes=(FIRTH_N,),
        reps=REPS,
        seed=SEED,
        estimators=tuple(ESTIMATOR_LABELS),
        estimator_options={e: {"ps_method": method} for e in ESTIMATOR_LABELS},
    )
    out = tempfile.mkdtemp(prefix=f"rwesim-ps-{method}-")
    report = run_study(study, out, workers=2, progress=False, log=print)
    ps_stores[method] = open_results(report.out_dir)
    ps_tables[method] = summarize(ps_stores[method])
by_method = {PS_METHODS[m]: denominators(t) for m, t in ps_tables.items()}
comparison = pd.concat(by_method, names=["PS fit"]).reorder_levels(
    ["condition", "outcome", "estimator", "PS fit"]
)
comparison = comparison.reindex(  # each row of the ML table, then its Firth twin
    [(*row, m) for row in by_method["ML"].index for m in by_method]
)
comparison.insert(
    comparison.columns.get_loc("flagged") + 1,
    "flagged %",
    100 * comparison["flagged"] / comparison["n_total"],
)
display(comparison.round(4))

# %% [markdown]
# Both studies analyse the same cohorts, so the effect of the PS fit on the estimates is
# best seen replicate by replicate: the mean paired difference of the log-HR estimates,
# Firth − ML, with its Monte Carlo SE (the SD of the differences / √REPS), over the
# replicates where both are finite.

# %%
KEY = ["condition", "rep", "outcome", "estimator"]
paired = []
for method, store in ps_stores.items():
    res = store.read_results()
    if "measure" in res:
        res = res[res["measure"] == "log_hr"]
    paired.append(res.set_index(KEY)["estimate"].rename(PS_METHODS[method]))
paired = pd.concat(paired, axis=1).dropna()
paired["difference"] = paired["Firth"] - paired["ML"]
labels = {c["index"]: c["label"] for c in ps_stores["ml"].read_meta()["conditions"]}
difference = (
    paired.groupby(["condition", "outcome", "estimator"], sort=False)["difference"]
    .agg(mean="mean", mcse=lambda d: d.std(ddof=1) / math.sqrt(d.size), n="size")
    .rename(index=labels, level="condition")
    .rename(index={k: v[2] for k, v in OUTCOMES.items()}, level="outcome")
    .rename(index=ESTIMATOR_LABELS, level="estimator")
    .reindex(by_method["ML"].index)
)
display(difference.assign(z=difference["mean"] / difference["mcse"]).round(4))

# %%
# One PS fit per replicate serves both outcomes: count the flags on one outcome's rows.
flags = {}
for method, t in ps_tables.items():
    rows = t[t["outcome"] == "pfs"]
    flags[method] = (int(rows["n_nonconverged"].sum()), int(rows["n_total"].sum()))
    k, n = flags[method]
    print(f"{PS_METHODS[method]:>5}: {k} of {n} sIPTW / PSM fits flagged ({100 * k / n:.1f}%)")
k, n = flags["firth"]
assert k / n < 0.005, f"Firth PS: {k} of {n} fits flagged (expected below 0.5%)"

# %% [markdown]
# In a run of this notebook at the default 1,000 replicates (seed 2022) the ML fit was
# flagged in 5.8% of the lung and 4.3% of the liver cohorts (202 of 4,000 sIPTW / PSM
# fits, 5.0%) and the Firth fit in none (0 of 4,000; the cell above checks that fewer
# than 0.5% are flagged).  Bias and coverage barely move: coverage is 94–96% under both
# fits and both denominators, and ML's converged-only biases differ from its all-finite
# ones by at most 0.003.  One systematic difference shows in the paired comparison:
# Firth's sIPTW estimates for OS are lower by about 0.006 on the log-HR scale (dozens of
# paired MCSEs, yet only 3–4% of one estimate's SE), consistent with its penalty
# shrinking every PS coefficient slightly towards 0 — the removal of ML's small-sample
# bias away from 0 — which leaves a trace of the strong OS confounding (naive Cox: −0.14
# to −0.16 above) in the weights.  The rwPFS estimates (weakly confounded) move by less
# than 0.002, and PSM not beyond Monte Carlo error.
#
# **Why Firth.**  When a rare level (Asian 1.6% or Hispanic 2.6% of patients: a handful at
# n = 551) falls entirely or almost entirely in one arm, the maximum-likelihood estimate of
# its coefficient does not exist (Albert & Anderson 1984): the likelihood keeps rising as
# the coefficient runs off to ±∞, the fit is flagged (`converged=False`, a
# `SeparationWarning`), and those patients' scores are pushed towards 0 or 1.  Firth
# (1993) maximises the log-likelihood penalised by half the log-determinant of the Fisher
# information (Jeffreys' prior), `l(β) + log|I(β)| / 2`: the estimate is always finite,
# and its first-order (O(1/n)) small-sample bias is removed.  Heinze & Schemper (2002)
# showed that it solves separation in logistic regression, and it has become the standard
# remedy for separation in pharmacoepidemiology, where small subgroups, rare exposures and
# rare covariate levels are the rule (R `logistf`, SAS `PROC LOGISTIC` with `FIRTH`).
# Unlike a ridge or lasso penalty, which is tuned and pulls every score towards the
# treated share, Firth's penalty fades as the information grows: well-estimated
# coefficients barely move, and a separated level gets a large but finite coefficient,
# so weights and matches stay usable.  Pooling rare levels (the `pool_rare` option of
# `estimators.fit_propensity`, `siptw` and `psm`) is the other remedy; it changes the
# model, Firth only changes its fit.
#
# ML stays the default of the estimators and of studies: it is the published analysis of
# the full Flatiron cohort, where it does not separate (n = 1,430), and studies of v0.1
# reproduce bit for bit.  For small subgroups set `ps_method="firth"`.
#
# *References.*  Albert A, Anderson JA (1984). On the existence of maximum likelihood
# estimates in logistic regression models. Biometrika 71:1–10.  Firth D (1993). Bias
# reduction of maximum likelihood estimates. Biometrika 80:27–38.  Heinze G, Schemper M
# (2002). A solution to the problem of separation in logistic regression. Stat Med
# 21:2409–2419.
