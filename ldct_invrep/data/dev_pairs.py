"""The real quarter/full-dose development pairs: the 5 AAPM-Mayo 2016 slices a user may hold locally.

These slices are AAPM-Mayo data: they are read in place from a user's folder, never copied, never shipped,
never trained on. The folder layout is the one of the staged copies (one sub-folder per source)::

    DIR/mayo2016_mapnn_ima/L506_FD_*.IMA, L506_QD_*.IMA     DICOM, 1 mm, 0.742 mm pixels
    DIR/ldct_pairs_dev/eunh_low_dose_CT/test_case{1,2,3}.mat  arrays quarter_dose, routine_dose in mu (1/mm)
    DIR/ldct_pairs_dev/cncl_denoising/{noisy,clean}_0001.tif  float32 HU, pixel size not stored (~0.7 mm)

:func:`read_dev_pairs` returns what is present (an empty list when nothing is), so callers skip cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ldct_invrep.errors import InputError

__all__ = ["DevPair", "MU_WATER_EUNH", "read_dev_pairs"]

#: Water attenuation (1/mm) the eunh files were stored with: HU = (mu - 0.0192) / 0.0192 * 1000.
MU_WATER_EUNH = 0.0192
#: The cncl TIFFs do not store the pixel size; Mayo 2016 abdomen reconstructions are about 0.7 mm.
CNCL_ASSUMED_SPACING_MM = 0.7


@dataclass
class DevPair:
    """One real pair: quarter dose and full dose of the same slice, in HU (float32, H x W)."""

    name: str
    quarter: np.ndarray
    full: np.ndarray
    pixel_spacing_mm: float
    slice_thickness_mm: float | None
    source: str


def _mayo_ima(folder: Path) -> list[DevPair]:
    from ldct_invrep.io import read_series

    full = sorted(folder.glob("*_FD_*.IMA"))
    quarter = sorted(folder.glob("*_QD_*.IMA"))
    if not full or not quarter:
        return []
    fd, qd = read_series(full[0]), read_series(quarter[0])
    return [
        DevPair(
            "mayo_L506_1mm",
            qd.hu[0].astype(np.float32),
            fd.hu[0].astype(np.float32),
            float(np.mean(fd.spacing[1:])),
            float(getattr(fd.datasets[0], "SliceThickness", 1.0)),
            str(folder),
        )
    ]


def _eunh(folder: Path) -> list[DevPair]:
    from scipy.io import loadmat

    pairs = []
    for path in sorted(folder.glob("test_case*.mat")):
        try:
            mat = loadmat(path)
            q, f = mat["quarter_dose"], mat["routine_dose"]
        except (OSError, ValueError, KeyError) as err:
            raise InputError(f"{path}: not a readable eunh test case ({type(err).__name__})") from err
        to_hu = lambda mu: ((np.asarray(mu, np.float64) - MU_WATER_EUNH) / MU_WATER_EUNH * 1000.0).astype(np.float32)
        pairs.append(DevPair(f"eunh_{path.stem}", to_hu(q), to_hu(f), CNCL_ASSUMED_SPACING_MM, None, str(path)))
    return pairs


def _cncl(folder: Path) -> list[DevPair]:
    from PIL import Image

    noisy, clean = folder / "noisy_0001.tif", folder / "clean_0001.tif"
    if not (noisy.is_file() and clean.is_file()):
        return []
    read = lambda p: np.asarray(Image.open(p), dtype=np.float32)
    return [DevPair("cncl_0001", read(noisy), read(clean), CNCL_ASSUMED_SPACING_MM, None, str(folder))]


def read_dev_pairs(root: str | Path) -> list[DevPair]:
    """Every real pair found under ``root`` (the layout in the module docstring); ``[]`` when none is."""
    root = Path(root)
    pairs: list[DevPair] = []
    if (root / "mayo2016_mapnn_ima").is_dir():
        pairs += _mayo_ima(root / "mayo2016_mapnn_ima")
    if (root / "ldct_pairs_dev" / "eunh_low_dose_CT").is_dir():
        pairs += _eunh(root / "ldct_pairs_dev" / "eunh_low_dose_CT")
    if (root / "ldct_pairs_dev" / "cncl_denoising").is_dir():
        pairs += _cncl(root / "ldct_pairs_dev" / "cncl_denoising")
    return pairs
