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

#: Market quotes (option chains of implied vols, one CSV per underlying and day) are read from here, not copied
#: into the project: the shared folder beside the project's root, or ``$QRH_MARKET_DIR``.
MARKET_DATA_DIR = Path(os.environ.get("QRH_MARKET_DIR", PROJ_ROOT.parent / "shared" / "data" / "market"))
#: The day of the shared quotes (yyyymmdd), and the underlyings quoted for each day.
MARKET_DATE = "20230215"
MARKET_UNDERLYINGS = ("spx", "vix")


def market_file(underlying: str, date: str = MARKET_DATE) -> Path:
    """The quotes file of ``underlying`` (``"spx"`` or ``"vix"``) on ``date``: ``<underlying>_implied_vol_<date>.csv``
    in :data:`MARKET_DATA_DIR` (it may not exist: see :func:`has_market_data`)."""
    if underlying not in MARKET_UNDERLYINGS:
        raise ValueError(f"underlying {underlying!r} is not one of {MARKET_UNDERLYINGS}")
    return MARKET_DATA_DIR / f"{underlying}_implied_vol_{date}.csv"


def has_market_data(date: str = MARKET_DATE) -> bool:
    """Whether the quotes files of every underlying are there for ``date`` (notebooks skip their market sections
    when not)."""
    return all(market_file(u, date).is_file() for u in MARKET_UNDERLYINGS)
