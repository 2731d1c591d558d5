"""Noise samples of the clean domain Y: the quantum noise a normal-dose scan carries, with its scanner's texture.

Normal-dose CT is not noise-free, so LIR's "clean" domain Y is itself a measurement ``y = s + e`` of the
anatomy ``s``. A domain discriminator D_Y that learns "clean" from such scans asks the clean generator G_Y for
images *with* that grain, which G_Y can only invent (docs/shipped_weights.md, "Where the model loses to
BM3D"). With samples of ``e`` the objective can instead show D_Y the translation measured the same way,
``x2y + e'`` (``losses.LIRObjective``, ``clean_noise``), whose optimum is the noise-free image: the
measurement model of AmbientGAN (Bora, Price and Dimakis, ICLR 2018) applied to LIR's Y domain.

The samples come from the training cache's own simulated pairs, no new simulation: a noisy copy at dose
fraction ``f`` of its slice's own dose is ``x = y + n`` with ``var(n) = sigma_e^2 (1/f - 1)`` (dose-relative
projection-domain noise insertion calibrated so that the full dose has the slice's own noise), so
``(x - y) sqrt(f / (1 - f))`` has the normal dose's variance and the scanner's projection-domain texture.
Only copies at ``f >= min_fraction`` (default 0.2) are used: at lower doses photon starvation makes the
difference grow faster than ``sqrt(1/f - 1)`` (on the sample series the scaled soft-tissue noise is 16-17 HU
from f = 0.2 to 0.5 and 18-20 HU at f = 0.05-0.1). Only the body (pixels of the normal-dose slice above
``AIR_THRESHOLD_HU``) keeps its noise; the map is cropped to the body's bounding box so that random patches
of it hold noise. Not in MONAI: it reads the cache of :mod:`ldct_invrep.data.ct_cache`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ldct_invrep.data.ct_cache import iter_simulated_training_pairs
from ldct_invrep.data.datasets import AIR_THRESHOLD_HU
from ldct_invrep.errors import InputError
from ldct_invrep.transforms.windowing import NETWORK_HU_RANGE, hu_to_net

__all__ = ["clean_domain_noise", "noise_at_own_dose"]


def noise_at_own_dose(noisy_hu: np.ndarray, clean_hu: np.ndarray, fraction: float, min_size: int = 64) -> np.ndarray:
    """``(noisy - clean) sqrt(f / (1 - f))`` in network units over the body's bounding box (at least
    ``min_size`` pixels a side where the slice allows), zero outside the body."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"dose fraction must be in (0, 1), got {fraction}")
    noise = (hu_to_net(noisy_hu) - hu_to_net(clean_hu)) * np.float32(math.sqrt(fraction / (1.0 - fraction)))
    body = clean_hu > AIR_THRESHOLD_HU
    noise = np.where(body, noise, np.float32(0.0)).astype(np.float32)
    rows, cols = np.flatnonzero(body.any(axis=1)), np.flatnonzero(body.any(axis=0))
    if rows.size == 0:
        return noise
    return noise[_span(rows, noise.shape[0], min_size), _span(cols, noise.shape[1], min_size)]


def _span(index: np.ndarray, length: int, min_size: int) -> slice:
    """``index``'s range, widened about its centre to ``min_size`` (within ``length``)."""
    lo, hi = int(index[0]), int(index[-1]) + 1
    size = max(hi - lo, min(min_size, length))
    start = min(max(0, lo - (size - (hi - lo)) // 2), length - size)
    return slice(start, start + size)


def clean_domain_noise(path: str | Path, min_fraction: float = 0.2, min_size: int = 64) -> list[np.ndarray]:
    """One noise map (:func:`noise_at_own_dose`) per simulated training copy of the cache ``path`` at a dose
    fraction of at least ``min_fraction`` (``data.ct_cache.iter_simulated_training_pairs``)."""
    maps: list[np.ndarray] = []
    for pair in iter_simulated_training_pairs(path):
        if pair.dose_fraction is None:
            raise InputError(f"{path}: {pair.name}: the cache records no dose fractions (rebuild it) to scale its noise by")
        if pair.dose_fraction >= min_fraction:
            y = np.clip(pair.clean, *NETWORK_HU_RANGE)
            maps.append(noise_at_own_dose(pair.noisy, y, pair.dose_fraction, min_size))
    if not maps:
        raise InputError(f"{path}: no simulated training pair at a dose fraction >= {min_fraction} to take clean-domain noise from")
    return maps
