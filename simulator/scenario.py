"""The scenario: every parameter of the data-generating mechanism, frozen and validated.

A scenario has five parts, mirroring docs/design.md §2 (times in months):

* ``covariates`` — population marginals of the baseline covariates and their latent
  Gaussian-copula correlation;
* ``treatment`` — the logistic treatment model, given either as per-arm target means of
  its features (a "Table 1"; coefficients are then solved) or as raw coefficients, plus
  the confounding-strength, treated-fraction, positivity and frailty knobs;
* ``outcomes`` — the illness-death model (three Weibull PH transitions) with *targets*
  (control medians, marginal HRs or treated medians) or raw scales / coefficients;
* ``censoring`` — staggered entry, data cutoff, loss to follow-up, next-therapy
  censoring of rwPFS, visit-schedule progression;
* ``calibration`` — size and seed of the super-population used to solve the targets
  and compute the truth;
* ``crossover`` (optional, off when absent) — switching to the other arm's treatment at
  progression (:class:`Crossover`).
* ``response`` (optional, off by default) — objective response, a binary outcome tied
  to progression through the latent frailty (:class:`Response`).

Every check raises :class:`~simulator.exceptions.ScenarioError` (a ``ValueError``) naming
the parameter (dotted path), the value and what is allowed.  Scenarios round-trip through
TOML (:func:`load_scenario`, :meth:`Scenario.to_toml`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import numbers
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from . import _checks as ck
from .exceptions import ScenarioError
from .features import INDEX, LATENT, RACES, check_feature_names

_BINARY_FEATURES = frozenset(INDEX) - {"age10", "sites"}


def _freeze(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


class FrozenMap(dict):
    """A read-only dict (picklable, JSON/TOML-serialisable): scenario mappings can't be
    changed in place — use :meth:`Scenario.replace`."""

    def _immutable(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("scenario parameters are immutable; use Scenario.replace(...)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _immutable
    __ior__ = _immutable  # type: ignore[assignment]

    def __reduce__(self):
        return (FrozenMap, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(json.dumps(self, sort_keys=True, default=str))


def _plain_number(x: Any) -> Any:
    """NumPy / int numbers as Python float (bools and non-numbers unchanged)."""
    if isinstance(x, numbers.Real) and not isinstance(x, bool | np.bool_):
        return float(x)
    return x


def _canonical(obj: Any) -> None:
    """Normalise a dataclass's fields in place: floats for float fields (1 == 1.0, so equal
    scenarios get equal fingerprints), ints for int fields, tuples of floats, read-only
    mappings with float (or tuple-of-float) values.  Non-numbers are left for validation."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        v, tp = getattr(obj, f.name), _strip_optional(hints[f.name])
        if tp is float:
            v = _plain_number(v)
        elif tp is int and isinstance(v, numbers.Integral) and not isinstance(v, bool):
            v = int(v)
        elif typing.get_origin(tp) is tuple and isinstance(v, list | tuple):
            v = tuple(_plain_number(x) for x in v)
        elif typing.get_origin(tp) is dict and isinstance(v, dict):
            v = FrozenMap(
                {
                    str(k): (
                        tuple(_plain_number(x) for x in x_)
                        if isinstance(x_, list | tuple)
                        else _plain_number(x_)
                    )
                    for k, x_ in v.items()
                }
            )
        _freeze(obj, f.name, v)


@dataclass(frozen=True)
class AgeModel:
    """Population age distribution (years).

    Age bands are fixed at 18-49, 50-64, 65-74 and 75+ (the published table's); within
    each band the density follows a normal(``shape_mean``, ``shape_sd``) curve, scaled
    so that the bands carry ``band_shares``.  Ages lie in [``min_age``, ``max_age``].
    """

    band_shares: tuple[float, float, float, float] = (0.057, 0.344, 0.318, 0.281)
    shape_mean: float = 67.0
    shape_sd: float = 11.0
    min_age: float = 18.0
    max_age: float = 95.0

    def __post_init__(self) -> None:
        _canonical(self)
        p = "covariates.age"
        _freeze(self, "band_shares", ck.shares(self.band_shares, f"{p}.band_shares", 4))
        ck.number(self.shape_mean, f"{p}.shape_mean")
        ck.positive(self.shape_sd, f"{p}.shape_sd", " years")
        lo = ck.number(self.min_age, f"{p}.min_age")
        hi = ck.number(self.max_age, f"{p}.max_age")
        if not 18.0 <= lo < 50.0:
            raise ScenarioError(
                f"{p}.min_age={self.min_age!r} is not allowed; it must be in [18, 50)"
            )
        if hi <= 75.0:
            raise ScenarioError(f"{p}.max_age={self.max_age!r} is not allowed; it must be > 75")


