"""Synthetic HR+/HER2- MBC cohorts with known treatment effects (the cohort core).

>>> import simulator
>>> sc = simulator.get_scenario("flatiron")
>>> df = simulator.simulate(sc, n=1430, seed=1)
>>> tr = simulator.truth(sc)
"""

from . import _numba_cache  # noqa: F401  (first: sets numba's cache dir before numba loads)
from .calibration import Calibration, calibrate, is_calibrated
from .catalog import get_scenario, scenario_names
from .exceptions import CalibrationError, ScenarioError, SimulatorWarning
from .generate import CohortArrays, describe_columns, simulate, simulate_arrays
from .scenario import (
    AgeModel,
    CalibrationSettings,
    Censoring,
    Covariates,
    Crossover,
    EcogMissingness,
    Outcomes,
    Response,
    Scenario,
    Transition,
    Treatment,
    load_scenario,
    scenario_from_dict,
    scenario_from_toml,
)

__all__ = [
    "AgeModel",
    "Calibration",
    "CalibrationError",
    "CalibrationSettings",
    "Censoring",
    "CohortArrays",
    "Covariates",
    "Crossover",
    "EcogMissingness",
    "Outcomes",
    "Response",
    "Scenario",
    "ScenarioError",
    "SimulatorWarning",
    "Transition",
    "Treatment",
    "calibrate",
    "describe_columns",
    "get_scenario",
    "is_calibrated",
    "load_scenario",
    "scenario_from_dict",
    "scenario_from_toml",
    "scenario_names",
    "simulate",
    "simulate_arrays",
    "truth",
]


def __getattr__(name: str):
    # The truth needs the estimators' Cox engine, which the cohort core must not import;
    # it lives in the study layer and is exposed here lazily.
    if name == "truth":
        from .study.truth import truth

        return truth
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")
