"""What every benchmark script shares: its options and result file, the inputs it prices, its timer, the record it
writes (benchmark name, time, machine and versions), and the surrogate under test.

- :func:`parser`, :func:`parse_args`: the options (``--out``, ``--results-dir``, ``--quick``; ``--surrogate`` and
  ``--seed`` for the scripts that time a surrogate); a quick run may not write into ``benchmarks/results/``.
- :func:`result_path`, :func:`previous_result`, :func:`record`, :func:`write_result`: where the JSON goes, what it
  held, its header, and the atomic write.
- :func:`sample_domain`: the first points of the seeded Sobol design (:func:`qrh_lib.data.sample_inputs`) inside a
  domain, by default the stable part of Rosenbaum & Zhang's box.
- :func:`timed`, :func:`timed_each`: wall and CPU seconds of calls, after untimed warm-up calls.
- :func:`get_surrogate`, :func:`model_summary`: the artifact under test (or a smoke surrogate) and its size.
- :func:`run_trainings`: the trainings of a study, one after the other here or one Dask task each.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qrh_lib.artifacts import read_json, save_json, versions
from qrh_lib.cluster import open_client, run_tasks, settings, uses_dask
from qrh_lib.data import sample_inputs
from qrh_lib.domain import STABILITY_MARGIN, Domain
from qrh_lib.params import RZ_BOX
from qrh_lib.paths import BENCHMARKS_DIR

RESULTS_DIR = BENCHMARKS_DIR / "results"


# ---------------------------------------------------------------------------------------------------------------
# options and result files


def parser(doc: str, name: str, surrogate: bool = False) -> argparse.ArgumentParser:
    """The script's parser with the options every benchmark takes: ``--out`` (its JSON, ``<name>.json`` by
    default; a bare file name goes in ``--results-dir``, any other path is used as it is) and ``--results-dir``
    (``benchmarks/results``); with ``surrogate``, ``--surrogate`` and ``--seed`` too."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None,
                   help=f"the result JSON (default {name}.json in --results-dir; a bare name goes there too)")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="folder of the result files")
    if surrogate:
        p.add_argument("--surrogate", default=None, help="artifact folder (default: train a smoke surrogate)")
        p.add_argument("--seed", type=int, default=0)
    return p


def parse_args(p: argparse.ArgumentParser, argv=None, quick: dict | None = None) -> argparse.Namespace:
    """Parse ``argv``; with ``quick``, the script takes ``--quick``, which makes those settings the defaults (a
    check that the script runs, in a minute or two; options given on the command line still win). A quick run
    refuses to write into ``benchmarks/results/``: give ``--out`` or ``--results-dir`` elsewhere."""
    if quick is not None:
        shown = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in quick.items())
        p.add_argument("--quick", action="store_true", help=f"a check that it runs: {shown}")
    a = p.parse_args(argv)
    if quick is not None and a.quick:
        p.set_defaults(**quick)
        a = p.parse_args(argv)
    return a


def result_path(a: argparse.Namespace, name: str) -> Path:
    """The JSON file of a run with options ``a`` (see :func:`parser`)."""
    out = Path(a.out or f"{name}.json")
    path = Path(a.results_dir) / out if out.parent == Path(".") else out
    if getattr(a, "quick", False) and path.resolve().is_relative_to(RESULTS_DIR.resolve()):
        raise SystemExit(f"--quick would write {path}, a recorded result: give --out or --results-dir elsewhere")
    return path


def previous_result(path: Path) -> dict:
    """The record at ``path``, or ``{}`` (for scripts that add to a record section by section)."""
    return read_json(path) if Path(path).exists() else {}


def machine() -> dict:
    """The machine and the software: CPU, cores, platform, load, package versions and commit."""
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


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def record(name: str, **fields) -> dict:
    """The head of every result: ``benchmark``, ``created`` (UTC), ``machine`` (:func:`machine`), then ``fields``."""
    return {"benchmark": name, "created": utc_now(), "machine": machine(), **fields}


def write_result(path: Path, result: dict, quiet: bool = False) -> Path:
    """Write ``result`` to ``path`` atomically (:func:`qrh_lib.artifacts.save_json`); says where."""
    out = save_json(path, result)
    if not quiet:
        print(f"wrote {out}", flush=True)
    return out


# ---------------------------------------------------------------------------------------------------------------
# inputs


