r"""Calibration of the 15 QRH inputs to an implied-vol surface through the surrogate.

Weighted least squares in implied vol, in vol points :math:`r = 100(\hat\sigma(x) - \sigma^\star)`,

.. math::

    \min_{u \in [-1, 1]^{15}} f(u) = \tfrac12 \sum_j \bar w_j r_j(x(u))^2, \qquad
    \bar w_j = w_j / \textstyle\sum_i w_i, \qquad x(u) = \ell + \tfrac{u + 1}{2} (h - \ell),

over the box :math:`[\ell, h]` (default: the surrogate's training box), intersected with the surrogate's
domain: where the domain is the box's stable part (:mod:`qrh_lib.domain`), the feedback :math:`a` is mapped
to :math:`[\ell_a, \bar a(\lambda, \eta)]` with :math:`\bar a = \min(h_a, \kappa\, a^*(\lambda, \eta))`,
:math:`a = \ell_a + \tfrac{u_a + 1}{2} (\bar a(\lambda, \eta) - \ell_a)`, so every :math:`u` in the cube is a
state of the domain and the search never returns an explosive one (the gradient carries the chain rule through
:math:`\bar a`). Working in :math:`u`
puts all inputs on the same scale (``c`` spans 3e-2, ``lambda`` spans 2), which the solvers' bound handling
and tolerances need. The fit RMSE reported is
:math:`\sqrt{2f}` (weighted RMS error, vol points). NaN targets get zero weight; impossible targets (an infinite,
non-positive or absurd vol, fewer quoted points than inputs) are refused (:func:`check_target`).

Solvers: ``solver="lsq"`` (the default) is Levenberg-Marquardt (MINPACK) on the residuals
:math:`100\sqrt{\bar w_j}(\hat\sigma_j - \sigma^\star_j)` with their exact Jacobian, the float64 network's by
forward mode (:meth:`qrh_lib.surrogate.NumpyResMLP.jacobian`), the cube's bounds kept by :math:`u = \sin v`.
``solver="lbfgsb"`` is L-BFGS-B on :math:`f` with its gradient: ``backend="numpy"`` backpropagates by hand through
the float64 copy of the network; ``backend="tf"`` uses TensorFlow autodiff in a ``tf.function``. Both give the
same gradient (tested); for one surface TensorFlow's per-call overhead dominates the arithmetic.

Identifiability: the PCA head makes every surrogate surface an affine function of K
coefficients, so the Jacobian :math:`\partial \hat\sigma / \partial x` has rank at most K. With
K < 15, at most K combinations of the 15 inputs are determined by a surface; the others move
along a level set without changing the fit. :func:`input_jacobian` and :func:`identifiability`
measure this at a point; fixing inputs (equal lower and upper ``bounds``) removes them from the fit.

Multi-start: with ``"lsq"``, a bank of ``n_candidates`` scrambled Sobol points in :math:`u` (seeded) and their
surfaces, computed once per surrogate, bounds and seed; with ``"lbfgsb"``, as many uniform points priced for each
target. The solver starts from the ``n_starts`` best of them (``"lbfgsb"``: one run each, or all together as
one problem in :math:`15 n_{starts}` variables with ``joint=True``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares, minimize
from scipy.stats import qmc
from threadpoolctl import ThreadpoolController

from ..iv import VOL_POINTS
from ..params import COL_A, COL_ETA, COL_LAMBDA, N_INPUTS, InputBox

_THREADPOOLS = ThreadpoolController()


@dataclass(frozen=True)
class CalibrationResult:
    """Outcome of :func:`calibrate`.

    ``x`` raw inputs (15,) of the best start; ``fit_rmse`` its weighted RMS error in vol units and
    ``fit_rmse_pts`` in vol points; ``iv`` the surrogate surface at ``x``; ``iterations`` and
    ``n_evaluations`` summed over the starts (``"lsq"``: both are residual evaluations); ``seconds`` wall time;
    ``success`` and ``message`` the solver's for the best start (``"lsq"``: False when it stopped at its
    evaluation budget rather than a tolerance); ``starts`` one dict per start (``x0``, ``x``, ``fit_rmse_pts``).
    """

    x: np.ndarray
    fit_rmse: float
    fit_rmse_pts: float
    iv: np.ndarray
    iterations: int
    n_evaluations: int
    seconds: float
    success: bool
    message: str
    starts: tuple = field(default_factory=tuple)


def _bounds_arrays(surrogate, bounds) -> tuple[np.ndarray, np.ndarray]:
    if bounds is None:
        bounds = surrogate.box
    if isinstance(bounds, InputBox):
        lo, hi = bounds.lo, bounds.hi
    else:
        b = np.asarray(bounds, np.float64)
        if b.shape != (N_INPUTS, 2):
            raise ValueError(f"bounds must be an InputBox or an array of shape ({N_INPUTS}, 2), got {b.shape}")
        lo, hi = b[:, 0], b[:, 1]
    if np.any(hi < lo):
        raise ValueError("bounds: an upper bound is below its lower bound")
    return lo, hi


_LAM, _ETA, _A = COL_LAMBDA, COL_ETA, COL_A
#: Quotes on which the candidate bank is ranked when there are more (see ``_Objective.screening_values``).
SCREEN_QUOTES = 64
#: Calibrated states keep this relative distance below the domain's margin (its tabulated a* is accurate to
#: ~2e-8), so that the surrogate's own exact domain check always accepts them.
_MARGIN_SAFETY = 1e-6


class _Objective:
    """f(u) and its gradient for one target surface (see module docstring)."""

    def __init__(self, surrogate, target, weights, lo, hi, backend, observe=None):
        self.lo, self.hi = lo, hi
        # observe: the map from the grid's vols to the quoted ones (qrh_lib.surrogate.quotes.QuoteMap), None on the grid
        self.observe = observe
        if observe is not None and backend != "numpy":
            raise ValueError("quotes off the grid need backend='numpy'")
        self.half = (hi - lo) / 2.0
        self.mid = lo + self.half
        self.x_scale = surrogate.x_scale
        self.A = self.half * surrogate.x_scale  # xs = A u + c (box part)
        self.c = self.mid * surrogate.x_scale + surrogate.x_min
        self.x_min = surrogate.x_min
        margin = surrogate.domain.max_feedback_ratio
        self.stable = margin is not None and hi[_A] > lo[_A]
        if self.stable:
            from ..pricer.moments import lyapunov_table

            grid, table = lyapunov_table()
            self._q = (grid, table, np.diff(table) / np.diff(grid))  # the interpolant and its slope per segment
            self.kappa = margin * (1 - _MARGIN_SAFETY)
            if backend == "tf":
                raise ValueError("backend 'tf' searches the box only; use backend='numpy' on a stable domain")
        self.t = np.where(np.isfinite(target), target, 0.0)
        w = np.where(np.isfinite(target), weights, 0.0)
        if w.sum() <= 0:
            raise ValueError("no target point has positive weight")
        self.w = w / w.sum()
        self.sqrt_w = np.sqrt(self.w)
        self._du_scale = self.x_scale * self.half  # d (scaled input) / d u in the box part
        self.net = surrogate.numpy_net
        self.n_eval = 0
        self.backend = backend
        if backend == "tf":
            self._tf = _tf_value_and_grad(surrogate, self.A, self.c, self.t, self.w)
        elif backend != "numpy":
            raise ValueError(f"backend must be 'numpy' or 'tf', got {backend!r}")

    def _a_max(self, X):
        """Largest a of the domain at each row's (lambda, eta), and its derivatives in lambda and eta."""
        grid, q, dq = self._q
        lam, eta = X[:, _LAM], X[:, _ETA]
        q_lam = np.interp(lam, grid, q)
        slope = dq[np.clip(np.searchsorted(grid, lam) - 1, 0, len(dq) - 1)]
        a_star = self.kappa / (eta**2 * q_lam)
        capped = a_star >= self.hi[_A]
        a_max = np.where(capped, self.hi[_A], a_star)
        d_lam = np.where(capped, 0.0, -a_star * slope / q_lam)
        d_eta = np.where(capped, 0.0, -2.0 * a_star / eta)
        return a_max, d_lam, d_eta

    def _map(self, U):
        """Raw inputs for the rows of U, and (stable domain) ``_a_max`` at them: the map and what its gradient
        needs, computed once."""
        X = np.clip(self.mid + self.half * U, self.lo, self.hi)
        if not self.stable:
            return X, None
        a_range = self._a_max(X)
        X[:, _A] = self.lo[_A] + 0.5 * (U[:, _A] + 1.0) * (a_range[0] - self.lo[_A])
        return X, a_range

    def x_of(self, u):
        """Raw inputs for u (one row or many); clipped so round-off never leaves the box (predict would
        refuse it), with a mapped into the domain's feedback range."""
        u = np.asarray(u, np.float64)
        X = self._map(np.atleast_2d(u))[0]
        return X[0] if u.ndim == 1 else X

    def u_of(self, x) -> np.ndarray:
        """The point of the cube whose inputs are ``x`` (15,), clipped to the cube: the inverse of :meth:`x_of`
        (an input fixed by equal bounds maps to -1)."""
        x = np.asarray(x, np.float64)
        lo, hi = self.lo, self.hi
        span = np.where(hi > lo, hi - lo, 1.0)
        u = np.clip(2.0 * (x - lo) / span - 1.0, -1.0, 1.0)
        if self.stable:  # the inverse of the map of a into the domain's feedback range
            a_max = self._a_max(np.clip(x, lo, hi)[None, :])[0][0]
            u[_A] = np.clip(2.0 * (x[_A] - lo[_A]) / (a_max - lo[_A]) - 1.0, -1.0, 1.0)
        return u

    def _scaled(self, U):
        return U * self.A + self.c if not self.stable else self.x_of(U) * self.x_scale + self.x_min

    def residuals_and_jacobian(self, u):
        r"""Residuals :math:`100\sqrt{\bar w_j}(\hat\sigma_j(x(u)) - \sigma^\star_j)` (d,) and their Jacobian in
        u (d, 15): the network's Jacobian by forward mode (:meth:`qrh_lib.surrogate.NumpyResMLP.jacobian_row`),
        times the scaling and, on a stable domain, the chain rule of the map of a into the domain."""
        self.n_eval += 1
        U = np.asarray(u, np.float64)[None, :]
        X, a_range = self._map(U)
        y, J = self.net.jacobian_row(X * self.x_scale + self.x_min)
        y = y[0]
        if self.observe is not None:
            y, J = self.observe(y[None, :])[0], self.observe.jacobian(y) @ J
        pw = VOL_POINTS * self.sqrt_w
        r = pw * (y - self.t)
        Ju = pw[:, None] * J * self._du_scale  # d residual / d u of the box part (d, 15)
        if a_range is not None:
            a_max, d_lam, d_eta = (float(v[0]) for v in a_range)
            J_a = pw * J[:, _A] * self.x_scale[_A]  # d residual / d raw a
            t = 0.5 * (float(U[0, _A]) + 1.0)
            Ju[:, _A] = J_a * (0.5 * (a_max - self.lo[_A]))
            Ju[:, _LAM] += J_a * (t * d_lam * self.half[_LAM])
            Ju[:, _ETA] += J_a * (t * d_eta * self.half[_ETA])
        return r, Ju

    def screening_values(self, surfaces) -> np.ndarray:
        """f at the candidate bank's ``surfaces`` (m, d), to rank the starts: with more than
        :data:`SCREEN_QUOTES` quotes, on that many of them evenly spread (their weights renormalised), since carrying
        every bank surface to thousands of quotes costs more than the solver; otherwise :meth:`values`."""
        n_q = 0 if self.observe is None else self.observe.n_quotes
        if n_q <= SCREEN_QUOTES:
            return self.values(surfaces=surfaces)
        idx = np.unique(np.linspace(0, n_q - 1, SCREEN_QUOTES).round().astype(np.int64))
        w = self.w[idx]
        if w.sum() <= 0:
            return self.values(surfaces=surfaces)
        r = VOL_POINTS * (self.observe.subset(idx)(surfaces) - self.t[idx])
        return 0.5 * (r**2 @ (w / w.sum()))

    def values(self, U=None, surfaces=None) -> np.ndarray:
        """f at many points U (m, 15), one batched forward pass, or at the grid ``surfaces`` (m, d) of such
        points."""
        y = self.net.forward(self._scaled(U)) if surfaces is None else surfaces
        if self.observe is not None:
            y = self.observe(y)
        r = VOL_POINTS * (y - self.t)
        return 0.5 * (r**2 @ self.w)

    def __call__(self, u_flat):
        """Sum of f over the starts stacked in ``u_flat`` (n_starts * 15,), and its gradient."""
        self.n_eval += 1
        U = u_flat.reshape(-1, N_INPUTS)
        if self.backend == "tf":
            f, g = self._tf(U.astype(np.float32))
            return float(f), np.asarray(g, np.float64).reshape(-1)
        cache = []
        if not self.stable:
            r = VOL_POINTS * (self.net.forward(U * self.A + self.c, cache) - self.t)
            f = 0.5 * float(np.sum(self.w * r * r))
            return f, (self.net.vjp(VOL_POINTS * self.w * r, cache) * self.A).reshape(-1)
        X, (a_max, d_lam, d_eta) = self._map(U)
        r = VOL_POINTS * (self.net.forward(X * self.x_scale + self.x_min, cache) - self.t)
        f = 0.5 * float(np.sum(self.w * r * r))
        g_x = self.net.vjp(VOL_POINTS * self.w * r, cache) * self.x_scale  # gradient in the raw inputs
        g_u = g_x * self.half
        t = 0.5 * (U[:, _A] + 1.0)  # a = lo_a + t (a_max - lo_a)
        g_u[:, _A] = g_x[:, _A] * 0.5 * (a_max - self.lo[_A])
        g_u[:, _LAM] += g_x[:, _A] * t * d_lam * self.half[_LAM]
        g_u[:, _ETA] += g_x[:, _A] * t * d_eta * self.half[_ETA]
        return f, g_u.reshape(-1)


