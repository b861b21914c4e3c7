r"""Residual MLP with a PCA head, and the surface loss it is trained with.

Architecture (:func:`build_resmlp_pca_model`), on inputs :math:`x \in [-1, 1]^{15}` (MinMax-scaled):

.. math::

    h_0 = \mathrm{SiLU}(W_0 x + b_0), \qquad
    h_{l+1} = h_l + W''_l\, \mathrm{Drop}(\mathrm{SiLU}(\mathrm{LN}(W'_l h_l + b'_l))) + b''_l,

    c = W_c h_L + b_c \in \mathbb{R}^K, \qquad \hat y = b + c\, W_{pca}  \in \mathbb{R}^{60},

where the last map is the fixed PCA reconstruction (:func:`qrh_lib.surrogate.pca.reconstruction_affine`),
so losses and metrics act on implied vols. A PCA of log vols (``PCAConfig.log_vols``, the VIX network's) ends
with :math:`\hat y = \exp(b + c\, W_{pca})` instead, and its loss takes :math:`e = 100 \log(\hat y / y)`.

Loss (:class:`QRHSurfaceLoss`), with the error :math:`e = 100(\hat y - y)` in vol points laid
out on the (strike, maturity) grid:

.. math::

    L = \frac{1}{N}\sum_{ij} \omega_{ij} H_\delta(e_{ij})
      + \alpha_K \overline{(\Delta^2_K e)^2} + \alpha_T \overline{(\Delta^2_T e)^2}
      + \beta\, \overline{(\tilde c - c)^2},

with :math:`H_\delta` the Huber function, :math:`\omega` a weight map normalised to mean 1
(factor ``otm_put_weight`` on OTM puts, ``atm_weight`` on ATM strikes, ``short_tenor_weight`` on
short maturities, multiplied where buckets cross), :math:`\Delta^2` second differences along
the grid index in strike and in maturity, and :math:`\tilde c - c` the PCA coefficients of the
error (in standardised units). The Sobolev terms penalise second differences of the *error*,
not of the prediction: they vanish at the truth, so they cannot bias the fit towards flatter
surfaces than the labels, and they push the error field to be smooth, i.e. the network to get
the surface's curvature right rather than its individual points. Differences are taken along
the grid index, not divided by the (non-uniform) strike or maturity spacing, so the penalty is a
scale-free smoothness prior rather than an estimate of a derivative.
"""

from __future__ import annotations

from dataclasses import replace

import keras
import numpy as np
import tensorflow as tf

from ..grid import Grid, default_grid
from ..iv import VOL_POINTS
from ..params import N_INPUTS
from .config import LossConfig, ModelConfig, TrainConfig
from .pca import reconstruction_affine

PACKAGE = "qrh_lib"


