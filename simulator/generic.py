"""The ``generic`` scenario kind: a declared covariate / treatment / PH-outcome model.

A small, fully declared data-generating model of the kind used in methods papers and in
the MatchIt / WeightIt vignettes (``docs/guide/scenarios.md``, "Generic scenarios"):

* covariates: ``normal`` (mean, sd), ``binary`` (probability), ``threshold`` (1 when
  the latent normal is below a cut) and ``categorical`` (level probabilities, integer
  levels 0 .. K-1 as a pandas categorical), all from one latent multivariate normal with
  a given correlation matrix (a Gaussian copula; identity by default);
* treatment: logistic, ``logit P(A=1 | x) = intercept + coef' x``, with the intercept
  given or solved for a target treated ``share``; or ``randomised`` with a fixed
  probability;
* outcomes (one or more, each its own column pair ``<name>_time`` / ``<name>_event``):
  proportional hazards ``h(t | x, a) = h0(t) exp(coef' x + log_hr a)`` with a Weibull
  (``H0(t) = rate t^shape``), exponential (``rate t``) or Gompertz
  (``rate / shape (exp(shape t) - 1)``) baseline; the conditional treatment log-HR is
  given (``log_hr``) or calibrated so that the marginal ATE or ATT hazard ratio hits
  ``target_hr`` (:func:`resolve`);
* censoring, common to all outcomes: administrative at ``admin`` plus random ``uniform``
  (``low``, ``high``) or ``exponential`` (``rate``, optionally ``coef`` log-HRs on the
  covariates: covariate-dependent, non-informative given the covariates).

A categorical covariate's ``coef`` is a list of K-1 log-HRs / log-ORs (levels 1 .. K-1
versus level 0); every other covariate's is a number.  Times are in the unit of the
design (months for MBC-like designs; the vignette's own unit for ``austin-vignette``).

Truths (:func:`generic_truth`): the conditional log-HR (the parameter) and, on a large
potential-outcome population with common random numbers, the marginal log-HR (Cox of the
stacked potential outcomes, weighted by the estimand's population weights: ATE 1,
ATT e(x), ATC 1 - e(x), ATO e(1 - e), ATM min(e, 1 - e)) uncensored, under the
administrative censoring and under the whole censoring, and S(t) and RMST differences at
``horizon``; Monte Carlo SEs from batches.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, ndtr, ndtri

from .exceptions import CalibrationError, ScenarioError
from .streams import SeedLike, as_seed_sequence

COVARIATE_DISTS: tuple[str, ...] = ("normal", "binary", "threshold", "categorical")
BASELINES: tuple[str, ...] = ("weibull", "exponential", "gompertz")
RANDOM_CENSORING: tuple[str, ...] = ("none", "uniform", "exponential")
TARGET_ESTIMANDS: tuple[str, ...] = ("ATE", "ATT")
TARGET_CENSORING: tuple[str, ...] = ("none", "admin")
TRUTH_ESTIMANDS: tuple[str, ...] = ("ATE", "ATT", "ATC", "ATO", "ATM")
TRUTH_CENSORING: tuple[str, ...] = ("none", "admin", "study")
TREATMENT = "treatment"
TRUTH_SEED = 20_261_206
CALIBRATION_N = 500_000
SHARE_N = 1 << 18

Coef = Mapping[str, float | Sequence[float]]


def _num(
    x: object,
    param: str,
    lo: float = -math.inf,
    hi: float = math.inf,
    open_lo: bool = False,
    open_hi: bool = False,
) -> float:
    """A finite float in [lo, hi] (open ends on request) or a ScenarioError."""
    ok = isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)
    v = float(x) if ok else math.nan  # type: ignore[arg-type]
    if (
        not ok
        or not math.isfinite(v)
        or v < lo
        or v > hi
        or (open_lo and v == lo)
        or (open_hi and v == hi)
    ):
        lo_s = "(" if open_lo else "["
        hi_s = ")" if open_hi else "]"
        raise ScenarioError(
            f"{param}={x!r} is not allowed; give a finite number in {lo_s}{lo:g}, {hi:g}{hi_s}"
        )
    return v


def _choice(x: object, param: str, allowed: Sequence[str]) -> str:
    if not isinstance(x, str) or x not in allowed:
        raise ScenarioError(f"{param}={x!r} is not allowed; use one of {list(allowed)}")
    return x


def _name(x: object, param: str) -> str:
    if not isinstance(x, str) or not x.isidentifier():
        raise ScenarioError(f"{param}={x!r} is not allowed; give a name (letters, digits, _)")
    return x


@dataclass(frozen=True)
class Covariate:
    """One declared covariate (a column of the simulated frame).

    Attributes
    ----------
    name : str
        Column name.
    dist : {"normal", "binary", "threshold", "categorical"}
    mean, sd : float
        ``normal``: ``mean + sd Z``.
    prob : float
        ``binary``: P(X = 1) in (0, 1) (X = 1 when Z < Phi^-1(prob)).
    cut : float
        ``threshold``: X = 1 when Z < cut.
    probs : tuple of float
        ``categorical``: level probabilities (>= 2 levels, each > 0, summing to 1).
    """

    name: str
    dist: str = "normal"
    mean: float = 0.0
    sd: float = 1.0
    prob: float = 0.5
    cut: float = 0.0
    probs: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        p = f"covariates.{self.name}"
        _name(self.name, "covariates.name")
        _choice(self.dist, f"{p}.dist", COVARIATE_DISTS)
        _num(self.mean, f"{p}.mean")
        _num(self.sd, f"{p}.sd", 0.0, open_lo=True)
        _num(self.prob, f"{p}.prob", 0.0, 1.0, open_lo=True, open_hi=True)
        _num(self.cut, f"{p}.cut")
        object.__setattr__(self, "probs", tuple(self.probs))
        if self.dist == "categorical":
            if len(self.probs) < 2:
                raise ScenarioError(
                    f"{p}.probs={list(self.probs)!r} is not allowed; a categorical covariate "
                    "needs at least 2 level probabilities"
                )
            for i, q in enumerate(self.probs):
                _num(q, f"{p}.probs[{i}]", 0.0, 1.0, open_lo=True)
            if not math.isclose(sum(self.probs), 1.0, abs_tol=1e-9):
                raise ScenarioError(
                    f"{p}.probs={list(self.probs)!r} is not allowed; the level "
                    f"probabilities must sum to 1 (they sum to {sum(self.probs):g})"
                )
        elif self.probs:
            raise ScenarioError(f"{p}.probs is only allowed for dist='categorical'")

    @property
    def levels(self) -> int:
        """Number of levels (categorical), else 1 (one coefficient)."""
        return len(self.probs) if self.dist == "categorical" else 1

    def values(self, z: np.ndarray) -> np.ndarray:
        """Column values (float; categorical: integer codes) from latent standard normals."""
        if self.dist == "normal":
            return self.mean + self.sd * z
        if self.dist == "binary":
            return (z < ndtri(self.prob)).astype(float)
        if self.dist == "threshold":
            return (z < self.cut).astype(float)
        cuts = np.cumsum(self.probs)[:-1]
        return np.searchsorted(cuts, ndtr(z), side="right").astype(float)


@dataclass(frozen=True)
class Treatment:
    """Treatment model: logistic in the covariates, or randomised.

    Attributes
    ----------
    coef : mapping of str to float (list for a categorical covariate)
        Log-odds ratios.
    intercept : float, optional
        Given intercept; exactly one of ``intercept``, ``share``, ``randomised``.
    share : float, optional
        Target treated share in (0, 1): the intercept is solved so that the mean of
        e(x) over the covariate distribution is ``share``.
    randomised : float, optional
        P(treated) in (0, 1) for everyone (``coef`` must be empty).
    """

    coef: Mapping[str, Any] = field(default_factory=dict)
    intercept: float | None = None
    share: float | None = None
    randomised: float | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("intercept", "share", "randomised") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ScenarioError(
                f"treatment: {given or 'none'} given; give exactly one of 'intercept', "
                "'share' (solve the intercept) or 'randomised' (a fixed probability)"
            )
        if self.intercept is not None:
            _num(self.intercept, "treatment.intercept")
        if self.share is not None:
            _num(self.share, "treatment.share", 0.0, 1.0, open_lo=True, open_hi=True)
        if self.randomised is not None:
            _num(self.randomised, "treatment.randomised", 0.0, 1.0, open_lo=True, open_hi=True)
            if self.coef:
                raise ScenarioError(
                    f"treatment.coef={dict(self.coef)!r} is not allowed with randomised "
                    "treatment; leave it empty"
                )
        object.__setattr__(self, "coef", dict(self.coef))


@dataclass(frozen=True)
class Outcome:
    """A proportional-hazards time to event.

    Attributes
    ----------
    name : str
        Outcome name; columns ``<name>_time`` and ``<name>_event``.
    baseline : {"weibull", "exponential", "gompertz"}
    rate : float
        Baseline scale (> 0): ``H0(t) = rate t^shape`` (Weibull), ``rate t``
        (exponential), ``rate / shape (exp(shape t) - 1)`` (Gompertz).
    shape : float
        Weibull shape (> 0); Gompertz shape (> 0, per time unit); 1 for exponential.
    coef : mapping of str to float (list for a categorical covariate)
        Covariate log-HRs.
    log_hr : float, optional
        Conditional treatment log-HR (0 when neither it nor ``target_hr`` is given);
        None when ``target_hr`` is given (calibrated).
    target_hr : float, optional
        Marginal HR target of ``target_estimand`` (ATE or ATT) under
        ``target_censoring`` ("none" or "admin").
    """

    name: str
    baseline: str = "weibull"
    rate: float = 1.0
    shape: float = 1.0
    coef: Mapping[str, Any] = field(default_factory=dict)
    log_hr: float | None = None
    target_hr: float | None = None
    target_estimand: str = "ATE"
    target_censoring: str = "none"

    def __post_init__(self) -> None:
        p = f"outcomes.{self.name}"
        _name(self.name, "outcomes.name")
        _choice(self.baseline, f"{p}.baseline", BASELINES)
        _num(self.rate, f"{p}.rate", 0.0, open_lo=True)
        _num(self.shape, f"{p}.shape", 0.0, open_lo=True)
        if self.baseline == "exponential" and self.shape != 1.0:
            raise ScenarioError(
                f"{p}.shape={self.shape!r} is not allowed for an exponential baseline; leave "
                "it at 1 (or use baseline='weibull')"
            )
        if self.log_hr is not None and self.target_hr is not None:
            raise ScenarioError(
                f"{p}: log_hr={self.log_hr!r}, target_hr={self.target_hr!r}; give one of them "
                "(the conditional log-HR, or a marginal HR target to calibrate it to)"
            )
        if self.log_hr is None and self.target_hr is None:
            object.__setattr__(self, "log_hr", 0.0)
        if self.log_hr is not None:
            _num(self.log_hr, f"{p}.log_hr", -10.0, 10.0)
        if self.target_hr is not None:
            _num(self.target_hr, f"{p}.target_hr", 0.0, open_lo=True)
        _choice(self.target_estimand, f"{p}.target_estimand", TARGET_ESTIMANDS)
        _choice(self.target_censoring, f"{p}.target_censoring", TARGET_CENSORING)
        object.__setattr__(self, "coef", dict(self.coef))

    def cumhaz0(self, t: np.ndarray) -> np.ndarray:
        """Baseline cumulative hazard H0(t), t in time units, shape as t."""
        if self.baseline == "weibull":
            return self.rate * t**self.shape
        if self.baseline == "exponential":
            return self.rate * t
        return self.rate / self.shape * np.expm1(self.shape * t)

    def inverse(self, h: np.ndarray) -> np.ndarray:
        """H0^-1(h): the time at which the baseline cumulative hazard reaches ``h``."""
        if self.baseline == "weibull":
            return (h / self.rate) ** (1.0 / self.shape)
        if self.baseline == "exponential":
            return h / self.rate
        return np.log1p(self.shape * h / self.rate) / self.shape


@dataclass(frozen=True)
class Censoring:
    """Censoring common to all outcomes.

    Attributes
    ----------
    admin : float, optional
        Administrative censoring time (> 0; None: none).
    random : {"none", "uniform", "exponential"}
    low, high : float
        ``uniform``: censoring time uniform on [low, high), 0 <= low < high.
    rate : float
        ``exponential``: rate (> 0) at covariates 0.
    coef : mapping of str to float
        ``exponential`` only: covariate log-HRs of the censoring hazard.
    """

    admin: float | None = None
    random: str = "none"
    low: float = 0.0
    high: float = 1.0
    rate: float = 1.0
    coef: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.admin is not None:
            _num(self.admin, "censoring.admin", 0.0, open_lo=True)
        _choice(self.random, "censoring.random", RANDOM_CENSORING)
        _num(self.low, "censoring.low", 0.0)
        _num(self.high, "censoring.high", 0.0, open_lo=True)
        if self.random == "uniform" and not self.low < self.high:
            raise ScenarioError(
                f"censoring.low={self.low!r}, high={self.high!r} is not allowed; need low < high"
            )
        _num(self.rate, "censoring.rate", 0.0, open_lo=True)
        if self.coef and self.random != "exponential":
            raise ScenarioError(
                f"censoring.coef is not allowed with random={self.random!r}; covariate-"
                "dependent censoring needs random='exponential'"
            )
        object.__setattr__(self, "coef", dict(self.coef))


@dataclass(frozen=True, eq=False)
class GenericScenario:
    """A generic scenario (module docstring), validated on construction.

    Attributes
    ----------
    name, description : str
    covariates : tuple of Covariate
        At least one, distinct names.
    correlation : tuple of tuple of float, optional
        Latent correlation matrix (k x k, k = number of covariates; symmetric, unit
        diagonal, positive semi-definite); None: independent.
    treatment : Treatment
    outcomes : tuple of Outcome
        At least one, distinct names.
    censoring : Censoring
    horizon : float, optional
        Horizon of the S(t) and RMST difference truths (time units).
    """

    name: str
    covariates: tuple[Covariate, ...]
    treatment: Treatment
    outcomes: tuple[Outcome, ...]
    censoring: Censoring = field(default_factory=Censoring)
    correlation: tuple[tuple[float, ...], ...] | None = None
    horizon: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or self.name.split() != [self.name]:
            raise ScenarioError(
                f"name={self.name!r} is not allowed; give a non-empty name without spaces"
            )
        if not isinstance(self.description, str):
            raise ScenarioError(f"description={self.description!r} is not allowed; give text")
        covs = tuple(self.covariates)
        outs = tuple(self.outcomes)
        object.__setattr__(self, "covariates", covs)
        object.__setattr__(self, "outcomes", outs)
        if not covs or not all(isinstance(c, Covariate) for c in covs):
            raise ScenarioError("covariates: give at least one covariate table (name, dist, ...)")
        if not outs or not all(isinstance(o, Outcome) for o in outs):
            raise ScenarioError("outcomes: give at least one outcome table (name, baseline, ...)")
        names = [c.name for c in covs]
        reserved = {"id", TREATMENT} | {f"{o.name}_{s}" for o in outs for s in ("time", "event")}
        for dup in (names, [o.name for o in outs]):
            seen = {x for x in dup if dup.count(x) > 1}
            if seen:
                raise ScenarioError(f"names {sorted(seen)} are given twice; names must be distinct")
        clash = sorted(set(names) & reserved)
        if clash:
            raise ScenarioError(
                f"covariate names {clash} are not allowed; they are columns of the frame "
                f"({sorted(reserved)})"
            )
        self._check_coef(self.treatment.coef, "treatment.coef")
        for o in outs:
            self._check_coef(o.coef, f"outcomes.{o.name}.coef")
        self._check_coef(self.censoring.coef, "censoring.coef")
        if self.horizon is not None:
            _num(self.horizon, "horizon", 0.0, open_lo=True)
        if self.correlation is not None:
            object.__setattr__(
                self, "correlation", tuple(tuple(float(v) for v in r) for r in self.correlation)
            )
            r = np.asarray(self.correlation, dtype=float)
            k = len(covs)
            if r.shape != (k, k):
                raise ScenarioError(
                    f"correlation has shape {r.shape}; it must be {k} x {k} (one row and "
                    "column per covariate, in order)"
                )
            if (
                not np.all(np.isfinite(r))
                or not np.allclose(r, r.T)
                or not np.allclose(np.diag(r), 1.0)
                or np.any(np.abs(r) > 1)
            ):
                raise ScenarioError(
                    "correlation is not allowed; it must be symmetric with a unit diagonal "
                    "and entries in [-1, 1]"
                )
            lo = float(np.linalg.eigvalsh(r).min())
            if lo < -1e-10:
                raise ScenarioError(
                    f"correlation is not positive semi-definite (smallest eigenvalue {lo:.3g}); "
                    "give a valid correlation matrix"
                )

    def _check_coef(self, coef: Mapping[str, Any], param: str) -> None:
        by = {c.name: c for c in self.covariates}
        for key, v in coef.items():
            if key not in by:
                raise ScenarioError(f"{param}: {key!r} is not a covariate; use some of {list(by)}")
            c = by[key]
            if c.dist == "categorical":
                if not isinstance(v, list | tuple) or len(v) != c.levels - 1:
                    raise ScenarioError(
                        f"{param}.{key}={v!r} is not allowed; give a list of {c.levels - 1} "
                        "numbers (levels 1 .. K-1 versus level 0)"
                    )
                for i, x in enumerate(v):
                    _num(x, f"{param}.{key}[{i}]", -20.0, 20.0)
            else:
                _num(v, f"{param}.{key}", -20.0, 20.0)

    # -- identity ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-ready parameters (``kind = "generic"``); :func:`generic_from_dict`
        reads them back to an equal scenario."""

        def plain(obj: Any) -> dict[str, Any]:  # the fields that differ from the defaults
            out: dict[str, Any] = {}
            for f in fields(obj):
                v = getattr(obj, f.name)
                default = f.default_factory() if f.default_factory is not MISSING else f.default
                if v is None or (f.name != "name" and v == default):
                    continue
                if isinstance(v, dict):
                    v = {a: list(b) if isinstance(b, tuple) else b for a, b in v.items()}
                elif isinstance(v, tuple):
                    v = list(v)
                out[f.name] = v
            return out

        d: dict[str, Any] = {"kind": "generic", "name": self.name}
        if self.description:
            d["description"] = self.description
        if self.horizon is not None:
            d["horizon"] = self.horizon
        if self.correlation is not None:
            d["correlation"] = [list(r) for r in self.correlation]
        d["covariates"] = [plain(c) for c in self.covariates]
        d["treatment"] = plain(self.treatment)
        d["outcomes"] = [plain(o) for o in self.outcomes]
        d["censoring"] = plain(self.censoring)
        return d

    def fingerprint(self) -> str:
        """SHA-256 of the canonical parameters: same parameters, same fingerprint."""
        d = {k: v for k, v in self.to_dict().items() if k != "description"}
        text = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GenericScenario) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns of :func:`simulate_generic`'s frame, in order."""
        outs = [f"{o.name}_{s}" for o in self.outcomes for s in ("time", "event")]
        return ("id", TREATMENT, *outs, *(c.name for c in self.covariates))


