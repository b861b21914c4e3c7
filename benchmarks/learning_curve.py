"""Learning curves, labels at an equal pricing budget, and the ablation of the surrogate's recipe, all judged
against the truth set (qrh_lib.pricer.truth).

Data: stable-domain datasets of the cpu profile's design (seed 0, scrambled Sobol), priced at several paths per
surface (generated here if missing, reused otherwise). Every run uses the points of the design with index below
``n_design``: indices ending in 9 (10%) validate (early stopping, learning-rate cuts), the rest train. The
datasets share the design, so runs at equal ``n_design`` differ only in the labels' noise.

    python benchmarks/learning_curve.py ablation     # the recipe, element by element -> results/ablation.json
    python benchmarks/learning_curve.py curve        # sizes and label budgets -> results/learning_curve.json
    python benchmarks/learning_curve.py ensemble     # deep ensemble at the largest size -> results/ensemble.json
    python benchmarks/learning_curve.py curve --quick --results-dir /tmp/lc --data-dir /tmp/lc/data \
        --models-dir /tmp/lc/models   # a check that it runs: tiny datasets, three epochs

Each run is appended to the JSON as soon as it ends (the script resumes where it stopped). Runs use one
training seed; differences of a few percent between recipes are within the seed-to-seed spread.

On Dask (``--workers N`` for a local cluster, ``--scheduler ADDRESS`` for a running one, ``--threads-per-worker``;
:mod:`qrh_lib.cluster`) each training is one task: its worker trains the surrogate and saves it in
``--models-dir/<key>``, and this process loads it, judges it and appends its row as the task ends, under the same
key as in one process, so an interrupted study resumes here or on a cluster alike; runs whose row is recorded are
not submitted, nor (ensemble) members whose surrogate is saved. The datasets are priced here first, as in one
process (or beforehand on the cluster with ``python -m qrh_lib.pricer.generate --workers N``), and sent to the
workers; on a cluster the workers need the project's ``qrh_lib`` and must see ``--models-dir`` (a shared
filesystem). Each worker gets its share of the cores as TensorFlow and BLAS threads, as in generation.

Reproducible across processes, as measured here (2 cores, TensorFlow 2.21 on CPU, op determinism on, as every
training sets it): a training on a worker of a 2-worker local cluster (1 thread) gives the same weights bit for
bit as the same training in one process with TensorFlow's default threads: the 6 networks of the ``--quick``
studies (curve, ablation, ensemble) and the tiny ones of ``tests/surrogate/test_studies_distributed.py``, so the
rows are equal but for the training's seconds, and so are the power-law fit and the ensemble's numbers; one
network trained in one process with 1 and with 2 threads set gave the same weights too. Not measured: other
CPUs, GPUs, more threads per worker.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
from _common import parse_args, parser, previous_result, record, result_path, run_trainings, utc_now, write_result

from qrh_lib.cluster import add_cluster_arguments, cluster_from_arguments, uses_dask
from qrh_lib.data import MAX_MISSING_VOLS
from qrh_lib.paths import RAW_DATA_DIR, RUNS_DIR
from qrh_lib.pricer.generate import GenerationConfig, dataset_dir, generate_dataset, load_shards
from qrh_lib.pricer.truth import load_truth_set
from qrh_lib.surrogate.evaluation import truth_metrics

SEED = 0
#: The learning curve's sizes (design points at ``--paths``) and its budget points (design points, paths).
SIZES = (2048, 4096, 8192, 16_384)
BUDGET = ("8192:512", "4096:1024", "1024:4096")
#: Settings of ``--quick``: tiny datasets, three epochs, two ablation variants, two ensemble members.
QUICK = {"n_design": 256, "source_n": 256, "paths": 64, "members": 2, "epochs": 3, "sizes": [128, 256],
         "budget": ["128:128"], "variants": ["plain MLP (baseline)", "+ PCA head, K = 30"]}
#: The plain MLP of the baseline: 5 SiLU layers of 128, linear output (all 60 PCA components: no truncation),
#: mean squared error (a Huber threshold far above any error), uniform weights, no smoothness terms.
PLAIN = {"residual": False, "n_blocks": 4, "width": 128, "n_components": 60, "huber_delta": 1e4,
         "otm_put_weight": 1.0, "sobolev_strike": 0.0, "sobolev_maturity": 0.0, "learning_rate": 2e-3,
         "batch_size": 128, "epochs": 3000, "patience": 60, "lr_patience": 20}
#: The seed's recipe as the cpu profile ran it before this study.
SEED_RECIPE = {"residual": True, "layer_norm": True, "n_blocks": 4, "width": 128, "n_components": None,
               "huber_delta": 1.0, "otm_put_weight": 2.0, "sobolev_strike": 0.1, "sobolev_maturity": 0.1,
               "learning_rate": 2e-3, "batch_size": 128, "epochs": 3000, "patience": 40, "lr_patience": 12}
_KEPT = {"huber_delta": 1.0, "sobolev_strike": 0.1, "sobolev_maturity": 0.1}
ABLATION = {
    "plain MLP (baseline)": {},
    "+ PCA head, K by the noise rule": {"n_components": None},
    "+ PCA head, K = 30": {"n_components": 30},
    "+ residual blocks (no LayerNorm)": {"residual": True, "layer_norm": False},
    "+ residual blocks with LayerNorm": {"residual": True, "layer_norm": True},
    "+ Huber loss (delta 1 vol pt)": {"huber_delta": 1.0},
    "+ OTM put weight 2": {"otm_put_weight": 2.0},
    "+ Sobolev terms 0.1": {"sobolev_strike": 0.1, "sobolev_maturity": 0.1},
    "+ earlier stopping (patience 40, LR patience 12)": {"patience": 40, "lr_patience": 12},
    "seed recipe (all of the above)": "seed",
    # beyond the seed's recipe, from the elements that helped (Huber and Sobolev terms on the plain MLP)
    "kept: plain MLP + Huber + Sobolev": {"huber_delta": 1.0, "sobolev_strike": 0.1, "sobolev_maturity": 0.1},
    "kept, width 256": {"huber_delta": 1.0, "sobolev_strike": 0.1, "sobolev_maturity": 0.1, "width": 256},
    "kept, 7 hidden layers": {"huber_delta": 1.0, "sobolev_strike": 0.1, "sobolev_maturity": 0.1, "n_blocks": 6},
    "kept, patience 150 (LR patience 40)": {"huber_delta": 1.0, "sobolev_strike": 0.1, "sobolev_maturity": 0.1,
                                            "patience": 150, "lr_patience": 40},
    "kept, width 64": {**_KEPT, "width": 64},
    "kept, weight decay 1e-3": {**_KEPT, "weight_decay": 1e-3},
    "kept, Huber delta 0.5": {**_KEPT, "huber_delta": 0.5},
    "kept, batch 512": {**_KEPT, "batch_size": 512},
    "kept, learning rate 1e-3": {**_KEPT, "learning_rate": 1e-3},
}


def design_split(n_design: int, n_paths: int, source_n: int | None = None, root: Path = RAW_DATA_DIR) -> dict:
    """Train/val arrays of the first ``n_design`` design points of the dataset of ``source_n`` points in ``root``
    (priced here if missing; the shards already priced are enough when they cover ``n_design``)."""
    cfg = GenerationConfig(n_samples=source_n or n_design, seed=SEED, mc={"n_paths": n_paths})
    out = dataset_dir(cfg, root)
    need = -(-n_design // cfg.shard_size)
    if not all((out / "shards" / f"shard_{s:05d}.npz").exists() for s in range(need)):
        generate_dataset(cfg, out)
    d = load_shards(out, need)
    idx = np.arange(len(d["X"]))
    keep = (idx < n_design) & (np.sum(~np.isfinite(d["iv"]), axis=1) <= MAX_MISSING_VOLS)
    val = keep & (idx % 10 == 9)
    tr = keep & ~val
    return {"train_X": d["X"][tr], "train_y": d["iv"][tr], "train_iv_se": d["iv_se"][tr], "val_X": d["X"][val],
            "val_y": d["iv"][val], "val_iv_se": d["iv_se"][val], "dataset": str(out), "config": cfg, "n_paths": n_paths,
            "n_design": n_design, "label_se_median_pts": float(100 * np.nanmedian(d["iv_se"][keep]))}


def train(data: dict, recipe: dict, seed: int = SEED):
    """Train ``recipe`` on ``data``; the surrogate carries its training facts in ``config`` and ``metrics``."""
    from sklearn.preprocessing import MinMaxScaler

    from qrh_lib.surrogate.config import TrainConfig
    from qrh_lib.surrogate.training import train_surrogate

    gen = data["config"]
    x_scaler = MinMaxScaler(feature_range=(-1, 1)).fit(data["train_X"])
    cfg = TrainConfig.from_flat({**recipe, "seed": seed})
    sur, hist = train_surrogate(data["train_X"], data["train_y"], data["val_X"], data["val_y"], x_scaler,
                                gen.get_grid(), gen.get_box(), config=cfg, train_iv_se=data["train_iv_se"],
                                val_iv_se=data["val_iv_se"], domain=gen.get_domain())
    sur.metrics = {"val_mae_pts": float(min(hist["val_mae_vol_points"]))}
    sur.config.update({k: data[k] for k in ("n_design", "n_paths", "label_se_median_pts")})
    return sur


def judge(sur, truth: dict) -> tuple[dict, np.ndarray]:
    """The run's row: its training facts and its errors against the truth set; and its predictions."""
    pred = sur.predict(truth["X"])
    tm = truth_metrics(truth["y"], pred, sur.grid, truth_se=truth["iv_se"])
    o, c = tm["overall"], sur.config
    row = {**{k: c[k] for k in ("n_design", "n_paths", "label_se_median_pts", "n_train", "n_val", "K",
                                "epochs_run", "train_seconds")},
           "seed": c["train"]["seed"],
           **{f"truth_{k}": o[k] for k in ("mae_pts", "rmse_pts", "rmse_noise_removed_pts", "p99_pts", "max_pts",
                                           "mean_rel_pct")},
           "truth_mae_by_atm_vol_decile": [r["mae_pts"] for r in tm["by_atm_vol"]],
           "val_mae_pts": sur.metrics["val_mae_pts"], "config": c["train"]}
    return row, pred


