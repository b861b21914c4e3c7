"""Determinism, callbacks and the end-to-end training entry points."""

import importlib.util

import keras
import numpy as np
import pytest

from qrh_lib.data import load_dataset
from qrh_lib.surrogate.config import LossConfig, ModelConfig, PCAConfig, TrainConfig
from qrh_lib.surrogate.training import create_training_callbacks, train_from_folder, train_surrogate

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
TINY = {"n_components": 6, "width": 16, "n_blocks": 1, "epochs": 2, "batch_size": 64, "dropout_rate": 0.1}


def _train(d, seed, **kw):
    cfg = TrainConfig.from_flat({**TINY, "seed": seed, **kw})
    n = 256
    sur, hist = train_surrogate(
        d["train_X"][:n], d["train_y"][:n], d["val_X"][:64], d["val_y"][:64], d["x_scaler"], d["grid"], d["box"], cfg
    )
    return [np.asarray(w) for w in sur.model.get_weights()], hist


def test_same_seed_same_weights(synthetic_dataset_dir):
    d = load_dataset(synthetic_dataset_dir)
    w1, h1 = _train(d, seed=7)
    w2, h2 = _train(d, seed=7)
    w3, _ = _train(d, seed=8)
    assert len(h1["loss"]) == 2 and h1 == h2
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2, strict=True))  # bit-identical (dropout on)
    assert not all(np.array_equal(a, b) for a, b in zip(w1, w3, strict=True))  # the seed matters


def test_callbacks(tmp_path):
    cbs = create_training_callbacks(tmp_path / "run", TrainConfig(patience=3), tensorboard_dir=tmp_path / "tb")
    kinds = {type(c).__name__ for c in cbs}
    assert {"EarlyStopping", "ReduceLROnPlateau", "ModelCheckpoint", "CSVLogger"} <= kinds
    # TensorBoard logging needs the tensorboard package (not pulled in by tensorflow-cpu >= 2.21).
    assert ("TensorBoard" in kinds) == HAS_TENSORBOARD
    es = next(c for c in cbs if isinstance(c, keras.callbacks.EarlyStopping))
    assert es.restore_best_weights and es.patience == 3


def test_train_from_folder_writes_artifacts(synthetic_dataset_dir, tmp_path):
    # n_components=None: K chosen by the MC-noise rule and recorded with its table.
    cfg = TrainConfig.from_flat({**TINY, "n_components": None, "epochs": 3})
    sur, hist = train_from_folder(
        synthetic_dataset_dir, cfg, run_dir=tmp_path / "run", out_dir=tmp_path / "art", tensorboard_dir=tmp_path / "tb"
    )
    assert (tmp_path / "run" / "history.csv").read_text().count("\n") == 1 + 3
    assert (tmp_path / "run" / "best.keras").exists()
    assert any((tmp_path / "tb").rglob("events.out.tfevents*")) == HAS_TENSORBOARD
    assert sur.config["K"] == sur.pca_info["K"] and "rule" in sur.config["pca_choice"]
    assert 1 <= sur.config["K"] <= 12  # the synthetic surfaces have a handful of smooth modes
    assert (tmp_path / "art" / "metrics.json").exists() and "overall" in sur.metrics
    assert np.isfinite(hist["val_rmse_vol_points"]).all()


def test_train_config_holds_the_pca_model_and_loss_configs_and_rejects_unknown_keys():
    cfg = TrainConfig.from_dict({"model": {"width": 8}, "loss": {"huber_delta": 2.0}, "learning_rate": 1e-3})
    assert cfg.model == ModelConfig(width=8) and cfg.loss == LossConfig(huber_delta=2.0) and cfg.pca == PCAConfig()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    # one flat dict of settings of any part, as the ablations write them, and back
    assert TrainConfig.from_flat({"width": 8, "huber_delta": 2.0, "learning_rate": 1e-3}) == cfg
    assert TrainConfig.from_flat(cfg.to_flat()) == cfg
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({"lr": 1e-3})
    with pytest.raises(ValueError, match="unknown ModelConfig keys"):
        TrainConfig.from_dict({"model": {"widht": 8}})
    with pytest.raises(ValueError, match=r"unknown TrainConfig settings \['widht'\]"):
        TrainConfig.from_flat({"widht": 8})
    with pytest.raises(ValueError, match="dropout_rate"):
        TrainConfig.from_flat({"dropout_rate": 1.0})


def test_vix_train_config_layers_the_vix_recipe_and_the_overrides():
    from qrh_lib.surrogate.config import VIX_RECIPE, vix_train_config

    cfg = vix_train_config(seed=3)
    assert cfg == TrainConfig(seed=3).replace_flat(**VIX_RECIPE)
    # a part's override changes only the keys it names: the VIX recipe's other loss settings stay
    cfg = vix_train_config({"loss": {"sobolev_strike": 0.5}, "learning_rate": 1e-3}, seed=0)
    assert cfg.loss.sobolev_strike == 0.5 and cfg.loss.huber_delta == VIX_RECIPE["huber_delta"]
    assert cfg.learning_rate == 1e-3 and cfg.model == ModelConfig()
    with pytest.raises(ValueError, match="unknown LossConfig keys"):
        vix_train_config({"loss": {"huber": 2.0}}, seed=0)
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        vix_train_config({"lr": 1e-3}, seed=0)
    with pytest.raises(ValueError, match="set elsewhere"):
        vix_train_config({"seed": 1}, seed=0)


def test_weight_averaging_is_what_validation_sees_and_what_training_keeps(synthetic_dataset_dir):
    # ema_momentum: the moving average of the weights is swapped in for each validation and kept by early stopping,
    # so the returned network's validation loss is the best one the history shows, not the raw weights' one.
    d = load_dataset(synthetic_dataset_dir)
    cfg = TrainConfig.from_flat({**TINY, "dropout_rate": 0.0, "epochs": 12, "patience": 3, "ema_momentum": 0.9,
                                 "seed": 3})
    n = 256
    sur, hist = train_surrogate(d["train_X"][:n], d["train_y"][:n], d["val_X"][:64], d["val_y"][:64], d["x_scaler"],
                                d["grid"], d["box"], cfg)
    xs = d["x_scaler"].transform(d["val_X"][:64]).astype(np.float32)
    val = float(sur.model.compute_loss(xs, d["val_y"][:64].astype(np.float32), sur.model(xs)))
    assert val == pytest.approx(min(hist["val_loss"]), rel=1e-4)
    # (were the callback after early stopping, that would keep raw weights judged by their average's loss)
    raw, _ = _train(d, 3, dropout_rate=0.0, epochs=12, patience=3)
    assert not all(np.array_equal(a, b) for a, b in zip(raw, sur.model.get_weights(), strict=True))
    with pytest.raises(ValueError, match="ema_momentum = 1.5"):
        TrainConfig(ema_momentum=1.5)
