"""Convergence study of the time grid: discretisation bias against a finer grid, over the input box.

For each candidate time grid, states drawn over Rosenbaum & Zhang's box (scrambled Sobol) and the stress
states at the corners of z0 (qrh_lib.convergence.corner_states) are priced on the grid and on a grid
``--refine`` times finer, with the same Brownian paths. The bias of each implied vol is the coupled difference;
a point counts as biased beyond 0.1 vol point only when its bias exceeds 0.001 by more than three standard
errors. Writes benchmarks/results/convergence.json.

    python benchmarks/convergence.py [--n-box 32] [--n-paths 8192] [--refine 8]
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

from qrh_lib.convergence import bias_by_maturity, corner_states, coupled_bias  # noqa: E402
from qrh_lib.data import _atomic_write, versions  # noqa: E402
from qrh_lib.grid import default_grid  # noqa: E402
from qrh_lib.mc import MCConfig, QRHEngine  # noqa: E402
from qrh_lib.params import PARAM_NAMES, RZ_BOX  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "convergence.json"
TOL = 1e-3  # 0.1 vol point
CANDIDATES = {
    "uniform_daily": {"steps_per_year": 365, "first_step": 1 / 365, "grading": 0.0},
    "default": {},
    "default_x2": {"steps_per_year": 730, "first_step": 5e-6, "grading": 0.005},
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-box", type=int, default=32)
    p.add_argument("--n-paths", type=int, default=8192)
    p.add_argument("--refine", type=int, default=8)
    p.add_argument("--candidates", nargs="*", default=list(CANDIDATES))
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    grid = default_grid()
    sets = {
        "box": RZ_BOX.lo + (RZ_BOX.hi - RZ_BOX.lo) * qmc.Sobol(15, seed=21).random(a.n_box),
        "corners": corner_states(),
    }
    result = {
        "benchmark": "convergence",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "refine": a.refine,
        "n_paths": a.n_paths,
        "tolerance": TOL,
        "versions": versions(),
        "param_names": list(PARAM_NAMES),
        "states": {k: v.tolist() for k, v in sets.items()},
        "grids": {},
    }
    for name in a.candidates:
        cfg = MCConfig(n_paths=a.n_paths, batch_size=4).replace(**CANDIDATES[name])
        entry = {"config": cfg.to_dict(), "n_steps": QRHEngine(grid, cfg).n_steps}
        for set_name, X in sets.items():
            t0 = time.perf_counter()
            res = coupled_bias(X, grid, cfg, refine=a.refine, seed=1)
            entry[set_name] = {
                "by_maturity": bias_by_maturity(res, grid, TOL),
                "seconds": time.perf_counter() - t0,
                "missing_vols": int(np.sum(~np.isfinite(res["bias"]))),
            }
            print(name, set_name, json.dumps(entry[set_name]["by_maturity"]), flush=True)
        result["grids"][name] = entry
        _atomic_write(a.out, lambda f: f.write(json.dumps(result, indent=2).encode()))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
