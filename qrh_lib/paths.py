"""Project paths, derived from this file's location (one source of truth for every path)."""

from __future__ import annotations

import os
from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parents[1]
LIBRARY_DIR = PROJ_ROOT / "qrh_lib"
DATA_DIR = Path(os.environ.get("QRH_DATA_DIR", PROJ_ROOT / "data"))
RAW_DATA_DIR = DATA_DIR / "raw"
MODELS_DIR = PROJ_ROOT / "models"
REPORTS_DIR = PROJ_ROOT / "reports"
RUNS_DIR = PROJ_ROOT / "runs"
BOOK_DIR = PROJ_ROOT / "book"
PROFILES_DIR = PROJ_ROOT / "profiles"
BENCHMARKS_DIR = PROJ_ROOT / "benchmarks"