def _tf_value_and_grad(surrogate, A, c, t, w):
    import tensorflow as tf  # only for backend="tf": the NumPy network is the default

    A32, c32, t32, w32 = (tf.constant(v, tf.float32) for v in (A, c, t, w))
    model = surrogate.model

    @tf.function(input_signature=[tf.TensorSpec((None, N_INPUTS), tf.float32)])
    def fg(u):
        with tf.GradientTape() as tape:
            tape.watch(u)
            r = VOL_POINTS * (model(u * A32 + c32, training=False) - t32)
            f = 0.5 * tf.reduce_sum(w32 * r * r)
        return f, tape.gradient(f, u)

    return fg


#: Implied vols above this (1,000%) are taken for an input error, not a quote.
MAX_VOL = 10.0
SOLVERS = ("lsq", "lbfgsb")
#: Residual evaluations per start ("lsq") and iterations per start ("lbfgsb") unless told otherwise.
DEFAULT_MAXITER = {"lsq": 20, "lbfgsb": 100}
#: Gradient tolerance of each solver unless told otherwise (L-BFGS-B's as it always was).
DEFAULT_GTOL = {"lsq": 1e-8, "lbfgsb": 1e-6}


#: Starting points of each calibration, and the candidates (the bank) they are the best of, unless told otherwise.
N_STARTS, N_CANDIDATES = 2, 4096

