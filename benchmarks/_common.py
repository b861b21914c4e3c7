"""Shared helpers of the benchmark scripts: the surrogate under test, machine facts, JSON output."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from qrh_lib.artifacts import save_json, versions
from qrh_lib.paths import BENCHMARKS_DIR
from qrh_lib.surrogate import QRHSurrogate

RESULTS_DIR = BENCHMARKS_DIR / "results"


def common_parser(doc: str, name: str):
    """Argument parser with the options every benchmark takes: --surrogate, --seed, --out."""
    import argparse

    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--surrogate", default=None, help="artifact folder (default: train a smoke surrogate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help=f"JSON path (default benchmarks/results/{name}.json)")
    return p


def get_surrogate(path: str | None, seed: int = 0) -> tuple[QRHSurrogate, dict]:
    """Load the artifact at ``path``; without one, train a smoke surrogate of the default architecture
    (width 128, 4 blocks) for a few epochs on synthetic data: its speed is that of the real network,
    its accuracy means nothing."""
    if path:
        return QRHSurrogate.load(path), {"artifact": str(path), "smoke": False}
    from qrh_lib.surrogate.config import TrainConfig
    from qrh_lib.surrogate.training import train_from_folder
    from qrh_lib.synthetic import write_synthetic_dataset

    tmp = Path(tempfile.mkdtemp(prefix="qrh_bench_"))
    data = write_synthetic_dataset(tmp / "data_synth", n_train=2000, n_val=400, n_test=400, seed=seed)
    cfg = TrainConfig.from_flat({"n_components": 12, "epochs": 20, "seed": seed})
    sur, _ = train_from_folder(data, cfg)
    return sur, {"artifact": None, "smoke": True, "note": "synthetic smoke surrogate: timings only"}


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu or platform.processor(),
        "n_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_avg_1min": os.getloadavg()[0],
        "versions": versions(),
    }


def model_summary(sur: QRHSurrogate) -> dict:
    return {
        "n_params": int(sur.model.count_params()),
        "K": int(sur.pca_info["K"]),
        "config": sur.config.get("train", {}),
    }


def timeit(fn, repeat: int, number: int = 1) -> np.ndarray:
    """Seconds per call of ``fn`` for ``repeat`` timings of ``number`` calls each."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        out.append((time.perf_counter() - t) / number)
    return np.asarray(out)


def write_result(name: str, result: dict, out: str | None) -> Path:
    return save_json(Path(out) if out else RESULTS_DIR / f"{name}.json", result)
