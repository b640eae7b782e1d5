"""Slow, obvious reference implementations used as test oracles."""

from __future__ import annotations

import math

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


def _cox_event_terms(time, event, X, weights, strata, beta, ties, entry=None):
    """Every event time of every stratum with its explicit risk set and Efron terms.

    With ``entry`` (start times, months) row i is at risk at t when entry_i < t <= time_i.

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
            if entry is not None:
                at_risk &= np.asarray(entry) < t
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


def cox_derivatives_naive(time, event, X, weights, strata, beta, ties, entry=None):
    """Weighted log partial likelihood, score (p,) and information (p, p) at ``beta``.

    Loops over event times with explicit risk sets; Efron's weighted form as R survival
    (tied events share their mean weight).
    """
    w = np.ones(len(time)) if weights is None else np.asarray(weights, dtype=float)
    p = X.shape[1]
    ll, score, info = 0.0, np.zeros(p), np.zeros((p, p))
    for ev in _cox_event_terms(time, event, X, weights, strata, beta, ties, entry):
        dead = ev["dead"]
        ll += np.sum(w[dead] * (X[dead] @ beta))
        score += w[dead] @ X[dead]
        for _, wt, den, xbar, cov in ev["terms"]:
            ll -= wt * np.log(den)
            score -= wt * xbar
            info += wt * cov
    return ll, score, info


def cox_score_residuals_naive(time, event, X, weights, strata, beta, ties, entry=None):
    """Unweighted score residuals (n, p): ``sum_i w_i r_i`` equals the score.

    r_i = delta_i (x_i - mean_k xbar_k at t_i)
          - sum over event times s <= t_i in i's stratum, over terms k:
            c_ik wt_k exp(x_i beta) / den_k (x_i - xbar_k)
    """
    n, p = X.shape
    s = np.zeros(n, dtype=int) if strata is None else np.asarray(strata)
    e = np.exp(X @ beta)
    events = _cox_event_terms(time, event, X, weights, strata, beta, ties, entry)
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


def cox_sandwich_naive(time, event, X, weights, strata, cluster, beta, ties, entry=None):
    """Lin-Wei robust covariance I^-1 B I^-1 at ``beta``.

    B sums, over clusters (each row its own cluster when ``cluster`` is None), the outer
    product of the cluster's total weighted score residual.
    """
    n = len(time)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    cl = np.arange(n) if cluster is None else np.asarray(cluster)
    _, _, info = cox_derivatives_naive(time, event, X, weights, strata, beta, ties, entry)
    wr = w[:, None] * cox_score_residuals_naive(time, event, X, weights, strata, beta, ties, entry)
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


# ---- cohort generator (oracle for simulator._cohort_kernels._cohort) -------------------------
# Vectorised NumPy over each chunk's (m, k) blocks of draws; transcendental functions go
# through Python's math module (glibc, as numba uses) so the result is bit-identical.
_m_exp = np.frompyfunc(math.exp, 1, 1)
_m_pow = np.frompyfunc(math.pow, 2, 1)
_m_ceil = np.frompyfunc(math.ceil, 1, 1)


def _exp(x):
    return _m_exp(np.asarray(x, dtype=float)).astype(float)


def _pow(x, y):
    return _m_pow(np.asarray(x, dtype=float), float(y)).astype(float)


def _dense_dot(coef, F):
    s = np.zeros(F.shape[0])
    for k in range(F.shape[1]):
        s = s + coef[k] * F[:, k]
    return s


def _naive_covariates(Z, U, E, plan):
    from simulator import _cohort_kernels as K

    S, L = plan.S, plan.chol
    za = L[0, 0] * Z[:, 0]
    ze = L[1, 0] * Z[:, 0] + L[1, 1] * Z[:, 1]
    zs = L[2, 0] * Z[:, 0] + L[2, 1] * Z[:, 1] + L[2, 2] * Z[:, 2]
    zv = L[3, 0] * Z[:, 0] + L[3, 1] * Z[:, 1] + L[3, 2] * Z[:, 2] + L[3, 3] * Z[:, 3]
    table = plan.age_table
    x = (za - S[K.S_AGE_Z0]) * S[K.S_AGE_INV_DZ]
    j = np.clip(np.floor(x).astype(np.int64), 0, table.size - 2)
    f = x - j
    age = np.where(
        x <= 0,
        table[0],
        np.where(x >= table.size - 1, table[-1], table[j] + f * (table[j + 1] - table[j])),
    )
    ecog = np.where(ze <= S[K.S_ECOG_T1], 0, np.where(ze <= S[K.S_ECOG_T2], 1, 2))
    sites = np.where(zs <= S[K.S_SITES_T1], 1, np.where(zs <= S[K.S_SITES_T2], 2, 3))
    visceral = (zv > S[K.S_VISC_C]).astype(int)
    pl, pv = S[K.S_PAT_LUNG], S[K.S_PAT_LIVER]
    u = U[:, 3]
    lung_only, liver_only = u < pl, (u >= pl) & (u < pl + pv)
    both = ~lung_only & ~liver_only
    single = pl + pv
    r = (u - single) / (1.0 - single) if single < 1 else np.zeros_like(u)
    to_lung = both & (sites == 1) & (r < (pl / single if single > 0 else 2.0))
    to_liver = both & (sites == 1) & ~to_lung
    if single <= 0:
        sites = np.where(visceral.astype(bool) & both & (sites == 1), 2, sites)
        to_lung = to_liver = np.zeros_like(both)
    lung = visceral * (lung_only | (both & ~to_liver)).astype(int)
    liver = visceral * (liver_only | (both & ~to_lung)).astype(int)
    bone = ((visceral == 0) & (sites == 1) & (U[:, 4] < S[K.S_BONE_Q])).astype(int)
    de_novo = (U[:, 2] < S[K.S_DENOVO]).astype(int)
    dfi = np.where(de_novo == 1, np.nan, S[K.S_DFI_SCALE] * _pow(E[:, 0], S[K.S_DFI_INV_SHAPE]))
    academic = (U[:, 1] < S[K.S_ACADEMIC]).astype(int)
    race = np.minimum(np.sum(U[:, [0]] >= plan.race_cum[None, :-1], axis=1), plan.race_cum.size - 1)
    if S[K.S_MISS_CONST] >= 0:
        p_miss = np.full(age.size, S[K.S_MISS_CONST])
    else:
        lp = S[K.S_MISS_A0] + S[K.S_MISS_AGE] * ((age - 65.0) / 10.0)
        lp = lp + S[K.S_MISS_ACAD] * academic + S[K.S_MISS_ECOG] * ecog
        p_miss = 1.0 / (1.0 + _exp(-lp))
    ecog_obs = np.where(U[:, 5] < p_miss, 3, ecog)
    group = np.where(age < 50, 0, np.where(age < 65, 1, np.where(age < 75, 2, 3)))
    return dict(
        age=age,
        age_group=group,
        ecog=ecog,
        ecog_obs=ecog_obs,
        visceral=visceral,
        lung=lung,
        liver=liver,
        bone=bone,
        sites=sites,
        de_novo=de_novo,
        dfi=dfi,
        academic=academic,
        race=race,
        frailty=Z[:, 4],
    )


def _naive_features(c):
    cols = [
        (c["age"] - 65.0) / 10.0,
        c["age_group"] == 1,
        c["age_group"] == 2,
        c["age_group"] == 3,
        c["ecog"] == 1,
        c["ecog"] == 2,
        c["ecog_obs"] == 1,
        c["ecog_obs"] == 2,
        c["ecog_obs"] == 3,
        c["visceral"],
        c["lung"],
        c["liver"],
        c["bone"],
        c["sites"],
        c["de_novo"],
        (c["de_novo"] == 0) & (c["dfi"] < 2.0),
        c["academic"],
        c["race"] == 1,
        c["race"] == 2,
        c["race"] == 3,
        c["race"] == 4,
        c["race"] == 5,
    ]
    return np.column_stack([np.asarray(x, dtype=float) for x in cols])


def _naive_time(e, lp, a, om, k):
    x = e / (om[k, 0] * _exp(lp + om[k, 2] * a))
    return x if om[k, 4] == 1.0 else _pow(x, om[k, 1])


def _naive_outcomes(E, lp, a, om):
    t01 = _naive_time(E[:, 1], lp[0], a, om, 0)
    t02 = _naive_time(E[:, 2], lp[1], a, om, 1)
    progressed = t01 < t02
    t12 = _naive_time(E[:, 3], lp[2], a, om, 2)
    death = np.where(progressed, t01 + t12, t02)
    return np.minimum(t01, t02), death, progressed, t01


def cohort_naive(plan, n: int, seed: int, potential: bool = False) -> dict[str, np.ndarray]:
    """Simulate a cohort with plain NumPy from the same plan and streams as the kernel."""
    from simulator import _cohort_kernels as K
    from simulator.streams import as_seed_sequence, chunk_generator, n_chunks

    root = as_seed_sequence(seed)
    parts = []
    for c in range(n_chunks(n)):
        m = min(n, (c + 1) * K.CHUNK) - c * K.CHUNK
        Z = chunk_generator(root, c, 0).standard_normal((m, K.N_NORMAL))
        U = chunk_generator(root, c, 1).random((m, K.N_UNIFORM))
        E = chunk_generator(root, c, 2).standard_exponential((m, K.N_EXPON))
        # crossover: one switching uniform per patient from a fourth stream
        Ux = chunk_generator(root, c, 3).random(m) if plan.crossover else None
        parts.append(_naive_chunk(Z, U, E, plan, potential, Ux))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _naive_chunk(Z, U, E, plan, potential, Ux=None):
    from simulator import _cohort_kernels as K

    S, om = plan.S, plan.om
    c = _naive_covariates(Z, U, E, plan)
    F = _naive_features(c)
    lin = S[K.S_T_INTERCEPT] + _dense_dot(plan.W[0], F) + S[K.S_T_FRAIL] * c["frailty"]
    ps = S[K.S_PS_LO] + (S[K.S_PS_HI] - S[K.S_PS_LO]) * (1.0 / (1.0 + _exp(-lin)))
    a = (U[:, 6] < ps).astype(int)
    lp = [_dense_dot(plan.W[k + 1], F) + om[k, 3] * c["frailty"] for k in range(3)]
    _, death, progressed, t_prog = _naive_outcomes(E, lp, a.astype(float), om)
    switched = np.zeros(a.size, dtype=bool)
    if Ux is not None:  # crossover at progression: the switcher's post-progression time
        X = plan.X  # is stretched by post_progression_hr^(-1/shape)
        p = 1.0 / (1.0 + _exp(-(X[K.X_INTERCEPT] + _dense_dot(plan.x_b, F))))
        switched = progressed & (a == X[K.X_ARM]) & (Ux < p)
        death = np.where(switched, t_prog + (death - t_prog) * X[K.X_STRETCH], death)
    out = dict(c, treated=a, ps=ps)
    if potential:
        out["pfs0"], out["os0"] = _naive_outcomes(E, lp, 0.0, om)[:2]
        out["pfs1"], out["os1"] = _naive_outcomes(E, lp, 1.0, om)[:2]
    out.update(_naive_observe(a, death, progressed, t_prog, U, E, F, plan))
    seen = progressed & (t_prog < out["os"]) & (Ux is not None)
    out["progression"] = np.where(seen, t_prog, np.nan)
    out["crossover_months"] = np.where(seen & switched, t_prog, np.nan)
    out["crossover"] = (seen & switched).astype(int)
    return out


def _naive_observe(a, death, progressed, t_prog, U, E, F, plan):
    from simulator import _cohort_kernels as K

    S = plan.S
    entry = U[:, 7] * S[K.S_ACCRUAL]
    c_admin = S[K.S_CUTOFF] - entry
    c_lost = np.full(a.size, np.inf)
    if S[K.S_LOST_RATE] > 0:
        rate = S[K.S_LOST_RATE] * _exp(_dense_dot(plan.lost_b, F))
        rate = np.where(a == 1, rate * S[K.S_LOST_HR_TRT], rate)
        c_lost = E[:, 4] / rate
    c_next = np.full(a.size, np.inf)
    if S[K.S_NEXT_RATE] > 0:
        rate = S[K.S_NEXT_RATE] * np.where(a == 1, S[K.S_NEXT_HR_TRT], 1.0)
        if plan.nz_next.size:
            rate = rate * _exp(_dense_dot(plan.next_b, F))
        c_next = E[:, 5] / rate
    admin_first = c_admin <= c_lost
    c_os = np.where(admin_first, c_admin, c_lost)
    os_reason = np.where(admin_first, K.R_ADMIN, K.R_LOST)
    os_event = death <= c_os
    t_rec = t_prog
    if S[K.S_VISIT] > 0:
        offset = (U[:, 8] - 0.5) * 2.0 * S[K.S_JITTER]
        k = np.maximum(_m_ceil((t_prog - offset) / S[K.S_VISIT]).astype(float), 1.0)
        t_rec = k * S[K.S_VISIT] + offset
    prog_seen = progressed & (t_rec < death)
    t_event = np.where(prog_seen, t_rec, death)
    next_first = c_next < c_os
    c_pfs = np.where(next_first, c_next, c_os)
    pfs_event = t_event <= c_pfs
    return dict(
        os=np.where(os_event, death, c_os),
        os_event=os_event.astype(int),
        os_reason=np.where(os_event, K.R_DEATH, os_reason),
        pfs=np.where(pfs_event, t_event, c_pfs),
        pfs_event=pfs_event.astype(int),
        pfs_reason=np.where(
            pfs_event,
            np.where(prog_seen, K.R_PROGRESSION, K.R_DEATH),
            np.where(next_first, K.R_NEXT, os_reason),
        ),
        entry=entry,
    )


def kaplan_meier_naive(time, event, weights=None):
    """Weighted Kaplan-Meier by explicit risk sets at every distinct time.

    Returns (times, survival, greenwood) lists: S just after each distinct time and
    the Greenwood sum of d / (Y (Y - d)) (0 for a term with Y = d).
    """
    n = len(time)
    w = [1.0] * n if weights is None else [float(v) for v in weights]
    times = sorted(set(float(t) for t in time))
    s, g, out_s, out_g = 1.0, 0.0, [], []
    for u in times:
        y = sum(w[i] for i in range(n) if time[i] >= u)
        d = sum(w[i] for i in range(n) if time[i] == u and event[i] == 1)
        s *= 1.0 - d / y
        g += d / (y * (y - d)) if y > d else 0.0
        out_s.append(s)
        out_g.append(g)
    return times, out_s, out_g


def rmst_naive(time, event, tau, weights=None):
    """RMST to ``tau`` and its SE: sum of rectangles, A_j integrated rectangle by rectangle."""
    from itertools import pairwise

    times, surv, _ = kaplan_meier_naive(time, event, weights)
    n = len(time)
    w = [1.0] * n if weights is None else [float(v) for v in weights]

    def area(start):  # integral of S from ``start`` (a jump time or 0) to tau
        knots = [start] + [t for t in times if start < t < tau] + [tau]
        total = 0.0
        for a, b in pairwise(knots):
            s_a = 1.0
            for t, s in zip(times, surv, strict=True):
                if t <= a:
                    s_a = s
            total += s_a * (b - a)
        return total

    var = 0.0
    for u in times:
        if u > tau:
            break
        y = sum(w[i] for i in range(n) if time[i] >= u)
        d = sum(w[i] for i in range(n) if time[i] == u and event[i] == 1)
        if d > 0 and y > d:
            var += area(u) ** 2 * d / (y * (y - d))
    return area(0.0), var**0.5


def firth_logistic_naive(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Firth-penalised logistic regression: maximise ``l(b) + log det(X'WX) / 2`` with
    scipy's BFGS, the objective and its gradient written out densely.

    The gradient is the modified score ``X'(y - p + h (1/2 - p))`` with ``h`` the
    diagonal of the full n x n hat matrix ``W^1/2 X (X'WX)^-1 X' W^1/2`` (Firth 1993).
    """
    from scipy.optimize import minimize

    def parts(b):
        p = 1.0 / (1.0 + np.exp(-(X @ b)))
        w = p * (1.0 - p)
        info = X.T @ (w[:, None] * X)
        half = np.sqrt(w)[:, None] * X
        hat = half @ np.linalg.inv(info) @ half.T
        return p, info, np.diag(hat)

    def objective(b):
        p, info, _ = parts(b)
        ll = np.sum(y * np.log(p) + (1.0 - y) * np.log1p(-p))
        return -(ll + 0.5 * np.linalg.slogdet(info)[1])

    def gradient(b):
        p, _, h = parts(b)
        return -(X.T @ (y - p + h * (0.5 - p)))

    res = minimize(objective, np.zeros(X.shape[1]), jac=gradient, method="BFGS", tol=1e-12)
    return res.x


