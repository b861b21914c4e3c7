"""Numbers do not move: the library makes bit-identical datasets and surrogate weights to those of the commit
before its reorganisation into the pricer, surrogate and workflow subpackages.

Both versions run the same recipe in fresh processes: the reference from a copy of ``qrh_lib`` at
:data:`REFERENCE` taken from git, this one from the working tree. Every array of the two datasets (shards,
splits, scalers' fitted ranges) and every weight of the two trained networks must be equal bit for bit. Without
the git history (a shallow clone) the test is skipped, saying so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from qrh_lib.artifacts import load_pickle
from qrh_lib.paths import PROJ_ROOT

#: The last commit with the flat layout (qrh_lib/*.py), whose numbers the subpackages must reproduce.
REFERENCE = "40577f7"

#: The recipe, in the flat layout's API and in this one's. Small, but it runs every stage: the stable-domain
#: Sobol design, the compiled engine with every control variate, the NaN rule, the split, the scalers, the PCA
#: head, the network's initialisation, the seeded shuffling and Adam.
COMMON = """
    import sys
    import numpy as np
    out, n_samples, n_paths, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    GEN = dict(n_samples=n_samples, seed=5, shard_size=32, mc={"n_paths": n_paths, "steps_per_year": 52})
    TRAIN = dict(n_components=12, width=32, n_blocks=2, epochs=epochs, batch_size=32, seed=3)
"""
FLAT = COMMON + """
    import qrh_lib.data as data
    from qrh_lib.training import TrainConfig, train_surrogate
    config = TrainConfig(**TRAIN)
"""
LAYERED = COMMON + """
    import qrh_lib.data as data
    from qrh_lib.pricer import generate
    from qrh_lib.surrogate.config import TrainConfig
    from qrh_lib.surrogate.training import train_surrogate
    config = TrainConfig.from_flat(TRAIN)
"""
RUN = """
    make = generate if "generate" in dir() else data
    path = make.generate_dataset(make.GenerationConfig(**GEN), out + "/data", progress=False)
    d = data.load_dataset(path)
    sur, _ = train_surrogate(d["train_X"], d["train_y"], d["val_X"], d["val_y"], d["x_scaler"], d["grid"], d["box"],
                             config, domain=d["domain"])
    np.savez(out + "/weights.npz", *sur.model.get_weights())
    print(data.__file__)
"""


def run_recipe(source: str, tree, out, sizes=(96, 256, 3)) -> str:
    """Run the recipe with the ``qrh_lib`` found in ``tree``; returns the path of the library it used."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    code = textwrap.dedent(source) + textwrap.dedent(RUN)
    proc = subprocess.run([sys.executable, "-c", code, str(out), *map(str, sizes)], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout.strip().splitlines()[-1]


def arrays(folder) -> dict[str, np.ndarray]:
    """Every array of a dataset folder and of the weights file, by relative path (and key inside an .npz)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.suffix == ".npy":
            out[rel] = np.load(p)
        elif p.suffix == ".npz":
            with np.load(p) as z:
                out.update({f"{rel}:{k}": z[k] for k in z.files if k != "seconds"})  # seconds: a timing
        elif p.suffix == ".pkl":
            scaler = load_pickle(p)
            out.update({f"{rel}:{k}": getattr(scaler, k) for k in ("min_", "scale_", "data_min_", "data_max_")})
    return out


@pytest.mark.slow
def test_same_seed_same_dataset_and_weights_as_before_the_reorganisation(tmp_path):
    have = subprocess.run(["git", "cat-file", "-e", f"{REFERENCE}^{{commit}}"], cwd=PROJ_ROOT, capture_output=True)
    if have.returncode != 0:
        pytest.skip(f"commit {REFERENCE} is not in this checkout's git history (shallow clone)")
    ref_tree = tmp_path / "reference"
    ref_tree.mkdir()
    archive = subprocess.run(["git", "archive", REFERENCE, "qrh_lib"], cwd=PROJ_ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(ref_tree)], input=archive.stdout, check=True)

    used_ref = run_recipe(FLAT, ref_tree, tmp_path / "before")
    used_now = run_recipe(LAYERED, PROJ_ROOT, tmp_path / "after")
    assert used_ref.startswith(str(ref_tree)) and used_now.startswith(str(PROJ_ROOT)), (used_ref, used_now)

    before, after = arrays(tmp_path / "before"), arrays(tmp_path / "after")
    assert sorted(before) == sorted(after)
    assert any(k.startswith("weights.npz") for k in before) and any("shards/" in k for k in before)
    differ = [k for k in before if not np.array_equal(before[k], after[k], equal_nan=before[k].dtype.kind == "f")]
    assert not differ, f"arrays that changed: {differ}"
