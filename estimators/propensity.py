"""Propensity scores: logistic regression by Newton's method, maximum likelihood or Firth.

The propensity score P(A = 1 | X) is the logistic regression of treatment on the
covariates' design matrix (see :func:`design_matrix`) plus an intercept, fitted by
maximum likelihood (``method="ml"``, the default) or by Firth's penalised likelihood
(``method="firth"``).  No ridge / lasso penalty is offered (scikit-learn's default
shrinks the scores towards the treated share and biases weighting and matching).

**Firth** (Firth 1993; Heinze & Schemper 2002; R ``logistf``) maximises
``l(beta) + log|I(beta)| / 2``.  Its estimate is finite even under separation, and its
first-order bias is removed; with a rare categorical level whose patients are all in
one arm it still gives that level a large but finite coefficient, so the weights and
matches stay usable.  With one binary covariate it equals the log odds ratio of the
2 x 2 table with 1/2 added to each cell.

**Rare levels** can instead (or in addition) be pooled: ``pool_rare=m`` merges every
categorical level with fewer than ``m`` patients in either arm into an ``"other"``
level, or into the reference level when the pooled level is still rare (see
:func:`pool_rare_levels`).

When the MLE does not exist the ML fit says so instead of returning scores of 0 or 1:

* **complete separation** (a linear combination of covariates predicts treatment
  perfectly) raises :class:`SeparationError` naming the covariates involved;
* **quasi-complete separation**, or any fitted score within ``PS_EPS`` of 0 or 1,
  returns ``converged=False`` with a :class:`SeparationWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linprog

from ._logistic_kernels import CONVERGED, SINGULAR, _firth_logistic, _newton_logistic
from .design_matrix import Design, design_matrix
from .exceptions import (
    ConvergenceWarning,
    EstimatorInputError,
    SeparationError,
    SeparationWarning,
)
from .scaling import power_of_two_scale, unscale
from .validation import (
    PS_METHODS,
    Data,
    check_covariates,
    check_frame,
    check_pool_rare,
    check_ps_method,
    check_treatment,
    float_column,
)

__all__ = ["PS_METHODS", "PropensityModel", "fit_logistic", "fit_propensity", "pool_rare_levels"]

PS_EPS = 1e-8
"""A fitted score closer than this to 0 or 1 counts as numerically 0 or 1."""

INTERCEPT = "Intercept"
FIRTH_MAX_STEP = 5.0
"""Largest change of any coefficient in one Firth step (R ``logistf``'s ``maxstep``)."""


@dataclass(frozen=True)
class LogisticFit:
    """Result of :func:`fit_logistic` (array path).

    Attributes
    ----------
    coef, se : ndarray, shape (p,)
        Coefficients and model-based standard errors (inverse observed information).
    cov : ndarray, shape (p, p)
    eta : ndarray, shape (n,)
        Linear predictor ``X @ coef`` (the logit of the fitted probability).
    prob : ndarray, shape (n,)
        Fitted probabilities ``expit(eta)``.
    loglik : float
    n_iter : int
    converged : bool
        False when the iteration limit was hit or the MLE does not exist
        (quasi-complete separation, fitted probabilities numerically 0 or 1).
    warnings : tuple of str
    """

    coef: np.ndarray
    se: np.ndarray
    cov: np.ndarray
    eta: np.ndarray
    prob: np.ndarray
    loglik: float
    n_iter: int
    converged: bool
    warnings: tuple[str, ...]


def _separating_direction(X: np.ndarray, y: np.ndarray, complete: bool) -> np.ndarray | None:
    """Sparse direction ``b`` separating the arms, or None when there is overlap.

    Complete: ``s_i x_i'b >= 1`` for all i (``s = 2y - 1``).  Quasi-complete:
    ``s_i x_i'b >= 0`` for all i with ``sum_i s_i x_i'b >= 1``.  The L1 norm of
    ``b`` is minimised so that only the covariates doing the separating are used.
    """
    S = (2.0 * y - 1.0)[:, None] * X
    p = X.shape[1]
    A = np.hstack([-S, S])  # b = b_plus - b_minus, both >= 0
    if complete:
        b_ub = -np.ones(len(y))
    else:
        A = np.vstack([A, A.sum(axis=0)])
        b_ub = np.r_[np.zeros(len(y)), -1.0]
    res = linprog(np.ones(2 * p), A_ub=A, b_ub=b_ub, bounds=(0, None), method="highs")
    if res.status != 0:
        return None
    return res.x[:p] - res.x[p:]


def _separating_columns(
    X: np.ndarray, y: np.ndarray, names: Sequence[str], b: np.ndarray, complete: bool
) -> list[str]:
    """Names of the covariates that separate the arms.

    Columns that separate on their own (all treated values above, or all below, every
    control value; ties allowed for quasi-complete separation) are named first;
    otherwise the columns used by the separating direction ``b``.
    """
    treated = y == 1.0
    alone = []
    for j, name in enumerate(names):
        t, c = X[treated, j], X[~treated, j]
        if name == INTERCEPT or t.min() == t.max() == c.min() == c.max():
            continue
        sep = (
            (t.min() > c.max() or t.max() < c.min())
            if complete
            else (t.min() >= c.max() or t.max() <= c.min())
        )
        if sep:
            alone.append(name)
    if alone:
        return alone
    big = np.abs(b) > 1e-9 * np.max(np.abs(b))
    return [n for n, keep in zip(names, big, strict=True) if keep and n != INTERCEPT]


def fit_logistic(
    X: np.ndarray,
    y: np.ndarray,
    *,
    names: Sequence[str] | None = None,
    method: str = "ml",
    tol: float = 1e-10,
    max_iter: int = 50,
) -> LogisticFit:
    """Logistic regression by Newton's method with step halving: MLE or Firth.

    Parameters
    ----------
    X : ndarray, shape (n, p)
        Design matrix **including** an intercept column if one is wanted.
    y : ndarray, shape (n,)
        Outcome in {0, 1}.
    names : sequence of str, optional
        Column names, used only in separation messages (default ``x0, x1, ...``).
    method : {"ml", "firth"}
        ``"ml"``: maximum likelihood.  ``"firth"``: Firth's penalised likelihood
        ``l(beta) + log|I(beta)| / 2`` (R ``logistf``), finite under separation.
    tol : float
        Convergence when every Newton step is below ``tol * max(1, max|coef|)``.
    max_iter : int

    Returns
    -------
    LogisticFit
        For ``"firth"``, ``loglik`` is the penalised log-likelihood.

    Raises
    ------
    SeparationError
        ``"ml"`` under complete separation: the MLE is infinite and every score 0 or 1.
    EstimatorInputError
        Collinear design columns, or ``X``/``y`` of the wrong shape or values.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise EstimatorInputError(
            f"X must be 2-d with one row per element of y; got X {X.shape}, y {y.shape}"
        )
    if not np.isfinite(X).all():
        raise EstimatorInputError("X contains NaN or inf; all values must be finite")
    check_treatment(y, "y")
    check_ps_method(method)
    if not (tol > 0 and int(max_iter) == max_iter and max_iter >= 1):
        raise EstimatorInputError(
            f"tol={tol!r}, max_iter={max_iter!r} not allowed; need tol > 0 and an integer "
            "max_iter >= 1"
        )
    names = list(names) if names is not None else [f"x{j}" for j in range(X.shape[1])]
    return _fit_logistic(X, y.astype(np.float64), names, method, float(tol), int(max_iter))


def _fit_logistic(
    X: np.ndarray,
    y: np.ndarray,
    names: list[str],
    method: str,
    tol: float,
    max_iter: int,
    ranges: tuple[np.ndarray, np.ndarray] | None = None,
    outcome: str | None = None,
) -> LogisticFit:
    """:func:`fit_logistic` on clean input (float64 ``X``, 0/1 float ``y``, both arms);
    ``ranges`` the columns' (min, max) if known; ``outcome``: the name of ``y`` when it is
    an outcome (warnings then speak of fitted probabilities, not propensity scores)."""
    d = power_of_two_scale(X, centred=False, ranges=ranges)
    Xs = X if d is None else X / d
    if method == "firth":
        coef, n_iter, status, ll, eta, prob, info = _firth_logistic(
            Xs, y, tol, max_iter, FIRTH_MAX_STEP
        )
    else:
        coef, n_iter, status, ll, eta, prob, info = _newton_logistic(Xs, y, tol, max_iter)
    singular = status == SINGULAR
    converged = status == CONVERGED
    if singular and n_iter == 0:
        raise EstimatorInputError(
            f"design columns are collinear (rank {np.linalg.matrix_rank(Xs)} < {X.shape[1]} "
            f"columns {names}); drop redundant covariates"
        )
    msgs: list[str] = []
    extreme = np.minimum(prob, 1.0 - prob) < PS_EPS
    if method == "firth":
        if not converged:
            msg = f"Firth logistic regression did not converge in {n_iter} iterations"
            warnings.warn(msg, ConvergenceWarning, stacklevel=4)
            msgs.append(msg)
    elif singular or not converged or extreme.any():
        msgs.append(_diagnose(Xs, y, names, n_iter, extreme, outcome))
        converged = False
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov = np.full_like(info, np.nan)
    coef, cov = unscale(coef, cov, d)
    se = np.sqrt(cov.diagonal())
    return LogisticFit(coef, se, cov, eta, prob, ll, n_iter, converged, tuple(msgs))


def _diagnose(
    X: np.ndarray,
    y: np.ndarray,
    names: list[str],
    n_iter: int,
    extreme: np.ndarray,
    outcome: str | None = None,
) -> str:
    """Raise on complete separation; otherwise warn and return the warning text
    (``outcome``: ``y`` is that outcome, not the treatment of a propensity model)."""
    what = "treatment" if outcome is None else outcome
    probs = "propensity score(s)" if outcome is None else "fitted probabilit(ies)"
    b = _separating_direction(X, y, complete=True)
    if b is not None:
        cols = _separating_columns(X, y, names, b, complete=True)
        if outcome is None:
            advice = (
                "every propensity score would be 0 or 1. Drop or coarsen these covariates, "
                "or restrict the cohort to the region of overlap"
            )
        else:
            advice = (
                "every fitted probability would be 0 or 1 and the odds ratios are infinite. "
                "Drop or coarsen these covariates"
            )
        raise SeparationError(
            f"complete separation: {what} is perfectly predicted by covariate(s) {cols}; " + advice
        )
    b = _separating_direction(X, y, complete=False)
    if b is not None:
        perfect = int(np.sum((2.0 * y - 1.0) * (X @ b) > 1e-9))
        msg = (
            f"quasi-complete separation: covariate(s) "
            f"{_separating_columns(X, y, names, b, complete=False)} "
            f"perfectly predict {what} for {perfect} patient(s); the MLE does not exist "
            f"and {int(extreme.sum())} {probs} are within {PS_EPS:g} of 0 or 1"
        )
    elif extreme.any():
        consequence = (
            "(near-violation of positivity); weights and matches are unreliable"
            if outcome is None
            else "(near-separation); the coefficients and their SEs are unreliable"
        )
        msg = f"{int(extreme.sum())} {probs} are within {PS_EPS:g} of 0 or 1 {consequence}"
    else:
        msg = f"logistic regression did not converge in {n_iter} Newton iterations"
        warnings.warn(msg, ConvergenceWarning, stacklevel=4)
        return msg
    warnings.warn(msg, SeparationWarning, stacklevel=4)
    return msg


@dataclass(frozen=True)
class PropensityModel:
    """A fitted propensity-score model.

    Attributes
    ----------
    ps : ndarray, shape (n,)
        Fitted P(A = 1 | X), in row order of the DataFrame.
    logit : ndarray, shape (n,)
        Linear predictor (logit of ``ps``), finite even where ``ps`` rounds to 0/1.
    fit : LogisticFit
        The logistic fit (arrays); ``coef`` and ``se`` are its pandas views, indexed
        by ``"Intercept"`` and the design names.
    converged : bool
    n_iter : int
    warnings : tuple of str
    design : Design
        The covariate design matrix (no intercept), reusable by other estimators.
    treatment : ndarray, shape (n,)
        The 0/1 treatment the model was fitted to (int8).
    covariates : tuple of str
        Column names the design was built from.
    method : {"ml", "firth"}
        How the model was fitted.
    """

    ps: np.ndarray
    logit: np.ndarray
    fit: LogisticFit
    converged: bool
    n_iter: int
    warnings: tuple[str, ...]
    design: Design
    treatment: np.ndarray
    covariates: tuple[str, ...]
    method: str = "ml"

    @property
    def names(self) -> tuple[str, ...]:
        """Design column names (without the intercept)."""
        return self.design.names

    # pandas views of ``fit``, built on access (fits in a study's loop pay nothing)
    @property
    def coef(self) -> pd.Series:
        """Coefficients indexed by ``"Intercept"`` and the design names."""
        return pd.Series(self.fit.coef, index=[INTERCEPT, *self.names], name="coef")

    @property
    def se(self) -> pd.Series:
        """Model-based SEs indexed like :attr:`coef`."""
        return pd.Series(self.fit.se, index=[INTERCEPT, *self.names], name="se")


def pool_rare_levels(design: Design, a: np.ndarray, min_count: int) -> Design:
    """Pool the rare levels of categorical covariates (``pool_rare=``).

    A level is *rare* when fewer than ``min_count`` patients of either arm have it.
    The rare levels of a covariate are merged into one level ``"c[other]"``; when that
    pooled level is itself rare it is merged into the reference level (its column is
    dropped).  The reference level (first present, no column) is never pooled.
    Numeric covariates are left alone.

    Parameters
    ----------
    design : Design
        With ``sources`` (as :func:`design_matrix` builds it).
    a : ndarray, shape (n,)
        0/1 treatment.
    min_count : int
        Minimum patients per arm a level needs to keep its own indicator.
    """
    treated = a.astype(bool)
    cols: list[np.ndarray] = []
    names: list[str] = []
    sources: list[str] = []

    def rare(x: np.ndarray) -> bool:
        return bool(x[treated].sum() < min_count or x[~treated].sum() < min_count)

    for src in dict.fromkeys(design.sources):
        idx = [j for j, s in enumerate(design.sources) if s == src]
        if design.names[idx[0]] == src:  # numeric: one column named after the covariate
            cols += [design.X[:, j] for j in idx]
            names += [design.names[j] for j in idx]
            sources += [src] * len(idx)
            continue
        pooled = np.zeros(design.X.shape[0])
        for j in idx:
            if rare(design.X[:, j]):
                pooled += design.X[:, j]
            else:
                cols.append(design.X[:, j])
                names.append(design.names[j])
                sources.append(src)
        if pooled.any() and not rare(pooled):
            cols.append(pooled)
            names.append(f"{src}[other]")
            sources.append(src)
    X = np.column_stack(cols) if cols else np.empty((design.X.shape[0], 0))
    return Design(np.ascontiguousarray(X), tuple(names), tuple(sources))


def fit_propensity(
    df: Data,
    treatment: str,
    covariates: Sequence[str],
    *,
    method: str = "ml",
    pool_rare: int | None = None,
) -> PropensityModel:
    """Fit the propensity score P(treatment = 1 | covariates) by logistic regression.

    Parameters
    ----------
    df : DataFrame or mapping of column name to array
        One row per patient.
    treatment : str
        0/1 treatment column; both arms must be present.
    covariates : sequence of str
        Numeric columns enter linearly; categorical / string columns are one-hot
        coded against a reference level (an ``"unknown"`` level is its own indicator).
    method : {"ml", "firth"}
        Maximum likelihood (default), or Firth's penalised likelihood: finite scores
        under (quasi-)separation, the pharmacoepidemiology standard for rare levels.
    pool_rare : int, optional
        Pool categorical levels with fewer than this many patients in either arm
        (see :func:`pool_rare_levels`).

    Returns
    -------
    PropensityModel

    Raises
    ------
    EstimatorInputError
        Missing or duplicate columns, NaN/inf, non-binary or single-arm treatment,
        collinearity, a bad ``method`` / ``pool_rare``.
    SeparationError
        Complete separation (``method="ml"``).
    """
    check_ps_method(method)
    check_pool_rare(pool_rare)
    covariates = check_covariates(covariates)
    check_frame(df, treatment=treatment)
    a = check_treatment(float_column(df, treatment, "treatment"), "treatment")
    return _fit_propensity(design_matrix(df, covariates), a, covariates, method, pool_rare)


def _fit_propensity(
    design: Design,
    a: np.ndarray,
    covariates: tuple[str, ...],
    method: str = "ml",
    pool_rare: int | None = None,
) -> PropensityModel:
    """:func:`fit_propensity` on a validated design and int8 treatment."""
    if pool_rare is not None:
        design = pool_rare_levels(design, a, pool_rare)
    names = (INTERCEPT, *design.names)
    X = np.empty((design.X.shape[0], design.X.shape[1] + 1))
    X[:, 0] = 1.0
    X[:, 1:] = design.X
    ranges = design.ranges_with(1.0, 1.0)
    fit = _fit_logistic(X, a.astype(np.float64), list(names), method, 1e-10, 50, ranges)
    return PropensityModel(
        ps=fit.prob,
        logit=fit.eta,
        fit=fit,
        converged=fit.converged,
        n_iter=fit.n_iter,
        warnings=fit.warnings,
        design=design,
        treatment=a,
        covariates=tuple(covariates),
        method=method,
    )
