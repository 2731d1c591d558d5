"""Normal-dose CT volumes as axial HU slices, what the CT training cache is made from (:func:`read_ct_volumes`).

DICOM series (each series of a folder) and NIfTI volumes are read through :mod:`ldct_invrep.io`; NIfTI volumes
are reoriented to axial slices in DICOM display orientation (:func:`nifti_axial_slices`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ldct_invrep.data.image_sets import sha256_file
from ldct_invrep.errors import InputError

__all__ = ["PADDING_BELOW_HU", "CTVolume", "iter_ct_volumes", "nifti_axial_slices", "read_ct_volumes"]

#: Stored values below this (HU) are padding outside the field of view (GE -3024, Toshiba -2048), not air.
PADDING_BELOW_HU = -1500.0


@dataclass
class CTVolume:
    """One normal-dose volume as axial slices: HU (slice, row, col) in display orientation, pixel spacing (row, col).

    ``slice_thickness_mm`` sets how many photons a detector bin collects in the low-dose simulation.
    """

    name: str
    hu: np.ndarray
    pixel_spacing: tuple[float, float]
    meta: dict[str, Any] = field(default_factory=dict)
    slice_thickness_mm: float = 1.0


def nifti_axial_slices(hu_kji: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Axial slices of a NIfTI volume in DICOM display orientation, and their (row, col) spacing.

    ``hu_kji`` is ``ldct_invrep.io.read_nifti``'s (k, j, i) array of the file's voxel axes, ``affine`` maps
    (i, j, k) to RAS mm. The volume is reoriented to LPS voxel axes (whatever the file's orientation, e.g.
    RAS or a sagittal acquisition), so each returned slice has rows running anterior -> posterior and
    columns patient right -> left (the patient's right on the viewer's left, as DICOM axial images), and
    slices run inferior -> superior.
    """
    import nibabel as nib

    data_ijk = hu_kji.transpose(2, 1, 0)
    source = nib.orientations.io_orientation(np.asarray(affine))
    transform = nib.orientations.ornt_transform(source, nib.orientations.axcodes2ornt(("L", "P", "S")))
    lps = nib.orientations.apply_orientation(data_ijk, transform)
    zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    out_zooms = np.empty(3)
    for axis, (target, _) in enumerate(transform):
        out_zooms[int(target)] = zooms[axis]
    return np.ascontiguousarray(lps.transpose(2, 1, 0), dtype=np.float32), (float(out_zooms[1]), float(out_zooms[0]))


def read_ct_volumes(source: str | Path) -> list[CTVolume]:
    """Normal-dose volumes of ``source``: a NIfTI file, a DICOM file, or a folder of DICOM series (each series).

    Reading goes through ``ldct_invrep.io``. DICOM series must be axial (slice normal within ~37 degrees of
    the patient z axis); NIfTI volumes are reoriented to axial slices (``nifti_axial_slices``).
    """
    from ldct_invrep.io import read_all_series, read_nifti

    source = Path(source)
    if source.is_file() and source.name.lower().endswith((".nii", ".nii.gz")):
        vol = read_nifti(source)
        hu, spacing = nifti_axial_slices(vol.hu, vol.affine)
        meta = {"kind": "nifti", "orientation": vol.orientation, "sha256": sha256_file(source)}
        thickness = float(np.sqrt((np.asarray(vol.affine)[:3, :3] ** 2).sum(axis=0)).max())  # the slab axis
        return [CTVolume(source.name, hu, spacing, meta, slice_thickness_mm=thickness)]
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    volumes = []
    for series in read_all_series(source):
        normal = np.asarray(series.direction)[:, 2]
        if abs(float(normal[2])) < 0.8:
            raise InputError(
                f"{source}: series {series.series_uid} is not axial (slice normal {np.round(normal, 3).tolist()})"
            )
        name = source.name if len(volumes) == 0 else f"{source.name}#{len(volumes)}"
        meta = {
            "kind": "dicom",
            "series_uid": series.series_uid,
            "description": series.description,
            "n_files": len(series.paths),
        }
        thickness = float(getattr(series.datasets[0], "SliceThickness", None) or series.spacing[0])
        volumes.append(
            CTVolume(
                name,
                series.hu.astype(np.float32),
                (float(series.spacing[1]), float(series.spacing[2])),
                meta,
                slice_thickness_mm=thickness,
            )
        )
    return volumes


def iter_ct_volumes(sources: Sequence[tuple[str | Path, bool]]) -> Iterator[tuple[CTVolume, str | Path, bool]]:
    """(volume, source, held out) for every volume of every source, one source in memory at a time."""
    for source, held_out in sources:
        for volume in read_ct_volumes(source):
            yield volume, source, held_out
