"""A simulation study: a factorial grid of conditions x estimators x outcomes x replicates.

A *condition* is one scenario (a built-in name or a TOML file, with the study's fixed
``set`` changes and one combination of its ``vary`` grid applied) at one sample size.
Every estimator is run on every replicate of every condition for every outcome and
scored against its own estimand's truth (docs/design.md §3).

Study TOML::

    [study]
    name = "confounding-by-size"
    scenarios = ["flatiron"]            # names or paths to scenario TOML files
    sample_sizes = [500, 1430]
    reps = 1000
    seed = 2024
    estimators = ["siptw", "psm", "naive_cox", "adjusted_cox"]
    outcomes = ["pfs", "os"]
    covariates = ["age", "age_group", "ecog", ...]   # PS / adjustment covariates

    [study.set]                          # applied to every scenario
    "calibration.population" = 400000

    [study.vary]                         # factorial grid over scenario parameters
    "treatment.strength" = [0.5, 1.0, 2.0]

    [study.estimator_options.adjusted_cox]
    covariates = ["age", "ecog", "visceral", "liver_mets"]

    [estimators.siptw_att]               # a variant: a registered estimator with options
    base = "siptw"                       # under a name of its own, usable in `estimators`
    estimand = "ATT"

Variants (top-level ``[estimators.NAME]`` tables; ``Study(variants={"siptw_att":
{"base": "siptw", "estimand": "ATT"}})`` in Python) run their base with their options;
results are keyed by the variant's name, and its estimand follows its ``estimand``
option (so ``siptw_att`` is scored against the ATT truth).  A variant does not inherit
the base's ``estimator_options``; its own table holds all its options (``covariates``
included).  A variant may be defined and not run (``rwesim run -e`` picks by name).
Every estimator's fits depend only on the replicate's data and its own options: adding
a variant changes no other estimator's results.

``fit_timeout`` (seconds, default none) turns an estimator call that runs longer into a
failed row (``FitTimeout``); it interrupts Python code, not a running numba kernel.
Estimator options are checked against each estimator's signature, and covariates
against the cohort's columns, when the study is built (before any work).

Effect measures (``measures``, ``horizons``; none by default)::

    [study]
    estimators = ["siptw", "iptw_km", "gcomp", "aiptw"]
    measures = ["log_hr", "rmst_diff", "surv_diff"]   # estimators.estimands.MEASURES
    horizons = [12, 24]                               # months, for rmst_diff / surv_diff

Each estimator runs once per requested measure it reports (``Estimator.measures``, a
registry capability) and, for a measure with a horizon, once per horizon: above,
``siptw`` runs for the log-HR, ``iptw_km`` and ``gcomp`` four times (RMST and S(t)
differences at 12 and 24 months), ``aiptw`` twice (S(t) differences).  Every row is
scored against the truth of the same outcome, population, measure and horizon.
:meth:`Study.runs` is this expansion; a study without ``measures`` runs each estimator
once with its own options, as before.

Outcomes: ``pfs`` and ``os`` (the default) and, for scenarios with a ``response`` block,
the binary ``response``; a fit runs on an outcome when its measure fits it
(:func:`fits_outcome`: ``risk_diff`` / ``log_or`` on ``response``, the others on pfs / os).

``truth_censoring`` picks the marginal truths: ``"admin"`` (default, under administrative
censoring; docs/design.md §3) or ``"study"`` (under the scenario's whole censoring process,
which is what a consistent estimator converges to when the marginal hazards are not
proportional).
"""

from __future__ import annotations

import inspect
import itertools
import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from estimators.estimands import BINARY_MEASURES, ESTIMANDS, MEASURES, MEASURES_WITH_HORIZON
from estimators.exceptions import EstimatorInputError
from estimators.registry import (
    accepted_options,
    available_estimators,
    estimator_from_path,
    get_estimator,
    is_import_path,
)

from .. import _checks as ck
from ..catalog import resolve_scenario
from ..generate import COLUMN_ORDER
from ..scenario import Scenario
from .exceptions import StudyError
from .kinds import ScenarioKind, get_kind, is_kind

