"""``ldct-invrep demo``: simulate a quarter-dose scan of the shipped sample series, denoise it, evaluate both.

The demo runs the pipelines the ``simulate-dose``, ``denoise`` and ``evaluate`` commands run
(``ldct_invrep.pipelines``), with those commands' defaults, so the individual commands it prints at the end
do exactly the same.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import click

from ldct_invrep.cli.console import say
from ldct_invrep.cli.options import finite, resolve_device, set_threads
from ldct_invrep.cli.volumes import rate_line
from ldct_invrep.errors import InputError

__all__ = ["DEMO_ENTRIES", "demo", "run_demo"]

DEMO_ENTRIES = ("quarter_dose", "denoised", "metrics.json")
"""What a demo writes in its output folder (listed in the folder's output marker, ``ldct_invrep.io.OUTPUT_MARKER``)."""


def _check_demo_output(output: Path, sample: Path) -> None:
    """An absent or empty folder outside the sample series, or the whole output of an earlier demo
    (``ldct_invrep.io.check_replaceable``, and nothing but :data:`DEMO_ENTRIES`: not another command's output)."""
    from ldct_invrep.io import OUTPUT_MARKER, check_output_location, check_replaceable

    if output.exists() and not output.is_dir():
        raise InputError(output, "exists and is not a folder; choose another --output")
    check_output_location(sample, output)
    check_replaceable(output)
    others = sorted(p.name for p in output.iterdir() if p.name not in (*DEMO_ENTRIES, OUTPUT_MARKER)) if output.is_dir() else []
    if others:
        raise InputError(output / others[0], "not part of an earlier demo's output; choose another --output")


def _q(path: Path | str) -> str:
    return shlex.quote(str(path))


def run_demo(
    output: Path,
    *,
    weights: Path | None = None,
    dose_fraction: float = 0.25,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    quiet: bool = False,
) -> None:
    """The three steps on the sample series (``package_files.sample_series_path``), each with its command's defaults."""
    from ldct_invrep import package_files
    from ldct_invrep.io import mark_output_dir
    from ldct_invrep.io.volumes import check_output, open_volumes
    from ldct_invrep.metrics import resolve_window
    from ldct_invrep.pipelines import (
        DEFAULT_METRIC_WINDOWS,
        align_to_reference,
        denoise_volumes,
        dose_label,
        evaluate_volumes,
        format_results,
        load_denoiser,
        metrics_document,
        resolve_weights,
        simulate_dose_volumes,
        write_metrics_json,
    )

    output = Path(output)
    sample = package_files.sample_series_path()
    _check_demo_output(output, sample)
    weights_path = resolve_weights(weights)
    torch_device = resolve_device(device)
    set_threads(threads)
    denoiser, header = load_denoiser(weights_path, torch_device)  # a bad checkpoint fails before the slow simulation
    output.mkdir(parents=True, exist_ok=True)
    mark_output_dir(output, DEMO_ENTRIES)
    quarter, denoised, metrics_json = (output / name for name in DEMO_ENTRIES)
    label = dose_label(dose_fraction)
    echo = click.echo
    t_start = time.perf_counter()

    echo(f"ldct-invrep demo: sample series {sample}")
    echo(f"\n[1/3] simulate a {label} dose scan (projection-domain noise insertion, seed {seed}) -> {quarter}")
    t0 = time.perf_counter()
    check_output(sample, quarter, overwrite=True)
    volumes = open_volumes(sample)
    say(f"input: {volumes[0].describe()}", quiet)
    n = simulate_dose_volumes(
        volumes, quarter, "dicom", dose_fraction=dose_fraction, seed=seed, overwrite=True, quiet=quiet,
        say=lambda message: say(message, quiet),
    )  # fmt: skip
    t_sim = time.perf_counter() - t0
    echo(rate_line(f"simulated {label} dose for", n, t_sim, quarter))

    echo(f"\n[2/3] denoise it with LIR (content encoder E_X, then clean generator G_Y) -> {denoised}")
    t0 = time.perf_counter()
    check_output(quarter, denoised, overwrite=True, also_read=[weights_path])
    volumes = open_volumes(quarter)
    n = denoise_volumes(
        volumes, denoised, "dicom", denoiser, header, weights_name=weights_path.name, overwrite=True, quiet=quiet
    )
    t_den = time.perf_counter() - t0
    echo(rate_line("denoised", n, t_den, denoised))

    echo(f"\n[3/3] evaluate both against the original (full-dose) series -> {metrics_json}")
    t0 = time.perf_counter()
    ref = open_volumes(sample)[0]
    preds = [align_to_reference(open_volumes(p)[0], ref) for p in (quarter, denoised)]
    labels = [f"{label} dose", "LIR denoised"]
    windows = [resolve_window(w) for w in DEFAULT_METRIC_WINDOWS]
    results = evaluate_volumes(preds, ref, windows, labels, "original")
    echo(format_results(results, summary_only=True))
    write_metrics_json(metrics_json, metrics_document(results, preds, ref, labels))
    t_eval = time.perf_counter() - t0

    total = time.perf_counter() - t_start
    echo(f"\ndone in {total:.0f} s (simulate {t_sim:.0f} s, denoise {t_den:.0f} s, evaluate {t_eval:.0f} s)")
    weights_opt = "" if weights is None else f" --weights {_q(weights_path)}"
    echo("the same, one command at a time:")
    echo(f"  ldct-invrep simulate-dose {_q(sample)} {_q(quarter)} --dose-fraction {dose_fraction:g} --seed {seed}")
    echo(f"  ldct-invrep denoise {_q(quarter)} {_q(denoised)}{weights_opt}")
    echo(
        f"  ldct-invrep evaluate {_q(quarter)} {_q(denoised)} {_q(sample)} "
        f"--label '{labels[0]}' --label '{labels[1]}' --json {_q(metrics_json)}"
    )
    echo(f"open {denoised} next to {sample} in a DICOM viewer (e.g. 3D Slicer) to compare them.")


@click.command(short_help="Simulate, denoise and evaluate the sample series shipped with the package.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=Path("out/demo"), show_default=True, help="Folder for the demo outputs.")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Checkpoint to denoise with. [default: the shipped weights]")
@click.option("--dose-fraction", type=click.FloatRange(min=0, max=1, min_open=True), default=0.25, show_default=True, callback=finite,
              help="Dose of the simulated scan as a fraction of the sample series' own (as simulate-dose).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the simulated noise.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for PyTorch. [default: PyTorch's choice]")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def demo(output: Path, weights: Path | None, dose_fraction: float, seed: int, device: str, threads: int | None, quiet: bool) -> None:
    """Simulate, denoise and evaluate the CT series shipped with the package (under a minute on 2 CPU cores).

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
    run_demo(output, weights=weights, dose_fraction=dose_fraction, seed=seed, device=device, threads=threads, quiet=quiet)
