"""Model architecture, reconstruction layer and every term of the surface loss."""

import keras
import numpy as np
import pytest

from qrh_lib.grid import default_grid
from qrh_lib.surrogate.model import (
    LossConfig,
    QRHSurfaceLoss,
    bucket_masks,
    build_resmlp_pca_model,
    compile_advanced_qrh_model,
    get_reconstruction_layer,
    loss_weight_map,
    make_surface_loss,
)
from qrh_lib.surrogate.pca import fit_pca_components, pca_inverse_transform
from qrh_lib.synthetic import make_synthetic_dataset

GRID = default_grid()


@pytest.fixture(scope="module")
def data():
    d = make_synthetic_dataset(300, seed=5)
    return d, fit_pca_components(d["y"], K=10)


def _loss(**kw):
    return make_surface_loss(GRID, LossConfig(**kw))


def _val(loss, y_true, y_pred):
    return {k: float(v) for k, v in loss.terms(y_true.astype(np.float32), y_pred.astype(np.float32)).items()}


def test_reconstruction_layer_equals_pca_inverse(data):
    d, info = data
    model = build_resmlp_pca_model(info, width=16, n_blocks=1, seed=0)
    layer = get_reconstruction_layer(model)
    assert not layer.trainable_weights and len(layer.non_trainable_weights) == 2
    c = np.random.default_rng(0).standard_normal((20, 10))
    out = np.asarray(layer(c.astype(np.float32)))
    # float32 layer vs float64 reference on vols of O(0.5): agreement to ~1e-6.
    np.testing.assert_allclose(out, pca_inverse_transform(c, info), atol=1e-5)


def test_model_shapes_and_trainable_parts(data):
    _, info = data
    model = build_resmlp_pca_model(info, width=32, n_blocks=3, dropout_rate=0.1, seed=0)
    assert model.input_shape == (None, 15) and model.output_shape == (None, 60)
    assert model.get_layer("pca_coefficients").units == 10
    with pytest.raises(ValueError):
        build_resmlp_pca_model(info, dropout_rate=1.0)


def test_bucket_masks_partition_grid():
    b = bucket_masks(GRID)
    strikes = b["atm"].astype(int) + b["otm_put"] + b["otm_call"]
    assert np.all(strikes == 1)
    assert np.all(b["short"] ^ b["long"])
    assert b["atm"].sum() == 3 * 6  # m in {-0.05, 0, 0.05}
    assert b["short"][:, :3].all() and not b["short"][:, 3:].any()  # T <= median of 6 maturities


def test_all_terms_vanish_at_the_truth(data):
    d, info = data
    loss = make_surface_loss(
        GRID, LossConfig(sobolev_strike=1.0, sobolev_maturity=1.0, pca_coef_weight=1.0), pca_info=info
    )
    y = d["y"][:8]
    assert all(v == 0.0 for v in _val(loss, y, y).values())


def test_huber_quadratic_then_linear_and_weighted():
    loss = _loss(huber_delta=1.0, otm_put_weight=1.0, sobolev_strike=0.0, sobolev_maturity=0.0)
    y = np.full((1, 60), 0.3)
    e_small, e_big = y.copy(), y.copy()
    e_small[0, 30] += 0.005  # 0.5 vol point: quadratic, 0.5 e^2 averaged over 60 points
    e_big[0, 30] += 0.03  # 3 vol points: linear, delta |e| - delta^2 / 2
    assert _val(loss, y, e_small)["huber"] == pytest.approx(0.5 * 0.5**2 / 60, rel=1e-4)
    assert _val(loss, y, e_big)["huber"] == pytest.approx((3.0 - 0.5) / 60, rel=1e-4)


def test_otm_put_weight_emphasises_puts():
    cfg = LossConfig(otm_put_weight=3.0, sobolev_strike=0.0, sobolev_maturity=0.0)
    loss, w = make_surface_loss(GRID, cfg), loss_weight_map(GRID, cfg)
    assert w.mean() == pytest.approx(1.0)
    y = np.full((1, 60), 0.3)
    put, call = y.copy(), y.copy()
    put[0, 0 * 6 + 2] += 0.005  # m = -0.5: OTM put
    call[0, 9 * 6 + 2] += 0.005  # m = 0.3: OTM call
    assert _val(loss, y, put)["huber"] == pytest.approx(3.0 * _val(loss, y, call)["huber"], rel=1e-5)


