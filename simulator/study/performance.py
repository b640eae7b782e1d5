"""Performance measures of an estimator over replicates, with Monte Carlo SEs.

Formulas from Morris, White & Crowther (2019), Table 6 (docs/design.md §5), for
estimates theta_i with model SEs s_i of a true effect theta (on the scale of the
estimate's measure: log-HR, RMST difference in months, ...) over n_sim replicates.

Convergence policy (two denominators, both reported):

* **finite** (the default): every replicate with a finite estimate and a finite,
  positive SE, converged or not.  Why the default: a fit flagged as not converged (for
  example a PS model with quasi-separation on a rare level) still returns a usable
  finite estimate, which an analyst would report; dropping it conditions the measures on
  a data-dependent event and so can hide exactly the bias a study should show.
* **converged**: the converged fits only (``*_converged`` columns of :func:`summarize`),
  the measures conditional on convergence, as v0.1 reported them.

Failed fits (no finite estimate) enter neither; how many there were (``n_failed``), how
many finite fits were flagged (``n_nonconverged``) and why fits failed (``errors``) is
reported, never silently dropped.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from estimators.estimands import scored_against

from . import record
from .exceptions import StudyError

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
SHARES = ("coverage", "be_coverage", "power")  # proportions: Wilson intervals
DENOMINATORS = ("finite", "converged")
DEFAULT_DENOMINATOR = "finite"
DENOMINATOR_NOTE = (
    "measures over every replicate with a finite estimate, converged or not (a flagged "
    "fit's finite estimate is usable, and dropping it would hide bias); the converged-only "
    "measures are given beside them"
)


@dataclass(frozen=True)
class Performance:
    """Measures (and their MCSEs, ``*_mcse``) for one estimator in one condition.

    ``n_sim`` replicates entered (the chosen ``denominator``); ``n_total`` were run,
    ``n_failed`` gave no finite estimate, ``n_nonconverged`` were finite but flagged.
    ``rel_bias_hr`` is 100 (mean HR-hat / HR - 1) in percent (log-HR estimates only;
    NaN for other measures); ``relerr_modse`` is 100 (ModSE / EmpSE - 1); ``power`` is
    the share of p-values below ``alpha`` (the type I error when the truth is 0).
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


