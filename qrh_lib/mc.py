r"""TensorFlow Monte Carlo engine for the n-factor quadratic rough Heston model.

Model (Rosenbaum & Zhang 2021, eqs 2.3-2.5), one Brownian motion :math:`W` for spot and factors:

.. math::

    \frac{dS_t}{S_t} = \sqrt{V_t}\, dW_t, \quad V_t = a\,\min\{(Z_t - b)^2, \bar q\} + c, \quad
    Z_t = \sum_i c_i Z^i_t, \quad dZ^i_t = (-\gamma_i Z^i_t - \lambda Z_t)\,dt + \eta \sqrt{V_t}\, dW_t .

Scheme on a time grid :math:`0 = t_0 < \dots < t_N` with steps :math:`h_k`, spot taking a log-Euler step and the
factors one of two steps with the same Brownian increment (``MCConfig.scheme``):

.. math::

    \log S_{k+1} = \log S_k - \tfrac12 V_k h_k + \sqrt{V_k}\, \Delta W_k, \qquad
    Z^i_{k+1} = d_i Z^i_k - \lambda Z_k \varphi_i + \eta\sqrt{V_k}\, I^i_k .

``"implicit"`` (the default; Rosenbaum & Zhang A.1) is implicit in each factor's own mean reversion:
:math:`d_i = 1/(1+\gamma_i h_k)`, :math:`\varphi_i = h_k d_i`, :math:`I^i_k = d_i \Delta W_k`. ``"etd"`` solves the
linear part exactly with :math:`V_k, Z_k` held over the step: :math:`d_i = e^{-\gamma_i h_k}`,
:math:`\varphi_i = (1 - d_i)/\gamma_i` and :math:`I^i_k = \int e^{-\gamma_i (t_{k+1}-s)} dW_s`, drawn jointly with
:math:`\Delta W_k` from two normals (:func:`qrh_lib.kernel.step_coefficients`). The implicit step damps the fast
factors' noise (at a daily step the fastest keeps 57% of its stationary variance), the exponential step does
not; but holding :math:`V` over a step errs the other way, and the convergence study
(``benchmarks/convergence.py``) measures the implicit step closer to the fine-grid reference at daily steps.
The ETD step, which converges to the model as the step shrinks, is that study's reference.

The grid is very fine near :math:`t = 0`, where the fast factors (:math:`1/\gamma_{10} \approx 0.0018` years)
relax, and coarser afterwards (see :func:`time_grid`). Random numbers for parameter set ``i`` come from a
stateless generator keyed by ``(seed, i)``, so a surface never depends on the batch it was priced in.

Besides the terminal spot at each maturity the engine accumulates, for every option of the grid, the gains of
a discretely rebalanced Black-Scholes delta hedge (delta taken at the path's current volatility
:math:`\sqrt{V_t}`), a martingale with zero mean used as a control variate by :mod:`qrh_lib.pricing`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from .kernel import (  # noqa: E402
    ALPHA,
    DEFAULT_SCHEME,
    N_FACTORS,
    SCHEMES,
    StepCoefficients,
    geometric_nodes,
    step_coefficients,
)
from .moments import discrete_moments  # noqa: E402
from .params import check_inputs, strict_from_dict  # noqa: E402

#: Identifies the engine's numerics (the factor step itself is MCConfig.scheme); datasets record it in their key,
#: so it must change whenever the engine's numbers change.
SCHEME = "factors-by-MCConfig.scheme/log-euler-spot/2-normals"


@dataclass(frozen=True)
class MCConfig:
    """Settings of the Monte Carlo engine; the defaults are the accuracy-qualified ones (see the
    convergence study in ``benchmarks/convergence.py``)."""

    n_paths: int = 24_576  # paths per parameter set (antithetic pairs count twice)
    steps_per_year: int = 730  # step density after the fine start, steps per year
    first_step: float = 5e-6  # first time step, years
    grading: float = 0.005  # in the fine start, step = max(first_step, grading * t)
    scheme: str = DEFAULT_SCHEME  # factor step: "implicit" (Rosenbaum & Zhang) or "etd" (exact linear part)
    steps_per_hedge: int = 32  # steps between rebalancing dates of the delta-hedge control (0: no hedge)
    antithetic: bool = True  # antithetic pairs (xi, -xi)
    q_cap: float = 400.0  # cap on (Z - b)^2 (Rosenbaum & Zhang's footnote); never reached in the RZ box
    batch_size: int = 8  # parameter sets simulated together
    dtype: str = "float32"  # simulation precision; statistics are always float64
    alpha: float = ALPHA  # roughness (fixed for the surrogate)
    n_factors: int = N_FACTORS  # number of factors
    x: float | None = None  # geometric ratio of the nodes (None: Rosenbaum & Zhang's x*)

    def __post_init__(self):
        if self.n_paths < 2 or (self.antithetic and self.n_paths % 2):
            raise ValueError(f"n_paths = {self.n_paths} must be an even integer >= 2 with antithetic paths")
        if not 1 <= self.steps_per_year <= 10**6:
            raise ValueError(f"steps_per_year = {self.steps_per_year} is outside its allowed range [1, 1e6]")
        if not 0 < self.first_step <= 1.0 / self.steps_per_year:
            raise ValueError(f"first_step = {self.first_step} must be in (0, 1/steps_per_year]")
        if not 0 <= self.grading <= 1:
            raise ValueError(f"grading = {self.grading} is outside its allowed range [0, 1]")
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme = {self.scheme!r} is unknown; allowed: {SCHEMES}")
        if self.steps_per_hedge < 0:
            raise ValueError(f"steps_per_hedge = {self.steps_per_hedge} must be >= 0 (0: no hedge control)")
        if self.batch_size < 1:
            raise ValueError(f"batch_size = {self.batch_size} must be >= 1")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype = {self.dtype!r}; allowed: 'float32', 'float64'")
        if not self.q_cap > 0:
            raise ValueError(f"q_cap = {self.q_cap} must be > 0")

    @classmethod
    def from_dict(cls, d: dict | None) -> MCConfig:
        return strict_from_dict(cls, dict(d or {}), "option(s)")

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **kw) -> MCConfig:
        return MCConfig.from_dict({**self.to_dict(), **kw})


def time_grid(maturities, steps_per_year: int, first_step: float = 1e-5, grading: float = 0.05) -> np.ndarray:
    r"""Time grid holding every maturity, fine near 0 and uniform later.

    The target step at time :math:`t` is :math:`h(t) = \min(1/N_y, \max(h_0, g\,t))`: constant
    :math:`h_0` at first, then growing geometrically (step proportional to elapsed time), then
    :math:`1/N_y`. Each interval between maturities is walked with that step and its last step is
    stretched or shrunk to land on the maturity.
    """
    T = np.asarray(maturities, dtype=np.float64)
    h_max = 1.0 / steps_per_year
    times = [0.0]
    for end in T:
        t = times[-1]
        while True:
            h = min(h_max, max(first_step, grading * t))
            if t + 1.5 * h >= end:
                break
            t += h
            times.append(t)
        times.append(float(end))
    return np.asarray(times)


def hedge_indices(grid_times: np.ndarray, maturities, steps_per_hedge: int) -> np.ndarray:
    """Indices of the rebalancing dates: every ``steps_per_hedge``-th step, plus each maturity."""
    n = grid_times.size - 1
    idx = set(range(0, n, steps_per_hedge))
    idx.update(int(np.argmin(np.abs(grid_times - T))) for T in maturities)
    return np.asarray(sorted(idx), dtype=np.int64)


def sample_normals(seeds: np.ndarray, n_steps: int, n_draws: int, n_normals: int = 1, dtype=tf.float32) -> tf.Tensor:
    """Standard normals of shape (n_steps, n_normals, len(seeds), n_draws); sample i's depend only on seeds[i]."""
    draws = [tf.random.stateless_normal((n_steps, n_normals, n_draws), seed=tf.constant(s, tf.int64), dtype=dtype)
             for s in np.asarray(seeds, dtype=np.int64).reshape(-1, 2)]
    return tf.stack(draws, axis=2)


