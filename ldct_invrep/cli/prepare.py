"""``ldct-invrep prepare``: check a local dataset copy against its manifest and write its datalist."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["prepare"]

_DATASETS = ("mayo2016", "tcia_ldct", "ldct-dev", "bsd68", "set12", "kodak24", "train400", "cbsd68", "cbsd432")


@click.command(short_help="Check a local dataset copy and write its datalist.")
@click.argument("dataset", type=click.Choice(_DATASETS))
@click.argument("root", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("."), show_default=True,
    help="Datalist file (.json), or a folder (created if needed) for <dataset>_<split>.json (mayo2016, tcia_ldct) "
    "or <dataset>.json (image sets).",
)
@click.option("--split", default=None, help="mayo2016 and tcia_ldct: split definition. [default: patient (mayo2016), ldctbench (tcia_ldct)]")
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
    if split is not None and dataset not in ("mayo2016", "tcia_ldct"):
        raise click.UsageError("--split is for mayo2016 and tcia_ldct only")
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
