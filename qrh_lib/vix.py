"""Public path of the VIX pricer's entry points, which live in :mod:`qrh_lib.pricer.vix`."""

from .pricer.vix import VixResult, mc_vix_surface, price_spx_vix, rz_vix_grid, vix_grid

__all__ = ["VixResult", "mc_vix_surface", "price_spx_vix", "rz_vix_grid", "vix_grid"]
