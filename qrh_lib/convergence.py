r"""Time-discretisation bias of the Monte Carlo scheme, measured against a finer grid on the same paths.

Each step of the scheme's time grid is split into ``refine`` equal sub-steps; the Brownian increments are
drawn on the fine grid and summed for the coarse one, so both schemes see the same Brownian path and the
difference of their implied vols is the discretisation bias plus a small coupled noise, whose standard error
is estimated from the paired price differences.
"""

from __future__ import annotations

import numpy as np

from .grid import Grid, default_grid
from .iv import black_vega
from .mc import MCConfig, QRHEngine, sample_normals, sample_seeds
from .params import N_INPUTS, RZ_BOX, InputBox
from .pricing import _pair_units, otm_payoffs, surface_from_paths


def corner_states(box: InputBox = RZ_BOX) -> np.ndarray:
    """Stress states at the corners of the box: z0 all at one bound, or split fast/slow, with the
    model parameters at the bounds that make the start most violent (large a and eta, small and large b, c)."""
    lo, hi = box.lo, box.hi
    rows = []
    n = N_INPUTS - 5
    z_patterns = [np.full(n, 1.0), np.full(n, -1.0), np.r_[np.zeros(n // 2), np.ones(n - n // 2)],
                  np.r_[np.zeros(n // 2), -np.ones(n - n // 2)], np.r_[np.ones(n // 2), -np.ones(n - n // 2)]]
    for zp in z_patterns:
        for b_hi in (False, True):
            for c_hi in (False, True):
                x = 0.5 * (lo + hi)
                x[0] = lo[0]  # weak mean reversion keeps the start far from equilibrium longest
                x[1], x[2] = hi[1], hi[2]
                x[3] = hi[3] if b_hi else lo[3]
                x[4] = hi[4] if c_hi else lo[4]
                x[5:] = 0.5 * (lo[5:] + hi[5:]) + 0.5 * (hi[5:] - lo[5:]) * zp
                rows.append(x)
    return np.asarray(rows)


def refined_time_steps(h: np.ndarray, seg_ends: np.ndarray, refine: int):
    """Steps and maturity indices of the grid whose steps are ``h`` split into ``refine`` equal parts."""
    return np.repeat(h / refine, refine), np.asarray(seg_ends) * refine


def coupled_bias(X, grid: Grid | None = None, config: MCConfig | None = None, refine: int = 8, seed: int = 0,
                 index=None):
    """Implied vols on the scheme's grid and on a ``refine`` times finer grid, with the same Brownian paths.

    Returns a dict of arrays (n, n_K * n_T): ``iv_coarse``, ``iv_fine``, ``bias`` (coarse - fine) and
    ``bias_se``, the standard error of the bias from the paired price differences.
    """
    grid = grid or default_grid()
    config = (config or MCConfig()).replace(steps_per_hedge=0)
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    index = np.arange(len(X)) if index is None else np.asarray(index)
    eng = QRHEngine(grid, config)
    h_f, ends_f = refined_time_steps(eng.h, eng.seg_ends, refine)
    no_hedge_f = np.zeros(h_f.size + 1, dtype=bool)
    n_draws = config.n_paths // 2 if config.antithetic else config.n_paths
    out = {key: [] for key in ("iv_coarse", "iv_fine", "bias", "bias_se")}
    for lo in range(0, len(X), config.batch_size):
        sl = slice(lo, min(lo + config.batch_size, len(X)))
        xi_f = sample_normals(sample_seeds(seed, index[sl]), h_f.size, n_draws).numpy()
        xi_c = xi_f.reshape(eng.n_steps, refine, *xi_f.shape[1:]).sum(axis=1) / np.sqrt(refine)
        fine = eng.simulate(X[sl], index[sl], xi=xi_f, h=h_f, hedge_flag=no_hedge_f, seg_ends=ends_f)
        coarse = eng.simulate(X[sl], index[sl], xi=xi_c)
        r_f = surface_from_paths(fine, grid)
        r_c = surface_from_paths(coarse, grid)
        diff = _pair_units(otm_payoffs(coarse, grid) - otm_payoffs(fine, grid), config.antithetic)
        price_diff_se = diff.std(-1, ddof=1) / np.sqrt(diff.shape[-1])
        s = r_f.iv * np.sqrt(grid.flat_maturities())
        vega = black_vega(grid.flat_log_moneyness(), s) * np.sqrt(grid.flat_maturities())
        out["iv_coarse"].append(r_c.iv)
        out["iv_fine"].append(r_f.iv)
        out["bias"].append(r_c.iv - r_f.iv)
        out["bias_se"].append(price_diff_se / vega)
    return {k: np.concatenate(v) for k, v in out.items()}


def bias_by_maturity(result: dict, grid: Grid | None = None, tol: float = 1e-3) -> list[dict]:
    """Summary of :func:`coupled_bias` by maturity: median, 90th percentile and largest absolute bias, and how many
    points (and states) are biased beyond ``tol`` by more than three standard errors."""
    grid = grid or default_grid()
    n_K, n_T = grid.shape
    b = result["bias"].reshape(-1, n_K, n_T)
    se = result["bias_se"].reshape(-1, n_K, n_T)
    rows = []
    for j, T in enumerate(grid.maturities):
        bj, sj = b[:, :, j], se[:, :, j]
        ok = np.isfinite(bj) & np.isfinite(sj)
        beyond = ok & (np.abs(bj) - 3 * sj > tol)
        row = {"maturity_days": round(float(T) * 365), "points": int(ok.sum())}
        if ok.any():
            row.update({"median_abs_bias": float(np.median(np.abs(bj[ok]))),
                        "p90_abs_bias": float(np.percentile(np.abs(bj[ok]), 90)),
                        "max_abs_bias": float(np.max(np.abs(bj[ok]))), "median_bias_se": float(np.median(sj[ok])),
                        "points_beyond_tol": int(beyond.sum()), "states_beyond_tol": int(np.any(beyond, axis=1).sum()),
                        "states": int(b.shape[0])})
        rows.append(row)
    return rows
