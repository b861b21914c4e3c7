r"""The VIX of the factor model: a quadratic form in the factor state, and its exact expectation.

The VIX at :math:`T` is the 30-day variance swap rate of the model,

.. math::

    \mathrm{VIX}_T^2 = \frac1\Delta \int_T^{T+\Delta} E[V_s \mid \mathcal F_T]\, ds, \qquad \Delta = 30/365 .

The factors :math:`Z^i` are a Markov state, and from a state :math:`z = Z_T` the vector
:math:`y(s) = (E[Z_{T+s}],\ \mathrm{vec}\,E[Z_{T+s} Z_{T+s}^\top],\ 1)` of conditional moments solves the linear
system :math:`y' = G y` of :mod:`qrh_lib.pricer.moments` with :math:`y(0) = (z,\ \mathrm{vec}\,z z^\top,\ 1)`,
and :math:`E[V_{T+s} \mid \mathcal F_T] = w^\top y(s)` with :math:`w = (-2ab\,c,\ a\,c \otimes c,\ a b^2 + c_0)`.
So

.. math::

    \mathrm{VIX}_T^2 = u^\top y(0) = q_0 + q_1^\top z + z^\top Q z, \qquad
    u = \frac1\Delta \int_0^\Delta e^{G^\top s}\, w\, ds ,

a quadratic form in the state whose coefficients depend on the inputs only. :math:`u` is the last column of
:math:`\exp\bigl(\begin{smallmatrix} G^\top\Delta & w\Delta \\ 0 & 0 \end{smallmatrix}\bigr)` (Van Loan), once
per input; on the paths the VIX is :math:`\sqrt{q_0 + q_1^\top z + z^\top Q z}`. Its square has an exact mean,
:math:`E[\mathrm{VIX}_T^2] = u^\top e^{G T} y_0`. (As every moment of the model here, this ignores the cap on
:math:`(Z-b)^2`, which the stable domain never reaches.)

The exact mean is a check, not a control variate of the labels. Its variance needs the fourth moments of the
factors, which are infinite over much of the stable domain (only second moments are finite there). There a
regression on :math:`\mathrm{VIX}^2` fits its coefficient on a sample that misses the heavy tail, and the
estimates come out biased upwards: +3.7 vol points at 1,024 paths against the control-free estimator on the
same paths (``benchmarks/vix_estimators.py``), and still about +2 at 8,192. The labels use the spot martingale
:math:`S_T/S_0 - 1` as their control (finite variance, the same as the SPX surface's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import expm

from ..grid import Grid, default_grid, rz_vix_grid, vix_grid  # noqa: F401  (the VIX grids, re-exported)
from ..grid import maturity_index as grid_maturity_index
from ..iv import black_vega, implied_total_vol
from ..params import Inputs, check_inputs
from .config import MCConfig
from .kernel import FactorKernel, geometric_nodes
from .mc import PathStats, QRHEngine
from .moments import _generator
from .pricing import SurfaceResult, _pair_units, concat_results, cv_estimate, surface_from_paths

#: The VIX's window, 30 days.
VIX_WINDOW = 30 / 365

#: Control variates of the VIX estimators (:func:`vix_from_paths`); the first is the labels'.
VIX_CONTROLS = ("spot", "vix2", None)


@dataclass(frozen=True)
class VixCoefficients:
    r""":math:`\mathrm{VIX}^2 = q_0 + q_1^\top z + z^\top Q z` for each input: ``q0`` (B,), ``q1`` (B, n), ``Q``
    (B, n, n) symmetric, and ``u`` (B, d) the coefficients on the symmetric moment vector
    :math:`(z, (z_i z_j)_{i \le j}, 1)`."""

    q0: np.ndarray
    q1: np.ndarray
    Q: np.ndarray
    u: np.ndarray


def _symmetric_basis(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs i <= j, the map P from (m, vech M, 1) to (m, vec M, 1) and the selection L back (d_s = n + n(n+1)/2
    + 1 coordinates instead of n + n^2 + 1: the symmetric second moments are an invariant subspace of G)."""
    iu, ju = np.triu_indices(n)
    d, ds = n + n * n + 1, n + iu.size + 1
    P = np.zeros((d, ds))
    P[:n, :n] = np.eye(n)
    P[n + iu * n + ju, n + np.arange(iu.size)] = 1.0
    P[n + ju * n + iu, n + np.arange(iu.size)] = 1.0
    P[-1, -1] = 1.0
    L = np.zeros((ds, d))
    L[:n, :n] = np.eye(n)
    L[n + np.arange(iu.size), n + iu * n + ju] = 1.0
    L[-1, -1] = 1.0
    return iu, ju, P, L


