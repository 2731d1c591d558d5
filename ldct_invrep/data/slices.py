"""Datalist entries -> lazily loaded slices, so an ``UnpairedPatchDataset`` can train straight from DICOM files.

``domain_paths`` separates the unpaired training entries of a datalist (``{"noisy": p}`` / ``{"clean": p}``,
written by ``ldct_invrep.data.preparation``) into the noisy-domain and clean-domain file lists;
``DicomSliceSequence`` reads one slice per access (header + pixels through ``ldct_invrep.io``) and returns
it in network range, with a small LRU cache. Memory stays bounded however many slices a datalist has.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from ldct_invrep.transforms.windowing import hu_to_net


def domain_paths(entries: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """(noisy paths, clean paths) of a datalist section; paired entries contribute to both."""
    noisy = [str(e["noisy"]) for e in entries if "noisy" in e]
    clean = [str(e["clean"]) for e in entries if "clean" in e]
    return noisy, clean


class DicomSliceSequence(Sequence[np.ndarray]):
    """Single-slice DICOM files as a lazy sequence of float32 (H, W) images in network range (or HU).

    ``units="net"``: HU clipped to [-1024, 3072] and mapped to [-1, 1]. ``cache_size`` slices are kept
    (least recently used dropped); each DataLoader worker holds its own cache.
    """

    def __init__(self, paths: Sequence[str | Path], units: str = "net", cache_size: int = 64) -> None:
        if units not in ("net", "hu"):
            raise ValueError(f"units must be 'net' or 'hu', got {units!r}")
        self.paths = [Path(p) for p in paths]
        self.units = units
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.paths)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        image = self._read(self.paths[index])
        if self.cache_size > 0:
            self._cache[index] = image
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return image

    def _read(self, path: Path) -> np.ndarray:
        from ldct_invrep.io import scan_series

        info = scan_series(path)
        hu = info.read_slice(0)
        return hu_to_net(np.asarray(hu, dtype=np.float32)) if self.units == "net" else hu.astype(np.float32)

    def __getstate__(self) -> dict[str, Any]:  # workers start with an empty cache
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        return state
