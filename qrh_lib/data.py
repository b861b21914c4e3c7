r"""Dataset generation: sample the 15 QRH inputs, price their implied-vol surfaces, split and scale.

Layout written (the original notebook's, plus standard errors and a manifest)::

    data/raw/data_<size>/
        train_X.npy train_y.npy val_X.npy val_y.npy      raw inputs (n, 15) and implied vols (n, 60)
        train_iv_se.npy val_iv_se.npy                    Monte Carlo standard errors of the vols
        test_<size>.npz                                  X, y, iv_se of the test split
        x_scaler.pkl y_scaler.pkl                        MinMax scalers fitted on the training split only
        preview_<size>.csv                               the first training rows, readable
        manifest.json                                    config, seed, versions, timings, rejections
        shards/                                          priced shards (resumable work)

Sampling: a scrambled Sobol sequence (scipy.stats.qmc) by default. For a regression training set in 15
dimensions a low-discrepancy design covers the box more evenly than i.i.d. uniform draws, which leave holes
and clusters at this sample size; scrambling keeps each point uniformly distributed, and sample ``i`` is the
``i``-th point of the seeded sequence, whatever the shard layout. ``sampler="uniform"`` is available.

Domain: the product's domain by default, ``domain="stable"``: the points of the sequence whose feedback ratio
:math:`a / a^*(\lambda, \eta)` is at most ``max_feedback_ratio`` (0.9, :mod:`qrh_lib.domain`); sample ``i`` is the
``i``-th such point. ``domain="box"`` keeps Rosenbaum & Zhang's whole box, for comparison: part of it is
explosive (the factors' second moments grow without bound, :func:`qrh_lib.moments.second_moment_growth`), where
implied vols are heavy-tailed Monte Carlo estimates, not smooth functions of the inputs. Every dataset records
each sample's growth rate (``*_growth.npy``) and counts the explosive samples in its manifest.

Run it from the command line: ``python -m qrh_lib.data generate --n-samples 2000 --seed 0``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .config import PROJ_ROOT, RAW_DATA_DIR
from .domain import DOMAINS, STABILITY_MARGIN, Domain
from .grid import Grid, default_grid
from .iv import NAN_REASONS
from .params import BOXES, PARAM_NAMES, InputBox, strict_from_dict

SAMPLERS = ("sobol", "uniform")
SPLIT = (0.8, 0.1, 0.1)


@dataclass(frozen=True)
class GenerationConfig:
    """What a dataset is made of; its hash names the work in progress and guards reuse."""

    n_samples: int = 2_000  # surfaces to generate (before rejections)
    seed: int = 0  # sampling, Monte Carlo and split seed
    box: str = "rz"  # input box, a key of qrh_lib.params.BOXES
    sampler: str = "sobol"  # "sobol" (scrambled, low-discrepancy) or "uniform"
    domain: str = "stable"  # "stable": the product's domain (qrh_lib.domain); "box": the whole box
    max_feedback_ratio: float = STABILITY_MARGIN  # the stable domain's margin, a <= ratio * a*(lambda, eta)
    shard_size: int = 128  # surfaces per shard file (the unit of resumable work)
    mc: dict = field(default_factory=dict)  # MCConfig overrides (empty: accuracy-qualified defaults)
    grid: dict | None = None  # Grid.to_dict(); None: the default sqrt(T) grid

    def __post_init__(self):
        if int(self.n_samples) != self.n_samples or self.n_samples < 10:
            raise ValueError(f"n_samples = {self.n_samples} must be an integer >= 10 (80/10/10 split)")
        if self.box not in BOXES:
            raise ValueError(f"box = {self.box!r} is unknown; allowed: {sorted(BOXES)}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler = {self.sampler!r} is unknown; allowed: {SAMPLERS}")
        if self.domain not in DOMAINS:
            raise ValueError(f"domain = {self.domain!r} is unknown; allowed: {DOMAINS}")
        self.get_domain()  # validates the margin
        if self.shard_size < 1:
            raise ValueError(f"shard_size = {self.shard_size} must be >= 1")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed = {self.seed} must be in [0, 2**63)")
        self.mc_config()  # validates the overrides (unknown keys, ranges)

    @classmethod
    def from_dict(cls, d: dict) -> GenerationConfig:
        return strict_from_dict(cls, d, "option(s)")

    def to_dict(self) -> dict:
        return asdict(self)

    def mc_config(self):
        from .mc import MCConfig

        return MCConfig.from_dict(self.mc)

    def get_grid(self) -> Grid:
        return default_grid() if self.grid is None else Grid.from_dict(self.grid)

    def get_box(self) -> InputBox:
        return BOXES[self.box]

    def get_domain(self) -> Domain:
        return Domain.named(self.get_box(), self.domain, self.max_feedback_ratio)

    def key(self) -> str:
        """Hash of everything that changes the numbers (shard_size does not)."""
        from .mc import SCHEME

        d = self.to_dict()
        d.pop("shard_size")
        if self.domain == "box":
            d.pop("max_feedback_ratio")  # no margin applies to the whole box
        d["scheme"] = SCHEME  # a change of the Monte Carlo scheme changes the numbers
        d["mc"] = self.mc_config().to_dict()
        d["mc"].pop("batch_size")
        d["grid"] = self.get_grid().to_dict()
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def size_label(n: int) -> str:
    """``100000 -> '100k'``, ``2500 -> '2500'``: the ``<size>`` of the folder and file names."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def dataset_dir_name(config: GenerationConfig) -> str:
    """``data_<size>_<config key>``: one folder per configuration (the CLI's and notebook 01's naming)."""
    return f"data_{size_label(config.n_samples)}_{config.key()}"


