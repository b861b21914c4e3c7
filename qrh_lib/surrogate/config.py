"""The surrogate's settings, one place for each: PCA, network, loss, and the training config that holds them.

Every config is a frozen dataclass whose defaults are the recipe the ablation kept
(``benchmarks/learning_curve.py ablation``, judged against the truth set on the same data and seed): all 60
principal components, a plain MLP of five SiLU layers of width 128, a Huber loss with Sobolev terms and
uniform weights, Adam at 2e-3 with the learning rate halved on plateaus, early stopping after 60 epochs
without improvement. The seed notebook's residual blocks with LayerNorm, its noise-based choice of K (6
components at 1,024 paths) and its OTM-put weight of 2 did not help or made the error worse.

Configs are built from dicts with unknown keys rejected (``from_dict``); a :class:`TrainConfig` also from one
flat dict of any of its fields and its parts' fields (``from_flat``), which is how ablations name a change.
The notebooks take one overrides dict per config (notebook 02 ``pca``, 03 ``model`` and ``loss``, 04
``train``), so a default lives here and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

from ..params import config_from_overrides, strict_from_dict


class _Settings:
    """``from_dict`` (unknown keys rejected, listing the allowed) and ``to_dict`` of a config dataclass."""

    @classmethod
    def from_dict(cls, d: dict):
        return strict_from_dict(cls, d)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PCAConfig(_Settings):
    """The PCA head: how many components K the network predicts."""

    n_components: int | None = 60  # K; None: the smallest K that meets the noise rule below
    k_fraction: float = 0.25  # K rule: signal reconstruction RMSE <= fraction * median MC SE
    use_pca_scaler: bool = True  # standardise each grid point before the PCA
    log_vols: bool = False  # PCA of log vols, surface = exp(reconstruction), loss on log vols (relative errors)

    def __post_init__(self):
        if self.n_components is not None and not 1 <= self.n_components <= 10_000:
            raise ValueError(f"PCAConfig.n_components = {self.n_components} must be None or in [1, 10000]")
        if not 0 < self.k_fraction <= 10:
            raise ValueError(f"PCAConfig.k_fraction = {self.k_fraction} must be in (0, 10]")
        if self.n_components is None and self.log_vols:
            raise ValueError("PCAConfig: the noise rule for K (n_components = None) is for a PCA of vols; with "
                             "log_vols = True give n_components")



@dataclass(frozen=True)
class ModelConfig(_Settings):
    """The network (:func:`qrh_lib.surrogate.model.build_resmlp_pca_model`)."""

    width: int = 128  # hidden width of every layer
    n_blocks: int = 4  # hidden layers after the first (plain MLP) or residual blocks
    residual: bool = False  # residual blocks; False: a plain MLP of n_blocks + 1 SiLU layers
    layer_norm: bool = True  # LayerNorm inside each residual block
    dropout_rate: float = 0.0  # dropout inside each block (0 disables it)

    def __post_init__(self):
        if self.width < 1 or self.n_blocks < 0 or not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"ModelConfig: bad architecture width = {self.width} (>= 1), n_blocks = "
                             f"{self.n_blocks} (>= 0), dropout_rate = {self.dropout_rate} (in [0, 1))")



@dataclass(frozen=True)
class LossConfig(_Settings):
    """Weights of the surface loss (:class:`qrh_lib.surrogate.model.QRHSurfaceLoss`). Errors are in vol points."""

    huber_delta: float = 1.0  # vol points: quadratic below, linear above
    otm_put_weight: float = 1.0  # factor on OTM puts (k < 0 and not ATM)
    atm_weight: float = 1.0  # factor on ATM strikes (|k|/sqrt(T) <= atm_band)
    short_tenor_weight: float = 1.0  # factor on T <= median maturity
    sobolev_strike: float = 0.1  # weight of mean squared 2nd difference of the error along strikes
    sobolev_maturity: float = 0.1  # same along maturities
    pca_coef_weight: float = 0.0  # weight of mean squared PCA coefficient error (standardised units)
    atm_band: float = 0.05  # |k| / sqrt(T) at or below which a strike is ATM

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"LossConfig.{f.name} = {v} must be finite and >= 0")
        if self.huber_delta <= 0:
            raise ValueError(f"LossConfig.huber_delta = {self.huber_delta} must be > 0")



#: The parts of a TrainConfig and their classes.
_PARTS = {"pca": PCAConfig, "model": ModelConfig, "loss": LossConfig}


@dataclass(frozen=True)
class TrainConfig:
    """Everything :func:`qrh_lib.surrogate.training.train_surrogate` needs: the PCA, network and loss configs,
    and the optimiser and stopping settings (units in comments)."""

    pca: PCAConfig = field(default_factory=PCAConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    learning_rate: float = 2e-3  # initial Adam learning rate
    clipnorm: float | None = None  # gradient norm clipping (None: none)
    weight_decay: float | None = None  # decoupled weight decay of Adam (None: none)
    ema_momentum: float | None = None  # moving average of the weights (Polyak), over about 1/(1 - m) steps; None: none
    batch_size: int = 128  # surfaces per gradient step
    epochs: int = 3000  # most epochs: early stopping ends training
    patience: int = 60  # epochs without validation improvement before stopping
    lr_patience: int = 20  # epochs without improvement before the learning rate is cut
    lr_factor: float = 0.5  # factor of each learning-rate cut
    min_lr: float = 1e-6  # smallest learning rate
    seed: int = 0  # seeds initial weights, dropout and the shuffling of batches

    def __post_init__(self):
        for name, cls in _PARTS.items():
            if isinstance(getattr(self, name), dict):  # built from nested dicts
                object.__setattr__(self, name, cls.from_dict(getattr(self, name)))
            elif not isinstance(getattr(self, name), cls):
                raise TypeError(f"TrainConfig.{name} must be a {cls.__name__} or a dict")
        if not self.learning_rate > 0 or self.batch_size < 1 or self.epochs < 1:
            raise ValueError(f"TrainConfig: learning_rate = {self.learning_rate} (> 0), batch_size = "
                             f"{self.batch_size} (>= 1), epochs = {self.epochs} (>= 1)")
        if self.ema_momentum is not None and not 0 < self.ema_momentum < 1:
            raise ValueError(f"TrainConfig: ema_momentum = {self.ema_momentum} must be None or in (0, 1)")
        if self.patience < 1 or self.lr_patience < 1 or not 0 < self.lr_factor < 1 or not self.min_lr >= 0:
            raise ValueError(f"TrainConfig: patience = {self.patience} (>= 1), lr_patience = {self.lr_patience} "
                             f"(>= 1), lr_factor = {self.lr_factor} (in (0, 1)), min_lr = {self.min_lr} (>= 0)")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """From a nested dict (``{"model": {...}, "loss": {...}, "learning_rate": ...}``); unknown keys raise."""
        return strict_from_dict(cls, d)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def flat_fields(cls) -> dict[str, str | None]:
        """Every setting's name and the part that holds it (``None``: the TrainConfig itself)."""
        out = {f.name: name for name, part in _PARTS.items() for f in fields(part)}
        out.update({f.name: None for f in fields(cls) if f.name not in _PARTS})
        return out

    @classmethod
    def from_flat(cls, d: dict) -> TrainConfig:
        """From one flat dict of settings of any part (``{"width": 256, "huber_delta": 1.0, "seed": 3}``)."""
        return cls().replace_flat(**d)

    def replace_flat(self, **changes) -> TrainConfig:
        """A copy with flat settings changed (see :meth:`from_flat`); unknown names raise, listing the allowed."""
        where = self.flat_fields()
        unknown = set(changes) - set(where)
        if unknown:
            raise ValueError(f"unknown TrainConfig settings {sorted(unknown)}; allowed: {sorted(where)}")
        parts = {name: {k: v for k, v in changes.items() if where[k] == name} for name in _PARTS}
        own = {k: v for k, v in changes.items() if where[k] is None}
        return replace(self, **own, **{name: replace(getattr(self, name), **ch) for name, ch in parts.items() if ch})

    def to_flat(self) -> dict:
        """All settings in one flat dict (the inverse of :meth:`from_flat`)."""
        d = self.to_dict()
        return {k: v for name in _PARTS for k, v in d.pop(name).items()} | d


