"""Estimators of treatment effects on survival: Cox PH, propensity scores, sIPTW, PSM.

Every function works on a plain pandas DataFrame given the names of its time,
event, treatment and covariate columns; nothing here knows about the simulator.
"""

from .balance import balance_table
from .cox import CoxPH, CoxResult, fit_cox_arrays
from .design import Design, design_matrix
from .exceptions import (
    ConvergenceWarning,
    EstimatorInputError,
    NoOverlapError,
    SeparationError,
    SeparationWarning,
)
from .propensity import PropensityModel, fit_logistic, fit_propensity
from .result import EffectEstimate
from .weighting import iptw_weights

__all__ = [
    "ConvergenceWarning",
    "CoxPH",
    "CoxResult",
    "Design",
    "EffectEstimate",
    "EstimatorInputError",
    "NoOverlapError",
    "PropensityModel",
    "SeparationError",
    "SeparationWarning",
    "balance_table",
    "design_matrix",
    "fit_cox_arrays",
    "fit_logistic",
    "fit_propensity",
    "iptw_weights",
]
