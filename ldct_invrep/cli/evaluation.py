"""``ldct-invrep evaluate``: PSNR, SSIM and RMSE of predictions against a reference on named HU windows
(``pipelines.evaluate``), and with ``--pairs`` the methods on the pairs of a datalist (``ldct_invrep.evaluation``)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ldct_invrep import __version__
from ldct_invrep.cli.options import set_threads, threads_option
from ldct_invrep.errors import InputError

if TYPE_CHECKING:
    from ldct_invrep.metrics import Window

__all__ = ["CT_METHOD_NAMES", "WindowParam", "evaluate", "evaluate_pairs"]

logger = logging.getLogger(__name__)

#: ``ldct_invrep.evaluation.CT_METHODS`` (kept literal so ``--help`` does not import the evaluation module).
CT_METHOD_NAMES = ("input", "bm3d", "bm3d_blind", "lir", "redcnn")


class WindowParam(click.ParamType):
    """A window name (abdomen, full, lung, bone, ...) or ``LO,HI`` in HU."""

    name = "window"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Window:
        from ldct_invrep.metrics import Window, resolve_window

        if isinstance(value, Window):
            return value
        text = str(value).strip()
        spec: Any = text
        if "," in text:
            try:
                spec = tuple(float(v) for v in text.split(","))
            except ValueError:
                self.fail(f"{text!r}: expected a window name or LO,HI in HU (e.g. -160,240)", param, ctx)
            if len(spec) != 2:
                self.fail(f"{text!r}: expected two numbers LO,HI", param, ctx)
        try:
            return resolve_window(spec)
        except InputError as exc:
            self.fail(str(exc), param, ctx)


def evaluate_pairs(
    datalist: Path,
    methods: Sequence[str],
    windows: Sequence[Window],
    json_out: str | None,
    summary: bool,
    *,
    weights: Path | None = None,
    bm3d_sigma: float | None = None,
    bm3d_blind_factor: float | None = None,
    redcnn_weights: Path | None = None,
    threads: int | None = None,
) -> None:
    """``evaluate --pairs``: every method on every pair of ``datalist``'s "test" section; prints one Markdown
    table per pair and the mean (``summary``: the mean only), or (``json_out == "-"``) the rows as JSON."""
    from ldct_invrep.evaluation import build_methods, evaluate_methods, load_pairs_from_datalist
    from ldct_invrep.metrics import resolve_window
    from ldct_invrep.pipelines import DEFAULT_METRIC_WINDOWS

    set_threads(threads)
    wins = list(dict.fromkeys(windows)) or [resolve_window(w) for w in DEFAULT_METRIC_WINDOWS]
    built = build_methods(list(dict.fromkeys(methods)), lir_weights=weights, bm3d_sigma_hu=bm3d_sigma,
                          redcnn_weights=redcnn_weights, bm3d_blind_factor=bm3d_blind_factor)
    progress = (lambda m: None) if json_out == "-" else (lambda m: logger.info("%s", m))
    result = evaluate_methods(load_pairs_from_datalist(datalist), built, wins, figure=False,
                              title=f"{datalist.name}: {len(built)} method(s)", progress=progress)
    document = {
        "ldct_invrep_version": __version__,
        "datalist": str(datalist),
        "methods": result.methods,
        "windows": [{"name": w.name, "lo": w.lo, "hi": w.hi, "data_range": w.data_range} for w in result.windows],
        "rows": [{k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in asdict(r).items()}
                 for r in result.rows],
    }
    if json_out == "-":
        click.echo(json.dumps(document, indent=2, allow_nan=False))
        return
    if summary:
        click.echo(result.metric_note() + "\n\n" + result.image_table_markdown())
    else:
        click.echo(result.to_markdown(level=2, per_image=True))
    if json_out is not None:
        from ldct_invrep.pipelines import write_metrics_json

        write_metrics_json(json_out, document)  # replaces only a document of ours
        click.echo(f"wrote {json_out}", err=True)


@click.command(short_help="PSNR, SSIM, RMSE of predictions against a reference, per slice.")
@click.argument("paths", metavar="PRED... REF", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--window", "-w", "windows", type=WindowParam(), multiple=True,
    help="HU window: a name (abdomen, full, lung, bone, brain, ...) or LO,HI; repeat for several. "
    "[default: abdomen [-160, 240] and full [-1024, 3072]]",
)
@click.option("--label", "labels", multiple=True, metavar="NAME", help="Column name of each PRED, in order. [default: file/folder names]")
@click.option(
    "--json", "json_out", is_flag=False, flag_value="-", default=None, metavar="PATH",
    help="Also write the per-slice metrics as JSON to PATH (.json; replaces only a metrics file of ldct-invrep); "
    "`--json -` writes only JSON to stdout.",
)
@click.option("--summary", is_flag=True, help="Only mean ± std: one row per prediction.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Slices read at a time.")
@click.option(
    "--pairs", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="DATALIST",
    help="Instead of PRED... REF: run --method on each noisy/clean pair of this datalist's 'test' section "
    "(e.g. written by `prepare ldct-dev`); one table per pair and the mean.",
)
@click.option(
    "--method", "-m", "methods", multiple=True, type=click.Choice(CT_METHOD_NAMES),
    help="With --pairs: a method to run; repeat for several. [default: input and lir]",
)
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --pairs: the LIR checkpoint (self-ensemble as its header says). [default: the shipped weights]")
@click.option("--bm3d-sigma", type=click.FloatRange(min=0), default=None,
              help="With --pairs: BM3D's sigma in HU (tune it on training pairs). "
              "[default: estimated per slice, with a warning: about 5x too low for CT]")
@click.option("--bm3d-blind-factor", type=click.FloatRange(min=0, min_open=True), default=None,
              help="With --pairs: blind BM3D's sigma = FACTOR x each slice's noise level. [default: the factor fitted on the default model's simulated training pairs]")
@click.option("--redcnn-weights", type=click.Path(dir_okay=False, path_type=Path), default=None, help="With --pairs: a RED-CNN checkpoint.")
@threads_option
def evaluate(
    paths: tuple[Path, ...], windows: tuple[Window, ...], labels: tuple[str, ...], json_out: str | None,
    summary: bool, batch_size: int, pairs: Path | None, methods: tuple[str, ...], weights: Path | None,
    bm3d_sigma: float | None, bm3d_blind_factor: float | None, redcnn_weights: Path | None, threads: int | None,
) -> None:
    """PSNR, SSIM and RMSE (HU) of one or more predictions against a reference, per slice and mean ± std.

    Give one or more PRED scans then the REF scan (each a DICOM series folder, a DICOM file or a NIfTI
    file); all must cover the same voxels. A PRED stored in another axis order (e.g. a NIfTI in LAS against
    a DICOM series in LPS) is reoriented onto the REF grid, which the table notes; voxel size, direction or
    origin that disagree are refused. Both images are clipped to the window and
    the data range is its width, so every figure names its window: by default the abdomen window
    [-160, 240] HU (data range 400, the RED-CNN/CTformer convention) and the full range [-1024, 3072] HU
    (data range 4096). Several PRED give one table per window with one column group per prediction.

    \b
    Examples:
      ldct-invrep evaluate out/denoised/ scans/full_dose/
      ldct-invrep evaluate scans/quarter_dose/ out/denoised/ scans/full_dose/ --label quarter --label LIR
      ldct-invrep evaluate pred.nii.gz ref.nii.gz --window lung --window=-1000,200 --json metrics.json
      ldct-invrep evaluate pred.nii.gz ref.nii.gz --summary --json -

    With --pairs DATALIST the methods (input, bm3d, bm3d_blind, lir, redcnn) run on every noisy/clean
    pair of the datalist (DICOM, NIfTI, .npy, TIFF or MATLAB .mat entries) and each pair gets a table:
    PSNR and SSIM per window, the soft-tissue bias (mean of output minus reference where the reference
    is in (-100, 200) HU) and the seconds per slice; then the mean over pairs.

    \b
      ldct-invrep prepare ldct-dev ../shared/data --out datalists/
      ldct-invrep evaluate --pairs datalists/ldct_dev.json -m input -m bm3d_blind -m lir --threads 2
    """
    if json_out not in (None, "-"):  # also catches `--json PRED REF`, where PRED was taken as the JSON path
        if not str(json_out).lower().endswith(".json"):
            raise click.BadParameter(f"{json_out!r} does not end in .json (use --json - for stdout)", param_hint="--json")
        if Path(json_out).is_dir():
            raise click.BadParameter(f"{json_out} is a folder", param_hint="--json")
        from ldct_invrep.io import check_output_parent, check_replaceable

        check_output_parent(Path(json_out))  # before the work: a folder that can be made,
        check_replaceable(Path(json_out))  # and only a metrics file of ours is replaced
    if pairs is not None:
        if paths or labels:
            raise click.UsageError("--pairs takes no PRED/REF and no --label")
        evaluate_pairs(pairs, methods or ("input", "lir"), windows, json_out, summary, weights=weights,
                       bm3d_sigma=bm3d_sigma, bm3d_blind_factor=bm3d_blind_factor, redcnn_weights=redcnn_weights,
                       threads=threads)
        return
    if methods or weights or bm3d_sigma is not None or bm3d_blind_factor is not None or redcnn_weights:
        raise click.UsageError("--method, --weights, --bm3d-sigma, --bm3d-blind-factor and --redcnn-weights need --pairs")
    if len(paths) < 2:
        raise click.UsageError("give at least one PRED and the REF")
    if len(labels) > len(paths) - 1:
        raise click.UsageError(f"{len(labels)} --label for {len(paths) - 1} PRED")
    from ldct_invrep.io.volumes import open_volumes

    *pred_paths, ref_path = paths
    ref = open_volumes(ref_path)[0]
    preds = [open_volumes(p)[0] for p in pred_paths]
    from ldct_invrep.metrics import resolve_window  # imports torch and MONAI: after the cheap checks of the input
    from ldct_invrep.pipelines import (
        DEFAULT_METRIC_WINDOWS,
        align_to_reference,
        evaluate_volumes,
        format_results,
        metrics_document,
        unique_labels,
        write_metrics_json,
    )

    set_threads(threads)
    wins = list(dict.fromkeys(list(windows) or [resolve_window(w) for w in DEFAULT_METRIC_WINDOWS]))
    names = unique_labels(preds, labels)
    preds = [align_to_reference(p, ref) for p in preds]
    results = evaluate_volumes(preds, ref, wins, names, ref.label(), batch_size=batch_size)
    document = metrics_document(results, preds, ref, names)
    if json_out == "-":
        click.echo(json.dumps(document, indent=2, allow_nan=False))
        return
    click.echo(format_results(results, summary, notes=[p.aligned_note for p in preds]))
    if json_out is not None:
        write_metrics_json(json_out, document)  # replaces only a JSON document of ldct-invrep
        click.echo(f"wrote {json_out}", err=True)
