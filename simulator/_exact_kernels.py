"""numba kernels of the exact truth engine (private; see :mod:`simulator.exact`).

The covariate sample is decoded with the cohort kernel's own functions, so it follows the
scenario's copula exactly; the outcome kernels evaluate each patient's closed-form
illness-death quantities on a time grid and accumulate them per (group, population) row.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import _cohort_kernels as K
from .features import N_FEATURES


@njit(cache=True, parallel=True)
def _decode(
    zn, uu, ee, age_table, chol, race_cum, S, W, nz, om, lost_b, nz_lost, feats, lp, ps, lost
):
    """Covariates of every sample point, as the cohort kernel decodes its draws.

    zn (n, N_NORMAL), uu (n, N_UNIFORM), ee (n, N_EXPON) are the point's normals, uniforms
    and exponentials.  Fills feats (n, N_FEATURES), lp (3, n) the transitions' linear
    predictors (frailty included, no treatment term), ps (n,) the true propensity score
    and lost (n,) the loss-to-follow-up linear predictor.
    """
    n = zn.shape[0]
    for i in prange(n):
        cov = np.empty(K.N_COV)
        F = np.empty(N_FEATURES)
        lpi = np.empty(3)
        K._covariates(zn[i], uu[i], ee[i], age_table, chol, race_cum, S, cov)
        K._features(cov, F)
        ps[i] = K._linear_predictors(F, cov[K.C_FRAILTY], W, nz, om, S, lpi)
        for k in range(N_FEATURES):
            feats[i, k] = F[k]
        for k in range(3):
            lp[k, i] = lpi[k]
        lost[i] = K._dot(lost_b, nz_lost, F) if nz_lost.size > 0 else 0.0


# ---- a vectorisable exp ---------------------------------------------------------------------
# exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 (Cody-Waite, fdlibm's split of
# ln 2), exp(r) by its Taylor polynomial of degree 13 (|r| <= 0.347: truncation 4e-18
# relative), 2^n assembled in the exponent bits.  Branch-free, so LLVM vectorises the loop
# (numba's math.exp is a scalar libm call: most of the engine's time).  Within 2 ulp of
# libm (tested); arguments below -708 give 0 (libm: subnormals below 3e-308).
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SHIFT = 6755399441055744.0  # 1.5 * 2^52: adding it rounds to an integer in the low bits
_SHIFT_BITS = 0x4338000000000000
_EXP_LO = -708.0
_INV_FACT = np.array([1.0 / math.factorial(j) for j in range(14)])


@njit(cache=True, fastmath={"contract"})
def _exp_into(x, out, work):
    """out[k] = exp(x[k]) for k < x.size (x, out, work float64 arrays of that size at
    least; out may be x; work is scratch).  The polynomial is evaluated with fused
    multiply-adds (``contract``: 1.8x faster than separate roundings, same accuracy)."""
    m = x.size
    c = _INV_FACT
    c0, c1, c2, c3, c4, c5, c6 = c[0], c[1], c[2], c[3], c[4], c[5], c[6]
    c7, c8, c9, c10, c11, c12, c13 = c[7], c[8], c[9], c[10], c[11], c[12], c[13]
    for k in range(m):
        xk = max(x[k], _EXP_LO)
        kd = xk * _LOG2E + _SHIFT
        work[k] = kd
        n = kd - _SHIFT
        r = (xk - n * _LN2_HI) - n * _LN2_LO
        p = c13 * r + c12
        p = p * r + c11
        p = p * r + c10
        p = p * r + c9
        p = p * r + c8
        p = p * r + c7
        p = p * r + c6
        p = p * r + c5
        p = p * r + c4
        p = p * r + c3
        p = p * r + c2
        p = p * r + c1
        p = p * r + c0
        out[k] = p if x[k] >= _EXP_LO else 0.0
    bits = work[:m].view(np.int64)
    for k in range(m):
        bits[k] = (bits[k] - _SHIFT_BITS + 1023) << 52
    for k in range(m):
        out[k] *= work[k]


N_EXACT_CELLS = 8
# graded substitution s = h v^GRADE on the kernel's cell at s = 0, where exp(-c s^nu) has
# an s^nu singularity (s = h v^(1/nu) left a v^(1/nu - 1) Jacobian, relative error 2e-4 of
# the cell average for nu = 0.7)
GRADE = 4
_GX4 = np.array([-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526])
_GW4 = np.array([0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538])


@njit(cache=True)
def _cubic_weights(x, out):
    """Lagrange weights of the 4 nodes -1, 0, 1, 2 at position x (in [-1, 2))."""
    out[0] = -x * (x - 1.0) * (x - 2.0) / 6.0
    out[1] = (x + 1.0) * (x - 1.0) * (x - 2.0) / 2.0
    out[2] = -(x + 1.0) * x * (x - 2.0) / 2.0
    out[3] = (x + 1.0) * x * (x - 1.0) / 6.0


@njit(cache=True)
def _progression_mass(c01, c02, s0, qr, ew, eu, ewt, mass, want_share=True):
    """Progression mass of each cell (G - 1,) into ``mass``; returns the total mass of
    deaths before progression over the grid (when ``want_share``; else 0).

    s0 (G,) the state-0 survival at the nodes; the cell's exits s0_k - s0_{k+1} times the
    progression share h01/(h01+h02) averaged at two Gauss points: with
    qr[0|1, k] = nu02 t^(nu02-1) / (nu01 t^(nu01-1)) there (Engine.powers) and
    rho = c02 / c01, the share at a point is 1 / (1 + rho qr), and the two are averaged
    as (a + b) / (2 a b) (one division); the first cells, where h01 ~ u^(nu01-1) is not
    smooth at 0, integrated in w = u^nu01 (4-point Gauss per cell: nodes ew (cells, 4),
    eu = u^nu02 there, weights ewt; Engine.powers).  The deaths are the exits minus the
    progressions.
    """
    G = s0.size
    if c01 == 0.0:  # no progression at all (and no branch in the loop: it vectorises)
        for k in range(G - 1):
            mass[k] = 0.0
    else:
        rho = c02 / c01
        qa = qr[0]
        qb = qr[1]
        for k in range(G - 1):
            a = 1.0 + rho * qa[k]
            b = 1.0 + rho * qb[k]
            mass[k] = (0.5 * (a + b) / (a * b)) * (s0[k] - s0[k + 1])
        for k in range(ew.shape[0]):
            m0 = 0.0
            for m in range(4):
                m0 += ewt[k, m] * c01 * math.exp(-c01 * ew[k, m] - c02 * eu[k, m])
            mass[k] = m0
    if not want_share:
        return 0.0
    share = s0[0] - s0[G - 1]
    for k in range(G - 1):
        share -= mass[k]
    return share


@njit(cache=True, parallel=True)
def _accumulate(
    lp0,
    lp1,
    m2,
    rho,
    r_idx,
    bounds,
    wts,
    scale01,
    scale02,
    ew,
    eu,
    ewt,
    t,
    p01,
    p02,
    qr,
    m_lo,
    m_step,
    n_m,
    n_r,
    r_lo,
    r_step,
    want_os,
    want_share,
    S0,
    B0,
    death,
    spread,
):
    """Per-patient closed forms on the grid, summed into (group, row) accumulators.

    Patients are sorted by group; group g holds patients bounds[g]:bounds[g+1] and is
    summed sequentially (one thread per group, so sums do not depend on the core count).
    For patient i: c01 = scale01 * exp(lp0[i]), c02 likewise; the state-0 survival
    S00(t) = exp(-c01 t^nu01 - c02 t^nu02) (p01 = t^nu01, p02 = t^nu02 on the grid t (G,)),
    E(t) = exp(-rho_i t) the study censoring survival (rho = 0: none).  For each weight
    row r of wts (R, n):

    * S0[g, r, k] += w S00 E;  B0[g, r, k] += w rho S00 E;
    * when ``want_share``: death[g, r] += w * share of state-0 exits that are deaths
      (midpoint rule per cell; qr the hazards' shape ratio, see _progression_mass);
    * when ``want_os``: the progression mass of cell k, h01/(h01+h02)(mid) *
      (S00_k - S00_{k+1}) * E(mid), spread with cubic Lagrange weights onto the kernel
      nodes (m2_i on the m-grid m_lo + j m_step; rho_i on its grid when n_r > 1, or
      exactly on node r_idx[i] when that is >= 0): spread[g, r, node, k],
      node = j_m * n_r + j_r.
    """
    G = t.size
    R = wts.shape[0]
    for g in prange(bounds.size - 1):
        s0 = np.empty(G)
        s00 = np.empty(G)
        mass = np.empty(G - 1)
        wm = np.empty(4)
        wr = np.empty(4)
        xs = np.empty(G)
        ex = np.empty(G)
        work = np.empty(G)
        jm = 0
        jr = 0
        for i in range(bounds[g], bounds[g + 1]):
            c01 = scale01 * math.exp(lp0[i])
            c02 = scale02 * math.exp(lp1[i])
            ri = rho[i]
            for k in range(G):
                xs[k] = -c01 * p01[k] - c02 * p02[k]
            _exp_into(xs, s0, work)
            if ri != 0.0:
                for k in range(G):
                    xs[k] = -ri * t[k]
                _exp_into(xs, ex, work)
                for k in range(G):
                    s00[k] = s0[k] * ex[k]
            else:
                for k in range(G):
                    s00[k] = s0[k]
            share = 0.0
            if want_os or want_share:
                share = _progression_mass(c01, c02, s0, qr, ew, eu, ewt, mass, want_share)
            if ri != 0.0:
                for k in range(G - 1):
                    xs[k] = -ri * 0.5 * (t[k] + t[k + 1])
                _exp_into(xs[: G - 1], ex, work)
                for k in range(G - 1):
                    mass[k] *= ex[k]
            if want_os:
                # 4-node stencil j-1..j+2 kept inside the node grid (x may then be in [-1, 2))
                x = (m2[i] - m_lo) / m_step
                jm = min(max(math.floor(x), 1), n_m - 3)
                _cubic_weights(x - jm, wm)
                if n_r > 1 and r_idx[i] >= 0:  # the patient's rate is node r_idx[i]: weight 1
                    jr = r_idx[i]
                elif n_r > 1:
                    y = (ri - r_lo) / r_step
                    jr = min(max(math.floor(y), 1), n_r - 3)
                    _cubic_weights(y - jr, wr)
            for r in range(R):
                w = wts[r, i]
                if w == 0.0:
                    continue
                death[g, r] += w * share
                wri = w * ri
                s0r = S0[g, r]
                for k in range(G):
                    s0r[k] += w * s00[k]
                if ri != 0.0:
                    b0r = B0[g, r]
                    for k in range(G):
                        b0r[k] += wri * s00[k]
                if not want_os:
                    continue
                sp = spread[g, r]
                if n_r == 1 or r_idx[i] >= 0:  # one rate node: the 4 m-nodes in one pass
                    jrr = 0 if n_r == 1 else jr  # (the rate's own node when exact)
                    a0 = sp[(jm - 1) * n_r + jrr]
                    a1 = sp[jm * n_r + jrr]
                    a2 = sp[(jm + 1) * n_r + jrr]
                    a3 = sp[(jm + 2) * n_r + jrr]
                    f0, f1, f2, f3 = w * wm[0], w * wm[1], w * wm[2], w * wm[3]
                    for k in range(G - 1):
                        mk = mass[k]
                        a0[k] += f0 * mk
                        a1[k] += f1 * mk
                        a2[k] += f2 * mk
                        a3[k] += f3 * mk
                else:
                    for v in range(4):
                        for u in range(4):
                            a = sp[(jm - 1 + v) * n_r + (jr - 1 + u)]
                            cf = w * wm[v] * wr[u]
                            for k in range(G - 1):
                                a[k] += cf * mass[k]


@njit(cache=True, parallel=True)
def _kernel_cells(c, rho, nu, t, j_rows, out):
    """Cell averages of the post-progression survival kernel K(s) = exp(-c s^nu - rho s).

    out[q, jj, k] = mean over u in [t_k, t_{k+1}] of K_q(t_j - u) for j = j_rows[jj] and
    k < j (zero otherwise); 3-point Gauss per cell, 12 points with the s = h v^GRADE
    substitution on the cell next to s = 0, where K has an s^nu singularity.
    """
    gx = np.array([-0.7745966692414834, 0.0, 0.7745966692414834])
    gw = np.array([0.5555555555555556, 0.8888888888888888, 0.5555555555555556])
    gx12 = np.array(
        [
            -0.9815606342467192,
            -0.9041172563704749,
            -0.7699026741943047,
            -0.5873179542866175,
            -0.3678314989981802,
            -0.1252334085114689,
            0.1252334085114689,
            0.3678314989981802,
            0.5873179542866175,
            0.7699026741943047,
            0.9041172563704749,
            0.9815606342467192,
        ]
    )
    gw12 = np.array(
        [
            0.0471753363865118,
            0.1069393259953184,
            0.1600783285433462,
            0.2031674267230659,
            0.2334925365383548,
            0.2491470458134028,
            0.2491470458134028,
            0.2334925365383548,
            0.2031674267230659,
            0.1600783285433462,
            0.1069393259953184,
            0.0471753363865118,
        ]
    )
    Q = c.size
    for jj in prange(j_rows.size):
        j = j_rows[jj]
        s_n = np.empty(12)
        s_v = np.empty(12)
        w_n = np.empty(12)
        xs = np.empty(12 * Q)
        ex = np.empty(12 * Q)
        work = np.empty(12 * Q)
        for k in range(j):
            lo = t[j] - t[k + 1]
            hi = t[j] - t[k]
            if k == j - 1:
                # s = hi * v^GRADE: the integrand exp(-c hi^nu v^(GRADE nu)) GRADE v^(GRADE-1)
                # has no singular term below v^(GRADE - 1 + GRADE nu), so Gauss converges
                m_n = 12
                for m in range(12):
                    v = 0.5 * (gx12[m] + 1.0)
                    s = hi * v**GRADE
                    jac = GRADE * v ** (GRADE - 1)
                    s_v[m], s_n[m], w_n[m] = s, s**nu, 0.5 * gw12[m] * jac
            else:
                half = 0.5 * (hi - lo)
                mid = 0.5 * (hi + lo)
                m_n = 3
                for m in range(3):
                    s = mid + half * gx[m]
                    s_v[m], s_n[m], w_n[m] = s, s**nu, 0.5 * gw[m]
            for m in range(m_n):
                for q in range(Q):
                    xs[m * Q + q] = -c[q] * s_n[m] - rho[q] * s_v[m]
            _exp_into(xs[: m_n * Q], ex, work)
            for q in range(Q):
                acc = 0.0
                for m in range(m_n):
                    acc += w_n[m] * ex[m * Q + q]
                out[q, jj, k] = acc


@njit(cache=True, parallel=True)
def _kernel_toeplitz(c, rho, nu, h, L, out):
    """Cell averages on a uniform grid of step h: out[q, l] for s in [(l-1)h, lh], l=1..L-1
    (3-point Gauss per cell; 8 sub-cells of 3 points after the graded substitution on the
    first)."""
    gx = np.array([-0.7745966692414834, 0.0, 0.7745966692414834])
    gw = np.array([0.5555555555555556, 0.8888888888888888, 0.5555555555555556])
    # the quadrature points s, their powers s^nu and weights do not depend on q; first
    # cell: s = h v^GRADE (see _kernel_cells)
    s1 = np.empty(24)
    n1 = np.empty(24)
    w1 = np.empty(24)
    for sub in range(8):
        for m in range(3):
            v = (sub + 0.5 * (gx[m] + 1.0)) / 8.0
            s = h * v**GRADE
            jac = h * GRADE * v ** (GRADE - 1)
            s1[3 * sub + m], n1[3 * sub + m], w1[3 * sub + m] = s, s**nu, gw[m] / 16.0 * jac
    sv = np.empty((max(L, 2), 3))
    sn = np.empty((max(L, 2), 3))
    for ll in range(2, L):
        lo = (ll - 1) * h
        for m in range(3):
            s = lo + 0.5 * h * (gx[m] + 1.0)
            sv[ll, m], sn[ll, m] = s, s**nu
    for q in prange(c.size):
        cq, rq = c[q], rho[q]
        out[q, 0] = 0.0
        # first cell: graded substitution, 24 midpoint-free Gauss points via 8 sub-cells
        acc = 0.0
        for m in range(24):
            acc += w1[m] * math.exp(-cq * n1[m] - rq * s1[m])
        out[q, 1] = acc / h
        for ll in range(2, L):
            acc = 0.0
            for m in range(3):
                acc += 0.5 * gw[m] * math.exp(-cq * sn[ll, m] - rq * sv[ll, m])
            out[q, ll] = acc


@njit(cache=True, parallel=True)
def _tail_conv(spread, kt, rows, out):
    """out[g, r, jj] += sum_q sum_{k < rows[jj]} spread[g, r, q, k] * kt[q, jj, k]."""
    ng, R, Q, _ = spread.shape
    for gr in prange(ng * R):
        g = gr // R
        r = gr % R
        for jj in range(rows.size):
            acc = 0.0
            j = rows[jj]
            for q in range(Q):
                for k in range(j):
                    acc += spread[g, r, q, k] * kt[q, jj, k]
            out[g, r, jj] += acc


@njit(cache=True, parallel=True, fastmath={"reassoc", "contract"})
def _patient_curves(
    lp0, lp1, m2, scale01, scale02, scale12, nu12, ew, eu, ewt, t, p01, p02, qr, h, pfs, os_
):
    """Each patient's rwPFS and OS survival at the nodes of a uniform grid (conditional
    adjusted-Cox estimand: the at-risk functions are needed patient by patient).

    t (G,) uniform nodes of step h from 0; p01, p02, qr, ew, eu, ewt as in
    _accumulate (Engine.powers of that grid); c12 = scale12 * exp(m2[i]).  Fills pfs (n, G)
    with S00 and os_ (n, G) with S00 + the convolution of the cells' progression masses
    with the post-progression survival's cell averages (the Toeplitz weights of
    _kernel_toeplitz, computed here for the patient's own c12: no kernel-node
    interpolation).  One patient per iteration: values do not depend on the core count.
    """
    G = t.size
    gx = np.array([-0.7745966692414834, 0.0, 0.7745966692414834])
    gw = np.array([0.5555555555555556, 0.8888888888888888, 0.5555555555555556])
    n1 = np.empty(24)
    w1 = np.empty(24)
    for sub in range(8):
        for m in range(3):
            v = (sub + 0.5 * (gx[m] + 1.0)) / 8.0
            s = h * v**GRADE
            n1[3 * sub + m] = s**nu12
            w1[3 * sub + m] = gw[m] / 16.0 * GRADE * v ** (GRADE - 1)
    sn = np.zeros((G, 3))
    for ll in range(2, G):
        for m in range(3):
            sn[ll, m] = ((ll - 1) * h + 0.5 * h * (gx[m] + 1.0)) ** nu12
    snf = sn.ravel()
    for i in prange(lp0.size):
        c01 = scale01 * math.exp(lp0[i])
        c02 = scale02 * math.exp(lp1[i])
        s0 = np.empty(G)
        mass = np.empty(G - 1)
        xs = np.empty(3 * G)
        ex = np.empty(3 * G)
        work = np.empty(3 * G)
        for k in range(G):
            xs[k] = -c01 * p01[k] - c02 * p02[k]
        _exp_into(xs[:G], s0, work)
        for k in range(G):
            pfs[i, k] = s0[k]
        _progression_mass(c01, c02, s0, qr, ew, eu, ewt, mass, False)
        c12 = scale12 * math.exp(m2[i])
        ker = np.empty(G)
        ker[0] = 0.0
        if G > 1:
            acc = 0.0
            for m in range(24):
                acc += w1[m] * math.exp(-c12 * n1[m])
            ker[1] = acc
        for k in range(3 * G):
            xs[k] = -c12 * snf[k]
        _exp_into(xs, ex, work)
        for ll in range(2, G):
            acc = 0.0
            for m in range(3):
                acc += 0.5 * gw[m] * ex[3 * ll + m]
            ker[ll] = acc
        # reversed kernel: the inner sum runs forward in memory (vectorised)
        rk = ker[::-1].copy()  # rk[G - 1 - l] = ker[l]
        for j in range(G):
            off = G - 1 - j
            acc = 0.0
            for k in range(j):
                acc += mass[k] * rk[off + k]
            os_[i, j] = s0[j] + acc


@njit(cache=True, parallel=True)
def _cell_at_risk(S, at, mass):
    """Per row of S (n, G): the cells' exits mass = S_k - S_{k+1} and cell-averaged
    at-risk probability at = mass / log(S_k / S_{k+1}) (the hazard constant in the cell;
    S_k when it is 0; 0 once S_{k+1} is 0), both (n, G - 1)."""
    n, G = S.shape
    for i in prange(n):
        for k in range(G - 1):
            a, b = S[i, k], S[i, k + 1]
            d = a - b
            mass[i, k] = d
            if b <= 0.0:
                at[i, k] = 0.0
            else:
                lam = math.log(a / b)
                at[i, k] = d / lam if lam > 1e-12 else a


@njit(cache=True)
def _column_sums(at, xo, out):
    """out[k, c] = sum_i at[i, k] * xo[i, c] for at (n, K), xo (n, C): at.T @ xo, serial
    (BLAS threads contend with the other users of a loaded machine at these sizes)."""
    n, K = at.shape
    C = xo.shape[1]
    out[:] = 0.0
    for i in range(n):
        for k in range(K):
            a = at[i, k]
            for c in range(C):
                out[k, c] += a * xo[i, c]


@njit(cache=True)
def _row_dots(at, w, out):
    """out[i] = sum_k at[i, k] * w[k]: at @ w, serial."""
    n, K = at.shape
    for i in range(n):
        acc = 0.0
        for k in range(K):
            acc += at[i, k] * w[k]
        out[i] = acc
