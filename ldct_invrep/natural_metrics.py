"""PSNR, SSIM and RMSE of one natural image in [0, 1], computed exactly as the natural bundles' metric
handlers compute them (``PeakSignalToNoiseRatio(max_val=1)`` and ``SSIMMetric(spatial_dims=2, data_range=1)``
on a float32 ``1 x C x H x W`` batch), so ``docs/results.md`` and bundle evaluation agree to the digit.

Colour images are scored as the paper's ``test_Metrics.py`` scores uint8 RGB: PSNR from the mean squared
error over all pixels and channels (peak 1 here, the same number as peak 255 on 0-255 values), SSIM the mean
of the channels' SSIM maps (MONAI: 11 x 11 Gaussian, sigma 1.5, valid convolution).
``ldct_invrep.metrics`` is the CT counterpart (HU windows, slices of a volume).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from monai.metrics import PSNRMetric, SSIMMetric

from ldct_invrep.errors import InputError
from ldct_invrep.metrics import SSIM_SIGMA, SSIM_WIN_SIZE, SliceMetrics

__all__ = ["natural_image_metrics"]


def _as_batch(image: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(image, dtype=np.float32))
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or min(t.shape[-2:]) < SSIM_WIN_SIZE:
        raise InputError(f"{name}: expected an (H, W) or (C, H, W) image of at least {SSIM_WIN_SIZE} px a side, got {tuple(t.shape)}")
    return t[None]


def natural_image_metrics(pred: Any, ref: Any) -> SliceMetrics:
    """``SliceMetrics(psnr, ssim, rmse)`` of ``pred`` against ``ref``, both in [0, 1] with data range 1
    (``rmse`` on the [0, 1] scale; the field is named for CT's HU)."""
    p, r = _as_batch(pred, "pred"), _as_batch(ref, "ref")
    if p.shape != r.shape:
        raise InputError(f"pred: shape {tuple(p.shape[1:])} differs from ref {tuple(r.shape[1:])}")
    psnr = float(PSNRMetric(max_val=1.0)(p, r).item())
    ssim = float(SSIMMetric(spatial_dims=2, data_range=1.0, win_size=SSIM_WIN_SIZE, kernel_sigma=SSIM_SIGMA)(p, r).item())
    rmse = math.sqrt(float(torch.mean((p.double() - r.double()) ** 2)))
    return SliceMetrics(psnr, ssim, rmse)
