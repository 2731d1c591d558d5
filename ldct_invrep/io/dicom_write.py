"""DICOM CT series, writing: a derived series made from a source read by :mod:`ldct_invrep.io.dicom_read`.

:class:`DerivedSeriesWriter` and :func:`write_derived_series` produce one file per source slice with the source
headers, new UIDs, ``ImageType`` DERIVED\\SECONDARY and uncompressed Explicit VR Little Endian pixel data, inside
one atomic output folder; :func:`hu_to_stored` re-quantises HU with the source's slope/intercept. MONAI has no
DICOM series writer (``SaveImage(output_ext=".dcm")`` goes to ITK, which writes neither the source headers nor
consistent UIDs), hence this module.
"""

from __future__ import annotations

import copy
import datetime
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

from ldct_invrep import __version__
from ldct_invrep.errors import InputError
from ldct_invrep.io._dicom_common import LOGGER_NAME, _rescale
from ldct_invrep.io.atomic import atomic_output_dir, check_output_location
from ldct_invrep.io.dicom_read import DicomSeries
from ldct_invrep.io.dicom_series import SeriesInfo

__all__ = [
    "DerivedSeriesPaths",
    "DerivedSeriesWriter",
    "hu_to_stored",
    "keep_padding",
    "series_folder_name",
    "storable_hu_range",
    "write_derived_series",
]

logger = logging.getLogger(LOGGER_NAME)

#: Folder name of a derived series whose source has no SeriesInstanceUID (:func:`series_folder_name`).
UNKNOWN_SERIES = "unknown-series"


def series_folder_name(series_uid: str) -> str:
    """The folder a derived series goes in among the outputs of several series (``denoise --all-series``, the CT
    bundles' ``<output_dir>/<name>/``): the source's SeriesInstanceUID, :data:`UNKNOWN_SERIES` without one.
    Characters a UID cannot hold become ``_``, so a damaged or hostile file's ``../../x`` stays inside the output."""
    name = re.sub(r"[^0-9A-Za-z._-]", "_", series_uid.strip()).lstrip(".")
    return name or UNKNOWN_SERIES


# Elements that describe the source's (possibly compressed) pixel data and must not survive a re-encode.
_STALE_PIXEL_TAGS = (
    0x7FE00001,  # Extended Offset Table
    0x7FE00002,  # Extended Offset Table Lengths
    0x7FE00008,  # Float Pixel Data
    0x7FE00009,  # Double Float Pixel Data
    0x7FE00010,  # Pixel Data
    0x00280106,  # Smallest Image Pixel Value
    0x00280107,  # Largest Image Pixel Value
    0x00280108,  # Smallest Pixel Value in Series
    0x00280109,  # Largest Pixel Value in Series
    0x00080014,  # Instance Creator UID
    0xFFFCFFFC,  # Data Set Trailing Padding
)