#: The tuning options of :func:`calibrate` that a notebook or a profile may set (its ``calibration`` dict).
OPTIONS = ("solver", "n_starts", "n_candidates", "maxiter", "ftol", "gtol", "backend", "joint")


def calibration_options(options: dict | None) -> dict:
    """Check a dict of :func:`calibrate` options (unknown names and counts below 1 raise) and return a copy."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown calibration options {unknown}; allowed: {list(OPTIONS)}")
    for name in ("n_starts", "n_candidates", "maxiter"):
        if name in options and (options[name] is not None and int(options[name]) < 1):
            raise ValueError(f"calibration option {name} = {options[name]} must be >= 1")
    if options.get("solver", "lsq") not in SOLVERS:
        raise ValueError(f"solver = {options['solver']!r} is unknown; allowed: {SOLVERS}")
    return options


def check_target(target_iv, weights, d: int, what: str = "target_iv") -> tuple[np.ndarray, np.ndarray]:
    """The target (d,) and weights (d,) as float arrays, or a ValueError naming the first bad entry: a vol that is
    infinite, not positive or above :data:`MAX_VOL`; a negative or non-finite weight; fewer quoted points (finite
    vol, positive weight) than the 15 inputs. NaN marks a missing quote."""
    t = np.asarray(target_iv, np.float64).reshape(-1)
    if t.size != d:
        raise ValueError(f"{what} must have {d} values, got {t.size}")
    bad = np.flatnonzero(~np.isnan(t) & ~((t > 0) & (t <= MAX_VOL)))
    if bad.size:
        j = int(bad[0])
        raise ValueError(f"{what}[{j}] = {t[j]} is not an implied vol: vols must be in (0, {MAX_VOL}] "
                         f"(NaN marks a missing quote); {bad.size} such value(s)")
    w = np.ones_like(t) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    if w.shape != t.shape or np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be finite, non-negative and of {what}'s shape ({d},)")
    n_quoted = int(np.sum(np.isfinite(t) & (w > 0)))
    if n_quoted < N_INPUTS:
        raise ValueError(f"{what} has {n_quoted} quoted points (finite vol, positive weight): at least {N_INPUTS}, "
                         f"one per input, are needed to determine the {N_INPUTS} inputs")
    return t, w


def _bank(surrogate, obj: _Objective, n: int, seed: int):
    """``n`` scrambled Sobol points of the cube in u and the surrogate's surfaces there, computed once per
    surrogate, bounds and seed and kept on the surrogate: the starting points of every calibration."""
    key = (obj.lo.tobytes(), obj.hi.tobytes(), int(n), int(seed))
    banks = surrogate.__dict__.setdefault("_calibration_banks", {})
    if key not in banks:
        U = 2.0 * qmc.Sobol(N_INPUTS, seed=seed).random(n) - 1.0
        banks[key] = (U, obj.net.forward(obj._scaled(U)))
    return banks[key]


def candidate_bank(surrogate, bounds=None, seed: int = 0, n_candidates: int = N_CANDIDATES,
                   n_starts: int = N_STARTS) -> tuple[np.ndarray, np.ndarray]:
    """The bank of starting points that least-squares calibrations with these ``bounds``, ``seed``, ``n_candidates``
    and ``n_starts`` start from, computed now if it is not yet (so that the first calibration's time is its own):
    the candidates in u (n, 15) and the surrogate's surfaces there (n, d)."""
    lo, hi = _bounds_arrays(surrogate, bounds)
    d = surrogate.grid.size
    placeholder = _Objective(surrogate, np.full(d, 0.2), np.ones(d), lo, hi, "numpy")  # only its map of u is used
    return _bank(surrogate, placeholder, max(n_candidates, n_starts), seed)


# BLAS threads only add overhead on 15-dimensional problems (and L-BFGS-B's own small BLAS calls slow down by
# ~50x on a busy multi-core machine): the calibration runs single-threaded.
@_THREADPOOLS.wrap(limits=1, user_api="blas")
def calibrate(
    surrogate,
    target_iv,
    weights=None,
    bounds=None,
    seed: int = 0,
    n_starts: int = N_STARTS,
    n_candidates: int = N_CANDIDATES,
    maxiter: int | None = None,
    ftol: float = 1e-8,
    gtol: float | None = None,
    backend: str = "numpy",
    x0=None,
    joint: bool = False,
    solver: str = "lsq",
    observe=None,
) -> CalibrationResult:
    r"""Calibrate the 15 raw inputs to one target surface on the surrogate's grid.

    Parameters
    ----------
    surrogate : qrh_lib.surrogate.QRHSurrogate
    target_iv : array_like, shape (d,)
        Target implied vols (vol units) on the surrogate's grid, flat and strike-major; NaN marks a missing
        point. Quotes off the grid: :func:`qrh_lib.surrogate.quotes.calibrate_quotes`.
    weights : array_like, shape (d,), optional
        Non-negative weights (e.g. inverse squared bid-ask or MC standard error); default equal.
    bounds : InputBox or array (15, 2), optional
        Search box for the raw inputs; default the surrogate's training box.
    seed : int
        Seeds the bank of candidate starting points.
    n_starts, n_candidates : int
        The solver starts from the best ``n_starts`` of ``n_candidates`` Sobol points (``x0`` replaces the
        last of them if given). With ``solver="lsq"`` the candidates' surfaces are computed once per surrogate
        and kept (the bank); with ``"lbfgsb"`` they are priced for each target.
    maxiter, ftol, gtol :
        ``"lsq"``: the largest number of residual evaluations per start (default 20) and MINPACK's tolerances
        (relative change of the cost and of u, and the gradient's angle; ``gtol`` default 1e-8).
        ``"lbfgsb"``: L-BFGS-B's iterations (default 100) and tolerances (``gtol`` default 1e-6).
    backend : {"numpy", "tf"}
        Gradient engine of ``"lbfgsb"`` (module docstring); ``"lsq"`` always uses the NumPy network.
    joint : bool
        ``"lbfgsb"`` only: optimise all starts as one problem (see the code comment).
    solver : {"lsq", "lbfgsb"}
        ``"lsq"`` (default): Levenberg-Marquardt (MINPACK, through scipy's ``least_squares(method="lm")``) on
        the residuals with their exact Jacobian, the network's by forward mode, the cube's bounds kept by
        :math:`u = \sin v`. ``"lbfgsb"``: L-BFGS-B on the sum of squares with its exact gradient (the previous
        default, kept for comparison).
    observe : callable, optional
        A map from the grid's vols to observed ones with a ``jacobian`` and ``n_quotes``
        (:class:`qrh_lib.surrogate.quotes.QuoteMap`); ``target_iv`` and ``weights`` then have ``n_quotes`` values.
        ``"lsq"`` only; :func:`qrh_lib.surrogate.quotes.calibrate_quotes` builds it.
    """
    maxiter, gtol = _solver_settings(solver, observe, maxiter, gtol)
    t0 = time.perf_counter()
    d, what = (surrogate.grid.size, "target_iv") if observe is None else (observe.n_quotes, "quotes' vols")
    target, w = check_target(target_iv, weights, d, what)
    lo, hi = _bounds_arrays(surrogate, bounds)
    obj = _Objective(surrogate, target, w, lo, hi, backend if solver == "lbfgsb" else "numpy", observe)
    starts_u = _start_points(surrogate, obj, solver, n_starts, n_candidates, seed, x0)
    return _result(surrogate, obj, starts_u, _solve(obj, starts_u, solver, maxiter, ftol, gtol, joint), t0)


def _solver_settings(solver: str, observe, maxiter: int | None, gtol: float | None) -> tuple[int, float]:
    """The solver's evaluation budget and gradient tolerance (its defaults where not given); an unknown solver, or
    quotes seen through ``observe`` by another solver than ``"lsq"``, raise."""
    if solver not in SOLVERS:
        raise ValueError(f"solver = {solver!r} is unknown; allowed: {SOLVERS}")
    if observe is not None and solver != "lsq":
        raise ValueError("quotes seen through `observe` need solver='lsq'")
    return (DEFAULT_MAXITER[solver] if maxiter is None else maxiter,
            DEFAULT_GTOL[solver] if gtol is None else gtol)


def _start_points(surrogate, obj: _Objective, solver: str, n_starts: int, n_candidates: int, seed: int,
                  x0=None) -> np.ndarray:
    """The solver's starting points in u (n_starts, 15): the best ``n_starts`` of ``max(n_candidates, n_starts)``
    candidates (``"lsq"``: the surrogate's bank; ``"lbfgsb"``: uniform points priced now), the first candidate on a
    tie; ``x0``, if given, replaces the last of them and goes first."""
    n_cand = max(n_candidates, n_starts)
    if solver == "lsq":
        U, F = _bank(surrogate, obj, n_cand, seed)
        values = obj.screening_values(F)
    else:
        U = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(n_cand, N_INPUTS))
        values = obj.values(U)
    starts_u = U[np.argsort(values, kind="stable")[:n_starts]]
    if x0 is None:
        return starts_u
    return np.vstack([obj.u_of(x0)[None, :], starts_u[: max(n_starts - 1, 0)]])


