"""What ``evaluate`` does to volumes: put each prediction on the reference's voxel grid, stream per-slice PSNR,
SSIM and RMSE (HU) on named windows (``ldct_invrep.metrics``), and format the tables and the JSON record.
The ``evaluate`` command and the ``demo`` call it."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any

from ldct_invrep import __version__
from ldct_invrep.errors import InputError
from ldct_invrep.io.volumes import Volume

if TYPE_CHECKING:
    from ldct_invrep.metrics import MetricReport, Window

__all__ = [
    "DEFAULT_METRIC_WINDOWS", "align_to_reference", "evaluate_volumes", "format_metric_table", "format_results",
    "metrics_document", "unique_labels", "write_metrics_json",
]  # fmt: skip

logger = logging.getLogger(__name__)

DEFAULT_METRIC_WINDOWS = ("abdomen", "full")
#: Geometry agreement needed to compare two volumes voxel by voxel: voxel steps within this fraction ...
GEOMETRY_STEP_RTOL = 1e-3
#: ... and the first voxels' centres within this fraction of the smallest voxel size.
GEOMETRY_ORIGIN_TOL_VOXELS = 0.1


def unique_labels(volumes: Sequence[Volume], given: Sequence[str]) -> list[str]:
    labels = list(given) + [v.label() for v in volumes[len(given) :]]
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 and labels.count(label) == 1 else f"{label}#{seen[label]}")
    return out


def _geometry_difference(a_pred, a_ref) -> str:
    """What differs between two index -> RAS affines beyond the tolerances, or ''."""
    import numpy as np

    steps_p, steps_r = np.linalg.norm(a_pred[:3, :3], axis=0), np.linalg.norm(a_ref[:3, :3], axis=0)
    if not np.allclose(steps_p, steps_r, rtol=GEOMETRY_STEP_RTOL, atol=0):
        fmt = lambda v: " x ".join(f"{x:.4g}" for x in v)  # noqa: E731
        return f"voxel size {fmt(steps_p)} mm vs {fmt(steps_r)} mm"
    if not np.allclose(a_pred[:3, :3] / steps_p, a_ref[:3, :3] / steps_r, atol=GEOMETRY_STEP_RTOL):
        return "axis directions differ (the volumes are rotated or sheared against each other)"
    shift = float(np.linalg.norm(a_pred[:3, 3] - a_ref[:3, 3]))
    if shift > GEOMETRY_ORIGIN_TOL_VOXELS * float(steps_r.min()):
        return f"origin differs by {shift:.3g} mm"
    return ""


def align_to_reference(pred: Volume, ref: Volume) -> Volume:
    """``pred`` on ``ref``'s voxel grid: as it is when the geometries agree, reoriented (axes permuted and
    flipped, in memory) when only the voxel order differs (e.g. a NIfTI in LAS against a DICOM series in LPS);
    :class:`InputError` naming ``pred`` when the shape, voxel size, directions or origin disagree beyond
    :data:`GEOMETRY_STEP_RTOL` / :data:`GEOMETRY_ORIGIN_TOL_VOXELS`. A NIfTI without qform/sform is compared
    voxel by voxel, with a note. What was done is in ``aligned_note``."""
    import numpy as np
    from nibabel import orientations as nio

    def shape_error(shape: tuple[int, ...]) -> InputError:
        return InputError(
            f"{pred.path}: shape {shape} (slices, rows, cols) differs from the reference {ref.path} shape {ref.shape}"
        )

    if not (pred.has_geometry and ref.has_geometry):
        if pred.shape != ref.shape:
            raise shape_error(pred.shape)
        pred.aligned_note = f"{pred.label()}: compared voxel by voxel (no qform/sform, geometry unknown)"
        return pred
    a_pred, a_ref = pred.affine_ras(), ref.affine_ras()
    ornt = nio.ornt_transform(nio.io_orientation(a_pred), nio.io_orientation(a_ref))
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        if pred.shape != ref.shape:
            raise shape_error(pred.shape)
        problem = _geometry_difference(a_pred, a_ref)
        if problem:
            raise InputError(f"{pred.path}: geometry differs from the reference {ref.path}: {problem}")
        return pred
    shape_xyz = pred.shape[::-1]
    new_shape = tuple(int(shape_xyz[int(axis)]) for axis in np.argsort(ornt[:, 0]))[::-1]
    if new_shape != ref.shape:
        raise shape_error(new_shape)
    aligned_affine = a_pred @ nio.inv_ornt_aff(ornt, shape_xyz)
    problem = _geometry_difference(aligned_affine, a_ref)
    if problem:
        raise InputError(f"{pred.path}: geometry differs from the reference {ref.path}: {problem}")
    hu = pred.info.read_hu() if pred.info is not None else pred.nifti.hu  # type: ignore[union-attr]
    xyz = nio.apply_orientation(hu.transpose(2, 1, 0), ornt)
    codes = "".join(nio.aff2axcodes(a_pred)), "".join(nio.aff2axcodes(a_ref))
    note = f"{pred.label()}: reoriented from {codes[0]} to {codes[1]} (the reference's voxel order)"
    logger.info("%s: %s", pred.path, note)
    return Volume(
        pred.path, info=pred.info, nifti=pred.nifti, aligned=np.ascontiguousarray(xyz.transpose(2, 1, 0)), aligned_note=note
    )


def evaluate_volumes(
    preds: Sequence[Volume],
    ref: Volume,
    windows: Sequence[Window],
    labels: Sequence[str],
    ref_label: str,
    batch_size: int = 8,
) -> dict[Window, list[MetricReport]]:
    """Per-slice metrics of each prediction against ``ref`` in each window, reading ``batch_size`` slices at a time."""
    import numpy as np

    from ldct_invrep.metrics import SSIM_WIN_SIZE, MetricReport, compute_metrics

    if min(ref.shape[1:]) < SSIM_WIN_SIZE:
        rows, cols = ref.shape[1:]
        raise InputError(f"{ref.path}: slices of {rows}x{cols} are smaller than the {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} SSIM window")
    for pred in preds:
        if pred.shape != ref.shape:
            raise InputError(
                f"{pred.path}: shape {pred.shape} (slices, rows, cols) differs from the reference {ref.path} shape {ref.shape}"
            )
        if pred.info is not None and ref.info is not None:
            shift = np.abs(pred.info.slice_positions - ref.info.slice_positions).max()
            if shift > 0.01:
                logger.warning("%s: slice positions differ from the reference by up to %.3g mm", pred.path, shift)
    per_slice: dict[tuple[int, int], list] = {(w, p): [] for w in range(len(windows)) for p in range(len(preds))}
    streams = [v.batches(batch_size) for v in preds]
    for start, ref_hu in ref.batches(batch_size):
        for p, stream in enumerate(streams):
            pred_start, pred_hu = next(stream)
            assert pred_start == start
            for w, window in enumerate(windows):
                per_slice[(w, p)].extend(compute_metrics(pred_hu, ref_hu, window))
    return {
        window: [MetricReport(window, per_slice[(w, p)], method=labels[p], reference=ref_label) for p in range(len(preds))]
        for w, window in enumerate(windows)
    }


def format_metric_table(reports: Sequence[MetricReport]) -> str:
    """One window's table: a row per slice, then mean and std rows; one column group per prediction."""
    from ldct_invrep.metrics import SSIM_SIGMA, SSIM_WIN_SIZE

    first = reports[0]
    window = first.window
    n = len(first.per_slice)
    title = (
        f"window {window.label()}, data range {window.data_range:g} HU (both images clipped to the window)\n"
        f"{' | '.join(r.method for r in reports)} vs {first.reference}, {n} slice{'s' if n != 1 else ''}; "
        f"SSIM on clipped HU, Gaussian {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} sigma {SSIM_SIGMA}"
    )
    columns = (("psnr", "PSNR [dB]", 2), ("ssim", "SSIM", 4), ("rmse_hu", "RMSE [HU]", 1))

    def fmt(x: float, d: int) -> str:
        return f"{x:.{d}f}" if math.isfinite(x) else str(x)

    header = ["slice"] + [[t for _, t, _ in columns] for _ in reports]
    body = [[str(i)] + [[fmt(getattr(r.per_slice[i], k), d) for k, _, d in columns] for r in reports] for i in range(n)]
    summaries = [r.summary for r in reports]
    stats = [[stat] + [[fmt(s[k][stat], d) for k, _, d in columns] for s in summaries] for stat in ("mean", "std")]
    rows = [header, *body, *stats]
    w0 = max(len(r[0]) for r in rows)
    widths = [[max(len(r[1 + g][c]) for r in rows) for c in range(len(columns))] for g in range(len(reports))]
    group_w = [sum(w) + 2 * (len(w) - 1) for w in widths]

    def line(row: list) -> str:
        groups = ["  ".join(c.rjust(w) for c, w in zip(cells, widths[g])) for g, cells in enumerate(row[1:])]
        return row[0].ljust(w0) + "  " + " | ".join(groups)

    names = " " * w0 + "  " + " | ".join(r.method[:gw].center(gw) for r, gw in zip(reports, group_w))
    rule = "-" * len(line(header))
    return "\n".join([title, names.rstrip(), line(header), rule, *(line(r) for r in body), rule, *(line(r) for r in stats)])


