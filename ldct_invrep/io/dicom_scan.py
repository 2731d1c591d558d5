"""DICOM folder scan: read the header of every file under a folder and group the images by series.

Nothing is decoded here (``stop_before_pixels``): :func:`scan_folder` says what a folder holds (image headers
per SeriesInstanceUID, non-DICOM and non-image files, unreadable DICOM files, files that look like lost
slices, FIFOs and other non-regular files skipped unread), and :func:`scan_images` refuses a folder without
images or with unreadable ones. Sorting and checking one series is :mod:`ldct_invrep.io.dicom_headers`' job.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ldct_invrep.errors import InputError, Remedy
from ldct_invrep.io._dicom_common import LOGGER_NAME, _one_line, _uid_label
from ldct_invrep.io.atomic import OUTPUT_MARKER, is_temporary_name

__all__ = ["DICOM_SUFFIXES", "FolderScan", "scan_folder", "scan_images"]

# The end of an error message that names a parameter (``errors.Remedy``: API and command-line wording).
LOOK_INSIDE = Remedy(
    "look inside them with recursive=True", "look inside them with --recursive (-r)", "--recursive",
    "give the sub-folder that holds the series",
)  # fmt: skip

logger = logging.getLogger(LOGGER_NAME)

_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
#: File name endings of DICOM files: an unreadable file with one of them is reported as a lost slice.
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima", ".dc3")


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


def _is_image_class(uid: str) -> bool:
    """Whether a SOP Class UID is an image storage class (CT Image Storage, ...), whose files must hold an image."""
    return str(getattr(uid, "name", "")).endswith("Image Storage")


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
        if p.name.startswith("._"):  # macOS AppleDouble companion of a file copied from a Mac: never a slice
            continue
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
        meta_class = getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPClassUID", "")
        if meta_class == _DICOMDIR_CLASS or "Rows" not in ds or "Columns" not in ds:
            if meta_class != _DICOMDIR_CLASS and (len(ds) == 0 or _is_image_class(meta_class)):
                # a cut-off copy: pydicom stops quietly where the file ends, before the image attributes
                what = meta_class.name if meta_class else "DICOM"
                scan.broken.append((file, f"header truncated: a {what} file without Rows/Columns"))
            else:
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


def scan_images(path: str | os.PathLike, recursive: bool) -> FolderScan:
    """:func:`scan_folder`, refusing (:class:`InputError`) a folder without images or with unreadable DICOM files."""
    scan = scan_folder(path, recursive)
    if not scan.series:
        raise _no_images_error(path, scan)
    if scan.broken:  # never drop slices silently
        file, why = scan.broken[0]
        raise InputError(f"{file}: unreadable DICOM file ({why}); remove or repair it")
    return scan

