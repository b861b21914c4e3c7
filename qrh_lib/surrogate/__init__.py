"""The surrogate: PCA of the surfaces, the network and its loss, training, the predictor, evaluation, calibration.

Modules: :mod:`.pca`, :mod:`.model` (network, loss, their configs), :mod:`.training`, :mod:`.predictor` (the
artifact :class:`QRHSurrogate`), :mod:`.evaluation`, :mod:`.calibration`, :mod:`.quotes`, :mod:`.market` (quotes
read from an option-chain file). It imports the top level of :mod:`qrh_lib` only, never the pricer: it learns
from datasets on disk.
"""

from .. import lazy_exports

#: Public name -> the module that defines it (imported on first use).
_PUBLIC = {
    "CalibrationResult": "calibration",
    "DropReport": "market",
    "MarketQuotes": "market",
    "NumpyResMLP": "predictor",
    "QRHSurrogate": "predictor",
    "TrainConfig": "config",
    "calibrate": "calibration",
    "calibrate_many": "calibration",
    "fit_by_expiry": "market",
    "fit_svi": "market",
    "keep_in_span": "market",
    "load_market_quotes": "market",
    "load_quotes": "market",
    "select_expiries": "market",
    "svi_summary": "market",
    "thin_strikes": "market",
    "train_from_folder": "training",
    "train_surrogate": "training",
}
__all__ = sorted(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
