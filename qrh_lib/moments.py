r"""Exact first and second moments of the factors, and the expected variance :math:`\xi(t) = E[V_t]`.

With :math:`A = -\mathrm{diag}(\gamma) - \lambda\,\mathbf 1 c^\top`, the mean :math:`m = E[Z_t]` (vector of
factors) and second moment :math:`M = E[Z_t Z_t^\top]` solve the closed linear system

.. math::

    m' = A m, \qquad M' = A M + M A^\top + \eta^2 E[V_t]\, \mathbf 1 \mathbf 1^\top, \qquad
    E[V_t] = a\,(c^\top M c - 2 b\, c^\top m + b^2) + c_0 ,

because every factor receives the same noise :math:`\eta\sqrt{V_t}\,dW_t`. (Exact while the cap on
:math:`(Z-b)^2` is not reached, which it is not in the sampling boxes.) The scheme's own discrete moments
follow the same algebra step by step (:func:`discrete_moments`), which the tests compare with the paths.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import expm

from .kernel import FactorKernel, StepCoefficients, geometric_nodes, step_coefficients
from .params import N_INPUTS


def _generator(x: np.ndarray, k: FactorKernel) -> np.ndarray:
    """Matrix G of the linear ODE y' = G y for y = (m, vec M, 1)."""
    lam, eta, a, b, c0 = x[:5]
    n = k.n
    c = k.c
    A = -np.diag(k.gamma) - lam * np.outer(np.ones(n), c)
    I = np.eye(n)
    d = n + n * n + 1
    G = np.zeros((d, d))
    G[:n, :n] = A
    G[n : n + n * n, n : n + n * n] = np.kron(A, I) + np.kron(I, A)  # vec(A M + M A^T), row-major vec
    ones = np.ones(n * n)
    # eta^2 E[V] 1 1^T with E[V] = a c^T M c - 2 a b c^T m + a b^2 + c0
    G[n : n + n * n, n : n + n * n] += eta**2 * a * np.outer(ones, np.kron(c, c))
    G[n : n + n * n, :n] += -2 * eta**2 * a * b * np.outer(ones, c)
    G[n : n + n * n, -1] = eta**2 * (a * b * b + c0)
    return G


def expected_variance(x, times, kernel: FactorKernel | None = None) -> np.ndarray:
    r""":math:`E[V_t]` at ``times`` for one input vector ``x`` (15,) of the continuous-time factor model."""
    x = np.asarray(x, dtype=np.float64)
    k = kernel or geometric_nodes()
    n = k.n
    G = _generator(x, k)
    z0 = x[5:]
    y0 = np.r_[z0, np.outer(z0, z0).ravel(), 1.0]
    times = np.asarray(times, dtype=np.float64)
    out = np.empty(times.shape)
    lam, eta, a, b, c0 = x[:5]
    cc = np.kron(k.c, k.c)
    for i, t in enumerate(times.ravel()):
        y = expm(G * t) @ y0
        out.ravel()[i] = a * (cc @ y[n : n + n * n] - 2 * b * k.c @ y[:n] + b * b) + c0
    return out


