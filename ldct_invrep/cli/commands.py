"""The ``ldct-invrep`` commands (click): denoise, simulate-dose, evaluate, info, prepare, train, demo, adapt."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ldct_invrep import __version__
from ldct_invrep.cli.console import ExitStatusGroup, first_line, say
from ldct_invrep.cli.evaluation import (
    CT_METHOD_NAMES,
    DEFAULT_METRIC_WINDOWS,
    WindowParam,
    align_to_reference,
    evaluate_volumes,
    format_results,
    metrics_document,
    unique_labels,
)
from ldct_invrep.cli.volumes import output_format, rate_line
from ldct_invrep.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from ldct_invrep.io.volumes import Volume

    from ldct_invrep.metrics import Window

__all__ = ["cli", "main"]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- weights
def resolve_weights(weights: Path | None) -> Path:
    from ldct_invrep.package_files import default_weights_path

    path = Path(weights) if weights is not None else default_weights_path()
    if not path.is_file():
        if weights is None:
            raise InputError(
                f"{path}: the shipped weights are not installed in this copy of ldct-invrep; pass --weights FILE"
            )
        raise InputError(f"{path}: weights file not found")
    return path


def _load_checkpoint(path: Path):
    """``(Restorer or TorchScript module, header)`` via ``ldct_invrep.io.checkpoint.load_restorer``; a bad file is bad input."""
    from ldct_invrep.io.checkpoint import load_restorer

    try:
        return load_restorer(path)
    except InputError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: not a readable ldct-invrep checkpoint ({first_line(exc, 200)})") from exc


def _set_threads(threads: int | None) -> None:
    """``--threads``: PyTorch's intra-op threads (imports torch only when given)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _cpu_has_bf16() -> bool:
    """Native bfloat16 on this CPU (oneDNN's check); without it bf16 autocast was 85x slower here (lite, 512x512)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True  # unknown: do not warn


def _resolve_device(device: str):
    from ldct_invrep.inference import resolve_device

    try:
        return resolve_device(device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from exc


# --------------------------------------------------------------------------------------------- the group
@click.group(cls=ExitStatusGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ldct-invrep")
@click.option("--debug", is_flag=True, envvar="LDCT_INVREP_DEBUG", help="Show tracebacks and debug logging.")
@click.option("-v", "--verbose", is_flag=True, help="Show informational log messages.")
def cli(debug: bool, verbose: bool) -> None:
    """Unsupervised low-dose CT denoising with LIR (Learning Invariant Representation, CVPR 2020).

    \b
    Quick start (sample series shipped with the package, about 2 minutes on 2 CPU cores):
      ldct-invrep demo --output out/demo
    \b
    Typical use:
      ldct-invrep denoise scans/quarter_dose/ out/denoised/      DICOM series -> derived DICOM series
      ldct-invrep denoise scan.nii.gz out/denoised.nii.gz        NIfTI -> NIfTI
      ldct-invrep evaluate out/denoised/ scans/full_dose/        PSNR/SSIM/RMSE per slice
      ldct-invrep COMMAND --help                                 options and examples of a command

    Exit status: 0 done, 2 bad usage or bad input, 1 unexpected failure (rerun with --debug), 130 interrupted
    (Ctrl-C), 143 SIGTERM, 129 SIGHUP.
    """


# --------------------------------------------------------------------------------------------- denoise
_series_options = [
    click.option("--series-uid", metavar="UID", help="SeriesInstanceUID to use when the folder holds several series."),
    click.option("--all-series", is_flag=True, help="Process every series of the folder, each into OUTPUT/<SeriesInstanceUID>/."),
    click.option("--recursive", "-r", is_flag=True, help="Also look for DICOM files in sub-folders."),
    click.option("--force", is_flag=True, help="Accept a non-CT modality, and missing RescaleSlope/Intercept (stored values taken as HU)."),
    click.option(
        "--format", "fmt", type=click.Choice(["dicom", "nifti"]), default=None,
        help="Output format. [default: from OUTPUT: .nii/.nii.gz -> nifti, otherwise a DICOM series folder]",
    ),
    click.option(
        "--batch-size", type=click.IntRange(min=1), default=None,
        help="Slices read and processed at a time. [default: denoise 1 on CPU (fastest there), 4 on CUDA; otherwise 4]",
    ),
    click.option(
        "--overwrite", is_flag=True,
        help="Replace an existing OUTPUT that ldct-invrep wrote, once the new output is complete. Any other "
        "file or folder (no output marker, or holding files ldct-invrep did not write) is refused.",
    ),
    click.option("--quiet", "-q", is_flag=True, help="No progress bar or step messages (the final summary line is still printed)."),
]


def _series_opts(f: Callable) -> Callable:
    for option in reversed(_series_options):
        f = option(f)
    return f


_threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="CPU threads for PyTorch. [default: PyTorch's choice]"
)
_input_arg = click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
_output_arg = click.argument("output", metavar="OUTPUT", type=click.Path(path_type=Path))


@cli.command(short_help="Denoise a CT scan (DICOM series or NIfTI) with LIR.")
@_input_arg
@_output_arg
@click.option(
    "--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="An ldct-invrep checkpoint (a bundle's models/model.pt, ldct_invrep.io.checkpoint.save_restorer) or its "
    "TorchScript export (models/model.ts). [default: the shipped weights, weights/lir_ct.pt]",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="auto: CUDA if available, else CPU.")
@_threads_option
@click.option(
    "--bf16", is_flag=True,
    help="bfloat16 autocast (tiny HU differences): for GPUs and CPUs with native bf16 (AVX512-BF16, AMX); "
    "far slower on other CPUs.",
)
@click.option(
    "--self-ensemble", type=click.Choice(["1", "4", "8"]), default=None,
    help="Average the outputs over 4 flips or 8 flips/transposes of each slice (that many times slower; 1: off). "
    "[default: the checkpoint's 'self_ensemble' (ldct-invrep info shows it), else 1]",
)
@_series_opts
def denoise(
    input_path: Path, output: Path, weights: Path | None, device: str, threads: int | None, bf16: bool,
    self_ensemble: str | None,
    series_uid: str | None, all_series: bool, recursive: bool, force: bool, fmt: str | None, batch_size: int | None,
    overwrite: bool, quiet: bool,
) -> None:
    """Denoise a low-dose CT scan with LIR: x_denoised = G_Y(E_X(x)) slice by slice.

    INPUT is a DICOM series folder, a single DICOM file or a NIfTI file (.nii, .nii.gz).
    OUTPUT is a folder, written as a derived DICOM series (one file per input slice, same geometry and
    patient/study, new SeriesInstanceUID, ImageType DERIVED\\SECONDARY, SeriesDescription + " [LIR]"),
    or a .nii/.nii.gz file (the input's affine). A NIfTI INPUT can only give a NIfTI OUTPUT.

    Slices stream through the network --batch-size at a time, so memory does not grow with the number of
    slices (DICOM to DICOM). HU outside [-1024, 3072] are passed through unchanged, and so is pixel padding
    outside the field of view (PixelPaddingValue/PixelPaddingRangeLimit); no pixel inside it is written with
    the padding value. The output appears only when complete: an interrupted run (Ctrl-C, SIGTERM, SIGHUP)
    leaves nothing behind. Output folders hold a hidden marker, .ldct-invrep-output, that lets --overwrite
    replace them later. A NIfTI OUTPUT needs evenly spaced slices (its affine follows a gantry tilt).

    \b
    Examples:
      ldct-invrep denoise scans/L506_quarter/ out/L506_lir/
      ldct-invrep denoise scan.nii.gz out/scan_lir.nii.gz --threads 2
      ldct-invrep denoise scans/L506_quarter/ out/L506_lir.nii.gz --device cuda --batch-size 16
      ldct-invrep denoise study/ out/study_lir/ --all-series
      ldct-invrep denoise study/ out/lir/ --series-uid 1.2.840.113619.2.55.3.1234
    """
    from ldct_invrep.io.volumes import check_output, open_volumes, write_volumes

    fmt = output_format(input_path, output, fmt, all_series)
    weights_path = resolve_weights(weights)
    check_output(input_path, output, overwrite, also_read=[weights_path])
    volumes = open_volumes(input_path, series_uid=series_uid, recursive=recursive, force=force, all_series=all_series)
    torch_device = _resolve_device(device)  # imports torch: after the cheap checks of the input
    for vol in volumes:
        say(f"input: {vol.describe()}", quiet)

    import torch

    from ldct_invrep.inference import SliceDenoiser

    _set_threads(threads)
    if bf16 and torch_device.type == "cpu" and not _cpu_has_bf16():
        logger.warning("--bf16: this CPU has no native bfloat16 support; the run will be much slower than without --bf16")
    restorer, header = _load_checkpoint(weights_path)
    chosen = {} if self_ensemble is None else {"self_ensemble": int(self_ensemble)}
    denoiser = SliceDenoiser.from_header(
        restorer, header, device=torch_device, batch_size=batch_size, bf16=bf16, **chosen
    )
    hu_range, ensemble, batch_size = denoiser.hu_range, denoiser.self_ensemble, denoiser.batch_size
    preset = header.get("preset", header.get("format", "?"))
    say(
        f"weights: {weights_path} (preset {preset}) on {torch_device}"
        f"{', bf16' if bf16 else ''}, {torch.get_num_threads()} thread(s), batch {batch_size}"
        f"{f', self-ensemble of {ensemble}' if ensemble > 1 else ''}",
        quiet,
    )
    derivation = (
        f"Denoised by ldct-invrep {__version__}: LIR (CVPR 2020) content encoder E_X then clean generator G_Y, "
        f"weights {weights_path.name} (preset {preset})"
        f"{f', mean over {ensemble} flipped/transposed copies' if ensemble > 1 else ''}; HU outside [{hu_range[0]:g}, {hu_range[1]:g}] unchanged; "
        "stored values re-quantised with the source RescaleSlope/RescaleIntercept"
    )
    t0 = time.perf_counter()
    n = write_volumes(
        volumes, output, fmt, lambda vol, start, hu: denoiser.denoise_batch(hu),
        batch_size=batch_size, overwrite=overwrite, quiet=quiet, desc="denoise", all_series=all_series,
        writer_kwargs={"method": "LIR", "derivation_description": derivation},
    )
    click.echo(rate_line("denoised", n, time.perf_counter() - t0, output))


# --------------------------------------------------------------------------------------------- simulate-dose
def dose_label(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def _in_plane_spacing_mm(vol: Volume) -> float:
    _, row, col = vol.spacing
    if not math.isclose(row, col, rel_tol=0.01):
        logger.warning("%s: anisotropic pixels (%g x %g mm); the simulation uses their mean", vol.path, row, col)
    return 0.5 * (row + col)


def _slice_thickness_mm(vol: Volume) -> float:
    """SliceThickness of a DICOM series (the slice spacing where absent, and for NIfTI); a value that is
    not a positive number is bad input."""
    if vol.info is not None:
        thickness = vol.info.datasets[0].get("SliceThickness")
        if thickness not in (None, ""):
            try:
                value = float(thickness)
            except (TypeError, ValueError):
                value = math.nan
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{vol.info.paths[0]}: SliceThickness {thickness} is not a positive number")
            return value
    return float(vol.spacing[0])


def _finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """click's FloatRange lets NaN through (every comparison with it is false)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number in the allowed range")
    return value


def _own_noise_levels(vol: Volume, batch_size: int, where: str) -> tuple[list[float | None], list[float]]:
    """Each slice's ``own_noise_level`` (None: measured in the slice; the series median for slices with too
    little flat soft tissue) and the levels measured; one line naming ``where`` (exit 2) when none was."""
    from ldct_invrep.transforms.lowdose import scan_noise_level, series_noise_fallbacks

    measured = [
        scan_noise_level(s, vol.padding_mask(start + k, s))
        for start, hu in vol.batches(batch_size)
        for k, s in enumerate(hu)
    ]
    levels = series_noise_fallbacks(measured)
    if levels is None:
        raise InputError(
            f"{where}: no slice has enough flat soft tissue to measure the scan's own noise "
            "(--calibration self); use --calibration mayo"
        )
    return levels, [v for v in measured if v is not None]


@cli.command("simulate-dose", short_help="Simulate a reduced-dose scan by projection-domain noise insertion.")
@_input_arg
@_output_arg
@click.option(
    "--dose-fraction", type=click.FloatRange(min=0, max=1, min_open=True), default=0.25, show_default=True,
    callback=_finite,
    help="Dose of the simulated scan as a fraction of the input scan's own dose (0.25: a quarter of it, "
    "as Mayo 2016; quantum noise std grows as 1/sqrt(dose), so 0.25 doubles the input's noise).",
)
@click.option(
    "--calibration", type=click.Choice(["self", "mayo"]), default="self", show_default=True,
    help="self: the photon flux is set per slice so that the simulated full dose has the noise the slice "
    "already has (measured in flat soft tissue; slices without enough of it take the series median), making "
    "--dose-fraction relative to the scan's own dose. mayo: one absolute flux calibrated on the Mayo 2016 "
    "scanner (scaled by SliceThickness): right for that scanner and protocol only; on other scans 0.25 can "
    "mean far less or more than a quarter of their dose.",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True,
    help="Random seed (>= 0); the same seed gives the same noise.",
)
@click.option(
    "--threads", type=click.IntRange(min=1), default=None,
    help="CPU threads (accepted as by every computing command; the simulation runs on one thread).",
)
@_series_opts
def simulate_dose(
    input_path: Path, output: Path, dose_fraction: float, calibration: str, seed: int, threads: int | None,
    series_uid: str | None, all_series: bool, recursive: bool, force: bool, fmt: str | None, batch_size: int | None,
    overwrite: bool, quiet: bool,
) -> None:
    """Simulate a reduced-dose scan from a (full-dose) CT scan.

    Noise is inserted in the projection domain (Poisson quanta plus electronic noise, the method used to
    make the Mayo 2016 quarter-dose data, Yu et al. 2012), reconstructed by filtered back projection and
    added to the input slices: structure and the input's own noise are kept. Pixel padding outside the
    field of view (PixelPaddingValue/PixelPaddingRangeLimit) is taken as air and kept exactly.
    --dose-fraction f is f of the input scan's own dose (--calibration self, the default): at 0.25 the total
    noise std is about twice the input's, on any scanner (how closely, per vendor and kernel: docs/data.md).
    The input's noise is measured first, slice by slice (25th percentile of the 9x9 local std of the
    high-passed image in flat soft tissue, outside the padding); a scan with no such tissue in any slice (a
    head, a small field of view) needs --calibration mayo. INPUT and OUTPUT as for `denoise`; the DICOM
    output's SeriesDescription ends in "[sim 25% dose]" (for --dose-fraction 0.25) and its
    DerivationDescription records the method, dose fraction, calibration, measured noise level and seed.
    Slice i gets its own noise stream derived from --seed, so results do not depend on --batch-size.

    \b
    Examples:
      ldct-invrep simulate-dose scans/full_dose/ out/quarter_dose/
      ldct-invrep simulate-dose scans/full_dose/ out/tenth_dose.nii.gz --dose-fraction 0.1 --seed 7
      ldct-invrep simulate-dose scans/mayo_full/ out/mayo_quarter/ --calibration mayo
    """
    from ldct_invrep.io.volumes import check_output, open_volumes, write_volumes

    fmt = output_format(input_path, output, fmt, all_series)
    check_output(input_path, output, overwrite)
    batch_size = batch_size or 4
    volumes = open_volumes(input_path, series_uid=series_uid, recursive=recursive, force=force, all_series=all_series)
    for vol in volumes:
        say(f"input: {vol.describe()}", quiet)

    import numpy as np

    from ldct_invrep.io import storable_hu_range
    from ldct_invrep.transforms.lowdose import DEFAULT_INCIDENT_FLUX, DEFAULT_N_VIEWS, simulate_low_dose

    label = dose_label(dose_fraction)
    say(f"simulating {label} dose (projection-domain noise insertion, calibration {calibration}, seed {seed})", quiet)

    spacings = {id(vol): _in_plane_spacing_mm(vol) for vol in volumes}
    thickness = {id(vol): _slice_thickness_mm(vol) for vol in volumes}
    levels: dict[int, list[float | None]] = {}
    calibrated: dict[int, str] = {}
    for vol in volumes:
        if calibration == "self":
            where = f"{vol.path} (series {vol.series_uid})" if len(volumes) > 1 else str(vol.path)
            levels[id(vol)], own = _own_noise_levels(vol, batch_size, where)
            n = len(levels[id(vol)])
            median = float(np.median(own))
            calibrated[id(vol)] = (
                f"calibration self (flux set per slice so the simulated full dose has the slice's own noise in flat "
                f"soft tissue, 25th percentile of the 9x9 local std of the high-passed image: median {median:.2f} HU, "
                f"range {min(own):.2f}-{max(own):.2f} HU, measured on {len(own)} of {n} slices"
                f"{', the others took the series median' if len(own) < n else ''})"
            )
            say(f"{where}: own noise level {median:.2f} HU (measured on {len(own)} of {n} slices)", quiet)
        else:
            calibrated[id(vol)] = (
                f"calibration mayo (absolute flux {DEFAULT_INCIDENT_FLUX:.3g} photons/mm/view for 1 mm slices, "
                f"from the Mayo L506 pair, at slice thickness {thickness[id(vol)]:g} mm)"
            )

    clipped = [0]

    def simulate(vol: Volume, start: int, hu: np.ndarray) -> np.ndarray:
        # Slice i draws from child i of the seed's SeedSequence: independent of --batch-size.
        rngs = [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(start + k,))) for k in range(len(hu))]
        out = np.stack([
            simulate_low_dose(
                s, dose_fraction, spacings[id(vol)], rng, slice_thickness_mm=thickness[id(vol)],
                padding=vol.padding_mask(start + k, s),
                calibration=calibration, own_noise_level=levels[id(vol)][start + k] if levels else None,
            )
            for k, (s, rng) in enumerate(zip(hu, rngs))
        ])
        if vol.info is not None and fmt == "dicom":
            # Noise in air goes below what the source can store (e.g. -1024 HU); a scanner clips it the same way.
            for k in range(len(out)):
                lo, hi = storable_hu_range(vol.info, start + k)
                clipped[0] += int(np.count_nonzero((out[k] < lo) | (out[k] > hi)))
                np.clip(out[k], lo, hi, out=out[k])
        return out

    def writer_kwargs(vol: Volume) -> dict[str, Any]:
        derivation = (
            f"Simulated {label} dose by ldct-invrep {__version__}: projection-domain noise insertion (Poisson quanta "
            f"and electronic noise for dose fraction {dose_fraction:g}, parallel beam, {DEFAULT_N_VIEWS} views, "
            f"filtered back projection) added to the original image; {calibrated[id(vol)]}; seed {seed}"
        )
        return {"method": "SIM", "description_suffix": f" [sim {label} dose]", "derivation_description": derivation}

    t0 = time.perf_counter()
    n = write_volumes(
        volumes, output, fmt, simulate, batch_size=batch_size, overwrite=overwrite, quiet=quiet,
        desc=f"simulate {label} dose", all_series=all_series, writer_kwargs=writer_kwargs,
    )
    if clipped[0]:
        logger.info("%s: %d pixels outside the storable HU range clipped (noise in air)", output, clipped[0])
    click.echo(rate_line(f"simulated {label} dose for", n, time.perf_counter() - t0, output))