def trained(data: dict, recipe: dict, key: str, seed: int = SEED, models: Path = RUNS_DIR / "learning_curve"):
    """The surrogate of a run, from ``<models>/<key>`` when it was trained before."""
    from qrh_lib.surrogate import QRHSurrogate

    path = Path(models) / key
    if saved(models, key):
        return QRHSurrogate.load(path)
    sur = train(data, recipe, seed)
    sur.save(path)
    return sur


def saved(models: Path, key: str) -> bool:
    """True when the surrogate of run ``key`` is in ``models``."""
    return (Path(models) / key / "model.keras").exists()


def train_run(data: dict, recipe: dict, key: str, seed: int, models: str) -> str:
    """A training as a Dask task: the run's surrogate trained and saved in ``<models>/<key>`` by the worker."""
    trained(data, recipe, key, seed, Path(models))
    return key


def train_each(runs: list[tuple], models: Path, on_trained, cluster=None) -> None:
    """Train the runs ``(data, recipe, key, seed)`` (``data`` a function giving the run's :func:`design_split`) and
    call ``on_trained(i, surrogate)`` for each, in this process. In one process (``cluster`` None), one after the
    other in order, each loaded from ``<models>/<key>`` when trained before (:func:`trained`). On Dask, the runs
    saved in ``models`` are loaded here first, then the others are one task each (:func:`train_run`, their data
    made here), loaded here as they finish."""
    if not uses_dask(cluster):
        for i, (data, recipe, key, seed) in enumerate(runs):
            on_trained(i, trained(data(), recipe, key, seed, models))
        return
    from qrh_lib.surrogate import QRHSurrogate

    models = Path(models).resolve()  # the workers' working folder is not this one
    todo = []
    for i, (_, _, key, _) in enumerate(runs):
        if saved(models, key):
            on_trained(i, QRHSurrogate.load(models / key))
        else:
            todo.append(i)
    args = [(runs[i][0](), *runs[i][1:], str(models)) for i in todo]  # a dataset shared by runs is sent once
    run_trainings(train_run, args, lambda j, key: on_trained(todo[j], QRHSurrogate.load(models / key)), cluster)


