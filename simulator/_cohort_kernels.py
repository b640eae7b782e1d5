"""numba kernels of the cohort generator (private; see :mod:`simulator.generate`).

Random draws: every chunk of ``CHUNK`` patients owns three ``numpy.random.Generator``
streams (normals, uniforms, exponentials).  Patient ``i`` of a chunk draws, in order,
``N_NORMAL`` normals, ``N_UNIFORM`` uniforms and ``N_EXPON`` standard exponentials from
those streams, whatever the scenario, so the layout is fixed and a NumPy reference that
draws ``(m, k)`` blocks reproduces the kernel exactly (tests/naive.py).

Crossover at progression (``scenario.crossover``; off: ``X[X_ON] == 0``) draws one
uniform per patient from a fourth stream of its own, so a scenario without crossover
draws exactly what it always drew.

Scalar parameters travel in one float64 vector ``S`` indexed by the constants below;
coefficient vectors/matrices are indexed by :data:`simulator.features.FEATURES`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .features import N_FEATURES

CHUNK = 16_384
LAYOUT_VERSION = 1
N_NORMAL, N_UNIFORM, N_EXPON = 5, 9, 6

# ---- indices into the scalar parameter vector S ------------------------------------
(
    S_AGE_Z0,
    S_AGE_INV_DZ,
    S_ECOG_T1,
    S_ECOG_T2,
    S_SITES_T1,
    S_SITES_T2,
    S_VISC_C,
    S_PAT_LUNG,
    S_PAT_LIVER,
    S_BONE_Q,
    S_DENOVO,
    S_ACADEMIC,
    S_DFI_SCALE,
    S_DFI_INV_SHAPE,
    S_MISS_CONST,
    S_MISS_A0,
    S_MISS_AGE,
    S_MISS_ACAD,
    S_MISS_ECOG,
    S_T_INTERCEPT,
    S_T_FRAIL,
    S_PS_LO,
    S_PS_HI,
    S_ACCRUAL,
    S_CUTOFF,
    S_LOST_RATE,
    S_LOST_HR_TRT,
    S_NEXT_RATE,
    S_NEXT_HR_TRT,
    S_VISIT,
    S_JITTER,
    N_SCALARS,
) = range(32)
# outcome parameter matrix om (3 transitions x 5): scale, 1/shape, gamma, frailty log-HR, shape==1
O_SCALE, O_INV_SHAPE, O_GAMMA, O_FRAIL, O_UNIT_SHAPE = range(5)

# crossover scalars X: on (1/0), crossing arm (0/1), switching log-odds intercept, and the
# switcher's post-progression time stretch post_progression_hr^(-1/shape_12)
X_ON, X_ARM, X_INTERCEPT, X_STRETCH, N_X = range(5)

# float output rows and int8 output rows
(
    F_AGE,
    F_DFI,
    F_PS,
    F_PFS,
    F_OS,
    F_ENTRY,
    F_FRAILTY,
    F_PFS0,
    F_PFS1,
    F_OS0,
    F_OS1,
    F_PROG,
    F_XOVER,
    N_FLOAT_OUT,
) = range(14)
(
    I_TREATED,
    I_PFS_EVENT,
    I_OS_EVENT,
    I_ECOG_OBS,
    I_ECOG_TRUE,
    I_AGE_GROUP,
    I_VISCERAL,
    I_LUNG,
    I_LIVER,
    I_BONE,
    I_SITES,
    I_DENOVO,
    I_ACADEMIC,
    I_RACE,
    I_PFS_REASON,
    I_OS_REASON,
    I_XOVER,
    N_INT_OUT,
) = range(18)
# covariate record (float64 vector per patient, internal)
(
    C_AGE,
    C_AGE_GROUP,
    C_ECOG,
    C_ECOG_OBS,
    C_VISCERAL,
    C_LUNG,
    C_LIVER,
    C_BONE,
    C_SITES,
    C_DENOVO,
    C_DFI,
    C_ACADEMIC,
    C_RACE,
    C_FRAILTY,
    N_COV,
) = range(15)
# reasons
R_PROGRESSION, R_DEATH, R_ADMIN, R_LOST, R_NEXT = range(5)


@njit(cache=True)
def _expit(x):
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True)
def _age_from_z(z, table, z0, inv_dz):
    x = (z - z0) * inv_dz
    last = table.size - 1
    if x <= 0.0:
        return table[0]
    if x >= last:
        return table[last]
    j = int(x)
    f = x - j
    return table[j] + f * (table[j + 1] - table[j])


@njit(cache=True)
def _draw(gn, gu, ge, zn, uu, ee):
    for k in range(N_NORMAL):
        zn[k] = gn.standard_normal()
    for k in range(N_UNIFORM):
        uu[k] = gu.random()
    for k in range(N_EXPON):
        ee[k] = ge.standard_exponential()


@njit(cache=True)
def _visceral_pattern(u, sites, S):
    """(lung, liver, sites) from the pattern uniform; 'both' needs >= 2 sites."""
    p_lung, p_liver = S[S_PAT_LUNG], S[S_PAT_LIVER]
    if u < p_lung:
        return 1, 0, sites
    if u < p_lung + p_liver:
        return 0, 1, sites
    if sites >= 2:
        return 1, 1, sites
    single = p_lung + p_liver
    if single <= 0.0:
        return 1, 1, 2
    r = (u - single) / (1.0 - single)
    if r < p_lung / single:
        return 1, 0, sites
    return 0, 1, sites


@njit(cache=True)
def _covariates(zn, uu, ee, age_table, chol, race_cum, S, cov):
    """Decode one patient's draws into the covariate record ``cov`` (length N_COV)."""
    za = chol[0, 0] * zn[0]
    ze = chol[1, 0] * zn[0] + chol[1, 1] * zn[1]
    zs = chol[2, 0] * zn[0] + chol[2, 1] * zn[1] + chol[2, 2] * zn[2]
    zv = chol[3, 0] * zn[0] + chol[3, 1] * zn[1] + chol[3, 2] * zn[2] + chol[3, 3] * zn[3]
    age = _age_from_z(za, age_table, S[S_AGE_Z0], S[S_AGE_INV_DZ])
    ecog = 0 if ze <= S[S_ECOG_T1] else (1 if ze <= S[S_ECOG_T2] else 2)
    sites = 1 if zs <= S[S_SITES_T1] else (2 if zs <= S[S_SITES_T2] else 3)
    visceral = 1 if zv > S[S_VISC_C] else 0
    lung, liver = 0, 0
    if visceral == 1:
        lung, liver, sites = _visceral_pattern(uu[3], sites, S)
    bone = 1 if (visceral == 0 and sites == 1 and uu[4] < S[S_BONE_Q]) else 0
    de_novo = 1 if uu[2] < S[S_DENOVO] else 0
    dfi = math.nan if de_novo == 1 else S[S_DFI_SCALE] * ee[0] ** S[S_DFI_INV_SHAPE]
    academic = 1 if uu[1] < S[S_ACADEMIC] else 0
    race = 0
    while race < race_cum.size - 1 and uu[0] >= race_cum[race]:
        race += 1
    if S[S_MISS_CONST] >= 0.0:
        p_miss = S[S_MISS_CONST]
    else:
        lp = S[S_MISS_A0] + S[S_MISS_AGE] * ((age - 65.0) / 10.0)
        lp += S[S_MISS_ACAD] * academic + S[S_MISS_ECOG] * ecog
        p_miss = _expit(lp)
    cov[C_AGE] = age
    cov[C_AGE_GROUP] = 0 if age < 50.0 else (1 if age < 65.0 else (2 if age < 75.0 else 3))
    cov[C_ECOG] = ecog
    cov[C_ECOG_OBS] = 3 if uu[5] < p_miss else ecog
    cov[C_VISCERAL] = visceral
    cov[C_LUNG] = lung
    cov[C_LIVER] = liver
    cov[C_BONE] = bone
    cov[C_SITES] = sites
    cov[C_DENOVO] = de_novo
    cov[C_DFI] = dfi
    cov[C_ACADEMIC] = academic
    cov[C_RACE] = race
    cov[C_FRAILTY] = zn[4]