def _reduced_system(x: np.ndarray, k: FactorKernel, P: np.ndarray, L: np.ndarray):
    """The moment generator on the symmetric coordinates, and the weights of E[V] on them."""
    inp = Inputs(x)
    a, b, c0 = inp.a, inp.b, inp.c
    w = np.concatenate([-2 * a * b * k.c, a * np.kron(k.c, k.c), [a * b * b + c0]])
    return L @ _generator(x, k) @ P, P.T @ w


def vix_coefficients(X, window: float = VIX_WINDOW, kernel: FactorKernel | None = None) -> VixCoefficients:
    """The quadratic form of the VIX squared in the factor state (module docstring), once per input row."""
    X = check_inputs(X)
    if not window > 0:
        raise ValueError(f"window = {window} must be > 0 years")
    k = kernel or geometric_nodes()
    n = k.n
    iu, ju, P, L = _symmetric_basis(n)
    us = []
    for x in X:
        Gs, ws = _reduced_system(x, k, P, L)
        d = Gs.shape[0]
        # Van Loan: the last column of expm([[G^T, w], [0, 0]] window) holds int_0^window e^{G^T s} w ds
        M = np.zeros((d + 1, d + 1))
        M[:d, :d] = Gs.T * window
        M[:d, d] = ws * window
        us.append(expm(M)[:d, d] / window)
    u = np.asarray(us)  # coefficients on (z, z_i z_j for i <= j, 1)
    Q = np.zeros((len(X), n, n))
    Q[:, iu, ju] = u[:, n:-1]
    Q = 0.5 * (Q + Q.transpose(0, 2, 1))  # off-diagonal coefficients split between (i, j) and (j, i)
    return VixCoefficients(u[:, -1], u[:, :n], Q, u)


def vix_squared(factors: np.ndarray, coef: VixCoefficients) -> np.ndarray:
    """VIX squared of factor states ``factors`` (..., n, B, P) (the engine's layout), shape (..., B, P)."""
    z = np.asarray(factors, np.float64)
    lin = np.einsum("bi,...ibp->...bp", coef.q1, z)
    quad = np.einsum("...ibp,bij,...jbp->...bp", z, coef.Q, z)
    return coef.q0[:, None] + lin + quad


def expected_vix_squared(X, maturities, window: float = VIX_WINDOW, kernel: FactorKernel | None = None,
                         coef: VixCoefficients | None = None) -> np.ndarray:
    r""":math:`E[\mathrm{VIX}_T^2] = u^\top e^{G T} y_0` exactly, shape (B, n_T) (maturities increasing)."""
    X = check_inputs(X)
    k = kernel or geometric_nodes()
    coef = coef or vix_coefficients(X, window, k)
    T = np.asarray(maturities, np.float64)
    iu, ju, P, L = _symmetric_basis(k.n)
    out = np.empty((X.shape[0], T.size))
    for r, x in enumerate(X):
        Gs, _ = _reduced_system(x, k, P, L)
        z0 = Inputs(x).z0
        y = np.r_[z0, z0[iu] * z0[ju], 1.0]
        t = 0.0
        for j, tj in enumerate(T):  # y(T_j) = e^{G (T_j - T_{j-1})} y(T_{j-1})
            y = expm(Gs * (tj - t)) @ y
            t = tj
            out[r, j] = coef.u[r] @ y
    return out


@dataclass
class VixResult:
    """VIX futures (n, n_T) and out-of-the-money VIX options (n, n_K * n_T, strike-major on the VIX grid): normalised
    prices (units of the future), Black-76 implied vols, standard errors; ``reason`` as in SurfaceResult."""

    future: np.ndarray
    future_se: np.ndarray
    price: np.ndarray
    price_se: np.ndarray
    iv: np.ndarray
    iv_se: np.ndarray
    reason: np.ndarray


def maturity_index(grid: Grid, sim_maturities) -> np.ndarray:
    """Where each maturity of the VIX grid lies among the simulated (SPX) maturities; each must be one of them."""
    try:
        return grid_maturity_index(sim_maturities, grid.maturities)
    except ValueError as err:
        raise ValueError(f"the VIX grid's maturities must be among the SPX grid's (the simulation's): {err}") from None