def pool_rare_naive(
    codes: np.ndarray, treatment: np.ndarray, min_count: int, other: int
) -> np.ndarray:
    """Pooled category codes: levels with < ``min_count`` patients in either arm get code
    ``other``; when that level is itself rare it becomes the reference (the first
    present level).  Returns the new code of every patient."""
    levels = sorted(set(codes.tolist()))
    ref = levels[0]

    def rare(mask):
        return (mask & (treatment == 1)).sum() < min_count or (
            mask & (treatment == 0)
        ).sum() < min_count

    out = codes.copy()
    for lv in levels[1:]:
        if rare(codes == lv):
            out[codes == lv] = other
    if (out == other).any() and rare(out == other):
        out[out == other] = ref
    return out


def match_k_naive(
    logit: np.ndarray,
    treatment: np.ndarray,
    caliper: float,
    order: str,
    seed: int,
    ratio: int,
    replace: bool,
) -> list[tuple[int, list[int]]]:
    """1:k matching by scanning every control for every treated patient.

    Treated order as :func:`greedy_match_naive`; ``caliper`` absolute (inclusive).
    Without replacement: ``ratio`` rounds; in each, every treated patient in order takes
    the unused control at the smallest distance (ties: smallest row index).  With
    replacement: each treated patient takes the first ``ratio`` controls sorted by
    (distance, row index) within the caliper.  Returns (treated row, [control rows in
    the order taken]) for each treated patient with at least one control, in order.
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
    taken: dict[int, list[int]] = {t: [] for t in treated}
    if replace:
        for t in treated:
            near = sorted(controls, key=lambda c: (abs(logit[c] - logit[t]), c))
            taken[t] = [c for c in near if abs(logit[c] - logit[t]) <= caliper][:ratio]
    else:
        used: set[int] = set()
        for _ in range(ratio):
            for t in treated:
                free = [c for c in controls if c not in used]
                if not free:
                    continue
                best = min(free, key=lambda c: (abs(logit[c] - logit[t]), c))
                if abs(logit[best] - logit[t]) <= caliper:
                    used.add(best)
                    taken[t].append(best)
    return [(t, taken[t]) for t in treated if taken[t]]


def austin_cafri_naive(time, event, X, weights, strata, sets, patient, beta, ties):
    """Austin-Cafri covariance: I^-1 (B_set + B_patient - B_row) I^-1 at ``beta``.

    Each B sums, over the groups of rows sharing a matched set (``sets``), a patient
    (``patient``) or nothing (each row alone), the outer product of the group's total
    weighted score residual; residuals and information from the slow references above.
    """
    w = np.asarray(weights, dtype=float)
    _, _, info = cox_derivatives_naive(time, event, X, w, strata, beta, ties)
    wr = w[:, None] * cox_score_residuals_naive(time, event, X, w, strata, beta, ties)
    p = X.shape[1]

    def meat(groups):
        out = np.zeros((p, p))
        for g in set(groups.tolist()):
            total = wr[groups == g].sum(axis=0)
            out += np.outer(total, total)
        return out

    rows = np.arange(len(time))
    bread = np.linalg.inv(info)
    return bread @ (meat(np.asarray(sets)) + meat(np.asarray(patient)) - meat(rows)) @ bread


# ---- propensity-score weights of every estimand, and the stacked M-estimation sandwich ------


def _ps_weight_naive(e: float, a: int, estimand: str) -> float:
    """One patient's unstabilized weight from the textbook formula."""
    if estimand == "ATE":
        return 1.0 / e if a == 1 else 1.0 / (1.0 - e)
    if estimand == "ATT":
        return 1.0 if a == 1 else e / (1.0 - e)
    if estimand == "ATC":
        return (1.0 - e) / e if a == 1 else 1.0
    if estimand == "ATO":
        return 1.0 - e if a == 1 else e
    m = min(e, 1.0 - e)  # ATM
    return m / e if a == 1 else m / (1.0 - e)


