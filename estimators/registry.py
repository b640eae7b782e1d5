"""A registry of treatment-effect estimators that a simulation study can run by name.

An estimator is any callable ``func(df, time, event, treatment, covariates, **options)``
returning an :class:`EffectEstimate`, registered with the estimand it targets under
its default options.  The built-ins are ``"siptw"`` (ATE), ``"psm"`` (ATT),
``"naive_cox"`` (crude) and ``"adjusted_cox"`` (conditional), and the known-biased
controls ``"ps_cox"``, ``"ps_spline_cox"`` and ``"ps_strata_cox"`` (conditional on the
PS, declared against the ATE: :mod:`estimators.ps_controls`).  A user-registered
estimator runs exactly like them::

    def my_overlap_weights(df, time, event, treatment, covariates, **options):
        ...
        return EffectEstimate.from_fit("overlap", "ATE", log_hr, se, n, events)

    register_estimator("overlap", my_overlap_weights, estimand="ATE")
    get_estimator("overlap")(df, "pfs_months", "pfs_event", "treated", covariates)

The declared estimand says which truth the estimator should be judged against by
default; every returned :class:`EffectEstimate` also carries the estimand it actually
targeted (``siptw(..., estimand="ATT")`` returns ``"ATT"``).

**Shared work is a capability.**  When an estimator's signature has any of the keyword
parameters in :data:`SHARED_INPUTS`, a simulation study passes it the corresponding
work done once per data set (:class:`~estimators.shared.SharedInputs`):

``shared``
    the :class:`SharedInputs` object itself (ask it for ``outcome(time, event)``,
    ``design(covariates)``, ``propensity(covariates, method, pool_rare)``);
``propensity``
    the ML propensity model of the estimator's covariates;
``design``
    the design matrix of the estimator's covariates;
``outcome``
    the validated time / event / treatment arrays and time order (an
    :class:`~estimators.shared.Outcome`);
``balance``
    ``False``: skip balance tables nobody reads in a study.

``Estimator.accepts`` records which of them a function takes (read from its signature
at registration); ``Estimator.frame`` says whether it needs a pandas DataFrame (True
for any user estimator unless registered with ``frame=False``; the built-ins work on a
mapping of column arrays, so a study builds no DataFrame for them).

**Variants.**  :meth:`Estimator.variant` makes a registered estimator with fixed options
under a name of its own (``get_estimator("siptw").variant("siptw_att", estimand="ATT")``);
its declared estimand follows an ``estimand`` option.  A simulation study declares them
in its file (``[estimators.siptw_att]``, ``base = "siptw"``; see
:mod:`simulator.study.spec`); workers rebuild them from the base's name and the options,
so a variant runs on every executor its base runs on.

**Effect measures are a capability too.**  ``Estimator.measures`` lists the effect
measures (:data:`~estimators.estimands.MEASURES`) a function can report: declared at
registration (``register_estimator(..., measures=("rmst_diff", "surv_diff"))``), else
read from its signature (:func:`measures_of`: the default of a ``measure`` parameter,
``"log_hr"`` without one).  A simulation study asked for several measures
(``Study(measures=...)``) runs each estimator once per requested measure it lists and
passes it ``measure=`` (and ``horizon=``, months) as options.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from .effects import adjusted_cox, naive_cox, psm, siptw
from .estimands import ESTIMANDS, MEASURES
from .exceptions import EstimatorInputError
from .ipcw import check_ipcw_option_values
from .ps_controls import ps_cox, ps_spline_cox, ps_strata_cox
from .result import EffectEstimate

SHARED_INPUTS = ("shared", "propensity", "design", "outcome", "balance")
"""Keyword parameters through which an estimator accepts work shared per data set."""


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
    accepts : frozenset of str
        The :data:`SHARED_INPUTS` keyword parameters ``func`` takes.
    frame : bool
        True when ``func`` needs a pandas DataFrame (False: a mapping of column arrays
        will do).
    measures : tuple of str
        The effect measures ``func`` can report (:data:`~estimators.estimands.MEASURES`);
        any but ``"log_hr"`` through its ``measure=`` option.
    """

    name: str
    func: EstimatorFunction
    estimand: str
    accepts: frozenset[str] = field(default_factory=frozenset)
    frame: bool = True
    measures: tuple[str, ...] = ("log_hr",)

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

    def variant(self, name: str, **options: Any) -> Estimator:
        """This estimator with ``options`` fixed, under ``name``.

        The variant's declared estimand is its ``estimand`` option when the function
        takes one (``siptw``'s ``estimand="ATT"`` is scored against the ATT truth), else
        this estimator's.  Its measures are this estimator's, or the one its ``measure``
        option fixes.  Raises :class:`EstimatorInputError` for an empty name, an option
        the function does not take (see :func:`accepted_options`), an ``estimand`` not in
        :data:`~estimators.estimands.ESTIMANDS`, a ``measure`` this estimator does not
        report or bad ``ipcw*`` values (:func:`estimators.ipcw.check_ipcw_option_values`).
        """
        if not isinstance(name, str) or not name.strip():
            raise EstimatorInputError(f"name={name!r} is not allowed; use a non-empty string")
        accepted = accepted_options(self.func)
        if accepted is not None:
            for key in options:
                if key not in accepted:
                    raise EstimatorInputError(
                        f"{name}: unknown option {key!r} for {self.name}; it accepts "
                        f"{list(accepted)}"
                    )
        estimand = self.estimand
        if "estimand" in options and (accepted is None or "estimand" in accepted):
            estimand = options["estimand"]
            if estimand not in ESTIMANDS:
                raise EstimatorInputError(
                    f"{name}: estimand={estimand!r} is not allowed; use one of {ESTIMANDS}"
                )
        if any(k.startswith("ipcw") for k in options):  # IPCW values, before any fit
            try:
                check_ipcw_option_values(options)
            except EstimatorInputError as exc:
                raise EstimatorInputError(f"{name}: {exc}") from None
        measures = self.measures
        if "measure" in options and (accepted is None or "measure" in accepted):
            if options["measure"] not in self.measures:
                raise EstimatorInputError(
                    f"{name}: measure={options['measure']!r} is not allowed; {self.name} "
                    f"reports {list(self.measures)}"
                )
            measures = (options["measure"],)
        func = functools.partial(self.func, **options) if options else self.func
        return Estimator(name, func, estimand, self.accepts, self.frame, measures)


