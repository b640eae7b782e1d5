"""Slow, obvious reference implementations used as test oracles."""

from __future__ import annotations

import numpy as np


def greedy_match_naive(
    logit: np.ndarray, treatment: np.ndarray, caliper: float, order: str, seed: int = 0
) -> list[tuple[int, int]]:
    """Greedy 1:1 matching by scanning every control for every treated patient.

    ``caliper`` is absolute (logit units, inclusive).  Treated patients are visited in
    ``order`` ("data", "largest", "smallest" with ties in row order, or "random": the
    permutation ``default_rng(seed).permutation`` of the treated in row order); each
    takes the free control at the smallest distance, ties to the smallest row index.
    Returns (treated_row, control_row) pairs in the order formed.
    """
    treated = [i for i in range(len(logit)) if treatment[i] == 1]
    controls = [i for i in range(len(logit)) if treatment[i] == 0]
    if order == "largest":
        treated = sorted(treated, key=lambda i: (-logit[i], i))
    elif order == "smallest":
        treated = sorted(treated, key=lambda i: (logit[i], i))
    elif order == "random":
        perm = np.random.default_rng(seed).permutation(len(treated))
        treated = [treated[k] for k in perm]
    used: set[int] = set()
    pairs = []
    for t in treated:
        best, best_d = None, np.inf
        for c in controls:
            if c in used:
                continue
            d = abs(logit[c] - logit[t])
            if d < best_d or (d == best_d and best is not None and c < best):
                best, best_d = c, d
        if best is not None and best_d <= caliper:
            used.add(best)
            pairs.append((t, best))
    return pairs


def _cox_event_terms(time, event, X, weights, strata, beta, ties):
    """Every event time of every stratum with its explicit risk set and Efron terms.

    Returns a list of dicts: ``stratum``, ``time``, ``dead`` (n,) bool, and ``terms``, a
    list of (c (n,), wt, den, xbar (p,), cov (p, p)) where ``c`` is each row's share of
    the risk set in that term (0 outside the risk set; 1 - k/d for the tied events in
    the k-th Efron term, else 1) and ``wt`` the event weight the term carries.
    """
    n = len(time)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    s = np.zeros(n, dtype=int) if strata is None else np.asarray(strata)
    risk = w * np.exp(X @ beta)
    out = []
    for stratum in np.unique(s):
        for t in np.unique(time[(s == stratum) & (event == 1)]):
            at_risk = (s == stratum) & (time >= t)
            dead = at_risk & (time == t) & (event == 1)
            d = int(dead.sum())
            if ties == "efron":
                fractions, wt = [k / d for k in range(d)], w[dead].sum() / d
            else:
                fractions, wt = [0.0], w[dead].sum()
            terms = []
            for f in fractions:
                c = np.where(dead, 1.0 - f, 1.0) * at_risk
                cr = c * risk
                den = cr.sum()
                xbar = cr @ X / den
                cov = (X * cr[:, None]).T @ X / den - np.outer(xbar, xbar)
                terms.append((c, wt, den, xbar, cov))
            out.append({"stratum": stratum, "time": t, "dead": dead, "terms": terms})
    return out


def cox_derivatives_naive(time, event, X, weights, strata, beta, ties):
    """Weighted log partial likelihood, score (p,) and information (p, p) at ``beta``.

    Loops over event times with explicit risk sets; Efron's weighted form as R survival
    (tied events share their mean weight).
    """
    w = np.ones(len(time)) if weights is None else np.asarray(weights, dtype=float)
    p = X.shape[1]
    ll, score, info = 0.0, np.zeros(p), np.zeros((p, p))
    for ev in _cox_event_terms(time, event, X, weights, strata, beta, ties):
        dead = ev["dead"]
        ll += np.sum(w[dead] * (X[dead] @ beta))
        score += w[dead] @ X[dead]
        for _, wt, den, xbar, cov in ev["terms"]:
            ll -= wt * np.log(den)
            score -= wt * xbar
            info += wt * cov
    return ll, score, info