def wait_for_truth() -> dict:
    """The truth set; while it is being priced (``python -m qrh_lib.pricer.truth``), wait for it."""
    from qrh_lib.pricer.truth import TRUTH_DIR, TRUTH_FILE

    while not (TRUTH_DIR / TRUTH_FILE).exists():
        time.sleep(30)
    return load_truth_set()


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Results:
    """A JSON file of runs, rewritten after each run; a run whose key is present is not redone."""

    def __init__(self, path: Path, name: str, about: dict):
        self.path = path
        self.doc = record(name, about=about, runs=previous_result(path).get("runs", []))

    def done(self, key: str):
        return next((r for r in self.doc["runs"] if r.get("key") == key), None)

    def add(self, row: dict, **extra):
        self.doc.update(extra)
        self.doc["runs"].append(row)
        self.save()

    def save(self):
        self.doc["created"] = utc_now()
        write_result(self.path, self.doc, quiet=True)


def run_ablation(out: Path, n_design: int, n_paths: int, source_n: int, data_dir: Path, models: Path,
                 variants=None, epochs: int | None = None, cluster=None):
    data = design_split(n_design, n_paths, source_n, data_dir)
    cap = {} if epochs is None else {"epochs": epochs}
    res = Results(out, "ablation", {"n_design": n_design, "n_paths": n_paths, "seed": SEED, "plain": {**PLAIN, **cap},
                                    "seed_recipe": {**SEED_RECIPE, **cap},
                                    "judged_on": "truth set (qrh_lib.pricer.truth)"})
    todo = {}
    for name, change in ABLATION.items():
        if variants is not None and name not in variants:
            continue
        recipe = {**(SEED_RECIPE if change == "seed" else {**PLAIN, **change}), **cap}
        key = _key(name, recipe, n_design, n_paths)
        if not res.done(key):
            todo[name] = (key, recipe)
    names = list(todo)
    # in one process every run is trained first (the truth set may still be pricing); on Dask each is judged and
    # recorded as its task ends
    truth = wait_for_truth() if uses_dask(cluster) else None
    surs = {}

    def report(name, sur):
        row, _ = judge(sur, truth)
        print(f"{name:<50} MAE {row['truth_mae_pts']:.3f} RMSE {row['truth_rmse_pts']:.3f} "
              f"p99 {row['truth_p99_pts']:.3f} max {row['truth_max_pts']:.2f} ({row['epochs_run']} epochs, "
              f"{row['train_seconds']:.0f} s)", flush=True)
        res.add({"key": todo[name][0], "recipe": name, **row})

    def on_trained(i, sur):
        if truth is None:
            surs[names[i]] = sur
        else:
            report(names[i], sur)

    train_each([(lambda: data, todo[n][1], todo[n][0], SEED) for n in names], models, on_trained, cluster)
    if surs:
        truth = wait_for_truth()
        for name, sur in surs.items():
            report(name, sur)