def sample_seeds(seed: int, index: np.ndarray) -> np.ndarray:
    """The stateless-generator key of each sample: the pair ``(seed, index)``."""
    index = np.asarray(index, dtype=np.int64)
    return np.stack([np.full_like(index, int(seed)), index], axis=-1)


def _step(z, x, xk, decay_k, drive_k, dw_k, h_k, lam, eta, a, b, c0, c, q_cap, sign):
    """One step of the scheme: the factors' update is one small matrix product of the step's coefficients with
    the rows (-lambda Z, eta sqrt(V) xi_r), a few tensor operations in all (their count, more than the arithmetic,
    bounds the speed on a CPU; term-by-term sums were measured 1.5 times slower, and XLA compilation of the step
    slower still). Shapes: z (n, B, S, D); x (B, S, D); xk (R, B, D); decay_k (n,); drive_k (n, R + 1);
    dw_k (R,); lam .. c0 (B, 1, 1); c (n,); sign (1, S, 1)."""
    R = xk.shape[0]
    Z = tf.tensordot(c, z, axes=1)
    d = Z - b
    v = a * tf.minimum(d * d, q_cap) + c0
    sv = tf.sqrt(v)
    xs = xk[:, :, None, :] * sign  # (R, B, S, D)
    rows = tf.concat([-(lam * Z)[None], (eta * sv)[None] * xs], axis=0)
    z_new = decay_k[:, None, None, None] * z + tf.tensordot(drive_k, rows, axes=1)
    dW = tf.tensordot(dw_k, xs, axes=1) if R > 1 else dw_k[0] * xs[0]
    return z_new, x + sv * dW - 0.5 * h_k * v


