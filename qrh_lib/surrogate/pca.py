r"""Principal components of implied-volatility surfaces, and how many to keep.

The surrogate predicts :math:`K` PCA coefficients and reconstructs the 60 vols with a fixed
affine map. With the optional standardisation :math:`z = (y - m) / s` (per grid point),

.. math::

    z \approx \mu + c P^\top, \qquad c = (z - \mu) P, \qquad
    y \approx m + s \odot (\mu + c P^\top),

where the columns of :math:`P \in \mathbb{R}^{60 \times K}` are the leading right singular vectors
of the centred training matrix.

Choosing K
----------
A variance percentage says nothing about vol points. The rule used here compares the
*signal* part of the reconstruction error with the labels' Monte Carlo noise. On noisy labels
:math:`y = f + \varepsilon` the reconstruction residual
:math:`r = s \odot (I - PP^\top)((y - m)/s - \mu)` contains the noise projected on the discarded
directions, whose expected mean square is

.. math::

    \nu_K = \frac{1}{60} \sum_j \overline{\sigma_j^2}
        \sum_i \Big(\frac{s_i}{s_j} (I - PP^\top)_{ij}\Big)^2,

with :math:`\sigma_j` the label standard error at point :math:`j`. The estimated signal error is
:math:`\hat e_K = \sqrt{\max(\mathrm{MSE}_K - \nu_K, 0)}`, and the default K is the smallest K
with :math:`\hat e_K \le f \cdot \mathrm{median}(\sigma)` (``fraction`` :math:`f = 0.25`): the
truncation then adds at most a quarter of the labels' typical noise, so it is never the
accuracy bottleneck of a network aiming at the noise level.

Caveat: :math:`\nu_K` assumes the noise is independent across grid points. Monte Carlo labels of
one surface share their paths, so their errors are correlated and partly lie inside the kept
components; then :math:`\nu_K` overstates the discarded noise, :math:`\hat e_K` understates the
signal error and the rule can pick K too small. Check the ``rmse_pts`` column too (it bounds the
signal error from above), and prefer a K where both have levelled off.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from ..iv import VOL_POINTS

#: Default fraction of the median label MC standard error allowed for PCA truncation.
DEFAULT_K_FRACTION = 0.25


def _complete_rows(y, what="y") -> np.ndarray:
    """Mask of the surfaces (rows) without a missing (non-finite) vol; raises when there is none."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"{what} must have shape (n, n_points), got {y.shape}")
    ok = np.all(np.isfinite(y), axis=1)
    if not ok.any():
        raise ValueError(f"{what} has no surface without a missing vol")
    return ok


def _as_surfaces(y, what="y") -> np.ndarray:
    """The complete surfaces of ``y``: a PCA is fitted and judged on surfaces without missing vols."""
    y = np.asarray(y, dtype=np.float64)
    return y[_complete_rows(y, what)]


def fit_pca_components(y_train_raw, K: int = 12, use_scaler: bool = True, log_vols: bool = False) -> dict:
    r"""Fit a PCA of training surfaces by SVD.

    Parameters
    ----------
    y_train_raw : array_like, shape (n, d)
        Raw implied vols (training split only).
    K : int
        Number of components, :math:`1 \le K \le \min(n, d)`.
    use_scaler : bool
        Standardise each grid point (``StandardScaler``) before the SVD.
    log_vols : bool
        Fit the PCA to log vols: the components, means and scales then live in log-vol space and a surface is the
        exponential of the reconstruction (:func:`pca_inverse_transform`), positive by construction.

    Returns
    -------
    dict
        ``K``, ``P`` (d, K) orthonormal columns, ``mu`` (d,) mean in the (scaled) space,
        ``scaler`` (fitted ``StandardScaler`` or None), ``use_scaler``, ``y_mean`` and
        ``y_scale`` (d,) (zeros and ones when unscaled), ``explained_variance_ratio`` (K,),
        ``total_explained`` (float), ``singular_values`` (all of them), ``log_vols``.
    """
    y = _as_surfaces(y_train_raw, "y_train_raw")
    if log_vols:
        y = _log_vols(y, "y_train_raw")
    n, d = y.shape
    if not 1 <= int(K) <= min(n, d):
        raise ValueError(f"K must be in [1, {min(n, d)}], got {K}")
    K = int(K)
    if use_scaler:
        scaler = StandardScaler().fit(y)
        z = scaler.transform(y)
        y_mean, y_scale = scaler.mean_.copy(), scaler.scale_.copy()
    else:
        scaler, z = None, y
        y_mean, y_scale = np.zeros(d), np.ones(d)
    mu = z.mean(axis=0)
    _, sv, vt = np.linalg.svd(z - mu, full_matrices=False)
    # Sign convention: the largest-magnitude loading of each component is positive (reproducible).
    signs = np.sign(vt[np.arange(vt.shape[0]), np.argmax(np.abs(vt), axis=1)])
    vt = vt * signs[:, None]
    var = sv**2
    ratio = var / var.sum()
    return {
        "K": K,
        "P": vt[:K].T.copy(),
        "mu": mu,
        "scaler": scaler,
        "use_scaler": bool(use_scaler),
        "y_mean": y_mean,
        "y_scale": y_scale,
        "explained_variance_ratio": ratio[:K],
        "total_explained": float(ratio[:K].sum()),
        "singular_values": sv,
        "log_vols": bool(log_vols),
    }


