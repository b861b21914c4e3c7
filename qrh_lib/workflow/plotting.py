"""Figures and display tables for the notebooks (presentation only: no computation of results here).

Every ``plot_*`` function draws with matplotlib/seaborn and returns the ``Figure``; grid maps are
(n_K, n_T) arrays laid out like :class:`qrh_lib.grid.Grid` (strike rows, maturity columns).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import stats

from ..grid import Grid
from ..iv import VOL_POINTS
from ..params import PARAM_NAMES, InputBox

sns.set_theme(style="whitegrid", context="notebook")


def _m_labels(grid: Grid) -> list[str]:
    """Strike rows labelled by m = k / sqrt(T)."""
    m = grid.log_moneyness[:, 0] / np.sqrt(grid.maturities[0])
    return [f"{v:+.2f}" for v in m]


def _t_labels(grid: Grid) -> list[str]:
    return [f"{round(t * 365)}d" for t in grid.maturities]


def table(d: dict, key: str = "metric", value: str = "value") -> pd.DataFrame:
    """A flat dict as a one-column table indexed by its keys."""
    return pd.DataFrame({value: list(d.values())}, index=pd.Index(list(d), name=key))


def input_box_table(box: InputBox) -> pd.DataFrame:
    """The sampling box: one row per input with its bounds."""
    return pd.DataFrame([{"input": n, "lower": lo, "upper": hi} for n, (lo, hi) in box.describe().items()]).set_index(
        "input"
    )


def plot_grid_map(
    values,
    grid: Grid,
    title: str = "",
    ax=None,
    fmt: str = ".2f",
    cmap: str = "viridis",
    center=None,
    cbar_label: str = "",
):
    """Annotated heatmap of one value per grid point."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.5, 4.5))
    sns.heatmap(
        np.asarray(values),
        annot=True,
        fmt=fmt,
        cmap=cmap,
        center=center,
        ax=ax,
        xticklabels=_t_labels(grid),
        yticklabels=_m_labels(grid),
        cbar_kws={"label": cbar_label},
        annot_kws={"fontsize": 7},
    )
    ax.set_xlabel("maturity")
    ax.set_ylabel(r"$m = k/\sqrt{T}$")
    ax.set_title(title)
    return fig


def plot_grid_maps(maps: dict, grid: Grid, fmt: str = ".2f", cbar_label: str = "vol points"):
    """Several grid maps side by side, one per dict entry."""
    fig, axes = plt.subplots(1, len(maps), figsize=(5.5 * len(maps), 4.5), squeeze=False)
    for ax, (name, values) in zip(axes[0], maps.items(), strict=True):
        plot_grid_map(values, grid, title=name, ax=ax, fmt=fmt, cbar_label=cbar_label)
    fig.tight_layout()
    return fig


def plot_smiles(surfaces: dict, grid: Grid, iv_se=None, title: str = "", ax=None):
    """Implied vol against log-moneyness, one colour per maturity, one line style per surface.

    ``surfaces`` maps a label to a flat surface (d,); ``iv_se`` (d,) adds error bars to the first.
    """
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 4.5))
    colours = sns.color_palette("viridis", grid.n_T)
    styles = ["-", "--", ":", "-."]
    for s, y in enumerate(surfaces.values()):
        Y = VOL_POINTS * np.asarray(y, np.float64).reshape(grid.shape)
        for j in range(grid.n_T):
            kw = {
                "color": colours[j],
                "ls": styles[s % len(styles)],
                "marker": "o" if s == 0 else None,
                "ms": 3,
                "label": _t_labels(grid)[j] if s == 0 else None,
            }
            if s == 0 and iv_se is not None:
                E = 1.96 * VOL_POINTS * np.asarray(iv_se, np.float64).reshape(grid.shape)
                ax.errorbar(grid.log_moneyness[:, j], Y[:, j], yerr=E[:, j], capsize=2, **kw)
            else:
                ax.plot(grid.log_moneyness[:, j], Y[:, j], **kw)
    ax.set_xlabel(r"log-moneyness $k = \log(K/S_0)$")
    ax.set_ylabel("implied vol (%)")
    if len(surfaces) > 1:
        title = f"{title}  ({', '.join(f'{st} {lb}' for st, lb in zip(styles, surfaces, strict=False))})"
    ax.set_title(title, fontsize=10)
    ax.legend(title="maturity", fontsize=8, ncol=2)
    return fig


