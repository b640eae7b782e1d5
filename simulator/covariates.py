"""Deterministic derivations from the covariate model: age quantile table, latent thresholds,
bone-only probability and the population means of the features (for consistency checks).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr, ndtri
from scipy.stats import multivariate_normal

from .exceptions import ScenarioError
from .features import INDEX, LATENT, N_FEATURES, RACES
from .scenario import AgeModel, Covariates, Scenario

AGE_EDGES_INNER = (50.0, 65.0, 75.0)
AGE_GRID_Z = (-8.5, 8.5)
AGE_GRID_SIZE = 4097


def age_band_edges(age: AgeModel) -> np.ndarray:
    """Band edges in years: [min_age, 50, 65, 75, max_age]."""
    return np.array([age.min_age, *AGE_EDGES_INNER, age.max_age])


def age_quantile(age: AgeModel, u: np.ndarray) -> np.ndarray:
    """Inverse CDF of the population age distribution at probabilities ``u`` (years)."""
    edges = age_band_edges(age)
    shares = np.asarray(age.band_shares)
    cum = np.concatenate([[0.0], np.cumsum(shares)])
    cum[-1] = 1.0
    u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
    band = np.clip(np.searchsorted(cum, u, side="right") - 1, 0, 3)
    a = ndtr((edges[band] - age.shape_mean) / age.shape_sd)
    b = ndtr((edges[band + 1] - age.shape_mean) / age.shape_sd)
    within = np.where(
        shares[band] > 0, (u - cum[band]) / np.where(shares[band] > 0, shares[band], 1), 0.5
    )
    q = ndtri(np.clip(a + within * (b - a), 1e-300, 1 - 1e-16))
    return np.clip(age.shape_mean + age.shape_sd * q, edges[band], edges[band + 1])


def age_table(age: AgeModel) -> tuple[np.ndarray, float, float]:
    """Age as a function of the latent standard normal: (table, z0, 1/dz) for interpolation."""
    z = np.linspace(*AGE_GRID_Z, AGE_GRID_SIZE)
    table = age_quantile(age, ndtr(z))
    dz = (AGE_GRID_Z[1] - AGE_GRID_Z[0]) / (AGE_GRID_SIZE - 1)
    return np.ascontiguousarray(table), AGE_GRID_Z[0], 1.0 / dz


def age_mean(age: AgeModel) -> float:
    """Population mean age (years), by quadrature of the interpolated table."""
    table, _, _ = age_table(age)
    z = np.linspace(*AGE_GRID_Z, AGE_GRID_SIZE)
    w = np.exp(-0.5 * z**2)
    return float(np.sum(table * w) / np.sum(w))


def latent_thresholds(cov: Covariates) -> dict[str, float]:
    """Cut points on the latent normals for ECOG, sites and visceral disease."""
    e, s = cov.ecog, cov.sites
    return {
        "ecog_t1": float(ndtri(e[0])) if e[0] > 0 else -math.inf,
        "ecog_t2": float(ndtri(e[0] + e[1])) if e[0] + e[1] < 1 else math.inf,
        "sites_t1": float(ndtri(s[0])) if s[0] > 0 else -math.inf,
        "sites_t2": float(ndtri(s[0] + s[1])) if s[0] + s[1] < 1 else math.inf,
        "visc_c": float(ndtri(1.0 - cov.visceral))
        if 0 < cov.visceral < 1
        else (math.inf if cov.visceral == 0 else -math.inf),
    }


def single_nonvisceral_share(cov: Covariates) -> float:
    """P(not visceral and a single metastatic site) under the latent copula."""
    thr = latent_thresholds(cov)
    if cov.visceral == 1.0 or cov.sites[0] == 0.0:
        return 0.0
    if cov.visceral == 0.0:
        return cov.sites[0]
    r = cov.correlation_matrix()
    rho = r[LATENT.index("sites"), LATENT.index("visceral")]
    mvn = multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, rho], [rho, 1.0]])
    return float(mvn.cdf([thr["sites_t1"], thr["visc_c"]]))


def bone_only_probability(cov: Covariates) -> float:
    """P(bone-only | single non-visceral site), chosen to hit the bone-only share."""
    if cov.bone_only == 0.0:
        return 0.0
    base = single_nonvisceral_share(cov)
    if cov.bone_only > base + 1e-12:
        raise ScenarioError(
            f"covariates.bone_only={cov.bone_only!r} is not allowed: it exceeds the share of "
            f"patients with a single non-visceral site ({base:.3f}) implied by covariates.sites, "
            "covariates.visceral and their latent correlation"
        )
    return min(1.0, cov.bone_only / base)


def _organ_shares(cov: Covariates) -> dict[str, float]:
    """Population shares of lung and liver metastases.

    'Both' needs two sites: a visceral patient with a single site drawn as 'both' is
    split between lung only and liver only in proportion to their shares (the kernel's
    rule), so lung = v * p_lung + p_both * [P(v, >= 2 sites) + P(v, 1 site) * share].
    """
    p_lung, p_liver, p_both = cov.visceral_pattern
    v = cov.visceral
    v_single = max(0.0, cov.sites[0] - single_nonvisceral_share(cov))  # P(visceral, 1 site)
    single = p_lung + p_liver
    to_lung = p_lung / single if single > 0 else 1.0
    to_liver = p_liver / single if single > 0 else 1.0
    return {
        "lung": v * p_lung + p_both * (v - v_single + v_single * to_lung),
        "liver": v * p_liver + p_both * (v - v_single + v_single * to_liver),
    }


def population_feature_means(sc: Scenario) -> dict[str, float]:
    """Population means of the features that follow directly from the covariate model.

    Observed-ECOG features are included only under MCAR missingness (otherwise they
    depend on the solved missingness model).
    """
    cov = sc.covariates
    k = cov.dfi_shape
    scale = cov.dfi_median_years / math.log(2.0) ** (1.0 / k)
    means = {
        "age10": (age_mean(cov.age) - 65.0) / 10.0,
        "age_50_64": cov.age.band_shares[1],
        "age_65_74": cov.age.band_shares[2],
        "age_75plus": cov.age.band_shares[3],
        "ecog_1": cov.ecog[1],
        "ecog_2plus": cov.ecog[2],
        "visceral": cov.visceral,
        "bone_only": cov.bone_only,
        "sites": cov.sites[0] + 2 * cov.sites[1] + 3 * cov.sites[2],
        "de_novo": cov.de_novo,
        "dfi_lt2": (1.0 - cov.de_novo) * (1.0 - math.exp(-((2.0 / scale) ** k))),
        "academic": cov.academic,
        **_organ_shares(cov),
    }
    for i, race in enumerate(RACES[1:], start=1):
        means[f"race_{race}"] = cov.race[i]
    if cov.ecog_missing.mechanism == "mcar":
        m = cov.ecog_missing.share
        means["ecog_obs_1"] = (1 - m) * cov.ecog[1]
        means["ecog_obs_2plus"] = (1 - m) * cov.ecog[2]
        means["ecog_obs_unknown"] = m
    assert set(means) <= set(INDEX) and len(INDEX) == N_FEATURES
    return means


def _tolerance(feature: str) -> float:
    return {"age10": 0.05, "sites": 0.02}.get(feature, 0.01)


def check_arm_means(sc: Scenario) -> None:
    """Per-arm targets must agree with the population covariate model.

    For every feature with a ``treatment.arm_means`` entry whose population mean the
    covariate model fixes, fraction * treated + (1 - fraction) * control must equal it
    (within 0.01 for shares, 0.5 years for age, 0.02 for the number of sites).
    """
    pi = sc.treatment.fraction
    pop = population_feature_means(sc)
    for feat, (m1, m0) in sc.treatment.arm_means.items():
        if feat not in pop:
            continue
        implied = pi * m1 + (1 - pi) * m0
        if abs(implied - pop[feat]) > _tolerance(feat):
            raise ScenarioError(
                f"treatment.arm_means[{feat!r}]=({m1}, {m0}) implies a population mean of "
                f"{implied:.4f} at treatment.fraction={pi}, but the covariate model gives "
                f"{pop[feat]:.4f}; make them agree or give treatment.coefficients instead"
            )