def _log_vols(y, what="y") -> np.ndarray:
    """``log(y)``; a ``ValueError`` names ``what`` when a known vol is not positive."""
    y = np.asarray(y, np.float64)
    bad = np.isfinite(y) & (y <= 0)
    if bad.any():
        raise ValueError(f"{what}: log_vols needs positive vols, got {int(bad.sum())} at or below 0 "
                         f"(smallest {float(y[bad].min())})")
    return np.log(y)


def _to_scaled(y, pca_info) -> np.ndarray:
    y = _log_vols(y) if pca_info.get("log_vols") else np.asarray(y, np.float64)
    return (y - pca_info["y_mean"]) / pca_info["y_scale"]


def pca_transform_targets(y, pca_info: dict) -> np.ndarray:
    r"""Coefficients :math:`c = ((y - m)/s - \mu) P`, shape (n, K)."""
    return (_to_scaled(y, pca_info) - pca_info["mu"]) @ pca_info["P"]


def pca_inverse_transform(coeffs, pca_info: dict) -> np.ndarray:
    r"""Surfaces :math:`y = m + s \odot (\mu + c P^\top)`, shape (n, d) (its exponential for a PCA of log
    vols)."""
    c = np.asarray(coeffs, np.float64)
    y = pca_info["y_mean"] + pca_info["y_scale"] * (pca_info["mu"] + c @ pca_info["P"].T)
    return np.exp(y) if pca_info.get("log_vols") else y


def reconstruction_affine(pca_info: dict) -> tuple[np.ndarray, np.ndarray]:
    r"""The reconstruction as one affine map :math:`y = b + c W` (of log vols for a PCA of log vols).

    Returns ``W`` (K, d) :math:`= P^\top \operatorname{diag}(s)` and ``b`` (d,) :math:`= m + s \mu`.
    """
    W = pca_info["P"].T * pca_info["y_scale"][None, :]
    b = pca_info["y_mean"] + pca_info["y_scale"] * pca_info["mu"]
    return W, b


def truncate_pca(pca_info: dict, K: int) -> dict:
    """A copy of ``pca_info`` (fitted with at least K components of all) keeping the first K."""
    sv = pca_info["singular_values"]
    if not 1 <= K <= sv.size:
        raise ValueError(f"K must be in [1, {sv.size}], got {K}")
    if K > pca_info["K"]:
        raise ValueError(f"pca_info has only {pca_info['K']} components, asked for {K}")
    ratio = sv**2 / np.sum(sv**2)
    out = dict(pca_info)
    out.update(
        K=K, P=pca_info["P"][:, :K].copy(), explained_variance_ratio=ratio[:K], total_explained=float(ratio[:K].sum())
    )
    return out


