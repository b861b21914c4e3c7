"""The files a run folder holds, through which the notebooks pass their results along.

A run folder (``book/run`` by default, see :mod:`qrh_lib.workflow.pipeline`) receives, step by step::

    dataset.json              01: where the dataset is (it may live outside the run folder)
    pca_choice.json           02: the chosen number of PCA components and why
    model_config.json         03: architecture and loss weights
    surrogate/, training/     04: the trained artifact, checkpoint and history (tensorboard/ too)
    test_predictions.npz      05: the surrogate's test-set surfaces
    metrics_<step>.json       every step: its measurements, read by qrh_lib.workflow.report

Relative run folders are taken relative to the project root, never to the working directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..artifacts import save_json
from ..paths import BOOK_DIR, PROJ_ROOT

#: The book's own run folder: where ``make run`` executes the notebooks.
DEFAULT_RUN_DIR = BOOK_DIR / "run"


def run_path(run_dir: str | os.PathLike, *parts: str) -> Path:
    """``run_dir / parts``, with a relative ``run_dir`` resolved against the project root."""
    p = Path(run_dir).expanduser()
    return (p if p.is_absolute() else PROJ_ROOT / p).joinpath(*parts)


def write_json(run_dir, name: str, obj) -> Path:
    """Write ``obj`` (numpy values allowed) as ``<run_dir>/<name>``; returns the path."""
    return save_json(run_path(run_dir, name), obj, indent=1)


def read_json(run_dir, name: str):
    """Read ``<run_dir>/<name>``; a missing file names the notebook that should have written it."""
    path = run_path(run_dir, name)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the earlier notebooks into this run folder first")
    return json.loads(path.read_text())


def write_metrics(run_dir, step: str, title: str, scalars: dict, tables: dict | None = None) -> Path:
    """Save a step's measurements as ``<run_dir>/metrics_<step>.json``.

    ``scalars`` maps names to numbers, strings or booleans; ``tables`` maps names to lists of row dicts
    (for example ``DataFrame.to_dict("records")``). The results page shows both.
    """
    doc = {"step": step, "title": title, "scalars": scalars, "tables": tables or {}}
    return write_json(run_dir, f"metrics_{step}.json", doc)


def read_metrics(run_dir) -> dict[str, dict]:
    """All metrics files of a run folder, keyed by step, in step order."""
    out = {}
    for p in sorted(run_path(run_dir).glob("metrics_*.json")):
        doc = json.loads(p.read_text())
        out[doc["step"]] = doc
    return out


def dataset_path(run_dir) -> Path:
    """The dataset folder that notebook 01 recorded in ``<run_dir>/dataset.json``."""
    return Path(read_json(run_dir, "dataset.json")["path"])
