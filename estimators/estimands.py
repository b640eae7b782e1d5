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
    RPSFTM (:func:`estimators.rpsftm`).  The MBC scenarios have no crossover, so there
    it equals the marginal effect of the assigned treatment: scored against the ATE.
``strategy``
    The contrast of two sustained treatment strategies in the whole population, e.g.
    "switch within a grace period" versus "never switch" (clone-censor-weight,
    :func:`estimators.switching.ccw`), with its own truth.

Effect measures (treated minus / over control): ``log_hr`` (log hazard ratio),
``rmst_diff`` (restricted mean survival time difference at a horizon, months),
``surv_diff`` (survival probability difference at a horizon), ``median_diff`` (months).
"""

from __future__ import annotations

ESTIMANDS: tuple[str, ...] = (
    "conditional", "ATE", "ATT", "ATC", "ATO", "ATM", "crude", "hypothetical", "strategy"
)  # fmt: skip
SCORED_AGAINST: dict[str, str] = {"crude": "ATE", "hypothetical": "ATE"}
MEASURES: tuple[str, ...] = ("log_hr", "rmst_diff", "surv_diff", "median_diff")
MEASURES_WITH_HORIZON: frozenset[str] = frozenset({"rmst_diff", "surv_diff"})


def scored_against(estimand: str) -> str:
    """The estimand whose truth an estimate labelled ``estimand`` is compared with."""
    return SCORED_AGAINST.get(estimand, estimand)
