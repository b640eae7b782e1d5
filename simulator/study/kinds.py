"""Scenario kinds: data-generating models the study runner runs besides the MBC cohort.

The runner has a fast path for the HR+/HER2- MBC :class:`~simulator.Scenario` (cohort
arrays, shared inputs, the exact truth engine).  Any other data-generating model plugs in
as a *scenario kind*: an object following :class:`ScenarioKind`, registered by name in
:data:`KINDS`.  A study condition whose scenario is a kind is run by the generic path
(:func:`simulator.study.replicate.run_chunk`): each replicate is
``kind.simulate(n, seed)`` (a DataFrame), every estimator is called on it with the
kind's outcome columns and treatment column, and its rows are scored against
``kind.truth().estimand(outcome, estimand, censoring, measure, horizon)``.  Nothing
else in the runner, the store or the reports depends on the kind (docs/design.md §6).

Built-in kinds: ``"switching"`` (:class:`SwitchingKind`, time-varying treatment) and
the generic scenarios ``"austin-vignette"`` and ``"austin-2013"`` (:class:`GenericKind`,
:mod:`simulator.generic`); a scenario TOML file with ``kind = "generic"`` is a
:class:`GenericKind` too (:func:`get_kind`).
A user-made kind: a plasmode scenario file (:mod:`simulator.plasmode`; ``plasmode.toml``
next to the Parquet file of its base rows), given by its path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ..exceptions import ScenarioError
from ..generic import (
    BUILTIN_GENERIC,
    TREATMENT,
    GenericScenario,
    GenericTruth,
    generic_truth,
    simulate_generic,
)
from ..plasmode import is_plasmode_file, load_plasmode
from ..scenario import Scenario, load_scenario
from ..switching import (
    COLUMNS,
    COVARIATES,
    SwitchingScenario,
    SwitchingTruth,
    simulate_switching,
    switching_scenario,
    switching_truth,
)


class KindTruth(Protocol):
    """The truths of a scenario kind."""

    def estimand(
        self, outcome: str, estimand: str, censoring: str, measure: str, horizon: float | None
    ) -> tuple[float, float]:
        """(true value, Monte Carlo SE); a ValueError for one it does not hold."""
        ...


@runtime_checkable
class ScenarioKind(Protocol):
    """What the study runner needs of a data-generating model (picklable: it travels to
    the workers inside each chunk).

    Attributes
    ----------
    name : str
        The scenario's name (run.json, labels).
    description : str
        One line for ``rwesim scenarios``.
    outcomes : mapping of str to (str, str)
        Outcome name -> (time column, event column) of :meth:`simulate`'s frame.
    treatment : str
        The column passed to estimators as ``treatment``.
    columns : tuple of str
        Every column of :meth:`simulate`'s frame (a study's covariates must be among them).
    covariates : tuple of str
        Default adjustment set (a one-scenario study from the command line uses it).
    estimators : tuple of str
        Default estimators (registered names).
    options : mapping of str to dict
        Estimator options that come from the scenario (e.g. a grace period), keyed by
        registered estimator name: the runner gives them to each condition's estimators
        (and to variants of them) under the study's own options.

    Optional: ``replace(**changes)`` returning the kind with changed parameters (a
    study's ``set`` and ``vary``); a kind without it takes neither.
    """

    name: str
    description: str
    outcomes: Mapping[str, tuple[str, str]]
    treatment: str
    columns: tuple[str, ...]
    covariates: tuple[str, ...]
    estimators: tuple[str, ...]
    options: Mapping[str, dict[str, Any]]

    def fingerprint(self) -> str:
        """Hash of the parameters: same parameters, same fingerprint."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (run.json's ``parameters``)."""
        ...

    def simulate(self, n: int, seed: np.random.SeedSequence) -> pd.DataFrame:
        """One replicate's data, bit-identical for the same (n, seed)."""
        ...

    def truth(self) -> KindTruth:
        """The truths its estimators are scored against."""
        ...


_TRUTHS: dict[str, SwitchingTruth] = {}  # fingerprint -> truth (about 1 s to compute)


def _switching_truth(sc: SwitchingScenario) -> SwitchingTruth:
    key = sc.fingerprint()
    if key not in _TRUTHS:
        _TRUTHS[key] = switching_truth(sc)
    return _TRUTHS[key]


def _switching_default() -> SwitchingScenario:
    return switching_scenario()


@dataclass(frozen=True, eq=False)
class SwitchingKind:
    """The ``switching`` scenario (:mod:`simulator.switching`) as a scenario kind."""

    scenario: SwitchingScenario = field(default_factory=_switching_default)
    outcomes: Mapping[str, tuple[str, str]] = field(
        default_factory=lambda: {"os": ("os_months", "os_event")}
    )
    treatment: str = "switch_months"
    columns: tuple[str, ...] = tuple(COLUMNS)
    covariates: tuple[str, ...] = COVARIATES
    estimators: tuple[str, ...] = ("ever_switched_cox", "td_cox", "landmark_cox", "ccw")

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def description(self) -> str:
        return (
            "scenario kind: switching from one aromatase inhibitor to another during "
            "follow-up (time-varying treatment, immortal time); OS"
        )

    @property
    def options(self) -> dict[str, dict[str, Any]]:
        return {
            "landmark_cox": {"landmark": self.scenario.landmark},
            "ccw": {"grace": self.scenario.grace},
        }

    def fingerprint(self) -> str:
        return self.scenario.fingerprint()

    def to_dict(self) -> dict[str, Any]:
        return self.scenario.to_dict()

    def simulate(self, n: int, seed: np.random.SeedSequence) -> pd.DataFrame:
        return simulate_switching(self.scenario, n, seed)

    def truth(self) -> SwitchingTruth:
        return _switching_truth(self.scenario)

    def replace(self, **changes: Any) -> SwitchingKind:
        """The kind with changed scenario parameters (a study's ``set`` / ``vary``: e.g.
        ``grace``, ``log_hr_switch``, ``adverse_event_share``), validated."""
        allowed = [f.name for f in fields(SwitchingScenario)]
        for key in changes:
            if key not in allowed:
                raise ScenarioError(
                    f"{key!r} is not a parameter of the switching scenario; use one of {allowed}"
                )
        return replace(self, scenario=replace(self.scenario, **changes))


@dataclass(frozen=True, eq=False)
class GenericKind:
    """A generic scenario (:mod:`simulator.generic`) as a scenario kind: outcomes by their
    declared names, treatment column ``treatment``, every covariate as adjustment set."""

    scenario: GenericScenario

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def description(self) -> str:
        return self.scenario.description or "scenario kind: a generic scenario"

    @property
    def outcomes(self) -> dict[str, tuple[str, str]]:
        return {o.name: (f"{o.name}_time", f"{o.name}_event") for o in self.scenario.outcomes}

    @property
    def treatment(self) -> str:
        return TREATMENT

    @property
    def columns(self) -> tuple[str, ...]:
        return self.scenario.columns

    @property
    def covariates(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.scenario.covariates)

    @property
    def estimators(self) -> tuple[str, ...]:
        return ("naive_cox", "adjusted_cox", "siptw", "psm")

    @property
    def options(self) -> dict[str, dict[str, Any]]:
        """The scenario's ``horizon`` for the estimators of S(t) / RMST differences."""
        h = self.scenario.horizon
        return {} if h is None else {e: {"horizon": h} for e in ("iptw_km", "gcomp", "aiptw")}

    def fingerprint(self) -> str:
        return self.scenario.fingerprint()

    def to_dict(self) -> dict[str, Any]:
        return self.scenario.to_dict()

    def simulate(self, n: int, seed: np.random.SeedSequence) -> pd.DataFrame:
        return simulate_generic(self.scenario, n, seed)

    def truth(self) -> GenericTruth:
        return generic_truth(self.scenario)

    def replace(self, **changes: Any) -> GenericKind:
        """The kind with changed parameters, validated: top-level ones (``horizon``,
        ``name``, ``description``), a whole section given as a table (``treatment``,
        ``censoring``, ...), or one value by its dotted path, entries of the
        ``covariates`` and ``outcomes`` lists by name (``"treatment.intercept"``,
        ``"treatment.coef.X1"``, ``"outcomes.event.log_hr"``, ``"covariates.X5.cut"``,
        ``"censoring.admin"``)."""
        from ..generic import generic_from_dict

        allowed = [
            "name",
            "description",
            "horizon",
            "correlation",
            "covariates",
            "treatment",
            "outcomes",
            "censoring",
        ]
        d = self.scenario.to_dict()
        for key, value in changes.items():
            path = key.split(".")
            if path[0] not in allowed:
                raise ScenarioError(
                    f"{key!r} is not a parameter of a generic scenario; use one of {allowed} "
                    "or a dotted path into one (e.g. 'treatment.intercept')"
                )
            node: Any = d
            for i, part in enumerate(path[:-1]):
                node = _generic_child(node, part, ".".join(path[: i + 1]), key)
            if isinstance(node, list):
                raise ScenarioError(
                    f"{key!r}: {'.'.join(path[:-1])!r} is a list of named entries; name one "
                    f"and a field of it (e.g. '{'.'.join(path[:-1])}.NAME.FIELD')"
                )
            node[path[-1]] = value
        return GenericKind(generic_from_dict(d))


def _generic_child(node: Any, part: str, where: str, key: str) -> Any:
    """One step of a dotted path into a generic scenario's dict: a table's field (created
    when absent, for the validation to judge), or a named entry of a list."""
    if isinstance(node, list):
        names = [e.get("name") for e in node if isinstance(e, dict)]
        for entry in node:
            if isinstance(entry, dict) and entry.get("name") == part:
                return entry
        raise ScenarioError(
            f"{key!r}: no entry named {part!r} in {where.rsplit('.', 1)[0]!r}; entries are {names}"
        )
    if not isinstance(node, dict):
        raise ScenarioError(f"{key!r}: {where.rsplit('.', 1)[0]!r} is a value, not a table")
    child = node.get(part)
    if child is None:
        child = node[part] = {}
    if not isinstance(child, dict | list):
        raise ScenarioError(f"{key!r}: {where!r} is a value ({child!r}), not a table")
    return child


def _generic(name: str) -> Callable[[], GenericKind]:
    return lambda: GenericKind(BUILTIN_GENERIC[name]())


KINDS: dict[str, Callable[[], ScenarioKind]] = {
    "switching": SwitchingKind,
    **{name: _generic(name) for name in BUILTIN_GENERIC},
}
"""Built-in scenario kinds by name (a study's ``scenarios`` entry)."""


def get_kind(name: object) -> ScenarioKind | None:
    """The scenario kind registered under ``name``, of a ``kind = "generic"`` scenario
    TOML file, or the plasmode scenario a plasmode file holds
    (:func:`simulator.plasmode.save_plasmode`); None for an MBC scenario name / file."""
    make = KINDS.get(name) if isinstance(name, str) else None
    if make is not None:
        return make()
    if is_plasmode_file(name):  # a user's plasmode scenario file
        return load_plasmode(name)
    if isinstance(name, str) and name.endswith(".toml") and Path(name).is_file():
        if _is_generic_file(name):
            sc = load_scenario(name)
            assert isinstance(sc, GenericScenario)
            return GenericKind(sc)
    return None


def _is_generic_file(path: str) -> bool:
    import tomllib

    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8")).get("kind") == "generic"
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False  # load_scenario reports it


def is_kind(scenario: object) -> bool:
    """True for a scenario kind (the generic path), False for an MBC Scenario (the fast
    path)."""
    return not isinstance(scenario, Scenario)
