"""Datasets on a Dask cluster: the same bytes as one process, a killed worker survived, unreachable schedulers
named, shards on disk skipped, threads shared out, settings checked."""

import os
import signal
import socket
import threading
import time

import numpy as np
import psutil
import pytest

from qrh_lib.artifacts import read_json
from qrh_lib.pricer import generate
from qrh_lib.pricer.cluster import ClusterConfig, cores, open_client
from qrh_lib.pricer.generate import GenerationConfig, generate_dataset, main, shard_path

#: Tests that start a local cluster (worker processes importing TensorFlow): make test runs them, test-fast not.
starts_a_cluster = pytest.mark.slow

TINY = {"n_paths": 128, "steps_per_year": 24, "grading": 0.5, "first_step": 1e-3, "batch_size": 4}


def tiny_config(**kw):
    return GenerationConfig(**{"n_samples": 48, "seed": 5, "shard_size": 4, "mc": TINY, **kw})


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return generate_dataset(tiny_config(), tmp_path_factory.mktemp("serial") / "data", progress=False)


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes, closed with its workers however the tests end."""
    with cluster_of(2) as c:
        yield c


class cluster_of:
    """``with cluster_of(n) as client``: a local cluster of ``n`` workers; on exit, closed, and no process it
    started is left running."""

    def __init__(self, n):
        self.n, self.me = n, psutil.Process()

    def __enter__(self):
        self.before = {p.pid for p in self.me.children(recursive=True)}
        self.ctx = open_client(ClusterConfig(workers=self.n))
        return self.ctx.__enter__()

    def __exit__(self, *exc):
        self.ctx.__exit__(*exc)
        # multiprocessing's resource tracker, started with the first worker, lives as long as this process
        started = [p for p in self.me.children(recursive=True) if p.pid not in self.before
                   and "resource_tracker" not in _command(p)]
        _, alive = psutil.wait_procs(started, timeout=10)
        alive = [p for p in alive if _running(p)]  # a zombie has ended
        for p in alive:
            p.kill()
        assert not alive, f"processes left running by the cluster: {alive}"


def _command(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


def _running(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_same_dataset(a, b):
    """Every array of two dataset folders equal bit for bit (NaN where NaN), and the same files."""
    files = sorted(p.name for p in a.iterdir() if p.is_file())
    assert files == sorted(p.name for p in b.iterdir() if p.is_file())
    arrays = 0
    for name in files:
        if name.endswith(".npy"):
            assert np.array_equal(np.load(a / name), np.load(b / name), equal_nan=True), name
            arrays += 1
        elif name.endswith(".npz"):
            with np.load(a / name) as x, np.load(b / name) as y:
                assert x.files == y.files
                for k in x.files:
                    assert np.array_equal(x[k], y[k], equal_nan=True), f"{name}:{k}"
                    arrays += 1
        elif name.endswith((".pkl", ".csv")):
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert arrays >= 10
    ma, mb = read_json(a / "manifest.json"), read_json(b / "manifest.json")
    for m in (ma, mb):
        for how in ("timings", "created", "versions"):
            m.pop(how)
    assert ma == mb


@starts_a_cluster
def test_two_workers_write_the_single_process_dataset(client, serial, tmp_path):
    out = generate_dataset(tiny_config(), tmp_path / "data", progress=False, cluster=client)
    assert_same_dataset(out, serial)
    # the work was shared: each worker process built an engine and priced shards
    assert all(client.run(lambda: bool(generate._engines)).values())


@starts_a_cluster
def test_the_workers_share_the_cores(client, tmp_path):
    generate_dataset(tiny_config(n_samples=16), tmp_path / "data", progress=False, cluster=client)

    def threads():
        import tensorflow as tf
        from threadpoolctl import threadpool_info

        return (tf.config.threading.get_intra_op_parallelism_threads(),
                tf.config.threading.get_inter_op_parallelism_threads(),
                os.environ["OMP_NUM_THREADS"], {p["num_threads"] for p in threadpool_info()})

    share = max(1, cores() // 2)
    for intra, inter, omp, blas in client.run(threads).values():
        assert (intra, inter, omp) == (share, share, str(share)) and blas <= {share}


@starts_a_cluster
def test_shards_on_disk_are_skipped(client, serial, tmp_path, monkeypatch):
    cfg, out = tiny_config(), tmp_path / "data"
    assert generate_dataset(cfg, out, progress=False, max_shards=3) is None  # 3 shards by this process
    kept = {s: shard_path(out, s).stat().st_mtime_ns for s in range(3)}
    submitted = []
    submit = client.submit
    monkeypatch.setattr(client, "submit", lambda *a, **kw: submitted.append(a[3:]) or submit(*a, **kw))
    assert generate_dataset(cfg, out, progress=False, max_shards=4, cluster=client) is None  # 4 more on Dask
    assert [a[2] for a in submitted] == [3, 4, 5, 6]
    submitted.clear()
    generate_dataset(cfg, out, progress=False, cluster=client)
    assert [a[2] for a in submitted] == list(range(7, 12))
    assert {s: shard_path(out, s).stat().st_mtime_ns for s in range(3)} == kept
    assert_same_dataset(out, serial)


@starts_a_cluster
def test_a_killed_worker_loses_and_duplicates_no_shard(serial, tmp_path):
    cfg, out = tiny_config(), tmp_path / "data"
    n_shards = cfg.n_samples // cfg.shard_size
    with cluster_of(2) as client:
        errors = []

        def run():
            try:
                generate_dataset(cfg, out, progress=False, cluster=client)
            except BaseException as err:  # reported by the test below
                errors.append(err)

        job = threading.Thread(target=run)
        job.start()
        deadline = time.monotonic() + 120
        while not list((out / "shards").glob("shard_*.npz")) and time.monotonic() < deadline:
            time.sleep(0.02)
        busy = [w for w, keys in client.processing().items() if keys]
        assert busy, "the run ended before a worker could be killed"
        victim = client.run(os.getpid, workers=busy[:1])[busy[0]]
        done_before = len(list((out / "shards").glob("shard_*.npz")))
        os.kill(victim, signal.SIGKILL)
        job.join(timeout=180)
        assert not job.is_alive() and not errors, errors
    assert 1 <= done_before < n_shards  # killed mid-run, with a task on the worker
    assert not psutil.pid_exists(victim) or not _running(psutil.Process(victim))
    assert sorted(p.name for p in (out / "shards").glob("shard_*.npz")) == \
        [f"shard_{s:05d}.npz" for s in range(n_shards)]
    assert_same_dataset(out, serial)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_fails_within_seconds_naming_it(tmp_path):
    address = f"tcp://127.0.0.1:{closed_port()}"
    t0 = time.monotonic()
    with pytest.raises(OSError, match=f"no Dask scheduler answered at {address} within 2 s"):
        generate_dataset(tiny_config(), tmp_path / "data", progress=False,
                         cluster=ClusterConfig(scheduler=address, timeout=2))
    assert time.monotonic() - t0 < 10
    assert not list((tmp_path / "data" / "shards").glob("shard_*.npz"))


@pytest.mark.parametrize(("kw", "match"), [
    ({"scheduler": "tcp://127.0.0.1:8786", "workers": 2}, "give one, a running cluster or a local one"),
    ({"workers": -1}, "workers = -1 must be an integer >= 0"),
    ({"workers": 1.5}, "workers = 1.5"),
    ({"threads_per_worker": 0}, "threads_per_worker = 0 must be an integer >= 1"),
    ({"scheduler": ""}, "must be an address"),
    ({"timeout": 0}, "timeout = 0 must be > 0"),
    ({"worker": 2}, r"unknown ClusterConfig option\(s\) \['worker'\]"),
])
def test_bad_cluster_settings_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        ClusterConfig.from_dict(kw)


def test_the_cluster_is_no_part_of_the_dataset(tmp_path, capsys):
    assert not ClusterConfig().distributed and ClusterConfig(workers=2).distributed
    with pytest.raises(SystemExit):
        main(["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786", "--out", str(tmp_path)])
    assert "give one" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    assert "cluster" not in GenerationConfig.__dataclass_fields__  # how it runs is not what it computes


@starts_a_cluster
def test_the_truth_set_on_dask_is_the_single_process_one(client, tmp_path):
    from qrh_lib.pricer.truth import TRUTH_FILE, generate_truth_set

    cfg = tiny_config(n_samples=16, seed=7)
    one = generate_truth_set(tmp_path / "one", cfg, progress=False)
    two = generate_truth_set(tmp_path / "two", cfg, progress=False, cluster=client)
    with np.load(one / TRUTH_FILE) as a, np.load(two / TRUTH_FILE) as b:
        assert a.files == b.files and len(a["X"]) > 0
        for k in a.files:
            assert np.array_equal(a[k], b[k], equal_nan=True), k
