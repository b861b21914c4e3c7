"""The pricer's settings, one place for each: the Monte Carlo engine's (:class:`MCConfig`) and a dataset's
(:class:`GenerationConfig`, which holds the engine's overrides). Light to import: no TensorFlow."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from ..data import SAMPLERS
from ..domain import DOMAINS, STABILITY_MARGIN, Domain
from ..grid import SPX_GRIDS, VIX_GRIDS, Grid, default_grid, grid_from
from ..params import BOXES, N_FACTORS, InputBox, strict_from_dict
from .kernel import ALPHA, DEFAULT_SCHEME, SCHEMES

#: Identifies the engine's numerics (the factor step itself is MCConfig.scheme); datasets record it in their key,
#: so it must change whenever the engine's numbers change.
SCHEME = "factors-by-MCConfig.scheme/log-euler-spot/2-normals/xla-loop/hedge-stops-at-expiry"


#: The SPX labels' estimator (qrh_lib.pricer.pricing.surface_from_paths, errors="robust"): where fewer pairs pay than
#: MIN_PAYING_PAIRS, in the model or in its Black-Scholes twin, the count noise gets PSEUDO_HITS more hits, and where
#: moreover a pair's leverage in the regression exceeds MAX_LEVERAGE, the spot is the only control. Measured on the
#: truth set's 256 states at 512-4,096 paths (benchmarks/standard_errors.py): with 20 pairs, no point outside the
#: heavy-tailed states lies beyond 6 standard errors at 1,024 and 4,096 paths; a Poisson count h of mean lambda
#: keeps (h - lambda) / sqrt(h + 9) > -4 unless h <= 2 with lambda >= 16, a chance of about 1e-5; the leverage rule
#: keeps the full regression's accuracy on the other few-pair points (spot alone everywhere there: RMS error 1.34
#: against 1.14 vol points at 1,024 paths).
MIN_PAYING_PAIRS = 20
PSEUDO_HITS = 9
MAX_LEVERAGE = 0.5
#: The labels' standard errors by default (surface_from_paths' ``errors``): "classic" until the truth sets are
#: re-priced with "robust" (which changes 9 of 240 truth values by up to 1.05 vol points on the 4 states checked);
#: datasets carry SPX_ESTIMATOR in their key only with "robust", so the committed truth sets keep their keys.
LABEL_ERRORS = "classic"
#: Identifies how the SPX labels are estimated from the paths with errors="robust"; then part of every dataset key.
SPX_ESTIMATOR = (f"regression-cv/jackknife-se/below-{MIN_PAYING_PAIRS}-paying-pairs-{PSEUDO_HITS}-pseudo-hits-and-"
                 f"spot-only-above-leverage-{MAX_LEVERAGE:g}")


#: Identifies how VIX labels are computed from the paths (qrh_lib.pricer.vix); part of the key of datasets with them.
VIX_SCHEME = "quadratic-form-of-the-factors/30-day-window/cv-spot-martingale/strikes-on-the-estimated-future"


@dataclass(frozen=True)
class MCConfig:
    """Settings of the Monte Carlo engine; the defaults are the accuracy-qualified ones (see the
    convergence study in ``benchmarks/convergence.py``)."""

    n_paths: int = 24_576  # paths per parameter set (antithetic pairs count twice)
    steps_per_year: int = 730  # step density after the fine start, steps per year
    first_step: float = 5e-6  # first time step, years
    grading: float = 0.005  # in the fine start, step = max(first_step, grading * t)
    fine_until: float | None = None  # after this time (years) the step grows by late_grading (None: never)
    late_grading: float = 0.02  # step = max(first_step, late_grading * t) after fine_until
    scheme: str = DEFAULT_SCHEME  # factor step: "implicit" (Rosenbaum & Zhang) or "etd" (exact linear part)
    steps_per_hedge: int = 32  # steps between rebalancing dates of the delta-hedge control (0: no hedge)
    antithetic: bool = True  # antithetic pairs (xi, -xi)
    q_cap: float = 400.0  # cap on (Z - b)^2 (Rosenbaum & Zhang's footnote); never reached in the RZ box
    batch_size: int = 8  # parameter sets simulated together
    memory_budget_gb: float = 4.0  # a batch whose arrays would exceed this is refused (GB; not part of any key)
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
        if not 0 <= self.late_grading <= 1:
            raise ValueError(f"late_grading = {self.late_grading} is outside its allowed range [0, 1]")
        if self.fine_until is not None and not self.fine_until > 0:
            raise ValueError(f"fine_until = {self.fine_until} must be > 0 years (or None)")
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme = {self.scheme!r} is unknown; allowed: {SCHEMES}")
        if self.steps_per_hedge < 0:
            raise ValueError(f"steps_per_hedge = {self.steps_per_hedge} must be >= 0 (0: no hedge control)")
        if self.batch_size < 1:
            raise ValueError(f"batch_size = {self.batch_size} must be >= 1")
        if not self.memory_budget_gb > 0:
            raise ValueError(f"memory_budget_gb = {self.memory_budget_gb} must be > 0")
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


@dataclass(frozen=True)
class GenerationConfig:
    """What a dataset is made of; its hash names the work in progress and guards reuse."""

    n_samples: int = 2_000  # surfaces to generate (before rejections)
    seed: int = 0  # sampling, Monte Carlo and split seed
    box: str = "rz"  # input box, a key of qrh_lib.params.BOXES
    sampler: str = "sobol"  # "sobol" (scrambled, low-discrepancy) or "uniform"
    domain: str = "stable"  # "stable": the product's domain (qrh_lib.domain); "box": the whole box
    max_feedback_ratio: float = STABILITY_MARGIN  # the stable domain's margin, a <= ratio * a*(lambda, eta)
    shard_size: int = 128  # surfaces per shard file (the unit of resumable work)
    mc: dict = field(default_factory=dict)  # MCConfig overrides (empty: accuracy-qualified defaults)
    grid: dict | str | None = None  # a name of qrh_lib.grid.SPX_GRIDS or Grid.to_dict(); None: the default grid
    vix_grid: dict | str | None = None  # VIX options: a name of qrh_lib.grid.VIX_GRIDS or a dict; None: no VIX

    def __post_init__(self):
        if int(self.n_samples) != self.n_samples or self.n_samples < 10:
            raise ValueError(f"n_samples = {self.n_samples} must be an integer >= 10 (80/10/10 split)")
        if self.box not in BOXES:
            raise ValueError(f"box = {self.box!r} is unknown; allowed: {sorted(BOXES)}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler = {self.sampler!r} is unknown; allowed: {SAMPLERS}")
        if self.domain not in DOMAINS:
            raise ValueError(f"domain = {self.domain!r} is unknown; allowed: {DOMAINS}")
        self.get_domain()  # validates the margin
        if self.shard_size < 1:
            raise ValueError(f"shard_size = {self.shard_size} must be >= 1")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed = {self.seed} must be in [0, 2**63)")
        self.mc_config()  # validates the overrides (unknown keys, ranges)
        grid = self.get_grid()  # validates a name or a dict
        if self.vix_grid is not None:
            grid.maturity_index(self.get_vix_grid().maturities)  # the VIX expiries must be among the SPX grid's

    @classmethod
    def from_dict(cls, d: dict) -> GenerationConfig:
        return strict_from_dict(cls, d, "option(s)")

    def to_dict(self) -> dict:
        return asdict(self)

    def mc_config(self) -> MCConfig:
        return MCConfig.from_dict(self.mc)

    def get_grid(self) -> Grid:
        return default_grid() if self.grid is None else grid_from(self.grid, SPX_GRIDS)

    def get_vix_grid(self) -> Grid | None:
        return None if self.vix_grid is None else grid_from(self.vix_grid, VIX_GRIDS)

    def get_box(self) -> InputBox:
        return BOXES[self.box]

    def get_domain(self) -> Domain:
        return Domain.named(self.get_box(), self.domain, self.max_feedback_ratio)

    def key(self) -> str:
        """Hash of everything that changes the numbers (shard_size does not)."""
        d = self.to_dict()
        d.pop("shard_size")
        if self.domain == "box":
            d.pop("max_feedback_ratio")  # no margin applies to the whole box
        d["scheme"] = SCHEME  # a change of the Monte Carlo scheme changes the numbers
        if LABEL_ERRORS == "robust":
            d["spx_estimator"] = SPX_ESTIMATOR  # and so does a change of the labels' estimator
        d["mc"] = self.mc_config().to_dict()
        for how in ("batch_size", "memory_budget_gb"):  # how the work is done, not what it computes
            d["mc"].pop(how)
        d["grid"] = self.get_grid().to_dict()
        if self.vix_grid is None:
            d.pop("vix_grid")  # datasets without VIX labels keep the keys they had
        else:
            d["vix_grid"] = self.get_vix_grid().to_dict()
            d["vix_scheme"] = VIX_SCHEME
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
