"""Calibration through the surrogate: fit, parameter recovery where identifiable, options."""

import numpy as np
import pytest

from qrh_lib.calibration import _Objective, calibrate, calibrate_many, identifiability
from qrh_lib.training import read_dataset_folder

# Tight L-BFGS-B settings for recovery tests (the library defaults stop at fits far below MC noise).
TIGHT = {"maxiter": 500, "ftol": 1e-14, "gtol": 1e-9}


@pytest.fixture(scope="module")
def targets(synthetic_dataset_dir, tiny_surrogate):
    X = read_dataset_folder(synthetic_dataset_dir)["test_X"][:10]
    return X, tiny_surrogate.predict_numpy(X)


def _u(x, box):
    return 2 * (np.asarray(x) - box.lo) / (box.hi - box.lo) - 1


def test_recovers_fit_of_surrogate_surfaces(tiny_surrogate, targets):
    X, T = targets
    res = calibrate_many(tiny_surrogate, T[:6], seed=0, n_starts=3, **TIGHT)
    fits = np.array([r.fit_rmse_pts for r in res])
    # The target is the surrogate's own float64 output, so the global minimum is 0; L-BFGS-B
    # reaches ~1e-8 vol points. 1e-3 vol points is 100x below any MC noise and allows one start
    # in six to end in a shallow local minimum only if it is still an excellent fit.
    assert np.median(fits) < 1e-5 and np.mean(fits < 1e-3) >= 5 / 6, fits
    for r in res:
        assert r.x.shape == (15,) and np.all(r.x >= tiny_surrogate.box.lo) and np.all(r.x <= tiny_surrogate.box.hi)
        assert len(r.starts) == 3 and r.iterations > 0 and r.seconds > 0
        np.testing.assert_allclose(r.iv, tiny_surrogate.predict_numpy(r.x)[0], atol=1e-12)


def test_default_settings_fit_far_below_mc_noise(tiny_surrogate, targets):
    # Defaults trade the last digits for speed: on the surrogate's own surfaces the fit must still be
    # below 0.05 vol points, a fraction of the ~0.1-1 vol point MC noise of the labels.
    _, T = targets
    fits = [calibrate(tiny_surrogate, t, seed=i).fit_rmse_pts for i, t in enumerate(T[6:10])]
    assert max(fits) < 0.05, fits
    joint = calibrate(tiny_surrogate, T[6], seed=0, joint=True, n_starts=3)
    assert joint.fit_rmse_pts < 0.05 and len(joint.starts) == 3


def test_only_K_input_directions_are_identifiable(tiny_surrogate, targets):
    X, _ = targets
    info = identifiability(tiny_surrogate, X[0])
    # PCA head with K = 8 coefficients: rank of the 60 x 15 Jacobian is at most 8.
    assert info["rank"] <= tiny_surrogate.pca_info["K"] < 15
    assert info["singular_values"][0] > 0


def test_recovers_model_parameters_with_state_fixed(tiny_surrogate, targets):
    # With z0 fixed (equal bounds), the 5 model inputs are locally identifiable (Jacobian of rank
    # 5, smallest singular value ~0.3 vol points per unit u). At a fit of 1e-4 vol points the
    # linearised parameter error is <= 1e-4 * sqrt(60) / 0.25 ~ 3e-3 in u (range 2): tolerance 5e-3.
    X, T = targets
    box = tiny_surrogate.box
    ok = 0
    for i in range(8):
        b = np.column_stack([box.lo, box.hi])
        b[5:] = X[i, 5:, None]
        r = calibrate(tiny_surrogate, T[i], bounds=b, seed=i, n_starts=4, **TIGHT)
        np.testing.assert_array_equal(r.x[5:], X[i, 5:])
        if r.fit_rmse_pts < 1e-4:
            ok += 1
            np.testing.assert_allclose(_u(r.x, box)[:5], _u(X[i], box)[:5], atol=5e-3)
    assert ok >= 7  # at most one target may end in a local minimum


