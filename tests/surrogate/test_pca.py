"""PCA of surfaces: exact round trip, projections, and the noise-based choice of K."""

import numpy as np
import pytest

from qrh_lib.surrogate.pca import (
    choose_n_components,
    fit_pca_components,
    pca_from_arrays,
    pca_inverse_transform,
    pca_reconstruction_errors,
    pca_to_arrays,
    pca_transform_targets,
    reconstruction_affine,
)
from qrh_lib.synthetic import make_synthetic_dataset


@pytest.fixture(scope="module")
def surfaces():
    return make_synthetic_dataset(400, seed=3)


@pytest.mark.parametrize("use_scaler", [True, False])
def test_round_trip_full_rank_is_exact(surfaces, use_scaler):
    y = surfaces["y"]
    info = fit_pca_components(y, K=60, use_scaler=use_scaler)
    assert info["P"].shape == (60, 60) and info["mu"].shape == (60,)
    # P orthonormal and the round trip exact to float64 round-off (vols are O(1)).
    np.testing.assert_allclose(info["P"].T @ info["P"], np.eye(60), atol=1e-12)
    np.testing.assert_allclose(pca_inverse_transform(pca_transform_targets(y, info), info), y, atol=1e-12)
    assert info["total_explained"] == pytest.approx(1.0, abs=1e-12)


def test_truncated_is_orthogonal_projection(surfaces):
    y = surfaces["y"]
    info = fit_pca_components(y, K=5, use_scaler=True)
    c = pca_transform_targets(y, info)
    assert c.shape == (400, 5)
    rec = pca_inverse_transform(c, info)
    # Projecting a reconstruction again changes nothing (idempotent).
    np.testing.assert_allclose(pca_inverse_transform(pca_transform_targets(rec, info), info), rec, atol=1e-12)
    # The affine form b + c W is the same map.
    W, b = reconstruction_affine(info)
    np.testing.assert_allclose(b + c @ W, rec, atol=1e-12)
    ratios = info["explained_variance_ratio"]
    assert np.all(np.diff(ratios) <= 0) and 0.9 < info["total_explained"] < 1.0


def test_explained_grows_and_error_shrinks_with_K(surfaces):
    e = pca_reconstruction_errors(surfaces["y"][:300], surfaces["y"][300:], surfaces["iv_se"][300:], Ks=[1, 3, 6])
    assert np.all(np.diff(e["total_explained"]) > 0)
    assert np.all(np.diff(e["rmse_pts"]) < 0)


def test_choose_K_finds_the_signal_rank_under_noise():
    # Rank-4 signal (each component at least 1 vol point) plus 0.2 vol point noise: the raw
    # reconstruction RMSE plateaus at the noise (~0.2 pts, never below 0.25 x 0.2), but the
    # noise-corrected signal RMSE drops to ~0 exactly at K = 4.
    rng = np.random.default_rng(0)
    n, r, se = 4000, 4, 0.002
    basis = np.linalg.qr(rng.standard_normal((60, r)))[0].T  # (r, 60) orthonormal
    coeff = rng.standard_normal((n, r)) * np.array([0.3, 0.2, 0.1, 0.05])
    y = 0.3 + coeff @ basis + se * rng.standard_normal((n, 60))
    e = pca_reconstruction_errors(y[:3000], y[3000:], np.full((1000, 60), se), use_scaler=False)
    assert choose_n_components(e, se, fraction=0.25) == r
    row = e.set_index("K").loc[r]
    assert row["rmse_pts"] > 0.25 * 100 * se  # the raw error alone would never pick r
    assert row["noise_floor_pts"] == pytest.approx(row["rmse_pts"], rel=0.05)


def test_serialisation_round_trip(surfaces):
    info = fit_pca_components(surfaces["y"], K=7)
    arrays, meta = pca_to_arrays(info)
    back = pca_from_arrays(arrays, meta)
    c = pca_transform_targets(surfaces["y"], info)
    np.testing.assert_array_equal(pca_inverse_transform(c, back), pca_inverse_transform(c, info))
    np.testing.assert_allclose(back["scaler"].transform(surfaces["y"]), info["scaler"].transform(surfaces["y"]))


def test_bad_K_raises(surfaces):
    with pytest.raises(ValueError, match="K must be"):
        fit_pca_components(surfaces["y"], K=61)


def test_log_vols_pca_reconstructs_vols_and_survives_serialisation(surfaces):
    y = surfaces["y"]
    info = fit_pca_components(y, K=60, log_vols=True)
    assert info["log_vols"]
    c = pca_transform_targets(y, info)
    # Full rank: the round trip through log vols is exact; the affine map reconstructs the log vols.
    np.testing.assert_allclose(pca_inverse_transform(c, info), y, rtol=1e-12)
    W, b = reconstruction_affine(info)
    np.testing.assert_allclose(b + c @ W, np.log(y), atol=1e-12)
    back = pca_from_arrays(*pca_to_arrays(info))
    assert back["log_vols"]
    np.testing.assert_array_equal(pca_inverse_transform(c, back), pca_inverse_transform(c, info))
    low = fit_pca_components(y, K=3, log_vols=True)  # truncated: positive surfaces whatever the coefficients
    assert np.all(pca_inverse_transform(10 * pca_transform_targets(y, low), low) > 0)


def test_log_vols_refuses_non_positive_vols(surfaces):
    y = surfaces["y"].copy()
    y[5, 7] = 0.0
    with pytest.raises(ValueError, match="y_train_raw: log_vols needs positive vols"):
        fit_pca_components(y, K=5, log_vols=True)
