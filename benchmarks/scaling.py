"""Dataset generation on Dask: surfaces per second with one process, 1 and 2 local workers, the per-task overhead,
and a projection to a million surfaces.

Writes benchmarks/results/scaling.json. One run prices the same dataset (the cpu profile's generation settings, at
``--n-samples`` surfaces in shards of ``--shard-size``, the library's default, as in the cpu profile) three ways
into fresh folders: in this process (``cluster=None``), on a ``LocalCluster`` of 1 worker and on one of 2
workers. Each way is warmed up first on a throw-away dataset of one shard per worker (TensorFlow's import and the
XLA compilation of the batch's shapes are start-up costs, recorded apart), then the pricing of the shards is timed,
then the dataset is assembled (the same serial step for every way, timed apart) and its arrays compared with the
single process's: they must be equal bit for bit. Rates are ratios against the single process in the same run.

The per-task overhead is two figures: what Dask adds per task (no-op tasks through the same submission path,
seconds of a worker's time per task) and what a shard task spends outside the pricing (drawing its inputs, writing
its file: the single process does the same), each as a fraction of a shard's pricing time at the measured cost.
The time for 1M surfaces on P one-core workers is a projection from the 2-worker run's cost per surface per core,
not a measurement. The machine's load average is recorded before and after: on a shared machine the timings are
contended, and the record says so.

    python benchmarks/scaling.py [--n-samples 1024] [--shard-size 128] [--workers 1 2]
    python benchmarks/scaling.py --quick --out /tmp/scaling.json   # a check that it runs
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import parse_args, parser, record, result_path, write_result

from qrh_lib.cluster import ClusterConfig, cores, open_client, run_tasks
from qrh_lib.data import load_dataset
from qrh_lib.pricer.config import GenerationConfig
from qrh_lib.pricer.generate import generate_dataset, price_shard_task, price_shards
from qrh_lib.workflow.profiles import load_profile

#: Sizes of ``--quick``.
QUICK = {"n_samples": 64, "shard_size": 16, "n_paths": 256, "noop_tasks": 50}
#: Worker counts of the projection.
PROJECTED_WORKERS = (1, 2, 8, 32, 128, 512)


def cpu_profile_generation(n_samples: int, shard_size: int, n_paths: int | None) -> GenerationConfig:
    """The cpu profile's dataset settings at ``n_samples`` surfaces in shards of ``shard_size``."""
    params = load_profile("cpu")["params"]["01_data_generation"]
    gen = dict(params["generation"]) | {"n_samples": n_samples, "shard_size": shard_size}
    if n_paths:
        gen["mc"] = dict(gen.get("mc", {})) | {"n_paths": n_paths}
    return GenerationConfig.from_dict(gen | {"seed": params.get("seed", 0)})


