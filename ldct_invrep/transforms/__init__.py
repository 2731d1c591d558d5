"""MONAI transforms: HU windowing (invertible), low-dose CT simulation, reference-noise blending, natural-image noise."""

from .crop import center_crop
from .lowdose.dictionary import RandSimulateLowDosed
from .lowdose.simulate import simulate_low_dose
from .noise import RandBlindGaussianNoised, RandPoissonNoised, add_poisson_noise
from .reference_noise import ReferenceNoiseBlendd
from .windowing import (
    NETWORK_HU_RANGE,
    NETWORK_RANGE,
    WINDOWS,
    HUWindowd,
    RestoreOutsideWindowd,
    hu_to_net,
    keep_outside_window,
    net_to_hu,
    window_from_level_width,
    window_from_name_or_range,
)

__all__ = [
    "NETWORK_HU_RANGE",
    "NETWORK_RANGE",
    "WINDOWS",
    "HUWindowd",
    "RandBlindGaussianNoised",
    "RandPoissonNoised",
    "RandSimulateLowDosed",
    "ReferenceNoiseBlendd",
    "RestoreOutsideWindowd",
    "add_poisson_noise",
    "center_crop",
    "hu_to_net",
    "keep_outside_window",
    "net_to_hu",
    "simulate_low_dose",
    "window_from_level_width",
    "window_from_name_or_range",
]