@dataclass(frozen=True)
class _Runs:
    """The solver's runs from the starting points: their end points in u (one row per start), iterations summed over
    them, and the scipy result that reports on each start (with L-BFGS-B's ``joint``, the one result of all)."""

    U: np.ndarray
    iterations: int
    results: list


def _solve(obj: _Objective, starts_u: np.ndarray, solver: str, maxiter: int, ftol: float, gtol: float,
           joint: bool) -> _Runs:
    """Run the solver from each starting point (see :func:`calibrate`)."""
    if solver == "lsq":
        runs = [_least_squares(obj, u, maxiter, ftol, gtol) for u in starts_u]
        return _Runs(np.vstack([r.x for r in runs]), int(sum(r.nfev for r in runs)), runs)
    # joint=True runs all starts as one L-BFGS-B problem on the sum of their independent objectives
    # (a batch of n_starts rows costs about one row); it is a little faster at the default tolerances
    # but converges far less tightly, because L-BFGS's curvature pairs mix the starts.
    groups = [starts_u] if joint else [u[None, :] for u in starts_u]
    runs = [
        minimize(obj, g.reshape(-1), jac=True, method="L-BFGS-B", bounds=[(-1.0, 1.0)] * g.size,
                 options={"maxiter": maxiter, "ftol": ftol, "gtol": gtol})
        for g in groups
    ]
    return _Runs(np.vstack([r.x.reshape(-1, N_INPUTS) for r in runs]), int(sum(r.nit for r in runs)),
                 runs * len(starts_u) if joint else runs)


