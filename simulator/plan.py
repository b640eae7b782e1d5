"""Turn a scenario (plus its solved parameters) into the numeric arrays the kernels read."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import _cohort_kernels as K
from .covariates import age_table, bone_only_probability, latent_thresholds
from .features import INDEX, N_FEATURES
from .scenario import Scenario

MONTHS_PER_YEAR = 12.0


@dataclass(frozen=True)
class Solved:
    """Parameters solved by calibration (or given raw): what a plan needs beyond the scenario.

    Attributes
    ----------
    treatment_coef : ndarray (N_FEATURES,)
        Log-odds coefficients after the strength multiplier.
    treatment_intercept : float
    missing_intercept : float
        ECOG-missingness intercept (MAR / MNAR); ignored under MCAR.
    scales : (3,) float
        Weibull scales of progression, death, post-progression death (per month^shape).
    gamma_pfs, gamma_os : float
        Conditional log-HRs of treatment on the first two transitions / the third.
    shapes : (3,) float, optional
        Weibull shapes when calibration solved one (``outcomes.os_survival_control``);
        None means the scenario's.
    response_intercepts : (2,) float, optional
        Response log-odds intercepts (control, treated) when the scenario has a
        ``response`` block (:mod:`simulator.response`); None without one.
    """

    treatment_coef: np.ndarray
    treatment_intercept: float
    missing_intercept: float
    scales: tuple[float, float, float]
    gamma_pfs: float
    gamma_os: float
    shapes: tuple[float, float, float] | None = None
    response_intercepts: tuple[float, float] | None = None


@dataclass(frozen=True)
class Plan:
    """Kernel arguments for one scenario (arrays are C-contiguous)."""

    age_table: np.ndarray
    chol: np.ndarray
    race_cum: np.ndarray
    S: np.ndarray
    W: np.ndarray  # (4, N_FEATURES): treatment log-odds, then the 3 transitions' log-HRs
    nz: np.ndarray  # union of W's non-zero columns, ascending
    om: np.ndarray
    lost_b: np.ndarray
    nz_lost: np.ndarray
    next_b: np.ndarray  # next-therapy censoring log-HRs (N_FEATURES,)
    nz_next: np.ndarray  # their non-zero columns (empty: no covariate dependence)
    X: np.ndarray = field(default_factory=lambda: np.zeros(K.N_X))  # crossover scalars (off)
    x_b: np.ndarray = field(default_factory=lambda: np.zeros(N_FEATURES))  # switching log-ORs
    nz_x: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def crossover(self) -> bool:
        """Whether patients switch arm at progression (:mod:`simulator.crossover`)."""
        return bool(self.X[K.X_ON])

    @property
    def patient_args(self) -> tuple[np.ndarray, ...]:
        """The arguments every per-patient kernel takes, in kernel order."""
        return (self.age_table, self.chol, self.race_cum, self.S, self.W, self.nz, self.om)


def coef_vector(mapping: dict[str, float]) -> np.ndarray:
    """Dense (N_FEATURES,) vector from a feature -> coefficient mapping."""
    v = np.zeros(N_FEATURES)
    for k, x in mapping.items():
        v[INDEX[k]] = x
    return v


def _nonzero(v: np.ndarray) -> np.ndarray:
    return np.flatnonzero(v).astype(np.int64)


def annual_to_monthly_rate(p: float) -> float:
    """Exponential rate per month of an annual event probability ``p``."""
    return -math.log1p(-p) / MONTHS_PER_YEAR


def _covariate_scalars(sc: Scenario, S: np.ndarray) -> None:
    cov = sc.covariates
    _, z0, inv_dz = age_table(cov.age)
    thr = latent_thresholds(cov)
    S[K.S_AGE_Z0], S[K.S_AGE_INV_DZ] = z0, inv_dz
    S[K.S_ECOG_T1], S[K.S_ECOG_T2] = thr["ecog_t1"], thr["ecog_t2"]
    S[K.S_SITES_T1], S[K.S_SITES_T2] = thr["sites_t1"], thr["sites_t2"]
    S[K.S_VISC_C] = thr["visc_c"]
    S[K.S_PAT_LUNG], S[K.S_PAT_LIVER] = cov.visceral_pattern[0], cov.visceral_pattern[1]
    S[K.S_BONE_Q] = bone_only_probability(cov)
    S[K.S_DENOVO], S[K.S_ACADEMIC] = cov.de_novo, cov.academic
    S[K.S_DFI_SCALE] = cov.dfi_median_years / math.log(2.0) ** (1.0 / cov.dfi_shape)
    S[K.S_DFI_INV_SHAPE] = 1.0 / cov.dfi_shape


def _missing_scalars(sc: Scenario, solved: Solved, S: np.ndarray) -> None:
    miss = sc.covariates.ecog_missing
    S[K.S_MISS_CONST] = miss.share if miss.mechanism == "mcar" else -1.0
    S[K.S_MISS_A0] = solved.missing_intercept
    S[K.S_MISS_AGE] = miss.age_log_or
    S[K.S_MISS_ACAD] = miss.academic_log_or
    S[K.S_MISS_ECOG] = miss.ecog_log_or


def _censoring_scalars(sc: Scenario, S: np.ndarray) -> None:
    c = sc.censoring
    S[K.S_ACCRUAL], S[K.S_CUTOFF] = c.accrual_months, c.cutoff_months
    S[K.S_LOST_RATE] = annual_to_monthly_rate(c.lost_per_year)
    S[K.S_LOST_HR_TRT] = c.lost_hr_treated
    S[K.S_NEXT_RATE] = annual_to_monthly_rate(c.next_therapy_per_year)
    S[K.S_NEXT_HR_TRT] = c.next_therapy_hr_treated
    S[K.S_VISIT], S[K.S_JITTER] = c.visit_interval_months, c.visit_jitter_months


def scenario_shapes(sc: Scenario) -> tuple[float, float, float]:
    """Weibull shapes of progression, death, post-progression death as the scenario gives."""
    o = sc.outcomes
    return (o.progression.shape, o.death.shape, o.post_progression_death.shape)


def outcome_matrix(
    sc: Scenario, scales, gamma_pfs: float, gamma_os: float, shapes=None
) -> np.ndarray:
    """om (3, 5): scale, 1/shape, gamma, frailty log-HR, shape == 1 flag per transition."""
    o = sc.outcomes
    trans = (o.progression, o.death, o.post_progression_death)
    shapes = scenario_shapes(sc) if shapes is None else shapes
    gammas = (gamma_pfs, gamma_pfs, gamma_os)
    om = np.zeros((3, 5))
    for k, (t, s, g, nu) in enumerate(zip(trans, scales, gammas, shapes, strict=True)):
        om[k] = (s, 1.0 / nu, g, t.frailty_log_hr, 1.0 if nu == 1.0 else 0.0)
    return om


def solved_outcome_matrix(sc: Scenario, solved: Solved) -> np.ndarray:
    """The outcome matrix of a calibrated scenario."""
    return outcome_matrix(sc, solved.scales, solved.gamma_pfs, solved.gamma_os, solved.shapes)


def build_plan(sc: Scenario, solved: Solved) -> Plan:
    """All kernel inputs for ``sc`` with the solved parameters."""
    cov = sc.covariates
    S = np.zeros(K.N_SCALARS)
    _covariate_scalars(sc, S)
    _missing_scalars(sc, solved, S)
    _censoring_scalars(sc, S)
    t = sc.treatment
    S[K.S_T_INTERCEPT] = solved.treatment_intercept
    S[K.S_T_FRAIL] = t.frailty_log_or * t.strength
    S[K.S_PS_LO], S[K.S_PS_HI] = t.ps_bounds
    o = sc.outcomes
    B = np.vstack(
        [coef_vector(tr.log_hr) for tr in (o.progression, o.death, o.post_progression_death)]
    )
    lost_b = coef_vector(sc.censoring.lost_log_hr)
    next_b = coef_vector(sc.censoring.next_therapy_log_hr)
    W = np.ascontiguousarray(np.vstack([solved.treatment_coef, B]), dtype=np.float64)
    table, _, _ = age_table(cov.age)
    race_cum = np.cumsum(cov.race)
    race_cum[-1] = 1.0
    return Plan(
        age_table=table,
        chol=np.ascontiguousarray(np.linalg.cholesky(cov.correlation_matrix())),
        race_cum=race_cum,
        S=S,
        W=W,
        nz=_nonzero(np.abs(W).sum(axis=0)),
        om=solved_outcome_matrix(sc, solved),
        lost_b=lost_b,
        nz_lost=_nonzero(lost_b),
        next_b=next_b,
        nz_next=_nonzero(next_b),
    )
