r"""The product's domain: the stable part of an input box, with a margin below the critical feedback.

A state is *stable* when the feedback of past returns on volatility does not outrun the mean reversion: the
factors' second moments settle, which holds if and only if :math:`a < a^*(\lambda, \eta)`
(:func:`qrh_lib.pricer.moments.critical_feedback`). The surrogate's domain keeps a margin below that line,

.. math::

    \mathcal D = \{x \in \text{box} : a \le \kappa\, a^*(\lambda, \eta)\}, \qquad \kappa = 0.9
    \ (\text{``max_feedback_ratio''}),

for three reasons. (1) At a stationary state :math:`E[V]` is the variance without the feedback's own noise
divided by :math:`1 - a/a^*`: at :math:`\kappa = 0.9` the feedback already multiplies the variance by up to 10,
and the higher moments of :math:`V` (which set the Monte Carlo noise of the labels and the heavy tails of the
paths) diverge before the second ones do, so near the line labels are noisy and prices sensitive to the cap on
:math:`(Z - b)^2`. (2) The convergence study (``benchmarks/convergence.py``) finds the time-discretisation bias
of states at :math:`0.9\,a^*` with extreme :math:`z_0` already at the tolerance, against none at :math:`0.5\,a^*`.
(3) The published SPX/VIX fits sit inside: Rosenbaum & Zhang's 19 May 2017 state at 0.80, their 10 Sep 2019
state at 0.63 (measured by :func:`qrh_lib.pricer.moments.feedback_ratio`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import COL_A, InputBox, Inputs, check_inputs

#: Largest feedback ratio a / a*(lambda, eta) of the product's domain (see the module docstring).
STABILITY_MARGIN = 0.9
DOMAINS = ("stable", "box")


@dataclass(frozen=True)
class Domain:
    """An input box, and (``max_feedback_ratio`` not None) its part with ``a <= max_feedback_ratio * a*``."""

    box: InputBox
    max_feedback_ratio: float | None = STABILITY_MARGIN

    def __post_init__(self):
        r = self.max_feedback_ratio
        if r is not None and not 0 < r < 1:
            raise ValueError(f"max_feedback_ratio = {r} must be in (0, 1) (or None: the whole box)")

    @classmethod
    def named(cls, box: InputBox, domain: str = "stable", margin: float = STABILITY_MARGIN) -> Domain:
        """``"stable"``: the box's stable part below ``margin``; ``"box"``: the whole box."""
        if domain not in DOMAINS:
            raise ValueError(f"domain = {domain!r} is unknown; allowed: {DOMAINS}")
        return cls(box, margin if domain == "stable" else None)

    @property
    def kind(self) -> str:
        return "box" if self.max_feedback_ratio is None else "stable"

    def feedback_ratio(self, X) -> np.ndarray:
        """``a / a*`` of each row; rows within the table's accuracy of the margin are solved exactly, so the
        domain's boundary is the exact one."""
        from .pricer.moments import RATIO_TABLE_TOL, feedback_ratio

        X = np.atleast_2d(np.asarray(X, np.float64))
        r = feedback_ratio(X)
        if self.max_feedback_ratio is not None:
            near = np.flatnonzero(np.abs(r / self.max_feedback_ratio - 1) <= RATIO_TABLE_TOL)
            if near.size:
                r[near] = feedback_ratio(X[near], exact=True)
        return r

    def contains(self, X) -> np.ndarray:
        """Boolean mask of the rows of ``X`` (n, 15) inside the domain."""
        X = np.atleast_2d(np.asarray(X, np.float64))
        inside = np.all((X >= self.box.lo) & (X <= self.box.hi), axis=1)
        if self.max_feedback_ratio is not None:
            inside &= self.feedback_ratio(X) <= self.max_feedback_ratio
        return inside

    def check(self, X, what: str = "X") -> np.ndarray:
        """Return ``X`` as float64 (n, 15), or raise ``ValueError`` naming the first input outside the domain.

        Outside the box the message names the input and its bounds; beyond the margin it names ``a``, its
        feedback ratio ``a / a*`` and the critical feedback ``a*(lambda, eta)``.
        """
        X = check_inputs(X, self.box, what)
        if self.max_feedback_ratio is None:
            return X
        ratio = self.feedback_ratio(X)
        bad = np.flatnonzero(~(ratio <= self.max_feedback_ratio))
        if bad.size:
            i = int(bad[0])
            x = Inputs(X[i])
            a_star = x.a / ratio[i]
            raise ValueError(
                f"{what}[{i}, {COL_A}] (a) = {x.a:.6g} is outside the stable domain: its feedback ratio a / a* = "
                f"{ratio[i]:.4g} exceeds {self.max_feedback_ratio} (critical feedback a*(lambda={x.lam:.6g}, "
                f"eta={x.eta:.6g}) = {a_star:.6g}, so a must be at most {self.max_feedback_ratio * a_star:.6g})")
        return X

    def to_dict(self) -> dict:
        return {"kind": self.kind, "max_feedback_ratio": self.max_feedback_ratio, "box": self.box.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> Domain:
        b = d["box"]
        return cls(InputBox(b["name"], tuple(b["lower"]), tuple(b["upper"])), d.get("max_feedback_ratio"))
