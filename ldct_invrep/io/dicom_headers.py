"""Checks of one DICOM CT series' headers and its geometry: modality, pixel format, orientation, slice order
along the normal ``IPP . (row_cos x col_cos)`` (not ``InstanceNumber``), pixel and slice spacing (gaps named),
RescaleSlope/Intercept (HU), pixel padding and duplicate instances; :func:`build_series_info` makes the
:class:`~ldct_invrep.io.dicom_series.SeriesInfo` of one series found by :mod:`ldct_invrep.io.dicom_scan`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder

from ldct_invrep.errors import InputError, Remedy
from ldct_invrep.io._dicom_common import LOGGER_NAME, _float_values, _rescale, _uid_label
from ldct_invrep.io.dicom_series import SeriesInfo, decode_stored

__all__ = ["HU_LIKE_MIN", "build_series_info"]

# The ends of error messages that name a parameter (``errors.Remedy``: API and command-line wording).
FORCE_READS_IT = Remedy(" (force=True reads it anyway)", " (--force reads it anyway)", "--force")
FORCE_TAKES_HU = Remedy(" (force=True takes the stored values as HU)", " (--force takes the stored values as HU)", "--force")

logger = logging.getLogger(LOGGER_NAME)

HU_LIKE_MIN = -500.0
"""Signed stored values without RescaleSlope/Intercept are taken as HU only if some value is below this."""
_POSITION_TOL_MM = 1e-3
_ORIENTATION_TOL = 1e-4


def _check_modality(source: str | os.PathLike, datasets: list[Dataset], force: bool) -> str:
    modalities = sorted({str(ds.get("Modality", "") or "") for ds in datasets})
    modality = "/".join(m or "<missing>" for m in modalities)
    if modalities != ["CT"] and not force:
        raise InputError(source, f"Modality is {modality}, not CT; ldct-invrep denoises CT only", remedies=[FORCE_READS_IT])
    return modality


def _check_decodable(path: Path, ds: Dataset, checked: set[str]) -> None:
    """Refuse, before any work, pixel data in a transfer syntax that no installed pydicom decoder reads."""
    tsyntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    if tsyntax is None or tsyntax in checked:
        return
    checked.add(tsyntax)
    if tsyntax.is_transfer_syntax and not tsyntax.is_compressed:
        return
    convert = "convert the series to uncompressed DICOM first (e.g. dcmdjpeg, gdcmconv --raw)"
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise InputError(
            f"{path}: pixel data is encoded as {tsyntax.name}, which ldct-invrep cannot decode (pydicom has no "
            f"decoder for it); {convert}"
        ) from None
    if not decoder.is_available:
        missing = "; ".join(" ".join(str(m).split()) for m in decoder.missing_dependencies)
        raise InputError(
            f"{path}: pixel data is compressed as {tsyntax.name} and no decoder for it is installed "
            f"({missing or 'no plugin'}); install one, or {convert}"
        )


def _check_pixel_format(source: str | os.PathLike, items: list[tuple[Path, Dataset]]) -> tuple[int, int]:
    syntaxes: set[str] = set()
    for path, ds in items:
        _check_decodable(path, ds, syntaxes)
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
    if min(np.linalg.norm(ref[:3]), np.linalg.norm(ref[3:])) < 0.5:  # unit vectors expected, e.g. not all zeros
        raise InputError(f"{items[0][0]}: ImageOrientationPatient {ref.tolist()} is degenerate (not two unit vectors)")
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
        _warn_unless_hu_like(source, items, found, rows, cols)  # type: ignore[arg-type]
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
        low = min(float(decode_stored(items[i][0], rows, cols).min()) for i in probes)
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


def _warn_unless_hu_like(
    source: str | os.PathLike, items: list[tuple[Path, Dataset]], rescale: list[tuple[float, float]], rows: int, cols: int
) -> None:
    """Warn when the first, middle and last slices have nothing below ``HU_LIKE_MIN`` after their rescale: a CT
    slice holds air (-1000 HU) or padding, so such values are not HU (e.g. an exporter that dropped the
    intercept: stored 0..4095 read as HU). The same test as NIfTI's (``io.nifti.read_nifti``)."""
    probes = sorted({0, len(items) // 2, len(items) - 1})
    low, high = np.inf, -np.inf
    for i in probes:
        slope, intercept = rescale[i]
        try:
            hu = decode_stored(items[i][0], rows, cols) * slope + intercept
        except InputError:  # damaged pixel data: reading the slice says so, this check only warns
            continue
        low, high = min(low, float(hu.min())), max(high, float(hu.max()))
    if np.isfinite(low) and low >= HU_LIKE_MIN:
        logger.warning(
            "%s: values %g..%g after RescaleSlope/RescaleIntercept have nothing below %g, so they do not look like HU "
            "(air is -1000); results assume HU",
            source, low, high, HU_LIKE_MIN,
        )  # fmt: skip


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
    """Keep one file per non-empty SOPInstanceUID (copies of the same image, e.g. in two sub-folders).

    Two files with the same SOPInstanceUID but another position or size are two images under one UID, not copies:
    refused (dropping one would shorten the series)."""
    seen: dict[str, tuple[Path, Dataset]] = {}
    kept, dropped = [], []
    for path, ds in items:
        uid = str(ds.get("SOPInstanceUID", "") or "")
        if uid and uid in seen:
            first, first_ds = seen[uid]
            where = [
                (_float_values(d, "ImagePositionPatient", 3), d.get("Rows"), d.get("Columns")) for d in (first_ds, ds)
            ]
            same_place = where[0][1:] == where[1][1:] and (
                (where[0][0] is None and where[1][0] is None)
                or (where[0][0] is not None and where[1][0] is not None and np.allclose(where[0][0], where[1][0]))
            )
            if not same_place:
                raise InputError(
                    f"{source}: {first.name} and {path.name} have the same SOPInstanceUID {uid} but another position "
                    "or size; two images cannot share one UID, remove or repair one of them"
                )
            dropped.append((path, first))
            continue
        if uid:
            seen[uid] = (path, ds)
        kept.append((path, ds))
    if dropped:
        logger.warning(
            "%s: ignored %d duplicate copies of the same SOP instance (e.g. %s = %s)", source, len(dropped), *dropped[0]
        )
    return kept


def build_series_info(
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
