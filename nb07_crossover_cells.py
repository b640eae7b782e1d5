# %% [markdown]
# ## Crossover at progression
#
# In PO25 patients could cross over to the other arm at progression.  The `po25-crossover`
# scenario models it (`crossover` block, *assumed* values, docs/guide/scenarios.md): half
# of the tamoxifen (control) patients who progress switch to letrozole — the fitter ones
# (ECOG 0, no visceral disease, younger) more often — and a switcher's post-progression
# death hazard is multiplied by 0.8 from the switch on.  rwPFS is untouched; OS now has
# two estimands (ICH E9(R1)):
#
# * **treatment policy** ("as randomised"): letrozole vs tamoxifen-with-crossover, what
#   the intention-to-treat analysis compares;
# * **hypothetical** ("had no one switched"): letrozole vs tamoxifen alone, the potential
#   outcomes of the treatments themselves (the scenario's calibrated OS medians 30 and
#   34 months are these).
#
# Both truths are exact (docs/truth.md): the crossing arm's post-progression survival is
# the mixture `(1 - p(x)) S12 + p(x) S12^0.8`, and the OS convolution splits in two.

# %%
import math
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

import simulator
from estimators import kaplan_meier
from estimators.crossover import ipcw_switch, itt_cox, per_protocol_cox, rpsftm_switch

XO = simulator.get_scenario("po25-crossover")
XO_TRUTH = simulator.truth(XO)
os_truth = XO_TRUTH.os.values
rows = {
    "marginal OS log-HR (admin. censoring)": ("ate_log_hr", "tp_ate_log_hr"),
    "median OS, tamoxifen (months)": ("median_control", "tp_median_control"),
    "median OS, letrozole (months)": ("median_treated", "tp_median_treated"),
    "OS at 24 months, tamoxifen": ("survival24_control", "tp_survival24_control"),
    "RMST difference at 36 months": ("rmst36_diff", "tp_rmst36_diff"),
}
display(
    pd.DataFrame(
        {
            "hypothetical (no crossover)": [os_truth[h] for h, _ in rows.values()],
            "treatment policy (as randomised)": [os_truth[t] for _, t in rows.values()],
        },
        index=list(rows),
    ).round(4)
)

# %% [markdown]
# Crossover lifts the control arm's OS (median 30.0 -> 32.3 months) and dilutes the
# as-randomised effect: log-HR -0.070 instead of -0.157.  One large simulated trial
# shows it: the observed control arm (with crossover) against its own potential outcome
# without crossover (`os_months_0`, uncensored).

# %%
big = simulator.simulate(XO, 20_000, 7, potential_outcomes=True)
fig, ax = plt.subplots(figsize=(6.5, 4))
ctrl, trt = big[big.treated == 0], big[big.treated == 1]
curves = {
    "letrozole (observed)": (trt.os_months, trt.os_event),
    "tamoxifen with crossover (observed)": (ctrl.os_months, ctrl.os_event),
    "tamoxifen, no crossover (potential)": (ctrl.os_months_0, np.ones(len(ctrl), int)),
}
for label, (t, e) in curves.items():
    km = kaplan_meier(np.asarray(t, float), np.asarray(e))
    ax.step(np.r_[0, km.time], np.r_[1, km.survival], where="post", label=label)
ax.set_xlabel("months from randomisation")
ax.set_ylabel("overall survival")
ax.set_xlim(0, 54)
ax.legend()
plt.show()
share = big.loc[(big.treated == 0) & big.progression_months.notna(), "crossover"].mean()
print(f"control patients with an observed progression who switched: {share:.1%}")

# %% [markdown]
# Four estimators, each labelled with the estimand it targets, on replicate trials of
# 907 patients (PO25's size).  `CROSSOVER_REPS` trials here (60 by default, so the
# section runs in well under a minute; the 1,000-trial run is in the estimators guide,
# `benchmarks/crossover_acceptance.py`).  Bias is shown against **both** truths, with its
# Monte Carlo SE; the switching model of IPCW uses age, ECOG and visceral disease.

# %%
CROSSOVER_REPS = int(os.environ.get("RWESIM_CROSSOVER_REPS", "60"))
ESTS = {
    "itt_cox": itt_cox,
    "per_protocol_cox": per_protocol_cox,
    "ipcw_switch": ipcw_switch,
    "rpsftm": rpsftm_switch,
}
truths = {
    "treatment policy": XO_TRUTH.estimand("os", "treatment_policy")[0],
    "hypothetical": XO_TRUTH.estimand("os", "hypothetical")[0],
}
fits = {k: [] for k in ESTS}
for seed in np.random.SeedSequence(2026).spawn(CROSSOVER_REPS):
    df = simulator.simulate(XO, 907, seed)
    for k, f in ESTS.items():
        e = f(df, "os_months", "os_event", "treated", ["age", "ecog", "visceral"])
        fits[k].append((e.estimand, e.log_hr, e.ci_low, e.ci_high))
table = []
for k, rows_ in fits.items():
    est, x, lo, hi = (np.array(v) for v in zip(*rows_, strict=True))
    x, lo, hi = x.astype(float), lo.astype(float), hi.astype(float)
    mcse = x.std(ddof=1) / math.sqrt(x.size)
    row = {"estimator": k, "estimand": est[0], "mean log-HR": x.mean()}
    for name, th in truths.items():
        row[f"bias vs {name}"] = f"{x.mean() - th:+.3f} ± {mcse:.3f}"
        row[f"coverage ({name})"] = ((lo <= th) & (th <= hi)).mean()
    table.append(row)
display(pd.DataFrame(table).set_index("estimator").round(3))

# %% [markdown]
# Which estimator recovers which estimand (1,000 trials, docs/guide/estimators.md):
#
# * **ITT Cox** is centred on the treatment-policy truth (bias -0.007 ± 0.003 under
#   administrative censoring, -0.005 ± 0.003 against the truth under the trial's own loss
#   to follow-up; coverage 94%) and is off the hypothetical one by +0.080.
# * **IPCW for switching** recovers the hypothetical effect (bias -0.008 ± 0.004;
#   coverage 94%): switching depends only on measured covariates, which the weights
#   model.
# * **Per-protocol censoring** is biased (+0.024 ± 0.004): the fitter patients switch,
#   so censoring them leaves the control arm with its worse-prognosis progressors —
#   informative censoring.
# * **RPSFTM** moves only part of the way from the ITT value (+0.034 ± 0.005 from the
#   hypothetical truth): it assumes one acceleration factor for every month on letrozole,
#   whereas here letrozole acts mainly by delaying progression and a switcher's benefit
#   after progression (hazard x 0.8) is a different effect.  Its unbiasedness rests on
#   that "common treatment effect" assumption, which randomisation cannot check.
#
# With `CROSSOVER_REPS` trials the table above carries Monte Carlo errors about
# `sqrt(1000 / CROSSOVER_REPS)` times larger.
