"""Exceptions and warnings of the simulation-study layer (study files, runner, results store).

User errors are :class:`StudyError` (a :class:`ValueError`); the command line reports them
in one line with exit status 2.  Anything else escaping the runner is a bug.
"""

from __future__ import annotations


class StudyError(ValueError):
    """An invalid study specification, study file or run request."""


class StoreError(StudyError):
    """The output directory cannot be used as asked."""


class StudyWarning(UserWarning):
    """Base class of the study layer's warnings."""
