r"""A plain NumPy implementation of the same scheme as :mod:`qrh_lib.pricer.mc`.

It is the reference the TensorFlow engine is tested against (same normals, same numbers) and the baseline of
the throughput benchmark. No hedge control; it returns what the tests need: log-spot and factors at the
maturities.
"""

from __future__ import annotations

import numpy as np

from ..params import Inputs
from .kernel import StepCoefficients, step_coefficients


def simulate_numpy(X, c, gamma, h, seg_ends, xi, q_cap: float = 400.0, antithetic: bool = True,
                   dtype=np.float32, coefficients: StepCoefficients | None = None):
    r"""Simulate :math:`Z^i_{k+1} = e^{-\gamma_i h_k} Z^i_k - \lambda Z_k \varphi_i + \eta\sqrt{V_k} I^i_k` and
    :math:`\log S_{k+1} = \log S_k - V_k h_k/2 + \sqrt{V_k}\Delta W_k`
    (:class:`qrh_lib.pricer.kernel.StepCoefficients`).

    Shapes: X (B, 15); h (N,); seg_ends (n_T,) step index of each maturity; xi (N, R, B, D) normals.
    Returns log-spot (n_T, B, P) and factors (n_T, n, B, P) at the maturities.
    """
    coef = coefficients or step_coefficients(gamma, h)
    X = np.asarray(X, dtype)
    p = Inputs(X)
    lam, eta, a, b, c0 = (u[:, None] for u in (p.lam, p.eta, p.a, p.b, p.c))  # (B, 1); c0 is the input c
    c = np.asarray(c, dtype)
    z = np.repeat(p.z0.T[:, :, None], xi.shape[-1] * (2 if antithetic else 1), axis=-1)
    x = np.zeros(z.shape[1:], dtype)
    decay, phi = coef.decay.astype(dtype), coef.phi.astype(dtype)
    load, dw_load = coef.load.astype(dtype), coef.dw.astype(dtype)
    h = np.asarray(h, dtype)
    logs, zs = [], []
    ends = set(int(e) for e in seg_ends)
    for k in range(len(h)):
        Z = np.tensordot(c, z, axes=1)
        v = a * np.minimum((Z - b) ** 2, q_cap) + c0
        sv = np.sqrt(v)
        g = xi[k]  # (R, B, D)
        if antithetic:
            g = np.concatenate([g, -g], axis=-1)
        dw = np.tensordot(dw_load[k], g, axes=1)
        z = (decay[k][:, None, None] * z - phi[k][:, None, None] * (lam * Z)[None]
             + np.tensordot(load[k], eta * sv * g, axes=1))
        x = x - 0.5 * v * h[k] + sv * dw
        if k + 1 in ends:
            logs.append(x.copy())
            zs.append(z.copy())
    return np.stack(logs), np.stack(zs)
