"""Inverse probability of censoring weighting (IPCW) for the weighted estimators.

When censoring depends on prognostic covariates (sicker patients move on to a next
therapy, or are lost to follow-up, sooner), the patients still at risk are no longer
representative and a propensity-weighted Cox or Kaplan-Meier estimate is biased for
the uncensored estimand even with a correct propensity model.  IPCW (Robins & Finkelstein
2000) reweights each patient at risk at time t by the inverse of their probability of
being still uncensored:

    w_i(t) = w_i^IPTW * num_a(t-) / K_i(t-),      K_i(t) = P(C > t | x_i, a_i)

**Censoring model** (``ipcw="cox"``): a Cox model for the censoring hazard (event
indicator ``1 - event``) on ``ipcw_covariates`` (default: the propensity covariates),
fitted per arm by default (``by_arm=True``) or pooled with the treatment as a covariate.
Breslow ties and the Breslow baseline cumulative hazard ``H_g(t)`` (the estimate of R
``basehaz(coxph(..., ties = "breslow"), centered = FALSE)``), so
``K_i(t) = exp(-H_g(t) exp(beta' x_i))``: a step function jumping at the censoring
times of group g ("the censoring model's step times").  Covariate columns constant within
an arm are dropped from that arm's model; an arm without censored patients gets
``K = 1``.  A patient's event at time t uses ``K_i(t-)``: censoring at t does not remove
an event at t.

**Stabilised** (``stabilized=True``): ``num_a(t-)`` is arm a's marginal Kaplan-Meier
survival of the modelled censoring (without the administrative censorings when ``admin``
is given) just before t; unstabilised (default), 1.  A Kaplan-Meier curve
is the same either way (its hazard D / Y is unchanged when an arm's weights at t share a
factor); a Cox fit is not when the marginal hazards are not proportional: the numerator
rescales the two arms' risk sets differently over time, which moves the time weighting
of the partial-likelihood score and so the estimand (docs/guide/estimators.md).
**Truncation** ``truncate=q`` caps the factor ``num / K`` at its ``q``-th percentile
over every (patient at risk, event time) pair.

The weighted Cox model with these time-varying weights is the one R
``coxph(Surv(start, stop, event) ~ treat, weights = w, robust = TRUE, cluster = id)``
fits to the data split at every censoring step time, each interval weighted by
``w_i num(start) / K_i(start)`` (tests/reference/r/make_ipcw_reference.R checks it).  Its
robust (sandwich) variance **treats the censoring weights as known**, like the IPT
weights: neither model's estimation enters the SE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import _ipcw_kernels as kern
from .cox import fit_cox_arrays
from .exceptions import EstimatorInputError
from .survival import _kaplan_meier, breslow_cumhaz

__all__ = [
    "IPCW_MODELS",
    "CensoringModel",
    "IpcwFit",
    "admin_times",
    "check_ipcw",
    "check_ipcw_option_values",
    "check_ipcw_options",
    "check_ipcw_truncate",
    "fit_censoring_model",
    "ipcw_cox",
    "ipcw_km",
]

ADMIN_TOL = 1e-9
"""Months: a censoring this close to the patient's administrative limit is administrative."""

MAX_PAIRS = 100_000_000
"""Most (patient at risk, event time) weights a fit stores (two float64 arrays of this
size: 1.5 GiB); n = 1,430 needs ~0.4 million."""

IPCW_MODELS: tuple[str, ...] = ("cox",)
"""Censoring models of the ``ipcw`` option (``False`` / ``None``: no IPCW)."""


def check_ipcw(ipcw: object) -> str | None:
    """``ipcw``: False / None (off) or one of :data:`IPCW_MODELS`; returns the model or None."""
    if ipcw is None or ipcw is False:
        return None
    if isinstance(ipcw, str) and ipcw in IPCW_MODELS:
        return ipcw
    raise EstimatorInputError(
        f"ipcw={ipcw!r} is not allowed; use False (no censoring weights) or one of "
        f"{list(IPCW_MODELS)}"
    )


