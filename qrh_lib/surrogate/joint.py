r"""SPX and VIX together: two surrogates trained on the same inputs, seen as one, and their joint calibration.

The quadratic rough Heston model exists to fit the SPX and VIX smiles at once (Gatheral, Jusselin & Rosenbaum
2020). The VIX surrogate is a :class:`~qrh_lib.surrogate.QRHSurrogate` on the VIX grid
(:func:`qrh_lib.pricer.vix.vix_grid`), trained on the VIX labels of the same dataset as the SPX one, so both map the
same scaled inputs. :class:`JointSurrogate` stacks them into one map from the 15 inputs to the 60 SPX vols followed
by the VIX vols, with the stacked forward-mode Jacobian, and :func:`calibrate_joint` calibrates it with
:func:`qrh_lib.surrogate.calibration.calibrate`: one least-squares problem on the SPX and VIX residuals together,
weighted by the caller (inverse squared bid-ask spreads or standard errors; equal by default, in vol points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .calibration import CalibrationResult, calibrate, calibrate_many
from .quotes import QuoteMap, Quotes


class _StackedNet:
    """The two networks' float64 copies as one: outputs and Jacobian rows stacked (the least-squares solver's
    needs; L-BFGS-B's backward pass is not provided)."""

    def __init__(self, first, second):
        self.nets = (first, second)

    def forward(self, xs, cache=None, first=None):
        if cache is not None or first is not None:
            raise NotImplementedError("the joint surrogate supports the least-squares solver only")
        return np.concatenate([n.forward(xs) for n in self.nets], axis=1)

    def jacobian_row(self, h):
        parts = [n.jacobian_row(h) for n in self.nets]
        return np.concatenate([y for y, _ in parts], axis=1), np.vstack([J for _, J in parts])


@dataclass(frozen=True)
class _Size:
    size: int


