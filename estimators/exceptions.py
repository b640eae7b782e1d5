"""Exceptions and warnings raised by the estimators.

Every user error is a :class:`ValueError` (or a subclass) whose message names the
parameter, the offending value and what is allowed.  Fits that can run but are
unreliable return ``converged=False`` and a warning instead of raising.
"""

from __future__ import annotations


class EstimatorInputError(ValueError):
    """Invalid data or arguments passed to an estimator."""


class SeparationError(EstimatorInputError):
    """Treatment is perfectly predicted by the covariates (complete separation)."""


class NoOverlapError(EstimatorInputError):
    """No usable overlap between arms (for example zero matched pairs)."""


class ConvergenceWarning(UserWarning):
    """An iterative fit stopped before meeting its convergence criterion."""


class SeparationWarning(UserWarning):
    """Quasi-complete separation: some propensity scores are numerically 0 or 1."""