def _stored_range(ds: Dataset) -> tuple[int, int, np.dtype]:
    bits_allocated = int(ds.get("BitsAllocated", 16) or 16)
    bits_stored = int(ds.get("BitsStored", bits_allocated) or bits_allocated)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    kind = "i" if signed else "u"
    dtype = np.dtype(f"<{kind}{bits_allocated // 8}")
    if signed:
        return -(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1, dtype
    return 0, 2**bits_stored - 1, dtype


def hu_to_stored(hu: np.ndarray, slope: float, intercept: float, ds: Dataset) -> tuple[np.ndarray, int]:
    """HU -> stored values ``round((hu - intercept) / slope)``, clipped to the range that ``ds``'s
    BitsStored/PixelRepresentation allow (e.g. 12 bits unsigned -> [0, 4095]), cast to its BitsAllocated dtype.

    Returns the array and the number of clipped pixels.
    """
    lo, hi, dtype = _stored_range(ds)
    values = np.rint((np.asarray(hu, dtype=np.float64) - intercept) / slope)
    n_clipped = int(np.count_nonzero(values < lo) + np.count_nonzero(values > hi))
    return np.clip(values, lo, hi).astype(dtype), n_clipped


def keep_padding(
    stored: np.ndarray, exact: np.ndarray, hu: np.ndarray, padding: np.ndarray, limits: tuple[int, int],
    slope: float, intercept: float, ds: Dataset,
) -> int:
    """Make the padding of a re-quantised slice exact, in place: ``padding`` pixels take ``exact`` (their
    source stored values); any other pixel whose value fell into the padding range ``limits`` moves one stored
    unit out of it, to the side nearer its HU (within the stored range), so a viewer never hides it.
    Returns the number of pixels moved."""
    stored[padding] = exact[padding]
    low, high = limits
    hit = ~padding & (stored >= low) & (stored <= high)
    n = int(np.count_nonzero(hit))
    lo, hi, _ = _stored_range(ds)
    below, above = low - 1, high + 1
    if n and (lo <= below or above <= hi):  # else the padding range is the whole stored range: nowhere to go
        value = (np.asarray(hu, dtype=np.float64)[hit] - intercept) / slope
        use_above = (value - below > above - value) if lo <= below and above <= hi else np.full(value.shape, above <= hi)
        stored[hit] = np.where(use_above, above, below).astype(stored.dtype)
    return n


def _check_uid_root(uid_root: str | None) -> str | None:
    if uid_root is None:
        return None
    root = uid_root if uid_root.endswith(".") else uid_root + "."
    parts = root[:-1].split(".")
    if len(root) > 54 or not all(p.isdigit() and (p == "0" or not p.startswith("0")) for p in parts):
        raise InputError(f"{uid_root}: not a valid UID root (digits and dots, at most 54 characters)")
    return root


class DerivedSeriesPaths(list):
    """The written files (a ``list[Path]`` in slice order) plus what the writer reports about them."""

    series_uid: str = ""
    clipped_pixels: int = 0
    clipped_slices: int = 0


#: BodyPartExamined values (DICOM PS3.16 CID 4031) of unpaired structures: Laterality must be absent for them.
_UNPAIRED_BODY_PARTS = frozenset(
    "ABDOMEN ABDOMENPELVIS BRAIN CHEST CHESTABDOMEN CHESTABDPELVIS COCCYX CSPINE HEAD HEADNECK HEART LIVER "
    "LSPINE NECK NECKCHEST PANCREAS PELVIS SACRUM SKULL SPINE TSPINE WHOLEBODY".split()
)


def _is_unpaired_body_part(ds: Dataset) -> bool:
    return str(ds.get("BodyPartExamined", "") or "").strip().upper() in _UNPAIRED_BODY_PARTS


class DerivedSeriesWriter:
    """Write a derived series, one file per source slice, inside one atomic output folder.

    ``with DerivedSeriesWriter(info, out_dir, method="LIR") as w: w.write(i, hu_slice)`` for every slice
    index ``i`` of the source (any order, e.g. batch by batch). The folder appears only when the block
    ends without error and every slice was written. Each file keeps the source slice's attributes
    (patient, study, geometry, windows, private tags) and gets: the series' new SeriesInstanceUID, a new
    SOP Instance UID (also in the file meta), ``ImageType`` DERIVED\\SECONDARY (further values kept),
    SeriesDescription + ``" [<method>]"`` (64 characters at most), DerivationDescription, a
    SourceImageSequence pointing to the source slice, SeriesNumber + ``series_number_offset``, and
    uncompressed Explicit VR Little Endian pixel data re-quantised with the source's slope/intercept
    (clipped to the stored range; the count is in ``clipped_pixels`` and logged). An output inside the
    source folder (or containing it) is refused with :class:`InputError` before anything is written.
    """

    def __init__(
        self,
        source: SeriesInfo | DicomSeries,
        out_dir: str | os.PathLike,
        *,
        method: str = "LIR",
        description_suffix: str | None = None,
        overwrite: bool = False,
        uid_root: str | None = None,
        derivation_description: str | None = None,
        series_number_offset: int = 1000,
    ) -> None:
        self.info = source.info if isinstance(source, DicomSeries) else source
        self.out_dir = Path(out_dir)
        self.overwrite = overwrite
        self._uid_root = _check_uid_root(uid_root)
        self.series_uid = self._new_uid()
        first = self.info.datasets[0]
        study_uid = str(first.get("StudyInstanceUID", "") or "")
        if not study_uid:
            study_uid = self._new_uid()
            logger.warning("%s: source has no StudyInstanceUID; the derived series gets a new one", self.info.source)
        self.study_uid = study_uid
        self.frame_uid = str(first.get("FrameOfReferenceUID", "") or "") or self._new_uid()
        src_number = first.get("SeriesNumber")
        try:
            src_number = int(src_number) if src_number not in (None, "") else 0
        except (TypeError, ValueError):
            src_number = 0
        self.series_number = (src_number + series_number_offset) % 2**31
        suffix = f" [{method}]" if description_suffix is None else description_suffix
        base = self.info.description[: max(0, 64 - len(suffix))]
        self.description = (base + suffix).strip()[:64]
        self.derivation_description = (
            derivation_description
            or f"Denoised by ldct-invrep {__version__} ({method}); stored values re-quantised with the source "
            "RescaleSlope/RescaleIntercept"
        )[:1024]
        now = datetime.datetime.now()
        self._date, self._time = now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")
        self.clipped_pixels = 0
        self.clipped_slices = 0
        self.padding_moved = 0
        self._written: dict[int, str] = {}
        self._ctx = None
        self._tmp: Path | None = None

    def _new_uid(self) -> str:
        return generate_uid() if self._uid_root is None else generate_uid(prefix=self._uid_root)

    def __enter__(self) -> DerivedSeriesWriter:
        check_output_location(self.info.source, self.out_dir)
        self._ctx = atomic_output_dir(self.out_dir, self.overwrite)
        self._tmp = self._ctx.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self._ctx is not None
        ctx, self._ctx = self._ctx, None
        if exc is None and len(self._written) != len(self.info):
            missing = sorted(set(range(len(self.info))) - set(self._written))
            exc = ValueError(
                f"{self.out_dir}: wrote {len(self._written)} of {len(self.info)} slices "
                f"(missing e.g. index {missing[0]}); nothing was written"
            )
            ctx.__exit__(type(exc), exc, None)
            raise exc
        ctx.__exit__(exc_type, exc, tb)
        if exc is None and self.padding_moved:
            logger.info(
                "%s: %d pixels inside the field of view moved one stored unit off the padding value", self.out_dir,
                self.padding_moved,
            )
        if exc is None and self.clipped_pixels:
            logger.warning(
                "%s: %d pixels in %d slices were outside the stored value range and were clipped",
                self.out_dir,
                self.clipped_pixels,
                self.clipped_slices,
            )
        return False

    @staticmethod
    def file_name(index: int) -> str:
        """Output file name of slice ``index`` (0-based, in slice order)."""
        return f"IM_{index + 1:05d}.dcm"

    @property
    def paths(self) -> DerivedSeriesPaths:
        """Final paths of the slices written so far, in slice order, with the UID and clipping counts."""
        paths = DerivedSeriesPaths(self.out_dir / self._written[i] for i in sorted(self._written))
        paths.series_uid = self.series_uid
        paths.clipped_pixels, paths.clipped_slices = self.clipped_pixels, self.clipped_slices
        return paths

    def _derived_dataset(self, index: int, stored: np.ndarray) -> Dataset:
        src = self.info.datasets[index]
        ds = copy.deepcopy(src)
        for tag in _STALE_PIXEL_TAGS:
            if tag in ds:
                del ds[tag]
        sop_class = str(src.get("SOPClassUID", "") or "") or str(
            getattr(src, "file_meta", Dataset()).get("MediaStorageSOPClassUID", "") or CTImageStorage
        )
        sop_uid = self._new_uid()
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = self.study_uid
        ds.SeriesInstanceUID = self.series_uid
        ds.FrameOfReferenceUID = str(src.get("FrameOfReferenceUID", "") or "") or self.frame_uid
        ds.SeriesNumber = self.series_number
        ds.SeriesDescription = self.description
        image_type = src.get("ImageType")
        values = [] if image_type in (None, "") else ([image_type] if isinstance(image_type, str) else list(image_type))
        ds.ImageType = ["DERIVED", "SECONDARY", *values[2:]]
        ds.DerivationDescription = self.derivation_description
        if "Laterality" not in ds and "ImageLaterality" not in ds and not _is_unpaired_body_part(ds):
            # General Series, Type 2C: required (may be empty) unless the body part is known to be unpaired,
            # and not allowed then; an unrecognised part such as "PARTIALBODY" may be paired.
            ds.Laterality = ""
        if _rescale(src) is None:  # read with an assumed identity rescale: make it explicit
            ds.RescaleSlope, ds.RescaleIntercept = self.info.rescale[index]
        src_uid = str(src.get("SOPInstanceUID", "") or "")
        if src_uid:
            ref = Dataset()
            ref.ReferencedSOPClassUID = sop_class
            ref.ReferencedSOPInstanceUID = src_uid
            ds.SourceImageSequence = DicomSequence([ref])
        elif "SourceImageSequence" in ds:
            del ds.SourceImageSequence  # it described how the *source* was made
        ds.InstanceCreationDate, ds.InstanceCreationTime = self._date, self._time
        if "InstanceNumber" not in ds or ds.InstanceNumber in (None, ""):
            ds.InstanceNumber = index + 1
        bits_allocated = stored.dtype.itemsize * 8
        ds.BitsAllocated = bits_allocated
        ds.HighBit = int(ds.get("BitsStored", bits_allocated) or bits_allocated) - 1
        ds.PixelData = stored.tobytes()
        ds["PixelData"].VR = "OB" if bits_allocated == 8 else "OW"
        ds["PixelData"].is_undefined_length = False
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = f"LDCTINVREP{__version__.replace('.', '')}"[:16]
        ds.file_meta = meta
        return ds

    def write(self, index: int, hu: np.ndarray, source_hu: np.ndarray | None = None) -> Path:
        """Write slice ``index`` (0-based, source slice order) from a (rows, cols) HU array; returns its final path.

        ``source_hu`` (the slice as read) keeps pixel padding exact when the source declares PixelPaddingValue:
        padding pixels are written with their source values and no other pixel gets a padding value
        (:func:`keep_padding`); without it the caller is responsible for the padding.
        """
        if self._tmp is None:
            raise RuntimeError("DerivedSeriesWriter.write() outside its `with` block")
        if not 0 <= index < len(self.info):
            raise IndexError(f"slice index {index} out of range for a {len(self.info)}-slice series")
        hu = np.asarray(hu)
        if hu.shape != (self.info.rows, self.info.cols):
            raise ValueError(f"slice {index}: shape {hu.shape}, expected {(self.info.rows, self.info.cols)}")
        if not np.all(np.isfinite(hu)):
            raise ValueError(f"slice {index}: contains NaN or infinite values")
        slope, intercept = self.info.rescale[index]
        stored, n_clipped = hu_to_stored(hu, slope, intercept, self.info.datasets[index])
        if n_clipped:
            self.clipped_pixels += n_clipped
            self.clipped_slices += 1
        limits = self.info.padding[index] if index < len(self.info.padding) else None
        if source_hu is not None and limits is not None:
            mask = self.info.padding_mask(index, source_hu)
            exact, _ = hu_to_stored(source_hu, slope, intercept, self.info.datasets[index])
            self.padding_moved += keep_padding(
                stored, exact, hu, mask, limits, slope, intercept, self.info.datasets[index]
            )
        ds = self._derived_dataset(index, stored)
        name = self.file_name(index)
        pydicom.dcmwrite(self._tmp / name, ds, enforce_file_format=True)
        self._written[index] = name
        return self.out_dir / name


def write_derived_series(
    source: SeriesInfo | DicomSeries,
    hu_slices: Iterable[np.ndarray],
    out_dir: str | os.PathLike,
    *,
    method: str = "LIR",
    description_suffix: str | None = None,
    overwrite: bool = False,
    uid_root: str | None = None,
    derivation_description: str | None = None,
) -> DerivedSeriesPaths:
    """Write ``hu_slices`` (2D HU arrays in the source's slice order, a 3D array or any iterator, consumed
    lazily) as a derived series in ``out_dir``, atomically; returns the file paths in slice order
    (a list with ``series_uid``, ``clipped_pixels`` and ``clipped_slices`` attributes).

    See :class:`DerivedSeriesWriter` for what each file holds.
    """
    writer = DerivedSeriesWriter(
        source,
        out_dir,
        method=method,
        description_suffix=description_suffix,
        overwrite=overwrite,
        uid_root=uid_root,
        derivation_description=derivation_description,
    )
    n = len(writer.info)
    with writer:
        for index, hu in enumerate(hu_slices):
            if index >= n:
                raise ValueError(f"{out_dir}: more HU slices than the {n} source slices")
            writer.write(index, hu)
    return writer.paths


def storable_hu_range(info: SeriesInfo, index: int) -> tuple[float, float]:
    """HU range that slice ``index`` can store with its BitsStored, PixelRepresentation and slope/intercept."""
    slope, intercept = info.rescale[index]
    stored, _ = hu_to_stored(np.array([-1e12, 1e12]), slope, intercept, info.datasets[index])
    lo, hi = sorted(float(v) * slope + intercept for v in stored)
    return lo, hi
