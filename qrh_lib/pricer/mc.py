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
:math:`\Delta W_k` from two normals (:func:`qrh_lib.pricer.kernel.step_coefficients`). The implicit step damps the fast
factors' noise (at a daily step the fastest keeps 57% of its stationary variance), the exponential step does
not; but holding :math:`V` over a step errs the other way, and the convergence study
(``benchmarks/convergence.py``) measures the implicit step closer to the fine-grid reference at daily steps.
The ETD step, which converges to the model as the step shrinks, is that study's reference.

The grid is very fine near :math:`t = 0`, where the fast factors (:math:`1/\gamma_{10} \approx 0.0018` years)
relax, and coarser afterwards (see :func:`time_grid`). Random numbers for parameter set ``i`` come from a
stateless generator keyed by ``(seed, i)``, so a surface never depends on the batch it was priced in.

Besides the terminal spot at each maturity the engine accumulates, for every option of the grid, the gains of
a discretely rebalanced Black-Scholes delta hedge (delta taken at the path's current volatility
:math:`\sqrt{V_t}`, none from the option's maturity on), a martingale with zero mean used as a control variate by
:mod:`qrh_lib.pricer.pricing`.

The time loop runs in chunks of :data:`CHUNK_STEPS` steps: the normals of a chunk are drawn when it starts (the
same numbers as one draw of the whole path, see :func:`chunk_normals`, so memory does not grow with the number of
steps), and the steps between two events (a rebalancing of the hedge, a maturity) are one call of a loop compiled
whole by XLA (:func:`_run_steps`). Step by step, TensorFlow's fixed cost per operation dominated at a few thousand
paths; compiled, the loop fuses into a few kernels.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from ..params import Inputs, check_inputs
from .config import SCHEME, MCConfig  # noqa: F401  (SCHEME: re-exported, the engine's numerics)
from .kernel import (
    StepCoefficients,
    geometric_nodes,
    step_coefficients,
)
from .moments import iter_expected_variance


def time_grid(maturities, steps_per_year: int, first_step: float = 1e-5, grading: float = 0.05,
              fine_until: float | None = None, late_grading: float = 0.02) -> np.ndarray:
    r"""Time grid holding every maturity, fine near 0 and uniform later.

    The target step at time :math:`t` is :math:`h(t) = \min(1/N_y, \max(h_0, g\,t))`: constant
    :math:`h_0` at first, then growing geometrically (step proportional to elapsed time), then
    :math:`1/N_y`; after ``fine_until`` the grading is ``late_grading`` instead of :math:`g`. Each interval
    between maturities is walked with that step and its last step is stretched or shrunk to land on the maturity.
    """
    T = np.asarray(maturities, dtype=np.float64)
    h_max = 1.0 / steps_per_year
    times = [0.0]
    for end in T:
        t = times[-1]
        while True:
            g = grading if fine_until is None or t < fine_until else late_grading
            h = min(h_max, max(first_step, g * t))
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


#: Steps simulated by one call of the compiled loop (a performance setting: the numbers do not depend on it).
CHUNK_STEPS = 128


def sample_normals(seeds: np.ndarray, n_steps: int, n_draws: int, n_normals: int = 1, dtype=tf.float32) -> tf.Tensor:
    """Standard normals of shape (n_steps, n_normals, len(seeds), n_draws); sample i's depend only on seeds[i]."""
    return chunk_normals(seeds, 0, n_steps, n_steps, n_draws, n_normals, dtype)


def chunk_normals(seeds: np.ndarray, start: int, length: int, n_steps: int, n_draws: int, n_normals: int = 1,
                  dtype=tf.float32) -> tf.Tensor:
    """Steps ``start .. start + length`` of :func:`sample_normals` (zeros past ``n_steps``), generated alone.

    Sample i's normals are the stream of ``tf.random.stateless_normal((n_steps, n_normals, n_draws), seeds[i])``;
    its Philox generator is counter-based (4 float32 or 2 float64 normals per counter value), so a slice of the
    stream starts at a known counter and is generated without the steps before it: the engine draws its normals
    chunk by chunk and never holds all of them, with the same numbers.
    """
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1, 2)
    stop = min(start + length, n_steps)
    per_step = n_normals * n_draws
    first, skip = divmod(start * per_step, 2 if tf.as_dtype(dtype) == tf.float64 else 4)
    size = (stop - start) * per_step
    alg = tf.raw_ops.StatelessRandomGetAlg()
    draws = []
    for s in seeds:
        key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=tf.constant(s, tf.int64))
        counter = counter + tf.constant([first, 0], tf.uint64)  # the low word; it starts at 0 (checked in tests)
        flat = tf.raw_ops.StatelessRandomNormalV2(shape=[skip + size], key=key, counter=counter, alg=alg,
                                                  dtype=dtype)
        draws.append(tf.reshape(flat[skip:], (stop - start, n_normals, n_draws)))
    out = tf.stack(draws, axis=2)
    if stop - start < length:
        out = tf.concat([out, tf.zeros((start + length - stop, n_normals, len(seeds), n_draws), dtype)], axis=0)
    return out


