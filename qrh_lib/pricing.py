"""Public path of the Monte Carlo pricer's entry points, which live in :mod:`qrh_lib.pricer.pricing`."""

from .pricer.pricing import SurfaceResult, mc_iv_surface, price_surfaces, time_per_surface

__all__ = ["SurfaceResult", "mc_iv_surface", "price_surfaces", "time_per_surface"]