@njit(cache=True)
def _features(cov, F):
    """Fill the feature vector F (order of simulator.features.FEATURES)."""
    g = cov[C_AGE_GROUP]
    e = cov[C_ECOG]
    eo = cov[C_ECOG_OBS]
    r = cov[C_RACE]
    F[0] = (cov[C_AGE] - 65.0) / 10.0
    F[1] = 1.0 if g == 1 else 0.0
    F[2] = 1.0 if g == 2 else 0.0
    F[3] = 1.0 if g == 3 else 0.0
    F[4] = 1.0 if e == 1 else 0.0
    F[5] = 1.0 if e == 2 else 0.0
    F[6] = 1.0 if eo == 1 else 0.0
    F[7] = 1.0 if eo == 2 else 0.0
    F[8] = 1.0 if eo == 3 else 0.0
    F[9] = cov[C_VISCERAL]
    F[10] = cov[C_LUNG]
    F[11] = cov[C_LIVER]
    F[12] = cov[C_BONE]
    F[13] = cov[C_SITES]
    F[14] = cov[C_DENOVO]
    F[15] = 1.0 if (cov[C_DENOVO] == 0 and cov[C_DFI] < 2.0) else 0.0
    F[16] = cov[C_ACADEMIC]
    F[17] = 1.0 if r == 1 else 0.0
    F[18] = 1.0 if r == 2 else 0.0
    F[19] = 1.0 if r == 3 else 0.0
    F[20] = 1.0 if r == 4 else 0.0
    F[21] = 1.0 if r == 5 else 0.0


