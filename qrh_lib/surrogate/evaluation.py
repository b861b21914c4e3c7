r"""Accuracy metrics, bucket and grid-point maps, residual statistics and static-arbitrage checks.

Errors are reported in vol points (vols times 100) unless a key says otherwise; every function
returns plain dicts (JSON-able) or pandas DataFrames. All functions take flat strike-major
surfaces of shape (n, n_K * n_T) and work for network predictions and MC labels alike.

Static arbitrage (forward :math:`F = 1`, zero rates, :math:`K = e^k`):

- calendar: total implied variance :math:`w(k, T) = \sigma^2(k, T)\, T` must be non-decreasing in
  :math:`T` at fixed :math:`k`. The grid's strikes :math:`k = m\sqrt T` move with :math:`T`, so for
  each pair of consecutive maturities :math:`w(\cdot, T_{j+1})` is interpolated linearly in
  :math:`k` at the strikes of :math:`T_j` (which lie inside the wider range of :math:`T_{j+1}`)
  and a violation is :math:`w(k_{ij}, T_{j+1}) < w(k_{ij}, T_j) - \text{tol}`.
- butterfly: call prices must be convex in strike. With Black-Scholes prices :math:`C_i` at a
  maturity's (non-uniform) strikes, a violation is a decrease of the chord slope,
  :math:`\frac{C_{i+1}-C_i}{K_{i+1}-K_i} < \frac{C_i - C_{i-1}}{K_i - K_{i-1}} - \text{tol}`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..grid import Grid
from ..iv import VOL_POINTS, black_price
from .model import bucket_masks


def _pair(y_true, y_pred):
    t = np.asarray(y_true, np.float64)
    p = np.asarray(y_pred, np.float64)
    if t.shape != p.shape or t.ndim != 2:
        raise ValueError(f"y_true and y_pred must have the same (n, d) shape, got {t.shape} and {p.shape}")
    return t, p


def regression_metrics(y_true, y_pred) -> dict:
    r"""R², RMSE, MAE, max, median, p95, p99 absolute errors (vol points), relative errors (%), bias.

    R² is the pooled :math:`1 - \sum (y-\hat y)^2 / \sum (y - \bar y)^2` over all points. Missing labels (NaN:
    options no Monte Carlo path priced) are left out of every metric, here and in the functions below.
    """
    t, p = _pair(y_true, y_pred)
    known = np.isfinite(t)
    e = (p - t)[known]
    t = t[known]
    a = np.abs(e)
    rel = a / np.abs(t)
    ss_res = float(np.sum(e**2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    return {
        "n_surfaces": int(known.shape[0]),
        "n_missing_labels": int((~known).sum()),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
        "rmse_pts": VOL_POINTS * float(np.sqrt(np.mean(e**2))),
        "mae_pts": VOL_POINTS * float(np.mean(a)),
        "max_pts": VOL_POINTS * float(np.max(a)),
        "median_pts": VOL_POINTS * float(np.median(a)),
        "p95_pts": VOL_POINTS * float(np.percentile(a, 95)),
        "p99_pts": VOL_POINTS * float(np.percentile(a, 99)),
        "bias_pts": VOL_POINTS * float(np.mean(e)),
        "mean_rel_pct": 100 * float(np.mean(rel)),
        "median_rel_pct": 100 * float(np.median(rel)),
        "max_rel_pct": 100 * float(np.max(rel)),
    }


def metrics_by_stability(y_true, y_pred, growth) -> pd.DataFrame:
    """:func:`regression_metrics` apart for the stable surfaces (second-moment growth rate <= 0) and the
    explosive ones (> 0, see :func:`qrh_lib.pricer.moments.second_moment_growth`), one row each."""
    t, p = _pair(y_true, y_pred)
    g = np.asarray(growth, np.float64)
    if g.shape != (t.shape[0],):
        raise ValueError(f"growth must have shape ({t.shape[0]},), got {g.shape}")
    rows = {}
    for name, m in (("stable", g <= 0), ("explosive", g > 0)):
        if m.any():
            rows[name] = regression_metrics(t[m], p[m])
    out = pd.DataFrame(rows).T
    return out.astype({"n_surfaces": int}) if len(out) else out


def error_maps(y_true, y_pred, grid: Grid) -> dict:
    """Per grid point (n_K, n_T) maps, vol points: ``mae``, ``rmse``, ``max``, ``bias``."""
    t, p = _pair(y_true, y_pred)
    E = (p - t).reshape(-1, *grid.shape)
    return {
        "mae": VOL_POINTS * np.nanmean(np.abs(E), axis=0),
        "rmse": VOL_POINTS * np.sqrt(np.nanmean(E**2, axis=0)),
        "max": VOL_POINTS * np.nanmax(np.abs(E), axis=0),
        "bias": VOL_POINTS * np.nanmean(E, axis=0),
    }


def mc_noise_ratio(y_true, y_pred, iv_se, grid: Grid | None = None) -> dict:
    r"""Network error against the labels' MC standard error :math:`\sigma`.

    The error against noisy labels mixes the network's error against the true surface with the
    label noise: :math:`E(\hat y - y)^2 \approx E(\hat y - f)^2 + \sigma^2`. Reported:
    ``rmse_over_rms_se`` (about 1 when the network sits at the noise level), the share of points
    with :math:`|\hat y - y| \le 1.96\sigma`, and ``rmse_vs_truth_est_pts``
    :math:`= \sqrt{\max(\mathrm{MSE} - \overline{\sigma^2}, 0)}`, an estimate of the error against
    the noise-free surface. With ``grid``, also the per-point map of RMSE / RMS SE.
    """
    t, p = _pair(y_true, y_pred)
    se = np.broadcast_to(np.asarray(iv_se, np.float64), t.shape)
    known = np.isfinite(t) & np.isfinite(se)
    e = np.where(known, p - t, np.nan)
    se = np.where(known, se, np.nan)
    mse, mse_se = float(np.nanmean(e**2)), float(np.nanmean(se**2))
    out = {
        "median_se_pts": VOL_POINTS * float(np.nanmedian(se)),
        "rms_se_pts": VOL_POINTS * np.sqrt(mse_se),
        "rmse_over_rms_se": float(np.sqrt(mse / mse_se)),
        "mae_over_median_se": float(np.nanmean(np.abs(e)) / np.nanmedian(se)),
        "frac_within_1.96se": float(np.mean(np.abs(e[known]) <= 1.96 * se[known])),
        "rmse_vs_truth_est_pts": VOL_POINTS * float(np.sqrt(max(mse - mse_se, 0.0))),
    }
    if grid is not None:
        out["ratio_map"] = np.sqrt(np.nanmean(e**2, axis=0) / np.nanmean(se**2, axis=0)).reshape(grid.shape)
    return out


def bucket_definitions(grid: Grid, atm_band: float = 0.05) -> dict[str, np.ndarray]:
    """Flat boolean masks (d,) for ATM, OTM put, OTM call, short/long tenor and their crossings."""
    b = bucket_masks(grid, atm_band)
    names = {"atm": "ATM", "otm_put": "OTM put", "otm_call": "OTM call"}
    out = {names[s]: b[s].reshape(-1) for s in names}
    out["short tenor"], out["long tenor"] = b["short"].reshape(-1), b["long"].reshape(-1)
    for s in names:
        for tn in ("short", "long"):
            out[f"{names[s]} x {tn}"] = (b[s] & b[tn]).reshape(-1)
    return out


def bucket_metrics(y_true, y_pred, grid: Grid, iv_se=None, atm_band: float = 0.05) -> pd.DataFrame:
    """One row per bucket: number of grid points, R², RMSE, MAE, max, p95 (vol points), RMSE/RMS SE."""
    t, p = _pair(y_true, y_pred)
    rows = []
    for name, mask in bucket_definitions(grid, atm_band).items():
        if not mask.any():
            continue
        m = regression_metrics(t[:, mask], p[:, mask])
        row = {
            "bucket": name,
            "n_points": int(mask.sum()),
            **{k: m[k] for k in ("r2", "rmse_pts", "mae_pts", "max_pts", "p95_pts")},
        }
        if iv_se is not None:
            se = np.broadcast_to(np.asarray(iv_se, np.float64), t.shape)[:, mask]
            row["rmse_over_rms_se"] = mc_noise_ratio(t[:, mask], p[:, mask], se)["rmse_over_rms_se"]
        rows.append(row)
    return pd.DataFrame(rows)


def residual_statistics(y_true, y_pred) -> dict:
    """Mean, std (vol points), skewness, excess kurtosis and the Jarque-Bera test of all residuals."""
    t, p = _pair(y_true, y_pred)
    r = (p - t).reshape(-1)
    r = r[np.isfinite(r)]
    jb = stats.jarque_bera(r)
    return {
        "mean_pts": VOL_POINTS * float(r.mean()),
        "std_pts": VOL_POINTS * float(r.std()),
        "skewness": float(stats.skew(r)),
        "excess_kurtosis": float(stats.kurtosis(r)),
        "jarque_bera_stat": float(jb.statistic),
        "jarque_bera_pvalue": float(jb.pvalue),
    }


def calendar_violations(iv, grid: Grid, tol: float = 1e-8) -> dict:
    """Calendar-spread check (module docstring). ``tol`` in total variance units."""
    S = np.asarray(iv, np.float64).reshape(-1, *grid.shape)
    T = grid.maturities
    w = S**2 * T[None, None, :]
    k = grid.log_moneyness
    bad = np.zeros((S.shape[0], grid.n_K, grid.n_T - 1), bool)
    for j in range(grid.n_T - 1):
        A, inside = _interp_matrix(k[:, j + 1], k[:, j])
        w_next = w[:, :, j + 1] @ A.T  # w(k_ij, T_{j+1}) for every surface at once
        bad[:, :, j] = inside[None, :] & (w_next < w[:, :, j] - tol)
    return _count(bad, "calendar")


def _interp_matrix(x, x_new) -> tuple[np.ndarray, np.ndarray]:
    """Matrix A with ``A @ f(x) = np.interp(x_new, x, f(x))`` (x in any order), and where x_new is inside."""
    order = np.argsort(x)
    xs = x[order]
    eye = np.eye(x.size)
    A = np.zeros((x_new.size, x.size))
    A[:, order] = np.array([[np.interp(v, xs, eye[r]) for r in range(x.size)] for v in x_new])
    inside = (x_new >= xs[0]) & (x_new <= xs[-1])
    return A, inside


def butterfly_violations(iv, grid: Grid, tol: float = 1e-10) -> dict:
    """Butterfly (convexity in strike) check on Black-Scholes call prices (module docstring)."""
    S = np.asarray(iv, np.float64).reshape(-1, *grid.shape)
    k = grid.log_moneyness[None]
    C = black_price(k, S * np.sqrt(grid.maturities)[None, None, :], True)
    order = np.argsort(grid.log_moneyness[:, 0])  # strike rows sorted (same order at every maturity)
    K = np.exp(k[:, order, :])
    C = C[:, order, :]
    slope = np.diff(C, axis=1) / np.diff(K, axis=1)
    bad = np.diff(slope, axis=1) < -tol
    return _count(bad, "butterfly")


def _count(bad: np.ndarray, what: str) -> dict:
    per_surface = bad.reshape(bad.shape[0], -1).sum(axis=1)
    return {
        f"{what}_n_checks": int(bad.size),
        f"{what}_n_violations": int(bad.sum()),
        f"{what}_frac_violations": float(bad.mean()) if bad.size else 0.0,
        f"{what}_frac_surfaces_violating": float(np.mean(per_surface > 0)) if bad.shape[0] else 0.0,
    }


def static_arbitrage_report(iv, grid: Grid, calendar_tol: float = 1e-8, butterfly_tol: float = 1e-10) -> dict:
    """Calendar and butterfly violation counts and fractions for surfaces ``iv`` (n, d)."""
    return {**calendar_violations(iv, grid, calendar_tol), **butterfly_violations(iv, grid, butterfly_tol)}


def evaluate_surrogate(y_true, y_pred, grid: Grid, iv_se=None) -> dict:
    """All of the above, JSON-able: overall metrics, buckets, maps, MC-noise ratio, residuals, arbitrage
    of predictions beside the same checks on the labels."""
    out = {
        "overall": regression_metrics(y_true, y_pred),
        "buckets": bucket_metrics(y_true, y_pred, grid, iv_se).to_dict(orient="records"),
        "maps_pts": {k: v.tolist() for k, v in error_maps(y_true, y_pred, grid).items()},
        "residuals": residual_statistics(y_true, y_pred),
        "arbitrage": {
            "prediction": static_arbitrage_report(y_pred, grid),
            "labels": static_arbitrage_report(y_true, grid),
        },
    }
    if iv_se is not None:
        r = mc_noise_ratio(y_true, y_pred, iv_se, grid)
        r["ratio_map"] = r["ratio_map"].tolist()
        out["mc_noise"] = r
    return out


def atm_vol_level(iv, grid: Grid, atm_band: float = 0.05) -> np.ndarray:
    """A surface's volatility level: the mean implied vol of its at-the-money points (|k|/sqrt(T) <= band)."""
    iv = np.asarray(iv, np.float64)
    atm = bucket_masks(grid, atm_band)["atm"].ravel()
    return np.nanmean(iv[:, atm], axis=1)


