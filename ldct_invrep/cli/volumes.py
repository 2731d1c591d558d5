"""Command-line side of the volume pipelines: the output format from ``--format`` and OUTPUT's name, and the
summary line of a run."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["output_format", "rate_line"]


def output_format(input_path: Path, output: Path, fmt: str | None, all_series: bool) -> str:
    """``dicom`` or ``nifti`` from ``--format`` or OUTPUT's name; usage errors for impossible combinations."""
    from ldct_invrep.io.volumes import is_nifti_name

    nifti_name = is_nifti_name(output)
    if fmt is None:
        fmt = "nifti" if nifti_name else "dicom"
    if all_series and nifti_name:
        raise click.UsageError("--all-series writes one output per series into the OUTPUT folder; give a folder, not a .nii/.nii.gz name")
    if fmt == "nifti" and not nifti_name and not all_series:
        raise click.UsageError(f"--format nifti needs an OUTPUT ending in .nii or .nii.gz (got {output})")
    if fmt == "dicom" and nifti_name:
        raise click.UsageError(f"OUTPUT {output} ends in .nii/.nii.gz but --format dicom writes a folder")
    if fmt == "dicom" and is_nifti_name(input_path):
        raise click.UsageError(
            f"{input_path} is NIfTI: a DICOM output needs DICOM source headers; give an OUTPUT ending in .nii.gz"
        )
    return fmt


def rate_line(verb: str, n: int, seconds: float, output: Path) -> str:
    rate = n / seconds if seconds > 0 else float("inf")
    return f"{verb} {n} slice{'s' if n != 1 else ''} in {seconds:.1f} s ({rate:.2f} slices/s) -> {output}"