@dataclass(frozen=True)
class EcogMissingness:
    """How often ECOG is recorded as unknown, and why.

    ``mcar``: a constant probability ``share``.  ``mar``: logistic in age (per decade)
    and academic practice.  ``mnar``: logistic also in the true ECOG category (0, 1, 2).
    The intercept is solved so that the population share unknown equals ``share``.
    """

    share: float = 0.0
    mechanism: str = "mcar"
    age_log_or: float = 0.0
    academic_log_or: float = 0.0
    ecog_log_or: float = 0.0

    def __post_init__(self) -> None:
        _canonical(self)
        p = "covariates.ecog_missing"
        ck.probability(self.share, f"{p}.share", open_high=True)
        ck.choice(self.mechanism, f"{p}.mechanism", ("mcar", "mar", "mnar"))
        for name in ("age_log_or", "academic_log_or", "ecog_log_or"):
            ck.number(getattr(self, name), f"{p}.{name}")
        if self.mechanism == "mcar" and (
            self.age_log_or or self.academic_log_or or self.ecog_log_or
        ):
            ors = ("age_log_or", "academic_log_or", "ecog_log_or")
            name = next(n for n in ors if getattr(self, n))
            raise ScenarioError(
                f"{p}.{name}={getattr(self, name)!r} is not allowed with mechanism 'mcar'; "
                "log odds ratios need mechanism 'mar' or 'mnar'"
            )
        if self.mechanism == "mar" and self.ecog_log_or:
            raise ScenarioError(
                f"{p}.ecog_log_or={self.ecog_log_or!r} is not allowed with mechanism 'mar' "
                "(missingness depending on true ECOG is 'mnar')"
            )


@dataclass(frozen=True)
class Covariates:
    """Population distribution of the baseline covariates.

    Shares are population shares (both arms together).  ``visceral_pattern`` gives the
    lung-only / liver-only / both split drawn among visceral patients; a patient drawn
    "both" with a single metastatic site gets one organ (lung or liver in proportion to
    their shares), so the realised share with both organs is somewhat lower.
    ``correlation`` holds latent
    Gaussian-copula correlations between the components ``age``, ``ecog`` (true ECOG),
    ``sites`` (number of metastatic sites) and ``visceral``, keyed ``"age:ecog"`` etc.
    Bone-only disease is drawn among patients with a single non-visceral site, so it is
    negatively associated with visceral disease and the number of sites by construction.
    """

    age: AgeModel = field(default_factory=AgeModel)
    ecog: tuple[float, float, float] = (0.455, 0.410, 0.135)
    ecog_missing: EcogMissingness = field(default_factory=EcogMissingness)
    visceral: float = 0.39
    visceral_pattern: tuple[float, float, float] = (0.641, 0.223, 0.136)
    sites: tuple[float, float, float] = (0.473, 0.300, 0.227)
    bone_only: float = 0.275
    de_novo: float = 0.402
    dfi_median_years: float = 5.5
    dfi_shape: float = 1.3
    academic: float = 0.054
    race: tuple[float, float, float, float, float, float] = (0.679, 0.08, 0.016, 0.026, 0.0, 0.199)
    correlation: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _canonical(self)
        p = "covariates"
        _freeze(self, "ecog", ck.shares(self.ecog, f"{p}.ecog", 3))
        _freeze(
            self, "visceral_pattern", ck.shares(self.visceral_pattern, f"{p}.visceral_pattern", 3)
        )
        _freeze(self, "sites", ck.shares(self.sites, f"{p}.sites", 3))
        _freeze(self, "race", ck.shares(self.race, f"{p}.race", len(RACES)))
        for name in ("visceral", "bone_only", "de_novo", "academic"):
            ck.probability(getattr(self, name), f"{p}.{name}")
        ck.positive(self.dfi_median_years, f"{p}.dfi_median_years", " years")
        ck.positive(self.dfi_shape, f"{p}.dfi_shape")
        self.correlation_matrix()  # validates keys, range and positive definiteness

    def correlation_matrix(self) -> np.ndarray:
        """The 4x4 latent correlation matrix over ``LATENT`` (validated)."""
        r = np.eye(len(LATENT))
        for key, value in self.correlation.items():
            parts = key.split(":")
            if (
                len(parts) != 2
                or parts[0] not in LATENT
                or parts[1] not in LATENT
                or parts[0] == parts[1]
            ):
                pairs = [f"{a}:{b}" for i, a in enumerate(LATENT) for b in LATENT[i + 1 :]]
                raise ScenarioError(
                    f"covariates.correlation has unknown key {key!r}; allowed: {pairs}"
                )
            v = ck.number(value, f"covariates.correlation[{key!r}]")
            if not -1.0 < v < 1.0:
                raise ScenarioError(
                    f"covariates.correlation[{key!r}]={value!r} is not allowed; "
                    "it must be in (-1, 1)"
                )
            i, j = LATENT.index(parts[0]), LATENT.index(parts[1])
            r[i, j] = r[j, i] = v
        smallest = float(np.linalg.eigvalsh(r)[0])
        if smallest <= 1e-10:
            raise ScenarioError(
                f"covariates.correlation={self.correlation!r} is not allowed: the latent "
                f"correlation matrix is not positive definite (smallest eigenvalue {smallest:.3g})"
            )
        return r