_SECTIONS = {"covariates", "treatment", "outcomes", "censoring"}
_TOP = {"kind", "name", "description", "horizon", "correlation", *_SECTIONS}


def _table(cls: type, data: object, param: str) -> Any:
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{param}={data!r} is not allowed; give a table")
    allowed = list(cls.__dataclass_fields__)
    for k in data:
        if k not in allowed:
            raise ScenarioError(f"{param}: {k!r} is not a parameter; use some of {allowed}")
    kw = dict(data)
    if "probs" in kw and isinstance(kw["probs"], list):
        kw["probs"] = tuple(kw["probs"])
    try:
        return cls(**kw)
    except TypeError as err:
        raise ScenarioError(f"{param}: {err}") from None


def generic_from_dict(data: Mapping[str, Any]) -> GenericScenario:
    """Build and validate a generic scenario from a nested dict (the TOML layout:
    ``kind = "generic"``, ``[[covariates]]``, ``[treatment]``, ``[[outcomes]]``,
    ``[censoring]``)."""
    if not isinstance(data, Mapping):
        raise ScenarioError(f"scenario={data!r} is not allowed; give a table")
    if data.get("kind", "generic") != "generic":
        raise ScenarioError(f"kind={data.get('kind')!r} is not allowed here; use 'generic'")
    for k in data:
        if k not in _TOP:
            raise ScenarioError(
                f"{k!r} is not a parameter of a generic scenario; use some of {sorted(_TOP)}"
            )
    for k in ("name", "covariates", "treatment", "outcomes"):
        if k not in data:
            raise ScenarioError(f"a generic scenario needs {k!r}")
    for k in ("covariates", "outcomes"):
        if not isinstance(data[k], list):
            raise ScenarioError(f"{k}={data[k]!r} is not allowed; give a list of tables ([[{k}]])")
    corr = data.get("correlation")
    return GenericScenario(
        name=data["name"],
        description=data.get("description", ""),
        horizon=data.get("horizon"),
        correlation=None if corr is None else tuple(tuple(r) for r in corr),
        covariates=tuple(_table(Covariate, c, "covariates") for c in data["covariates"]),
        treatment=_table(Treatment, data["treatment"], "treatment"),
        outcomes=tuple(_table(Outcome, o, "outcomes") for o in data["outcomes"]),
        censoring=_table(Censoring, data.get("censoring", {}), "censoring"),
    )