# --------------------------------------------------------------------------- layers
@keras.saving.register_keras_serializable(package=PACKAGE)
class PCAReconstruction(keras.layers.Layer):
    r"""Fixed (non-trainable) map :math:`\hat y = b + c\,W` from K coefficients to d vols (with ``log_vols``,
    :math:`\hat y = \exp(b + c\,W)`: the PCA of log vols).

    Parameters
    ----------
    components : array_like, shape (K, d)
        :math:`W = P^\top \operatorname{diag}(s)`.
    offset : array_like, shape (d,)
        :math:`b = m + s\mu`.
    P, y_scale : array_like, optional
        The orthonormal components (d, K) and per-point scales (d,), kept so a loss can
        project errors on the PCA coefficients.
    log_vols : bool
        The components are log vols': the output is the exponential of the affine map.
    """

    def __init__(self, components, offset, P=None, y_scale=None, log_vols=False, **kwargs):
        super().__init__(**kwargs)
        self.log_vols = bool(log_vols)
        self.components_init = np.asarray(components, np.float64)
        self.offset_init = np.asarray(offset, np.float64)
        K, d = self.components_init.shape
        self.P_init = None if P is None else np.asarray(P, np.float64)
        self.y_scale_init = None if y_scale is None else np.asarray(y_scale, np.float64)
        self.W = self.add_weight(
            shape=(K, d),
            initializer=keras.initializers.Constant(self.components_init),
            trainable=False,
            name="components",
        )
        self.b = self.add_weight(
            shape=(d,), initializer=keras.initializers.Constant(self.offset_init), trainable=False, name="offset"
        )

    def call(self, c):
        y = keras.ops.matmul(c, self.W) + self.b
        return keras.ops.exp(y) if self.log_vols else y

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.offset_init.size)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            components=self.components_init.tolist(),
            offset=self.offset_init.tolist(),
            P=None if self.P_init is None else self.P_init.tolist(),
            y_scale=None if self.y_scale_init is None else self.y_scale_init.tolist(),
            log_vols=self.log_vols,
        )
        return cfg


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResidualBlock(keras.layers.Layer):
    """``h + Dense(Dropout(SiLU(LayerNorm(Dense(h)))))``; the second Dense starts at zero
    (``zero_init=True``) so every block is the identity at initialisation. ``layer_norm=False`` drops the
    LayerNorm (for the ablation)."""

    def __init__(self, width: int, dropout_rate: float = 0.0, seed: int = 0, zero_init: bool = True,
                 layer_norm: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.width, self.dropout_rate, self.seed, self.zero_init = int(width), float(dropout_rate), int(seed), zero_init
        self.layer_norm = bool(layer_norm)
        self.dense1 = keras.layers.Dense(
            width, kernel_initializer=keras.initializers.GlorotUniform(seed=seed), name="dense1"
        )
        self.norm = keras.layers.LayerNormalization(name="norm") if self.layer_norm else None
        self.dropout = keras.layers.Dropout(dropout_rate, seed=seed + 1) if dropout_rate > 0 else None
        init2 = "zeros" if zero_init else keras.initializers.GlorotUniform(seed=seed + 2)
        self.dense2 = keras.layers.Dense(width, kernel_initializer=init2, name="dense2")

    def build(self, input_shape):
        self.dense1.build(input_shape)
        if self.norm is not None:
            self.norm.build((input_shape[0], self.width))
        self.dense2.build((input_shape[0], self.width))
        super().build(input_shape)

    def call(self, h, training=None):
        t = self.dense1(h)
        u = keras.activations.silu(self.norm(t) if self.norm is not None else t)
        if self.dropout is not None:
            u = self.dropout(u, training=training)
        return h + self.dense2(u)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(width=self.width, dropout_rate=self.dropout_rate, seed=self.seed, zero_init=self.zero_init,
                   layer_norm=self.layer_norm)
        return cfg


def build_resmlp_pca_model(
    pca_info: dict,
    config: ModelConfig | None = None,
    seed: int = 0,
    input_dim: int = N_INPUTS,
    name: str = "qrh_resmlp_pca",
    **changes,
) -> keras.Model:
    """Residual MLP from scaled inputs (n, ``input_dim``) to vols (n, d) through K PCA coefficients.

    Parameters
    ----------
    pca_info : dict
        From :func:`qrh_lib.surrogate.pca.fit_pca_components`; fixes K and the reconstruction.
    config : ModelConfig, optional
        Width, number of blocks, residual or plain layers, LayerNorm, dropout; default :class:`ModelConfig`.
        ``changes`` replace some of its fields (``width=32``).
    seed : int
        Seeds every initializer and dropout layer, so the model does not depend on global state.
    """
    cfg = replace(config or ModelConfig(), **changes)
    width, n_blocks, dropout_rate = cfg.width, cfg.n_blocks, cfg.dropout_rate
    residual, layer_norm = cfg.residual, cfg.layer_norm
    W, b = reconstruction_affine(pca_info)
    inputs = keras.Input(shape=(input_dim,), name="x_scaled")
    h = keras.layers.Dense(
        width, activation="silu", name="stem", kernel_initializer=keras.initializers.GlorotUniform(seed=seed)
    )(inputs)
    for i in range(n_blocks):
        if residual:
            h = ResidualBlock(width, dropout_rate, seed=seed + 10 * (i + 1), layer_norm=layer_norm,
                              name=f"block_{i}")(h)
        else:
            h = keras.layers.Dense(width, activation="silu", name=f"hidden_{i}",
                                   kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 10 * (i + 1)))(h)
    c = keras.layers.Dense(
        pca_info["K"], name="pca_coefficients", kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 7)
    )(h)
    y = PCAReconstruction(W, b, P=pca_info["P"], y_scale=pca_info["y_scale"],
                          log_vols=pca_info.get("log_vols", False), name="pca_reconstruction")(c)
    return keras.Model(inputs, y, name=name)