# outcome -> (time column, event column); display names.  ``response`` is binary: no time
# column, its estimators (binary measures) take time=None and the 0/1 column as event
OUTCOMES = {
    "pfs": ("pfs_months", "pfs_event"),
    "os": ("os_months", "os_event"),
    "response": (None, "response"),
}
BINARY_OUTCOMES = frozenset({"response"})
OUTCOME_NAMES = {"pfs": "rwPFS", "os": "OS"}
TREATMENT = "treated"
# cohort columns an estimator may adjust for: everything but treatment and outcomes
COVARIATE_COLUMNS = tuple(
    c
    for c in COLUMN_ORDER
    if c != TREATMENT
    and c not in {col for cols in OUTCOMES.values() for col in cols}
    and c not in ("pfs_reason", "os_reason")
)
# The true treatment model's covariates, as recorded: a correctly specified PS model.
DEFAULT_COVARIATES = (
    "age",
    "age_group",
    "ecog",
    "visceral",
    "bone_only",
    "n_met_sites",
    "de_novo",
    "academic",
    "race",
)
# Adjusted Cox adjusts for the study's covariates plus the organ sites that carry
# prognosis (unless its own ``covariates`` option says exactly what to adjust for).
EXTRA_COVARIATES = {"adjusted_cox": ("lung_mets", "liver_mets")}
DEFAULT_ESTIMATORS = ("siptw", "psm", "naive_cox", "adjusted_cox")
DEFAULT_OUTCOMES = ("pfs", "os")


def fits_outcome(measure: str, outcome: str) -> bool:
    """Whether a fit reporting ``measure`` runs on ``outcome``: binary measures
    (``risk_diff``, ``log_or``) on the binary outcome ``response``, the others on the
    times to event (pfs, os)."""
    return (measure in BINARY_MEASURES) == (outcome in BINARY_OUTCOMES)


DEFAULT_SAMPLE_SIZE = 1430  # the Flatiron cohort
DEFAULT_REPS = 1000
DEFAULT_SEED = 20_240_601


