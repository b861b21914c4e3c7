r"""Market quotes from a file: an option chain of implied vols (SPX or VIX) read into :class:`~.quotes.Quotes`.

The table (a CSV file or a pandas DataFrame) has one row per expiry and strike, in the shape of the shared files
(:func:`qrh_lib.paths.market_file`):

==========  =========================================================================================
``Expiry``  expiry date, yyyymmdd (optional: without it the expiries are told apart by ``Texp``)
``Texp``    maturity in years
``Strike``  strike
``Bid``     bid implied vol, decimals (empty: no bid)
``Ask``     ask implied vol, decimals (empty: no ask)
``Fwd``     the expiry's forward; for the VIX, the expiry's VIX future
==========  =========================================================================================

Other columns (``CallMid``, an unnamed index) are ignored. A quote becomes log-moneyness
:math:`k = \log(K/F)`, maturity ``Texp``, mid vol ``(Bid + Ask) / 2`` and its bid and ask (the calibration weighs
it by 1 / spread^2). The files give one vol per strike (put and call share it), so there is no side of the money to
choose between.

Every row ends one of three ways; nothing is dropped silently:

- **an error** (``ValueError`` naming the column and the row, with its file line for a CSV) when the file is
  malformed: a missing column, a value that is not a number (or an ``Expiry`` that is not a yyyymmdd date), a
  missing expiry, maturity, strike or forward, ``Texp <= 0``, ``Fwd <= 0``, ``Strike <= 0``, a vol <= 0 (an ask
  <= 0 or a negative bid; a bid of exactly 0 is a drop, below) or an infinite one, an expiry whose rows disagree
  on ``Texp`` or ``Fwd``, two rows of the same expiry and strike; and, with ``strict=True``, a bid above the ask;
- **a drop**, counted by reason (:data:`DROP_REASONS`, the first that applies) in the :class:`DropReport`, for a
  quote the calibration cannot use: one side missing, a zero bid, bid above ask (crossed), bid equal to ask
  (locked: no spread, an infinite weight), outside the span of the surrogate's grid (:func:`.quotes.in_span`, the
  test :class:`.quotes.QuoteMap` applies), or left out by a selection (:func:`select_expiries`,
  :func:`thin_strikes`);
- **kept**: :attr:`MarketQuotes.quotes`.

A crossed quote is a drop by default and an error with ``strict=True``: in a real chain a bid above the ask is a
stale or asynchronous side, as common as a missing one (the shared files have none), while in a table written by
hand it more likely means swapped columns. A locked quote is dropped in both modes.

A day's quotes stay where they are (:data:`qrh_lib.paths.MARKET_DATA_DIR`); what the project keeps of them is a
compact summary, raw SVI fitted per SPX expiry with its fit error (:func:`svi_summary`), written by
``python -m qrh_lib.surrogate.market`` to ``data/market/svi_spx_<date>.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..grid import DEFAULT_M, SPX_GRIDS, VIX_GRIDS, Grid, grid_from
from ..iv import VOL_POINTS
from ..paths import DATA_DIR, MARKET_DATE, market_file
from .quotes import Quotes, in_span

#: Columns a quotes table must have (``Expiry`` is optional, the rest of the file's columns are ignored).
REQUIRED_COLUMNS = ("Texp", "Strike", "Bid", "Ask", "Fwd")
#: Why a quote is dropped, in the order the reasons are tried (a quote counts under the first that applies).
DROP_REASONS = {
    "one_sided": "bid or ask missing",
    "zero_bid": "bid of zero",
    "crossed": "bid above ask",
    "locked": "bid equal to ask",
    "outside_span": "outside the grid's span",
    "not_selected": "expiry not selected",
    "thinned": "strikes thinned",
}
#: Day count of the years in ``Texp`` used only to print maturities in days (the shared files' 365.25).
DAYS_PER_YEAR = 365.25
#: Where :func:`main` writes a day's SVI summary (committed: parameters and fit errors, never the quotes).
SVI_SUMMARY_DIR = DATA_DIR / "market"


@dataclass(frozen=True)
class DropReport:
    """How many rows of a quotes table were kept, and how many were dropped for each reason.

    Attributes
    ----------
    source : str
        The file's name, or ``"DataFrame"``.
    total : int
        Rows in the table.
    dropped : tuple of (str, int)
        ``(reason, count)`` for every reason of :data:`DROP_REASONS`, in its order.
    """

    source: str
    total: int
    dropped: tuple[tuple[str, int], ...]

    @property
    def counts(self) -> dict[str, int]:
        """Drops by reason."""
        return dict(self.dropped)

    @property
    def kept(self) -> int:
        return self.total - sum(c for _, c in self.dropped)

    def __str__(self) -> str:
        lines = [f"{self.source}: {self.total:,} rows, {self.kept:,} kept, {self.total - self.kept:,} dropped"]
        lines += [f"  {reason:<13}{count:>7,}  {DROP_REASONS[reason]}" for reason, count in self.dropped]
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class MarketQuotes:
    """A validated quotes table, every row with its fate.

    Attributes
    ----------
    table : pandas.DataFrame
        Every row of the file in its order (index: the row's position), with columns ``Expiry`` (if the file has
        it), ``Texp``, ``Strike``, ``Bid``, ``Ask``, ``Fwd``, ``k`` (log-moneyness) and ``dropped`` (``""`` for a
        kept quote, else its reason from :data:`DROP_REASONS`).
    source : str
        The file's name, or ``"DataFrame"``.
    """

    table: pd.DataFrame
    source: str

    @property
    def expiry_column(self) -> str:
        """The column that tells the expiries apart: ``Expiry``, or ``Texp`` for a table without it."""
        return "Expiry" if "Expiry" in self.table else "Texp"

    @property
    def kept(self) -> pd.DataFrame:
        """The kept rows, with their mid vol in a column ``mid``."""
        t = self.table[self.table["dropped"] == ""].drop(columns="dropped")
        return t.assign(mid=0.5 * (t["Bid"] + t["Ask"]))

    @property
    def quotes(self) -> Quotes:
        """The kept rows as :class:`Quotes`: ``log(Strike / Fwd)``, ``Texp``, mid vol, bid and ask."""
        t = self.kept
        return Quotes(t["k"].to_numpy(), t["Texp"].to_numpy(), t["mid"].to_numpy(), bid=t["Bid"].to_numpy(),
                      ask=t["Ask"].to_numpy())

    @property
    def report(self) -> DropReport:
        counts = self.table["dropped"].value_counts()
        return DropReport(self.source, len(self.table), tuple((r, int(counts.get(r, 0))) for r in DROP_REASONS))

    def by_expiry(self) -> pd.DataFrame:
        """Per expiry: ``Texp``, ``days`` (``Texp`` x 365.25), ``rows``, ``kept``, the count of every reason that
        dropped a row of the table, and the median bid-ask spread of the kept quotes in vol points."""
        t, key = self.table, self.expiry_column
        fate = pd.crosstab(t[key], t["dropped"]).rename(columns={"": "kept"})
        out = pd.DataFrame({"Texp": t["Texp"].groupby(t[key]).first(), "rows": t[key].value_counts()})
        out["days"] = (out["Texp"] * DAYS_PER_YEAR).round(1)
        out["kept"] = fate["kept"] if "kept" in fate else 0
        for reason in DROP_REASONS:
            if reason in fate:
                out[reason] = fate[reason]
        kept = self.kept
        out["median_spread_pts"] = ((kept["Ask"] - kept["Bid"]) * VOL_POINTS).groupby(kept[key]).median()
        return out.sort_index()

    def drop(self, mask, reason: str) -> MarketQuotes:
        """These quotes with the kept rows where ``mask`` holds (a boolean array over :attr:`table`'s rows)
        dropped for ``reason``."""
        if reason not in DROP_REASONS:
            raise ValueError(f"drop reason {reason!r} is not one of {list(DROP_REASONS)}")
        dropped = self.table["dropped"].to_numpy(copy=True)
        dropped[np.asarray(mask, bool) & (dropped == "")] = reason
        return replace(self, table=self.table.assign(dropped=dropped))


def _read(source) -> tuple[pd.DataFrame, str, bool]:
    if isinstance(source, pd.DataFrame):
        return source.reset_index(drop=True), "DataFrame", False
    path = Path(source)
    return pd.read_csv(path), path.name, True


class _Rows:
    """Names rows in errors: position in the table, file line for a CSV (after its header), expiry and strike."""

    def __init__(self, df: pd.DataFrame, source: str, csv: bool):
        self.df, self.source, self.csv = df, source, csv

    def name(self, i: int) -> str:
        s = f"row {i}" + (f" (line {i + 2})" if self.csv else "")
        key = "Expiry" if "Expiry" in self.df else "Texp"
        what = [f"{c} {self.value(c, i)}" for c in (key, "Strike") if c in self.df]
        return s + (f" [{', '.join(what)}]" if what else "")

    def check(self, bad, column: str, problem: str):
        """Raise for the first row where ``bad`` holds: its column, its value and ``problem``."""
        idx = np.flatnonzero(np.asarray(bad, bool))
        if idx.size:
            i = int(idx[0])
            more = f" (and {idx.size - 1} more rows)" if idx.size > 1 else ""
            raise ValueError(f"{self.source}: {self.name(i)}: column {column} = {self.value(column, i)} "
                             f"{problem}{more}")

    def value(self, column: str, i: int) -> str:
        v = self.df[column].iloc[i]
        return repr(v) if isinstance(v, str) else str(v.item() if hasattr(v, "item") else v)


def _validated(raw: pd.DataFrame, source: str, csv: bool, strict: bool) -> pd.DataFrame:
    """The table's columns as numbers, every malformed row refused (see the module docstring)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in raw]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)} (a quotes table needs "
                         f"{', '.join(REQUIRED_COLUMNS)}; Expiry optional)")
    if raw.empty:
        raise ValueError(f"{source}: no rows")
    columns = (["Expiry"] if "Expiry" in raw else []) + list(REQUIRED_COLUMNS)
    rows = _Rows(raw, source, csv)
    df = pd.DataFrame(index=raw.index)
    for c in columns:
        blank = raw[c].isna() | raw[c].astype(str).str.strip().eq("")
        df[c] = pd.to_numeric(raw[c].where(~blank), errors="coerce")
        rows.check(df[c].isna() & ~blank, c, "is not a number")
        if c not in ("Bid", "Ask"):
            rows.check(blank, c, "is missing (only Bid and Ask may be empty)")
    rows.df = df
    if "Expiry" in df:
        day = pd.to_datetime(df["Expiry"].astype(str).str.removesuffix(".0"), format="%Y%m%d", errors="coerce")
        rows.check(day.isna() | (df["Expiry"] % 1 != 0), "Expiry", "is not a date yyyymmdd")
        df["Expiry"] = df["Expiry"].astype(np.int64)
    rows.check(~(df["Texp"] > 0), "Texp", "is not a positive maturity in years")
    rows.check(~(df["Fwd"] > 0), "Fwd", "is not a positive forward")
    rows.check(~(df["Strike"] > 0), "Strike", "is not a positive strike")
    for c in ("Texp", "Fwd", "Strike"):
        rows.check(np.isinf(df[c]), c, "is not finite")
    rows.check(df["Bid"] < 0, "Bid", "is a negative vol")
    rows.check(df["Ask"] <= 0, "Ask", "is not a positive vol")
    for c in ("Bid", "Ask"):
        rows.check(np.isinf(df[c]), c, "is not finite")
    key = "Expiry" if "Expiry" in df else "Texp"
    for c in ("Texp", "Fwd"):
        if c != key:
            first = df.groupby(key)[c].transform("first")
            rows.check(~np.isclose(df[c], first, rtol=1e-10, atol=0), c,
                       f"differs from the first row of the same {key} (one {c} per expiry)")
    dup = np.flatnonzero(df.duplicated([key, "Strike"], keep=False))
    if dup.size:
        i = int(dup[0])
        j = int(np.flatnonzero((df[key] == df[key].iloc[i]) & (df["Strike"] == df["Strike"].iloc[i]))[1])
        raise ValueError(f"{source}: {rows.name(i)} and {rows.name(j)} are duplicate rows: the same {key} and "
                         f"Strike ({dup.size} rows repeat an expiry and strike)")
    if strict:
        rows.check(df["Bid"] > df["Ask"], "Bid", "is above the Ask (a crossed quote; strict=False drops it)")
    df["k"] = np.log(df["Strike"] / df["Fwd"])
    return df


