"""Synthetic noise for natural images in [0, 1] (paper section 4.2): blind AWGN and Poisson noise.

Both transforms are randomizable the MONAI way (``set_random_state``): each call draws a seed from
``self.R`` and uses a ``numpy.random.Generator`` with it, so a pipeline is reproducible and the Poisson
noise is bit-identical to ``skimage.util.random_noise(mode="poisson", rng=seed)``, the generator the
paper used ("generates independent Poisson noise by the number of unique values in the given samples").
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_dst_type, convert_to_numpy
from skimage.util import img_as_float

__all__ = ["RandBlindGaussianNoised", "RandPoissonNoised", "add_poisson_noise"]

_SEED_HIGH = 2**31 - 1


def add_poisson_noise(image: np.ndarray, rng: int | np.random.Generator | None = None, clip: bool = True) -> np.ndarray:
    """Poisson noise exactly as ``skimage.util.random_noise(image, mode="poisson", rng=rng, clip=clip)``.

    The image is scaled by ``vals = 2 ** ceil(log2(number of unique values))``, Poisson counts are drawn
    and divided by ``vals``; an image with negative values is shifted to [0, 1] first and back afterwards.
    Written here (not called) so the transform owns its generator and dtype handling.
    """
    signed = bool(np.min(image) < 0)
    low_clip = -1.0 if signed else 0.0
    img = img_as_float(image)
    gen = np.random.default_rng(rng)
    vals = 2 ** np.ceil(np.log2(len(np.unique(img))))
    if signed:
        old_max = img.max()
        img = (img + 1.0) / (old_max + 1.0)
    out = gen.poisson(img * vals) / float(vals)
    if signed:
        out = out * (old_max + 1.0) - 1.0
    return np.clip(out, low_clip, 1.0) if clip else out


def _check_sigma_range(sigma_range: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in sigma_range)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or lo > hi:
        raise ValueError(f"sigma_range must be (lo, hi) with 0 <= lo <= hi, got {sigma_range!r}")
    return lo, hi


class RandBlindGaussianNoised(RandomizableTransform, MapTransform):
    """Add white Gaussian noise whose sigma is drawn per image, uniformly in ``sigma_range`` (paper 4.2).

    ``sigma_range`` is on the ``scale`` (0-255) scale, the images in [0, 1], so the noise std is
    ``sigma / scale``; ``(s, s)`` fixes sigma (e.g. the BSD68 test levels 25, 35, 50). ``clip`` clips the
    result to [0, 1]. The sigma drawn for each key at the last call is in ``self.sigmas``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        sigma_range: Sequence[float] = (5.0, 50.0),
        scale: float = 255.0,
        clip: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        self.sigma_range = _check_sigma_range(sigma_range)
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        self.scale = float(scale)
        self.clip = clip
        self.sigmas: dict[Hashable, float] = {}
        self._seed = 0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._seed = int(self.R.randint(0, _SEED_HIGH))

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize()
        gen = np.random.default_rng(self._seed)
        self.sigmas = {}
        for key in self.key_iterator(d):
            sigma = float(gen.uniform(*self.sigma_range))
            self.sigmas[key] = sigma
            img = convert_to_numpy(d[key])
            dtype = img.dtype if np.issubdtype(img.dtype, np.floating) else np.float32
            out = img + (sigma / self.scale) * gen.standard_normal(img.shape)
            if self.clip:
                out = np.clip(out, 0.0, 1.0)
            d[key] = convert_to_dst_type(out, d[key], dtype=dtype)[0]
        return d


class RandPoissonNoised(RandomizableTransform, MapTransform):
    """Poisson noise as scikit-image's ``random_noise(mode="poisson")`` makes it (paper 4.2), seeded.

    Each call draws ``self.seed`` from ``self.R``; the result for a key equals
    ``random_noise(image, mode="poisson", rng=seed, clip=clip)`` (the first key; further keys continue the
    same generator), cast to the input's float dtype.
    """

    def __init__(self, keys: KeysCollection, clip: bool = True, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        self.clip = clip
        self.seed = 0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self.seed = int(self.R.randint(0, _SEED_HIGH))

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize()
        gen = np.random.default_rng(self.seed)
        for key in self.key_iterator(d):
            img = convert_to_numpy(d[key])
            dtype = img.dtype if np.issubdtype(img.dtype, np.floating) else np.float32
            d[key] = convert_to_dst_type(add_poisson_noise(img, gen, self.clip), d[key], dtype=dtype)[0]
        return d