def discrete_moments(X, h, kernel: FactorKernel | None = None, coefficients: StepCoefficients | None = None):
    r"""Mean and second moment of the factors, and :math:`E[V_k]`, after each step of the engine's scheme.

    One step is :math:`Z_{k+1} = P_k Z_k + \eta\sqrt{V_k}\, I_k` with :math:`P = \mathrm{diag}(e^{-\gamma h})
    - \lambda \varphi c^\top` and :math:`I_k = L_k \xi_k` (:class:`qrh_lib.kernel.StepCoefficients`), so
    :math:`m_{k+1} = P m_k` and :math:`M_{k+1} = P M_k P^\top + \eta^2 E[V_k]\, L_k L_k^\top`.

    ``X`` is one input vector (15,) or a batch (B, 15). Returns ``(m, M, ev)`` with shapes (N+1, [B,] n),
    (N+1, [B,] n, n) and (N+1, [B]).
    """
    X = np.asarray(X, dtype=np.float64)
    single = X.ndim == 1
    X = np.atleast_2d(X)
    k = kernel or geometric_nodes()
    h = np.asarray(h, dtype=np.float64)
    coef = coefficients or step_coefficients(k.gamma, h)
    lam, eta, a, b, c0 = (X[:, j] for j in range(5))
    c = k.c
    m = X[:, 5:].copy()  # (B, n)
    M = m[:, :, None] * m[:, None, :]

    # row-wise products and sums only (no BLAS contractions), so a sample's numbers do not depend on the batch
    def dot_c(u):
        return (u * c).sum(-1)

    def ev_of(m, M):
        return a * (dot_c(dot_c(M)) - 2 * b * dot_c(m) + b * b) + c0

    ms, Ms, evs = [m], [M], []
    for j in range(h.size):
        ev = ev_of(m, M)
        evs.append(ev)
        e, phi, L = coef.decay[j], coef.phi[j], coef.load[j]
        cm = dot_c(m)
        Mc = dot_c(M)  # (B, n); M is symmetric
        cMc = dot_c(Mc)
        lp = lam[:, None] * phi[None, :]  # (B, n): lambda phi
        m = e * m - lp * cm[:, None]
        eMc = e * Mc
        M = (e[:, None] * M * e[None, :] - lp[:, :, None] * eMc[:, None, :] - eMc[:, :, None] * lp[:, None, :]
             + (lp[:, :, None] * lp[:, None, :]) * cMc[:, None, None]
             + (eta**2 * ev)[:, None, None] * (L @ L.T)[None])
        ms.append(m)
        Ms.append(M)
    evs.append(ev_of(m, M))
    ms, Ms, evs = np.asarray(ms), np.asarray(Ms), np.asarray(evs)
    return (ms[:, 0], Ms[:, 0], evs[:, 0]) if single else (ms, Ms, evs)


def second_moment_growth(X, kernel: FactorKernel | None = None) -> np.ndarray:
    r"""Growth rate (per year) of the factors' second moments: the largest real part of the eigenvalues of
    the linear system :math:`M' = A M + M A^\top + \eta^2 a\, (c^\top M c)\, \mathbf 1 \mathbf 1^\top`.

    It depends on :math:`(\lambda, \eta, a)` only. Where it is positive the feedback of past returns on
    volatility outruns the mean reversion: :math:`E[V_t]` grows like :math:`e^{\rho t}` without bound, the
    distribution of :math:`V` is heavy-tailed and the (capped) paths spend time at the cap, so implied vols are
    neither smooth in the inputs nor estimable to a fixed accuracy by Monte Carlo. Where it is negative,
    :math:`E[V_t]` settles to a finite level. Returns one rate per row of ``X`` (n, 15) (or a scalar).
    """
    X = np.asarray(X, dtype=np.float64)
    single = X.ndim == 1
    X = np.atleast_2d(X)
    k = kernel or geometric_nodes()
    block = slice(k.n, k.n + k.n * k.n)  # the second moments' rows and columns of the generator
    out = np.array([np.linalg.eigvals(_generator(x, k)[block, block]).real.max() for x in X])
    return out[0] if single else out


def critical_feedback(lam: float, eta: float, kernel: FactorKernel | None = None) -> float:
    """The feedback strength ``a`` at which the second moments start to grow (:func:`second_moment_growth` = 0)
    for the given ``lam`` and ``eta``; larger ``a`` makes the state explosive."""
    x = np.zeros(N_INPUTS)
    x[0], x[1] = lam, eta

    def growth(a):
        x[2] = a
        return second_moment_growth(x, kernel)

    lo, hi = 0.0, 1.0
    while growth(hi) <= 0:
        lo, hi = hi, 2 * hi
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if growth(mid) <= 0 else (lo, mid)
    return lo
