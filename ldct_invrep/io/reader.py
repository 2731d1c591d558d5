"""Our readers as MONAI ``ImageReader`` s for ``LoadImage``/``LoadImaged`` (the bundles' inference preprocessing).

`LIRDicomReader` reads a DICOM CT series; `Image8bitReader` an 8-bit natural image.

MONAI's ``PydicomReader``/``ITKReader`` also read series folders; this reader exists so that MONAI
pipelines get exactly the checks and decisions of :func:`ldct_invrep.io.dicom_read.scan_series` (CT only,
sort along the slice normal, several series refused, pylibjpeg decoding, rescale rules, one-line
:class:`~ldct_invrep.errors.InputError`). The output follows MONAI's ITKReader convention: array axes
(col, row, slice) i.e. (x, y, z) unless ``reverse_indexing``, affine from those indices to RAS mm
(LPS with ``affine_lps_to_ras=False``), no channel axis.

Both readers return a file they cannot read as a :class:`_ReadFailure` that :meth:`get_data` raises: when a
reader's ``read`` raises, ``LoadImage`` tries its other readers (pydicom, nibabel, PIL, ...), which would read
a NIfTI file as a CT series, or replace the reader's one-line ``InputError`` with another library's error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from monai.data import ImageReader
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

from ldct_invrep.io.dicom_read import DicomSeries, read_series
from ldct_invrep.io.dicom_scan import scan_folder

__all__ = ["Image8bitReader", "LIRDicomReader"]


class _ReadFailure:
    """What ``read`` returns for a file it could not read: ``get_data`` raises ``error`` (``LoadImage`` does not
    try other readers after ``get_data``)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    @staticmethod
    def check(img: object) -> None:
        if isinstance(img, _ReadFailure):
            raise img.error


