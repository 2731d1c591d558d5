"""DICOM CT series, reading: find, scan (headers only) and read to HU.

Reading is split in two so that the CLI runs in constant memory:

* :func:`scan_series` reads the headers only (``stop_before_pixels``), checks them, sorts the slices along
  the slice normal ``IPP . (row_cos x col_cos)`` (not ``InstanceNumber``) and returns a :class:`SeriesInfo`
  with the geometry;
* :meth:`SeriesInfo.read_hu` / :func:`iter_series_slices` decode any slices on demand to float32 HU
  (``stored * RescaleSlope + RescaleIntercept``), compressed transfer syntaxes through pydicom's pixel
  decoders (pylibjpeg plugins preferred: JPEG 2000, JPEG lossless, JPEG-LS, RLE).

:func:`read_series` (the whole volume) is built on the two. Writing a derived series is
:mod:`ldct_invrep.io.dicom_write`'s job.

Volumes are ``(slice, row, col)``; ``spacing`` is ``(slice, row, col)`` in mm; ``direction`` is ITK-style:
its *columns* are the LPS directions of the col index (DICOM row cosine), the row index (column cosine)
and the slice index (the normal), so ``direction == np.reshape(sitk_image.GetDirection(), (3, 3))``.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder

from ldct_invrep.errors import InputError, Remedy
from ldct_invrep.io._dicom_common import LOGGER_NAME, _float_values, _rescale
from ldct_invrep.io.atomic import OUTPUT_MARKER, is_temporary_name

# The ends of error messages that name a parameter (``errors.Remedy``: API and command-line wording).
FORCE_READS_IT = Remedy(" (force=True reads it anyway)", " (--force reads it anyway)", "--force")
FORCE_TAKES_HU = Remedy(" (force=True takes the stored values as HU)", " (--force takes the stored values as HU)", "--force")
LOOK_INSIDE = Remedy(
    "look inside them with recursive=True", "look inside them with --recursive (-r)", "--recursive",
    "give the sub-folder that holds the series",
)  # fmt: skip
CHOOSE_SERIES = (
    Remedy("choose one with series_uid", "choose one with --series-uid", "--series-uid", "give the folder of one series"),
    Remedy(" (or read them all with read_all_series)", " (or read them all with --all-series)", "--all-series"),
)

__all__ = [
    "DicomSeries",
    "FolderScan",
    "SeriesInfo",
    "geometry_affine",
    "iter_series_slices",
    "read_all_series",
    "read_series",
    "scan_all_series",
    "scan_folder",
    "scan_series",
]

logger = logging.getLogger(LOGGER_NAME)

HU_LIKE_MIN = -500.0
"""Signed stored values without RescaleSlope/Intercept are taken as HU only if some value is below this."""
_POSITION_TOL_MM = 1e-3
_ORIENTATION_TOL = 1e-4
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
#: File name endings of DICOM files: an unreadable file with one of them is reported as a lost slice.
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima", ".dc3")


def _one_line(exc: BaseException | str, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _uid_label(uid: str) -> str:
    return uid if uid else "<empty SeriesInstanceUID>"


# --------------------------------------------------------------------------------------------- folder scan
@dataclass
class FolderScan:
    """What a folder (or file) holds: image headers grouped by SeriesInstanceUID, and what was ignored."""

    root: Path
    series: dict[str, list[tuple[Path, Dataset]]] = field(default_factory=dict)
    non_dicom: list[Path] = field(default_factory=list)
    non_image: list[Path] = field(default_factory=list)
    broken: list[tuple[Path, str]] = field(default_factory=list)
    lost: list[tuple[Path, str]] = field(default_factory=list)
    """Non-DICOM files that look like slices (empty, a DICOM suffix, or named like the images): reported."""
    subfolders: list[Path] = field(default_factory=list)
    """Sub-folders not looked into (``recursive=False``)."""
    non_regular: list[Path] = field(default_factory=list)
    """FIFOs, sockets, devices and broken links: skipped unread (reading a FIFO would block)."""

    def summary(self) -> str:
        """One-line list of the series: UID, slice count and description."""
        parts = []
        for uid, items in self.series.items():
            desc = str(items[0][1].get("SeriesDescription", "") or "")
            parts.append(f"{_uid_label(uid)} ({len(items)} slice{'s' if len(items) != 1 else ''}, {desc!r})")
        return "; ".join(parts)


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _skipped_name(name: str) -> bool:
    """The tool's own marker and temporaries (a killed run's partial series must not be read as a series)."""
    return name == OUTPUT_MARKER or is_temporary_name(name)


def _list_files(scan: FolderScan, recursive: bool) -> list[Path]:
    """Regular files under ``scan.root``; non-regular ones and sub-folders are recorded in ``scan``."""
    root = scan.root
    if not root.is_dir():
        if not _is_regular(root):
            raise InputError(f"{root}: not a regular file or folder (a FIFO, socket or device); give a file or folder")
        return [root]
    if recursive:
        candidates = []
        for d, dirs, names in os.walk(root):
            dirs[:] = sorted(n for n in dirs if not _skipped_name(n))
            candidates += [Path(d) / f for f in names if not _skipped_name(f)]
    else:
        candidates = []
        for p in root.iterdir():
            if _skipped_name(p.name):
                continue
            if p.is_dir():
                scan.subfolders.append(p)
            else:
                candidates.append(p)
    files = []
    for p in candidates:
        (files if _is_regular(p) else scan.non_regular).append(p)
    return sorted(files)


def _name_shape(name: str) -> str:
    """A file name with every run of digits replaced by ``#`` (``IM_0012.dcm`` -> ``IM_#.dcm``)."""
    return re.sub(r"\d+", "#", name)


