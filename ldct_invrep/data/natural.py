"""Natural gray images for the synthetic-noise experiments (paper section 4.2: AWGN on BSD68, Poisson on Kodak)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ldct_invrep.errors import InputError

# ITU-R BT.601 luma weights (the ones PIL's "L" conversion and MATLAB's rgb2gray use).
BT601_WEIGHTS = (0.299, 0.587, 0.114)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB -> (H, W) gray with the ITU-R BT.601 weights, same dtype kind as float input."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return rgb[..., 0] * BT601_WEIGHTS[0] + rgb[..., 1] * BT601_WEIGHTS[1] + rgb[..., 2] * BT601_WEIGHTS[2]


def load_gray_image(path: str | Path) -> np.ndarray:
    """One image file as a float32 (H, W) array in [0, 1]; RGB(A) converted with BT.601 weights (alpha dropped).

    8-bit images are divided by 255 and 16-bit images by 65535. The conversion is done in float, not with
    PIL's integer ``convert("L")``, so no extra rounding to 8 bits happens.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            mode = img.mode
            arr = np.asarray(img)
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from exc
    if mode == "P" or mode == "PA":
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"))
    if arr.dtype == np.uint8:
        scale = 255.0
    elif arr.dtype in (np.uint16, np.int32) or mode.startswith("I;16") or mode == "I":
        scale = 65535.0
    elif arr.dtype == bool:
        scale = 1.0
    else:
        raise InputError(f"{path}: unsupported image mode {mode} ({arr.dtype})")
    arr = arr.astype(np.float64)
    if arr.ndim == 3:
        if arr.shape[2] >= 3:
            arr = rgb_to_gray(arr[..., :3])
        else:  # LA: gray + alpha
            arr = arr[..., 0]
    return np.clip(arr / scale, 0.0, 1.0).astype(np.float32)


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (sorted by name; hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def load_gray_images(folder: str | Path, suffixes: tuple[str, ...] = (".png",)) -> list[np.ndarray]:
    """All images in ``folder`` with one of ``suffixes`` (default PNG), sorted by name, as float32 [0, 1] gray.

    Map to the network range with ``2 * x - 1`` (contracts: natural images [0, 1] -> [-1, 1]).
    """
    suffixes = tuple(s.lower() for s in suffixes)
    paths = [p for p in list_images(folder) if p.suffix.lower() in suffixes]
    if not paths:
        raise InputError(f"{folder}: no {'/'.join(suffixes)} images found")
    return [load_gray_image(p) for p in paths]
