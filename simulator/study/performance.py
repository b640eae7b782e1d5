"""Performance measures of an estimator over replicates, with Monte Carlo SEs.

Formulas from Morris, White & Crowther (2019), Table 6 (docs/design.md §5), for
estimates theta_i with model SEs s_i of a true log-HR theta over n_sim replicates.
Only replicates with a finite estimate and a finite, positive SE enter; how many did
not (failed or non-converged fits) is reported, never silently dropped.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

MEASURES = (
    "bias",
    "rel_bias_hr",
    "empse",
    "mse",
    "modse",
    "relerr_modse",
    "coverage",
    "be_coverage",
    "power",
)


@dataclass(frozen=True)
class Performance:
    """Measures (and their MCSEs, ``*_mcse``) for one estimator in one condition.

    ``rel_bias_hr`` is 100 (mean HR-hat / HR - 1) in percent; ``relerr_modse`` is
    100 (ModSE / EmpSE - 1); ``power`` is the share of p-values below ``alpha``
    (the type I error when the truth is 0).
    """

    n_sim: int
    n_total: int
    n_failed: int
    n_nonconverged: int
    theta: float
    mean: float
    bias: float
    bias_mcse: float
    rel_bias_hr: float
    rel_bias_hr_mcse: float
    empse: float
    empse_mcse: float
    mse: float
    mse_mcse: float
    modse: float
    modse_mcse: float
    relerr_modse: float
    relerr_modse_mcse: float
    coverage: float
    coverage_mcse: float
    be_coverage: float
    be_coverage_mcse: float
    power: float
    power_mcse: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _share_mcse(p: float, n: int) -> float:
    return math.sqrt(p * (1.0 - p) / n)


def performance(
    estimates: np.ndarray,
    ses: np.ndarray,
    theta: float,
    *,
    ci_low: np.ndarray | None = None,
    ci_high: np.ndarray | None = None,
    p_values: np.ndarray | None = None,
    converged: np.ndarray | None = None,
    alpha: float = 0.05,
) -> Performance:
    """Morris et al. performance measures of log-HR estimates against ``theta``.

    Parameters
    ----------
    estimates, ses : ndarray (n,)
        Log-HR estimates and model SEs; NaN marks a failed fit.
    theta : float
        True log-HR of the estimand.
    ci_low, ci_high : ndarray (n,), optional
        Confidence limits (log scale); default Wald ``estimate -/+ z se``.
    p_values : ndarray (n,), optional
        Default: two-sided Wald p-values.
    converged : ndarray of bool (n,), optional
        Non-converged fits are excluded (and counted).
    alpha : float
        Level of the intervals and tests.
    """
    est = np.asarray(estimates, dtype=float)
    se = np.asarray(ses, dtype=float)
    n_total = est.size
    ok = np.isfinite(est) & np.isfinite(se) & (se > 0)
    n_failed = int((~ok).sum())
    conv = np.ones(n_total, bool) if converged is None else np.asarray(converged, bool)
    n_nonconv = int((ok & ~conv).sum())
    keep = ok & conv
    n = int(keep.sum())
    if n < 2:
        return _empty(n, n_total, n_failed, n_nonconv, theta)
    from scipy.stats import norm

    z = float(norm.ppf(1 - alpha / 2))
    e, s = est[keep], se[keep]
    lo = e - z * s if ci_low is None else np.asarray(ci_low, float)[keep]
    hi = e + z * s if ci_high is None else np.asarray(ci_high, float)[keep]
    p = 2 * norm.sf(np.abs(e / s)) if p_values is None else np.asarray(p_values, float)[keep]
    mean = float(e.mean())
    empse = float(e.std(ddof=1))
    sq = (e - theta) ** 2
    s2 = s**2
    modse = math.sqrt(float(s2.mean()))
    var_s2 = float(s2.var(ddof=1))
    cover = float(np.mean((lo <= theta) & (theta <= hi)))
    be_cover = float(np.mean((lo <= mean) & (mean <= hi)))
    power = float(np.mean(p < alpha))
    hr = np.exp(e)
    ratio = modse / empse if empse > 0 else math.nan
    return Performance(
        n_sim=n,
        n_total=n_total,
        n_failed=n_failed,
        n_nonconverged=n_nonconv,
        theta=float(theta),
        mean=mean,
        bias=mean - theta,
        bias_mcse=empse / math.sqrt(n),
        rel_bias_hr=100.0 * (float(hr.mean()) / math.exp(theta) - 1.0),
        rel_bias_hr_mcse=100.0 * float(hr.std(ddof=1)) / math.sqrt(n) / math.exp(theta),
        empse=empse,
        empse_mcse=empse / math.sqrt(2.0 * (n - 1)),
        mse=float(sq.mean()),
        mse_mcse=float(sq.std(ddof=1)) / math.sqrt(n),
        modse=modse,
        modse_mcse=math.sqrt(var_s2 / (4.0 * n * modse**2)),
        relerr_modse=100.0 * (ratio - 1.0),
        relerr_modse_mcse=100.0
        * ratio
        * math.sqrt(var_s2 / (4.0 * n * modse**4) + 1.0 / (2.0 * (n - 1))),
        coverage=cover,
        coverage_mcse=_share_mcse(cover, n),
        be_coverage=be_cover,
        be_coverage_mcse=_share_mcse(be_cover, n),
        power=power,
        power_mcse=_share_mcse(power, n),
    )


def _empty(n: int, n_total: int, n_failed: int, n_nonconv: int, theta: float) -> Performance:
    nan = math.nan
    fields = {k: nan for k in Performance.__dataclass_fields__}
    fields.update(
        n_sim=n, n_total=n_total, n_failed=n_failed, n_nonconverged=n_nonconv, theta=float(theta)
    )
    return Performance(**fields)


def required_reps(mcse: float, *, coverage: float = 0.95) -> int:
    """Replicates needed for a coverage MCSE of ``mcse`` at the expected ``coverage``.

    n_sim = C (1 - C) / mcse^2 (Morris et al. 2019, section 5.3); 1,900 for 0.5% at 95%.
    """
    if not (isinstance(mcse, int | float) and 0 < mcse < 0.5):
        raise ValueError(f"mcse={mcse!r} is not allowed; it must be in (0, 0.5)")
    if not (isinstance(coverage, int | float) and 0 < coverage < 1):
        raise ValueError(f"coverage={coverage!r} is not allowed; it must be in (0, 1)")
    return math.ceil(coverage * (1.0 - coverage) / mcse**2 - 1e-9)


def required_reps_bias(mcse: float, empse: float) -> int:
    """Replicates needed for a bias MCSE of ``mcse`` given the empirical SE: (EmpSE/mcse)^2."""
    if not (mcse > 0 and empse > 0):
        raise ValueError(f"mcse={mcse!r} and empse={empse!r} must both be > 0")
    return math.ceil((empse / mcse) ** 2 - 1e-9)


def summarize(results: pd.DataFrame, truths: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Performance table: one row per condition x outcome x estimator.

    Parameters
    ----------
    results : DataFrame
        The results store's long table (columns condition, outcome, estimator, estimand,
        log_hr, se, ci_low, ci_high, p_value, converged).
    truths : DataFrame
        Columns condition, outcome, estimand, theta, theta_mcse.
    """
    key = ["condition", "outcome", "estimand"]
    merged = results.merge(truths, on=key, how="left", validate="many_to_one")
    rows = []
    for (cond, outcome, est), g in merged.groupby(["condition", "outcome", "estimator"], sort=True):
        perf = performance(
            g["log_hr"].to_numpy(),
            g["se"].to_numpy(),
            float(g["theta"].iloc[0]),
            ci_low=g["ci_low"].to_numpy(),
            ci_high=g["ci_high"].to_numpy(),
            p_values=g["p_value"].to_numpy(),
            converged=g["converged"].to_numpy(),
            alpha=alpha,
        )
        rows.append(
            {
                "condition": cond,
                "outcome": outcome,
                "estimator": est,
                "estimand": g["estimand"].iloc[0],
                "theta_mcse": g["theta_mcse"].iloc[0],
                **perf.to_dict(),
            }
        )
    return pd.DataFrame(rows)
