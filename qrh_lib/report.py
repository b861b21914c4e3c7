"""Metrics files of a run in, the book's results page out: no number on that page is typed by hand.

Each notebook saves its measurements with :func:`qrh_lib.runs.write_metrics` as
``<run_dir>/metrics_<step>.json``::

    {"step": "05_evaluation", "title": "...", "scalars": {"rmse_vol_pts": 0.31, ...},
     "tables": {"buckets": [{"bucket": "ATM", "rmse": ...}, ...]}}

:func:`write_results_page` reads every such file and writes ``<run_dir>/results.md``: a headline table
(the numbers listed in :data:`HEADLINE`, where present), then one section per step with all its scalars and
tables.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import time
from pathlib import Path

from .runs import read_metrics

#: Headline rows of the results page: (step, scalar key, label). Missing ones are left out.
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("01_data_generation", "n_train", "training surfaces"),
    ("01_data_generation", "n_test", "test surfaces"),
    ("01_data_generation", "n_paths", "Monte Carlo paths per surface"),
    ("01_data_generation", "label_se_median_vol_pts", "median MC standard error of a label (vol points)"),
    ("01_data_generation", "seconds_per_surface", "Monte Carlo seconds per surface (dataset)"),
    ("02_pca", "n_components", "PCA components K"),
    ("04_training", "epochs_run", "training epochs"),
    ("05_evaluation", "rmse_pts", "test RMSE (vol points)"),
    ("05_evaluation", "mae_pts", "test MAE (vol points)"),
    ("05_evaluation", "p99_pts", "test 99th percentile absolute error (vol points)"),
    ("05_evaluation", "max_pts", "test max absolute error (vol points)"),
    ("05_evaluation", "r2", "test R²"),
    ("05_evaluation", "rmse_over_rms_se", "test RMSE / RMS MC standard error"),
    ("05_evaluation", "rmse_vs_truth_est_pts", "estimated RMSE against the noise-free surface (vol points)"),
    ("05_evaluation", "surfaces_per_second_batched", "surrogate surfaces per second (batched)"),
    ("05_evaluation", "single_surface_latency_us", "surrogate latency for one surface (µs)"),
    ("05_evaluation", "speedup_vs_mc", "speed-up over the Monte Carlo pricer (batched)"),
    ("08_calibration", "median_seconds", "median calibration time (s)"),
    ("08_calibration", "median_fit_rmse_vol_pts", "median calibration fit RMSE (vol points)"),
    ("08_calibration", "median_mc_rmse_vol_pts", "median MC re-pricing RMSE at the fit (vol points)"),
)


def fmt(x) -> str:
    """A number as the results page shows it: integers with separators, floats to 4 significant digits."""
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, numbers.Integral):
        return f"{x:,}"
    if isinstance(x, numbers.Real):
        if not math.isfinite(x):
            return str(x)
        if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
            return f"{x:.3e}"
        return f"{x:.4g}"
    return str(x).replace("|", "\\|")


def markdown_table(rows: list[dict]) -> str:
    """A GitHub/MyST pipe table from a list of row dicts (columns in first-seen order)."""
    if not rows:
        return "(empty)\n"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def results_markdown(metrics: dict[str, dict], run_info: dict | None = None) -> str:
    """The results page as MyST markdown, from :func:`read_metrics`'s output."""
    out = ["(results)=", "# Results", ""]
    info = run_info or {}
    where = f" with the `{info['profile']}` profile" if info.get("profile") else ""
    out += [
        f"Every number on this page is read from the metrics files of the run this book was built "
        f"from{where} (`metrics_<step>.json` in the run folder), written by the notebooks that follow. "
        f"Page generated {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
    ]
    if not metrics:
        return "\n".join(out + ["No metrics files were found in this run folder.", ""])
    head = [
        {"quantity": label, "value": metrics[step]["scalars"][key], "from": f"{{doc}}`{step}`"}
        for step, key, label in HEADLINE
        if key in metrics.get(step, {}).get("scalars", {})
    ]
    if head:
        out += ["## Headline", "", markdown_table(head)]
    for step, doc in metrics.items():
        out += [f"## {doc.get('title', step)}", "", f"From {{doc}}`{step}`.", ""]
        scalars = [{"metric": k, "value": v} for k, v in doc.get("scalars", {}).items()]
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