@njit(cache=True)
def _dot(coef, nz, F):
    """Sum of coef[k] * F[k] over the non-zero indices ``nz`` (ascending)."""
    s = 0.0
    for k in nz:
        s += coef[k] * F[k]
    return s


@njit(cache=True)
def _linear_predictors(F, frailty, W, nz, om, S, lp):
    """Treatment logit and the three transitions' linear predictors in one pass.

    W (4, N_FEATURES) holds the treatment coefficients then the three transitions'; ``nz``
    the union of their non-zero columns (ascending).  Four independent accumulators run
    in one loop; each adds its terms in ascending feature order, exactly like a dense
    dot product (zero coefficients add exact zeros).  Returns the true propensity score
    and fills lp (3,).
    """
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for k in nz:
        f = F[k]
        s0 += W[0, k] * f
        s1 += W[1, k] * f
        s2 += W[2, k] * f
        s3 += W[3, k] * f
    lp[0] = s1 + om[0, O_FRAIL] * frailty
    lp[1] = s2 + om[1, O_FRAIL] * frailty
    lp[2] = s3 + om[2, O_FRAIL] * frailty
    logit = S[S_T_INTERCEPT] + s0 + S[S_T_FRAIL] * frailty
    return S[S_PS_LO] + (S[S_PS_HI] - S[S_PS_LO]) * _expit(logit)


@njit(cache=True)
def _transition_time(e, lp, a, om, k):
    """Weibull PH inverse transform: (E / (scale * exp(lp + gamma * a)))^(1/shape)."""
    x = e / (om[k, O_SCALE] * math.exp(lp + om[k, O_GAMMA] * a))
    if om[k, O_UNIT_SHAPE] == 1.0:
        return x
    return x ** om[k, O_INV_SHAPE]


@njit(cache=True)
def _potential(e01, e02, e12, lp, a, om):
    """(rwPFS, OS, progressed-first, progression time) under treatment ``a``.

    e01, e02, e12 are the transitions' standard exponentials; lp (3,) their covariate
    linear predictors.
    """
    t01 = _transition_time(e01, lp[0], a, om, 0)
    t02 = _transition_time(e02, lp[1], a, om, 1)
    if t01 < t02:
        return t01, t01 + _transition_time(e12, lp[2], a, om, 2), True, t01
    return t02, t02, False, t01


@njit(cache=True)
def _recorded_progression(t_prog, u_visit, S):
    """First assessment visit at or after t_prog (visits k*interval + offset, k >= 1)."""
    interval = S[S_VISIT]
    if interval <= 0.0:
        return t_prog
    offset = (u_visit - 0.5) * 2.0 * S[S_JITTER]
    k = math.ceil((t_prog - offset) / interval)
    if k < 1.0:
        k = 1.0
    return k * interval + offset