def vix_from_paths(stats: PathStats, X, vix: Grid, sim_maturities, kernel: FactorKernel | None = None,
                   coef: VixCoefficients | None = None, control: str | None = "spot") -> VixResult:
    r"""VIX futures and options from the factor states of simulated paths (``record_factors=True``).

    On each path :math:`\mathrm{VIX}_T = \sqrt{q_0 + q_1^\top Z_T + Z_T^\top Q Z_T}`. The future
    :math:`F = E[\mathrm{VIX}_T]` and the option prices :math:`E[(w(\mathrm{VIX}_T - F e^k))^+] / F` (calls
    :math:`w = 1` for :math:`k \ge 0`, puts below) are regression control-variate estimates with the control
    ``control`` (a key of :data:`VIX_CONTROLS`): ``"spot"``, the spot martingale :math:`S_T/S_0 - 1` (the default);
    ``"vix2"``, :math:`\mathrm{VIX}_T^2 - E[\mathrm{VIX}_T^2]`, biased where the factors' fourth moments are
    infinite (module docstring); ``None``, no control. Antithetic partners are averaged first.
    Strikes are set relative to the estimated future, as quotes are relative to the traded one. Implied vols are
    Black-76 vols on the future; their standard errors are the delta method's, the future's own error included
    (:func:`vix_option_prices`).
    """
    if stats.factors is None:
        raise ValueError("the paths carry no factor states: simulate with record_factors=True")
    X = check_inputs(X)
    k = kernel or geometric_nodes()
    coef = coef or vix_coefficients(X, kernel=k)
    idx = maturity_index(vix, sim_maturities)
    v2 = np.maximum(vix_squared(stats.factors[idx], coef), 0.0)  # (n_Tv, B, P)
    level = np.sqrt(v2).transpose(1, 0, 2)  # (B, n_Tv, P)
    if control == "spot":
        control_paths = [np.exp(stats.log_spot[idx]).transpose(1, 0, 2) - 1.0]
    elif control == "vix2":
        control_paths = [v2.transpose(1, 0, 2)
                         - expected_vix_squared(X, vix.maturities, kernel=k, coef=coef)[:, :, None]]
    elif control is None:
        control_paths = []
    else:
        raise ValueError(f"control = {control!r}; allowed: {VIX_CONTROLS}")
    pair = stats.antithetic
    future, future_se = cv_estimate(_pair_units(level, pair), [_pair_units(c, pair) for c in control_paths])
    B, n_T = future.shape
    price, price_se = np.empty((B, vix.size)), np.empty((B, vix.size))
    for j in range(n_T):
        p, se = vix_option_prices(level[:, j], future[:, j], vix.log_moneyness[:, j],
                                  [c[:, j] for c in control_paths], pair)
        price[:, j::n_T], price_se[:, j::n_T] = p, se  # strike-major: option i at maturity j is i * n_T + j
    kf = vix.flat_log_moneyness()[None, :]
    sqrt_t = np.sqrt(vix.flat_maturities())[None, :]
    s, reason = implied_total_vol(np.broadcast_to(kf, price.shape), price)
    iv = s / sqrt_t
    with np.errstate(invalid="ignore", divide="ignore"):
        iv_se = np.where(np.isfinite(iv), price_se / (black_vega(kf, s) * sqrt_t), np.nan)
    return VixResult(future, future_se, price, price_se, iv, iv_se, reason)


