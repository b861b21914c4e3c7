r"""The surrogate's 15 inputs, their order, and the boxes they are sampled from.

Order: :math:`(\lambda, \eta, a, b, c, z^1_0, \dots, z^{10}_0)`; :math:`\alpha = 0.51` and
:math:`n = 10` factors are fixed (Rosenbaum & Zhang 2021).

Code addresses the inputs by name, not by column number: :class:`Inputs` is a view over ``X`` whose attributes
``lam``, ``eta``, ``a``, ``b``, ``c`` and ``z0`` are views of its columns (``Inputs(X).a`` is ``X[..., 2]``), for
NumPy arrays and TensorFlow tensors, one input vector (15,) or a batch (n, 15); code that writes a column uses
the column numbers ``COL_LAMBDA``, ``COL_ETA``, ``COL_A``, ``COL_B``, ``COL_C`` and the slice ``COL_Z0``
(``X[:, COL_A] = 0.0``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

N_FACTORS = 10
PARAM_NAMES: tuple[str, ...] = ("lambda", "eta", "a", "b", "c") + tuple(
    f"z0_{i}" for i in range(1, N_FACTORS + 1)
)
N_INPUTS = len(PARAM_NAMES)

#: Column of each scalar input in ``X`` (n, 15), and the columns of the initial factor states.
COL_LAMBDA, COL_ETA, COL_A, COL_B, COL_C = (PARAM_NAMES.index(n) for n in ("lambda", "eta", "a", "b", "c"))
COL_Z0 = slice(PARAM_NAMES.index("z0_1"), N_INPUTS)


def _column(col, doc: str) -> property:
    return property(lambda self: self.X[..., col], doc=doc)


@dataclass(frozen=True, slots=True)
class Inputs:
    """The inputs ``X`` (a NumPy array or a TensorFlow tensor, (15,) or (n, 15)) by name: each attribute is a view
    of ``X``'s last axis, not a copy (``lam`` (n,) is ``X[..., COL_LAMBDA]``, ``z0`` (n, 10) is ``X[..., COL_Z0]``).
    Reading one costs an attribute access and an indexing, nothing more."""

    X: Any

    lam = _column(COL_LAMBDA, "Mean reversion of the factors' sum, lambda.")
    eta = _column(COL_ETA, "Volatility of the factors, eta.")
    a = _column(COL_A, "Feedback strength, a (V = a (Z - b)^2 + c).")
    b = _column(COL_B, "Level of Z at which V is smallest, b.")
    c = _column(COL_C, "Floor of the variance, c.")
    z0 = _column(COL_Z0, "Initial states of the factors, (..., 10).")


@dataclass(frozen=True)
class InputBox:
    """Independent bounds for each of the 15 inputs (closed intervals)."""

    name: str
    lower: tuple[float, ...]
    upper: tuple[float, ...]

    def __post_init__(self):
        lo, hi = np.asarray(self.lower, float), np.asarray(self.upper, float)
        if lo.shape != (N_INPUTS,) or hi.shape != (N_INPUTS,):
            raise ValueError(f"box bounds must each have {N_INPUTS} values")
        if np.any(lo > hi):
            raise ValueError(f"box {self.name!r}: lower bound above upper bound")

    @property
    def lo(self) -> np.ndarray:
        return np.asarray(self.lower, float)

    @property
    def hi(self) -> np.ndarray:
        return np.asarray(self.upper, float)

    def describe(self) -> dict[str, tuple[float, float]]:
        return {n: (lo, hi) for n, lo, hi in zip(PARAM_NAMES, self.lower, self.upper, strict=True)}

    def to_dict(self) -> dict:
        return {"name": self.name, "lower": list(self.lower), "upper": list(self.upper)}


#: Rosenbaum & Zhang's sampling box (the project default, for comparability).
RZ_BOX = InputBox(
    "rz",
    lower=(0.5, 1.0, 0.1, 0.01, 0.0001) + (-0.5,) * N_FACTORS,
    upper=(2.5, 1.5, 0.6, 0.5, 0.03) + (0.5,) * N_FACTORS,
)

#: Ranges the Monte Carlo engine accepts at all (wider than any sampling box).
VALID_RANGES: dict[str, tuple[float, float]] = {
    "lambda": (0.0, 10.0),
    "eta": (0.0, 5.0),
    "a": (0.0, 5.0),
    "b": (-2.0, 2.0),
    "c": (0.0, 1.0),
    **{f"z0_{i}": (-2.0, 2.0) for i in range(1, N_FACTORS + 1)},
}

BOXES = {"rz": RZ_BOX}


def check_inputs(X, ranges: dict[str, tuple[float, float]] | InputBox | None = None, what: str = "X"):
    """Validate an (n, 15) input array; raise ``ValueError`` naming the offending input and its range.

    Returns the array as float64.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1 and X.size == N_INPUTS:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != N_INPUTS:
        raise ValueError(
            f"{what} must have shape (n, {N_INPUTS}) in the order {', '.join(PARAM_NAMES)}; got {X.shape}"
        )
    if isinstance(ranges, InputBox):
        ranges = ranges.describe()
    ranges = VALID_RANGES if ranges is None else ranges
    for j, name in enumerate(PARAM_NAMES):
        col = X[:, j]
        lo, hi = ranges[name]
        bad = ~np.isfinite(col)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{what}[{i}, {j}] ({name}) is {col[i]}; it must be a finite number in [{lo}, {hi}]")
        bad = (col < lo) | (col > hi)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{what}[{i}, {j}] ({name}) = {col[i]:.6g} is outside its allowed range [{lo}, {hi}]")
    return X


def strict_from_dict(cls, d: dict, noun: str = "keys"):
    """Build the dataclass ``cls`` from ``d``, rejecting unknown keys with the allowed ones listed."""
    allowed = sorted(f.name for f in fields(cls))
    unknown = set(d) - set(allowed)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} {noun} {sorted(unknown)}; allowed: {allowed}")
    return cls(**d)


def config_from_overrides(cls, overrides: dict | None, **fixed):
    """Build the config ``cls`` from its defaults, a dict of ``overrides`` (unknown keys rejected) and the settings
    ``fixed`` by the caller (e.g. the notebook's ``seed``), which the overrides may not repeat: one place each."""
    overrides = dict(overrides or {})
    clash = sorted(set(overrides) & set(fixed))
    if clash:
        raise ValueError(f"{cls.__name__} overrides {clash} are set elsewhere (e.g. the notebook's own parameters, "
                         f"the seed); remove them from the overrides")
    return strict_from_dict(cls, overrides | fixed)