def power_law(n, err) -> dict:
    """Least-squares fit of log(err) = log(A) - p log(n)."""
    slope, intercept = np.polyfit(np.log(n), np.log(err), 1)
    return {"A": float(np.exp(intercept)), "exponent": float(-slope)}


def run_curve(out: Path, recipe: dict, sizes, budget, source_n: int, main_paths: int, data_dir: Path, models: Path,
              cluster=None):
    truth = wait_for_truth()
    res = Results(out, "learning_curve", {"recipe": recipe, "seed": SEED, "sizes": list(sizes),
                                          "budget_points": [list(b) for b in budget],
                                          "judged_on": "truth set (qrh_lib.pricer.truth)"})
    todo = [(n, main_paths, source_n, "size") for n in sizes] + [(n, p, n, "budget") for n, p in budget]
    runs = {}  # key -> the first point's (n, p, source) and the kinds of the points with that key
    for n, p, src, kind in todo:
        key = _key(recipe, n, p)
        prev = res.done(key)
        if prev:
            if kind not in prev["kinds"]:
                prev["kinds"].append(kind)
                res.save()
            continue
        run = runs.setdefault(key, {"point": (n, p, src), "kinds": []})
        if kind not in run["kinds"]:
            run["kinds"].append(kind)
    keys = list(runs)

    def on_trained(i, sur):
        key, run = keys[i], runs[keys[i]]
        row, _ = judge(sur, truth)
        print(f"{'+'.join(run['kinds'])} n_design {row['n_design']} paths {row['n_paths']}: MAE "
              f"{row['truth_mae_pts']:.3f} RMSE(noise removed) {row['truth_rmse_noise_removed_pts']:.3f} "
              f"({row['epochs_run']} epochs, {row['train_seconds']:.0f} s)", flush=True)
        res.add({"key": key, "kinds": run["kinds"], **row})

    train_each([(lambda pt=runs[k]["point"]: design_split(*pt, data_dir), recipe, k, SEED) for k in keys], models,
               on_trained, cluster)
    size_runs = sorted((r for r in res.doc["runs"] if "size" in r["kinds"] and r["n_paths"] == main_paths),
                       key=lambda r: r["n_train"])
    if len(size_runs) >= 2:
        n = np.array([r["n_train"] for r in size_runs])
        fits = {m: power_law(n, np.array([r[f"truth_{m}"] for r in size_runs]))
                for m in ("mae_pts", "rmse_noise_removed_pts", "p99_pts")}
        for f in fits.values():
            f["n_train_for_0.05"] = float((f["A"] / 0.05) ** (1 / f["exponent"]))
        res.doc["power_law"] = fits
        res.save()


