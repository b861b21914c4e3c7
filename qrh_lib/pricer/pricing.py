r"""Monte Carlo implied-volatility surfaces of the QRH model.

For each option of the grid the engine returns the out-of-the-money payoff :math:`Y` (puts for
:math:`k < 0`, calls for :math:`k \ge 0`) on every path, and zero-mean controls:

- ``spot``: the terminal spot, :math:`S_T - S_0`;
- ``bs``: the same payoff under Black-Scholes with the deterministic variance :math:`E[V_t]` of the scheme
  (exact, :mod:`qrh_lib.pricer.moments`), driven by the same Brownian path, minus its closed-form price;
- ``hedge`` (optional, ``steps_per_hedge > 0``): the gains of a discretely rebalanced delta hedge.

With antithetic paths the unit of sampling is the pair, whose payoffs and controls are averaged first. The
price is the regression (control-variate) estimator

.. math::

    \hat\pi = \bar Y - \hat\beta^\top \bar C, \qquad \hat\beta = \widehat{\mathrm{Cov}}(C)^{-1}
    \widehat{\mathrm{Cov}}(C, Y),

and the implied vol's standard error follows by the delta method,
:math:`\mathrm{se}(\hat\pi) / (\mathrm{vega}\,\sqrt{T})`. What each control buys, and at what cost, is measured
by ``benchmarks/bench_engine.py``.

Standard errors (``errors``, :data:`ERRORS`). The regression's own residual error
:math:`\hat\sigma_{Y - \hat\beta^\top C} / \sqrt{n}` (``"classic"``) is fitted on the same pairs it judges: where
a few pairs carry a control's extreme values (a payoff that few paths reach, or a heavy tail), the fit passes
through them, their residuals vanish and the error comes out far too small: against the truth set, 0.45-0.71% of
the labels at 512-4,096 paths lie beyond 4 standard errors, some beyond 100 (``benchmarks/standard_errors.py``).
The robust errors (``"robust"``; 0.07-0.12% beyond 4; the labels' default once the truth sets are re-priced with them,
:data:`qrh_lib.pricer.config.LABEL_ERRORS`) are

- the jackknife's: each pair's leave-one-out change of :math:`\hat\pi`, in closed form from its leverage
  :math:`h_i` and residual :math:`e_i`, :math:`\delta_i = (1/n - \bar C^\top S^{-1} (C_i - \bar C))\, e_i / (1 - h_i)`
  with :math:`S` the controls' centred cross-products; without controls it is the plain error exactly;
- where fewer than ``MIN_PAYING_PAIRS`` pairs pay (:mod:`qrh_lib.pricer.config`), in the model or in its
  Black-Scholes twin, the count's Poisson noise gets :math:`\kappa` = ``PSEUDO_HITS`` more hits,
  :math:`\mathrm{se}^2 \mathrel{+}= \kappa\,(\bar Y / h)^2` for :math:`h` paying pairs, and where moreover one
  pair has a leverage above ``MAX_LEVERAGE`` (the hedge and Black-Scholes controls are nonzero on a few pairs only,
  and the fit hangs on one of them) the spot is the only control. The leverages depend on the controls alone, so
  this choice does not look at the payoffs; elsewhere the prices are the regression's, as before.

``"classic"`` keeps the former estimator for comparison (every control everywhere, the residual error).

What no standard error sees: in about a tenth of the stable states (strong feedback), part of the spot's mean
lives on paths rarer than one in 100,000 (its sample mean stays 1-2% below 1 at 98,304 paths), so the spot and
hedge controls, whose means are exact only with those paths, leave labels and truth set biased alike there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..grid import Grid, default_grid
from ..iv import black_price, black_vega, count_reasons, implied_total_vol
from .config import LABEL_ERRORS, MAX_LEVERAGE, MIN_PAYING_PAIRS, PSEUDO_HITS
from .mc import MCConfig, PathStats, QRHEngine

#: Variance-reduction modes, from none to all.
ESTIMATORS = {"plain": (), "spot_cv": ("spot",), "hedge_cv": ("hedge",), "bs_cv": ("bs",),
              "both_cv": ("spot", "hedge"), "spot_bs_cv": ("spot", "bs"), "all_cv": ("spot", "hedge", "bs")}
#: Standard errors of the prices (module docstring): "robust" (the labels', with the guards of
#: :data:`qrh_lib.pricer.config.SPX_ESTIMATOR`) and "classic" (the estimator before issue 20, kept for comparison).
ERRORS = ("robust", "classic")


@dataclass
class SurfaceResult:
    """Prices, implied vols and their standard errors for a batch; arrays of shape (n, n_K * n_T)."""

    price: np.ndarray
    price_se: np.ndarray
    iv: np.ndarray
    iv_se: np.ndarray
    reason: np.ndarray  # -1 where the implied vol exists, else an index into iv.NAN_REASONS

    def nan_reasons(self) -> dict[str, int]:
        return count_reasons(self.reason)


def concat_results(parts: list):
    """Batches of a result dataclass (:class:`SurfaceResult`, :class:`qrh_lib.pricer.vix.VixResult`) as one."""
    cls = type(parts[0])
    return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))


def _pair_units(a: np.ndarray, antithetic: bool) -> np.ndarray:
    """Average antithetic partners (last axis: first half and second half), the i.i.d. sampling units."""
    if not antithetic:
        return a
    h = a.shape[-1] // 2
    return 0.5 * (a[..., :h] + a[..., h:])


def otm_payoffs(stats: PathStats, grid: Grid) -> np.ndarray:
    """Out-of-the-money payoffs, shape (B, n_opt, P), strike-major like the flat grid."""
    k = grid.log_moneyness  # (n_K, n_T)
    spot = np.exp(stats.log_spot)  # (n_T, B, P)
    # max(w (S - K), 0) with w = 1 for calls and -1 for puts: one pass, not both payoffs and a choice
    w = np.where(grid.is_call(), 1.0, -1.0)
    n_T, B, P = spot.shape
    pay = np.empty((B, k.size, P))
    for i in range(grid.n_K):
        for j in range(n_T):
            np.maximum(w[i, j] * (spot[j] - np.exp(k[i, j])), 0.0, out=pay[:, i * n_T + j])
    return pay


def bs_twin(stats: PathStats, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    r"""The out-of-the-money payoffs under Black-Scholes with variance :math:`E[V_t]` driven by the same Brownian
    path, shape (B, n_opt, P), and their exact prices, shape (B, n_opt)."""
    ref = PathStats(stats.log_ref, None, stats.antithetic)
    pay = otm_payoffs(ref, grid)  # (B, n_opt, P)
    s = np.sqrt(stats.ref_total_var)  # (n_T, B)
    s_flat = np.tile(s.T, (1, grid.n_K))  # (B, n_opt), strike-major
    k = grid.flat_log_moneyness()[None, :]
    return pay, black_price(k, s_flat, np.broadcast_to(k >= 0, s_flat.shape))


def bs_control(stats: PathStats, grid: Grid) -> np.ndarray:
    """The Black-Scholes twin's payoff minus its exact price (:func:`bs_twin`): a zero-mean control, shape
    (B, n_opt, P)."""
    pay, exact = bs_twin(stats, grid)
    return pay - exact[:, :, None]


def cv_estimate(y: np.ndarray, controls: list[np.ndarray], errors: str = "classic", leverage: bool = False):
    """Control-variate regression estimator along the last axis (controls have known mean 0).

    Returns ``(mean, standard error)`` with the leading shape of ``y``; ``errors`` is ``"classic"`` (the residual
    error) or ``"jackknife"`` (leave-one-out, from the leverages: module docstring). With ``leverage`` (jackknife
    only), also the largest leverage of a sample, which depends on the controls alone.
    """
    if errors not in ("classic", "jackknife"):
        raise ValueError(f"errors = {errors!r}; allowed: 'classic', 'jackknife'")
    if leverage and errors != "jackknife":
        raise ValueError("leverage=True needs errors='jackknife'")
    n = y.shape[-1]
    if not controls:
        out = y.mean(-1), y.std(-1, ddof=1) / np.sqrt(n)
        return (*out, np.full(out[0].shape, 1.0 / n)) if leverage else out
    # row-wise sums only (no BLAS contractions), so each sample's numbers do not depend on the batch
    m = len(controls)
    yc = y - y.mean(-1, keepdims=True)
    Cc = [C - C.mean(-1, keepdims=True) for C in controls]
    cov_cc = np.empty((*y.shape[:-1], m, m))
    cov_cy = np.empty((*y.shape[:-1], m))
    for i in range(m):
        cov_cy[..., i] = (Cc[i] * yc).sum(-1) / (n - 1)
        for j in range(i + 1):
            cov_cc[..., i, j] = cov_cc[..., j, i] = (Cc[i] * Cc[j]).sum(-1) / (n - 1)
    scale = np.trace(cov_cc, axis1=-2, axis2=-1)[..., None, None]
    reg = cov_cc + (1e-12 * scale + 1e-300) * np.eye(m)
    beta = np.linalg.solve(reg, cov_cy[..., None])[..., 0]
    resid = y - sum(beta[..., i, None] * controls[i] for i in range(m))
    if errors == "classic":
        return resid.mean(-1), resid.std(-1, ddof=1 + m) / np.sqrt(n)
    # leave pair i out: the estimate moves by delta_i = (1/n - Cbar' S^-1 Cc_i) e_i / (1 - h_i), with
    # S = (n - 1) cov_cc, the OLS residual e_i and the leverage h_i = 1/n + Cc_i' S^-1 Cc_i
    s_inv = np.linalg.inv(reg) / (n - 1)
    c_bar = [C.mean(-1, keepdims=True) for C in controls]
    s_inv_cc = [sum(s_inv[..., i, j, None] * Cc[j] for j in range(m)) for i in range(m)]
    lev = 1.0 / n + sum(Cc[i] * s_inv_cc[i] for i in range(m))
    weight = 1.0 / n - sum(c_bar[i] * s_inv_cc[i] for i in range(m))
    e = yc - sum(beta[..., i, None] * Cc[i] for i in range(m))
    delta = weight * e / np.maximum(1.0 - lev, 1e-12)
    jack = np.sqrt((n - 1) / n * ((delta - delta.mean(-1, keepdims=True)) ** 2).sum(-1))
    return (resid.mean(-1), jack, lev.max(-1)) if leverage else (resid.mean(-1), jack)


def surface_from_paths(stats: PathStats, grid: Grid, estimator: str | None = None,
                       errors: str = LABEL_ERRORS) -> SurfaceResult:
    """Prices and implied vols of every grid option from simulated paths.

    ``estimator`` (a key of :data:`ESTIMATORS`) defaults to every control the paths carry; ``errors`` (one of
    :data:`ERRORS`) is how the standard errors are made, and where the controls apply (module docstring).
    """
    if estimator is None:
        estimator = "spot_bs_cv" if stats.hedge is None else "all_cv"
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator = {estimator!r}; allowed: {sorted(ESTIMATORS)}")
    if errors not in ERRORS:
        raise ValueError(f"errors = {errors!r}; allowed: {ERRORS}")
    use = ESTIMATORS[estimator]
    if "hedge" in use and stats.hedge is None:
        raise ValueError(f"estimator {estimator!r} needs hedge gains: simulate with steps_per_hedge > 0")
    pay = _pair_units(otm_payoffs(stats, grid), stats.antithetic)  # (B, n_opt, n)
    controls = {}
    if "spot" in use:
        spot = np.exp(stats.log_spot) - 1.0  # (n_T, B, P)
        spot = np.broadcast_to(spot[None], (grid.n_K, *spot.shape)).reshape(grid.size, *spot.shape[1:])
        controls["spot"] = _pair_units(spot.transpose(1, 0, 2), stats.antithetic)
    if "hedge" in use:
        controls["hedge"] = _pair_units(stats.hedge, stats.antithetic)
    twin = None
    if "bs" in use or (errors == "robust" and stats.log_ref is not None):
        twin, exact = bs_twin(stats, grid)
        if "bs" in use:
            controls["bs"] = _pair_units(twin - exact[:, :, None], stats.antithetic)
    if errors == "classic":
        price, price_se = cv_estimate(pay, list(controls.values()))
    else:
        price, price_se, lev = cv_estimate(pay, list(controls.values()), errors="jackknife", leverage=True)
        # the paying pairs, in the model and in its Black-Scholes twin
        paying = (pay > 0).sum(-1)
        twin_paying = paying if twin is None else (_pair_units(twin, stats.antithetic) > 0).sum(-1)
        few = np.minimum(paying, twin_paying) < MIN_PAYING_PAIRS
        if few.any():
            drop = few & (lev > MAX_LEVERAGE)  # the fit hangs on one pair: the spot control alone
            if drop.any():
                p_spot, se_spot = cv_estimate(pay, [c for name, c in controls.items() if name == "spot"],
                                              errors="jackknife")
                price, price_se = np.where(drop, p_spot, price), np.where(drop, se_spot, price_se)
            hit_mean = pay.mean(-1) / np.maximum(paying, 1)  # the mean payoff of a paying pair, over n
            price_se = np.where(few, np.sqrt(price_se**2 + PSEUDO_HITS * hit_mean**2), price_se)
    k = grid.flat_log_moneyness()[None, :]
    sqrt_t = np.sqrt(grid.flat_maturities())[None, :]
    s, reason = implied_total_vol(np.broadcast_to(k, price.shape), price)
    iv = s / sqrt_t
    # delta method on the out-of-the-money price: d price / d sigma = vega(s) * sqrt(T)
    with np.errstate(invalid="ignore", divide="ignore"):
        iv_se = price_se / (black_vega(k, s) * sqrt_t)
    iv_se = np.where(np.isfinite(iv), iv_se, np.nan)
    return SurfaceResult(price, price_se, iv, iv_se, reason)


def price_surfaces(X, grid: Grid | None = None, config: MCConfig | None = None, seed: int = 0, index=None,
                   estimator: str | None = None, progress=None) -> SurfaceResult:
    """Price every parameter set of ``X`` (n, 15), in batches of ``config.batch_size``.

    ``index`` gives each row's sample index (the random numbers of row ``r`` depend only on
    ``(seed, index[r])``); by default ``0..n-1``. ``progress`` is called with the number of rows done.
    """
    grid = grid or default_grid()
    engine = QRHEngine(grid, config)
    return price_with_engine(engine, X, seed=seed, index=index, estimator=estimator, progress=progress)


def price_with_engine(engine: QRHEngine, X, seed: int = 0, index=None, estimator: str | None = None,
                      progress=None) -> SurfaceResult:
    """As :func:`price_surfaces`, reusing an engine (and its compiled graph)."""
    from ..params import check_inputs

    X = check_inputs(X)
    n = X.shape[0]
    index = np.arange(n) if index is None else np.asarray(index, dtype=np.int64)
    if index.shape != (n,):
        raise ValueError(f"index must have shape ({n},), got {index.shape}")
    bs = engine.config.batch_size
    parts = []
    for lo in range(0, n, bs):
        sl = slice(lo, min(lo + bs, n))
        stats = engine.simulate(X[sl], index[sl], seed=seed)
        parts.append(surface_from_paths(stats, engine.grid, estimator))
        if progress is not None:
            progress(sl.stop - sl.start)
    return concat_results(parts)


def mc_iv_surface(X, grid: Grid | None = None, n_paths: int | None = None, steps_per_year: int | None = None,
                  seed: int = 0):
    """Monte Carlo implied-vol surfaces of the QRH model.

    Parameters
    ----------
    X : array_like, shape (n, 15)
        Inputs in the order (lambda, eta, a, b, c, z0_1, ..., z0_10).
    grid : Grid, optional
        Defaults to :func:`qrh_lib.grid.default_grid` (10 strikes x 6 maturities).
    n_paths : int, optional
        Paths per parameter set; ``None`` is the accuracy-qualified default of :class:`MCConfig`.
    steps_per_year : int, optional
        Step density of the time grid after its fine start; ``None`` is the default of :class:`MCConfig`.
    seed : int
        Row ``i`` of the result depends only on ``(seed, i)``.

    Returns
    -------
    iv, iv_se : ndarray, shape (n, n_K * n_T)
        Implied vols (NaN where none exists) and their Monte Carlo standard errors, strike-major.
    """
    kw = {}
    if n_paths is not None:
        kw["n_paths"] = int(n_paths)
    if steps_per_year is not None:
        kw["steps_per_year"] = int(steps_per_year)
    res = price_surfaces(X, grid, MCConfig().replace(**kw), seed=seed)
    return res.iv, res.iv_se


def time_per_surface(X, config: MCConfig | None = None, grid: Grid | None = None, repeats: int = 1) -> float:
    """Wall seconds per surface (after a warm-up batch that compiles the graph)."""
    grid = grid or default_grid()
    engine = QRHEngine(grid, config)
    price_with_engine(engine, X[: engine.config.batch_size])
    t0 = time.perf_counter()
    for _ in range(repeats):
        price_with_engine(engine, X)
    return (time.perf_counter() - t0) / (repeats * len(X))
