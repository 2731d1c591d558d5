"""Noise, edge sharpness and HU level of CT images: what PSNR and SSIM average away.

A denoiser can win on PSNR by blurring: the noise power spectrum shows which spatial frequencies of the
noise it removed (a blurring one removes the high ones and leaves a blotchy low-frequency texture), the
edge rise distance whether edges kept their steepness, and the mean HU in a region whether tissue kept
its level. numpy has no NPS or edge-spread routine and MONAI's metrics are global, hence this module.

On a region or profile the user picks (notebooks, reports; a region of interest is ``(row, col, height,
width)`` in pixels, as in :mod:`ldct_invrep.viz`):

* :func:`noise_power_spectrum`: the 2D NPS of a region, ``NPS(u, v) = dx dy / (Nx Ny) |DFT(r - plane)|^2``
  with a least-squares plane removed first (the standard estimator, ICRU Report 87 / AAPM TG-233), averaged
  over rings of radial frequency; its integral over frequency is the region's variance.
* :func:`edge_rise_distance_mm`: the 10-90 % rise distance of an edge profile (edge spread function).
* :func:`roi_mean_bias`: mean HU of a region minus the reference's.

Without a reference, on masks found in the input slice itself (the guard rails of ``ldct-invrep adapt``,
:func:`quality_figures`): the PSNR of a model cannot be measured without full dose, but what a denoiser
must do and must not do can: lower the noise (std in flat fat and soft tissue,
:func:`~ldct_invrep.transforms.lowdose.noise_level` on :func:`~ldct_invrep.transforms.lowdose.flat_tissue_mask`),
keep edges (mean gradient where the input has structure edges, :func:`edge_sharpness`) and keep the HU level
(mean over the same soft-tissue pixels; noise is zero-mean, so the input's mean there is the reference).
The masks (:func:`slice_masks`) come from the input slice and are shared by every image compared on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ldct_invrep.errors import InputError
from ldct_invrep.transforms.lowdose.scan_noise import MIN_FLAT_PIXELS, flat_tissue_mask, noise_level

__all__ = [
    "EDGE_PERCENTILE",
    "QualityFigures",
    "SliceMasks",
    "edge_mask",
    "edge_rise_distance_mm",
    "edge_sharpness",
    "noise_power_spectrum",
    "quality_figures",
    "roi_mean_bias",
    "slice_masks",
]


def _roi(image: Any, roi: Sequence[int]) -> np.ndarray:
    r, c, h, w = (int(v) for v in roi)
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim != 2 or r < 0 or c < 0 or h < 4 or w < 4 or r + h > arr.shape[0] or c + w > arr.shape[1]:
        raise InputError(f"roi {tuple(roi)}: not a region of at least 4 x 4 pixels inside an image of shape {arr.shape}")
    return arr[r : r + h, c : c + w]


def noise_power_spectrum(image: Any, roi: Sequence[int], pixel_mm: float, n_bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(frequency [1/mm], NPS [HU^2 mm^2])``: the radially averaged noise power spectrum of ``roi`` of a 2D
    HU ``image`` with square pixels of ``pixel_mm``, a fitted plane (mean and tilt) removed first. Frequencies
    run up to the Nyquist frequency ``1 / (2 pixel_mm)`` in ``n_bins`` rings (default: half the ROI's smaller
    side); zero frequency, which the plane fit empties, is left out."""
    region = _roi(image, roi)
    h, w = region.shape
    yy, xx = np.mgrid[:h, :w]
    design = np.stack([np.ones(h * w), yy.ravel(), xx.ravel()], axis=1)
    coef, *_ = np.linalg.lstsq(design, region.ravel(), rcond=None)
    noise = region - (design @ coef).reshape(h, w)
    nps2d = np.abs(np.fft.fftshift(np.fft.fft2(noise))) ** 2 * (pixel_mm * pixel_mm) / (h * w)
    fy = np.fft.fftshift(np.fft.fftfreq(h, d=pixel_mm))
    fx = np.fft.fftshift(np.fft.fftfreq(w, d=pixel_mm))
    radius = np.hypot(*np.meshgrid(fy, fx, indexing="ij"))
    nyquist = 0.5 / pixel_mm
    bins = int(n_bins or min(h, w) // 2)
    edges = np.linspace(0.0, nyquist, bins + 1)
    which = np.digitize(radius.ravel(), edges) - 1
    keep = (which >= 0) & (which < bins) & (radius.ravel() > 0)  # the plane fit leaves nothing at zero frequency
    sums = np.bincount(which[keep], weights=nps2d.ravel()[keep], minlength=bins)
    counts = np.bincount(which[keep], minlength=bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    return centres[counts > 0], sums[counts > 0] / counts[counts > 0]


def edge_rise_distance_mm(profile: Any, pixel_mm: float, plateau: float = 0.2) -> float:
    """10-90 % rise distance (mm) of an edge ``profile`` sampled every ``pixel_mm``: the levels on each side
    are the means of its first and last ``plateau`` fraction of samples; the crossings of 10 % and 90 % of the
    step are found by linear interpolation from the low side. NaN when the profile has no clear step."""
    p = np.asarray(profile, dtype=np.float64)
    k = max(1, int(round(plateau * len(p))))
    lo, hi = p[:k].mean(), p[-k:].mean()
    if abs(hi - lo) < 1e-6 or len(p) < 2 * k + 2:
        return float("nan")
    t = (p - lo) / (hi - lo)  # rises from ~0 to ~1 whichever way the edge goes

    def crossing(level: float) -> float:
        above = np.flatnonzero(t >= level)
        if not len(above) or above[0] == 0:
            return float("nan")
        i = above[0]
        return (i - 1) + (level - t[i - 1]) / (t[i] - t[i - 1])

    return float((crossing(0.9) - crossing(0.1)) * pixel_mm)


def roi_mean_bias(image: Any, reference: Any, roi: Sequence[int]) -> float:
    """Mean HU of ``roi`` in ``image`` minus that in ``reference`` (a denoiser should keep tissue levels)."""
    return float(_roi(image, roi).mean() - _roi(reference, roi).mean())


# --------------------------------------------------------------------------------------------- no reference
#: Edge pixels: the top (100 - EDGE_PERCENTILE) % of the smoothed input's gradient inside the body.
EDGE_PERCENTILE = 98.0
#: Gaussian sigma (pixels) of the smoothing that finds edges (structure, not noise) in the input.
EDGE_FIND_SIGMA = 2.0
#: Gaussian sigma (pixels) before the gradient that is measured (keeps pixel noise from dominating it).
EDGE_MEASURE_SIGMA = 1.0


def _gradient(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gradient magnitude (HU per pixel) of ``image`` smoothed by a Gaussian of ``sigma`` pixels."""
    return ndimage.gaussian_gradient_magnitude(np.asarray(image, dtype=np.float64), sigma)


def edge_mask(hu: np.ndarray) -> np.ndarray:
    """Structure edges of a slice: inside the body (HU > -500, holes filled, eroded 10 pixels: not the skin
    line), the pixels whose gradient at sigma ``EDGE_FIND_SIGMA`` is in the top 2 %."""
    img = np.asarray(hu, dtype=np.float64)
    body = ndimage.binary_erosion(ndimage.binary_fill_holes(img > -500.0), iterations=10)
    if not body.any():
        return body
    grad = _gradient(img, EDGE_FIND_SIGMA)
    return body & (grad >= np.percentile(grad[body], EDGE_PERCENTILE))


def edge_sharpness(image: np.ndarray, mask: np.ndarray, pixel_spacing_mm: float = 1.0) -> float:
    """Mean gradient magnitude (HU/mm, at sigma ``EDGE_MEASURE_SIGMA``) of ``image`` over the edge ``mask``:
    blurring lowers it. NaN for an empty mask."""
    values = _gradient(image, EDGE_MEASURE_SIGMA)[np.asarray(mask, dtype=bool)]
    return float(values.mean() / pixel_spacing_mm) if values.size else float("nan")


@dataclass
class SliceMasks:
    """The input slice's soft-tissue and edge masks and its pixel spacing."""

    tissue: np.ndarray
    edges: np.ndarray
    pixel_spacing_mm: float

    @property
    def usable(self) -> bool:
        """Enough flat soft tissue (``MIN_FLAT_PIXELS``) to measure noise and HU level."""
        return int(self.tissue.sum()) >= MIN_FLAT_PIXELS


def slice_masks(hu: np.ndarray, pixel_spacing_mm: float = 1.0) -> SliceMasks:
    return SliceMasks(flat_tissue_mask(hu), edge_mask(hu), float(pixel_spacing_mm))


@dataclass
class QualityFigures:
    """Figures of one image set on given masks: noise std (HU), edge sharpness (HU/mm), soft-tissue mean (HU)."""

    noise_hu: float
    edge_hu_per_mm: float
    soft_tissue_hu: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 3) for k, v in asdict(self).items()}


def quality_figures(images: Sequence[np.ndarray], masks: Sequence[SliceMasks]) -> QualityFigures:
    """Noise and edge sharpness averaged over the slices, soft-tissue mean HU pooled over all mask pixels."""
    if len(images) != len(masks) or not images:
        raise ValueError(f"quality_figures: {len(images)} images for {len(masks)} masks")
    noise = [noise_level(im, m.tissue) for im, m in zip(images, masks)]
    edges = [edge_sharpness(im, m.edges, m.pixel_spacing_mm) for im, m in zip(images, masks)]
    values = np.concatenate([np.asarray(im, dtype=np.float64)[m.tissue] for im, m in zip(images, masks)])
    soft = float(values.mean()) if values.size else float("nan")
    return QualityFigures(float(np.nanmean(noise)), float(np.nanmean(edges)), soft)
