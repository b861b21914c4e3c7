"""Dataset generation: layout, reproducibility, resumption, reuse and input errors."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from qrh_lib.data import MAX_MISSING_VOLS, load_dataset
from qrh_lib.domain import STABILITY_MARGIN
from qrh_lib.params import RZ_BOX, check_inputs
from qrh_lib.paths import PROJ_ROOT
from qrh_lib.pricer.generate import GenerationConfig, generate_dataset
from qrh_lib.pricer.moments import second_moment_growth

TINY = {"n_paths": 256, "steps_per_year": 24, "grading": 0.5, "first_step": 1e-3, "batch_size": 4}


def tiny_config(**kw):
    return GenerationConfig(**{"n_samples": 20, "seed": 3, "shard_size": 8, "mc": TINY, **kw})


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "data_20"
    return generate_dataset(tiny_config(), out, progress=False)


def test_layout_and_manifest(full_run):
    names = {p.name for p in full_run.iterdir()}
    assert {"train_X.npy", "train_y.npy", "val_X.npy", "val_y.npy", "test_20.npz", "x_scaler.pkl", "y_scaler.pkl",
            "preview_20.csv", "manifest.json", "train_iv_se.npy", "val_iv_se.npy"} <= names
    d = load_dataset(full_run)
    m = d["manifest"]
    assert m["seed"] == 3 and m["config"]["mc"] == TINY and m["versions"]["tensorflow"]
    n_kept = m["n_kept"]
    assert n_kept + m["rejected"]["surfaces"] == 20
    assert m["split"] == {"train": round(0.8 * n_kept), "val": round(0.1 * n_kept),
                          "test": n_kept - round(0.8 * n_kept) - round(0.1 * n_kept)}
    assert d["train_X"].shape == (m["split"]["train"], 15) and d["train_y"].shape == (m["split"]["train"], 60)
    assert d["test_y"].shape == d["test_iv_se"].shape == (m["split"]["test"], 60)
    for split in ("train", "val", "test"):
        y, se = d[f"{split}_y"], d[f"{split}_iv_se"]
        known = np.isfinite(y)  # a kept surface misses at most MAX_MISSING_VOLS vols, NaN in labels and errors
        assert (np.sum(~known, axis=1) <= MAX_MISSING_VOLS).all() and np.array_equal(known, np.isfinite(se))
        assert (se[known] > 0).all()
        check_inputs(d[f"{split}_X"], RZ_BOX)
    assert m["rejected"]["kept_surfaces_with_missing_vols"] == sum(
        int(np.any(~np.isfinite(d[f"{s}_y"]), axis=1).sum()) for s in ("train", "val", "test"))
    # scalers are fitted on the training split only
    xs = d["x_scaler"].transform(d["train_X"])
    assert xs.min() == pytest.approx(-1) and xs.max() == pytest.approx(1)
    np.testing.assert_allclose(d["y_scaler"].data_min_, np.nanmin(d["train_y"], axis=0))  # NaN labels ignored
    assert m["timings"]["seconds_per_surface"] > 0
    # every sample's growth rate is kept; the manifest counts the explosive ones
    growth = np.concatenate([d[f"{s}_growth"] for s in ("train", "val", "test")])
    np.testing.assert_allclose(growth, second_moment_growth(np.concatenate([d[f"{s}_X"] for s in
                                                                             ("train", "val", "test")])))
    assert m["explosive"]["kept"] == int((growth > 0).sum())
    assert m["explosive"]["samples"] == m["explosive"]["kept"] + m["explosive"]["rejected"]


def test_interrupted_run_resumes_to_the_same_dataset(tmp_path, full_run):
    out = tmp_path / "data_20"
    cfg = tiny_config()
    assert generate_dataset(cfg, out, progress=False, max_shards=1) is None  # stopped after one shard
    assert len(list((out / "shards").glob("shard_*.npz"))) == 1 and not (out / "manifest.json").exists()
    first = (out / "shards" / "shard_00000.npz").stat().st_mtime_ns
    generate_dataset(cfg, out, progress=False)
    assert (out / "shards" / "shard_00000.npz").stat().st_mtime_ns == first  # kept, not recomputed
    a, b = load_dataset(out), load_dataset(full_run)
    for key in ("train_X", "train_y", "train_iv_se", "val_y", "test_y", "test_iv_se"):
        np.testing.assert_array_equal(a[key], b[key])


def test_finished_dataset_is_reused_and_other_config_refused(full_run):
    stamp = (full_run / "manifest.json").stat().st_mtime_ns
    assert generate_dataset(tiny_config(shard_size=5), full_run, progress=False) == full_run  # same numbers
    assert (full_run / "manifest.json").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="different dataset"):
        generate_dataset(tiny_config(seed=4), full_run, progress=False)


def test_the_domain_and_its_margin_are_part_of_the_key():
    assert tiny_config().key() != tiny_config(domain="box").key() != tiny_config(max_feedback_ratio=0.8).key()
    assert tiny_config(domain="box").key() == tiny_config(domain="box", max_feedback_ratio=0.8).key()


def test_stable_domain_is_the_default_and_recorded(full_run):
    d = load_dataset(full_run)
    assert d["manifest"]["config"]["domain"] == "stable" and d["domain"].max_feedback_ratio == STABILITY_MARGIN
    X = np.concatenate([d[f"{s}_X"] for s in ("train", "val", "test")])
    assert d["domain"].contains(X).all() and d["manifest"]["explosive"]["samples"] == 0


@pytest.mark.parametrize("kw,match", [
    ({"n_samples": 5}, "n_samples = 5"),
    ({"box": "huge"}, "box = 'huge' is unknown; allowed"),
    ({"sampler": "halton"}, "sampler = 'halton' is unknown"),
    ({"domain": "reachable"}, "domain = 'reachable' is unknown; allowed"),
    ({"max_feedback_ratio": 1.2}, r"max_feedback_ratio = 1.2 must be in \(0, 1\)"),
    ({"mc": {"n_paths": 0}}, "n_paths = 0"),
    ({"mc": {"paths": 10}}, "unknown MCConfig option"),
])
def test_bad_generation_options_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**kw)
    with pytest.raises(ValueError, match="unknown GenerationConfig option"):
        GenerationConfig.from_dict({"n_sample": 10})


def test_command_line(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "qrh_lib.pricer.generate", "--n-samples", "12", "--seed", "1", "--shard-size", "6",
           "--n-paths", "128", "--steps-per-year", "12", "--out", str(out), "--no-progress"]
    r = subprocess.run(cmd, cwd=PROJ_ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["n_kept"] + summary["rejected"]["surfaces"] == 12
    assert summary["split"]["train"] == round(0.8 * summary["n_kept"])
    with open(out / "x_scaler.pkl", "rb") as f:
        assert pickle.load(f).feature_range == (-1, 1)
    bad = subprocess.run(cmd[:3] + ["--n-samples", "3"], cwd=PROJ_ROOT, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "n_samples = 3" in bad.stderr


def test_vix_labels_come_from_the_same_paths_and_leave_the_spx_labels_alone(tmp_path, full_run):
    from qrh_lib.grid import default_grid
    from qrh_lib.pricer.vix import vix_grid

    # the test grid's maturities: the default grid's first two (the VIX grid's must be among the SPX grid's)
    spx = default_grid()
    vgrid = vix_grid(maturity_days=(30, 60))
    with pytest.raises(ValueError, match="not one of the grid's"):
        tiny_config(vix_grid=vix_grid(maturity_days=(45,)).to_dict())
    cfg = tiny_config(vix_grid=vgrid.to_dict())
    assert cfg.key() != tiny_config().key()
    d_spx = load_dataset(full_run)
    d = load_dataset(generate_dataset(cfg, tmp_path / "vix", progress=False))
    assert d["vix_grid"] == vgrid and d_spx["vix_grid"] is None and d["grid"] == spx
    for split in ("train", "val", "test"):
        # same rows here (no surface of this design misses a VIX vol), same SPX numbers
        np.testing.assert_array_equal(d[f"{split}_y"], d_spx[f"{split}_y"])
        assert d[f"{split}_vix_y"].shape == (len(d[f"{split}_X"]), vgrid.size)
        assert d[f"{split}_vix_future"].shape == (len(d[f"{split}_X"]), vgrid.n_T)
    fut = d["train_vix_future"]
    assert np.all((fut > 0.02) & (fut < 2.0)) and np.nanmedian(d["train_vix_iv_se"]) < 0.2
    assert d["manifest"]["vix"]["grid"] == vgrid.to_dict()