@dataclass(frozen=True)
class Condition:
    """One cell of the design grid."""

    index: int
    scenario: Scenario | ScenarioKind  # a kind runs on the generic path (kinds.py)
    n: int
    label: str
    factors: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EstimatorRun:
    """One fit per replicate and outcome: ``estimator`` reporting ``measure`` at ``horizon``.

    Attributes
    ----------
    estimator : str
        The study's name for the estimator (a registered name, a variant or a path).
    measure : str
        The effect measure its rows carry (:data:`estimators.estimands.MEASURES`).
    horizon : float or None
        Months, for ``rmst_diff`` / ``surv_diff``; None for a measure without one.
    options : dict
        The ``measure`` / ``horizon`` options this fit is given on top of the
        estimator's own (empty in a study without ``measures``).
    """

    estimator: str
    measure: str
    horizon: float | None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``"iptw_km (rmst_diff at 24 months)"``; the bare name for a log-HR."""
        if self.measure == "log_hr":
            return self.estimator
        at = "" if self.horizon is None else f" at {self.horizon:g} months"
        return f"{self.estimator} ({self.measure}{at})"


@dataclass(frozen=True)
class Study:
    """A validated simulation-study specification (see module docstring for the TOML)."""

    name: str = "study"
    scenarios: tuple[str, ...] = ("flatiron",)
    sample_sizes: tuple[int, ...] = (DEFAULT_SAMPLE_SIZE,)
    reps: int = DEFAULT_REPS
    seed: int = DEFAULT_SEED
    estimators: tuple[str, ...] = DEFAULT_ESTIMATORS
    outcomes: tuple[str, ...] = DEFAULT_OUTCOMES
    covariates: tuple[str, ...] = DEFAULT_COVARIATES
    set: dict[str, Any] = field(default_factory=dict)
    vary: dict[str, list[Any]] = field(default_factory=dict)
    estimator_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    chunk_reps: int = 25
    truth_censoring: str = "admin"
    fit_timeout: float | None = None
    measures: tuple[str, ...] = ()
    horizons: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        ck.count(self.reps, "reps")
        ck.count(self.chunk_reps, "chunk_reps")
        ck.choice(self.truth_censoring, "truth_censoring", ("admin", "study"))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise StudyError(f"seed={self.seed!r} is not allowed; it must be an integer >= 0")
        t = self.fit_timeout
        if t is not None and (
            isinstance(t, bool) or not isinstance(t, int | float) or not (0 < t < math.inf)
        ):
            raise StudyError(
                f"fit_timeout={t!r} is not allowed; give seconds > 0 (or leave it unset: no limit)"
            )
        _nonempty(self.scenarios, "scenarios")
        for n in _nonempty(self.sample_sizes, "sample_sizes"):
            ck.count(n, "sample_sizes[]")
        _check_variants(self.variants)
        known = (*available_estimators(), *self.variants)
        for e in _nonempty(self.estimators, "estimators"):
            if is_import_path(e) and e not in known:
                _resolve_path(e, "estimators")
            elif e not in known:
                raise StudyError(
                    f"estimators: unknown estimator {e!r}; available: {list(known)}, or an "
                    "import path 'package.module:function'"
                )
        outcomes, columns = scenario_columns(self.scenarios)
        for o in _nonempty(self.outcomes, "outcomes"):
            ck.choice(o, "outcomes[]", outcomes)
        for e in self.estimator_options:
            if e in self.variants:
                raise StudyError(
                    f"estimator_options[{e!r}]: {e!r} is a variant; give its options in its "
                    f"own table [estimators.{e}]"
                )
            if e not in self.estimators:
                raise StudyError(
                    f"estimator_options[{e!r}]: {e!r} is not among the study's estimators "
                    f"{list(self.estimators)}"
                )
        _check_covariates(self.covariates, "covariates", columns)
        for e in self.estimators:
            opts = self.estimator_options.get(e, {})
            if not isinstance(opts, dict):
                raise StudyError(f"estimator_options[{e!r}]={opts!r} is not allowed; give a table")
            if e not in self.variants:
                check_options(e, opts)
            for key, value in self.options_for(e).items():  # covariates, ps_covariates, ...
                if key == "covariates" or key.endswith("_covariates"):
                    _check_covariates(value, f"{e}.{key}", columns)
        for key, values in self.vary.items():
            if not isinstance(values, list | tuple) or not values:
                raise StudyError(f"vary[{key!r}]={values!r} is not allowed; give a non-empty list")
        self._check_measures()
        conditions = self.conditions()  # validates scenarios and every grid change
        self._check_horizons_followed(conditions)
        self._check_outcome_pairs(conditions)

    def _check_outcome_pairs(self, conditions: list[Condition]) -> None:
        """Binary estimators need the ``response`` outcome (and scenarios that have one);
        survival estimators need pfs or os."""
        if "response" in self.outcomes:
            for c in conditions:
                if c.scenario.response is None:
                    raise StudyError(
                        f"outcomes: 'response' is not allowed for condition {c.label!r}: its "
                        "scenario has no response block; give the scenario a [response] "
                        "table (e.g. set 'response.probability_treated' and "
                        "'response.probability_control') or remove 'response' from outcomes"
                    )
        runs = self.runs()
        for e in self.estimators:
            measures = [r.measure for r in runs if r.estimator == e]
            if not any(fits_outcome(m, o) for m in measures for o in self.outcomes):
                binary = all(m in BINARY_MEASURES for m in measures)
                raise StudyError(
                    f"estimators: {e!r} reports {measures} of a "
                    f"{'binary outcome' if binary else 'time to event'}, and the study's "
                    f"outcomes {list(self.outcomes)} have none; "
                    + (
                        "add 'response' to outcomes (a scenario with a response block)"
                        if binary
                        else "add 'pfs' or 'os' to outcomes"
                    )
                    + f" or remove {e!r}"
                )
        for o in self.outcomes:
            if not any(fits_outcome(r.measure, o) for r in runs):
                raise StudyError(
                    f"outcomes: {o!r} is not analysed by any of the study's estimators "
                    f"{list(self.estimators)}; add "
                    + (
                        "a binary-outcome estimator (naive_binary, iptw_binary, "
                        "matched_binary, adjusted_logistic)"
                        if o in BINARY_OUTCOMES
                        else "a time-to-event estimator"
                    )
                    + f" or remove {o!r}"
                )

    def _check_measures(self) -> None:
        """``measures`` / ``horizons``: known, positive, wanted, and run by some estimator."""
        if not self.measures and not self.horizons:
            return
        if not self.measures:
            raise StudyError(
                f"horizons={list(self.horizons)!r} is not allowed without measures; add "
                f"measures (some of {sorted(MEASURES_WITH_HORIZON)}) or remove horizons"
            )
        for m in _nonempty(self.measures, "measures"):
            if m not in MEASURES:
                raise StudyError(
                    f"measures: measure {m!r} is not allowed; use some of {list(MEASURES)}"
                )
        _distinct(self.measures, "measures")
        timed = [m for m in self.measures if m in MEASURES_WITH_HORIZON]
        if isinstance(self.horizons, str) or not isinstance(self.horizons, Sequence):
            raise StudyError(
                f"horizons={self.horizons!r} is not allowed; give a list of months > 0"
            )
        for h in self.horizons:
            if (
                isinstance(h, bool)
                or not isinstance(h, int | float)
                or not (math.isfinite(h) and h > 0)
            ):
                raise StudyError(
                    f"horizons: horizon {h!r} is not allowed; give a finite number of months > 0"
                )
        _distinct([float(h) for h in self.horizons], "horizons")
        if timed and not self.horizons:
            raise StudyError(
                f"horizons=[] is not allowed with measures {timed}; give the horizons in "
                "months, e.g. horizons = [12, 24]"
            )
        if self.horizons and not timed:
            raise StudyError(
                f"horizons={list(self.horizons)!r} is not allowed: none of measures "
                f"{list(self.measures)} has a horizon (those that do: "
                f"{sorted(MEASURES_WITH_HORIZON)})"
            )
        reports = {e: self.measures_of(e) for e in self.estimators}
        for e in self.estimators:
            fixed = sorted(k for k in ("measure", "horizon") if k in self.options_for(e))
            if fixed:
                raise StudyError(
                    f"estimators: {e!r} fixes {fixed} in its options, and the study's "
                    "measures / horizons set them for every estimator; remove them from its "
                    "options (or remove the study's measures)"
                )
            if not set(reports[e]) & set(self.measures):
                raise StudyError(
                    f"estimators: {e!r} reports none of measures {list(self.measures)} (it "
                    f"reports {list(reports[e])}); add one of those or remove {e!r}"
                )
        for m in self.measures:
            if not any(m in r for r in reports.values()):
                able = [e for e in available_estimators() if m in get_estimator(e).measures]
                raise StudyError(
                    f"measures: measure {m!r} is not reported by any of the study's "
                    f"estimators {list(self.estimators)}"
                    + (f"; estimators that report it: {able}" if able else "")
                )

    def _check_horizons_followed(self, conditions: list[Condition]) -> None:
        """A horizon after a condition's data cutoff: no one is followed that long."""
        for h in self.horizons:
            for c in conditions:
                if is_kind(c.scenario):  # no accrual model: its truth says what it holds
                    continue
                cutoff = c.scenario.censoring.cutoff_months
                if h > cutoff:
                    raise StudyError(
                        f"horizons: horizon {h!r} is not allowed: condition {c.label!r} follows "
                        f"patients for at most {cutoff:g} months (accrual + follow-up), so "
                        f"its Kaplan-Meier curves end before it and the RMST / survival "
                        f"difference is not identifiable; use horizons in (0, {cutoff:g}]"
                    )

    def measures_of(self, estimator: str) -> tuple[str, ...]:
        """The effect measures an estimator (or variant) reports: its registered
        capability (``Estimator.measures``; a path's from its signature), or the one
        its ``measure`` option fixes."""
        reported = get_estimator(self.base_of(estimator)).measures
        fixed = self.options_for(estimator).get("measure")
        return (fixed,) if isinstance(fixed, str) and fixed in reported else reported

    def runs(self) -> tuple[EstimatorRun, ...]:
        """Every fit of a replicate and outcome, in order: the study's one expansion of
        estimators x measures x horizons (the results rows follow it).

        Without ``measures``: each estimator once, with its own options, reporting the
        measure they (or its function's defaults) say.  With ``measures``: each estimator
        once per requested measure it reports (:meth:`measures_of`), and per horizon for
        ``rmst_diff`` / ``surv_diff``, given ``measure=`` / ``horizon=``.
        """
        out: list[EstimatorRun] = []
        for e in self.estimators:
            if not self.measures:
                out.append(self._own_run(e))
                continue
            takes = self._takes_measure(e)
            for m in self.measures:
                if m not in self.measures_of(e):
                    continue
                if m not in MEASURES_WITH_HORIZON:
                    out.append(EstimatorRun(e, m, None, {"measure": m} if takes else {}))
                    continue
                for h in self.horizons:
                    out.append(EstimatorRun(e, m, float(h), {"measure": m, "horizon": h}))
        return tuple(out)

    def _takes_measure(self, estimator: str) -> bool:
        """True when the estimator's function names a ``measure`` parameter (a log-HR
        fit passes ``measure="log_hr"`` only to such a function, not to ``**options``)."""
        accepted = accepted_options(get_estimator(self.base_of(estimator)).func)
        return accepted is not None and "measure" in accepted

    def _own_run(self, estimator: str) -> EstimatorRun:
        """The fit of an estimator run with its own options (a study without measures)."""
        try:
            params = inspect.signature(get_estimator(self.base_of(estimator)).func).parameters
        except (TypeError, ValueError):
            params = {}
        opts = {
            k: params[k].default
            for k in ("measure", "horizon")
            if k in params and params[k].default is not inspect.Parameter.empty
        }
        opts |= self.options_for(estimator)
        measure = opts.get("measure", "log_hr")
        if not isinstance(measure, str) or measure not in MEASURES:
            measure = "log_hr"  # a bad value: the estimator's own error, at every fit
        h = opts.get("horizon") if measure in MEASURES_WITH_HORIZON else None
        if isinstance(h, bool) or not isinstance(h, int | float):
            h = None
        return EstimatorRun(estimator, measure, None if h is None else float(h))

    def options_for(self, estimator: str) -> dict[str, Any]:
        """Keyword options of one estimator (or variant), as the study gives them."""
        if estimator in self.variants:
            spec = self.variants[estimator]
            opts = {k: v for k, v in spec.items() if k not in ("base", "path")}
            if "path" in spec and "estimand" in opts:  # a declaration, an option if taken
                accepted = accepted_options(get_estimator(spec["path"]).func)
                if accepted is not None and "estimand" not in accepted:
                    del opts["estimand"]
            return opts
        return dict(self.estimator_options.get(estimator, {}))

    def estimand_of(self, estimator: str) -> str:
        """The estimand an estimator (or variant) is declared against: a path variant's
        ``estimand``, else what the registry's estimator or variant says."""
        spec = self.variants.get(estimator, {})
        if "path" in spec and "estimand" in spec:
            return spec["estimand"]
        est = get_estimator(self.base_of(estimator))
        if estimator in self.variants:
            opts = {k: v for k, v in self.options_for(estimator).items() if k != "covariates"}
            est = est.variant(estimator, **opts)
        return est.estimand

    def effect_measures(self) -> tuple[tuple[str, float | None], ...]:
        """``(measure, horizon)`` of every fit reporting a measure other than the log-HR
        (:meth:`runs`), each once; horizon in months, None for a measure without one.
        run.json holds a truth for each."""
        out = {
            (r.measure, r.horizon): None
            for r in self.runs()
            if r.measure != "log_hr"
            and (r.horizon is not None or r.measure not in MEASURES_WITH_HORIZON)
        }
        return tuple(out)

    def base_of(self, estimator: str) -> str:
        """The registered estimator (or import path) a name runs: a variant's base or
        path, else the name itself."""
        spec = self.variants.get(estimator)
        if spec is None:
            return estimator
        return spec["path"] if "path" in spec else spec["base"]

    def covariates_for(
        self, estimator: str, scenario: Scenario | ScenarioKind | None = None
    ) -> list[str]:
        """Covariate columns passed to an estimator: its ``covariates`` option, else the
        study's ``covariates`` (plus :data:`EXTRA_COVARIATES` for adjusted Cox).

        With ``scenario``, binary columns that the scenario makes constant (``visceral``
        and ``bone_only`` in a lung-metastases subgroup, say) are left out: a constant
        has no coefficient and no SMD.
        """
        opts = self.options_for(estimator)
        if "covariates" in opts:
            covs = list(opts["covariates"])
        else:
            extra = (
                ()  # the MBC extras are not columns of a scenario kind's frame
                if scenario is not None and is_kind(scenario)
                else EXTRA_COVARIATES.get(self.base_of(estimator), ())
            )
            covs = [*self.covariates, *(c for c in extra if c not in self.covariates)]
        if scenario is None or is_kind(scenario):
            return covs
        constant = constant_columns(scenario)
        return [c for c in covs if c not in constant]

    def conditions(self) -> list[Condition]:
        """The factorial grid: scenario x vary-combination x sample size, in a fixed order."""
        keys = list(self.vary)
        combos = list(itertools.product(*(self.vary[k] for k in keys))) or [()]
        out: list[Condition] = []
        for name in self.scenarios:
            kind = get_kind(name)
            if kind is not None and (self.set or self.vary) and not hasattr(kind, "replace"):
                raise StudyError(
                    f"scenarios: {name!r} is a scenario kind without replace(); it "
                    "takes no study set / vary changes"
                )
            # an MBC Scenario or a scenario kind: set / vary both go through replace()
            base = resolve_scenario(name) if kind is None else kind
            if self.set:
                base = base.replace(**self.set)
            for combo in combos:
                factors = dict(zip(keys, combo, strict=True))
                sc = base.replace(**factors) if factors else base
                for n in self.sample_sizes:
                    label = ", ".join(
                        [sc.name, f"n={n}", *(f"{k}={v}" for k, v in factors.items())]
                    )
                    out.append(Condition(len(out), sc, int(n), label, factors))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (the ``[study]`` table)."""
        return {
            "name": self.name,
            "scenarios": list(self.scenarios),
            "sample_sizes": list(self.sample_sizes),
            "reps": self.reps,
            "seed": self.seed,
            "estimators": list(self.estimators),
            "outcomes": list(self.outcomes),
            "covariates": list(self.covariates),
            "set": dict(self.set),
            "vary": {k: list(v) for k, v in self.vary.items()},
            "estimator_options": {k: dict(v) for k, v in self.estimator_options.items()},
            # only when there are any: a study without variants keeps the identity it had before
            **(
                {"variants": {k: dict(v) for k, v in self.variants.items()}}
                if self.variants
                else {}
            ),
            "chunk_reps": self.chunk_reps,
            "truth_censoring": self.truth_censoring,
            "fit_timeout": self.fit_timeout,
            # only when given: a study without them keeps the identity it had before
            **({"measures": list(self.measures)} if self.measures else {}),
            **({"horizons": list(self.horizons)} if self.horizons else {}),
        }


def check_options(estimator: str, options: dict[str, Any], where: str | None = None) -> None:
    """Refuse options ``estimator``'s function does not take (``covariates`` is the study's).

    The first five parameters of an estimator are its data arguments (df, time, event,
    treatment, covariates); an estimator taking ``**options`` accepts anything
    (:func:`estimators.registry.accepted_options`).  ``where`` names the table in the
    message (default ``estimator_options[estimator]``).
    """
    accepted = accepted_options(get_estimator(estimator).func)
    if accepted is None:
        return
    where = where or f"estimator_options[{estimator!r}]"
    for key in options:
        if key != "covariates" and key not in accepted:
            raise StudyError(
                f"{where}: unknown option {key!r}; {estimator} accepts {['covariates', *accepted]}"
            )


def _check_variants(variants: Any) -> None:
    """Shapes, names, bases and options of the study's variants (before any work)."""
    if not isinstance(variants, dict):
        raise StudyError(
            f"variants={variants!r} is not allowed; give a table of [estimators.NAME] tables"
        )
    registered = available_estimators()
    for name, spec in variants.items():
        where = f"[estimators.{name}]"
        if not isinstance(name, str) or not name.strip():
            raise StudyError(f"variant name {name!r} is not allowed; use a non-empty string")
        if name in registered:
            raise StudyError(
                f"{where}: {name!r} is a registered estimator; give the variant another name "
                f"(registered: {list(registered)})"
            )
        if not isinstance(spec, dict):
            raise StudyError(
                f'{where}={spec!r} is not allowed; give a table with base = "<estimator>" '
                "and its options"
            )
        if "path" in spec:
            _check_path_variant(name, spec, where)
            continue
        base = spec.get("base")
        if base is None:
            raise StudyError(
                f'{where} has no base; add base = "<estimator>" (one of {list(registered)}) '
                'or path = "package.module:function"'
            )
        if not isinstance(base, str) or base not in registered:
            also = " (a variant's base must be a registered estimator, not a variant)" * (
                isinstance(base, str) and base in variants
            )
            raise StudyError(
                f"{where}: base={base!r} is not allowed{also}; use one of {list(registered)}"
            )
        options = {k: v for k, v in spec.items() if k != "base"}
        check_options(base, options, where)
        try:
            get_estimator(base).variant(
                name, **{k: v for k, v in options.items() if k != "covariates"}
            )
        except EstimatorInputError as exc:  # anything the registry refuses
            raise StudyError(f"{where}: {exc}") from None


