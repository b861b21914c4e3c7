"""Deterministic training of the surrogate: seeds, callbacks, and the end-to-end ``train_surrogate``.

Determinism: :func:`set_global_determinism` seeds Python, NumPy and TensorFlow
(``keras.utils.set_random_seed``) and enables ``tf.config.experimental.enable_op_determinism``;
every initializer and dropout layer also takes an explicit seed, and the data are shuffled by a
seeded NumPy generator, so two CPU trainings with the same seed give bit-identical weights.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .. import progress
from ..grid import Grid
from ..iv import VOL_POINTS
from ..params import InputBox
from ..paths import REPORTS_DIR
from .config import TrainConfig
from .model import build_resmlp_pca_model, compile_advanced_qrh_model
from .pca import choose_n_components, fit_pca_components, pca_reconstruction_errors
from .predictor import QRHSurrogate


def set_global_determinism(seed: int) -> None:
    """Seed Python/NumPy/TensorFlow and make TensorFlow ops deterministic (CPU and GPU)."""
    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()


def create_training_callbacks(
    run_dir,
    config: TrainConfig | None = None,
    monitor: str = "val_loss",
    tensorboard_dir=None,
    checkpoint: bool = True,
    verbose: int = 0,
) -> list:
    """Callbacks: the weights' moving average if configured, early stopping (best weights restored), LR reduction,
    best checkpoint, TensorBoard, CSV.

    Parameters
    ----------
    run_dir : path
        Receives ``best.keras`` and ``history.csv``.
    config : TrainConfig, optional
        Its ``patience``, ``lr_patience``, ``lr_factor`` and ``min_lr`` (default: :class:`TrainConfig`'s).
    tensorboard_dir : path, optional
        TensorBoard log folder; default ``reports/tensorboard/<run_dir name>``. ``False`` disables it.
    """
    cfg = config or TrainConfig()
    patience, lr_patience, lr_factor, min_lr = cfg.patience, cfg.lr_patience, cfg.lr_factor, cfg.min_lr
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cbs = ema_callbacks(cfg) + [
        keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True, verbose=verbose),
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=lr_factor, patience=lr_patience, min_lr=min_lr, verbose=verbose
        ),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
    ]
    if checkpoint:
        cbs.append(
            keras.callbacks.ModelCheckpoint(
                str(run_dir / "best.keras"), monitor=monitor, save_best_only=True, verbose=verbose
            )
        )
    if tensorboard_dir is not False and _has_tensorboard():
        tb = Path(tensorboard_dir) if tensorboard_dir else REPORTS_DIR / "tensorboard" / run_dir.name
        cbs.append(keras.callbacks.TensorBoard(log_dir=str(tb), histogram_freq=0, write_graph=False))
    return cbs


def ema_callbacks(config: TrainConfig) -> list:
    """With ``config.ema_momentum``: the moving average of the weights swapped in for each validation and at each
    epoch's end, so early stopping, the learning-rate cuts and the checkpoint see, keep and restore the averaged
    weights (put it before them)."""
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if config.ema_momentum is not None else []


def stopping_callbacks(config: TrainConfig) -> list:
    """The weights' moving average if configured, early stopping (best weights restored) and the learning-rate cuts
    on the validation loss: what a training without a run folder needs."""
    return ema_callbacks(config) + [
        keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr),
    ]


def _has_tensorboard() -> bool:
    """TensorBoard logging needs the ``tensorboard`` package (not a dependency of tensorflow-cpu >= 2.21)."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        warnings.warn("tensorboard is not installed: TensorBoard logging skipped", stacklevel=3)
        return False
    return True


def train_surrogate(
    X_train,
    y_train,
    X_val,
    y_val,
    x_scaler,
    grid: Grid,
    box: InputBox,
    config: TrainConfig | None = None,
    train_iv_se=None,
    val_iv_se=None,
    run_dir=None,
    tensorboard_dir=None,
    verbose: int = 0,
    y_scaler=None,
    domain=None,
) -> tuple[QRHSurrogate, dict]:
    """Fit PCA, build, compile and train the residual MLP; return the surrogate and its history.

    Parameters
    ----------
    X_train, y_train, X_val, y_val : array_like
        Raw inputs (n, 15) and raw vols (n, d).
    x_scaler : sklearn MinMaxScaler
        Fitted on ``X_train`` with feature_range (-1, 1) (the dataset's ``x_scaler.pkl``).
    grid, box : Grid, InputBox
        From the dataset manifest.
    config : TrainConfig
    train_iv_se, val_iv_se : array_like, optional
        Label MC standard errors; needed for the noise-based choice of K.
    run_dir : path, optional
        Callbacks' folder (checkpoint, CSV history); a temporary one is not created: without it
        only early stopping and LR reduction run.
    domain : qrh_lib.domain.Domain, optional
        The training domain (the dataset's); the surrogate refuses inputs outside it. Default: the box.
    """
    cfg = TrainConfig() if config is None else config
    pca_cfg = cfg.pca
    set_global_determinism(cfg.seed)
    y_train = np.asarray(y_train, np.float64)
    pca_choice = {}
    K = pca_cfg.n_components
    if K is None:
        if val_iv_se is None:
            raise ValueError("n_components=None needs val_iv_se to choose K from the MC noise")
        errs = pca_reconstruction_errors(y_train, y_val, val_iv_se, use_scaler=pca_cfg.use_pca_scaler)
        med = float(np.nanmedian(val_iv_se))
        K = choose_n_components(errs, med, pca_cfg.k_fraction)
        pca_choice = {
            "rule": f"smallest K with signal RMSE <= {pca_cfg.k_fraction} x median MC SE",
            "median_se_pts": VOL_POINTS * med,
            "table": errs.to_dict(orient="list"),
        }
    pca_info = fit_pca_components(y_train, K=K, use_scaler=pca_cfg.use_pca_scaler, log_vols=pca_cfg.log_vols)
    model = build_resmlp_pca_model(pca_info, cfg.model, seed=cfg.seed)
    compile_advanced_qrh_model(model, grid, cfg, pca_info=pca_info)
    if run_dir is not None:
        callbacks = create_training_callbacks(run_dir, cfg, tensorboard_dir=tensorboard_dir)
    else:
        callbacks = stopping_callbacks(cfg)
    callbacks.append(progress.keras_callback(cfg.epochs))  # epochs done, on the pipeline's terminal
    xs_tr = x_scaler.transform(np.asarray(X_train, np.float64)).astype(np.float32)
    xs_va = x_scaler.transform(np.asarray(X_val, np.float64)).astype(np.float32)
    # Shuffle once per epoch with a seeded generator via tf.data (deterministic order).
    ds = (
        tf.data.Dataset.from_tensor_slices((xs_tr, y_train.astype(np.float32)))
        .shuffle(len(xs_tr), seed=cfg.seed, reshuffle_each_iteration=True)
        .batch(cfg.batch_size)
    )
    t0 = time.perf_counter()
    hist = model.fit(
        ds,
        validation_data=(xs_va, np.asarray(y_val, np.float32)),
        epochs=cfg.epochs,
        shuffle=False,
        callbacks=callbacks,
        verbose=verbose,
    )
    seconds = time.perf_counter() - t0
    history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    conf = {
        "train": cfg.to_dict(),
        "K": int(K),
        "pca_choice": pca_choice,
        "n_train": int(len(xs_tr)),
        "n_val": int(len(xs_va)),
        "train_seconds": seconds,
        "epochs_run": len(history.get("loss", [])),
    }
    sur = QRHSurrogate.from_scaler(model, pca_info, x_scaler, grid, box, config=conf, y_scaler=y_scaler,
                                   domain=domain)
    return sur, history


def train_from_folder(
    path, config: TrainConfig | None = None, run_dir=None, out_dir=None, tensorboard_dir=None, verbose: int = 0
) -> tuple[QRHSurrogate, dict]:
    """Train on a dataset folder, evaluate on its test split, and save the artifact to ``out_dir``."""
    from ..data import load_dataset
    from .evaluation import evaluate_surrogate

    d = load_dataset(path)
    sur, history = train_surrogate(
        d["train_X"],
        d["train_y"],
        d["val_X"],
        d["val_y"],
        d["x_scaler"],
        d["grid"],
        d["box"],
        config=config,
        train_iv_se=d.get("train_iv_se"),
        val_iv_se=d.get("val_iv_se"),
        run_dir=run_dir,
        tensorboard_dir=tensorboard_dir,
        verbose=verbose,
        y_scaler=d.get("y_scaler"),
        domain=d.get("domain"),
    )
    sur.config["dataset"] = {"path": str(path), "seed": d["manifest"].get("seed")}
    if "test_X" in d:
        pred = sur.predict(d["test_X"], allow_extrapolation=True)
        sur.metrics = evaluate_surrogate(d["test_y"], pred, sur.grid, iv_se=d.get("test_iv_se"))
    if out_dir is not None:
        sur.save(out_dir)
    return sur, history
