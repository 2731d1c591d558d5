"""``ldct-invrep info``: what a checkpoint holds (preset, config, training, self-ensemble, parameters)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ldct_invrep import __version__

__all__ = ["info"]

_INFO_KEYS = (  # header keys shown first, in this order, with these titles; any other key follows as it is
    ("preset", "preset"),
    ("config", "config"),
    ("training_data", "training data"),
    ("training", "training"),
    ("iterations", "iterations"),
    ("window", "window"),
    ("hu_range", "HU range"),
    ("self_ensemble", "self-ensemble"),
    ("package_version", "written by ldct-invrep"),
    ("format_version", "checkpoint format"),
)


def _fmt_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt_value(v) for v in value) + "]"
    return str(value)


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
      ldct-invrep info bundles/ldct_mayo/models/model.pt --json
    """
    from ldct_invrep.pipelines import load_checkpoint, resolve_weights

    path = resolve_weights(weights)
    restorer, header = load_checkpoint(path)  # every check denoise makes: header values, weights' shapes, NaN
    n_params = sum(p.numel() for p in restorer.parameters())
    if as_json:
        click.echo(json.dumps({"path": str(path), "parameters": n_params, "header": header}, indent=2, default=str))
        return
    rows = [("file", f"{path} ({path.stat().st_size / 1e6:.2f} MB)")]
    shown = set()
    for key, title in _INFO_KEYS:
        if key in header:
            rows.append((title, _fmt_value(header[key])))
            shown.add(key)
    rows += [(key, _fmt_value(value)) for key, value in header.items() if key not in shown]
    rows.append(("installed ldct-invrep", __version__))
    rows.append(("parameters", f"{n_params:,} (restorer: content encoder E_X + clean generator G_Y)"))
    width = max(len(t) for t, _ in rows)
    click.echo("\n".join(f"{t.ljust(width)}  {v}" for t, v in rows))