def _resolve_path(path: str, where: str):
    """The estimator at an import path, or a :class:`StudyError` saying why not."""
    try:
        return estimator_from_path(path)
    except EstimatorInputError as exc:
        raise StudyError(f"{where}: {exc}") from None


def _check_path_variant(name: str, spec: dict[str, Any], where: str) -> None:
    """A variant naming a function by import path (``path``, optional ``estimand``)."""
    if "base" in spec:
        raise StudyError(f"{where}: give base or path, not both")
    path = spec["path"]
    if not is_import_path(path):
        raise StudyError(f"{where}: path={path!r} is not allowed; use 'package.module:function'")
    est = _resolve_path(path, where)
    estimand = spec.get("estimand", est.estimand)
    if estimand not in ESTIMANDS:
        raise StudyError(f"{where}: estimand={estimand!r} is not allowed; use one of {ESTIMANDS}")
    options = {k: v for k, v in spec.items() if k not in ("path", "estimand")}
    accepted = accepted_options(est.func)
    if accepted is not None and "estimand" in accepted and "estimand" in spec:
        options["estimand"] = estimand
    check_options(path, options, where)


def _check_covariates(
    covariates: Any, param: str, columns: Sequence[str] = COVARIATE_COLUMNS
) -> None:
    if isinstance(covariates, str) or not isinstance(covariates, Sequence):
        raise StudyError(f"{param}={covariates!r} is not allowed; give a list of column names")
    for c in covariates:
        if c not in columns:
            raise StudyError(
                f"{param}: {c!r} is not a covariate column of the simulated cohort; "
                f"use some of {list(columns)}"
            )