def generic_from_toml(text: str, source: str = "<string>") -> GenericScenario:
    """Parse a ``kind = "generic"`` scenario TOML document."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"scenario file {source} is not valid TOML: {err}") from None
    return generic_from_dict(data)


def generic_to_toml(sc: GenericScenario) -> str:
    """TOML text that :func:`generic_from_toml` reads back to an equal scenario."""
    import tomli_w

    return tomli_w.dumps(sc.to_dict())


# -- the model -------------------------------------------------------------------------
def _latent(sc: GenericScenario, n: int, rng: np.random.Generator) -> np.ndarray:
    z = rng.standard_normal((n, len(sc.covariates)))
    if sc.correlation is not None:
        r = np.asarray(sc.correlation)
        w, v = np.linalg.eigh(r)
        root = v * np.sqrt(np.clip(w, 0.0, None))  # r = root root'
        z = z @ root.T
    return z


def covariate_values(
    sc: GenericScenario, n: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Covariate columns (float arrays (n,); categorical: integer codes as floats)."""
    z = _latent(sc, n, rng)
    return {c.name: c.values(z[:, j]) for j, c in enumerate(sc.covariates)}


def linear(sc: GenericScenario, coef: Mapping[str, Any], x: Mapping[str, np.ndarray]) -> np.ndarray:
    """``coef' x`` (n,); a categorical covariate contributes its level's coefficient."""
    n = len(next(iter(x.values())))
    lp = np.zeros(n)
    by = {c.name: c for c in sc.covariates}
    for key, b in coef.items():
        if by[key].dist == "categorical":
            lp += np.r_[0.0, np.asarray(b, float)][x[key].astype(np.int64)]
        else:
            lp += float(b) * x[key]
    return lp


