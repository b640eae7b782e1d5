"""A registry of treatment-effect estimators that a simulation study can run by name.

An estimator is any callable ``func(df, time, event, treatment, covariates, **options)``
returning an :class:`EffectEstimate`, registered with the estimand it targets under
its default options.  The four built-ins are ``"siptw"`` (ATE), ``"psm"`` (ATT),
``"naive_cox"`` (crude) and ``"adjusted_cox"`` (conditional).  A user-registered
estimator runs exactly like them::

    def my_overlap_weights(df, time, event, treatment, covariates, **options):
        ...
        return EffectEstimate.from_fit("overlap", "ATE", log_hr, se, n, events)

    register_estimator("overlap", my_overlap_weights, estimand="ATE")
    get_estimator("overlap")(df, "pfs_months", "pfs_event", "treated", covariates)

The declared estimand says which truth the estimator should be judged against by
default; every returned :class:`EffectEstimate` also carries the estimand it actually
targeted (``siptw(..., estimand="ATT")`` returns ``"ATT"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from .effects import adjusted_cox, naive_cox, psm, siptw
from .estimands import ESTIMANDS
from .exceptions import EstimatorInputError
from .result import EffectEstimate


class EstimatorFunction(Protocol):
    """Signature every registered estimator follows."""

    def __call__(
        self,
        df: pd.DataFrame,
        time: str,
        event: str,
        treatment: str,
        covariates: Sequence[str],
        **options: Any,
    ) -> EffectEstimate: ...


@dataclass(frozen=True)
class Estimator:
    """A registered estimator: call it like the function it wraps.

    Attributes
    ----------
    name : str
    func : EstimatorFunction
    estimand : str
        One of :data:`estimators.estimands.ESTIMANDS`.
    """

    name: str
    func: EstimatorFunction
    estimand: str

    def __call__(
        self,
        df: pd.DataFrame,
        time: str,
        event: str,
        treatment: str,
        covariates: Sequence[str],
        **options: Any,
    ) -> EffectEstimate:
        """Run the estimator; its result must be an :class:`EffectEstimate`."""
        result = self.func(df, time, event, treatment, covariates, **options)
        if not isinstance(result, EffectEstimate):
            raise TypeError(
                f"estimator {self.name!r} returned {type(result).__name__}, not EffectEstimate"
            )
        return result


_REGISTRY: dict[str, Estimator] = {}


def register_estimator(
    name: str, func: EstimatorFunction, estimand: str, *, replace: bool = False
) -> Estimator:
    """Register ``func`` under ``name``.

    Parameters
    ----------
    name : str
        Non-empty; must not be taken unless ``replace=True``.
    func : callable
        ``func(df, time, event, treatment, covariates, **options) -> EffectEstimate``.
    estimand : str
        The estimand ``func`` targets with default options.
    replace : bool
        Allow overwriting an existing registration.

    Returns
    -------
    Estimator
    """
    if not isinstance(name, str) or not name.strip():
        raise EstimatorInputError(f"name={name!r} is not allowed; use a non-empty string")
    if not callable(func):
        raise EstimatorInputError(f"func={func!r} is not callable")
    if estimand not in ESTIMANDS:
        raise EstimatorInputError(f"estimand={estimand!r} is not allowed; use one of {ESTIMANDS}")
    if name in _REGISTRY and not replace:
        raise EstimatorInputError(
            f"an estimator named {name!r} is already registered; pass replace=True to overwrite"
        )
    _REGISTRY[name] = Estimator(name, func, estimand)
    return _REGISTRY[name]


def unregister_estimator(name: str) -> None:
    """Remove a registered estimator (unknown names raise)."""
    get_estimator(name)
    del _REGISTRY[name]


def get_estimator(name: str) -> Estimator:
    """The estimator registered under ``name``."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise EstimatorInputError(
            f"unknown estimator {name!r}; available: {available_estimators()}"
        ) from None


def available_estimators() -> tuple[str, ...]:
    """Registered names, in registration order (built-ins first)."""
    return tuple(_REGISTRY)


register_estimator("siptw", siptw, "ATE")
register_estimator("psm", psm, "ATT")
register_estimator("naive_cox", naive_cox, "crude")
register_estimator("adjusted_cox", adjusted_cox, "conditional")