def wilson_interval(p: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed in ``n`` trials (within [0, 1]).

    Used for the Monte Carlo intervals of coverage and power: unlike p +- z MCSE it
    never leaves [0, 1] and is not degenerate at p = 0 or 1.
    """
    if not n or not math.isfinite(p):
        return math.nan, math.nan
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # (rounding can put p a hair outside at p = 0 or 1: the interval always holds p)
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


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
    denominator: str = DEFAULT_DENOMINATOR,
    measure: str = "log_hr",
) -> Performance:
    """Morris et al. performance measures of estimates against ``theta``.

    Parameters
    ----------
    estimates, ses : ndarray (n,)
        Estimates and model SEs on the measure's scale; NaN marks a failed fit.
    theta : float
        True value of the estimand.
    ci_low, ci_high : ndarray (n,), optional
        Confidence limits (same scale); default Wald ``estimate -/+ z se``.
    p_values : ndarray (n,), optional
        Default: two-sided Wald p-values.
    converged : ndarray of bool (n,), optional
        Convergence flags (counted; excluded with ``denominator="converged"``).
    alpha : float
        Level of the intervals and tests.
    denominator : {"finite", "converged"}
        Replicates that enter: every finite estimate (default; see the module docstring
        for why) or the converged fits only.
    measure : str
        The estimates' effect measure; ``rel_bias_hr`` is computed for ``"log_hr"`` only.
    """
    if denominator not in DENOMINATORS:
        raise StudyError(
            f"denominator={denominator!r} is not allowed; use one of {list(DENOMINATORS)}"
        )
    est = np.asarray(estimates, dtype=float)
    se = np.asarray(ses, dtype=float)
    n_total = est.size
    ok = np.isfinite(est) & np.isfinite(se) & (se > 0)
    n_failed = int((~ok).sum())
    conv = np.ones(n_total, bool) if converged is None else np.asarray(converged, bool)
    n_nonconv = int((ok & ~conv).sum())
    keep = ok & conv if denominator == "converged" else ok
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
    if measure == "log_hr":
        hr = np.exp(e)
        rel_bias_hr = 100.0 * (float(hr.mean()) / math.exp(theta) - 1.0)
        rel_bias_hr_mcse = 100.0 * float(hr.std(ddof=1)) / math.sqrt(n) / math.exp(theta)
    else:
        rel_bias_hr = rel_bias_hr_mcse = math.nan
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
        rel_bias_hr=rel_bias_hr,
        rel_bias_hr_mcse=rel_bias_hr_mcse,
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
        raise StudyError(f"mcse={mcse!r} is not allowed; it must be in (0, 0.5)")
    if not (isinstance(coverage, int | float) and 0 < coverage < 1):
        raise StudyError(f"coverage={coverage!r} is not allowed; it must be in (0, 1)")
    return math.ceil(coverage * (1.0 - coverage) / mcse**2 - 1e-9)


def required_reps_bias(mcse: float, empse: float) -> int:
    """Replicates needed for a bias MCSE of ``mcse`` given the empirical SE: (EmpSE/mcse)^2."""
    if not (mcse > 0 and empse > 0):
        raise StudyError(f"mcse={mcse!r} and empse={empse!r} must both be > 0")
    return math.ceil((empse / mcse) ** 2 - 1e-9)


_OPTIONAL = ("measure", "horizon", "error")  # absent from hand-made tables: defaults


def error_counts(errors: pd.Series, top: int = 3) -> str:
    """Why fits failed: ``"12 x SeparationError: ...; 3 x ..."`` (most common first)."""
    counts = Counter(e for e in errors if e)
    text = "; ".join(f"{k} x {msg}" for msg, k in counts.most_common(top))
    rest = sum(counts.values()) - sum(k for _, k in counts.most_common(top))
    return text + (f"; {rest} x other errors" if rest else "")


def summarize(
    results: pd.DataFrame,
    truths: pd.DataFrame,
    alpha: float = 0.05,
    *,
    baseline: str | None = None,
) -> pd.DataFrame:
    """Performance table: one row per condition x outcome x estimator x measure x horizon.

    Every measure is reported over the default denominator (every replicate with a
    finite estimate, ``n_sim`` of them; column ``denominator`` says so) and, in the
    ``*_converged`` columns, over the converged fits only (``n_converged``); see the
    module docstring for why the first is the default.  ``errors`` counts the failed
    fits by message.

    Parameters
    ----------
    results : DataFrame
        The results store's long table (:mod:`simulator.study.record` columns; at least
        condition, outcome, estimator, estimand, estimate, se, ci_low, ci_high, p_value,
        converged; measure, horizon and error when present).
    truths : DataFrame
        Columns condition, outcome, estimand, theta, theta_mcse (and measure, horizon).
        An estimate labelled ``crude`` is scored against the ATE truth.
    baseline : str, optional
        An estimator of ``results`` (``"siptw"``, say) to compare run times with:
        ``time_ratio`` is each row's ``ms_per_fit`` over the baseline's in the same
        condition and outcome (NaN without a baseline).

    Timing: ``ms_per_fit`` is the median wall time of one fit in milliseconds (the
    record's ``seconds``, failed fits included; NaN when the table has none).
    """
    if baseline is not None and (
        not isinstance(baseline, str) or baseline not in set(results.get("estimator", ()))
    ):
        have = sorted(set(results.get("estimator", ())))
        raise StudyError(f"baseline={baseline!r} is not allowed; use one of the estimators {have}")
    need = [*record.KEY[:1], *record.KEY[2:], "estimand", *record.SCORE_COLUMNS]
    missing = [c for c in need if c not in results and c not in _OPTIONAL]
    if missing:
        raise StudyError(f"results is missing column(s) {missing}; the record has {list(need)}")
    res = results.copy()
    if "measure" not in res:
        res["measure"] = "log_hr"
    if "horizon" not in res:
        res["horizon"] = math.nan
    if "error" not in res:
        res["error"] = ""
    tr = truths.copy()
    if "measure" not in tr:
        tr["measure"] = "log_hr"
    if "horizon" not in tr:
        tr["horizon"] = math.nan
    # merge keys: the truth each row is scored against; NaN horizons compare equal
    res["_scored"] = res["estimand"].map(scored_against)
    res["_h"] = res["horizon"].astype(float).fillna(-1.0)
    tr = tr.rename(columns={"estimand": "_scored"})
    tr["_h"] = tr["horizon"].astype(float).fillna(-1.0)
    tr = tr.drop(columns="horizon")
    key = ["condition", "outcome", "_scored", "measure", "_h"]
    merged = res.merge(tr, on=key, how="left", validate="many_to_one")
    rows = []
    group = ["condition", "outcome", "estimator", "measure", "_h"]
    for (cond, outcome, est, measure, _), g in merged.groupby(group, sort=True):
        args = dict(
            ci_low=g["ci_low"].to_numpy(),
            ci_high=g["ci_high"].to_numpy(),
            p_values=g["p_value"].to_numpy(),
            converged=g["converged"].to_numpy(),
            alpha=alpha,
            measure=measure,
        )
        theta = float(g["theta"].iloc[0])
        finite = performance(g["estimate"].to_numpy(), g["se"].to_numpy(), theta, **args)
        conv = performance(
            g["estimate"].to_numpy(), g["se"].to_numpy(), theta, denominator="converged", **args
        ).to_dict()
        rows.append(
            {
                "condition": cond,
                "outcome": outcome,
                "estimator": est,
                "estimand": g["estimand"].iloc[0],
                "measure": measure,
                "horizon": float(g["horizon"].iloc[0]),
                "theta_mcse": g["theta_mcse"].iloc[0],
                "denominator": DEFAULT_DENOMINATOR,
                **finite.to_dict(),
                "n_converged": conv["n_sim"],
                **{f"{k}_converged": conv[k] for k in ("mean", *MEASURES)},
                **{f"{k}_converged_mcse": conv[f"{k}_mcse"] for k in MEASURES},
                "errors": error_counts(g["error"]),
                "ms_per_fit": _median_ms(g),
            }
        )
    table = pd.DataFrame(rows)
    table["time_ratio"] = math.nan
    if baseline is not None and not table.empty:
        base = (
            results[results["estimator"] == baseline]
            .groupby(["condition", "outcome"])
            .apply(_median_ms, include_groups=False)
        )
        keys = list(zip(table["condition"], table["outcome"], strict=True))
        ref = np.array([base.get(k, math.nan) for k in keys], dtype=float)
        table["time_ratio"] = table["ms_per_fit"].to_numpy(float) / ref
    return table


def _median_ms(rows: pd.DataFrame) -> float:
    """Median wall time of one fit in milliseconds (NaN without a ``seconds`` column)."""
    if "seconds" not in rows:
        return math.nan
    s = rows["seconds"].to_numpy(float)
    s = s[np.isfinite(s)]
    return float(np.median(s)) * 1000.0 if s.size else math.nan