@tf.function
def _simulate(params, c, h, decay, drive, dw, hedge_flag, seg_ends, xi, log_k, tau_end, q_cap, antithetic, ref_var,
              hedged):
    """Core loop. Shapes: params (B, 15); h (N,); decay (N, n) and drive (N, n, R + 1) the step's coefficients
    (``phi`` then the loadings of the R normals, see :class:`qrh_lib.kernel.StepCoefficients`); dw (N, R);
    hedge_flag (N+1,) bool; seg_ends (n_T,) int (step index of each maturity); xi (N, R, B, D) normals;
    log_k (n_opt,) and tau_end (n_opt,) maturity of each option; ref_var (N, B) variance of the Black-Scholes
    control model.

    Paths are held as (B, S, D) with S = 2 antithetic signs (path ``s * D + d`` of the flat layout) or S = 1,
    and each step is :func:`_step`. Returns log-spot at each maturity (n_T, B, P),
    hedge gains (B, n_opt, P), the path means of the factors (n_T, n, B) and of the variance (n_T, B), and the control
    model's log-spot (n_T, B, P).
    """
    dt = xi.dtype
    lam, eta, a, b, c0 = (params[:, j : j + 1, None] for j in range(5))  # (B, 1, 1)
    sign = tf.constant([1.0, -1.0] if antithetic else [1.0], dt)[None, :, None]  # (1, S, 1)
    S = sign.shape[1]
    B = xi.shape[2]
    D = xi.shape[3]
    P = S * D
    z = tf.transpose(params[:, 5:])[:, :, None, None] * tf.ones([1, 1, S, D], dt)  # (n, B, S, D)
    n_opt = tf.shape(log_k)[0]
    times = tf.concat([tf.zeros([1], dt), tf.cumsum(h)], axis=0)

    def variance(z):
        Z = tf.tensordot(c, z, axes=1)
        d = Z - b
        return Z, a * tf.minimum(d * d, q_cap) + c0

    def delta(x, sv, t):  # x, sv (B, P)
        tau = tf.maximum(tau_end - t, 0.0)[None, :, None]  # (1, n_opt, 1)
        s = sv[:, None, :] * tf.sqrt(tau)
        d1 = (x[:, None, :] - log_k[None, :, None]) / tf.maximum(s, 1e-30) + 0.5 * s
        # any adapted holding keeps the hedge gains a zero-mean control; the logistic approximation of the
        # normal CDF (error < 0.01) costs much less than erfc
        return tf.where(tau > 0, tf.sigmoid(1.702 * d1), tf.zeros_like(d1))

    def flat(u):  # (B, S, D) -> (B, P)
        return tf.reshape(u, [B, P])

    x = tf.zeros([B, S, D], dt)
    _, v = variance(z)
    if hedged:
        hedge = tf.zeros([B, n_opt, P], dt)
        dlt = delta(flat(x), flat(tf.sqrt(v)), times[0])
    else:  # placeholders, never updated
        hedge = dlt = tf.zeros([B, n_opt, 1], dt)
    s_last = tf.ones([B, P], dt)

    def step(k, z, x, hedge, dlt, s_last):
        z, x = _step(z, x, xi[k], decay[k], drive[k], dw[k], h[k], lam, eta, a, b, c0, c, q_cap, sign)

        def rebalance():
            s = tf.exp(flat(x))
            new_hedge = hedge + dlt * (s - s_last)[:, None, :]
            _, v1 = variance(z)
            return new_hedge, delta(flat(x), flat(tf.sqrt(v1)), times[k + 1]), s

        if hedged:
            hedge, dlt, s_last = tf.cond(hedge_flag[k + 1], rebalance, lambda: (hedge, dlt, s_last))
        return k + 1, z, x, hedge, dlt, s_last

    # the control model's log-spot needs no loop: a weighted sum of the normals, segment by segment
    w = tf.sqrt(ref_var)  # (N, B)
    var_h = tf.cumsum(ref_var * h[:, None], axis=0)  # (N, B)
    ref_sum = tf.zeros([B, D], dt)
    k = tf.constant(0)
    outs, ref_outs, z_means, v_means = [], [], [], []
    for j in range(seg_ends.shape[0]):
        start, end = k, seg_ends[j]
        k, z, x, hedge, dlt, s_last = tf.while_loop(
            lambda k, *_: k < end,  # noqa: B023
            step,
            (k, z, x, hedge, dlt, s_last),
            parallel_iterations=1,
        )
        outs.append(flat(x))
        ref_sum = ref_sum + tf.einsum("krbd,kr,kb->bd", xi[start:end], dw[start:end], w[start:end])
        ref_outs.append(flat(ref_sum[:, None, :] * sign - 0.5 * var_h[end - 1][:, None, None]))
        z_means.append(tf.reduce_mean(tf.reshape(z, [-1, B, P]), axis=-1))
        v_means.append(tf.reduce_mean(flat(variance(z)[1]), axis=-1))
    return tf.stack(outs), hedge, tf.stack(z_means), tf.stack(v_means), tf.stack(ref_outs)


