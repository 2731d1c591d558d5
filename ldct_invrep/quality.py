"""No-reference checks of a denoised CT slice against its own input: noise in flat soft tissue, sharpness at
structure edges, mean HU of soft tissue (the guard rails of ``ldct-invrep adapt``).

Without a full-dose reference the PSNR of a model cannot be measured, but what a denoiser must do and must
not do can: lower the noise (std in flat fat and soft tissue, :func:`~ldct_invrep.transforms.lowdose.noise_level`
on :func:`~ldct_invrep.transforms.lowdose.flat_tissue_mask`), keep edges (mean gradient where the input has
structure edges) and keep the HU level (mean over the same soft-tissue pixels; noise is zero-mean, so the
input's mean there is the reference). Masks come from the input slice and are shared by every image
compared on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from ldct_invrep.transforms.lowdose import MIN_FLAT_PIXELS, flat_tissue_mask, noise_level

__all__ = [
    "EDGE_PERCENTILE",
    "QualityFigures",
    "SliceMasks",
    "edge_mask",
    "edge_sharpness",
    "quality_figures",
    "slice_masks",
]

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
