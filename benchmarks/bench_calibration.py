"""Calibration speed and fit through the surrogate, written to benchmarks/results/calibration.json.

    python benchmarks/bench_calibration.py [--surrogate models/<artifact>] [--dataset data/raw/data_<size>]
                                          [--n-targets 50] [--n-starts 2] [--mc-round-trip 3]

Two sets of targets: surfaces the surrogate itself produced at uniform inputs in its box (the
global minimum of the fit is 0, so the fit measures the optimiser), and noisy surfaces (the
dataset's Monte Carlo test labels when a dataset is given, else the surrogate's surfaces plus
Gaussian noise of ``--noise-pts``). Reports median and p90 seconds per surface and the fit RMSE in
vol points; with ``--mc-round-trip N`` the first N calibrated inputs of the noisy set are priced
by Monte Carlo and that fit is reported too.
"""

from __future__ import annotations

import time

import numpy as np
from _common import common_parser, get_surrogate, machine, model_summary, write_result

from qrh_lib.calibration import calibrate, round_trip_fit
from qrh_lib.training import read_dataset_folder


def _run(sur, targets, seed, kw) -> tuple[list, np.ndarray]:
    """Calibrate each target; also CPU seconds per target (wall time is inflated on a shared machine)."""
    res, cpu = [], []
    for i, t in enumerate(targets):
        c0 = time.process_time()
        res.append(calibrate(sur, t, seed=seed + i, **kw))
        cpu.append(time.process_time() - c0)
    return res, np.asarray(cpu)


def _summary(results, targets, cpu) -> dict:
    sec = np.array([r.seconds for r in results])
    fit = np.array([r.fit_rmse_pts for r in results])
    return {
        "n_targets": len(results),
        "median_seconds": float(np.median(sec)),
        "median_cpu_seconds": float(np.median(cpu)),
        "p90_seconds": float(np.percentile(sec, 90)),
        "max_seconds": float(sec.max()),
        "median_fit_rmse_pts": float(np.median(fit)),
        "p90_fit_rmse_pts": float(np.percentile(fit, 90)),
        "max_fit_rmse_pts": float(fit.max()),
        "frac_success": float(np.mean([r.success for r in results])),
        "median_n_evaluations": float(np.median([r.n_evaluations for r in results])),
        "n_nan_target_points": int(np.isnan(targets).sum()),
    }


def main(argv=None) -> dict:
    p = common_parser(__doc__, "calibration")
    p.add_argument("--dataset", default=None, help="dataset folder whose test labels are the noisy targets")
    p.add_argument("--n-targets", type=int, default=50)
    p.add_argument("--n-starts", type=int, default=2)
    p.add_argument("--backend", choices=("numpy", "tf"), default="numpy")
    p.add_argument("--noise-pts", type=float, default=0.1, help="noise added without a dataset (vol points)")
    p.add_argument("--mc-round-trip", type=int, default=3, help="noisy-set results re-priced by Monte Carlo")
    a = p.parse_args(argv)

    sur, origin = get_surrogate(a.surrogate, a.seed)
    box, n = sur.box, a.n_targets
    rng = np.random.default_rng(a.seed)
    X_self = box.lo + (box.hi - box.lo) * rng.random((4 * n, box.lo.size))
    X_self = X_self[sur.domain.contains(X_self)][:n]  # targets from the surrogate's domain (the stable part)
    T_self = sur.predict_numpy(X_self)
    if a.dataset:
        d = read_dataset_folder(a.dataset)
        T_noisy, noisy_kind = d["test_y"][:n], f"MC test labels of {a.dataset}"
    else:
        T_noisy = T_self + a.noise_pts / 100 * rng.standard_normal(T_self.shape)
        noisy_kind = f"surrogate surfaces + N(0, {a.noise_pts} vol points)"
    kw = {"n_starts": a.n_starts, "backend": a.backend}
    calibrate(sur, T_self[0], **kw)  # warm-up (NumPy copy of the weights, tf.function tracing)
    res_self, cpu_self = _run(sur, T_self, a.seed, kw)
    res_noisy, cpu_noisy = _run(sur, T_noisy, a.seed, kw)
    result = {
        "benchmark": "calibration",
        "surrogate": origin,
        "model": model_summary(sur),
        "machine": machine(),
        "settings": {**kw, "other": "qrh_lib.calibration.calibrate defaults", "objective": "equal weights"},
        "self_generated": _summary(res_self, T_self, cpu_self),
        "noisy": {"targets": noisy_kind, **_summary(res_noisy, T_noisy, cpu_noisy)},
    }
    # Distance between calibrated and true inputs on the self-generated set, per input, in units of the
    # box width: the unidentifiable directions (rank <= K) show up here, not in the fit.
    err = np.abs(np.array([r.x for r in res_self]) - X_self) / (box.hi - box.lo)
    result["self_generated"]["median_abs_input_error_frac_of_box"] = dict(
        zip(
            ("lambda", "eta", "a", "b", "c") + tuple(f"z0_{i}" for i in range(1, 11)),
            np.median(err, axis=0).round(4).tolist(),
            strict=True,
        )
    )
    if a.mc_round_trip > 0:
        try:
            from qrh_lib.pricing import mc_iv_surface
        except ImportError as e:
            result["mc_round_trip"] = {"skipped": True, "note": str(e)}
        else:
            rt = [
                round_trip_fit(r.x, t, lambda x: mc_iv_surface(x, seed=a.seed)[0])
                for r, t in zip(res_noisy[: a.mc_round_trip], T_noisy, strict=False)
            ]
            result["mc_round_trip"] = {
                "n": len(rt),
                "fit_rmse_pts": [v["fit_rmse_pts"] for v in rt],
                "surrogate_fit_rmse_pts": [r.fit_rmse_pts for r in res_noisy[: len(rt)]],
            }
    path = write_result("calibration", result, a.out)
    print(f"wrote {path}")
    for k in ("self_generated", "noisy"):
        s = result[k]
        print(
            f"  {k:15s} median {1e3 * s['median_seconds']:6.1f} ms (CPU {1e3 * s['median_cpu_seconds']:5.1f})  "
            f"p90 {1e3 * s['p90_seconds']:6.1f} ms  "
            f"fit median {s['median_fit_rmse_pts']:.2e} pts  max {s['max_fit_rmse_pts']:.2e} pts"
        )
    if "fit_rmse_pts" in result.get("mc_round_trip", {}):
        print(f"  MC round trip fit (pts): {np.round(result['mc_round_trip']['fit_rmse_pts'], 3).tolist()}")
    return result


if __name__ == "__main__":
    main()
