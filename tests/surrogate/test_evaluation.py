"""Evaluation metrics on known arrays, buckets, MC-noise ratios and static-arbitrage checks."""

import json

import numpy as np
import pytest

from qrh_lib.grid import default_grid
from qrh_lib.surrogate.evaluation import (
    bucket_metrics,
    butterfly_violations,
    calendar_violations,
    error_maps,
    evaluate_surrogate,
    mc_noise_ratio,
    regression_metrics,
    residual_statistics,
    static_arbitrage_report,
)
from qrh_lib.synthetic import make_synthetic_dataset

GRID = default_grid()


def test_regression_metrics_known_values():
    t = np.array([[0.2, 0.3], [0.4, 0.5]])
    p = t + np.array([[0.01, -0.02], [0.0, 0.03]])
    m = regression_metrics(t, p)
    assert m["mae_pts"] == pytest.approx(1.5)
    assert m["rmse_pts"] == pytest.approx(np.sqrt((1 + 4 + 0 + 9) / 4))
    assert m["max_pts"] == pytest.approx(3.0) and m["median_pts"] == pytest.approx(1.5)
    assert m["bias_pts"] == pytest.approx(0.5)
    assert m["p95_pts"] == pytest.approx(np.percentile([1, 2, 0, 3], 95))
    ss_tot = np.sum((t - 0.35) ** 2)
    assert m["r2"] == pytest.approx(1 - 0.0014 / ss_tot)
    assert m["max_rel_pct"] == pytest.approx(100 * 0.02 / 0.3)
    assert regression_metrics(t, t)["r2"] == 1.0
    with pytest.raises(ValueError):
        regression_metrics(t, p[:1])


def test_error_maps_locate_the_error():
    t = np.full((3, 60), 0.3)
    p = t.copy()
    p[:, 2 * 6 + 4] += 0.01  # strike row 2, maturity column 4
    maps = error_maps(t, p, GRID)
    assert maps["mae"].shape == (10, 6) and maps["mae"][2, 4] == pytest.approx(1.0)
    assert maps["mae"].sum() == pytest.approx(1.0) and maps["bias"][2, 4] == pytest.approx(1.0)


def test_mc_noise_ratio_at_the_noise_level():
    # Labels = truth + N(0, se^2); a perfect network (pred = truth) has RMSE / RMS SE = 1 and an
    # estimated error against the truth of ~0. With 60k points the ratio is within ~1% of 1.
    d = make_synthetic_dataset(1000, seed=2)
    r = mc_noise_ratio(d["y"], d["y_clean"], d["iv_se"], GRID)
    assert r["rmse_over_rms_se"] == pytest.approx(1.0, abs=0.02)
    assert r["frac_within_1.96se"] == pytest.approx(0.95, abs=0.01)
    assert r["rmse_vs_truth_est_pts"] < 0.3 * r["rms_se_pts"]
    assert r["ratio_map"].shape == (10, 6)
    worse = mc_noise_ratio(d["y"], d["y_clean"] + 2 * d["iv_se"], d["iv_se"])
    assert worse["rmse_over_rms_se"] == pytest.approx(np.sqrt(5), abs=0.05)  # sqrt(1 + 2^2)
    assert worse["rmse_vs_truth_est_pts"] == pytest.approx(2 * worse["rms_se_pts"], rel=0.03)


def test_bucket_metrics_cover_the_grid():
    d = make_synthetic_dataset(50, seed=1)
    df = bucket_metrics(d["y"], d["y_clean"], GRID, iv_se=d["iv_se"])
    n = dict(zip(df["bucket"], df["n_points"], strict=True))
    assert n["ATM"] + n["OTM put"] + n["OTM call"] == 60 and n["short tenor"] + n["long tenor"] == 60
    assert n["OTM put x short"] + n["OTM put x long"] == n["OTM put"] == 5 * 6  # m < -0.05: 5 strike rows
    assert {"r2", "rmse_pts", "mae_pts", "max_pts", "p95_pts", "rmse_over_rms_se"} <= set(df.columns)
    # The synthetic SE grows with |m|: the OTM put bucket has the larger errors.
    rm = dict(zip(df["bucket"], df["rmse_pts"], strict=True))
    assert rm["OTM put"] > rm["ATM"]


