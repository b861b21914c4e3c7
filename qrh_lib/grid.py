r"""The implied-volatility grid: maturities and strikes that widen as :math:`\sqrt{T}`.

Flat surfaces are strike-major: ``index = i_strike * n_T + j_tenor``, the layout of
``surface.reshape(n_K, n_T)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Maturities of the default grid, in days (365-day year).
DEFAULT_MATURITY_DAYS = (30, 60, 90, 180, 270, 365)
#: Log-moneyness per square-root year, :math:`m = k / \sqrt{T}`, denser near the money.
DEFAULT_M = (-0.50, -0.35, -0.25, -0.15, -0.10, -0.05, 0.0, 0.05, 0.15, 0.30)


@dataclass(frozen=True, eq=False)
class Grid:
    r"""A grid of maturities and log-moneyness strikes.

    Parameters
    ----------
    maturities : array_like, shape (n_T,)
        Maturities in years, strictly increasing and positive.
    log_moneyness : array_like, shape (n_K, n_T)
        :math:`k = \log(K / S_0)` for each strike row and maturity column. Options with
        :math:`k < 0` are priced as puts, :math:`k \ge 0` as calls (out of the money).
    """

    maturities: np.ndarray
    log_moneyness: np.ndarray
    _frozen: bool = field(default=True, repr=False)

    def __post_init__(self):
        T = np.asarray(self.maturities, dtype=np.float64)
        k = np.asarray(self.log_moneyness, dtype=np.float64)
        if T.ndim != 1 or T.size == 0:
            raise ValueError(f"maturities must have shape (n_T,), got shape {T.shape}")
        if not np.all(np.isfinite(T)) or np.any(T <= 0) or np.any(np.diff(T) <= 0):
            raise ValueError(f"maturities must be positive, finite and strictly increasing, got {T}")
        if k.ndim != 2 or k.shape[1] != T.size:
            raise ValueError(f"log_moneyness must have shape (n_K, n_T) = (n_K, {T.size}), got {k.shape}")
        if not np.all(np.isfinite(k)):
            raise ValueError("log_moneyness must be finite")
        T.setflags(write=False)
        k.setflags(write=False)
        object.__setattr__(self, "maturities", T)
        object.__setattr__(self, "log_moneyness", k)

    @property
    def n_T(self) -> int:
        return self.maturities.size

    @property
    def n_K(self) -> int:
        return self.log_moneyness.shape[0]

    @property
    def size(self) -> int:
        return self.n_K * self.n_T

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_K, self.n_T)

    def flat_maturities(self) -> np.ndarray:
        """Maturity of each flat (strike-major) grid point, shape (n_K * n_T,)."""
        return np.tile(self.maturities, self.n_K)

    def flat_log_moneyness(self) -> np.ndarray:
        """Log-moneyness of each flat (strike-major) grid point, shape (n_K * n_T,)."""
        return self.log_moneyness.reshape(-1)

    def is_call(self) -> np.ndarray:
        """True where the out-of-the-money option is a call (k >= 0), shape (n_K, n_T)."""
        return self.log_moneyness >= 0.0

    def maturity_index(self, maturities) -> np.ndarray:
        """Where each of ``maturities`` lies among this grid's maturities; each must be one of them."""
        return maturity_index(self.maturities, maturities)

    def to_dict(self) -> dict:
        return {"maturities": self.maturities.tolist(), "log_moneyness": self.log_moneyness.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Grid:
        unknown = set(d) - {"maturities", "log_moneyness"}
        if unknown:
            raise ValueError(f"unknown Grid keys {sorted(unknown)}; allowed: maturities, log_moneyness")
        return cls(np.asarray(d["maturities"]), np.asarray(d["log_moneyness"]))

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Grid)
            and np.array_equal(self.maturities, other.maturities)
            and np.array_equal(self.log_moneyness, other.log_moneyness)
        )

    def __hash__(self):
        return hash((self.maturities.tobytes(), self.log_moneyness.tobytes()))