def get_reconstruction_layer(model: keras.Model) -> PCAReconstruction:
    for layer in model.layers:
        if isinstance(layer, PCAReconstruction):
            return layer
    raise ValueError("model has no PCAReconstruction layer")


# --------------------------------------------------------------------------- loss
def bucket_masks(grid: Grid, atm_band: float = 0.05) -> dict[str, np.ndarray]:
    r"""Boolean (n_K, n_T) masks: ``atm`` (:math:`|k|/\sqrt T \le` ``atm_band``), ``otm_put``
    (:math:`k<0`, not ATM), ``otm_call`` (:math:`k>0`, not ATM), ``short`` (:math:`T \le`
    median maturity), ``long``; the original notebook's buckets on the widening grid."""
    m = grid.log_moneyness / np.sqrt(grid.maturities)[None, :]
    atm = np.abs(m) <= atm_band + 1e-12
    short_T = grid.maturities <= np.median(grid.maturities)
    short = np.broadcast_to(short_T[None, :], grid.shape).copy()
    return {"atm": atm, "otm_put": (m < 0) & ~atm, "otm_call": (m > 0) & ~atm, "short": short, "long": ~short}


def loss_weight_map(grid: Grid, cfg: LossConfig) -> np.ndarray:
    """Weight map (n_K, n_T) of the Huber term, normalised to mean 1."""
    b = bucket_masks(grid, cfg.atm_band)
    w = np.ones(grid.shape)
    w = np.where(b["otm_put"], w * cfg.otm_put_weight, w)
    w = np.where(b["atm"], w * cfg.atm_weight, w)
    w = np.where(b["short"], w * cfg.short_tenor_weight, w)
    if w.sum() <= 0:
        raise ValueError("loss weight map is zero everywhere")
    return w / w.mean()


