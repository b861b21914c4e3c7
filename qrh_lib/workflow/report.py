"""Metrics files of a run in, the book's results page out: no number on that page is typed by hand.

Each notebook saves its measurements with :func:`qrh_lib.workflow.runs.write_metrics` as
``<run_dir>/metrics_<step>.json``::

    {"step": "05_evaluation", "title": "...", "scalars": {"rmse_vol_pts": 0.31, ...},
     "tables": {"buckets": [{"bucket": "ATM", "rmse": ...}, ...]}}

:func:`write_results_page` reads every such file and writes ``<run_dir>/results.md``: a headline table
(the numbers listed in :data:`HEADLINE`, where present), this run beside the published anchors
(:func:`anchors_markdown`), then one section per step with all its scalars and tables. Numbers are written for
people by :func:`fmt`.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import time
from pathlib import Path

from .runs import read_metrics

#: Headline rows of the results page: (step, scalar key, label). Missing ones are left out. Times are shown
#: with their unit (see :func:`fmt`), so their labels carry none.
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("01_data_generation", "n_train", "training surfaces"),
    ("01_data_generation", "n_test", "test surfaces"),
    ("01_data_generation", "n_paths", "Monte Carlo paths per surface"),
    ("01_data_generation", "label_se_median_vol_pts", "median MC standard error of a label (vol points)"),
    ("01_data_generation", "seconds_per_surface", "Monte Carlo time per surface (dataset)"),
    ("02_pca", "n_components", "PCA components K"),
    ("04_training", "epochs_run", "training epochs"),
    ("05_evaluation", "truth_mae_pts", "truth-set MAE (vol points)"),
    ("05_evaluation", "truth_rmse_pts", "truth-set RMSE (vol points)"),
    ("05_evaluation", "truth_p99_pts", "truth-set 99th percentile absolute error (vol points)"),
    ("05_evaluation", "truth_max_pts", "truth-set max absolute error (vol points)"),
    ("05_evaluation", "truth_relative_mae_pct", "truth-set mean relative error"),
    ("05_evaluation", "rmse_pts", "test RMSE against the noisy labels (vol points)"),
    ("05_evaluation", "mae_pts", "test MAE against the noisy labels (vol points)"),
    ("05_evaluation", "p99_pts", "test 99th percentile absolute error (vol points)"),
    ("05_evaluation", "max_pts", "test max absolute error (vol points)"),
    ("05_evaluation", "r2", "test R²"),
    ("05_evaluation", "rmse_over_rms_se", "test RMSE / RMS MC standard error"),
    ("05_evaluation", "rmse_vs_truth_est_pts", "estimated RMSE against the noise-free surface (vol points)"),
    ("05_evaluation", "surfaces_per_second_batched", "surrogate surfaces per second (batched)"),
    ("05_evaluation", "single_surface_latency_us", "surrogate latency for one surface"),
    ("05_evaluation", "speedup_vs_mc", "speed-up over the Monte Carlo pricer (batched)"),
    ("08_calibration", "median_seconds", "median calibration time"),
    ("08_calibration", "median_fit_rmse_vol_pts", "median calibration fit RMSE (vol points)"),
    ("08_calibration", "median_mc_rmse_vol_pts", "median MC re-pricing RMSE at the fit (vol points)"),
    ("09_vix", "vix_truth_mae_pts", "VIX network: truth-set MAE (vol points)"),
    ("09_vix", "vix_truth_rmse_pts", "VIX network: truth-set RMSE (vol points)"),
    ("09_vix", "joint_calibration_median_ms", "joint SPX/VIX calibration, median time"),
    ("10_market", "spx_mc_rmse_pts", "market SPX fit re-priced by Monte Carlo, RMSE to the mids (vol points)"),
    ("10_market", "spx_surrogate_vs_mc_rmse_pts", "surrogate against Monte Carlo at the market fit (vol points)"),
    ("10_market", "joint_vix_mc_inside_spread", "joint market fit: VIX re-priced inside the bid-ask spread"),
    ("10_market", "spx_calibration_median_ms", "calibration to the SPX market quotes, median time"),
)

#: Durations by the last word of their key (``train_seconds``, ``seconds_per_surface``, ``latency_us``): seconds
#: per unit. A key holding the word ``seconds`` anywhere is in seconds; ``per_second`` (a rate) is not a time.
TIME_SUFFIXES = {"us": 1e-6, "ms": 1e-3}
#: Units a duration is shown in: (name, seconds, shown from this many seconds up).
TIME_UNITS = (("h", 3600.0, 7200.0), ("min", 60.0, 120.0), ("s", 1.0, 1.0), ("ms", 1e-3, 1e-3), ("µs", 1e-6, 0.0))


def _number(x: float) -> str:
    """Three significant digits, thousands separated; an integral value as the integer."""
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    r = float(f"{x:.3g}")
    return f"{r:,.0f}" if abs(r) >= 1000 else f"{r:.3g}"


def _seconds(key: str, x: float) -> float | None:
    """``x`` in seconds when ``key`` names a duration, else ``None``."""
    words = key.split("_")
    if "seconds" in words:
        return x
    return x * TIME_SUFFIXES[words[-1]] if words[-1] in TIME_SUFFIXES else None


def fmt(x, key: str = "") -> str:
    """A value as the results page shows it, for people.

    Integers (and integral floats) whole with thousands separators (``589,000``), other numbers to three
    significant digits (``0.123``, ``12.3``, ``1.23e-05``), durations with a unit chosen to fit when ``key`` says
    the value is one (``412 ms``, ``31.2 µs``, ``20.6 min``), percentages (``_pct`` keys) with ``%``, a missing
    value (``None``) as ``n/a``.
    """
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x)
    if not isinstance(x, numbers.Real):
        return str(x).replace("|", "\\|")
    if not math.isfinite(x):
        return str(x)
    seconds = _seconds(key, x)
    if seconds is not None:
        name, size, _ = next(u for u in TIME_UNITS if abs(seconds) >= u[2])
        return f"{_number(seconds / size)} {name}"
    return _number(x) + (" %" if key.endswith("_pct") else "")


def markdown_table(rows: list[dict]) -> str:
    """A GitHub/MyST pipe table from a list of row dicts (columns in first-seen order; a column's name is the
    key :func:`fmt` reads units from, and strings, formatted already, pass unchanged)."""
    if not rows:
        return "(empty)\n"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c, ""), c) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


#: Rows of "This run beside the published anchors": (quantity, step, keys of this run's value (joined by " / "),
#: Rosenbaum & Zhang 2021, Horvath, Muguruza & Tomas 2021). First the data, then the results; bold rows are this
#: run's headline error.
DATA_ANCHORS: tuple[tuple[str, str, tuple[str, ...], str, str], ...] = (
    (
        "training / validation / test surfaces",
        "01_data_generation",
        ("n_train", "n_val", "n_test"),
        "150,000 / 20,000 / 10,000",
        "40,000–80,000 in all",
    ),
    ("Monte Carlo paths per surface", "01_data_generation", ("n_paths",), "50,000, no variance reduction", "—"),
)
RESULT_ANCHORS: tuple[tuple[str, str, tuple[str, ...], str, str], ...] = (
    ("**error against the truth set: MAE (vol points)**", "05_evaluation", ("truth_mae_pts",), "—", "—"),
    (
        "error against the truth set: RMSE / 99th percentile / max (vol points)",
        "05_evaluation",
        ("truth_rmse_pts", "truth_p99_pts", "truth_max_pts"),
        "—",
        "—",
    ),
    ("**error against the truth set: mean relative error**", "05_evaluation", ("truth_relative_mae_pct",), "—", "—"),
    (
        "error against the noisy Monte Carlo test labels (secondary): MAE (vol points)",
        "05_evaluation",
        ("mae_pts",),
        "0.20–0.55",
        "—",
    ),
    (
        "error against the noisy Monte Carlo test labels (secondary): mean relative error",
        "05_evaluation",
        ("mean_rel_pct",),
        "0.8–1.4 %",
        "below 0.5 %",
    ),
    (
        "surrogate, one surface",
        "05_evaluation",
        ("single_surface_latency_us",),
        "—",
        "about 30 µs (NumPy forward pass)",
    ),
    ("surrogate surfaces per second, batched", "05_evaluation", ("surfaces_per_second_batched",), "—", "—"),
    ("Monte Carlo pricer, one surface", "05_evaluation", ("mc_seconds_per_surface",), "—", "about 500 ms"),
    (
        "calibration to one surface (median)",
        "08_calibration",
        ("median_seconds",),
        "—",
        "about 7 ms (Levenberg–Marquardt) to 25 ms (L-BFGS-B)",
    ),
    (
        "VIX network: error against low-noise labels, MAE / RMSE (vol points)",
        "09_vix",
        ("vix_truth_mae_pts", "vix_truth_rmse_pts"),
        "1.0–2.0 against labels of 1.0–2.5 noise",
        "—",
    ),
    ("joint SPX/VIX calibration (median)", "09_vix", ("joint_calibration_median_ms",), "—", "—"),
)


def anchors_markdown(metrics: dict[str, dict]) -> str:
    """The section "This run beside the published anchors": the rows of :data:`DATA_ANCHORS`, the label noise (as
    the half-width of a 95% interval) and :data:`RESULT_ANCHORS`, this run's values read from its metrics (``n/a``
    where a key is missing)."""

    def scalars(step: str) -> dict:
        return metrics.get(step, {}).get("scalars", {})

    def rows(anchors) -> list[tuple]:
        return [
            (q, " / ".join(fmt(scalars(step).get(k), k) for k in keys), rz, hmt) for q, step, keys, rz, hmt in anchors
        ]

    se = scalars("01_data_generation")
    noise = " to ".join(
        f"{fmt(1.96 * se[k])} ({what})"
        for k, what in (("label_se_median_vol_pts", "median"), ("label_se_p95_vol_pts", "95th percentile"))
        if k in se
    )
    table = [
        ("model", "quadratic rough Heston", "quadratic rough Heston (SPX)", "rough Bergomi, 8 × 11 grid"),
        *rows(DATA_ANCHORS),
        ("label noise: half-width of the 95% interval, 1.96 σ (vol points)", noise or "n/a", "0.6–1.2", "—"),
        *rows(RESULT_ANCHORS),
    ]
    cols = ("quantity", "this run", "Rosenbaum & Zhang 2021", "Horvath, Muguruza & Tomas 2021")
    return "\n".join(
        [
            "## This run beside the published anchors",
            "",
            "The deep-calibration papers this project follows, Rosenbaum and Zhang {cite:p}`rosenbaum2021deep` "
            "(the quadratic rough Heston model on SPX) and Horvath, Muguruza and Tomas {cite:p}`horvath2021deep` "
            "(rough Bergomi), give a scale to this run's numbers. Their columns are quoted from the papers; "
            "— marks a figure not quoted here. Their errors are measured against Monte Carlo labels, like this "
            "run's secondary rows; this run's headline error (in bold) is against the truth set, surfaces priced "
            "with far more paths (see {doc}`05_evaluation`).",
            "",
            markdown_table([dict(zip(cols, row, strict=True)) for row in table]),
        ]
    )


def results_markdown(metrics: dict[str, dict], run_info: dict | None = None) -> str:
    """The results page as MyST markdown, from :func:`read_metrics`'s output."""
    out = ["(results)=", "# Results", ""]
    info = run_info or {}
    where = f" with the `{info['profile']}` profile" if info.get("profile") else ""
    out += [
        f"Every number of this run on this page is read from the metrics files of the run this book was built "
        f"from{where} (`metrics_<step>.json` in the run folder), written by the notebooks that follow; only the "
        f"published anchors are quoted from their papers. "
        f"Page generated {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
    ]
    if not metrics:
        return "\n".join(out + ["No metrics files were found in this run folder.", ""])
    head = [
        {"quantity": label, "value": fmt(metrics[step]["scalars"][key], key), "from": f"{{doc}}`{step}`"}
        for step, key, label in HEADLINE
        if key in metrics.get(step, {}).get("scalars", {})
    ]
    if head:
        out += ["## Headline", "", markdown_table(head)]
    out += [anchors_markdown(metrics)]
    for step, doc in metrics.items():
        out += [f"## {doc.get('title', step)}", "", f"From {{doc}}`{step}`.", ""]
        scalars = [{"metric": k, "value": fmt(v, k)} for k, v in doc.get("scalars", {}).items()]
        if scalars:
            out += [markdown_table(scalars)]
        for name, rows in doc.get("tables", {}).items():
            out += [f"**{name.replace('_', ' ')}**", "", markdown_table(rows)]
    return "\n".join(out)


def write_results_page(run_dir: str | os.PathLike) -> Path:
    """Write ``<run_dir>/results.md`` from the run's metrics files and return its path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    info_path = run_dir / "run_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    path = run_dir / "results.md"
    path.write_text(results_markdown(read_metrics(run_dir), info))
    return path
