"""Where the files that ship with ldct-invrep are: the default weights, the MONAI bundles, the data manifests,
the sample CT series.

Importing this module costs nothing (no torch, no MONAI), so the command line can name a missing file
before it loads anything heavy. ``bundles/`` and ``data_manifests/`` live at the top of the source
checkout; a wheel carries copies inside the package (``setup.py`` puts them there), which are used when
present, so the same code finds them in a checkout, an editable install and a wheel install.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

__all__ = [
    "BUNDLE_PARTS",
    "DEFAULT_WEIGHTS_NAME",
    "WEIGHTS_BUNDLE",
    "bundle_files",
    "bundle_names",
    "bundles_dir",
    "data_manifests_dir",
    "default_weights_path",
    "export_bundle",
    "sample_series_path",
]

DEFAULT_WEIGHTS_NAME = "lir_ct.pt"
#: What a bundle ships (the model-zoo layout less what a run writes: models/*.pt, logs/, eval/, datalists/).
BUNDLE_PARTS = ("configs", "docs", "LICENSE", "models/.gitkeep")
#: The bundle whose recipe made the shipped weights: an exported copy gets them as ``models/model.pt``.
WEIGHTS_BUNDLE = "ldct_simulated"


def _package_dir() -> Path:
    return Path(str(resources.files("ldct_invrep")))


def sample_series_path() -> Path:
    """The TotalSegmentator example CT series shipped in the package (Apache-2.0, 20 slices): what ``demo`` runs on."""
    return _package_dir() / "sample_data" / "totalsegmentator_ct"


def default_weights_path() -> Path:
    """The weights shipped inside the package (the CLI default, and the ldct_simulated bundle's)."""
    return _package_dir() / "weights" / DEFAULT_WEIGHTS_NAME


def _shipped_folder(name: str) -> Path:
    """``ldct_invrep/<name>`` of a wheel install, else ``<name>`` at the top of the source checkout."""
    packaged = _package_dir() / name
    return packaged if packaged.is_dir() else _package_dir().parent / name


def bundles_dir() -> Path:
    """The folder holding the MONAI bundles (``ldct_mayo``, ``ldct_simulated``, ``natural_awgn``, ...)."""
    return _shipped_folder("bundles")


def bundle_names() -> list[str]:
    """Names of the shipped bundles (folders of :func:`bundles_dir` with a ``configs/metadata.json``)."""
    root = bundles_dir()
    return sorted(p.name for p in root.iterdir() if (p / "configs" / "metadata.json").is_file()) if root.is_dir() else []


def data_manifests_dir() -> Path:
    """The folder of the dataset manifests (``mayo2016.json``, ``bsd68.json``, ...)."""
    return _shipped_folder("data_manifests")


def bundle_files(bundle_dir: str | os.PathLike[str]) -> Iterator[tuple[Path, Path]]:
    """``(file, path relative to the bundle)`` of the shipped parts (:data:`BUNDLE_PARTS`) of ``bundle_dir``."""
    root = Path(bundle_dir)
    for part in BUNDLE_PARTS:
        path = root / part
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
        for f in files:
            yield f, f.relative_to(root)


def export_bundle(name: str, target: str | os.PathLike[str]) -> Path:
    """Write the shipped bundle ``name`` to the new folder ``target`` (all or nothing) and return it: its
    configs, docs, LICENSE and an empty ``models/``; for :data:`WEIGHTS_BUNDLE` ``models/model.pt`` is a copy
    of the shipped weights, as the model-zoo layout has it. Raises ``InputError`` for an unknown name or an
    existing ``target``."""
    from ldct_invrep.errors import InputError
    from ldct_invrep.io.atomic import atomic_output_dir

    names = bundle_names()
    if name not in names:
        raise InputError(f"{name}: no such bundle (shipped: {', '.join(names) or 'none found in ' + str(bundles_dir())})")
    with atomic_output_dir(target) as tmp:
        for src, rel in bundle_files(bundles_dir() / name):
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp / rel)
        (tmp / "models").mkdir(exist_ok=True)
        if name == WEIGHTS_BUNDLE and default_weights_path().is_file():
            shutil.copyfile(default_weights_path(), tmp / "models" / "model.pt")
    return Path(target)
