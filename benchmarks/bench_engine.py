"""Monte Carlo engine benchmark: throughput against plain NumPy, variance reduction, seconds per surface.

Writes benchmarks/results/engine.json. Every figure is measured in this run; timings are the best of
``--repeats`` runs (the least disturbed by other load), and the TensorFlow and NumPy implementations are timed
side by side on the same normals, so their ratio is meaningful even on a busy machine.

    python benchmarks/bench_engine.py [--samples 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from scipy.stats import qmc  # noqa: E402

from qrh_lib.data import _atomic_write, versions  # noqa: E402
from qrh_lib.grid import default_grid  # noqa: E402
from qrh_lib.kernel import SCHEMES  # noqa: E402
from qrh_lib.mc import MCConfig, QRHEngine, sample_normals, sample_seeds  # noqa: E402
from qrh_lib.mc_numpy import simulate_numpy  # noqa: E402
from qrh_lib.params import RZ_BOX  # noqa: E402
from qrh_lib.pricing import ESTIMATORS, surface_from_paths  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "engine.json"


def best_of(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def box_samples(n, seed=11):
    return RZ_BOX.lo + (RZ_BOX.hi - RZ_BOX.lo) * qmc.Sobol(15, seed=seed).random(n)


def throughput(X, repeats, n_paths, scheme):
    """Path-steps per second of the TensorFlow engine and of NumPy, same scheme, same normals, no hedge."""
    grid = default_grid()
    cfg = MCConfig(n_paths=n_paths, batch_size=len(X), steps_per_hedge=0, scheme=scheme)
    eng = QRHEngine(grid, cfg)
    coef = eng.coefficients
    xi = sample_normals(sample_seeds(0, np.arange(len(X))), eng.n_steps, n_paths // 2, coef.n_normals).numpy()
    eng.simulate(X, np.arange(len(X)), xi=xi)  # compile
    t_tf, _ = best_of(lambda: eng.simulate(X, np.arange(len(X)), xi=xi), repeats)
    k = eng.kernel
    t_np, _ = best_of(lambda: simulate_numpy(X, k.c, k.gamma, eng.h, eng.seg_ends, xi, coefficients=coef), repeats)
    path_steps = len(X) * n_paths * eng.n_steps
    return {
        "scheme": scheme,
        "samples": len(X),
        "n_paths": n_paths,
        "n_steps": eng.n_steps,
        "path_steps": path_steps,
        "tensorflow_seconds": t_tf,
        "numpy_seconds": t_np,
        "tensorflow_path_steps_per_second": path_steps / t_tf,
        "numpy_path_steps_per_second": path_steps / t_np,
        "speedup_tensorflow_over_numpy": t_np / t_tf,
        "note": "TensorFlow time includes the E[V] moments of the control model; NumPy runs the bare scheme",
    }


def variance_reduction(X, repeats, n_paths=8192):
    """Median implied-vol standard error of each estimator, and the cost of the hedge control."""
    grid = default_grid()
    rows = []
    for sph in (0, 32, 8):
        cfg = MCConfig(n_paths=n_paths, batch_size=len(X), steps_per_hedge=sph)
        eng = QRHEngine(grid, cfg)
        eng.simulate(X, np.arange(len(X)))  # compile
        t_sim, st = best_of(lambda eng=eng: eng.simulate(X, np.arange(len(X))), repeats)
        for est, use in ESTIMATORS.items():
            if ("hedge" in use) != bool(sph):
                continue
            t_est, res = best_of(lambda st=st, est=est: surface_from_paths(st, grid, est), repeats)
            se = res.iv_se
            secs = (t_sim + t_est) / len(X)
            rows.append(
                {
                    "estimator": est,
                    "steps_per_hedge": sph,
                    "median_iv_se": float(np.nanmedian(se)),
                    "p90_iv_se": float(np.nanpercentile(se, 90)),
                    "seconds_per_surface": secs,
                    "variance_x_seconds": float(np.nanmedian(se) ** 2 * secs),
                    "missing_vols": int(np.sum(~np.isfinite(res.iv))),
                }
            )
    plain = next(r for r in rows if r["estimator"] == "plain")
    for r in rows:
        r["variance_reduction_vs_plain"] = (plain["median_iv_se"] / r["median_iv_se"]) ** 2
        r["efficiency_vs_plain"] = plain["variance_x_seconds"] / r["variance_x_seconds"]
    # antithetic pairs alone: the same number of independent normals without the pairing
    eng = QRHEngine(grid, MCConfig(n_paths=n_paths, batch_size=len(X), antithetic=False))
    st = eng.simulate(X, np.arange(len(X)))
    no_anti = surface_from_paths(st, grid, "plain").iv_se
    return {
        "samples": len(X),
        "n_paths": n_paths,
        "rows": rows,
        "plain_without_antithetic_median_iv_se": float(np.nanmedian(no_anti)),
        "antithetic_variance_reduction": (float(np.nanmedian(no_anti)) / plain["median_iv_se"]) ** 2,
    }


def default_cost(X, repeats):
    """Seconds per surface and the standard errors at the accuracy-qualified defaults (MCConfig())."""
    grid = default_grid()
    cfg = MCConfig().replace(batch_size=len(X))
    eng = QRHEngine(grid, cfg)
    eng.simulate(X, np.arange(len(X)))

    def run():
        return surface_from_paths(eng.simulate(X, np.arange(len(X))), grid)

    t, res = best_of(run, repeats)
    return {
        "config": cfg.to_dict(),
        "n_steps": eng.n_steps,
        "seconds_per_surface": t / len(X),
        "median_iv_se": float(np.nanmedian(res.iv_se)),
        "p95_iv_se": float(np.nanpercentile(res.iv_se, 95)),
        "max_iv_se": float(np.nanmax(res.iv_se)),
        "missing_vols": int(np.sum(~np.isfinite(res.iv))),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    X = box_samples(a.samples)
    result = {
        "benchmark": "engine",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "versions": versions(),
    }
    result["throughput"] = [throughput(X[:8], a.repeats, n, scheme) for scheme in SCHEMES
                            for n in (4096, MCConfig().n_paths)]
    print(json.dumps(result["throughput"], indent=1), flush=True)
    result["variance_reduction"] = variance_reduction(X[:8], a.repeats)
    print(json.dumps(result["variance_reduction"], indent=1), flush=True)
    result["defaults"] = default_cost(X, a.repeats)
    print(json.dumps(result["defaults"], indent=1), flush=True)
    result["load_average_at_end"] = os.getloadavg()
    _atomic_write(a.out, lambda f: f.write(json.dumps(result, indent=2).encode()))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