def default_out_dir(config: GenerationConfig) -> Path:
    return RAW_DATA_DIR / dataset_dir_name(config)


def sample_inputs(n: int, box: InputBox, sampler: str = "sobol", seed: int = 0, start: int = 0,
                  domain: str = "box", max_feedback_ratio: float = STABILITY_MARGIN) -> np.ndarray:
    """Rows ``start .. start+n-1`` of the seeded design over ``box`` (``domain="box"``) or over its stable part
    (``domain="stable"``, :class:`qrh_lib.domain.Domain`), shape (n, 15)."""
    dom = Domain.named(box, domain, max_feedback_ratio)
    if dom.max_feedback_ratio is not None:
        return _domain_points(dom, sampler, seed, start + n)[start:]
    if sampler == "sobol":
        import warnings

        from scipy.stats import qmc

        eng = qmc.Sobol(d=len(PARAM_NAMES), scramble=True, seed=seed)
        if start:
            eng.fast_forward(start)
        with warnings.catch_warnings():
            # any prefix of the sequence is still low-discrepancy; powers of 2 are balanced, others nearly so
            warnings.filterwarnings("ignore", message="The balance properties of Sobol")
            u = eng.random(n)
    elif sampler == "uniform":
        # one independent stream per row, so a row does not depend on which rows are drawn with it
        u = np.stack([np.random.default_rng([seed, start + i]).random(len(PARAM_NAMES)) for i in range(n)])
    else:
        raise ValueError(f"sampler = {sampler!r} is unknown; allowed: {SAMPLERS}")
    return box.lo + (box.hi - box.lo) * u


_STABLE_CACHE: dict = {}


def _domain_points(dom: Domain, sampler: str, seed: int, n: int) -> np.ndarray:
    """The first ``n`` points of the seeded design over ``dom.box`` inside ``dom`` (cached for the process)."""
    box = dom.box
    key = (box.name, tuple(box.lo), tuple(box.hi), dom.max_feedback_ratio, sampler, seed)
    found, scanned = _STABLE_CACHE.get(key, (np.empty((0, len(PARAM_NAMES))), 0))
    while len(found) < n:
        m = max(256, 2 * (n - len(found)))
        cand = sample_inputs(m, box, sampler, seed, start=scanned)
        found = np.concatenate([found, cand[dom.contains(cand)]])
        scanned += m
        if scanned > 100 * max(n, 256) and len(found) < n:
            raise ValueError(f"box {box.name!r} has (almost) no stable states: {len(found)} in {scanned} points")
    _STABLE_CACHE[key] = (found, scanned)
    return found[:n]


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes the file private; datasets and results are meant to be read
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npy(path: Path, arr) -> None:
    _atomic_write(path, lambda f: np.save(f, arr))


def save_json(path: Path, obj) -> None:
    _atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, default=str).encode()))