def accepted_options(func: EstimatorFunction) -> tuple[str, ...] | None:
    """Keyword options ``func`` takes besides its five data arguments (df, time, event,
    treatment, covariates), in signature order; None when it takes ``**options``
    (anything goes).  A ``functools.partial`` takes what its function takes."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # some builtins have no signature
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    positional = [p for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    data = {p.name for p in positional[:5]}
    return tuple(p.name for p in params if p.kind in kinds and p.name not in data)


_REGISTRY: dict[str, Estimator] = {}


def measures_of(func: EstimatorFunction) -> tuple[str, ...]:
    """The effect measures a function reports by its signature: the default of its
    ``measure`` parameter when that is one of :data:`~estimators.estimands.MEASURES`,
    else ``("log_hr",)`` (a function without a ``measure`` option is a log-HR
    estimator).  Declare more with ``register_estimator(..., measures=...)``."""
    try:
        param = inspect.signature(func).parameters.get("measure")
    except (TypeError, ValueError):  # some builtins have no signature
        return ("log_hr",)
    default = None if param is None else param.default
    return (default,) if isinstance(default, str) and default in MEASURES else ("log_hr",)


def check_measures(measures: Sequence[str], param: str = "measures") -> tuple[str, ...]:
    """A non-empty tuple of distinct measures from :data:`~estimators.estimands.MEASURES`."""
    if isinstance(measures, str) or not isinstance(measures, Sequence) or not measures:
        raise EstimatorInputError(
            f"{param}={measures!r} is not allowed; give a non-empty list of {list(MEASURES)}"
        )
    for m in measures:
        if m not in MEASURES:
            raise EstimatorInputError(
                f"{param}: measure {m!r} is not allowed; use some of {list(MEASURES)}"
            )
    if len(set(measures)) != len(measures):
        raise EstimatorInputError(
            f"{param}={list(measures)!r} is not allowed; it repeats a measure"
        )
    return tuple(measures)


def shared_inputs_of(func: EstimatorFunction) -> frozenset[str]:
    """The :data:`SHARED_INPUTS` that ``func`` accepts as keyword parameters."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # some builtins have no signature
        return frozenset()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(k for k in SHARED_INPUTS if k in params and params[k].kind in kinds)


