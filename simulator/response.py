"""Objective response: a binary best-response outcome tied to progression (docs/truth.md).

Patient ``i`` under arm ``a`` (0 control, 1 treated) responds with probability

    p_a(x_i, f_i) = expit(alpha_a + x_i . beta + lambda * f_i)

where ``x`` is the feature vector of :mod:`simulator.features`, ``beta`` the scenario's
``response.log_or``, ``f`` the latent frailty (standard normal, never seen by estimators)
and ``lambda`` = ``response.frailty_log_or``.  The frailty also multiplies the transition
hazards (``outcomes.*.frailty_log_hr``), so with ``lambda < 0`` and a positive progression
loading responders progress later: the association is a *shared latent term*, and the
rwPFS / OS model, its calibration and the exact truth engine are untouched given the
frailty.  The conditional log odds ratio of treatment is ``alpha_1 - alpha_0``.

Draws: the cohort kernel is not involved.  After it has run, chunk ``c`` of the cohort
draws one uniform per patient from its own generator
``SeedSequence(entropy, spawn_key=root.spawn_key + (c, RESPONSE_STREAM))`` (the kernel
uses streams 0-2 of each chunk), and ``response = u < p_A``; the potential responses
``u < p_0`` and ``u < p_1`` share the uniform.  A scenario without a ``response`` block
draws nothing, so its cohorts are bit-identical to those before response existed.

Calibration (:func:`calibrate_intercepts`) solves ``alpha_0`` and ``alpha_1`` so that the
population averages of ``p_0`` and ``p_1`` are the targets; the truths
(:func:`response_truth`) are exact averages of the known probabilities over the truth
engine's covariate sample: no Bernoulli noise, only covariate-sampling error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logit

from . import _cohort_kernels as K
from .exceptions import CalibrationError
from .features import FEATURES, INDEX
from .scenario import Response
from .streams import SeedLike, as_seed_sequence, chunk_generator, n_chunks

RESPONSE_STREAM = 1_000
"""Stream index of the response uniforms in each chunk's spawn key (the kernel's are 0-2)."""

POPULATIONS = ("ATE", "ATT", "ATC", "ATO", "ATM")


# ---- the model ---------------------------------------------------------------------------
def feature_columns(r: Response) -> tuple[str, ...]:
    """Features with a non-zero response log-OR, in :data:`FEATURES` order."""
    return tuple(f for f in FEATURES if r.log_or.get(f, 0.0) != 0.0)


def linear_predictor(r: Response, feats: np.ndarray, frailty: np.ndarray) -> np.ndarray:
    """``x . beta + lambda * frailty`` (no intercept), float64 of shape (n,).

    ``feats`` is (n, N_FEATURES) in :data:`FEATURES` order; ``frailty`` (n,).
    """
    lp = np.zeros(frailty.shape[0])
    for name in feature_columns(r):
        lp += r.log_or[name] * np.asarray(feats[:, INDEX[name]], dtype=np.float64)
    if r.frailty_log_or:
        lp += r.frailty_log_or * np.asarray(frailty, dtype=np.float64)
    return lp


def probabilities(intercepts: Sequence[float], lp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p_0, p_1): response probabilities (n,) under control and treatment."""
    return expit(intercepts[0] + lp), expit(intercepts[1] + lp)


def calibrate_intercepts(
    r: Response, feats: np.ndarray, frailty: np.ndarray
) -> tuple[tuple[float, float], dict[str, float]]:
    """Intercepts (alpha_0, alpha_1) reproducing the population response probabilities.

    Each is a monotone root of ``mean(expit(alpha + lp)) - target`` over the calibration
    population (``feats`` (n, N_FEATURES), ``frailty`` (n,)).  Raw ``intercepts`` are
    returned as given.  Also returns what they achieve (``response_probability_control``
    and ``_treated``).
    """
    lp = linear_predictor(r, feats, frailty)
    if r.intercepts is not None:
        alphas = (float(r.intercepts[0]), float(r.intercepts[1]))
    else:
        alphas = tuple(
            _intercept(lp, target, name)
            for target, name in (
                (r.probability_control, "response.probability_control"),
                (r.probability_treated, "response.probability_treated"),
            )
        )
    p0, p1 = probabilities(alphas, lp)
    reached = {
        "response_probability_control": float(p0.mean()),
        "response_probability_treated": float(p1.mean()),
    }
    return (alphas[0], alphas[1]), reached


