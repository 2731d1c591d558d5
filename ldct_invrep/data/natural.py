"""Natural images for the synthetic-noise experiments (paper section 4.2: AWGN on BSD68, Poisson on Kodak).

:func:`load_image_8bit` is the natural-image experiments' loader (and ``io.Image8bitReader``'s, the
bundles' inference): the 8-bit values ``k / 255`` the paper's pipeline works on, colour
(3 channels, as the official code: PIL ``convert("RGB")``) or grey (1 channel, the rounded BT.601 luma an
8-bit grey file holds), channel first. :func:`to_net` and :func:`from_net` are the one place that maps
[0, 1] images to the network range [-1, 1] and back (with the optional rounding to 8-bit levels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ldct_invrep.errors import InputError

# ITU-R BT.601 luma weights (the ones PIL's "L" conversion and MATLAB's rgb2gray use).
BT601_WEIGHTS = (0.299, 0.587, 0.114)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB -> (H, W) gray with the ITU-R BT.601 weights, same dtype kind as float input."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return rgb[..., 0] * BT601_WEIGHTS[0] + rgb[..., 1] * BT601_WEIGHTS[1] + rgb[..., 2] * BT601_WEIGHTS[2]


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (sorted by name; hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def load_image_8bit(path: str | Path, channels: int = 3) -> np.ndarray:
    """One 8-bit image file as float32 ``(channels, H, W)`` holding the 8-bit values ``k / 255``.

    ``channels=3``: RGB (a grey file is repeated on the three channels, as PIL's ``convert("RGB")`` in the
    official loader does; alpha dropped). ``channels=1``: grey; an RGB file becomes its BT.601 luma rounded
    to 8 bits (how ``bsd68/`` relates to ``cbsd68/``). Files of more than 8 bits per sample raise
    ``InputError``: the Poisson protocol (scikit-image's peak from the number of unique values) is defined on
    the 8-bit values.
    """
    if channels not in (1, 3):
        raise InputError(f"{path}: channels must be 1 (grey) or 3 (colour), got {channels!r}")
    path = Path(path)
    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "1"):
                raise InputError(f"{path}: not an 8-bit image (mode {img.mode})")
            grey_file = img.mode in ("L", "LA", "1")
            arr = np.asarray(img.convert("L" if grey_file else "RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from exc
    if channels == 3:
        rgb = np.repeat(arr[..., None], 3, axis=-1) if grey_file else arr
        out = np.moveaxis(rgb, -1, 0)
    else:
        out = (arr if grey_file else np.round(rgb_to_gray(arr)).clip(0, 255))[None]
    return (out.astype(np.float32) / np.float32(255.0)).astype(np.float32)


def to_net(img01: np.ndarray) -> np.ndarray:
    """Natural image in [0, 1] -> network range [-1, 1] (float32): ``2 x - 1``."""
    return (np.float32(2.0) * np.asarray(img01, dtype=np.float32) - np.float32(1.0)).astype(np.float32)


def from_net(pred: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """Network output in [-1, 1] -> [0, 1] float32, clipped and, with ``quantize``, rounded to the 256 levels
    of an 8-bit image (the paper scores saved 8-bit images). Bundle metrics and ``docs/results.md`` both use it."""
    out = ((pred.float() + 1.0) / 2.0).clamp(0.0, 1.0)
    return torch.round(out * 255.0) / 255.0 if quantize else out


def quantize8(img: np.ndarray) -> np.ndarray:
    """[0, 1] float -> the nearest of the 256 levels of an 8-bit image (float32, still in [0, 1])."""
    return (np.round(np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0) * np.float32(255.0)) / np.float32(255.0)).astype(np.float32)
