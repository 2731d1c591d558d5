"""The data of an adaptation: the user's low-dose slices (the noisy domain X), the normal-dose slices (the clean
domain Y) and the held-out slices of the no-reference check, in network range."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ldct_invrep.errors import InputError
from ldct_invrep.image_quality import SliceMasks, slice_masks

#: Slices read from all low-dose inputs together (evenly spaced within each series): bounds memory.
DEFAULT_MAX_SLICES = 200
#: Patch size of the unpaired training (paper section 4.1).
PATCH_SIZE = 64
#: At most this many slices are held out for the check.
MAX_HELD_OUT = 8
#: Below this many training slices ``prepare_data`` warns: adapting on 2 real quarter-dose slices made the
#: model 2.6-3.1 dB worse against full dose (docs/adapt.md, "Measured"); larger sets are not measured yet.
FEW_TRAINING_SLICES = 20


@dataclass
class SeriesSlices:
    """Slices of one input series in HU and how a model header names it: its SeriesInstanceUID, else a hash
    of the slices read (never a path, patient name or ID)."""

    hu: np.ndarray  # (n, H, W) float32 HU
    pixel_spacing_mm: float
    series_uid: str = ""
    label: str = ""  # a name of the caller's (e.g. "package sample series"); recorded when given

    def identity(self) -> dict[str, Any]:
        out: dict[str, Any] = {"series_uid": self.series_uid} if self.series_uid else {
            "sha256": hashlib.sha256(np.ascontiguousarray(self.hu, dtype=np.float32).tobytes()).hexdigest()[:16]
        }
        if self.label:
            out["label"] = self.label
        out["slices"] = len(self.hu)
        return out


def _evenly_spaced(n: int, count: int) -> list[int]:
    """``count`` indices of ``range(n)`` spread evenly (all of them when ``count >= n``)."""
    if count >= n:
        return list(range(n))
    return sorted({int((k + 0.5) * n / count) for k in range(count)})


def read_series_slices(
    paths: Sequence[str | os.PathLike[str]], *, recursive: bool = False, max_slices: int | None = DEFAULT_MAX_SLICES
) -> list[SeriesSlices]:
    """Every CT series in ``paths`` (DICOM folders or files, all series of a folder; NIfTI files) as HU slices,
    at most ``max_slices`` in all (shared out by series length, evenly spaced within each series).

    Bad input (no DICOM images, a non-CT modality, unreadable files) is an ``InputError`` naming the file.
    """
    from ldct_invrep.io import read_nifti, scan_all_series

    opened: list[tuple[Any, int]] = []  # (SeriesInfo or NiftiVolume, slices)
    for path in paths:
        path = Path(path)
        if str(path).lower().endswith((".nii", ".nii.gz")) and path.is_file():
            vol = read_nifti(path)
            opened.append((vol, vol.hu.shape[0]))
        else:
            opened += [(info, len(info)) for info in scan_all_series(path, recursive=recursive)]
    total = sum(n for _, n in opened)
    out = []
    for source, n in opened:
        count = n if max_slices is None or total <= max_slices else max(1, int(max_slices * n / total))
        idx = _evenly_spaced(n, count)
        if hasattr(source, "read_hu"):
            hu, uid = source.read_hu(idx), source.series_uid
        else:
            hu, uid = source.hu[idx], ""
        out.append(SeriesSlices(np.asarray(hu, dtype=np.float32), float(np.mean(source.spacing[1:])), uid))
    return out


def normal_dose_slices(paths: Sequence[str | os.PathLike[str]] = (), *, recursive: bool = False) -> list[SeriesSlices]:
    """The clean domain: the package's sample series (normal dose, 20 slices) and every series in ``paths``."""
    from ldct_invrep.package_files import sample_series_path

    sample = read_series_slices([sample_series_path()])
    for series in sample:
        series.label = "package sample series"
    return sample + read_series_slices(paths, recursive=recursive, max_slices=None)


def default_holdout(n: int) -> int:
    """Slices held out of ``n`` by default: 10 %, at least 1, at most ``MAX_HELD_OUT``."""
    return max(1, min(MAX_HELD_OUT, round(0.1 * n)))


