"""The input design and the dataset folders (qrh_lib.data)."""

import numpy as np

from qrh_lib.data import load_dataset, sample_inputs, split_rows, write_dataset
from qrh_lib.domain import STABILITY_MARGIN
from qrh_lib.grid import default_grid
from qrh_lib.params import RZ_BOX
from qrh_lib.pricer.moments import feedback_ratio, second_moment_growth


def test_sampling_is_reproducible_and_independent_of_chunks():
    for sampler in ("sobol", "uniform"):
        whole = sample_inputs(40, RZ_BOX, sampler, seed=1)
        parts = np.vstack([sample_inputs(16, RZ_BOX, sampler, seed=1, start=0),
                           sample_inputs(24, RZ_BOX, sampler, seed=1, start=16)])
        np.testing.assert_array_equal(whole, parts)
        assert np.all(whole >= RZ_BOX.lo) and np.all(whole <= RZ_BOX.hi)


def test_stable_domain_keeps_the_points_of_the_sequence_inside_the_margin():
    whole = sample_inputs(300, RZ_BOX, "sobol", seed=1)
    ratio = feedback_ratio(whole, exact=True)
    stable = whole[ratio <= STABILITY_MARGIN]
    assert 0 < len(stable) < len(whole)  # the box has states beyond the margin, and inside it
    assert np.all(second_moment_growth(stable) < 0)  # inside the margin every state is stable
    got = sample_inputs(len(stable), RZ_BOX, "sobol", seed=1, domain="stable")
    np.testing.assert_array_equal(got, stable)
    np.testing.assert_array_equal(sample_inputs(10, RZ_BOX, "sobol", seed=1, start=20, domain="stable"),
                                  stable[20:30])
    # the margin is part of the domain
    wider = sample_inputs(len(stable), RZ_BOX, "sobol", seed=1, domain="stable", max_feedback_ratio=0.99)
    assert not np.array_equal(wider, stable)


def test_splits_partition_the_kept_rows_and_a_written_folder_reads_back(tmp_path):
    good = np.ones(50, bool)
    good[[3, 17]] = False
    parts = split_rows(good, seed=4)
    rows = np.concatenate(list(parts.values()))
    assert sorted(rows) == list(np.flatnonzero(good)) and [len(v) for v in parts.values()] == [38, 5, 5]
    assert all(np.array_equal(a, b) for a, b in zip(parts.values(), split_rows(good, seed=4).values(), strict=True))
    grid = default_grid()
    rng = np.random.default_rng(0)
    arrays = {"X": RZ_BOX.lo + (RZ_BOX.hi - RZ_BOX.lo) * rng.random((50, 15)), "y": 0.2 + 0.01 * rng.random((50, 60)),
              "iv_se": np.full((50, 60), 1e-3), "index": np.arange(50)}
    manifest = {"grid": grid.to_dict(), "box": RZ_BOX.to_dict()}
    out = write_dataset(tmp_path / "d", arrays, parts, "50", grid, manifest)
    d = load_dataset(out)
    for split, rows in parts.items():
        for key, arr in arrays.items():
            np.testing.assert_array_equal(d[f"{split}_{key}"], arr[rows])
    assert d["x_scaler"].feature_range == (-1, 1) and d["grid"].to_dict() == grid.to_dict()
    assert not list(out.glob(".*.tmp")), "no temporary file is left behind"
