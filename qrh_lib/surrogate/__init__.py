"""The surrogate: PCA of the surfaces, the network and its loss, training, the predictor, evaluation, calibration.

Modules: :mod:`.pca`, :mod:`.model` (network, loss, their configs), :mod:`.training`, :mod:`.predictor` (the
artifact :class:`QRHSurrogate`), :mod:`.evaluation`, :mod:`.calibration`, :mod:`.quotes`. It imports the top
level of :mod:`qrh_lib` only, never the pricer: it learns from datasets on disk.
"""

from .calibration import CalibrationResult, calibrate, calibrate_many
from .predictor import NumpyResMLP, QRHSurrogate
from .training import TrainConfig, train_from_folder, train_surrogate

__all__ = ["CalibrationResult", "NumpyResMLP", "QRHSurrogate", "TrainConfig", "calibrate", "calibrate_many",
           "train_from_folder", "train_surrogate"]