class JointSurrogate:
    """The SPX surrogate and the VIX surrogate as one map: vols (n, d_spx + d_vix), SPX first.

    Both must share the input scaling, the box and the domain (trained on the same dataset's inputs); otherwise a
    ``ValueError`` says which differs.
    """

    def __init__(self, spx, vix):
        for name in ("x_scale", "x_min"):
            if not np.array_equal(getattr(spx, name), getattr(vix, name)):
                raise ValueError(f"the SPX and VIX surrogates scale their inputs differently ({name}): train both on "
                                 "the same dataset's inputs")
        if spx.box.to_dict() != vix.box.to_dict() or spx.domain.to_dict() != vix.domain.to_dict():
            raise ValueError("the SPX and VIX surrogates have different input boxes or domains")
        self.spx, self.vix = spx, vix
        self.x_scale, self.x_min, self.box, self.domain = spx.x_scale, spx.x_min, spx.box, spx.domain
        self.grid = _Size(spx.grid.size + vix.grid.size)
        self.numpy_net = _StackedNet(spx.numpy_net, vix.numpy_net)

    def scale_inputs(self, X):
        return self.spx.scale_inputs(X)

    def predict(self, X, allow_extrapolation: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """SPX vols (n, d_spx) and VIX vols (n, d_vix) of the raw inputs ``X``."""
        return self.spx.predict(X, allow_extrapolation), self.vix.predict(X, allow_extrapolation)

    def split(self, iv) -> tuple[np.ndarray, np.ndarray]:
        """The SPX and the VIX vols of joint vols ``iv`` (..., d_spx + d_vix), e.g. a calibration's ``iv``."""
        iv = np.asarray(iv)
        return iv[..., : self.spx.grid.size], iv[..., self.spx.grid.size :]


def _stacked_targets(joint: JointSurrogate, spx_iv, vix_iv, spx_weights, vix_weights, options: dict):
    """SPX and VIX targets ((d,) or (n, d) each) and their weights side by side, as the joint surrogate's vols."""
    spx_iv, vix_iv = np.asarray(spx_iv, np.float64), np.asarray(vix_iv, np.float64)
    d_spx, d_vix = joint.spx.grid.size, joint.vix.grid.size
    if spx_iv.shape[-1] != d_spx or vix_iv.shape[-1] != d_vix or spx_iv.shape[:-1] != vix_iv.shape[:-1]:
        raise ValueError(f"spx_iv has {spx_iv.shape[-1]} vols and vix_iv {vix_iv.shape[-1]}; the grids have {d_spx} "
                         f"and {d_vix}" + (" (and the same number of targets)" if spx_iv.ndim > 1 else ""))
    if options.get("solver", "lsq") != "lsq":
        raise ValueError("the joint calibration uses the least-squares solver (solver='lsq')")
    w_spx, w_vix = (np.ones(t.shape) if w is None else np.broadcast_to(np.asarray(w, np.float64), t.shape)
                    for t, w in ((spx_iv, spx_weights), (vix_iv, vix_weights)))
    return np.concatenate([spx_iv, vix_iv], axis=-1), np.concatenate([w_spx, w_vix], axis=-1)


def calibrate_joint(joint: JointSurrogate, spx_iv, vix_iv, spx_weights=None, vix_weights=None, seed: int = 0,
                    **options) -> CalibrationResult:
    """Calibrate the 15 inputs to an SPX surface and a VIX surface at once (module docstring).

    ``spx_iv`` and ``vix_iv`` are target vols on the two surrogates' grids (NaN: missing); the weights multiply the
    squared residuals in vol points (default 1). ``options`` go to :func:`~qrh_lib.surrogate.calibration.calibrate`
    (``n_starts``, ``n_candidates``, ``maxiter``, ...; the solver is least squares). The result's ``iv`` holds the
    fitted SPX vols followed by the VIX vols (:meth:`JointSurrogate.split`).
    """
    ravel = [None if v is None else np.ravel(v) for v in (spx_iv, vix_iv, spx_weights, vix_weights)]
    target, weights = _stacked_targets(joint, *ravel, options)
    return calibrate(joint, target, weights, seed=seed, **options)


def calibrate_joint_many(joint: JointSurrogate, spx_targets, vix_targets, spx_weights=None, vix_weights=None,
                         seed: int = 0, **options) -> list[CalibrationResult]:
    """:func:`calibrate_joint` each pair of rows of ``spx_targets`` (n, d_spx) and ``vix_targets`` (n, d_vix), as
    :func:`~qrh_lib.surrogate.calibration.calibrate_many` does (one candidate bank, built first); weights (d,) or
    (n, d) each."""
    targets, weights = _stacked_targets(joint, np.atleast_2d(spx_targets), np.atleast_2d(vix_targets), spx_weights,
                                        vix_weights, options)
    return calibrate_many(joint, targets, weights, seed=seed, **options)


class _StackedQuotes:
    """Two quote maps side by side: SPX vols to SPX quotes, VIX vols to VIX quotes (a block-diagonal Jacobian)."""

    def __init__(self, first: QuoteMap, second: QuoteMap, d_first: int):
        self.maps, self.d = (first, second), d_first
        self.n_quotes = first.n_quotes + second.n_quotes

    def __call__(self, iv):
        iv = np.atleast_2d(iv)
        return np.concatenate([self.maps[0](iv[:, : self.d]), self.maps[1](iv[:, self.d :])], axis=1)

    def subset(self, idx):
        """The stacked map to the quotes ``idx`` of the stacked quotes only (SPX first)."""
        idx = np.asarray(idx)
        n = self.maps[0].n_quotes
        return _StackedQuotes(self.maps[0].subset(idx[idx < n]), self.maps[1].subset(idx[idx >= n] - n), self.d)

    def jacobian(self, iv):
        a, b = self.maps[0].jacobian(iv[: self.d]), self.maps[1].jacobian(iv[self.d :])
        out = np.zeros((a.shape[0] + b.shape[0], a.shape[1] + b.shape[1]))
        out[: a.shape[0], : a.shape[1]], out[a.shape[0] :, a.shape[1] :] = a, b
        return out


def calibrate_joint_quotes(joint: JointSurrogate, spx: Quotes, vix: Quotes, seed: int = 0,
                           **options) -> CalibrationResult:
    """Calibrate the 15 inputs to SPX and VIX quotes off the grids at once: each surrogate's surface is interpolated to
    its quotes (:class:`qrh_lib.surrogate.quotes.QuoteMap`; VIX log-strikes relative to the VIX future), residuals
    weighted by each quote set's weights (1 / (ask - bid)^2 with bid and ask). The result's ``iv`` holds the two
    surfaces on their grids, SPX first."""
    observe = _StackedQuotes(QuoteMap(joint.spx.grid, spx.log_moneyness, spx.maturities),
                             QuoteMap(joint.vix.grid, vix.log_moneyness, vix.maturities), joint.spx.grid.size)
    target = np.concatenate([spx.iv, vix.iv])
    weights = np.concatenate([spx.quote_weights(), vix.quote_weights()])
    return calibrate(joint, target, weights, seed=seed, observe=observe, **options)
