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

import functools

import numpy as np
from scipy.linalg import expm, solve_continuous_lyapunov

from ..params import Inputs
from .kernel import FactorKernel, StepCoefficients, geometric_nodes, step_coefficients


def _generator(x: np.ndarray, k: FactorKernel) -> np.ndarray:
    """Matrix G of the linear ODE y' = G y for y = (m, vec M, 1)."""
    p = Inputs(x)
    lam, eta, a, b, c0 = p.lam, p.eta, p.a, p.b, p.c
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
    p = Inputs(x)
    z0 = p.z0
    y0 = np.r_[z0, np.outer(z0, z0).ravel(), 1.0]
    times = np.asarray(times, dtype=np.float64)
    out = np.empty(times.shape)
    a, b, c0 = p.a, p.b, p.c
    cc = np.kron(k.c, k.c)
    for i, t in enumerate(times.ravel()):
        y = expm(G * t) @ y0
        out.ravel()[i] = a * (cc @ y[n : n + n * n] - 2 * b * k.c @ y[:n] + b * b) + c0
    return out


def discrete_moments(X, h, kernel: FactorKernel | None = None, coefficients: StepCoefficients | None = None):
    r"""Mean and second moment of the factors, and :math:`E[V_k]`, after each step of the engine's scheme.

    One step is :math:`Z_{k+1} = P_k Z_k + \eta\sqrt{V_k}\, I_k` with :math:`P = \mathrm{diag}(e^{-\gamma h})
    - \lambda \varphi c^\top` and :math:`I_k = L_k \xi_k` (:class:`qrh_lib.pricer.kernel.StepCoefficients`), so
    :math:`m_{k+1} = P m_k` and :math:`M_{k+1} = P M_k P^\top + \eta^2 E[V_k]\, L_k L_k^\top`.

    ``X`` is one input vector (15,) or a batch (B, 15). Returns ``(m, M, ev)`` with shapes (N+1, [B,] n),
    (N+1, [B,] n, n) and (N+1, [B]).
    """
    single = np.asarray(X).ndim == 1
    ms, Ms, evs = (np.asarray(v) for v in zip(*_moment_steps(X, h, kernel, coefficients), strict=True))
    return (ms[:, 0], Ms[:, 0], evs[:, 0]) if single else (ms, Ms, evs)


def iter_expected_variance(X, h, kernel: FactorKernel | None = None, coefficients: StepCoefficients | None = None):
    """:math:`E[V_k]` of :func:`discrete_moments`, (B,) for k = 0 .. N, one step at a time and without keeping the
    moments (the engine's control model needs only this, a chunk ahead of the loop; keeping every second moment of
    a large batch costs more than computing it)."""
    return (ev for _, _, ev in _moment_steps(X, h, kernel, coefficients))


