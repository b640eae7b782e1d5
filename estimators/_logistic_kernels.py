"""numba kernels for logistic regression: maximum likelihood and Firth-penalised (Newton)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._column_kernels import _columns_times, _transposed_dot, _weighted_gram

CONVERGED, MAX_ITER, SINGULAR = 0, 1, 2
LOG_BLOCK = 256  # patients per log() in the log-likelihood (see _evaluate)


@njit(cache=True)
def _evaluate(
    X: np.ndarray, y: np.ndarray, beta: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_evaluate_t` transposing ``X`` itself."""
    return _evaluate_t(np.ascontiguousarray(X.T), y, beta)


@njit(cache=True, error_model="numpy")
def _evaluate_t(
    Z: np.ndarray, y: np.ndarray, beta: np.ndarray, information: bool = True
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Log-likelihood, eta = X beta (n,), probabilities (n,), score (p,), information (p, p).

    ``Z`` (p, n) is the design transposed (C-contiguous): eta is built column by
    column and the score and information are vectorised sums over patients
    (:func:`~estimators._column_kernels._transposed_dot`,
    :func:`~estimators._column_kernels._weighted_gram`).  One ``exp`` per patient,
    written to avoid overflow for any eta; the ``log(1 + a)`` terms (``a = exp(-|eta|)``
    in (0, 1]) are summed as the log of their product, one ``log`` per
    :data:`LOG_BLOCK` patients (a product of at most 2^LOG_BLOCK: no overflow; relative
    error about LOG_BLOCK x 1e-16 per block).  ``information=False`` skips the
    information (returned empty): its Gram sum is most of the cost.
    """
    n = Z.shape[1]
    eta = _columns_times(Z, beta)
    prob = np.empty(n)
    resid = np.empty(n)
    wt = np.empty(n)
    ll = 0.0
    prod = 1.0
    for i in range(n):
        e = eta[i]
        a = np.exp(-abs(e))
        prod *= 1.0 + a
        if (i + 1) % LOG_BLOCK == 0:
            ll -= np.log(prod)
            prod = 1.0
        if e >= 0.0:
            pr = 1.0 / (1.0 + a)
            ll += y[i] * e - e
        else:
            pr = a / (1.0 + a)
            ll += y[i] * e
        prob[i] = pr
        resid[i] = y[i] - pr
        wt[i] = a / ((1.0 + a) * (1.0 + a))  # p (1 - p) without cancellation
    ll -= np.log(prod)
    info = _weighted_gram(Z, wt, n) if information else np.empty((0, 0))
    return ll, eta, prob, _transposed_dot(Z, resid), info


@njit(cache=True)
def _cholesky_solve(H: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, bool]:
    """Solve H x = g for symmetric positive-definite H; (x, False) if H is not PD."""
    p = H.shape[0]
    L = np.zeros((p, p))
    scale = 0.0
    for j in range(p):
        scale = max(scale, H[j, j])
    for j in range(p):
        s = H[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if not s > 1e-13 * scale:
            return np.zeros(p), False
        L[j, j] = np.sqrt(s)
        for i in range(j + 1, p):
            t = H[i, j]
            for k in range(j):
                t -= L[i, k] * L[j, k]
            L[i, j] = t / L[j, j]
    return _cholesky_solve_factored(L, g)


@njit(cache=True)
def _cholesky_solve_factored(L: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, bool]:
    """Solve (L L') x = g given the lower Cholesky factor L."""
    p = L.shape[0]
    z = np.empty(p)
    for i in range(p):
        t = g[i]
        for k in range(i):
            t -= L[i, k] * z[k]
        z[i] = t / L[i, i]
    x = np.empty(p)
    for i in range(p - 1, -1, -1):
        t = z[i]
        for k in range(i + 1, p):
            t -= L[k, i] * x[k]
        x[i] = t / L[i, i]
    return x, True


@njit(cache=True)
def _newton_logistic(
    X: np.ndarray, y: np.ndarray, tol: float, max_iter: int
) -> tuple[np.ndarray, int, int, float, np.ndarray, np.ndarray, np.ndarray]:
    """Newton-Raphson with step halving from ``beta = 0``.

    Returns ``(beta, n_iter, status, loglik, eta, prob, information)``, the last four
    evaluated at the returned ``beta``, except the information after a last step below
    ``tol``: that evaluation only confirms convergence, so the information of the step
    before is kept (it differs by a relative ``tol``) instead of another Gram sum.
    ``status`` is ``CONVERGED`` (last step below ``tol * max(1, max|beta|)`` in every
    coordinate), ``MAX_ITER`` or ``SINGULAR`` (information not positive definite:
    collinear columns at iteration 0, separation later).
    """
    p = X.shape[1]
    Z = np.ascontiguousarray(X.T)
    beta = np.zeros(p)
    step = np.zeros(p)
    ll_old = -np.inf
    n_iter = 0
    halvings = 0
    H = np.empty((0, 0))
    while True:
        # the convergence test below does not depend on this evaluation: when it will
        # pass, the information (a Gram sum) is not needed
        last = n_iter > 0 and np.max(np.abs(step)) <= tol * max(1.0, np.max(np.abs(beta)))
        ll, eta, prob, g, Hn = _evaluate_t(Z, y, beta, not last)
        if not last:
            H = Hn
        if not ll >= ll_old - 1e-12 * abs(ll_old) and halvings < 40:
            step *= 0.5  # step halving: never accept a lower log-likelihood
            beta = beta - step
            halvings += 1
            continue
        halvings = 0
        if n_iter > 0 and np.max(np.abs(step)) <= tol * max(1.0, np.max(np.abs(beta))):
            return beta, n_iter, CONVERGED, ll, eta, prob, H
        if n_iter == max_iter:
            return beta, n_iter, MAX_ITER, ll, eta, prob, H
        step, ok = _cholesky_solve(H, g)
        if not ok:
            return beta, n_iter, SINGULAR, ll, eta, prob, H
        beta = beta + step
        ll_old = ll
        n_iter += 1


@njit(cache=True)
def _firth_evaluate(
    X: np.ndarray, y: np.ndarray, beta: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """Firth's penalised log-likelihood ``l(beta) + log|I(beta)| / 2`` and its parts.

    Returns ``(penalised loglik, eta (n,), prob (n,), modified score (p,), information
    (p, p), ok)``; the modified score is ``X'(y - p + h (1/2 - p))`` with ``h`` the
    diagonal of the hat matrix ``W^1/2 X I^-1 X' W^1/2`` (Firth 1993; Heinze & Schemper
    2002).  ``ok`` is False when the information is not positive definite.
    """
    n, p = X.shape
    ll, eta, prob, g, H = _evaluate(X, y, beta)
    L = np.zeros((p, p))
    scale = 0.0
    for j in range(p):
        scale = max(scale, H[j, j])
    logdet = 0.0
    for j in range(p):
        s = H[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if not s > 1e-13 * scale:
            return -np.inf, eta, prob, g, H, False
        L[j, j] = np.sqrt(s)
        logdet += np.log(L[j, j])
        for i in range(j + 1, p):
            t = H[i, j]
            for k in range(j):
                t -= L[i, k] * L[j, k]
            L[i, j] = t / L[j, j]
    inv = np.empty((p, p))  # I^-1 from the Cholesky factor, column by column
    e = np.zeros(p)
    for j in range(p):
        e[:] = 0.0
        e[j] = 1.0
        col, _ = _cholesky_solve_factored(L, e)
        inv[:, j] = col
    XI = X @ inv  # (n, p): x_i' I^-1 x_i = sum_a XI[i, a] X[i, a]
    r = np.empty(n)
    for i in range(n):
        q = 0.0
        for a in range(p):
            q += XI[i, a] * X[i, a]
        pr = prob[i]
        h = pr * (1.0 - pr) * q
        r[i] = y[i] - pr + h * (0.5 - pr)
    score = X.T @ r
    return ll + logdet, eta, prob, score, H, True


@njit(cache=True)
def _penalised_newton_step(
    X: np.ndarray, prob: np.ndarray, H: np.ndarray, g: np.ndarray
) -> tuple[np.ndarray, bool]:
    """Newton step on Firth's penalised log-likelihood with its exact Hessian
    (:func:`_penalised_neg_hessian`).  Returns ``(step, ok)``; ``ok`` is False when the
    negative Hessian is not positive definite (then the caller keeps the modified-score
    step)."""
    neg, ok = _penalised_neg_hessian(X, prob, H)
    if not ok:
        return g, False
    return _cholesky_solve(neg, g)


@njit(cache=True)
def _penalised_neg_hessian(
    X: np.ndarray, prob: np.ndarray, H: np.ndarray
) -> tuple[np.ndarray, bool]:
    """Minus the exact Hessian of Firth's penalised log-likelihood, (p, p).

    With ``w = p(1-p)``, ``c = w(1-2p)``, ``M = I^-1`` and ``q_i = x_i' M x_i``, the Hessian
    of ``l + log|I| / 2`` is ``-I + T1 - tr(M D_a M D_b) / 2`` where
    ``T1_ab = sum_i [w_i(1-2p_i)^2 - 2 w_i^2] q_i x_ia x_ib / 2`` and
    ``D_a = sum_i c_i x_ia x_i x_i'``: ``O(n p^3 + p^4)``.  Returns ``(neg, ok)``; ``ok``
    is False when the information ``H`` is singular.
    """
    n, p = X.shape
    M = np.empty((p, p))
    e = np.zeros(p)
    for j in range(p):
        e[:] = 0.0
        e[j] = 1.0
        col, ok = _cholesky_solve(H, e)
        if not ok:
            return M, False
        M[:, j] = col
    XM = X @ M
    neg = H.copy()  # minus the Hessian
    D = np.zeros((p, p, p))
    for i in range(n):
        w = prob[i] * (1.0 - prob[i])
        q = 0.0
        for a in range(p):
            q += XM[i, a] * X[i, a]
        t1 = 0.5 * (w * (1.0 - 2.0 * prob[i]) ** 2 - 2.0 * w * w) * q
        c = w * (1.0 - 2.0 * prob[i])
        for a in range(p):
            xa = X[i, a]
            for b in range(p):
                neg[a, b] -= t1 * xa * X[i, b]
                for k in range(b + 1):
                    D[a, b, k] += c * xa * X[i, b] * X[i, k]
    for a in range(p):
        for b in range(p):
            for k in range(b + 1, p):
                D[a, b, k] = D[a, k, b]
    U = np.empty((p, p, p))
    for a in range(p):
        U[a] = M @ D[a] @ M
    for a in range(p):
        for b in range(a + 1):
            s = 0.0
            for m in range(p):
                for k in range(p):
                    s += U[a, m, k] * D[b, k, m]
            neg[a, b] += 0.5 * s
            if b != a:
                neg[b, a] += 0.5 * s
    return neg, True


@njit(cache=True)
def _escape_saddle(
    X: np.ndarray,
    y: np.ndarray,
    beta: np.ndarray,
    prob: np.ndarray,
    H: np.ndarray,
    pll: float,
    max_step: float,
) -> tuple[np.ndarray, bool]:
    """A point of higher penalised log-likelihood than a stationary ``beta``, if any.

    Near separation the penalised log-likelihood is not concave and the modified score
    can vanish at a saddle point.  There the exact Hessian has a positive eigenvalue;
    steps of ``max_step, max_step / 2, ...`` along its eigenvector (both signs) are
    tried until one ascends.  Returns ``(new beta, True)``, or ``(beta, False)`` at a
    local maximum (the negative Hessian positive semi-definite) or when no step ascends.
    """
    neg, ok = _penalised_neg_hessian(X, prob, H)
    if not ok:
        return beta, False
    vals, vecs = np.linalg.eigh(neg)
    if not vals[0] < -1e-8 * max(1.0, np.max(np.abs(vals))):
        return beta, False
    v = vecs[:, 0] / np.max(np.abs(vecs[:, 0]))
    t = max_step
    for _ in range(30):
        for sign in (1.0, -1.0):
            new = beta + sign * t * v
            npll = _firth_evaluate(X, y, new)[0]
            if npll > pll:
                return new, True
        t *= 0.5
    return beta, False


FISHER_STEPS = 10
"""Modified-score steps before Firth's fit switches to exact-Hessian Newton steps."""


@njit(cache=True)
def _firth_logistic(
    X: np.ndarray, y: np.ndarray, tol: float, max_iter: int, max_step: float
) -> tuple[np.ndarray, int, int, float, np.ndarray, np.ndarray, np.ndarray]:
    """Firth-penalised logistic regression by modified-score Newton steps from 0.

    Each step solves ``I(beta) step = U*(beta)`` (Fisher scoring on the modified score,
    as R ``logistf``); after :data:`FISHER_STEPS` steps, whose convergence is only linear
    when the penalty's curvature is comparable to ``I`` (small samples near separation),
    a step solves the exact Hessian of the penalised log-likelihood instead
    (:func:`_penalised_newton_step`) where it is negative definite.  A step is capped at
    ``max_step`` in every coordinate (R ``logistf``'s ``maxstep``) and halved while the penalised
    log-likelihood decreases.  Returns ``(beta, n_iter, status, penalised loglik, eta,
    prob, information)`` as :func:`_newton_logistic`; ``CONVERGED`` when the last step
    is below ``tol * max(1, max|beta|)`` in every coordinate, or when no fraction of
    a step below ``sqrt(tol) * max(1, max|beta|)`` increases the penalised
    log-likelihood any more (the maximum within rounding; R ``logistf``'s default
    ``xconv`` is 1e-4).
    """
    p = X.shape[1]
    beta = np.zeros(p)
    pll, eta, prob, g, H, ok = _firth_evaluate(X, y, beta)
    if not ok:
        return beta, 0, SINGULAR, pll, eta, prob, H
    for it in range(1, max_iter + 1):
        step, ok = _cholesky_solve(H, g)
        if not ok:
            return beta, it - 1, SINGULAR, pll, eta, prob, H
        if it > FISHER_STEPS:  # slow (linear) progress: Newton on the exact Hessian
            exact, ok = _penalised_newton_step(X, prob, H, g)
            if ok:
                step = exact
        big = np.max(np.abs(step))
        if big > max_step:
            step *= max_step / big
        size = np.max(np.abs(step)) / max(1.0, np.max(np.abs(beta)))
        new = beta + step
        npll, neta, nprob, ng, nH, ok = _firth_evaluate(X, y, new)
        halvings = 0
        # I(beta) is not the Hessian of the penalty: a full step can overshoot, even
        # oscillate around the maximum, so only strict ascent is accepted
        floor = tol * max(1.0, np.max(np.abs(beta)))  # below this no step matters
        while (not ok or npll <= pll) and halvings < 40 and np.max(np.abs(step)) > floor:
            step *= 0.5
            new = beta + step
            npll, neta, nprob, ng, nH, ok = _firth_evaluate(X, y, new)
            halvings += 1
        if not ok or npll <= pll:  # no ascent along the modified score
            if size > np.sqrt(tol):
                return beta, it, MAX_ITER if ok else SINGULAR, pll, eta, prob, H
            # ... within rounding of a stationary point: a maximum, or a saddle to leave
            new, moved = _escape_saddle(X, y, beta, prob, H, pll, max_step)
            if not moved:
                return beta, it, CONVERGED, pll, eta, prob, H
            npll, neta, nprob, ng, nH, ok = _firth_evaluate(X, y, new)
            beta, pll, eta, prob, g, H = new, npll, neta, nprob, ng, nH
            continue
        beta, pll, eta, prob, g, H = new, npll, neta, nprob, ng, nH
        if np.max(np.abs(step)) <= tol * max(1.0, np.max(np.abs(beta))):
            new, moved = _escape_saddle(X, y, beta, prob, H, pll, max_step)
            if not moved:
                return beta, it, CONVERGED, pll, eta, prob, H
            npll, neta, nprob, ng, nH, ok = _firth_evaluate(X, y, new)
            beta, pll, eta, prob, g, H = new, npll, neta, nprob, ng, nH
    return beta, max_iter, MAX_ITER, pll, eta, prob, H
