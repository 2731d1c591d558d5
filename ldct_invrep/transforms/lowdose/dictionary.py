"""Dictionary transform of low-dose simulation: :class:`RandSimulateLowDosed` (MONAI's ``Rand`` convention)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_dst_type, convert_to_numpy

from ldct_invrep.transforms.lowdose.scan_noise import scan_noise_level, series_noise_fallbacks
from ldct_invrep.transforms.lowdose.simulate import CALIBRATIONS, check_dose_fraction, simulate_low_dose

__all__ = ["RandSimulateLowDosed"]


def _spacing_value(value: Any, where: str) -> float:
    """In-plane spacing from a number or a (row, col, ...) sequence; square pixels are required."""
    arr = np.asarray(convert_to_numpy(value), dtype=np.float64).ravel()
    if arr.size == 0 or not np.isfinite(arr[:2]).all() or (arr[:2] <= 0).any():
        raise ValueError(f"{where}: invalid pixel spacing {value!r}")
    if arr.size > 1 and abs(arr[0] - arr[1]) > 0.01 * arr[0]:
        raise ValueError(f"{where}: non-square pixels {arr[:2].tolist()} are not supported")
    return float(arr[0])


class RandSimulateLowDosed(RandomizableTransform, MapTransform):
    """Dictionary transform: replace full-dose HU images by simulated ``dose_fraction`` ones.

    Images are C x H x W (one 2D slice per channel) or C x H x W x D (slices along the last axis), in HU;
    each slice gets independent noise from :func:`simulate_low_dose`. Randomizable the MONAI way: every call
    draws a seed from ``self.R`` (``set_random_state``), so a pipeline is reproducible. Pixel spacing comes
    from ``data[pixel_spacing_key]`` if given, else ``pixel_spacing_mm``, else a MetaTensor's affine.
    Slow (about a second a 512x512 slice): cache the result, do not run it in a training loop.

    ``calibration="self"`` (default): ``dose_fraction`` is a fraction of the image's own dose; each slice's
    own noise is measured, slices with too little flat soft tissue take the median level of the image's
    other slices (:func:`series_noise_fallbacks`), and an image with none raises ``ValueError`` unless
    ``own_noise_level`` (HU, the :func:`noise_level` statistic) is given for all its slices.
    ``calibration="mayo"``: the absolute Mayo flux (``incident_flux``, ``slice_thickness_mm`` in
    ``simulation_kwargs``). Other ``simulation_kwargs`` go to :func:`simulate_low_dose` unchanged.
    """

    def __init__(
        self,
        keys: KeysCollection,
        dose_fraction: float = 0.25,
        seed: int | None = 0,
        pixel_spacing_key: str | None = None,
        pixel_spacing_mm: float | None = None,
        allow_missing_keys: bool = False,
        calibration: str = "self",
        own_noise_level: float | None = None,
        **simulation_kwargs: Any,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        self.dose_fraction = check_dose_fraction(dose_fraction)
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
        self.calibration = calibration
        self.own_noise_level = own_noise_level
        self.pixel_spacing_key = pixel_spacing_key
        self.pixel_spacing_mm = pixel_spacing_mm
        self.simulation_kwargs = simulation_kwargs
        self._seed = 0
        self.set_random_state(seed)

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._seed = int(self.R.randint(0, 2**31 - 1))

    def _spacing(self, d: Mapping[Hashable, Any], key: Hashable) -> float:
        if self.pixel_spacing_key is not None:
            return _spacing_value(d[self.pixel_spacing_key], f"data[{self.pixel_spacing_key!r}]")
        if self.pixel_spacing_mm is not None:
            return _spacing_value(self.pixel_spacing_mm, "pixel_spacing_mm")
        img = d[key]
        if isinstance(img, MetaTensor):
            return _spacing_value(img.pixdim[:2], f"data[{key!r}].affine")
        raise ValueError(f"data[{key!r}]: no pixel spacing; pass pixel_spacing_key, pixel_spacing_mm or a MetaTensor")

    def _own_levels(self, arr: np.ndarray, slices: list[tuple], key: Hashable) -> list[float | None]:
        """The own noise level each slice is calibrated to (None with calibration "mayo")."""
        if self.calibration != "self":
            return [None] * len(slices)
        if self.own_noise_level is not None:
            return [float(self.own_noise_level)] * len(slices)
        levels = series_noise_fallbacks([scan_noise_level(arr[sl]) for sl in slices])
        if levels is None:
            raise ValueError(
                f"data[{key!r}]: no slice has enough flat soft tissue to measure its own noise "
                "(pass own_noise_level or calibration='mayo')"
            )
        return levels

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize()
        rng = np.random.default_rng(self._seed)
        for key in self.key_iterator(d):
            spacing = self._spacing(d, key)
            arr = convert_to_numpy(d[key], dtype=np.float32)
            if arr.ndim not in (3, 4):
                raise ValueError(f"data[{key!r}]: expected C x H x W or C x H x W x D, got shape {arr.shape}")
            out = np.empty_like(arr)
            slices = [(i[0], slice(None), slice(None), *i[1:]) for i in np.ndindex(arr.shape[0], *arr.shape[3:])]
            levels = self._own_levels(arr, slices, key)
            for sl, level in zip(slices, levels):
                out[sl] = simulate_low_dose(
                    arr[sl], self.dose_fraction, spacing, rng, calibration=self.calibration,
                    own_noise_level=level, **self.simulation_kwargs,
                )  # fmt: skip
            d[key] = convert_to_dst_type(out, d[key], dtype=np.float32)[0]
        return d
