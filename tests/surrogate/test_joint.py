"""The SPX and VIX surrogates seen as one, and their joint calibration."""

import hashlib

import numpy as np
import pytest

from qrh_lib.pricer.vix import vix_grid
from qrh_lib.surrogate.config import TrainConfig
from qrh_lib.surrogate.joint import JointSurrogate, calibrate_joint, calibrate_joint_many, calibrate_joint_quotes
from qrh_lib.surrogate.quotes import Quotes, interpolate_surface
from qrh_lib.surrogate.training import train_from_folder
from qrh_lib.synthetic import write_synthetic_dataset

CFG = TrainConfig.from_flat({"n_components": 8, "width": 32, "n_blocks": 2, "epochs": 15, "batch_size": 64,
                             "learning_rate": 3e-3, "seed": 1})


@pytest.fixture(scope="module")
def second_surrogate(tmp_path_factory):
    """A surrogate of other synthetic surfaces on the VIX grid, on the same inputs as the shared tiny surrogate
    (the synthetic design depends on the seed only)."""
    path = write_synthetic_dataset(tmp_path_factory.mktemp("vix") / "data_vix", n_train=1000, n_val=200, n_test=200,
                                   seed=0, grid=vix_grid())
    return train_from_folder(path, CFG)[0]


def test_joint_calibration_recovers_a_fit_of_both_surfaces(tiny_surrogate, second_surrogate):
    joint = JointSurrogate(tiny_surrogate, second_surrogate)
    x = 0.5 * (tiny_surrogate.box.lo + tiny_surrogate.box.hi)
    x[2] = 0.3 * tiny_surrogate.box.hi[2]  # a feedback well inside the domain
    spx, vix = joint.predict(x[None, :])
    assert spx.shape == (1, 60) and vix.shape == (1, vix_grid().size)
    res = calibrate_joint(joint, spx[0], vix[0], n_starts=2, n_candidates=512)
    assert res.iv.shape == (60 + vix_grid().size,)
    assert res.fit_rmse_pts < 0.05  # both surfaces fitted far below Monte Carlo noise
    np.testing.assert_allclose(res.iv, np.concatenate([spx[0], vix[0]]), atol=2e-3)
    # the stacked Jacobian is the two networks' rows stacked
    xs = joint.scale_inputs(x)[None, :]
    y, J = joint.numpy_net.jacobian_row(xs)
    J1, J2 = tiny_surrogate.numpy_net.jacobian_row(xs)[1], second_surrogate.numpy_net.jacobian_row(xs)[1]
    np.testing.assert_array_equal(J, np.vstack([J1, J2]))


def test_joint_surrogate_needs_the_same_inputs(tiny_surrogate, tmp_path):
    other = write_synthetic_dataset(tmp_path / "other", n_train=300, n_val=60, n_test=60, seed=5, grid=vix_grid())
    with pytest.raises(ValueError, match="scale their inputs differently"):
        JointSurrogate(tiny_surrogate, train_from_folder(other, CFG.replace_flat(epochs=1))[0])
    with pytest.raises(ValueError, match="spx_iv has 3 vols"):
        calibrate_joint(JointSurrogate(tiny_surrogate, tiny_surrogate), np.ones(3), np.ones(60))


def test_joint_calibration_to_quotes_off_both_grids(tiny_surrogate, second_surrogate):
    joint = JointSurrogate(tiny_surrogate, second_surrogate)
    x = 0.5 * (tiny_surrogate.box.lo + tiny_surrogate.box.hi)
    x[2] = 0.3 * tiny_surrogate.box.hi[2]
    spx, vix = joint.predict(x[None, :])
    T = np.array([45, 75, 120]) / 365
    quotes = {}
    for name, sur, surf, m in (("spx", tiny_surrogate, spx[0], (-0.3, 0.0, 0.2)), ("vix", second_surrogate, vix[0],
                                                                                (-0.2, 0.1, 0.6))):
        k = (np.array(m)[:, None] * np.sqrt(T)[None, :]).ravel()
        t = np.tile(T, len(m))
        quotes[name] = Quotes(k, t, interpolate_surface(sur, surf, k, t))
    res = calibrate_joint_quotes(joint, quotes["spx"], quotes["vix"], n_starts=2, n_candidates=512)
    assert res.fit_rmse_pts < 0.05
    np.testing.assert_allclose(res.iv, np.concatenate([spx[0], vix[0]]), atol=5e-3)


