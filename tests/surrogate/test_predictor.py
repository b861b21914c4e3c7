"""The surrogate artifact: save/load, the three forward paths, gradients and the input box."""

import numpy as np
import pytest
import tensorflow as tf

from qrh_lib.data import load_dataset
from qrh_lib.params import COL_A, COL_ETA, COL_LAMBDA, PARAM_NAMES
from qrh_lib.surrogate import QRHSurrogate


@pytest.fixture(scope="module")
def X(synthetic_dataset_dir):
    return load_dataset(synthetic_dataset_dir)["test_X"][:50]


def test_save_load_predict_identical(tiny_surrogate, X, tmp_path):
    path = tiny_surrogate.save(tmp_path / "sur")
    for f in (
        "model.keras",
        "pca.npz",
        "pca.json",
        "x_scaling.json",
        "x_scaler.pkl",
        "grid.json",
        "box.json",
        "config.json",
        "metrics.json",
        "versions.json",
    ):
        assert (path / f).exists(), f
    back = QRHSurrogate.load(path)
    np.testing.assert_array_equal(back.predict(X), tiny_surrogate.predict(X))
    np.testing.assert_array_equal(back.predict_numpy(X), tiny_surrogate.predict_numpy(X))
    assert back.grid == tiny_surrogate.grid and back.box == tiny_surrogate.box
    assert back.config["K"] == tiny_surrogate.config["K"]


def test_forward_paths_agree(tiny_surrogate, X):
    p = tiny_surrogate.predict(X)
    assert p.shape == (50, 60) and p.dtype == np.float64
    # float32 TF vs float64 NumPy on vols of O(0.5): differences are float32 round-off (~1e-7).
    np.testing.assert_allclose(tiny_surrogate.predict_numpy(X), p, atol=2e-6)
    np.testing.assert_allclose(tiny_surrogate.predict_keras(X), p, atol=2e-6)
    np.testing.assert_allclose(tiny_surrogate.predict_numpy(X[0]), p[:1], atol=2e-6)  # one surface, 1-D input


def test_numpy_backprop_matches_tf_autodiff(tiny_surrogate, X):
    xs = tiny_surrogate.scale_inputs(X[:5])
    g_out = np.random.default_rng(0).standard_normal((5, 60))
    net = tiny_surrogate.numpy_net
    cache = []
    net.forward(xs, cache)
    g_np = net.vjp(g_out, cache)
    x_tf = tf.constant(xs, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x_tf)
        out = tf.reduce_sum(tiny_surrogate.tf_forward(x_tf) * tf.constant(g_out, tf.float32))
    g_tf = tape.gradient(out, x_tf).numpy()
    # Gradients are O(0.1-1); float32 autodiff agrees to ~1e-5 relative.
    np.testing.assert_allclose(g_np, g_tf, rtol=1e-3, atol=1e-5 * np.abs(g_tf).max())


def test_out_of_box_raises_naming_input_and_bounds(tiny_surrogate, X):
    bad = X[:3].copy()
    bad[1, 4] = 0.05  # c above the RZ box [0.0001, 0.03]
    with pytest.raises(ValueError, match=r"\(c\) = 0\.05 is outside its allowed range \[0\.0001, 0\.03\]"):
        tiny_surrogate.predict(bad)
    with pytest.raises(ValueError, match="allow_extrapolation"):
        tiny_surrogate.predict_numpy(bad)
    out = tiny_surrogate.predict(bad, allow_extrapolation=True)
    assert np.isfinite(out).all()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=PARAM_NAMES[0]):
        tiny_surrogate.predict(bad, allow_extrapolation=True)  # non-finite inputs always raise


def test_wrong_shape_raises(tiny_surrogate):
    with pytest.raises(ValueError, match="shape"):
        tiny_surrogate.predict(np.zeros((2, 14)))


def test_load_missing_files_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.keras"):
        QRHSurrogate.load(tmp_path)


@pytest.fixture(scope="module")
def stable_surrogate(tiny_surrogate):
    """The tiny surrogate restricted to the stable part of its box (the product's default domain)."""
    from qrh_lib.domain import Domain

    s = tiny_surrogate
    return QRHSurrogate(s.model, s.pca_info, s.x_scale, s.x_min, s.grid, s.box, domain=Domain(s.box))