def plot_example_surfaces(X, y, grid: Grid, iv_se=None, n: int = 3):
    """The first ``n`` surfaces of a split, with 95% Monte Carlo error bars."""
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 4.2), squeeze=False)
    for i, ax in enumerate(axes[0]):
        lab = ", ".join(f"{p}={X[i, j]:.3g}" for j, p in enumerate(PARAM_NAMES[:5]))
        plot_smiles({"MC": y[i]}, grid, None if iv_se is None else iv_se[i], title=f"#{i}: {lab}", ax=ax)
    fig.tight_layout()
    return fig


def plot_input_histograms(X, box: InputBox):
    """Marginal histograms of the 15 sampled inputs against their box."""
    fig, axes = plt.subplots(3, 5, figsize=(15, 7))
    for j, (ax, name) in enumerate(zip(axes.flat, PARAM_NAMES, strict=True)):
        sns.histplot(X[:, j], bins=20, ax=ax, color="C0")
        ax.axvline(box.lo[j], color="k", lw=0.8)
        ax.axvline(box.hi[j], color="k", lw=0.8)
        ax.set_title(name)
        ax.set_ylabel("")
    fig.tight_layout()
    return fig


def plot_pca_errors(errors: pd.DataFrame, median_se_pts: float, K: int, fraction: float):
    """Explained variance and reconstruction error against K, beside the labels' Monte Carlo noise."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.5))
    a1.plot(errors["K"], 1 - errors["total_explained"], "o-")
    a1.set_yscale("log")
    a1.set_xlabel("components K")
    a1.set_ylabel("unexplained variance ratio")
    a1.axvline(K, color="C3", ls="--", label=f"chosen K = {K}")
    a1.legend()
    a2.plot(errors["K"], errors["rmse_pts"], "o-", label="RMSE against the labels")
    if errors["signal_rmse_pts"].notna().all():
        a2.plot(errors["K"], errors["signal_rmse_pts"], "s-", label="estimated signal RMSE")
        a2.plot(errors["K"], errors["noise_floor_pts"], ":", label="noise part (expected)")
    a2.axhline(median_se_pts, color="k", lw=0.8, label="median MC standard error")
    a2.axhline(fraction * median_se_pts, color="C3", lw=0.8, ls="--", label=f"{fraction} x median MC SE")
    a2.axvline(K, color="C3", ls="--")
    a2.set_yscale("log")
    a2.set_xlabel("components K")
    a2.set_ylabel("vol points")
    a2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_learning_curves(history: pd.DataFrame):
    """Training and validation loss and MAE (vol points) per epoch, with the learning rate."""
    cols = [c for c in ("loss", "mae_vol_points") if c in history]
    fig, axes = plt.subplots(1, len(cols) + 1, figsize=(5.5 * (len(cols) + 1), 4))
    for ax, c in zip(axes, cols, strict=False):
        ax.plot(history.index + 1, history[c], label="train")
        if f"val_{c}" in history:
            ax.plot(history.index + 1, history[f"val_{c}"], label="validation")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(c)
        ax.legend()
    lr = next((c for c in ("learning_rate", "lr") if c in history), None)
    if lr:
        axes[-1].plot(history.index + 1, history[lr])
        axes[-1].set_yscale("log")
    axes[-1].set_title("learning rate")
    axes[-1].set_xlabel("epoch")
    fig.tight_layout()
    return fig


def plot_error_vs_se(y_true, y_pred, iv_se):
    """Absolute network error against the label's Monte Carlo standard error, point by point."""
    e = VOL_POINTS * np.abs(np.asarray(y_pred) - np.asarray(y_true)).reshape(-1)
    se = VOL_POINTS * np.asarray(iv_se).reshape(-1)
    ok = np.isfinite(e) & np.isfinite(se) & (se > 0)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.hexbin(se[ok], e[ok], gridsize=40, bins="log", xscale="log", yscale="log", cmap="viridis", mincnt=1)
    lim = np.array([se[ok].min(), se[ok].max()])
    ax.plot(lim, lim, "k--", lw=1, label="|error| = MC standard error")
    ax.set_xlabel("MC standard error of the label (vol points)")
    ax.set_ylabel("|network - label| (vol points)")
    ax.legend()
    return fig


