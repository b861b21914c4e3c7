r"""Datasets on disk: the input design, the folder layout, and reading and writing it.

Layout of a dataset folder (the original notebook's, plus standard errors and a manifest)::

    data/raw/data_<size>_<config key>/
        train_X.npy train_y.npy val_X.npy val_y.npy      raw inputs (n, 15) and implied vols (n, 60)
        train_iv_se.npy val_iv_se.npy                    Monte Carlo standard errors of the vols
        train_index.npy train_growth.npy (and val_)      row of each surface in the design, its growth rate
        test_<size>.npz                                  the same arrays of the test split
        x_scaler.pkl y_scaler.pkl                        MinMax scalers fitted on the training split only
        preview_<size>.csv                               the first training rows, readable
        manifest.json                                    config, seed, versions, timings, rejections
        shards/                                          priced shards (resumable work)

Datasets are made by :mod:`qrh_lib.pricer.generate` (which names the folder after the configuration's key)
and, for tests and benchmarks of the network alone, by :mod:`qrh_lib.synthetic`; both write through
:func:`write_dataset`, every file atomically (:mod:`qrh_lib.artifacts`).

Design: a scrambled Sobol sequence (scipy.stats.qmc) by default. For a regression training set in 15
dimensions a low-discrepancy design covers the box more evenly than i.i.d. uniform draws, which leave holes
and clusters at this sample size; scrambling keeps each point uniformly distributed, and sample ``i`` is the
``i``-th point of the seeded sequence, whatever the shard layout. ``sampler="uniform"`` is available.

Domain: the product's domain by default, ``domain="stable"``: the points of the sequence whose feedback ratio
:math:`a / a^*(\lambda, \eta)` is at most ``max_feedback_ratio`` (0.9, :mod:`qrh_lib.domain`); sample ``i`` is the
``i``-th such point. ``domain="box"`` keeps Rosenbaum & Zhang's whole box, for comparison: part of it is
explosive (the factors' second moments grow without bound, :func:`qrh_lib.pricer.moments.second_moment_growth`),
where implied vols are heavy-tailed Monte Carlo estimates, not smooth functions of the inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .artifacts import atomic_write, load_pickle, read_json, save_json, save_npy, save_npz, save_pickle
from .domain import STABILITY_MARGIN, Domain
from .grid import Grid
from .params import PARAM_NAMES, InputBox

SAMPLERS = ("sobol", "uniform")
#: Shares of the train, validation and test splits.
SPLIT = (0.8, 0.1, 0.1)
#: A surface keeps its place in the splits with at most this many missing implied vols (NaN labels, masked by
#: the loss and the metrics). A missing vol is a deep out-of-the-money option that no path reached, or whose
#: control-variate price came out non-positive: at 1,024 paths 7% of the stable domain's surfaces miss one,
#: mostly the calm ones (median ATM vol 14% against 26%), so dropping them would bias the data against
#: market-like states.
MAX_MISSING_VOLS = 12


def size_label(n: int) -> str:
    """``100000 -> '100k'``, ``2500 -> '2500'``: the ``<size>`` of the folder and file names."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def sample_inputs(n: int, box: InputBox, sampler: str = "sobol", seed: int = 0, start: int = 0,
                  domain: str = "box", max_feedback_ratio: float = STABILITY_MARGIN) -> np.ndarray:
    """Rows ``start .. start+n-1`` of the seeded design over ``box`` (``domain="box"``) or over its stable part
    (``domain="stable"``, :class:`qrh_lib.domain.Domain`), shape (n, 15)."""
    dom = Domain.named(box, domain, max_feedback_ratio)
    if dom.max_feedback_ratio is not None:
        return _domain_points(dom, sampler, seed, start + n)[start:]
    if sampler == "sobol":
        import warnings

        from scipy.stats import qmc

        eng = qmc.Sobol(d=len(PARAM_NAMES), scramble=True, seed=seed)
        if start:
            eng.fast_forward(start)
        with warnings.catch_warnings():
            # any prefix of the sequence is still low-discrepancy; powers of 2 are balanced, others nearly so
            warnings.filterwarnings("ignore", message="The balance properties of Sobol")
            u = eng.random(n)
    elif sampler == "uniform":
        # one independent stream per row, so a row does not depend on which rows are drawn with it
        u = np.stack([np.random.default_rng([seed, start + i]).random(len(PARAM_NAMES)) for i in range(n)])
    else:
        raise ValueError(f"sampler = {sampler!r} is unknown; allowed: {SAMPLERS}")
    return box.lo + (box.hi - box.lo) * u


_STABLE_CACHE: dict = {}


