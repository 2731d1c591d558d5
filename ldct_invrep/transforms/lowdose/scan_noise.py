"""A CT slice's own noise, as dose-relative low-dose simulation and blind denoisers measure it.

The statistic: the standard deviation in 9x9 windows of the image minus its Gaussian smoothing (sigma 1
pixel), over flat soft tissue (:func:`flat_tissue_mask`: fat or soft tissue inside the body, 10 pixels in from
the skin, no air, lung or bone in the window), read at its 25th percentile (anatomy only raises a window's
spread): :func:`local_noise_map`, :func:`noise_level`, :func:`scan_noise_level`. :func:`matched_noise_ratio`
compares a scan's noise with the model's place by place, :func:`series_noise_fallbacks` gives slices with too
little flat soft tissue their series' median (see :mod:`ldct_invrep.transforms.lowdose.simulate`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "MIN_FLAT_PIXELS",
    "flat_tissue_mask",
    "local_noise_map",
    "matched_noise_ratio",
    "noise_level",
    "scan_noise_level",
    "series_noise_fallbacks",
]

#: Window (pixels) and percentile of the local-std noise statistic (:func:`noise_level`).
NOISE_WINDOW = 9
NOISE_PERCENTILE = 25.0
#: Gaussian sigma (pixels) of the smooth image subtracted before the local std: removes slow anatomy.
NOISE_HIGH_PASS_SIGMA = 1.0
#: A slice needs this many flat soft-tissue pixels to measure its own noise.
MIN_FLAT_PIXELS = 2000
#: Gaussian sigma (pixels, ~1 cm) smoothing the probe's local noise variance into the model's noise map.
MODEL_MAP_SIGMA = 10.0


def flat_tissue_mask(hu: np.ndarray, window: int = NOISE_WINDOW, padding: np.ndarray | None = None) -> np.ndarray:
    """Pixels whose ``window`` x ``window`` neighbourhood lies in flat fat or soft tissue inside the body.

    Soft tissue: a 7x7 mean in [-150, 150] HU and the pixel in [-300, 400] HU; inside the body (HU > -500,
    holes filled, eroded 10 pixels: away from the skin and the table); eroded by half a window, so a window
    centred on a mask pixel holds no air, lung or bone. ``padding`` pixels (outside the field of view) never
    count.
    """
    img = np.asarray(hu, dtype=np.float64)
    smooth = ndimage.uniform_filter(img, 7)
    tissue = (smooth > -150.0) & (smooth < 150.0) & (img > -300.0) & (img < 400.0)
    body = ndimage.binary_fill_holes(img > -500.0)
    if padding is not None:
        body &= ~np.asarray(padding, dtype=bool)
    tissue &= ndimage.binary_erosion(body, iterations=10)
    return ndimage.binary_erosion(tissue, iterations=window // 2 + 1)


def local_noise_map(image: np.ndarray, window: int = NOISE_WINDOW) -> np.ndarray:
    """Standard deviation in ``window`` x ``window`` windows of the high-passed image (the image minus its
    Gaussian smoothing of sigma ``NOISE_HIGH_PASS_SIGMA``), per pixel (HU)."""
    img = np.asarray(image, dtype=np.float64)
    img = img - ndimage.gaussian_filter(img, NOISE_HIGH_PASS_SIGMA)
    mean = ndimage.uniform_filter(img, window)
    sq = ndimage.uniform_filter(img * img, window)
    return np.sqrt(np.maximum(sq - mean * mean, 0.0))


def matched_noise_ratio(scan: np.ndarray, probe: np.ndarray, mask: np.ndarray) -> float:
    """Noise of ``scan`` over noise of the model's ``probe``, compared place by place over ``mask``.

    The model's noise varies across the body (highest at the centre: no bowtie filter, no tube-current
    modulation), a scanner's much less, so the 25th percentiles of the two local-noise maps would sit at
    different places (the model's near the skin) and the flux would come out too high for the body's
    interior. Here both maps are divided by the model's expected local noise (the probe's local variance
    smoothed over ``MODEL_MAP_SIGMA`` pixels) and the same statistic, the 25th percentile over ``mask``, is
    read from both quotients: anatomy only raises the scan's, and the percentile's bias (noise fluctuates
    from window to window) is the same in both and cancels.
    """
    m = np.asarray(mask, dtype=bool)
    probe_map = local_noise_map(probe)
    model = np.sqrt(ndimage.gaussian_filter(probe_map**2, MODEL_MAP_SIGMA)) + 1e-12
    scan_q = np.percentile((local_noise_map(scan) / model)[m], NOISE_PERCENTILE)
    probe_q = np.percentile((probe_map / model)[m], NOISE_PERCENTILE)
    return float(scan_q / probe_q)


def noise_level(image: np.ndarray, mask: np.ndarray, window: int = NOISE_WINDOW) -> float:
    """The noise statistic that dose-relative calibration matches: the 25th percentile, over ``mask``, of the
    standard deviation in ``window`` x ``window`` windows (HU).

    Anatomy only raises a window's spread, so a low percentile over flat soft tissue reads the noise; the
    statistic is biased low for correlated (FBP) noise, but :func:`simulate_low_dose` applies the same
    statistic to the scan and to the noise it inserts, so the bias cancels. NaN when the mask is empty.
    """
    local = local_noise_map(image, window)[np.asarray(mask, dtype=bool)]
    return float(np.percentile(local, NOISE_PERCENTILE)) if local.size else float("nan")


def scan_noise_level(hu: np.ndarray, padding: np.ndarray | None = None) -> float | None:
    """:func:`noise_level` of a slice's own noise in flat soft tissue, or None when it has too little of it
    (fewer than ``MIN_FLAT_PIXELS`` mask pixels: lung apex, head, a small field of view)."""
    mask = flat_tissue_mask(hu, padding=padding)
    if int(mask.sum()) < MIN_FLAT_PIXELS:
        return None
    return noise_level(hu, mask)


def series_noise_fallbacks(measured: Sequence[float | None]) -> list[float | None] | None:
    """What each slice of a series passes as ``own_noise_level`` with ``calibration="self"``, from its
    :func:`scan_noise_level` values: None where the slice measured its own (:func:`simulate_low_dose` then
    compares it with the model place by place), the series median of the measured levels where it had too
    little flat soft tissue; None when no slice had any."""
    known = [float(v) for v in measured if v is not None]
    if not known:
        return None
    median = float(np.median(known))
    return [median if v is None else None for v in measured]
