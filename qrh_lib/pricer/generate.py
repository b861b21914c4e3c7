r"""Dataset generation: sample the 15 QRH inputs, price their implied-vol surfaces, split and scale.

The design and the folder layout are :mod:`qrh_lib.data`'s. A dataset is made of a :class:`GenerationConfig`;
its key (a hash of everything that changes the numbers, the Monte Carlo scheme included) names the folder,
``data/raw/data_<size>_<key>`` (:func:`dataset_dir`), and guards reuse. The surfaces are priced in shards of
``shard_size`` surfaces, each written atomically, so an interrupted run resumes where it stopped; the shards are
then assembled, surfaces with too many missing vols rejected, and the rest split 80/10/10. Every dataset records
each sample's second-moment growth rate (``*_growth.npy``) and counts the explosive samples in its manifest.

Run it from the command line: ``python -m qrh_lib.pricer.generate --n-samples 2000 --seed 0``; with
``--workers N`` on N local Dask worker processes, with ``--scheduler ADDRESS`` on a running Dask cluster whose
workers share the output folder's filesystem (:mod:`.cluster`): one task per shard, the same dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from ..artifacts import plain, read_json, save_json, save_npz, versions
from ..cluster import add_cluster_arguments, cluster_from_arguments, open_client, run_tasks, settings, uses_dask
from ..data import MAX_MISSING_VOLS, SAMPLERS, sample_inputs, size_label, split_rows, write_dataset
from ..domain import DOMAINS
from ..iv import NAN_REASONS
from ..params import BOXES, PARAM_NAMES
from ..paths import RAW_DATA_DIR
from .config import GenerationConfig
from .mc import QRHEngine
from .moments import second_moment_growth
from .pricing import price_with_engine
from .vix import VixResult, price_spx_vix_with_engine


def dataset_dir(config: GenerationConfig, root: str | Path = RAW_DATA_DIR) -> Path:
    """``<root>/data_<size>_<config key>``: the one naming of dataset folders (one folder per configuration)."""
    return Path(root) / f"data_{size_label(config.n_samples)}_{config.key()}"


def generate_dataset(config: GenerationConfig, out_dir: str | Path | None = None, progress: bool = True,
                     max_shards: int | None = None, cluster=None) -> Path:
    """Generate (or resume, or reuse) the dataset of ``config`` in ``out_dir``.

    A finished dataset (its ``manifest.json`` carries the same config key) is returned as is. Otherwise the
    missing shards are priced and written atomically; ``max_shards`` stops after that many new shards
    (returns ``None``), for jobs with a time limit: the next call resumes where this one stopped. ``cluster``
    (a :class:`~qrh_lib.pricer.cluster.ClusterConfig`, its dict or a ``distributed.Client``) prices the shards
    as Dask tasks, the same dataset bit for bit; ``None``: in this process.
    """
    if not isinstance(config, GenerationConfig):
        config = GenerationConfig.from_dict(dict(config))
    out = Path(out_dir) if out_dir is not None else dataset_dir(config)
    if finished(config, out):
        return out
    n_shards = price_shards(config, out, progress, max_shards, cluster)
    if n_shards is None:
        return None
    _finalise(config, out, n_shards)
    return out


#: Paths simulated together when the batch size is left to the dataset: at few paths per surface, more
#: parameter sets per batch keep the arrays large (1,024 paths: 71 ms per surface at 8 sets, 47 ms at 128).
PATHS_PER_BATCH = 131_072


def engine_config(config: GenerationConfig):
    """The engine settings of ``config``; without a ``batch_size`` override, as many parameter sets per batch as
    fill :data:`PATHS_PER_BATCH` paths (at most a shard). The batch size never changes the numbers."""
    mc = config.mc_config()
    if "batch_size" in config.mc:
        return mc
    return mc.replace(batch_size=int(max(1, min(config.shard_size, PATHS_PER_BATCH // mc.n_paths))))


def finished(config: GenerationConfig, out: Path) -> bool:
    """True when ``out`` holds the finished dataset of ``config``; raises if it holds another one."""
    manifest_path = Path(out) / "manifest.json"
    if not manifest_path.exists():
        return False
    key = config.key()
    manifest = read_json(manifest_path)
    if manifest.get("config_key") == key:
        return True
    raise FileExistsError(f"{out} holds a different dataset (config key {manifest.get('config_key')} != {key});"
                          " choose another out_dir or delete it")


def price_shards(config: GenerationConfig, out: Path, progress: bool = True, max_shards: int | None = None,
                 cluster=None):
    """Price the missing shards of ``config`` into ``out/shards``; returns the number of shards, or ``None``
    when ``max_shards`` new shards were written before the end (resumable). ``cluster`` (a
    :class:`~qrh_lib.pricer.cluster.ClusterConfig`, its dict or a ``distributed.Client``) runs one Dask task per
    shard; ``None``: this process."""
    out = Path(out)
    key = config.key()
    shard_dir = out / "shards"
    stamp = shard_dir / "config.json"
    if stamp.exists():
        old = read_json(stamp)
        if old["config_key"] != key or old["shard_size"] != config.shard_size:
            raise FileExistsError(f"{shard_dir} holds shards of another config; choose another out_dir or delete it")
    else:
        save_json(stamp, {"config_key": key, "shard_size": config.shard_size, "config": config.to_dict()})

    n, ss = config.n_samples, config.shard_size
    n_shards = -(-n // ss)
    todo = [s for s in range(n_shards) if not shard_path(out, s).exists()]
    now = todo if max_shards is None else todo[:max_shards]
    if now and uses_dask(cluster):
        with open_client(cluster) as client:
            run_tasks(client, price_shard_task, [(config, str(out), s) for s in now], "price-shard",
                      settings(cluster), progress, f"pricing {out.name}", "shard")
    elif now:
        engine = QRHEngine(config.get_grid(), engine_config(config))
        bar = None
        if progress:
            from ..progress import Bar  # a notebook bar that the pipeline's terminal shows too

            bar = Bar(n, f"pricing {out.name}", "surface", initial=n - sum(min(ss, n - s * ss) for s in todo),
                      smoothing=0.1)
        try:
            for s in now:
                price_shard(config, out, s, engine, bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
    return n_shards if len(now) == len(todo) else None


def shard_path(out: str | Path, s: int) -> Path:
    return Path(out) / "shards" / f"shard_{s:05d}.npz"


def price_shard(config: GenerationConfig, out: str | Path, s: int, engine: QRHEngine, progress=None) -> float:
    """Sample and price shard ``s`` of ``config`` and write it atomically to ``out/shards``; returns the
    seconds of pricing. ``progress(k)`` is called after each batch of k surfaces."""
    n, ss = config.n_samples, config.shard_size
    lo, hi = s * ss, min((s + 1) * ss, n)
    X = sample_inputs(hi - lo, config.get_box(), config.sampler, config.seed, start=lo,
                      domain=config.domain, max_feedback_ratio=config.max_feedback_ratio)
    vix = config.get_vix_grid()
    t0 = time.perf_counter()
    if vix is None:
        res, extra = price_with_engine(engine, X, seed=config.seed, index=np.arange(lo, hi), progress=progress), {}
    else:
        res, vx = price_spx_vix_with_engine(engine, X, vix, seed=config.seed, index=np.arange(lo, hi),
                                            progress=progress)
        extra = {f"vix_{f}": getattr(vx, f) for f in VixResult.__dataclass_fields__}
    secs = time.perf_counter() - t0
    save_npz(shard_path(out, s), X=X, iv=res.iv, iv_se=res.iv_se, price=res.price, price_se=res.price_se,
             reason=res.reason, seconds=secs, **extra)
    return secs


def price_shard_task(config: GenerationConfig, out: str, s: int) -> dict:
    """The Dask task of shard ``s``: price and write it unless it is on disk (its first worker died after
    writing it); the worker keeps its engine between tasks. Returns the shard, the seconds of pricing (0 when
    skipped) and of the whole task, and the worker's process id."""
    t0 = time.perf_counter()
    secs = 0.0 if shard_path(out, s).exists() else price_shard(config, out, s, _worker_engine(config))
    return {"shard": s, "pricing_seconds": secs, "task_seconds": time.perf_counter() - t0, "pid": os.getpid()}


