"""Monte Carlo engine benchmark: seconds per surface against the previous engine, throughput against plain NumPy,
variance reduction, and the cost of the accuracy-qualified defaults.

Writes benchmarks/results/engine.json. Every figure is measured in this run: the previous engine (``qrh_lib/mc.py``
at the commit ``--baseline``, loaded from git) and this one are timed side by side on the same inputs, so their
ratio is meaningful even on a busy machine; timings are the best of ``--repeats`` runs.

    python benchmarks/bench_engine.py [--baseline 0396a69] [--repeats 2] [--sections paths throughput variance defaults]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import qmc

from qrh_lib.artifacts import save_json, versions
from qrh_lib.domain import Domain
from qrh_lib.grid import default_grid
from qrh_lib.params import RZ_BOX
from qrh_lib.pricer import mc
from qrh_lib.pricer.generate import PATHS_PER_BATCH
from qrh_lib.pricer.mc import MCConfig, QRHEngine, sample_normals, sample_seeds
from qrh_lib.pricer.mc_numpy import simulate_numpy
from qrh_lib.pricer.pricing import ESTIMATORS, surface_from_paths

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "engine.json"
#: The engine before the chunked, XLA-compiled loop (issue 9's starting point).
BASELINE = "0396a69"
#: Paths per surface of the sweep: from the cpu profile's few to the pricer's default.
PATHS = (512, 1024, 2048, 4096, 8192, 24576)
#: The time grid both engines had before (the baseline's MCConfig defaults).
BASELINE_GRID = {"steps_per_year": 730, "first_step": 5e-6, "grading": 0.005}


def baseline_module(commit: str):
    """``qrh_lib/mc.py`` as it was at ``commit`` (the flat layout), imported as ``qrh_lib.pricer._mc_baseline``:
    it uses the current kernel, moments and params modules, whose interfaces it shares."""
    src = subprocess.run(["git", "show", f"{commit}:qrh_lib/mc.py"], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    src = src.replace("from .params import", "from ..params import")  # params stayed at the top
    spec = importlib.util.spec_from_loader("qrh_lib.pricer._mc_baseline", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "qrh_lib.pricer"
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(src, f"{commit}:qrh_lib/mc.py", "exec"), module.__dict__)  # noqa: S102
    return module


def best_of(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def stable_samples(n, seed=11):
    """``n`` Sobol points of the stable domain (the product's inputs)."""
    X = RZ_BOX.lo + (RZ_BOX.hi - RZ_BOX.lo) * qmc.Sobol(15, seed=seed).random(4 * n + 64)
    return X[Domain(RZ_BOX).contains(X)][:n]


def seconds_per_surface(module, cfg_kw, X, repeats):
    """Seconds per surface of pricing ``X`` (simulation and estimators), one batch, after a compiling run."""
    grid = default_grid()
    eng = module.QRHEngine(grid, module.MCConfig(**cfg_kw, batch_size=len(X)))
    idx = np.arange(len(X))
    surface_from_paths(eng.simulate(X, idx), grid)
    t, res = best_of(lambda: surface_from_paths(eng.simulate(X, idx), grid), repeats)
    return t / len(X), res, eng.n_steps


def paths_sweep(base, repeats):
    """Seconds per surface by paths per surface, each at the data step's batch (as many parameter sets as fill
    PATHS_PER_BATCH paths, at most 128): the previous engine and this one on the previous grid, and this one on
    its default grid where that differs."""
    new_grid = {k: getattr(MCConfig(), k) for k in BASELINE_GRID} != BASELINE_GRID or MCConfig().fine_until is not None
    rows = []
    for n in PATHS:
        B = int(max(1, min(128, PATHS_PER_BATCH // n)))
        X = stable_samples(B)
        common = {"n_paths": n}
        t_base, r_base, steps_base = seconds_per_surface(base, {**common, **BASELINE_GRID}, X, repeats)
        t_same, r_same, _ = seconds_per_surface(mc, {**common, **BASELINE_GRID}, X, repeats)
        row = {
            "n_paths": n, "batch": B, "steps_previous_grid": steps_base,
            "previous_engine_seconds_per_surface": t_base,
            "engine_previous_grid_seconds_per_surface": t_same,
            "speedup_same_grid": t_base / t_same,
            "median_iv_se_previous_engine": float(np.nanmedian(r_base.iv_se)),
            "median_iv_se_engine": float(np.nanmedian(r_same.iv_se)),
            "largest_iv_change_same_grid_vol_pt": float(100 * np.nanmax(np.abs(r_same.iv - r_base.iv))),
        }
        if new_grid:
            t_new, r_new, steps_new = seconds_per_surface(mc, common, X, repeats)
            row.update({"steps_default_grid": steps_new, "engine_default_grid_seconds_per_surface": t_new,
                        "speedup_default_grid": t_base / t_new,
                        "median_iv_se_default_grid": float(np.nanmedian(r_new.iv_se))})
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def throughput(base, repeats, n_paths=1024, samples=32):
    """Path-steps per second on the same normals, no hedge: NumPy, the previous engine and this one."""
    grid = default_grid()
    X = stable_samples(samples)
    idx = np.arange(samples)
    cfg = MCConfig(n_paths=n_paths, batch_size=samples, steps_per_hedge=0, **BASELINE_GRID)
    eng = QRHEngine(grid, cfg)
    old = base.QRHEngine(grid, base.MCConfig(**{k: v for k, v in cfg.to_dict().items()
                                                 if k in base.MCConfig.__dataclass_fields__}))
    coef = eng.coefficients
    xi = sample_normals(sample_seeds(0, idx), eng.n_steps, n_paths // 2, coef.n_normals).numpy()
    k = eng.kernel
    out = {"n_paths": n_paths, "samples": samples, "n_steps": eng.n_steps}
    path_steps = samples * n_paths * eng.n_steps
    for name, fn in [("engine", lambda: eng.simulate(X, idx, xi=xi)),
                     ("engine_own_normals", lambda: eng.simulate(X, idx)),
                     ("previous_engine", lambda: old.simulate(X, idx, xi=xi)),
                     ("numpy", lambda: simulate_numpy(X, k.c, k.gamma, eng.h, eng.seg_ends, xi, coefficients=coef))]:
        fn()
        t, _ = best_of(fn, repeats)
        out[f"{name}_seconds"] = t
        out[f"{name}_path_steps_per_second"] = path_steps / t
    out["speedup_engine_over_numpy"] = out["numpy_seconds"] / out["engine_seconds"]
    out["speedup_previous_engine_over_numpy"] = out["numpy_seconds"] / out["previous_engine_seconds"]
    out["note"] = ("same normals for all (generation excluded) but 'engine_own_normals', which draws its own; the "
                   "engines include the E[V] moments of the control model, NumPy runs the bare scheme")
    print(json.dumps(out), flush=True)
    return out


def variance_reduction(repeats, n_paths=1024, samples=128):
    """Median implied-vol standard error of each estimator, and the cost of the hedge control, at the cpu
    profile's paths per surface and the data step's batch."""
    grid = default_grid()
    X = stable_samples(samples)
    idx = np.arange(samples)
    rows = []
    for sph in (0, 64, 32):
        eng = QRHEngine(grid, MCConfig(n_paths=n_paths, batch_size=samples, steps_per_hedge=sph))
        eng.simulate(X, idx)  # compile
        t_sim, st = best_of(lambda eng=eng: eng.simulate(X, idx), repeats)
        for est, use in ESTIMATORS.items():
            if ("hedge" in use) != bool(sph):
                continue
            t_est, res = best_of(lambda st=st, est=est: surface_from_paths(st, grid, est), repeats)
            secs = (t_sim + t_est) / samples
            se = float(np.nanmedian(res.iv_se))
            rows.append({"estimator": est, "steps_per_hedge": sph, "median_iv_se": se,
                         "p90_iv_se": float(np.nanpercentile(res.iv_se, 90)), "seconds_per_surface": secs,
                         "variance_x_seconds": se**2 * secs, "missing_vols": int(np.sum(~np.isfinite(res.iv)))})
    plain = next(r for r in rows if r["estimator"] == "plain")
    for r in rows:
        r["variance_reduction_vs_plain"] = (plain["median_iv_se"] / r["median_iv_se"]) ** 2
        r["efficiency_vs_plain"] = plain["variance_x_seconds"] / r["variance_x_seconds"]
    print(json.dumps(rows, indent=1), flush=True)
    return {"samples": samples, "n_paths": n_paths, "rows": rows}


def default_cost(base, repeats, samples=16):
    """Seconds per surface x (median IV standard error)^2 at each engine's accuracy-qualified defaults."""
    X = stable_samples(samples)
    out = {}
    for name, module in (("previous_engine", base), ("engine", mc)):
        cfg = module.MCConfig()  # each engine's own defaults
        t, res, steps = seconds_per_surface(module, {k: v for k, v in cfg.to_dict().items() if k != "batch_size"},
                                            X, repeats)
        se = float(np.nanmedian(res.iv_se))
        out[name] = {"config": cfg.to_dict(), "n_steps": steps, "seconds_per_surface": t, "median_iv_se": se,
                     "p95_iv_se": float(np.nanpercentile(res.iv_se, 95)), "variance_x_seconds": se**2 * t,
                     "missing_vols": int(np.sum(~np.isfinite(res.iv)))}
    out["efficiency_ratio"] = out["previous_engine"]["variance_x_seconds"] / out["engine"]["variance_x_seconds"]
    print(json.dumps(out, indent=1), flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default=BASELINE, help="commit of the previous engine")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--sections", nargs="*", default=["paths", "throughput", "variance", "defaults"])
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    base = baseline_module(a.baseline)
    result = json.loads(a.out.read_text()) if a.out.exists() else {}
    result.update({
        "benchmark": "engine",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "versions": versions(),
        "baseline_commit": a.baseline,
        "chunk_steps": mc.CHUNK_STEPS,
    })
    sections = {"paths": ("paths_sweep", lambda: paths_sweep(base, a.repeats)),
                "throughput": ("throughput", lambda: throughput(base, a.repeats)),
                "variance": ("variance_reduction", lambda: variance_reduction(a.repeats)),
                "defaults": ("defaults", lambda: default_cost(base, a.repeats))}
    for s in a.sections:
        key, fn = sections[s]
        result[key] = fn()
        result["load_average_at_end"] = os.getloadavg()
        save_json(a.out, result)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
