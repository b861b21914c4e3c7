r"""Work on a Dask cluster: the cluster settings (:class:`ClusterConfig`), opening a client, and running one task
per piece of work with a progress bar and retries; shared by the pricer (a shard of a dataset or of the truth set
per task, :mod:`qrh_lib.pricer.cluster`) and the studies that train many networks (a training per task,
``benchmarks/learning_curve.py`` and ``benchmarks/vix.py``). Nothing here knows what a task computes.

- ``ClusterConfig()``: one process, no Dask (the default).
- ``ClusterConfig(workers=N)``: a ``distributed.LocalCluster`` of N worker processes on this machine.
- ``ClusterConfig(scheduler="tcp://host:8786")``: a running cluster (``dask scheduler`` and ``dask worker``
  processes, dask-jobqueue on SLURM or PBS, Kubernetes, or ``dask cuda worker`` on GPU nodes, one worker per GPU),
  whose workers run this project's code (the same ``qrh_lib``) and see the folders the tasks write into.

Each worker process gets ``threads_per_worker`` TensorFlow (intra- and inter-op) and BLAS threads; by default its
host's cores shared out among the worker processes there (``cores // N`` on a local cluster, at least 1), so N
workers do not oversubscribe the cores. The settings are how the work runs, not what it computes: they are no part
of any result's key.

:func:`open_client` gives a ``distributed.Client`` (or ``None`` for one process); :func:`run_tasks` runs a
function once per argument tuple on it, one task each, and hands each result to the caller as it finishes
(``on_result``), so a caller that records results as they come can be stopped and resumed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .params import strict_from_dict

#: The environment variables that size the BLAS and OpenMP thread pools of a worker process.
BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: ... and TensorFlow's (read when its runtime starts; :func:`use_threads` sets the same through tf.config).
TF_THREAD_VARS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


@dataclass(frozen=True)
class ClusterConfig:
    """Where the work runs: one process (the default), a local Dask cluster, or a running one."""

    scheduler: str | None = None  # address of a running Dask scheduler, e.g. "tcp://10.0.0.5:8786"
    workers: int = 0  # worker processes of a LocalCluster on this machine; 0 and no scheduler: one process, no Dask
    threads_per_worker: int | None = None  # TensorFlow and BLAS threads per worker (None: its host's cores shared)
    retries: int = 2  # reruns of a task that raised (a task whose worker died is rerun by Dask in any case)
    timeout: float = 10.0  # seconds to reach the scheduler before giving up

    def __post_init__(self):
        if self.scheduler is not None and (not isinstance(self.scheduler, str) or not self.scheduler.strip()):
            raise ValueError(f"scheduler = {self.scheduler!r} must be an address such as 'tcp://host:8786' (or None)")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"workers = {self.workers!r} must be an integer >= 0 (0: no local cluster)")
        if self.scheduler is not None and self.workers:
            raise ValueError(f"scheduler = {self.scheduler!r} and workers = {self.workers}: give one, a running "
                             "cluster or a local one")
        if self.threads_per_worker is not None and (isinstance(self.threads_per_worker, bool) or not isinstance(
                self.threads_per_worker, int) or self.threads_per_worker < 1):
            raise ValueError(f"threads_per_worker = {self.threads_per_worker!r} must be an integer >= 1 (or None)")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries = {self.retries!r} must be an integer >= 0")
        if not (isinstance(self.timeout, (int, float)) and self.timeout > 0):
            raise ValueError(f"timeout = {self.timeout!r} must be > 0 seconds")

    @classmethod
    def from_dict(cls, d: dict | None) -> ClusterConfig:
        return strict_from_dict(cls, dict(d or {}), "option(s)")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def distributed(self) -> bool:
        """True when the work goes to Dask (a scheduler or local workers)."""
        return self.scheduler is not None or self.workers > 0


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def use_threads(n: int) -> None:
    """Give this process ``n`` TensorFlow (intra- and inter-op) and BLAS threads; run in a worker before its first
    task uses TensorFlow. TensorFlow fixes its pools when its runtime starts: later, a different count is warned of
    and left. Repeated calls with the same ``n`` do nothing."""
    if _threads.get("n") == n:
        return
    os.environ.update({var: str(n) for var in BLAS_THREAD_VARS + TF_THREAD_VARS})  # for libraries loaded later
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)  # the BLAS and OpenMP pools already loaded
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # the runtime has started: its pools are fixed
        if tf.config.threading.get_intra_op_parallelism_threads() != n:
            warnings.warn(f"TensorFlow is already running in this worker; its threads are not set to {n}",
                          stacklevel=2)
    _threads["n"] = n


_threads: dict = {}


def settings(cluster) -> ClusterConfig:
    """The :class:`ClusterConfig` of ``cluster`` (itself, its dict, ``None``: one process); a ``distributed.Client``
    given directly runs with the default retries and thread counts."""
    if cluster is None or isinstance(cluster, dict):
        return ClusterConfig.from_dict(cluster)
    return cluster if isinstance(cluster, ClusterConfig) else ClusterConfig()


def uses_dask(cluster) -> bool:
    """True when ``cluster`` sends the work to Dask: a ``distributed.Client``, or settings with a scheduler or
    local workers."""
    return not (cluster is None or isinstance(cluster, (ClusterConfig, dict))) or settings(cluster).distributed


def add_cluster_arguments(parser) -> None:
    """The command-line options of :class:`ClusterConfig`: ``--scheduler``, ``--workers``, ``--threads-per-worker``."""
    group = parser.add_argument_group("Dask (default: one process)")
    group.add_argument("--scheduler", default=None,
                       help="address of a running Dask scheduler (tcp://host:8786); its workers must see the output "
                            "folders (a shared filesystem)")
    group.add_argument("--workers", type=int, default=0, help="local Dask worker processes (a LocalCluster)")
    group.add_argument("--threads-per-worker", type=int, default=None,
                       help="TensorFlow and BLAS threads per worker (default: the cores shared out)")


def cluster_from_arguments(parser, args) -> ClusterConfig:
    """The :class:`ClusterConfig` of the options :func:`add_cluster_arguments` added; a bad combination is reported
    through ``parser.error`` (usage and exit status 2), as argparse reports its own errors."""
    try:
        return ClusterConfig(scheduler=args.scheduler, workers=args.workers,
                             threads_per_worker=args.threads_per_worker)
    except ValueError as err:
        parser.error(str(err))


@contextlib.contextmanager
def open_client(cluster=None):
    """A ``distributed.Client`` for ``cluster`` (a :class:`ClusterConfig`, its dict, a ``Client`` or ``None``),
    or ``None`` for one process. A local cluster is started and, on exit, closed with its workers; a client
    given is used as is and left open. The dashboard's address is printed (on stderr). An unreachable scheduler raises
    ``OSError`` naming its address after ``timeout`` seconds."""
    if cluster is not None and not isinstance(cluster, (ClusterConfig, dict)):
        yield cluster  # a distributed.Client
        return
    config = settings(cluster)
    if not config.distributed:
        yield None
        return
    from distributed import Client

    with contextlib.ExitStack() as stack:
        if config.scheduler is not None:
            try:
                client = stack.enter_context(Client(config.scheduler, timeout=config.timeout))
            except (OSError, TimeoutError) as err:
                raise OSError(f"no Dask scheduler answered at {config.scheduler} within {config.timeout:g} s "
                              f"({err})") from err
        else:
            client = stack.enter_context(Client(stack.enter_context(local_cluster(config))))
        bokeh = importlib.util.find_spec("bokeh") is not None
        print(f"Dask dashboard: {client.dashboard_link}" + ("" if bokeh else " (its pages need bokeh>=3.1)"),
              file=sys.stderr)  # stdout stays the command's result
        yield client


@contextlib.contextmanager
def local_cluster(config: ClusterConfig):
    """A ``distributed.LocalCluster`` of ``config.workers`` processes of one task slot each, on the loopback
    interface, each started with its share of the cores in its thread variables."""
    import dask
    from distributed import LocalCluster

    threads = config.threads_per_worker or max(1, cores() // config.workers)
    env = {var: str(threads) for var in BLAS_THREAD_VARS + TF_THREAD_VARS}
    # set before a worker process starts (its NumPy loads BLAS at import); Dask's default is 1 thread
    spawn_env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {})) | env
    with dask.config.set({"distributed.nanny.pre-spawn-environ": spawn_env}):
        cluster = LocalCluster(n_workers=config.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:8787", env=env)
    try:
        yield cluster
    finally:
        cluster.close()


def worker_threads(client, threads_per_worker: int | None = None) -> dict:
    """``{worker address: threads}``: ``threads_per_worker`` each, or each host's cores shared out among its
    workers' task slots (a worker with k slots gets k shares, at least 1 thread)."""
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]  # newer Dask lists 5 workers by default
    except TypeError:
        workers = client.scheduler_info()["workers"]
    if threads_per_worker:
        return dict.fromkeys(workers, threads_per_worker)
    host_cores = client.run(cores)
    slots: dict = {}
    for info in workers.values():
        slots[info["host"]] = slots.get(info["host"], 0) + info["nthreads"]
    return {addr: max(1, host_cores.get(addr, 1) * info["nthreads"] // slots[info["host"]])
            for addr, info in workers.items()}


def _in_worker(fn, threads: dict, *args):
    """Run ``fn(*args)`` in a worker with its threads set. A worker that joined after the run started (a restarted
    one, for example) keeps the count its environment gives TensorFlow (a local cluster's share), or takes 1."""
    from distributed import get_worker

    use_threads(threads.get(get_worker().address) or int(os.environ.get("TF_NUM_INTRAOP_THREADS", 1)))
    return fn(*args)


def run_tasks(client, fn: Callable, args: Iterable[tuple], name: str, config: ClusterConfig | None = None,
              progress: bool = True, desc: str = "", unit: str = "task",
              on_result: Callable[[int, Any], None] | None = None) -> list:
    """Run ``fn(*a)`` for each ``a`` of ``args`` on the cluster of ``client``, one task each, and return their
    results in the order of ``args``. ``on_result(i, result)``, if given, is called in this process as each task
    finishes (in the order they finish), with ``i`` the index of its arguments: a caller that records each result
    there can be stopped and resumed. A bar (``desc``, ``unit``) counts the finished tasks; a task that raises is
    rerun ``config.retries`` times and then fails the run, the tasks not finished cancelled. ``fn`` must be
    importable by the workers (a module's function)."""
    from distributed import as_completed

    config = config or ClusterConfig()
    args = list(args)
    threads = worker_threads(client, config.threads_per_worker)
    token = uuid.uuid4().hex[:8]
    futures = [client.submit(_in_worker, fn, threads, *a, key=f"{name}-{i:05d}-{token}", retries=config.retries,
                             pure=False) for i, a in enumerate(args)]
    index = {f.key: i for i, f in enumerate(futures)}
    bar = None
    if progress and futures:
        from .progress import Bar

        bar = Bar(len(futures), desc or name, unit)
    try:
        for fut in as_completed(futures):
            result = fut.result()  # raises the task's error
            if on_result is not None:
                on_result(index[fut.key], result)
            if bar is not None:
                bar.update()
        return [f.result() for f in futures]
    finally:
        if bar is not None:
            bar.close()
        client.cancel([f for f in futures if not f.done()])
