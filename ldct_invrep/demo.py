"""``ldct-invrep demo``: simulate a quarter-dose scan of the shipped sample series, denoise it, evaluate both.

The demo is a composition of the ``simulate-dose``, ``denoise`` and ``evaluate`` commands (it invokes them),
so the individual commands it prints at the end do exactly the same. ``python -m ldct_invrep.demo`` runs it
too (``python -m ldct_invrep.demo --output out/demo``).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import click

from ldct_invrep.errors import InputError

__all__ = ["DEMO_ENTRIES", "run_demo"]

DEMO_ENTRIES = ("quarter_dose", "denoised", "metrics.json")
"""What a demo writes in its output folder (listed in the folder's output marker, ``ldct_invrep.io.OUTPUT_MARKER``)."""


def _check_demo_output(output: Path) -> None:
    """An absent or empty folder, or the whole output of an earlier run (``ldct_invrep.io.check_replaceable``)."""
    from ldct_invrep.io import check_replaceable

    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: exists and is not a folder; choose another --output")
    check_replaceable(output)


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
    """Run the three steps inside the current click context (the ``demo`` command)."""
    from ldct_invrep.cli import commands as cli
    from ldct_invrep.cli.evaluation import (
        DEFAULT_METRIC_WINDOWS,
        WindowParam,
        align_to_reference,
        evaluate_volumes,
        format_results,
        metrics_document,
    )
    from ldct_invrep.io.volumes import open_volumes
    from ldct_invrep.package_files import sample_series_path

    ctx = click.get_current_context()
    output = Path(output)
    sample = sample_series_path()
    _check_demo_output(output)
    weights_path = cli.resolve_weights(weights)  # fail before the slow simulation
    from ldct_invrep.io import atomic_output_file, mark_output_dir

    output.mkdir(parents=True, exist_ok=True)
    mark_output_dir(output, DEMO_ENTRIES)
    quarter, denoised, metrics_json = (output / name for name in DEMO_ENTRIES)
    label = cli.dose_label(dose_fraction)
    echo = click.echo
    t_start = time.perf_counter()

    echo(f"ldct-invrep demo: sample series {sample}")
    echo(f"\n[1/3] simulate a {label} dose scan (projection-domain noise insertion, seed {seed}) -> {quarter}")
    t0 = time.perf_counter()
    ctx.invoke(
        cli.simulate_dose, input_path=sample, output=quarter, dose_fraction=dose_fraction, seed=seed,
        overwrite=True, quiet=quiet,
    )
    t_sim = time.perf_counter() - t0

    echo(f"\n[2/3] denoise it with LIR (content encoder E_X, then clean generator G_Y) -> {denoised}")
    t0 = time.perf_counter()
    ctx.invoke(
        cli.denoise, input_path=quarter, output=denoised, weights=weights_path, device=device, threads=threads,
        overwrite=True, quiet=quiet,
    )
    t_den = time.perf_counter() - t0

    echo(f"\n[3/3] evaluate both against the original (full-dose) series -> {metrics_json}")
    t0 = time.perf_counter()
    ref = open_volumes(sample)[0]
    preds = [align_to_reference(open_volumes(p)[0], ref) for p in (quarter, denoised)]
    labels = [f"{label} dose", "LIR denoised"]
    windows = [WindowParam().convert(w, None, None) for w in DEFAULT_METRIC_WINDOWS]
    results = evaluate_volumes(preds, ref, windows, labels, "original")
    echo(format_results(results, summary_only=True))
    document = metrics_document(results, preds, ref, labels)
    with atomic_output_file(metrics_json, overwrite=True, own_only=True) as tmp:
        tmp.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
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


def main(argv: list[str] | None = None) -> None:
    """``python -m ldct_invrep.demo [--output DIR] ...``: the ``demo`` command."""
    from ldct_invrep.cli import main as cli_main

    cli_main(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    main()
