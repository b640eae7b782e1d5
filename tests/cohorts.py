"""Small synthetic confounded survival cohorts for the estimator tests (numpy only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

COVARIATES = ["age", "ecog", "visceral", "n_met_sites"]


def confounded_cohort(
    n: int = 600,
    seed: int = 0,
    log_hr: float = -0.5,
    confounding: float = 1.0,
    censor: tuple[float, float] = (6.0, 48.0),
) -> pd.DataFrame:
    """Cohort where younger, fitter patients are treated more often and live longer.

    Treatment: logistic in age, ECOG (with an ``"unknown"`` level) and visceral disease,
    times ``confounding``; ``ps_true`` holds the true propensity score.  Outcome:
    exponential with conditional log-HR ``log_hr`` for treatment, censored uniformly on
    ``censor`` (months).
    """
    rng = np.random.default_rng(seed)
    age = rng.normal(67.0, 11.0, n)
    ecog = rng.choice(np.array(["0", "1", "2+", "unknown"]), n, p=[0.28, 0.25, 0.08, 0.39])
    visceral = rng.binomial(1, 0.39, n)
    sites = rng.choice([1, 2, 3], n, p=[0.47, 0.30, 0.23])
    lp = 0.15 + confounding * (
        -0.04 * (age - 67.0) + 0.4 * (ecog == "0") - 0.6 * (ecog == "2+") + 0.2 * visceral
    )
    ps = expit(lp)
    treated = rng.binomial(1, ps)
    hazard = 0.06 * np.exp(
        log_hr * treated + 0.02 * (age - 67.0) + 0.5 * (ecog == "2+") + 0.3 * visceral
    )
    t_event = rng.exponential(1.0 / hazard)
    t_cens = rng.uniform(*censor, n)
    return pd.DataFrame(
        {
            "treated": treated,
            "pfs_months": np.minimum(t_event, t_cens),
            "pfs_event": (t_event <= t_cens).astype(int),
            "ps_true": ps,
            "age": age,
            "ecog": ecog,
            "visceral": visceral,
            "n_met_sites": sites,
        }
    )
