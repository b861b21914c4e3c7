r"""A smooth analytic stand-in for QRH surfaces, for unit tests and smoke benchmarks only.

It is *not* the QRH model. It mimics its shape: a factor state
:math:`Z(T) = \sum_i w_i z^i_0 e^{-g_i T}` feeds a variance :math:`v(T) = a (Z(T) - b)^2 + c`,
the ATM vol is the square root of its time average (with mean reversion speed :math:`\lambda`),
the skew scales with :math:`-\eta a` and decays like :math:`T^{-0.4}`, and a smile term is
quadratic in :math:`k/\sqrt{T}`. Vols are squashed smoothly into (0.1, 0.9). The written
dataset follows the layout of ``data/raw/data_<size>/`` so the training code is exercised
exactly as on real data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import write_dataset
from .grid import Grid, default_grid
from .params import N_FACTORS, RZ_BOX, InputBox, Inputs

_W = np.geomspace(1.0, 0.05, N_FACTORS)  # factor weights
_G = np.geomspace(0.05, 50.0, N_FACTORS)  # factor decay rates (1/years)


def synthetic_surfaces(X, grid: Grid | None = None) -> np.ndarray:
    """Noise-free synthetic vols, shape (n, n_K * n_T), strike-major, for raw inputs X (n, 15)."""
    grid = default_grid() if grid is None else grid
    X = np.atleast_2d(np.asarray(X, np.float64))
    p = Inputs(X)
    lam, eta, a, b, c = (u[:, None] for u in (p.lam, p.eta, p.a, p.b, p.c))  # (n, 1)
    z = p.z0
    T = grid.maturities[None, :]
    # Z(T) averaged over [0, T] per factor: w z (1 - e^{-gT}) / (gT)
    avg = (1.0 - np.exp(-_G[None, :, None] * T[:, None, :])) / (_G[None, :, None] * T[:, None, :])
    Zbar = np.einsum("nf,f,nft->nt", z, _W / _W.sum(), np.broadcast_to(avg, (X.shape[0],) + avg.shape[1:]))
    v0 = a * (Zbar - b) ** 2 + c
    vinf = c + 0.5 * a * b**2
    mr = (1.0 - np.exp(-lam * T)) / (lam * T)
    atm = np.sqrt(vinf + (v0 - vinf) * mr)  # (n, n_T)
    m = grid.log_moneyness / np.sqrt(grid.maturities)[None, :]  # (n_K, n_T)
    skew = -0.6 * eta * a * T**-0.1  # per unit m
    curv = 0.4 * eta * a
    raw = atm[:, None, :] + skew[:, None, :] * m[None] + curv[:, None] * m[None] ** 2
    iv = 0.1 + 0.8 / (1.0 + np.exp(-4.0 * (raw - 0.4)))  # smooth squash into (0.1, 0.9)
    return iv.reshape(X.shape[0], -1)


def synthetic_se(y, grid: Grid | None = None) -> np.ndarray:
    """A plausible MC standard error map: 0.1 vol point, more in the wings, in vol units."""
    grid = default_grid() if grid is None else grid
    m = np.abs(grid.log_moneyness / np.sqrt(grid.maturities)[None, :]).reshape(-1)
    return np.broadcast_to(0.001 * (1.0 + 2.0 * m), np.shape(y)).copy()


def make_synthetic_dataset(
    n: int, seed: int = 0, grid: Grid | None = None, box: InputBox = RZ_BOX, noise: bool = True
) -> dict:
    """Uniform inputs in ``box``, synthetic vols plus Gaussian noise of size ``iv_se``.

    Returns a dict with ``X`` (n, 15), ``y`` (n, d), ``y_clean``, ``iv_se``.
    """
    rng = np.random.default_rng(seed)
    X = box.lo + (box.hi - box.lo) * rng.random((n, box.lo.size))
    y_clean = synthetic_surfaces(X, grid)
    se = synthetic_se(y_clean, grid)
    y = y_clean + (se * rng.standard_normal(y_clean.shape) if noise else 0.0)
    return {"X": X, "y": y, "y_clean": y_clean, "iv_se": se}


def write_synthetic_dataset(
    path,
    n_train: int = 2000,
    n_val: int = 400,
    n_test: int = 400,
    seed: int = 0,
    grid: Grid | None = None,
    box: InputBox = RZ_BOX,
    size: str = "synth",
) -> Path:
    """Write a synthetic dataset folder in the project's raw-data layout; returns the folder."""
    grid = default_grid() if grid is None else grid
    d = make_synthetic_dataset(n_train + n_val + n_test, seed=seed, grid=grid, box=box)
    n = n_train + n_val + n_test
    parts = {"train": np.arange(n_train), "val": np.arange(n_train, n_train + n_val),
             "test": np.arange(n_train + n_val, n)}
    manifest = {
        "grid": grid.to_dict(),
        "box": box.to_dict(),
        "seed": seed,
        "size": size,
        "generator": "qrh_lib.synthetic (not QRH)",
    }
    return write_dataset(path, {k: d[k] for k in ("X", "y", "iv_se")}, parts, size, grid, manifest, preview=False)
