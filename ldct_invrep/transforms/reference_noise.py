"""Reference-noise blending: keep in the restored slice the noise a normal-dose scan would have.

LIR's restoration ``G_Y(E_X(x))`` (section 3.3) removes the noise it finds, all of it. A normal-dose scan is
not noise-free, and a low-dose scan's noise is the normal-dose noise plus more: ``x = c + n_r + n_e`` with
``n_r`` (std ``sigma_r``) and ``n_e`` independent. Given a noise-free estimate ``c`` and the input ``x``, the
minimum-mean-squared-error estimate of the normal-dose image ``c + n_r`` is

    y = c + a (x - c),    a = sigma_r^2 / sigma_x^2 = (sigma_r / sigma_x)^2,

since ``E[n_r | n_r + n_e] = sigma_r^2 / (sigma_r^2 + sigma_e^2) (n_r + n_e)``. On a noisy input ``a`` is small
(the output is almost the network's); on an input nearly at normal dose ``a`` nears 1 and the input's detail
and texture come back instead of being smoothed away, the way CT scanners blend iterative or learned
reconstructions with the filtered back-projection. ``sigma_x`` is the slice's own noise in flat soft tissue
(:func:`~ldct_invrep.transforms.lowdose.scan_noise_level`, the statistic dose-relative simulation uses);
``sigma_r`` is the reference noise a model ships with in its header (``reference_noise_hu``, in the same
statistic's units). A slice without enough flat soft tissue to measure keeps the network's output (``a = 0``).

Not in MONAI: the weight depends on a CT-specific noise measurement of each input slice.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from ldct_invrep.transforms.lowdose.scan_noise import scan_noise_level
from ldct_invrep.transforms.windowing import NETWORK_HU_RANGE


def check_reference_noise(reference_noise_hu: float) -> float:
    """``reference_noise_hu`` as a float, or ``ValueError`` when it is negative or not finite (NaN)."""
    if not (math.isfinite(reference_noise_hu) and reference_noise_hu >= 0):
        raise ValueError(f"reference_noise_hu must be a finite number >= 0, got {reference_noise_hu}")
    return float(reference_noise_hu)


def reference_noise_weight(input_noise_hu: float | None, reference_noise_hu: float) -> float:
    """The blend weight ``a = min(1, (sigma_r / sigma_x)^2)``; 0 when ``reference_noise_hu`` is 0 or the input's
    noise is unknown (None) or not positive."""
    check_reference_noise(reference_noise_hu)
    if not reference_noise_hu or input_noise_hu is None or not input_noise_hu > 0:
        return 0.0
    return float(min(1.0, (reference_noise_hu / input_noise_hu) ** 2))


def blend_to_reference_noise(
    noisy_hu: np.ndarray, restored_hu: np.ndarray, reference_noise_hu: float, padding: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """``(restored + a (noisy - restored), a)`` for one 2D HU slice; ``padding`` marks pixels outside the field of
    view, which never count in the noise measurement."""
    noisy = np.asarray(noisy_hu, dtype=np.float32)
    restored = np.asarray(restored_hu, dtype=np.float32)
    if noisy.ndim != 2 or noisy.shape != restored.shape:
        raise ValueError(f"expected two HU slices of one shape, got {noisy.shape} and {restored.shape}")
    a = 0.0
    if reference_noise_hu:
        a = reference_noise_weight(scan_noise_level(noisy, padding), reference_noise_hu)
    if a == 0.0:
        return restored, 0.0
    return restored + np.float32(a) * (noisy - restored), a


def blend_slices_to_reference_noise(
    noisy_hu: np.ndarray, restored_hu: np.ndarray, reference_noise_hu: float, padding_below: float | None
) -> tuple[np.ndarray, list[float]]:
    """:func:`blend_to_reference_noise` of each slice of two ``(n, H, W)`` HU stacks; input pixels below
    ``padding_below`` HU are padding. Returns the blended stack and each slice's weight ``a``."""
    if noisy_hu.shape != restored_hu.shape:
        raise ValueError(f"input has shape {noisy_hu.shape}, the restored image {restored_hu.shape}")
    out = np.empty(restored_hu.shape, dtype=np.float32)
    weights = []
    for i in range(len(out)):
        padding = None if padding_below is None else noisy_hu[i] < padding_below
        out[i], a = blend_to_reference_noise(noisy_hu[i], restored_hu[i], reference_noise_hu, padding=padding)
        weights.append(a)
    return out, weights


class ReferenceNoiseBlendd(MapTransform):
    """Dictionary form of :func:`blend_to_reference_noise` for MONAI post-processing: ``keys`` hold the restored
    HU image, ``input_key`` the HU input it was restored from, both of one layout: a 2D slice ``(H, W)`` or
    ``(1, H, W)``, or a volume, with or without a channel axis of 1 (a MetaTensor's dimension is read from its
    affine, a plain 3D array with a first axis of 1 is one channel-first slice). A volume is blended slice by
    slice, each measured as the (row, column) image it is, like ``inference.SliceDenoiser``: ``slice_dim`` 2
    for MONAI's ``(x, y, z)`` (each z-slice transposed), 0 for the ``(slice, row, column)`` order of
    ``io.LIRDicomReader(reverse_indexing=True)`` (``SliceInferer(spatial_dim=0)``). Input pixels below
    ``padding_below`` HU (outside the field of view) never count in the noise measurement."""

    def __init__(
        self,
        keys: KeysCollection,
        input_key: str,
        reference_noise_hu: float,
        padding_below: float | None = NETWORK_HU_RANGE[0],
        slice_dim: int = 2,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        if slice_dim not in (0, 2):
            raise ValueError(f"slice_dim must be 2 ((x, y, z)) or 0 ((slice, row, column)), got {slice_dim}")
        self.slice_dim = slice_dim
        self.input_key = input_key
        self.reference_noise_hu = check_reference_noise(reference_noise_hu)
        self.padding_below = padding_below

    @staticmethod
    def _is_volume(image: torch.Tensor) -> bool:
        """Whether ``image`` is a MONAI volume ``(x, y, z)`` / ``(1, x, y, z)`` rather than a 2D slice."""
        if image.ndim == 3 and isinstance(image, MetaTensor):
            return image.affine.shape[-1] == 4
        if image.ndim == 4 and image.shape[0] == 1 or image.ndim == 3 and image.shape[0] != 1:
            return True
        if image.ndim in (2, 3):
            return False
        raise ValueError(f"expected (H, W), (1, H, W), (x, y, z) or (1, x, y, z), got shape {tuple(image.shape)}")

    def _slices(self, image: torch.Tensor, volume: bool) -> np.ndarray:
        """``image`` as ``(n, rows, columns)`` HU slices (a view for ``slice_dim`` 0)."""
        array = image.detach().cpu().numpy().astype(np.float32)
        if not volume:
            return array.reshape((1,) + array.shape[-2:])
        array = array.reshape(array.shape[-3:])
        return array.T if self.slice_dim == 2 else array

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if not self.reference_noise_hu:
            return d
        source = torch.as_tensor(d[self.input_key])
        for key in self.key_iterator(d):
            restored = torch.as_tensor(d[key])  # a MetaTensor stays one, with its metadata
            volume = self._is_volume(restored)
            out, _ = blend_slices_to_reference_noise(
                self._slices(source, volume), self._slices(restored, volume), self.reference_noise_hu, self.padding_below
            )
            out = np.ascontiguousarray(out.T if volume and self.slice_dim == 2 else out).reshape(tuple(restored.shape))
            d[key] = restored.clone().copy_(torch.from_numpy(out))
        return d
