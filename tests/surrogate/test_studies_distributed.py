"""Studies that train many networks (benchmarks/learning_curve.py) on a Dask cluster: one task per training, the
same result records as in one process, and a rerun or a resumed run submits only what is missing."""

import importlib
import shutil
import sys

import numpy as np
import pytest

from qrh_lib.artifacts import read_json
from qrh_lib.cluster import ClusterConfig, cores, open_client
from qrh_lib.paths import BENCHMARKS_DIR
from qrh_lib.synthetic import make_synthetic_dataset

#: A tiny recipe: two trainings of a few epochs take seconds.
RECIPE = {"width": 16, "n_blocks": 1, "n_components": 6, "epochs": 3, "batch_size": 64, "patience": 5,
          "lr_patience": 3}
SIZES = [80, 160]
#: What differs between two equal trainings: the wall clock.
TIMINGS = ("train_seconds",)


@pytest.fixture(scope="module")
def lc():
    """benchmarks/learning_curve.py as a module (with its datasets and truth set swapped below)."""
    if str(BENCHMARKS_DIR) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS_DIR))
    return importlib.import_module("learning_curve")


@pytest.fixture
def synthetic(lc, monkeypatch):
    """The study's datasets and truth set replaced by synthetic surfaces (qrh_lib.synthetic) on the whole box."""
    from qrh_lib.pricer.config import GenerationConfig
    from qrh_lib.surrogate.config import TrainConfig

    pool = make_synthetic_dataset(max(SIZES), seed=11)
    truth = make_synthetic_dataset(60, seed=12, noise=False)

    def design_split(n_design, n_paths, source_n=None, root=None):
        d = {k: pool[k][:n_design] for k in ("X", "y", "iv_se")}
        val = np.arange(n_design) % 10 == 9
        return {**{f"train_{k}": v[~val] for k, v in d.items()}, **{f"val_{k}": v[val] for k, v in d.items()},
                "dataset": "synthetic", "config": GenerationConfig(domain="box"), "n_paths": n_paths,
                "n_design": n_design, "label_se_median_pts": 100 * float(np.median(pool["iv_se"]))}

    monkeypatch.setattr(lc, "design_split", design_split)
    monkeypatch.setattr(lc, "wait_for_truth", lambda: truth)
    recipe = {k: v for k, v in TrainConfig().to_flat().items() if k != "seed"} | RECIPE
    return lambda out, models, cluster=None: lc.run_curve(out, recipe, SIZES, [], max(SIZES), 64, out.parent, models,
                                                          cluster)


@pytest.fixture(scope="module")
def client():
    with open_client(ClusterConfig(workers=2)) as c:
        yield c


def records(path):
    """The study's runs by key, without their timings, and its power-law fit."""
    doc = read_json(path)
    return {r["key"]: {k: v for k, v in r.items() if k not in TIMINGS} for r in doc["runs"]}, doc["power_law"]


def weights(models, key):
    from qrh_lib.surrogate import QRHSurrogate

    return QRHSurrogate.load(models / key).model.get_weights()


@pytest.mark.slow
def test_a_study_on_two_workers_records_the_single_process_results(lc, synthetic, client, tmp_path, monkeypatch):
    one, two = tmp_path / "one" / "learning_curve.json", tmp_path / "two" / "learning_curve.json"
    synthetic(one, tmp_path / "one" / "models")
    submitted = []
    submit = client.submit
    # run_tasks submits (_in_worker, train_run, threads, data, recipe, key, seed, models)
    monkeypatch.setattr(client, "submit", lambda *a, **kw: submitted.append(a[5]) or submit(*a, **kw))
    synthetic(two, tmp_path / "two" / "models", client)
    runs, fit = records(two)
    assert len(submitted) == 2 and sorted(submitted) == sorted(runs)  # one task per training, by its key
    # a training on a worker (one thread) gives the weights of the same training in this process bit for bit, so
    # the records are equal but for the seconds
    assert (runs, fit) == records(one) and len(runs) == 2
    for key in runs:
        for a, b in zip(weights(tmp_path / "one" / "models", key), weights(tmp_path / "two" / "models", key),
                        strict=True):
            assert np.array_equal(a, b)
    # each worker trained with its share of the cores
    share = max(1, cores() // 2)
    assert set(client.run(lambda: __import__("tensorflow").config.threading.get_intra_op_parallelism_threads())
               .values()) == {share}

    # a rerun with the results on disk submits no task and leaves the record as it was
    submitted.clear()
    synthetic(two, tmp_path / "two" / "models", client)
    assert submitted == [] and records(two) == (runs, fit)

    # an interrupted study (the last run neither recorded nor saved) resumes with that run alone
    doc = read_json(two)
    last = doc["runs"].pop()["key"]
    lc.write_result(two, doc, quiet=True)
    shutil.rmtree(tmp_path / "two" / "models" / last)
    synthetic(two, tmp_path / "two" / "models", client)
    assert submitted == [last] and records(two) == (runs, fit)