@dataclass(frozen=True)
class Treatment:
    """Logistic treatment-assignment model (treated = 1 is the combination arm).

    Give either ``arm_means`` — per-arm target means ``feature -> (treated, control)``;
    coefficients are then solved so that each arm reproduces them at ``strength = 1`` —
    or raw log-odds ``coefficients`` (expert mode).  ``strength`` multiplies every
    log-odds coefficient (confounding strength), the intercept is then solved so that
    ``fraction`` of patients are treated.  The true propensity score is squeezed into
    ``ps_bounds`` = (lo, hi): ps = lo + (hi - lo) * expit(logit), bounding how extreme it
    can get (positivity).  ``frailty_log_or`` is the unmeasured confounder's effect.
    """

    fraction: float = 0.5
    arm_means: dict[str, tuple[float, float]] = field(default_factory=dict)
    coefficients: dict[str, float] = field(default_factory=dict)
    strength: float = 1.0
    ps_bounds: tuple[float, float] = (0.0, 1.0)
    frailty_log_or: float = 0.0

    def __post_init__(self) -> None:
        _canonical(self)
        p = "treatment"
        ck.probability(self.fraction, f"{p}.fraction", open_low=True, open_high=True)
        ck.non_negative(self.strength, f"{p}.strength")
        ck.number(self.frailty_log_or, f"{p}.frailty_log_or")
        check_feature_names(self.arm_means, f"{p}.arm_means")
        check_feature_names(self.coefficients, f"{p}.coefficients")
        if self.arm_means and self.coefficients:
            raise ScenarioError(
                f"{p}: give either {p}.arm_means (coefficients solved) or {p}.coefficients "
                f"(raw), not both (got coefficients={self.coefficients!r})"
            )
        pairs = {k: self._arm_pair(k, v) for k, v in self.arm_means.items()}
        _freeze(self, "arm_means", FrozenMap(pairs))
        for k, v in self.coefficients.items():
            ck.number(v, f"{p}.coefficients[{k!r}]")
        lo, hi = self._bounds()
        if not lo < self.fraction < hi:
            raise ScenarioError(
                f"{p}.fraction={self.fraction!r} is not allowed with ps_bounds={self.ps_bounds!r}; "
                "it must lie strictly inside the bounds"
            )

    def _arm_pair(self, key: str, value: object) -> tuple[float, float]:
        param = f"treatment.arm_means[{key!r}]"
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ScenarioError(f"{param}={value!r} is not allowed; it must be [treated, control]")
        check = ck.probability if key in _BINARY_FEATURES else ck.number
        return (check(value[0], f"{param}[0]"), check(value[1], f"{param}[1]"))

    def _bounds(self) -> tuple[float, float]:
        b = self.ps_bounds
        if not isinstance(b, list | tuple) or len(b) != 2:
            raise ScenarioError(f"treatment.ps_bounds={b!r} is not allowed; it must be [lo, hi]")
        lo = ck.probability(b[0], "treatment.ps_bounds[0]")
        hi = ck.probability(b[1], "treatment.ps_bounds[1]")
        if lo >= hi:
            raise ScenarioError(f"treatment.ps_bounds={list(b)!r} is not allowed; lo must be < hi")
        _freeze(self, "ps_bounds", (lo, hi))
        return lo, hi

    @property
    def randomised(self) -> bool:
        """True when assignment ignores covariates (no arm means, no coefficients, no frailty)."""
        return not (self.arm_means or self.coefficients or self.frailty_log_or)


