"""DICOM CT series: :mod:`ldct_invrep.io.dicom_read` (find, scan, read to HU) and :mod:`ldct_invrep.io.dicom_write`
(derived series), re-exported here under the module name they had before the split."""

from __future__ import annotations

from ldct_invrep.io.dicom_read import HU_LIKE_MIN as HU_LIKE_MIN
from ldct_invrep.io.dicom_read import (
    DicomSeries,
    FolderScan,
    SeriesInfo,
    find_series,
    geometry_affine,
    iter_series_slices,
    read_all_series,
    read_series,
    scan_all_series,
    scan_folder,
    scan_series,
)
from ldct_invrep.io.dicom_write import (
    DerivedSeriesPaths,
    DerivedSeriesWriter,
    hu_to_stored,
    write_derived_series,
)

__all__ = [
    "DerivedSeriesPaths",
    "DerivedSeriesWriter",
    "DicomSeries",
    "FolderScan",
    "SeriesInfo",
    "find_series",
    "geometry_affine",
    "hu_to_stored",
    "iter_series_slices",
    "read_all_series",
    "read_series",
    "scan_all_series",
    "scan_folder",
    "scan_series",
    "write_derived_series",
]