_engines: dict = {}


def _worker_engine(config: GenerationConfig) -> QRHEngine:
    """This process's engine for ``config`` (kept while the configs that come need the same one)."""
    mc, grid = engine_config(config), config.get_grid()
    key = json.dumps(plain([mc.to_dict(), grid.to_dict()]), sort_keys=True)
    if key not in _engines:
        _engines.clear()
        _engines[key] = QRHEngine(grid, mc)
    return _engines[key]


def load_shards(out: Path, n_shards: int) -> dict:
    """The priced shards of ``out`` concatenated: X, iv, iv_se, price, price_se, reason (and ``vix_*``, the VIX
    labels of :class:`qrh_lib.pricer.vix.VixResult`, when priced); and the total seconds."""
    shards = [np.load(shard_path(out, s)) for s in range(n_shards)]  # in their order, however they were made
    d = {k: np.concatenate([s[k] for s in shards]) for k in shards[0].files if k != "seconds"}
    d["seconds"] = float(sum(float(s["seconds"]) for s in shards))
    return d


def _finalise(config: GenerationConfig, out: Path, n_shards: int) -> None:
    """Assemble the shards, reject surfaces with too many missing vols, split 80/10/10, fit scalers, write all."""
    d = load_shards(out, n_shards)
    X, iv, se, reason, seconds = d["X"], d["iv"], d["iv_se"], d["reason"], d["seconds"]
    good = np.sum(~np.isfinite(iv), axis=1) <= MAX_MISSING_VOLS
    growth = second_moment_growth(X)
    explosive = growth > 0
    missing = {name: int(np.sum(np.any(reason == i, axis=1) & ~good)) for i, name in enumerate(NAN_REASONS)}
    rejected = {"surfaces": int(np.sum(~good)), "points": int(np.sum(~np.isfinite(iv))),
                "surfaces_with_a_missing_vol_by_reason": missing,
                "points_by_reason": {name: int(np.sum(reason == i)) for i, name in enumerate(NAN_REASONS)},
                "kept_surfaces_with_missing_vols": int(np.sum(good & ~np.all(np.isfinite(iv), axis=1))),
                "rule": f"a surface with more than {MAX_MISSING_VOLS} missing implied vols is left out of the splits;"
                        " the missing vols of the others stay NaN (masked by the loss and the metrics)"}
    parts = split_rows(good, config.seed)
    grid = config.get_grid()
    mc = engine_config(config)  # with the batch size the engine ran (it never changes the numbers)
    manifest = {
        "config_key": config.key(), "config": config.to_dict(), "mc_config": mc.to_dict(), "seed": config.seed,
        "grid": grid.to_dict(), "box": config.get_box().to_dict(), "domain": config.get_domain().to_dict(),
        "param_names": list(PARAM_NAMES),
        "n_samples": config.n_samples, "n_kept": int(good.sum()),
        "split": {k: int(len(v)) for k, v in parts.items()}, "rejected": rejected,
        "explosive": {"rule": "second-moment growth rate > 0 (qrh_lib.pricer.moments.second_moment_growth)",
                      "samples": int(explosive.sum()), "kept": int((explosive & good).sum()),
                      "rejected": int((explosive & ~good).sum()),
                      **{f"{k}_split": int(explosive[v].sum()) for k, v in parts.items()}},
        "iv_se": {"median": float(np.nanmedian(se[good])), "p95": float(np.nanpercentile(se[good], 95)),
                  "max": float(np.nanmax(se[good]))},
        "timings": {"pricing_seconds": seconds, "seconds_per_surface": seconds / config.n_samples},
        "versions": versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    arrays = {"X": X, "y": iv, "iv_se": se, "index": np.arange(len(X)), "growth": growth}
    if "vix_iv" in d:
        arrays.update(vix_y=d["vix_iv"], vix_iv_se=d["vix_iv_se"], vix_future=d["vix_future"],
                      vix_future_se=d["vix_future_se"])
        vse = d["vix_iv_se"][good]
        # missing VIX vols never reject a surface: a VIX put struck below the VIX's floor sqrt(c) is worthless and has
        # no implied vol, a fact of the model rather than noise; they stay NaN, masked by the loss and the metrics
        manifest["vix"] = {"grid": config.get_vix_grid().to_dict(),
                           "iv_se": {"median": float(np.nanmedian(vse)), "p95": float(np.nanpercentile(vse, 95))},
                           "missing_vols": int(np.sum(~np.isfinite(d["vix_iv"][good])))}
    write_dataset(out, arrays, parts, size_label(config.n_samples), grid, manifest)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m qrh_lib.pricer.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--n-samples", type=int, default=GenerationConfig.n_samples)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--box", choices=sorted(BOXES), default="rz")
    p.add_argument("--sampler", choices=SAMPLERS, default="sobol")
    p.add_argument("--domain", choices=DOMAINS, default="stable",
                   help="the product's stable domain (default), or the whole box for comparison")
    p.add_argument("--shard-size", type=int, default=GenerationConfig.shard_size)
    p.add_argument("--n-paths", type=int, default=None, help="Monte Carlo paths per surface (default: MCConfig)")
    p.add_argument("--steps-per-year", type=int, default=None, help="time steps per year after the fine start")
    p.add_argument("--batch-size", type=int, default=None, help="parameter sets simulated together")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: data/raw/data_<size>_<config key>)")
    p.add_argument("--vix", action="store_true", help="VIX labels too, on the default VIX grid (same paths)")
    p.add_argument("--no-progress", action="store_true")
    add_cluster_arguments(p)
    a = p.parse_args(argv)
    mc = {k: v for k, v in {"n_paths": a.n_paths, "steps_per_year": a.steps_per_year,
                            "batch_size": a.batch_size}.items() if v is not None}
    try:
        cfg = GenerationConfig(n_samples=a.n_samples, seed=a.seed, box=a.box, sampler=a.sampler, domain=a.domain,
                               shard_size=a.shard_size, mc=mc, vix_grid="default" if a.vix else None)
    except ValueError as e:
        p.error(str(e))
    cluster = cluster_from_arguments(p, a)
    out = generate_dataset(cfg, a.out, progress=not a.no_progress, cluster=cluster)
    print(json.dumps({"dataset": str(out), **{k: read_json(out / "manifest.json")[k]
                                              for k in ("n_kept", "split", "rejected", "timings")}}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