def test_atm_and_short_tenor_weights():
    cfg = LossConfig(otm_put_weight=1.0, atm_weight=2.0, short_tenor_weight=5.0)
    w = loss_weight_map(GRID, cfg)
    b = bucket_masks(GRID)
    assert w[b["atm"] & b["short"]][0] / w[~b["atm"] & b["long"]][0] == pytest.approx(10.0)


def test_sobolev_strike_zero_for_linear_error_and_grows_with_curvature():
    loss = _loss(sobolev_strike=1.0, sobolev_maturity=1.0)
    y = np.full((1, 60), 0.3)
    i = np.arange(10)[:, None] * np.ones((1, 6))
    lin = y + 0.001 * i.reshape(1, -1)  # error linear in strike index: no second difference
    quad1 = y + 0.0001 * (i**2).reshape(1, -1)
    quad2 = y + 0.0002 * (i**2).reshape(1, -1)
    v_lin, v1, v2 = _val(loss, y, lin), _val(loss, y, quad1), _val(loss, y, quad2)
    assert v_lin["sobolev_strike"] == pytest.approx(0.0, abs=1e-10) and v_lin["huber"] > 0
    # 2nd difference of 0.01 i^2 vol points is 0.02 everywhere: mean square 4e-4; doubling it x4.
    assert v1["sobolev_strike"] == pytest.approx(4e-4, rel=1e-3)
    assert v2["sobolev_strike"] == pytest.approx(4 * v1["sobolev_strike"], rel=1e-4)
    assert v1["sobolev_maturity"] == pytest.approx(0.0, abs=1e-10)  # constant along maturity


def test_sobolev_maturity_sees_term_structure_curvature():
    loss = _loss(sobolev_strike=1.0, sobolev_maturity=2.0)
    y = np.full((1, 60), 0.3)
    j = np.ones((10, 1)) * np.arange(6)[None, :]
    v = _val(loss, y, y + 0.0001 * (j**2).reshape(1, -1))
    assert v["sobolev_maturity"] == pytest.approx(2.0 * 4e-4, rel=1e-3) and v["sobolev_strike"] == pytest.approx(0)


def test_pca_coefficient_term(data):
    d, info = data
    loss = make_surface_loss(GRID, LossConfig(pca_coef_weight=1.0), pca_info=info)
    y = d["y"][:4]
    P, s = info["P"], info["y_scale"]
    in_span = y + 0.01 * s * P[:, 0]  # error along the first component: coefficient error 0.01
    z = np.random.default_rng(1).standard_normal(60)
    z -= P @ (P.T @ z)  # orthogonal to every kept component (in scaled space)
    outside = y + 0.001 * s * z
    assert _val(loss, y, in_span)["pca_coef"] == pytest.approx(0.01**2 / 10, rel=1e-3)
    assert _val(loss, y, outside)["pca_coef"] == pytest.approx(0.0, abs=1e-9)


def test_loss_config_rejects_unknown_and_negative():
    with pytest.raises(ValueError, match="unknown LossConfig keys"):
        LossConfig.from_dict({"otm_weight": 2.0})
    with pytest.raises(ValueError, match="otm_put_weight"):
        LossConfig(otm_put_weight=-1.0)
    with pytest.raises(ValueError, match="pca_projection"):
        QRHSurfaceLoss(GRID.shape, np.ones(GRID.shape), pca_coef_weight=1.0)


def test_loss_serialises(data):
    _, info = data
    loss = make_surface_loss(GRID, LossConfig(pca_coef_weight=0.5), pca_info=info)
    back = QRHSurfaceLoss.from_config(loss.get_config())
    y = np.full((2, 60), 0.3, np.float32)
    p = y + np.linspace(0, 0.01, 60, dtype=np.float32)
    assert float(back(y, p)) == pytest.approx(float(loss(y, p)), rel=1e-6)


