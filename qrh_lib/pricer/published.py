r"""QRH states fitted to SPX (and VIX) options in the literature, as this project's 15 inputs.

- **Rosenbaum & Zhang (2021)**, 19 May 2017: the same 10-factor model and inputs as here,
  :math:`(\lambda, \eta, a, b, c) = (2.5, 1.485, 0.401, 0.235, 0.001)` and their ten :math:`z_0^i`; taken as published.
  :math:`\lambda = 2.5` sits on the upper bound of their box (and of ours).
- **Gatheral, Jusselin & Rosenbaum (2020)**, 19 May 2017: :math:`\alpha = 0.51`, :math:`\lambda = 1.2`,
  :math:`a = 0.384`, :math:`b = 0.095`, :math:`c = 0.0025`, :math:`Z_0 = 0.1`, :math:`\eta = 1`, in their normalisation
  :math:`Z_t = \int_0^t K(t-s)\,\lambda\,(\theta_0(s) - Z_s)\,ds + \int_0^t K(t-s)\,\lambda\,\eta\sqrt{V_s}\,dW_s`:
  :math:`\lambda` multiplies the diffusion term too, so the vol of :math:`Z` in this project's form is
  :math:`\lambda\eta = 1.2`. Their mean-reversion level :math:`\theta_0(s)` has no place in the factor model
  (Rosenbaum & Zhang drop it and let the :math:`z_0^i` carry the term structure instead); the mapping keeps
  :math:`Z_0 = 0.1` by equal initial factors :math:`z_0^i = Z_0 / \sum_j c_j` and drops :math:`\theta_0`. It is
  therefore a state close to theirs (same :math:`\alpha`, kernel approximated by the same 10 factors, same
  :math:`\lambda, a, b, c`, vol of Z and :math:`Z_0`), not their fitted surface.
"""

from __future__ import annotations

import numpy as np

from .kernel import geometric_nodes

RZ_2021_Z0 = (-0.033, 0.015, -0.004, 0.017, 0.028, 0.098, 0.192, -0.076, 0.072, -0.062)
GJR_2020 = {"lambda": 1.2, "eta": 1.0, "a": 0.384, "b": 0.095, "c": 0.0025, "Z0": 0.1}


def published_states() -> dict[str, np.ndarray]:
    """Name -> inputs (15,) of each published state (see the module docstring for the mapping)."""
    c_sum = float(geometric_nodes().c.sum())
    g = GJR_2020
    gjr = np.r_[g["lambda"], g["lambda"] * g["eta"], g["a"], g["b"], g["c"], np.full(10, g["Z0"] / c_sum)]
    rz = np.r_[2.5, 1.485, 0.401, 0.235, 0.001, RZ_2021_Z0]
    return {"Gatheral-Jusselin-Rosenbaum 2020": gjr, "Rosenbaum-Zhang 2021": rz}