def _joint_calibrations(joint):
    """A joint calibration to both grids' surfaces (weighted, a point missing) and one to quotes off both grids."""
    x = 0.5 * (joint.box.lo + joint.box.hi)
    x[2] = 0.3 * joint.box.hi[2]
    spx, vix = (a[0] for a in joint.predict(x[None, :]))
    spx[5] = np.nan
    on_grids = calibrate_joint(joint, spx, vix, spx_weights=np.linspace(1.0, 2.0, spx.size),
                               vix_weights=np.full(vix.size, 0.5), seed=1, n_starts=3, n_candidates=512)
    T = np.array([45, 75, 120]) / 365
    quotes = []
    for sur, surf in ((joint.spx, spx), (joint.vix, vix)):
        k = (np.array([-0.2, 0.0, 0.1])[:, None] * np.sqrt(T)[None, :]).ravel()
        t = np.tile(T, 3)
        iv = interpolate_surface(sur, np.nan_to_num(surf, nan=0.2), k, t)
        quotes.append(Quotes(k, t, iv, bid=iv - 0.005, ask=iv + 0.01))
    return [on_grids, calibrate_joint_quotes(joint, *quotes, seed=2, n_candidates=512)]


#: SHA-1 of the inputs, surfaces, fits and evaluation counts of :func:`_joint_calibrations`, recorded before the
#: calibration was split into pieces (the tiny surrogates of this file; skipped for others, see the fingerprint).
JOINT_REFERENCE = {"network": "914d54c31fc51b1c", "calibrations": "78417393ed46cd63"}


def test_joint_calibration_numbers_are_unchanged(tiny_surrogate, second_surrogate):
    joint = JointSurrogate(tiny_surrogate, second_surrogate)
    network = hashlib.sha1(np.concatenate(joint.predict(joint.box.lo[None, :] * 0.5 + joint.box.hi * 0.5), axis=1)
                           .tobytes()).hexdigest()[:16]
    if network != JOINT_REFERENCE["network"]:
        pytest.skip(f"the tiny surrogates differ from those the reference was recorded with ({network})")
    digest = hashlib.sha1(b"".join(np.r_[r.x, r.iv, r.fit_rmse_pts, r.n_evaluations, r.iterations].tobytes()
                                   for r in _joint_calibrations(joint))).hexdigest()[:16]
    assert digest == JOINT_REFERENCE["calibrations"]


def test_many_joint_calibrations_and_their_tables(tiny_surrogate, second_surrogate):
    from qrh_lib.surrogate.calibration_tables import joint_fit_at_quotes, joint_fit_table
    from qrh_lib.surrogate.quotes import quote_points, quotes_from_surface

    joint = JointSurrogate(tiny_surrogate, second_surrogate)
    X = joint.box.lo + np.linspace(0.3, 0.6, 3)[:, None] * (joint.box.hi - joint.box.lo)
    X[:, 2] = 0.3 * joint.box.hi[2]
    spx, vix = joint.predict(X)
    results = calibrate_joint_many(joint, spx, vix, vix_weights=np.full(vix.shape[1], 0.5), seed=2, n_candidates=512)
    for i, r in enumerate(results):  # one bank, built first: the same inputs as one calibration at a time
        alone = calibrate_joint(joint, spx[i], vix[i], vix_weights=np.full(vix.shape[1], 0.5), seed=2, n_candidates=512)
        np.testing.assert_array_equal(r.x, alone.x)
    table = joint_fit_table(joint, results, spx, vix)
    assert list(table.columns) == ["ms", "fit_spx_pts", "fit_vix_pts", "evaluations"] and len(table) == 3
    assert (table["fit_spx_pts"] < 0.05).all() and (table["fit_vix_pts"] < 0.05).all()
    s_iv, v_iv = joint.split(results[0].iv)
    np.testing.assert_array_equal(np.concatenate([s_iv, v_iv]), results[0].iv)
    assert s_iv.shape == (60,) and v_iv.shape == (vix_grid().size,)
    T = [0.15, 0.3]
    quotes = [quotes_from_surface(quote_points(g, T, (0.2, 0.5, 0.8)), np.full(6, 0.3)) for g in (joint.spx.grid,
                                                                                                  joint.vix.grid)]
    fit = joint_fit_at_quotes(joint, results[0].iv, *quotes)
    assert list(fit.index) == [(u, e) for u in ("SPX", "VIX") for e in ("55 d", "110 d", "all")]
    with pytest.raises(ValueError, match="the same number of targets"):
        calibrate_joint_many(joint, spx, vix[:2])