def truth_metrics(y_truth, y_pred, grid: Grid, truth_se=None, atm_band: float = 0.05, n_levels: int = 10) -> dict:
    r"""The surrogate against the truth set (:mod:`qrh_lib.pricer.truth`): the headline accuracy.

    Returns ``overall`` (:func:`regression_metrics`, plus ``rmse_noise_removed_pts`` =
    :math:`\sqrt{\mathrm{RMSE}^2 - \overline{\mathrm{se}^2}}` when the truth's own standard errors are given),
    ``by_bucket`` (:func:`bucket_metrics` records) and ``by_atm_vol`` (one record per ATM-vol decile of the truth
    surfaces: range, MAE, RMSE, p99, max in vol points and mean relative error in %).
    """
    t, p = _pair(y_truth, y_pred)
    overall = regression_metrics(t, p)
    if truth_se is not None:
        se = np.asarray(truth_se, np.float64)
        ms_se = float(np.mean(se[np.isfinite(t) & np.isfinite(se)] ** 2)) * VOL_POINTS**2
        overall["truth_rms_se_pts"] = float(np.sqrt(ms_se))
        overall["rmse_noise_removed_pts"] = float(np.sqrt(max(overall["rmse_pts"] ** 2 - ms_se, 0.0)))
    level = atm_vol_level(t, grid, atm_band)
    edges = np.quantile(level, np.linspace(0, 1, n_levels + 1))
    which = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, n_levels - 1)
    levels = []
    for q in range(n_levels):
        m = which == q
        if not m.any():
            continue
        r = regression_metrics(t[m], p[m])
        levels.append({"decile": q + 1, "atm_vol_from_pct": VOL_POINTS * float(level[m].min()),
                       "atm_vol_to_pct": VOL_POINTS * float(level[m].max()), "n_surfaces": int(m.sum()),
                       **{k: r[k] for k in ("mae_pts", "rmse_pts", "p99_pts", "max_pts", "mean_rel_pct")}})
    buckets = bucket_metrics(t, p, grid, iv_se=truth_se, atm_band=atm_band)
    return {"overall": overall, "by_bucket": buckets.to_dict("records"), "by_atm_vol": levels}