def load_quotes(source, grid: Grid | None = None, *, strict: bool = False) -> MarketQuotes:
    """Read a quotes table (the module docstring), refusing a malformed one and dropping, with a count, the quotes
    the calibration cannot use.

    Parameters
    ----------
    source : str, path or pandas.DataFrame
        A CSV file or a table in the shared files' shape.
    grid : Grid, optional
        The surrogate's grid: quotes outside its span are dropped (``outside_span``). None keeps every maturity
        and strike.
    strict : bool
        Refuse a bid above the ask (an error naming the row) instead of dropping it as ``crossed``.

    Returns
    -------
    MarketQuotes
        Its :attr:`~MarketQuotes.quotes` are the kept quotes, its :attr:`~MarketQuotes.report` counts the drops.
    """
    raw, name, csv = _read(source)
    t = _validated(raw, name, csv, strict)
    mq = MarketQuotes(t.assign(dropped=""), name)
    bid, ask = t["Bid"].to_numpy(), t["Ask"].to_numpy()
    with np.errstate(invalid="ignore"):
        for reason, mask in (("one_sided", np.isnan(bid) | np.isnan(ask)), ("zero_bid", bid == 0),
                             ("crossed", bid > ask), ("locked", bid == ask)):
            mq = mq.drop(mask, reason)
    return mq if grid is None else keep_in_span(mq, grid)