def _stabilized_group_naive(a: int, estimand: str) -> str | None:
    """Which constant rescales a patient: its arm, "all", or none (weight 1 by definition)."""
    if estimand == "ATE":
        return f"arm{a}"
    if estimand == "ATT":
        return None if a == 1 else "arm0"
    if estimand == "ATC":
        return "arm1" if a == 1 else None
    return "all"


def ps_weights_naive(
    ps, treatment, estimand: str, stabilized: bool, trim: tuple[float, float] | None = None
) -> np.ndarray:
    """Weights of every estimand patient by patient: trimmed patients (``ps`` outside the
    inclusive ``trim`` bounds) get 0; each stabilization group of the kept patients is
    rescaled to mean 1."""
    n = len(ps)
    kept = [trim is None or trim[0] <= float(ps[i]) <= trim[1] for i in range(n)]
    raw = [
        _ps_weight_naive(float(ps[i]), int(treatment[i]), estimand) if kept[i] else 0.0
        for i in range(n)
    ]
    if not stabilized:
        return np.array(raw)
    out = []
    for i in range(n):
        g = _stabilized_group_naive(int(treatment[i]), estimand)
        if not kept[i] or g is None:
            out.append(raw[i])
            continue
        members = [
            j
            for j in range(n)
            if kept[j] and _stabilized_group_naive(int(treatment[j]), estimand) == g
        ]
        out.append(raw[i] * len(members) / sum(raw[j] for j in members))
    return np.array(out)