def _find_lost_slices(scan: FolderScan) -> None:
    """Non-DICOM files that look like slices of the series found: empty, a DICOM suffix, or named like them."""
    shapes = {(p.parent, _name_shape(p.name)) for items in scan.series.values() for p, _ in items}
    for p in scan.non_dicom:
        try:
            size = p.stat().st_size
        except OSError:
            size = -1
        if size == 0:
            why = "empty file (0 bytes)"
        elif p.suffix.lower() in DICOM_SUFFIXES:
            why = f"a {p.suffix} file without a readable DICOM header"
        elif (p.parent, _name_shape(p.name)) in shapes:
            why = "named like the series' slices but without a readable DICOM header"
        else:
            continue
        scan.lost.append((p, why))


def scan_folder(path: str | os.PathLike, recursive: bool = False) -> FolderScan:
    """Read the header of every file (any name or extension) under ``path`` and group images by series.

    Files are read with ``pydicom.dcmread(stop_before_pixels=True, force=False)``: files without the
    DICOM Part 10 preamble are counted as non-DICOM and ignored; DICOMDIR and DICOM files without an
    image (no Rows/Columns) are counted as non-image; DICOM files that fail to parse are listed in ``broken``.
    """
    root = Path(path)
    if not (root.exists() or root.is_symlink()):
        raise InputError(f"{path}: no such file or folder")
    scan = FolderScan(root=root)
    for file in _list_files(scan, recursive):
        if file.name.upper() == "DICOMDIR":
            scan.non_image.append(file)
            continue
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True, force=False)
        except InvalidDicomError:
            scan.non_dicom.append(file)
            continue
        except Exception as exc:  # a DICOM preamble followed by a corrupt or truncated header
            scan.broken.append((file, _one_line(exc)))
            continue
        meta_class = str(getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPClassUID", ""))
        if meta_class == _DICOMDIR_CLASS or "Rows" not in ds or "Columns" not in ds:
            scan.non_image.append(file)
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        scan.series.setdefault(uid, []).append((file, ds))
    _find_lost_slices(scan)
    for file, why in scan.lost[:5]:
        logger.warning("%s: looks like a slice but cannot be read (%s); it is left out of the series", file, why)
    if len(scan.lost) > 5:
        logger.warning("%s: %d more files that look like slices cannot be read", path, len(scan.lost) - 5)
    if scan.non_regular:
        logger.warning(
            "%s: skipped %d FIFOs, sockets, devices or broken links, e.g. %s", path, len(scan.non_regular), scan.non_regular[0]
        )
    ignored = len(scan.non_dicom) + len(scan.non_image)
    if ignored:
        logger.info(
            "%s: ignored %d non-DICOM and %d non-image DICOM files", path, len(scan.non_dicom), len(scan.non_image)
        )
    if scan.broken:
        logger.warning("%s: %d unreadable DICOM files, e.g. %s (%s)", path, len(scan.broken), *scan.broken[0])
    return scan


def _no_images_error(path: str | os.PathLike, scan: FolderScan) -> InputError:
    if scan.broken:
        file, why = scan.broken[0]
        return InputError(f"{file}: unreadable DICOM file ({why})")
    if scan.root.is_file():
        if scan.non_image:
            return InputError(f"{path}: DICOM file holds no image")
        return InputError(f"{path}: not a DICOM file (no DICOM Part 10 header)")
    n_other = len(scan.non_dicom) + len(scan.non_image)
    sub, remedies = "", []
    if scan.subfolders:
        n_sub = len(scan.subfolders)
        sub = f"{n_sub} sub-folder{'s' if n_sub != 1 else ''} (e.g. {scan.subfolders[0].name}) not searched; "
        remedies = [LOOK_INSIDE]
    if n_other == 0:
        if sub:
            return InputError(path, f"no files in the folder itself, but {sub}", remedies=remedies)
        return InputError(path, "folder is empty (no files)")
    return InputError(
        path,
        f"no DICOM images found ({len(scan.non_dicom)} non-DICOM and {len(scan.non_image)} non-image DICOM files)"
        + (f"; {sub}" if sub else ""),
        remedies=remedies,
    )


# --------------------------------------------------------------------------------------------- series info
def _decode_stored(path: Path, rows: int, cols: int) -> np.ndarray:
    """Stored values of one single-frame slice, decoded by pydicom (pylibjpeg preferred for compressed data)."""
    try:
        ds = pydicom.dcmread(path, force=False)
    except Exception as exc:
        raise InputError(f"{path}: unreadable DICOM file ({_one_line(exc)})") from exc
    if "PixelData" not in ds:
        raise InputError(f"{path}: pixel data missing or truncated")
    tsyntax = ds.file_meta.get("TransferSyntaxUID")
    plugin = ""
    if tsyntax is not None and tsyntax.is_compressed:
        try:
            if "pylibjpeg" in get_decoder(tsyntax).available_plugins:
                plugin = "pylibjpeg"
        except NotImplementedError:
            pass
    try:
        ds.pixel_array_options(decoding_plugin=plugin)
        arr = ds.pixel_array
    except Exception as exc:
        raise InputError(f"{path}: cannot decode pixel data, file truncated or corrupt ({_one_line(exc)})") from exc
    if arr.shape != (rows, cols):
        raise InputError(f"{path}: decoded pixel data has shape {arr.shape}, header says {rows}x{cols}")
    return arr


@dataclass
class SeriesInfo:
    """One CT series without pixels: sorted headers, files and geometry; decodes slices on demand.

    ``datasets[i]``/``paths[i]`` are in slice order along the normal; ``rescale[i]`` is that slice's
    (RescaleSlope, RescaleIntercept); ``slice_positions`` are ``IPP . normal`` in mm; ``positions`` the
    ImagePositionPatient of each slice (LPS mm); ``padding[i]`` the (low, high) stored values of pixel padding
    (PixelPaddingValue / PixelPaddingRangeLimit, outside the field of view) or None; ``irregular`` describes
    uneven slice spacing (missing slices), empty when the spacing is uniform.
    """

    source: Path
    series_uid: str
    description: str
    modality: str
    datasets: list[Dataset]
    paths: list[Path]
    rows: int
    cols: int
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    slice_positions: np.ndarray
    rescale: list[tuple[float, float]]
    positions: np.ndarray | None = None
    padding: list[tuple[int, int] | None] = field(default_factory=list)
    irregular: str = ""

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, cols)."""
        return len(self.paths), self.rows, self.cols

    def affine(self, ras: bool = False) -> np.ndarray:
        """4x4 matrix from voxel index (col, row, slice) to patient mm (LPS, or RAS if ``ras``).

        The index order is NIfTI's ``(i, j, k)``, so with :func:`ldct_invrep.io.nifti.write_nifti`
        (which takes ``(slice, row, col)`` volumes) ``affine(ras=True)`` is the NIfTI affine. The slice step
        is the mean step between the actual slice positions, so a gantry tilt (positions not along the
        normal) is followed exactly; unevenly spaced slices (``irregular``) fit no affine.
        """
        step = None
        if self.positions is not None and len(self.positions) > 1:
            step = (self.positions[-1] - self.positions[0]) / (len(self.positions) - 1)
        return geometry_affine(self.origin, self.spacing, self.direction, ras=ras, slice_step=step)

    def padding_mask(self, index: int, hu: np.ndarray) -> np.ndarray | None:
        """Pixels of slice ``index`` (given as HU, as read) that are padding, or None if it declares none."""
        limits = self.padding[index] if index < len(self.padding) else None
        if limits is None:
            return None
        slope, intercept = self.rescale[index]
        stored = np.rint((np.asarray(hu, dtype=np.float64) - intercept) / slope)
        return (stored >= limits[0]) & (stored <= limits[1])

    def read_slice(self, index: int) -> np.ndarray:
        """Slice ``index`` as float32 HU, shape (rows, cols)."""
        slope, intercept = self.rescale[index]
        stored = _decode_stored(self.paths[index], self.rows, self.cols)
        return stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)

    def read_hu(self, indices: Iterable[int] | slice | None = None) -> np.ndarray:
        """Slices ``indices`` (default all) as a float32 HU array (k, rows, cols); one file open at a time."""
        if indices is None:
            idx = list(range(len(self)))
        elif isinstance(indices, slice):
            idx = list(range(len(self)))[indices]
        else:
            idx = [int(i) for i in indices]
        out = np.empty((len(idx), self.rows, self.cols), dtype=np.float32)
        for k, i in enumerate(idx):
            out[k] = self.read_slice(i)
        return out

    def iter_batches(self, batch_size: int = 8) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_index, hu[batch, rows, cols])`` in slice order: constant memory in the series length."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for start in range(0, len(self), batch_size):
            yield start, self.read_hu(range(start, min(start + batch_size, len(self))))


def geometry_affine(
    origin: Sequence[float],
    spacing: Sequence[float],
    direction: np.ndarray,
    ras: bool = False,
    slice_step: Sequence[float] | None = None,
) -> np.ndarray:
    """Affine from index (col, row, slice) to LPS (or RAS) mm, given ``spacing`` as (slice, row, col).

    ``slice_step`` (LPS mm) replaces ``normal * spacing[0]`` as the slice column (gantry tilt).
    """
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction, dtype=float) @ np.diag([spacing[2], spacing[1], spacing[0]])
    if slice_step is not None:
        affine[:3, 2] = np.asarray(slice_step, dtype=float)
    affine[:3, 3] = origin
    if ras:
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    return affine


def _check_modality(source: str | os.PathLike, datasets: list[Dataset], force: bool) -> str:
    modalities = sorted({str(ds.get("Modality", "") or "") for ds in datasets})
    modality = "/".join(m or "<missing>" for m in modalities)
    if modalities != ["CT"] and not force:
        raise InputError(source, f"Modality is {modality}, not CT; ldct-invrep denoises CT only", remedies=[FORCE_READS_IT])
    return modality


def _check_pixel_format(source: str | os.PathLike, items: list[tuple[Path, Dataset]]) -> tuple[int, int]:
    for path, ds in items:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames > 1:
            raise InputError(f"{path}: multi-frame (enhanced) DICOM with {frames} frames is not supported")
        if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
            raise InputError(f"{path}: {ds.get('SamplesPerPixel')} samples per pixel (colour), CT must be grey scale")
        if int(ds.get("BitsAllocated", 0) or 0) not in (8, 16, 32):
            raise InputError(f"{path}: unsupported BitsAllocated {ds.get('BitsAllocated')}")
        if "ModalityLUTSequence" in ds and _rescale(ds) is None:
            raise InputError(f"{path}: Modality LUT Sequence without RescaleSlope/Intercept is not supported")
    sizes: dict[tuple[int, int], list[Path]] = {}
    for path, ds in items:
        sizes.setdefault((int(ds.Rows), int(ds.Columns)), []).append(path)
    if len(sizes) > 1:
        listing = ", ".join(
            f"{r}x{c} ({len(ps)} file{'s' if len(ps) != 1 else ''}, e.g. {ps[0].name})" for (r, c), ps in sizes.items()
        )
        raise InputError(f"{source}: slices have different sizes: {listing}")
    return next(iter(sizes))


def _orientation(source: str | os.PathLike, items: list[tuple[Path, Dataset]]) -> np.ndarray:
    """Row cosine, column cosine and normal as the columns of a 3x3 matrix."""
    iops = [_float_values(ds, "ImageOrientationPatient", 6) for _, ds in items]
    if any(iop is None for iop in iops):
        if len(items) == 1:
            logger.warning("%s: no ImageOrientationPatient; assuming axial identity orientation", items[0][0])
            return np.eye(3)
        bad = next(p for (p, _), iop in zip(items, iops, strict=True) if iop is None)
        raise InputError(f"{bad}: missing ImageOrientationPatient, cannot sort the slices of {source}")
    ref = iops[0]
    for (path, _), iop in zip(items, iops, strict=True):
        if not np.allclose(iop, ref, atol=_ORIENTATION_TOL):
            raise InputError(
                f"{source}: slices have different ImageOrientationPatient "
                f"({path.name}: {iop.tolist()} vs {ref.tolist()})"
            )
    row_cos, col_cos = ref[:3] / np.linalg.norm(ref[:3]), ref[3:] / np.linalg.norm(ref[3:])
    normal = np.cross(row_cos, col_cos)
    if np.linalg.norm(normal) < 0.5:
        raise InputError(f"{items[0][0]}: ImageOrientationPatient {ref.tolist()} is degenerate")
    return np.stack([row_cos, col_cos, normal / np.linalg.norm(normal)], axis=1)


def _positive_values(path: Path, ds: Dataset, keyword: str, n: int) -> np.ndarray | None:
    """``keyword``'s ``n`` values; None when absent; :class:`InputError` when present but not positive numbers."""
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    arr = _float_values(ds, keyword, n)
    if arr is None or np.any(arr <= 0):
        shown = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
        raise InputError(f"{path}: {keyword} {shown} is not {n} positive number{'s' if n > 1 else ''}")
    return arr