def plot_bucket_metrics(df: pd.DataFrame, cols=("rmse_pts", "mae_pts", "max_pts")):
    """Bar charts of bucket metrics (one panel per column)."""
    fig, axes = plt.subplots(1, len(cols), figsize=(5.5 * len(cols), 4.5))
    for ax, c in zip(np.atleast_1d(axes), cols, strict=True):
        sns.barplot(data=df, y="bucket", x=c, ax=ax, color="C0")
        ax.set_xlabel(c.replace("_pts", " (vol points)"))
        ax.set_ylabel("")
    fig.tight_layout()
    return fig


def plot_residuals(y_true, y_pred):
    """Histogram with the fitted normal density, normal Q-Q plot, and residuals against predictions."""
    r = VOL_POINTS * (np.asarray(y_pred) - np.asarray(y_true)).reshape(-1)
    p = VOL_POINTS * np.asarray(y_pred).reshape(-1)
    known = np.isfinite(r)  # missing labels are left out
    r, p = r[known], p[known]
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(16, 4.5))
    sns.histplot(r, bins=80, stat="density", ax=a1, color="C0")
    x = np.linspace(r.min(), r.max(), 200)
    a1.plot(x, stats.norm.pdf(x, r.mean(), r.std()), "C3", label="normal fit")
    a1.set_xlabel("residual (vol points)")
    a1.legend()
    (osm, osr), (slope, intercept, _) = stats.probplot(r, dist="norm")
    a2.plot(osm, osr, ".", ms=2)
    a2.plot(osm, slope * osm + intercept, "C3")
    a2.set_xlabel("normal quantiles")
    a2.set_ylabel("residual quantiles (vol points)")
    a2.set_title("Q-Q plot")
    a3.hexbin(p, r, gridsize=50, bins="log", cmap="viridis", mincnt=1)
    a3.axhline(0, color="k", lw=0.8)
    a3.set_xlabel("predicted implied vol (%)")
    a3.set_ylabel("residual (vol points)")
    fig.tight_layout()
    return fig


def plot_recovered_inputs(X_true, X_found, box: InputBox):
    """Calibrated against true inputs, one panel per input, axes spanning the box."""
    fig, axes = plt.subplots(3, 5, figsize=(15, 8.5))
    for j, (ax, name) in enumerate(zip(axes.flat, PARAM_NAMES, strict=True)):
        ax.plot(X_true[:, j], X_found[:, j], "o", ms=4)
        lim = (box.lo[j], box.hi[j])
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_title(name)
    fig.supxlabel("true input")
    fig.supylabel("calibrated input")
    fig.tight_layout()
    return fig


def calibration_table(results) -> pd.DataFrame:
    """One row per :class:`qrh_lib.surrogate.calibration.CalibrationResult`: fit, iterations, time, success."""
    return pd.DataFrame(
        [
            {
                "fit_rmse_pts": r.fit_rmse_pts,
                "iterations": r.iterations,
                "evaluations": r.n_evaluations,
                "seconds": r.seconds,
                "success": bool(r.success),
            }
            for r in results
        ]
    )


