"""Seeded noisy natural-image test sets: the one generator behind the bundles' validation and evaluation
(``recipes.natural_test_items``) and ``docs/results.md`` (``evaluation.evaluate_natural``, called by
``benchmarks/reproduce_tables.py``), so both score the same noisy images for the same seed.

Protocol (paper section 4.2):

* images are loaded as 8-bit values ``k / 255`` (``natural.load_image_8bit``), colour or grey;
* AWGN: ``clean + sigma / 255 * N(0, 1)`` (sigma on the 0-255 scale), clipped to [0, 1];
* Poisson: scikit-image's ``random_noise(mode="poisson")`` (``transforms.noise.add_poisson_noise``, identical
  output) on those 8-bit values: counts drawn with mean ``clean * peak`` and divided by ``peak``, where
  ``peak = 2 ** ceil(log2(number of unique values))``, at most 256 for an 8-bit image (all channels counted
  together). A float grey conversion has thousands of unique values and hence nearly no noise: that is why
  the protocol starts from the 8-bit values;
* with ``quantize`` (default) the noisy image is rounded to 8-bit levels, as the official data preparation
  saved its noisy images.

Image ``index`` of a set (files sorted by name) gets its own generator, ``SeedSequence([seed, index])``:
the first N images of a set are noised the same whether the others are used or not.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ldct_invrep.data.natural import IMAGE_SUFFIXES, list_images, load_image_8bit, quantize8
from ldct_invrep.errors import InputError
from ldct_invrep.transforms.crop import center_crop

__all__ = ["NOISES", "NoisyImage", "add_test_noise", "image_rng", "load_test_images", "noisy_test_set", "poisson_peak"]

NOISES = ("awgn", "poisson")


@dataclass(frozen=True)
class NoisyImage:
    """One test image: ``noisy`` and ``clean`` are float32 ``(C, H, W)`` in [0, 1]; ``peak`` is the Poisson
    scale used (``None`` for AWGN)."""

    name: str
    noisy: np.ndarray
    clean: np.ndarray
    peak: float | None = None


def poisson_peak(clean: np.ndarray) -> float:
    """scikit-image's Poisson scale: ``2 ** ceil(log2(number of unique values))`` of the whole image."""
    return float(2 ** np.ceil(np.log2(len(np.unique(clean)))))


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index`` of a test set noised with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def add_test_noise(
    clean: np.ndarray,
    noise: str,
    sigma: float | None,
    rng: np.random.Generator,
    *,
    clip: bool = True,
    quantize: bool = True,
) -> np.ndarray:
    """``clean`` (float in [0, 1], any shape) with AWGN of ``sigma`` (0-255 scale) or Poisson noise, float32.

    ``clip`` clips AWGN to [0, 1] (Poisson is always clipped, as scikit-image does); ``quantize`` rounds to
    8-bit levels (and so clips too).
    """
    from ldct_invrep.transforms.noise import add_poisson_noise

    clean = np.asarray(clean)
    if noise == "awgn":
        if sigma is None or not float(sigma) >= 0:
            raise InputError(f"sigma {sigma!r}: AWGN needs a sigma >= 0 on the 0-255 scale")
        out = clean.astype(np.float64) + (float(sigma) / 255.0) * rng.standard_normal(clean.shape)
        out = np.clip(out, 0.0, 1.0) if clip else out
    elif noise == "poisson":
        out = add_poisson_noise(clean.astype(np.float64), rng, clip=True)
    else:
        raise InputError(f"noise {noise!r}: expected one of {', '.join(NOISES)}")
    return quantize8(out) if quantize else out.astype(np.float32)


def load_test_images(
    folder: str | os.PathLike,
    channels: int = 3,
    max_images: int | None = None,
    crop: int | None = None,
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
) -> dict[str, np.ndarray]:
    """``{file name: (channels, H, W) float32 k/255}`` of the images in ``folder`` (sorted by name): the first
    ``max_images``, centre crops of ``crop`` pixels when given (quick runs)."""
    wanted = tuple(s.lower() for s in suffixes)
    paths = [p for p in list_images(folder) if p.suffix.lower() in wanted][: max_images or None]
    if not paths:
        raise InputError(f"{folder}: no {'/'.join(wanted)} images found")
    images = {p.name: load_image_8bit(p, channels) for p in paths}
    return {k: center_crop(v, crop) for k, v in images.items()} if crop else images


def noisy_test_set(
    images: str | os.PathLike | Iterable[tuple[str, np.ndarray]] | dict[str, np.ndarray],
    noise: str = "awgn",
    sigma: float | None = 25.0,
    seed: int = 0,
    *,
    channels: int = 3,
    clip: bool = True,
    quantize: bool = True,
    max_images: int | None = None,
    crop: int | None = None,
) -> list[NoisyImage]:
    """The seeded noisy test set of a folder (loaded with :func:`load_test_images`) or of ``(name, clean)``
    images already in [0, 1] (``(H, W)`` or ``(C, H, W)``; kept as given). Same arguments, same images."""
    if isinstance(images, (str, os.PathLike, Path)):
        named: Iterable[tuple[str, np.ndarray]] = load_test_images(images, channels, max_images, crop).items()
    else:
        named = images.items() if isinstance(images, dict) else images
    out = []
    for index, (name, clean) in enumerate(named):
        clean = np.asarray(clean, dtype=np.float32)
        if clean.ndim not in (2, 3) or clean.size == 0 or clean.min() < 0 or clean.max() > 1:
            raise InputError(f"{name}: expected an (H, W) or (C, H, W) image in [0, 1], got shape {clean.shape}")
        noisy = add_test_noise(clean, noise, sigma, image_rng(seed, index), clip=clip, quantize=quantize)
        out.append(NoisyImage(str(name), noisy, clean, poisson_peak(clean) if noise == "poisson" else None))
    if not out:
        raise InputError("noisy_test_set: no images")
    return out
