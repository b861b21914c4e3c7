"""The VIX labels' estimator: bias and spread of its control variates at the training path count.

On the first ``--states`` states of the truth set, the VIX futures and implied vols are estimated at ``--paths``
paths (1,024, the training labels') in ``--reps`` independent replications, from the same simulated paths with
each control of :data:`qrh_lib.pricer.vix.VIX_CONTROLS`: the spot martingale (the labels'), VIX^2 with its exact
mean, and none. Per estimator it reports

- ``bias_vs_plain_pts``: the mean over states and grid points of the replications' average minus that of the
  control-free estimator on the same paths, which is unbiased for the future and, for the vols, up to the O(1/n)
  of strikes set on the estimated future; overall and per tercile of the feedback ratio;
- ``bias_vs_truth_pts``: the same against the truth set (98,304 paths, the labels' estimator);
- ``spread_pts``: the median over grid points of the replications' standard deviation, the noise a label really
  has, beside ``reported_se_pts``, the median standard error the estimator reports;
- the futures' relative bias and spread (%).

    python benchmarks/vix_estimators.py [--states 64] [--reps 8] [--paths 1024]
    python benchmarks/vix_estimators.py --quick --out /tmp/vix_estimators.json   # a check that it runs

Writes ``benchmarks/results/vix_estimators.json``.
"""

from __future__ import annotations

import warnings

import numpy as np
from _common import parse_args, parser, record, result_path, timed, write_result

from qrh_lib.grid import default_grid
from qrh_lib.iv import VOL_POINTS
from qrh_lib.pricer.config import MCConfig
from qrh_lib.pricer.mc import QRHEngine
from qrh_lib.pricer.truth import load_truth_set
from qrh_lib.pricer.vix import VIX_CONTROLS, vix_coefficients, vix_from_paths, vix_grid

#: Sizes of ``--quick``: two states, two replications of few paths.
QUICK = {"states": 2, "reps": 2, "paths": 64}


def replications(X, n_paths: int, reps: int, batch: int = 8):
    """Futures, vols and reported vol SEs (reps, n, ...) of every control, from the same paths per replication."""
    vg = vix_grid()
    engine = QRHEngine(default_grid(), MCConfig(n_paths=n_paths, batch_size=batch))
    coef = vix_coefficients(X, kernel=engine.kernel)
    out = {c: {"future": [], "iv": [], "iv_se": []} for c in VIX_CONTROLS}
    for r in range(reps):
        parts = {c: [] for c in VIX_CONTROLS}
        for lo in range(0, len(X), batch):
            sl = slice(lo, min(lo + batch, len(X)))
            stats = engine.simulate(X[sl], np.arange(sl.start, sl.stop), seed=1000 + r, record_factors=True)
            sub = type(coef)(*(a[sl] for a in (coef.q0, coef.q1, coef.Q, coef.u)))
            for c in VIX_CONTROLS:
                parts[c].append(vix_from_paths(stats, X[sl], vg, engine.grid.maturities, engine.kernel, sub, c))
        for c in VIX_CONTROLS:
            for f in out[c]:
                out[c][f].append(np.concatenate([getattr(p, f) for p in parts[c]]))
    return {c: {f: np.array(v) for f, v in d.items()} for c, d in out.items()}


def summary(est: dict, plain: dict, truth: dict, fr: np.ndarray) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (vols missing in every replication)
        mean_iv, plain_iv = np.nanmean(est["iv"], 0), np.nanmean(plain["iv"], 0)
        spread = np.nanstd(est["iv"], 0, ddof=1)
    d_plain = mean_iv - plain_iv
    terciles = np.quantile(fr, [0, 1 / 3, 2 / 3, 1])
    by = {}
    for lo, hi in zip(terciles[:-1], terciles[1:], strict=True):
        m = (fr >= lo) & (fr <= hi)
        by[f"{lo:.2f}-{hi:.2f}"] = float(VOL_POINTS * np.nanmean(d_plain[m]))
    f_mean = est["future"].mean(0)
    return {
        "bias_vs_plain_pts": float(VOL_POINTS * np.nanmean(d_plain)),
        "bias_vs_plain_by_feedback_ratio_pts": by,
        "bias_vs_truth_pts": float(VOL_POINTS * np.nanmean(mean_iv - truth["vix_y"])),
        "spread_pts": float(VOL_POINTS * np.nanmedian(spread)),
        "reported_se_pts": float(VOL_POINTS * np.nanmedian(est["iv_se"])),
        "future_bias_vs_plain_pct": float(100 * np.mean(f_mean / plain["future"].mean(0) - 1)),
        "future_bias_vs_truth_pct": float(100 * np.mean(f_mean / truth["vix_future"] - 1)),
        "future_spread_pct": float(100 * np.median(est["future"].std(0, ddof=1) / f_mean)),
        "missing_vols_pct": float(100 * np.isnan(est["iv"]).mean()),
    }


def main(argv=None) -> int:
    p = parser(__doc__, "vix_estimators")
    p.add_argument("--states", type=int, default=64)
    p.add_argument("--reps", type=int, default=8)
    p.add_argument("--paths", type=int, default=1024)
    a = parse_args(p, argv, quick=QUICK)
    out = result_path(a, "vix_estimators")
    truth = load_truth_set()
    n = min(a.states, len(truth["X"]))
    sub = {k: truth[k][:n] for k in ("X", "vix_y", "vix_future", "feedback_ratio")}
    run = timed(lambda: replications(sub["X"], a.paths, a.reps))
    est = run.result
    result = record(
        "vix_estimators", states=n, replications=a.reps, paths=a.paths,
        truth_set={"path": str(truth["path"]) if "path" in truth else "data/truth",
                   "created": truth["manifest"]["created"]},
        feedback_ratio_range=[float(sub["feedback_ratio"].min()), float(sub["feedback_ratio"].max())],
        estimators={str(c): summary(est[c], est[None], sub, sub["feedback_ratio"]) for c in VIX_CONTROLS},
        seconds=run.best)
    write_result(out, result)
    for c, s in result["estimators"].items():
        print(f"{c:5s} bias vs plain {s['bias_vs_plain_pts']:+.2f} vs truth {s['bias_vs_truth_pts']:+.2f} "
              f"spread {s['spread_pts']:.2f} reported {s['reported_se_pts']:.2f} by feedback "
              f"{ {k: round(v, 2) for k, v in s['bias_vs_plain_by_feedback_ratio_pts'].items()} }")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