def _in_plane_spacing(items: list[tuple[Path, Dataset]]) -> tuple[float, float]:
    ps = _positive_values(*items[0], "PixelSpacing", 2)
    if ps is None:
        ps = _positive_values(*items[0], "ImagerPixelSpacing", 2)
        if ps is None:
            logger.warning("%s: no PixelSpacing; assuming 1 mm", items[0][0])
            return 1.0, 1.0
        logger.warning("%s: no PixelSpacing; using ImagerPixelSpacing %s", items[0][0], ps.tolist())
    for path, ds in items[1:]:
        other = _positive_values(path, ds, "PixelSpacing", 2)
        if other is not None and not np.allclose(other, ps, rtol=1e-4):
            logger.warning("%s: PixelSpacing %s differs from %s; using the first", path, other.tolist(), ps.tolist())
            break
    return float(ps[0]), float(ps[1])


def _single_slice_spacing(ds: Dataset) -> float:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = _float_values(ds, keyword, 1)
        if value is not None and value[0] > 0:
            return float(value[0])
    return 1.0


def _resolve_rescale(
    source: str | os.PathLike, items: list[tuple[Path, Dataset]], force: bool, rows: int, cols: int
) -> list[tuple[float, float]]:
    """Per-slice (slope, intercept); a missing pair is taken as 1/0 only for signed, HU-like data (or ``force``).

    A value that is present but invalid (RescaleSlope 0, not a number) is refused whatever ``force`` says; when
    only one of the two is missing, the other keeps its value.
    """
    for path, ds in items:
        for keyword in ("RescaleSlope", "RescaleIntercept"):
            value = ds.get(keyword)
            if value is None or value == "":
                continue
            parsed = _float_values(ds, keyword, 1)
            if parsed is None:
                raise InputError(f"{path}: {keyword} {value!r} is not a number; cannot convert the stored values to HU")
            if keyword == "RescaleSlope" and parsed[0] == 0:
                raise InputError(f"{path}: RescaleSlope is 0 (invalid, it must be non-zero); cannot convert the stored values to HU")
    found = [_rescale(ds) for _, ds in items]
    missing = [i for i, r in enumerate(found) if r is None]
    if not missing:
        return found  # type: ignore[return-value]
    first_path, first_ds = items[missing[0]]
    if not force:
        if int(first_ds.get("PixelRepresentation", 0) or 0) != 1:
            raise InputError(
                first_path,
                "RescaleSlope/RescaleIntercept missing and the pixel data is unsigned, so it cannot be HU; refusing",
                remedies=[FORCE_TAKES_HU],
            )
        probes = sorted({missing[0], missing[len(missing) // 2], missing[-1]})  # first, middle, last: cheap
        low = min(float(_decode_stored(items[i][0], rows, cols).min()) for i in probes)
        if low >= HU_LIKE_MIN:
            raise InputError(
                first_path,
                "RescaleSlope/RescaleIntercept missing and the signed pixel data does not look like HU "
                f"(minimum {low:g} >= {HU_LIKE_MIN:g}); refusing",
                remedies=[FORCE_TAKES_HU],
            )
    logger.warning(
        "%s: RescaleSlope/RescaleIntercept missing in %d of %d slices (e.g. %s); assuming slope 1, intercept 0 "
        "where missing",
        source,
        len(missing),
        len(items),
        first_path.name,
    )
    out = []
    for (_, ds), r in zip(items, found, strict=True):
        if r is None:
            slope, intercept = _float_values(ds, "RescaleSlope", 1), _float_values(ds, "RescaleIntercept", 1)
            r = (1.0 if slope is None else float(slope[0]), 0.0 if intercept is None else float(intercept[0]))
        out.append(r)
    return out


def _padding_range(path: Path, ds: Dataset) -> tuple[int, int] | None:
    """(low, high) stored values of pixel padding from PixelPaddingValue and PixelPaddingRangeLimit, or None."""
    values = []
    for keyword in ("PixelPaddingValue", "PixelPaddingRangeLimit"):
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        if isinstance(value, bytes):  # unresolved "US or SS" value
            signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
            value = int.from_bytes(value[:2], "little", signed=signed)
        try:
            number = int(value)
        except (TypeError, ValueError):
            logger.warning("%s: %s %r is not an integer; ignored", path, keyword, value)
            continue
        bits = int(ds.get("BitsAllocated", 16) or 16)
        if int(ds.get("PixelRepresentation", 0) or 0) == 1 and number >= 2 ** (bits - 1):
            number -= 2**bits  # a signed value read as unsigned
        values.append(number)
    if not values or ds.get("PixelPaddingValue") in (None, ""):
        return None
    return min(values), max(values)


def _describe_gaps(items: list[tuple[Path, Dataset]], positions: np.ndarray, spacing: float) -> str:
    """Where the slice spacing departs from ``spacing`` (the median), naming the slices on each side."""
    gaps = np.diff(positions)
    odd = np.flatnonzero(np.abs(gaps - spacing) > max(0.01 * spacing, 0.01))
    if odd.size == 0:
        return ""
    parts = []
    for k in odd[:3]:
        missing = int(round(gaps[k] / spacing)) - 1
        what = f", about {missing} missing slice{'s' if missing != 1 else ''}" if missing >= 1 else ""
        parts.append(
            f"{gaps[k]:.4g} mm between {items[k][0].name} ({positions[k]:.4g} mm) and "
            f"{items[k + 1][0].name} ({positions[k + 1]:.4g} mm){what}"
        )
    more = f" and {odd.size - 3} more" if odd.size > 3 else ""
    return f"uneven slice spacing: {spacing:.4g} mm apart but " + "; ".join(parts) + more


def _drop_duplicate_instances(
    source: str | os.PathLike, items: list[tuple[Path, Dataset]]
) -> list[tuple[Path, Dataset]]:
    """Keep one file per non-empty SOPInstanceUID (copies of the same image, e.g. in two sub-folders)."""
    seen: dict[str, Path] = {}
    kept, dropped = [], []
    for path, ds in items:
        uid = str(ds.get("SOPInstanceUID", "") or "")
        if uid and uid in seen:
            dropped.append((path, seen[uid]))
            continue
        if uid:
            seen[uid] = path
        kept.append((path, ds))
    if dropped:
        logger.warning(
            "%s: ignored %d duplicate copies of the same SOP instance (e.g. %s = %s)", source, len(dropped), *dropped[0]
        )
    return kept


def _build_series_info(
    source: str | os.PathLike, uid: str, items: list[tuple[Path, Dataset]], force: bool, allow_single_slice: bool
) -> SeriesInfo:
    items = _drop_duplicate_instances(source, items)
    if len(items) == 1 and not allow_single_slice:
        raise InputError(f"{source}: series {_uid_label(uid)} has a single slice (allow_single_slice=False)")
    modality = _check_modality(source, [ds for _, ds in items], force)
    rows, cols = _check_pixel_format(source, items)
    direction = _orientation(source, items)
    normal = direction[:, 2]
    ipps = [_float_values(ds, "ImagePositionPatient", 3) for _, ds in items]
    if any(p is None for p in ipps):
        if len(items) > 1:
            bad = next(p for (p, _), ipp in zip(items, ipps, strict=True) if ipp is None)
            raise InputError(f"{bad}: missing ImagePositionPatient, cannot sort the slices of {source}")
        logger.warning("%s: no ImagePositionPatient; assuming origin (0, 0, 0)", items[0][0])
        ipps = [np.zeros(3)]
    positions = np.array([float(np.dot(p, normal)) for p in ipps])
    order = np.argsort(positions, kind="stable")
    items = [items[i] for i in order]
    ipps = [ipps[i] for i in order]
    positions = positions[order]
    row_spacing, col_spacing = _in_plane_spacing(items)
    if len(items) > 1:
        gaps = np.diff(positions)
        if np.any(gaps < _POSITION_TOL_MM):
            k = int(np.argmax(gaps < _POSITION_TOL_MM))
            raise InputError(
                f"{source}: {items[k][0].name} and {items[k + 1][0].name} are at the same position "
                f"({positions[k]:.3f} mm); the series holds several acquisitions or duplicates"
            )
        slice_spacing = float(np.median(gaps))
        irregular = _describe_gaps(items, positions, slice_spacing)
        if irregular:
            logger.warning("%s: %s; spacing taken as the median %.4g mm", source, irregular, slice_spacing)
        offset = ipps[-1] - ipps[0]
        shear = offset - np.dot(offset, normal) * normal
        if np.linalg.norm(shear) > max(1e-3 * np.linalg.norm(offset), 0.01):
            logger.info(
                "%s: slice positions are not along the slice normal (gantry tilt?); the affine follows them", source
            )
    else:
        slice_spacing = _single_slice_spacing(items[0][1])
        irregular = ""
    rescale = _resolve_rescale(source, items, force, rows, cols)
    first = items[0][1]
    return SeriesInfo(
        source=Path(source),
        series_uid=uid,
        description=str(first.get("SeriesDescription", "") or ""),
        modality=modality,
        datasets=[ds for _, ds in items],
        paths=[p for p, _ in items],
        rows=rows,
        cols=cols,
        spacing=(slice_spacing, row_spacing, col_spacing),
        origin=tuple(float(v) for v in ipps[0]),  # type: ignore[arg-type]
        direction=direction,
        slice_positions=positions,
        rescale=rescale,
        positions=np.asarray(ipps, dtype=float),
        padding=[_padding_range(p, ds) for p, ds in items],
        irregular=irregular,
    )


def _checked_scan(path: str | os.PathLike, recursive: bool) -> FolderScan:
    scan = scan_folder(path, recursive)
    if not scan.series:
        raise _no_images_error(path, scan)
    if scan.broken:  # never drop slices silently
        file, why = scan.broken[0]
        raise InputError(f"{file}: unreadable DICOM file ({why}); remove or repair it")
    return scan


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
    scan = _checked_scan(path, recursive)
    if series_uid is None:
        if len(scan.series) > 1:
            raise InputError(path, f"{len(scan.series)} DICOM series found: {scan.summary()}; ", remedies=CHOOSE_SERIES)
        series_uid = next(iter(scan.series))
    elif series_uid not in scan.series:
        raise InputError(f"{path}: no series with SeriesInstanceUID {series_uid!r}; found: {scan.summary()}")
    return _build_series_info(path, series_uid, scan.series[series_uid], force, allow_single_slice)


def scan_all_series(
    path: str | os.PathLike, recursive: bool = False, force: bool = False, allow_single_slice: bool = True
) -> list[SeriesInfo]:
    """:func:`scan_series` for every series in ``path`` (e.g. to write each to its own output)."""
    scan = _checked_scan(path, recursive)
    return [_build_series_info(path, uid, items, force, allow_single_slice) for uid, items in scan.series.items()]


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
