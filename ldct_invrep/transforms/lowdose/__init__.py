"""Projection-domain low-dose CT simulation (noise insertion) for 2D HU slices, one job a module:

* :mod:`~ldct_invrep.transforms.lowdose.simulate`: the model (Yu et al. 2012 noise insertion, the way the Mayo
  2016 quarter-dose data were made), its dose-relative and Mayo calibrations with their measurements, and
  :func:`simulate_low_dose`;
* :mod:`~ldct_invrep.transforms.lowdose.dictionary`: :class:`RandSimulateLowDosed`, the MONAI transform;
* :mod:`~ldct_invrep.transforms.lowdose.fbp`: parallel-beam projection, ramp filters and back projection;
* :mod:`~ldct_invrep.transforms.lowdose.scan_noise`: a slice's own noise in flat soft tissue.

The names below stay importable from ``ldct_invrep.transforms.lowdose`` (the path docs, benchmarks and the
notebook use).
"""

from .dictionary import RandSimulateLowDosed
from .fbp import DEFAULT_FILTER, FBP_FILTERS, back_project, fbp_filter_response, filter_sinogram, line_integrals
from .scan_noise import (
    MIN_FLAT_PIXELS,
    flat_tissue_mask,
    local_noise_map,
    matched_noise_ratio,
    noise_level,
    scan_noise_level,
    series_noise_fallbacks,
)
from .simulate import (
    CALIBRATIONS,
    DEFAULT_ELECTRONIC_NOISE_STD,
    DEFAULT_FILTER_CUTOFF_PER_MM,
    DEFAULT_INCIDENT_FLUX,
    DEFAULT_N_VIEWS,
    MU_WATER_PER_MM,
    insertion_noise_variance,
    self_calibrated_flux,
    simulate_low_dose,
)

__all__ = [
    "CALIBRATIONS",
    "DEFAULT_ELECTRONIC_NOISE_STD",
    "DEFAULT_FILTER",
    "DEFAULT_FILTER_CUTOFF_PER_MM",
    "DEFAULT_INCIDENT_FLUX",
    "DEFAULT_N_VIEWS",
    "FBP_FILTERS",
    "MIN_FLAT_PIXELS",
    "MU_WATER_PER_MM",
    "RandSimulateLowDosed",
    "back_project",
    "fbp_filter_response",
    "filter_sinogram",
    "flat_tissue_mask",
    "insertion_noise_variance",
    "line_integrals",
    "local_noise_map",
    "matched_noise_ratio",
    "noise_level",
    "scan_noise_level",
    "self_calibrated_flux",
    "series_noise_fallbacks",
    "simulate_low_dose",
]