def register_estimator(
    name: str,
    func: EstimatorFunction,
    estimand: str,
    *,
    replace: bool = False,
    frame: bool = True,
    measures: Sequence[str] | None = None,
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
    frame : bool
        False when ``func`` works on a mapping of column name to numpy array (or
        :class:`~estimators.validation.Coded`) as well as on a DataFrame.
    measures : sequence of str, optional
        The effect measures ``func`` reports (some of
        :data:`~estimators.estimands.MEASURES`; any but ``"log_hr"`` through a
        ``measure=`` option).  Default :func:`measures_of` (its signature says).

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
    if not isinstance(frame, bool):
        raise EstimatorInputError(f"frame={frame!r} is not allowed; use True or False")
    measures = measures_of(func) if measures is None else check_measures(measures)
    if measures != ("log_hr",) and (accepted := accepted_options(func)) is not None:
        if "measure" not in accepted:
            raise EstimatorInputError(
                f"measures={list(measures)!r} is not allowed for {name!r}: its function "
                "takes no measure= option"
            )
    _REGISTRY[name] = Estimator(name, func, estimand, shared_inputs_of(func), frame, measures)
    return _REGISTRY[name]


def unregister_estimator(name: str) -> None:
    """Remove a registered estimator (unknown names raise)."""
    get_estimator(name)
    del _REGISTRY[name]


def get_estimator(name: str) -> Estimator:
    """The estimator registered under ``name``, or the function at an import path
    ``"package.module:function"`` (:func:`estimator_from_path`, declared against the ATE)."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        if is_import_path(name):
            return estimator_from_path(name)
        raise EstimatorInputError(
            f"unknown estimator {name!r}; available: {available_estimators()}, or an import "
            "path 'package.module:function'"
        ) from None


DEFAULT_PATH_ESTIMAND = "ATE"
"""The estimand an estimator named by import path is scored against unless declared."""


def is_import_path(name: Any) -> bool:
    """True for a string of the form ``"package.module:function"``."""
    return isinstance(name, str) and ":" in name


def import_path_of(func: Any) -> str | None:
    """``"module:qualname"`` under which ``func`` can be imported again by another process
    (the same object comes back), else None: a lambda, a local function, a function
    defined in ``__main__`` (a script or a notebook) or an object without a name."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    if module == "__main__" or "<" in qualname:
        return None
    try:
        found = _attribute(importlib.import_module(module), qualname)
    except Exception:  # any failure means "not importable"
        return None
    return f"{module}:{qualname}" if found is func else None


def _attribute(obj: Any, qualname: str) -> Any:
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@functools.lru_cache(maxsize=256)
def estimator_from_path(path: str) -> Estimator:
    """The estimator at ``path`` = ``"package.module:function"``, named ``path``.

    The module is imported and the attribute looked up (dots in ``function`` walk
    attributes); the result must be callable and importable again under the same path
    (not a lambda or a function local to another).  Its declared estimand is
    :data:`DEFAULT_PATH_ESTIMAND`; a study declares another with a variant table
    (``path = ...``, ``estimand = ...``).  This is how a study ships a user's estimator
    to other processes: by the path, which every worker imports itself.

    Raises
    ------
    EstimatorInputError
        A malformed path, a module that cannot be imported (with the import error), a
        missing attribute, or an object that is not callable or not importable by name.
    """
    if not is_import_path(path) or path.count(":") != 1:
        raise EstimatorInputError(
            f"estimator path {path!r} is not allowed; use 'package.module:function'"
        )
    module_name, qualname = (x.strip() for x in path.split(":"))
    if not module_name or not qualname:
        raise EstimatorInputError(
            f"estimator path {path!r} is not allowed; use 'package.module:function'"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module's own error
        raise EstimatorInputError(
            f"estimator path {path!r}: cannot import module {module_name!r} "
            f"({type(exc).__name__}: {exc}); is it on sys.path / PYTHONPATH of every worker?"
        ) from None
    try:
        func = _attribute(module, qualname)
    except AttributeError:
        raise EstimatorInputError(
            f"estimator path {path!r}: module {module_name!r} has no attribute {qualname!r}"
        ) from None
    if not callable(func):
        raise EstimatorInputError(
            f"estimator path {path!r}: {type(func).__name__} object is not callable; name a "
            "function func(df, time, event, treatment, covariates, **options)"
        )
    if import_path_of(func) is None and not isinstance(func, functools.partial):
        raise EstimatorInputError(
            f"estimator path {path!r} names {func!r}, which other processes cannot import "
            "by name (a lambda or local function?); define it with def at module level"
        )
    return Estimator(
        path, func, DEFAULT_PATH_ESTIMAND, shared_inputs_of(func), True, measures_of(func)
    )


def available_estimators() -> tuple[str, ...]:
    """Registered names, in registration order (built-ins first)."""
    return tuple(_REGISTRY)


register_estimator("siptw", siptw, "ATE", frame=False)
register_estimator("psm", psm, "ATT", frame=False)
register_estimator("naive_cox", naive_cox, "crude", frame=False)
register_estimator("adjusted_cox", adjusted_cox, "conditional", frame=False)
# known-biased controls: conditional-on-PS HRs scored against the marginal ATE
register_estimator("ps_cox", ps_cox, "ATE", frame=False)
register_estimator("ps_spline_cox", ps_spline_cox, "ATE", frame=False)
register_estimator("ps_strata_cox", ps_strata_cox, "ATE", frame=False)

from .km_effects import KM_MEASURES, iptw_km, matched_km  # noqa: E402  (km_effects builds on effects)

register_estimator("iptw_km", iptw_km, "ATE", frame=False, measures=KM_MEASURES)
register_estimator("matched_km", matched_km, "ATT", frame=False, measures=KM_MEASURES)

from .gcomp import AIPTW_MEASURES, aiptw, gcomp  # noqa: E402

register_estimator("gcomp", gcomp, "ATE", frame=False, measures=KM_MEASURES)
register_estimator("aiptw", aiptw, "ATE", frame=False, measures=AIPTW_MEASURES)

# treatment switching in randomised trials (crossover at progression): the switching
# columns are options defaulting to the simulator's crossover columns
from .crossover import ipcw_switch, itt_cox, per_protocol_cox, rpsftm_switch  # noqa: E402

register_estimator("itt_cox", itt_cox, "treatment_policy", frame=False)
register_estimator("per_protocol_cox", per_protocol_cox, "hypothetical", frame=False)
register_estimator("ipcw_switch", ipcw_switch, "hypothetical", frame=False)
register_estimator("rpsftm", rpsftm_switch, "hypothetical", frame=False)

from .binary import (  # noqa: E402
    ADJUSTED_MEASURES,
    PROPORTION_MEASURES,
    adjusted_logistic,
    iptw_binary,
    matched_binary,
    naive_binary,
)

# binary outcome (objective response): a simulation study pairs them with outcome "response"
register_estimator("naive_binary", naive_binary, "crude", frame=False, measures=PROPORTION_MEASURES)
register_estimator("iptw_binary", iptw_binary, "ATE", frame=False, measures=PROPORTION_MEASURES)
register_estimator(
    "matched_binary", matched_binary, "ATT", frame=False, measures=PROPORTION_MEASURES
)
register_estimator(
    "adjusted_logistic", adjusted_logistic, "conditional", frame=False, measures=ADJUSTED_MEASURES
)

# time-varying treatment: ``treatment`` names the switch-time column (the switching
# scenario kind; simulator.study.kinds), not a 0/1 arm
from .switching import CCW_MEASURES, ccw, ever_switched_cox, landmark_cox, td_cox  # noqa: E402

register_estimator("ever_switched_cox", ever_switched_cox, "conditional")
register_estimator("td_cox", td_cox, "conditional")
register_estimator("landmark_cox", landmark_cox, "conditional")
register_estimator("ccw", ccw, "strategy", measures=CCW_MEASURES)
