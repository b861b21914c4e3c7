"""The SPX labels' standard errors against the truth set, before and after the robust errors (issue 20).

The states of the truth set (``data/truth``: 98,304 paths a surface, median standard error 0.04 vol point) are
priced again at ``--paths`` (512, 1,024 and 4,096) paths with the seeds ``--seeds`` (1 to 4; 1 and 2 at 4,096
paths), each state with its own dataset index, and the labels of both estimators come from the same paths:
``errors="classic"`` (every control everywhere, the regression's residual error: the estimator before) and
``errors="robust"`` (the jackknife; below ``MIN_PAYING_PAIRS`` paying pairs ``PSEUDO_HITS`` added hits, and the
spot control alone where a pair's leverage exceeds ``MAX_LEVERAGE``: :mod:`qrh_lib.pricer.pricing`). Per path count
and estimator, with z = (label - truth) / sqrt(se_label^2 + se_truth^2):

- ``beyond_4_pct`` (a Gaussian gives 0.006%) and ``beyond_6`` (count), ``max_abs_z``, ``median_abs_z`` (0.674 if
  honest), ``mean_z``, ``max_abs_err_pts``, ``rms_err_pts`` and ``mean_err_pts`` (vol points), ``median_se_pts``;
- ``beyond_3_pts``: labels more than 3 vol points off, beside ``beyond_3_pts_if_gaussian``, the count expected
  from the reported standard errors if the errors were Gaussian with them;
- the same by group: ``few``/``many`` pairs paying (fewer than ``MIN_PAYING_PAIRS`` in the model or its
  Black-Scholes twin, or not), and ``heavy``/``calm`` states: a state is heavy when the spot's sample mean at one
  year, pooled over every run of the benchmark, is more than 4 of its standard errors below 1. The scheme's spot
  is an exact martingale, so there part of its mean lives on paths too rare to be drawn (``heavy_states``), and
  the spot and hedge controls, whose means are exact only with those paths, bias labels and truth set alike.

    python benchmarks/standard_errors.py [--states 256] [--seeds 1 2 3 4] [--paths 512 1024 4096]
    python benchmarks/standard_errors.py --quick --out /tmp/standard_errors.json   # a check that it runs

Writes ``benchmarks/results/standard_errors.json``.
"""

from __future__ import annotations

import time

import numpy as np
from _common import parse_args, parser, record, result_path, write_result
from scipy.stats import norm

from qrh_lib.grid import default_grid
from qrh_lib.iv import VOL_POINTS
from qrh_lib.pricer.config import MAX_LEVERAGE, MIN_PAYING_PAIRS, PSEUDO_HITS, SPX_ESTIMATOR, MCConfig
from qrh_lib.pricer.mc import QRHEngine
from qrh_lib.pricer.pricing import ERRORS, _pair_units, bs_twin, otm_payoffs, surface_from_paths
from qrh_lib.pricer.truth import load_truth_set

#: Sizes of ``--quick``: eight states, one seed, two path counts.
QUICK = {"states": 8, "seeds": [1], "paths": [512, 1024]}
#: Seeds at 4,096 paths (the first two of ``--seeds``), to keep the run within about 20 minutes on 2 cores.
SEEDS_AT_4096 = 2
HEAVY_Z = -4.0


def price_runs(truth: dict, states: np.ndarray, n_paths: int, seeds, batch: int = 8):
    """Per seed: both estimators' results, the paying pairs (min of model and twin), and the spot's pair sums at
    the last maturity (sum, sum of squares, count) per state."""
    grid = default_grid()
    engine = QRHEngine(grid, MCConfig(n_paths=n_paths, batch_size=batch))
    runs = []
    for seed in seeds:
        res = {e: [] for e in ERRORS}
        paying, spot = [], []
        for lo in range(0, len(states), batch):
            ss = states[lo:lo + batch]
            st = engine.simulate(truth["X"][ss], truth["index"][ss], seed=seed)
            for e in ERRORS:
                res[e].append(surface_from_paths(st, grid, errors=e))
            model = (_pair_units(otm_payoffs(st, grid), True) > 0).sum(-1)
            twin = (_pair_units(bs_twin(st, grid)[0], True) > 0).sum(-1)
            paying.append(np.minimum(model, twin))
            s = _pair_units(np.exp(st.log_spot[-1]), True) - 1.0  # (B, pairs)
            spot.append(np.stack([s.sum(-1), (s * s).sum(-1), np.full(len(ss), s.shape[-1])], -1))
        runs.append({"seed": seed, "paying": np.concatenate(paying), "spot": np.concatenate(spot),
                     **{e: {f: np.concatenate([getattr(r, f) for r in parts]) for f in ("iv", "iv_se", "price")}
                        for e, parts in res.items()}})
    return runs


