"""Variance of the sIPTW log hazard ratio that accounts for the estimated propensity score.

M-estimation (Shu, Young, Toh & Wang 2021, Biometrics 77:1101; Hajage et al. 2018, Biom J
60:1151): the logistic propensity model, the stabilization constants and the weighted Cox
model are solved together as one system of estimating equations
``sum_i psi_i(theta) = 0`` in ``theta = (gamma, c, beta)``:

* ``gamma`` (q,), the PS coefficients (intercept first): ``psi_i = x_i (A_i - e_i)``;
* ``c`` (m,), one constant per stabilized group G (both arms for ATE, the controls for
  ATT, the treated for ATC, everyone for ATO / ATM; none when unstabilized):
  ``psi_i = 1{i in G} (c_G w~_i - 1)``, w~ the raw weight;
* ``beta``, the Cox log-HR: the weighted partial-likelihood score ``U``, whose
  per-patient (asymptotically independent) contribution is ``w_i r_i``, r the score
  residual (Lin & Wei 1989; Efron or Breslow ties).

The covariance is the sandwich ``A^-1 B A^-T`` with ``A = -sum_i d psi_i / d theta``
and ``B = sum_i phi_i phi_i'`` (``phi_i`` the per-patient contributions above).  The
Cox row of ``A`` carries the derivative of ``U`` with respect to the weights: for every
patient j, ``dU / dw_j = r_j`` exactly (both tie methods; the Efron terms' shares
``1 - k/d`` are those of the score residual), so ``dU / dgamma = sum_j r_j c_G(j)
(dw~_j / dlogit_j) x_j`` and ``dU / dc_G = sum_{j in G} r_j w~_j``, and
``-dU / dbeta`` is the Cox information.  Everything is analytic and vectorised; only
the last row of ``A^-1`` is needed, so the variance is ``z'z`` with
``z = Phi A^-T e_beta`` (n,), the influence values; ``A`` is block lower-triangular
(the c block diagonal), so ``A^-T e_beta`` is a back substitution whose PS block is a
product with the PS fit's own model covariance (the inverse of its information at the
returned coefficients), and ``Phi`` (n x (q + m + 1)) is never formed.

Trimmed patients stay in the PS equations and leave the others (the trimming set is
locally constant in ``gamma``).  Percentile truncation is not a smooth estimating
equation and is refused by :func:`estimators.siptw` with ``variance="mestimation"``.
Under ``ps_method="firth"`` the ML score's sandwich is used at the Firth estimate: the
Firth penalty's score is O(1) against the O(n) likelihood score, so both estimators
share the ML influence function to first order.
"""

from __future__ import annotations

import numpy as np

from . import _cox_kernels as k
from .weighting import _raw_weights, _stabilized_groups


def cox_score_residuals(
    time: np.ndarray,
    event: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    beta: float,
    order: np.ndarray,
    efron: bool,
) -> np.ndarray:
    """Unweighted Cox score residuals of a one-covariate model, shape (n,), row order.

    ``time`` (n,) months, ``event`` int8 (n,), ``x`` (n,) the covariate, ``w`` (n,) > 0,
    ``order`` the kernels' row order (time descending).
    """
    xs = np.ascontiguousarray(x[order, None], dtype=np.float64)
    ts = time[order]
    starts, newstrat = k._tie_groups(ts, np.zeros(ts.size, dtype=np.int64))
    r = k._score_residuals(xs, w[order], event[order], starts, newstrat, np.array([beta]), efron)
    out = np.empty(ts.size)
    out[order] = r[:, 0]
    return out


def siptw_mestimation_se(
    Z: np.ndarray,
    a: np.ndarray,
    ps: np.ndarray,
    logit: np.ndarray,
    estimand: str,
    stabilized: bool,
    keep: np.ndarray | None,
    w: np.ndarray,
    resid: np.ndarray,
    information: float,
    ps_cov: np.ndarray,
) -> float:
    """M-estimation (stacked PS + stabilization + weighted Cox) SE of the log-HR.

    Parameters
    ----------
    Z : ndarray, shape (n, q - 1)
        PS design without its intercept (``PropensityModel.design.X``).
    a : ndarray of bool, shape (n,)
        Treatment.
    ps, logit : ndarray, shape (n,)
        Fitted propensity scores and their logit.
    estimand, stabilized
        As the weights were built (:func:`estimators.weighting.iptw_weights_from_logit`,
        without truncation).
    keep : ndarray of bool (n,) or None
        Patients kept by trimming (None: everyone).
    w : ndarray, shape (n,)
        The analysis weights (0 for trimmed patients).
    resid : ndarray, shape (n,)
        Unweighted Cox score residuals at the estimate (any value for trimmed patients).
    information : float
        Weighted Cox information at the estimate.
    ps_cov : ndarray, shape (q, q)
        Inverse of the logistic (Fisher) information ``X' diag(e (1 - e)) X`` at the PS
        estimate, ``X = [1, Z]`` (the PS fit's model-based covariance, intercept first).

    Returns
    -------
    float
        Standard error of the log hazard ratio.
    """
    raw, draw, _ = _raw_weights(logit, a, estimand)
    r = resid if keep is None else np.where(keep, resid, 0.0)
    groups = _stabilized_groups(a, estimand, keep) if stabilized else []
    # A is block lower-triangular (gamma; c, diagonal; beta): solve A' l = e_beta by back
    # substitution, then z = Phi l without forming Phi
    l_beta = 1.0 / information
    scale = np.ones(a.size)  # c_G(i), 1 outside every group
    lam = np.zeros(a.size)  # l_c of patient i's group, 0 outside every group
    for g in groups:
        total = np.add.reduce(raw, where=g)
        scale[g] = np.count_nonzero(g) / total
        lam[g] = -l_beta * np.add.reduce(r * raw, where=g) / total
    # A_c,gamma' l_c + A_beta,gamma' l_beta = -X' (c_G dw~/dlogit (l_c + l_beta r)), and
    # A_gamma,gamma^-1 = ps_cov; X = [1, Z] is never formed
    u = scale * draw * (lam + l_beta * r)
    l_gamma = ps_cov @ np.r_[u.sum(), u @ Z]
    z = (a - ps) * (l_gamma[0] + Z @ l_gamma[1:]) + lam * (scale * raw - 1.0) + l_beta * w * r
    return float(np.sqrt(z @ z))