def _result(surrogate, obj: _Objective, starts_u: np.ndarray, runs: _Runs, t0: float) -> CalibrationResult:
    """The best run as a :class:`CalibrationResult` (inputs checked against the surrogate's domain), with every
    start's summary; ``t0`` the calibration's start time."""
    f_starts = obj.values(runs.U)
    best = int(np.argmin(f_starts))
    res = runs.results[best]
    x = obj.x_of(runs.U[best])
    if not surrogate.domain.contains(x)[0]:  # only where bounds fix a above the domain's feedback range
        surrogate.domain.check(x[None, :], what="calibrated x")
    iv = surrogate.numpy_net.forward(surrogate.scale_inputs(x)[None, :])[0]
    fit_pts = float(np.sqrt(2.0 * f_starts[best]))
    starts = tuple(
        {"x": obj.x_of(u).tolist(), "x0": obj.x_of(u0).tolist(), "fit_rmse_pts": float(np.sqrt(2.0 * f))}
        for u, u0, f in zip(runs.U, starts_u, f_starts, strict=True)
    )
    return CalibrationResult(
        x=x,
        fit_rmse=fit_pts / VOL_POINTS,
        fit_rmse_pts=fit_pts,
        iv=iv,
        iterations=runs.iterations,
        n_evaluations=obj.n_eval,
        seconds=time.perf_counter() - t0,
        success=bool(res.success),
        message=str(res.message),
        starts=starts,
    )


