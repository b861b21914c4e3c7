"""Writing artifacts safely and recording how they were made: the one place for both.

Every file the project keeps (dataset arrays and scalers, manifests, the surrogate artifact, run-folder JSON,
benchmark results) is written through :func:`atomic_write`: into a temporary file in the same folder, flushed
to disk, then renamed over the target, so a reader, or a job resumed after a crash, never sees half a file.
:func:`versions` is the record of what made an artifact (library versions, machine, devices, git commit).
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .paths import PROJ_ROOT


def atomic_write(path: str | os.PathLike, write, fsync: bool = True) -> Path:
    """Call ``write(f)`` on a binary file that becomes ``path`` only once complete; returns ``path``.

    The file goes through a temporary file in the same folder and a rename. ``fsync=False`` skips forcing it
    to disk (for files that are only shown, like progress reports).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes the file private; artifacts are meant to be read
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def plain(x):
    """A JSON-ready copy: numpy scalars and arrays become numbers and lists, paths strings, tuples lists."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return plain(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return x


def save_json(path: str | os.PathLike, obj, indent: int = 2) -> Path:
    """Write ``obj`` (numpy values and paths allowed) as JSON, atomically."""
    text = json.dumps(plain(obj), indent=indent) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()))


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())


def save_npy(path: str | os.PathLike, arr) -> Path:
    return atomic_write(path, lambda f: np.save(f, arr))


def save_npz(path: str | os.PathLike, compressed: bool = False, **arrays) -> Path:
    """Write ``arrays`` into one ``.npz`` file (``compressed=True``: ``np.savez_compressed``), atomically."""
    save = np.savez_compressed if compressed else np.savez
    return atomic_write(path, lambda f: save(f, **arrays))


def save_pickle(path: str | os.PathLike, obj) -> Path:
    return atomic_write(path, lambda f: pickle.dump(obj, f))


def load_pickle(path: str | os.PathLike):
    with open(path, "rb") as f:
        return pickle.load(f)


def git_commit() -> str | None:
    """The project's checked-out commit, or ``None`` outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJ_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def versions() -> dict:
    """What made an artifact: Python and library versions, the machine, TensorFlow's devices, the git commit."""
    import keras
    import scipy
    import sklearn
    import tensorflow as tf

    return {"python": sys.version.split()[0], "numpy": np.__version__, "scipy": scipy.__version__,
            "tensorflow": tf.__version__, "keras": keras.__version__, "scikit-learn": sklearn.__version__,
            "platform": platform.platform(), "machine": platform.machine(),
            "devices": [d.device_type for d in tf.config.list_physical_devices()], "git_commit": git_commit()}
