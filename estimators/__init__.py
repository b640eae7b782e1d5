"""Estimators of treatment effects on survival: Cox PH, propensity scores, sIPTW, PSM.

Every function works on a plain pandas DataFrame (or a mapping of column name to
array) given the names of its time, event, treatment and covariate columns, validating
its inputs once; nothing here knows about the simulator.
"""

from . import _numba_cache  # noqa: F401  (first: sets numba's cache dir before numba loads)
from .analysis import AnalysisResult, analyze
from .balance import balance_table
from .binary import adjusted_logistic, iptw_binary, matched_binary, naive_binary
from .bootstrap import BootstrapResult, siptw_bootstrap
from .checking import CheckReport, check_estimator
from .cox import CoxPH, CoxResult, fit_cox_arrays
from .crossover import ipcw_switch, itt_cox, per_protocol_cox, rpsftm_switch
from .design_matrix import Design, design_matrix
from .effects import adjusted_cox, naive_cox, psm, siptw
from .exceptions import (
    BootstrapWarning,
    ConvergenceWarning,
    EstimatorCheckError,
    EstimatorInputError,
    EstimatorWarning,
    NoCovariatesWarning,
    NoOverlapError,
    SeparationError,
    SeparationWarning,
)
from .gcomp import aiptw, gcomp
from .km_effects import iptw_km, km_difference, matched_km
from .matching import Matching, match_pairs
from .propensity import PropensityModel, fit_logistic, fit_propensity, pool_rare_levels
from .ps_controls import ps_cox, ps_spline_cox, ps_strata, ps_strata_cox
from .registry import (
    Estimator,
    available_estimators,
    get_estimator,
    register_estimator,
    unregister_estimator,
)
from .result import EffectEstimate
from .rpsftm import rpsftm
from .shared import Outcome, SharedInputs, outcome_arrays
from .splines import natural_spline_basis
from .survival import KaplanMeier, kaplan_meier, kaplan_meier_by_arm, survival_summary
from .validation import Coded
from .weighting import iptw_weights

__all__ = [
    "AnalysisResult",
    "BootstrapResult",
    "BootstrapWarning",
    "CheckReport",
    "Coded",
    "ConvergenceWarning",
    "CoxPH",
    "CoxResult",
    "Design",
    "EffectEstimate",
    "Estimator",
    "EstimatorCheckError",
    "EstimatorInputError",
    "EstimatorWarning",
    "KaplanMeier",
    "Matching",
    "NoCovariatesWarning",
    "NoOverlapError",
    "Outcome",
    "PropensityModel",
    "SeparationError",
    "SeparationWarning",
    "SharedInputs",
    "adjusted_cox",
    "adjusted_logistic",
    "aiptw",
    "analyze",
    "available_estimators",
    "balance_table",
    "check_estimator",
    "design_matrix",
    "fit_cox_arrays",
    "fit_logistic",
    "fit_propensity",
    "gcomp",
    "get_estimator",
    "ipcw_switch",
    "iptw_binary",
    "iptw_km",
    "iptw_weights",
    "itt_cox",
    "kaplan_meier",
    "kaplan_meier_by_arm",
    "km_difference",
    "match_pairs",
    "matched_binary",
    "matched_km",
    "naive_binary",
    "naive_cox",
    "natural_spline_basis",
    "outcome_arrays",
    "per_protocol_cox",
    "pool_rare_levels",
    "ps_cox",
    "ps_spline_cox",
    "ps_strata",
    "ps_strata_cox",
    "psm",
    "register_estimator",
    "rpsftm",
    "rpsftm_switch",
    "siptw",
    "siptw_bootstrap",
    "survival_summary",
    "unregister_estimator",
]
