"""MONAI (Decathlon-style) datalist JSON files: ``{"training": [{...}], "validation": [...], "test": [...]}``.

Reading goes through ``monai.data.load_decathlon_datalist``. Two additions, because our entries use the keys
``noisy``/``clean`` instead of ``image``/``label``: MONAI only joins a non-``image`` path with the base
folder when that path exists, so a missing file would silently stay relative; here ``noisy``, ``clean`` and
``image`` are always resolved, and ``check_exists`` reports missing files by name. The base folder defaults to
the datalist's own ``"data_root"`` entry (written by the scanners), then to the datalist's folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ldct_invrep.errors import InputError

PATH_KEYS = ("image", "label", "noisy", "clean")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: datalist not found") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable JSON datalist ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: a datalist must be a JSON object with list sections")
    return data


def load_datalist(
    path: str | Path,
    key: str = "training",
    base_dir: str | Path | None = None,
    check_exists: bool = False,
) -> list[dict[str, Any]]:
    """Entries of section ``key`` with paths made absolute against ``base_dir``.

    ``base_dir`` defaults to the datalist's ``"data_root"`` (if present), else the datalist's folder.
    An empty section gives ``[]``. With ``check_exists`` a missing file raises ``InputError`` naming it.
    """
    path = Path(path)
    data = _read_json(path)
    if key not in data:
        sections = sorted(k for k, v in data.items() if isinstance(v, list))
        raise InputError(f"{path}: no section '{key}' (sections: {', '.join(sections) or 'none'})")
    if not isinstance(data[key], list):
        raise InputError(f"{path}: section '{key}' is not a list")
    if not data[key]:
        return []
    if base_dir is None:
        root = data.get("data_root")
        base_dir = Path(root) if isinstance(root, str) and root else path.parent
    from monai.data import load_decathlon_datalist  # here, so that writing a datalist needs no MONAI

    base = Path(base_dir)
    entries = load_decathlon_datalist(path, is_segmentation=False, data_list_key=key, base_dir=base)
    for entry in entries:
        for k in PATH_KEYS:
            v = entry.get(k)
            if isinstance(v, str) and not os.path.isabs(v):
                entry[k] = os.path.normpath(os.path.join(base, v))
        if check_exists:
            for k in PATH_KEYS:
                v = entry.get(k)
                if isinstance(v, str) and not os.path.exists(v):
                    raise InputError(f"{v}: listed in {path} ['{key}'] but not found")
    return entries


def write_datalist(
    path: str | Path,
    sections: Mapping[str, Sequence[Mapping[str, Any]]],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a datalist JSON (atomically: temp file then rename). Returns the path.

    ``sections`` maps a section name ("training", "validation", "test", ...) to its entries; ``metadata``
    adds top-level keys (e.g. "name", "description", "data_root", split details). ``Path`` values in entries
    are written as strings. An existing file is replaced only if ldct-invrep wrote it
    (:func:`ldct_invrep.io.atomic.is_own_file`), else :class:`InputError`.
    """
    from ldct_invrep import __version__
    from ldct_invrep.io.atomic import JSON_STAMP_KEY, atomic_output_file, check_replaceable

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a .json file name for the datalist")
    check_replaceable(path)
    doc: dict[str, Any] = {JSON_STAMP_KEY: __version__, **(metadata or {})}
    for name, entries in sections.items():
        doc[name] = [{k: (str(v) if isinstance(v, Path) else v) for k, v in e.items()} for e in entries]
    for k in ("training", "validation", "test"):
        if k in doc:
            doc[f"num{k.capitalize()}"] = len(doc[k])
    with atomic_output_file(path, overwrite=True, own_only=True) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return path
