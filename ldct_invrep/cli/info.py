"""``ldct-invrep info``: what a checkpoint holds (preset, config, training, self-ensemble, parameters)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ldct_invrep import __version__

__all__ = ["info"]


@click.command(short_help="Show what a checkpoint holds (preset, training, parameters).")
@click.argument("weights", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the header and parameter count as JSON.")
def info(weights: Path | None, as_json: bool) -> None:
    """What a checkpoint holds: preset, network config, training data, iterations, HU window, self-ensemble,
    version, size.

    WEIGHTS is an ldct-invrep checkpoint (a bundle's models/model.pt, ldct_invrep.io.checkpoint.save_restorer)
    or a TorchScript export. [default: the shipped weights]

    \b
    Examples:
      ldct-invrep info
      ldct-invrep info my_bundle/models/model.pt --json      after: ldct-invrep bundle export ldct_simulated my_bundle/
    """
    from ldct_invrep.io.checkpoint import describe_header
    from ldct_invrep.pipelines import load_checkpoint, resolve_weights

    path = resolve_weights(weights)
    restorer, header = load_checkpoint(path)  # every check denoise makes: header values, weights' shapes, NaN
    n_params = sum(p.numel() for p in restorer.parameters())
    if as_json:
        click.echo(json.dumps({"path": str(path), "parameters": n_params, "header": header}, indent=2, default=str))
        return
    rows = [("file", f"{path} ({path.stat().st_size / 1e6:.2f} MB)")]
    rows += [(title, text) for _, title, text in describe_header(header)]
    rows.append(("installed ldct-invrep", __version__))
    rows.append(("parameters", f"{n_params:,} (restorer: content encoder E_X + clean generator G_Y)"))
    width = max(len(t) for t, _ in rows)
    click.echo("\n".join(f"{t.ljust(width)}  {v}" for t, v in rows))