def test_small_model_overfits_small_batch(data):
    d, info = data
    keras.utils.set_random_seed(0)
    model = build_resmlp_pca_model(info, width=64, n_blocks=2, seed=0)
    compile_advanced_qrh_model(model, GRID, learning_rate=3e-3, sobolev_strike=0.1, sobolev_maturity=0.1)
    x = (2 * (d["X"][:32] - d["X"].min(0)) / (d["X"].max(0) - d["X"].min(0)) - 1).astype(np.float32)
    y = d["y_clean"][:32].astype(np.float32)
    base = 100 * np.sqrt(np.mean((y - y.mean(0)) ** 2))  # RMSE of the mean surface, vol points
    # 400 Adam steps on the same batch, as one epoch (Keras' per-epoch overhead dominates otherwise).
    model.fit(np.tile(x, (400, 1)), np.tile(y, (400, 1)), batch_size=32, epochs=1, verbose=0, shuffle=False)
    rmse = 100 * np.sqrt(np.mean((model.predict(x, verbose=0) - y) ** 2))
    # 32 surfaces, ~10k weights: memorisation must cut the error far below the mean-surface baseline
    # (a broken loss, gradient or reconstruction leaves it near the baseline).
    assert rmse < 0.1 * base, (rmse, base)


def test_missing_labels_are_masked_in_the_loss_and_metrics():
    # a NaN label (an option no path priced) adds nothing: the loss equals that of a label equal to the prediction
    from qrh_lib.surrogate.model import RMSEVolPoints, mae_vol_points

    rng = np.random.default_rng(3)
    y = rng.uniform(0.1, 0.5, (4, 60)).astype(np.float32)
    p = y + rng.normal(0, 0.01, y.shape).astype(np.float32)
    y_nan, y_fill = y.copy(), y.copy()
    for i, j in ((0, 0), (1, 30), (3, 59)):
        y_nan[i, j], y_fill[i, j] = np.nan, p[i, j]
    loss = make_surface_loss(default_grid(), LossConfig(sobolev_strike=0.0, sobolev_maturity=0.0))
    assert float(loss(y_nan, p)) == pytest.approx(float(loss(y_fill, p)), rel=1e-6)
    with_sobolev = make_surface_loss(default_grid(), LossConfig())
    assert np.isfinite(float(with_sobolev(y_nan, p)))
    known = np.isfinite(y_nan)
    assert float(mae_vol_points(y_nan, p)) == pytest.approx(100 * np.abs(p - y)[known].mean(), rel=1e-5)
    m = RMSEVolPoints()
    m.update_state(y_nan, p)
    assert float(m.result()) == pytest.approx(100 * np.sqrt(np.mean((p - y)[known] ** 2)), rel=1e-5)


def test_log_vols_network_ends_with_the_exponential_and_its_loss_compares_log_vols(data):
    # A PCA of log vols: the reconstruction layer is exp(b + c W), the PCA's own inverse; the loss's error is
    # 100 log(prediction / label), also with missing labels, and survives serialisation.
    d, _ = data
    info = fit_pca_components(d["y"], K=10, log_vols=True)
    model = build_resmlp_pca_model(info, width=16, n_blocks=1, seed=0)
    layer = get_reconstruction_layer(model)
    c = np.random.default_rng(0).standard_normal((20, 10))
    np.testing.assert_allclose(np.asarray(layer(c.astype(np.float32))), pca_inverse_transform(c, info), rtol=1e-5)
    loss = make_surface_loss(GRID, LossConfig(huber_delta=1000.0, sobolev_strike=0.0, sobolev_maturity=0.0),
                             model=model)
    assert loss.log_vols and make_surface_loss(GRID, LossConfig(), pca_info=info).log_vols
    y = np.full((1, 60), 0.3, np.float32)
    p = y * 1.02  # 2% too high everywhere: 100 log(1.02) = 1.98 "vol points" of log vol
    expected = 0.5 * (100 * np.log(1.02)) ** 2
    assert float(loss(y, p)) == pytest.approx(expected, rel=1e-4)
    y[0, :10] = np.nan  # missing labels add nothing
    assert float(loss(y, p)) == pytest.approx(expected * 50 / 60, rel=1e-4)
    assert float(QRHSurfaceLoss.from_config(loss.get_config())(y, p)) == pytest.approx(float(loss(y, p)), rel=1e-6)