def scenario_columns(scenarios: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(outcomes, covariate columns) every one of ``scenarios`` has: :data:`OUTCOMES` and
    :data:`COVARIATE_COLUMNS` for MBC scenarios, a kind's own for a scenario kind."""
    outcomes, columns = tuple(OUTCOMES), COVARIATE_COLUMNS
    if not isinstance(scenarios, Sequence) or isinstance(scenarios, str):
        return outcomes, columns  # _nonempty reports it
    kinds = [k for k in map(get_kind, scenarios) if k is not None]
    if not kinds:
        return outcomes, columns
    if len(kinds) < len(scenarios):
        outcomes_of, columns_of = [tuple(OUTCOMES)], [COVARIATE_COLUMNS]
    else:
        outcomes_of, columns_of = [], []
    for k in kinds:
        taken = {k.treatment, *(c for pair in k.outcomes.values() for c in pair)}
        outcomes_of.append(tuple(k.outcomes))
        columns_of.append(tuple(c for c in k.columns if c not in taken))
    outcomes = tuple(o for o in outcomes_of[0] if all(o in x for x in outcomes_of))
    columns = tuple(c for c in columns_of[0] if all(c in x for x in columns_of))
    return outcomes, columns


# binary cohort columns and the feature holding their population share
_BINARY_COLUMNS = {
    "visceral": "visceral",
    "bone_only": "bone_only",
    "lung_mets": "lung",
    "liver_mets": "liver",
    "de_novo": "de_novo",
    "academic": "academic",
}


def constant_columns(scenario: Scenario) -> set[str]:
    """Binary cohort columns whose population share is exactly 0 or 1 in ``scenario``."""
    from ..covariates import population_feature_means

    means = population_feature_means(scenario)
    return {col for col, feat in _BINARY_COLUMNS.items() if means[feat] in (0.0, 1.0)}


def _distinct(xs: Sequence[Any], param: str) -> None:
    seen = [x for i, x in enumerate(xs) if x in xs[:i]]
    if seen:
        raise StudyError(f"{param}: {seen[0]!r} is given twice; list each once")


def _nonempty(xs: Sequence[Any], param: str) -> Sequence[Any]:
    if isinstance(xs, str) or not isinstance(xs, Sequence) or len(xs) == 0:
        raise StudyError(f"{param}={xs!r} is not allowed; give a non-empty list")
    return xs


def study_from_dict(d: dict[str, Any]) -> Study:
    """Build and validate a study from the ``[study]`` table (``variants``: the file's
    ``[estimators.NAME]`` tables)."""
    allowed = {f for f in Study.__dataclass_fields__}
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise StudyError(f"study has unknown parameter(s) {unknown}; allowed: {sorted(allowed)}")
    conv = dict(d)
    for k in (
        "scenarios",
        "sample_sizes",
        "estimators",
        "outcomes",
        "covariates",
        "measures",
        "horizons",
    ):
        if k in conv and isinstance(conv[k], list):
            conv[k] = tuple(conv[k])
    return Study(**conv)


def load_study(path: str | Path) -> Study:
    """Read a study TOML file (its ``[study]`` table)."""
    p = Path(path)
    if not p.is_file():
        raise StudyError(f"study file {str(path)!r} does not exist")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"study file {path} is not valid TOML: {exc}") from None
    if "study" not in data:
        raise StudyError(f"study file {path} has no [study] table")
    study = data["study"]
    if not isinstance(study, dict):
        raise StudyError(f"study file {path}: study={study!r} is not allowed; give a [study] table")
    if "variants" in study:
        raise StudyError(
            f"study file {path}: define variants as top-level [estimators.NAME] tables, not "
            "study.variants"
        )
    variants = data.get("estimators", {})
    if not isinstance(variants, dict):
        raise StudyError(
            f"study file {path}: estimators={variants!r} at the top level is not allowed; the "
            "list of estimators goes in [study]; top-level [estimators.NAME] tables define "
            "variants"
        )
    return study_from_dict({**study, **({"variants": variants} if variants else {})})
