"""Monte Carlo pricer and deep-learning surrogate of the quadratic rough Heston model.

The layout follows the import graph; nothing imports upwards:

- top level, shared by all: :mod:`~qrh_lib.grid` (strikes and maturities), :mod:`~qrh_lib.params` (the 15
  inputs, their boxes), :mod:`~qrh_lib.domain` (the stable domain), :mod:`~qrh_lib.iv` (Black-Scholes, implied
  vols, vol points), :mod:`~qrh_lib.paths`, :mod:`~qrh_lib.data` (the input design and dataset folders),
  :mod:`~qrh_lib.artifacts` (atomic writes, version records), :mod:`~qrh_lib.progress`, :mod:`~qrh_lib.synthetic`;
- :mod:`qrh_lib.pricer`: the factor model and its Monte Carlo engine, the estimators, the exact checks, dataset
  generation and the truth set; it imports only the top level;
- :mod:`qrh_lib.surrogate`: PCA, the network and its loss, training, the predictor artifact, evaluation and
  calibration; it imports the top level, and of the pricer only the model's theory (below), never the engine;
- :mod:`qrh_lib.workflow`: profiles, the papermill pipeline, run folders, the results page and the book, plots.

The model's exact theory, :mod:`qrh_lib.pricer.kernel` (the factor approximation) and :mod:`qrh_lib.pricer.moments`
(the factors' moments, which decide stability), lives with the pricer that uses it most; the stable domain
(:mod:`qrh_lib.domain`) and the surrogate's checks of it import it too, when called. That is the one link across
the layers (tested in ``tests/test_layout.py``).

Public entry points keep short paths: ``qrh_lib.pricing.mc_iv_surface``, ``qrh_lib.vix.mc_vix_surface``,
``qrh_lib.surrogate.QRHSurrogate`` and ``qrh_lib.calibration.calibrate``.
"""

import os

# TensorFlow's C++ log level, set once here, before any module of the library imports TensorFlow: without it
# every process (kernels, tests, benchmarks) prints oneDNN and CUDA notices. A value set by the user is kept.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def lazy_exports(package: str, names: dict[str, str]):
    """A module ``__getattr__`` (PEP 562) for a subpackage: each public name is imported from its module on first
    use. The subpackages list their public names this way, so that importing one light module of a subpackage
    (its config, say) does not import TensorFlow, and ``python -m`` of a module does not import it twice."""
    import importlib

    def __getattr__(name):
        if name in names:
            return getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
