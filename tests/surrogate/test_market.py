"""Quotes from an option-chain file: the shared 15 Feb 2023 SPX and VIX files, broken copies of a table, the drop
report on a table whose answer is known, the selection helpers and the market folder's path."""

import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from qrh_lib import paths
from qrh_lib.artifacts import read_json
from qrh_lib.grid import default_grid, rz_grid, rz_vix_grid, vix_grid
from qrh_lib.surrogate.market import (
    DROP_REASONS,
    SVI_PARAMS,
    fit_svi,
    load_market_quotes,
    load_quotes,
    select_expiries,
    svi_quotes,
    svi_summary,
    svi_summary_path,
    svi_total_variance,
    thin_strikes,
)

needs_market = pytest.mark.skipif(not paths.has_market_data(),
                                  reason=f"no shared market quotes in {paths.MARKET_DATA_DIR} (set $QRH_MARKET_DIR)")


def _span_count(d: pd.DataFrame, T_lo, T_hi, lo, hi, sqrt_t: bool) -> int:
    """Rows with both sides inside a span, counted with plain pandas: T in [T_lo, T_hi], and k / sqrt(T) (or k)
    in [lo, hi]."""
    d = d[d.Bid.notna() & d.Ask.notna()]
    x = np.log(d.Strike / d.Fwd) / (np.sqrt(d.Texp) if sqrt_t else 1.0)
    return int(((d.Texp >= T_lo) & (d.Texp <= T_hi) & (x >= lo) & (x <= hi)).sum())


# ------------------------------------------------------------------------------------------ the shared files
@needs_market
@pytest.mark.parametrize("underlying,grid,span", [
    ("spx", None, None),
    ("spx", "default", (30 / 365, 1.0, -0.5, 0.3, True)),
    ("spx", "rz", (0.03, 0.09, -0.15, 0.05, False)),
    ("vix", None, None),
    ("vix", "default", (30 / 365, 180 / 365, -0.4, 1.0, True)),
    ("vix", "rz", (0.03, 0.09, -0.1, 0.21, False)),
])
def test_shared_files_load_with_counts_measured_by_pandas(underlying, grid, span):
    d = pd.read_csv(paths.market_file(underlying))
    mq = load_market_quotes(underlying, grid=grid)
    r = mq.report
    one_sided = int((d.Bid.isna() | d.Ask.isna()).sum())
    both = len(d) - one_sided
    kept = both if span is None else _span_count(d, *span)
    assert r.total == len(d) and r.kept == kept > 0
    assert r.counts == {**dict.fromkeys(DROP_REASONS, 0), "one_sided": one_sided, "outside_span": both - kept}
    q = mq.quotes
    assert q.n == kept and np.all(q.bid < q.ask) and np.all(q.bid > 0)
    inside = d[d.index.isin(mq.kept.index)]
    np.testing.assert_allclose(q.log_moneyness, np.log(inside.Strike / inside.Fwd), rtol=0, atol=1e-15)
    np.testing.assert_allclose(q.maturities, inside.Texp, rtol=0, atol=0)
    np.testing.assert_allclose(q.iv, (inside.Bid + inside.Ask) / 2, rtol=1e-15)
    per = mq.by_expiry()
    assert per["rows"].sum() == len(d) and per["kept"].sum() == kept
    assert per["rows"].to_dict() == d.groupby("Expiry").size().to_dict()
    assert per["kept"].to_dict() == inside.groupby("Expiry").size().reindex(per.index, fill_value=0).to_dict()
    printed = str(r)
    assert f"{len(d):,} rows, {kept:,} kept" in printed and re.search(rf"one_sided\s+{one_sided:,}", printed)


