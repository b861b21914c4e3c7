r"""The trained surrogate as one artifact: raw QRH inputs (n, 15) in, implied vols (n, 60) out.

Artifact folder (written by :meth:`QRHSurrogate.save`)::

    model.keras      Keras model (scaled inputs -> vols), custom layers registered in qrh_lib.surrogate.model
    pca.npz          P, mu, y_mean, y_scale, explained_variance_ratio, singular_values
    pca.json         K, use_scaler, total_explained
    x_scaling.json   MinMax map x_s = x * scale + min (sklearn's scale_, min_), feature_range (-1, 1)
    x_scaler.pkl     the dataset's fitted MinMaxScaler, when given (y_scaler.pkl likewise)
    grid.json        Grid.to_dict()
    box.json         InputBox.to_dict(): the training box
    domain.json      Domain.to_dict(): the training domain (the box's stable part); predict refuses inputs outside it
    config.json      training/model/loss configuration
    metrics.json     evaluation metrics
    versions.json    library versions that wrote it

Three forward paths give the same numbers (to float32 round-off): :meth:`predict` (a
``tf.function``, batched), :meth:`predict_numpy` (float64 NumPy, fastest for one surface) and
:meth:`tf_forward` (differentiable, on scaled inputs).
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from scipy.special import expit

from ..artifacts import load_pickle, read_json, save_json, save_npz, save_pickle, versions
from ..domain import Domain
from ..grid import Grid
from ..params import COL_A, COL_ETA, COL_LAMBDA, N_INPUTS, InputBox, Inputs, check_inputs
from .pca import pca_from_arrays, pca_to_arrays

_ARTIFACT_FILES = ("model.keras", "pca.npz", "pca.json", "x_scaling.json", "grid.json", "box.json")


class NumpyResMLP:
    r"""Float64 NumPy copy of a :func:`qrh_lib.surrogate.model.build_resmlp_pca_model` network.

    Gives the forward pass and the vector-Jacobian product :math:`g^\top \partial \hat y/\partial x`
    by manual backpropagation (used by the calibration, where TensorFlow's per-call overhead
    dominates for one surface). A network on a PCA of log vols ends with the exponential
    (``log_vols``), and its derivatives with the factor :math:`\hat y`.
    """

    def __init__(self, model: keras.Model):
        from .model import PCAReconstruction, ResidualBlock

        self.stem = self.blocks = self.head = self.recon = None
        self.log_vols = False
        blocks, self.hidden = [], []
        for layer in model.layers:
            if isinstance(layer, ResidualBlock):
                n = layer.norm
                blocks.append(
                    tuple(np.asarray(w, np.float64) for w in (layer.dense1.kernel, layer.dense1.bias))
                    + ((np.asarray(n.gamma, np.float64), np.asarray(n.beta, np.float64)) if n is not None
                       else (None, None))
                    + tuple(np.asarray(w, np.float64) for w in (layer.dense2.kernel, layer.dense2.bias))
                    + (float(n.epsilon) if n is not None else None,)
                )
            elif isinstance(layer, PCAReconstruction):
                self.recon = (np.asarray(layer.W, np.float64), np.asarray(layer.b, np.float64))
                self.log_vols = layer.log_vols
            elif isinstance(layer, keras.layers.Dense):
                wb = (np.asarray(layer.kernel, np.float64), np.asarray(layer.bias, np.float64))
                if layer.name == "stem":
                    self.stem = wb
                elif layer.name.startswith("hidden_"):
                    self.hidden.append(wb)
                else:
                    self.head = wb
        self.blocks = blocks
        width = blocks[0][0].shape[1] if blocks else 1
        self.layers = [self.stem, *self.hidden]  # SiLU(x W + b) layers before the blocks
        self._avg = np.full((width, 1), 1.0 / width)
        if self.stem is None or self.head is None or self.recon is None:
            raise ValueError("model is not a build_resmlp_pca_model network")
        # Head and reconstruction are both affine: fold them into one map.
        self.out_W = self.head[0] @ self.recon[0]
        self.out_b = self.head[1] @ self.recon[0] + self.recon[1]

    def forward(self, xs: np.ndarray, cache: list | None = None, first=None) -> np.ndarray:
        """Vols (n, d) from scaled inputs (n, 15); fills ``cache`` for :meth:`vjp` if given. ``first`` replaces
        the first layer's ``(W, b)`` (the surrogate folds its input scaling into it)."""
        h = xs
        for i, (W, b) in enumerate(self.layers):
            if i == 0 and first is not None:
                W, b = first
            a = h @ W
            a += b
            h = a * expit(a)
            if cache is not None:
                cache.append(a)
        for W1, b1, g, be, W2, b2, eps in self.blocks:
            t = h @ W1
            t += b1
            if g is None:
                inv, v = None, t
            else:
                avg = self._avg  # row means as a matmul: ~4x faster than .mean(axis=-1) for one row
                t -= t @ avg
                inv = 1.0 / np.sqrt((t * t) @ avg + eps)
                t *= inv  # normalised pre-activation
                v = t * g
                v += be
            if cache is not None:
                cache.append((t, inv, v))
            h = h + (v * expit(v)) @ W2
            h += b2
        out = h @ self.out_W
        out += self.out_b
        if self.log_vols:
            out = np.exp(out)
            if cache is not None:
                cache.append(out)  # vjp's factor
        return out

    def jacobian(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""Vols (n, d) at scaled inputs ``xs`` (n, 15) and their Jacobian :math:`\partial \hat y / \partial x_s`
        (n, d, 15), by forward-mode differentiation: the 15 tangents ride along the forward pass as one matrix
        (cheaper than 60 backward passes, one per output). Row by row: the calibration asks for one row at a
        time (:meth:`jacobian_row`), where plain matrix products beat batched ones."""
        rows = [self.jacobian_row(h[None, :]) for h in np.atleast_2d(np.asarray(xs, np.float64))]
        return np.concatenate([y for y, _ in rows]), np.stack([J for _, J in rows])

    def jacobian_row(self, h):
        """:meth:`jacobian` of one row ``h`` (1, 15), without the batch's wrapping: vols (1, d) and the Jacobian
        (d, 15)."""
        T = np.eye(h.shape[1])
        for W, b in self.layers:
            a = h @ W + b
            s = expit(a)
            h, T = a * s, (T @ W) * (s * (1.0 + a * (1.0 - s)))
        for W1, b1, g, be, W2, b2, eps in self.blocks:
            t, Tt = h @ W1 + b1, T @ W1
            if g is not None:
                t = t - t.mean()
                Tt = Tt - Tt.mean(-1, keepdims=True)
                inv = 1.0 / np.sqrt((t * t).mean() + eps)
                t = t * inv
                Tt = inv * (Tt - t * (Tt @ t.T) / t.size)
                t, Tt = t * g + be, Tt * g
            s = expit(t)
            h = h + (t * s) @ W2 + b2
            T = T + (Tt * (s * (1.0 + t * (1.0 - s)))) @ W2
        y, J = h @ self.out_W + self.out_b, (T @ self.out_W).T
        if self.log_vols:
            y = np.exp(y)
            J *= y[0][:, None]
        return y, J

    def vjp(self, g_out: np.ndarray, cache: list) -> np.ndarray:
        r"""Gradient with respect to the scaled inputs of :math:`\sum g_{out} \cdot \hat y`."""
        if self.log_vols:
            g_out, cache = g_out * cache[-1], cache[:-1]
        gh = g_out @ self.out_W.T
        n_pre = len(self.layers)
        for (W1, _, g, _, W2, _, _), (that, inv, v) in zip(reversed(self.blocks), reversed(cache[n_pre:]),
                                                         strict=True):
            gu = gh @ W2.T
            s = expit(v)
            gv = gu * (s * (1.0 + v * (1.0 - s)))
            if g is None:
                gt = gv
            else:
                gt_hat = gv * g
                gt = inv * (gt_hat - gt_hat @ self._avg - that * ((gt_hat * that) @ self._avg))
            gh = gh + gt @ W1.T
        for (W, _), a in zip(reversed(self.layers), reversed(cache[:n_pre]), strict=True):
            s = expit(a)
            gh = (gh * (s * (1.0 + a * (1.0 - s)))) @ W.T
        return gh


class QRHSurrogate:
    """A trained surrogate: Keras model, PCA info, input scaling, grid, training box and metadata.

    Parameters
    ----------
    model : keras.Model
        Scaled inputs (n, 15) -> vols (n, d).
    pca_info : dict
        As from :func:`qrh_lib.surrogate.pca.fit_pca_components`.
    x_scale, x_min : array_like, shape (15,)
        Input scaling :math:`x_s = x \\cdot scale + min` (``MinMaxScaler.scale_``, ``.min_``).
    grid : Grid
    box : InputBox
        The training box.
    domain : Domain, optional
        The training domain (default: the whole box); :meth:`predict` refuses inputs outside it unless told
        otherwise: outside the box, or beyond the stable domain's margin below the critical feedback.
    config, metrics : dict, optional
        JSON-able training configuration and evaluation metrics.
    x_scaler, y_scaler : sklearn scalers, optional
        The dataset's fitted scalers, kept for provenance.
    """

    def __init__(
        self,
        model,
        pca_info,
        x_scale,
        x_min,
        grid: Grid,
        box: InputBox,
        config=None,
        metrics=None,
        x_scaler=None,
        y_scaler=None,
        domain: Domain | None = None,
    ):
        self.model = model
        self.pca_info = pca_info
        self.x_scale = np.asarray(x_scale, np.float64)
        self.x_min = np.asarray(x_min, np.float64)
        if self.x_scale.shape != (N_INPUTS,) or self.x_min.shape != (N_INPUTS,):
            raise ValueError(f"x_scale and x_min must have shape ({N_INPUTS},)")
        self.grid, self.box = grid, box
        self.domain = Domain(box, None) if domain is None else domain
        if self.domain.box != box:
            raise ValueError(f"domain's box {self.domain.box.name!r} is not the training box {box.name!r}")
        self._lo, self._hi = box.lo, box.hi
        self._margin = self.domain.max_feedback_ratio
        if self._margin is not None:
            from ..pricer.moments import RATIO_TABLE_TOL, lyapunov_table

            self._ratio_grid, self._ratio_table = lyapunov_table()
            self._margin_fast = self._margin * (1 - RATIO_TABLE_TOL)
        self.config = dict(config or {})
        self.metrics = dict(metrics or {})
        self.x_scaler, self.y_scaler = x_scaler, y_scaler
        self._np = self._folded = None
        self.tf_forward = tf.function(
            lambda xs: self.model(xs, training=False),
            input_signature=[tf.TensorSpec((None, N_INPUTS), tf.float32)],
            reduce_retracing=True,
        )

    @classmethod
    def from_scaler(cls, model, pca_info, x_scaler, grid, box, **kwargs) -> QRHSurrogate:
        """Build from a fitted ``MinMaxScaler`` (the dataset's ``x_scaler.pkl``)."""
        return cls(model, pca_info, x_scaler.scale_, x_scaler.min_, grid, box, x_scaler=x_scaler, **kwargs)

    # ------------------------------------------------------------------ inputs
    def scale_inputs(self, X) -> np.ndarray:
        return np.asarray(X, np.float64) * self.x_scale + self.x_min

    def check(self, X, allow_extrapolation: bool = False) -> np.ndarray:
        """Validate raw inputs; outside the training domain raise ``ValueError`` naming the input and its
        bounds (outside the box) or ``a``, its feedback ratio and ``a*(lambda, eta)`` (beyond the margin)."""
        if allow_extrapolation:
            return check_inputs(X, None)
        # Fast path for the common case (vectorised comparisons, the tabulated a*); the slow path names the culprit
        Xa = np.asarray(X, np.float64)
        if Xa.ndim == 1 and Xa.size == N_INPUTS:
            Xa = Xa[None, :]
        if Xa.ndim == 2 and Xa.shape[1] == N_INPUTS and (Xa >= self._lo).all() and (Xa <= self._hi).all():
            if self._margin is None:
                return Xa
            if len(Xa) == 1:  # one surface: scalar arithmetic is several times faster than array operations
                row = Xa[0].tolist()
                lam, eta, a = row[COL_LAMBDA], row[COL_ETA], row[COL_A]
                if a * eta * eta * float(np.interp(lam, self._ratio_grid, self._ratio_table)) <= self._margin_fast:
                    return Xa
            else:
                x = Inputs(Xa)
                if (x.a * x.eta**2 * np.interp(x.lam, self._ratio_grid, self._ratio_table) <= self._margin_fast).all():
                    return Xa
        try:
            return self.domain.check(X)
        except ValueError as err:
            raise ValueError(
                f"{err} (training domain: the {self.domain.kind} part of box {self.box.name!r}; pass "
                "allow_extrapolation=True to predict outside it)"
            ) from None

    # ------------------------------------------------------------------ forward paths
    @property
    def numpy_net(self) -> NumpyResMLP:
        if self._np is None:
            self._np = NumpyResMLP(self.model)
        return self._np

    def predict(self, X, allow_extrapolation: bool = False, batch_size: int = 65536) -> np.ndarray:
        """Implied vols (n, d) for raw inputs X (n, 15), through the ``tf.function`` path."""
        X = self.check(X, allow_extrapolation)
        xs = self.scale_inputs(X).astype(np.float32)
        out = [self.tf_forward(tf.constant(xs[i : i + batch_size])).numpy() for i in range(0, len(xs), batch_size)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, self.grid.size))

    def predict_numpy(self, X, allow_extrapolation: bool = False) -> np.ndarray:
        """Implied vols (n, d) through the float64 NumPy forward pass (single-surface latency); the input
        scaling is folded into the first layer, ``W' = diag(scale) W``, ``b' = min W + b``."""
        X = self.check(X, allow_extrapolation)
        if self._folded is None:
            W, b = self.numpy_net.layers[0]
            self._folded = (self.x_scale[:, None] * W, self.x_min @ W + b)
        return self.numpy_net.forward(X, first=self._folded)

    def predict_keras(self, X, allow_extrapolation: bool = False, batch_size: int = 4096) -> np.ndarray:
        """Implied vols through ``keras.Model.predict`` (reference path)."""
        X = self.check(X, allow_extrapolation)
        return self.model.predict(self.scale_inputs(X).astype(np.float32), batch_size=batch_size, verbose=0).astype(
            np.float64
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> Path:
        """Write the artifact folder (see module docstring), every file atomically; returns its path."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        # Keras wants a ``.keras`` name: save beside the target, then rename over it
        tmp = path / f".model.{os.getpid()}.tmp.keras"
        try:
            self.model.save(tmp)
            os.replace(tmp, path / "model.keras")
        finally:
            tmp.unlink(missing_ok=True)
        arrays, meta = pca_to_arrays(self.pca_info)
        save_npz(path / "pca.npz", **arrays)
        save_json(path / "pca.json", meta)
        save_json(path / "x_scaling.json",
                  {"scale": self.x_scale.tolist(), "min": self.x_min.tolist(), "feature_range": [-1, 1]})
        for name, sc in (("x_scaler", self.x_scaler), ("y_scaler", self.y_scaler)):
            if sc is not None:
                save_pickle(path / f"{name}.pkl", sc)
        save_json(path / "grid.json", self.grid.to_dict())
        save_json(path / "box.json", self.box.to_dict())
        save_json(path / "domain.json", self.domain.to_dict())
        save_json(path / "config.json", self.config)
        save_json(path / "metrics.json", self.metrics)
        save_json(path / "versions.json", versions())
        return path

    @classmethod
    def load(cls, path) -> QRHSurrogate:
        """Read an artifact folder written by :meth:`save`."""
        from . import model as _model  # noqa: F401  (registers the custom layers)

        path = Path(path)
        missing = [f for f in _ARTIFACT_FILES if not (path / f).exists()]
        if missing:
            raise FileNotFoundError(f"{path} is not a surrogate artifact: missing {missing}")
        model = keras.saving.load_model(path / "model.keras", compile=False)
        with np.load(path / "pca.npz") as z:
            pca_info = pca_from_arrays(z, read_json(path / "pca.json"))
        xs = read_json(path / "x_scaling.json")
        box = read_json(path / "box.json")
        scalers = {name: load_pickle(path / f"{name}.pkl") for name in ("x_scaler", "y_scaler")
                   if (path / f"{name}.pkl").exists()}
        return cls(
            model,
            pca_info,
            xs["scale"],
            xs["min"],
            Grid.from_dict(read_json(path / "grid.json")),
            InputBox(box["name"], tuple(box["lower"]), tuple(box["upper"])),
            config=read_json(path / "config.json") if (path / "config.json").exists() else None,
            metrics=read_json(path / "metrics.json") if (path / "metrics.json").exists() else None,
            domain=Domain.from_dict(read_json(path / "domain.json")) if (path / "domain.json").exists() else None,
            **scalers,
        )