@dataclass
class AdaptData:
    """The two domains of an adaptation, in network range, and the held-out low-dose slices (HU) with their masks."""

    train_noisy: list[np.ndarray]
    clean: list[np.ndarray]
    held_out_hu: list[np.ndarray]
    held_out_masks: list[SliceMasks]
    record: dict[str, Any] = field(default_factory=dict)


def _choose_held_out(slices: list[tuple[np.ndarray, float]], count: int) -> tuple[list[int], list[SliceMasks]]:
    """``count`` slices spread over the input, each the one nearest its even position that has enough flat
    soft tissue for the check (masks are computed only for the slices looked at)."""
    n = len(slices)
    chosen: list[int] = []
    masks: list[SliceMasks] = []
    looked: dict[int, SliceMasks] = {}
    for target in _evenly_spaced(n, count):
        for offset in range(n):
            hits = [i for i in (target - offset, target + offset) if 0 <= i < n and i not in chosen]
            found = None
            for i in hits:
                if i not in looked:
                    looked[i] = slice_masks(*slices[i])
                if looked[i].usable:
                    found = i
                    break
            if found is not None:
                chosen.append(found)
                masks.append(looked[found])
                break
    return chosen, masks


def prepare_data(
    low_dose: Sequence[SeriesSlices],
    normal_dose: Sequence[SeriesSlices],
    holdout: int | None = None,
    source: str = "low-dose input",
) -> AdaptData:
    """Split the low-dose slices into training slices and ``holdout`` held-out slices (default
    :func:`default_holdout`) that have flat soft tissue for the check; convert both domains to network range.

    ``source`` names the input in error messages (one line, an ``InputError``): no slices, slices smaller
    than the 64-pixel patch, too few slices to hold some out, no slice with flat soft tissue; and in the warning
    for fewer than :data:`FEW_TRAINING_SLICES` training slices.
    """
    from ldct_invrep.transforms.windowing import hu_to_net

    slices = [(s.hu[k], s.pixel_spacing_mm) for s in low_dose for k in range(len(s.hu))]
    n = len(slices)
    if n == 0:
        raise InputError(f"{source}: no slices to adapt on")
    for series in list(low_dose) + list(normal_dose):
        if min(series.hu.shape[-2:]) < PATCH_SIZE:
            rows, cols = series.hu.shape[-2:]
            raise InputError(f"{source}: slices of {rows}x{cols} are smaller than the {PATCH_SIZE}-pixel patch")
    count = default_holdout(n) if holdout is None else int(holdout)
    if count < 1 or n - count < 1:
        raise InputError(
            f"{source}: {n} slice{'s' if n != 1 else ''}; adapt holds out {max(count, 1)} for its check and needs "
            "at least one more to train on"
        )
    held, masks = _choose_held_out(slices, count)
    if len(held) < count:
        raise InputError(
            f"{source}: {'no' if not held else f'only {len(held)}'} slice(s) with enough flat soft tissue for the "
            f"no-reference check ({count} needed); add abdominal or chest slices, or hold out fewer"
        )
    train = [hu_to_net(slices[i][0]) for i in range(n) if i not in held]
    clean = [hu_to_net(s.hu[k]) for s in normal_dose for k in range(len(s.hu))]
    if not clean:
        raise InputError(f"{source}: no normal-dose slices for the clean domain")
    if len(train) < FEW_TRAINING_SLICES:
        warnings.warn(
            f"{source}: adapting on {len(train)} low-dose slice{'s' if len(train) != 1 else ''}; on the real scans "
            "measured, adapting on 2 slices made the model 2.6-3.1 dB worse against full dose (docs/adapt.md): "
            f"give {FEW_TRAINING_SLICES} or more, and compare the result with full-dose references (ldct-invrep evaluate)",
            stacklevel=2,
        )
    record = {
        "low_dose_series": [s.identity() for s in low_dose],
        "normal_dose_series": [s.identity() for s in normal_dose],
        "training_slices": len(train),
        "held_out_slices": sorted(held),
    }
    return AdaptData(train, clean, [slices[i][0] for i in held], masks, record)
