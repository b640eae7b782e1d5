"""Small, fast-to-calibrate scenario variants shared by the simulator tests."""

from __future__ import annotations

import simulator

SMALL = {"calibration.population": 30_000, "calibration.truth_population": 40_000}


def small(base: str = "flatiron", **changes) -> simulator.Scenario:
    """A built-in scenario with a small calibration population (calibrates in ~1 s)."""
    return simulator.get_scenario(base).replace(**SMALL, **changes)


def every_option() -> simulator.Scenario:
    """A flatiron variant switching on every optional mechanism (frailty, MNAR ECOG,
    informative loss to follow-up, arm-dependent next-therapy censoring, visits)."""
    return small(
        name="every-option",
        **{
            "treatment.frailty_log_or": -0.7,
            "outcomes.progression.frailty_log_hr": 0.3,
            "outcomes.death.frailty_log_hr": 0.5,
            "outcomes.post_progression_death.frailty_log_hr": 0.4,
            "covariates.ecog_missing.mechanism": "mnar",
            "covariates.ecog_missing.ecog_log_or": 0.6,
            "covariates.ecog_missing.age_log_or": 0.2,
            "censoring.lost_log_hr": {"age10": 0.3, "ecog_2plus": 0.5},
            "censoring.lost_hr_treated": 0.8,
            "censoring.next_therapy_hr_treated": 1.5,
            "censoring.visit_interval_months": 3.0,
            "censoring.visit_jitter_months": 0.5,
            "outcomes.progression.shape": 1.3,
            "outcomes.post_progression_death.shape": 0.9,
        },
    )