def _least_squares(obj: _Objective, u0, maxiter, ftol, gtol):
    r"""Levenberg-Marquardt (MINPACK, scipy's ``least_squares(method="lm")``) from ``u0``, the cube's bounds kept by
    the change of variables :math:`u = \sin v` (as in MINUIT): unconstrained in v, every v is a point of the cube,
    and a bound is reached where :math:`\cos v = 0`. Residuals and Jacobian come from one forward-mode pass (the
    Jacobian asked for at the last residuals' point is reused).

    MINPACK sees one variable more than the 15, whose Jacobian column is zero (:data:`_PAD_COLUMNS`): SciPy's
    MINPACK (its C translation; SciPy 1.17.1 here) reads one value past the end of its Jacobian buffer when its
    pivoted QR (``qrfac``) recomputes the norm of the last column, which it does when that column has become nearly
    dependent on the others; with the PCA head the Jacobian has rank at most K < 15 (module docstring), so this
    happens. The value read is leftover heap memory, so the same start could end at different inputs from one call
    to the next (scipy/scipy#23612, fixed upstream by scipy/scipy#24323). A zero last column is never pivoted and
    its norm is never recomputed, so every read stays inside the buffer; its variable stays exactly 0 (MINPACK scales
    a zero column by 1), so it adds nothing to the step or to its bound.
    """
    n = u0.size
    last = {}

    def fun(w):
        v = w[:n]
        r, J = obj.residuals_and_jacobian(np.sin(v))
        Jw = np.zeros((J.shape[0], n + _PAD_COLUMNS))
        Jw[:, :n] = J * np.cos(v)
        last["w"], last["J"] = w.copy(), Jw
        return r

    def jac(w):
        if not np.array_equal(w, last.get("w")):
            fun(w)
        return last["J"]

    w0 = np.concatenate([np.arcsin(np.clip(u0, -1.0, 1.0)), np.zeros(_PAD_COLUMNS)])
    res = least_squares(fun, w0, jac=jac, method="lm", ftol=ftol, xtol=ftol, gtol=gtol, max_nfev=maxiter)
    res.x = np.sin(res.x[:n])
    return res


