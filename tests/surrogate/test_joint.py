"""The SPX and VIX surrogates seen as one, and their joint calibration."""

import numpy as np
import pytest

from qrh_lib.pricer.vix import vix_grid
from qrh_lib.surrogate.config import TrainConfig
from qrh_lib.surrogate.joint import JointSurrogate, calibrate_joint, calibrate_joint_quotes
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