def run_ensemble(out: Path, recipe: dict, n_design: int, n_paths: int, source_n: int, members: int, data_dir: Path,
                 models: Path, cluster=None):
    truth = wait_for_truth()
    data = design_split(n_design, n_paths, source_n, data_dir)
    res = Results(out, "ensemble", {"recipe": recipe, "n_design": n_design, "n_paths": n_paths, "members": members})
    preds = {}
    # seed 0 is the learning curve's run at this size
    keys = [_key(recipe, n_design, n_paths, *([] if s == SEED else [s])) for s in range(members)]

    def on_trained(s, sur):
        row, preds[s] = judge(sur, truth)
        print(f"member {s}: MAE {row['truth_mae_pts']:.3f}", flush=True)
        if not res.done(keys[s]):
            res.add({"key": keys[s], **row})

    train_each([(lambda: data, recipe, keys[s], s) for s in range(members)], models, on_trained, cluster)
    res.doc["runs"] = sorted((r for r in res.doc["runs"] if r["seed"] < members), key=lambda r: r["seed"])
    grid = data["config"].get_grid()
    P = np.stack([preds[s] for s in range(members)])
    mean, spread = P.mean(0), P.std(0, ddof=1)
    tm = truth_metrics(truth["y"], mean, grid, truth_se=truth["iv_se"])["overall"]
    known = np.isfinite(truth["y"])
    err = np.abs(mean - truth["y"])[known]
    corr = float(np.corrcoef(spread[known], err)[0, 1])
    # calibration of the spread: share of points whose error is within 2 spreads
    cover = float(np.mean(err <= 2 * spread[known]))
    res.doc["ensemble"] = {"members": members, **{f"truth_{k}": tm[k] for k in ("mae_pts", "rmse_pts",
                           "rmse_noise_removed_pts", "p99_pts", "max_pts")},
                           "spread_error_correlation": corr, "share_within_2_spreads": cover,
                           "member_mae_pts": [r["truth_mae_pts"] for r in res.doc["runs"]]}
    res.save()
    print(json.dumps(res.doc["ensemble"], indent=1))


#: The result file of each study.
RESULT = {"ablation": "ablation", "curve": "learning_curve", "ensemble": "ensemble"}


def main(argv=None) -> int:
    p = parser(__doc__, "<study>")
    p.add_argument("what", choices=tuple(RESULT), help=f"the study; writes {', '.join(RESULT.values())}.json")
    p.add_argument("--n-design", type=int, default=4096, help="design points of the ablation / ensemble")
    p.add_argument("--source-n", type=int, default=16_384, help="size of the dataset the sizes are taken from")
    p.add_argument("--paths", type=int, default=1024, help="paths per label of the main dataset")
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--sizes", type=int, nargs="*", default=list(SIZES), help="curve: design points at --paths")
    p.add_argument("--budget", nargs="*", default=list(BUDGET), help="curve: budget points, design_points:paths")
    p.add_argument("--variants", nargs="*", default=None, help="ablation: only these recipes (names of ABLATION)")
    p.add_argument("--epochs", type=int, default=None, help="cap on the training epochs (default: the recipe's)")
    p.add_argument("--data-dir", type=Path, default=RAW_DATA_DIR, help="folder of the datasets (priced if missing)")
    p.add_argument("--models-dir", type=Path, default=RUNS_DIR / "learning_curve",
                   help="folder of the trained surrogates (a run found there is not trained again; on a cluster, "
                        "one the workers see)")
    add_cluster_arguments(p)
    a = parse_args(p, argv, quick=QUICK)
    cluster = cluster_from_arguments(p, a)
    out = result_path(a, RESULT[a.what])
    from qrh_lib.surrogate.config import TrainConfig

    final = {k: v for k, v in TrainConfig().to_flat().items() if k not in ("seed",)}
    if a.epochs is not None:
        final["epochs"] = a.epochs
    where = {"data_dir": a.data_dir, "models": a.models_dir, "cluster": cluster}
    if a.what == "ablation":
        run_ablation(out, a.n_design, a.paths, a.source_n, variants=a.variants, epochs=a.epochs, **where)
    elif a.what == "curve":
        budget = [tuple(int(v) for v in b.split(":")) for b in a.budget]
        run_curve(out, final, sizes=a.sizes, budget=budget, source_n=a.source_n, main_paths=a.paths, **where)
    else:
        run_ensemble(out, final, a.n_design, a.paths, a.source_n, a.members, **where)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
