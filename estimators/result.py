"""The result record every estimator returns."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

from .estimands import ESTIMANDS


@dataclass(frozen=True)
class EffectEstimate:
    """One treatment-effect estimate on the log hazard-ratio scale.

    Attributes
    ----------
    method : str
        Estimator name, e.g. ``"siptw"``.
    estimand : str
        One of :data:`estimators.estimands.ESTIMANDS`.
    log_hr, se : float
        Estimated log hazard ratio and its standard error.
    ci_low, ci_high : float
        Confidence interval for the **log** hazard ratio (level ``1 - alpha``).
    p_value : float
        Two-sided Wald p-value for ``log_hr = 0``.
    hr : float
        ``exp(log_hr)``.
    n, events : int
        Patients (rows) and events used by the fit.
    ess : float
        Effective sample size (Kish) of the analysis weights; ``n`` when unweighted.
    converged : bool
        False when any fit behind the estimate failed to converge or is unreliable.
    warnings : tuple of str
        Human-readable warnings raised while estimating.
    diagnostics : dict
        Estimator-specific extras (balance tables, pairs matched, ...); not part of
        :meth:`to_dict`.
    """

    method: str
    estimand: str
    log_hr: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    hr: float
    n: int
    events: int
    ess: float
    converged: bool
    warnings: tuple[str, ...] = ()
    diagnostics: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.estimand not in ESTIMANDS:
            raise ValueError(f"estimand={self.estimand!r} is not allowed; use one of {ESTIMANDS}")

    @classmethod
    def from_fit(
        cls,
        method: str,
        estimand: str,
        log_hr: float,
        se: float,
        n: int,
        events: int,
        ess: float | None = None,
        converged: bool = True,
        warnings: tuple[str, ...] | list[str] = (),
        diagnostics: dict[str, Any] | None = None,
        alpha: float = 0.05,
    ) -> EffectEstimate:
        """Build a record from a point estimate and SE (Wald CI and p-value)."""
        # standard library normal: scipy.stats costs ~0.1 ms per call, and this runs
        # once per estimate in simulation studies; erfc(x / sqrt 2) = 2 * (1 - Phi(x))
        z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
        finite = math.isfinite(log_hr) and math.isfinite(se) and se > 0
        p = math.erfc(abs(log_hr / se) / math.sqrt(2.0)) if finite else math.nan
        return cls(
            method=method,
            estimand=estimand,
            log_hr=float(log_hr),
            se=float(se),
            ci_low=float(log_hr - z * se),
            ci_high=float(log_hr + z * se),
            p_value=p,
            hr=math.exp(log_hr) if math.isfinite(log_hr) else math.nan,
            n=int(n),
            events=int(events),
            ess=float(n if ess is None else ess),
            converged=bool(converged) and finite,
            warnings=tuple(warnings),
            diagnostics=dict(diagnostics or {}),
        )

    @property
    def hr_ci(self) -> tuple[float, float]:
        """Confidence interval on the hazard-ratio scale."""
        return math.exp(self.ci_low), math.exp(self.ci_high)

    def to_dict(self) -> dict[str, Any]:
        """Flat dict of the scalar fields (``warnings`` joined by ``"; "``)."""
        d = asdict(self)
        d.pop("diagnostics")
        d["warnings"] = "; ".join(self.warnings)
        return d

    def summary(self) -> str:
        """One readable paragraph: HR (95% CI), p, n, events, ESS, flags."""
        lo, hi = self.hr_ci
        p = "p < 0.0001" if self.p_value < 1e-4 else f"p = {self.p_value:.4f}"
        lines = [
            f"{self.method} ({self.estimand}): HR {self.hr:.3f} (95% CI {lo:.3f}-{hi:.3f}), {p}",
            f"  log-HR {self.log_hr:+.4f} (SE {self.se:.4f}); n = {self.n}, "
            f"events = {self.events}, effective n = {self.ess:.1f}",
        ]
        if not self.converged:
            lines.append("  NOT CONVERGED / unreliable")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