@dataclass(frozen=True)
class Resolved:
    """Solved parameters: the treatment intercept (None when randomised) and each
    outcome's conditional treatment log-HR (given or calibrated)."""

    intercept: float | None
    log_hr: dict[str, float]


_RESOLVED: dict[str, Resolved] = {}


def resolve(sc: GenericScenario) -> Resolved:
    """The treatment intercept (solved for ``share``) and the conditional log-HRs
    (calibrated to ``target_hr``), cached by fingerprint (deterministic).

    The calibration finds the conditional log-HR whose marginal HR (:func:`marginal_log_hr`
    on a population of :data:`CALIBRATION_N` with fixed seed) equals the target.

    Raises
    ------
    CalibrationError
        A target outside what log-HRs in [-10, 10] reach.
    """
    key = sc.fingerprint()
    if key in _RESOLVED:
        return _RESOLVED[key]
    t = sc.treatment
    intercept: float | None = t.intercept
    if t.share is not None:
        x = covariate_values(sc, SHARE_N, np.random.default_rng(TRUTH_SEED))
        lp = linear(sc, t.coef, x)
        intercept = brentq(lambda a: float(expit(a + lp).mean()) - t.share, -50, 50, xtol=1e-12)
    log_hr: dict[str, float] = {}
    pop = None
    for o in sc.outcomes:
        if o.log_hr is not None:
            log_hr[o.name] = float(o.log_hr)
            continue
        if pop is None:
            pop = _Population(sc, intercept, CALIBRATION_N, TRUTH_SEED + 1)
        goal = math.log(o.target_hr)  # type: ignore[arg-type]
        cens = o.target_censoring

        def gap(
            b: float, o: Outcome = o, cens: str = cens, goal: float = goal, pop: _Population = pop
        ) -> float:
            return pop.marginal(o, b, o.target_estimand, cens)[0] - goal

        lo, hi = gap(-10.0), gap(10.0)
        if not lo < 0 < hi:
            raise CalibrationError(
                f"outcomes.{o.name}.target_hr={o.target_hr!r} is not reachable; the marginal "
                f"{o.target_estimand} HR ranges over [{math.exp(lo + goal):.3g}, "
                f"{math.exp(hi + goal):.3g}] for conditional log-HRs in [-10, 10]",
                target=f"outcomes.{o.name}.target_hr",
                value=o.target_hr,
            )
        log_hr[o.name] = float(brentq(gap, -10.0, 10.0, xtol=1e-7))
    _RESOLVED[key] = Resolved(intercept, log_hr)
    return _RESOLVED[key]


