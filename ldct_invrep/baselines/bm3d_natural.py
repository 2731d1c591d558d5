"""BM3D baselines of the natural-image tables (paper Tables 1 and 2), grey or colour, on [0, 1] images.

* :func:`bm3d_natural`: BM3D (Dabov et al. 2007) of a grey image, or colour BM3D (CBM3D: the ``bm3d``
  package's ``bm3d_rgb``, block matching on the luminance of the opponent colour transform) of an RGB image.
* :func:`anscombe_bm3d`: "ANSC" of Table 2 (Makitalo & Foi 2011): Anscombe transform, BM3D (colour BM3D for
  RGB) with unit noise, closed-form approximation of the exact unbiased inverse.

Images are ``(H, W)``, ``(1, H, W)`` or ``(3, H, W)`` (channel first, as ``data.noisy_sets`` makes them);
the result has the input's shape, float32, clipped to [0, 1]. The ``bm3d`` package is an optional extra
(non-commercial licence), imported when called.
"""

from __future__ import annotations

import numpy as np
from skimage.restoration import estimate_sigma

from ldct_invrep.baselines.bm3d import _import_bm3d
from ldct_invrep.errors import InputError

__all__ = ["anscombe_bm3d", "bm3d_natural", "infer_poisson_peak"]


def _channels_last(image: np.ndarray) -> np.ndarray:
    """(H, W) or (C, H, W) -> (H, W) for grey, (H, W, 3) for colour (what the ``bm3d`` package takes)."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 2:
        return a
    if a.ndim == 3 and a.shape[0] == 1:
        return a[0]
    if a.ndim == 3 and a.shape[0] == 3:
        return np.moveaxis(a, 0, -1)
    raise InputError(f"BM3D: expected an (H, W), (1, H, W) or (3, H, W) image, got shape {a.shape}")


def _like(result: np.ndarray, image: np.ndarray) -> np.ndarray:
    out = np.asarray(result, dtype=np.float64)
    if out.ndim == 3:
        out = np.moveaxis(out, -1, 0)
    return np.clip(out.reshape(np.shape(image)), 0.0, 1.0).astype(np.float32)


def _bm3d_any(a: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D of a channels-last image: ``bm3d_rgb`` for colour, ``bm3d`` for grey."""
    bm3d = _import_bm3d()
    return np.asarray(bm3d.bm3d_rgb(a, sigma_psd=sigma) if a.ndim == 3 else bm3d.bm3d(a, sigma_psd=sigma))


def bm3d_natural(noisy: np.ndarray, sigma: float | None) -> np.ndarray:
    """BM3D (grey) or colour BM3D (RGB) of ``noisy`` in [0, 1] with noise std ``sigma`` on that scale
    (AWGN of sigma s on 0-255: ``s / 255``); ``None`` estimates it (skimage wavelet MAD, channels averaged)."""
    a = _channels_last(noisy)
    if sigma is None:
        sigma = float(estimate_sigma(a, channel_axis=-1 if a.ndim == 3 else None, average_sigmas=True))
    return _like(_bm3d_any(a, float(sigma)), noisy)


def infer_poisson_peak(x: np.ndarray) -> float:
    """The smallest power of two ``p`` that makes every ``x * p`` an integer (``x = counts / p``, exact for
    scikit-image's Poisson noise before any rounding to 8 bits), up to 2**24."""
    for k in range(25):
        scaled = np.asarray(x, dtype=np.float64) * 2.0**k
        if np.allclose(scaled, np.round(scaled), rtol=0.0, atol=1e-4):
            return 2.0**k
    raise InputError("anscombe_bm3d: cannot infer the Poisson peak (values are not counts / 2**k, e.g. rounded to 8 bits); give peak")


def anscombe_bm3d(noisy: np.ndarray, peak: float | None = None) -> np.ndarray:
    """ANSC (paper Table 2): Anscombe transform ``2 sqrt(counts + 3/8)`` of ``counts = noisy * peak``, BM3D
    (colour BM3D for RGB) with noise std 1, then the closed-form approximation of the exact unbiased inverse
    (Makitalo & Foi 2011), divided by ``peak``.

    ``peak`` is scikit-image's scale (``data.noisy_sets.poisson_peak`` of the clean image: 256 for 8-bit
    images); ``None`` infers it from the values (:func:`infer_poisson_peak`), which works only on noisy
    images not rounded to 8 bits.
    """
    a = _channels_last(noisy)
    if peak is None:
        peak = infer_poisson_peak(a)
    counts = a * float(peak)
    t = 2.0 * np.sqrt(np.maximum(counts, 0.0) + 3.0 / 8.0)
    lo, hi = float(t.min()), float(t.max())
    scale = max(hi - lo, 1e-6)
    d = _bm3d_any((t - lo) / scale, 1.0 / scale) * scale + lo
    d = np.maximum(d, 0.8)  # the inverse's approximation is for D >~ 0.8 (its minimum is ~0 there)
    inv = 0.25 * d**2 + 0.25 * np.sqrt(1.5) / d - 11.0 / 8.0 / d**2 + 5.0 / 8.0 * np.sqrt(1.5) / d**3 - 1.0 / 8.0
    return _like(inv / float(peak), noisy)