def _moment_steps(X, h, kernel, coefficients):
    """Yield ``(m, M, E[V])`` before the first step and after each step (see :func:`discrete_moments`)."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    k = kernel or geometric_nodes()
    h = np.asarray(h, dtype=np.float64)
    coef = coefficients or step_coefficients(k.gamma, h)
    p = Inputs(X)
    lam, eta, a, b, c0 = p.lam, p.eta, p.a, p.b, p.c  # (B,) each
    c = k.c
    m = p.z0.copy()  # (B, n)
    M = m[:, :, None] * m[:, None, :]

    # row-wise products and sums only (no BLAS contractions), so a sample's numbers do not depend on the batch
    def dot_c(u):
        return (u * c).sum(-1)

    def ev_of(m, M):
        return a * (dot_c(dot_c(M)) - 2 * b * dot_c(m) + b * b) + c0

    for j in range(h.size):
        ev = ev_of(m, M)
        yield m, M, ev
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
    yield m, M, ev_of(m, M)


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


def _lyapunov_weight(lam: float, k: FactorKernel) -> float:
    r""":math:`c^\top P c` with :math:`A P + P A^\top + \mathbf 1 \mathbf 1^\top = 0`,
    :math:`A = -\mathrm{diag}(\gamma) - \lambda \mathbf 1 c^\top`: it depends on :math:`\lambda` only."""
    A = -np.diag(k.gamma) - lam * np.outer(np.ones(k.n), k.c)
    P = solve_continuous_lyapunov(A, -np.ones((k.n, k.n)))
    return float(k.c @ P @ k.c)


def critical_feedback(lam, eta, kernel: FactorKernel | None = None):
    r"""The feedback strength :math:`a^*(\lambda, \eta) = 1 / (\eta^2 c^\top P c)` at which the second moments
    start to grow (:func:`second_moment_growth` = 0); larger ``a`` makes the state explosive.

    The second moments of the factors' fluctuations solve :math:`M' = A M + M A^\top + \eta^2 E[V]\,\mathbf 1
    \mathbf 1^\top` with :math:`E[V] = a\,c^\top M c + \dots`; a stationary solution :math:`M = \eta^2 E[V] P`
    exists if and only if :math:`a \eta^2 c^\top P c < 1`, where :math:`P` solves the Lyapunov equation
    :math:`A P + P A^\top + \mathbf 1 \mathbf 1^\top = 0`. Scalars or arrays of the same shape.
    """
    k = kernel or geometric_nodes()
    lam, eta = np.broadcast_arrays(np.asarray(lam, np.float64), np.asarray(eta, np.float64))
    q = np.vectorize(lambda v: _lyapunov_weight(v, k), otypes=[np.float64])(lam)
    out = 1.0 / (eta**2 * q)
    return float(out) if out.ndim == 0 else out


@functools.lru_cache(maxsize=1)
def _default_kernel() -> FactorKernel:
    """The project's 10-factor kernel, built once (feedback ratios are computed per prediction)."""
    return geometric_nodes()


#: lambda range of the tabulated c^T P c (the sampling boxes lie inside; outside it is solved directly).
_TABLE_LAMBDA = (0.25, 5.0)


_TABLES: dict = {}


def lyapunov_table(kernel: FactorKernel | None = None) -> tuple[np.ndarray, np.ndarray]:
    """c^T P c on a fine lambda grid: a cubic spline through 1,025 exact solves, sampled at 16,385 points, so
    that linear interpolation in it is accurate to ~2e-8 relative (tested) at a few microseconds a call."""
    from scipy.interpolate import CubicSpline

    kernel = kernel or _default_kernel()
    key = (kernel.c.tobytes(), kernel.gamma.tobytes())
    if key not in _TABLES:
        coarse = np.linspace(*_TABLE_LAMBDA, 1025)
        spline = CubicSpline(coarse, [_lyapunov_weight(v, kernel) for v in coarse])
        fine = np.linspace(*_TABLE_LAMBDA, 16_385)
        _TABLES[key] = (fine, spline(fine))
    return _TABLES[key]


#: Relative accuracy of the tabulated feedback ratio (measured 2.3e-8; callers deciding a boundary recompute
#: rows closer than this to it exactly).
RATIO_TABLE_TOL = 1e-6


def feedback_ratio(X, kernel: FactorKernel | None = None, exact: bool = False) -> np.ndarray:
    r"""The stability measure :math:`a / a^*(\lambda, \eta) = a \eta^2 c^\top P c` of each row of ``X`` (n, 15)
    (or a scalar for one row): below 1 the second moments settle, at or above 1 they grow without bound.

    At a stationary state :math:`E[V]` is the variance without the feedback's own noise divided by
    :math:`1 - \text{ratio}`: the ratio says how much of the variance the feedback of past returns feeds itself.
    :math:`c^\top P c` depends on :math:`\lambda` only; it is read from a table (relative error below
    :data:`RATIO_TABLE_TOL`) unless ``exact`` or :math:`\lambda` lies outside the table.
    """
    X = np.asarray(X, dtype=np.float64)
    single = X.ndim == 1
    X = np.atleast_2d(X)
    k = kernel or _default_kernel()
    p = Inputs(X)
    lam = p.lam
    inside = (lam >= _TABLE_LAMBDA[0]) & (lam <= _TABLE_LAMBDA[1]) & (not exact)
    q = np.empty(len(X))
    if inside.any():
        grid, table = lyapunov_table(k)
        q[inside] = np.interp(lam[inside], grid, table)
    for i in np.flatnonzero(~inside):
        q[i] = _lyapunov_weight(lam[i], k)
    out = p.a * p.eta**2 * q
    return float(out[0]) if single else out