def load_market_quotes(underlying: str = "spx", date: str = MARKET_DATE, grid="default", *,
                       strict: bool = False) -> MarketQuotes:
    """:func:`load_quotes` of the shared file of ``underlying`` (``"spx"`` or ``"vix"``) on ``date``
    (:func:`qrh_lib.paths.market_file`), inside ``grid``: a Grid, a name of the underlying's grids
    (``"default"``, ``"rz"``: :data:`qrh_lib.grid.SPX_GRIDS`, :data:`~qrh_lib.grid.VIX_GRIDS`) or None."""
    path = market_file(underlying, date)
    if not path.is_file():
        raise FileNotFoundError(f"no {underlying.upper()} quotes for {date}: {path} does not exist (put the file "
                                "there, or point $QRH_MARKET_DIR at its folder)")
    if grid is not None and not isinstance(grid, Grid):
        grid = grid_from(grid, SPX_GRIDS if underlying == "spx" else VIX_GRIDS)
    return load_quotes(path, grid, strict=strict)


def keep_in_span(mq: MarketQuotes, grid: Grid) -> MarketQuotes:
    """Drop the kept quotes outside ``grid``'s span (``outside_span``): the quotes :class:`.quotes.QuoteMap`
    refuses (:func:`.quotes.in_span`)."""
    t = mq.table
    return mq.drop(~in_span(grid, t["k"].to_numpy(), t["Texp"].to_numpy()), "outside_span")