@cli.command(short_help="PSNR, SSIM, RMSE of predictions against a reference, per slice.")
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
@click.option("--bm3d-sigma", type=click.FloatRange(min=0), default=None, help="With --pairs: BM3D's sigma in HU (tune it on training pairs).")
@click.option("--bm3d-blind-factor", type=click.FloatRange(min=0, min_open=True), default=None,
              help="With --pairs: blind BM3D's sigma = FACTOR x each slice's noise level. [default: the factor fitted on the default model's simulated training pairs]")
@click.option("--redcnn-weights", type=click.Path(dir_okay=False, path_type=Path), default=None, help="With --pairs: a RED-CNN checkpoint.")
@_threads_option
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
        from ldct_invrep.io import check_replaceable

        check_replaceable(Path(json_out))  # before the work: only a metrics file of ours is replaced
    if pairs is not None:
        if paths or labels:
            raise click.UsageError("--pairs takes no PRED/REF and no --label")
        from ldct_invrep.cli.evaluation import evaluate_pairs

        evaluate_pairs(pairs, methods or ("input", "lir"), windows, json_out, summary, weights=weights,
                       bm3d_sigma=bm3d_sigma, bm3d_blind_factor=bm3d_blind_factor, redcnn_weights=redcnn_weights,
                       threads=threads)
        return
    if methods or weights or bm3d_sigma is not None or bm3d_blind_factor is not None or redcnn_weights or threads:
        raise click.UsageError("--method, --weights, --bm3d-sigma, --bm3d-blind-factor, --redcnn-weights and --threads need --pairs")
    if len(paths) < 2:
        raise click.UsageError("give at least one PRED and the REF")
    if len(labels) > len(paths) - 1:
        raise click.UsageError(f"{len(labels)} --label for {len(paths) - 1} PRED")
    from ldct_invrep.io.volumes import open_volumes

    *pred_paths, ref_path = paths
    ref = open_volumes(ref_path)[0]
    preds = [open_volumes(p)[0] for p in pred_paths]
    from ldct_invrep.metrics import resolve_window

    _set_threads(threads)
    wins = list(windows) or [resolve_window(w) for w in DEFAULT_METRIC_WINDOWS]
    wins = list(dict.fromkeys(wins))
    names = unique_labels(preds, labels)
    preds = [align_to_reference(p, ref) for p in preds]
    ref_label = ref.label()
    results = evaluate_volumes(preds, ref, wins, names, ref_label, batch_size=batch_size)
    document = metrics_document(results, preds, ref, names)
    if json_out == "-":
        click.echo(json.dumps(document, indent=2, allow_nan=False))
        return
    click.echo(format_results(results, summary, notes=[p.aligned_note for p in preds]))
    if json_out is not None:
        from ldct_invrep.io import atomic_output_file

        # Replaces only a JSON document ldct-invrep wrote (it has the "ldct_invrep_version" key).
        with atomic_output_file(json_out, overwrite=True, own_only=True) as tmp:
            tmp.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        click.echo(f"wrote {json_out}", err=True)


