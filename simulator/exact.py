"""Exact truth engine: marginal survival of the potential outcomes by integration, not simulation.

Given x, the generating model's rwPFS survival is closed form (state 0 of the
illness-death model, two Weibull PH hazards) and OS is the convolution of the
progression density with the post-progression survival (clock reset).  Marginal
quantities are averages of these over the covariate distribution, which is represented
by a randomised quasi-Monte Carlo sample (scrambled Sobol points decoded by the cohort
kernel's own covariate code, so the copula and the frailty are the scenario's).

Numerics (docs/truth.md):

* time grid: uniform step ``h`` up to ``t_uniform`` months, then geometric cells up to
  ``t_max`` (where every marginal survival is negligible);
* rwPFS: exact values at the nodes; OS: the progression mass of each cell is spread, with
  cubic Lagrange weights, onto a grid of post-progression log-hazard scales; the
  convolution with the cell averages of the post-progression survival is a Toeplitz
  product (FFT) on the uniform part and a dense product on the tail;
* estimands: Cox population score roots (Stieltjes sums on the grid), RMST (trapezoid),
  survival at horizons, medians (linear interpolation);
* error: covariate-sampling SE from ``groups`` independent scramblings, numerical error
  from runs on grids twice and four times as coarse (max(|fine - coarse|,
  |coarse - coarser| / 4), conservative for a second-order scheme and robust to the
  errors of two grids cancelling), plus the tail mass beyond ``t_max`` for the uncensored
  Cox roots.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtri
from scipy.stats import qmc

from . import _cohort_kernels as K
from . import _exact_kernels as XK
from .exceptions import ScenarioError
from .features import INDEX, N_FEATURES
from .plan import Solved, annual_to_monthly_rate, build_plan, coef_vector, solved_outcome_matrix
from .scenario import Scenario

# numba's OpenMP workers busy-wait between parallel regions by default; the engine runs
# hundreds of short kernels per scenario, so on a shared machine the spinning workers take
# the cores from the main thread (measured: 25% more CPU time, up to 1.9x the wall time
# for a new scenario on a loaded 2-core machine).  Passive waiting, unless the user chose
# otherwise; read when the OpenMP runtime starts (numba's first parallel kernel call).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

POPULATIONS: tuple[str, ...] = ("ATE", "ATT", "ATC", "ATO", "ATM")
CENSORINGS: tuple[str, ...] = ("none", "admin", "study")
MAX_RATE_NODES = 64  # distinct study-censoring rates kept as exact kernel nodes
MAX_INTERP_RATE_NODES = 256  # rate nodes of the cubic interpolation of continuous rates
SOBOL_DIMS = 12  # 4 copula normals, frailty, 6 uniforms, the disease-free-interval exponential


# ---- covariate sample ---------------------------------------------------------------------
@dataclass(frozen=True)
class CovariateSample:
    """A randomised QMC sample of the scenario's covariates, in ``groups`` scramblings.

    feats (n, N_FEATURES); frailty (n,); lp (3, n) the transitions' linear predictors
    (frailty included, no treatment term); ps (n,) true propensity scores; lost (n,)
    loss-to-follow-up linear predictor; bounds (groups + 1,): group g holds the patients
    bounds[g]:bounds[g+1].
    """

    feats: np.ndarray
    lp: np.ndarray
    ps: np.ndarray
    lost: np.ndarray
    bounds: np.ndarray
    frailty: np.ndarray

    @property
    def n(self) -> int:
        return self.ps.size

    @property
    def groups(self) -> int:
        return self.bounds.size - 1

    def weights(self, population: str) -> np.ndarray:
        """Patient weights (n,) of a target population (true propensity score e)."""
        e = self.ps
        return {
            "ATE": lambda: np.ones_like(e),
            "ATT": lambda: e,
            "ATC": lambda: 1.0 - e,
            "ATO": lambda: e * (1.0 - e),
            "ATM": lambda: np.minimum(e, 1.0 - e),
        }[population]()

    def head(self, k: int) -> CovariateSample:
        """The first ``k`` points of every scrambling (for k = 2^m a Sobol net itself)."""
        idx = np.concatenate([np.arange(b, min(b + k, e)) for b, e in self.group_spans()])
        sizes = [min(k, e - b) for b, e in self.group_spans()]
        return CovariateSample(
            self.feats[idx],
            np.ascontiguousarray(self.lp[:, idx]),
            self.ps[idx],
            self.lost[idx],
            np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            self.frailty[idx],
        )

    def group_spans(self) -> list[tuple[int, int]]:
        return [(int(b), int(e)) for b, e in zip(self.bounds[:-1], self.bounds[1:], strict=True)]

    def first_group(self) -> CovariateSample:
        """The first scrambling alone (for the numerical-error run)."""
        s = slice(0, int(self.bounds[1]))
        return CovariateSample(
            self.feats[s],
            np.ascontiguousarray(self.lp[:, s]),
            self.ps[s],
            self.lost[s],
            self.bounds[:2].copy(),
            self.frailty[s],
        )


def sobol_points(n_log2: int, groups: int, seed: int) -> np.ndarray:
    """(groups * 2**n_log2, SOBOL_DIMS) scrambled Sobol points, independent per group."""
    root = np.random.SeedSequence(seed)
    blocks = []
    for child in root.spawn(groups):
        eng = qmc.Sobol(d=SOBOL_DIMS, scramble=True, seed=np.random.default_rng(child))
        blocks.append(eng.random_base2(n_log2))
    return np.clip(np.vstack(blocks), 1e-15, 1.0 - 1e-15)


def covariate_sample(sc: Scenario, solved: Solved, points: np.ndarray, groups: int):
    """Decode QMC points into covariates of ``sc`` under the solved treatment model."""
    plan = build_plan(sc, solved)
    n = points.shape[0]
    zn = np.zeros((n, K.N_NORMAL))
    uu = np.full((n, K.N_UNIFORM), 0.5)
    ee = np.ones((n, K.N_EXPON))
    zn[:, :5] = ndtri(points[:, :5])
    uu[:, :6] = points[:, 5:11]
    ee[:, 0] = -np.log1p(-points[:, 11])
    feats = np.empty((n, N_FEATURES))
    lp = np.empty((3, n))
    ps = np.empty(n)
    lost = np.empty(n)
    XK._decode(zn, uu, ee, *plan.patient_args, plan.lost_b, plan.nz_lost, feats, lp, ps, lost)
    bounds = np.linspace(0, n, groups + 1).astype(np.int64)
    return CovariateSample(feats, lp, ps, lost, bounds, zn[:, 4].copy())


# ---- time grid ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeGrid:
    """Nodes t (G,) in months: uniform step h to index ``j_uniform``, geometric after."""

    t: np.ndarray
    h: float
    j_uniform: int

    @classmethod
    def build(cls, h: float, t_uniform: float, t_max: float, growth: float) -> TimeGrid:
        j = math.ceil(t_uniform / h - 1e-9)
        t = [np.arange(j + 1) * h]
        tail = []
        x, step = j * h, h
        while x < t_max:
            step *= growth
            x += step
            tail.append(x)
        return cls(np.concatenate([*t, np.array(tail)]), h, j)

    def coarser(self) -> TimeGrid:
        """The grid with twice the step (every other uniform node, growth squared)."""
        tu = self.t[self.j_uniform]
        growth = (self.t[-1] - self.t[-2]) / (self.t[-2] - self.t[-3])
        return TimeGrid.build(2.0 * self.h, tu, self.t[-1], growth**2)

    @property
    def mid(self) -> np.ndarray:
        return 0.5 * (self.t[1:] + self.t[:-1])

    @property
    def dt(self) -> np.ndarray:
        return np.diff(self.t)


# ---- marginal curves --------------------------------------------------------------------------
@dataclass
class Curves:
    """Weighted sums over patients, per (group, weight row, node).

    pfs, os: sum of w S(t) E(t) (E the study censoring survival when ``rho`` was given,
    else 1); pfs_b, os_b: sum of w rho S E; death: sum of w * P(death before progression);
    wsum (groups, rows): sum of the weights.
    """

    grid: TimeGrid
    wsum: np.ndarray
    pfs: np.ndarray
    pfs_b: np.ndarray
    death: np.ndarray
    os: np.ndarray | None = None
    os_b: np.ndarray | None = None

    def pooled(self, name: str) -> np.ndarray:
        """(rows, G) marginal curve over all groups (normalised by the weights)."""
        return getattr(self, name).sum(axis=0) / self.wsum.sum(axis=0)[:, None]

    def group(self, name: str, g: int) -> np.ndarray:
        return getattr(self, name)[g] / self.wsum[g][:, None]


@dataclass
class OsSpread:
    """Progression masses spread onto post-progression kernel nodes (see _accumulate)."""

    spread: np.ndarray  # (groups, rows, nodes, G - 1)
    m_lo: float
    m_step: float
    n_m: int
    r_values: np.ndarray  # (n_r,) censoring-rate nodes (1/month)
    n_r: int
    state0: np.ndarray  # (groups, rows, G) the no-progression part sum of w S00 E
    state0_b: np.ndarray


@dataclass
class Engine:
    """Grid powers and kernel-node settings shared by every evaluation of one scenario."""

    grid: TimeGrid
    shapes: tuple[float, float, float]
    m_step: float = 0.1
    r_nodes: int = 8
    _powers: dict = field(default_factory=dict)

    def powers(self):
        if not self._powers:
            t, mid, dt = self.grid.t, self.grid.mid, self.grid.dt
            nu01, nu02, _ = self.shapes
            gauss = np.vstack([mid - dt / (2 * math.sqrt(3.0)), mid + dt / (2 * math.sqrt(3.0))])
            self._powers.update(
                p01=t**nu01,
                p02=t**nu02,
                qr=np.ascontiguousarray(
                    (nu02 * gauss ** (nu02 - 1.0)) / (nu01 * gauss ** (nu01 - 1.0))
                ),
            )
            k0 = min(XK.N_EXACT_CELLS, t.size - 1)
            wa, wb = self._powers["p01"][:k0, None], self._powers["p01"][1 : k0 + 1, None]
            w = wa + 0.5 * (wb - wa) * (XK._GX4[None, :] + 1.0)
            self._powers.update(
                ew=np.ascontiguousarray(w),
                eu=np.ascontiguousarray((w ** (1.0 / nu01)) ** nu02),
                ewt=np.ascontiguousarray(0.5 * (wb - wa) * XK._GW4[None, :]),
            )
        return self._powers

    def accumulate(
        self,
        sample: CovariateSample,
        om: np.ndarray,
        arm: float,
        wts: np.ndarray,
        rho: np.ndarray | None = None,
        want_os: bool = True,
        want_share: bool = False,
    ) -> tuple[Curves, OsSpread | None]:
        """rwPFS curves and the OS spread of one arm for the weight rows ``wts`` (R, n)."""
        p = self.powers()
        G = self.grid.t.size
        R = wts.shape[0]
        ng = sample.groups
        rho_ = np.zeros(sample.n) if rho is None else np.ascontiguousarray(rho, dtype=np.float64)
        m2 = sample.lp[2]
        # kernel nodes cover exactly the range of the patients' values (no node outside,
        # so no negative censoring rate and no extrapolated scale)
        m_lo = float(m2.min())
        n_m = max(4, math.ceil((float(m2.max()) - m_lo) / self.m_step) + 1)
        varying = rho is not None and float(rho_.max() - rho_.min()) > 0.0
        r_idx = np.full(sample.n, -1, dtype=np.int64)
        r_step, r_lo, n_r = 1.0, 0.0, 1
        r_values = np.zeros(1)
        if varying:
            distinct, inverse = np.unique(rho_, return_inverse=True)
            if distinct.size <= MAX_RATE_NODES:  # rates of discrete features: exact nodes
                r_values, r_idx, n_r = distinct, inverse.astype(np.int64), distinct.size
            else:  # continuous: cubic interpolation, exp(-rho s) resolved up to t_max
                r_lo = float(distinct[0])
                span = (float(distinct[-1]) - r_lo) * float(self.grid.t[-1])
                n_r = min(MAX_INTERP_RATE_NODES, max(4, math.ceil(span / 0.25) + 1))
                r_step = (float(distinct[-1]) - r_lo) / (n_r - 1)
                r_values = r_lo + r_step * np.arange(n_r)
        S0 = np.zeros((ng, R, G))
        B0 = np.zeros((ng, R, G))
        death = np.zeros((ng, R))
        spread = np.zeros((ng, R, n_m * n_r, G - 1) if want_os else (1, 1, 1, 1))
        g01 = math.exp(om[0, K.O_GAMMA] * arm)
        XK._accumulate(
            sample.lp[0],
            sample.lp[1],
            np.ascontiguousarray(m2),
            rho_,
            r_idx,
            sample.bounds,
            np.ascontiguousarray(wts, dtype=np.float64),
            om[0, K.O_SCALE] * g01,
            om[1, K.O_SCALE] * g01,
            p["ew"],
            p["eu"],
            p["ewt"],
            self.grid.t,
            p["p01"],
            p["p02"],
            p["qr"],
            m_lo,
            self.m_step,
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
        )
        wsum = np.array(
            [
                [wts[r, b:e].sum() for r in range(R)]
                for b, e in zip(sample.bounds[:-1], sample.bounds[1:], strict=True)
            ]
        )
        curves = Curves(self.grid, wsum, S0, B0, death)
        if not want_os:
            return curves, None
        sp = OsSpread(spread, m_lo, self.m_step, n_m, r_values, n_r, S0, B0)
        return curves, sp

    def os_curves(
        self, sp: OsSpread, scale12: float, j_max: int | None = None, nu: float | None = None
    ) -> np.ndarray:
        """OS sums (groups, rows, G') for post-progression scale ``scale12`` (treatment
        included) and shape ``nu`` (default the engine's), on nodes 0..j_max."""
        nu = self.shapes[2] if nu is None else nu
        t = self.grid.t
        G = t.size if j_max is None else j_max + 1
        q = np.arange(sp.n_m * sp.n_r)
        c = scale12 * np.exp(sp.m_lo + (q // sp.n_r) * sp.m_step)
        rho = sp.r_values[q % sp.n_r]
        ju = min(self.grid.j_uniform, G - 1)
        ku = np.empty((q.size, ju + 1))
        XK._kernel_toeplitz(c, rho, nu, self.grid.h, ju + 1, ku)
        spread = sp.spread[..., : G - 1]
        nfft = 1 << math.ceil(math.log2(2 * ju + 2))
        fs = np.fft.rfft(spread[..., :ju], n=nfft, axis=-1)
        fk = np.fft.rfft(ku, n=nfft, axis=-1)
        conv = np.fft.irfft(np.einsum("grqf,qf->grf", fs, fk), n=nfft, axis=-1)[..., : ju + 1]
        out = sp.state0[..., :G].copy()
        out[..., : ju + 1] += conv
        if G - 1 > ju:
            rows = np.arange(ju + 1, G, dtype=np.int64)
            kt = np.zeros((q.size, rows.size, G - 1))
            XK._kernel_cells(c, rho, nu, t[:G], rows, kt)
            tail = np.zeros((*out.shape[:2], rows.size))
            XK._tail_conv(np.ascontiguousarray(spread), kt, rows, tail)
            out[..., ju + 1 :] += tail
        return out


# ---- estimands from curves --------------------------------------------------------------------
def admin_survival_cells(grid: TimeGrid, accrual: float, cutoff: float) -> np.ndarray:
    """Cell averages (G-1,) of P(administrative censoring time > t): entry uniform on
    [0, accrual], censoring at cutoff - entry."""
    t = grid.t
    followup = cutoff - accrual

    def integral(x):  # int_0^x G(s) ds
        x = np.asarray(x, dtype=np.float64)
        out = np.minimum(x, followup)
        if accrual > 0:
            y = np.clip(x, followup, cutoff) - followup
            out = out + y - y**2 / (2.0 * accrual)
        return out

    return np.diff(integral(t)) / np.diff(t)


def cox_root(A0, A1, cells, B0=None, B1=None, dt=None) -> tuple[float, float]:
    """(log-HR, information) root of the two-arm population Cox score on the grid.

    A_a (G,): sum of w S_a(t) E(t) (per unit weight) on the nodes; B_a: sum of w rho S E
    (study censoring with covariate-dependent rates); cells (G-1,): the common censoring
    survival averaged per cell.  Within a cell each arm is taken as piecewise exponential:
    event hazard lambda_a = log(A_k / A_{k+1}) / dt - (B_k + B_{k+1}) / (A_k + A_{k+1}),
    at-risk R_a = sqrt(A_k A_{k+1}) at the middle, so the cell's score is
    dt (lambda_1 - e^b lambda_0) R_0 R_1 / (R_0 + e^b R_1) times the censoring survival —
    exactly zero at b = log-HR when the hazards are proportional.
    """
    t_step = np.ones(A0.size - 1) if dt is None else dt
    # below 1e-200 no mass is left (and the log ratios would overflow)
    keep = (np.minimum(A0[:-1], A0[1:]) > 1e-200) & (np.minimum(A1[:-1], A1[1:]) > 1e-200)
    a0k, a0n, a1k, a1n = A0[:-1][keep], A0[1:][keep], A1[:-1][keep], A1[1:][keep]
    h = t_step[keep] if dt is not None else None
    lam0 = np.log(a0k / a0n)
    lam1 = np.log(a1k / a1n)
    if B0 is not None:
        lam0 = lam0 - h * (B0[:-1][keep] + B0[1:][keep]) / (a0k + a0n)
        lam1 = lam1 - h * (B1[:-1][keep] + B1[1:][keep]) / (a1k + a1n)
    # lam * dt is what is used: the log ratio already integrates the hazard over the cell
    c = cells[keep]
    r0, r1 = np.sqrt(a0k) * np.sqrt(a0n), np.sqrt(a1k) * np.sqrt(a1n)  # no underflow
    beta, info = 0.0, 0.0
    for _ in range(60):
        e = math.exp(beta)
        w = c / (1.0 / r1 + e / r0)  # c r0 r1 / (r0 + e r1), safe for tiny r
        p1 = e / (e + r0 / r1)  # e r1 / (r0 + e r1)
        score = float(np.sum((lam1 - e * lam0) * w))
        info = float(np.sum(e * lam0 * w + (lam1 - e * lam0) * w * p1))
        if not info > 0:
            return math.nan, 0.0
        step = max(-2.0, min(2.0, score / info))
        beta += step
        if abs(step) < 1e-13:
            break
    return beta, info


def rmst(t: np.ndarray, S: np.ndarray, tau: float) -> float:
    """Restricted mean of survival curve S (G,) on nodes t up to tau (trapezoid, months)."""
    j = int(np.searchsorted(t, tau, side="right")) - 1
    area = float(np.sum(0.5 * (S[1 : j + 1] + S[:j]) * np.diff(t[: j + 1])))
    if t[j] < tau:
        s_tau = survival_at(t, S, tau)
        area += 0.5 * (S[j] + s_tau) * (tau - t[j])
    return area


def survival_at(t: np.ndarray, S: np.ndarray, x: float) -> float:
    """S(x) by linear interpolation between nodes."""
    return float(np.interp(x, t, S))


def median(t: np.ndarray, S: np.ndarray) -> float:
    """First time S crosses 1/2 (linear interpolation; nan when it does not)."""
    below = np.flatnonzero(S <= 0.5)
    if below.size == 0:
        return math.nan
    j = int(below[0])
    if j == 0:
        return 0.0
    s0, s1 = S[j - 1], S[j]
    return float(t[j - 1] + (s0 - 0.5) / (s0 - s1) * (t[j] - t[j - 1]))


def study_rates(sc: Scenario, sample: CovariateSample) -> dict[str, np.ndarray]:
    """Per-patient exponential censoring rates (1/month) of the study process, per outcome,
    at the control arm's rates: loss to follow-up (covariate-dependent) and, for rwPFS,
    next-therapy censoring (covariate-dependent through ``next_therapy_log_hr``)."""
    cs = sc.censoring
    lost = annual_to_monthly_rate(cs.lost_per_year) * np.exp(sample.lost)
    nxt = annual_to_monthly_rate(cs.next_therapy_per_year)
    if cs.next_therapy_log_hr:  # informative next-therapy censoring (features only)
        nxt = nxt * np.exp(sample.feats @ coef_vector(cs.next_therapy_log_hr))
    return {"pfs": lost + nxt, "os": lost}


def outcome_matrix_of(sc: Scenario, solved: Solved) -> np.ndarray:
    return solved_outcome_matrix(sc, solved)


def check_sample_settings(n_log2: int, groups: int) -> None:
    if not isinstance(n_log2, int) or not 6 <= n_log2 <= 22:
        raise ScenarioError(f"n_log2={n_log2!r} is not allowed; it must be an integer in [6, 22]")
    if not isinstance(groups, int) or groups < 2:
        raise ScenarioError(f"groups={groups!r} is not allowed; it must be an integer >= 2")


# ---- scenario-level settings -------------------------------------------------------------------
SAMPLE_LOG2 = 14  # 2**14 points per scrambling
SAMPLE_GROUPS = 4  # independent scramblings (covariate-sampling SE from their spread)
STEP = 0.2  # months, uniform grid step
T_MAX = 20_000.0  # months: every marginal survival is below 1e-12 long before
GROWTH = 1.05  # geometric growth of the tail cells
RMST_HORIZONS = (12.0, 24.0, 36.0)
SAFETY = 1.0  # numerical error = SAFETY * |fine - coarse| (3x the Richardson estimate at order 2)
SURVIVAL_HORIZONS = (12.0, 24.0)


def uniform_span(sc: Scenario) -> float:
    """Months covered by the uniform part of the grid: follow-up, horizons and (2.5 x)
    every median target, at least 72 months."""
    o = sc.outcomes
    meds = [
        o.pfs_median_control,
        o.os_median_control,
        o.pfs_median_treated,
        o.os_median_treated,
    ]
    span = max([72.0, sc.censoring.cutoff_months + STEP, *RMST_HORIZONS, *SURVIVAL_HORIZONS])
    span = max([span] + [2.5 * m for m in meds if m is not None])
    return STEP * math.ceil(span / STEP - 1e-9)


def truth_grid(sc: Scenario, refine: int = 0) -> TimeGrid:
    """The truths' time grid; ``refine`` halvings of the step (growth to the power
    2**-refine in the tail)."""
    return TimeGrid.build(STEP / 2**refine, uniform_span(sc), T_MAX, GROWTH ** (0.5**refine))


def sample_for(
    sc: Scenario, solved: Solved, points: np.ndarray | None = None, n_log2: int = SAMPLE_LOG2
) -> CovariateSample:
    """The scenario's covariate sample (seed ``calibration.seed``) under ``solved``;
    ``n_log2`` > SAMPLE_LOG2 extends the same scramblings (the calibration's points are
    the first 2**SAMPLE_LOG2 of each)."""
    if points is None:
        points = sobol_points(n_log2, SAMPLE_GROUPS, sc.calibration.seed)
    return covariate_sample(sc, solved, points, SAMPLE_GROUPS)


# precision goals of the truths (error bounds): log-HRs, RMST (months), survival
GOALS = {"log_hr": 2e-4, "rmst": 0.01, "survival": 5e-4}
MAX_SAMPLE_LOG2 = SAMPLE_LOG2 + 1  # one doubling where the goals are missed
MAX_REFINE = 1  # one halving of the grid step where the numerical part misses a goal


def goal_of(key: str) -> float | None:
    """The precision goal of an estimand key (None: medians, which have none)."""
    for stem, goal in GOALS.items():
        if stem in key:
            return goal
    return None


def misses_goals(mt: MarginalTruth) -> list[tuple[str, str]]:
    """(outcome, key) of every estimand whose error bound exceeds its goal."""
    return [
        (o, k)
        for o in ("pfs", "os")
        for k in mt.values[o]
        if (g := goal_of(k)) is not None and mt.error(o, k) > g
    ]


def precise_marginal_truth(
    sc: Scenario,
    solved: Solved,
    rmst_horizons: tuple[float, ...] = RMST_HORIZONS,
    survival_horizons: tuple[float, ...] = SURVIVAL_HORIZONS,
    sample: CovariateSample | None = None,
) -> MarginalTruth:
    """:func:`marginal_truth` on the calibration's sample and the scenario's grid; where
    an error bound misses its goal mostly through its numerical part (flatiron-liver's
    uncensored OS log-HRs: the long tail), again on a grid refined once; then, where a
    bound still misses mostly through its covariate-sampling part (extreme weights:
    poor-overlap's ATC RMST), on the sample of twice the size (the same scramblings
    extended; the calibration targets are then reproduced to that sample's
    covariate-sampling error rather than to round-off)."""
    refine = 0
    mt = marginal_truth(sc, solved, rmst_horizons, survival_horizons, sample=sample)
    # a finer grid reduces only the numerical part, a larger sample only the sampling part
    if any(mt.numerical[o][k] > 2.0 * mt.se[o][k] for o, k in misses_goals(mt)):
        refine = MAX_REFINE
        mt = marginal_truth(
            sc, solved, rmst_horizons, survival_horizons, sample=sample, refine=refine
        )
    if any(2.0 * mt.se[o][k] >= mt.numerical[o][k] for o, k in misses_goals(mt)):
        big = sample_for(sc, solved, n_log2=MAX_SAMPLE_LOG2)
        mt = marginal_truth(sc, solved, rmst_horizons, survival_horizons, sample=big, refine=refine)
    return mt


def prefix(grid: TimeGrid, months: float) -> TimeGrid:
    """The uniform part of ``grid`` up to the first node at or after ``months``."""
    j = min(grid.j_uniform, math.ceil(months / grid.h - 1e-9))
    return TimeGrid(grid.t[: j + 1].copy(), grid.h, j)


# ---- every marginal truth of a scenario --------------------------------------------------------
@dataclass(frozen=True)
class MarginalTruth:
    """Marginal estimands per outcome: value, covariate-sampling SE, numerical error."""

    values: dict[str, dict[str, float]]
    se: dict[str, dict[str, float]]
    numerical: dict[str, dict[str, float]]
    n: int

    def error(self, outcome: str, key: str) -> float:
        """Error bound: numerical error + 2 covariate-sampling SEs."""
        return self.numerical[outcome][key] + 2.0 * self.se[outcome][key]


def _prefix(population: str) -> str:
    return "" if population == "ATE" else f"{population.lower()}_"


def _population_estimands(
    t, S0, S1, cells, study, rmst_h, surv_h, population: str
) -> tuple[dict[str, float], dict[str, float]]:
    """Estimands of one population from its two arms' curves; also the uncensored Cox
    information and tail mass (for the truncation bound)."""
    pop = population.lower()
    out: dict[str, float] = {}
    ones = np.ones(t.size - 1)
    b_unc, info = cox_root(S0, S1, ones)
    out[f"{pop}_log_hr_uncensored"] = b_unc
    out[f"{pop}_log_hr"] = cox_root(S0, S1, cells)[0]
    A0, A1, B0, B1, study_cells = study
    if B0 is None:
        out[f"{pop}_log_hr_study_censoring"] = cox_root(A0, A1, study_cells)[0]
    else:
        out[f"{pop}_log_hr_study_censoring"] = cox_root(
            A0, A1, study_cells, B0, B1, np.diff(t[: A0.size])
        )[0]
    p = _prefix(population)
    for arm, S in (("control", S0), ("treated", S1)):
        out[f"{p}median_{arm}"] = median(t, S)
        for h in rmst_h:
            out[f"{p}rmst{h:g}_{arm}"] = rmst(t, S, h)
        for h in surv_h:
            out[f"{p}survival{h:g}_{arm}"] = survival_at(t, S, h)
    out[f"{p}median_diff"] = out[f"{p}median_treated"] - out[f"{p}median_control"]
    for h in rmst_h:
        out[f"{p}rmst{h:g}_diff"] = out[f"{p}rmst{h:g}_treated"] - out[f"{p}rmst{h:g}_control"]
    for h in surv_h:
        out[f"{p}survival{h:g}_diff"] = (
            out[f"{p}survival{h:g}_treated"] - out[f"{p}survival{h:g}_control"]
        )
    tail = {f"{pop}_log_hr_uncensored": float(S0[-1] + S1[-1]) / info if info > 0 else math.inf}
    return out, tail


def _with_ate(x: np.ndarray) -> np.ndarray:
    """Rows (groups, 4, ...) of ATT, ATC, ATO, ATM -> (groups, 5, ...) with the ATE
    (= ATT + ATC) first, in the order of POPULATIONS."""
    return np.concatenate([x[:, :1] + x[:, 1:2], x], axis=1)


def _evaluate(sc, sample, om, eng, rmst_h, surv_h):
    """{outcome: [estimands of the pooled sample, of group 0, ...]} and tail bounds."""
    # ATE = ATT + ATC (weights e + (1 - e) = 1): the kernels sum the other four rows only
    wts = np.vstack([sample.weights(p) for p in POPULATIONS[1:]])
    grid = eng.grid
    t = grid.t
    cells = admin_survival_cells(grid, sc.censoring.accrual_months, sc.censoring.cutoff_months)
    c0, sp0 = eng.accumulate(sample, om, 0.0, wts)
    c1, sp1 = eng.accumulate(sample, om, 1.0, wts)
    l12 = om[2, K.O_SCALE]
    sums = {
        "pfs": (_with_ate(c0.pfs), _with_ate(c1.pfs)),
        "os": (
            _with_ate(eng.os_curves(sp0, l12)),
            _with_ate(eng.os_curves(sp1, l12 * math.exp(om[2, K.O_GAMMA]))),
        ),
    }
    rates = study_rates(sc, sample)
    study_sums = {}
    # study censoring includes the cutoff: nothing after it counts
    eng_s = Engine(prefix(grid, sc.censoring.cutoff_months), eng.shapes, eng.m_step)
    cells_s = cells[: eng_s.grid.t.size - 1]
    for outcome in ("pfs", "os"):
        r = rates[outcome]
        if float(r.max() - r.min()) == 0.0:
            study_sums[outcome] = None
            continue
        s0, q0 = eng_s.accumulate(sample, om, 0.0, wts, rho=r, want_os=outcome == "os")
        s1, q1 = eng_s.accumulate(sample, om, 1.0, wts, rho=r, want_os=outcome == "os")
        if outcome == "pfs":
            study_sums[outcome] = tuple(map(_with_ate, (s0.pfs, s1.pfs, s0.pfs_b, s1.pfs_b)))
        else:
            # B for OS: the same spread with weights w * rho
            wr = wts * r[None, :]
            _, b0 = eng_s.accumulate(sample, om, 0.0, wr, rho=r)
            _, b1 = eng_s.accumulate(sample, om, 1.0, wr, rho=r)
            g1 = l12 * math.exp(om[2, K.O_GAMMA])
            study_sums[outcome] = tuple(
                _with_ate(eng_s.os_curves(q, g))
                for q, g in ((q0, l12), (q1, g1), (b0, l12), (b1, g1))
            )
    wsum = _with_ate(c0.wsum)
    results: dict[str, list[dict[str, float]]] = {}
    tails: dict[str, dict[str, float]] = {}
    for outcome in ("pfs", "os"):
        a0, a1 = sums[outcome]
        rate = float(rates[outcome][0])
        per: list[dict[str, float]] = []
        for g in [None, *range(sample.groups)]:
            sel = slice(None) if g is None else slice(g, g + 1)
            est: dict[str, float] = {}
            for r_, population in enumerate(POPULATIONS):
                W = float(wsum[sel, r_].sum())
                S0 = a0[sel, r_].sum(axis=0) / W
                S1 = a1[sel, r_].sum(axis=0) / W
                ss = study_sums[outcome]
                if ss is None:
                    study = (S0, S1, None, None, cells * np.exp(-rate * grid.mid))
                else:
                    study = (*(x[sel, r_].sum(axis=0) / W for x in ss), cells_s)
                values, tail = _population_estimands(
                    t, S0, S1, cells, study, rmst_h, surv_h, population
                )
                est.update(values)
                if g is None:
                    tails.setdefault(outcome, {}).update(tail)
            per.append(est)
        results[outcome] = per
    return results, tails


def marginal_truth(
    sc: Scenario,
    solved: Solved,
    rmst_horizons: tuple[float, ...] = RMST_HORIZONS,
    survival_horizons: tuple[float, ...] = SURVIVAL_HORIZONS,
    sample: CovariateSample | None = None,
    refine: int = 0,
) -> MarginalTruth:
    """Every marginal estimand of ``sc`` under ``solved`` with its error (see module doc),
    on the scenario's time grid refined ``refine`` times (each halves the uniform step and
    the kernel nodes' spacing in the post-progression log-hazard scale, and takes the
    square root of the tail cells' growth).

    Keys per outcome (``pop`` in ate, att, atc, ato, atm; ``P`` the prefix ``pop_``, empty
    for the ATE): ``pop_log_hr`` (administrative censoring), ``pop_log_hr_uncensored``,
    ``pop_log_hr_study_censoring``; ``Pmedian_{control,treated,diff}``,
    ``Prmst{tau}_{control,treated,diff}``, ``Psurvival{tau}_{control,treated,diff}``
    (months, probabilities; uncensored potential outcomes).
    """
    span = uniform_span(sc)
    for h in (*rmst_horizons, *survival_horizons):
        if not (isinstance(h, int | float) and 0 < h <= span):
            raise ScenarioError(
                f"horizon={h!r} is not allowed; horizons must be in (0, {span:g}] months"
            )
    if sample is None:
        sample = sample_for(sc, solved)
    om = solved_outcome_matrix(sc, solved)
    shapes = tuple(1.0 / om[k, K.O_INV_SHAPE] for k in range(3))
    grid = truth_grid(sc, refine)
    m_step = Engine.m_step / 2**refine
    eng = Engine(grid, shapes, m_step=m_step)
    fine, tails = _evaluate(sc, sample, om, eng, rmst_horizons, survival_horizons)
    first = sample.first_group()
    eng_c = Engine(grid.coarser(), shapes, m_step=2 * m_step)
    coarse, _ = _evaluate(sc, first, om, eng_c, rmst_horizons, survival_horizons)
    # a second refinement step: when the errors of the fine and coarse grids happen to be
    # equal (terms of different orders cancelling), |fine - coarse| alone understates
    eng_cc = Engine(grid.coarser().coarser(), shapes, m_step=4 * m_step)
    coarser, _ = _evaluate(sc, first, om, eng_cc, rmst_horizons, survival_horizons)
    values, se, numerical = {}, {}, {}
    for outcome in ("pfs", "os"):
        pooled, groups = fine[outcome][0], fine[outcome][1:]
        values[outcome] = pooled
        se[outcome], numerical[outcome] = {}, {}
        for k in pooled:
            g = np.array([x[k] for x in groups])
            se[outcome][k] = float(np.std(g, ddof=1) / math.sqrt(g.size))
            num = SAFETY * max(
                abs(groups[0][k] - coarse[outcome][0][k]),
                abs(coarse[outcome][0][k] - coarser[outcome][0][k]) / 4.0,
            )
            numerical[outcome][k] = float(num + tails[outcome].get(k, 0.0))
    return MarginalTruth(values, se, numerical, sample.n)


# ---- the conditional (adjusted-Cox) estimand ---------------------------------------------------
CONDITIONAL_LOG2 = 11  # the first 2**11 points of each scrambling (a Sobol net of its own)
CONDITIONAL_STEP = 0.4  # months, the conditional score's uniform grid


def adjustment_names(sc: Scenario) -> tuple[list[str], bool]:
    """Features of the outcome model (every transition's nonzero log-HRs, in feature
    order) and whether the frailty acts: the adjusted Cox model's covariates."""
    o = sc.outcomes
    trans = (o.progression, o.death, o.post_progression_death)
    names = sorted({k for t in trans for k, v in t.log_hr.items() if v}, key=INDEX.get)
    return names, any(t.frailty_log_hr for t in trans)


def adjustment_matrix(sc: Scenario, feats: np.ndarray, frailty: np.ndarray) -> np.ndarray:
    """(n, q) float64 covariates of the adjusted Cox model: the outcome model's features
    (those not constant on the sample, e.g. visceral in a subgroup) and the frailty when
    it acts."""
    names, with_frailty = adjustment_names(sc)
    cols = [feats[:, INDEX[k]].astype(np.float64) for k in names]
    cols = [c for c in cols if c.min() < c.max()]
    if with_frailty:
        cols.append(np.asarray(frailty, dtype=np.float64))
    return np.column_stack(cols) if cols else np.empty((feats.shape[0], 0))


def patient_curves(
    sample: CovariateSample, om: np.ndarray, shapes, grid: TimeGrid, arm: float
) -> tuple[np.ndarray, np.ndarray]:
    """(rwPFS, OS) survival (n, G) of every patient of ``sample`` under arm ``arm`` on the
    uniform ``grid`` (its nodes from 0 with step h; no censoring)."""
    if grid.j_uniform != grid.t.size - 1:
        raise RuntimeError("patient_curves needs a uniform grid")  # a bug, not a user error
    p = Engine(grid, shapes).powers()
    n, G = sample.n, grid.t.size
    pfs, os_ = np.empty((n, G)), np.empty((n, G))
    XK._patient_curves(
        sample.lp[0],
        sample.lp[1],
        np.ascontiguousarray(sample.lp[2]),
        om[0, K.O_SCALE] * math.exp(om[0, K.O_GAMMA] * arm),
        om[1, K.O_SCALE] * math.exp(om[1, K.O_GAMMA] * arm),
        om[2, K.O_SCALE] * math.exp(om[2, K.O_GAMMA] * arm),
        float(shapes[2]),
        p["ew"],
        p["eu"],
        p["ewt"],
        grid.t,
        p["p01"],
        p["p02"],
        p["qr"],
        grid.h,
        pfs,
        os_,
    )
    return pfs, os_


@dataclass(frozen=True)
class CellSums:
    """What the adjusted Cox population score needs of one outcome on one grid.

    For patient i, arm a and cell k (admin censoring survival c_k averaged over the cell):
    the event mass c_k (S_k - S_{k+1}) and the cell-averaged at-risk probability
    A = (S_k - S_{k+1}) / log(S_k / S_{k+1}) (the patient's hazard taken constant in the
    cell; A = S_k when it is 0).  at0, at1 (n, G-1): A of the arms; events (G-1,): the
    event mass of both arms summed over patients; zsum (1 + q,): the event mass times
    the covariates z = (arm, x), summed; x (n, q).
    """

    at0: np.ndarray
    at1: np.ndarray
    events: np.ndarray
    zsum: np.ndarray
    x: np.ndarray


def _at_risk_and_mass(S: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    at = np.empty((S.shape[0], S.shape[1] - 1))
    mass = np.empty_like(at)
    XK._cell_at_risk(S, at, mass)
    return at, mass * cells[None, :]


def cell_sums(S0: np.ndarray, S1: np.ndarray, x: np.ndarray, cells: np.ndarray) -> CellSums:
    """CellSums of the per-patient survival S0, S1 (n, G) of the two arms."""
    A0, d0 = _at_risk_and_mass(S0, cells)
    A1, d1 = _at_risk_and_mass(S1, cells)
    per_patient = d0.sum(axis=1) + d1.sum(axis=1)
    zsum = np.concatenate([[d1.sum()], x.T @ per_patient])
    return CellSums(A0, A1, d0.sum(axis=0) + d1.sum(axis=0), zsum, x)


def conditional_root(
    cs: CellSums, start: np.ndarray | None = None, tol: float = 1e-12, max_iter: int = 50
) -> np.ndarray:
    """Root (1 + q,) of the adjusted Cox model's population score (Newton, analytic
    information); element 0 is the treatment's log-HR.

    U(b) = zsum - sum_k events_k S1_k / S0_k with S0_k = sum_i e^(b'z) A (both arms),
    S1_k the same times z; the information sum_k events_k (S2_k / S0_k - S1_k S1_k' /
    S0_k^2).  The population log partial likelihood is concave, so Newton from 0 or
    ``start`` (steps capped at 1 in every coordinate) converges.
    """
    x = cs.x
    q = x.shape[1]
    beta = np.zeros(1 + q) if start is None else np.array(start, dtype=np.float64)
    keep = cs.events > 0
    last = math.inf
    at0, at1 = np.ascontiguousarray(cs.at0[:, keep]), np.ascontiguousarray(cs.at1[:, keep])
    ev = cs.events[keep]
    p0, p1 = np.empty((ev.size, 1 + q)), np.empty((ev.size, 1 + q))
    v, v1 = np.empty(x.shape[0]), np.empty(x.shape[0])
    for _ in range(max_iter):
        eg = math.exp(beta[0])
        om = np.exp(x @ beta[1:]) if q else np.ones(x.shape[0])
        xo = np.column_stack([om, x * om[:, None]])  # (n, 1 + q)
        XK._column_sums(at0, xo, p0)  # (K, 1 + q): at0.T @ xo
        XK._column_sums(at1, xo, p1)
        s0 = p0[:, 0] + eg * p1[:, 0]
        s1 = np.vstack([eg * p1[:, 0], (p0[:, 1:] + eg * p1[:, 1:]).T])  # (1 + q, K)
        w = ev / s0
        score = cs.zsum - s1 @ w
        XK._row_dots(at1, w, v1)
        XK._row_dots(at0, w, v)
        v1 *= eg  # (n,)
        v += v1
        info = np.empty((1 + q, 1 + q))
        info[0, 0] = om @ v1
        info[0, 1:] = info[1:, 0] = x.T @ (om * v1)
        info[1:, 1:] = (x * (om * v)[:, None]).T @ x
        info -= (s1 * (w / s0)[None, :]) @ s1.T
        step = np.linalg.solve(info, score)
        big = float(np.max(np.abs(step)))
        if big > 1.0:
            step = step / big
        beta = beta + step
        if big < tol or (big < 1e-8 and big >= last):  # converged, or at round-off
            break
        last = big
    return beta


def conditional_truth(
    sc: Scenario,
    solved: Solved,
    sample: CovariateSample | None = None,
    n_log2: int = CONDITIONAL_LOG2,
    step: float = CONDITIONAL_STEP,
) -> dict[str, tuple[float, float, float]]:
    """The conditional (adjusted-Cox) log-HR of each outcome: {outcome: (value,
    covariate-sampling SE, numerical error)}.

    The root of the population score of the Cox model of treatment plus
    :func:`adjustment_matrix` fitted to the stacked potential outcomes of the covariate
    population under the scenario's administrative censoring (both arms of every
    patient; the censoring does not depend on x, so its survival only weights the
    cells).  Each patient's survival is closed form given x and the frailty (rwPFS) or
    a convolution on the grid (OS, :func:`patient_curves`), on the first
    ``2**n_log2`` points of each scrambling (default ``CONDITIONAL_LOG2``), on a uniform
    grid of step ``step`` months (default ``CONDITIONAL_STEP``) up to the cutoff.  The
    value is the mean of the scramblings' roots (randomised QMC), the SE their standard
    deviation / sqrt(groups); numerical
    error from the grids of twice and four times the step (first scrambling; as for the
    marginal truths).
    """
    if sample is None:
        sample = sample_for(sc, solved)
    sub = sample.head(2**n_log2)
    om = solved_outcome_matrix(sc, solved)
    shapes = tuple(1.0 / om[k, K.O_INV_SHAPE] for k in range(3))
    g = om[:, K.O_GAMMA]
    null = {"pfs": g[0] == g[1] == 0.0, "os": g[0] == g[1] == g[2] == 0.0}
    out = {o: (0.0, 0.0, 0.0) for o, z in null.items() if z}
    if len(out) == 2:
        return out
    outcomes = [o for o in ("pfs", "os") if not null[o]]
    cs = sc.censoring
    x = adjustment_matrix(sc, sub.feats, sub.frailty)
    spans = sub.group_spans()
    roots: dict[str, list[float]] = {o: [] for o in outcomes}
    first: dict[str, np.ndarray] = {}
    for level in range(3):
        h = step * 2**level
        grid = TimeGrid.build(h, h * math.ceil(cs.cutoff_months / h - 1e-9), 0.0, GROWTH)
        cells = admin_survival_cells(grid, cs.accrual_months, cs.cutoff_months)
        for b, e in spans if level == 0 else spans[:1]:
            part = sub_rows(sub, b, e)
            c0 = patient_curves(part, om, shapes, grid, 0.0)
            c1 = patient_curves(part, om, shapes, grid, 1.0)
            for o in outcomes:
                which = 0 if o == "pfs" else 1
                sums = cell_sums(c0[which], c1[which], x[b:e], cells)
                beta = conditional_root(sums, first.get(o))  # later ones start at the first
                first.setdefault(o, beta)
                roots[o].append(float(beta[0]))
    ng = sub.groups
    for o in outcomes:
        r = np.array(roots[o])
        groups, coarse, coarser = r[:ng], r[ng], r[ng + 1]
        se = float(np.std(groups, ddof=1) / math.sqrt(ng))
        num = max(abs(groups[0] - coarse), abs(coarse - coarser) / 4.0)
        out[o] = (float(groups.mean()), se, float(num))
    return out


def precise_conditional_truth(
    sc: Scenario, solved: Solved, sample: CovariateSample
) -> dict[str, tuple[float, float, float]]:
    """:func:`conditional_truth`, recomputed where an outcome's bound (numerical + 2 SE)
    misses the log-HR goal: first on the grid of half the step where the numerical part
    is the larger, then on every point of the sample (``2**SAMPLE_LOG2`` per scrambling)
    where the covariate-sampling part is (the same rule as
    :func:`precise_marginal_truth`)."""
    goal = GOALS["log_hr"]
    step, n_log2 = CONDITIONAL_STEP, CONDITIONAL_LOG2
    out = conditional_truth(sc, solved, sample, n_log2, step)

    def missed(numerical_first: bool) -> bool:
        return any(
            num + 2.0 * se > goal and (num > 2.0 * se) == numerical_first
            for _, se, num in out.values()
        )

    if missed(numerical_first=True):
        step = CONDITIONAL_STEP / 2
        out = conditional_truth(sc, solved, sample, n_log2, step)
    if missed(numerical_first=False):
        n_log2 = min(SAMPLE_LOG2, int(math.log2(sample.n // sample.groups)))
        out = conditional_truth(sc, solved, sample, n_log2, step)
    return out


def sub_rows(sample: CovariateSample, b: int, e: int) -> CovariateSample:
    """Patients b:e of ``sample`` as a one-group sample."""
    s = slice(b, e)
    return CovariateSample(
        sample.feats[s],
        np.ascontiguousarray(sample.lp[:, s]),
        sample.ps[s],
        sample.lost[s],
        np.array([0, e - b], dtype=np.int64),
        sample.frailty[s],
    )