def select_expiries(mq: MarketQuotes, expiries=None, *, maturities=None, max_count: int | None = None
                    ) -> MarketQuotes:
    """Keep the quotes of some expiries only; the others' are dropped as ``not_selected``. Give one of:

    Parameters
    ----------
    expiries : sequence
        Values of the expiry column (``Expiry`` yyyymmdd, or ``Texp`` without it); each must have kept quotes.
    maturities : sequence of float
        Maturities in years: the expiry with kept quotes nearest to each.
    max_count : int
        At most this many of the expiries with kept quotes, evenly spread by rank from the first to the last.
    """
    if sum(x is not None for x in (expiries, maturities, max_count)) != 1:
        raise ValueError("select_expiries: give one of expiries, maturities or max_count")
    key = mq.expiry_column
    kept = mq.kept
    have = kept["Texp"].groupby(kept[key]).first().sort_values()
    if expiries is not None:
        chosen = list(expiries)
        absent = [e for e in chosen if e not in have.index]
        if absent:
            raise ValueError(f"select_expiries: {key} {absent} have no kept quotes (expiries with kept quotes: "
                             f"{have.index.tolist()})")
    elif maturities is not None:
        T = have.to_numpy()
        chosen = [have.index[int(np.argmin(np.abs(T - t)))] for t in np.atleast_1d(maturities)]
    else:
        if max_count < 1:
            raise ValueError(f"select_expiries: max_count must be at least 1, got {max_count}")
        ranks = np.unique(np.round(np.linspace(0, have.size - 1, min(max_count, have.size))).astype(int))
        chosen = have.index[ranks].tolist()
    return mq.drop(~mq.table[key].isin(chosen).to_numpy(), "not_selected")