@dataclass(frozen=True)
class Transition:
    """One Weibull proportional-hazards transition: h(t) = scale * shape * t^(shape-1) * exp(lp).

    ``log_hr`` maps feature names to log hazard ratios; ``frailty_log_hr`` is the
    unmeasured confounder's effect (per SD).
    """

    shape: float = 1.0
    log_hr: dict[str, float] = field(default_factory=dict)
    frailty_log_hr: float = 0.0

    def __post_init__(self) -> None:
        _canonical(self)

    def check(self, param: str) -> None:
        """Validate, naming parameters under ``param``."""
        ck.positive(self.shape, f"{param}.shape")
        check_feature_names(self.log_hr, f"{param}.log_hr")
        for k, v in self.log_hr.items():
            ck.number(v, f"{param}.log_hr[{k!r}]")
        ck.number(self.frailty_log_hr, f"{param}.frailty_log_hr")


_TRANSITIONS = ("progression", "death", "post_progression_death")


@dataclass(frozen=True)
class Outcomes:
    """Illness-death model for rwPFS and OS, given by targets (or raw parameters).

    Transitions: ``progression`` (0 -> 1), ``death`` before progression (0 -> 2) and
    ``post_progression_death`` (1 -> 2, clock reset at progression).  Treatment acts
    with a common conditional log-HR on the first two (``gamma_pfs``) and with
    ``gamma_os`` on the third.

    Targets (months): control-arm medians of rwPFS and OS (of the control potential
    outcome over the whole population) and, for each outcome, either the marginal HR
    (``pfs_hr`` / ``os_hr``, for the ``hr_estimand`` population, under the scenario's
    administrative censoring) or the treated-arm median.  ``death_share`` is the share
    of control rwPFS events that are deaths.  Experts may instead fix ``scales``
    (lambda_01, lambda_02, lambda_12) and/or ``gamma_pfs`` / ``gamma_os``.
    """

    progression: Transition = field(default_factory=lambda: Transition(shape=1.1))
    death: Transition = field(default_factory=Transition)
    post_progression_death: Transition = field(default_factory=Transition)
    pfs_median_control: float | None = 11.9
    os_median_control: float | None = 43.1
    pfs_hr: float | None = 0.58
    os_hr: float | None = 0.66
    pfs_median_treated: float | None = None
    os_median_treated: float | None = None
    hr_estimand: str = "ATE"
    death_share: float = 0.12
    os_survival_control: tuple[float, float] | None = None
    scales: tuple[float, float, float] | None = None
    gamma_pfs: float | None = None
    gamma_os: float | None = None

    def __post_init__(self) -> None:
        _canonical(self)
        p = "outcomes"
        for name in _TRANSITIONS:
            getattr(self, name).check(f"{p}.{name}")
        ck.choice(self.hr_estimand, f"{p}.hr_estimand", ("ATE", "ATT"))
        ck.probability(self.death_share, f"{p}.death_share", open_low=True, open_high=True)
        if self.scales is None:
            ck.positive(self.pfs_median_control, f"{p}.pfs_median_control", " months")
            ck.positive(self.os_median_control, f"{p}.os_median_control", " months")
        else:
            if len(self.scales) != 3:
                raise ScenarioError(f"{p}.scales={self.scales!r} is not allowed; give 3 scales")
            _freeze(
                self,
                "scales",
                tuple(ck.positive(s, f"{p}.scales[{i}]") for i, s in enumerate(self.scales)),
            )
        for outcome in ("pfs", "os"):
            self._check_effect(outcome)
        if self.os_survival_control is not None:
            self._check_survival_target()

    def _check_survival_target(self) -> None:
        param = "outcomes.os_survival_control"
        v = self.os_survival_control
        if not isinstance(v, list | tuple) or len(v) != 2:
            raise ScenarioError(f"{param}={v!r} is not allowed; give [months, survival]")
        t = ck.positive(v[0], f"{param}[0]", " months")
        surv = ck.probability(v[1], f"{param}[1]", open_low=True, open_high=True)
        if self.scales is not None:
            raise ScenarioError(
                f"{param}={list(v)!r} is not allowed with raw outcomes.scales; it is a "
                "calibration target: give outcomes.os_median_control instead of scales"
            )
        if self.os_median_control is not None:
            before = t < self.os_median_control
            if before != (surv > 0.5):
                raise ScenarioError(
                    f"{param}={list(v)!r} is not allowed with os_median_control="
                    f"{self.os_median_control}: survival must be above 0.5 before the median "
                    "and below it after"
                )

    @staticmethod
    def _fill_missing(data: dict[str, Any]) -> dict[str, Any]:
        """TOML has no null: alternatives left out of a table are None, not their defaults.

        Giving one of ``x_hr`` / ``x_median_treated`` / ``gamma_x`` switches the other two
        off; giving raw ``scales`` switches off the control medians.
        """
        out = dict(data)
        for outcome in ("pfs", "os"):
            group = (f"{outcome}_hr", f"{outcome}_median_treated", f"gamma_{outcome}")
            if any(k in out for k in group):
                for k in group:
                    out.setdefault(k, None)
        if "scales" in out:
            out.setdefault("pfs_median_control", None)
            out.setdefault("os_median_control", None)
        return out

    def _check_effect(self, outcome: str) -> None:
        p = "outcomes"
        hr = getattr(self, f"{outcome}_hr")
        med = getattr(self, f"{outcome}_median_treated")
        gamma = getattr(self, f"gamma_{outcome}")
        given = [
            f"{p}.{n}={v!r}"
            for n, v in (
                (f"{outcome}_hr", hr),
                (f"{outcome}_median_treated", med),
                (f"gamma_{outcome}", gamma),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise ScenarioError(
                f"{p}: give exactly one of {outcome}_hr, {outcome}_median_treated, "
                f"gamma_{outcome} (got {', '.join(given) or 'none'})"
            )
        if hr is not None:
            ck.positive(hr, f"{p}.{outcome}_hr")
        if med is not None:
            ck.positive(med, f"{p}.{outcome}_median_treated", " months")
            if self.scales is not None:
                raise ScenarioError(
                    f"{p}.{outcome}_median_treated={med!r} is not allowed with raw {p}.scales; "
                    f"give {outcome}_hr or gamma_{outcome} instead"
                )
        if gamma is not None:
            ck.number(gamma, f"{p}.gamma_{outcome}")


@dataclass(frozen=True)
class Censoring:
    """Observation process (months).

    Entry is uniform over ``accrual_months``; the data cutoff falls ``followup_months``
    after accrual ends, so administrative censoring is at ``accrual + followup - entry``.
    Loss to follow-up is exponential (``lost_per_year`` = annual probability), optionally
    informative through ``lost_log_hr`` (features) and ``lost_hr_treated``.  rwPFS only:
    censoring at start of a next therapy without documented progression, exponential at
    ``next_therapy_per_year`` (times ``next_therapy_hr_treated`` in the treated arm),
    optionally informative through ``next_therapy_log_hr`` (feature name -> log-HR, like
    ``lost_log_hr``; left out of :meth:`Scenario.to_dict` when empty, so scenarios without
    it keep their fingerprints).
    With ``visit_interval_months`` > 0, progression is recorded at the first assessment
    visit on or after it (visits every interval, shifted per patient by up to
    +- ``visit_jitter_months``).
    """

    accrual_months: float = 48.8
    followup_months: float = 3.0
    lost_per_year: float = 0.05
    lost_log_hr: dict[str, float] = field(default_factory=dict)
    lost_hr_treated: float = 1.0
    next_therapy_per_year: float = 0.10
    next_therapy_hr_treated: float = 1.0
    next_therapy_log_hr: dict[str, float] = field(
        default_factory=dict, metadata={"omit_empty": True}
    )
    visit_interval_months: float = 0.0
    visit_jitter_months: float = 0.0

    def __post_init__(self) -> None:
        _canonical(self)
        p = "censoring"
        ck.non_negative(self.accrual_months, f"{p}.accrual_months", " months")
        ck.positive(self.followup_months, f"{p}.followup_months", " months")
        ck.probability(self.lost_per_year, f"{p}.lost_per_year", open_high=True)
        ck.probability(self.next_therapy_per_year, f"{p}.next_therapy_per_year", open_high=True)
        check_feature_names(self.lost_log_hr, f"{p}.lost_log_hr")
        for k, v in self.lost_log_hr.items():
            ck.number(v, f"{p}.lost_log_hr[{k!r}]")
        ck.positive(self.lost_hr_treated, f"{p}.lost_hr_treated")
        ck.positive(self.next_therapy_hr_treated, f"{p}.next_therapy_hr_treated")
        check_feature_names(self.next_therapy_log_hr, f"{p}.next_therapy_log_hr")
        for k, v in self.next_therapy_log_hr.items():
            ck.number(v, f"{p}.next_therapy_log_hr[{k!r}]")
        if self.next_therapy_log_hr and not self.next_therapy_per_year:
            raise ScenarioError(
                f"{p}.next_therapy_log_hr={dict(self.next_therapy_log_hr)!r} is not allowed "
                f"with {p}.next_therapy_per_year=0 (no next-therapy censoring to modify); "
                f"set {p}.next_therapy_per_year > 0 or leave next_therapy_log_hr empty"
            )
        ck.non_negative(self.visit_interval_months, f"{p}.visit_interval_months", " months")
        jitter = ck.non_negative(self.visit_jitter_months, f"{p}.visit_jitter_months", " months")
        if jitter and not self.visit_interval_months:
            raise ScenarioError(
                f"{p}.visit_jitter_months={jitter!r} is not allowed without visits; "
                f"set {p}.visit_interval_months > 0 or the jitter to 0"
            )
        if jitter and jitter >= self.visit_interval_months / 2:
            raise ScenarioError(
                f"{p}.visit_jitter_months={jitter!r} is not allowed; it must be < half of "
                f"visit_interval_months ({self.visit_interval_months!r})"
            )

    @property
    def cutoff_months(self) -> float:
        """Months from the start of accrual to the data cutoff."""
        return self.accrual_months + self.followup_months


@dataclass(frozen=True)
class Response:
    """Objective (best) response, a binary outcome per patient (off unless given).

    Patient ``i`` under arm ``a`` responds with probability
    ``expit(alpha_a + x_i . log_or + frailty_log_or * frailty_i)``: ``log_or`` maps
    feature names to log odds ratios, ``frailty_log_or`` ties response to the latent
    frailty (per SD) that also enters the transition hazards (``frailty_log_hr``), so
    with ``frailty_log_or < 0`` and a positive progression ``frailty_log_hr`` responders
    progress later.  The conditional log-OR of treatment is ``alpha_1 - alpha_0`` (no
    effect modification).

    Give the targets ``probability_treated`` and ``probability_control`` -- the response
    probability of each potential outcome averaged over the whole population (for a
    randomised scenario the per-arm objective response rates) -- and calibration solves
    the intercepts, or raw ``intercepts`` = (alpha_0, alpha_1) (expert mode).
    """

    probability_treated: float | None = None
    probability_control: float | None = None
    log_or: dict[str, float] = field(default_factory=dict)
    frailty_log_or: float = 0.0
    intercepts: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        _canonical(self)
        p = "response"
        check_feature_names(self.log_or, f"{p}.log_or")
        for k, v in self.log_or.items():
            ck.number(v, f"{p}.log_or[{k!r}]")
        ck.number(self.frailty_log_or, f"{p}.frailty_log_or")
        probs = (self.probability_treated, self.probability_control)
        if self.intercepts is not None:
            given = [
                f"{p}.{n}={v!r}"
                for n, v in zip(("probability_treated", "probability_control"), probs, strict=True)
                if v is not None
            ]
            if given:
                raise ScenarioError(
                    f"{p}: give either the targets probability_treated and "
                    f"probability_control or raw intercepts, not both (got {', '.join(given)} "
                    f"and {p}.intercepts={list(self.intercepts)!r})"
                )
            v = self.intercepts
            if not isinstance(v, list | tuple) or len(v) != 2:
                raise ScenarioError(
                    f"{p}.intercepts={v!r} is not allowed; give [control, treated] log-odds"
                )
            _freeze(
                self,
                "intercepts",
                tuple(ck.number(x, f"{p}.intercepts[{i}]") for i, x in enumerate(v)),
            )
            return
        for name, v in zip(("probability_treated", "probability_control"), probs, strict=True):
            if v is None:
                raise ScenarioError(
                    f"{p}.{name} is missing; give both probability_treated and "
                    "probability_control (population response probabilities in (0, 1)) or "
                    f"raw {p}.intercepts"
                )
            ck.probability(v, f"{p}.{name}", open_low=True, open_high=True)


@dataclass(frozen=True)
class CalibrationSettings:
    """Super-population used to solve targets (``population``) and compute the truth."""

    population: int = 4_000_000
    seed: int = 20_210_337
    truth_population: int = 4_000_000
    truth_seed: int = 1_430_772
    truth_batches: int = 20

    def __post_init__(self) -> None:
        _canonical(self)
        p = "calibration"
        for name in ("population", "truth_population", "truth_batches"):
            ck.count(getattr(self, name), f"{p}.{name}")
        for name in ("seed", "truth_seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ScenarioError(f"{p}.{name}={v!r} is not allowed; it must be an integer >= 0")
        if self.truth_population < 100 * self.truth_batches:
            raise ScenarioError(
                f"{p}.truth_population={self.truth_population!r} is too small for "
                f"{self.truth_batches} batches; use at least 100 patients per batch"
            )


CROSSOVER_ARMS = ("control", "treated")


@dataclass(frozen=True)
class Crossover:
    """Switching to the other arm's treatment at progression (off unless given).

    A patient of ``arm`` (``"control"``: the control arm crosses to the experimental
    treatment; ``"treated"``: the reverse) who progresses switches at the (true)
    progression time with probability ``expit(intercept + sum log_or[f] * f)`` over the
    features ``f`` of ``log_or`` (baseline covariates, the information a clinician has at
    progression in this model; feature names of :mod:`simulator.features`).  The
    intercept is solved so that the switching probability averaged over the population's
    covariates is ``share``.  A switcher's post-progression death hazard is multiplied by
    ``post_progression_hr`` from the switch on.  rwPFS is unchanged (the switch follows
    progression).
    """

    share: float = 0.5
    log_or: dict[str, float] = field(default_factory=dict)
    post_progression_hr: float = 0.7
    arm: str = "control"

    def __post_init__(self) -> None:
        _canonical(self)
        p = "crossover"
        ck.probability(self.share, f"{p}.share", open_low=True, open_high=True)
        check_feature_names(self.log_or, f"{p}.log_or")
        for k, v in self.log_or.items():
            ck.number(v, f"{p}.log_or[{k!r}]")
        ck.positive(self.post_progression_hr, f"{p}.post_progression_hr")
        ck.choice(self.arm, f"{p}.arm", CROSSOVER_ARMS)

    @property
    def arm_code(self) -> int:
        """The crossing arm as the cohort's ``treated`` value (0 control, 1 treated)."""
        return CROSSOVER_ARMS.index(self.arm)


_SECTIONS = ("covariates", "treatment", "outcomes", "censoring", "calibration")


@dataclass(frozen=True)
class Scenario:
    """A complete, validated data-generating mechanism.  Immutable; see :meth:`replace`."""

    name: str = "custom"
    description: str = ""
    covariates: Covariates = field(default_factory=Covariates)
    treatment: Treatment = field(default_factory=Treatment)
    outcomes: Outcomes = field(default_factory=Outcomes)
    censoring: Censoring = field(default_factory=Censoring)
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings)
    crossover: Crossover | None = None
    response: Response | None = None

    def __post_init__(self) -> None:
        _canonical(self)
        if not isinstance(self.name, str) or not self.name:
            raise ScenarioError(f"name={self.name!r} is not allowed; it must be a non-empty string")
        if not isinstance(self.description, str):
            raise ScenarioError(
                f"description={self.description!r} is not allowed; it must be a string"
            )
        for sec in _SECTIONS:
            expected = _hints(Scenario)[sec]
            if not isinstance(getattr(self, sec), expected):
                got = type(getattr(self, sec)).__name__
                raise ScenarioError(f"{sec} must be a {expected.__name__}, got {got}")
        if self.crossover is not None and not isinstance(self.crossover, Crossover):
            got = type(self.crossover).__name__
            raise ScenarioError(f"crossover must be a Crossover or None (off), got {got}")
        if self.response is not None and not isinstance(self.response, Response):
            got = type(self.response).__name__
            raise ScenarioError(f"response must be a Response (or None: no response), got {got}")
        from .covariates import bone_only_probability, check_arm_means

        bone_only_probability(self.covariates)
        check_arm_means(self)

    # ---- derived views ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists for tuples, None omitted) — the TOML layout."""
        return _to_plain(self)

    def to_toml(self) -> str:
        """TOML text that :func:`scenario_from_toml` reads back to an equal scenario."""
        return tomli_w.dumps(self.to_dict())

    def save(self, path: str | Path) -> None:
        """Write the scenario to a TOML file."""
        Path(path).write_text(self.to_toml())

    def fingerprint(self) -> str:
        """SHA-256 of every parameter except name and description (cache key)."""
        return self._fingerprint

    def __hash__(self) -> int:
        return hash((self.name, self.description, self._fingerprint))

    @functools.cached_property
    def _fingerprint(self) -> str:
        d = self.to_dict()
        d.pop("name", None)
        d.pop("description", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:20]

    def replace(self, **changes: Any) -> Scenario:
        """A copy with some parameters changed.

        Keys are top-level fields or dotted / double-underscore paths into a section,
        e.g. ``sc.replace(**{"treatment.strength": 2.0})`` or
        ``sc.replace(outcomes__pfs_hr=1.0, name="null-like")``.  The result is validated.
        """
        d = self.to_dict()
        seen: dict[str, str] = {}
        for key in changes:
            dotted = key.replace("__", ".")
            if dotted in seen:
                raise ScenarioError(
                    f"replace: {seen[dotted]!r} and {key!r} name the same parameter {dotted!r}; "
                    "give it once"
                )
            seen[dotted] = key
        for key, value in changes.items():
            path = key.replace("__", ".").split(".")
            node = d
            for part in path[:-1]:
                if not isinstance(node.get(part), dict):
                    node[part] = {} if part not in node or node[part] is None else node[part]
                    if not isinstance(node[part], dict):
                        raise ScenarioError(f"replace: {key!r} does not name a scenario parameter")
                node = node[part]
            node[path[-1]] = _to_plain(value) if dataclasses.is_dataclass(value) else value
        return scenario_from_dict(d)


# ---- (de)serialisation ---------------------------------------------------------------
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if v is None or (f.metadata.get("omit_empty") and not v):
                continue
            out[f.name] = _to_plain(v)
        return out
    if isinstance(obj, dict):
        return {str(k): _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _convert(tp: Any, value: Any, param: str) -> Any:
    tp = _strip_optional(tp)
    if value is None:
        return None
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, param)
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ScenarioError(f"{param}={value!r} is not allowed; it must be a list")
        return tuple(_scalar(v) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ScenarioError(f"{param}={value!r} is not allowed; it must be a table (mapping)")
        return {str(k): (tuple(v) if isinstance(v, list) else v) for k, v in value.items()}
    return value


def _scalar(v: Any) -> Any:
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def _build(cls: type, data: Any, prefix: str) -> Any:
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ScenarioError(f"{prefix or 'scenario'} must be a table (mapping), got {data!r}")
    hints = _hints(cls)
    if hasattr(cls, "_fill_missing"):
        data = cls._fill_missing(data)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        where = prefix or "scenario"
        raise ScenarioError(f"{where} has unknown parameter(s) {unknown}; allowed: {names}")
    kwargs = {}
    for k, v in data.items():
        param = f"{prefix}.{k}" if prefix else k
        conv = _convert(hints[k], v, param)
        if hints[k] is float and isinstance(conv, int) and not isinstance(conv, bool):
            conv = float(conv)
        kwargs[k] = conv
    try:
        return cls(**kwargs)
    except TypeError as err:  # wrong types deep inside (e.g. a string where a number goes)
        raise ScenarioError(f"{prefix or 'scenario'}: {err}") from None


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    """Build and validate a scenario from a nested dict (the TOML layout)."""
    return _build(Scenario, data, "")


def scenario_from_toml(text: str, source: str = "<string>") -> Scenario:
    """Parse TOML text into a validated scenario (malformed TOML -> ScenarioError).

    A document with ``kind = "generic"`` is a generic scenario
    (:class:`simulator.generic.GenericScenario`, :func:`simulator.generic.generic_from_dict`).

    An empty document is refused (it would silently be the default scenario).
    """
    if not isinstance(text, str):
        raise ScenarioError(
            f"text={text!r} is not allowed; give the TOML document as a str"
            if not isinstance(text, bytes)
            else "text is bytes; decode it first (scenario files are UTF-8 text)"
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"scenario file {source} is not valid TOML: {err}") from None
    if not data:
        raise ScenarioError(
            f"scenario file {source} is empty; give at least a name or one section "
            "(`rwesim show flatiron --toml` prints a complete scenario)"
        )
    if data.get("kind") == "generic":  # a generic scenario (simulator.generic)
        from .generic import generic_from_dict

        return generic_from_dict(data)  # type: ignore[return-value]
    return scenario_from_dict(data)


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario TOML file (UTF-8)."""
    if not isinstance(path, str | Path) or not str(path):
        raise ScenarioError(f"path={path!r} is not allowed; give a scenario file name")
    p = Path(path)
    if p.is_dir():
        raise ScenarioError(f"scenario file {str(path)!r} is a directory, not a TOML file")
    if not p.is_file():
        raise ScenarioError(f"scenario file {str(path)!r} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"scenario file {str(path)!r} is not UTF-8 text (TOML)") from None
    return scenario_from_toml(text, source=str(path))
