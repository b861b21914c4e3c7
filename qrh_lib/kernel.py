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

ALPHA = 0.51
N_FACTORS = 10
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