def show_json(doc: dict) -> None:
    """Display a JSON summary: its scalars as one table, each list of records as its own table."""
    from IPython.display import Markdown, display

    scalars = {k: v for k, v in doc.items() if not isinstance(v, (dict, list))}
    if scalars:
        display(table(scalars, "quantity"))
    for k, v in doc.items():
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            display(Markdown(f"**{k.replace('_', ' ')}**"), pd.DataFrame(v))
        elif isinstance(v, dict):
            display(Markdown(f"**{k.replace('_', ' ')}**"))
            show_json(v)


def convergence_table(doc: dict, stats=("median_abs_bias", "max_abs_bias", "states_beyond_tol")) -> pd.DataFrame:
    """The convergence study's summary (``benchmarks/convergence.py``) as one table.

    One row per candidate (factor scheme and time steps) and set of states; for each statistic of the absolute
    discretisation bias against the reference over states and strikes (median and largest by default, in vol
    points), and the number of states with a point biased beyond the tolerance by more than three standard
    errors, one column per maturity.
    """
    rows = []
    cands = doc.get("candidates", {})
    for name, g in doc.get("grids", {}).items():
        for states, entry in g.items():
            if not isinstance(entry, dict) or "by_maturity" not in entry:
                continue
            c = cands.get(name, {})
            row = {("", "candidate"): name, ("", "scheme"): c.get("scheme", ""),
                   ("", "steps"): c.get("n_steps", g.get("n_steps")), ("", "states"): states,
                   ("", "n"): entry["by_maturity"][0].get("states")}
            for st in stats:
                for m in entry["by_maturity"]:
                    if st == "states_beyond_tol":
                        label = f"states biased > {VOL_POINTS * doc.get('tolerance', 1e-3):g} vol pt"
                        row[(label, f"{m['maturity_days']}d")] = m.get(st, np.nan)
                    else:
                        col = (st.replace("_", " ") + " (vol pts)", f"{m['maturity_days']}d")
                        row[col] = VOL_POINTS * m.get(st, np.nan)
            rows.append(row)
    out = pd.DataFrame(rows)
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    keys = [("", "candidate"), ("", "scheme"), ("", "steps"), ("", "states"), ("", "n")]
    return out.set_index(keys).rename_axis(["candidate", "scheme", "steps", "states", "n"]).round(3)


