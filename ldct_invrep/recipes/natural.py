"""Bundle recipes for natural images (paper section 4.2): the unpaired training domains and the seeded noisy
test items (``data.noisy_sets``, the generator ``docs/results.md`` uses too)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ldct_invrep.data.natural import IMAGE_SUFFIXES
from ldct_invrep.data.noisy_sets import NOISES
from ldct_invrep.errors import InputError

__all__ = ["image_paths", "natural_test_items", "natural_unpaired_images"]


def _noise_transform(noise: str, sigma_range: Sequence[float], seed: int):
    from ldct_invrep.transforms.noise import RandBlindGaussianNoised, RandPoissonNoised

    if noise == "awgn":
        t = RandBlindGaussianNoised(keys="image", sigma_range=sigma_range, scale=255.0, clip=True)
    elif noise == "poisson":
        t = RandPoissonNoised(keys="image", clip=True)
    else:
        raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")
    return t.set_random_state(seed=int(seed))


def image_paths(folder: str | os.PathLike, suffixes: Sequence[str]) -> list[Path]:
    """The images of ``folder`` whose name ends in one of ``suffixes`` (``data.natural.list_images`` order);
    ``InputError`` when there are none."""
    from ldct_invrep.data.natural import list_images

    suffixes = tuple(s.lower() for s in suffixes)
    paths = [p for p in list_images(folder) if p.suffix.lower() in suffixes]
    if not paths:
        raise InputError(f"{folder}: no {'/'.join(suffixes)} images found")
    return paths


def natural_unpaired_images(
    folder: str | os.PathLike,
    noise: str = "awgn",
    seed: int = 0,
    sigma_range: Sequence[float] = (5.0, 50.0),
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
    quantize: bool = True,
    channels: int = 3,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The unpaired training domains of paper section 4.2, in network range: ``(noisy X, clean Y)``, each a
    list of ``channels x H x W`` arrays (3: colour, 1: grey; ``data.natural.load_image_8bit``).

    The images of ``folder`` are split into two disjoint halves (``data.split_unpaired``); each image of the
    first half is corrupted once, with its own draw (AWGN with sigma uniform in ``sigma_range`` on the 0-255
    scale, or scikit-image's Poisson noise on the 8-bit values), seeded by ``seed``; the second half stays
    clean. ``quantize`` rounds the corrupted images to 8-bit levels, as the official code saved them as PNGs.
    """
    from ldct_invrep.data import load_image_8bit, split_unpaired
    from ldct_invrep.data.natural import quantize8, to_net

    x_paths, y_paths = split_unpaired(image_paths(folder, suffixes), seed=seed)
    corrupt = _noise_transform(noise, sigma_range, seed)
    noisy = []
    for p in x_paths:
        img = corrupt({"image": load_image_8bit(p, channels)})["image"]
        noisy.append(to_net(quantize8(img) if quantize else np.clip(img, 0.0, 1.0)))
    clean = [to_net(load_image_8bit(p, channels)) for p in y_paths]
    return noisy, clean


def natural_test_items(
    folder: str | os.PathLike,
    noise: str = "awgn",
    sigma: float | None = 25.0,
    seed: int = 0,
    quantize: bool = True,
    channels: int = 3,
    max_images: int | None = None,
) -> list[dict[str, Any]]:
    """Seeded noisy/clean test pairs ``{"noisy": CxHxW, "clean": CxHxW, "name": file}`` in network range for
    the bundles' validation and evaluation: ``data.noisy_sets.noisy_test_set`` (the generator
    ``docs/results.md`` uses too) of the first ``max_images`` images of ``folder``, mapped with ``to_net``.

    ``noise="awgn"`` adds white Gaussian noise of a fixed ``sigma`` (0-255 scale; BSD68 at 25, 35, 50,
    paper Table 1); ``"poisson"`` scikit-image's Poisson noise on the 8-bit values (Kodak, Table 2).
    ``channels``: 3 colour, 1 grey. Same seed, same noisy images. An image smaller than the SSIM window the
    bundles' metrics use (``ldct_invrep.metrics.SSIM_WIN_SIZE``) raises ``InputError`` naming it.
    """
    from ldct_invrep.data.natural import to_net
    from ldct_invrep.data.noisy_sets import noisy_test_set
    from ldct_invrep.metrics import SSIM_WIN_SIZE

    test_set = noisy_test_set(folder, noise, sigma, seed, channels=channels, quantize=quantize, max_images=max_images)
    for t in test_set:
        if min(t.clean.shape[-2:]) < SSIM_WIN_SIZE:
            size = "x".join(map(str, t.clean.shape[-2:]))
            raise InputError(f"{Path(folder) / t.name}: a {size} image, smaller than the {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} SSIM window")
    return [
        {"noisy": torch.from_numpy(to_net(t.noisy)), "clean": torch.from_numpy(to_net(t.clean)), "name": t.name}
        for t in test_set
    ]