def pca_reconstruction_errors(y_fit, y_eval=None, iv_se_eval=None, Ks=None, use_scaler: bool = True) -> pd.DataFrame:
    r"""Reconstruction error of K components, in vol points, against the labels' MC noise.

    Parameters
    ----------
    y_fit : array_like, shape (n, d)
        Surfaces the PCA is fitted on (training split).
    y_eval : array_like, shape (m, d), optional
        Surfaces to reconstruct (a held-out split is better: it does not reward fitting noise).
        Defaults to ``y_fit``.
    iv_se_eval : array_like, shape (m, d) or (d,), optional
        MC standard error of ``y_eval``; gives the noise floor :math:`\nu_K` (module docstring)
        and the estimated signal error.
    Ks : iterable of int, optional
        Component counts, default ``1..min(n, d)``.

    Returns
    -------
    pandas.DataFrame
        One row per K: ``K``, ``total_explained``, ``rmse_pts``, ``max_pts``, ``noise_floor_pts``
        (:math:`\sqrt{\nu_K}`), ``signal_rmse_pts`` (:math:`\hat e_K`); noise columns are NaN
        without ``iv_se_eval``. Vol points are vols times 100.
    """
    y_fit = _as_surfaces(y_fit, "y_fit")
    if y_eval is None:
        y_eval = y_fit
    else:
        ok = _complete_rows(y_eval, "y_eval")
        y_eval = np.asarray(y_eval, np.float64)[ok]
        if iv_se_eval is not None and np.ndim(iv_se_eval) == 2:
            iv_se_eval = np.asarray(iv_se_eval, np.float64)[ok]
    n, d = y_fit.shape
    k_max = min(n, d)
    Ks = range(1, k_max + 1) if Ks is None else [int(k) for k in Ks]
    full = fit_pca_components(y_fit, K=k_max, use_scaler=use_scaler)
    s = full["y_scale"]
    z = _to_scaled(y_eval, full) - full["mu"]
    mean_var = None
    if iv_se_eval is not None:
        se = np.asarray(iv_se_eval, np.float64)
        mean_var = np.mean(se**2, axis=0) if se.ndim == 2 else se**2
    rows = []
    for K in Ks:
        info = truncate_pca(full, K)
        P = info["P"]
        resid = s * (z - (z @ P) @ P.T)  # vol units
        mse = float(np.mean(resid**2))
        row = {
            "K": K,
            "total_explained": info["total_explained"],
            "rmse_pts": VOL_POINTS * np.sqrt(mse),
            "max_pts": VOL_POINTS * float(np.max(np.abs(resid))),
            "noise_floor_pts": np.nan,
            "signal_rmse_pts": np.nan,
        }
        if mean_var is not None:
            M = np.eye(d) - P @ P.T
            a = np.sum((s[:, None] * M / s[None, :]) ** 2, axis=0)  # a_j, see module docstring
            nu = float(np.mean(mean_var * a))
            row["noise_floor_pts"] = VOL_POINTS * np.sqrt(nu)
            row["signal_rmse_pts"] = VOL_POINTS * np.sqrt(max(mse - nu, 0.0))
        rows.append(row)
    return pd.DataFrame(rows)


def choose_n_components(errors: pd.DataFrame, median_se, fraction: float = DEFAULT_K_FRACTION) -> int:
    r"""Smallest K whose estimated signal reconstruction RMSE is at most ``fraction * median_se``.

    Parameters
    ----------
    errors : pandas.DataFrame
        Output of :func:`pca_reconstruction_errors` (with ``iv_se_eval``; without it the raw
        ``rmse_pts`` is used, which is conservative).
    median_se : float
        Median MC standard error of the labels, in vol units (not points).
    fraction : float
        Allowed fraction of the median standard error (default 0.25).

    Returns
    -------
    int
        The chosen K (the largest K tabulated if none qualifies).
    """
    col = "signal_rmse_pts" if errors["signal_rmse_pts"].notna().all() else "rmse_pts"
    ok = errors[errors[col] <= fraction * VOL_POINTS * float(median_se)]
    return int(ok["K"].min()) if len(ok) else int(errors["K"].max())


def pca_to_arrays(pca_info: dict) -> tuple[dict, dict]:
    """Split ``pca_info`` into arrays (for ``.npz``) and JSON metadata (no pickles)."""
    arrays = {
        k: np.asarray(pca_info[k])
        for k in ("P", "mu", "y_mean", "y_scale", "explained_variance_ratio", "singular_values")
    }
    meta = {
        "K": int(pca_info["K"]),
        "use_scaler": bool(pca_info["use_scaler"]),
        "total_explained": float(pca_info["total_explained"]),
        "log_vols": bool(pca_info.get("log_vols", False)),
    }
    return arrays, meta


def pca_from_arrays(arrays, meta: dict) -> dict:
    """Inverse of :func:`pca_to_arrays`; the scaler is rebuilt from ``y_mean`` and ``y_scale``."""
    info = {
        k: np.asarray(arrays[k], np.float64)
        for k in ("P", "mu", "y_mean", "y_scale", "explained_variance_ratio", "singular_values")
    }
    info.update(K=int(meta["K"]), use_scaler=bool(meta["use_scaler"]), total_explained=float(meta["total_explained"]),
                log_vols=bool(meta.get("log_vols", False)))
    scaler = None
    if info["use_scaler"]:
        scaler = StandardScaler()
        scaler.mean_, scaler.scale_ = info["y_mean"].copy(), info["y_scale"].copy()
        scaler.var_ = scaler.scale_**2
        scaler.n_features_in_ = scaler.mean_.size
    info["scaler"] = scaler
    return info