@njit(cache=True)
def _observe(
    a, death, progressed, t_prog, uu, ee, F, lost_b, nz_lost, next_b, nz_next, S, out_f, out_i, i
):
    """Apply entry, cutoff, loss to follow-up and next-therapy censoring for row i.

    Covariate dependence (``lost_b`` / ``next_b`` on the non-zero columns ``nz_lost`` /
    ``nz_next``) only rescales the rate of the row's own exponential draw: no extra
    random numbers, and none of the arithmetic when ``nz_*`` is empty.
    """
    entry = uu[7] * S[S_ACCRUAL]
    c_admin = S[S_CUTOFF] - entry
    rate = S[S_LOST_RATE]
    c_lost = math.inf
    if rate > 0.0:
        if nz_lost.size > 0:
            rate *= math.exp(_dot(lost_b, nz_lost, F))
        if a == 1:
            rate *= S[S_LOST_HR_TRT]
        c_lost = ee[4] / rate
    c_next = math.inf
    if S[S_NEXT_RATE] > 0.0:
        next_rate = S[S_NEXT_RATE] * (S[S_NEXT_HR_TRT] if a == 1 else 1.0)
        if nz_next.size > 0:
            next_rate *= math.exp(_dot(next_b, nz_next, F))
        c_next = ee[5] / next_rate
    c_os, os_reason = (c_admin, R_ADMIN) if c_admin <= c_lost else (c_lost, R_LOST)
    if death <= c_os:
        out_f[F_OS, i], out_i[I_OS_EVENT, i], out_i[I_OS_REASON, i] = death, 1, R_DEATH
    else:
        out_f[F_OS, i], out_i[I_OS_EVENT, i], out_i[I_OS_REASON, i] = c_os, 0, os_reason
    t_event, reason = death, R_DEATH
    if progressed:
        t_rec = _recorded_progression(t_prog, uu[8], S)
        if t_rec < death:
            t_event, reason = t_rec, R_PROGRESSION
    c_pfs, c_reason = (c_next, R_NEXT) if c_next < c_os else (c_os, os_reason)
    if t_event <= c_pfs:
        out_f[F_PFS, i], out_i[I_PFS_EVENT, i], out_i[I_PFS_REASON, i] = t_event, 1, reason
    else:
        out_f[F_PFS, i], out_i[I_PFS_EVENT, i], out_i[I_PFS_REASON, i] = c_pfs, 0, c_reason
    out_f[F_ENTRY, i] = entry


@njit(cache=True)
def _store_covariates(cov, out_f, out_i, i):
    out_f[F_AGE, i] = cov[C_AGE]
    out_f[F_DFI, i] = cov[C_DFI]
    out_f[F_FRAILTY, i] = cov[C_FRAILTY]
    out_i[I_ECOG_OBS, i] = np.int8(cov[C_ECOG_OBS])
    out_i[I_ECOG_TRUE, i] = np.int8(cov[C_ECOG])
    out_i[I_AGE_GROUP, i] = np.int8(cov[C_AGE_GROUP])
    out_i[I_VISCERAL, i] = np.int8(cov[C_VISCERAL])
    out_i[I_LUNG, i] = np.int8(cov[C_LUNG])
    out_i[I_LIVER, i] = np.int8(cov[C_LIVER])
    out_i[I_BONE, i] = np.int8(cov[C_BONE])
    out_i[I_SITES, i] = np.int8(cov[C_SITES])
    out_i[I_DENOVO, i] = np.int8(cov[C_DENOVO])
    out_i[I_ACADEMIC, i] = np.int8(cov[C_ACADEMIC])
    out_i[I_RACE, i] = np.int8(cov[C_RACE])


@njit(cache=True)
def _draw_block(gn, gu, ge, gx, m, crossover):
    """A chunk's random numbers, patient by patient as :func:`_draw` takes them: normals
    (m, N_NORMAL), uniforms (m, N_UNIFORM), exponentials (m, N_EXPON) and the crossover
    uniforms (m,) (none without crossover).  numpy's ``standard_normal((m, N_NORMAL))``
    etc. on the same generators give the same numbers bit for bit."""
    zn, uu, ee = np.empty((m, N_NORMAL)), np.empty((m, N_UNIFORM)), np.empty((m, N_EXPON))
    for i in range(m):
        _draw(gn, gu, ge, zn[i], uu[i], ee[i])
    ux = np.empty(m if crossover else 0)
    for i in range(ux.size):
        ux[i] = gx.random()
    return zn, uu, ee, ux