def propensity(
    sc: GenericScenario, x: Mapping[str, np.ndarray], intercept: float | None
) -> np.ndarray:
    """True propensity score e(x) (n,)."""
    t = sc.treatment
    n = len(next(iter(x.values())))
    if t.randomised is not None:
        return np.full(n, t.randomised)
    return expit(intercept + linear(sc, t.coef, x))


def censoring_times(
    sc: GenericScenario,
    x: Mapping[str, np.ndarray],
    rng: np.random.Generator,
    admin: bool = True,
    random: bool = True,
) -> np.ndarray | None:
    """Censoring times (n,) under the administrative and / or random censoring (None:
    no censoring of that kind)."""
    c = sc.censoring
    n = len(next(iter(x.values())))
    out = None
    if random and c.random == "uniform":
        out = rng.uniform(c.low, c.high, n)
    elif random and c.random == "exponential":
        out = rng.exponential(1.0, n) / (c.rate * np.exp(linear(sc, c.coef, x)))
    if admin and c.admin is not None:
        out = np.full(n, c.admin) if out is None else np.minimum(out, c.admin)
    return out


def simulate_generic(sc: GenericScenario, n: int, seed: SeedLike) -> pd.DataFrame:
    """One replicate: ``n`` patients (columns :attr:`GenericScenario.columns`).

    Independent streams (``SeedSequence.spawn``) for covariates, treatment, censoring and
    each outcome: the same ``(n, seed)`` gives the same frame bit for bit, and adding an
    outcome leaves the others' draws unchanged.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ScenarioError(f"n={n!r} is not allowed; give an integer >= 1")
    ss = as_seed_sequence(seed)
    s_cov, s_trt, s_cens, *s_out = ss.spawn(3 + len(sc.outcomes))
    res = resolve(sc)
    x = covariate_values(sc, int(n), np.random.default_rng(s_cov))
    e = propensity(sc, x, res.intercept)
    a = (np.random.default_rng(s_trt).random(int(n)) < e).astype(np.int8)
    c = censoring_times(sc, x, np.random.default_rng(s_cens))
    frame: dict[str, Any] = {"id": np.arange(int(n)), TREATMENT: a}
    for o, s in zip(sc.outcomes, s_out, strict=True):
        lp = linear(sc, o.coef, x) + res.log_hr[o.name] * a
        t = o.inverse(np.random.default_rng(s).exponential(1.0, int(n)) * np.exp(-lp))
        if c is None:
            frame[f"{o.name}_time"], frame[f"{o.name}_event"] = t, np.ones(int(n), np.int8)
        else:
            frame[f"{o.name}_time"] = np.minimum(t, c)
            frame[f"{o.name}_event"] = (t <= c).astype(np.int8)
    for cov in sc.covariates:
        v = x[cov.name]
        if cov.dist == "categorical":
            frame[cov.name] = pd.Categorical(v.astype(np.int64), categories=range(cov.levels))
        elif cov.dist in ("binary", "threshold"):
            frame[cov.name] = v.astype(np.int8)
        else:
            frame[cov.name] = v
    return pd.DataFrame(frame)


# -- truths ----------------------------------------------------------------------------
def weighted_log_hr(
    time: np.ndarray,
    event: np.ndarray,
    arm: np.ndarray,
    w: np.ndarray,
    tol: float = 1e-10,
    max_iter: int = 50,
) -> float:
    """Weighted treatment-only Cox log-HR (Breslow; continuous times have no ties).

    ``time``, ``event``, ``arm`` (1 treated), ``w`` (case weights > 0): arrays (m,).
    """
    order = np.argsort(time, kind="stable")[::-1]
    return _sorted_log_hr(
        event[order].astype(bool), arm[order].astype(bool), w[order], tol, max_iter
    )


def _sorted_log_hr(
    ev: np.ndarray, ar: np.ndarray, ww: np.ndarray, tol: float = 1e-10, max_iter: int = 50
) -> float:
    """:func:`weighted_log_hr` on arrays sorted by descending time (cumulative sums are
    the weights at risk)."""
    r1 = np.cumsum(np.where(ar, ww, 0.0))[ev]
    r0 = np.cumsum(np.where(ar, 0.0, ww))[ev]
    we, ae = ww[ev], ar[ev]
    b = math.log(max(we[ae].sum(), 1e-300) / max(we[~ae].sum(), 1e-300))
    for _ in range(max_iter):
        p = r1 * math.exp(b) / (r0 + r1 * math.exp(b))
        step = float(np.sum(we * (ae - p))) / float(np.sum(we * p * (1 - p)))
        b += step
        if abs(step) < tol:
            break
    return b


class _Population:
    """A potential-outcome population with common random numbers (one unit exponential
    per patient and outcome, shared by both arms; one censoring time per patient)."""

    def __init__(
        self, sc: GenericScenario, intercept: float | None, n: int, seed: int, batches: int = 10
    ) -> None:
        ss = np.random.SeedSequence(seed)
        s_cov, s_cens, *s_out = ss.spawn(2 + len(sc.outcomes))
        self.sc, self.n, self.batches = sc, n, batches
        self.x = covariate_values(sc, n, np.random.default_rng(s_cov))
        e = propensity(sc, self.x, intercept)
        self.weights = {
            "ATE": np.ones(n),
            "ATT": e,
            "ATC": 1 - e,
            "ATO": e * (1 - e),
            "ATM": np.minimum(e, 1 - e),
        }
        self.cens = {
            "none": None,
            "admin": censoring_times(sc, self.x, np.random.default_rng(s_cens), random=False),
            "study": censoring_times(sc, self.x, np.random.default_rng(s_cens)),
        }
        self.e1 = {
            o.name: np.random.default_rng(s).exponential(1.0, n)
            for o, s in zip(sc.outcomes, s_out, strict=True)
        }
        self.lp = {o.name: linear(sc, o.coef, self.x) for o in sc.outcomes}

    def times(self, o: Outcome, b: float) -> tuple[np.ndarray, np.ndarray]:
        lp = self.lp[o.name]
        e1 = self.e1[o.name]
        return o.inverse(e1 * np.exp(-lp)), o.inverse(e1 * np.exp(-lp - b))

    def marginal(
        self, o: Outcome, b: float, estimand: str, censoring: str, batches: bool = False
    ) -> tuple[float, float]:
        """(marginal log-HR, MCSE from batches (0 without ``batches``))."""
        return self.marginals(o, b, (estimand,), censoring, batches)[estimand]

    def marginals(
        self, o: Outcome, b: float, estimands: Sequence[str], censoring: str, batches: bool = False
    ) -> dict[str, tuple[float, float]]:
        """:meth:`marginal` of several estimands (one sort of the stacked times each)."""
        t0, t1 = self.times(o, b)
        c = self.cens[censoring]

        def fit(sl: slice) -> dict[str, float]:
            tt = np.concatenate([t0[sl], t1[sl]])
            if c is None:
                d = np.ones(tt.size, bool)
            else:
                cc = np.concatenate([c[sl], c[sl]])
                d = tt <= cc
                tt = np.minimum(tt, cc)
            m = t0[sl].size
            order = np.argsort(tt)[::-1]
            ev, arm = d[order], order >= m
            out = {}
            for est in estimands:
                w = self.weights[est][sl]
                out[est] = _sorted_log_hr(ev, arm, np.concatenate([w, w])[order])
            return out

        full = fit(slice(None))
        if not batches:
            return {e: (full[e], 0.0) for e in estimands}
        parts = [fit(s) for s in self._slices()]
        return {e: (full[e], self._mcse([p[e] for p in parts])) for e in estimands}

    def _slices(self) -> list[slice]:
        edges = np.linspace(0, self.n, self.batches + 1).astype(int)
        return [slice(a, b) for a, b in itertools.pairwise(edges)]

    def _mcse(self, values: list[float]) -> float:
        return float(np.std(values, ddof=1) / math.sqrt(len(values)))

    def absolute(
        self, o: Outcome, b: float, estimands: Sequence[str], horizon: float
    ) -> dict[tuple[str, str], tuple[float, float]]:
        """S(horizon) and RMST(horizon) differences (treated minus control) of the
        uncensored potential outcomes, exact given the covariates (Gauss-Legendre RMST)."""
        lp = self.lp[o.name]
        nodes, wts = np.polynomial.legendre.leggauss(48)
        tq = (nodes + 1) * horizon / 2
        h0q = o.cumhaz0(tq)
        h0h = float(o.cumhaz0(np.array(horizon)))
        sd = np.exp(-h0h * np.exp(lp + b)) - np.exp(-h0h * np.exp(lp))
        rd = np.empty(self.n)
        for s in self._slices():
            r1 = np.exp(-np.outer(np.exp(lp[s] + b), h0q)) @ wts
            r0 = np.exp(-np.outer(np.exp(lp[s]), h0q)) @ wts
            rd[s] = (r1 - r0) * horizon / 2
        out = {}
        for est in estimands:
            w = self.weights[est]
            for m, v in (("surv_diff", sd), ("rmst_diff", rd)):
                full = float(np.sum(w * v) / np.sum(w))
                parts = [float(np.sum(w[s] * v[s]) / np.sum(w[s])) for s in self._slices()]
                out[(est, m)] = (full, self._mcse(parts))
        return out


@dataclass(frozen=True)
class GenericTruth:
    """Truths of a generic scenario (:func:`generic_truth`).

    Attributes
    ----------
    values : dict
        ``(outcome, estimand, censoring, measure, horizon)`` -> (value, MCSE); censoring
        ``"none"`` for the measures of the uncensored potential outcomes.
    log_hr : dict of str to float
        Conditional treatment log-HR by outcome (the parameter, given or calibrated).
    intercept : float or None
        The treatment intercept (solved when ``share`` is given).
    n : int
        Population size.
    """

    values: dict[tuple[str, str, str, str, float | None], tuple[float, float]]
    log_hr: dict[str, float]
    intercept: float | None
    horizon: float | None
    n: int

    def estimand(
        self,
        outcome: str,
        estimand: str = "ATE",
        censoring: str = "admin",
        measure: str = "log_hr",
        horizon: float | None = None,
    ) -> tuple[float, float]:
        """(true value, Monte Carlo SE): the study runner's truth interface.

        ``conditional`` ``log_hr``: the parameter (MCSE 0).  ``ATE``, ``ATT``, ``ATC``,
        ``ATO``, ``ATM`` (and ``treatment_policy`` = ATE: no switching): ``log_hr`` under
        ``censoring`` "none", "admin" (administrative only) or "study" (administrative and
        random); ``surv_diff`` / ``rmst_diff`` at :attr:`horizon`, uncensored.

        Raises
        ------
        ScenarioError
            (a ValueError) for anything this truth does not hold.
        """
        if outcome not in self.log_hr:
            raise ScenarioError(
                f"outcome={outcome!r} is not allowed; use one of {list(self.log_hr)}"
            )
        if censoring not in TRUTH_CENSORING:
            raise ScenarioError(
                f"censoring={censoring!r} is not allowed; use one of {list(TRUTH_CENSORING)}"
            )
        if estimand == "conditional" and measure == "log_hr":
            return self.log_hr[outcome], 0.0
        pop = "ATE" if estimand == "treatment_policy" else estimand
        if pop not in TRUTH_ESTIMANDS:
            raise ScenarioError(
                f"estimand={estimand!r} is not allowed; a generic scenario holds 'conditional' "
                f"(log_hr) and {list(TRUTH_ESTIMANDS)}"
            )
        if measure == "log_hr":
            return self.values[(outcome, pop, censoring, "log_hr", None)]
        if measure in ("surv_diff", "rmst_diff"):
            if (
                self.horizon is None
                or horizon is None
                or not math.isclose(float(horizon), self.horizon)
            ):
                raise ScenarioError(
                    f"horizon={horizon!r} is not allowed; this truth holds horizon={self.horizon!r}"
                )
            return self.values[(outcome, pop, "none", measure, self.horizon)]
        raise ScenarioError(
            f"measure={measure!r} is not allowed; use 'log_hr', 'surv_diff' or 'rmst_diff'"
        )


_TRUTHS: dict[tuple[str, int, int], GenericTruth] = {}


def generic_truth(
    sc: GenericScenario, n: int = 1_000_000, seed: int = TRUTH_SEED, batches: int = 10
) -> GenericTruth:
    """Truths of ``sc`` on a potential-outcome population of ``n`` (cached).

    Marginal log-HRs: the weighted treatment-only Cox fit of the stacked potential
    outcomes (each patient once per arm, same unit exponential in both: common random
    numbers), weights of the estimand's population from the true propensity score;
    uncensored, administratively censored and under the whole censoring.  MCSE: SD of
    ``batches`` equal batches / sqrt(batches).  About 10 s per outcome at n = 10^6.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1000 * batches:
        raise ScenarioError(f"n={n!r} is not allowed; give an integer >= {1000 * batches}")
    key = (sc.fingerprint(), n, seed)
    if key in _TRUTHS:
        return _TRUTHS[key]
    res = resolve(sc)
    pop = _Population(sc, res.intercept, n, seed, batches)
    values: dict[tuple[str, str, str, str, float | None], tuple[float, float]] = {}
    censorings = ["none"]
    if sc.censoring.admin is not None:
        censorings.append("admin")
    if sc.censoring.random != "none":
        censorings.append("study")
    for o in sc.outcomes:
        b = res.log_hr[o.name]
        for cens in censorings:
            for est, v in pop.marginals(o, b, TRUTH_ESTIMANDS, cens, True).items():
                values[(o.name, est, cens, "log_hr", None)] = v
        for est in TRUTH_ESTIMANDS:
            for cens in TRUTH_CENSORING:  # without that censoring, it is the one before
                if cens not in censorings:
                    prev = "admin" if cens == "study" and "admin" in censorings else "none"
                    values[(o.name, est, cens, "log_hr", None)] = values[
                        (o.name, est, prev, "log_hr", None)
                    ]
        if sc.horizon is not None:
            for (est, m), v in pop.absolute(o, b, TRUTH_ESTIMANDS, sc.horizon).items():
                values[(o.name, est, "none", m, sc.horizon)] = v
    _TRUTHS[key] = GenericTruth(values, dict(res.log_hr), res.intercept, sc.horizon, n)
    return _TRUTHS[key]