def vix_option_prices(level: np.ndarray, future: np.ndarray, log_strikes, controls: list[np.ndarray],
                      antithetic: bool) -> tuple[np.ndarray, np.ndarray]:
    r"""Out-of-the-money VIX options at one maturity from the VIX on each path, ``level`` (B, P): normalised
    prices :math:`p = E[(w(\mathrm{VIX} - F e^k))^+] / F` at strikes relative to the estimated future ``future``
    (B,), and their standard errors, both shape (B, n_K). ``controls``: zero-mean controls (B, P).

    The standard error counts the future's own error, which moves the strike and the normalisation: by the delta
    method the estimator's influence per path is :math:`g - p + p'(F)(\mathrm{VIX} - F)` with
    :math:`g = (w(\mathrm{VIX} - F e^k))^+ / F` and :math:`p'(F) = -(w e^k \Pr[\text{in the money}] + p) / F`.
    (For deep out-of-the-money options of volatile states this term dominates.)
    """
    k = np.asarray(log_strikes, np.float64)
    pc = [_pair_units(c, antithetic) for c in controls]
    level_u = _pair_units(level, antithetic)
    price, price_se = np.empty((level.shape[0], k.size)), np.empty((level.shape[0], k.size))
    for i, ki in enumerate(k):
        w = 1.0 if ki >= 0 else -1.0
        strike = (future * np.exp(ki))[:, None]
        g = np.maximum(w * (level - strike), 0.0) / future[:, None]
        itm = (w * (level - strike) > 0).mean(-1)
        p, _ = cv_estimate(_pair_units(g, antithetic), pc)
        dp_df = -(w * np.exp(ki) * itm + p) / future
        _, se = cv_estimate(_pair_units(g, antithetic) + dp_df[:, None] * level_u, pc)
        price[:, i], price_se[:, i] = p, se
    return price, price_se


def price_spx_vix_with_engine(engine: QRHEngine, X, vix: Grid, seed: int = 0, index=None,
                              progress=None) -> tuple[SurfaceResult, VixResult]:
    """As :func:`price_spx_vix`, reusing an engine (and its compiled graph); ``progress`` is called with the number of
    rows done."""
    maturity_index(vix, engine.grid.maturities)  # refuse a VIX grid off the SPX expiries before simulating
    X = check_inputs(X)
    index = np.arange(len(X)) if index is None else np.asarray(index, dtype=np.int64)
    spx, vx = [], []
    for lo in range(0, len(X), engine.config.batch_size):
        sl = slice(lo, min(lo + engine.config.batch_size, len(X)))
        stats = engine.simulate(X[sl], index[sl], seed=seed, record_factors=True)
        spx.append(surface_from_paths(stats, engine.grid))
        vx.append(vix_from_paths(stats, X[sl], vix, engine.grid.maturities, engine.kernel))
        if progress is not None:
            progress(sl.stop - sl.start)
    return concat_results(spx), concat_results(vx)


def price_spx_vix(X, grid: Grid | None = None, vix: Grid | None = None, config: MCConfig | None = None,
                  seed: int = 0, index=None) -> tuple[SurfaceResult, VixResult]:
    """SPX surfaces on ``grid`` and VIX futures and options on ``vix`` from one simulation (the same paths), in
    batches of ``config.batch_size``. The VIX grid's maturities must be among the SPX grid's. The SPX numbers are
    those of :func:`qrh_lib.pricing.price_surfaces` with the same arguments."""
    grid = grid or default_grid()
    vix = vix or vix_grid()
    return price_spx_vix_with_engine(QRHEngine(grid, config), X, vix, seed, index)


def mc_vix_surface(X, grid: Grid | None = None, n_paths: int | None = None, seed: int = 0):
    """Monte Carlo VIX futures and implied vols of the QRH model.

    Parameters
    ----------
    X : array_like, shape (n, 15)
        Inputs in the order (lambda, eta, a, b, c, z0_1, ..., z0_10).
    grid : Grid, optional
        The VIX grid (log-strikes relative to the future); default :func:`vix_grid`.
    n_paths : int, optional
        Paths per parameter set; ``None`` is the default of :class:`MCConfig`.
    seed : int
        Row ``i`` depends only on ``(seed, i)``.

    Returns
    -------
    futures : ndarray (n, n_T)
    iv, iv_se : ndarray (n, n_K * n_T)
        Black-76 implied vols of out-of-the-money VIX options and their standard errors (NaN where none).

    The paths are those of :func:`qrh_lib.pricing.mc_iv_surface` on the default SPX grid when the VIX grid's
    maturities are among its expiries (as the default VIX grid's are), so both come from one simulation with
    :func:`price_spx_vix`; otherwise the simulation runs to the VIX grid's maturities.
    """
    vix = grid or vix_grid()
    spx = default_grid()
    try:
        maturity_index(vix, spx.maturities)
    except ValueError:
        spx = Grid(vix.maturities, np.zeros((1, vix.n_T)))  # an at-the-money SPX option at each VIX expiry
    config = MCConfig() if n_paths is None else MCConfig(n_paths=int(n_paths))
    _, res = price_spx_vix(X, spx, vix, config, seed)
    return res.future, res.iv, res.iv_se
