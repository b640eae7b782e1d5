"""Exceptions and warnings raised by the estimators.

Every user error is an :class:`EstimatorInputError` (a :class:`ValueError`) whose message
names the parameter, the offending value and what is allowed.  Fits that can run but are
unreliable return ``converged=False`` and an :class:`EstimatorWarning` instead of raising.
Any other exception escaping an estimator is a bug.
"""

from __future__ import annotations


class EstimatorInputError(ValueError):
    """Invalid data or arguments passed to an estimator."""


class SeparationError(EstimatorInputError):
    """Treatment is perfectly predicted by the covariates (complete separation)."""


class NoOverlapError(EstimatorInputError):
    """No usable overlap between arms (for example zero matched pairs)."""


class EstimatorWarning(UserWarning):
    """Base class of the estimators' warnings (like statsmodels' ``ModelWarning``)."""


class ConvergenceWarning(EstimatorWarning):
    """An iterative fit stopped before meeting its convergence criterion."""


class SeparationWarning(EstimatorWarning):
    """Quasi-complete separation: some propensity scores are numerically 0 or 1."""


class NoCovariatesWarning(EstimatorWarning):
    """An adjusted estimator was given no covariates: its estimate is the crude contrast."""


class BootstrapWarning(EstimatorWarning):
    """Some bootstrap resamples failed to fit; they are counted, and excluded from the SE."""


class EstimatorCheckError(EstimatorInputError):
    """An estimator function breaks the contract :func:`estimators.check_estimator` checks."""
