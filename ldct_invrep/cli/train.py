"""``ldct-invrep train``: a thin wrapper around ``python -m monai.bundle run`` on a bundle folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ldct_invrep.cli.console import say
from ldct_invrep.errors import InputError, first_line

__all__ = ["train"]


def _parse_overrides(tokens: Sequence[str]) -> dict[str, Any]:
    """``key=value`` or ``--key value`` (MONAI bundle style) -> dict; values parsed as JSON when they are JSON."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--"):
            key, sep, value = token[2:].partition("=")
            if not sep:
                if i + 1 >= len(tokens):
                    raise click.UsageError(f"override {token} has no value")
                value = tokens[i + 1]
                i += 1
        else:
            key, sep, value = token.partition("=")
            if not sep:
                raise click.UsageError(f"override {token!r}: expected KEY=VALUE (e.g. max_iterations=1000)")
        if not key:
            raise click.UsageError(f"override {token!r} has no key")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        i += 1
    return out


@click.command(short_help="Train from a MONAI bundle (monai.bundle run).", context_settings={"ignore_unknown_options": True})
@click.argument("bundle_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--config", "configs", multiple=True, metavar="FILE",
    help="Config file(s), relative to BUNDLE_DIR (else to the current folder) or absolute; later ones "
    "override earlier. [default: configs/train.json]",
)
@click.option("--run-id", default="run", show_default=True, help="ID of the expression to run in the config.")
@click.option("--dry-run", is_flag=True, help="Print the equivalent `python -m monai.bundle run` command and stop.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for PyTorch (the bundle's threads key).")
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
def train(
    bundle_dir: Path, configs: tuple[str, ...], run_id: str, dry_run: bool, threads: int | None, overrides: tuple[str, ...]
) -> None:
    """Train from a MONAI bundle: a thin wrapper around `python -m monai.bundle run`.

    BUNDLE_DIR is a bundle folder (e.g. bundles/ldct_mayo, or one written by `ldct-invrep bundle export`). Its configs/metadata.json and
    configs/logging.conf are used when present, bundle_root is set to BUNDLE_DIR, and every OVERRIDE
    (KEY=VALUE, or --KEY VALUE as monai.bundle takes them; nested keys with #) replaces a config value.
    Values are read as JSON when they are JSON (numbers, true/false, lists), otherwise as strings.
    A config file that cannot be read, or that has no --run-id, is one line (exit status 2), and so is a
    non-number for a key whose config value is a number; an override of a key the config lacks is added, as
    monai.bundle does, with a warning naming the closest key.

    \b
    Examples:
      ldct-invrep train bundles/ldct_mayo dataset_dir=/data/mayo2016 max_iterations=1000
      ldct-invrep train bundles/ldct_mayo --config configs/train.json --config my_overrides.json
      ldct-invrep train bundles/natural_awgn --dry-run

    The ldct_mayo and natural_* bundles use the VGG-19 semantic loss by default (semantic_weight 1), which
    needs the ImageNet VGG-19 weights: `ldct-invrep fetch vgg19` downloads them once, or pass semantic_weight=0.
    """
    bundle_dir = bundle_dir.expanduser()
    if not bundle_dir.is_dir():
        from ldct_invrep.package_files import bundle_names

        shipped = f"; {bundle_dir} is a shipped bundle: `ldct-invrep bundle export {bundle_dir} DIR` writes it" if str(bundle_dir) in bundle_names() else ""
        raise InputError(f"{bundle_dir}: no such bundle folder{shipped}")
    files = []
    for name in configs or ("configs/train.json",):
        candidates = [Path(name)] if Path(name).is_absolute() else [bundle_dir / name, Path(name)]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise InputError(f"{candidates[0]}: config file not found")
        files.append(found)
    kwargs: dict[str, Any] = {"run_id": run_id, "config_file": [str(f) for f in files]}
    meta, log_conf = bundle_dir / "configs" / "metadata.json", bundle_dir / "configs" / "logging.conf"
    if meta.is_file():
        kwargs["meta_file"] = str(meta)
    if log_conf.is_file():
        kwargs["logging_file"] = str(log_conf)
    parsed = _parse_overrides(overrides)
    for key, option in (("config_file", "--config"), ("run_id", "--run-id")):
        if key in parsed:
            raise click.UsageError(f"override {key}: give it as {option}")
    kwargs.update({k: str(parsed.pop(k)) for k in ("meta_file", "logging_file") if k in parsed})  # the user's, not ours
    values = {"bundle_root": str(bundle_dir.resolve()), **({"threads": threads} if threads else {}), **parsed}
    command = ["python -m monai.bundle run", run_id] + [
        f"--{k} {_shell_quote(json.dumps(v) if isinstance(v, list) else str(v))}" for k, v in kwargs.items() if k != "run_id"
    ] + [f"--{k} {_shell_quote(json.dumps(v) if not isinstance(v, str) else v)}" for k, v in values.items()]
    say("equivalent command: " + " ".join(command))
    if dry_run:
        return
    from monai.bundle import run

    _check_config(files, run_id, parsed)
    run(**kwargs, **values)


def _check_config(files: Sequence[Path], run_id: str, overrides: dict[str, Any]) -> None:
    """Read the config files as ``monai.bundle.run`` will (a bad one is one line naming it), check that ``run_id``
    is in them and warn about overrides of keys they lack (MONAI adds those silently: a typo would train with
    the default)."""
    import difflib
    import inspect
    import logging

    from monai.bundle import ConfigParser, run

    merged: dict[str, Any] = {}
    for path in files:
        try:
            content = ConfigParser.load_config_file(path)
        except Exception as exc:  # noqa: BLE001 - json/yaml parse errors, an unknown file type
            raise InputError(f"{path}: not a readable bundle config ({first_line(exc)})") from exc
        if not isinstance(content, dict):
            raise InputError(f"{path}: a bundle config must be a JSON/YAML mapping of ids to values, not {type(content).__name__}")
        merged.update(content)
    parser = ConfigParser(merged)
    missing = object()
    def did_you_mean(key: str) -> str:
        close = difflib.get_close_matches(key.split("#")[0], list(merged), n=1)
        return f" (did you mean {close[0]}?)" if close else ""

    if run_id not in overrides and parser.get(run_id, missing) is missing:
        raise InputError(f"{files[-1]}: no id '{run_id}' to run (--run-id){did_you_mean(run_id)}")
    run_args = set(inspect.signature(run).parameters)
    for key, value in overrides.items():
        default = missing if key in run_args else parser.get(key, missing)
        if key not in run_args and default is missing:
            logging.getLogger("ldct_invrep").warning("override %s: no such key in the config, added as a new one%s", key, did_you_mean(key))
        elif isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, str):
            raise click.UsageError(f"override {key}={value}: expected a number, as the config's {key} ({default!r})")


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
