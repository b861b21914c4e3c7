"""The factor kernel against the exact fractional kernel, and the implied-vol inversion."""

import numpy as np
import pytest
from scipy.integrate import quad

from qrh_lib.iv import NAN_REASONS, black_price, count_reasons, implied_total_vol, implied_vol
from qrh_lib.kernel import RZ_X_STAR, fractional_kernel, geometric_nodes, l2_error


def test_nodes_match_rosenbaum_zhang():
    k = geometric_nodes()  # alpha = 0.51, n = 10, x = 3.92
    # values quoted in qrh-model.md, given there to 3-4 significant digits
    assert k.gamma[0] == pytest.approx(2.48e-3, rel=2e-3)
    assert k.gamma[-1] == pytest.approx(542.3, rel=1e-4)
    assert k.c[0] == pytest.approx(0.0218, rel=2e-3)
    assert k.c[-1] == pytest.approx(9.00, rel=1e-3)
    assert np.all(np.diff(k.gamma) > 0) and np.all(np.diff(k.c) > 0)


@pytest.mark.parametrize("t_min,T", [(0.0, 0.1), (1 / 365, 1.0)])
def test_l2_error_closed_form_matches_quadrature(t_min, T):
    k = geometric_nodes()
    # substitution t = t_min + (T - t_min) s^50 removes the t^(2 alpha - 2) singularity at 0
    span = T - t_min

    def f(s):
        t = t_min + span * s**50
        return (k(t) - fractional_kernel(t)) ** 2 * 50 * span * s**49

    val, _ = quad(f, 0, 1, limit=500, epsabs=1e-13)
    assert l2_error(k, T, t_min) == pytest.approx(np.sqrt(val), rel=1e-6)


def test_kernel_error_decreases_with_n():
    errs = [l2_error(geometric_nodes(n=n), T=1.0, t_min=1 / 365) for n in sorted(RZ_X_STAR)]
    assert all(a > b for a, b in zip(errs, errs[1:], strict=False)), errs
    t = np.geomspace(1 / 365, 1.0, 50)
    sup = [np.max(np.abs(geometric_nodes(n=n)(t) / fractional_kernel(t) - 1)) for n in sorted(RZ_X_STAR)]
    assert all(a > b for a, b in zip(sup, sup[1:], strict=False)), sup
    assert sup[1] < 0.10  # n = 10: within 10% of the exact kernel from a day to a year


def test_kernel_rejects_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        geometric_nodes(alpha=0.4)
    with pytest.raises(ValueError, match="x"):
        geometric_nodes(n=7)


def test_iv_round_trip_machine_precision_including_wings():
    rng = np.random.default_rng(0)
    k = rng.uniform(-3, 3, 50_000)
    s = np.exp(rng.uniform(np.log(1e-3), np.log(5.0), k.size))
    p = black_price(k, s, k >= 0)
    keep = p > 1e-300  # prices that are normal doubles; below that the price itself has no digits left
    s2, reason = implied_total_vol(k[keep], p[keep])
    assert np.all(reason == -1)
    rel = np.abs(s2 / s[keep] - 1)
    # worst case is near the money at tiny s, where the price's own rounding (1e-16 / s) limits the answer
    assert rel.max() < 1e-11
    assert np.median(rel) < 1e-15
    assert (p[keep] < 1e-100).sum() > 1000  # the sample does reach deep into the wings


def test_iv_agrees_with_lets_be_rational():
    lbr = pytest.importorskip("py_lets_be_rational")
    rng = np.random.default_rng(1)
    k = rng.uniform(-1.5, 1.5, 300)
    s = np.exp(rng.uniform(np.log(0.01), np.log(3.0), k.size))
    p = black_price(k, s, k >= 0)
    ours, _ = implied_total_vol(k, p)
    theirs = np.array([lbr.implied_volatility_from_a_transformed_rational_guess(pi, 1.0, np.exp(ki), 1.0,
                                                                                1.0 if ki >= 0 else -1.0)
                       for pi, ki in zip(p, k, strict=True)])
    ok = p > 1e-250
    assert np.max(np.abs(ours[ok] - theirs[ok]) / theirs[ok]) < 1e-10


def test_iv_nan_with_reason():
    k = np.array([0.1, -0.1, 0.1, 0.0, np.nan, 0.2])
    p = np.array([0.0, -1e-3, 1.5, 0.04, 0.01, 1e-12])
    iv, reason = implied_vol(k, 0.5, p)
    assert [NAN_REASONS[r] if r >= 0 else "ok" for r in reason] == [
        "price_not_positive", "price_not_positive", "price_above_upper_bound", "ok", "nan_input", "ok"]
    assert np.isnan(iv[[0, 1, 2, 4]]).all() and np.isfinite(iv[[3, 5]]).all()
    assert count_reasons(reason) == {"nan_input": 1, "price_not_positive": 2, "price_above_upper_bound": 1,
                                     "no_convergence": 0}
    # a put can never be worth more than its strike
    iv, reason = implied_vol(np.array([-0.1]), 1.0, np.array([np.exp(-0.1) * 1.0001]))
    assert np.isnan(iv[0]) and NAN_REASONS[reason[0]] == "price_above_upper_bound"