def plot_smile_panels(surfaces: dict, grid: Grid, title: str = ""):
    """One panel per maturity, one line per surface (e.g. a target, its fit and a re-pricing)."""
    n_cols = 3
    n_rows = -(-grid.n_T // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(13, 3.4 * n_rows), squeeze=False, sharex=False)
    for j, ax in enumerate(axes.flat):
        if j >= grid.n_T:
            ax.set_visible(False)
            continue
        for s, (label, y) in enumerate(surfaces.items()):
            Y = VOL_POINTS * np.asarray(y, np.float64).reshape(grid.shape)
            ax.plot(grid.log_moneyness[:, j], Y[:, j], marker="o" if s == 0 else None, ms=3, label=label)
        ax.set_title(_t_labels(grid)[j], fontsize=10)
        ax.set_xlabel("log-moneyness k")
        ax.set_ylabel("implied vol (%)")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def ablation_table(doc: dict) -> pd.DataFrame:
    """The ablation study (``benchmarks/results/ablation.json``): one row per recipe, errors against the truth
    set in vol points, and the change of MAE against the plain MLP of the first row."""
    rows = pd.DataFrame(doc["runs"]).set_index("recipe")
    out = rows[["truth_mae_pts", "truth_rmse_noise_removed_pts", "truth_p99_pts", "truth_max_pts", "K",
                "epochs_run", "train_seconds"]].copy()
    out.columns = ["MAE", "RMSE (noise removed)", "p99", "max", "K", "epochs", "seconds"]
    out.insert(1, "MAE vs baseline (%)", 100 * (out["MAE"] / out["MAE"].iloc[0] - 1))
    return out.round({"MAE": 3, "MAE vs baseline (%)": 1, "RMSE (noise removed)": 3, "p99": 3, "max": 2,
                      "seconds": 0})


def plot_learning_curve(doc: dict):
    """Error against the truth set vs training surfaces (log-log) with the fitted power law, and the runs at an
    equal pricing budget (``benchmarks/results/learning_curve.json``)."""
    runs = pd.DataFrame(doc["runs"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    size = runs[runs["kinds"].apply(lambda k: "size" in k)].sort_values("n_train")
    for col, label, marker in (("truth_mae_pts", "MAE", "o"), ("truth_rmse_noise_removed_pts", "RMSE", "s")):
        ax.loglog(size["n_train"], size[col], marker, label=f"{label} (truth set)")
        fit = doc.get("power_law", {}).get(col.removeprefix("truth_"))
        if fit:
            n = np.geomspace(size["n_train"].min(), fit["n_train_for_0.05"] * 1.2, 50)
            ax.loglog(n, fit["A"] * n ** -fit["exponent"], "--", color=ax.lines[-1].get_color(),
                      label=f"{label} = {fit['A']:.3g} N^-{fit['exponent']:.2f}")
    ax.axhline(0.05, color="grey", lw=0.8)
    ax.set_xlabel("training surfaces N")
    ax.set_ylabel("error (vol points)")
    ax.set_title("learning curve")
    ax.legend(fontsize=8)
    ax = axes[1]
    budget = runs[runs["kinds"].apply(lambda k: "budget" in k)].sort_values("n_paths")
    ax.semilogx(budget["n_paths"], budget["truth_mae_pts"], "o-", label="MAE (truth set)")
    for _, r in budget.iterrows():
        ax.annotate(f"{r['n_design']:,} surfaces", (r["n_paths"], r["truth_mae_pts"]), fontsize=8,
                    textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("paths per surface (surfaces x paths fixed)")
    ax.set_ylabel("MAE (vol points)")
    ax.set_title("equal pricing budget")
    fig.tight_layout()
    return fig


def plot_market_smiles(quotes, models: dict, max_panels: int = 12, cols: int = 4):
    """Market smiles per expiry: bid-ask bars of ``quotes`` (:class:`qrh_lib.surrogate.quotes.Quotes` with bid and
    ask) against k = log(K/F), and each model's vols at the same quotes (``models``: label -> flat vols, or
    label -> (vols, standard errors) for a Monte Carlo re-pricing, drawn with 95% bars). At most ``max_panels``
    expiries, evenly chosen."""
    T_all = np.unique(quotes.maturities)
    T_show = T_all[np.unique(np.linspace(0, T_all.size - 1, min(max_panels, T_all.size)).round().astype(int))]
    rows = -(-T_show.size // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, T in zip(axes.flat, T_show, strict=False):
        on = quotes.maturities == T
        k = quotes.log_moneyness[on]
        order = np.argsort(k)
        k = k[order]
        mid = VOL_POINTS * quotes.iv[on][order]
        half = VOL_POINTS * 0.5 * (quotes.ask - quotes.bid)[on][order]
        ax.errorbar(k, mid, yerr=half, fmt="none", ecolor="0.55", elinewidth=1.2, label="bid-ask")
        for label, v in models.items():
            vals, se = v if isinstance(v, tuple) else (v, None)
            y = VOL_POINTS * np.asarray(vals)[on][order]
            if se is None:
                ax.plot(k, y, "-", lw=1.5, label=label)
            else:
                ax.errorbar(k, y, yerr=1.96 * VOL_POINTS * np.asarray(se)[on][order], fmt=".", ms=3, lw=0.8,
                            label=label)
        ax.set_title(f"T = {365 * T:.0f} days")
        ax.set_xlabel("log(K/F)")
        ax.set_ylabel("implied vol (%)")
    for ax in list(axes.flat)[T_show.size :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