@keras.saving.register_keras_serializable(package=PACKAGE)
class QRHSurfaceLoss(keras.losses.Loss):
    """Weighted Huber + Sobolev (error 2nd differences) + PCA-coefficient loss on flat surfaces.

    Parameters
    ----------
    grid_shape : (int, int)
        (n_K, n_T); flat surfaces are strike-major.
    weight_map : array_like, shape (n_K, n_T)
        Huber weights (see :func:`loss_weight_map`).
    huber_delta, sobolev_strike, sobolev_maturity, pca_coef_weight : float
        As in :class:`LossConfig`.
    pca_projection : array_like, shape (d, K), optional
        :math:`\\operatorname{diag}(1/s) P`: maps a vol error to its PCA coefficient error.
    log_vols : bool
        Compare log vols: the error is :math:`100 \\log(\\hat y / y)`, the relative error in percent to first
        order, for a network on a PCA of log vols.
    """

    def __init__(
        self,
        grid_shape,
        weight_map,
        huber_delta=1.0,
        sobolev_strike=0.0,
        sobolev_maturity=0.0,
        pca_coef_weight=0.0,
        pca_projection=None,
        log_vols=False,
        name="qrh_surface_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.log_vols = bool(log_vols)
        self.grid_shape = tuple(int(s) for s in grid_shape)
        self.weight_map = np.asarray(weight_map, np.float32).reshape(self.grid_shape)
        self.huber_delta = float(huber_delta)
        self.sobolev_strike = float(sobolev_strike)
        self.sobolev_maturity = float(sobolev_maturity)
        self.pca_coef_weight = float(pca_coef_weight)
        self.pca_projection = None if pca_projection is None else np.asarray(pca_projection, np.float32)
        if self.pca_coef_weight > 0 and self.pca_projection is None:
            raise ValueError("pca_coef_weight > 0 needs pca_projection")

    def terms(self, y_true, y_pred) -> dict:
        """Each term of the loss (already multiplied by its weight), as scalar tensors.

        Missing labels (NaN: options no Monte Carlo path priced) are masked: they add nothing to the Huber term,
        and a second difference that touches one is left out of the Sobolev terms."""
        y_true, y_pred = tf.cast(y_true, tf.float32), tf.cast(y_pred, tf.float32)
        known = tf.math.is_finite(y_true)
        if self.log_vols:  # masked labels become 1, whose log is finite
            y_true, y_pred = tf.math.log(tf.where(known, y_true, 1.0)), tf.math.log(y_pred)
        e = VOL_POINTS * (y_pred - tf.where(known, y_true, 0.0))
        e = tf.where(known, e, 0.0)
        E = tf.reshape(e, (-1,) + self.grid_shape)
        M = tf.reshape(tf.cast(known, tf.float32), (-1,) + self.grid_shape)
        a = tf.abs(E)
        d = self.huber_delta
        hub = tf.where(a <= d, 0.5 * tf.square(E), d * a - 0.5 * d * d)
        out = {"huber": tf.reduce_mean(hub * self.weight_map)}
        zero = tf.constant(0.0)
        out["sobolev_strike"] = (
            self.sobolev_strike * tf.reduce_mean(tf.square(E[:, 2:, :] - 2.0 * E[:, 1:-1, :] + E[:, :-2, :])
                                                 * M[:, 2:, :] * M[:, 1:-1, :] * M[:, :-2, :])
            if self.sobolev_strike > 0 and self.grid_shape[0] > 2
            else zero
        )
        out["sobolev_maturity"] = (
            self.sobolev_maturity * tf.reduce_mean(tf.square(E[:, :, 2:] - 2.0 * E[:, :, 1:-1] + E[:, :, :-2])
                                                   * M[:, :, 2:] * M[:, :, 1:-1] * M[:, :, :-2])
            if self.sobolev_maturity > 0 and self.grid_shape[1] > 2
            else zero
        )
        out["pca_coef"] = (
            self.pca_coef_weight * tf.reduce_mean(tf.square(tf.matmul(e / VOL_POINTS, self.pca_projection)))
            if self.pca_coef_weight > 0
            else zero
        )
        return out

    def call(self, y_true, y_pred):
        return tf.add_n(list(self.terms(y_true, y_pred).values()))

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            grid_shape=list(self.grid_shape),
            weight_map=self.weight_map.tolist(),
            huber_delta=self.huber_delta,
            sobolev_strike=self.sobolev_strike,
            sobolev_maturity=self.sobolev_maturity,
            pca_coef_weight=self.pca_coef_weight,
            pca_projection=None if self.pca_projection is None else self.pca_projection.tolist(),
            log_vols=self.log_vols,
        )
        return cfg