def test_nan_targets_get_zero_weight(tiny_surrogate, targets):
    _, T = targets
    t = T[3].copy()
    t[[0, 7, 33]] = np.nan
    r = calibrate(tiny_surrogate, t, seed=1, **TIGHT)
    assert np.isfinite(r.fit_rmse_pts) and r.fit_rmse_pts < 1e-3
    with pytest.raises(ValueError, match="positive weight"):
        calibrate(tiny_surrogate, np.full(60, np.nan))
    with pytest.raises(ValueError, match="weights"):
        calibrate(tiny_surrogate, T[3], weights=-np.ones(60))


def test_weights_change_the_fit(tiny_surrogate, targets):
    # A target the surrogate cannot reproduce exactly: a kink added on the puts. Weighting the
    # puts x100 must fit them better than equal weights do.
    _, T = targets
    t = T[2].copy()
    t[:18] += 0.01
    w = np.ones(60)
    w[:18] = 100.0
    eq = calibrate(tiny_surrogate, t, seed=0)
    wt = calibrate(tiny_surrogate, t, weights=w, seed=0)
    err = lambda r: np.sqrt(np.mean((r.iv[:18] - t[:18]) ** 2))  # noqa: E731
    assert err(wt) < err(eq)


def test_seeded_and_backends_agree(tiny_surrogate, targets):
    _, T = targets
    a = calibrate(tiny_surrogate, T[4], seed=3)
    b = calibrate(tiny_surrogate, T[4], seed=3)
    np.testing.assert_array_equal(a.x, b.x)
    box = tiny_surrogate.box
    obj_np = _Objective(tiny_surrogate, T[4], np.ones(60), box.lo, box.hi, "numpy")
    obj_tf = _Objective(tiny_surrogate, T[4], np.ones(60), box.lo, box.hi, "tf")
    u = np.random.default_rng(0).uniform(-1, 1, 15)
    (f1, g1), (f2, g2) = obj_np(u), obj_tf(u)
    # f is O(1-100) squared vol points; float32 TF vs float64 NumPy agree to ~1e-5 relative.
    assert f2 == pytest.approx(f1, rel=1e-4)
    np.testing.assert_allclose(g2, g1, rtol=1e-3, atol=1e-4 * np.abs(g1).max())
    r = calibrate(tiny_surrogate, T[4], seed=3, backend="tf", n_starts=1)
    assert r.fit_rmse_pts < 0.01  # float32 objective: converges less tightly, still far below MC noise


def test_calibration_searches_the_stable_domain_only(tiny_surrogate):
    from qrh_lib.domain import Domain
    from qrh_lib.surrogate import QRHSurrogate

    s = tiny_surrogate
    stable = QRHSurrogate(s.model, s.pca_info, s.x_scale, s.x_min, s.grid, s.box, domain=Domain(s.box))
    # the objective's gradient carries the chain rule through the domain's feedback range a_max(lambda, eta)
    x_mid = 0.5 * (s.box.lo + s.box.hi)
    obj = _Objective(stable, s.predict_numpy(x_mid)[0] + 0.01, np.ones(60), s.box.lo, s.box.hi, "numpy")
    u = np.random.default_rng(1).uniform(-1, 1, 15)
    f, g = obj(u)
    num = np.array([(obj(u + e)[0] - obj(u - e)[0]) / 2e-6 for e in 1e-6 * np.eye(15)])
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-7 * np.abs(g).max())
    assert stable.domain.contains(obj.x_of(np.random.default_rng(2).uniform(-1, 1, (500, 15)))).all()
    # a target made at the box's most explosive corner is fitted by a state inside the domain
    corner = s.box.hi.copy()
    res = calibrate(stable, s.predict_numpy(corner)[0], seed=0)
    assert stable.domain.contains(res.x)[0] and stable.domain.feedback_ratio(res.x)[0] > 0.8
    assert np.isfinite(stable.predict(res.x)).all()  # the surrogate itself accepts what calibration returns
