"""HU windows and the HU <-> network-range mapping (CT side of the data flow in docs/architecture.md).

The networks see HU clipped to [-1024, 3072] and mapped linearly to [-1, 1] (the range of the generators' tanh
output); metrics and figures use named display windows. ``HUWindowd`` is the invertible MONAI transform for
pipelines; ``hu_to_net`` / ``net_to_hu`` are the same maps as plain functions (numpy or torch).

:data:`WINDOWS` is the package's one window registry (``metrics`` reads it too). Window names and ``(lo, hi)``
pairs are user input (CLI options, configs), so a bad one raises :class:`~ldct_invrep.errors.InputError`
(a ``ValueError``), which the CLI reports in one line with exit status 2.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import InvertibleTransform, MapTransform, ScaleIntensityRange
from monai.utils import TraceKeys

from ldct_invrep.errors import InputError

__all__ = [
    "NETWORK_HU_RANGE",
    "NETWORK_RANGE",
    "WINDOWS",
    "HUWindowd",
    "RestoreOutsideWindowd",
    "hu_to_net",
    "keep_outside_window",
    "net_to_hu",
    "window_from_level_width",
    "window_from_name_or_range",
    "window_key",
]

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def window_from_level_width(level: float, width: float) -> tuple[float, float]:
    """``(level - width / 2, level + width / 2)``: a display window given as level (centre) and width."""
    return (float(level) - float(width) / 2.0, float(level) + float(width) / 2.0)


#: Named windows as (lo, hi) HU. "full" is the network range; the others are the usual display windows.
WINDOWS: dict[str, tuple[float, float]] = {
    "full": (-1024.0, 3072.0),
    "abdomen": window_from_level_width(40, 400),  # (-160, 240): RED-CNN / CTformer metric window
    "soft_tissue": window_from_level_width(40, 400),
    "lung": window_from_level_width(-600, 1500),  # (-1350, 150)
    "bone": window_from_level_width(400, 1800),  # (-500, 1300)
    "brain": window_from_level_width(40, 80),  # (0, 80)
    "liver": window_from_level_width(30, 150),  # (-45, 105)
    "mediastinum": window_from_level_width(50, 350),  # (-125, 225)
}
#: HU range mapped onto the network range.
NETWORK_HU_RANGE: tuple[float, float] = WINDOWS["full"]
#: Range of the networks' inputs and tanh outputs.
NETWORK_RANGE: tuple[float, float] = (-1.0, 1.0)


def window_key(name: str) -> str:
    """The :data:`WINDOWS` key of a window name: case-insensitive, ``-`` and ``_`` alike ("Soft-Tissue")."""
    key = name.strip().lower().replace("-", "_")
    if key not in WINDOWS:
        raise InputError(f"window {name!r}: unknown window name; choose one of {', '.join(sorted(WINDOWS))} or give (lo, hi) HU")
    return key


def window_from_name_or_range(window: str | Sequence[float]) -> tuple[float, float]:
    """Return ``(lo, hi)`` HU for a name in :data:`WINDOWS` (see :func:`window_key`) or a ``(lo, hi)`` pair.

    Raises :class:`~ldct_invrep.errors.InputError` for an unknown name or a pair that is not finite lo < hi.
    """
    if isinstance(window, str):
        return WINDOWS[window_key(window)]
    try:
        values = [float(v) for v in window]
    except (TypeError, ValueError):
        raise InputError(f"window {window!r}: expected a window name or (lo, hi) HU with lo < hi") from None
    if len(values) != 2 or not all(np.isfinite(values)) or values[0] >= values[1]:
        raise InputError(f"window {window!r}: a window must be (lo, hi) HU with finite lo < hi")
    return values[0], values[1]


def _out_range(out_range: Sequence[float]) -> tuple[float, float]:
    a, b = (float(v) for v in out_range)
    if not (np.isfinite(a) and np.isfinite(b)) or a == b:
        raise ValueError(f"out_range must be two different finite numbers, got {out_range!r}")
    return a, b


def _as_float(arr: Any) -> Any:
    if isinstance(arr, torch.Tensor):
        return arr if arr.is_floating_point() else arr.float()
    out = np.asarray(arr)
    return out if np.issubdtype(out.dtype, np.floating) else out.astype(np.float32)


def hu_to_net(
    arr: ArrayT, window: str | Sequence[float] = NETWORK_HU_RANGE, out_range: Sequence[float] = NETWORK_RANGE
) -> ArrayT:
    """Clip HU to ``window`` and map it linearly onto ``out_range`` (default [-1024, 3072] -> [-1, 1])."""
    lo, hi = window_from_name_or_range(window)
    a, b = _out_range(out_range)
    x = _as_float(arr)
    x = x.clamp(lo, hi) if isinstance(x, torch.Tensor) else np.clip(x, lo, hi)
    return (x - lo) * ((b - a) / (hi - lo)) + a


def net_to_hu(
    arr: ArrayT, window: str | Sequence[float] = NETWORK_HU_RANGE, out_range: Sequence[float] = NETWORK_RANGE
) -> ArrayT:
    """Inverse of :func:`hu_to_net` (linear, no clipping): ``out_range`` -> ``window`` HU."""
    lo, hi = window_from_name_or_range(window)
    a, b = _out_range(out_range)
    x = _as_float(arr)
    return (x - a) * ((hi - lo) / (b - a)) + lo


class HUWindowd(MapTransform, InvertibleTransform):
    """Clip HU to a window and map it linearly onto ``out_range``; invertible (network range -> HU).

    The forward map is MONAI's ``ScaleIntensityRange(a_min=lo, a_max=hi, b_min, b_max, clip=True)``. That
    transform is not invertible, so the inverse is ours: the window is recorded in the MetaTensor's
    ``applied_operations`` like any MONAI invertible transform, and ``.inverse(data)`` or
    ``monai.transforms.Invertd`` map network-range values (e.g. a prediction) back to HU. Values outside the
    window were clipped by the forward map and come back as the window's edges (:class:`RestoreOutsideWindowd`
    gives them their input values). With ``monai.data.set_track_meta(False)`` nothing is traced (MONAI's
    rule); map such values with :func:`net_to_hu`.
    """

    backend = ScaleIntensityRange.backend

    def __init__(
        self,
        keys: KeysCollection,
        window: str | Sequence[float] = "full",
        out_range: Sequence[float] = NETWORK_RANGE,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.window = window_from_name_or_range(window)
        self.out_range = _out_range(out_range)
        lo, hi = self.window
        a, b = self.out_range
        self.scaler = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=a, b_max=b, clip=True, dtype=np.float32)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.scaler(d[key])
            self.push_transform(d, key, extra_info={"window": list(self.window), "out_range": list(self.out_range)})
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            info = self.get_most_recent_transform(d, key)[TraceKeys.EXTRA_INFO]
            window = [float(v) for v in info["window"]]
            out_range = [float(v) for v in info["out_range"]]
            d[key] = net_to_hu(d[key], window, out_range)
            self.pop_transform(d, key)
        return d


def keep_outside_window(out: ArrayT, source: ArrayT, window: str | Sequence[float] = NETWORK_HU_RANGE) -> ArrayT:
    """``out`` with every pixel whose ``source`` value lies outside ``window`` given back that source value (in
    place for numpy arrays; returns the array). The network only ever saw the window (padding outside the field
    of view and dense metal were clipped), so a denoised image keeps those pixels as they were; the one rule for
    ``inference.SliceDenoiser`` and the bundles' :class:`RestoreOutsideWindowd`."""
    lo, hi = window_from_name_or_range(window)
    if isinstance(out, torch.Tensor):
        src = torch.as_tensor(source, device=out.device, dtype=out.dtype)
        outside = (src < lo) | (src > hi)
        return torch.where(outside, src, out)
    src = np.asarray(source)
    outside = (src < lo) | (src > hi)
    out[outside] = src[outside]
    return out


class RestoreOutsideWindowd(MapTransform):
    """Postprocessing after ``Invertd(HUWindowd)``: the pixels of ``keys`` whose value in ``source_key`` (a copy
    of the input taken before windowing, e.g. ``CopyItemsd``) lies outside ``window`` take that input value.

    ``HUWindowd``'s inverse cannot do it: its forward map clipped those values away. MONAI has no transform
    that merges two images by an intensity condition, hence this one (:func:`keep_outside_window`).
    """

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str,
        window: str | Sequence[float] = "full",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.source_key = source_key
        self.window = window_from_name_or_range(window)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = keep_outside_window(d[key], d[self.source_key], self.window)
        return d
