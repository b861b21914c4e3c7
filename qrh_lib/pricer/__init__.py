"""The pricer: the 10-factor QRH model, its Monte Carlo engine and estimators, exact checks, datasets, truth set.

Modules: :mod:`.kernel` (the factor approximation of the fractional kernel), :mod:`.moments` (exact first and
second moments of the factors), :mod:`.mc` (the engine), :mod:`.mc_numpy` (its NumPy reference),
:mod:`.pricing` (estimators and implied-vol surfaces), :mod:`.checks` (the model's exact limits),
:mod:`.convergence` (time-step bias), :mod:`.generate` (datasets), :mod:`.truth` (the truth set),
:mod:`.published` (published parameter sets). It imports the top level of :mod:`qrh_lib` only.
"""

from .generate import GenerationConfig, dataset_dir, generate_dataset
from .mc import SCHEME, MCConfig, QRHEngine
from .pricing import SurfaceResult, mc_iv_surface, price_surfaces, price_with_engine, time_per_surface
from .truth import load_truth_set

__all__ = ["SCHEME", "GenerationConfig", "MCConfig", "QRHEngine", "SurfaceResult", "dataset_dir",
           "generate_dataset", "load_truth_set", "mc_iv_surface", "price_surfaces", "price_with_engine",
           "time_per_surface"]
