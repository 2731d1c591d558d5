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

from ldct_invrep import __version__
from ldct_invrep.errors import InputError, Remedy
from ldct_invrep.io.atomic import OWNER, atomic_output_file

__all__ = ["NiftiVolume", "read_nifti", "write_nifti"]

logger = logging.getLogger(__name__)

#: What to do about non-finite voxels (``errors.Remedy``: the command line has no fill-value option).
FILL_VALUE = Remedy(" or pass a fill value", " (e.g. set them to -1024 HU)")


@dataclass
class NiftiVolume:
    """A CT volume from a NIfTI file: float32 HU (slice, row, col) = (k, j, i), and the file's affine."""

    hu: np.ndarray
    affine: np.ndarray
    orientation: str
    spacing: tuple[float, float, float]  # (k, j, i) voxel sizes in mm
    path: Path
    header: nib.Nifti1Header | None = None
    scaling: tuple[float, float] = (1.0, 0.0)  # the file's (scl_slope, scl_inter): stored value -> HU
    xform_codes: tuple[int, int] = (1, 1)
    """(qform_code, sform_code) of the file; (0, 0): no orientation, the affine is only the voxel sizes."""

    @property
    def has_geometry(self) -> bool:
        """False when the file has neither qform nor sform: where its voxels lie is unknown."""
        return any(self.xform_codes)


def read_nifti(path: str | os.PathLike, nonfinite_fill: float | None = None) -> NiftiVolume:
    """Read a 3D NIfTI (``.nii``/``.nii.gz``) as float32 HU, scl_slope/scl_inter applied.

    NaN or infinite voxels raise :class:`InputError` naming the file, unless ``nonfinite_fill`` is given
    (e.g. ``-1024.0``): then they are replaced by it with a warning. Trailing singleton axes are dropped;
    a 2D image becomes one slice; anything else with more than 3 axes is refused. A volume with no value
    below -500 (e.g. an 8-bit 0..255 image) is read with a warning that it does not look like HU, and one
    without qform/sform with a warning that its orientation is unknown.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        img = nib.load(str(path))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise TypeError(f"{type(img).__name__} is not NIfTI")
        stored = img.get_data_dtype()
        if stored.kind not in "biuf":  # RGB(A) records, complex: nothing to read as HU
            what = "colour (RGB) voxels" if stored.names else f"{stored} voxels"
            raise InputError(f"{path}: {what}, not grey values; a CT volume is needed")
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except InputError:
        raise
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
            raise InputError(path, f"{int(bad.sum())} NaN or infinite voxels; fix the file", remedies=[FILL_VALUE])
        logger.warning("%s: replaced %d NaN/infinite voxels by %g", path, int(bad.sum()), nonfinite_fill)
        data = np.where(bad, np.float32(nonfinite_fill), data)
    from ldct_invrep.io.dicom_headers import HU_LIKE_MIN

    if data.size and float(data.min()) >= HU_LIKE_MIN:
        logger.warning(
            "%s: values %g..%g (stored as %s) have nothing below %g, so they do not look like HU; "
            "results assume HU",
            path, float(data.min()), float(data.max()), img.get_data_dtype(), HU_LIKE_MIN,
        )  # fmt: skip
    codes = (int(img.header["qform_code"]), int(img.header["sform_code"])) if isinstance(img, nib.Nifti1Image) else (1, 1)
    if not any(codes):
        logger.warning("%s: no qform/sform, so the orientation and position of the voxels are unknown", path)
    affine = np.asarray(img.affine, dtype=float)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return NiftiVolume(
        hu=np.ascontiguousarray(data.transpose(2, 1, 0), dtype=np.float32),
        affine=affine,
        orientation="".join(nib.aff2axcodes(affine)),
        spacing=(float(zooms[2]), float(zooms[1]), float(zooms[0])),
        path=path,
        header=img.header.copy(),
        xform_codes=codes,
        scaling=(float(getattr(img.dataobj, "slope", 1.0)), float(getattr(img.dataobj, "inter", 0.0))),
    )


def write_nifti(
    path: str | os.PathLike,
    hu: np.ndarray,
    affine: np.ndarray,
    *,
    dtype: type | np.dtype = np.float32,
    slope_inter: tuple[float, float] = (1.0, 0.0),
    descrip: str | None = None,
    overwrite: bool = False,
    geometry: bool = True,
) -> Path:
    """Write a (slice, row, col) HU volume with the source ``affine`` (NIfTI ``(i, j, k)`` -> RAS), atomically.

    ``dtype`` float32 (default) stores HU as they are; an integer dtype stores ``(HU - inter) / slope`` of
    ``slope_inter`` (the header's scl_slope/scl_inter, so readers get HU back), rounded and clipped to its range.
    The sform carries ``affine`` (code 1, scanner), and so does the qform unless the affine is sheared
    (gantry tilt: a qform cannot hold that, code 0); units mm. ``geometry=False`` (a source without
    orientation) writes neither (codes 0), only the voxel sizes. ``descrip`` starts with ``ldct-invrep``,
    the stamp that lets ``overwrite`` replace only a file this tool wrote; ``descrip`` (e.g. the method) follows
    it, cut to the field's 80 bytes.
    """
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f"expected a (slice, row, col) volume, got shape {hu.shape}")
    if not np.all(np.isfinite(hu)):
        raise ValueError(f"{path}: volume contains NaN or infinite values")
    out_dtype = np.dtype(dtype)
    data = hu.transpose(2, 1, 0)
    slope, inter = (float(v) for v in slope_inter)
    if out_dtype.kind in "iu":
        info = np.iinfo(out_dtype)
        data = np.clip(np.rint((data - inter) / slope), info.min, info.max)
    else:
        slope, inter = 1.0, 0.0
    affine = np.asarray(affine, dtype=float)
    img = nib.Nifti1Image(np.asarray(data, dtype=out_dtype), affine if geometry else None)
    img.header.set_slope_inter(slope, inter)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if geometry:
        cols = affine[:3, :3] / zooms
        orthogonal = np.allclose(cols.T @ cols, np.eye(3), atol=1e-6)
        img.header.set_sform(affine, code=1)
        if orthogonal:
            img.header.set_qform(affine, code=1)
        else:
            img.header.set_qform(None, code=0)
    else:
        img.header.set_sform(None, code=0)
        img.header.set_qform(None, code=0)
        img.header.set_zooms(tuple(zooms))
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = f"{OWNER} {__version__}{' ' + descrip if descrip else ''}".encode("ascii", "replace")[:79]
    path = Path(path)
    if not path.name.endswith((".nii", ".nii.gz")):
        raise InputError(f"{path}: a NIfTI output name must end with .nii or .nii.gz")
    with atomic_output_file(path, overwrite=overwrite, own_only=True) as tmp:
        nib.save(img, str(tmp))
    return path
