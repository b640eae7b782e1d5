"""The estimand and effect-measure vocabulary (stated once; everything else imports it).

Target populations (what an estimate is *for*):

``conditional``
    The coefficient of a correctly specified covariate-adjusted model (not a population
    average; the hazard ratio is non-collapsible).
``ATE``, ``ATT``, ``ATC``
    Average over everyone, the treated, the controls.
``ATO``
    Overlap population: patients weighted by ``e(x) * (1 - e(x))`` with the true
    propensity score ``e``.
``ATM``
    Matching-weights population: weights ``min(e, 1 - e)``.
``crude``
    The unadjusted contrast.  It has no truth of its own: it is *scored against* the ATE
    (:data:`SCORED_AGAINST`), so a simulation study shows how far it is from it.
``hypothetical``
    The effect in the randomised population had no one switched treatment (ICH E9(R1)'s
    hypothetical strategy for the intercurrent event "treatment switching"), e.g. by
    RPSFTM (:func:`estimators.rpsftm`) or IPCW for switching.  The simulator's potential
    outcomes are those of the treatments themselves (no switching), so this is the
    marginal effect over everyone: scored against the ATE, whose truth is the
    "no crossover" one when a scenario has crossover.
``treatment_policy``
    The effect of the assignment as randomised, switching included (ICH E9(R1)'s
    treatment-policy strategy), e.g. by the intention-to-treat Cox model.  It has a
    truth of its own when a scenario has crossover (OS); without switching it equals the
    ATE's.
``strategy``
    The contrast of two sustained treatment strategies in the whole population, e.g.
    "switch within a grace period" versus "never switch" (clone-censor-weight,
    :func:`estimators.switching.ccw`), with its own truth.

Effect measures (treated minus / over control): ``log_hr`` (log hazard ratio),
``rmst_diff`` (restricted mean survival time difference at a horizon, months),
``surv_diff`` (survival probability difference at a horizon), ``median_diff`` (months);
of a binary outcome (objective response, :data:`BINARY_MEASURES`): ``risk_diff``
(difference of response probabilities) and ``log_or`` (log odds ratio).
"""

from __future__ import annotations

ESTIMANDS: tuple[str, ...] = (
    "conditional", "ATE", "ATT", "ATC", "ATO", "ATM", "crude", "hypothetical", "treatment_policy",
    "strategy",
)  # fmt: skip
SCORED_AGAINST: dict[str, str] = {"crude": "ATE", "hypothetical": "ATE"}
MEASURES: tuple[str, ...] = (
    "log_hr", "rmst_diff", "surv_diff", "median_diff", "risk_diff", "log_or"
)  # fmt: skip
MEASURES_WITH_HORIZON: frozenset[str] = frozenset({"rmst_diff", "surv_diff"})
BINARY_MEASURES: frozenset[str] = frozenset({"risk_diff", "log_or"})
"""Measures of a binary outcome; every other measure is of a time to event."""


def scored_against(estimand: str) -> str:
    """The estimand whose truth an estimate labelled ``estimand`` is compared with."""
    return SCORED_AGAINST.get(estimand, estimand)
