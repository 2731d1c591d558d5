"""Volumes in and out of the pipelines: open a DICOM series / NIfTI volume as one :class:`Volume`, stream it batch
by batch through a function into a derived DICOM series or a NIfTI file (atomically, with a progress bar on
stderr). The ``denoise`` and ``simulate-dose`` pipelines (``ldct_invrep.pipelines``) and ``evaluate`` read and
write through it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ldct_invrep.errors import InputError, Remedy
from ldct_invrep.io.atomic import atomic_output_dir, check_output_location, check_replaceable
from ldct_invrep.io.dicom_read import scan_all_series, scan_series
from ldct_invrep.io.dicom_series import SeriesInfo
from ldct_invrep.io.dicom_write import DerivedSeriesWriter, series_folder_name
from ldct_invrep.io.nifti import NiftiVolume, read_nifti, write_nifti

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Volume", "check_nifti_geometry", "check_output", "is_nifti_name", "open_volumes", "write_volumes"]

logger = logging.getLogger(__name__)

#: How an existing output can be replaced (``errors.Remedy``: API and command-line wording).
PASS_OVERWRITE = Remedy("; pass overwrite=True to replace it", "; pass --overwrite to replace it", "--overwrite")

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti_name(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _nifti_stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


@dataclass
class Volume:
    """One input volume, DICOM (headers only; slices decoded on demand) or NIfTI (in memory).

    ``aligned`` is the whole volume, in memory, after ``evaluate`` reoriented it onto its reference's voxel
    grid (``aligned_note`` says how); batches and shape then come from it.
    """

    path: Path
    info: SeriesInfo | None = None
    nifti: NiftiVolume | None = None
    aligned: np.ndarray | None = None
    aligned_note: str = ""

    @property
    def kind(self) -> str:
        return "dicom" if self.info is not None else "nifti"

    @property
    def shape(self) -> tuple[int, int, int]:
        if self.aligned is not None:
            return tuple(self.aligned.shape)  # type: ignore[return-value]
        if self.info is not None:
            return self.info.shape
        assert self.nifti is not None
        return tuple(self.nifti.hu.shape)  # type: ignore[return-value]

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(slice, row, col) mm."""
        return self.info.spacing if self.info is not None else self.nifti.spacing  # type: ignore[union-attr]

    @property
    def series_uid(self) -> str:
        return self.info.series_uid if self.info is not None else ""

    def storage(self) -> tuple[np.dtype, tuple[float, float]]:
        """How a NIfTI output keeps this input's number type: ``(dtype, (slope, inter))``. A NIfTI input's own
        on-disk dtype and scaling; a DICOM series of integer HU (slope 1, whole intercepts) as int16;
        otherwise float32."""
        import numpy as np

        if self.nifti is not None and self.nifti.header is not None:
            return np.dtype(self.nifti.header.get_data_dtype()), self.nifti.scaling
        if self.info is not None and all(s == 1 and float(i).is_integer() for s, i in self.info.rescale):
            return np.dtype(np.int16), (1.0, 0.0)
        return np.dtype(np.float32), (1.0, 0.0)

    def affine_ras(self) -> np.ndarray:
        return self.info.affine(ras=True) if self.info is not None else self.nifti.affine  # type: ignore[union-attr]

    @property
    def has_geometry(self) -> bool:
        """False for a NIfTI without qform/sform (its affine then says nothing about where voxels lie)."""
        return self.nifti is None or self.nifti.has_geometry

    def padding_mask(self, index: int, hu: np.ndarray) -> np.ndarray | None:
        """Pixel padding (outside the field of view) of slice ``index``, from the DICOM header; None if none."""
        return self.info.padding_mask(index, hu) if self.info is not None else None

    def batches(self, size: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_index, hu[k, rows, cols])`` in slice order; DICOM slices are decoded batch by batch."""
        if self.aligned is not None:
            for start in range(0, len(self), size):
                yield start, self.aligned[start : start + size]
            return
        if self.info is not None:
            yield from self.info.iter_batches(size)
            return
        assert self.nifti is not None
        for start in range(0, len(self), size):
            yield start, self.nifti.hu[start : start + size]

    def describe(self) -> str:
        n, rows, cols = self.shape
        ds, dr, dc = self.spacing
        geometry = f"{n} slice{'s' if n != 1 else ''} of {rows}x{cols}, spacing {dr:.4g} x {dc:.4g} mm, {ds:.4g} mm apart"
        if self.info is not None:
            desc = f" {self.info.description!r}" if self.info.description else ""
            return f"DICOM series {self.info.series_uid or '<no SeriesInstanceUID>'}{desc}: {geometry}"
        return f"NIfTI {self.path.name} ({self.nifti.orientation}): {geometry}"  # type: ignore[union-attr]

    def label(self) -> str:
        return _nifti_stem(self.path) if self.kind == "nifti" else (self.path.name or str(self.path))


def open_volumes(
    path: Path,
    *,
    series_uid: str | None = None,
    recursive: bool = False,
    force: bool = False,
    all_series: bool = False,
) -> list[Volume]:
    """Open ``path`` (DICOM folder or file, or NIfTI file): one volume, or every series with ``all_series``."""
    if is_nifti_name(path) and path.is_file():
        return [Volume(path, nifti=read_nifti(path))]
    if all_series and series_uid is None:
        return [Volume(path, info=info) for info in scan_all_series(path, recursive=recursive, force=force)]
    return [Volume(path, info=scan_series(path, series_uid=series_uid, recursive=recursive, force=force))]


def check_output(input_path: Path, output: Path, overwrite: bool, also_read: Sequence[Path] = ()) -> None:
    """Refuse, before any work, an output inside (or containing) the input or ``also_read`` (the weights), an
    existing output without ``--overwrite``, and with it one that is not a whole output of ldct-invrep
    (:func:`ldct_invrep.io.check_replaceable`)."""
    check_output_location(input_path, output, also_read)
    if output.exists() or output.is_symlink():
        if not overwrite:
            raise InputError(output, "output already exists", remedies=[PASS_OVERWRITE])
        check_replaceable(output)


def check_nifti_geometry(volumes: Sequence[Volume]) -> None:
    """Refuse a NIfTI output of a DICOM series whose slices are unevenly spaced: no affine can place them."""
    for vol in volumes:
        if vol.info is not None and vol.info.irregular:
            raise InputError(
                f"{vol.path}: {vol.info.irregular}; a NIfTI affine cannot place unevenly spaced slices, "
                "so write a DICOM series instead (an OUTPUT folder)"
            )


def _progress(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="slice", file=sys.stderr, disable=quiet, dynamic_ncols=True, leave=False)


BatchFn = Callable[["Volume", int, "np.ndarray"], "np.ndarray"]


def write_volumes(
    volumes: Sequence[Volume],
    output: Path,
    fmt: str,
    fn: BatchFn,
    *,
    batch_size: int,
    overwrite: bool,
    quiet: bool,
    desc: str,
    writer_kwargs: dict[str, Any] | Callable[[Volume], dict[str, Any]],
    all_series: bool = False,
) -> int:
    """Stream every volume through ``fn(volume, first_index, hu_batch) -> hu_batch`` into ``output``.

    ``writer_kwargs`` go to the DICOM writer: one dict, or a function of the volume (per-series text).

    DICOM output: read a batch, process, write its slices (memory flat in the number of slices). NIfTI output
    is written once from a volume in memory. Everything goes through the atomic writers of ``ldct_invrep.io``.
    """
    if fmt == "nifti":
        check_nifti_geometry(volumes)
    total = sum(len(v) for v in volumes)
    with _progress(total, desc, quiet) as bar:
        if not all_series:
            _write_one(volumes[0], output, fmt, fn, batch_size, overwrite, bar, writer_kwargs)
        else:
            with atomic_output_dir(output, overwrite=overwrite) as tmp:
                for vol in volumes:
                    name = series_folder_name(vol.series_uid)
                    target = tmp / (f"{name}.nii.gz" if fmt == "nifti" else name)
                    _write_one(vol, target, fmt, fn, batch_size, False, bar, writer_kwargs)
    return total


def _processed(vol: Volume, fn: BatchFn, start: int, hu: np.ndarray) -> np.ndarray:
    """``fn``'s output with every padding pixel (outside the field of view) given back its input value."""
    import numpy as np

    out = np.array(fn(vol, start, hu), dtype=np.float32)
    for k in range(len(out)):
        mask = vol.padding_mask(start + k, hu[k])
        if mask is not None:
            out[k][mask] = hu[k][mask]
    return out


