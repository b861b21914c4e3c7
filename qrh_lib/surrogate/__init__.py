"""The surrogate: PCA of the surfaces, the network and its loss, training, the predictor, evaluation, calibration.

Modules: :mod:`.pca`, :mod:`.model` (network, loss, their configs), :mod:`.training`, :mod:`.predictor` (the
artifact :class:`QRHSurrogate`), :mod:`.evaluation`, :mod:`.calibration`, :mod:`.quotes`, :mod:`.joint` (SPX and VIX
together), :mod:`.calibration_tables` (tables that judge calibrations), :mod:`.market` (quotes read from an
option-chain file). It imports the top level of :mod:`qrh_lib` only, never the pricer: it learns
from datasets on disk.
"""

from .. import lazy_exports

#: Public name -> the module that defines it (imported on first use).
_PUBLIC = {
    "CalibrationResult": "calibration",
    "DropReport": "market",
    "JointSurrogate": "joint",
    "MarketQuotes": "market",
    "NumpyResMLP": "predictor",
    "QRHSurrogate": "predictor",
    "Quotes": "quotes",
    "TrainConfig": "config",
    "calibrate": "calibration",
    "calibrate_joint": "joint",
    "calibrate_joint_many": "joint",
    "calibrate_joint_quotes": "joint",
    "calibrate_many": "calibration",
    "calibrate_quotes": "quotes",
    "candidate_bank": "calibration",
    "fit_at_quotes": "calibration_tables",
    "fit_by_expiry": "market",
    "fit_rmse_pts": "calibration",
    "fit_svi": "market",
    "identifiability_table": "calibration_tables",
    "inputs_table": "calibration_tables",
    "joint_fit_at_quotes": "calibration_tables",
    "joint_fit_table": "calibration_tables",
    "keep_in_span": "market",
    "known_states_table": "calibration_tables",
    "load_market_quotes": "market",
    "load_quotes": "market",
    "noisy_targets": "calibration",
    "quotes_from_surface": "quotes",
    "recovery_table": "calibration_tables",
    "select_expiries": "market",
    "svi_summary": "market",
    "thin_strikes": "market",
    "train_from_folder": "training",
    "train_surrogate": "training",
    "vols_at_quotes": "quotes",
}
__all__ = sorted(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