def test_residual_statistics_jarque_bera():
    rng = np.random.default_rng(0)
    t = np.zeros((200, 60))
    normal = residual_statistics(t, 0.001 * rng.standard_normal(t.shape))
    heavy = residual_statistics(t, 0.001 * rng.standard_t(3, t.shape))
    # 12k Gaussian residuals: JB p-value is uniform under H0; > 1e-3 fails 0.1% of seeds (fixed seed here).
    assert normal["jarque_bera_pvalue"] > 1e-3 and abs(normal["excess_kurtosis"]) < 0.2
    assert heavy["jarque_bera_pvalue"] < 1e-10 and heavy["excess_kurtosis"] > 1
    assert normal["std_pts"] == pytest.approx(0.1, rel=0.05)




def test_flat_black_scholes_surface_is_arbitrage_free():
    iv = np.full((4, 60), 0.25)
    rep = static_arbitrage_report(iv, GRID)
    assert rep["calendar_n_violations"] == 0 and rep["butterfly_n_violations"] == 0
    assert rep["calendar_n_checks"] == 4 * 10 * 5 and rep["butterfly_n_checks"] == 4 * 8 * 6


def test_calendar_violation_is_flagged():
    iv = np.full((2, 60), 0.25).reshape(2, 10, 6)
    iv[1, :, 5] = 0.10  # last maturity: total variance 0.01 < 0.25^2 * 270/365
    out = calendar_violations(iv.reshape(2, 60), GRID)
    assert out["calendar_n_violations"] == 10 and out["calendar_frac_surfaces_violating"] == 0.5
    # A modest decrease in vol with T is not an arbitrage while w = iv^2 T still grows.
    ok = np.full((10, 6), 0.25) * np.sqrt(GRID.maturities[0] / GRID.maturities[None, :]) ** 0.5
    assert calendar_violations(ok.reshape(1, 60), GRID)["calendar_n_violations"] == 0


def test_butterfly_violation_is_flagged():
    iv = np.full((10, 6), 0.25)
    iv[6, 3] = 0.45  # ATM spike at 180 days: the call price there rises above the chord
    out = butterfly_violations(iv.reshape(1, 60), GRID)
    assert out["butterfly_n_violations"] >= 1 and out["butterfly_frac_surfaces_violating"] == 1.0


def test_evaluate_surrogate_is_json_able():
    d = make_synthetic_dataset(30, seed=4)
    out = evaluate_surrogate(d["y"], d["y_clean"], GRID, iv_se=d["iv_se"])
    s = json.dumps(out)
    assert {"overall", "buckets", "maps_pts", "residuals", "arbitrage", "mc_noise"} <= set(out)
    assert "labels" in out["arbitrage"] and "NaN" not in s


def test_metrics_by_stability_splits_on_the_growth_rate():
    from qrh_lib.surrogate.evaluation import metrics_by_stability, regression_metrics

    rng = np.random.default_rng(0)
    y = 0.2 + 0.05 * rng.random((6, 60))
    p = y + 0.01 * rng.standard_normal((6, 60))
    g = np.array([-0.008, 3.0, -0.008, 0.5, -0.008, -0.008])
    t = metrics_by_stability(y, p, g)
    assert list(t.index) == ["stable", "explosive"] and t.loc["explosive", "n_surfaces"] == 2
    assert t.loc["stable", "rmse_pts"] == pytest.approx(regression_metrics(y[g <= 0], p[g <= 0])["rmse_pts"])
    with pytest.raises(ValueError, match="growth must have shape"):
        metrics_by_stability(y, p, g[:3])