def sample_seeds(seed: int, index: np.ndarray) -> np.ndarray:
    """The stateless-generator key of each sample: the pair ``(seed, index)``."""
    index = np.asarray(index, dtype=np.int64)
    return np.stack([np.full_like(index, int(seed)), index], axis=-1)


def _bs_delta(x, sv, tau, log_k):
    """Black-Scholes delta of each option (B, n_opt, P) at log-spot ``x`` and volatility ``sv`` (B, P), with
    ``tau`` (n_opt,) to expiry (0 once expired). Any adapted holding keeps the hedge gains a zero-mean control;
    the logistic approximation of the normal CDF (error < 0.01) costs much less than erfc."""
    tau = tau[None, :, None]
    sd = sv[:, None, :] * tf.sqrt(tau)
    d1 = (x[:, None, :] - log_k[None, :, None]) / tf.maximum(sd, 1e-30) + 0.5 * sd
    return tf.where(tau > 0, tf.sigmoid(1.702 * d1), tf.zeros_like(d1))


def sign_of(antithetic: bool, dtype=tf.float32) -> tf.Tensor:
    """The signs of the paths' normals: (1, -1) for antithetic pairs, else (1,)."""
    return tf.constant([1.0, -1.0] if antithetic else [1.0], dtype)


def _model_params(params):
    """lambda, eta, a, b and c of the inputs ``params`` (B, 15), each (B, 1, 1) to broadcast over paths (B, S, D)."""
    p = Inputs(params)
    return tuple(u[:, None, None] for u in (p.lam, p.eta, p.a, p.b, p.c))


def _variance(z, c, a, b, c0, q_cap):
    """Z = sum_i c_i Z^i and V = a min((Z - b)^2, cap) + c of factors z (n, ...)."""
    Z = tf.reduce_sum(c * z, axis=0)
    d = Z - b
    return Z, a * tf.minimum(d * d, q_cap) + c0


@tf.function(jit_compile=True)
def _run_steps(z, x, ref, params, c, h, decay, phi, load, dw, xi, ref_w, start, stop, q_cap, antithetic):
    r"""Steps ``start .. stop - 1`` of a chunk, compiled whole by XLA: the loop and the step fuse into a few kernels
    (step by step, TensorFlow's cost per operation dominated at few paths). Written as broadcast products and sums,
    which XLA fuses, rather than small matrix products, which it does not.

    Shapes: z (n, B, S, D) factors, x (B, S, D) log-spot, ref (B, D) the control model's Brownian sum; params
    (B, 15); c (n, 1, 1, 1); per step of the chunk, h (L,), decay and phi (L, n), load (L, n, R), dw (L, R),
    xi (L, R, B, D) normals, ref_w (L, B) the control model's volatility. Paths are held as (B, S, D) with S = 2
    antithetic signs (path ``s * D + d`` of the flat layout) or S = 1. The short names are the maths' (module
    docstring): z the factors :math:`Z^i`, x :math:`\log S`, c the kernel's weights :math:`c_i`, h the steps
    :math:`h_k`, xi the normals :math:`\xi`, d (decay) :math:`d_i`, phi :math:`\varphi_i`; c0 is the input c.
    """
    dt = xi.dtype
    lam, eta, a, b, c0 = _model_params(params)  # (B, 1, 1)
    sign = sign_of(antithetic, dt)[None, :, None]  # (1, S, 1)
    R = xi.shape[1]

    def step(k, z, x, ref):
        Z, v = _variance(z, c, a, b, c0, q_cap)
        sv = tf.sqrt(v)
        g = xi[k]  # (R, B, D)
        noise = [eta * sv * (g[r][:, None, :] * sign) for r in range(R)]  # (B, S, D) each
        z_new = decay[k][:, None, None, None] * z - phi[k][:, None, None, None] * (lam * Z)
        for r in range(R):
            z_new = z_new + load[k][:, r, None, None, None] * noise[r]
        dW = sum(dw[k][r] * g[r] for r in range(R))  # (B, D)
        x = x + sv * (dW[:, None, :] * sign) - 0.5 * h[k] * v
        return k + 1, z_new, x, ref + ref_w[k][:, None] * dW

    _, z, x, ref = tf.while_loop(lambda k, *_: k < stop, step, (start, z, x, ref), parallel_iterations=1)
    return z, x, ref