def check_ipcw_truncate(truncate: object) -> float | None:
    """``ipcw_truncate``: None or an upper percentile in (50, 100]."""
    if truncate is None:
        return None
    ok = isinstance(truncate, int | float) and not isinstance(truncate, bool)
    if not ok or not (50.0 < float(truncate) <= 100.0):
        raise EstimatorInputError(
            f"ipcw_truncate={truncate!r} is not allowed; give None or a percentile in "
            "(50, 100], e.g. 99 (caps the censoring factors num/K at that percentile)"
        )
    return float(truncate)


def check_flag(x: object, param: str) -> bool:
    if not isinstance(x, bool | np.bool_):
        raise EstimatorInputError(f"{param}={x!r} is not allowed; it must be True or False")
    return bool(x)


def check_ipcw_options(
    model: str | None,
    ipcw_covariates: object,
    covariates: tuple[str, ...],
    by_arm: object,
    stabilized: object,
    truncate: object,
    entry: object = None,
    cutoff: object = None,
) -> tuple[str, ...]:
    """Validate the ``ipcw_*`` options up front; returns the censoring-model covariates
    (``covariates`` when ``ipcw_covariates`` is None).  Options other than the defaults
    without ``ipcw`` are refused (they would do nothing)."""
    check_flag(by_arm, "ipcw_by_arm")
    if (entry is None) != (cutoff is None):
        raise EstimatorInputError(
            f"ipcw_entry={entry!r} and ipcw_cutoff={cutoff!r}: give both (the index-date "
            "column and the data cutoff, months from the same origin) or neither"
        )
    if entry is not None and not isinstance(entry, str):
        raise EstimatorInputError(f"ipcw_entry={entry!r} must be a column name (str) or None")
    if cutoff is not None and (
        isinstance(cutoff, bool)
        or not isinstance(cutoff, int | float)
        or not math.isfinite(cutoff)
        or cutoff <= 0
    ):
        raise EstimatorInputError(
            f"ipcw_cutoff={cutoff!r} is not allowed; it must be a finite number of months > 0"
        )
    check_flag(stabilized, "ipcw_stabilized")
    check_ipcw_truncate(truncate)
    if ipcw_covariates is None:
        covs = covariates
    else:
        if isinstance(ipcw_covariates, str) or not isinstance(ipcw_covariates, Sequence):
            raise EstimatorInputError(
                f"ipcw_covariates={ipcw_covariates!r} must be a list of column names or None"
            )
        covs = tuple(ipcw_covariates)
        dup = sorted({c for c in covs if covs.count(c) > 1})
        if dup:
            raise EstimatorInputError(f"ipcw_covariates={list(covs)} names {dup} more than once")
    if model is None:
        changed = [
            name
            for name, value, default in (
                ("ipcw_covariates", ipcw_covariates, None),
                ("ipcw_by_arm", by_arm, True),
                ("ipcw_stabilized", stabilized, False),
                ("ipcw_truncate", truncate, None),
                ("ipcw_entry", entry, None),
                ("ipcw_cutoff", cutoff, None),
            )
            if value != default
        ]
        if changed:
            raise EstimatorInputError(
                f"{changed[0]} is not allowed without ipcw; set ipcw='cox' (one of "
                f"{list(IPCW_MODELS)}) or leave {changed[0]} at its default"
            )
    return covs


def check_ipcw_option_values(options: dict) -> None:
    """The ``ipcw*`` values of an estimator's keyword options, checked without data
    (an estimator variant, a study's ``[estimators.NAME]`` table): the model, the flags,
    the truncation, the entry / cutoff pair, and ``variance`` (sIPTW's IPCW fit has the
    robust sandwich only)."""
    model = check_ipcw(options.get("ipcw", False))
    check_ipcw_options(
        model,
        options.get("ipcw_covariates"),
        (),
        options.get("ipcw_by_arm", True),
        options.get("ipcw_stabilized", False),
        options.get("ipcw_truncate"),
        options.get("ipcw_entry"),
        options.get("ipcw_cutoff"),
    )
    variance = options.get("variance")
    if model is not None and variance in ("mestimation", "naive", "bootstrap"):
        raise EstimatorInputError(
            f"variance={variance!r} is not allowed with ipcw={options['ipcw']!r}; use "
            "variance='robust' (the sandwich with the censoring weights taken as known)"
        )


