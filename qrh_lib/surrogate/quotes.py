r"""Market-style quotes: implied vols at any strikes and maturities inside the grid's span, and calibration to them.

Real quotes never sit on the surrogate's grid. The surrogate's surface is carried to them by interpolating the
total implied variance :math:`w = \sigma^2 T` in the grid's own coordinates, :math:`m = k/\sqrt T` and :math:`T`
(the default grid is a rectangle there, see :mod:`qrh_lib.grid`;
on grids of fixed log-strikes, as Rosenbaum & Zhang's, :math:`k` takes the place of :math:`m`):

- along :math:`m`, a natural cubic spline through the grid's strike rows at each grid maturity (smooth in the
  strike, and exact on the grid);
- along :math:`T`, linear in total variance at fixed :math:`m` between the two grid maturities around the quote
  (total variance is the quantity that grows with maturity; linear in it is the usual calendar interpolation).

Both steps are linear in the grid's total variances, so the map is one matrix :math:`M` (quotes x grid points),
:math:`\sigma_q = \sqrt{(M w)_q / T_q}`, whose Jacobian the calibration uses with the network's. Quotes outside
the grid's span (in :math:`m` or :math:`T`) are refused: extrapolating the surrogate is not a quote.
``benchmarks/bench_calibration.py`` measures the interpolation error against Monte Carlo prices at off-grid
points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from ..grid import Grid
from .calibration import CalibrationResult, calibrate


@dataclass(frozen=True)
class Quotes:
    """Implied-vol quotes: log-moneyness ``k = log(K/F)``, maturity ``T`` (years), mid vol ``iv`` (NaN: missing)
    and, optionally, bid and ask vols (the weight of a quote is then 1 / (ask - bid)^2) or explicit weights."""

    log_moneyness: np.ndarray
    maturities: np.ndarray
    iv: np.ndarray
    bid: np.ndarray | None = None
    ask: np.ndarray | None = None
    weights: np.ndarray | None = None

    def __post_init__(self):
        for name in ("log_moneyness", "maturities", "iv", "bid", "ask", "weights"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, np.atleast_1d(np.asarray(v, np.float64)))
        n = self.iv.size
        for name in ("log_moneyness", "maturities", "bid", "ask", "weights"):
            v = getattr(self, name)
            if v is not None and v.shape != (n,):
                raise ValueError(f"quotes: {name} has shape {v.shape}, expected ({n},) like iv")
        if not np.all(np.isfinite(self.log_moneyness)) or not np.all(np.isfinite(self.maturities)):
            raise ValueError("quotes: log_moneyness and maturities must be finite")
        if (self.bid is None) != (self.ask is None):
            raise ValueError("quotes: give both bid and ask, or neither")
        if self.bid is not None and self.weights is not None:
            raise ValueError("quotes: give bid/ask or weights, not both")
        if self.bid is not None:
            spread = self.ask - self.bid
            bad = np.flatnonzero(np.isfinite(self.iv) & ~(spread > 0))
            if bad.size:
                j = int(bad[0])
                raise ValueError(f"quotes: quote {j} has bid {self.bid[j]} >= ask {self.ask[j]} (or a NaN side)")

    @property
    def n(self) -> int:
        return self.iv.size

    def quote_weights(self) -> np.ndarray:
        """Weights of the least squares: 1 / spread^2 with bid and ask, the given weights, or equal."""
        if self.bid is not None:
            w = np.where(np.isfinite(self.iv), 1.0 / np.where(self.ask > self.bid, self.ask - self.bid, 1.0) ** 2, 0.0)
            return w
        return np.ones(self.n) if self.weights is None else self.weights

    def quoted(self) -> Quotes:
        """The quotes that have a vol (``iv`` not NaN)."""
        keep = np.isfinite(self.iv)
        return Quotes(*(None if v is None else v[keep] for v in (self.log_moneyness, self.maturities, self.iv,
                                                                    self.bid, self.ask, self.weights)))


def strike_coordinate(grid: Grid):
    """The coordinate in which ``grid``'s strike rows are fixed: ``k / sqrt(T)`` for the sqrt(T) grids (the default
    SPX and VIX grids), ``k`` for grids of fixed log-strikes (Rosenbaum & Zhang's); returns the scale of k as a
    function of T, and the coordinate's name. Other grids are refused."""
    Tg = grid.maturities
    k = grid.log_moneyness
    if np.allclose(k / np.sqrt(Tg)[None, :], (k / np.sqrt(Tg)[None, :])[:, :1], rtol=0, atol=1e-12):
        return np.sqrt, "k / sqrt(T)"
    if np.allclose(k, k[:, :1], rtol=0, atol=1e-12):
        return np.ones_like, "k"
    raise ValueError("quotes need a grid whose strike rows are fixed in k / sqrt(T) (qrh_lib.grid.sqrt_t_grid) or in "
                     "k (qrh_lib.grid.rz_grid)")


def _strike_frame(grid: Grid, k: np.ndarray, T: np.ndarray):
    """Points ``(k, T)`` in ``grid``'s strike coordinate (:func:`strike_coordinate`), the grid's strike rows in it,
    and the coordinate's name."""
    scale, name = strike_coordinate(grid)
    m_grid = grid.log_moneyness[:, 0] / scale(grid.maturities[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        m = k / scale(T)
    return m, m_grid, name


def in_span(grid: Grid, log_moneyness, maturities) -> np.ndarray:
    """True where a point ``(k, T)`` lies inside ``grid``'s span, the points :class:`QuoteMap` accepts: ``T``
    between the grid's first and last maturities and the strike coordinate (:func:`strike_coordinate`) between
    the grid's lowest and highest strike rows (bounds included; NaN is outside)."""
    k = np.atleast_1d(np.asarray(log_moneyness, np.float64))
    T = np.atleast_1d(np.asarray(maturities, np.float64))
    m, m_grid, _ = _strike_frame(grid, k, T)
    Tg = grid.maturities
    return (Tg[0] <= T) & (T <= Tg[-1]) & (m_grid.min() <= m) & (m <= m_grid.max())


class QuoteMap:
    """The map from a surface on ``grid`` (flat, strike-major vols) to the vols at the quotes' points."""

    def __init__(self, grid: Grid, log_moneyness, maturities):
        k = np.atleast_1d(np.asarray(log_moneyness, np.float64))
        T = np.atleast_1d(np.asarray(maturities, np.float64))
        Tg = grid.maturities
        m, m_grid, name = _strike_frame(grid, k, T)
        order = np.argsort(m_grid)
        if np.any(np.diff(m_grid[order]) <= 0):
            raise ValueError(f"the grid's strike rows must have distinct {name}")
        outside = np.flatnonzero(~in_span(grid, k, T))
        if outside.size:
            j = int(outside[0])
            if not Tg[0] <= T[j] <= Tg[-1]:
                raise ValueError(f"quote {j}: maturity T = {T[j]:.6g} years is outside the grid's span "
                                 f"[{Tg[0]:.6g}, {Tg[-1]:.6g}]")
            raise ValueError(f"quote {j}: log-moneyness k = {k[j]:.6g} at T = {T[j]:.6g} "
                             f"({name} = {m[j]:.6g}) is outside the grid's span "
                             f"[{m_grid.min():.6g}, {m_grid.max():.6g}] in {name}")
        n_K, n_T = grid.shape
        # spline weights in m: the spline of each unit vector of the strike rows, evaluated at the quotes
        spline = CubicSpline(m_grid[order], np.eye(n_K), bc_type="natural")(m)  # (n_q, n_K), rows in sorted order
        s_w = np.zeros((T.size, n_K))
        s_w[:, order] = spline
        j_hi = np.clip(np.searchsorted(Tg, T, side="left"), 1, n_T - 1)
        j_lo = j_hi - 1
        lam = (T - Tg[j_lo]) / (Tg[j_hi] - Tg[j_lo])
        t_w = np.zeros((T.size, n_T))
        t_w[np.arange(T.size), j_lo] = 1.0 - lam
        t_w[np.arange(T.size), j_hi] += lam
        # M[q, i * n_T + j] = spline weight of row i x calendar weight of maturity j (strike-major layout)
        self.M = (s_w[:, :, None] * t_w[:, None, :]).reshape(T.size, n_K * n_T)
        self.T_grid = grid.flat_maturities()
        self.T = T
        self.n_quotes = T.size

    def subset(self, idx) -> QuoteMap:
        """The map to the quotes ``idx`` only (the same rows of the same matrix)."""
        out = object.__new__(QuoteMap)
        out.M, out.T_grid, out.T = self.M[idx], self.T_grid, self.T[idx]
        out.n_quotes = out.T.size
        return out

    def __call__(self, iv: np.ndarray) -> np.ndarray:
        """Vols at the quotes (n, n_q) from grid surfaces (n, d)."""
        w = (np.asarray(iv) ** 2 * self.T_grid) @ self.M.T
        return np.sqrt(np.maximum(w, 0.0) / self.T)

    def jacobian(self, iv: np.ndarray) -> np.ndarray:
        """d (vols at the quotes) / d (grid vols), (n_q, d), at one grid surface ``iv`` (d,)."""
        sq = self(iv[None, :])[0]
        return self.M * (iv * self.T_grid)[None, :] / (np.maximum(sq, 1e-12) * self.T)[:, None]


def quote_points(grid: Grid, maturities, fractions=(0.05, 0.25, 0.45, 0.6, 0.75, 0.95)) -> Grid:
    r"""Points off ``grid`` but inside its span, as a Grid: at each of ``maturities`` (inside the grid's), log-strikes
    at ``fractions`` of the span of the grid's strike rows there. The rows are interpolated linearly in
    :math:`\sqrt T`, which is exact for the sqrt(T) grids and for grids of fixed log-strikes."""
    T = np.asarray(maturities, np.float64)
    rows = np.array([np.interp(np.sqrt(T), np.sqrt(grid.maturities), r) for r in grid.log_moneyness])  # (n_K, n_q)
    lo, hi = rows.min(axis=0), rows.max(axis=0)
    return Grid(T, lo[None, :] + np.asarray(fractions, np.float64)[:, None] * (hi - lo)[None, :])


def quotes_from_surface(points: Grid, iv, iv_se=None, *, se_multiple: float = 2.0, min_half_spread: float = 0.005,
                        missing=()) -> Quotes:
    """Quotes at the points of ``points`` (flat vols ``iv``, strike-major, e.g. a Monte Carlo surface priced there):
    the mid ``iv`` and a bid and an ask at ``iv -+ h``, with the half-spread rule ``h = max(se_multiple * iv_se,
    min_half_spread)`` (``min_half_spread`` alone without ``iv_se``); the quotes at the indices ``missing`` are left
    out (NaN)."""
    iv = np.asarray(iv, np.float64).copy()
    iv[list(missing)] = np.nan
    half = np.full(iv.shape, min_half_spread)
    if iv_se is not None:
        half = np.maximum(se_multiple * np.asarray(iv_se, np.float64), min_half_spread)
    return Quotes(points.flat_log_moneyness(), points.flat_maturities(), iv, bid=iv - half, ask=iv + half)


def interpolate_surface(surrogate_or_grid, iv, log_moneyness, maturities) -> np.ndarray:
    """Vols at the given points from grid surface(s) ``iv`` ((d,) or (n, d)), as the calibration sees them."""
    grid = surrogate_or_grid if isinstance(surrogate_or_grid, Grid) else surrogate_or_grid.grid
    out = QuoteMap(grid, log_moneyness, maturities)(np.atleast_2d(iv))
    return out[0] if np.ndim(iv) == 1 else out


def vols_at_quotes(surrogate_or_grid, iv, quotes: Quotes) -> np.ndarray:
    """Vols at the quotes' points from grid surface(s) ``iv`` (e.g. a calibration's ``iv``), as
    :func:`interpolate_surface` gives them."""
    return interpolate_surface(surrogate_or_grid, iv, quotes.log_moneyness, quotes.maturities)


def calibrate_quotes(surrogate, quotes: Quotes, bounds=None, seed: int = 0, **kwargs) -> CalibrationResult:
    """Calibrate the 15 inputs to quotes off the grid (see the module docstring): the surrogate's surface is
    interpolated to the quotes, residuals are weighted by :meth:`Quotes.quote_weights`. ``kwargs`` as for
    :func:`qrh_lib.calibration.calibrate` (``n_starts``, ``n_candidates``, ``maxiter``, ``ftol``, ``gtol``, ``x0``).
    The result's ``iv`` is the surrogate's surface on its grid at the calibrated inputs; its vols at the quotes
    are :func:`interpolate_surface` of it."""
    qmap = QuoteMap(surrogate.grid, quotes.log_moneyness, quotes.maturities)
    return calibrate(surrogate, quotes.iv, quotes.quote_weights(), bounds, seed, observe=qmap, **kwargs)
