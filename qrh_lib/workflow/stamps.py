r"""Step stamps: when a notebook of the pipeline must run again, and when its last run can be reused.

A step is reused when its key has not changed and the files it wrote are still there, unchanged:

.. math::

    \mathrm{key}_s = \mathrm{sha256}\bigl(\text{parameters}_s,\ \text{notebook source}_s,\
    \text{library source},\ \{\mathrm{key}_r, \text{hashes of the files } r \text{ wrote}\}_{r < s}\bigr)

so changing a parameter, editing a notebook or any file of the library (``qrh_lib`` and its subpackages) or
touching an upstream artifact recomputes that step and every later one (a dataset whose configuration and
scheme are unchanged is then found on disk, not priced again). The key and the files are kept in
``<run_dir>/.stamps/<notebook>.json``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..artifacts import save_json
from ..paths import LIBRARY_DIR
from . import profiles

STAMPS = ".stamps"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def snapshot(run_dir: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under the run folder, stamps excluded."""
    out = {}
    for p in run_dir.rglob("*"):
        if p.is_file() and STAMPS not in p.relative_to(run_dir).parts:
            st = p.stat()
            out[p.relative_to(run_dir).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def notebook_source_sha(nb: str) -> str:
    """Hash of the notebook's cells' sources and types (outputs and metadata do not count)."""
    cells = json.loads((profiles.NOTEBOOKS_DIR / f"{nb}.ipynb").read_text())["cells"]
    text = json.dumps([(c["cell_type"], "".join(c["source"])) for c in cells])
    return hashlib.sha256(text.encode()).hexdigest()


def library_source_sha() -> str:
    """Hash of the library's Python sources: every ``.py`` file of ``qrh_lib`` and its subpackages."""
    h = hashlib.sha256()
    for p in sorted(LIBRARY_DIR.rglob("*.py")):
        h.update(p.relative_to(LIBRARY_DIR).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def step_key(nb: str, params: dict, upstream: list[dict]) -> str:
    """The key of a step: its parameters, its notebook's and the library's source and what upstream steps wrote."""
    payload = {
        "notebook": nb,
        "source": notebook_source_sha(nb),
        "library": library_source_sha(),
        "params": params,
        "upstream": [{"key": s["key"], "outputs": s["outputs"]} for s in upstream],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def stamp_path(run_dir: Path, nb: str) -> Path:
    return run_dir / STAMPS / f"{nb}.json"


def read_stamp(run_dir: Path, nb: str) -> dict | None:
    p = stamp_path(run_dir, nb)
    return json.loads(p.read_text()) if p.exists() else None


def stamp_is_current(run_dir: Path, stamp: dict | None, key: str) -> bool:
    """True when the stamp has this key and every file it recorded is present and unchanged."""
    if stamp is None or stamp.get("key") != key:
        return False
    for rel, sha in stamp["outputs"].items():
        p = run_dir / rel
        if not p.is_file() or file_sha256(p) != sha:
            return False
    return True


def write_stamp(run_dir: Path, stamp: dict) -> Path:
    return save_json(stamp_path(run_dir, stamp["notebook"]), stamp, indent=1)