def versions() -> dict:
    """Versions of what made an artifact."""
    import scipy
    import sklearn
    import tensorflow as tf

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJ_ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"python": sys.version.split()[0], "numpy": np.__version__, "scipy": scipy.__version__,
            "tensorflow": tf.__version__, "scikit-learn": sklearn.__version__, "platform": platform.platform(),
            "machine": platform.machine(), "devices": [d.device_type for d in tf.config.list_physical_devices()],
            "git_commit": commit}


def generate_dataset(config: GenerationConfig, out_dir: str | Path | None = None, progress: bool = True,
                     max_shards: int | None = None) -> Path:
    """Generate (or resume, or reuse) the dataset of ``config`` in ``out_dir``.

    A finished dataset (its ``manifest.json`` carries the same config key) is returned as is. Otherwise the
    missing shards are priced and written atomically; ``max_shards`` stops after that many new shards
    (returns ``None``), for jobs with a time limit: the next call resumes where this one stopped.
    """
    if not isinstance(config, GenerationConfig):
        config = GenerationConfig.from_dict(dict(config))
    out = Path(out_dir) if out_dir is not None else default_out_dir(config)
    if finished(config, out):
        return out
    n_shards = price_shards(config, out, progress, max_shards)
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
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("config_key") == key:
        return True
    raise FileExistsError(f"{out} holds a different dataset (config key {manifest.get('config_key')} != {key});"
                          " choose another out_dir or delete it")