# -- built-in designs ------------------------------------------------------------------
_LN = math.log


def austin_vignette() -> GenericScenario:
    """The survival design of the MatchIt "Estimating Effects After Matching" vignette
    (after Austin 2009; also used by WeightIt): nine covariates, ~20% treated, a Weibull
    (shape 2) outcome with conditional HR 2.4 ("marginal HR 1.57" in the vignette).

    Taken from the vignette: covariates X1-X9 standard normal with X5 = 1{Z5 < 0.5};
    ``logit e = -1.2 + log 2 X1 - log 1.5 X2 + log 2 X4 - log 2.4 X5 + log 2 X7
    - log 1.5 X8``; event time ``sqrt(-log U 2e4 exp(-LP))`` with ``LP = -2 + log 2.4 A
    + log 2 (X1 + X2 + X3) + log 1.5 X4 + log 2.4 X5 + log 1.5 X6``, i.e. a Weibull with
    shape 2 and rate exp(-2) / 2e4.  Assumed here (the vignette has no censoring):
    administrative censoring at t = 250 (the vignette's time unit) and the horizon 200
    of the S(t) / RMST truths.
    """
    covs = tuple(
        Covariate(f"X{j}", "threshold", cut=0.5) if j == 5 else Covariate(f"X{j}")
        for j in range(1, 10)
    )
    return GenericScenario(
        name="austin-vignette",
        description=(
            "generic: the MatchIt / WeightIt vignette design (after Austin 2009): 9 "
            "covariates, ~20% treated, Weibull outcome 'event' with conditional HR 2.4"
        ),
        covariates=covs,
        treatment=Treatment(
            intercept=-1.2,
            coef={
                "X1": _LN(2),
                "X2": -_LN(1.5),
                "X4": _LN(2),
                "X5": -_LN(2.4),
                "X7": _LN(2),
                "X8": -_LN(1.5),
            },
        ),
        outcomes=(
            Outcome(
                "event",
                baseline="weibull",
                rate=math.exp(-2.0) / 2e4,
                shape=2.0,
                coef={
                    "X1": _LN(2),
                    "X2": _LN(2),
                    "X3": _LN(2),
                    "X4": _LN(1.5),
                    "X5": _LN(2.4),
                    "X6": _LN(1.5),
                },
                log_hr=_LN(2.4),
            ),
        ),
        censoring=Censoring(admin=250.0),
        horizon=200.0,
    )


