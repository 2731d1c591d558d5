"""``ldct-invrep adapt``: fit the model to a user's own scanner from their unpaired low-dose scans
(:mod:`ldct_invrep.adaptation` does the work; this module is the command line around it)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import click

from ldct_invrep.cli.console import EXIT_INTERRUPTED, CLIError, Terminated, say
from ldct_invrep.errors import InputError

__all__ = ["adapt"]

DEFAULT_MINUTES = 10.0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@click.command(short_help="Fit the model to your scanner from your own low-dose scans (no pairs needed).")
@click.argument("low_dose", metavar="LOW_DOSE...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Adapted model to write (for denoise --weights), outside the folders of scans read. Its training state goes next to it: NAME_state.pt.",
)
@click.option(
    "--normal-dose", multiple=True, type=click.Path(path_type=Path), metavar="SERIES",
    help="Normal-dose series for the clean domain, added to the package's sample series; repeat for several.",
)
@click.option(
    "--minutes", type=click.FloatRange(min=0, min_open=True), default=None,
    help=f"Training time in total (over resumes). [default: {DEFAULT_MINUTES:g}, unless --iterations; with "
    "--resume: the earlier run's budget]",
)
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="Training iterations in total (over resumes), instead of --minutes.")
@click.option(
    "--from", "from_state", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="STATE",
    help="Training state to start from (all networks and optimisers; an exported model is not enough), e.g. "
    "the NAME_state.pt of an earlier adapt. [default: the shipped model's, weights/<model>_state.pt]",
)
@click.option(
    "--resume", is_flag=True,
    help="Continue the adaptation whose state is next to --out (same inputs and settings; --batch-size, --seed and "
    "--checkpoint-every are taken from it); a larger budget extends it.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out, and start over from --from even if a state is next to it.")
@click.option("--holdout", type=click.IntRange(min=1), default=None, help="Low-dose slices held out for the check. [default: 10 %, 1 to 8]")
@click.option(
    "--max-drift-hu", type=click.FloatRange(min=0), default=5.0, show_default=True,
    help="Refuse to write a model that moves the soft-tissue mean of the held-out slices by more HU than this.",
)
@click.option(
    "--max-noise-ratio", type=click.FloatRange(min=1), default=1.25, show_default=True,
    help="Refuse to write a model that leaves more flat-tissue noise in the held-out slices than the model it "
    "started from, by more than this factor.",
)
@click.option("--max-slices", type=click.IntRange(min=2), default=200, show_default=True, help="Low-dose slices read in all (evenly spaced in each series).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="Patch pairs per iteration (64x64, paper section 4.1).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=20, show_default=True, help="Write the training state every N iterations.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the patch draws and the noise-code samples.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for PyTorch. [default: PyTorch's choice]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="auto: CUDA if available, else CPU.")
@click.option("--recursive", "-r", is_flag=True, help="Also look for DICOM files in sub-folders.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or step messages (the check table and summary are still printed).")
def adapt(
    low_dose: tuple[Path, ...], out: Path, normal_dose: tuple[Path, ...], minutes: float | None, iterations: int | None,
    from_state: Path | None, resume: bool, overwrite: bool, holdout: int | None, max_drift_hu: float,
    max_noise_ratio: float, max_slices: int,
    batch_size: int, checkpoint_every: int, seed: int, threads: int | None, device: str, recursive: bool, quiet: bool,
) -> None:
    """Adapt the LIR model to your scanner and protocol from your own low-dose scans: no full-dose pairs needed.

    Continues the unpaired LIR training (all networks, every loss term of eq. 14, the optimisers where the
    training state left them) with your low-dose scans, as acquired, as the noisy domain and normal-dose
    slices (the package's sample series and any --normal-dose series) as the clean domain. LOW_DOSE are
    DICOM series folders (every series of a folder is used), DICOM files or NIfTI files.

    A few slices are held out. Before writing, a no-reference check on them compares the input, the model
    before and after: noise std in flat soft tissue, edge sharpness and soft-tissue mean HU. A model whose
    soft-tissue mean moves by more than --max-drift-hu, or that leaves more noise than the starting model
    (--max-noise-ratio), is not written (exit 2). The output header records
    the series UIDs (never patient data), the starting state, iterations, training time and the check; its full
    training state (NAME_state.pt) allows --resume and further adapting (--from NAME_state.pt).

    Measured on 3 real quarter-dose slices, adapting made the model worse against full dose (docs/adapt.md):
    adapt on many slices, add your own normal-dose series, and check the result against a few full-dose
    references with ldct-invrep evaluate before using it.

    \b
    Examples:
      ldct-invrep adapt scans/my_scanner/ --out my_model.pt --minutes 10 --threads 2
      ldct-invrep adapt scans/a/ scans/b.nii.gz --out my_model.pt --normal-dose scans/full/ --iterations 500
      ldct-invrep adapt scans/my_scanner/ --out my_model.pt --minutes 20 --resume
      ldct-invrep denoise scans/my_scanner/ out/denoised/ --weights my_model.pt
    """
    if minutes is not None and iterations is not None:
        raise click.UsageError("give --minutes or --iterations, not both")
    for path in (*low_dose, *normal_dose, *(p for p in (from_state,) if p is not None)):
        if not path.exists():  # before PyTorch and MONAI are imported: a typo costs no start-up time
            raise InputError(f"{path}: no such file or folder")
    from ldct_invrep.io.atomic import check_output_location, check_output_parent

    check_output_parent(out)  # before the work, not at the first training state
    for path in (*low_dose, *normal_dose):
        check_output_location(path, out)  # never write into a folder of scans (nor over a scan)

    import torch

    from ldct_invrep.adaptation import (
        Adaptation,
        build_trainer,
        normal_dose_slices,
        prepare_data,
        read_series_slices,
        resumed_settings,
    )
    from ldct_invrep.engine.training_state import default_training_state_path, read_training_state, state_path_for
    from ldct_invrep.inference import resolve_device

    try:
        torch_device = resolve_device(device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from exc
    if threads is not None:
        torch.set_num_threads(threads)
    budget = {"minutes": minutes} if minutes is not None else {"iterations": iterations} if iterations else {}
    if resume:
        settings, earlier_budget = resumed_settings(out)
        budget = budget or earlier_budget
    else:
        settings = {"seed": seed, "batch_size": batch_size, "checkpoint_every": checkpoint_every}
        budget = budget or {"minutes": DEFAULT_MINUTES}
    if from_state is None and not default_training_state_path().is_file():
        raise InputError(
            f"{default_training_state_path()}: the shipped model's training state is not installed in this copy of "
            "ldct-invrep; pass --from STATE (a NAME_state.pt file)"
        )
    base = read_training_state(from_state or default_training_state_path())
    source = str(low_dose[0]) if len(low_dose) == 1 else f"{low_dose[0]} (and {len(low_dose) - 1} more)"
    low = read_series_slices(low_dose, recursive=recursive, max_slices=max_slices)
    normal = normal_dose_slices(normal_dose, recursive=recursive)
    data = prepare_data(low, normal, holdout, source=source)
    n_held = len(data.held_out_hu)
    say(
        f"noisy domain: {_plural(len(low), 'low-dose series')}, {_plural(len(data.train_noisy), 'training slice')} "
        f"({n_held} held out for the check); clean domain: {_plural(len(data.clean), 'normal-dose slice')}",
        quiet,
    )
    say(f"from {base.path} (preset {base.header.get('preset', '?')}); state -> {state_path_for(out)}", quiet)

    torch.manual_seed(settings["seed"])
    trainer = build_trainer(base, data, device=torch_device, **settings)
    run = Adaptation(
        trainer, base, data, out, **budget, max_drift_hu=max_drift_hu, max_noise_ratio=max_noise_ratio,
        resume=resume, overwrite=overwrite,
        quiet=quiet,
    )  # fmt: skip
    t0 = time.perf_counter()
    try:
        run.run()
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (console.Terminated)
        how = f"stopped by {signal.Signals(exc.signum).name}" if isinstance(exc, Terminated) else "interrupted"
        code = 128 + exc.signum if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        written = f"{run.state_path} holds the state written last (every {settings['checkpoint_every']} iterations)"
        raise CLIError(
            f"{how}; {written}: the same command with --resume goes on" if run.state_path.is_file()
            else f"{how} before the first training state was written; nothing was left behind",
            code,
        ) from exc
    say(f"trained to iteration {run.iterations} ({time.perf_counter() - t0:.0f} s in this run)", quiet)
    run.finish(report=click.echo)
    click.echo(
        f"adapted for {_plural(run.iterations, 'iteration')} ({run.budget.seconds_run() / 60:.1f} min) on "
        f"{_plural(len(data.train_noisy), 'low-dose slice')} -> {out} (training state: {run.state_path.name})"
    )
