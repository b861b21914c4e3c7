"""Two networks or one with two heads for SPX and VIX, and the joint calibration's speed, against the truth set.

The main job's run folder holds a dataset with SPX and VIX labels from the same paths and the two networks of the
default recipe trained on them (notebooks 04 and 09). This benchmark trains, on the same data and seed, one network
with the same trunk and two heads (an SPX and a VIX PCA head, the sum of the two surface losses), judges both
designs against the truth set's low-noise SPX and VIX labels, and times the joint calibration
(:func:`qrh_lib.surrogate.joint.calibrate_joint`) of the two networks on the truth set's surfaces. Writes
``benchmarks/results/vix.json``.

    python benchmarks/vix.py [--run-dir book/run] [--targets 50]
    python benchmarks/vix.py --run-dir runs/rz --truth-dir data/truth_rz --out vix_rz.json   # the rz profile's run
    python benchmarks/vix.py --ablation [--variants recipe squared_error]   # the VIX network's loss, vix_ablation.json
    python benchmarks/vix.py --ablation --run-dir runs/rz --truth-dir data/truth_rz --out vix_ablation_rz.json
    python benchmarks/vix.py [--ablation --dataset <folder>] --quick --out /tmp/vix.json   # a check: 2 epochs
    python benchmarks/vix.py --ablation --workers 2   # the variants as Dask tasks (or --scheduler ADDRESS)

With ``--workers N`` (a local Dask cluster), ``--scheduler ADDRESS`` (a running one) and ``--threads-per-worker``
(:mod:`qrh_lib.cluster`), ``--ablation`` trains each variant as one task: its worker trains the network, keeps its
predictions in ``--predictions-dir`` (which the workers must see: a shared filesystem on a cluster) and returns
its row, which this process records under the variant's name as the task ends; the variants already recorded for
the same dataset and truth set are not trained again, so an interrupted ablation resumes. Without these options,
one process trains every variant asked for and writes the record at the end, as before. Measured here (2 cores,
TensorFlow on CPU): three variants of a ``--quick`` ablation on 2 workers gave the single process's predictions
bit for bit and its rows but for the training's seconds (and ``benchmarks/learning_curve.py`` says the same of
its trainings' weights).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _common import (
    parse_args,
    parser,
    previous_result,
    record,
    result_path,
    run_trainings,
    timed,
    timed_each,
    write_result,
)

from qrh_lib.artifacts import save_npy
from qrh_lib.cluster import add_cluster_arguments, cluster_from_arguments, uses_dask
from qrh_lib.data import load_dataset
from qrh_lib.iv import VOL_POINTS
from qrh_lib.paths import RUNS_DIR
from qrh_lib.pricer.truth import load_truth_set
from qrh_lib.surrogate import QRHSurrogate
from qrh_lib.surrogate.config import VIX_RECIPE, TrainConfig, vix_train_config
from qrh_lib.surrogate.evaluation import truth_metrics
from qrh_lib.surrogate.joint import JointSurrogate, calibrate_joint
from qrh_lib.workflow.runs import dataset_path, run_path

#: Settings of ``--quick``: two epochs of training, two calibration targets.
QUICK = {"epochs": 2, "targets": 2}
KEYS = ("mae_pts", "rmse_pts", "rmse_noise_removed_pts", "p99_pts", "max_pts", "mean_rel_pct")


def two_heads(d: dict, seed: int = 0, epochs: int | None = None):
    """One network for both: the default recipe's trunk (five SiLU layers of 128) with an SPX head and a VIX head,
    each a linear layer onto all its principal components and the fixed PCA reconstruction (the VIX head's of log
    vols), trained on the sum of the two surface losses (the SPX recipe's on the SPX grid, the VIX network's,
    VIX_RECIPE, on the VIX grid), with the recipe's optimiser and stopping and VIX_RECIPE's moving average of the
    weights (``epochs`` caps the recipe's). Returns a function of raw inputs giving (SPX vols, VIX vols) and the
    epochs run."""
    import keras
    import tensorflow as tf

    from qrh_lib.surrogate.model import PCAReconstruction, make_optimizer, make_surface_loss
    from qrh_lib.surrogate.pca import fit_pca_components, reconstruction_affine
    from qrh_lib.surrogate.training import set_global_determinism, stopping_callbacks

    cfg = TrainConfig(seed=seed) if epochs is None else TrainConfig(seed=seed).replace_flat(epochs=epochs)
    set_global_determinism(seed)
    init = keras.initializers.GlorotUniform
    x_in = keras.Input(shape=(15,))
    h = keras.layers.Dense(cfg.model.width, activation="silu", kernel_initializer=init(seed=seed))(x_in)
    for i in range(cfg.model.n_blocks):
        h = keras.layers.Dense(cfg.model.width, activation="silu", kernel_initializer=init(seed=seed + 10 * (i + 1)))(h)
    outs, losses = [], []
    vix_cfg = vix_train_config(seed=seed)
    for j, (pre, grid, part) in enumerate((("", d["grid"], cfg), ("vix_", d["vix_grid"], vix_cfg))):
        info = fit_pca_components(d[f"train_{pre}y"], K=part.pca.n_components, use_scaler=part.pca.use_pca_scaler,
                                  log_vols=part.pca.log_vols)
        W, b = reconstruction_affine(info)
        c = keras.layers.Dense(info["K"], kernel_initializer=init(seed=seed + 7 + j))(h)
        outs.append(PCAReconstruction(W, b, P=info["P"], y_scale=info["y_scale"], log_vols=info["log_vols"],
                                      name=f"{pre}surface")(c))
        losses.append(make_surface_loss(grid, part.loss, pca_info=info))
    model = keras.Model(x_in, outs)
    fit_cfg = cfg.replace_flat(ema_momentum=vix_cfg.ema_momentum)  # the SPX recipe's settings, the VIX average
    model.compile(optimizer=make_optimizer(fit_cfg), loss=losses)
    xs = {s_: d["x_scaler"].transform(d[f"{s_}_X"]).astype(np.float32) for s_ in ("train", "val")}
    ys = {s_: (d[f"{s_}_y"].astype(np.float32), d[f"{s_}_vix_y"].astype(np.float32)) for s_ in ("train", "val")}
    ds = (tf.data.Dataset.from_tensor_slices((xs["train"], ys["train"]))
          .shuffle(len(xs["train"]), seed=seed, reshuffle_each_iteration=True).batch(cfg.batch_size))
    stop = stopping_callbacks(fit_cfg)
    hist = model.fit(ds, validation_data=(xs["val"], ys["val"]), epochs=cfg.epochs, callbacks=stop, verbose=0)

    def predict(X):
        spx, vix = model.predict(d["x_scaler"].transform(X).astype(np.float32), verbose=0, batch_size=4096)
        return spx.astype(np.float64), vix.astype(np.float64)

    return predict, len(hist.history["loss"])


#: The kept loss on a PCA of vols, without the weights' average: the base of the loss and architecture variants.
_ON_VOLS = {"huber_delta": 1000.0, "sobolev_strike": 0.0, "sobolev_maturity": 0.0}
_LOG_VOLS = {**_ON_VOLS, "log_vols": True}

#: Changes to the SPX recipe (flat TrainConfig settings) judged by ``--ablation`` for the VIX network, all on the
#: same data and seed. Against labels whose noise is eight times the SPX labels' and skewed, the loss is the
#: question first: the recipe's Huber loss with delta 1 vol point is nearly an absolute error there, which estimates
#: a median, not the mean the labels are unbiased for. Then the target (a PCA of log vols) and the seed-to-seed
#: spread (the weights' moving average); VIX_RECIPE keeps all three.
ABLATION = {
    "recipe": {},
    "huber_delta_5": {"huber_delta": 5.0},
    "squared_error": {"huber_delta": 1000.0},
    "squared_error_no_sobolev": _ON_VOLS,
    "huber_delta_5_no_sobolev": {"huber_delta": 5.0, "sobolev_strike": 0.0, "sobolev_maturity": 0.0},
    "squared_error_no_sobolev_k20": {**_ON_VOLS, "n_components": 20},
    "squared_error_no_sobolev_batch_512": {**_ON_VOLS, "batch_size": 512},
    "squared_error_no_sobolev_width_256": {**_ON_VOLS, "width": 256},
    "squared_error_no_sobolev_seed_1": {**_ON_VOLS, "seed": 1},
    "squared_error_no_sobolev_seed_2": {**_ON_VOLS, "seed": 2},
    "squared_error_no_sobolev_log_vol": _LOG_VOLS,
    "squared_error_no_sobolev_log_vol_seed_1": {**_LOG_VOLS, "seed": 1},
    "squared_error_no_sobolev_log_vol_seed_2": {**_LOG_VOLS, "seed": 2},
    "squared_error_no_sobolev_ema_0.999": {**_ON_VOLS, "ema_momentum": 0.999},
    "squared_error_no_sobolev_log_vol_ema_0.999": VIX_RECIPE,
    "squared_error_no_sobolev_log_vol_ema_0.999_seed_1": {**VIX_RECIPE, "seed": 1},
    "squared_error_no_sobolev_log_vol_ema_0.999_seed_2": {**VIX_RECIPE, "seed": 2},
}


#: Ensembles judged by ``--ablation``: the mean prediction of variants that differ in the seed only, from the
#: predictions each variant's run leaves in PREDICTIONS_DIR (for the dataset and truth set they were judged on).
ENSEMBLES = {f"{base}_3_seeds": [base, f"{base}_seed_1", f"{base}_seed_2"]
             for base in ("squared_error_no_sobolev", "squared_error_no_sobolev_log_vol",
                          "squared_error_no_sobolev_log_vol_ema_0.999")}
PREDICTIONS_DIR = RUNS_DIR / "vix_ablation"


def ablation(d: dict, truth: dict, variants: dict, seed: int = 0, epochs: int | None = None,
             predictions_dir: Path = PREDICTIONS_DIR, cluster=None, on_row=None) -> dict:
    """Train the VIX network of each variant on the dataset ``d`` (same data and seed; ``epochs`` caps the
    recipe's) and judge it against the truth set's VIX labels, here one after the other or one Dask task each on
    ``cluster`` (``on_row(rows)``, if given, called with the rows so far as each ends); then every ensemble of
    :data:`ENSEMBLES` whose members' predictions are all at hand in ``predictions_dir``."""
    out = {}
    tag = f"{Path(d['path']).name}_{truth['manifest']['created'].replace(':', '')}"
    names = list(variants)
    where = Path(predictions_dir).resolve() if uses_dask(cluster) else predictions_dir  # the workers' folder differs

    def record_row(i, row):
        out[names[i]] = row
        print(names[i], {k: round(v, 3) for k, v in row.items() if isinstance(v, float)}, flush=True)
        if on_row is not None:
            on_row(out)

    run_trainings(train_variant, [(d, truth, name, variants[name], seed, epochs, where, tag) for name in names],
                  record_row, cluster, desc="VIX ablation")
    for name, members in ENSEMBLES.items():
        files = [predictions_dir / f"{m}_{tag}.npy" for m in members]
        if all(path.exists() for path in files):
            pred = np.mean([np.load(path) for path in files], axis=0)
            out[name] = {"members": members, **judge(pred, truth, d["vix_grid"])}
            print(name, {k: round(v, 3) for k, v in out[name].items() if isinstance(v, float)}, flush=True)
    return out


def train_variant(d: dict, truth: dict, name: str, change: dict, seed: int, epochs: int | None,
                  predictions_dir: Path, tag: str) -> dict:
    """One variant of the ablation (a Dask task on a cluster): the VIX network trained on ``d``, its predictions
    of the truth set kept in ``predictions_dir`` (for the ensembles), and its row."""
    from qrh_lib.surrogate.training import train_surrogate

    cfg = TrainConfig(seed=seed).replace_flat(**change, **({} if epochs is None else {"epochs": epochs}))
    run = timed(lambda: train_surrogate(
        d["train_X"], d["train_vix_y"], d["val_X"], d["val_vix_y"], d["x_scaler"], d["vix_grid"], d["box"],
        config=cfg, train_iv_se=d["train_vix_iv_se"], val_iv_se=d["val_vix_iv_se"], tensorboard_dir=False,
        domain=d["domain"]))
    sur, hist = run.result
    pred = sur.predict(truth["X"])
    save_npy(Path(predictions_dir) / f"{name}_{tag}.npy", pred)
    return {"change": change, **judge(pred, truth, sur.grid), "epochs_run": len(hist["loss"]),
            "train_seconds": run.best}


def judge(pred, truth: dict, grid) -> dict:
    """The truth-set metrics of VIX predictions, and their mean error (vol points)."""
    tm = truth_metrics(truth["vix_y"], pred, grid, truth_se=truth["vix_iv_se"])["overall"]
    return {k: tm[k] for k in KEYS} | {"mean_error_pts": VOL_POINTS * float(np.nanmean(pred - truth["vix_y"]))}


def main(argv=None) -> int:
    p = parser(__doc__, "vix")
    p.add_argument("--run-dir", default="book/run", help="a run folder of the main job (with notebook 09)")
    p.add_argument("--targets", type=int, default=50)
    p.add_argument("--ablation", action="store_true",
                   help="train the VIX network variants of ABLATION on the run's dataset (writes vix_ablation.json)")
    p.add_argument("--variants", nargs="*", default=None, help="with --ablation: only these variants")
    p.add_argument("--dataset", default=None, help="with --ablation: a dataset folder (default: the run's)")
    p.add_argument("--truth-dir", default=None, help="the truth set of the run's grids (default: data/truth)")
    p.add_argument("--epochs", type=int, default=None, help="cap on the training epochs (default: the recipe's)")
    p.add_argument("--predictions-dir", type=Path, default=PREDICTIONS_DIR,
                   help="with --ablation: where each variant's predictions are kept for the ensembles")
    add_cluster_arguments(p)
    a = parse_args(p, argv, quick=QUICK)
    cluster = cluster_from_arguments(p, a)
    if cluster.distributed and not a.ablation:
        p.error("--workers and --scheduler go with --ablation (the studies that train many networks)")
    out = result_path(a, "vix_ablation" if a.ablation else "vix")  # --out defaults to vix_ablation.json there
    d = load_dataset(a.dataset if a.ablation and a.dataset else dataset_path(a.run_dir))
    if a.ablation:
        truth = load_truth_set(a.truth_dir) if a.truth_dir else load_truth_set()
        variants = {k: v for k, v in ABLATION.items() if a.variants is None or k in a.variants}
        head = dict(
            dataset={"path": str(Path(d["path"]).resolve()), "n_train": int(len(d["train_X"]))},
            truth_set=a.truth_dir or "data/truth", truth_set_created=truth["manifest"]["created"],
            truth_vix_median_se_pts=float(VOL_POINTS * np.nanmedian(truth["vix_iv_se"])),
            label_vix_median_se_pts=float(VOL_POINTS * np.nanmedian(d["train_vix_iv_se"])))
        old = previous_result(out)
        kept = {}
        if old:  # keep the other variants' results when they were judged on the same data and truth set
            old_data = dict(old.get("dataset", {}), path=str(Path(old.get("dataset", {}).get("path", "")).resolve()))
            if old_data == head["dataset"] and old.get("truth_set_created") == head["truth_set_created"]:
                kept = old["variants"]
        cap = {} if a.epochs is None else {"epochs_cap": a.epochs}
        on_row = None
        if uses_dask(cluster):  # resumable: the variants recorded are not trained again, and each row is written
            variants = {k: v for k, v in variants.items() if k not in kept}

            def on_row(rows):
                write_result(out, record("vix_ablation", **head, variants=kept | rows, **cap), quiet=True)

        rows = ablation(d, truth, variants, epochs=a.epochs, predictions_dir=a.predictions_dir, cluster=cluster,
                        on_row=on_row)
        write_result(out, record("vix_ablation", **head, variants=kept | rows, **cap))
        return 0
    try:
        surs = {"spx": QRHSurrogate.load(run_path(a.run_dir, "surrogate")),
                "vix": QRHSurrogate.load(run_path(a.run_dir, "vix_surrogate"))}
    except FileNotFoundError as err:
        raise SystemExit(f"{err}: run the main job (make run) with notebook 09 first") from None
    truth = load_truth_set(a.truth_dir) if a.truth_dir else load_truth_set()
    judged = {"two_networks": {}}
    for w, sur in surs.items():
        y, se = (truth["y"], truth["iv_se"]) if w == "spx" else (truth["vix_y"], truth["vix_iv_se"])
        tm = truth_metrics(y, sur.predict(truth["X"]), sur.grid, truth_se=se)["overall"]
        judged["two_networks"][w] = {k: tm[k] for k in KEYS} | {"epochs_run": sur.config["epochs_run"],
                                                                 "train_seconds": sur.config["train_seconds"]}
    run = timed(lambda: two_heads(d, epochs=a.epochs))
    predict, epochs = run.result
    judged["two_heads"] = {"epochs_run": epochs, "train_seconds": run.best}
    for w, pred in zip(("spx", "vix"), predict(truth["X"]), strict=True):
        y, se = (truth["y"], truth["iv_se"]) if w == "spx" else (truth["vix_y"], truth["vix_iv_se"])
        tm = truth_metrics(y, pred, surs[w].grid, truth_se=se)["overall"]
        judged["two_heads"][w] = {k: tm[k] for k in KEYS}
    joint = JointSurrogate(surs["spx"], surs["vix"])
    n = min(a.targets, len(truth["X"]))
    # the warm-up builds the candidate bank once
    fits = timed_each(lambda i: calibrate_joint(joint, truth["y"][i], truth["vix_y"][i]), range(n)).result
    d_spx = surs["spx"].grid.size
    rows = []
    for i, r in enumerate(fits):
        fit = r.iv - np.concatenate([truth["y"][i], truth["vix_y"][i]])
        rows.append((r.seconds, VOL_POINTS * np.sqrt(np.nanmean(fit[:d_spx] ** 2)),
                     VOL_POINTS * np.sqrt(np.nanmean(fit[d_spx:] ** 2))))
    sec, fit_spx, fit_vix = (np.array(c) for c in zip(*rows, strict=True))
    result = record(
        "vix", dataset={"path": str(d["path"]), "n_train": int(len(d["train_X"])), "config": d["manifest"]["config"]},
        truth_set=a.truth_dir or "data/truth",
        label_median_se_pts={"spx": float(VOL_POINTS * np.nanmedian(d["train_iv_se"])),
                             "vix": float(VOL_POINTS * np.nanmedian(d["train_vix_iv_se"])),
                             "vix_truth": float(VOL_POINTS * np.nanmedian(truth["vix_iv_se"]))},
        against_the_truth_set=judged, **({} if a.epochs is None else {"two_heads_epochs_cap": a.epochs}),
        joint_calibration={"targets": n, "median_ms": float(1e3 * np.median(sec)),
                           "p90_ms": float(1e3 * np.percentile(sec, 90)),
                           "median_fit_spx_pts": float(np.median(fit_spx)),
                           "median_fit_vix_pts": float(np.median(fit_vix)),
                           "p90_fit_vix_pts": float(np.percentile(fit_vix, 90))})
    write_result(out, result)
    print({k: result[k] for k in ("label_median_se_pts", "against_the_truth_set", "joint_calibration")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
