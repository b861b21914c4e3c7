r"""Pricing on a Dask cluster: one task per shard of a dataset or of the truth set.

The cluster's settings and machinery (:class:`ClusterConfig`, :func:`open_client`, :func:`run_tasks`, the workers'
thread counts) are the library's, in :mod:`qrh_lib.cluster`, shared with the studies that train many networks;
they are re-exported here under their former path.

Datasets and the truth set are priced in shards (:mod:`.generate`); on a cluster each shard is one Dask task. The
worker that runs it prices the shard and writes it into the dataset folder itself, atomically, so the folder
must be the same path on every worker and on the machine that starts the run: one machine, or a filesystem
shared by the cluster's nodes (NFS, Lustre, ...). Only the task's small summary travels back. A shard already on
disk is never submitted (and a task finding its shard written, after its first worker died past the write, does
nothing); the task of a worker that dies is rerun by Dask on another; sample ``i`` depends only on ``(seed, i)``
and the shards are assembled in their order, so the dataset is the same bit for bit whatever the number of
workers and the order they finish in. The settings are how the work runs, not what it computes: they are no part
of a dataset's key.

The engine also runs a second Python thread that draws the next chunk's normals while its compiled loop runs;
with one thread per worker that thread shares the worker's core.
"""

from __future__ import annotations

from ..cluster import (
    BLAS_THREAD_VARS,
    TF_THREAD_VARS,
    ClusterConfig,
    add_cluster_arguments,
    cluster_from_arguments,
    cores,
    local_cluster,
    open_client,
    run_tasks,
    settings,
    use_threads,
    uses_dask,
    worker_threads,
)

__all__ = ["BLAS_THREAD_VARS", "TF_THREAD_VARS", "ClusterConfig", "add_cluster_arguments", "cluster_from_arguments",
           "cores", "local_cluster", "open_client", "run_tasks", "settings", "use_threads", "uses_dask",
           "worker_threads"]
