"""Calibration through the surrogate: speed, fit, Monte Carlo round trip, recovery, quotes off the grid, ensemble
spread. Writes benchmarks/results/calibration.json.

    python benchmarks/bench_calibration.py --surrogate book/run/surrogate [--n-targets 100] [--round-trip 20]
    python benchmarks/bench_calibration.py --quick --out /tmp/calibration.json   # a check that it runs

Targets come from an independent pricer: the truth set (98,304 Monte Carlo paths a surface, inputs known, points
no training design contains). Sections, all in one run:

- ``speed_fit``: the least-squares solver (the default) and L-BFGS-B with its previous default settings, on the same
  targets: seconds per surface (wall and CPU, after a warm-up that builds the candidate bank) and fit;
- ``round_trip``: the first ``--round-trip`` calibrated inputs priced by Monte Carlo at ``--paths`` paths, against
  the target;
- ``recovery``: the targets plus Gaussian noise at the training labels' standard error (``--label-paths`` paths):
  error of each recovered input in box widths;
- ``quotes``: interpolation error of :mod:`qrh_lib.surrogate.quotes` on Monte Carlo surfaces (the grid's surface
  interpolated to off-grid points against Monte Carlo prices at those points, same paths per surface), and
  calibration to them;
- ``ensemble``: with ``--ensemble`` artifact folders, each member calibrated to the same targets and the spread of
  the calibrated inputs across members.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _common import get_surrogate, model_summary, parse_args, parser, record, result_path, timed_each, write_result

from qrh_lib.grid import default_grid, sqrt_t_grid
from qrh_lib.params import PARAM_NAMES
from qrh_lib.pricer.mc import MCConfig
from qrh_lib.pricer.pricing import price_surfaces
from qrh_lib.pricer.truth import load_truth_set
from qrh_lib.surrogate.calibration import calibrate, round_trip_fit
from qrh_lib.surrogate.quotes import Quotes, calibrate_quotes, interpolate_surface

#: L-BFGS-B as it was the default before the least-squares solver (same bank size, starts and tolerances).
PREVIOUS = {"solver": "lbfgsb", "n_starts": 2, "n_candidates": 256, "maxiter": 100, "ftol": 1e-8, "gtol": 1e-6}
#: Off-grid quote points: maturities and k / sqrt(T) between the grid's.
QUOTE_GRID = sqrt_t_grid((45, 120, 240), (-0.4, -0.2, -0.075, 0.025, 0.1, 0.2))
#: Sizes of ``--quick``.
QUICK = {"n_targets": 3, "round_trip": 2, "paths": 512, "quote_states": 2}


def _run(sur, targets, kw):
    """Calibrate each target, after a warm-up on the first (the candidate bank, the NumPy copy of the network);
    CPU seconds too (wall time is inflated on a shared machine)."""
    t = timed_each(lambda target: calibrate(sur, target, **kw), targets)
    return t.result, t.cpu


def _summary(results, cpu) -> dict:
    sec = np.array([r.seconds for r in results])
    fit = np.array([r.fit_rmse_pts for r in results])
    return {"n_targets": len(results), "median_ms": 1e3 * float(np.median(sec)),
            "median_cpu_ms": 1e3 * float(np.median(cpu)), "p90_ms": 1e3 * float(np.percentile(sec, 90)),
            "max_ms": 1e3 * float(sec.max()), "median_fit_rmse_pts": float(np.median(fit)),
            "p90_fit_rmse_pts": float(np.percentile(fit, 90)), "max_fit_rmse_pts": float(fit.max()),
            "median_evaluations": float(np.median([r.n_evaluations for r in results]))}


def _input_errors(X_found, X_true, box) -> dict:
    err = np.abs(np.asarray(X_found) - X_true) / (box.hi - box.lo)
    return {name: float(v) for name, v in zip(PARAM_NAMES, np.median(err, axis=0), strict=True)}


def main(argv=None) -> dict:
    p = parser(__doc__, "calibration", surrogate=True)
    p.add_argument("--n-targets", type=int, default=100)
    p.add_argument("--round-trip", type=int, default=20, help="calibrated inputs re-priced by Monte Carlo")
    p.add_argument("--paths", type=int, default=24_576, help="paths per surface of every Monte Carlo pricing")
    p.add_argument("--label-paths", type=int, default=1024, help="paths of the training labels (recovery noise)")
    p.add_argument("--quote-states", type=int, default=8)
    p.add_argument("--ensemble", nargs="*", default=[], help="artifact folders of an ensemble's members")
    a = parse_args(p, argv, quick=QUICK)
    out = result_path(a, "calibration")

    sur, origin = get_surrogate(a.surrogate, a.seed)
    truth = load_truth_set()
    n = min(a.n_targets, len(truth["X"]))
    targets, X_true = truth["y"][:n], truth["X"][:n]
    mc_config = MCConfig(n_paths=a.paths)
    result = record("calibration", surrogate=origin, model=model_summary(sur),
                    targets=f"the first {n} surfaces of the truth set (98,304 paths each)")

    res_lsq, cpu_lsq = _run(sur, targets, {})
    res_prev, cpu_prev = _run(sur, targets, PREVIOUS)
    result["speed_fit"] = {"least_squares": {"settings": "qrh_lib.surrogate.calibration.calibrate defaults",
                                             **_summary(res_lsq, cpu_lsq)},
                           "lbfgsb_previous": {"settings": PREVIOUS, **_summary(res_prev, cpu_prev)}}
    print(result["speed_fit"], flush=True)

    m = min(a.round_trip, n)
    X_found = np.array([r.x for r in res_lsq])
    rep = price_surfaces(X_found[:m], default_grid(), mc_config, seed=a.seed + 1)
    rt = [round_trip_fit(x, t, lambda X, i=i: rep.iv[i : i + 1])["fit_rmse_pts"]
          for i, (x, t) in enumerate(zip(X_found[:m], targets[:m], strict=True))]
    result["round_trip"] = {"n": m, "paths": a.paths, "median_rmse_pts": float(np.median(rt)),
                            "p90_rmse_pts": float(np.percentile(rt, 90)), "rmse_pts": rt,
                            "repricing_median_se_pts": float(100 * np.nanmedian(rep.iv_se)),
                            "target_median_se_pts": float(100 * np.nanmedian(truth["iv_se"][:m]))}
    print(result["round_trip"], flush=True)

    rng = np.random.default_rng(a.seed)
    label_se = truth["iv_se"][:n] * np.sqrt(truth["manifest"]["mc_config"]["n_paths"] / a.label_paths)
    noisy = targets + rng.standard_normal(targets.shape) * np.nan_to_num(label_se)
    res_noisy, _ = _run(sur, noisy, {})
    result["recovery"] = {"label_paths": a.label_paths, "label_median_se_pts": float(100 * np.nanmedian(label_se)),
                          "median_fit_rmse_pts": float(np.median([r.fit_rmse_pts for r in res_noisy])),
                          "median_error_box_widths_noisy": _input_errors([r.x for r in res_noisy], X_true, sur.box),
                          "median_error_box_widths_truth_targets": _input_errors(X_found, X_true, sur.box)}

    k_q, T_q = QUOTE_GRID.flat_log_moneyness(), QUOTE_GRID.flat_maturities()
    nq = min(a.quote_states, n)
    on_grid = price_surfaces(X_true[:nq], default_grid(), mc_config, seed=a.seed + 2)
    at_quotes = price_surfaces(X_true[:nq], QUOTE_GRID, mc_config, seed=a.seed + 2)
    interp = interpolate_surface(default_grid(), on_grid.iv, k_q, T_q)
    diff = 100 * np.abs(interp - at_quotes.iv)
    fits = []
    for i in range(nq):
        iv, half = at_quotes.iv[i], np.maximum(2 * at_quotes.iv_se[i], 0.005)
        r = calibrate_quotes(sur, Quotes(k_q, T_q, iv, bid=iv - half, ask=iv + half), seed=a.seed)
        fit = interpolate_surface(sur, r.iv, k_q, T_q)
        fits.append((r.seconds, 100 * float(np.sqrt(np.nanmean((fit - iv) ** 2)))))
    result["quotes"] = {
        "states": nq, "paths": a.paths, "quote_points": int(k_q.size),
        "interpolation": "natural cubic spline in k/sqrt(T), linear in total variance in T (qrh_lib.surrogate.quotes)",
        "median_abs_interpolation_error_pts": float(np.nanmedian(diff)),
        "p90_abs_interpolation_error_pts": float(np.nanpercentile(diff, 90)),
        "max_abs_interpolation_error_pts": float(np.nanmax(diff)),
        "median_noise_se_of_the_difference_pts": float(100 * np.nanmedian(np.hypot(
            at_quotes.iv_se, interpolate_surface(default_grid(), on_grid.iv_se, k_q, T_q)))),
        "calibration_median_ms": 1e3 * float(np.median([f[0] for f in fits])),
        "calibration_median_rmse_at_quotes_pts": float(np.median([f[1] for f in fits])),
    }
    print(result["quotes"], flush=True)

    if a.ensemble:
        from qrh_lib.surrogate import QRHSurrogate

        members = [QRHSurrogate.load(Path(f)) for f in a.ensemble]
        ne = min(n, 30)
        Xm = np.array([[calibrate(s, t).x for t in targets[:ne]] for s in members])  # (members, ne, 15)
        width = sur.box.hi - sur.box.lo
        spread = Xm.std(0, ddof=1) / width
        err_mean = np.abs(Xm.mean(0) - X_true[:ne]) / width
        result["ensemble"] = {
            "members": len(members), "targets": ne,
            "median_spread_box_widths": dict(zip(PARAM_NAMES, np.median(spread, 0).tolist(), strict=True)),
            "median_error_of_member_mean_box_widths": dict(zip(PARAM_NAMES, np.median(err_mean, 0).tolist(),
                                                               strict=True)),
            "spread_error_correlation": float(np.corrcoef(spread.ravel(), err_mean.ravel())[0, 1]),
        }
        print(result["ensemble"], flush=True)

    write_result(out, result)
    return result


if __name__ == "__main__":
    main()