def format_results(results: dict, summary_only: bool = False, notes: Sequence[str] = ()) -> str:
    """Every window's table: per slice with one column group per prediction, or (``summary_only``) one row
    per prediction with mean ± std (``ldct_invrep.metrics.compare_reports``). ``notes`` (e.g. how a
    prediction was reoriented onto the reference) head every table."""
    from ldct_invrep.metrics import compare_reports

    head = "".join(f"geometry: {n}\n" for n in notes if n)
    if summary_only:
        return "\n\n".join(head + compare_reports(reports) for reports in results.values())
    return "\n\n".join(head + format_metric_table(reports) for reports in results.values())


def metrics_document(results: dict, preds: Sequence[Volume], ref: Volume, labels: Sequence[str]) -> dict[str, Any]:
    """JSON-able record of an evaluation: inputs, windows and every report (per slice and summary)."""
    from ldct_invrep.io.atomic import JSON_STAMP_KEY

    return {
        JSON_STAMP_KEY: __version__,
        "reference": {"path": str(ref.path), "label": ref.label(), "shape": list(ref.shape)},
        "predictions": [
            {"path": str(p.path), "label": lab, "shape": list(p.shape), **({"geometry": p.aligned_note} if p.aligned_note else {})}
            for p, lab in zip(preds, labels)
        ],
        "windows": [{"name": w.name, "lo": w.lo, "hi": w.hi, "data_range": w.data_range} for w in results],
        "reports": [r.to_dict() for reports in results.values() for r in reports],
    }


def write_metrics_json(path: str | PathLike, document: dict[str, Any]) -> None:
    """Write ``document`` as JSON to ``path`` atomically, replacing only a JSON document ldct-invrep wrote (it
    has the ``ldct_invrep_version`` key)."""
    from ldct_invrep.io import atomic_output_file

    with atomic_output_file(path, overwrite=True, own_only=True) as tmp:
        tmp.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