@dataclass
class PathStats:
    """Raw Monte Carlo output for a batch of parameter sets (float64 NumPy arrays)."""

    log_spot: np.ndarray  # (n_T, B, P) log S_T / S_0 at each maturity
    hedge: np.ndarray | None  # (B, n_opt, P) delta-hedge gains of each option (strike-major), if hedged
    antithetic: bool
    factor_mean: np.ndarray | None = None  # (n_T, n, B) path mean of each factor at each maturity
    variance_mean: np.ndarray | None = None  # (n_T, B) path mean of V at each maturity
    log_ref: np.ndarray | None = None  # (n_T, B, P) log-spot of the Black-Scholes control model, same paths
    ref_total_var: np.ndarray | None = None  # (n_T, B) its total variance to each maturity (float64)


class QRHEngine:
    """Simulates the n-factor QRH model for batches of parameter sets.

    Parameters
    ----------
    grid : Grid
        The options whose hedges are accumulated (their maturities are forced onto the time grid).
    config : MCConfig
    """

    def __init__(self, grid, config: MCConfig | None = None):
        self.grid = grid
        self.config = config or MCConfig()
        cfg = self.config
        self.kernel = geometric_nodes(cfg.alpha, cfg.n_factors, cfg.x)
        self.times = time_grid(grid.maturities, cfg.steps_per_year, cfg.first_step, cfg.grading)
        self.h = np.diff(self.times)
        self.coefficients = step_coefficients(self.kernel.gamma, self.h, cfg.scheme)
        self.seg_ends = np.asarray([int(np.argmin(np.abs(self.times - T))) for T in grid.maturities])
        flag = np.zeros(self.times.size, dtype=bool)
        if cfg.steps_per_hedge:
            flag[hedge_indices(self.times, grid.maturities, cfg.steps_per_hedge)] = True
        self.hedge_flag = flag

    @property
    def n_steps(self) -> int:
        return self.h.size

    def simulate(self, X, sample_index, seed: int = 0, xi=None, h=None, hedge_flag=None, seg_ends=None,
                 coefficients: StepCoefficients | None = None):
        """Simulate the paths of the parameter sets ``X`` (B, 15) whose dataset indices are ``sample_index``.

        ``xi`` (N, R, B, D) may be passed to impose the normals (convergence studies); ``h``, ``hedge_flag``,
        ``seg_ends`` and ``coefficients`` (default: :func:`qrh_lib.kernel.step_coefficients` of ``h``) then
        describe the matching time grid.
        """
        cfg = self.config
        X = check_inputs(X)
        dt = tf.as_dtype(cfg.dtype)
        h = self.h if h is None else np.asarray(h, dtype=np.float64)
        coef = coefficients or (self.coefficients if h is self.h else
                                step_coefficients(self.kernel.gamma, h, cfg.scheme))
        hedge_flag = self.hedge_flag if hedge_flag is None else hedge_flag
        seg_ends = self.seg_ends if seg_ends is None else seg_ends
        n_draws = cfg.n_paths // 2 if cfg.antithetic else cfg.n_paths
        if xi is None:
            xi = sample_normals(sample_seeds(seed, sample_index), h.size, n_draws, coef.n_normals, dt)
        grid = self.grid
        log_k = grid.flat_log_moneyness()
        tau_end = grid.flat_maturities()
        # the control model: Black-Scholes with the scheme's exact expected variance E[V_k] on the same path
        ref_var = discrete_moments(X, h, self.kernel, coef)[2][:-1]  # (N, B)
        # the moment recursion ignores the cap on (Z - b)^2 and its second moments can explode (the model's
        # E[V_t] is infinite for strong feedback, large a and eta); V itself never leaves [c, a q_cap + c]
        a, c0 = X[None, :, 2], X[None, :, 4]
        ref_var = np.clip(np.nan_to_num(ref_var, nan=np.inf), c0, a * cfg.q_cap + c0)
        drive = np.concatenate([coef.phi[:, :, None], coef.load], axis=-1)
        log_s, hedge, z_mean, v_mean, log_ref = _simulate(
            tf.constant(X, dt), tf.constant(self.kernel.c, dt), tf.constant(h, dt), tf.constant(coef.decay, dt),
            tf.constant(drive, dt), tf.constant(coef.dw, dt), tf.constant(hedge_flag),
            tf.constant(seg_ends, tf.int32), tf.cast(xi, dt), tf.constant(log_k, dt), tf.constant(tau_end, dt),
            tf.constant(cfg.q_cap, dt), cfg.antithetic, tf.constant(ref_var, dt), bool(hedge_flag.any()),
        )
        # cumsum adds step by step whatever the batch (a plain sum may switch to pairwise order when B = 1)
        ref_total = np.cumsum(ref_var * np.asarray(h)[:, None], axis=0)[np.asarray(seg_ends) - 1]  # (n_T, B)
        return PathStats(log_s.numpy().astype(np.float64),
                         hedge.numpy().astype(np.float64) if cfg.steps_per_hedge else None, cfg.antithetic,
                         z_mean.numpy().astype(np.float64), v_mean.numpy().astype(np.float64),
                         log_ref.numpy().astype(np.float64), ref_total)