def _logistic_ml_naive(X: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Logistic MLE by plain Newton iterations to machine precision."""
    gamma = np.zeros(X.shape[1])
    for _ in range(100):
        e = 1.0 / (1.0 + np.exp(-(X @ gamma)))
        step = np.linalg.solve((X * (e * (1 - e))[:, None]).T @ X, X.T @ (a - e))
        gamma = gamma + step
        if np.max(np.abs(step)) < 1e-13:
            break
    return gamma


def siptw_mestimation_naive(
    time,
    event,
    treatment,
    X: np.ndarray,
    estimand: str,
    ties: str,
    trim: tuple[float, float] | None = None,
    gamma: np.ndarray | None = None,
) -> dict:
    """Stacked estimating equations of sIPTW written plainly; sandwich by numerical Jacobian.

    theta = (gamma (PS coefficients, ``X`` holds the intercept), c (one stabilization
    constant per group of :func:`_stabilized_group_naive`), beta (Cox log-HR)).
    Psi(theta) = (sum_i x_i (A_i - e_i), sum_{i in G} (c_G w~_i - 1), weighted Cox score of
    the kept patients).  ``gamma`` defaults to the ML fit (given: held there, e.g. a
    Firth estimate, with the ML score's equations).  The trimming set is fixed at the
    estimate.  Jacobian dPsi/dtheta by central differences with step
    h_k = eps^(1/3) max(1, |theta_k|) (eps^(1/3) ~ 6e-6 balances the O(h^2) truncation
    and the O(eps / h) round-off errors of a central difference); the meat sums the
    outer products of the per-patient contributions (x_i (A_i - e_i), 1{i in G}
    (c_G w~_i - 1), w_i r_i with r the plain score residuals).

    Returns dict with beta, se, theta, psi_at_root (the stacked equations at the estimate).
    """
    from scipy.optimize import brentq

    t = np.asarray(time, dtype=float)
    d = np.asarray(event).astype(int)
    a = np.asarray(treatment).astype(int)
    n, q = X.shape
    if gamma is None:
        gamma = _logistic_ml_naive(X, a)
    e_hat = 1.0 / (1.0 + np.exp(-(X @ gamma)))
    kept = np.array([trim is None or trim[0] <= e_hat[i] <= trim[1] for i in range(n)])
    labels = [_stabilized_group_naive(int(a[i]), estimand) for i in range(n)]
    names = sorted({g for g, k in zip(labels, kept, strict=True) if g is not None and k})

    def member(i: int, g: str | None) -> bool:
        return g is not None and bool(kept[i]) and labels[i] == g

    def raw_at(gam: np.ndarray) -> np.ndarray:
        e = 1.0 / (1.0 + np.exp(-(X @ gam)))
        return np.array([_ps_weight_naive(e[i], int(a[i]), estimand) for i in range(n)])

    def weights_at(gam: np.ndarray, c: np.ndarray) -> np.ndarray:
        raw = raw_at(gam)
        scale = [c[names.index(labels[i])] if member(i, labels[i]) else 1.0 for i in range(n)]
        return raw * np.array(scale)

    def cox_score(beta: float, w: np.ndarray) -> float:
        _, u, _ = cox_derivatives_naive(
            t[kept], d[kept], a[kept, None].astype(float), w[kept], None, np.array([beta]), ties
        )
        return float(u[0])

    raw = raw_at(gamma)
    c_hat = np.array(
        [
            sum(member(i, g) for i in range(n)) / sum(raw[i] for i in range(n) if member(i, g))
            for g in names
        ]
    )
    w_hat = weights_at(gamma, c_hat)
    beta_hat = brentq(lambda b: cox_score(b, w_hat), -5.0, 5.0, xtol=1e-14, rtol=1e-15)

    def psi(theta: np.ndarray) -> np.ndarray:
        gam, c, beta = theta[:q], theta[q : q + len(names)], theta[-1]
        e = 1.0 / (1.0 + np.exp(-(X @ gam)))
        raw = raw_at(gam)
        ps_part = X.T @ (a - e)
        c_part = [
            sum(c[k] * raw[i] - 1.0 for i in range(n) if member(i, g)) for k, g in enumerate(names)
        ]
        return np.r_[ps_part, c_part, cox_score(beta, weights_at(gam, c))]

    theta = np.r_[gamma, c_hat, beta_hat]
    dim = theta.size
    J = np.empty((dim, dim))
    for k in range(dim):
        h = np.finfo(float).eps ** (1 / 3) * max(1.0, abs(theta[k]))
        up, down = theta.copy(), theta.copy()
        up[k] += h
        down[k] -= h
        J[:, k] = (psi(up) - psi(down)) / (2 * h)
    resid = np.zeros(n)
    resid[kept] = cox_score_residuals_naive(
        t[kept],
        d[kept],
        a[kept, None].astype(float),
        w_hat[kept],
        None,
        np.array([beta_hat]),
        ties,
    )[:, 0]
    meat = np.zeros((dim, dim))
    for i in range(n):
        phi = np.zeros(dim)
        phi[:q] = X[i] * (a[i] - e_hat[i])
        for k, g in enumerate(names):
            if member(i, g):
                phi[q + k] = c_hat[k] * raw[i] - 1.0
        phi[-1] = w_hat[i] * resid[i] if kept[i] else 0.0
        meat += np.outer(phi, phi)
    Jinv = np.linalg.inv(J)
    cov = Jinv @ meat @ Jinv.T
    return {
        "beta": beta_hat,
        "se": float(np.sqrt(cov[-1, -1])),
        "theta": theta,
        "psi_at_root": psi(theta),
    }


def km_functional_naive(time, event, weights, tau: float, rmst: bool) -> float:
    """Weighted Kaplan-Meier ``S(tau)`` (``rmst=False``) or ``int_0^tau S`` by a plain loop
    over the distinct times (at risk: time >= t; events at t)."""
    s, area, prev = 1.0, 0.0, 0.0
    for t in sorted(set(time.tolist())):
        if t > tau:
            break
        area += s * (t - prev)
        at_risk = weights[time >= t].sum()
        died = weights[(time == t) & (event == 1)].sum()
        s *= 1.0 - died / at_risk
        prev = t
    area += s * (tau - prev)
    return area if rmst else s


def iptw_km_naive(time, event, treatment, X, tau: float, rmst: bool, estimand: str):
    """IPTW Kaplan-Meier difference (treated - control) and its two influence-function SEs
    by numerical differentiation of the stacked estimating equations.

    ``X`` (n, p) holds an intercept column.  The logistic MLE solves
    ``U(gamma) = sum x_i (a_i - expit(x_i gamma)) = 0`` (Newton).  Unstabilized weights
    (``1 / e``, ``1 / (1 - e)``; ATT ``1``, ``e / (1 - e)``).  With the weights fixed,
    ``phi_i = w_i d theta / d w_i`` (central differences, one patient at a time); with the
    PS estimated, ``phi_i + (d theta / d gamma)' (-dU / d gamma)^{-1} x_i (a_i - e_i)``
    (both derivatives by central differences).  Returns ``(theta, se_fixed_ps, se_ps)``.
    """
    a = treatment.astype(float)

    def prob(g):
        return 1.0 / (1.0 + np.exp(-(X @ g)))

    gamma = np.zeros(X.shape[1])
    for _ in range(100):
        p = prob(gamma)
        step = np.linalg.solve((X * (p * (1 - p))[:, None]).T @ X, X.T @ (a - p))
        gamma += step
        if np.abs(step).max() < 1e-13:
            break

    def weights(g):
        p = prob(g)
        if estimand == "ATE":
            return np.where(a == 1, 1.0 / p, 1.0 / (1.0 - p))
        return np.where(a == 1, 1.0, p / (1.0 - p))

    def theta(w):
        one, zero = a == 1, a == 0
        return km_functional_naive(time[one], event[one], w[one], tau, rmst) - (
            km_functional_naive(time[zero], event[zero], w[zero], tau, rmst)
        )

    w = weights(gamma)
    phi = np.empty(a.size)
    for i in range(a.size):
        h = 1e-6 * w[i]
        up, down = w.copy(), w.copy()
        up[i] += h
        down[i] -= h
        phi[i] = w[i] * (theta(up) - theta(down)) / (2 * h)
    p = X.shape[1]
    d_theta = np.empty(p)
    minus_du = np.empty((p, p))
    for j in range(p):
        step = np.zeros(p)
        step[j] = 1e-6
        d_theta[j] = (theta(weights(gamma + step)) - theta(weights(gamma - step))) / 2e-6
        du_up = X.T @ (a - prob(gamma + step))
        du_down = X.T @ (a - prob(gamma - step))
        minus_du[:, j] = -(du_up - du_down) / 2e-6
    psi = np.linalg.solve(minus_du, (X * (a - prob(gamma))[:, None]).T).T  # (n, p)
    total = phi + psi @ d_theta
    return theta(w), float(np.sqrt(phi @ phi)), float(np.sqrt(total @ total))


def matched_km_naive(time, event, pairs, tau: float, rmst: bool):
    """KM difference in a matched set and its pair-clustered SE by numerical differentiation:
    each pair's influence is ``d theta / d w`` of giving its two patients weight ``1 + h``.
    ``pairs`` is a list of (treated_row, control_row).  Returns ``(theta, se)``."""
    rows = np.array([r for pr in pairs for r in pr])
    arm = np.array([1, 0] * len(pairs))
    t, e = time[rows], event[rows]

    def theta(w):
        return km_functional_naive(t[arm == 1], e[arm == 1], w[arm == 1], tau, rmst) - (
            km_functional_naive(t[arm == 0], e[arm == 0], w[arm == 0], tau, rmst)
        )

    w = np.ones(rows.size)
    infl = np.empty(len(pairs))
    for k in range(len(pairs)):
        up, down = w.copy(), w.copy()
        up[2 * k : 2 * k + 2] += 1e-6
        down[2 * k : 2 * k + 2] -= 1e-6
        infl[k] = (theta(up) - theta(down)) / 2e-6
    return theta(w), float(np.sqrt(infl @ infl))


def iptw_weights_all_naive(ps, treatment, estimand: str, stabilized: bool) -> np.ndarray:
    """Weights of every estimand patient by patient (ATE, ATT, ATC, ATO, ATM).

    Treated / control: ATE 1/e, 1/(1-e); ATT 1, e/(1-e); ATC (1-e)/e, 1; ATO 1-e, e;
    ATM min(e, 1-e)/e, min(e, 1-e)/(1-e).  Stabilized: for ATE, ATT, ATC each arm whose
    weights are estimated (not the ATT's treated, not the ATC's controls) multiplied by
    its n_a / sum of its raw weights; for ATO and ATM everyone by n / sum of all raw
    weights.
    """
    formulas = {
        "ATE": (lambda e: 1.0 / e, lambda e: 1.0 / (1.0 - e)),
        "ATT": (lambda e: 1.0, lambda e: e / (1.0 - e)),
        "ATC": (lambda e: (1.0 - e) / e, lambda e: 1.0),
        "ATO": (lambda e: 1.0 - e, lambda e: e),
        "ATM": (lambda e: min(e, 1.0 - e) / e, lambda e: min(e, 1.0 - e) / (1.0 - e)),
    }
    treated_w, control_w = formulas[estimand]
    n = len(ps)
    arm = [int(treatment[i]) for i in range(n)]
    raw = [treated_w(float(ps[i])) if arm[i] else control_w(float(ps[i])) for i in range(n)]
    if not stabilized:
        return np.array(raw)
    fixed = {"ATT": 1, "ATC": 0}.get(estimand)  # the arm whose weights are 1 by definition
    out = []
    for i in range(n):
        if arm[i] == fixed:
            out.append(raw[i])
            continue
        common = estimand in ("ATO", "ATM")
        same = [j for j in range(n) if common or arm[j] == arm[i]]
        out.append(raw[i] * len(same) / sum(raw[j] for j in same))
    return np.array(out)


def gformula_naive(time, event, treatment, X, beta, tau: float, rmst: bool, population):
    """G-formula functional difference (treated - control) by loops, for a given Cox fit.

    ``beta`` = (treatment coefficient, covariate coefficients); Breslow's baseline
    hazard is summed event by event over explicit risk sets; each patient of
    ``population`` (boolean mask) gets ``S_i(t | a)``; RMST integrates the averaged step
    curve over a fine grid of its jump points.
    """
    n = len(time)
    lp = [float(X[i] @ beta[1:]) for i in range(n)]
    jumps = sorted({float(time[i]) for i in range(n) if event[i] == 1})
    cumhaz, h = [], 0.0
    for u in jumps:
        d = sum(1 for i in range(n) if event[i] == 1 and time[i] == u)
        r = sum(math.exp(lp[i] + beta[0] * treatment[i]) for i in range(n) if time[i] >= u)
        h += d / r
        cumhaz.append(h)

    def H(t):
        out = 0.0
        for u, c in zip(jumps, cumhaz, strict=True):
            if u <= t:
                out = c
        return out

    def mean_surv(t, arm):
        vals = [
            math.exp(-H(t) * math.exp(lp[i] + beta[0] * arm)) for i in range(n) if population[i]
        ]
        return sum(vals) / len(vals)

    def functional(arm):
        if not rmst:
            return mean_surv(tau, arm)
        knots = [0.0] + [u for u in jumps if u < tau] + [tau]
        return sum(
            mean_surv(knots[k], arm) * (knots[k + 1] - knots[k]) for k in range(len(knots) - 1)
        )

    return functional(1) - functional(0)


def logrank_z_naive(time, event, arm) -> float:
    """Signed log-rank z of arm 1 vs arm 0, by explicit risk sets at each event time."""
    time, event, arm = (list(map(float, v)) for v in (time, event, arm))
    oe = var = 0.0
    for t in sorted({ti for ti, ei in zip(time, event, strict=True) if ei}):
        at_risk = [i for i, ti in enumerate(time) if ti >= t]
        n = len(at_risk)
        n1 = sum(arm[i] for i in at_risk)
        dead = [i for i in at_risk if time[i] == t and event[i]]
        d = len(dead)
        d1 = sum(arm[i] for i in dead)
        oe += d1 - d * n1 / n
        if n > 1:
            var += d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1)
    return oe / math.sqrt(var) if var > 0 else math.nan


def rpsftm_naive(time, event, arm, t_on, cens, recensor, psi_range, n_grid, alpha, tol=1e-10):
    """RPSFTM psi_hat and its test-based interval by brute force: the log-rank z of
    U(psi) = T_off + exp(psi) T_on (re-censored at C min(1, exp(psi)) where ``recensor``,
    a bool or one per patient) on a fine grid, each sign change (z >= 0 positive) and
    each edge of {|z| <= z_crit} refined by plain bisection.  Returns (roots,
    (ci_low, ci_high))."""
    from statistics import NormalDist

    flags = [recensor] * len(time) if isinstance(recensor, bool) else list(recensor)

    def z_of(psi):
        f = math.exp(psi)
        u, e = [], []
        for ti, ei, oni, ci, rc in zip(time, event, t_on, cens, flags, strict=True):
            v, d = (ti - oni) + f * oni, ei
            if rc and v > ci * min(1.0, f):
                v, d = ci * min(1.0, f), 0
            u.append(v)
            e.append(d)
        return logrank_z_naive(u, e, arm)

    def bisect(pred, a, b):
        pa = pred(a)
        while b - a > tol:
            m = 0.5 * (a + b)
            if pred(m) == pa:
                a = m
            else:
                b = m
        return 0.5 * (a + b)

    lo, hi = psi_range
    grid = [lo + (hi - lo) * k / (n_grid - 1) for k in range(n_grid)]
    z = [z_of(p) for p in grid]
    roots = [
        bisect(lambda p: z_of(p) >= 0, grid[k], grid[k + 1])
        for k in range(n_grid - 1)
        if (z[k] >= 0) != (z[k + 1] >= 0)
    ]
    crit = NormalDist().inv_cdf(1 - alpha / 2)
    inside = [abs(v) <= crit for v in z]
    first = inside.index(True)
    last = n_grid - 1 - inside[::-1].index(True)
    within = lambda p: abs(z_of(p)) <= crit  # noqa: E731
    ci_low = bisect(within, grid[first - 1], grid[first]) if first > 0 else math.nan
    ci_high = bisect(within, grid[last], grid[last + 1]) if last < n_grid - 1 else math.nan
    return roots, (ci_low, ci_high)


def censoring_factor_naive(t, model, X, time, event, treatment, stabilized, i):
    """num_a(t-) / K_i(t-) of patient i by plain loops: Breslow cumulative hazard of the
    censoring Cox model with coefficients ``model.coef`` (every column of ``X`` kept),
    covariates centred within the model group, and the arm's Kaplan-Meier censoring
    survival as numerator (``stabilized``)."""
    n = len(time)
    g = int(model.group[i])
    members = [k for k in range(n) if model.group[k] == g]
    beta = [float(b) for b in model.coef[g]]
    q = len(beta)
    mean = [sum(X[k][j] for k in members) / len(members) for j in range(q)]

    def risk(k):
        return math.exp(sum(beta[j] * (X[k][j] - mean[j]) for j in range(q)))

    H = 0.0
    for s in sorted({time[k] for k in members if not event[k] and time[k] < t}):
        d = sum(1 for k in members if time[k] == s and not event[k])
        at = sum(risk(k) for k in members if time[k] >= s)
        H += d / at
    K = math.exp(-H * risk(i))
    num = 1.0
    if stabilized:
        arm = [k for k in range(n) if treatment[k] == treatment[i]]
        for s in sorted({time[k] for k in arm if not event[k] and time[k] < t}):
            d = sum(1 for k in arm if time[k] == s and not event[k])
            at = sum(1 for k in arm if time[k] >= s)
            num *= 1.0 - d / at
    return num / K


def ipcw_km_naive(time, event, treatment, w, factor, tau, rmst):
    """Per-arm KM functional with time-varying weights ``w[i] * factor(i, t)`` (loops).

    Returns (control, treated): S(tau) or the RMST up to tau (months).
    """
    n = len(time)
    out = []
    for arm in (0, 1):
        rows = [i for i in range(n) if treatment[i] == arm]
        s, prev_t, area = 1.0, 0.0, 0.0
        for t in sorted({time[i] for i in range(n) if event[i]}):
            if t > tau:
                break
            y = sum(w[i] * factor(i, t) for i in rows if time[i] >= t)
            d = sum(w[i] * factor(i, t) for i in rows if time[i] == t and event[i])
            area += s * (t - prev_t)
            if y > 0:
                s *= 1.0 - d / y
            prev_t = t
        area += s * (tau - prev_t)
        out.append(area if rmst else s)
    return tuple(out)


def iptw_binary_sandwich_naive(y, a, X, estimand: str, h: float = 1e-6):
    """PS-weighted arm proportions (p1, p0) and their M-estimation covariance, the slow
    obvious way: the stacked equations (logistic PS score, then one weighted-mean equation
    per arm) written per patient, their Jacobian by central differences and the meat by
    summing outer products.  Weights per patient by :func:`_ps_weight_naive` (no
    stabilisation)."""
    n, p = X.shape
    beta = _logistic_ml_naive(X, a)

    def psi(theta):
        b, p1, p0 = theta[:p], theta[p], theta[p + 1]
        rows = []
        for i in range(n):
            e = 1.0 / (1.0 + math.exp(-float(X[i] @ b)))
            w = _ps_weight_naive(e, int(a[i]), estimand)
            rows.append(
                [
                    *(X[i] * (a[i] - e)),
                    a[i] * w * (y[i] - p1),
                    (1 - a[i]) * w * (y[i] - p0),
                ]
            )
        return np.array(rows)

    e = 1.0 / (1.0 + np.exp(-(X @ beta)))
    w = np.array([_ps_weight_naive(e[i], int(a[i]), estimand) for i in range(n)])
    p1 = sum(w[i] * y[i] for i in range(n) if a[i]) / sum(w[i] for i in range(n) if a[i])
    p0 = sum(w[i] * y[i] for i in range(n) if not a[i]) / sum(w[i] for i in range(n) if not a[i])
    theta = np.array([*beta, p1, p0])
    J = np.empty((p + 2, p + 2))
    for k in range(p + 2):
        d = np.zeros(p + 2)
        d[k] = h
        J[:, k] = (psi(theta + d).sum(axis=0) - psi(theta - d).sum(axis=0)) / (2 * h)
    rows = psi(theta)
    Jinv = np.linalg.inv(J)
    V = Jinv @ (rows.T @ rows) @ Jinv.T
    return p1, p0, V[p:, p:]


def tv_weighted_km_naive(stop, event, weight, horizon: float):
    """Kaplan-Meier with time-varying weights, by brute force.

    ``weight(i, t)`` is row ``i``'s weight at time ``t``.  At every distinct event time
    ``t <= horizon``: ``Y = sum_{stop_i >= t} weight(i, t)``, ``D = sum_{stop_i = t, event_i}
    weight(i, t)``, ``S *= 1 - D / Y``.  Returns (times, survival) as lists.
    """
    times = sorted({float(stop[i]) for i in range(len(stop)) if event[i] and stop[i] <= horizon})
    s, out = 1.0, []
    for t in times:
        y = sum(weight(i, t) for i in range(len(stop)) if stop[i] >= t)
        d = sum(weight(i, t) for i in range(len(stop)) if stop[i] == t and event[i])
        s *= 1.0 - d / y
        out.append(s)
    return times, out


def switch_death_time_naive(scale, shape, lp, gamma, switch, e, t_max=1e4):
    """Death time whose cumulative hazard ``int_0^T (k/lam)(u/lam)^(k-1) e^(lp + gamma
    1{u >= switch}) du`` equals ``e``, found by bisection on the closed-form integral."""

    def cumhaz(t):
        h = (min(t, switch) / scale) ** shape * math.exp(lp)
        if t > switch:
            h += ((t / scale) ** shape - (switch / scale) ** shape) * math.exp(lp + gamma)
        return h

    lo, hi = 0.0, t_max
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cumhaz(mid) < e else (lo, mid)
    return 0.5 * (lo + hi)