def thin_strikes(mq: MarketQuotes, max_per_expiry: int) -> MarketQuotes:
    r"""Keep at most ``max_per_expiry`` quotes per expiry, evenly spread in :math:`k/\sqrt T`: the kept quote
    nearest to each of ``max_per_expiry`` values from the expiry's lowest to its highest (each quote once, ends
    included); the others are dropped as ``thinned``."""
    if max_per_expiry < 1:
        raise ValueError(f"thin_strikes: max_per_expiry must be at least 1, got {max_per_expiry}")
    kept = mq.kept
    m = kept["k"] / np.sqrt(kept["Texp"])
    keep = []
    for _, mi in m.groupby(kept[mq.expiry_column]):
        if mi.size <= max_per_expiry:
            keep += mi.index.tolist()
            continue
        left = mi.copy()
        for target in np.linspace(mi.min(), mi.max(), max_per_expiry):
            i = (left - target).abs().idxmin()
            keep.append(i)
            left = left.drop(i)
    return mq.drop(~mq.table.index.isin(keep), "thinned")


# --------------------------------------------------------------------------- a compact summary of a day's quotes
#: Raw SVI's parameters (Gatheral 2004): total variance
#: :math:`w(k) = a + b\,(\rho (k - m) + \sqrt{(k - m)^2 + \sigma^2})`.
SVI_PARAMS = ("a", "b", "rho", "m", "sigma")
_SVI_LO = (-10.0, 0.0, -0.999, -3.0, 1e-4)
_SVI_HI = (10.0, 10.0, 0.999, 3.0, 10.0)


def svi_total_variance(k, a, b, rho, m, sigma) -> np.ndarray:
    """Raw SVI total implied variance :math:`w(k)` at log-moneyness ``k`` (see :data:`SVI_PARAMS`)."""
    x = np.asarray(k, np.float64) - m
    return a + b * (rho * x + np.sqrt(x * x + sigma * sigma))