@tf.function(jit_compile=True)
def _rebalance(hedge, dlt, s_last, x, z, params, c, tau, log_k, q_cap):
    """Add the gains of the holdings ``dlt`` (B, n_opt, P) since the last rebalancing to ``hedge`` and take the new
    holdings at log-spot ``x`` (B, S, D) and factors ``z`` (n, B, S, D), with ``tau`` (n_opt,) to each option's
    expiry; ``c`` the kernel's weights, ``params`` the inputs (B, 15)."""
    B = x.shape[0]
    _, _, a, b, c0 = _model_params(params)
    xf = tf.reshape(x, [B, -1])
    s = tf.exp(xf)
    sv = tf.reshape(tf.sqrt(_variance(z, c, a, b, c0, q_cap)[1]), [B, -1])
    return hedge + dlt * (s - s_last)[:, None, :], _bs_delta(xf, sv, tau, log_k), s


def simulation_bytes(B: int, P: int, n: int, n_T: int, n_opt: int, n_normals: int, hedged: bool,
                     record_factors: bool, itemsize: int = 4) -> int:
    """An estimate of the memory :meth:`QRHEngine.simulate` holds for ``B`` parameter sets of ``P`` paths.

    It counts the path state (``n`` factors, the log-spot, the control model's sum), two chunks of normals (the one
    running and the one prefetched), the hedge (gains, holdings and the Black-Scholes delta's temporaries, per
    option), and what is kept at each of the ``n_T`` recorded dates (the log-spot and the control's log-spot, and
    the factors if recorded) several times over at the end: the recorded tensors, their stack, its float64 copy and
    the control's shifted copy; not TensorFlow's own few hundred MB. For 2,048 states x 256 paths x 1,084 recorded
    dates it gives 27.7 GB: a batch that the out-of-memory killer ended at 24.1 GB resident on a 24 GB machine.
    """
    per_path = (n + 2) + 2 * CHUNK_STEPS * n_normals  # the state; two chunks of normals (antithetic: half that)
    if hedged:
        per_path += 5 * n_opt + 1  # gains, holdings and the delta's temporaries per option, the last spot
    recorded = n_T * (2 + (n if record_factors else 0))
    return int(B * P * (per_path * itemsize + recorded * (2 * itemsize + 16)))


