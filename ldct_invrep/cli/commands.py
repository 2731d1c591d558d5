"""The ``ldct-invrep`` click group: its global options, every command registered on it, and the entry point.

Each command lives in its own module (``denoise``, ``simulate``, ``evaluation``, ``info``, ``prepare``,
``train``, ``shipped``: fetch and bundle, ``demo``, ``adapt``); what they do to volumes is in
``ldct_invrep.pipelines``.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from ldct_invrep import __version__
from ldct_invrep.cli.adapt import adapt
from ldct_invrep.cli.console import ExitStatusGroup
from ldct_invrep.cli.demo import demo
from ldct_invrep.cli.denoise import denoise
from ldct_invrep.cli.evaluation import evaluate
from ldct_invrep.cli.info import info
from ldct_invrep.cli.prepare import prepare
from ldct_invrep.cli.shipped import bundle, fetch
from ldct_invrep.cli.simulate import simulate_dose
from ldct_invrep.cli.train import train

__all__ = ["cli", "main"]


@click.group(cls=ExitStatusGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ldct-invrep")
@click.option("--debug", is_flag=True, envvar="LDCT_INVREP_DEBUG", help="Show tracebacks and debug logging.")
@click.option("-v", "--verbose", is_flag=True, help="Show informational log messages.")
def cli(debug: bool, verbose: bool) -> None:
    """Unsupervised low-dose CT denoising with LIR (Learning Invariant Representation, CVPR 2020).

    \b
    Quick start (sample series shipped with the package, under a minute on 2 CPU cores):
      ldct-invrep demo --output out/demo
    \b
    Typical use:
      ldct-invrep denoise scans/quarter_dose/ out/denoised/      DICOM series -> derived DICOM series
      ldct-invrep denoise scan.nii.gz out/denoised.nii.gz        NIfTI -> NIfTI
      ldct-invrep evaluate out/denoised/ scans/full_dose/        PSNR/SSIM/RMSE per slice
      ldct-invrep COMMAND --help                                 options and examples of a command

    Exit status: 0 done, 2 bad usage, bad input or a failed download, 1 unexpected failure (rerun with --debug), 130 interrupted
    (Ctrl-C), 143 SIGTERM, 129 SIGHUP.
    """


for _command in (denoise, simulate_dose, evaluate, info, prepare, train, fetch, bundle, demo, adapt):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console script ``ldct-invrep``."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="ldct-invrep")


if __name__ == "__main__":  # pragma: no cover
    main()
