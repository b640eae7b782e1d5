"""The result record every estimator returns (one effect measure, generic over measures)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from functools import lru_cache
from statistics import NormalDist
from typing import Any

from .estimands import ESTIMANDS, MEASURES, MEASURES_WITH_HORIZON
from .exceptions import EstimatorInputError

_NAN = math.nan


@lru_cache(maxsize=8)
def _z(alpha: float) -> float:
    """The two-sided normal quantile of a (1 - alpha) interval (computed once per alpha)."""
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


@dataclass(frozen=True, kw_only=True)
class EffectEstimate:
    """One treatment-effect estimate on the scale of an effect measure.

    Attributes
    ----------
    method : str
        Estimator name, e.g. ``"siptw"``.
    estimand : str
        Target population, one of :data:`estimators.estimands.ESTIMANDS`.
    measure : str
        Effect measure, one of :data:`estimators.estimands.MEASURES` (default ``"log_hr"``).
    horizon : float
        Time horizon of the measure in months (``rmst_diff``, ``surv_diff``); NaN for a
        measure without one (``log_hr``, ``median_diff``).
    estimate, se : float
        Point estimate (treated minus / over control) and its standard error.
    ci_low, ci_high : float
        Confidence interval on the measure's scale (level ``1 - alpha``; the **log** HR
        for ``log_hr``).
    p_value : float
        Two-sided Wald p-value for ``estimate = 0``.
    n, events : int
        Patients (rows) and events used by the fit.
    ess : float
        Effective sample size (Kish) of the analysis weights; ``n`` when unweighted.
    converged : bool
        False when any fit behind the estimate failed to converge or is unreliable.
    error : str
        Empty unless the fit failed (then ``estimate`` and ``se`` are NaN); see
        :meth:`failed`.
    warnings : tuple of str
        Human-readable warnings raised while estimating.
    diagnostics : dict
        Estimator-specific extras (balance tables, pairs matched, ...); not part of
        :meth:`to_dict`.

    For ``measure == "log_hr"`` the properties :attr:`log_hr`, :attr:`hr` and
    :attr:`hr_ci` give the estimate on the log and the hazard-ratio scale.
    """

    method: str
    estimand: str
    measure: str = "log_hr"
    horizon: float = _NAN
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    events: int
    ess: float
    converged: bool
    error: str = ""
    warnings: tuple[str, ...] = ()
    diagnostics: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.estimand not in ESTIMANDS:
            raise EstimatorInputError(
                f"estimand={self.estimand!r} is not allowed; use one of {ESTIMANDS}"
            )
        if self.measure not in MEASURES:
            raise EstimatorInputError(
                f"measure={self.measure!r} is not allowed; use one of {MEASURES}"
            )
        h = self.horizon
        if self.measure in MEASURES_WITH_HORIZON:
            if isinstance(h, bool) or not isinstance(h, int | float) or not (h > 0 and h < 1e6):
                raise EstimatorInputError(
                    f"horizon={h!r} is not allowed for measure={self.measure!r}; give a "
                    "positive number of months"
                )
        elif not (isinstance(h, float) and math.isnan(h)):
            raise EstimatorInputError(
                f"horizon={h!r} is not allowed for measure={self.measure!r}, which has no "
                "horizon; leave it NaN"
            )
        object.__setattr__(self, "horizon", float(h))

    @classmethod
    def from_fit(
        cls,
        method: str,
        estimand: str,
        estimate: float | None = None,
        se: float | None = None,
        n: int | None = None,
        events: int | None = None,
        ess: float | None = None,
        converged: bool = True,
        warnings: tuple[str, ...] | list[str] = (),
        diagnostics: dict[str, Any] | None = None,
        alpha: float = 0.05,
        *,
        measure: str = "log_hr",
        horizon: float = _NAN,
        log_hr: float | None = None,
    ) -> EffectEstimate:
        """Build a record from a point estimate and SE (Wald CI and p-value).

        ``log_hr=`` is accepted in place of ``estimate`` for ``measure="log_hr"`` (the
        v0.1 keyword).
        """
        if log_hr is not None:
            if estimate is not None or measure != "log_hr":
                raise TypeError("from_fit(): give estimate= (or log_hr= for measure='log_hr')")
            estimate = log_hr
        given = {"estimate": estimate, "se": se, "n": n, "events": events}
        missing = [k for k, v in given.items() if v is None]
        if missing:
            raise TypeError(f"from_fit() missing required argument(s): {', '.join(missing)}")
        estimate, se = float(estimate), float(se)
        # standard library normal: scipy.stats costs ~0.1 ms per call, and this runs
        # once per estimate in simulation studies; erfc(x / sqrt 2) = 2 * (1 - Phi(x))
        z = _z(alpha)
        finite = math.isfinite(estimate) and math.isfinite(se) and se > 0
        p = math.erfc(abs(estimate / se) / math.sqrt(2.0)) if finite else _NAN
        return cls(
            method=method,
            estimand=estimand,
            measure=measure,
            horizon=horizon,
            estimate=estimate,
            se=se,
            ci_low=estimate - z * se,
            ci_high=estimate + z * se,
            p_value=p,
            n=int(n),
            events=int(events),
            ess=float(n if ess is None else ess),
            converged=bool(converged) and finite,
            warnings=tuple(warnings),
            diagnostics=dict(diagnostics or {}),
        )

    @classmethod
    def failed(
        cls,
        method: str,
        estimand: str,
        error: str,
        *,
        measure: str = "log_hr",
        horizon: float = _NAN,
        warnings: tuple[str, ...] | list[str] = (),
    ) -> EffectEstimate:
        """The record of a fit that failed: NaN estimates, ``converged=False``, ``error`` set."""
        if not isinstance(error, str) or not error:
            raise EstimatorInputError(f"error={error!r} is not allowed; give a non-empty message")
        return cls(
            method=method,
            estimand=estimand,
            measure=measure,
            horizon=horizon,
            estimate=_NAN,
            se=_NAN,
            ci_low=_NAN,
            ci_high=_NAN,
            p_value=_NAN,
            n=0,
            events=0,
            ess=_NAN,
            converged=False,
            error=error,
            warnings=tuple(warnings),
        )

    # ---- the hazard-ratio view --------------------------------------------------------
    def _need_log_hr(self, what: str) -> None:
        if self.measure != "log_hr":
            raise AttributeError(
                f"{what} is defined for measure='log_hr' only; this estimate is "
                f"measure={self.measure!r} (use .estimate)"
            )

    @property
    def log_hr(self) -> float:
        """The estimate on the log hazard-ratio scale (``measure == "log_hr"`` only)."""
        self._need_log_hr("log_hr")
        return self.estimate

    @property
    def hr(self) -> float:
        """``exp(log_hr)`` (``measure == "log_hr"`` only)."""
        self._need_log_hr("hr")
        return math.exp(self.estimate) if math.isfinite(self.estimate) else _NAN

    @property
    def hr_ci(self) -> tuple[float, float]:
        """Confidence interval on the hazard-ratio scale (``measure == "log_hr"`` only)."""
        self._need_log_hr("hr_ci")
        return math.exp(self.ci_low), math.exp(self.ci_high)

    # ---- output ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Flat dict of the scalar fields (``warnings`` joined by ``"; "``)."""
        d = {name: getattr(self, name) for name in _SCALAR_FIELDS}
        d["warnings"] = "; ".join(self.warnings)
        return d

    def summary(self) -> str:
        """One readable paragraph: estimate (95% CI), p, n, events, ESS, flags."""
        head = f"{self.method} ({self.estimand})"
        if self.error:
            lines = [f"{head}: FAILED: {self.error}"]
        else:
            p = "p < 0.0001" if self.p_value < 1e-4 else f"p = {self.p_value:.4f}"
            if self.measure == "log_hr":
                lo, hi = self.hr_ci
                first = f"{head}: HR {self.hr:.3f} (95% CI {lo:.3f}-{hi:.3f}), {p}"
                second = f"  log-HR {self.estimate:+.4f} (SE {self.se:.4f})"
            else:
                at = f" at {self.horizon:g} months" if math.isfinite(self.horizon) else ""
                first = (
                    f"{head}: {self.measure}{at} {self.estimate:+.4f} "
                    f"(95% CI {self.ci_low:.4f} to {self.ci_high:.4f}), {p}"
                )
                second = f"  SE {self.se:.4f}"
            lines = [
                first,
                f"{second}; n = {self.n}, events = {self.events}, effective n = {self.ess:.1f}",
            ]
            if not self.converged:
                lines.append("  NOT CONVERGED / unreliable")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


_SCALAR_FIELDS = tuple(f.name for f in fields(EffectEstimate) if f.name != "diagnostics")