def admin_times(df, entry: str, cutoff: float, time: np.ndarray) -> np.ndarray:
    """Administrative censoring times ``cutoff - df[entry]`` (months), shape (n,).

    Raises
    ------
    EstimatorInputError
        ``entry`` is not a finite numeric column, or a follow-up ends after the cutoff.
    """
    from .validation import float_column

    e = float_column(df, entry, "ipcw_entry")
    admin = cutoff - e
    bad = time > admin + ADMIN_TOL
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise EstimatorInputError(
            f"ipcw_cutoff={cutoff!r} is not allowed with ipcw_entry={entry!r}: {int(bad.sum())} "
            f"patient(s) are followed beyond it (row {i}: entry {e[i]:g} + follow-up "
            f"{time[i]:g} months > {cutoff:g}); give the data cutoff in the entry column's "
            "time scale"
        )
    return admin


@dataclass(frozen=True)
class CensoringModel:
    """A fitted censoring model: ``K_i(t) = exp(-H_g(t) * risk_i)``.

    Attributes
    ----------
    times : tuple of ndarray
        Per model group g (arm 0, arm 1 when ``by_arm``; one pooled group otherwise):
        the distinct censoring times, ascending (months).
    cumhaz : tuple of ndarray
        ``H_g`` at those times (Breslow, centred covariates).
    risk : ndarray, shape (n,)
        ``exp(beta_g' (x_i - mean_g))`` of each patient's group.
    group : ndarray of int64, shape (n,)
        Model group of each patient.
    km_times, km_surv : tuple of ndarray
        Per arm (0, 1): censoring times and the marginal Kaplan-Meier survival of
        censoring just after them (the stabilising numerators).
    coef : tuple of ndarray
        Per group, the log-HRs of the censoring model on ``names[g]``.
    names : tuple of tuple of str
        Per group, the design columns used (constant ones dropped).
    by_arm : bool
    """

    times: tuple[np.ndarray, ...]
    cumhaz: tuple[np.ndarray, ...]
    risk: np.ndarray
    group: np.ndarray
    km_times: tuple[np.ndarray, np.ndarray]
    km_surv: tuple[np.ndarray, np.ndarray]
    coef: tuple[np.ndarray, ...]
    names: tuple[tuple[str, ...], ...]
    by_arm: bool

    def survival(self, t: float) -> np.ndarray:
        """``K_i(t)`` of every patient at ``t`` months, shape (n,)."""
        pairs = zip(self.times, self.cumhaz, strict=True)
        H = np.array([_step(tt, hh, t, left=False) for tt, hh in pairs])
        return np.exp(-H[self.group] * self.risk)

    def grids(self, tj: np.ndarray, stabilized: bool) -> tuple[np.ndarray, np.ndarray]:
        """``cumhaz`` (G, D) just before each time ``tj`` and the numerators (2, D)."""
        pairs = zip(self.times, self.cumhaz, strict=True)
        cumhaz = np.array([_steps(tt, hh, tj) for tt, hh in pairs])
        if stabilized:
            km = zip(self.km_times, self.km_surv, strict=True)
            num = np.array([_steps(tt, ss, tj, empty=1.0) for tt, ss in km])
        else:
            num = np.ones((2, tj.size))
        return np.ascontiguousarray(cumhaz), np.ascontiguousarray(num)


def _step(times: np.ndarray, values: np.ndarray, t: float, left: bool, empty: float = 0.0):
    """The step function at ``t`` (``left``: its left limit)."""
    k = int(np.searchsorted(times, t, side="left" if left else "right")) - 1
    return empty if k < 0 else float(values[k])


def _steps(times: np.ndarray, values: np.ndarray, t: np.ndarray, empty: float = 0.0):
    """Right-continuous step function (value ``values[k]`` from ``times[k]`` on) just
    before each ``t`` (left limit)."""
    if times.size == 0:
        return np.full(t.shape, empty)
    k = np.searchsorted(times, t, side="left") - 1
    return np.where(k < 0, empty, values[np.maximum(k, 0)])


