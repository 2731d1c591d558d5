"""Centred crop of an image: MONAI's ``CenterSpatialCrop`` for plain (H, W) or (C, H, W) numpy arrays.

Used to make BM3D tuning and the natural-image tables affordable on CPU (crop once, score the crop).
"""

from __future__ import annotations

import numpy as np
from monai.transforms import CenterSpatialCrop
from monai.utils import convert_to_numpy

__all__ = ["center_crop"]


def center_crop(image: np.ndarray, size: int | None) -> np.ndarray:
    """The centred ``size x size`` region of an (H, W) or channel-first (C, H, W) image; a side shorter than
    ``size`` stays whole. ``size=None`` returns the image unchanged. Same dtype as the input."""
    a = np.asarray(image)
    if size is None:
        return a
    if a.ndim not in (2, 3):
        raise ValueError(f"center_crop: expected an (H, W) or (C, H, W) image, got shape {a.shape}")
    out = convert_to_numpy(CenterSpatialCrop((int(size), int(size)))(a[None] if a.ndim == 2 else a))
    return (out[0] if a.ndim == 2 else out).astype(a.dtype, copy=False)