@needs_market
def test_shared_files_quotes_fit_their_grids_quote_map():
    """The kept quotes are exactly what QuoteMap accepts: it builds on them, and refuses one more step out."""
    from qrh_lib.surrogate.quotes import QuoteMap

    for underlying, grid in (("spx", default_grid()), ("spx", rz_grid()), ("vix", vix_grid()), ("vix", rz_vix_grid())):
        q = load_market_quotes(underlying, grid=grid).quotes
        assert QuoteMap(grid, q.log_moneyness, q.maturities).M.shape == (q.n, grid.size)
        everything = load_market_quotes(underlying, grid=None).quotes
        with pytest.raises(ValueError, match="outside the grid's span"):
            QuoteMap(grid, everything.log_moneyness, everything.maturities)


@needs_market
def test_missing_day_is_refused_with_where_quotes_go():
    with pytest.raises(FileNotFoundError, match=r"no VIX quotes for 19990101: .*QRH_MARKET_DIR"):
        load_market_quotes("vix", "19990101")


# ------------------------------------------------------------------------------------------ broken copies
def _table() -> pd.DataFrame:
    """A table in the shared files' shape: the first two SPX expiries of the shared day when the files are here,
    else a synthetic chain (two expiries, 17 strikes each, the lowest one-sided)."""
    if paths.has_market_data():
        d = pd.read_csv(paths.market_file("spx"), index_col=0)
        return d[d.Expiry.isin(sorted(d.Expiry.unique())[:2])].reset_index(drop=True)
    rows = []
    for expiry, T, F in ((20230324, 37 / 365.25, 4150.0), (20230421, 65 / 365.25, 4160.0)):
        for K in np.arange(3700.0, 4550.0, 50.0):
            vol = 0.2 + 0.3 * np.log(K / F) ** 2
            bid = np.nan if K == 3700 else vol - 0.002
            rows.append((expiry, T, K, bid, vol + 0.002, F, np.nan))
    return pd.DataFrame(rows, columns=["Expiry", "Texp", "Strike", "Bid", "Ask", "Fwd", "CallMid"])


