"""BM3D baseline (Dabov et al. 2007) through the optional ``bm3d`` package, in the network's HU window.

The ``bm3d`` package is licensed for non-commercial use only, so it is an optional extra
(``pip install 'ldct-invrep[baselines]'``) imported when called.

BM3D runs on the same intensities the network sees: HU clipped to ``window`` (default ``"full"``,
[-1024, 3072] HU, the network range) and scaled to [0, 1]. The noise level is a standard deviation in those
units, ``sigma = sigma_hu / (hi - lo)``; it is either given in HU or estimated from the image with
``skimage.restoration.estimate_sigma`` (wavelet MAD, Donoho & Johnstone 1994), which assumes white noise.

For CT, give ``sigma_hu``. CT noise is spatially correlated (the reconstruction kernel) and not stationary,
and air clipped at -1024 HU has none, so the MAD of the finest wavelet band sees only part of it. On the
Mayo L506 1 mm quarter-dose slice the estimate is 17 HU, while the BM3D sigma that maximises PSNR against
full dose is around 100-120 HU, and SSIM peaks at 75-90 HU (benchmarks/bm3d_speed.py ``--sweep``).
Tune sigma on a validation slice and report the value used.

Blind BM3D (:func:`bm3d_blind`) adapts to each slice instead: sigma = ``factor`` x the slice's own noise level
in flat soft tissue (``ldct_invrep.transforms.lowdose.scan_noise_level``, the statistic the dose-relative
simulation calibrates on). That statistic reads correlated CT noise low, so ``factor`` (about 2-3) is fitted
on training pairs (``ldct_invrep.baselines.tune_bm3d_blind_factor``), never on the test set;
``DEFAULT_BLIND_FACTOR`` is the one fitted on the default model's simulated training pairs.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from skimage.restoration import estimate_sigma

from ldct_invrep.errors import InputError
from ldct_invrep.metrics import Window, WindowSpec, resolve_window

__all__ = ["DEFAULT_BLIND_FACTOR", "blind_sigma_hu", "bm3d_blind", "bm3d_denoise", "estimate_sigma_hu", "hu_sigma_to_window", "window_sigma_to_hu"]

#: Blind BM3D's factor fitted (best mean abdomen-window PSNR, 24.17 dB; 4: 24.09, 6: 24.16) on 12 simulated
#: *training* pairs of the default model's CT cache (open data, dose fractions 0.05-0.5) by
#: ``benchmarks/dev_pairs.py`` (its run without ``--bm3d-blind-factor`` fits it and prints the fit; the docs/dev_pairs.md
#: of today passes the factor, as it does BM3D's sigma). Never fitted on real test pairs.
DEFAULT_BLIND_FACTOR = 5.0

_MISSING = (
    "BM3D needs the optional 'bm3d' package (non-commercial licence): pip install 'ldct-invrep[baselines]'"
)


def _import_bm3d() -> Any:
    try:
        import bm3d  # noqa: PLC0415 (optional extra)
    except ImportError as err:
        raise ImportError(_MISSING) from err
    return bm3d


def hu_sigma_to_window(sigma_hu: float, window: WindowSpec = "full") -> float:
    """A noise standard deviation in HU -> the [0, 1] scale of ``window`` (divide by its data range)."""
    return float(sigma_hu) / resolve_window(window).data_range


def window_sigma_to_hu(sigma: float, window: WindowSpec = "full") -> float:
    """A noise standard deviation on the [0, 1] scale of ``window`` -> HU (multiply by its data range)."""
    return float(sigma) * resolve_window(window).data_range


def _to_unit(hu: np.ndarray, win: Window) -> np.ndarray:
    return (np.clip(hu, win.lo, win.hi) - win.lo) / win.data_range


def _check_slice(hu: Any) -> np.ndarray:
    a = np.asarray(hu, dtype=np.float64)
    if a.ndim != 2:
        raise InputError(f"hu: expected a 2D slice, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError("hu: contains NaN or infinite values")
    return a


def estimate_sigma_hu(hu: Any, window: WindowSpec = "full") -> float:
    """Noise standard deviation of a 2D HU slice, estimated in ``window``'s [0, 1] scale and mapped back to HU."""
    win = resolve_window(window)
    unit = _to_unit(_check_slice(hu), win)
    return window_sigma_to_hu(float(estimate_sigma(unit)), win)


def bm3d_denoise(
    hu: Any,
    sigma_hu: float | None = None,
    window: WindowSpec = "full",
    *,
    profile: str = "np",
) -> np.ndarray:
    """BM3D of a 2D HU slice (or each slice of a (z, y, x) volume) -> float32 HU, clipped to ``window``.

    ``sigma_hu``: noise standard deviation in HU; ``None`` estimates it per slice (:func:`estimate_sigma_hu`).
    ``profile``: the ``bm3d`` package profile (``"np"`` normal, ``"refilter"``, ``"high"``...).
    """
    arr = np.asarray(hu)
    if arr.ndim == 3:
        return np.stack([bm3d_denoise(s, sigma_hu, window, profile=profile) for s in arr])
    bm3d = _import_bm3d()
    win = resolve_window(window)
    a = _check_slice(arr)
    if sigma_hu is None:
        sigma_hu = estimate_sigma_hu(a, win)
    if not (np.isfinite(sigma_hu) and sigma_hu >= 0):
        raise InputError(f"sigma_hu {sigma_hu!r}: expected a non-negative noise level in HU")
    unit = _to_unit(a, win)
    if sigma_hu == 0:
        out = unit
    else:
        out = np.asarray(bm3d.bm3d(unit, sigma_psd=hu_sigma_to_window(sigma_hu, win), profile=profile))
    return (np.clip(out, 0.0, 1.0) * win.data_range + win.lo).astype(np.float32)


def blind_sigma_hu(hu: Any, factor: float) -> float:
    """The BM3D sigma (HU) of blind BM3D for one 2D HU slice: ``factor`` x its noise level in flat soft tissue
    (``scan_noise_level``); a slice with too little flat soft tissue falls back to ``factor`` x the wavelet
    MAD estimate (:func:`estimate_sigma_hu`, lower still for CT), with a warning."""
    from ldct_invrep.transforms.lowdose.scan_noise import scan_noise_level

    if not (np.isfinite(factor) and factor > 0):
        raise InputError(f"factor {factor!r}: expected a positive number")
    a = _check_slice(hu)
    level = scan_noise_level(a)
    if level is None:
        warnings.warn("blind BM3D: too little flat soft tissue to measure the noise; using the wavelet MAD estimate", stacklevel=2)
        level = estimate_sigma_hu(a)
    return float(factor) * float(level)


def bm3d_blind(hu: Any, factor: float, window: WindowSpec = "full", *, profile: str = "np") -> np.ndarray:
    """Blind BM3D of a 2D HU slice (or each slice of a volume): :func:`bm3d_denoise` with sigma
    :func:`blind_sigma_hu` of that slice."""
    arr = np.asarray(hu)
    if arr.ndim == 3:
        return np.stack([bm3d_blind(s, factor, window, profile=profile) for s in arr])
    return bm3d_denoise(arr, blind_sigma_hu(arr, factor), window, profile=profile)