#: Zero Jacobian columns appended to the least-squares problem, so that MINPACK's last column is never a real one
#: (see :func:`_least_squares`).
_PAD_COLUMNS = 1


def calibrate_many(surrogate, targets, weights=None, seed: int = 0, **kwargs) -> list[CalibrationResult]:
    """:func:`calibrate` each row of ``targets`` (n, d), all with the same ``seed`` (hence one candidate bank, built
    before the first, so that every ``seconds`` is a calibration's own); ``weights`` (d,) or (n, d)."""
    targets = np.atleast_2d(np.asarray(targets, np.float64))
    W = None if weights is None else np.broadcast_to(np.asarray(weights, np.float64), targets.shape)
    if kwargs.get("solver", "lsq") == "lsq":
        candidate_bank(surrogate, kwargs.get("bounds"), seed, kwargs.get("n_candidates", N_CANDIDATES),
                       kwargs.get("n_starts", N_STARTS))
    return [
        calibrate(surrogate, t, weights=None if W is None else W[i], seed=seed, **kwargs)
        for i, t in enumerate(targets)
    ]


def noisy_targets(targets, iv_se, seed: int = 0) -> np.ndarray:
    """``targets`` plus independent Gaussian noise of standard deviation ``iv_se`` (broadcast to them; a NaN standard
    error adds none): surfaces with the noise of Monte Carlo labels of that standard error."""
    t = np.asarray(targets, np.float64)
    se = np.nan_to_num(np.broadcast_to(np.asarray(iv_se, np.float64), t.shape))
    return t + np.random.default_rng(seed).standard_normal(t.shape) * se


