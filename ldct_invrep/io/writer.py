"""`SaveDerivedSeriesd`: the derived DICOM series writer as a MONAI postprocessing transform (bundle inference).

MONAI's ``SaveImaged`` writes NIfTI/ITK/PNG files; a DICOM series that keeps the source headers needs
:class:`~ldct_invrep.io.dicom_write.DerivedSeriesWriter`, which this transform drives, so a bundle's
``postprocessing`` ends in the same files as ``ldct-invrep denoise``.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ldct_invrep.errors import as_flag
from ldct_invrep.io.dicom_read import scan_series
from ldct_invrep.io.dicom_write import DerivedSeriesWriter, series_folder_name

__all__ = ["SaveDerivedSeriesd"]


def _slices(array: Any) -> np.ndarray:
    """(1, slice, row, col) or (slice, row, col) tensor/array -> float32 numpy (slice, row, col)."""
    out = array.detach().cpu().numpy() if hasattr(array, "detach") else np.asarray(array)
    out = out[0] if out.ndim == 4 else out
    return out.astype(np.float32, copy=False)


class SaveDerivedSeriesd(MapTransform):
    """Write ``keys`` (HU, slice first: ``LIRDicomReader(reverse_indexing=True)``, channel or not) as a derived
    series of the series it was read from, to ``output_dir/<SeriesInstanceUID>/`` (``io.series_folder_name``:
    ``unknown-series`` for a source without one).

    The source is found from ``source_key``'s metadata (``filename_or_obj`` and ``series_uid`` of the
    reader); its values, the input as read, keep pixel padding exact (``DerivedSeriesWriter.write``'s
    ``source_hu``). ``method``, ``overwrite`` and ``derivation_description`` go to the writer: atomic output,
    an existing folder refused unless ``overwrite`` and written by ldct-invrep. ``written`` lists the output
    folders and ``n_slices`` counts the slices (for a summary line).
    """

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str,
        output_dir: str | os.PathLike,
        method: str = "LIR",
        overwrite: bool = False,
        derivation_description: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.source_key = source_key
        self.output_dir = Path(output_dir)
        self.method = method
        self.overwrite = as_flag(overwrite, "overwrite")
        self.derivation_description = derivation_description
        self.written: list[str] = []
        self.n_slices = 0

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        source = d[self.source_key]
        meta = source.meta
        info = scan_series(meta["filename_or_obj"], series_uid=str(meta.get("series_uid") or "") or None)
        source_hu = _slices(source)
        for key in self.key_iterator(d):
            hu = _slices(d[key])
            if hu.shape != info.shape:
                raise ValueError(f"{key}: shape {hu.shape}, the source series {info.source} is {info.shape}")
            target = self.output_dir / series_folder_name(info.series_uid)
            with DerivedSeriesWriter(
                info, target, method=self.method, overwrite=self.overwrite,
                derivation_description=self.derivation_description,
            ) as writer:  # fmt: skip
                for index in range(len(info)):
                    writer.write(index, hu[index], source_hu=source_hu[index])
            self.written.append(str(target))
            self.n_slices += len(info)
        return d
