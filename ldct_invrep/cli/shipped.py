"""``ldct-invrep fetch`` (the one download, on request) and ``ldct-invrep bundle export`` (the shipped MONAI
bundles): the files around the package."""

from __future__ import annotations

from pathlib import Path

import click

from ldct_invrep.cli.console import EXIT_USAGE, CLIError, say
from ldct_invrep.errors import PLACE_ERRNOS, first_line

__all__ = ["bundle", "fetch"]


@click.command(short_help="Download a file ldct-invrep can use but does not ship (asks the network).")
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
    Offline, or when the download fails, it says so in one line (exit status 2) and leaves nothing behind;
    a stalled connection gives up after 30 s.

    \b
    Examples:
      ldct-invrep fetch vgg19
      ldct-invrep fetch vgg19 --to ~/weights/vgg19-dcbb9e9d.pth   then: export LDCT_INVREP_VGG19_WEIGHTS=...
    """
    from ldct_invrep.losses.vgg import (
        VGG19_WEIGHTS_ENV,
        VGG19_WEIGHTS_FILENAME,
        VGG19_WEIGHTS_URL,
        default_weight_paths,
        fetch_vgg19_weights,
    )

    target = dest.expanduser() if dest is not None else default_weight_paths()[-1]
    if target.is_file():
        click.echo(f"already there: {target}")
        return
    say(f"downloading {VGG19_WEIGHTS_URL} -> {target}")
    try:
        written = fetch_vgg19_weights(target)
    except (OSError, RuntimeError) as exc:  # offline, refused, timed out, cut off, or a bad hash (torch.hub)
        if isinstance(exc, RuntimeError) and "hash" not in str(exc):
            raise
        if isinstance(exc, OSError) and exc.errno in PLACE_ERRNOS and exc.filename:
            raise  # the place written (disk full, read-only): the console's one line names it
        reason = getattr(exc, "reason", None) or exc  # URLError: the socket error
        raise CLIError(
            f"{VGG19_WEIGHTS_URL}: download failed ({first_line(Exception(reason))}); nothing was written. Retry when online, "
            f"or put {VGG19_WEIGHTS_FILENAME} there yourself (or set {VGG19_WEIGHTS_ENV}), or train with semantic_weight=0",
            EXIT_USAGE,
        ) from exc
    click.echo(f"wrote {written}")


@click.group(short_help="The MONAI bundles shipped with the package.")
def bundle() -> None:
    """The MONAI bundles shipped with ldct-invrep (ldct_mayo, ldct_simulated, natural_awgn, natural_poisson)."""


@bundle.command("export", short_help="Write a shipped MONAI bundle to a folder.")
@click.argument("name")
@click.argument("target", metavar="DIR", type=click.Path(path_type=Path))
def bundle_export(name: str, target: Path) -> None:
    """Write the shipped bundle NAME to DIR (configs, docs, LICENSE, models/), ready for
    `python -m monai.bundle run --bundle_root DIR` or `ldct-invrep train DIR`. For ldct_simulated,
    models/model.pt is a copy of the shipped weights, so its inference config runs at once; its evaluate
    config reads the held-out slices of the training cache, which a training run builds (or, alone:
    `python -m monai.bundle run cache_path --config_file DIR/configs/train.json --bundle_root DIR`).
    DIR must not exist yet.

    \b
    Examples:
      ldct-invrep bundle export ldct_simulated my_bundle/
      ldct-invrep bundle export ldct_mayo mayo/ && ldct-invrep train mayo/ dataset_dir=/data/mayo2016
    """
    from ldct_invrep.package_files import export_bundle

    written = export_bundle(name, target)
    click.echo(f"wrote bundle {name} -> {written}")
