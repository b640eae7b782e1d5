"""The fixed vocabulary of patient features used by the treatment, outcome and censoring models.

Every linear predictor in a scenario (treatment log-odds, transition log-hazards,
informative loss to follow-up) is a dot product of named coefficients with this
feature vector, which the kernels compute for each patient.  ``ecog_1`` /
``ecog_2plus`` are the *true* ECOG categories (what drives outcomes);
``ecog_obs_*`` are what the record shows, with ``unknown`` when ECOG is missing
(what clinicians and analysts see, hence what drives treatment choice).
"""

from __future__ import annotations

from .exceptions import ScenarioError

FEATURES: tuple[str, ...] = (
    "age10",  # (age - 65) / 10, i.e. per decade, centred at 65 years
    "age_50_64",
    "age_65_74",
    "age_75plus",
    "ecog_1",
    "ecog_2plus",
    "ecog_obs_1",
    "ecog_obs_2plus",
    "ecog_obs_unknown",
    "visceral",
    "lung",
    "liver",
    "bone_only",
    "sites",  # number of metastatic sites, 1, 2 or 3 (= 3 or more)
    "de_novo",
    "dfi_lt2",  # recurrent disease with a disease-free interval under 2 years
    "academic",
    "race_black",
    "race_asian",
    "race_hispanic",
    "race_other",
    "race_not_documented",
)
INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURES)}
N_FEATURES = len(FEATURES)

RACES: tuple[str, ...] = ("white", "black", "asian", "hispanic", "other", "not_documented")
ECOG_LEVELS: tuple[str, ...] = ("0", "1", "2+", "unknown")
AGE_GROUPS: tuple[str, ...] = ("18-49", "50-64", "65-74", "75+")
PFS_REASONS: tuple[str, ...] = ("progression", "death", "admin", "lost", "next_therapy")
OS_REASONS: tuple[str, ...] = ("death", "admin", "lost")

# Latent Gaussian-copula components that may be correlated (see Covariates.correlation).
LATENT: tuple[str, ...] = ("age", "ecog", "sites", "visceral")


def check_feature_names(names: object, param: str) -> None:
    """Raise ScenarioError if any key of ``names`` is not a known feature."""
    unknown = [k for k in names if k not in INDEX]  # type: ignore[union-attr]
    if unknown:
        raise ScenarioError(
            f"{param} has unknown feature(s) {unknown}; allowed features are {list(FEATURES)}"
        )