def cox_score_residuals_naive(time, event, X, weights, strata, beta, ties):
    """Unweighted score residuals (n, p): ``sum_i w_i r_i`` equals the score.

    r_i = delta_i (x_i - mean_k xbar_k at t_i)
          - sum over event times s <= t_i in i's stratum, over terms k:
            c_ik wt_k exp(x_i beta) / den_k (x_i - xbar_k)
    """
    n, p = X.shape
    s = np.zeros(n, dtype=int) if strata is None else np.asarray(strata)
    e = np.exp(X @ beta)
    events = _cox_event_terms(time, event, X, weights, strata, beta, ties)
    resid = np.zeros((n, p))
    for i in range(n):
        for ev in events:
            if ev["stratum"] != s[i] or ev["time"] > time[i]:
                continue
            terms = ev["terms"]
            for c, wt, den, xbar, _ in terms:
                resid[i] -= c[i] * wt * e[i] / den * (X[i] - xbar)
            if ev["dead"][i]:
                resid[i] += X[i] - np.mean([xbar for _, _, _, xbar, _ in terms], axis=0)
    return resid


def cox_sandwich_naive(time, event, X, weights, strata, cluster, beta, ties):
    """Lin-Wei robust covariance I^-1 B I^-1 at ``beta``.

    B sums, over clusters (each row its own cluster when ``cluster`` is None), the outer
    product of the cluster's total weighted score residual.
    """
    n = len(time)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    cl = np.arange(n) if cluster is None else np.asarray(cluster)
    _, _, info = cox_derivatives_naive(time, event, X, weights, strata, beta, ties)
    wr = w[:, None] * cox_score_residuals_naive(time, event, X, weights, strata, beta, ties)
    meat = np.zeros((X.shape[1], X.shape[1]))
    for c in np.unique(cl):
        total = wr[cl == c].sum(axis=0)
        meat += np.outer(total, total)
    bread = np.linalg.inv(info)
    return bread @ meat @ bread


def iptw_weights_naive(ps, treatment, estimand: str, stabilized: bool) -> np.ndarray:
    """IPT weights patient by patient from the textbook formulas.

    ATE: 1/e or 1/(1-e); ATT: 1 or e/(1-e).  Stabilized: multiplied by the arm's
    n_a / sum of the arm's raw weights (controls only for the ATT).
    """
    n = len(ps)
    raw = []
    for i in range(n):
        e, a = float(ps[i]), int(treatment[i])
        if estimand == "ATE":
            raw.append(1.0 / e if a == 1 else 1.0 / (1.0 - e))
        else:
            raw.append(1.0 if a == 1 else e / (1.0 - e))
    if not stabilized:
        return np.array(raw)
    out = []
    for i in range(n):
        arm = [j for j in range(n) if int(treatment[j]) == int(treatment[i])]
        if estimand == "ATT" and int(treatment[i]) == 1:
            out.append(raw[i])
        else:
            out.append(raw[i] * len(arm) / sum(raw[j] for j in arm))
    return np.array(out)


def smd_naive(x, treatment, weights=None) -> float:
    """Standardized mean difference of one column with plain Python sums.

    Means weighted by ``weights``; denominator sqrt((s1^2 + s0^2) / 2) from the
    unweighted arms, with p(1-p) for a 0/1 column and the ddof=1 variance otherwise.
    """
    n = len(x)
    w = [1.0] * n if weights is None else [float(v) for v in weights]
    binary = all(v in (0.0, 1.0) for v in x)
    means, variances = [], []
    for arm in (1, 0):
        idx = [i for i in range(n) if int(treatment[i]) == arm]
        means.append(sum(w[i] * x[i] for i in idx) / sum(w[i] for i in idx))
        m = sum(x[i] for i in idx) / len(idx)
        variances.append(
            m * (1 - m) if binary else sum((x[i] - m) ** 2 for i in idx) / (len(idx) - 1)
        )
    sd = ((variances[0] + variances[1]) / 2) ** 0.5
    diff = means[0] - means[1]
    if sd == 0:  # constant within both arms
        return 0.0 if diff == 0 else float(np.sign(diff)) * np.inf
    return diff / sd
