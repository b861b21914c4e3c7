"""Randomised quasi-Monte Carlo at few paths: does it pay? Writes benchmarks/results/rqmc.json.

The engine's normals are pseudo-random (antithetic pairs). The alternative measured here: scrambled Sobol points
drive the Brownian path at ``--n-qmc`` knots of the time grid, placed in bisection (Brownian-bridge) order so that
the first Sobol coordinates fix the path's coarse shape; between knots the path is filled by Brownian bridges from
pseudo-random normals (exact in law). Each sample's scrambling is seeded by (replication, sample), so a surface
still depends only on its own seeds. Three ways of drawing 1,024 paths per surface are compared at equal paths,
with every control variate on, by the variance of each implied vol across ``--reps`` independent replications
(not by the within-sample standard error, which is not valid for quasi-random points):

- ``pseudo``: the engine's pseudo-random antithetic pairs;
- ``rqmc``: one scrambled Sobol set of 512 points, with their antithetic partners;
- ``rqmc_groups``: ``--groups`` independent scramblings of 512 / groups points each, with partners: what a
  standard error needs (the spread of the groups' estimates), since one scrambled set gives no error estimate.

    python benchmarks/rqmc.py [--states 16] [--reps 12] [--n-qmc 256] [--groups 16]
    python benchmarks/rqmc.py --quick --out /tmp/rqmc.json   # a check that it runs
"""

from __future__ import annotations

import json

import numpy as np
from _common import parse_args, parser, record, result_path, sample_domain, timed, write_result
from scipy.stats import norm, qmc

from qrh_lib.grid import default_grid
from qrh_lib.pricer.mc import MCConfig, QRHEngine
from qrh_lib.pricer.pricing import surface_from_paths

N_PATHS = 1024
#: Sizes of ``--quick``: two states, two replications, few knots and groups.
QUICK = {"states": 2, "reps": 2, "n_qmc": 16, "groups": 2}


def bisection_knots(n_steps: int, n_knots: int) -> list[int]:
    """Step indices in Brownian-bridge order: the last step, then midpoints of ever finer halves."""
    order, intervals = [n_steps], [(0, n_steps)]
    while len(order) < n_knots and intervals:
        new = []
        for lo, hi in intervals:
            if hi - lo > 1 and len(order) < n_knots:
                mid = (lo + hi) // 2
                order.append(mid)
                new += [(lo, mid), (mid, hi)]
        intervals = new
    return order


def bridge_normals(t, n_knots, rng_seed, n_draws):
    """Normals (N, 1, n_draws) of the implicit step whose Brownian path is scrambled Sobol at the knots and
    Brownian bridges in between."""
    N, h = t.size - 1, np.diff(t)
    order = bisection_knots(N, n_knots)
    u = norm.ppf(qmc.Sobol(len(order), scramble=True, seed=np.random.default_rng((*rng_seed, 1))).random(n_draws)).T
    W, known = {0: np.zeros(n_draws)}, [0]
    for j, k in enumerate(order):
        left = max(x for x in known if x < k)
        right = [x for x in known if x > k]
        if right:
            r = min(right)
            frac = (t[k] - t[left]) / (t[r] - t[left])
            mean, var = W[left] + frac * (W[r] - W[left]), (t[k] - t[left]) * (t[r] - t[k]) / (t[r] - t[left])
        else:
            mean, var = W[left], t[k] - t[left]
        W[k] = mean + np.sqrt(var) * u[j]
        known.append(k)
    rng = np.random.default_rng((*rng_seed, 2))
    ks = sorted(known)
    dW = np.empty((N, n_draws))
    for a, b in zip(ks[:-1], ks[1:], strict=True):
        d = rng.standard_normal((b - a, n_draws)) * np.sqrt(h[a:b, None])
        dW[a:b] = d - h[a:b, None] / (t[b] - t[a]) * (d.sum(0) - (W[b] - W[a]))
    return (dW / np.sqrt(h[:, None]))[:, None, :]


def main(argv=None):
    p = parser(__doc__, "rqmc")
    p.add_argument("--states", type=int, default=16)
    p.add_argument("--reps", type=int, default=12)
    p.add_argument("--n-qmc", type=int, default=256)
    p.add_argument("--groups", type=int, default=16)
    a = parse_args(p, argv, quick=QUICK)
    out = result_path(a, "rqmc")
    grid = default_grid()
    X = sample_domain(a.states, seed=5)
    idx = np.arange(len(X))
    eng = QRHEngine(grid, MCConfig(n_paths=N_PATHS, batch_size=len(X)))
    D = N_PATHS // 2

    def surface(method, r):
        if method == "pseudo":
            st = eng.simulate(X, idx, seed=100 + r)
        else:
            g = 1 if method == "rqmc" else a.groups
            xi = np.stack([np.concatenate([bridge_normals(eng.times, a.n_qmc, (r, i, j), D // g) for j in range(g)],
                                          axis=-1) for i in idx], axis=2)
            st = eng.simulate(X, idx, xi=xi.astype(np.float32))
        return surface_from_paths(st, grid).iv

    var, seconds = {}, {}
    for method in ("pseudo", "rqmc", "rqmc_groups"):
        reps = timed(lambda method=method: [surface(method, r) for r in range(a.reps)])
        with np.errstate(invalid="ignore"):
            var[method] = np.nanvar(np.asarray(reps.result), axis=0, ddof=1)
        seconds[method] = reps.best / (a.reps * len(X))
        print(method, f"median sd {100 * np.sqrt(np.nanmedian(var[method])):.3f} vol pt", flush=True)
    result = record(
        "rqmc", n_paths=N_PATHS, states=len(X), replications=a.reps, n_qmc_knots=a.n_qmc, groups=a.groups,
        estimator="every control variate (spot, Black-Scholes, delta hedge)",
        median_iv_sd_vol_pts={m: float(100 * np.sqrt(np.nanmedian(v))) for m, v in var.items()},
        seconds_per_surface_including_generation=seconds)
    for m in ("rqmc", "rqmc_groups"):
        ratio = var["pseudo"] / var[m]
        result[f"variance_ratio_pseudo_over_{m}"] = {"median": float(np.nanmedian(ratio)),
                                                     "p10": float(np.nanpercentile(ratio, 10)),
                                                     "p90": float(np.nanpercentile(ratio, 90))}
    print(json.dumps({k: v for k, v in result.items() if k.startswith("variance") or k.startswith("median")}))
    write_result(out, result)


if __name__ == "__main__":
    main()
