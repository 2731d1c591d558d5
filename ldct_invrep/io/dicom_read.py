"""DICOM CT series, reading: find, scan (headers only) and read to HU.

Reading is split in two so that the CLI runs in constant memory:

* :func:`scan_series` reads the headers only (``stop_before_pixels``), checks them, sorts the slices along
  the slice normal ``IPP . (row_cos x col_cos)`` (not ``InstanceNumber``) and returns a :class:`SeriesInfo`
  with the geometry;
* :meth:`SeriesInfo.read_hu` / :func:`iter_series_slices` decode any slices on demand to float32 HU
  (``stored * RescaleSlope + RescaleIntercept``), compressed transfer syntaxes through pydicom's pixel
  decoders (pylibjpeg plugins preferred: JPEG 2000, JPEG lossless, JPEG-LS, RLE).

:func:`read_series` (the whole volume) is built on the two. The steps live in their own modules:
:mod:`~ldct_invrep.io.dicom_scan` (folder scan), :mod:`~ldct_invrep.io.dicom_headers` (header checks,
order and geometry) and :mod:`~ldct_invrep.io.dicom_series` (:class:`SeriesInfo`, decoding). Writing a
derived series is :mod:`ldct_invrep.io.dicom_write`'s job.

Volumes are ``(slice, row, col)``; ``spacing`` is ``(slice, row, col)`` in mm; ``direction`` is ITK-style:
its *columns* are the LPS directions of the col index (DICOM row cosine), the row index (column cosine)
and the slice index (the normal), so ``direction == np.reshape(sitk_image.GetDirection(), (3, 3))``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from ldct_invrep.errors import InputError, Remedy
from ldct_invrep.io.dicom_headers import build_series_info
from ldct_invrep.io.dicom_scan import scan_images
from ldct_invrep.io.dicom_series import SeriesInfo

# The ends of error messages that name a parameter (``errors.Remedy``: API and command-line wording).
CHOOSE_SERIES = (
    Remedy("choose one with series_uid", "choose one with --series-uid", "--series-uid", "give the folder of one series"),
    Remedy(" (or read them all with read_all_series)", " (or read them all with --all-series)", "--all-series"),
)

__all__ = [
    "CHOOSE_SERIES",
    "DicomSeries",
    "iter_series_slices",
    "read_all_series",
    "read_series",
    "scan_all_series",
    "scan_series",
]


def scan_series(
    path: str | os.PathLike,
    series_uid: str | None = None,
    recursive: bool = False,
    force: bool = False,
    allow_single_slice: bool = True,
) -> SeriesInfo:
    """Headers, order and geometry of the one CT series in ``path`` (a folder or a single file), no pixels.

    A folder holding several series raises :class:`InputError` listing them; pick one with ``series_uid``
    (or take them all with :func:`scan_all_series`). ``force`` accepts a non-CT modality and a missing
    RescaleSlope/Intercept (stored values then taken as HU).
    """
    scan = scan_images(path, recursive)
    if series_uid is None:
        if len(scan.series) > 1:
            raise InputError(path, f"{len(scan.series)} DICOM series found: {scan.summary()}; ", remedies=CHOOSE_SERIES)
        series_uid = next(iter(scan.series))
    elif series_uid not in scan.series:
        raise InputError(f"{path}: no series with SeriesInstanceUID {series_uid!r}; found: {scan.summary()}")
    return build_series_info(path, series_uid, scan.series[series_uid], force, allow_single_slice)


def scan_all_series(
    path: str | os.PathLike, recursive: bool = False, force: bool = False, allow_single_slice: bool = True
) -> list[SeriesInfo]:
    """:func:`scan_series` for every series in ``path`` (e.g. to write each to its own output)."""
    scan = scan_images(path, recursive)
    return [build_series_info(path, uid, items, force, allow_single_slice) for uid, items in scan.series.items()]


# --------------------------------------------------------------------------------------------- full volume
@dataclass
class DicomSeries:
    """A CT series read into memory: float32 HU volume (slice, row, col) and its sorted headers."""

    hu: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    datasets: list[Dataset]
    paths: list[Path]
    series_uid: str
    description: str
    info: SeriesInfo

    def affine(self, ras: bool = False) -> np.ndarray:
        """See :meth:`SeriesInfo.affine`."""
        return self.info.affine(ras=ras)


def _to_series(info: SeriesInfo) -> DicomSeries:
    return DicomSeries(
        hu=info.read_hu(),
        spacing=info.spacing,
        origin=info.origin,
        direction=info.direction,
        datasets=info.datasets,
        paths=info.paths,
        series_uid=info.series_uid,
        description=info.description,
        info=info,
    )


def read_series(
    path: str | os.PathLike,
    series_uid: str | None = None,
    recursive: bool = False,
    force: bool = False,
    allow_single_slice: bool = True,
) -> DicomSeries:
    """Read one CT series (folder or single file) to HU; see :func:`scan_series` for the checks."""
    return _to_series(scan_series(path, series_uid, recursive, force, allow_single_slice))


def read_all_series(
    path: str | os.PathLike, recursive: bool = False, force: bool = False, allow_single_slice: bool = True
) -> list[DicomSeries]:
    """Every series in ``path``, each read to HU."""
    return [_to_series(info) for info in scan_all_series(path, recursive, force, allow_single_slice)]


def iter_series_slices(
    series: SeriesInfo | str | os.PathLike, batch: int = 8, **scan_kwargs
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_index, hu[batch, rows, cols])`` over a series, decoding ``batch`` slices at a time."""
    info = series if isinstance(series, SeriesInfo) else scan_series(series, **scan_kwargs)
    yield from info.iter_batches(batch)
