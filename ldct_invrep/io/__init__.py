"""Input/output: DICOM CT series (read to HU, write derived series), NIfTI volumes, atomic outputs.

The MONAI pieces (``LIRDicomReader`` and ``Image8bitReader``, ``ImageReader`` s for ``LoadImaged``;
``SaveDerivedSeriesd``, the derived-series writer as a postprocessing transform) are imported lazily so that
``import ldct_invrep.io`` does not import MONAI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ldct_invrep.io.atomic import (
    OUTPUT_MARKER,
    StagedOutputDir,
    atomic_output_dir,
    atomic_output_file,
    atomic_replace,
    check_output_location,
    check_output_parent,
    check_replaceable,
    is_own_file,
    mark_output_dir,
)
from ldct_invrep.io.dicom_read import (
    DicomSeries,
    iter_series_slices,
    read_all_series,
    read_series,
    scan_all_series,
    scan_series,
)
from ldct_invrep.io.dicom_scan import FolderScan, scan_folder
from ldct_invrep.io.dicom_series import SeriesInfo, geometry_affine
from ldct_invrep.io.dicom_write import (
    DerivedSeriesPaths,
    DerivedSeriesWriter,
    hu_to_stored,
    series_folder_name,
    storable_hu_range,
    write_derived_series,
)
from ldct_invrep.io.nifti import NiftiVolume, read_nifti, write_nifti

if TYPE_CHECKING:
    from ldct_invrep.io.reader import Image8bitReader, LIRDicomReader
    from ldct_invrep.io.writer import SaveDerivedSeriesd

_LAZY = {"Image8bitReader": "reader", "LIRDicomReader": "reader", "SaveDerivedSeriesd": "writer"}

__all__ = [
    "DerivedSeriesPaths",
    "DerivedSeriesWriter",
    "DicomSeries",
    "FolderScan",
    "Image8bitReader",
    "LIRDicomReader",
    "NiftiVolume",
    "OUTPUT_MARKER",
    "SaveDerivedSeriesd",
    "SeriesInfo",
    "StagedOutputDir",
    "atomic_output_dir",
    "atomic_output_file",
    "atomic_replace",
    "check_output_location",
    "check_output_parent",
    "check_replaceable",
    "geometry_affine",
    "hu_to_stored",
    "is_own_file",
    "iter_series_slices",
    "mark_output_dir",
    "read_all_series",
    "read_nifti",
    "read_series",
    "scan_all_series",
    "scan_folder",
    "scan_series",
    "series_folder_name",
    "storable_hu_range",
    "write_derived_series",
    "write_nifti",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"ldct_invrep.io.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