def test_outside_the_stable_domain_raises_naming_a_its_ratio_and_a_star(stable_surrogate, tmp_path):
    from qrh_lib.pricer.moments import critical_feedback

    x = 0.5 * (stable_surrogate.box.lo + stable_surrogate.box.hi)
    x[[COL_LAMBDA, COL_ETA, COL_A]] = 0.5, 1.5, 0.3  # a* = 0.2734: ratio 1.10
    with pytest.raises(ValueError, match=r"\(a\) = 0\.3 is outside the stable domain: its feedback ratio a / a\* = "
                                         r"1\.097 exceeds 0\.9 .*a\*\(lambda=0\.5, eta=1\.5\) = 0\.27343.*"
                                         r"allow_extrapolation"):
        stable_surrogate.predict(x)
    with pytest.raises(ValueError, match="outside the stable domain"):
        stable_surrogate.predict_numpy(np.stack([x, x]))
    assert np.isfinite(stable_surrogate.predict(x, allow_extrapolation=True)).all()
    # just inside the margin passes the fast path and the exact check alike
    x[COL_A] = 0.9 * critical_feedback(0.5, 1.5) * (1 - 1e-12)
    assert stable_surrogate.predict_numpy(x).shape == (1, 60)
    back = QRHSurrogate.load(stable_surrogate.save(tmp_path / "stable"))
    assert back.domain == stable_surrogate.domain


@pytest.mark.parametrize("kw", [{"residual": False}, {"layer_norm": False}, {}, {"log_vols": True},
                                {"residual": False, "log_vols": True}])
def test_numpy_copy_of_every_architecture(kw):
    from qrh_lib.surrogate import NumpyResMLP
    from qrh_lib.surrogate.model import build_resmlp_pca_model
    from qrh_lib.surrogate.pca import fit_pca_components

    rng = np.random.default_rng(0)
    kw = dict(kw)
    info = fit_pca_components(0.1 + rng.random((100, 60)), K=6, log_vols=kw.pop("log_vols", False))
    model = build_resmlp_pca_model(info, width=16, n_blocks=2, **kw)
    for w in model.weights:  # random weights everywhere (the blocks' second layer starts at zero)
        w.assign(0.3 * rng.standard_normal(w.shape))
    net, xs = NumpyResMLP(model), rng.uniform(-1, 1, (4, 15))
    cache = []
    np.testing.assert_allclose(net.forward(xs, cache), model(xs.astype(np.float32)).numpy(), atol=1e-5)
    g = rng.standard_normal((4, 60))
    num = np.stack([((net.forward(xs + e) - net.forward(xs - e)) * g).sum(1) / 2e-6 for e in 1e-6 * np.eye(15)], 1)
    np.testing.assert_allclose(net.vjp(g, cache), num, rtol=1e-5, atol=1e-6)
    y, J = net.jacobian(xs)  # forward mode: every output's gradient, the same as one backward pass per output
    np.testing.assert_allclose(y, net.forward(xs), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.einsum("nd,ndi->ni", g, J), net.vjp(g, cache), rtol=1e-9, atol=1e-10)


def test_log_vols_surrogate_trains_saves_and_loads(synthetic_dataset_dir, X, tmp_path):
    # The VIX network's target: a PCA of log vols. Its artifact keeps the exponential (Keras layer, NumPy copy,
    # PCA metadata), so the loaded surrogate predicts the same positive vols on every path.
    from qrh_lib.surrogate.config import TrainConfig
    from qrh_lib.surrogate.training import train_from_folder

    cfg = TrainConfig.from_flat(dict(n_components=8, width=32, n_blocks=2, epochs=5, batch_size=64, seed=1,
                                     log_vols=True))
    sur = train_from_folder(synthetic_dataset_dir, cfg)[0]
    p = sur.predict(X)
    assert sur.pca_info["log_vols"] and sur.numpy_net.log_vols and np.all(p > 0)
    np.testing.assert_allclose(sur.predict_numpy(X), p, rtol=5e-6)
    back = QRHSurrogate.load(sur.save(tmp_path / "log_vols"))
    assert back.pca_info["log_vols"] and back.numpy_net.log_vols
    np.testing.assert_array_equal(back.predict(X), p)
    np.testing.assert_array_equal(back.predict_numpy(X), sur.predict_numpy(X))
