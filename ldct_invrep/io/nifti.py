"""NIfTI CT volumes through nibabel, in the package's (slice, row, col) order.

nibabel arrays are indexed ``(i, j, k)``; here ``hu[k, j, i] == data[i, j, k]`` so that NIfTI and DICOM
volumes share the (slice, row, col) layout the denoiser iterates over, while the affine keeps mapping
``(i, j, k)`` to RAS mm exactly as in the file. MONAI's ``NibabelReader``/``NibabelWriter`` would do the
reading/writing too, but not the finite-value check, the axis convention shared with :mod:`.dicom`, or
the atomic replace.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ldct_invrep.errors import InputError
from ldct_invrep.io.atomic import atomic_output_file

__all__ = ["NiftiVolume", "read_nifti", "write_nifti"]

logger = logging.getLogger(__name__)


@dataclass
class NiftiVolume:
    """A CT volume from a NIfTI file: float32 HU (slice, row, col) = (k, j, i), and the file's affine."""

    hu: np.ndarray
    affine: np.ndarray
    orientation: str
    spacing: tuple[float, float, float]  # (k, j, i) voxel sizes in mm
    path: Path
    header: nib.Nifti1Header | None = None


def read_nifti(path: str | os.PathLike, nonfinite_fill: float | None = None) -> NiftiVolume:
    """Read a 3D NIfTI (``.nii``/``.nii.gz``) as float32 HU, scl_slope/scl_inter applied.

    NaN or infinite voxels raise :class:`InputError` naming the file, unless ``nonfinite_fill`` is given
    (e.g. ``-1024.0``): then they are replaced by it with a warning. Trailing singleton axes are dropped;
    a 2D image becomes one slice; anything else with more than 3 axes is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        img = nib.load(str(path))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise TypeError(f"{type(img).__name__} is not NIfTI")
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as exc:
        raise InputError(f"{path}: not a readable NIfTI file ({' '.join(str(exc).split())[:200]})") from exc
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise InputError(f"{path}: {data.ndim}D image of shape {data.shape}; a 3D CT volume is needed")
    bad = ~np.isfinite(data)
    if bad.any():
        if nonfinite_fill is None:
            raise InputError(f"{path}: {int(bad.sum())} NaN or infinite voxels; fix the file or pass a fill value")
        logger.warning("%s: replaced %d NaN/infinite voxels by %g", path, int(bad.sum()), nonfinite_fill)
        data = np.where(bad, np.float32(nonfinite_fill), data)
    affine = np.asarray(img.affine, dtype=float)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return NiftiVolume(
        hu=np.ascontiguousarray(data.transpose(2, 1, 0), dtype=np.float32),
        affine=affine,
        orientation="".join(nib.aff2axcodes(affine)),
        spacing=(float(zooms[2]), float(zooms[1]), float(zooms[0])),
        path=path,
        header=img.header.copy(),
    )


def write_nifti(
    path: str | os.PathLike,
    hu: np.ndarray,
    affine: np.ndarray,
    *,
    dtype: type | np.dtype = np.float32,
    overwrite: bool = False,
) -> Path:
    """Write a (slice, row, col) HU volume with the source ``affine`` (NIfTI ``(i, j, k)`` -> RAS), atomically.

    ``dtype`` float32 (default) stores HU as they are; an integer dtype rounds and clips to its range.
    qform and sform both carry ``affine`` (code 1, scanner), units mm.
    """
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f"expected a (slice, row, col) volume, got shape {hu.shape}")
    if not np.all(np.isfinite(hu)):
        raise ValueError(f"{path}: volume contains NaN or infinite values")
    out_dtype = np.dtype(dtype)
    data = hu.transpose(2, 1, 0)
    if out_dtype.kind in "iu":
        info = np.iinfo(out_dtype)
        data = np.clip(np.rint(data), info.min, info.max)
    img = nib.Nifti1Image(np.asarray(data, dtype=out_dtype), np.asarray(affine, dtype=float))
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    path = Path(path)
    if not path.name.endswith((".nii", ".nii.gz")):
        raise InputError(f"{path}: a NIfTI output name must end with .nii or .nii.gz")
    with atomic_output_file(path, overwrite=overwrite) as tmp:
        nib.save(img, str(tmp))
    return path