def austin_2013() -> GenericScenario:
    """An Austin-2013-style design (Stat Med 32:2837, marginal HRs by propensity-score
    methods): ten independent standard normal covariates, three affecting treatment
    only, three the outcome only, four both, with effects "low" log 1.1, "medium"
    log 1.25, "high" log 1.5, "very high" log 2; 20% treated (intercept solved); a
    Weibull outcome (rate 2e-5, shape 2, no censoring); the conditional log-HR calibrated
    so that the marginal ATT HR is 0.8.  The allocation of effect sizes to covariates,
    the treated share and the target are assumed (docs/guide/scenarios.md)."""
    lo, me, hi, vh = _LN(1.1), _LN(1.25), _LN(1.5), _LN(2.0)
    covs = tuple(Covariate(f"x{j}") for j in range(1, 11))
    return GenericScenario(
        name="austin-2013",
        description=(
            "generic: Austin-2013-style design: 10 normal covariates, 20% treated, Weibull "
            "outcome 'event' calibrated to a marginal ATT HR of 0.8"
        ),
        covariates=covs,
        treatment=Treatment(
            share=0.2,
            coef={"x1": lo, "x2": me, "x3": hi, "x7": lo, "x8": me, "x9": hi, "x10": vh},
        ),
        outcomes=(
            Outcome(
                "event",
                baseline="weibull",
                rate=2e-5,
                shape=2.0,
                coef={"x4": lo, "x5": me, "x6": hi, "x7": lo, "x8": me, "x9": hi, "x10": vh},
                log_hr=None,
                target_hr=0.8,
                target_estimand="ATT",
            ),
        ),
        horizon=150.0,
    )


BUILTIN_GENERIC = {"austin-vignette": austin_vignette, "austin-2013": austin_2013}
"""Built-in generic scenarios by name."""
