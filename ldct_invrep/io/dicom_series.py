"""One DICOM CT series without pixels (:class:`SeriesInfo`): sorted headers, files and geometry; slices are
decoded on demand to float32 HU (``stored * RescaleSlope + RescaleIntercept``).

Compressed transfer syntaxes go through pydicom's pixel decoders (pylibjpeg plugins preferred: JPEG 2000,
JPEG lossless, JPEG-LS, RLE). A :class:`SeriesInfo` is built from checked headers by
:func:`ldct_invrep.io.dicom_headers.build_series_info`. Volumes are ``(slice, row, col)``; ``spacing`` is
``(slice, row, col)`` in mm; ``direction`` is ITK-style (see :mod:`ldct_invrep.io.dicom_read`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder

from ldct_invrep.errors import InputError
from ldct_invrep.io._dicom_common import _one_line

__all__ = ["SeriesInfo", "decode_stored", "geometry_affine"]


def decode_stored(path: Path, rows: int, cols: int) -> np.ndarray:
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
        stored = decode_stored(self.paths[index], self.rows, self.cols)
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