def _write_one(vol: Volume, target: Path, fmt: str, fn: BatchFn, batch_size: int, overwrite: bool, bar, writer_kwargs) -> None:
    import numpy as np

    if callable(writer_kwargs):
        writer_kwargs = writer_kwargs(vol)
    if fmt == "dicom":
        assert vol.info is not None
        with DerivedSeriesWriter(vol.info, target, overwrite=overwrite, **writer_kwargs) as writer:
            for start, hu in vol.batches(batch_size):
                out = _processed(vol, fn, start, hu)
                for k, hu_slice in enumerate(out):
                    writer.write(start + k, hu_slice, source_hu=hu[k])
                bar.update(len(hu))
        return
    # NIfTI in: process in place (one volume in memory); DICOM in: one output volume.
    volume = vol.nifti.hu if vol.nifti is not None else np.empty(vol.shape, dtype=np.float32)
    for start, hu in vol.batches(batch_size):
        out = _processed(vol, fn, start, hu)
        volume[start : start + len(out)] = out
        bar.update(len(hu))
    dtype, slope_inter = vol.storage()
    descrip = f"{writer_kwargs.get('method', '')}{writer_kwargs.get('description_suffix', '')}".strip()  # LIR, SIM [sim 25% dose]
    write_nifti(
        target, volume, vol.affine_ras(), dtype=dtype, slope_inter=slope_inter, descrip=descrip,
        overwrite=overwrite, geometry=vol.has_geometry,
    )  # fmt: skip