class MemoryBudgetError(ValueError):
    """A simulation whose arrays would exceed ``MCConfig.memory_budget_gb``."""


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
    factors: np.ndarray | None = None  # (n_T, n, B, P) the factor state of every path at each maturity, if asked


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
        self.times = time_grid(grid.maturities, cfg.steps_per_year, cfg.first_step, cfg.grading, cfg.fine_until,
                               cfg.late_grading)
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
                 coefficients: StepCoefficients | None = None, record_factors: bool = False):
        """Simulate the paths of the parameter sets ``X`` (B, 15) whose dataset indices are ``sample_index``.

        ``record_factors`` keeps every path's factor state at each maturity (``PathStats.factors``, for the VIX:
        :mod:`qrh_lib.pricer.vix`); it changes no number.

        ``xi`` (N, R, B, D) may be passed to impose the normals (convergence studies); ``h``, ``hedge_flag``,
        ``seg_ends`` and ``coefficients`` (default: :func:`qrh_lib.pricer.kernel.step_coefficients` of ``h``) then
        describe the matching time grid.
        """
        # h (the step lengths h_k) and xi (the normals) keep the maths' names (module docstring)
        cfg = self.config
        X = check_inputs(X)
        dt = tf.as_dtype(cfg.dtype)
        h = self.h if h is None else np.asarray(h, dtype=np.float64)
        coef = coefficients or (self.coefficients if h is self.h else
                                step_coefficients(self.kernel.gamma, h, cfg.scheme))
        hedge_flag = self.hedge_flag if hedge_flag is None else np.asarray(hedge_flag, dtype=bool)
        seg_ends = self.seg_ends if seg_ends is None else np.asarray(seg_ends)
        n_steps, n_normals, n_sets, n_factors = h.size, coef.n_normals, X.shape[0], self.kernel.n
        # a path is (sign, draw): n_draws independent normal streams per parameter set, each used with n_signs
        # signs (2: an antithetic pair); the tensors hold the paths as (n_sets, n_signs, n_draws)
        n_draws = cfg.n_paths // 2 if cfg.antithetic else cfg.n_paths
        n_signs = 2 if cfg.antithetic else 1
        n_paths = n_signs * n_draws
        log_k = tf.constant(self.grid.flat_log_moneyness(), dt)
        n_opt, n_T = log_k.shape[0], seg_ends.size
        hedged = bool(hedge_flag.any())
        need = simulation_bytes(n_sets, n_paths, n_factors, n_T, n_opt, n_normals, hedged, record_factors, dt.size)
        if need > cfg.memory_budget_gb * 1e9:
            raise MemoryBudgetError(
                f"simulate: {n_sets} parameter sets x {n_paths} paths, {n_T} recorded dates, {n_opt} hedged options"
                f"{', factors recorded' if record_factors else ''} would hold about {need / 1e9:.1f} GB, over "
                f"MCConfig.memory_budget_gb = {cfg.memory_budget_gb:g} GB: price fewer parameter sets at once "
                f"(batch_size), or fewer paths or dates per call, or raise the budget")
        # the engine loops over chunks of CHUNK_STEPS steps (the normals of one chunk at a time) and, within a
        # chunk, over the blocks between events: a rebalancing of the hedge, a maturity, the chunk's end
        chunk_len = CHUNK_STEPS
        n_pad = -n_steps % chunk_len

        def padded(u, value=0):
            u = np.asarray(u)
            return tf.constant(np.concatenate([u, np.full((n_pad, *u.shape[1:]), value, dtype=u.dtype)]), dt)

        per_step = (padded(h), padded(coef.decay, 1), padded(coef.phi), padded(coef.load), padded(coef.dw))
        rebalance_at = set(np.flatnonzero(hedge_flag[1:]) + 1) if hedged else set()
        record_at = {int(e): j for j, e in enumerate(seg_ends)}  # step -> its maturity's index
        block_ends = sorted(set(range(chunk_len, n_steps, chunk_len)) | rebalance_at | set(record_at) | {n_steps})
        t_grid = np.concatenate([[0.0], np.cumsum(h)])
        expiry = self.grid.flat_maturities()  # of each option

        def time_to_expiry(step):  # exactly 0 from an option's maturity on, whatever the rounding of the grid
            tau = expiry - t_grid[step]
            return tf.constant(np.where(tau > 1e-9, tau, 0.0), dt)

        Xt = tf.constant(X, dt)
        weights = tf.constant(self.kernel.c[:, None, None, None], dt)  # the kernel's c_i
        q_cap = tf.constant(cfg.q_cap, dt)
        _, _, a, b, c0 = _model_params(Xt)  # V = a min((Z - b)^2, q_cap) + c0, with c0 the input c

        def variance(factors):
            return _variance(factors, weights, a, b, c0, q_cap)[1]

        factors = tf.transpose(Inputs(Xt).z0)[:, :, None, None] * tf.ones([1, 1, n_signs, n_draws], dt)
        log_spot = tf.zeros([n_sets, n_signs, n_draws], dt)
        ref_sum = tf.zeros([n_sets, n_draws], dt)  # the control model's sum of sqrt(E[V]) dW
        if hedged:
            vol0 = tf.reshape(tf.sqrt(variance(factors)), [n_sets, n_paths])
            hedge = tf.zeros([n_sets, n_opt, n_paths], dt)
            holdings = _bs_delta(tf.zeros([n_sets, n_paths], dt), vol0, time_to_expiry(0), log_k)
            spot_last = tf.ones([n_sets, n_paths], dt)
        # at each maturity: log-spot, control's sum, path means of the factors and of V, factors (if recorded)
        log_spot_at, ref_at, factor_mean_at, variance_mean_at, factors_at = ([None] * n_T for _ in range(5))
        seeds = sample_seeds(seed, sample_index)

        # the control model: Black-Scholes with the scheme's exact expected variance E[V_k] on the same path.
        # The moment recursion ignores the cap on (Z - b)^2 and its second moments can explode (the model's
        # E[V_t] is infinite for strong feedback, large a and eta); V itself never leaves [c, a q_cap + c]
        ev_steps = iter_expected_variance(X, h, self.kernel, coef)
        ref_var = np.empty((n_steps, n_sets))
        inputs = Inputs(X)
        v_min = inputs.c[None, :]
        v_max = inputs.a[None, :] * cfg.q_cap + v_min

        def prepare(start):
            """The normals (chunk_len, n_normals, n_sets, n_draws) and the control model's volatility
            (chunk_len, n_sets) of the chunk starting at step ``start``."""
            stop = min(start + chunk_len, n_steps)
            ev = np.asarray([next(ev_steps) for _ in range(stop - start)])
            ref_var[start:stop] = np.clip(np.nan_to_num(ev, nan=np.inf), v_min, v_max)
            ref_vol = np.zeros((chunk_len, n_sets))
            ref_vol[: stop - start] = np.sqrt(ref_var[start:stop])
            if xi is None:
                return chunk_normals(seeds, start, chunk_len, n_steps, n_draws, n_normals, dt), tf.constant(ref_vol, dt)
            normals = tf.cast(xi[start : start + chunk_len], dt)
            if normals.shape[0] < chunk_len:
                normals = tf.concat([normals, tf.zeros([chunk_len - normals.shape[0], n_normals, n_sets, n_draws], dt)],
                                    axis=0)
            return normals, tf.constant(ref_vol, dt)

        # the next chunk's normals and moments are prepared on a second thread while this chunk's steps run: the
        # compiled loop keeps about one core busy, the generator and the moment recursion the other
        prefetch = ThreadPoolExecutor(max_workers=1)
        pending = prefetch.submit(prepare, 0)
        pos, chunk_start = 0, -1
        for block_end in block_ends:  # steps pos .. block_end - 1
            if pos // chunk_len * chunk_len != chunk_start:  # a new chunk
                chunk_start = pos // chunk_len * chunk_len
                normals, ref_vol = pending.result()
                if chunk_start + chunk_len < n_steps:
                    pending = prefetch.submit(prepare, chunk_start + chunk_len)
                chunk_steps = [u[chunk_start : chunk_start + chunk_len] for u in per_step]
            factors, log_spot, ref_sum = _run_steps(
                factors, log_spot, ref_sum, Xt, weights, *chunk_steps, normals, ref_vol,
                tf.constant(pos - chunk_start, tf.int32), tf.constant(block_end - chunk_start, tf.int32), q_cap,
                cfg.antithetic)
            pos = block_end
            if block_end in rebalance_at:
                hedge, holdings, spot_last = _rebalance(hedge, holdings, spot_last, log_spot, factors, Xt, weights,
                                                        time_to_expiry(block_end), log_k, q_cap)
            if block_end in record_at:
                m = record_at[block_end]
                log_spot_at[m] = tf.reshape(log_spot, [n_sets, n_paths])
                signs = tf.reshape(sign_of(cfg.antithetic, dt), [1, n_signs, 1])
                ref_at[m] = tf.reshape(ref_sum[:, None, :] * signs, [n_sets, n_paths])
                factor_mean_at[m] = tf.reduce_mean(tf.reshape(factors, [n_factors, n_sets, n_paths]), axis=-1)
                variance_mean_at[m] = tf.reduce_mean(tf.reshape(variance(factors), [n_sets, n_paths]), axis=-1)
                if record_factors:
                    factors_at[m] = tf.reshape(factors, [n_factors, n_sets, n_paths])
        prefetch.shutdown()
        # cumsum adds step by step whatever the batch (a plain sum may switch to pairwise order when n_sets = 1)
        ref_total = np.cumsum(ref_var * np.asarray(h)[:, None], axis=0)[np.asarray(seg_ends) - 1]  # (n_T, n_sets)

        def as_numpy(tensors):
            return tf.stack(tensors).numpy().astype(np.float64)

        return PathStats(as_numpy(log_spot_at), hedge.numpy().astype(np.float64) if hedged else None, cfg.antithetic,
                         as_numpy(factor_mean_at), as_numpy(variance_mean_at),
                         as_numpy(ref_at) - 0.5 * ref_total[:, :, None], ref_total,
                         as_numpy(factors_at) if record_factors else None)
