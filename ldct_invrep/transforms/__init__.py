"""MONAI transforms: HU windowing (invertible), low-dose CT simulation, natural-image noise."""

from .crop import center_crop
from .lowdose import RandSimulateLowDosed, simulate_low_dose
from .noise import RandBlindGaussianNoised, RandPoissonNoised, add_poisson_noise
from .windowing import (
    NETWORK_HU_RANGE,
    NETWORK_RANGE,
    WINDOWS,
    HUWindowd,
    HUWindowInversed,
    hu_to_net,
    net_to_hu,
    window_from_level_width,
    window_from_name_or_range,
)

__all__ = [
    "NETWORK_HU_RANGE",
    "NETWORK_RANGE",
    "WINDOWS",
    "HUWindowInversed",
    "HUWindowd",
    "RandBlindGaussianNoised",
    "RandPoissonNoised",
    "RandSimulateLowDosed",
    "add_poisson_noise",
    "center_crop",
    "hu_to_net",
    "net_to_hu",
    "simulate_low_dose",
    "window_from_level_width",
    "window_from_name_or_range",
]
