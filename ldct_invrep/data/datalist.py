"""MONAI (Decathlon-style) datalist JSON files: ``{"training": [{...}], "validation": [...], "test": [...]}``.

Reading goes through ``monai.data.load_decathlon_datalist``. Two additions, because our entries use the keys
``noisy``/``clean`` instead of ``image``/``label``: MONAI only joins a non-``image`` path with the base
folder when that path exists, so a missing file would silently stay relative; here ``noisy``, ``clean`` and
``image`` are always resolved, and ``check_exists`` reports missing files by name. The base folder defaults to
the datalist's own ``"data_root"`` entry (written by the scanners), then to the datalist's folder.

:func:`read_entry_image` reads the array an entry's path points at, in the formats the paired sets of
``ldct-invrep prepare`` use: DICOM, NIfTI and ``.npy``, plus TIFF and MATLAB ``.mat`` files (stored by some
published LDCT pairs, in HU or in linear attenuation). MONAI's ``LoadImage`` reads neither ``.mat`` nor
float TIFFs in HU without extra readers, hence this small dispatcher.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ldct_invrep.errors import InputError

PATH_KEYS = ("image", "label", "noisy", "clean")
#: ``entry["units"]`` values :func:`read_entry_image` understands: HU as stored, or linear attenuation (1/mm).
UNITS = ("HU", "mu_per_mm")


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


def load_paired_datalist(path: str | Path, section: str = "test", base_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """The entries of ``section`` as ``{"noisy": path, "clean": path}`` pairs (:func:`load_datalist` with
    ``check_exists``), for evaluation: an empty section, or an entry without both paths (a datalist with
    ``image``/``label`` keys), raises ``InputError`` naming the datalist, rather than scoring nothing."""
    entries = load_datalist(path, section, base_dir=base_dir, check_exists=True)
    if not entries:
        raise InputError(f"{path}: section '{section}' is empty")
    for i, entry in enumerate(entries):
        if not (isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("noisy", "clean"))):
            raise InputError(f"{path}: entry {i} of '{section}' is not a pair (needs 'noisy' and 'clean' paths)")
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


def mu_to_hu(mu: Any, mu_water_per_mm: float) -> np.ndarray:
    """Linear attenuation (1/mm) -> HU: ``(mu - mu_water) / mu_water * 1000`` (float32)."""
    return ((np.asarray(mu, dtype=np.float64) - mu_water_per_mm) / mu_water_per_mm * 1000.0).astype(np.float32)


def _read_path(path: Path, variable: str | None) -> np.ndarray:
    """The stored values of one file (or DICOM series folder) as float32; HU for DICOM and NIfTI."""
    name = path.name.lower()
    try:
        if name.endswith(".npy"):
            return np.load(path, allow_pickle=False).astype(np.float32)
        if name.endswith((".tif", ".tiff")):
            from PIL import Image, ImageSequence

            with Image.open(path) as img:
                frames = [np.asarray(f, dtype=np.float32) for f in ImageSequence.Iterator(img)]
            return frames[0] if len(frames) == 1 else np.stack(frames)
        if name.endswith(".mat"):
            from scipy.io import loadmat

            if not variable:
                raise InputError(f"{path}: a .mat entry needs the name of its array ('<key>_variable')")
            arrays = loadmat(path, variable_names=[variable])
            if variable not in arrays:
                raise InputError(f"{path}: no array named {variable!r}")
            return np.asarray(arrays[variable], dtype=np.float32)
    except InputError:
        raise
    except (OSError, ValueError, NotImplementedError) as exc:
        raise InputError(f"{path}: not a readable {path.suffix} file ({type(exc).__name__}: {exc})") from exc
    if name.endswith((".nii", ".nii.gz")):
        from ldct_invrep.io import read_nifti

        return read_nifti(path).hu.astype(np.float32)
    from ldct_invrep.io import read_series

    return read_series(path).hu.astype(np.float32)


def read_entry_image(entry: Mapping[str, Any], key: str) -> np.ndarray:
    """The float32 array (2D slice or (z, y, x) volume) behind ``entry[key]``, in HU for CT entries.

    The path (made absolute by :func:`load_datalist`) is a ``.npy`` array, a NIfTI file, a TIFF (Pillow;
    several pages are stacked), a MATLAB ``.mat`` file (the array named by ``entry[key + "_variable"]``), or
    else a DICOM file or series folder. ``entry["units"]`` (default ``"HU"``) names what the file stores;
    ``"mu_per_mm"`` (linear attenuation) is converted with ``entry["mu_water_per_mm"]`` (:func:`mu_to_hu`).
    """
    if not isinstance(entry.get(key), str):
        raise InputError(f"datalist entry {dict(entry)}: no path under '{key}'")
    path = Path(entry[key])
    units = entry.get("units", "HU")
    if units not in UNITS:
        raise InputError(f"{path}: units {units!r} unknown (use {' or '.join(UNITS)})")
    values = _read_path(path, entry.get(f"{key}_variable"))
    if units == "mu_per_mm":
        mu_water = entry.get("mu_water_per_mm")
        if not isinstance(mu_water, (int, float)) or not mu_water > 0:
            raise InputError(f"{path}: units mu_per_mm need a positive 'mu_water_per_mm' in the entry")
        values = mu_to_hu(values, float(mu_water))
    return values