def make_surface_loss(
    grid: Grid | None = None,
    config: LossConfig | None = None,
    pca_info: dict | None = None,
    model: keras.Model | None = None,
) -> QRHSurfaceLoss:
    """Build :class:`QRHSurfaceLoss` from a grid and a :class:`LossConfig`.

    The PCA projection, and whether the PCA is of log vols (then the loss compares log vols), come from
    ``pca_info`` or, failing that, from ``model``'s reconstruction layer.
    """
    grid = default_grid() if grid is None else grid
    cfg = LossConfig() if config is None else config
    proj = None
    if pca_info is not None:
        log_vols = bool(pca_info.get("log_vols", False))
    else:
        log_vols = model is not None and get_reconstruction_layer(model).log_vols
    if cfg.pca_coef_weight > 0:
        if pca_info is not None:
            P, s = pca_info["P"], pca_info["y_scale"]
        elif model is not None:
            layer = get_reconstruction_layer(model)
            P, s = layer.P_init, layer.y_scale_init
        else:
            raise ValueError("pca_coef_weight > 0 needs pca_info or a model with a PCA reconstruction")
        proj = P / s[:, None]
    return QRHSurfaceLoss(
        grid.shape,
        loss_weight_map(grid, cfg),
        huber_delta=cfg.huber_delta,
        sobolev_strike=cfg.sobolev_strike,
        sobolev_maturity=cfg.sobolev_maturity,
        pca_coef_weight=cfg.pca_coef_weight,
        pca_projection=proj,
        log_vols=log_vols,
    )


@keras.saving.register_keras_serializable(package=PACKAGE)
def mae_vol_points(y_true, y_pred):
    """Mean absolute error in vol points over the known labels (NaN labels are left out)."""
    y_true = keras.ops.cast(y_true, y_pred.dtype)
    known = keras.ops.isfinite(y_true)
    a = keras.ops.where(known, keras.ops.abs(y_pred - keras.ops.where(known, y_true, 0.0)), 0.0)
    return VOL_POINTS * keras.ops.sum(a) / keras.ops.maximum(keras.ops.sum(keras.ops.cast(known, a.dtype)), 1.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class RMSEVolPoints(keras.metrics.RootMeanSquaredError):
    """Root mean squared error in vol points."""

    def __init__(self, name="rmse_vol_points", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Known labels only: NaN labels get weight 0."""
        y_true = keras.ops.cast(y_true, y_pred.dtype)
        known = keras.ops.isfinite(y_true)
        w = keras.ops.cast(known, y_pred.dtype)
        if sample_weight is not None:
            w = w * keras.ops.cast(sample_weight, y_pred.dtype)
        return super().update_state(keras.ops.where(known, y_true, y_pred), y_pred, sample_weight=w)

    def result(self):
        return VOL_POINTS * super().result()


def make_optimizer(config: TrainConfig) -> keras.optimizers.Adam:
    """Adam with ``config``'s learning rate, clipping, weight decay and moving average of the weights."""
    return keras.optimizers.Adam(learning_rate=config.learning_rate, clipnorm=config.clipnorm,
                                 weight_decay=config.weight_decay, use_ema=config.ema_momentum is not None,
                                 ema_momentum=config.ema_momentum or 0.99)


def compile_advanced_qrh_model(
    model: keras.Model,
    grid: Grid | None = None,
    config: TrainConfig | None = None,
    pca_info: dict | None = None,
    **changes,
) -> keras.Model:
    """Compile ``model`` with Adam, :class:`QRHSurfaceLoss` and MAE/RMSE metrics in vol points; returns it.

    The loss weights are ``config.loss`` and the optimiser's settings ``config.learning_rate``, ``clipnorm``,
    ``weight_decay`` and ``ema_momentum`` (:class:`qrh_lib.surrogate.config.TrainConfig`, default its defaults);
    ``changes`` replace any of them by name (``learning_rate=1e-3, otm_put_weight=2.0``).
    """
    train = (config or TrainConfig()).replace_flat(**changes)
    cfg = train.loss
    loss = make_surface_loss(grid, cfg, pca_info=pca_info, model=model)
    model.compile(
        optimizer=make_optimizer(train),
        loss=loss,
        metrics=[mae_vol_points, RMSEVolPoints()],
    )
    return model
