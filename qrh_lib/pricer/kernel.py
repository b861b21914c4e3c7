r"""The fractional kernel of the rough model and its sum-of-exponentials approximation.

.. math::

    K(t) = \frac{t^{\alpha-1}}{\Gamma(\alpha)} \approx K^n(t) = \sum_{i=1}^n c_i e^{-\gamma_i t}

with the geometric nodes of Abi Jaber (2019) used by Rosenbaum & Zhang (2021), Appendix A:

.. math::

    c_i = \frac{x^{(1-\alpha)(i-n/2)} (1 - x^{\alpha-1})}{(1-\alpha)\Gamma(\alpha)\Gamma(1-\alpha)}, \qquad
    \gamma_i = \frac{1-\alpha}{2-\alpha} x^{i-1-n/2} \frac{x^{2-\alpha} - 1}{x^{1-\alpha} - 1}.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gamma as Gamma
from scipy.special import gammainc

from ..params import N_FACTORS

ALPHA = 0.51
#: Optimal geometric ratio x* for alpha = 0.51 as reported by Rosenbaum & Zhang (2021), by n.
RZ_X_STAR = {5: 18.71, 10: 3.92, 20: 2.10, 50: 1.45, 100: 1.26}


@dataclass(frozen=True)
class FactorKernel:
    """Weights ``c`` and mean-reversion speeds ``gamma`` of the n-factor kernel."""

    alpha: float
    x: float
    c: np.ndarray
    gamma: np.ndarray

    @property
    def n(self) -> int:
        return self.c.size

    def __call__(self, t):
        """Evaluate :math:`K^n(t)`."""
        t = np.asarray(t, dtype=np.float64)
        return np.exp(-np.multiply.outer(t, self.gamma)) @ self.c


def geometric_nodes(alpha: float = ALPHA, n: int = N_FACTORS, x: float | None = None) -> FactorKernel:
    """Geometric nodes :math:`(c_i, \\gamma_i)_{i=1..n}` (Rosenbaum & Zhang 2021, Appendix A).

    ``x`` defaults to the reported optimum for ``alpha = 0.51`` (e.g. 3.92 for ``n = 10``).
    """
    if not 0.5 < alpha < 1.0:
        raise ValueError(f"alpha = {alpha} is outside its allowed range (0.5, 1)")
    if int(n) != n or n < 1:
        raise ValueError(f"n = {n} must be a positive integer")
    if x is None:
        if alpha != ALPHA or n not in RZ_X_STAR:
            raise ValueError(f"no reported x* for alpha={alpha}, n={n}; pass x (> 1) explicitly")
        x = RZ_X_STAR[n]
    if not x > 1.0:
        raise ValueError(f"x = {x} must be > 1")
    i = np.arange(1, n + 1, dtype=np.float64)
    c = x ** ((1 - alpha) * (i - n / 2)) * (1 - x ** (alpha - 1)) / ((1 - alpha) * Gamma(alpha) * Gamma(1 - alpha))
    g = (1 - alpha) / (2 - alpha) * x ** (i - 1 - n / 2) * (x ** (2 - alpha) - 1) / (x ** (1 - alpha) - 1)
    c.setflags(write=False)
    g.setflags(write=False)
    return FactorKernel(alpha=alpha, x=x, c=c, gamma=g)


def fractional_kernel(t, alpha: float = ALPHA):
    r"""The exact kernel :math:`K(t) = t^{\alpha-1}/\Gamma(\alpha)`."""
    t = np.asarray(t, dtype=np.float64)
    return t ** (alpha - 1) / Gamma(alpha)


def l2_error(kernel: FactorKernel, T: float = 0.1, t_min: float = 0.0) -> float:
    r""":math:`\|K^n - K\|_{L^2(t_{min},T)}` in closed form.

    With :math:`I(u) = \int_0^u (K^n - K)^2`,

    .. math::

        I(u) = \sum_{ij} c_i c_j \frac{1 - e^{-(\gamma_i+\gamma_j)u}}{\gamma_i+\gamma_j}
        - 2 \sum_i c_i \gamma_i^{-\alpha} P(\alpha, \gamma_i u) + \frac{u^{2\alpha-1}}{(2\alpha-1)\Gamma(\alpha)^2}

    where :math:`P` is the regularised lower incomplete gamma function. Near 0 the exact kernel's square is
    barely integrable (:math:`K^2 \sim t^{2\alpha-2}`), so the norm on :math:`(0, T)` is dominated by the
    first instants; ``t_min > 0`` measures the fit over the horizons that options see.
    """
    if not 0.0 <= t_min < T:
        raise ValueError(f"need 0 <= t_min < T, got t_min={t_min}, T={T}")
    a, c, g = kernel.alpha, kernel.c, kernel.gamma
    gs = g[:, None] + g[None, :]

    def integral_to(u):
        if u == 0.0:
            return 0.0
        knkn = float(c @ (-np.expm1(-gs * u) / gs) @ c)
        knk = float(np.sum(c * g ** (-a) * gammainc(a, g * u)))
        kk = u ** (2 * a - 1) / ((2 * a - 1) * Gamma(a) ** 2)
        return knkn - 2 * knk + kk

    return float(np.sqrt(max(integral_to(T) - integral_to(t_min), 0.0)))


@dataclass(frozen=True)
class StepCoefficients:
    r"""Coefficients of the exponential (ETD) factor step on a time grid with steps ``h`` (N,).

    Over a step of length :math:`h`, with :math:`V` and :math:`Z` held at their values at the start,
    each factor's linear equation :math:`dZ^i = -\gamma_i Z^i dt + (\dots) dt + \eta\sqrt V dW` is solved
    exactly:

    .. math::

        Z^i_{k+1} = e^{-\gamma_i h} Z^i_k - \lambda Z_k \varphi_i + \eta\sqrt{V_k}\, I^i_k, \qquad
        \varphi_i = \frac{1 - e^{-\gamma_i h}}{\gamma_i}, \qquad
        I^i_k = \int_{t_k}^{t_{k+1}} e^{-\gamma_i (t_{k+1}-s)} dW_s .

    The vector :math:`(\Delta W, I^1, \dots, I^n)` is Gaussian with covariance
    :math:`\mathrm{Cov}(\Delta W, I^i) = \varphi_i`,
    :math:`\mathrm{Cov}(I^i, I^j) = (1 - e^{-(\gamma_i+\gamma_j) h})/(\gamma_i + \gamma_j)`. It is drawn from two
    normals per step: :math:`\Delta W = \sqrt h\, \xi_0` exactly, and
    :math:`I = \beta \Delta W + u\, \xi_1` with :math:`\beta = \varphi / h` (the regression on
    :math:`\Delta W`) and :math:`u` the leading eigenvector of the residual covariance, which is rank one to
    first order in :math:`\gamma h` (its next eigenvalue is below 1e-4 of the leading one at daily steps).
    Rows of ``load`` (N, n, R) and ``dw`` (N, R) are the loadings of the R normals of each step.
    Rosenbaum & Zhang's implicit step takes the same form (:func:`step_coefficients`).
    """

    decay: np.ndarray  # (N, n) exp(-gamma h)
    phi: np.ndarray  # (N, n) (1 - exp(-gamma h)) / gamma
    load: np.ndarray  # (N, n, R) loadings of the normals on I^i
    dw: np.ndarray  # (N, R) loadings of the normals on dW

    @property
    def n_normals(self) -> int:
        return self.dw.shape[1]


SCHEMES = ("etd", "implicit")
#: The engine's default factor step (chosen by the convergence study, benchmarks/convergence.py).
DEFAULT_SCHEME = "implicit"


def _linear_part(g: np.ndarray, h: np.ndarray, scheme: str):
    """Decay ``d`` and drift weight ``phi`` (N, n) of each factor over steps ``h`` (see :class:`StepCoefficients`)."""
    if scheme == "implicit":
        D = 1.0 / (1.0 + np.outer(h, g))
        return D, h[:, None] * D
    if scheme == "etd":
        return np.exp(-np.outer(h, g)), -np.expm1(-np.outer(h, g)) / g
    raise ValueError(f"scheme = {scheme!r} is unknown; allowed: {SCHEMES}")


def step_coefficients(gamma, h, scheme: str = DEFAULT_SCHEME) -> StepCoefficients:
    r"""The factor step's coefficients on the steps ``h`` (see :class:`StepCoefficients`).

    ``scheme="implicit"`` gives Rosenbaum & Zhang's step in the same form, from one normal a step: with
    :math:`D = 1/(1 + \gamma h)`, decay :math:`D`, :math:`\varphi = h D` and :math:`I = D \Delta W`.
    """
    g = np.asarray(gamma, dtype=np.float64)
    h = np.atleast_1d(np.asarray(h, dtype=np.float64))
    decay, phi = _linear_part(g, h, scheme)
    if scheme == "implicit":
        return StepCoefficients(decay, phi, (np.sqrt(h)[:, None] * decay)[..., None], np.sqrt(h)[:, None])
    gs = g[:, None] + g[None, :]
    load = np.zeros((h.size, g.size, 2))
    for hk in np.unique(h):
        rows = h == hk
        ph = phi[rows][0]
        resid = -np.expm1(-gs * hk) / gs - np.outer(ph, ph) / hk
        w, v = np.linalg.eigh(resid)
        u = np.sqrt(max(w[-1], 0.0)) * v[:, -1]
        u = u if u.sum() >= 0 else -u  # a fixed sign: the numbers do not depend on the eigen-solver
        load[rows] = np.stack([ph / np.sqrt(hk), u], axis=-1)
    dw = np.stack([np.sqrt(h), np.zeros_like(h)], axis=-1)
    return StepCoefficients(decay, phi, load, dw)


def aggregate_coefficients(fine: StepCoefficients, refine: int, gamma, scheme: str = "etd") -> StepCoefficients:
    """Coefficients of the coarse steps that each cover ``refine`` consecutive fine steps, driven by the fine
    steps' normals (``refine * R`` normals a coarse step, in the fine order): the coarse increments
    :math:`\\Delta W` and :math:`I^i` are exact sums of the fine ones, so both grids see one Brownian path.
    The fine steps must be an ETD grid's; the coarse ones follow ``scheme``."""
    g = np.asarray(gamma, dtype=np.float64)
    N, n, R = fine.load.shape
    if N % refine:
        raise ValueError(f"{N} fine steps are not a multiple of refine = {refine}")
    Nc = N // refine
    hf = (fine.dw[:, 0] ** 2).reshape(Nc, refine)  # fine step lengths
    hc = hf.sum(1)
    dw = fine.dw.reshape(Nc, refine * R)
    decay, phi = _linear_part(g, hc, scheme)
    if scheme == "implicit":  # I = D dW
        return StepCoefficients(decay, phi, decay[:, :, None] * dw[:, None, :], dw)
    # e^{-gamma (t_{k+1} - s_{m+1})}: decay from the end of fine sub-step m to the end of the coarse step
    after = np.cumsum(hf[:, ::-1], axis=1)[:, ::-1] - hf  # time left after sub-step m
    w = np.exp(-after[:, :, None] * g[None, None, :])  # (Nc, refine, n)
    load = (w[..., None] * fine.load.reshape(Nc, refine, n, R)).transpose(0, 2, 1, 3).reshape(Nc, n, refine * R)
    return StepCoefficients(decay, phi, load, dw)
