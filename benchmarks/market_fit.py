"""Where market fits land: the model calibrated by Monte Carlo alone to the SPX quotes of 15 Feb 2023.

The surrogate can only say where a fit lands inside its training box. This study asks the model itself, through
:func:`qrh_lib.pricer.mc_calibration.mc_calibrate` (least squares on common random numbers, no network), on the
same quotes, in four stages:

- ``box``: inside Rosenbaum & Zhang's box and the stable domain (the surrogate's own domain), on the expiries the
  default grid covers (37 to 338 days): does the model pin to the box's bounds, as the surrogate's fit does?
- ``wide``: the same quotes in a box widened on every side (lambda, eta, b, c, z0): where does the fit land, and
  how well can the model fit them at all?
- ``short``: the wide box with expiries of 1 to 4 weeks added: can the model fit the short end?
- ``alpha``: the wide fit repeated at other roughness exponents (alpha = H + 1/2): the kernel's weights and decay
  rates follow alpha, on nodes of the same geometric ratio.

Each fit is re-priced on independent paths (another seed, four times the paths): the RMSE to the mids by expiry,
the share of quotes inside the bid-ask spread, the inputs at a bound. Quotes: each expiry's quotes with both sides
nearest to 13 values of k / sqrt(T) from -0.5 to 0.3, bid-ask weights (1 / spread^2, spreads floored at 0.1 vol
point). Run: ``python benchmarks/market_fit.py`` (about half an hour on 2 cores; ``--quick`` checks it runs).
"""

from __future__ import annotations

import time

import numpy as np
from _common import parse_args, parser, record, result_path, write_result

from qrh_lib.data import sample_inputs
from qrh_lib.grid import Grid
from qrh_lib.iv import VOL_POINTS
from qrh_lib.params import PARAM_NAMES, RZ_BOX
from qrh_lib.paths import market_file
from qrh_lib.pricer.config import MCConfig
from qrh_lib.pricer.mc_calibration import mc_calibrate
from qrh_lib.pricer.pricing import price_surfaces
from qrh_lib.surrogate.market import load_quotes

NAME = "market_fit"
COVERED_DAYS = (37, 58, 93, 121, 156, 184, 247, 338)
SHORT_DAYS = (7, 14, 21, 28)
M_TARGETS = np.linspace(-0.5, 0.3, 13)
SPREAD_FLOOR = 0.001
#: The widened search box (the engine accepts lambda <= 10, eta <= 5, |b| <= 2, c <= 1, |z0| <= 2).
#: The nodes' geometric ratio at every alpha: Rosenbaum & Zhang's x* for alpha = 0.51 (x* is reported for that alpha
#: only, and the L2 criterion is too flat near alpha = 1/2 to re-derive it; the same ratio keeps the nodes' span).
X_STAR = 3.92
WIDE = {"lambda": (0.05, 6.0), "eta": (0.3, 3.0), "b": (-0.5, 1.0), "c": (1e-5, 0.1), "z0": (-1.5, 1.5)}


def wide_bounds() -> np.ndarray:
    b = np.c_[RZ_BOX.lo, RZ_BOX.hi]
    for j, name in enumerate(PARAM_NAMES):
        key = "z0" if name.startswith("z0") else name
        if key in WIDE:
            b[j] = WIDE[key]
    return b


def select_quotes(days, path=None):
    """The grid of quotes (13 log-strikes per expiry), their bids, asks and weights, flat and strike-major: the
    quotes :func:`qrh_lib.surrogate.market.load_quotes` keeps (both sides, a positive bid below the ask)."""
    d = load_quotes(path or market_file("spx")).kept.copy()
    d["m"] = np.log(d.Strike / d.Fwd) / np.sqrt(d.Texp)
    expiries = np.sort(d.Texp.unique())
    T = np.array([expiries[np.argmin(np.abs(expiries * 365 - t))] for t in days])
    k = np.empty((M_TARGETS.size, T.size))
    bid, ask = np.full_like(k, np.nan), np.full_like(k, np.nan)
    for j, t in enumerate(T):
        e = d[d.Texp == t]
        for i, m in enumerate(M_TARGETS):
            r = e.iloc[int(np.argmin(np.abs(e.m.to_numpy() - m)))]
            close = abs(r.m - m) < 0.03
            k[i, j] = r.m * np.sqrt(t) if close else m * np.sqrt(t)
            if close:
                bid[i, j], ask[i, j] = r.Bid, r.Ask
    bid, ask = bid.reshape(-1), ask.reshape(-1)
    mid = 0.5 * (bid + ask)
    w = np.where(np.isfinite(mid), 1.0 / np.maximum(ask - bid, SPREAD_FLOOR) ** 2, 1.0)
    return Grid(T, k), mid, bid, ask, w