def _two_sided_row(d: pd.DataFrame) -> int:
    """A row with both sides, in the table's middle, so that its line and its neighbours are unambiguous."""
    both = np.flatnonzero(d.Bid.notna() & d.Ask.notna())
    return int(both[both.size // 2])


def _refused(tmp_path, d: pd.DataFrame, match: str, strict: bool = False):
    """``d`` written to a CSV file is refused with a message that starts with the file's name and ``match``."""
    path = tmp_path / "broken.csv"
    d.to_csv(path)
    with pytest.raises(ValueError, match=rf"^broken\.csv: {match}"):
        load_quotes(path, strict=strict)


def _row(d: pd.DataFrame, i: int, strike=None) -> str:
    """How an error names row ``i`` of a CSV file (a pattern)."""
    strike = re.escape(str(float(d.Strike[i]))) if strike is None else strike
    return rf"row {i} \(line {i + 2}\) \[Expiry {d.Expiry[i]}, Strike {strike}\]: "


#: One broken cell: (column, its new value as a function of the row's, the message after the column's name).
BROKEN_CELLS = {
    "bid above ask (strict)": ("Bid", lambda r: r.Ask + 0.01, r"Bid = [\d.]+ is above the Ask"),
    "vol zero (ask)": ("Ask", lambda r: 0.0, r"Ask = 0.0 is not a positive vol"),
    "vol negative (bid)": ("Bid", lambda r: -0.05, r"Bid = -0.05 is a negative vol"),
    "forward zero": ("Fwd", lambda r: 0.0, r"Fwd = 0.0 is not a positive forward"),
    "maturity negative": ("Texp", lambda r: -0.01, r"Texp = -0.01 is not a positive maturity in years"),
    "two forwards in an expiry": ("Fwd", lambda r: r.Fwd * 1.01, r"Fwd = [\d.]+ differs from the first row of the "
                                                                  r"same Expiry"),
}


@pytest.mark.parametrize("case", list(BROKEN_CELLS))
def test_a_broken_cell_is_refused_naming_its_column_and_row(tmp_path, case):
    column, value, message = BROKEN_CELLS[case]
    d = _table()
    i = _two_sided_row(d)
    d.loc[i, column] = value(d.loc[i])
    _refused(tmp_path, d, rf"{_row(d, i)}column {message}", strict="strict" in case)


def test_a_missing_column_is_refused_naming_it(tmp_path):
    _refused(tmp_path, _table().drop(columns=["Fwd", "Bid"]), r"missing column\(s\) Bid, Fwd \(a quotes table needs")


def test_duplicate_rows_are_refused_naming_both(tmp_path):
    d = _table()
    i = _two_sided_row(d)
    dup = pd.concat([d, d.iloc[[i]]], ignore_index=True)
    n = len(dup) - 1
    _refused(tmp_path, dup, rf"{_row(d, i)[:-2]} and row {n} \(line {n + 2}\).* are duplicate rows: the same Expiry "
                            r"and Strike")


def test_a_value_that_is_not_a_number_or_a_date_is_refused(tmp_path):
    d = _table()
    i = _two_sided_row(d)
    d["Strike"] = d.Strike.astype(object)
    d.loc[i, "Strike"] = "4,150"
    row = _row(d, i, strike="'4,150'")
    _refused(tmp_path, d, rf"{row}column Strike = '4,150' is not a number")
    d = _table()
    d.loc[i, "Expiry"] = 20231345
    _refused(tmp_path, d, rf"{_row(d, i)}column Expiry = 20231345 is not a date yyyymmdd")


def test_a_crossed_quote_is_dropped_and_counted_unless_strict(tmp_path):
    d = _table()
    i = _two_sided_row(d)
    d.loc[i, "Bid"] = d.Ask[i] + 0.01
    mq = load_quotes(d)
    assert mq.report.counts["crossed"] == 1 and mq.table.loc[i, "dropped"] == "crossed"
    assert mq.report.source == "DataFrame"
    with pytest.raises(ValueError, match=rf"^DataFrame: row {i} \[Expiry .*column Bid"):
        load_quotes(d, strict=True)


def test_a_table_without_expiry_tells_expiries_apart_by_maturity():
    d = _table().drop(columns="Expiry")
    mq = load_quotes(d)
    assert mq.expiry_column == "Texp" and len(mq.by_expiry()) == 2
    dup = pd.concat([d, d.iloc[[3]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"row 3 \[Texp 0.\d+, Strike [\d.]+\] and row \d+ \[.*\] are duplicate rows: "
                       r"the same Texp and Strike"):
        load_quotes(dup)


# ------------------------------------------------------------------------------------------ the drop report
def _known() -> pd.DataFrame:
    """Ten quotes whose fates are known: (T, k / sqrt(T), bid, ask) with F = 100."""
    T1, T2 = 0.25, 0.5
    rows = [  # (Expiry, T, m, bid, ask, fate)
        (20230515, T1, -0.20, 0.22, 0.24, ""),
        (20230515, T1, 0.00, 0.19, 0.20, ""),
        (20230515, T1, 0.10, np.nan, 0.20, "one_sided"),
        (20230515, T1, 0.20, 0.18, np.nan, "one_sided"),
        (20230515, T1, -0.10, 0.0, 0.21, "zero_bid"),
        (20230515, T1, -0.30, 0.25, 0.24, "crossed"),
        (20230515, T1, -0.40, 0.26, 0.26, "locked"),
        (20230515, T1, 0.40, 0.20, 0.21, "outside_span"),  # k / sqrt(T) above the default grid's 0.3
        (20230815, T2, 0.00, 0.18, 0.19, ""),
        (20230815, T2, -0.60, 0.25, 0.26, "outside_span"),  # below -0.5
    ]
    d = pd.DataFrame(rows, columns=["Expiry", "Texp", "m", "Bid", "Ask", "fate"])
    d["Fwd"] = 100.0
    d["Strike"] = 100.0 * np.exp(d.m * np.sqrt(d.Texp))
    return d


def test_drop_report_on_a_table_whose_answer_is_known():
    d = _known()
    mq = load_quotes(d.drop(columns=["m", "fate"]), default_grid())
    assert mq.table["dropped"].tolist() == d.fate.tolist()
    r = mq.report
    assert (r.total, r.kept) == (10, 3)
    assert r.counts == {**dict.fromkeys(DROP_REASONS, 0), "one_sided": 2, "zero_bid": 1, "crossed": 1, "locked": 1,
                        "outside_span": 2}
    assert str(r).splitlines()[0] == "DataFrame: 10 rows, 3 kept, 7 dropped"
    q = mq.quotes
    keep = d.fate == ""
    np.testing.assert_allclose(q.log_moneyness, (d.m * np.sqrt(d.Texp))[keep], atol=1e-15)
    np.testing.assert_allclose(q.iv, [0.23, 0.195, 0.185], atol=1e-15)
    np.testing.assert_allclose(q.quote_weights(), 1 / np.array([0.02, 0.01, 0.01]) ** 2, rtol=1e-9)
    per = mq.by_expiry()
    assert per.loc[20230515, ["rows", "kept", "one_sided", "outside_span"]].tolist() == [8, 2, 2, 1]
    assert per.loc[20230815, ["rows", "kept", "outside_span"]].tolist() == [2, 1, 1]
    np.testing.assert_allclose(per["median_spread_pts"], [1.5, 1.0], atol=1e-12)
    # without a grid nothing is outside the span; the rz grid's maturities (0.03..0.09 years) hold none of these
    assert load_quotes(d.drop(columns=["m", "fate"])).report.kept == 5
    assert load_quotes(d.drop(columns=["m", "fate"]), rz_grid()).report.kept == 0


# ------------------------------------------------------------------------------------------ selections
def _chain(n_expiries=5, n_strikes=21) -> pd.DataFrame:
    rows = []
    for j in range(n_expiries):
        T = 0.1 * (j + 1)
        for m in np.linspace(-0.5, 0.3, n_strikes):
            rows.append((20230301 + j, T, 100.0 * np.exp(m * np.sqrt(T)), 0.2, 0.21, 100.0))
    return pd.DataFrame(rows, columns=["Expiry", "Texp", "Strike", "Bid", "Ask", "Fwd"])


def test_select_expiries_by_list_by_maturity_and_by_count():
    mq = load_quotes(_chain())
    assert set(select_expiries(mq, [20230302, 20230304]).kept.Expiry) == {20230302, 20230304}
    near = select_expiries(mq, maturities=[0.12, 0.29, 0.31])
    assert set(near.kept.Expiry) == {20230301, 20230303} and near.report.counts["not_selected"] == 3 * 21
    assert set(select_expiries(mq, max_count=3).kept.Expiry) == {20230301, 20230303, 20230305}
    assert select_expiries(mq, max_count=9).report.kept == mq.report.kept
    with pytest.raises(ValueError, match=r"Expiry \[20230401\] have no kept quotes"):
        select_expiries(mq, [20230401])
    with pytest.raises(ValueError, match="give one of"):
        select_expiries(mq, [20230301], max_count=2)


def test_thin_strikes_keeps_at_most_n_per_expiry_evenly_with_the_ends():
    mq = load_quotes(_chain())
    thin = thin_strikes(mq, 5)
    assert thin.report.counts["thinned"] == 5 * 16 and (thin.by_expiry()["kept"] == 5).all()
    m = thin.kept.k / np.sqrt(thin.kept.Texp)
    for _, mi in m.groupby(thin.kept.Expiry):
        np.testing.assert_allclose(np.sort(mi), np.linspace(-0.5, 0.3, 5), atol=1e-12)  # 21 = 4 x 5 + 1 points
    assert thin_strikes(mq, 40).report.kept == mq.report.kept
    # a drop earlier in the chain stays counted under its own reason
    both = thin_strikes(select_expiries(mq, max_count=2), 3)
    assert both.report.counts["not_selected"] == 3 * 21 and both.report.counts["thinned"] == 2 * 18


# ------------------------------------------------------------------------------------------ the SVI summary
def test_fit_svi_recovers_the_parameters_of_an_svi_smile():
    k = np.linspace(-0.35, 0.2, 40)
    for T, p in ((0.1, (0.002, 0.03, -0.5, 0.04, 0.08)), (1.0, (0.01, 0.1, -0.6, 0.15, 0.12))):
        est, rmse = fit_svi(k, T, np.sqrt(svi_total_variance(k, *p) / T))
        np.testing.assert_allclose(est, p, atol=1e-6)
        assert rmse < 1e-6


def test_committed_svi_summary_matches_a_refit_and_holds_no_quotes():
    path = svi_summary_path()
    if not path.is_file():
        pytest.skip(f"no SVI summary at {path} (python -m qrh_lib.surrogate.market writes it)")
    s = read_json(path)
    rows = pd.DataFrame(s["expiries"]).set_index("Expiry")
    assert list(rows.columns) == ["days", "Texp", "quotes", *SVI_PARAMS, "rmse_pts", "inside_spread",
                                  "median_spread_pts"]
    assert len(rows) == 48 and rows["rmse_pts"].max() < 0.2 and s["rows"] == 7423
    if not paths.has_market_data():
        pytest.skip(f"no shared market quotes in {paths.MARKET_DATA_DIR} to refit the summary from")
    mq = svi_quotes()
    assert mq.report.counts == s["drops"]
    refit = svi_summary(select_expiries(mq, [20230324, 20240119]))
    assert refit["quotes"].tolist() == rows.loc[refit.index, "quotes"].tolist()
    np.testing.assert_allclose(refit["rmse_pts"], rows.loc[refit.index, "rmse_pts"], rtol=1e-4)
    np.testing.assert_allclose(refit[list(SVI_PARAMS)], rows.loc[refit.index, list(SVI_PARAMS)], rtol=1e-3,
                               atol=1e-5)


# ------------------------------------------------------------------------------------------ the market folder
def test_market_folder_is_beside_the_project_and_overridable(tmp_path, monkeypatch):
    if "QRH_MARKET_DIR" not in os.environ:
        assert paths.MARKET_DATA_DIR == paths.PROJ_ROOT.parent / "shared" / "data" / "market"
    monkeypatch.setattr(paths, "MARKET_DATA_DIR", tmp_path)
    assert not paths.has_market_data("20230215")
    paths.market_file("spx", "20230215").write_text("x")
    assert not paths.has_market_data("20230215")  # the VIX file is missing
    paths.market_file("vix", "20230215").write_text("x")
    assert paths.has_market_data("20230215")
    with pytest.raises(ValueError, match="underlying 'ndx'"):
        paths.market_file("ndx")
    out = subprocess.run([sys.executable, "-c", "from qrh_lib.paths import MARKET_DATA_DIR; print(MARKET_DATA_DIR)"],
                         env={**os.environ, "QRH_MARKET_DIR": str(tmp_path / "q")}, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == str(tmp_path / "q")


def test_fit_by_expiry_counts_the_spread_and_the_errors():
    """Two expiries of two quotes; the model inside the spread at one quote of each, known errors."""
    from qrh_lib.surrogate.market import fit_by_expiry
    from qrh_lib.surrogate.quotes import Quotes

    q = Quotes([-0.1, 0.0, -0.1, 0.0], [0.1, 0.1, 0.5, 0.5], [0.20, 0.18, 0.22, 0.21],
               bid=[0.19, 0.175, 0.21, 0.205], ask=[0.21, 0.185, 0.23, 0.215])
    model = np.array([0.205, 0.19, 0.22, np.nan])  # +0.5, +1.0 (outside), 0.0, missing
    t = fit_by_expiry(q, model)
    assert list(t.index) == ["36 d", "182 d", "all"]
    np.testing.assert_allclose(t.loc["36 d", "rmse_pts"], np.sqrt((0.5**2 + 1.0**2) / 2))
    assert t.loc["36 d", "inside_spread"] == 0.5 and t.loc["182 d", "inside_spread"] == 0.5
    np.testing.assert_allclose(t.loc["36 d", "median_half_spreads"], np.median([0.5 / 1.0, 1.0 / 0.5]))
    assert t.loc["182 d", "n_missing"] == 1 and t.loc["182 d", "rmse_pts"] == 0.0
    assert t.loc["all", "n"] == 4 and t.loc["all", "inside_spread"] == 0.5
    with pytest.raises(ValueError, match="model_iv has 3 values, the quotes 4"):
        fit_by_expiry(q, model[:3])


def test_quote_map_subsets_are_the_same_rows():
    """The candidate bank is ranked on a subset of many quotes: the subset maps equal the full maps' columns."""
    from qrh_lib.grid import default_grid, vix_grid
    from qrh_lib.surrogate.joint import _StackedQuotes
    from qrh_lib.surrogate.quotes import QuoteMap

    g, vg = default_grid(), vix_grid()
    rng = np.random.default_rng(0)
    T = rng.uniform(0.1, 0.9, 50)
    k = rng.uniform(-0.4, 0.25, 50) * np.sqrt(T)
    vT = rng.uniform(0.1, 0.45, 20)
    vk = rng.uniform(-0.3, 0.9, 20) * np.sqrt(vT)
    spx, vix = QuoteMap(g, k, T), QuoteMap(vg, vk, vT)
    iv = rng.uniform(0.1, 0.5, (3, g.size + vg.size))
    idx = np.array([0, 7, 49, 50, 69])
    np.testing.assert_allclose(spx.subset(idx[:3])(iv[:, : g.size]), spx(iv[:, : g.size])[:, idx[:3]], rtol=1e-12)
    both = _StackedQuotes(spx, vix, g.size)
    np.testing.assert_allclose(both.subset(idx)(iv), both(iv)[:, idx], rtol=1e-12)  # the same sums, other BLAS blocks
    assert both.subset(idx).n_quotes == 5


@needs_market
def test_a_calibration_to_the_shared_spx_quotes_converges_inside_the_domain(tiny_surrogate):
    """The day's SPX quotes inside the (synthetic) surrogate's grid, 20 an expiry: the calibration ends inside the
    surrogate's domain (box and a <= 0.9 a*), and fits the quotes better than the domain's centre does."""
    from qrh_lib.surrogate.market import fit_by_expiry, load_market_quotes, thin_strikes
    from qrh_lib.surrogate.quotes import calibrate_quotes, interpolate_surface

    s = tiny_surrogate
    mq = load_market_quotes("spx", grid=s.grid)
    q = thin_strikes(mq, 20).quotes
    res = calibrate_quotes(s, q, seed=0)
    assert s.domain.contains(res.x)[0]
    assert np.all(res.x >= s.box.lo) and np.all(res.x <= s.box.hi)
    centre = 0.5 * (s.box.lo + s.box.hi)
    centre[2] = s.box.lo[2]  # the least feedback: stable whatever lambda and eta
    fit = fit_by_expiry(q, interpolate_surface(s, res.iv, q.log_moneyness, q.maturities)).loc["all", "rmse_pts"]
    at_centre = s.predict_numpy(centre[None, :])[0]
    naive = fit_by_expiry(q, interpolate_surface(s, at_centre, q.log_moneyness, q.maturities)).loc["all", "rmse_pts"]
    assert np.isfinite(fit) and fit < naive, (fit, naive)
