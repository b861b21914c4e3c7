"""Calibration by Monte Carlo alone: it fits a smile of its own paths, stays in the stable domain, and refuses bad
bounds."""

import numpy as np
import pytest

from qrh_lib.data import sample_inputs
from qrh_lib.grid import sqrt_t_grid
from qrh_lib.params import COL_A, COL_B, COL_C, COL_LAMBDA, COL_Z0, RZ_BOX, Inputs
from qrh_lib.pricer.config import MCConfig
from qrh_lib.pricer.mc_calibration import mc_calibrate
from qrh_lib.pricer.moments import feedback_ratio
from qrh_lib.pricer.pricing import price_surfaces

GRID = sqrt_t_grid((30, 120), (-0.3, -0.1, 0.0, 0.15))
CFG = MCConfig(n_paths=256)
BOX = np.c_[RZ_BOX.lo, RZ_BOX.hi]


def test_fits_a_smile_priced_on_its_own_paths_from_a_distant_start():
    """On common random numbers the target is reachable exactly: the fit's error falls from several vol points to
    a small fraction of the paths' own noise (whose standard error is printed beside it)."""
    x_true = sample_inputs(1, RZ_BOX, seed=3, domain="stable")[0]
    res = price_surfaces(x_true[None], GRID, CFG, seed=5)
    x0 = x_true.copy()
    x0[COL_LAMBDA] = 0.6 if Inputs(x_true).lam > 1.5 else 2.4  # lambda across the box
    x0[COL_C] = 0.02 if Inputs(x_true).c < 0.015 else 0.005
    start = price_surfaces(x0[None], GRID, CFG, seed=5).iv[0]
    start_err = 100 * np.sqrt(np.nanmean((start - res.iv[0]) ** 2))
    fit = mc_calibrate(res.iv[0], GRID, x0, BOX, config=CFG, seed=5, max_nfev=25)
    noise = 100 * np.nanmedian(res.iv_se[0])
    assert start_err > 1.0, start_err
    assert fit.rmse_pts < 0.1 * noise, (fit.rmse_pts, noise, fit.message)
    assert fit.n_missing == 0
    assert feedback_ratio(fit.x[None])[0] <= 0.9 + 1e-9


def test_a_wide_box_is_searched_inside_the_stable_domain():
    """Bounds wider than the training box (lambda down to 0.05, z0 to +-1.5): the state found is stable and in them."""
    wide = BOX.copy()
    wide[COL_LAMBDA] = (0.05, 6.0)
    wide[COL_Z0] = (-1.5, 1.5)
    x0 = sample_inputs(1, RZ_BOX, seed=4, domain="stable")[0]
    target = np.full(GRID.size, 0.35)  # a flat smile far above the start's
    fit = mc_calibrate(target, GRID, x0, wide, config=CFG, seed=1, max_nfev=6)
    assert np.all(fit.x >= wide[:, 0] - 1e-12) and np.all(np.delete(fit.x <= wide[:, 1] + 1e-12, COL_A))
    assert fit.feedback_ratio <= 0.9 and feedback_ratio(fit.x[None], exact=True)[0] <= 0.9 + 1e-6


@pytest.mark.parametrize(("change", "message"), [
    (lambda b: b.__setitem__((COL_LAMBDA, 1), 12.0),
     r"bounds of lambda \[0.5, 12.0\] leave the engine's range \[0.0, 10.0\]"),
    (lambda b: b.__setitem__((COL_B, 0), 0.6), "lower < upper"),
])
def test_bad_bounds_are_refused_with_the_input_named(change, message):
    b = BOX.copy()
    change(b)
    with pytest.raises(ValueError, match=message):
        mc_calibrate(np.full(GRID.size, 0.2), GRID, RZ_BOX.lo, b, config=CFG)


def test_a_target_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="target_iv has 3 values, the grid 8"):
        mc_calibrate(np.full(3, 0.2), GRID, RZ_BOX.lo, BOX, config=CFG)