def fit_svi(log_moneyness, maturity: float, iv) -> tuple[np.ndarray, float]:
    """Raw SVI fitted to the vols ``iv`` of one expiry by least squares on the vols (from a few starts).

    Returns
    -------
    params : ndarray, shape (5,)
        ``a, b, rho, m, sigma`` (:data:`SVI_PARAMS`).
    rmse_pts : float
        The fit's RMSE in vol points.
    """
    from scipy.optimize import least_squares

    k, iv, T = np.asarray(log_moneyness, np.float64), np.asarray(iv, np.float64), float(maturity)

    def vols(p):
        return np.sqrt(np.maximum(svi_total_variance(k, *p), 1e-12) / T)

    def jacobian(p):
        _, b, rho, m, sigma = p
        x = k - m
        r = np.sqrt(x * x + sigma * sigma)
        dw = np.stack([np.ones_like(k), rho * x + r, b * x, -b * (rho + x / r), b * sigma / r], axis=1)
        return dw / (2.0 * T * vols(p))[:, None]

    order = np.argsort(k)
    w_atm = float(np.interp(0.0, k[order], (iv * iv * T)[order]))
    best = None
    for rho in (-0.7, -0.3, 0.0):
        for sigma in (0.05, 0.2):
            p0 = np.clip([0.5 * w_atm, 0.1 * min(np.sqrt(T), 1.0), rho, 0.0, sigma * np.sqrt(T)], _SVI_LO, _SVI_HI)
            fit = least_squares(lambda p: vols(p) - iv, p0, jac=jacobian, bounds=(_SVI_LO, _SVI_HI), x_scale="jac")
            if best is None or fit.cost < best.cost:
                best = fit
    return best.x, float(np.sqrt(np.mean(best.fun**2)) * VOL_POINTS)