#: The VIX network's recipe: the SPX recipe with these flat changes, kept by ``benchmarks/vix.py --ablation`` (same
#: data and seed, judged against the truth set's VIX labels; ``benchmarks/results/vix_ablation.json``). The VIX
#: labels' noise is eight times the SPX labels' (3.0 against 0.39 vol point median at 1,024 paths) and skewed: a
#: squared error (a Huber loss whose delta no error reaches) estimates the mean the labels are unbiased for, where
#: Huber at 1 vol point is nearly an absolute error, a median, and the Sobolev terms penalise the noise's curvature
#: (truth MAE: recipe 2.28 vol points, squared error 2.08, squared error without Sobolev terms 1.63, seeds 1.63 to
#: 1.84). The target is a PCA of log vols (the loss then compares log vols, relative errors): VIX vols run from 30% to
#: several hundred percent and their noise grows with them (3.86 against 3.02 on Rosenbaum & Zhang's grids). The
#: weights' moving average (0.999 per step, about seven epochs) removes most of the seed-to-seed spread that noisy
#: labels leave: 1.39 to 1.43 over three seeds, against 1.73 to 2.05 without it.
VIX_RECIPE = {"huber_delta": 1000.0, "sobolev_strike": 0.0, "sobolev_maturity": 0.0, "log_vols": True,
              "ema_momentum": 0.999}


def vix_train_config(overrides: dict | None = None, **fixed) -> TrainConfig:
    """The VIX network's config: :data:`VIX_RECIPE` on the defaults, then ``overrides`` (a nested TrainConfig dict,
    notebook 09's ``train``; a part's dict changes only the keys it names) and the caller's ``fixed`` settings,
    which the overrides may not repeat (:func:`qrh_lib.params.config_from_overrides`)."""
    base = TrainConfig().replace_flat(**VIX_RECIPE).to_dict()
    overrides = dict(overrides or {})
    for name in _PARTS:  # a part's unknown keys are refused when TrainConfig builds it
        if isinstance(overrides.get(name), dict):
            overrides[name] = base[name] | overrides[name]
    return config_from_overrides(TrainConfig, {k: v for k, v in base.items() if k not in fixed} | overrides, **fixed)
