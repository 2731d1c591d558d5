"""Helpers shared by the DICOM modules of :mod:`ldct_invrep.io` (scan, headers, series, read, write)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset

LOGGER_NAME = "ldct_invrep.io.dicom"
"""Every DICOM module logs under the name of the module they were split from, so logging set-ups keep working."""


def _float_values(ds: Dataset, keyword: str, n: int) -> np.ndarray | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        items = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        arr = np.asarray([float(v) for v in items])
    except (TypeError, ValueError):
        return None
    return arr if arr.size == n and np.all(np.isfinite(arr)) else None


def _rescale(ds: Dataset) -> tuple[float, float] | None:
    """(slope, intercept), or None if either is missing or empty."""
    slope, intercept = _float_values(ds, "RescaleSlope", 1), _float_values(ds, "RescaleIntercept", 1)
    if slope is None or intercept is None or slope[0] == 0:
        return None
    return float(slope[0]), float(intercept[0])


def _one_line(exc: BaseException | str, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _uid_label(uid: str) -> str:
    return uid if uid else "<empty SeriesInstanceUID>"
