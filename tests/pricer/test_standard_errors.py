"""The labels' standard errors: the jackknife of the control-variate regression, and its guard where few paths pay.

The regression's own residual error (``errors="classic"``, the estimator before issue 20) is fitted on the pairs it
judges: where a payoff is reached by a few pairs only, a regression on controls that are nonzero on the same few
pairs passes through them and the error vanishes. The benchmark ``benchmarks/standard_errors.py`` measures both
estimators against the truth set at 512, 1,024 and 4,096 paths.
"""

import numpy as np
import pytest

from qrh_lib.grid import default_grid
from qrh_lib.pricer.config import MIN_PAYING_PAIRS
from qrh_lib.pricer.mc import MCConfig, QRHEngine
from qrh_lib.pricer.pricing import ERRORS, _pair_units, cv_estimate, otm_payoffs, surface_from_paths
from qrh_lib.pricer.truth import load_truth_set

#: Four states of the truth set, none heavy-tailed (their spot's sample mean is within 4 standard errors of 1 over
#: 14,336 paths), where the classic errors of a 1,024-path label with seed 1 put deep out-of-the-money points
#: 8 to 56 of those errors away from the truth set (10 or fewer pairs paying).
STATES = [45, 50, 78, 123]
SEED = 1


def test_jackknife_errors_are_the_leave_one_out_spread_of_the_estimate():
    rng = np.random.default_rng(0)
    n = 40
    C = [rng.standard_normal(n), rng.standard_exponential(n) - 1.0]
    y = 0.5 + C[0] + 0.3 * C[1] ** 2 + 0.2 * rng.standard_normal(n)
    est, se = cv_estimate(y, C, errors="jackknife")
    keep = ~np.eye(n, dtype=bool)
    loo = np.array([cv_estimate(y[keep[i]], [c[keep[i]] for c in C])[0] for i in range(n)])
    np.testing.assert_allclose(est, cv_estimate(y, C)[0], rtol=1e-12)  # the same estimate as the classic one
    np.testing.assert_allclose(se, np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)), rtol=1e-10)
    # without controls, the jackknife is the plain standard error
    np.testing.assert_allclose(cv_estimate(y, [], errors="jackknife")[1], y.std(ddof=1) / np.sqrt(n), rtol=1e-12)
    with pytest.raises(ValueError, match="errors"):
        cv_estimate(y, C, errors="bootstrap")


def test_label_errors_hold_against_the_truth_set_where_few_paths_pay():
    """Labels of four truth-set states at 1,024 paths against the truth set's low-noise values: z-scores use both
    standard errors. A correct pricer puts one of these 240 points beyond 6 standard errors with a chance of about
    240 x 2e-9. The classic errors put four there (7.8 to 56 standard errors, where 3 to 13 pairs pay: the guard's
    region; the robust errors put the same labels within 1), while the robust ones keep the control variates'
    variance reduction elsewhere (their median is 6% above the classic one)."""
    truth = load_truth_set()
    grid = default_grid()
    st = QRHEngine(grid, MCConfig(n_paths=1024, batch_size=len(STATES))).simulate(
        truth["X"][STATES], truth["index"][STATES], seed=SEED)
    res = {e: surface_from_paths(st, grid, errors=e) for e in ERRORS}
    z = {e: (r.iv - truth["y"][STATES]) / np.hypot(r.iv_se, truth["iv_se"][STATES]) for e, r in res.items()}
    assert np.all(np.isfinite(z["robust"]) == np.isfinite(z["classic"]))
    assert np.nanmax(np.abs(z["robust"])) < 6, np.nanmax(np.abs(z["robust"]))
    bad = np.abs(z["classic"]) > 6
    assert bad.sum() >= 2, np.nanmax(np.abs(z["classic"]))
    paying = (_pair_units(otm_payoffs(st, grid), True) > 0).sum(-1)
    assert np.all(paying[bad] < MIN_PAYING_PAIRS)  # where the guard applies
    # the variance reduction is kept where enough pairs pay: the robust errors are the classic ones within a
    # quarter in the median (the jackknife adds the regression's own estimation error)
    many = paying >= MIN_PAYING_PAIRS
    ratio = np.nanmedian(res["robust"].iv_se[many] / res["classic"].iv_se[many])
    assert 1.0 <= ratio < 1.25, ratio