def assess(x, grid, mid, bid, ask, cfg, seed):
    """The inputs re-priced on independent paths: RMSE to the mids overall and by expiry, share inside the spread,
    the re-pricing's median standard error."""
    res = price_surfaces(x[None, :], grid, cfg, seed=seed)
    iv, se = res.iv[0], res.iv_se[0]
    q = np.isfinite(mid)
    err = (VOL_POINTS * (iv - mid)).reshape(grid.n_K, grid.n_T)
    qq = q.reshape(grid.n_K, grid.n_T)
    inside = ((iv >= bid) & (iv <= ask))[q]
    by_expiry = {f"{365 * t:.0f}d": float(np.sqrt(np.nanmean(np.where(qq[:, j], err[:, j], np.nan) ** 2)))
                 for j, t in enumerate(grid.maturities)}
    return {"rmse_pts": float(np.sqrt(np.nanmean(err[qq] ** 2))), "rmse_by_expiry_pts": by_expiry,
            "inside_spread": float(np.mean(inside)), "median_se_pts": float(VOL_POINTS * np.nanmedian(se[q])),
            "n_quotes": int(q.sum()), "n_missing_model_vols": int(np.sum(~np.isfinite(iv[q])))}


def best_start(grid, mid, w, cfg, seed, n=64):
    """The best of ``n`` stable states of the box (Sobol), priced on common paths: the first stage's start."""
    X = sample_inputs(n, RZ_BOX, seed=seed, domain="stable")
    iv = price_surfaces(X, grid, cfg.replace(batch_size=16), seed=seed, index=np.zeros(n, np.int64)).iv
    q = np.isfinite(mid)
    loss = np.nansum(w[q] * (iv[:, q] - mid[q]) ** 2, axis=1) + 1e3 * np.sum(~np.isfinite(iv[:, q]), axis=1)
    return X[int(np.argmin(loss))]


def main(argv=None) -> int:
    p = parser(__doc__, NAME)
    p.add_argument("--paths", type=int, default=4096, help="paths of the fits")
    p.add_argument("--check-paths", type=int, default=16_384, help="paths of the independent re-pricing")
    p.add_argument("--max-nfev", type=int, default=30, help="evaluations per fit")
    p.add_argument("--alphas", type=float, nargs="*", default=[0.55, 0.60, 0.65])
    p.add_argument("--seed", type=int, default=0)
    a = parse_args(p, argv, quick={"paths": 256, "check_paths": 512, "max_nfev": 3, "alphas": [0.6]})
    out = result_path(a, NAME)
    fit_cfg, check_cfg = MCConfig(n_paths=a.paths), MCConfig(n_paths=a.check_paths)
    rz = np.c_[RZ_BOX.lo, RZ_BOX.hi]
    stages = {}

    def run(name, days, bounds, x0, cfg=fit_cfg, chk=check_cfg):
        grid, mid, bid, ask, w = select_quotes(days)
        t0 = time.perf_counter()
        fit = mc_calibrate(mid, grid, x0, bounds, weights=w, config=cfg, seed=a.seed, max_nfev=a.max_nfev,
                           progress=lambda n, r: print(f"  {name}: evaluation {n}, weighted RMSE {r:.3f}", flush=True))
        stages[name] = {"expiry_days": [round(365 * t, 1) for t in grid.maturities], "alpha": cfg.alpha,
                        "x": dict(zip(PARAM_NAMES, map(float, fit.x), strict=True)),
                        "feedback_ratio": fit.feedback_ratio, "at_bound": list(fit.at_bound),
                        "bounds": {n: list(map(float, b)) for n, b in zip(PARAM_NAMES, bounds, strict=True)},
                        "fit_rmse_pts_own_paths": fit.rmse_pts, "evaluations": fit.nfev, "jacobians": fit.njev,
                        "seconds": time.perf_counter() - t0, "message": fit.message,
                        "repriced": assess(fit.x, grid, mid, bid, ask, chk, a.seed + 1)}
        s = stages[name]
        print(f"{name}: RMSE {s['repriced']['rmse_pts']:.3f} vol pts re-priced, inside spread "
              f"{s['repriced']['inside_spread']:.0%}, at bound {fit.at_bound}, ratio {fit.feedback_ratio:.3f}, "
              f"{s['seconds']:.0f} s", flush=True)
        write_result(out, {**record(NAME, options={k: v for k, v in vars(a).items() if k != "results_dir"}),
                           "quotes": {"file": market_file("spx").name, "m_targets": M_TARGETS.tolist(),
                                      "spread_floor": SPREAD_FLOOR}, "stages": stages}, quiet=True)
        return fit

    grid, mid, _, _, w = select_quotes(COVERED_DAYS)
    x0 = best_start(grid, mid, w, MCConfig(n_paths=min(a.paths, 1024)), a.seed)
    box = run("box", COVERED_DAYS, rz, x0)
    wide = run("wide", COVERED_DAYS, wide_bounds(), box.x)
    run("short", SHORT_DAYS + COVERED_DAYS, wide_bounds(), wide.x)
    for alpha in a.alphas:
        run(f"wide_alpha_{alpha:.2f}", COVERED_DAYS, wide_bounds(), wide.x, fit_cfg.replace(alpha=alpha, x=X_STAR),
            check_cfg.replace(alpha=alpha, x=X_STAR))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
