"""Locate and read the JSON manifests in ``data_manifests/`` (dataset layouts, splits, file checksums)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ldct_invrep.errors import InputError

MANIFEST_ENV = "LDCT_INVREP_MANIFESTS"


def manifest_dir() -> Path:
    """The manifest folder: ``$LDCT_INVREP_MANIFESTS`` if set, else the shipped ``data_manifests/``
    (inside the package of a wheel install, at the top of a source checkout)."""
    from ldct_invrep.package_files import data_manifests_dir

    env = os.environ.get(MANIFEST_ENV)
    return Path(env) if env else data_manifests_dir()


def manifest_path(name: str) -> Path:
    """``<manifest_dir>/<name>.json`` (``name`` without suffix, e.g. ``"mayo2016"``)."""
    return manifest_dir() / f"{name}.json"


def load_manifest(manifest: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A manifest given by name (``"bsd68"``), by path, or already loaded (returned unchanged)."""
    if isinstance(manifest, dict):
        return manifest
    path = Path(manifest)
    if path.suffix != ".json" and not path.exists():
        path = manifest_path(str(manifest))
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: manifest not found (set {MANIFEST_ENV} to the data_manifests folder)") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable JSON manifest ({exc})") from exc