@njit(cache=True)
def _cohort_chunk(
    zn_all,
    uu_all,
    ee_all,
    ux_all,
    start,
    stop,
    age_table,
    chol,
    race_cum,
    S,
    W,
    nz,
    om,
    lost_b,
    nz_lost,
    next_b,
    nz_next,
    X,
    x_b,
    nz_x,
    potential,
    out_f,
    out_i,
):
    """Patients ``start .. stop - 1`` from their random numbers (rows ``i - start`` of
    the blocks of :func:`_draw_block`; ``ux_all`` is read only with crossover)."""
    cov, F, lp = np.empty(N_COV), np.empty(N_FEATURES), np.empty(3)
    crossover = X[X_ON] > 0.0
    for i in range(start, stop):
        zn, uu, ee = zn_all[i - start], uu_all[i - start], ee_all[i - start]
        _covariates(zn, uu, ee, age_table, chol, race_cum, S, cov)
        _features(cov, F)
        ps = _linear_predictors(F, cov[C_FRAILTY], W, nz, om, S, lp)
        a = 1 if uu[6] < ps else 0
        _, death, progressed, t_prog = _potential(ee[1], ee[2], ee[3], lp, float(a), om)
        switched = False
        if crossover:
            u_x = ux_all[i - start]  # one draw per patient, whatever happens to them
            if progressed and a == X[X_ARM]:
                if u_x < _expit(X[X_INTERCEPT] + _dot(x_b, nz_x, F)):
                    switched = True
                    death = t_prog + (death - t_prog) * X[X_STRETCH]
        if potential:
            p0, o0, _, _ = _potential(ee[1], ee[2], ee[3], lp, 0.0, om)
            p1, o1, _, _ = _potential(ee[1], ee[2], ee[3], lp, 1.0, om)
            out_f[F_PFS0, i], out_f[F_OS0, i] = p0, o0
            out_f[F_PFS1, i], out_f[F_OS1, i] = p1, o1
        _store_covariates(cov, out_f, out_i, i)
        out_f[F_PS, i] = ps
        out_i[I_TREATED, i] = a
        _observe(
            a,
            death,
            progressed,
            t_prog,
            uu,
            ee,
            F,
            lost_b,
            nz_lost,
            next_b,
            nz_next,
            S,
            out_f,
            out_i,
            i,
        )
        if crossover and progressed and t_prog < out_f[F_OS, i]:  # progression observed
            out_f[F_PROG, i] = t_prog
            if switched:
                out_f[F_XOVER, i] = t_prog
                out_i[I_XOVER, i] = 1


@njit(cache=True, parallel=True)
def _cohort(
    gens_n,
    gens_u,
    gens_e,
    n,
    age_table,
    chol,
    race_cum,
    S,
    W,
    nz,
    om,
    lost_b,
    nz_lost,
    next_b,
    nz_next,
    gens_x,
    X,
    x_b,
    nz_x,
    potential,
    out_f,
    out_i,
):
    """Fill ``out_f`` (N_FLOAT_OUT, n) and ``out_i`` (N_INT_OUT, n) chunk by chunk."""
    for cc in prange(len(gens_n)):
        c = np.int64(cc)
        start = c * CHUNK
        stop = min(n, start + CHUNK)
        zn, uu, ee, ux = _draw_block(
            gens_n[c], gens_u[c], gens_e[c], gens_x[c], stop - start, X[X_ON] > 0.0
        )
        _cohort_chunk(
            zn,
            uu,
            ee,
            ux,
            start,
            stop,
            age_table,
            chol,
            race_cum,
            S,
            W,
            nz,
            om,
            lost_b,
            nz_lost,
            next_b,
            nz_next,
            X,
            x_b,
            nz_x,
            potential,
            out_f,
            out_i,
        )