def price_once(config: GenerationConfig, root: Path, name: str, workers: int, noop_tasks: int) -> dict:
    """Warm up, then time the pricing of ``config``'s shards into ``root/name`` (``workers`` 0: this process)."""
    warm = GenerationConfig.from_dict(config.to_dict() | {"n_samples": max(10, max(1, workers) * config.shard_size)})
    out = root / name
    t0 = time.perf_counter()
    with open_client(ClusterConfig(workers=workers) if workers else None) as client:
        started = time.perf_counter() - t0
        if client is None:
            price_shards(warm, root / f"{name}_warmup", progress=False)
            warm_pids = None
        else:  # one shard per worker (an idle worker takes the next task)
            warm_pids = {t["pid"] for t in run_tasks(client, price_shard_task, [
                (warm, str(root / f"{name}_warmup"), s) for s in range(-(-warm.n_samples // warm.shard_size))],
                "warm-up", progress=False)}
        warmed = time.perf_counter() - t0
        n_shards = -(-config.n_samples // config.shard_size)
        t1 = time.perf_counter()
        if client is None:
            price_shards(config, out, progress=False)
            tasks = None
        else:
            tasks = run_tasks(client, price_shard_task, [(config, str(out), s) for s in range(n_shards)],
                              "price-shard", progress=False)
        pricing = time.perf_counter() - t1
        noop = None
        if client is not None and noop_tasks:
            t2 = time.perf_counter()
            run_tasks(client, abs, [(0,)] * noop_tasks, "noop", progress=False)
            noop = (time.perf_counter() - t2) * workers / noop_tasks  # a worker's seconds per task
    t3 = time.perf_counter()
    generate_dataset(config, out, progress=False)  # all shards on disk: assembles them
    finalise = time.perf_counter() - t3
    row = {"workers": workers or None, "start_seconds": started, "warm_up_seconds": warmed - started,
           "pricing_seconds": pricing, "surfaces_per_second": config.n_samples / pricing,
           "assembly_seconds": finalise,
           "surfaces_per_second_with_assembly": config.n_samples / (pricing + finalise)}
    if tasks is not None:
        task_s = np.array([t["task_seconds"] for t in tasks])
        outside = task_s - np.array([t["pricing_seconds"] for t in tasks])
        row |= {"tasks": len(tasks), "worker_processes": len({t["pid"] for t in tasks}),
                "workers_warmed_up": len(warm_pids),
                "task_seconds_median": float(np.median(task_s)),
                "task_seconds_outside_pricing_median": float(np.median(outside)),
                "dask_seconds_per_noop_task": noop}
    print(f"{name}: {row['surfaces_per_second']:.2f} surfaces/s ({pricing:.1f} s)", flush=True)
    return row


def same_arrays(a: Path, b: Path) -> bool:
    da, db = load_dataset(a), load_dataset(b)
    keys = [k for k, v in da.items() if isinstance(v, np.ndarray)]
    return bool(keys) and all(np.array_equal(da[k], db[k], equal_nan=True) for k in keys)


def main(argv=None) -> int:
    p = parser(__doc__, "scaling")
    p.add_argument("--n-samples", type=int, default=1024)
    p.add_argument("--shard-size", type=int, default=GenerationConfig.shard_size)
    p.add_argument("--n-paths", type=int, default=None, help="paths per surface (default: the cpu profile's)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="local worker counts to time")
    p.add_argument("--noop-tasks", type=int, default=200, help="no-op tasks timing Dask's own cost per task")
    a = parse_args(p, argv, quick=QUICK)
    path = result_path(a, "scaling")
    config = cpu_profile_generation(a.n_samples, a.shard_size, a.n_paths)
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="qrh_scaling_"))
    try:
        single = price_once(config, root, "single", 0, 0)
        runs = {"single_process": single}
        for w in a.workers:
            runs[f"local_{w}_workers"] = price_once(config, root, f"workers_{w}", w, a.noop_tasks)
        identical = {name: same_arrays(root / "single", root / f"workers_{w}")
                     for name, w in zip(list(runs)[1:], a.workers, strict=True)}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()
    for run in runs.values():
        run["ratio_to_single_process"] = run["surfaces_per_second"] / single["surfaces_per_second"]

    # the per-task overhead at the cpu profile's shard size, from the widest run's measured cost
    widest = runs[f"local_{max(a.workers)}_workers"]
    shard = GenerationConfig.shard_size
    core_seconds_per_surface = max(a.workers) / widest["surfaces_per_second"]
    shard_seconds = shard * core_seconds_per_surface
    overhead = {
        "shard_size": shard, "shard_pricing_seconds": shard_seconds,
        "dask_seconds_per_task": widest["dask_seconds_per_noop_task"],
        "dask_fraction": (widest["dask_seconds_per_noop_task"] or 0.0) / shard_seconds,
        "outside_pricing_seconds_per_task": widest["task_seconds_outside_pricing_median"],
        "outside_pricing_fraction": widest["task_seconds_outside_pricing_median"] / shard_seconds,
        "note": "dask: no-op tasks through run_tasks, a worker's seconds per task; outside pricing: a shard task's "
                "time drawing its inputs and writing its file (which the single process spends too); both over "
                "a shard's pricing time at the widest run's cost per surface per worker",
    }
    projection = {
        "what": "PROJECTION, not a measurement: 1e6 surfaces x (core-seconds per surface of the widest local run) / P "
                "one-core workers, assuming each worker as fast as one of this machine's cores and no limit from "
                "the scheduler or the shared filesystem; plus the measured per-task overheads",
        "core_seconds_per_surface": core_seconds_per_surface,
        "hours_by_workers": {str(P): 1e6 * core_seconds_per_surface / P
                             * (1 + overhead["dask_fraction"]) / 3600 for P in PROJECTED_WORKERS},
        "tasks": -(-1_000_000 // shard),
    }
    idle = max(load_before[0], load_after[0]) < 0.5
    result = record(
        "scaling",
        command="python benchmarks/scaling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        dataset={"config": config.to_dict(), "key": config.key()},
        cores=cores(), load_avg_before=list(load_before), load_avg_after=list(load_after),
        machine_idle=idle,
        contention_note=None if idle else "the machine was shared with other jobs (load averages above): the "
                                          "timings are contended; rerun on an idle machine for the recorded figures",
        runs=runs, bit_identical_to_single_process=identical, per_task_overhead=overhead, projection_1m=projection,
    )
    write_result(path, result)
    if not all(identical.values()):
        raise SystemExit(f"datasets differ from the single process's: {identical}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