def price_shards(config: GenerationConfig, out: Path, progress: bool = True, max_shards: int | None = None):
    """Price the missing shards of ``config`` into ``out/shards``; returns the number of shards, or ``None``
    when ``max_shards`` new shards were written before the end (resumable)."""
    from .mc import QRHEngine
    from .pricing import price_with_engine

    out = Path(out)
    key = config.key()
    shard_dir = out / "shards"
    stamp = shard_dir / "config.json"
    if stamp.exists():
        old = json.loads(stamp.read_text())
        if old["config_key"] != key or old["shard_size"] != config.shard_size:
            raise FileExistsError(f"{shard_dir} holds shards of another config; choose another out_dir or delete it")
    else:
        save_json(stamp, {"config_key": key, "shard_size": config.shard_size, "config": config.to_dict()})

    n, ss = config.n_samples, config.shard_size
    n_shards = -(-n // ss)
    todo = [s for s in range(n_shards) if not (shard_dir / f"shard_{s:05d}.npz").exists()]
    grid = config.get_grid()
    engine = QRHEngine(grid, engine_config(config))
    bar = None
    if progress:
        from .progress import Bar  # a notebook bar that the pipeline's terminal shows too

        bar = Bar(n, f"pricing {out.name}", "surface", initial=n - sum(min(ss, n - s * ss) for s in todo),
                  smoothing=0.1)
    written = 0
    try:
        for s in todo:
            if max_shards is not None and written >= max_shards:
                return None
            lo, hi = s * ss, min((s + 1) * ss, n)
            X = sample_inputs(hi - lo, config.get_box(), config.sampler, config.seed, start=lo,
                              domain=config.domain, max_feedback_ratio=config.max_feedback_ratio)
            t0 = time.perf_counter()
            res = price_with_engine(engine, X, seed=config.seed, index=np.arange(lo, hi),
                                    progress=bar.update if bar is not None else None)
            secs = time.perf_counter() - t0

            def write(f, X=X, res=res, secs=secs):
                np.savez(f, X=X, iv=res.iv, iv_se=res.iv_se, price=res.price, price_se=res.price_se,
                         reason=res.reason, seconds=secs)

            _atomic_write(shard_dir / f"shard_{s:05d}.npz", write)
            written += 1
    finally:
        if bar is not None:
            bar.close()
    return n_shards


def load_shards(out: Path, n_shards: int) -> dict:
    """The priced shards of ``out`` concatenated: X, iv, iv_se, price, price_se, reason; and total seconds."""
    shards = [np.load(Path(out) / "shards" / f"shard_{s:05d}.npz") for s in range(n_shards)]
    d = {k: np.concatenate([s[k] for s in shards]) for k in ("X", "iv", "iv_se", "price", "price_se", "reason")}
    d["seconds"] = float(sum(float(s["seconds"]) for s in shards))
    return d


#: A surface keeps its place in the splits with at most this many missing implied vols (NaN labels, masked by
#: the loss and the metrics). A missing vol is a deep out-of-the-money option that no path reached, or whose
#: control-variate price came out non-positive: at 1,024 paths 7% of the stable domain's surfaces miss one,
#: mostly the calm ones (median ATM vol 14% against 26%), so dropping them would bias the data against
#: market-like states.
MAX_MISSING_VOLS = 12


def _finalise(config: GenerationConfig, out: Path, n_shards: int) -> None:
    """Assemble the shards, reject surfaces with too many missing vols, split 80/10/10, fit scalers, write all."""
    from sklearn.preprocessing import MinMaxScaler

    d = load_shards(out, n_shards)
    X, iv, se, reason, seconds = d["X"], d["iv"], d["iv_se"], d["reason"], d["seconds"]
    good = np.sum(~np.isfinite(iv), axis=1) <= MAX_MISSING_VOLS
    from .moments import second_moment_growth

    growth = second_moment_growth(X)
    explosive = growth > 0
    missing = {name: int(np.sum(np.any(reason == i, axis=1) & ~good)) for i, name in enumerate(NAN_REASONS)}
    rejected = {"surfaces": int(np.sum(~good)), "points": int(np.sum(~np.isfinite(iv))),
                "surfaces_with_a_missing_vol_by_reason": missing,
                "points_by_reason": {name: int(np.sum(reason == i)) for i, name in enumerate(NAN_REASONS)},
                "kept_surfaces_with_missing_vols": int(np.sum(good & ~np.all(np.isfinite(iv), axis=1))),
                "rule": f"a surface with more than {MAX_MISSING_VOLS} missing implied vols is left out of the splits;"
                        " the missing vols of the others stay NaN (masked by the loss and the metrics)"}
    idx = np.flatnonzero(good)
    perm = np.random.default_rng([config.seed, 1]).permutation(idx)
    n_tr = int(round(SPLIT[0] * len(perm)))
    n_va = int(round(SPLIT[1] * len(perm)))
    parts = {"train": np.sort(perm[:n_tr]), "val": np.sort(perm[n_tr:n_tr + n_va]),
             "test": np.sort(perm[n_tr + n_va:])}
    size = size_label(config.n_samples)
    for name in ("train", "val"):
        save_npy(out / f"{name}_X.npy", X[parts[name]])
        save_npy(out / f"{name}_y.npy", iv[parts[name]])
        save_npy(out / f"{name}_iv_se.npy", se[parts[name]])
        save_npy(out / f"{name}_index.npy", parts[name])
        save_npy(out / f"{name}_growth.npy", growth[parts[name]])
    t = parts["test"]
    _atomic_write(out / f"test_{size}.npz",
                  lambda f: np.savez_compressed(f, X=X[t], y=iv[t], iv_se=se[t], index=t, growth=growth[t]))
    x_scaler = MinMaxScaler(feature_range=(-1, 1)).fit(X[parts["train"]])
    y_scaler = MinMaxScaler().fit(iv[parts["train"]])
    _atomic_write(out / "x_scaler.pkl", lambda f: pickle.dump(x_scaler, f))
    _atomic_write(out / "y_scaler.pkl", lambda f: pickle.dump(y_scaler, f))
    grid = config.get_grid()
    _write_preview(out / f"preview_{size}.csv", X[parts["train"]][:20], iv[parts["train"]][:20], grid)
    mc = engine_config(config)  # with the batch size the engine ran (it never changes the numbers)
    manifest = {
        "config_key": config.key(), "config": config.to_dict(), "mc_config": mc.to_dict(), "seed": config.seed,
        "grid": grid.to_dict(), "box": config.get_box().to_dict(), "domain": config.get_domain().to_dict(),
        "param_names": list(PARAM_NAMES),
        "n_samples": config.n_samples, "n_kept": int(good.sum()),
        "split": {k: int(len(v)) for k, v in parts.items()}, "rejected": rejected,
        "explosive": {"rule": "second-moment growth rate > 0 (qrh_lib.moments.second_moment_growth)",
                      "samples": int(explosive.sum()), "kept": int((explosive & good).sum()),
                      "rejected": int((explosive & ~good).sum()),
                      **{f"{k}_split": int(explosive[v].sum()) for k, v in parts.items()}},
        "iv_se": {"median": float(np.nanmedian(se[good])), "p95": float(np.nanpercentile(se[good], 95)),
                  "max": float(np.nanmax(se[good]))},
        "timings": {"pricing_seconds": seconds, "seconds_per_surface": seconds / config.n_samples},
        "versions": versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    save_json(out / "manifest.json", manifest)


def _write_preview(path: Path, X: np.ndarray, y: np.ndarray, grid: Grid) -> None:
    cols = list(PARAM_NAMES) + [f"iv_k{i}_T{j}" for i in range(grid.n_K) for j in range(grid.n_T)]
    lines = [",".join(cols)] + [",".join(f"{v:.6g}" for v in row) for row in np.hstack([X, y])]
    _atomic_write(path, lambda f: f.write(("\n".join(lines) + "\n").encode()))


def load_dataset(path: str | Path) -> dict:
    """Read a finished ``data_<size>/`` folder into a dict.

    Keys: ``train_X``, ``train_y``, ``train_iv_se``, the same for ``val`` and ``test`` (plus the ``*_index`` of
    each row in the generated sample and its ``*_growth`` rate), ``x_scaler``, ``y_scaler``, ``manifest``,
    ``grid`` (Grid), ``box`` (InputBox), ``domain`` (Domain: the box, or its stable part) and ``path``.
    """
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{path} is not a finished dataset (no manifest.json)")
    manifest = json.loads(manifest_path.read_text())
    out = {"manifest": manifest, "grid": Grid.from_dict(manifest["grid"]), "path": path}
    b = manifest["box"]
    out["box"] = InputBox(b["name"], tuple(b["lower"]), tuple(b["upper"]))
    out["domain"] = Domain.from_dict(manifest["domain"]) if "domain" in manifest else Domain(out["box"], None)
    for split in ("train", "val"):
        for key in ("X", "y", "iv_se", "index", "growth"):
            f = path / f"{split}_{key}.npy"
            if f.exists():
                out[f"{split}_{key}"] = np.load(f)
    tests = sorted(path.glob("test_*.npz"))
    if len(tests) != 1:
        raise FileNotFoundError(f"{path} must hold exactly one test_<size>.npz, found {len(tests)}")
    with np.load(tests[0]) as z:
        for key in z.files:
            out[f"test_{key}"] = z[key]
    for name in ("x_scaler", "y_scaler"):
        with open(path / f"{name}.pkl", "rb") as f:
            out[name] = pickle.load(f)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m qrh_lib.data", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="generate (or resume, or reuse) a dataset")
    g.add_argument("--n-samples", type=int, default=GenerationConfig.n_samples)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--box", choices=sorted(BOXES), default="rz")
    g.add_argument("--sampler", choices=SAMPLERS, default="sobol")
    g.add_argument("--domain", choices=DOMAINS, default="stable",
                   help="the product's stable domain (default), or the whole box for comparison")
    g.add_argument("--shard-size", type=int, default=GenerationConfig.shard_size)
    g.add_argument("--n-paths", type=int, default=None, help="Monte Carlo paths per surface (default: MCConfig)")
    g.add_argument("--steps-per-year", type=int, default=None, help="time steps per year after the fine start")
    g.add_argument("--batch-size", type=int, default=None, help="parameter sets simulated together")
    g.add_argument("--out", type=Path, default=None, help="output folder (default: data/raw/data_<size>)")
    g.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    mc = {k: v for k, v in {"n_paths": a.n_paths, "steps_per_year": a.steps_per_year,
                            "batch_size": a.batch_size}.items() if v is not None}
    try:
        cfg = GenerationConfig(n_samples=a.n_samples, seed=a.seed, box=a.box, sampler=a.sampler, domain=a.domain,
                               shard_size=a.shard_size, mc=mc)
    except ValueError as e:
        p.error(str(e))
    out = generate_dataset(cfg, a.out, progress=not a.no_progress)
    print(json.dumps({"dataset": str(out), **{k: json.loads((out / "manifest.json").read_text())[k]
                                              for k in ("n_kept", "split", "rejected", "timings")}}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