def sample_domain(n: int, domain: Domain | None = None, seed: int = 0) -> np.ndarray:
    """The first ``n`` points (n, 15) of the seeded scrambled Sobol design over ``domain``'s box that lie in
    ``domain`` (default: the stable part of Rosenbaum & Zhang's box; ``Domain(box, None)``: the whole box), as the
    datasets draw them (:func:`qrh_lib.data.sample_inputs`)."""
    dom = domain or Domain(RZ_BOX)
    return sample_inputs(n, dom.box, seed=seed, domain=dom.kind,
                         max_feedback_ratio=dom.max_feedback_ratio or STABILITY_MARGIN)


# ---------------------------------------------------------------------------------------------------------------
# timing


@dataclass
class Timing:
    """Seconds per call of each timed repeat (wall clock and this process's CPU), and the last call's result."""

    wall: np.ndarray
    cpu: np.ndarray
    result: Any

    @property
    def best(self) -> float:
        return float(self.wall.min())

    @property
    def median(self) -> float:
        return float(np.median(self.wall))

    def us(self) -> dict:
        """Median and 90th percentile of the wall time per call, in microseconds."""
        return {"median_us": 1e6 * self.median, "p90_us": 1e6 * float(np.percentile(self.wall, 90))}


def timed(fn: Callable[[], Any], repeat: int = 1, number: int = 1, warmup: int = 0) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls (tracing, compiling, caches), then ``repeat`` timings of ``number``
    calls each, as seconds per call. On a shared machine take the best (:attr:`Timing.best`) or the CPU time."""
    for _ in range(warmup):
        fn()
    wall, cpu, out = [], [], None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(number):
            out = fn()
        wall.append((time.perf_counter() - t0) / number)
        cpu.append((time.process_time() - c0) / number)
    return Timing(np.asarray(wall), np.asarray(cpu), out)


def timed_each(fn: Callable[[Any], Any], items: Iterable, warmup: bool = True) -> Timing:
    """Time ``fn(item)`` once per item (after one untimed call on the first when ``warmup``): per-item seconds,
    and the list of results as :attr:`Timing.result`."""
    items = list(items)
    if warmup and items:
        fn(items[0])
    runs = [timed(lambda x=x: fn(x)) for x in items]
    return Timing(np.array([r.wall[0] for r in runs]), np.array([r.cpu[0] for r in runs]), [r.result for r in runs])


# ---------------------------------------------------------------------------------------------------------------
# the surrogate under test


def get_surrogate(path: str | None, seed: int = 0):
    """Load the artifact at ``path``; without one, train a smoke surrogate of the default architecture
    (width 128, 4 blocks) for a few epochs on synthetic data: its speed is that of the real network,
    its accuracy means nothing. Returns the surrogate and a record of where it came from."""
    from qrh_lib.surrogate import QRHSurrogate

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


def model_summary(sur) -> dict:
    return {
        "n_params": int(sur.model.count_params()),
        "K": int(sur.pca_info["K"]),
        "config": sur.config.get("train", {}),
    }


# ---------------------------------------------------------------------------------------------------------------
# studies that train many networks


def run_trainings(fn: Callable, args: Iterable[tuple], on_result: Callable[[int, Any], None], cluster=None,
                  desc: str = "training") -> None:
    """Run ``fn(*a)`` for each ``a`` of ``args`` and hand each result to ``on_result(i, result)`` in this process.

    ``cluster`` ``None`` (or settings of one process): one after the other, in order, here. Otherwise
    (:mod:`qrh_lib.cluster`: ``--workers N``, ``--scheduler ADDRESS``) one Dask task each, ``on_result`` called as
    each finishes, so a study that records its results there resumes after an interruption. A dict argument
    (a dataset, the truth set) is sent to the workers once whatever the number of tasks sharing it, and this folder's
    modules with it (``Client.upload_file``): the workers need the project's ``qrh_lib`` and the folders the tasks
    write into (a shared filesystem on a cluster), not the benchmarks folder."""
    args = [tuple(a) for a in args]
    if not uses_dask(cluster):
        for i, a in enumerate(args):
            on_result(i, fn(*a))
        return
    if not args:
        return
    with open_client(cluster) as client:
        for module in {__file__, sys.modules[fn.__module__].__file__}:
            client.upload_file(module, load=False)
        shared: dict = {}

        def ship(x):
            if isinstance(x, dict):
                if id(x) not in shared:
                    shared[id(x)] = client.scatter([x], hash=False)[0]
                return shared[id(x)]
            return x

        run_tasks(client, fn, [tuple(ship(x) for x in a) for a in args], fn.__name__.replace("_", "-"),
                  settings(cluster), desc=desc, unit="training", on_result=on_result)
