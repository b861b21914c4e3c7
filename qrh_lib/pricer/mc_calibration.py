r"""Calibration by Monte Carlo alone: the reference that says how well the model itself fits a smile, and where
an unconstrained fit lands, whatever a surrogate's training box.

Weighted least squares in implied vol, in vol points,

.. math::

    \min_{v \in [0, 1]^{15}} \tfrac12 \sum_j \bar w_j \big(100(\sigma^{MC}_j(x(v)) - \sigma^\star_j)\big)^2,

with the model's vols :math:`\sigma^{MC}` priced by the engine on *common random numbers* (the same seed at every
evaluation, so the objective is a smooth function of the inputs and finite differences are meaningful), and the
Jacobian by forward differences, the 15 neighbours of a point priced in one batch. The inputs are scaled to
the unit cube of ``bounds``; the feedback :math:`a` is searched as a fraction of its critical value,
:math:`a = r\, a^*(\lambda, \eta)` with :math:`r \in [r_{lo}, \kappa]` (:math:`\kappa` the stable domain's
margin), so every state evaluated has finite second moments whatever :math:`\lambda` and :math:`\eta` do
(:func:`qrh_lib.pricer.moments.critical_feedback` of the engine's own kernel, hence of its :math:`\alpha`).

A fit costs a few hundred surfaces: it is for studies (the market-calibration notebook, ``benchmarks/market_fit.py``),
not for production, where the surrogate does the same in milliseconds inside its domain. The vols it reaches fit
the noise of its own paths too: judge a fit by re-pricing its inputs on independent paths (another seed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from ..domain import STABILITY_MARGIN
from ..grid import Grid
from ..iv import VOL_POINTS
from ..params import COL_A, N_INPUTS, PARAM_NAMES, VALID_RANGES, Inputs
from .config import MCConfig
from .kernel import geometric_nodes
from .moments import critical_feedback
from .pricing import price_with_engine

#: Residual, in vol points, given to a quote where the model's paths give no implied vol (kept finite so the
#: search can leave such states; counted in :attr:`MCFit.n_missing`).
MISSING_PENALTY = 5.0


@dataclass(frozen=True)
class MCFit:
    """Outcome of :func:`mc_calibrate`.

    ``x`` the calibrated inputs (15,); ``feedback_ratio`` a / a*(lambda, eta); ``iv`` the model's vols at the
    quotes on the fit's own paths (flat, strike-major; NaN where none); ``rmse_pts`` their RMS error to the target
    over the quoted points, in vol points, unweighted; ``weighted_rmse_pts`` the objective's; ``at_bound`` the
    names of the inputs within 0.5% of a bound of the search (``"a"`` meaning the ratio's); ``n_missing`` quotes
    without a model vol at ``x``; ``nfev``/``njev`` evaluations, ``seconds`` wall time, ``message`` the solver's.
    """

    x: np.ndarray
    feedback_ratio: float
    iv: np.ndarray
    rmse_pts: float
    weighted_rmse_pts: float
    at_bound: tuple
    n_missing: int
    nfev: int
    njev: int
    seconds: float
    message: str


class _Problem:
    def __init__(self, grid, target, weights, lo, hi, config, seed, ratio_lo, margin):
        from .mc import QRHEngine

        self.engine = QRHEngine(grid, config.replace(batch_size=N_INPUTS))
        self.kernel = geometric_nodes(config.alpha, config.n_factors, config.x)
        self.lo, self.hi = lo, hi
        self.ratio = (ratio_lo, margin)
        self.seed = seed
        self.quoted = np.isfinite(target)
        w = np.where(self.quoted, weights, 0.0)
        self.sqrt_w = np.sqrt(w / w[self.quoted].mean())
        self.target = np.where(self.quoted, target, 0.0)

    def x_of(self, V):
        V = np.atleast_2d(V)
        X = self.lo + V * (self.hi - self.lo)
        r_lo, r_hi = self.ratio
        ratio = r_lo + V[:, COL_A] * (r_hi - r_lo)  # the unit cube's coordinate of a is the ratio a / a*
        inputs = Inputs(X)
        a_star = critical_feedback(inputs.lam, inputs.eta, self.kernel)
        X[:, COL_A] = np.minimum(ratio * a_star, VALID_RANGES["a"][1])
        return X

    def vols(self, V):
        X = self.x_of(V)  # every row on the same paths: sample index 0 of the seed
        return price_with_engine(self.engine, X, seed=self.seed, index=np.zeros(len(X), np.int64)).iv

    def residuals(self, iv):
        r = VOL_POINTS * (iv - self.target)
        r = np.where(np.isfinite(r), r, MISSING_PENALTY)
        return np.where(self.quoted, self.sqrt_w * r, 0.0)


def mc_calibrate(target_iv, grid: Grid, x0, bounds, weights=None, config: MCConfig | None = None, seed: int = 0,
                 ratio_lo: float = 0.01, margin: float = STABILITY_MARGIN, max_nfev: int = 30, ftol: float = 1e-4,
                 fd_step: float = 1e-3, progress=None) -> MCFit:
    """Fit the 15 inputs to ``target_iv`` (flat over ``grid``, strike-major, NaN where not quoted) by Monte Carlo.

    Parameters
    ----------
    target_iv, weights : array_like, shape (grid.size,)
        Target vols (decimals) and their weights (default equal; e.g. 1 / spread^2 for bid-ask quotes).
    grid : Grid
        The quotes as a grid (any maturities, any log-strikes per maturity): the engine prices exactly there.
    x0 : array_like, shape (15,)
        The start (e.g. a surrogate's calibration); its ``a`` is read as the ratio a/a* of ``x0``.
    bounds : array_like, shape (15, 2)
        The search box, inside the engine's valid ranges (:data:`qrh_lib.params.VALID_RANGES`); the row of ``a``
        is ignored: ``a`` is searched as the ratio a/a* in ``[ratio_lo, margin]``.
    config : MCConfig
        The engine (paths, time step, alpha); default 4,096 paths.
    seed : int
        The common random numbers of every evaluation.
    max_nfev, ftol, fd_step
        The solver's budget of Jacobian evaluations (trust-region reflective), its relative tolerance on the
        objective, and the forward-difference step in the unit cube.
    progress : callable, optional
        Called with (evaluation count, weighted RMSE in vol points) after each evaluation.
    """
    t0 = time.perf_counter()
    config = config or MCConfig(n_paths=4096)
    target = np.asarray(target_iv, np.float64).reshape(-1)
    if target.size != grid.size:
        raise ValueError(f"target_iv has {target.size} values, the grid {grid.size}")
    weights = np.ones_like(target) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    if weights.shape != target.shape or np.any(weights[np.isfinite(target)] <= 0):
        raise ValueError("weights must have the target's shape and be positive where the target is quoted")
    b = np.asarray(bounds, np.float64)
    if b.shape != (N_INPUTS, 2) or np.any(b[:, 1] <= b[:, 0]):
        raise ValueError(f"bounds must have shape ({N_INPUTS}, 2) with lower < upper in every row")
    for j, name in enumerate(PARAM_NAMES):
        lo, hi = VALID_RANGES[name]
        if j != COL_A and not (lo <= b[j, 0] and b[j, 1] <= hi):
            raise ValueError(f"bounds of {name} [{b[j, 0]}, {b[j, 1]}] leave the engine's range [{lo}, {hi}]")
    if not 0 < ratio_lo < margin <= 1:
        raise ValueError(f"need 0 < ratio_lo ({ratio_lo}) < margin ({margin}) <= 1")
    prob = _Problem(grid, target, weights, b[:, 0], b[:, 1], config, seed, ratio_lo, margin)
    x0 = np.asarray(x0, np.float64).reshape(N_INPUTS)
    v0 = (x0 - prob.lo) / (prob.hi - prob.lo)
    start = Inputs(x0)
    r0 = start.a / critical_feedback(start.lam, start.eta, prob.kernel)
    v0[COL_A] = (r0 - ratio_lo) / (margin - ratio_lo)
    v0 = np.clip(v0, 0.0, 1.0)
    last = {}
    count = [0]

    def fun(v):  # one surface; kept for the Jacobian at the same point
        if last.get("key") != v.tobytes():
            last.update(key=v.tobytes(), r=prob.residuals(prob.vols(v[None, :])[0]))
            count[0] += 1
            if progress is not None:
                progress(count[0], float(np.sqrt(np.mean(last["r"][prob.quoted] ** 2))))
        return last["r"]

    def jac(v):  # the 15 neighbours in one batch, forward differences (backward at an upper bound)
        r = fun(v)
        steps = np.where(v + fd_step <= 1.0, fd_step, -fd_step)
        R = np.array([prob.residuals(iv) for iv in prob.vols(v + np.diag(steps))])
        return (R - r).T / steps

    sol = least_squares(fun, v0, jac=jac, bounds=(0.0, 1.0), method="trf", x_scale=1.0, ftol=ftol, xtol=1e-6,
                        gtol=1e-8, max_nfev=max_nfev)
    x = prob.x_of(sol.x)[0]
    iv = prob.vols(sol.x[None, :])[0]
    err = VOL_POINTS * (iv - target)[prob.quoted]
    err = np.where(np.isfinite(err), err, MISSING_PENALTY)
    at = tuple(PARAM_NAMES[j] for j in range(N_INPUTS) if min(sol.x[j], 1.0 - sol.x[j]) < 0.005)
    return MCFit(x=x, feedback_ratio=float(ratio_lo + sol.x[COL_A] * (margin - ratio_lo)), iv=iv,
                 rmse_pts=float(np.sqrt(np.mean(err**2))),
                 weighted_rmse_pts=float(np.sqrt(np.mean(prob.residuals(iv)[prob.quoted] ** 2))), at_bound=at,
                 n_missing=int(np.sum(~np.isfinite(iv[prob.quoted]))), nfev=int(sol.nfev), njev=int(sol.njev or 0),
                 seconds=time.perf_counter() - t0, message=str(sol.message))