def _intercept(lp: np.ndarray, target: float, name: str) -> float:
    def gap(a: float) -> float:
        return float(np.mean(expit(a + lp))) - target

    lo, hi = float(logit(target)) - 40.0, float(logit(target)) + 40.0
    if gap(lo) * gap(hi) > 0:  # only when the population's probabilities are degenerate
        raise CalibrationError(
            f"{name}={target!r} cannot be reached with the response model's log-ORs",
            target=name,
            value=target,
        )
    return float(brentq(gap, lo, hi, xtol=1e-13, rtol=4 * np.finfo(float).eps))


# ---- the cohort ---------------------------------------------------------------------------
def _feature(name: str, floats: np.ndarray, ints: np.ndarray) -> np.ndarray:
    """One feature of every patient from the cohort kernel's output rows (as the kernel's
    ``_features`` computes it)."""
    group = {"age_50_64": 1, "age_65_74": 2, "age_75plus": 3}
    ecog = {"ecog_1": 1, "ecog_2plus": 2}
    ecog_obs = {"ecog_obs_1": 1, "ecog_obs_2plus": 2, "ecog_obs_unknown": 3}
    race = {
        "race_black": 1,
        "race_asian": 2,
        "race_hispanic": 3,
        "race_other": 4,
        "race_not_documented": 5,
    }
    binary = {
        "visceral": K.I_VISCERAL,
        "lung": K.I_LUNG,
        "liver": K.I_LIVER,
        "bone_only": K.I_BONE,
        "sites": K.I_SITES,
        "de_novo": K.I_DENOVO,
        "academic": K.I_ACADEMIC,
    }
    if name == "age10":
        return (floats[K.F_AGE] - 65.0) / 10.0
    if name in group:
        return (ints[K.I_AGE_GROUP] == group[name]).astype(np.float64)
    if name in ecog:
        return (ints[K.I_ECOG_TRUE] == ecog[name]).astype(np.float64)
    if name in ecog_obs:
        return (ints[K.I_ECOG_OBS] == ecog_obs[name]).astype(np.float64)
    if name in race:
        return (ints[K.I_RACE] == race[name]).astype(np.float64)
    if name == "dfi_lt2":
        return ((ints[K.I_DENOVO] == 0) & (floats[K.F_DFI] < 2.0)).astype(np.float64)
    return ints[binary[name]].astype(np.float64)