def _domain_points(dom: Domain, sampler: str, seed: int, n: int) -> np.ndarray:
    """The first ``n`` points of the seeded design over ``dom.box`` inside ``dom`` (cached for the process)."""
    box = dom.box
    key = (box.name, tuple(box.lo), tuple(box.hi), dom.max_feedback_ratio, sampler, seed)
    found, scanned = _STABLE_CACHE.get(key, (np.empty((0, len(PARAM_NAMES))), 0))
    while len(found) < n:
        m = max(256, 2 * (n - len(found)))
        cand = sample_inputs(m, box, sampler, seed, start=scanned)
        found = np.concatenate([found, cand[dom.contains(cand)]])
        scanned += m
        if scanned > 100 * max(n, 256) and len(found) < n:
            raise ValueError(f"box {box.name!r} has (almost) no stable states: {len(found)} in {scanned} points")
    _STABLE_CACHE[key] = (found, scanned)
    return found[:n]


def split_rows(good: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Sorted row indices of the train, validation and test splits (:data:`SPLIT`) of the rows where ``good``,
    shuffled by the seed."""
    perm = np.random.default_rng([seed, 1]).permutation(np.flatnonzero(good))
    n_tr = int(round(SPLIT[0] * len(perm)))
    n_va = int(round(SPLIT[1] * len(perm)))
    return {"train": np.sort(perm[:n_tr]), "val": np.sort(perm[n_tr:n_tr + n_va]), "test": np.sort(perm[n_tr + n_va:])}


def write_dataset(out: str | Path, arrays: dict[str, np.ndarray], parts: dict[str, np.ndarray], size: str,
                  grid: Grid, manifest: dict, preview: bool = True) -> Path:
    """Write a dataset folder (module docstring) from per-row ``arrays`` (``X``, ``y``, ``iv_se`` and any other,
    e.g. ``index``, ``growth``) and the rows of each split; the manifest goes last, so a folder with a manifest
    is complete. Scalers: inputs to [-1, 1], vols to [0, 1], fitted on the training split."""
    from sklearn.preprocessing import MinMaxScaler

    out = Path(out)
    for name in ("train", "val"):
        for key, arr in arrays.items():
            save_npy(out / f"{name}_{key}.npy", arr[parts[name]])
    save_npz(out / f"test_{size}.npz", compressed=True, **{k: a[parts["test"]] for k, a in arrays.items()})
    tr = parts["train"]
    save_pickle(out / "x_scaler.pkl", MinMaxScaler(feature_range=(-1, 1)).fit(arrays["X"][tr]))
    save_pickle(out / "y_scaler.pkl", MinMaxScaler().fit(arrays["y"][tr]))
    if preview:
        _write_preview(out / f"preview_{size}.csv", arrays["X"][tr][:20], arrays["y"][tr][:20], grid)
    save_json(out / "manifest.json", manifest)
    return out


def _write_preview(path: Path, X: np.ndarray, y: np.ndarray, grid: Grid) -> None:
    cols = list(PARAM_NAMES) + [f"iv_k{i}_T{j}" for i in range(grid.n_K) for j in range(grid.n_T)]
    lines = [",".join(cols)] + [",".join(f"{v:.6g}" for v in row) for row in np.hstack([X, y])]
    atomic_write(path, lambda f: f.write(("\n".join(lines) + "\n").encode()))


def load_dataset(path: str | Path) -> dict:
    """Read a finished ``data_<size>/`` folder into a dict.

    Keys: ``train_X``, ``train_y``, ``train_iv_se``, the same for ``val`` and ``test`` (plus the ``*_index`` of
    each row in the generated sample and its ``*_growth`` rate, and with VIX labels ``*_vix_y``, ``*_vix_iv_se``,
    ``*_vix_future``, ``*_vix_future_se``), ``x_scaler``, ``y_scaler``, ``manifest``, ``grid`` (Grid), ``box``
    (InputBox), ``domain`` (Domain: the box, or its stable part), ``vix_grid`` (Grid, or None) and ``path``.
    """
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{path} is not a finished dataset (no manifest.json)")
    manifest = read_json(manifest_path)
    out = {"manifest": manifest, "grid": Grid.from_dict(manifest["grid"]), "path": path,
           "vix_grid": Grid.from_dict(manifest["vix"]["grid"]) if "vix" in manifest else None}
    b = manifest["box"]
    out["box"] = InputBox(b["name"], tuple(b["lower"]), tuple(b["upper"]))
    out["domain"] = Domain.from_dict(manifest["domain"]) if "domain" in manifest else Domain(out["box"], None)
    for split in ("train", "val"):
        for f in sorted(path.glob(f"{split}_*.npy")):
            out[f.stem] = np.load(f)
    tests = sorted(path.glob("test_*.npz"))
    if len(tests) != 1:
        raise FileNotFoundError(f"{path} must hold exactly one test_<size>.npz, found {len(tests)}")
    with np.load(tests[0]) as z:
        for key in z.files:
            out[f"test_{key}"] = z[key]
    for name in ("x_scaler", "y_scaler"):
        out[name] = load_pickle(path / f"{name}.pkl")
    return out
