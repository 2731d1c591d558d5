"""``ldct-invrep simulate-dose``: a reduced-dose scan by projection-domain noise insertion (``pipelines.simulate``)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ldct_invrep.cli.console import say
from ldct_invrep.cli.options import finite, input_arg, output_arg, series_options
from ldct_invrep.cli.volumes import output_format, rate_line

__all__ = ["simulate_dose"]


@click.command("simulate-dose", short_help="Simulate a reduced-dose scan by projection-domain noise insertion.")
@input_arg
@output_arg
@click.option(
    "--dose-fraction", type=click.FloatRange(min=0, max=1, min_open=True), default=0.25, show_default=True,
    callback=finite,
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
@series_options("4")
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
    from ldct_invrep.io.volumes import check_output, open_volumes
    from ldct_invrep.pipelines import dose_label, simulate_dose_volumes

    fmt = output_format(input_path, output, fmt, all_series)
    check_output(input_path, output, overwrite)
    volumes = open_volumes(input_path, series_uid=series_uid, recursive=recursive, force=force, all_series=all_series)
    for vol in volumes:
        say(f"input: {vol.describe()}", quiet)
    t0 = time.perf_counter()
    n = simulate_dose_volumes(
        volumes, output, fmt, dose_fraction=dose_fraction, calibration=calibration, seed=seed,
        batch_size=batch_size or 4, overwrite=overwrite, quiet=quiet, all_series=all_series,
        say=lambda message: say(message, quiet),
    )  # fmt: skip
    click.echo(rate_line(f"simulated {dose_label(dose_fraction)} dose for", n, time.perf_counter() - t0, output))