def cohort_features(floats: np.ndarray, ints: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Features ``names`` of every patient of a cohort, (n, len(names)) float64, from the
    kernel's output rows ``floats`` (N_FLOAT_OUT, n) and ``ints`` (N_INT_OUT, n)."""
    out = np.empty((floats.shape[1], len(names)))
    for j, name in enumerate(names):
        out[:, j] = _feature(name, floats, ints)
    return out


def draw_response(
    r: Response,
    intercepts: Sequence[float],
    floats: np.ndarray,
    ints: np.ndarray,
    seed: SeedLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Observed and potential responses of a simulated cohort.

    Parameters
    ----------
    r : Response
    intercepts : (alpha_0, alpha_1)
        The calibrated intercepts (``Solved.response_intercepts``).
    floats, ints : ndarray
        The cohort kernel's output rows (``CohortArrays.floats`` / ``.ints``).
    seed : int or SeedSequence
        The cohort's seed (the root of its chunk streams).

    Returns
    -------
    response : ndarray (n,) int8
        1 = objective response under the assigned arm.
    potential : ndarray (2, n) int8
        Responses under control (row 0) and treatment (row 1), same uniform.
    """
    root = as_seed_sequence(seed)
    n = floats.shape[1]
    u = np.empty(n)
    for c in range(n_chunks(n)):
        start, stop = c * K.CHUNK, min(n, (c + 1) * K.CHUNK)
        u[start:stop] = chunk_generator(root, c, RESPONSE_STREAM).random(stop - start)
    names = feature_columns(r)
    lp = np.zeros(n)
    if names:
        lp += cohort_features(floats, ints, names) @ np.array([r.log_or[f] for f in names])
    if r.frailty_log_or:
        lp += r.frailty_log_or * floats[K.F_FRAILTY]
    p0, p1 = probabilities(intercepts, lp)
    potential = np.empty((2, n), dtype=np.int8)
    potential[0] = u < p0
    potential[1] = u < p1
    treated = ints[K.I_TREATED].astype(bool)
    return np.where(treated, potential[1], potential[0]).astype(np.int8), potential


# ---- truths ---------------------------------------------------------------------------------
def _weights(ps: np.ndarray, population: str) -> np.ndarray:
    return {
        "ATE": lambda: np.ones_like(ps),
        "ATT": lambda: ps,
        "ATC": lambda: 1.0 - ps,
        "ATO": lambda: ps * (1.0 - ps),
        "ATM": lambda: np.minimum(ps, 1.0 - ps),
    }[population]()


def _marginal(p0: np.ndarray, p1: np.ndarray, ps: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    for pop in POPULATIONS:
        w = _weights(ps, pop)
        q0, q1 = float(w @ p0 / w.sum()), float(w @ p1 / w.sum())
        k = pop.lower()
        out[f"{k}_probability_control"] = q0
        out[f"{k}_probability_treated"] = q1
        out[f"{k}_risk_diff"] = q1 - q0
        out[f"{k}_log_or"] = float(logit(q1) - logit(q0))
    return out


def conditional_log_or(p0: np.ndarray, p1: np.ndarray, X: np.ndarray) -> float:
    """Treatment coefficient of the population-limit logistic regression of the potential
    responses on (1, arm, X): the root of the expected score on the stacked population
    (both potential outcomes of every patient) with the probabilities as fractional
    outcomes.  ``X`` (n, q), constant columns dropped."""
    n = p0.size
    X = X[:, [j for j in range(X.shape[1]) if np.ptp(X[:, j]) > 0]] if X.size else X
    Xs = np.vstack([X, X]) if X.size else np.zeros((2 * n, 0))
    D = np.column_stack([np.ones(2 * n), np.repeat([0.0, 1.0], n), Xs])
    y = np.concatenate([p0, p1])
    beta = np.zeros(D.shape[1])
    beta[0] = float(logit(y.mean()))
    for _ in range(100):
        mu = expit(D @ beta)
        score = D.T @ (y - mu)
        info = (D * (mu * (1.0 - mu))[:, None]).T @ D
        step = np.linalg.solve(info, score)
        beta += step
        if np.max(np.abs(step)) < 1e-13:
            return float(beta[1])
    raise CalibrationError("the conditional response log-OR did not converge (100 Newton steps)")


def response_truth(
    r: Response,
    intercepts: Sequence[float],
    feats: np.ndarray,
    frailty: np.ndarray,
    ps: np.ndarray,
    spans: Sequence[tuple[int, int]],
) -> tuple[dict[str, float], dict[str, float]]:
    """Response truths of a population and their sampling standard errors.

    Parameters
    ----------
    r, intercepts : the response model and its calibrated intercepts.
    feats : ndarray (n, N_FEATURES); frailty, ps : ndarray (n,)
        The truth population (covariates, frailty, true propensity score).
    spans : sequence of (start, stop)
        Independent parts of the population (the exact engine's scramblings, the Monte
        Carlo engine's batches): the standard error is their spread / sqrt(count).

    Returns
    -------
    values, mcse : dict
        ``{pop}_probability_control``, ``{pop}_probability_treated``, ``{pop}_risk_diff``
        and ``{pop}_log_or`` for pop in ate, att, atc, ato, atm (potential-outcome
        averages weighted as in :data:`POPULATIONS`); ``conditional_log_or`` (logistic
        regression on the response model's features, the frailty left out: what a
        correctly specified adjusted logistic regression converges to) and
        ``generating_log_or`` = alpha_1 - alpha_0.
    """
    lp = linear_predictor(r, feats, frailty)
    p0, p1 = probabilities(intercepts, lp)
    names = feature_columns(r)
    X = np.asarray(feats[:, [INDEX[f] for f in names]], dtype=np.float64)

    def stats(s: slice) -> dict[str, float]:
        out = _marginal(p0[s], p1[s], ps[s])
        out["conditional_log_or"] = conditional_log_or(p0[s], p1[s], X[s])
        return out

    values = stats(slice(None))
    parts = [stats(slice(a, b)) for a, b in spans]
    mcse = {k: float(np.std([p[k] for p in parts], ddof=1) / math.sqrt(len(parts))) for k in values}
    values["generating_log_or"] = float(intercepts[1] - intercepts[0])
    mcse["generating_log_or"] = 0.0
    return values, mcse