class LIRDicomReader(ImageReader):
    """Read a CT series (folder or single file) to HU for ``LoadImage(reader=LIRDicomReader())``.

    Args:
        series_uid, recursive, force, allow_single_slice: passed to :func:`~ldct_invrep.io.dicom_read.read_series`.
        affine_lps_to_ras: RAS affine (MONAI's default for ITK/pydicom readers) rather than DICOM's LPS.
        reverse_indexing: array in (slice, row, col) numpy order instead of MONAI's (x, y, z).
    """

    def __init__(
        self,
        series_uid: str | None = None,
        recursive: bool = False,
        force: bool = False,
        allow_single_slice: bool = True,
        affine_lps_to_ras: bool = True,
        reverse_indexing: bool = False,
    ) -> None:
        super().__init__()
        self.series_uid = series_uid
        self.recursive = recursive
        self.force = force
        self.allow_single_slice = allow_single_slice
        self.affine_lps_to_ras = affine_lps_to_ras
        self.reverse_indexing = reverse_indexing

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        """True for folders holding DICOM images and for DICOM files (by content: names often have no suffix)."""
        for name in ensure_tuple(filename):
            path = Path(name)
            if not path.exists():
                return False
            try:
                if not scan_folder(path).series:
                    return False
            except Exception:
                return False
        return True

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs) -> DicomSeries | list[DicomSeries]:
        """One :class:`DicomSeries` per path (several paths are stacked as channels by :meth:`get_data`)."""
        options = dict(
            series_uid=self.series_uid,
            recursive=self.recursive,
            force=self.force,
            allow_single_slice=self.allow_single_slice,
        )
        options.update(kwargs)
        try:
            series = [read_series(name, **options) for name in ensure_tuple(data)]
        except Exception as err:  # noqa: BLE001 - raised by get_data (module docstring)
            return _ReadFailure(err)  # type: ignore[return-value]
        return series if len(series) > 1 else series[0]

    def _meta(self, series: DicomSeries) -> dict:
        first = series.datasets[0]
        affine = series.affine(ras=self.affine_lps_to_ras)
        spacing_xyz = np.array(series.spacing[::-1], dtype=float)
        shape_xyz = np.array(series.hu.shape[::-1])
        if self.reverse_indexing:  # index (slice, row, col): permute the affine's columns accordingly
            perm = np.eye(4)[:, [2, 1, 0, 3]]
            affine = affine @ perm
            spacing_xyz, shape_xyz = spacing_xyz[::-1].copy(), shape_xyz[::-1].copy()
        return {
            MetaKeys.ORIGINAL_AFFINE: affine,
            MetaKeys.AFFINE: affine.copy(),
            MetaKeys.SPATIAL_SHAPE: shape_xyz,
            MetaKeys.SPACE: SpaceKeys.RAS if self.affine_lps_to_ras else SpaceKeys.LPS,
            MetaKeys.ORIGINAL_CHANNEL_DIM: "no_channel",
            "spacing": spacing_xyz,
            "series_uid": series.series_uid,
            "SeriesInstanceUID": series.series_uid,
            "StudyInstanceUID": str(first.get("StudyInstanceUID", "") or ""),
            "SeriesDescription": series.description,
            "Modality": str(first.get("Modality", "") or ""),
            "n_slices": len(series.paths),
            "reader": type(self).__name__,
        }

    def get_data(self, img: DicomSeries | Sequence[DicomSeries]) -> tuple[np.ndarray, dict]:
        """(array, meta): float32 HU, (x, y, z) or (slice, row, col); several series -> channel-first stack."""
        _ReadFailure.check(img)
        series_list = list(img) if isinstance(img, (list, tuple)) else [img]
        arrays, metas = [], []
        for series in series_list:
            arrays.append(series.hu if self.reverse_indexing else series.hu.transpose(2, 1, 0))
            metas.append(self._meta(series))
        meta = metas[0]
        if len(arrays) == 1:
            return arrays[0], meta
        for other in metas[1:]:
            if not np.array_equal(other[MetaKeys.SPATIAL_SHAPE], meta[MetaKeys.SPATIAL_SHAPE]) or not np.allclose(
                other[MetaKeys.AFFINE], meta[MetaKeys.AFFINE], atol=1e-4
            ):
                raise ValueError("series stacked as channels must share shape and affine")
        meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0
        return np.stack(arrays, axis=0), meta


class Image8bitReader(ImageReader):
    """Read an 8-bit image with :func:`ldct_invrep.data.natural.load_image_8bit`: float32 ``(channels, H, W)``
    holding ``k / 255`` (3: RGB, a grey file repeated; 1: grey, an RGB file's rounded BT.601 luma).

    MONAI's ``PILReader`` gives (W, H) arrays by default and converts to grey with PIL's integer luma; this
    reader gives exactly the arrays the natural-image training, evaluation and Python API see. Channel first
    (``original_channel_dim`` 0), rows then columns, no affine.
    """

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.channels = int(channels)

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        from ldct_invrep.data.natural import IMAGE_SUFFIXES

        return all(str(name).lower().endswith(IMAGE_SUFFIXES) for name in ensure_tuple(filename))

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs) -> np.ndarray | list[np.ndarray]:
        from ldct_invrep.data.natural import load_image_8bit

        try:
            images = [load_image_8bit(name, self.channels) for name in ensure_tuple(data)]
        except Exception as err:  # noqa: BLE001 - raised by get_data (module docstring)
            return _ReadFailure(err)  # type: ignore[return-value]
        return images if len(images) > 1 else images[0]

    def get_data(self, img: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, dict]:
        """(array, meta): one image ``(channels, H, W)``; several images of one size concatenated as channels."""
        _ReadFailure.check(img)
        images = list(img) if isinstance(img, (list, tuple)) else [img]
        array = np.concatenate(images, axis=0) if len(images) > 1 else images[0]
        meta = {
            MetaKeys.SPATIAL_SHAPE: np.array(array.shape[1:]),
            MetaKeys.ORIGINAL_CHANNEL_DIM: 0,
            "reader": type(self).__name__,
        }
        return array, meta
