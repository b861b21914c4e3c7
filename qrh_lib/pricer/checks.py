"""Exact checks of the pricer, as tables: the a = 0 flat surface and the martingale property of S.

Both report z-scores, (estimate - exact) / standard error; a correct pricer keeps them within about 4.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..grid import Grid, default_grid
from ..iv import VOL_POINTS
from ..params import COL_A, Inputs, check_inputs
from .mc import MCConfig, QRHEngine
from .pricing import price_with_engine

Z_TOL = 4.0


def flat_surface_check(X, grid: Grid | None = None, config: MCConfig | None = None, seed: int = 0,
                       n_sd: float = 3.0, estimator: str = "spot_cv") -> pd.DataFrame:
    r"""Price ``X`` with ``a`` set to 0, where :math:`V = c` and every implied vol is :math:`\sqrt c`.

    Options further than ``n_sd`` standard deviations from the money are left out (their prices rest on a
    handful of paths and the normal approximation of the error does not hold). One row per input.

    The Black-Scholes control is left out by default: with ``a = 0`` it is the priced model itself, so it would
    return :math:`\sqrt c` by construction and test nothing about the paths.
    """
    grid = grid or default_grid()
    X = check_inputs(X).copy()
    X[:, COL_A] = 0.0
    res = price_with_engine(QRHEngine(grid, config), X, seed=seed, estimator=estimator)
    sigma = np.sqrt(Inputs(X).c[:, None])
    near = np.abs(grid.flat_log_moneyness())[None, :] < n_sd * sigma * np.sqrt(grid.flat_maturities())[None, :]
    dev = np.where(near, res.iv - sigma, np.nan)
    z = dev / res.iv_se
    return pd.DataFrame({"sqrt(c)": sigma[:, 0], "options checked": near.sum(axis=1),
                         "max |iv - sqrt(c)| (vol pts)": VOL_POINTS * np.nanmax(np.abs(dev), axis=1),
                         "max |z|": np.nanmax(np.abs(z), axis=1)})


def martingale_check(x, grid: Grid | None = None, config: MCConfig | None = None, seed: int = 0) -> pd.DataFrame:
    """Sample mean of :math:`S_T / S_0` at each maturity, before any control variate, with its z-score."""
    grid = grid or default_grid()
    eng = QRHEngine(grid, config)
    S = np.exp(eng.simulate(check_inputs(x)[:1], np.arange(1), seed=seed).log_spot)[:, 0, :]
    if eng.config.antithetic:
        S = 0.5 * (S[:, : S.shape[-1] // 2] + S[:, S.shape[-1] // 2 :])
    mean = S.mean(-1)
    se = S.std(-1, ddof=1) / np.sqrt(S.shape[-1])
    return pd.DataFrame({"E[S_T]": mean, "se": se, "z": (mean - 1.0) / se},
                        index=pd.Index([f"{round(t * 365)}d" for t in grid.maturities], name="maturity"))