def maturity_index(among, maturities) -> np.ndarray:
    """Where each of ``maturities`` lies in the increasing maturities ``among``; each must be one of them (to 1e-12
    relative), or a ``ValueError`` names it."""
    among = np.asarray(among, np.float64)
    idx = []
    for t in np.atleast_1d(np.asarray(maturities, np.float64)):
        hit = np.flatnonzero(np.abs(among - t) <= 1e-12 * max(1.0, t))
        if hit.size != 1:
            raise ValueError(f"maturity {t:.6g} years is not one of the grid's {among.round(6).tolist()}")
        idx.append(int(hit[0]))
    return np.asarray(idx, dtype=np.int64)


def sqrt_t_grid(maturity_days=DEFAULT_MATURITY_DAYS, m=DEFAULT_M) -> Grid:
    r"""Grid with strikes :math:`k_{ij} = m_i \sqrt{T_j}` and maturities in days / 365."""
    T = np.asarray(maturity_days, dtype=np.float64) / 365.0
    m = np.asarray(m, dtype=np.float64)
    return Grid(T, np.outer(m, np.sqrt(T)))


#: Rosenbaum & Zhang's SPX grid: 15 log-strikes in [-0.15, 0.05] at T = 0.03, 0.05, 0.07, 0.09 years.
RZ_LOG_STRIKES = tuple(np.round(np.linspace(-0.15, 0.05, 15), 6))
RZ_MATURITIES = (0.03, 0.05, 0.07, 0.09)


def rz_grid() -> Grid:
    """Rosenbaum & Zhang's SPX grid (fixed log-strikes, short maturities), for comparison with their errors."""
    k = np.asarray(RZ_LOG_STRIKES)
    return Grid(np.asarray(RZ_MATURITIES), np.repeat(k[:, None], len(RZ_MATURITIES), axis=1))


def default_grid() -> Grid:
    """The project's grid: 10 strikes x 6 maturities (30..365 days), :math:`k = m\\sqrt{T}`."""
    return sqrt_t_grid()


# --------------------------------------------------------------------------- VIX options (qrh_lib.pricer.vix)
#: Expiries of the default VIX grid: the SPX grid's up to 180 days (listed VIX options reach about six months), so
#: the VIX comes from the SPX surface's own simulation without changing its time grid.
DEFAULT_VIX_MATURITY_DAYS = (30, 60, 90, 180)
#: Log-strikes of the default VIX grid per square-root year, k = m sqrt(T) relative to the VIX future: the VIX
#: smile widens with maturity like the SPX's. At Rosenbaum & Zhang's maturities (0.03-0.09 years) the span covers
#: their 15 log-strikes in [-0.1, 0.21]; 15 x 4 = 60 points, as the SPX grid.
DEFAULT_VIX_M = (-0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: Rosenbaum & Zhang's VIX grid: 15 log-strikes in [-0.1, 0.21] at T = 0.03, 0.05, 0.07, 0.09 years.
RZ_VIX_LOG_STRIKES = tuple(np.round(np.linspace(-0.1, 0.21, 15), 6))


def vix_grid(maturity_days=DEFAULT_VIX_MATURITY_DAYS, m=DEFAULT_VIX_M) -> Grid:
    """The default VIX grid: strikes :math:`k = m\\sqrt T` relative to the VIX future (15 x 4)."""
    return sqrt_t_grid(maturity_days, m)


def rz_vix_grid() -> Grid:
    """Rosenbaum & Zhang's VIX grid: fixed log-strikes (relative to the future) at their four maturities."""
    k = np.asarray(RZ_VIX_LOG_STRIKES)
    return Grid(np.asarray(RZ_MATURITIES), np.repeat(k[:, None], len(RZ_MATURITIES), axis=1))


#: Grids by name, for configs and profiles: ``GenerationConfig(grid="rz", vix_grid="default")``.
SPX_GRIDS = {"default": default_grid, "rz": rz_grid}
VIX_GRIDS = {"default": vix_grid, "rz": rz_vix_grid}


def grid_from(spec, named: dict) -> Grid:
    """A grid from a name in ``named`` or from :meth:`Grid.to_dict`'s dict."""
    if isinstance(spec, str):
        if spec not in named:
            raise ValueError(f"grid {spec!r} is unknown; named grids: {sorted(named)} (or a dict of maturities and "
                             "log_moneyness)")
        return named[spec]()
    return Grid.from_dict(dict(spec))