def _km_censoring(t: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Kaplan-Meier survival of censoring (``c`` = 1 censored) at its jump times."""
    km = _kaplan_meier(t, c.astype(np.float64), np.ones(t.size), 0.05)
    keep = km.events > 0
    return km.time[keep], km.survival[keep]


def fit_censoring_model(
    time: np.ndarray,
    event: np.ndarray,
    treatment: np.ndarray,
    X: np.ndarray,
    names: Sequence[str],
    by_arm: bool = True,
    admin: np.ndarray | None = None,
) -> CensoringModel:
    """Fit the Cox censoring model (module docstring) on validated arrays.

    Parameters
    ----------
    time : ndarray, shape (n,)
        Follow-up, months, > 0.
    event : ndarray, shape (n,)
        1 = outcome event, 0 = censored (the censoring model's event).
    treatment : ndarray, shape (n,)
        0/1, both arms.
    X : ndarray, shape (n, q)
        Censoring-model covariates (q may be 0: Nelson-Aalen per group).
    names : sequence of str, length q
    by_arm : bool
        One model per arm (default), or one pooled model with treatment as a covariate.
    admin : ndarray, shape (n,), optional
        Each patient's administrative censoring time (months from index: data cutoff
        minus index date).  A censoring at it (``time >= admin - 1e-9``) is not an
        event of the censoring model: administrative censoring, independent of the
        outcome, is left unweighted (the estimand keeps it), and only the censoring
        before it is modelled.  None: every censoring is modelled.

    Returns
    -------
    CensoringModel
    """
    t = np.asarray(time, dtype=np.float64)
    c = 1 - np.asarray(event, dtype=np.int8)
    if admin is not None:
        c = (c.astype(bool) & (t < np.asarray(admin, dtype=np.float64) - ADMIN_TOL)).astype(np.int8)
    a = np.asarray(treatment).astype(np.int64)
    n = t.size
    names = tuple(names)
    if not by_arm:
        X = np.column_stack([a.astype(np.float64), X])
        names = ("treatment", *names)
    group = a.copy() if by_arm else np.zeros(n, dtype=np.int64)
    risk = np.ones(n)
    times, cumhaz, coefs, used = [], [], [], []
    for g in range(2 if by_arm else 1):
        m = group == g
        Xg = X[m]
        keep = np.ptp(Xg, axis=0) > 0 if Xg.shape[1] else np.zeros(0, dtype=bool)
        Xg = Xg[:, keep]
        gn = tuple(nm for nm, k in zip(names, keep, strict=True) if k)
        cg = c[m]
        if cg.sum() == 0:
            times.append(np.empty(0))
            cumhaz.append(np.empty(0))
            coefs.append(np.zeros(Xg.shape[1]))
            used.append(gn)
            continue
        if Xg.shape[1]:
            fit = fit_cox_arrays(t[m], cg, Xg, ties="breslow", names=gn)
            beta = fit.params
            lp = (Xg - Xg.mean(axis=0)) @ beta
        else:
            beta, lp = np.zeros(0), np.zeros(int(m.sum()))
        r = np.exp(lp)
        risk[m] = r
        tg, hg = breslow_cumhaz(t[m], cg, r)
        times.append(tg)
        cumhaz.append(hg)
        coefs.append(beta)
        used.append(gn)
    km = [_km_censoring(t[a == arm], c[a == arm]) for arm in (0, 1)]
    return CensoringModel(
        times=tuple(times),
        cumhaz=tuple(cumhaz),
        risk=risk,
        group=group,
        km_times=(km[0][0], km[1][0]),
        km_surv=(km[0][1], km[1][1]),
        coef=tuple(coefs),
        names=tuple(used),
        by_arm=by_arm,
    )


@dataclass(frozen=True)
class _Layout:
    """Rows by time ascending and the distinct event times' row ranges."""

    order: np.ndarray
    tj: np.ndarray
    jfirst: np.ndarray
    jlast: np.ndarray


def _layout(t: np.ndarray, e: np.ndarray) -> _Layout:
    order = np.argsort(t, kind="stable")
    ts = t[order]
    tj = np.unique(ts[e[order] == 1])
    jfirst = np.searchsorted(ts, tj, side="left").astype(np.int64)
    jlast = np.searchsorted(ts, tj, side="right").astype(np.int64)
    return _Layout(order, tj, jfirst, jlast)


@dataclass(frozen=True)
class IpcwFit:
    """Result of :func:`ipcw_cox` (treatment column first).

    Attributes
    ----------
    params, se : ndarray, shape (p,)
        Log-HRs and robust SEs (censoring and IPT weights taken as known).
    cov : ndarray, shape (p, p)
        Robust covariance ``I^-1 (sum_i U_i U_i') I^-1``.
    model_se : ndarray, shape (p,)
        Inverse-information SEs.
    loglik : float
    n_iter : int
    converged : bool
    diagnostics : dict
        ``ipcw_max_weight`` (largest time-varying weight ``w_i num / K_i`` of a patient
        at risk at an event time), ``ipcw_mean_weight_last`` (mean of those weights over
        the patients at risk at the last event time), ``ipcw_max_factor``, ``ipcw_cap``
        (the truncation cap or inf), ``ipcw_censoring_coef`` (per group: name -> log-HR).
    """

    params: np.ndarray
    se: np.ndarray
    cov: np.ndarray
    model_se: np.ndarray
    loglik: float
    n_iter: int
    converged: bool
    diagnostics: dict


def _prepare(t, e, a, w, model: CensoringModel, stabilized: bool, truncate: float | None):
    """Row layout, the censoring grids, and every (row at risk, event time) factor
    (uncapped); raises when a factor is infinite (K_i(t-) rounds to 0)."""
    lay = _layout(t, e)
    pairs = int(t.size * lay.jfirst.size - lay.jfirst.sum())
    if pairs > MAX_PAIRS:
        raise EstimatorInputError(
            f"ipcw: {t.size:,} patients x {lay.jfirst.size:,} event times make {pairs:,} "
            f"(patient at risk, event time) weights, {16 * pairs / 2**30:.1f} GiB; the limit "
            f"is {MAX_PAIRS:,}: analyse a smaller cohort (or coarsen the times)"
        )
    o = lay.order
    cumhaz, num = model.grids(lay.tj, stabilized)
    risk = np.ascontiguousarray(model.risk[o])
    arm = np.ascontiguousarray(a[o].astype(np.int64))
    grp = np.ascontiguousarray(model.group[o])
    with np.errstate(over="ignore"):
        f = kern._factors_at_risk(lay.jfirst, num, cumhaz, risk, arm, grp)
    if not np.isfinite(f).all():
        raise EstimatorInputError(
            "ipcw: the censoring model gives some patients at risk a censoring survival "
            "K_i(t-) of 0 (an infinite weight; a covariate level nearly always censored?); "
            "use fewer ipcw_covariates, or ipcw_truncate (e.g. 99)"
            if truncate is None
            else "ipcw: the censoring model gives some patients at risk a censoring survival "
            "K_i(t-) of 0; use fewer ipcw_covariates"
        )
    cap = math.inf if truncate is None else float(np.percentile(f, truncate))
    return lay, cumhaz, num, risk, arm, grp, cap, f


def _weight_diagnostics(lay, pw, f, cap, model) -> dict:
    """Weight summaries from the flat pair weights ``pw`` and factors ``f`` (the last
    event time's pairs are the last ``n - jfirst[-1]``)."""
    start = pw.size - (lay.order.size - int(lay.jfirst[-1]))
    return {
        "ipcw_max_weight": float(pw.max()),
        "ipcw_mean_weight_last": float(pw[start:].mean()),
        "ipcw_max_factor": float(min(f.max(), cap)),
        "ipcw_cap": cap,
        "ipcw_censoring_coef": [
            dict(zip(nm, map(float, b), strict=True))
            for nm, b in zip(model.names, model.coef, strict=True)
        ],
    }


def ipcw_cox(
    time: np.ndarray,
    event: np.ndarray,
    treatment: np.ndarray,
    X: np.ndarray,
    weights: np.ndarray,
    model: CensoringModel,
    stabilized: bool = False,
    truncate: float | None = None,
    ties: str = "efron",
    tol: float = 1e-9,
    max_iter: int = 50,
) -> IpcwFit:
    """Cox model with time-varying weights ``w_i num_a(t-) / K_i(t-)`` (validated arrays).

    Parameters
    ----------
    time, event, treatment : ndarray, shape (n,)
        Months (> 0), 0/1 (at least one event), 0/1 arm.
    X : ndarray, shape (n, p)
        The outcome model's covariates (for :func:`estimators.siptw`: the treatment alone).
    weights : ndarray, shape (n,)
        Baseline (IPT) weights, > 0.
    model : CensoringModel
        Fitted to the same rows.
    stabilized : bool
    truncate : float, optional
        Percentile cap of the censoring factors.
    ties : {"efron", "breslow"}
    tol, max_iter
        Newton-Raphson: stop when the relative change of the log partial likelihood is
        <= tol (R ``coxph`` rule).

    Returns
    -------
    IpcwFit
    """
    t = np.asarray(time, dtype=np.float64)
    e = np.asarray(event, dtype=np.int8)
    lay, _, _, _, _, _, cap, f = _prepare(
        t, e, np.asarray(treatment), weights, model, stabilized, truncate
    )
    o = lay.order
    Xs = np.asarray(X, dtype=np.float64)[o]
    Xs = np.ascontiguousarray(Xs - Xs.mean(axis=0))
    ws = np.ascontiguousarray(np.asarray(weights, dtype=np.float64)[o])
    es = np.ascontiguousarray(e[o])
    efron = ties == "efron"
    pw, offs = kern._pair_weights(ws, f, lay.jfirst, cap)
    args = (Xs, pw, offs, es, lay.jfirst, lay.jlast)
    p = Xs.shape[1]
    beta = np.zeros(p)
    ll, u, imat = kern._tv_cox_pass(*args, beta, efron)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        step = np.linalg.solve(imat, u)
        new = beta + step
        ll_new, u_new, imat_new = kern._tv_cox_pass(*args, new, efron)
        halvings = 0
        while not (ll_new >= ll - 1e-12 * abs(ll)) and halvings < 30:
            step /= 2.0
            new = beta + step
            ll_new, u_new, imat_new = kern._tv_cox_pass(*args, new, efron)
            halvings += 1
        done = abs(ll_new - ll) <= tol * abs(ll_new)
        beta, ll, u, imat = new, ll_new, u_new, imat_new
        if done:
            converged = True
            break
    var = np.linalg.inv(imat)
    scores = kern._tv_cox_scores(*args, beta, efron)
    cov = var @ (scores.T @ scores) @ var
    diag = _weight_diagnostics(lay, pw, f, cap, model)
    return IpcwFit(
        params=beta,
        se=np.sqrt(np.diag(cov)),
        cov=cov,
        model_se=np.sqrt(np.diag(var)),
        loglik=float(ll),
        n_iter=it,
        converged=converged,
        diagnostics=diag,
    )


def ipcw_km(
    time: np.ndarray,
    event: np.ndarray,
    treatment: np.ndarray,
    weights: np.ndarray,
    model: CensoringModel,
    tau: float,
    rmst: bool,
    stabilized: bool = False,
    truncate: float | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Time-varying-weighted KM functional of each arm (validated arrays).

    Returns
    -------
    estimate : ndarray, shape (2,)
        Control, treated: ``S(tau)`` or RMST to ``tau`` (months).
    phi : ndarray, shape (n,)
        Each patient's influence value for their own arm's functional (input row order).
    diagnostics : dict
        As :class:`IpcwFit`.
    """
    t = np.asarray(time, dtype=np.float64)
    e = np.asarray(event, dtype=np.int8)
    a = np.asarray(treatment)
    lay, _, _, _, arm, _, cap, f = _prepare(t, e, a, weights, model, stabilized, truncate)
    o = lay.order
    ws = np.ascontiguousarray(np.asarray(weights, dtype=np.float64)[o])
    pw, offs = kern._pair_weights(ws, f, lay.jfirst, cap)
    est, phi_s, _ = kern._tv_km(
        np.ascontiguousarray(t[o]),
        pw,
        offs,
        np.ascontiguousarray(e[o]),
        arm,
        lay.jfirst,
        lay.jlast,
        float(tau),
        bool(rmst),
    )
    phi = np.empty_like(phi_s)
    phi[o] = phi_s
    diag = _weight_diagnostics(lay, pw, f, cap, model)
    return est, phi, diag
