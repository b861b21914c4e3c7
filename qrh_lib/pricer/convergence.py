r"""Time-discretisation bias of the Monte Carlo scheme, measured against a finer grid on the same paths.

Each step of the scheme's time grid is split into ``refine`` equal sub-steps; the Brownian increments and
the factors' exponential integrals are drawn on the fine grid and summed exactly for the coarse one
(:func:`qrh_lib.pricer.kernel.aggregate_coefficients`), so both schemes see the same Brownian path and the difference
of their implied vols is the discretisation bias plus a small coupled noise, whose standard error is estimated
from the paired price differences.
"""

from __future__ import annotations

import numpy as np

from ..grid import Grid, default_grid
from ..iv import black_vega
from ..params import COL_A, COL_B, COL_C, COL_ETA, COL_LAMBDA, COL_Z0, N_FACTORS, RZ_BOX, InputBox, Inputs
from .kernel import aggregate_coefficients, step_coefficients
from .mc import MCConfig, QRHEngine, sample_normals, sample_seeds
from .moments import critical_feedback
from .pricing import _pair_units, otm_payoffs, surface_from_paths


def corner_states(box: InputBox = RZ_BOX, feedback: float = 0.5) -> np.ndarray:
    """Stress states at the corners of z0: all at one bound, or split fast/slow, with b and c at their bounds,
    the weakest mean reversion and the largest vol of Z of the box (the start stays far from equilibrium
    longest), and the feedback ``a`` at ``feedback`` times its critical value there (beyond it the state is
    explosive, see :func:`qrh_lib.pricer.moments.critical_feedback`; near it, V is heavy-tailed)."""
    lo, hi = Inputs(box.lo), Inputs(box.hi)
    a_crit = critical_feedback(lo.lam, hi.eta)
    rows = []
    n = N_FACTORS
    z_patterns = [np.full(n, 1.0), np.full(n, -1.0), np.r_[np.zeros(n // 2), np.ones(n - n // 2)],
                  np.r_[np.zeros(n // 2), -np.ones(n - n // 2)], np.r_[np.ones(n // 2), -np.ones(n - n // 2)]]
    for zp in z_patterns:
        for b_hi in (False, True):
            for c_hi in (False, True):
                x = 0.5 * (lo.X + hi.X)
                x[COL_LAMBDA] = lo.lam
                x[COL_ETA] = hi.eta
                x[COL_A] = min(max(feedback * a_crit, lo.a), hi.a)
                x[COL_B] = hi.b if b_hi else lo.b
                x[COL_C] = hi.c if c_hi else lo.c
                x[COL_Z0] = 0.5 * (lo.z0 + hi.z0) + 0.5 * (hi.z0 - lo.z0) * zp
                rows.append(x)
    return np.asarray(rows)


def refined_time_steps(h: np.ndarray, seg_ends: np.ndarray, refine: int):
    """Steps and maturity indices of the grid whose steps are ``h`` split into ``refine`` equal parts."""
    return np.repeat(h / refine, refine), np.asarray(seg_ends) * refine


def coupled_bias(X, grid: Grid | None = None, config: MCConfig | None = None, refine: int = 8, seed: int = 0,
                 index=None):
    """Implied vols on the scheme's grid and on a ``refine`` times finer grid, with the same Brownian paths.

    The finer grid always takes the exponential (ETD) step, exact for the linear part, so that it is a common
    reference for either scheme of ``config``. Returns a dict of arrays (n, n_K * n_T): ``iv_coarse``,
    ``iv_fine``, ``bias`` (coarse - fine) and ``bias_se``, the standard error of the bias from the paired price
    differences.
    """
    config = config or MCConfig()
    res = scheme_study(X, grid, config, refine, {"coarse": (config.scheme, 1)}, seed, index)
    return {"iv_coarse": res["coarse"]["iv"], "iv_fine": res["reference"]["iv"], "bias": res["coarse"]["bias"],
            "bias_se": res["coarse"]["bias_se"]}


def scheme_study(X, grid: Grid | None = None, config: MCConfig | None = None, refine: int = 32,
                 candidates: dict | None = None, seed: int = 0, index=None) -> dict:
    """Bias of several schemes and grids against one reference, all on the same Brownian paths.

    The reference is the ETD scheme on the grid of ``config`` with every step split into ``refine`` parts. A
    candidate ``name: (scheme, split)`` is ``scheme`` on the grid of ``config`` with every step split into
    ``split`` parts (``refine`` must be a multiple of ``split``); its increments are exact sums of the
    reference's. Returns ``{"reference": {"iv"}, name: {"iv", "bias", "bias_se"}}`` (arrays (n, n_K * n_T)).
    """
    grid = grid or default_grid()
    config = (config or MCConfig()).replace(steps_per_hedge=0)
    candidates = candidates or {config.scheme: (config.scheme, 1)}
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    index = np.arange(len(X)) if index is None else np.asarray(index)
    eng = QRHEngine(grid, config)
    gamma = eng.kernel.gamma
    h_f, ends_f = refined_time_steps(eng.h, eng.seg_ends, refine)
    coef_f = step_coefficients(gamma, h_f, "etd")
    grids = {}
    for name, (scheme, split) in candidates.items():
        if refine % split:
            raise ValueError(f"candidate {name!r}: refine = {refine} is not a multiple of split = {split}")
        h_c, ends_c = refined_time_steps(eng.h, eng.seg_ends, split)
        grids[name] = (h_c, ends_c, aggregate_coefficients(coef_f, refine // split, gamma, scheme), refine // split)
    no_hedge = {name: np.zeros(g[0].size + 1, dtype=bool) for name, g in grids.items()}
    n_draws = config.n_paths // 2 if config.antithetic else config.n_paths
    out = {"reference": {"iv": []}, **{name: {"iv": [], "bias": [], "bias_se": []} for name in candidates}}
    for lo in range(0, len(X), config.batch_size):
        sl = slice(lo, min(lo + config.batch_size, len(X)))
        xi_f = sample_normals(sample_seeds(seed, index[sl]), h_f.size, n_draws, coef_f.n_normals).numpy()
        fine = eng.simulate(X[sl], index[sl], xi=xi_f, h=h_f, hedge_flag=np.zeros(h_f.size + 1, dtype=bool),
                            seg_ends=ends_f, coefficients=coef_f)
        r_f = surface_from_paths(fine, grid)
        pay_f = otm_payoffs(fine, grid)
        out["reference"]["iv"].append(r_f.iv)
        s = r_f.iv * np.sqrt(grid.flat_maturities())
        vega = black_vega(grid.flat_log_moneyness(), s) * np.sqrt(grid.flat_maturities())
        for name, (h_c, ends_c, coef_c, m) in grids.items():
            xi_c = xi_f.reshape(h_c.size, m * coef_f.n_normals, *xi_f.shape[2:])  # the fine normals, in order
            coarse = eng.simulate(X[sl], index[sl], xi=xi_c, h=h_c, hedge_flag=no_hedge[name], seg_ends=ends_c,
                                  coefficients=coef_c)
            r_c = surface_from_paths(coarse, grid)
            diff = _pair_units(otm_payoffs(coarse, grid) - pay_f, config.antithetic)
            price_diff_se = diff.std(-1, ddof=1) / np.sqrt(diff.shape[-1])
            out[name]["iv"].append(r_c.iv)
            out[name]["bias"].append(r_c.iv - r_f.iv)
            out[name]["bias_se"].append(price_diff_se / vega)
    return {name: {k: np.concatenate(v) for k, v in d.items()} for name, d in out.items()}


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