def summary(z, err, se, z_tol=(4.0, 6.0)) -> dict:
    """The numbers of the module docstring over the finite z-scores (err and se in vol points)."""
    ok = np.isfinite(z)
    if not ok.any():
        return {"points": 0}
    a, e, s = np.abs(z[ok]), err[ok], se[ok]
    return {"points": int(ok.sum()), "beyond_4_pct": float(100 * np.mean(a > z_tol[0])),
            "beyond_6": int(np.sum(a > z_tol[1])), "max_abs_z": float(a.max()), "median_abs_z": float(np.median(a)),
            "mean_z": float(np.mean(z[ok])), "max_abs_err_pts": float(np.abs(e).max()),
            "rms_err_pts": float(np.sqrt(np.mean(e * e))), "mean_err_pts": float(e.mean()),
            "median_se_pts": float(np.median(s)), "beyond_3_pts": int(np.sum(np.abs(e) > 3)),
            "beyond_3_pts_if_gaussian": float(np.sum(2 * norm.sf(3 / s)))}


def main(argv=None) -> int:
    p = parser(__doc__, "standard_errors")
    p.add_argument("--states", type=int, default=256, help="the first states of the truth set")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--paths", type=int, nargs="+", default=[512, 1024, 4096])
    a = parse_args(p, argv, quick=QUICK)
    truth = load_truth_set()
    states = np.arange(min(a.states, len(truth["X"])))
    y, y_se = truth["y"][states], truth["iv_se"][states]
    t0 = time.perf_counter()
    runs = {n: price_runs(truth, states, n, a.seeds[:SEEDS_AT_4096] if n >= 4096 else a.seeds) for n in a.paths}
    seconds = time.perf_counter() - t0
    # heavy states: the spot's sample mean at one year, pooled over every run, more than 4 standard errors below 1
    s = sum(r["spot"] for rs in runs.values() for r in rs)
    mean = s[:, 0] / s[:, 2]
    spot_z = mean / np.sqrt((s[:, 1] / s[:, 2] - mean**2) / s[:, 2])
    heavy = spot_z < HEAVY_Z
    out = {}
    for n, rs in runs.items():
        hv = np.broadcast_to(heavy[:, None], y.shape)
        out[str(n)] = {"seeds": [r["seed"] for r in rs]}
        for e in ERRORS:
            z = np.concatenate([(r[e]["iv"] - y) / np.hypot(r[e]["iv_se"], y_se) for r in rs])
            err = np.concatenate([VOL_POINTS * (r[e]["iv"] - y) for r in rs])
            se = np.concatenate([VOL_POINTS * r[e]["iv_se"] for r in rs])
            few = np.concatenate([r["paying"] < MIN_PAYING_PAIRS for r in rs])
            hvy = np.concatenate([hv] * len(rs))
            groups = {"all": True, "calm": ~hvy, "heavy": hvy, "few": few, "many": ~few, "calm_many": ~hvy & ~few}
            out[str(n)][e] = {g: summary(np.where(m, z, np.nan), err, se) for g, m in groups.items()}
        changed = np.concatenate([r["robust"]["price"] != r["classic"]["price"] for r in rs])
        out[str(n)]["prices_changed_pct"] = float(100 * changed.mean())
    fr = truth["feedback_ratio"][states]
    result = record(
        "standard_errors", seconds=seconds, states=len(states), spx_estimator=SPX_ESTIMATOR,
        min_paying_pairs=MIN_PAYING_PAIRS, pseudo_hits=PSEUDO_HITS, max_leverage=MAX_LEVERAGE,
        truth=str(truth["manifest"]["config_key"]),
        heavy_states={"rule": f"spot's pooled sample mean at 1 year below 1 by more than {-HEAVY_Z:g} standard errors",
                      "count": int(heavy.sum()),
                      "states": [{"state": int(i), "feedback_ratio": float(fr[i]), "spot_mean_minus_1": float(mean[i]),
                                  "z": float(spot_z[i])} for i in np.flatnonzero(heavy)],
                      "count_by_feedback_ratio": {f"[{lo}, {hi})": [int(heavy[(fr >= lo) & (fr < hi)].sum()),
                                                                    int(((fr >= lo) & (fr < hi)).sum())]
                                                  for lo, hi in ((0, 0.5), (0.5, 0.7), (0.7, 0.9))}},
        by_paths=out)
    for n in out:
        for e in ERRORS:
            r = out[n][e]["all"]
            print(f"{n:>5} paths {e:8s}: beyond 4 SE {r['beyond_4_pct']:.3f}%, beyond 6: {r['beyond_6']}, max |err| "
                  f"{r['max_abs_err_pts']:.2f} pts, median |z| {r['median_abs_z']:.3f}, mean z {r['mean_z']:+.3f}, "
                  f"median SE {r['median_se_pts']:.3f} pts; calm states beyond 6: {out[n][e]['calm']['beyond_6']}")
    print(f"heavy states: {int(heavy.sum())} of {len(states)}")
    write_result(result_path(a, "standard_errors"), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
