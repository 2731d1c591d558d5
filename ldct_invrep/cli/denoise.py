"""``ldct-invrep denoise``: LIR restoration of a DICOM series or NIfTI volume (``pipelines.denoise``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from ldct_invrep.cli.console import say
from ldct_invrep.cli.options import (
    cpu_has_bf16,
    input_arg,
    output_arg,
    resolve_device,
    series_options,
    set_threads,
    threads_option,
)
from ldct_invrep.cli.volumes import output_format, rate_line
from ldct_invrep.io.checkpoint import SELF_ENSEMBLE_SIZES

__all__ = ["denoise"]

logger = logging.getLogger(__name__)


@click.command(short_help="Denoise a CT scan (DICOM series or NIfTI) with LIR.")
@input_arg
@output_arg
@click.option(
    "--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="An ldct-invrep checkpoint (a bundle's models/model.pt, ldct_invrep.io.checkpoint.save_restorer) or its "
    "TorchScript export (models/model.ts). [default: the shipped weights, weights/lir_ct.pt]",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="auto: CUDA if available, else CPU.")
@threads_option
@click.option(
    "--bf16", is_flag=True,
    help="bfloat16 autocast (tiny HU differences): for GPUs and CPUs with native bf16 (AVX512-BF16, AMX); "
    "far slower on other CPUs.",
)
@click.option(
    "--self-ensemble", type=click.Choice([str(n) for n in SELF_ENSEMBLE_SIZES]), default=None,
    help="Average the outputs over 2 or 4 flips or 8 flips/transposes of each slice (that many times slower; 1: off). "
    "[default: the checkpoint's 'self_ensemble' (ldct-invrep info shows it), else 1]",
)
@click.option(
    "--reference-noise", type=click.FloatRange(min=0), default=None, metavar="HU",
    help="Keep the noise a normal-dose scan has: each slice becomes out + a (in - out), a = (HU / its own noise in "
    "flat soft tissue)^2, so a slice already at that noise is left as it is; 0: the network's output alone. "
    "[default: the checkpoint's 'reference_noise_hu', else 0]",
)
@series_options("1 on CPU (fastest there), 4 on CUDA")
def denoise(
    input_path: Path, output: Path, weights: Path | None, device: str, threads: int | None, bf16: bool,
    self_ensemble: str | None, reference_noise: float | None,
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
    from ldct_invrep.io.volumes import check_output, open_volumes
    from ldct_invrep.pipelines import denoise_volumes, load_denoiser, resolve_weights

    fmt = output_format(input_path, output, fmt, all_series)
    weights_path = resolve_weights(weights)
    check_output(input_path, output, overwrite, also_read=[weights_path])
    volumes = open_volumes(input_path, series_uid=series_uid, recursive=recursive, force=force, all_series=all_series)
    torch_device = resolve_device(device)  # imports torch: after the cheap checks of the input
    for vol in volumes:
        say(f"input: {vol.describe()}", quiet)

    import torch

    set_threads(threads)
    if bf16 and torch_device.type == "cpu" and not cpu_has_bf16():
        logger.warning("--bf16: this CPU has no native bfloat16 support; the run will be much slower than without --bf16")
    chosen = None if self_ensemble is None else int(self_ensemble)
    denoiser, header = load_denoiser(
        weights_path, torch_device, batch_size=batch_size, bf16=bf16, self_ensemble=chosen,
        reference_noise_hu=reference_noise,
    )  # fmt: skip
    ensemble = denoiser.self_ensemble
    preset = header.get("preset", header.get("format", "?"))
    say(
        f"weights: {weights_path} (preset {preset}) on {torch_device}"
        f"{', bf16' if bf16 else ''}, {torch.get_num_threads()} thread(s), batch {denoiser.batch_size}"
        f"{f', self-ensemble of {ensemble}' if ensemble > 1 else ''}"
        f"{f', reference noise {denoiser.reference_noise_hu:g} HU' if denoiser.reference_noise_hu else ''}",
        quiet,
    )
    t0 = time.perf_counter()
    n = denoise_volumes(
        volumes, output, fmt, denoiser, header, weights_name=weights_path.name, overwrite=overwrite, quiet=quiet,
        all_series=all_series,
    )  # fmt: skip
    click.echo(rate_line("denoised", n, time.perf_counter() - t0, output))
    if denoiser.blend_weights:
        a = sorted(denoiser.blend_weights)
        say(f"reference-noise blend: input weight {a[0]:.2f}-{a[-1]:.2f} (median {a[len(a) // 2]:.2f}) over {len(a)} slices", quiet)
