"""Public path of the calibration's entry points, which live in :mod:`qrh_lib.surrogate.calibration`."""

from .surrogate.calibration import CalibrationResult, calibrate, calibrate_many, identifiability

__all__ = ["CalibrationResult", "calibrate", "calibrate_many", "identifiability"]
