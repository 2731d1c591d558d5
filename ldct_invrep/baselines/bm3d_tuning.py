"""BM3D's parameters fitted on paired training or validation slices, never on the test set: the sigma in
HU (:func:`tune_bm3d_sigma`) or blind BM3D's factor on each slice's own noise level
(:func:`tune_bm3d_blind_factor`). Both keep the candidate with the best mean metric in a named window."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ldct_invrep.baselines.bm3d import blind_sigma_hu, bm3d_denoise
from ldct_invrep.errors import InputError
from ldct_invrep.metrics import WindowSpec, compute_metrics
from ldct_invrep.transforms.crop import center_crop

__all__ = ["tune_bm3d_blind_factor", "tune_bm3d_sigma"]

#: ``(name, noisy HU, clean HU)``, as ``ldct_invrep.evaluation`` loads them.
HUPair = tuple[str, np.ndarray, np.ndarray]


def tune_bm3d_sigma(
    pairs: Iterable[HUPair],
    sigmas_hu: Sequence[float] = (40, 60, 80, 100, 120, 150),
    window: WindowSpec = "abdomen",
    metric: str = "psnr",
    crop: int | None = 256,
) -> tuple[float, dict[float, float]]:
    """The BM3D sigma (HU) of ``sigmas_hu`` with the best mean ``metric`` over ``pairs`` in ``window``.

    Use validation pairs, never the test set. ``crop``: a centred ``crop x crop`` region of each slice
    (BM3D takes ~15 s per 512 x 512 slice on 2 cores, ~4 s at 256 x 256). Returns (best, {sigma: mean}).
    """
    return _tune_bm3d(pairs, sigmas_hu, lambda sigma, noisy: float(sigma), window, metric, crop)


def tune_bm3d_blind_factor(
    pairs: Iterable[HUPair],
    factors: Sequence[float] = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0),
    window: WindowSpec = "abdomen",
    metric: str = "psnr",
    crop: int | None = 256,
) -> tuple[float, dict[float, float]]:
    """The factor of blind BM3D (sigma = factor x the slice's noise level, :func:`blind_sigma_hu`) of
    ``factors`` with the best mean ``metric`` over ``pairs``: as :func:`tune_bm3d_sigma`, the noise level
    measured on each whole noisy slice, BM3D run on its centred crop. Returns (best, {factor: mean})."""
    return _tune_bm3d(pairs, factors, lambda factor, noisy: blind_sigma_hu(noisy, float(factor)), window, metric, crop)


def _tune_bm3d(
    pairs: Iterable[HUPair],
    candidates: Sequence[float],
    sigma_of: Callable[[float, np.ndarray], float],
    window: WindowSpec,
    metric: str,
    crop: int | None,
) -> tuple[float, dict[float, float]]:
    """The candidate with the best mean ``metric`` of BM3D with ``sigma_of(candidate, whole noisy slice)``."""
    if metric not in ("psnr", "ssim", "rmse_hu"):
        raise InputError(f"metric {metric!r}: expected psnr, ssim or rmse_hu")
    data = [(np.asarray(n, dtype=np.float32), center_crop(n, crop), center_crop(c, crop)) for _, n, c in pairs]
    if not data:
        raise InputError("BM3D tuning: no pairs")
    scores: dict[float, float] = {}
    for candidate in candidates:
        values = [
            getattr(compute_metrics(bm3d_denoise(n, sigma_of(candidate, whole)), c, window)[0], metric)
            for whole, n, c in data
        ]
        scores[float(candidate)] = float(np.mean(values))
    pick = min if metric == "rmse_hu" else max
    best = pick(scores, key=scores.__getitem__)
    return best, scores
