"""Monte Carlo engine benchmark: seconds per surface against the previous engine, throughput against plain NumPy,
variance reduction, and the cost of the accuracy-qualified defaults.

Writes benchmarks/results/engine.json. Every figure is measured in this run: the previous engine and this one are
timed side by side on the same inputs, so their ratio is meaningful even on a busy machine; timings are the best of
``--repeats`` runs after a compiling run. The previous engine is the library as it was at the commit ``--baseline``
(the flat layout before the chunked, XLA-compiled loop): ``git archive`` copies that commit's ``qrh_lib/`` into a
temporary folder as the package ``qrh_lib_<commit>``, and its ``mc`` module (with the kernel, moments and params
modules it imports) is imported from there unmodified. Both engines' paths go through this library's estimators.
It needs the commit in the clone's history (not a shallow clone); ``--sections variance`` does not use it.

    python benchmarks/bench_engine.py [--baseline 0396a69] [--repeats 2] [--sections paths throughput variance defaults]
    python benchmarks/bench_engine.py --quick --out /tmp/engine.json   # a check that it runs (about a minute)
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np
from _common import parse_args, parser, previous_result, record, result_path, sample_domain, timed, write_result

from qrh_lib.grid import default_grid
from qrh_lib.paths import PROJ_ROOT
from qrh_lib.pricer import mc
from qrh_lib.pricer.generate import PATHS_PER_BATCH
from qrh_lib.pricer.mc import MCConfig, QRHEngine, sample_normals, sample_seeds
from qrh_lib.pricer.mc_numpy import simulate_numpy
from qrh_lib.pricer.pricing import ESTIMATORS, surface_from_paths

#: The engine before the chunked, XLA-compiled loop (issue 9's starting point).
BASELINE = "0396a69"
#: Paths per surface of the sweep: from the cpu profile's few to the pricer's default.
PATHS = (512, 1024, 2048, 4096, 8192, 24576)
#: The time grid both engines had before (the baseline's MCConfig defaults).
BASELINE_GRID = {"steps_per_year": 730, "first_step": 5e-6, "grading": 0.005}
#: Sizes of ``--quick``: one small sweep point and a few surfaces per section.
QUICK = {"paths": [512], "samples": 2, "repeats": 1}
#: Seed of the stable-domain design the surfaces are drawn from.
INPUT_SEED = 11


def previous_engine(commit: str):
    """The module ``qrh_lib/mc.py`` of ``commit``, imported unmodified as ``qrh_lib_<commit>.mc`` from a copy of
    that commit's ``qrh_lib/`` (``git archive``) in a temporary folder. Its imports are relative, so it runs with
    the kernel, moments and params modules of the same commit."""
    name = f"qrh_lib_{commit}"
    if name not in sys.modules:
        try:
            tar = subprocess.run(["git", "archive", "--format=tar", commit, "qrh_lib"], cwd=PROJ_ROOT, check=True,
                                 capture_output=True).stdout
        except (OSError, subprocess.CalledProcessError) as err:
            raise SystemExit(f"the previous engine is read from git at commit {commit}, which this checkout does not "
                             f"have ({err}); fetch it, or run --sections variance") from None
        root = Path(tempfile.mkdtemp(prefix="qrh_previous_engine_"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        with tarfile.open(fileobj=BytesIO(tar)) as t:
            t.extractall(root, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        (root / "qrh_lib").rename(root / name)
        sys.path.insert(0, str(root))
    return importlib.import_module(f"{name}.mc")


def seconds_per_surface(module, cfg_kw, X, repeats):
    """Seconds per surface of pricing ``X`` (simulation and estimators), one batch, after a compiling run."""
    grid = default_grid()
    eng = module.QRHEngine(grid, module.MCConfig(**cfg_kw, batch_size=len(X)))
    idx = np.arange(len(X))
    t = timed(lambda: surface_from_paths(eng.simulate(X, idx), grid), repeat=repeats, warmup=1)
    return t.best / len(X), t.result, eng.n_steps


def paths_sweep(base, repeats, paths=PATHS):
    """Seconds per surface by paths per surface, each at the data step's batch (as many parameter sets as fill
    PATHS_PER_BATCH paths, at most 128): the previous engine and this one on the previous grid, and this one on
    its default grid where that differs."""
    new_grid = {k: getattr(MCConfig(), k) for k in BASELINE_GRID} != BASELINE_GRID or MCConfig().fine_until is not None
    rows = []
    for n in paths:
        B = int(max(1, min(128, PATHS_PER_BATCH // n)))
        X = sample_domain(B, seed=INPUT_SEED)
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
    X = sample_domain(samples, seed=INPUT_SEED)
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
        t = timed(fn, repeat=repeats, warmup=1).best
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
    X = sample_domain(samples, seed=INPUT_SEED)
    idx = np.arange(samples)
    rows = []
    for sph in (0, 64, 32):
        eng = QRHEngine(grid, MCConfig(n_paths=n_paths, batch_size=samples, steps_per_hedge=sph))
        sim = timed(lambda eng=eng: eng.simulate(X, idx), repeat=repeats, warmup=1)
        for est, use in ESTIMATORS.items():
            if ("hedge" in use) != bool(sph):
                continue
            t_est = timed(lambda st=sim.result, est=est: surface_from_paths(st, grid, est), repeat=repeats)
            secs = (sim.best + t_est.best) / samples
            res = t_est.result
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
    X = sample_domain(samples, seed=INPUT_SEED)
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
    p = parser(__doc__, "engine")
    p.add_argument("--baseline", default=BASELINE, help="commit of the previous engine")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--sections", nargs="*", default=["paths", "throughput", "variance", "defaults"])
    p.add_argument("--paths", type=int, nargs="*", default=list(PATHS), help="paths per surface of the sweep")
    p.add_argument("--samples", type=int, default=None,
                   help="surfaces of the throughput, variance and defaults sections (default 32, 128, 16)")
    a = parse_args(p, argv, quick=QUICK)
    out = result_path(a, "engine")
    base = previous_engine(a.baseline) if set(a.sections) - {"variance"} else None
    size = {} if a.samples is None else {"samples": a.samples}
    result = previous_result(out)  # sections not run this time are kept
    for legacy in ("cpu_count", "load_average_at_start", "versions"):  # the head before record()'s machine
        result.pop(legacy, None)
    result.update(record("engine", baseline_commit=a.baseline, chunk_steps=mc.CHUNK_STEPS))
    sections = {"paths": ("paths_sweep", lambda: paths_sweep(base, a.repeats, a.paths)),
                "throughput": ("throughput", lambda: throughput(base, a.repeats, **size)),
                "variance": ("variance_reduction", lambda: variance_reduction(a.repeats, **size)),
                "defaults": ("defaults", lambda: default_cost(base, a.repeats, **size))}
    for s in a.sections:
        key, fn = sections[s]
        result[key] = fn()
        result["load_average_at_end"] = os.getloadavg()
        write_result(out, result, quiet=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
