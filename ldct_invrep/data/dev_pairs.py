"""The real quarter/full-dose development pairs: the 5 AAPM-Mayo 2016 slices a user may hold locally.

These slices are AAPM-Mayo data: they are read in place from a user's folder, never copied, never shipped,
never trained on. The folder layout is the one of the staged copies (one sub-folder per source)::

    DIR/mayo2016_mapnn_ima/L506_FD_*.IMA, L506_QD_*.IMA     DICOM, 1 mm, 0.742 mm pixels
    DIR/ldct_pairs_dev/eunh_low_dose_CT/test_case{1,2,3}.mat  arrays quarter_dose, routine_dose in mu (1/mm)
    DIR/ldct_pairs_dev/cncl_denoising/{noisy,clean}_0001.tif  float32 HU, pixel size not stored (~0.7 mm)

This module is the one place that knows that layout: :func:`dev_pair_entries` turns it into datalist entries
(paths relative to ``DIR``, the array names and units each file needs), :func:`write_dev_datalist` writes them
as a MONAI datalist (``ldct-invrep prepare ldct-dev DIR``) whose ``test`` section ``evaluate --pairs`` and
``ldct_invrep.evaluation.load_pairs_from_datalist`` read, and :func:`read_dev_pairs` reads the pairs through
the same entries (``ldct_invrep.data.datalist.read_entry_image``). Both return what is present (an empty list
when nothing is), so callers skip cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ldct_invrep import __version__
from ldct_invrep.data.datalist import read_entry_image, write_datalist
from ldct_invrep.data.image_sets import sha256_file
from ldct_invrep.errors import InputError

__all__ = [
    "DEV_PAIR_NAMES",
    "DevPair",
    "DevPairsReport",
    "MU_WATER_EUNH",
    "dev_pair_entries",
    "read_dev_pairs",
    "write_dev_datalist",
]

#: Water attenuation (1/mm) the eunh files were stored with: HU = (mu - 0.0192) / 0.0192 * 1000.
MU_WATER_EUNH = 0.0192
#: The cncl TIFFs and eunh arrays do not store the pixel size; Mayo 2016 abdomen reconstructions are about 0.7 mm.
CNCL_ASSUMED_SPACING_MM = 0.7
#: Every pair of the staged copy, in order (a copy may hold fewer).
DEV_PAIR_NAMES = ("mayo_L506_1mm", "eunh_test_case1", "eunh_test_case2", "eunh_test_case3", "cncl_0001")
MAYO_DIR = "mayo2016_mapnn_ima"
EUNH_DIR = "ldct_pairs_dev/eunh_low_dose_CT"
CNCL_DIR = "ldct_pairs_dev/cncl_denoising"


@dataclass
class DevPair:
    """One real pair: quarter dose and full dose of the same slice, in HU (float32, H x W); ``source`` is the
    quarter-dose file."""

    name: str
    quarter: np.ndarray
    full: np.ndarray
    pixel_spacing_mm: float
    slice_thickness_mm: float | None
    source: str


@dataclass
class DevPairsReport:
    """What :func:`dev_pair_entries` found under ``root``: the pairs present, those missing, checksum problems."""

    root: Path
    found: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.found) and not self.missing and not self.warnings

    def format(self) -> str:
        lines = [f"ldct-dev (real quarter/full-dose pairs, AAPM-Mayo 2016 data: read in place) at {self.root}"]
        lines.append(f"  pairs found ({len(self.found)}): {', '.join(self.found) or 'none'}")
        if self.missing:
            lines.append(f"  MISSING pairs ({len(self.missing)}): {', '.join(self.missing)}")
        lines += [f"  WARNING: {w}" for w in self.warnings]
        lines.append("  OK: complete and consistent" if self.ok else "  NOT OK: see above")
        return "\n".join(lines)


def _listed_checksums(folder: Path) -> dict[str, str]:
    """``{file name: sha256}`` of the ``SHA256SUMS`` next to the staged files (empty when there is none)."""
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return {}
    out = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[1].lstrip("*")] = parts[0]
    return out


def _entry(root: Path, name: str, noisy: Path, clean: Path, info: dict[str, Any], report: DevPairsReport, **keys: Any) -> dict[str, Any]:
    """A datalist entry of a pair (paths relative to ``root``), the files' SHA-256 in ``info``, checked
    against a ``SHA256SUMS`` next to them where there is one."""
    sums: dict[str, str] = {}
    for role, path in (("noisy", noisy), ("clean", clean)):
        if role == "clean" and clean == noisy:
            break
        digest = sha256_file(path)
        sums[role] = digest
        listed = _listed_checksums(path.parent).get(path.name)
        if listed is not None and listed != digest:
            report.warnings.append(f"{path}: SHA-256 differs from its SHA256SUMS (another version of the file?)")
    report.found.append(name)
    return {
        "name": name,
        "noisy": noisy.relative_to(root).as_posix(),
        "clean": clean.relative_to(root).as_posix(),
        **keys,
        "info": {**info, "sha256": sums},
    }


def _mayo_entries(root: Path, report: DevPairsReport) -> list[dict[str, Any]]:
    import pydicom

    folder = root / MAYO_DIR
    full, quarter = sorted(folder.glob("*_FD_*.IMA")), sorted(folder.glob("*_QD_*.IMA"))
    if not full or not quarter:
        return []
    try:
        ds = pydicom.dcmread(full[0], stop_before_pixels=True)
        spacing = float(np.mean([float(v) for v in ds.PixelSpacing]))
        thickness = float(getattr(ds, "SliceThickness", 1.0))
    except Exception as exc:  # pydicom raises many types for a damaged file
        raise InputError(f"{full[0]}: not a readable DICOM header ({type(exc).__name__})") from exc
    info = {"source": "AAPM-Mayo 2016 via hmshan/MAP-NN test_images", "patient": "L506", "format": "DICOM",
            "pixel_spacing_mm": spacing, "slice_thickness_mm": thickness, "pixel_spacing_assumed": False}
    return [_entry(root, DEV_PAIR_NAMES[0], quarter[0], full[0], info, report)]


def _eunh_entries(root: Path, report: DevPairsReport) -> list[dict[str, Any]]:
    entries = []
    for path in sorted((root / EUNH_DIR).glob("test_case*.mat")):
        info = {"source": "AAPM-Mayo 2016 via eunh/low_dose_CT test_data", "format": "MATLAB, linear attenuation (1/mm)",
                "pixel_spacing_mm": CNCL_ASSUMED_SPACING_MM, "slice_thickness_mm": None, "pixel_spacing_assumed": True}
        keys = {"noisy_variable": "quarter_dose", "clean_variable": "routine_dose", "units": "mu_per_mm",
                "mu_water_per_mm": MU_WATER_EUNH}
        entries.append(_entry(root, f"eunh_{path.stem}", path, path, info, report, **keys))
    return entries


def _cncl_entries(root: Path, report: DevPairsReport) -> list[dict[str, Any]]:
    noisy, clean = root / CNCL_DIR / "noisy_0001.tif", root / CNCL_DIR / "clean_0001.tif"
    if not (noisy.is_file() and clean.is_file()):
        return []
    info = {"source": "AAPM-Mayo 2016 (likely) via gengmufeng/CNCL-denoising", "format": "TIFF, HU",
            "pixel_spacing_mm": CNCL_ASSUMED_SPACING_MM, "slice_thickness_mm": None, "pixel_spacing_assumed": True}
    return [_entry(root, DEV_PAIR_NAMES[4], noisy, clean, info, report)]


def dev_pair_entries(root: str | Path) -> tuple[list[dict[str, Any]], DevPairsReport]:
    """Datalist entries ``{"name", "noisy", "clean", ..., "info"}`` of every real pair under ``root`` (paths
    relative to it; ``.mat`` entries name their arrays and units) and a report of what was found."""
    root = Path(root).resolve()
    report = DevPairsReport(root)
    entries: list[dict[str, Any]] = []
    if root.is_dir():
        entries = _mayo_entries(root, report) + _eunh_entries(root, report) + _cncl_entries(root, report)
    report.missing = [n for n in DEV_PAIR_NAMES if n not in report.found]
    return entries, report


def write_dev_datalist(root: str | Path, out_path: str | Path) -> tuple[DevPairsReport, Path]:
    """Write the datalist ``{"test": [pairs]}`` of the real pairs under ``root`` (``data_root`` = root, the
    files stay where they are). Raises ``InputError`` when ``root`` holds none of them."""
    entries, report = dev_pair_entries(root)
    if not entries:
        raise InputError(
            f"{root}: no real quarter/full-dose pair found (expected {MAYO_DIR}/, {EUNH_DIR}/ or {CNCL_DIR}/)"
        )
    metadata = {
        "name": "ldct_dev",
        "description": "Real quarter/full-dose slice pairs (AAPM-Mayo 2016 data, 3 public copies): a development "
        "set for evaluation only. AAPM data-use terms: read in place, never copy or train shipped weights on them.",
        "data_root": str(report.root),
        "missing": report.missing,
        "generated_by": f"ldct_invrep {__version__} (ldct_invrep.data.dev_pairs.write_dev_datalist)",
    }
    return report, write_datalist(out_path, {"test": entries}, metadata)


def _one_slice(values: np.ndarray, path: str) -> np.ndarray:
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 2:
        raise InputError(f"{path}: expected one slice, got shape {values.shape}")
    return values


def read_dev_pairs(root: str | Path) -> list[DevPair]:
    """Every real pair found under ``root`` (the layout in the module docstring); ``[]`` when none is."""
    entries, report = dev_pair_entries(root)
    pairs = []
    for e in entries:
        absolute = {**e, "noisy": str(report.root / e["noisy"]), "clean": str(report.root / e["clean"])}
        info = e["info"]
        pairs.append(
            DevPair(
                e["name"],
                _one_slice(read_entry_image(absolute, "noisy"), absolute["noisy"]),
                _one_slice(read_entry_image(absolute, "clean"), absolute["clean"]),
                float(info["pixel_spacing_mm"]),
                info["slice_thickness_mm"],
                absolute["noisy"],
            )
        )
    return pairs
