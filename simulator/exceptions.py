"""Exceptions and warnings of the cohort core (scenarios, calibration, truths, simulation).

Every *user* error is a :class:`ScenarioError` (a :class:`ValueError`) whose message names
the parameter, the offending value and what is allowed.  The command line turns these into
one line and exit status 2; any other exception is a bug and is shown with its traceback.
"""

from __future__ import annotations


class ScenarioError(ValueError):
    """An invalid scenario, scenario file or argument to a cohort-core function."""


class CalibrationError(ScenarioError):
    """A scenario's calibration target cannot be reached by its model.

    Attributes
    ----------
    target : str
        Dotted name of the target parameter (for example ``"outcomes.pfs_hr"``).
    value : float
        The requested value.
    reachable : tuple of float or None
        The range the model can produce, where it is known.
    """

    def __init__(
        self,
        message: str,
        *,
        target: str = "",
        value: float | None = None,
        reachable: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(message)
        self.target = target
        self.value = value
        self.reachable = reachable


class SimulatorWarning(UserWarning):
    """Base class of the cohort core's warnings (filter these, not all warnings)."""
