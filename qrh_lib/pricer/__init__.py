"""The pricer: the 10-factor QRH model, its Monte Carlo engine and estimators, exact checks, datasets, truth set.

Modules: :mod:`.kernel` (the factor approximation of the fractional kernel), :mod:`.moments` (exact first and
second moments of the factors), :mod:`.mc` (the engine), :mod:`.mc_numpy` (its NumPy reference),
:mod:`.pricing` (estimators and implied-vol surfaces), :mod:`.checks` (the model's exact limits),
:mod:`.convergence` (time-step bias), :mod:`.generate` (datasets), :mod:`.truth` (the truth set),
:mod:`.published` (published parameter sets), :mod:`.vix` (VIX futures and options from the same paths),
:mod:`.mc_calibration` (calibration by Monte Carlo alone, the reference for market fits).
It imports the top level of :mod:`qrh_lib` only.
"""

from .. import lazy_exports

#: Public name -> the module that defines it (imported on first use).
_PUBLIC = {
    "SCHEME": "config",
    "ClusterConfig": "cluster",
    "GenerationConfig": "config",
    "MCConfig": "config",
    "QRHEngine": "mc",
    "SurfaceResult": "pricing",
    "dataset_dir": "generate",
    "generate_dataset": "generate",
    "load_truth_set": "truth",
    "MCFit": "mc_calibration",
    "mc_calibrate": "mc_calibration",
    "mc_iv_surface": "pricing",
    "price_surfaces": "pricing",
    "price_with_engine": "pricing",
    "time_per_surface": "pricing",
    "VixResult": "vix",
    "mc_vix_surface": "vix",
    "price_spx_vix": "vix",
    "vix_grid": "vix",
}
__all__ = sorted(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
