"""The sIPTW variance study: every weighting x every variance, as estimator variants.

One definition, used by ``notebooks/05_variance.ipynb`` and by the validation report
(``rwesim validate``, section "Variance of sIPTW"): sIPTW with ATE, ATT and overlap
(ATO) weights, each with the robust (Lin-Wei), M-estimation, bootstrap and naive
(model-based) variance, on ``flatiron`` and ``poor-overlap`` at n = 1,430.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .spec import Study

WEIGHTINGS = ("ATE", "ATT", "ATO")
VARIANCES = {
    "robust": "robust",
    "mestimation": "M-estimation",
    "bootstrap": "bootstrap",
    "naive": "naive",
}
"""Variance option of ``siptw`` -> display name."""
SCENARIOS = ("flatiron", "poor-overlap")
N_BOOT = 200
SEED = 20161205


def variance_variants(n_boot: int = N_BOOT) -> dict[str, dict[str, Any]]:
    """``{"siptw_<weighting>_<variance>": {"base": "siptw", "estimand": ..., ...}}``."""
    variants: dict[str, dict[str, Any]] = {}
    for estimand in WEIGHTINGS:
        for variance in VARIANCES:
            options: dict[str, Any] = {"base": "siptw", "estimand": estimand, "variance": variance}
            if variance == "bootstrap":
                options["n_boot"] = n_boot
            variants[f"siptw_{estimand.lower()}_{variance}"] = options
    return variants


def variance_study(reps: int, n_boot: int = N_BOOT, seed: int = SEED) -> Study:
    """The study of :func:`variance_variants` on :data:`SCENARIOS`, ``reps`` each."""
    variants = variance_variants(n_boot)
    return Study(
        name="siptw-variance",
        scenarios=SCENARIOS,
        reps=reps,
        seed=seed,
        estimators=tuple(variants),
        variants=variants,
    )


def label_variance_rows(table: pd.DataFrame, n_boot: int = N_BOOT) -> pd.DataFrame:
    """``summarize`` output of :func:`variance_study` with ``scenario``, ``weighting``
    and ``variance`` (display name) columns added."""
    variants = variance_variants(n_boot)
    out = table.copy()
    out["scenario"] = out["label"].str.split(",").str[0]
    out["weighting"] = out["estimator"].map({k: v["estimand"] for k, v in variants.items()})
    out["variance"] = out["estimator"].map(
        {k: VARIANCES[v["variance"]] for k, v in variants.items()}
    )
    return out
