"""Black-Scholes prices and the implied-vol inversion."""

import numpy as np
import pytest

from qrh_lib.iv import NAN_REASONS, black_price, count_reasons, implied_total_vol, implied_vol


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


def test_black_price_limits():
    from scipy.stats import norm

    assert black_price(0.0, 0.2, True) == pytest.approx(norm.cdf(0.1) - norm.cdf(-0.1), rel=1e-12)
    assert black_price(-0.5, 1e-8, True) == pytest.approx(1 - np.exp(-0.5))  # intrinsic value
    assert black_price(0.3, 1e-8, False) == pytest.approx(np.exp(0.3) - 1)