# --------------------------------------------------------------------------------------------- info
_INFO_KEYS = (  # header keys shown first, in this order, with these titles; any other key follows as it is
    ("preset", "preset"),
    ("config", "config"),
    ("training_data", "training data"),
    ("training", "training"),
    ("iterations", "iterations"),
    ("window", "window"),
    ("hu_range", "HU range"),
    ("self_ensemble", "self-ensemble"),
    ("package_version", "written by ldct-invrep"),
    ("format_version", "checkpoint format"),
)


def _fmt_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt_value(v) for v in value) + "]"
    return str(value)


@cli.command(short_help="Show what a checkpoint holds (preset, training, parameters).")
@click.argument("weights", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the header and parameter count as JSON.")
def info(weights: Path | None, as_json: bool) -> None:
    """What a checkpoint holds: preset, network config, training data, iterations, HU window, self-ensemble,
    version, size.

    WEIGHTS is an ldct-invrep checkpoint (a bundle's models/model.pt, ldct_invrep.io.checkpoint.save_restorer)
    or a TorchScript export. [default: the shipped weights]

    \b
    Examples:
      ldct-invrep info
      ldct-invrep info bundles/ldct_mayo/models/model.pt --json
    """
    path = resolve_weights(weights)
    restorer, header = _load_checkpoint(path)  # every check denoise makes: header values, weights' shapes, NaN
    n_params = sum(p.numel() for p in restorer.parameters())
    if as_json:
        click.echo(json.dumps({"path": str(path), "parameters": n_params, "header": header}, indent=2, default=str))
        return
    rows = [("file", f"{path} ({path.stat().st_size / 1e6:.2f} MB)")]
    shown = set()
    for key, title in _INFO_KEYS:
        if key in header:
            rows.append((title, _fmt_value(header[key])))
            shown.add(key)
    rows += [(key, _fmt_value(value)) for key, value in header.items() if key not in shown]
    rows.append(("installed ldct-invrep", __version__))
    rows.append(("parameters", f"{n_params:,} (restorer: content encoder E_X + clean generator G_Y)"))
    width = max(len(t) for t, _ in rows)
    click.echo("\n".join(f"{t.ljust(width)}  {v}" for t, v in rows))


# --------------------------------------------------------------------------------------------- prepare
_DATASETS = ("mayo2016", "tcia_ldct", "ldct-dev", "bsd68", "set12", "kodak24", "train400", "cbsd68", "cbsd432")


@cli.command(short_help="Check a local dataset copy and write its datalist.")
@click.argument("dataset", type=click.Choice(_DATASETS))
@click.argument("root", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("."), show_default=True,
    help="Datalist file (.json), or a folder (created if needed) for <dataset>_<split>.json (mayo2016, tcia_ldct) "
    "or <dataset>.json (image sets).",
)
@click.option("--split", default=None, help="Split definition. [default: patient (mayo2016), ldctbench (tcia_ldct)]")
@click.option(
    "--thickness", type=click.Choice(["1mm", "3mm"]), default=None,
    help="mayo2016: the slice thickness your copy has and the datalist uses. [default: the split's: 3mm for patient, 1mm for paper_random]",
)
@click.option("--kernel", type=click.Choice(["B30", "D45"]), default=None, help="mayo2016: reconstruction kernel. [default: B30]")
@click.option(
    "--accept-incomplete", is_flag=True,
    help="Write the datalist even when the report says NOT OK (from the series that are there).",
)
@click.option("--no-headers", is_flag=True, help="Do not read DICOM headers (faster; pair slices by file-name numbers).")
def prepare(
    dataset: str, root: Path, out: Path, split: str | None, thickness: str | None, kernel: str | None,
    accept_incomplete: bool, no_headers: bool,
) -> None:
    """Check a local copy of a dataset against its manifest and write its datalist (JSON).

    DATASET is mayo2016 (2016 AAPM-Mayo challenge), tcia_ldct (TCIA LDCT-and-Projection-data), ldct-dev
    (the 5 real quarter/full-dose development pairs: mayo2016_mapnn_ima/ and ldct_pairs_dev/ under ROOT,
    a "test" section for `evaluate --pairs`) or a natural-image set (bsd68, set12, kodak24, train400; colour: cbsd68, cbsd432). ROOT is the folder of
    your copy. The report names missing patients and series, stray and unreadable files, and ends OK or
    NOT OK. A NOT OK copy gets no datalist (exit status 2) unless --accept-incomplete; an image set must
    match its manifest.
    Paths in the datalist are relative to ROOT, so the datalist can be shared; the data itself is never
    copied. For mayo2016 only the --thickness/--kernel series are expected (a 3 mm download is complete
    without the 1 mm series).

    \b
    Examples:
      ldct-invrep prepare mayo2016 /data/mayo2016 --out datalists/             -> datalists/mayo2016_patient.json
      ldct-invrep prepare mayo2016 /data/mayo2016_1mm --out datalists/ --thickness 1mm
      ldct-invrep prepare tcia_ldct /data/LDCT-and-Projection-data --out tcia.json --split ldctbench
      ldct-invrep prepare bsd68 /data/natural/bsd68 --out datalists/           -> datalists/bsd68.json
      ldct-invrep prepare ldct-dev ../shared/data --out datalists/
    """
    from ldct_invrep.data import IncompleteDatasetError, format_report
    from ldct_invrep.data import prepare as prepare_dataset

    if dataset != "mayo2016" and (thickness or kernel):
        raise click.UsageError("--thickness and --kernel are for mayo2016 only")
    extra = {k: v for k, v in (("thickness", thickness), ("kernel", kernel)) if v}
    try:
        report, path = prepare_dataset(
            dataset, root, out, split=split, read_headers=not no_headers, require_ok=not accept_incomplete, **extra
        )
    except IncompleteDatasetError as exc:
        click.echo(format_report(exc.report))
        raise
    click.echo(format_report(report))
    click.echo(f"wrote datalist -> {path}")


# --------------------------------------------------------------------------------------------- train
def _parse_overrides(tokens: Sequence[str]) -> dict[str, Any]:
    """``key=value`` or ``--key value`` (MONAI bundle style) -> dict; values parsed as JSON when they are JSON."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--"):
            key, sep, value = token[2:].partition("=")
            if not sep:
                if i + 1 >= len(tokens):
                    raise click.UsageError(f"override {token} has no value")
                value = tokens[i + 1]
                i += 1
        else:
            key, sep, value = token.partition("=")
            if not sep:
                raise click.UsageError(f"override {token!r}: expected KEY=VALUE (e.g. max_iterations=1000)")
        if not key:
            raise click.UsageError(f"override {token!r} has no key")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        i += 1
    return out


@cli.command(short_help="Train from a MONAI bundle (monai.bundle run).", context_settings={"ignore_unknown_options": True})
@click.argument("bundle_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--config", "configs", multiple=True, metavar="FILE",
    help="Config file(s), relative to BUNDLE_DIR (else to the current folder) or absolute; later ones "
    "override earlier. [default: configs/train.json]",
)
@click.option("--run-id", default="run", show_default=True, help="ID of the expression to run in the config.")
@click.option("--dry-run", is_flag=True, help="Print the equivalent `python -m monai.bundle run` command and stop.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for PyTorch (the bundle's threads key).")
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
def train(
    bundle_dir: Path, configs: tuple[str, ...], run_id: str, dry_run: bool, threads: int | None, overrides: tuple[str, ...]
) -> None:
    """Train from a MONAI bundle: a thin wrapper around `python -m monai.bundle run`.

    BUNDLE_DIR is a bundle folder (e.g. bundles/ldct_mayo, or one written by `ldct-invrep bundle export`). Its configs/metadata.json and
    configs/logging.conf are used when present, bundle_root is set to BUNDLE_DIR, and every OVERRIDE
    (KEY=VALUE, or --KEY VALUE as monai.bundle takes them; nested keys with #) replaces a config value.
    Values are read as JSON when they are JSON (numbers, true/false, lists), otherwise as strings.

    \b
    Examples:
      ldct-invrep train bundles/ldct_mayo dataset_dir=/data/mayo2016 max_iterations=1000
      ldct-invrep train bundles/ldct_mayo --config configs/train.json --config my_overrides.json
      ldct-invrep train bundles/natural_awgn --dry-run

    The ldct_mayo and natural_* bundles use the VGG-19 semantic loss by default (semantic_weight 1), which
    needs the ImageNet VGG-19 weights: `ldct-invrep fetch vgg19` downloads them once, or pass semantic_weight=0.
    """
    bundle_dir = bundle_dir.expanduser()
    if not bundle_dir.is_dir():
        raise InputError(f"{bundle_dir}: no such bundle folder")
    files = []
    for name in configs or ("configs/train.json",):
        candidates = [Path(name)] if Path(name).is_absolute() else [bundle_dir / name, Path(name)]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise InputError(f"{candidates[0]}: config file not found")
        files.append(found)
    kwargs: dict[str, Any] = {"run_id": run_id, "config_file": [str(f) for f in files]}
    meta, log_conf = bundle_dir / "configs" / "metadata.json", bundle_dir / "configs" / "logging.conf"
    if meta.is_file():
        kwargs["meta_file"] = str(meta)
    if log_conf.is_file():
        kwargs["logging_file"] = str(log_conf)
    values = {"bundle_root": str(bundle_dir.resolve()), **({"threads": threads} if threads else {}), **_parse_overrides(overrides)}
    command = ["python -m monai.bundle run", run_id] + [
        f"--{k} {_shell_quote(json.dumps(v) if isinstance(v, list) else str(v))}" for k, v in kwargs.items() if k != "run_id"
    ] + [f"--{k} {_shell_quote(json.dumps(v) if not isinstance(v, str) else v)}" for k, v in values.items()]
    say("equivalent command: " + " ".join(command))
    if dry_run:
        return
    from monai.bundle import run

    run(**kwargs, **values)


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


# --------------------------------------------------------------------------------------------- fetch
@cli.command(short_help="Download a file ldct-invrep can use but does not ship (asks the network).")
@click.argument("what", type=click.Choice(["vgg19"]))
@click.option(
    "--to", "dest", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Where to write it. [default: the torch hub cache, where training looks for it]",
)
def fetch(what: str, dest: Path | None) -> None:
    """Download, on your request only, a file that training can use but the package does not ship.

    vgg19: torchvision's ImageNet VGG-19 weights (vgg19-dcbb9e9d.pth, 548 MB, checked against the SHA-256
    prefix in its name), needed by the semantic consistency loss (paper eq. 11) of the ldct_mayo,
    natural_awgn and natural_poisson bundles (semantic_weight 1). Nothing else in ldct-invrep downloads.
    Without it train with semantic_weight=0; evaluation, inference and the ldct_simulated bundle never need it.

    \b
    Examples:
      ldct-invrep fetch vgg19
      ldct-invrep fetch vgg19 --to ~/weights/vgg19-dcbb9e9d.pth   then: export LDCT_INVREP_VGG19_WEIGHTS=...
    """
    from ldct_invrep.losses.vgg import VGG19_WEIGHTS_URL, default_weight_paths, fetch_vgg19_weights

    target = dest.expanduser() if dest is not None else default_weight_paths()[-1]
    if target.is_file():
        click.echo(f"already there: {target}")
        return
    say(f"downloading {VGG19_WEIGHTS_URL} -> {target}")
    click.echo(f"wrote {fetch_vgg19_weights(target)}")


# --------------------------------------------------------------------------------------------- bundle
@cli.group(short_help="The MONAI bundles shipped with the package.")
def bundle() -> None:
    """The MONAI bundles shipped with ldct-invrep (ldct_mayo, ldct_simulated, natural_awgn, natural_poisson)."""


@bundle.command("export", short_help="Write a shipped MONAI bundle to a folder.")
@click.argument("name")
@click.argument("target", metavar="DIR", type=click.Path(path_type=Path))
def bundle_export(name: str, target: Path) -> None:
    """Write the shipped bundle NAME to DIR (configs, docs, LICENSE, models/), ready for
    `python -m monai.bundle run --bundle_root DIR` or `ldct-invrep train DIR`. For ldct_simulated,
    models/model.pt is a copy of the shipped weights, so its evaluate and inference configs run at once.
    DIR must not exist yet.

    \b
    Examples:
      ldct-invrep bundle export ldct_simulated my_bundle/
      ldct-invrep bundle export ldct_mayo mayo/ && ldct-invrep train mayo/ dataset_dir=/data/mayo2016
    """
    from ldct_invrep.package_files import export_bundle

    written = export_bundle(name, target)
    click.echo(f"wrote bundle {name} -> {written}")


# --------------------------------------------------------------------------------------------- demo
@cli.command(short_help="Simulate, denoise and evaluate the sample series shipped with the package.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=Path("out/demo"), show_default=True, help="Folder for the demo outputs.")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None, help="[default: the shipped weights]")
@click.option("--dose-fraction", type=click.FloatRange(min=0, max=1, min_open=True), default=0.25, show_default=True, callback=_finite)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the simulated noise.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for PyTorch. [default: PyTorch's choice]")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def demo(output: Path, weights: Path | None, dose_fraction: float, seed: int, device: str, threads: int | None, quiet: bool) -> None:
    """Simulate, denoise and evaluate the CT series shipped with the package (about 2 minutes on 2 cores).

    \b
    Steps (the equivalent individual commands are printed at the end):
      1. simulate a quarter-dose version of the sample series      -> OUTPUT/quarter_dose/
      2. denoise it with the shipped LIR weights                    -> OUTPUT/denoised/
      3. evaluate both against the original in the abdomen and full windows -> OUTPUT/metrics.json

    Re-running replaces the outputs of an earlier demo in OUTPUT; any other existing folder is refused.

    \b
    Example:
      ldct-invrep demo --output out/demo
    """
    from ldct_invrep.demo import run_demo

    run_demo(output, weights=weights, dose_fraction=dose_fraction, seed=seed, device=device, threads=threads, quiet=quiet)


# --------------------------------------------------------------------------------------------- adapt
from ldct_invrep.cli.adapt import adapt  # noqa: E402 - its own module; registered on the group here

cli.add_command(adapt)


# --------------------------------------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> None:
    """Console script ``ldct-invrep``."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="ldct-invrep")


if __name__ == "__main__":  # pragma: no cover
    main()
