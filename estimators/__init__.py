"""Estimators of treatment effects on survival: Cox PH, propensity scores, sIPTW, PSM.

Every function works on a plain pandas DataFrame given the names of its time,
event, treatment and covariate columns; nothing here knows about the simulator.
"""

from .cox import CoxPH, CoxResult, fit_cox_arrays
from .design import Design, design_matrix
from .exceptions import (
    ConvergenceWarning,
    EstimatorInputError,
    NoOverlapError,
    SeparationError,
    SeparationWarning,
)
from .result import EffectEstimate

__all__ = [
    "ConvergenceWarning",
    "CoxPH",
    "CoxResult",
    "Design",
    "EffectEstimate",
    "EstimatorInputError",
    "NoOverlapError",
    "SeparationError",
    "SeparationWarning",
    "design_matrix",
    "fit_cox_arrays",
]