# ---- calibration population ----------------------------------------------------------
@njit(cache=True)
def _population_chunk(
    gn,
    gu,
    ge,
    start,
    stop,
    age_table,
    chol,
    race_cum,
    S,
    W,
    nz,
    om,
    feats,
    u_treat,
    frailty,
    lp,
    ee_out,
    c_admin,
):
    zn, uu, ee = np.empty(N_NORMAL), np.empty(N_UNIFORM), np.empty(N_EXPON)
    cov, F, lpi = np.empty(N_COV), np.empty(N_FEATURES), np.empty(3)
    for i in range(start, stop):
        _draw(gn, gu, ge, zn, uu, ee)
        _covariates(zn, uu, ee, age_table, chol, race_cum, S, cov)
        _features(cov, F)
        frailty[i] = cov[C_FRAILTY]
        _linear_predictors(F, cov[C_FRAILTY], W, nz, om, S, lpi)
        for k in range(N_FEATURES):
            feats[i, k] = F[k]
        for k in range(3):
            lp[k, i] = lpi[k]
            ee_out[k, i] = ee[k + 1]
        u_treat[i] = uu[6]
        c_admin[i] = S[S_CUTOFF] - uu[7] * S[S_ACCRUAL]


@njit(cache=True, parallel=True)
def _population(
    gens_n,
    gens_u,
    gens_e,
    n,
    age_table,
    chol,
    race_cum,
    S,
    W,
    nz,
    om,
    feats,
    u_treat,
    frailty,
    lp,
    ee_out,
    c_admin,
):
    """The pieces calibration needs, drawn exactly as the cohort kernel draws them.

    feats (n, N_FEATURES) float32-or-64 features, u_treat (n,), frailty (n,),
    lp (3, n) covariate linear predictors (no treatment term), ee_out (3, n) the
    transition exponentials, c_admin (n,) administrative censoring time (months).
    """
    for cc in prange(len(gens_n)):
        c = np.int64(cc)
        start = c * CHUNK
        stop = min(n, start + CHUNK)
        _population_chunk(
            gens_n[c],
            gens_u[c],
            gens_e[c],
            start,
            stop,
            age_table,
            chol,
            race_cum,
            S,
            W,
            nz,
            om,
            feats,
            u_treat,
            frailty,
            lp,
            ee_out,
            c_admin,
        )


@njit(cache=True, parallel=True)
def _potential_times(lp, ee, a, om, pfs, os_):
    """Uncensored potential rwPFS and OS (months) for every patient under arm ``a``."""
    for i in prange(pfs.size):
        p, o, _, _ = _potential(ee[0, i], ee[1, i], ee[2, i], lp[:, i], a, om)
        pfs[i] = p
        os_[i] = o


@njit(cache=True, parallel=True)
def _death_first_share(lp, ee, om):
    """Share of control-arm rwPFS events that are deaths (no censoring)."""
    n = lp.shape[1]
    deaths = 0
    for i in prange(n):
        t01 = _transition_time(ee[0, i], lp[0, i], 0.0, om, 0)
        t02 = _transition_time(ee[1, i], lp[1, i], 0.0, om, 1)
        if t02 <= t01:
            deaths += 1
    return deaths / n


@njit(cache=True, parallel=True)
def _logistic_moments(feats, cols, beta, intercept, offset, lo, hi):
    """Sum of p, p * x and p(1-p) x x' over the population, for the features ``cols``.

    p = lo + (hi - lo) * expit(intercept + x'beta + offset).  Returns (g, H) with the
    intercept as column 0; H holds the derivative of g with respect to the coefficients.
    """
    n = feats.shape[0]
    k = cols.size + 1
    n_chunks = (n + CHUNK - 1) // CHUNK
    gs = np.zeros((n_chunks, k))
    hs = np.zeros((n_chunks, k, k))
    for c in prange(n_chunks):
        x = np.empty(k)
        x[0] = 1.0
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            eta = intercept + offset[i]
            for j in range(cols.size):
                x[j + 1] = feats[i, cols[j]]
                eta += beta[j] * x[j + 1]
            q = _expit(eta)
            p = lo + (hi - lo) * q
            w = (hi - lo) * q * (1.0 - q)
            for j in range(k):
                gs[c, j] += p * x[j]
                for m in range(k):
                    hs[c, j, m] += w * x[j] * x[m]
    g = np.zeros(k)
    h = np.zeros((k, k))
    for c in range(n_chunks):
        g += gs[c]
        h += hs[c]
    return g, h
