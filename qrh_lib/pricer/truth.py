r"""The truth set: a fixed set of stable surfaces priced with many paths, against which every surrogate is judged.

Training labels carry Monte Carlo noise of a few tenths of a vol point; an error measured against them cannot
fall below that noise, and a network that fits noise looks better than it is. The truth set is

- 256 points of the product's domain (:mod:`qrh_lib.domain`, the stable part of Rosenbaum & Zhang's box with
  the margin 0.9 a*), drawn like every dataset's test split (the first points inside the domain of a scrambled
  Sobol sequence) but from their own seed, :data:`TRUTH_SEED`, which no training design uses: with probability
  one it shares no point with any training design, and its Monte Carlo paths are independent of theirs;
- priced by the same engine and scheme as the training data, with 98,304 paths per surface (a pilot of 16 such
  states at 16,384 paths gave median and RMS standard errors of 0.10 and 0.15 vol point: six times the paths
  brings them to about 0.04 and 0.06, under the targets 0.05 and 0.07).

It is small (a few hundred kB) and committed under ``data/truth/`` with its manifest; regenerate it with::

    python -m qrh_lib.pricer.truth          # about 10 minutes on 2 CPU cores, resumable
    python -m qrh_lib.pricer.truth --scheduler tcp://HOST:8786   # one Dask task per shard of 8 surfaces

It measures the surrogate's error against the model as the engine prices it; the engine's own
time-discretisation bias is measured separately by ``benchmarks/convergence.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..artifacts import read_json, save_json, save_npz, versions
from ..cluster import add_cluster_arguments, cluster_from_arguments
from ..data import MAX_MISSING_VOLS
from ..iv import VOL_POINTS
from ..paths import DATA_DIR
from .generate import GenerationConfig, finished, load_shards, price_shards
from .moments import feedback_ratio, second_moment_growth

#: Seed of the truth set's design and paths; the profiles' training designs use other seeds (tested).
TRUTH_SEED = 20_261_126
TRUTH_DIR = DATA_DIR / "truth"
TRUTH_FILE = "truth.npz"
#: What the truth set is made of (the MC batch size does not change the numbers).
TRUTH_CONFIG = GenerationConfig(n_samples=256, seed=TRUTH_SEED, domain="stable", shard_size=8,
                                mc={"n_paths": 98_304, "batch_size": 2}, vix_grid="default")
#: Truth sets by grid name: the same states and paths priced on the default grids (``data/truth``) or on Rosenbaum
#: & Zhang's SPX and VIX grids (``data/truth_rz``, for the ``rz`` profile).
TRUTH_SETS = {"default": (TRUTH_CONFIG, TRUTH_DIR),
              "rz": (replace(TRUTH_CONFIG, grid="rz", vix_grid="rz"), DATA_DIR / "truth_rz")}


def generate_truth_set(out: str | Path = TRUTH_DIR, config: GenerationConfig = TRUTH_CONFIG,
                       progress: bool = True, max_shards: int | None = None, cluster=None) -> Path | None:
    r"""Price (or resume, or reuse) the truth set into ``out``: ``truth.npz`` and ``manifest.json``.

    ``truth.npz`` holds ``X`` (n, 15), ``y`` and ``iv_se`` (n, 60), ``index`` (position in the design),
    ``growth`` and ``feedback_ratio``, and the VIX labels on :func:`qrh_lib.pricer.vix.vix_grid` from the same
    paths: ``vix_y`` and ``vix_iv_se`` (n, 60), ``vix_future`` and ``vix_future_se`` (n, 4). As in the datasets,
    a surface with more than :data:`qrh_lib.data.MAX_MISSING_VOLS` missing SPX vols is left out (counted in the
    manifest), the others keep theirs as NaN; missing VIX vols never leave a state out (below the VIX's floor
    :math:`\sqrt{c}` a put is worthless and has no implied vol). ``cluster`` (a
    :class:`~qrh_lib.pricer.cluster.ClusterConfig`, its dict or a ``distributed.Client``) prices one shard per Dask
    task, the same numbers.
    """
    out = Path(out)
    if finished(config, out):
        return out
    n_shards = price_shards(config, out, progress, max_shards, cluster)
    if n_shards is None:
        return None
    d = load_shards(out, n_shards)
    good = np.sum(~np.isfinite(d["iv"]), axis=1) <= MAX_MISSING_VOLS
    X, y, se = d["X"][good], d["iv"][good], d["iv_se"][good]
    vix = {k: d[f"vix_{f}"][good] for k, f in (("vix_y", "iv"), ("vix_iv_se", "iv_se"), ("vix_future", "future"),
                                                 ("vix_future_se", "future_se")) if f"vix_{f}" in d}
    save_npz(out / TRUTH_FILE, compressed=True, X=X, y=y, iv_se=se, index=np.flatnonzero(good),
             growth=second_moment_growth(X), feedback_ratio=feedback_ratio(X), **vix)
    save_json(out / "manifest.json", {
        "what": "truth set: stable surfaces priced with many paths (qrh_lib.pricer.truth)",
        "config_key": config.key(), "config": config.to_dict(), "mc_config": config.mc_config().to_dict(),
        "seed": config.seed, "grid": config.get_grid().to_dict(), "domain": config.get_domain().to_dict(),
        "n_samples": config.n_samples, "n_kept": int(good.sum()), "rejected_surfaces": int((~good).sum()),
        "missing_vols": int(np.sum(~np.isfinite(y))),
        **({"vix": {"grid": config.get_vix_grid().to_dict(), "missing_vols": int(np.sum(~np.isfinite(vix["vix_y"]))),
                    "iv_se_vol_pts": _se_summary(vix["vix_iv_se"])}} if vix else {}),
        "iv_se_vol_pts": _se_summary(se),
        "timings": {"pricing_seconds": d["seconds"], "seconds_per_surface": d["seconds"] / config.n_samples},
        "command": "python -m qrh_lib.pricer.truth",
        "versions": versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    return out


def _se_summary(se) -> dict:
    """Median, RMS, 99th percentile and largest standard error, in vol points."""
    pts = VOL_POINTS * se[np.isfinite(se)]
    return {"median": float(np.median(pts)), "rms": float(np.sqrt(np.mean(pts**2))),
            "p99": float(np.percentile(pts, 99)), "max": float(pts.max())}


def load_truth_set(path: str | Path = TRUTH_DIR) -> dict:
    """The truth set as a dict: ``X``, ``y``, ``iv_se``, ``index``, ``growth``, ``feedback_ratio``, ``manifest``."""
    path = Path(path)
    if not (path / TRUTH_FILE).exists():
        raise FileNotFoundError(f"no truth set at {path}; generate it with `python -m qrh_lib.pricer.truth`")
    with np.load(path / TRUTH_FILE) as z:
        out = {k: z[k] for k in z.files}
    out["manifest"] = read_json(path / "manifest.json")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m qrh_lib.pricer.truth", description=__doc__.split("\n\n")[0])
    p.add_argument("--grids", choices=sorted(TRUTH_SETS), default="default",
                   help="the default SPX and VIX grids (data/truth) or Rosenbaum & Zhang's (data/truth_rz)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: the grids' folder)")
    p.add_argument("--no-progress", action="store_true")
    add_cluster_arguments(p)
    a = p.parse_args(argv)
    config, folder = TRUTH_SETS[a.grids]
    cluster = cluster_from_arguments(p, a)
    out = generate_truth_set(a.out or folder, config, progress=not a.no_progress, cluster=cluster)
    m = read_json(out / "manifest.json")
    print(json.dumps({k: m[k] for k in ("n_kept", "iv_se_vol_pts", "timings")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