def svi_summary(mq: MarketQuotes) -> pd.DataFrame:
    """Per expiry of the kept quotes: raw SVI fitted to the mids (:func:`fit_svi`), with the number of quotes, the
    fit's RMSE in vol points, the share of quotes whose SVI vol lies inside the bid-ask spread and the median
    spread in vol points."""
    kept, key = mq.kept, mq.expiry_column
    rows = {}
    for e, q in kept.groupby(kept[key]):
        T = float(q["Texp"].iloc[0])
        p, rmse = fit_svi(q["k"], T, q["mid"])
        fitted = np.sqrt(np.maximum(svi_total_variance(q["k"].to_numpy(), *p), 0.0) / T)
        rows[e] = {"Texp": T, "quotes": len(q), **dict(zip(SVI_PARAMS, p.tolist(), strict=True)), "rmse_pts": rmse,
                   "inside_spread": float(np.mean((fitted >= q["Bid"]) & (fitted <= q["Ask"]))),
                   "median_spread_pts": float((q["Ask"] - q["Bid"]).median() * VOL_POINTS)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(key)


def svi_summary_path(date: str = MARKET_DATE) -> Path:
    return SVI_SUMMARY_DIR / f"svi_spx_{date}.json"


#: The strike span of the SVI summary, in k / sqrt(T): the default grid's strike rows, at every maturity.
SVI_SPAN = (min(DEFAULT_M), max(DEFAULT_M))


def svi_quotes(date: str = MARKET_DATE) -> MarketQuotes:
    """The quotes the SVI summary fits: the day's two-sided SPX quotes with k / sqrt(T) in :data:`SVI_SPAN` (the
    others dropped as ``outside_span``), at every maturity."""
    mq = load_market_quotes("spx", date, grid=None)
    m = mq.table["k"] / np.sqrt(mq.table["Texp"])
    return mq.drop(~m.between(*SVI_SPAN).to_numpy(), "outside_span")


def main(argv=None) -> int:
    """Fit raw SVI to every SPX expiry of a day's shared quotes, on the strikes of the default grid's span in
    k / sqrt(T) at every maturity, and write the summary (:func:`svi_summary` and the drop report) as JSON:
    ``python -m qrh_lib.surrogate.market [--date yyyymmdd] [--out file]``."""
    import argparse
    import datetime

    from ..artifacts import git_commit, save_json

    p = argparse.ArgumentParser(prog="python -m qrh_lib.surrogate.market", description=main.__doc__.split(", and")[0])
    p.add_argument("--date", default=MARKET_DATE)
    p.add_argument("--out", type=Path, default=None, help="default: data/market/svi_spx_<date>.json")
    a = p.parse_args(argv)
    mq = svi_quotes(a.date)
    table = svi_summary(mq)
    table.insert(0, "days", (table["Texp"] * DAYS_PER_YEAR).round(1))
    rows = [{mq.expiry_column: int(e), **{c: float(f"{v:.6g}") for c, v in r.items()}}
            for e, r in table.iterrows()]
    for r in rows:
        r["quotes"] = int(r["quotes"])
    out = save_json(a.out or svi_summary_path(a.date), {
        "what": f"raw SVI per SPX expiry, least squares on the mid vols of the two-sided quotes with k / sqrt(T) in "
                f"{list(SVI_SPAN)} (fit_svi); rmse_pts and median_spread_pts in vol points, inside_spread the share of "
                "quotes whose SVI vol is inside bid-ask",
        "source": mq.source, "date": a.date, "command": "python -m qrh_lib.surrogate.market",
        "created": datetime.date.today().isoformat(), "git_commit": git_commit(),
        "drops": mq.report.counts, "rows": mq.report.total, "expiries": rows})
    print(f"{out}: {len(rows)} expiries, SVI RMSE median {table['rmse_pts'].median():.3f} vol point "
          f"(max {table['rmse_pts'].max():.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def fit_by_expiry(quotes: Quotes, model_iv, model_se=None) -> pd.DataFrame:
    """How a model's vols at the quotes fit them, per expiry and over all (the last row, ``"all"``).

    Columns: ``days``, ``n`` quotes, ``rmse_pts`` (to the mids, vol points), ``inside_spread`` (the share of model vols
    between bid and ask), ``median_half_spreads`` (the median of ``|model - mid| / ((ask - bid) / 2)``: below 1 is
    inside the spread), ``median_half_spread_pts``; with ``model_se`` (e.g. a Monte Carlo re-pricing's standard
    errors at the quotes) also ``median_se_pts``. Quotes without a model vol count as outside and are left out of
    the RMSE (``n_missing``); quotes without a mid are left out."""
    if quotes.bid is None:
        raise ValueError("fit_by_expiry needs quotes with bid and ask")
    iv = np.asarray(model_iv, np.float64).reshape(-1)
    if iv.shape != (quotes.n,):
        raise ValueError(f"model_iv has {iv.size} values, the quotes {quotes.n}")
    half = 0.5 * (quotes.ask - quotes.bid)
    err = iv - quotes.iv
    se = np.full(quotes.n, np.nan) if model_se is None else VOL_POINTS * np.asarray(model_se, np.float64)
    quoted = np.isfinite(quotes.iv)  # a quote without a mid is not counted
    frame = pd.DataFrame({"T": quotes.maturities, "err": VOL_POINTS * err, "half": VOL_POINTS * half,
                          "inside": (iv >= quotes.bid) & (iv <= quotes.ask), "missing": ~np.isfinite(iv),
                          "se": se})[quoted]

    def summary(g: pd.DataFrame) -> dict:
        row = {"days": 365 * g["T"].iloc[0], "n": len(g), "rmse_pts": float(np.sqrt(np.nanmean(g["err"] ** 2))),
               "inside_spread": float(g["inside"].mean()),
               "median_half_spreads": float(np.nanmedian(np.abs(g["err"]) / g["half"])),
               "median_half_spread_pts": float(g["half"].median()), "n_missing": int(g["missing"].sum())}
        if model_se is not None:
            row["median_se_pts"] = float(np.nanmedian(g["se"]))
        return row

    rows = {f"{365 * T:.0f} d": summary(g) for T, g in frame.groupby("T", sort=True)}
    rows["all"] = {**summary(frame), "days": np.nan}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("expiry")