def input_jacobian(surrogate, x, bounds=None) -> np.ndarray:
    r"""Jacobian :math:`\partial \hat\sigma / \partial u` in vol points per unit of the scaled input
    :math:`u \in [-1, 1]` (see module docstring), shape (d, 15), at raw inputs ``x`` (15,)."""
    lo, hi = _bounds_arrays(surrogate, bounds)
    net = surrogate.numpy_net
    d = surrogate.grid.size
    cache = []
    net.forward(np.repeat(surrogate.scale_inputs(np.asarray(x, np.float64))[None, :], d, axis=0), cache)
    J = net.vjp(np.eye(d), cache)  # row j: gradient of output j w.r.t. scaled network inputs
    return VOL_POINTS * J * (surrogate.x_scale * (hi - lo) / 2.0)[None, :]


def identifiability(surrogate, x, bounds=None, rel_tol: float = 1e-3) -> dict:
    """Singular values of :func:`input_jacobian`, its numerical rank (singular values above
    ``rel_tol`` times the largest) and each input's sensitivity (column norm, vol points per unit u)."""
    J = input_jacobian(surrogate, x, bounds)
    sv = np.linalg.svd(J, compute_uv=False)
    return {"singular_values": sv, "rank": int(np.sum(sv > rel_tol * sv[0])), "sensitivity": np.linalg.norm(J, axis=0)}


def fit_rmse_pts(iv, target_iv, weights=None):
    """Weighted RMS distance in vol points between vols ``iv`` and ``target_iv`` (each (d,) or (n, d), broadcast;
    ``weights`` default equal), over the points where both are finite and the weight positive: a float for one pair
    of surfaces, else one per row (NaN where no point counts)."""
    iv, t = np.broadcast_arrays(np.asarray(iv, np.float64), np.asarray(target_iv, np.float64))
    w = np.ones(t.shape) if weights is None else np.broadcast_to(np.asarray(weights, np.float64), t.shape)
    ok = np.isfinite(iv) & np.isfinite(t) & (w > 0)
    w = np.where(ok, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = VOL_POINTS * np.sqrt(np.sum(w * np.where(ok, iv - t, 0.0) ** 2, axis=-1) / np.sum(w, axis=-1))
    return float(out) if out.ndim == 0 else out


def round_trip_fit(x, target_iv, price_fn, weights=None) -> dict:
    """Price calibrated inputs ``x`` with another engine (``price_fn(X) -> (n, d)`` vols, e.g. the MC
    pricer) and report the weighted RMS fit to the target in vol points (:func:`fit_rmse_pts`)."""
    iv = np.asarray(price_fn(np.atleast_2d(x)), np.float64).reshape(-1)
    t = np.asarray(target_iv, np.float64).reshape(-1)
    w = np.ones_like(t) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    n = int(np.sum(np.isfinite(t) & np.isfinite(iv) & (w > 0)))
    return {"fit_rmse_pts": fit_rmse_pts(iv, t, w), "n_points": n, "iv": iv}
