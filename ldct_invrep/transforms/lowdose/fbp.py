"""Parallel-beam projection and filtered back projection of one square 2D slice, the geometry of
:func:`~ldct_invrep.transforms.lowdose.simulate.simulate_low_dose`.

Only the inserted noise is reconstructed: :func:`line_integrals` sets its variance (scikit-image ``radon`` on a
mean-pooled image, interpolated to the full sinogram), :func:`filter_sinogram` applies the ramp filter times an
apodisation window and :func:`back_project` sums the views onto the pixel grid (four views per index map, by
the symmetry of the square grid). See the module docstring of ``simulate`` for the speed figures.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates
from skimage.transform import radon

__all__ = ["DEFAULT_FILTER", "FBP_FILTERS", "back_project", "fbp_filter_response", "filter_sinogram", "line_integrals"]

#: Apodisation windows of the ramp filter, functions of nu = frequency / cutoff (zero beyond nu = 1).
FBP_FILTERS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")
DEFAULT_FILTER = "cosine"
#: Samples per detector bin of the back projection's look-up table.
_BP_UPSAMPLE = 16


def fbp_filter_response(n_det: int, filter_name: str = DEFAULT_FILTER, cutoff: float = 0.5) -> tuple[np.ndarray, int]:
    """Return ``(response, n_fft)``: the ramp filter times an apodisation window, on an ``n_fft`` grid.

    The ramp is the transform of the sampled spatial ramp (Kak & Slaney, ch. 3, eq. 61: no DC bias), in
    units of 1/bin. The window is a function of ``nu = |frequency| / cutoff`` (cycles per bin), zero for
    ``nu > 1``; ``cutoff=0.5`` is the Nyquist frequency of the bins.
    """
    if filter_name not in FBP_FILTERS:
        raise ValueError(f"filter_name must be one of {FBP_FILTERS}, got {filter_name!r}")
    if not cutoff > 0:
        raise ValueError(f"filter cutoff must be positive, got {cutoff!r}")
    n_fft = int(2 ** np.ceil(np.log2(2 * n_det)))
    lag = np.arange(n_fft)
    lag = np.minimum(lag, n_fft - lag)
    h = np.where(lag % 2 == 1, -1.0 / (np.pi * np.maximum(lag, 1)) ** 2, 0.0)
    h[0] = 0.25
    response = np.real(np.fft.fft(h))
    nu = np.abs(np.fft.fftfreq(n_fft)) / cutoff
    window = {
        "ramp": np.ones_like(nu),
        "shepp-logan": np.sinc(nu / 2.0),
        "cosine": np.cos(np.pi * nu / 2.0),
        "hamming": 0.54 + 0.46 * np.cos(np.pi * nu),
        "hann": 0.5 + 0.5 * np.cos(np.pi * nu),
    }[filter_name]
    return response * np.where(nu <= 1.0, window, 0.0), n_fft


def filter_sinogram(sinogram: np.ndarray, filter_name: str = DEFAULT_FILTER, cutoff: float = 0.5) -> np.ndarray:
    """Filter every view (row) of an ``n_views x n_det`` sinogram with :func:`fbp_filter_response`."""
    n_det = sinogram.shape[1]
    response, n_fft = fbp_filter_response(n_det, filter_name, cutoff)
    spectrum = np.fft.rfft(sinogram, n=n_fft, axis=1) * response[: n_fft // 2 + 1]
    return np.fft.irfft(spectrum, n=n_fft, axis=1)[:, :n_det]


def back_project(filtered: np.ndarray, size: int, upsample: int = _BP_UPSAMPLE) -> np.ndarray:
    """Back project ``n_views x n_det`` filtered views onto a ``size x size`` grid (float64 result).

    Geometry: view ``k`` is at angle ``theta_k = k pi / n_views``; pixel ``(i, j)`` sits at ``x = j - c``,
    ``y = c - i`` with ``c = (size - 1) / 2`` and reads detector coordinate ``t = x cos + y sin`` (bin ``b`` at
    ``t = b - (n_det - 1) / 2``). Each view is linearly interpolated to ``upsample`` samples per bin once,
    then read by nearest table look-up (position error <= 1 / (2 upsample) bin). Views ``theta``,
    ``pi/2 - theta``, ``pi/2 + theta`` and ``pi - theta`` read the same ``t`` at anti-transposed, rotated and
    flipped pixels, so one index map and one 16-byte gather serve four views. The sum is scaled by
    ``pi / n_views`` (FBP of line integrals in pixel units gives attenuation per pixel).
    """
    n_views, n_det = filtered.shape
    if n_views % 4:
        raise ValueError(f"n_views must be a multiple of 4, got {n_views}")
    half, quarter = n_views // 2, n_views // 4
    # record[s] holds views (k, half + k) as the real and imaginary parts of one complex64 and
    # (half - k, n_views - k) as a second one: one 16-byte gather reads all four; row -1 of q is "no view"
    pos = np.arange(n_det * upsample + 1) / upsample - 0.5 + 0.5 / upsample
    bins = np.arange(n_det, dtype=np.float64)
    k_idx = np.arange(quarter + 1)
    partner_b = np.where((k_idx == 0) | (k_idx == quarter), -1, half - k_idx)
    partner_c = np.where((k_idx == 0) | (k_idx == quarter), -1, n_views - k_idx)
    q = np.vstack([np.asarray(filtered, dtype=np.float64), np.zeros((1, n_det))])  # row -1: no view

    def fine(row: int) -> np.ndarray:
        return np.interp(pos, bins, q[row], left=0.0, right=0.0)

    c = (size - 1) / 2.0
    coord = np.arange(size) - c
    theta = np.arange(n_views) * np.pi / n_views
    origin = (n_det - 1) / 2.0 * upsample + (upsample - 1) / 2.0 + 0.5  # floor(t * upsample + origin) = slot
    acc = np.zeros((size, size, 2), dtype=np.complex64)
    record = np.empty((n_det * upsample + 1, 2), dtype=np.complex64)
    for k in range(quarter + 1):
        record[:, 0] = fine(k) + 1j * fine(half + k)
        record[:, 1] = fine(partner_b[k]) + 1j * fine(partner_c[k])
        rows = (-coord * np.sin(theta[k]) * upsample + origin).astype(np.float32)
        cols = (coord * np.cos(theta[k]) * upsample).astype(np.float32)
        slot = np.add.outer(rows, cols)
        np.clip(slot, 0, n_det * upsample, out=slot)  # the last slot is outside the detector: 0
        acc += record.view(np.complex128)[slot.astype(np.intp), 0].view(np.complex64).reshape(size, size, 2)
    a, b = acc[..., 0], acc[..., 1]
    # rotated (pi/2 + theta): out[i, j] = A[j, n-1-i]; anti-transposed (pi/2 - theta): out[i, j] = B[n-1-j, n-1-i];
    # flipped (pi - theta): out[i, j] = B[i, n-1-j]
    image = a.real.astype(np.float64) + np.rot90(a.imag, k=1)
    image += b.real[::-1, ::-1].T + b.imag[:, ::-1]
    return image * (np.pi / n_views)


def line_integrals(mu_px: np.ndarray, n_views: int, n_det: int, downsample: int = 4) -> np.ndarray:
    """Line integrals (``n_views x n_det``) of a square image, in :func:`back_project`'s geometry.

    ``mu_px`` is attenuation per pixel, so the result is dimensionless. scikit-image's ``radon`` runs on a
    ``downsample``-times mean-pooled image at ``n_views // (2 downsample)`` views over [0, pi] (both ends
    included) and the result is interpolated bilinearly to the full grid; ``downsample=1`` projects the full
    image at all ``n_views`` views (exact, slow).
    """
    size = mu_px.shape[0]
    d = int(downsample)
    if d < 1:
        raise ValueError(f"variance_downsample must be >= 1, got {downsample!r}")
    m = -(-size // d)  # pooled grid size
    before = (m * d - size) // 2
    padded = np.zeros((m * d, m * d), dtype=np.float64)
    padded[before : before + size, before : before + size] = mu_px
    pooled = padded.reshape(m, d, m, d).mean(axis=(1, 3)) * d  # a pooled pixel is d fine pixels long
    offset = (m * d - size) / 2.0 - before  # fine-pixel shift of the pooled grid centre (0 or 0.5)
    views = n_views if d == 1 else max(n_views // (2 * d), 8)
    sino = radon(pooled, np.linspace(0.0, 180.0, views + 1), circle=False)  # bins x views
    # scikit-image puts the rotation centre at pixel m // 2 and bin sino.shape[0] // 2; ours is (m - 1) / 2
    delta = (m - 1) / 2.0 - m // 2
    theta = np.arange(n_views) * np.pi / n_views
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    t_coarse = ((np.arange(n_det) - (n_det - 1) / 2.0)[None, :] - offset * (cos - sin)) / d
    rows = t_coarse + delta * (cos - sin) + sino.shape[0] // 2
    cols = np.broadcast_to((theta / np.pi * views)[:, None], rows.shape)
    return map_coordinates(sino, [rows, cols], order=1, mode="constant", cval=0.0)
