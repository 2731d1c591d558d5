"""Options, arguments and small steps the commands share (series selection, threads, device)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import click

__all__ = [
    "cpu_has_bf16", "finite", "input_arg", "output_arg", "resolve_device", "series_options", "set_threads", "threads_option",
]  # fmt: skip

def _series_options(batch_default: str) -> list[Callable[[Callable], Callable]]:
    return [
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
            help=f"Slices read and processed at a time. [default: {batch_default}]",
        ),
        click.option(
            "--overwrite", is_flag=True,
            help="Replace an existing OUTPUT that ldct-invrep wrote, once the new output is complete. Any other "
            "file or folder (no output marker, or holding files ldct-invrep did not write) is refused.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar or step messages (the final summary line is still printed)."),
    ]


def series_options(batch_default: str) -> Callable[[Callable], Callable]:
    """The options of a command that reads a series and writes one (``denoise``, ``simulate-dose``);
    ``batch_default`` words that command's ``--batch-size`` default."""

    def decorate(f: Callable) -> Callable:
        for option in reversed(_series_options(batch_default)):
            f = option(f)
        return f

    return decorate


threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="CPU threads for PyTorch. [default: PyTorch's choice]"
)
input_arg = click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
output_arg = click.argument("output", metavar="OUTPUT", type=click.Path(path_type=Path))


def set_threads(threads: int | None) -> None:
    """``--threads``: PyTorch's intra-op threads (imports torch only when given)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def cpu_has_bf16() -> bool:
    """Native bfloat16 on this CPU (oneDNN's check); without it bf16 autocast was 85x slower here (lite, 512x512)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True  # unknown: do not warn


def resolve_device(device: str):
    from ldct_invrep.inference import resolve_device

    try:
        return resolve_device(device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from exc


def finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """click's FloatRange lets NaN through (every comparison with it is false)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number in the allowed range")
    return value
