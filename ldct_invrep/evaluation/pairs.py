"""The image pairs ``(name, noisy, clean)`` the comparison runs on: from a MONAI datalist
(:func:`load_pairs_from_datalist`, lazily, one slice at a time) or the held-out pairs of a CT training
cache (:func:`load_pairs_from_cache`; :func:`load_pairs_by_dose_from_cache` groups them by simulated
dose), and :func:`check_pair`, the one check every pair passes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ldct_invrep.errors import InputError

__all__ = ["Pair", "cache_test_dose_fractions", "check_pair", "load_pairs_by_dose_from_cache", "load_pairs_from_cache",
           "load_pairs_from_datalist"]

Pair = tuple[str, np.ndarray, np.ndarray]


def _as_slices(a: np.ndarray, path: str) -> list[np.ndarray]:
    """The 2D slices of one datalist image, checked here so that an error names its file: finite values and
    slices no smaller than the SSIM window every comparison computes."""
    from ldct_invrep.metrics import SSIM_WIN_SIZE

    if a.ndim not in (2, 3):
        raise InputError(f"{path}: expected a 2D slice or a 3D volume, got shape {a.shape}")
    rows, cols = a.shape[-2:]
    if min(rows, cols) < SSIM_WIN_SIZE:
        raise InputError(f"{path}: slices of {rows}x{cols} are smaller than the {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} SSIM window")
    if not np.isfinite(a).all():
        raise InputError(f"{path}: NaN or infinite values")
    return [a] if a.ndim == 2 else list(a)


def load_pairs_from_datalist(path: str | Path, section: str = "test", base_dir: str | Path | None = None) -> Iterator[Pair]:
    """Lazily yield ``(name, noisy HU, clean HU)`` for each paired entry ``{"noisy": p, "clean": p}`` of
    ``section``; p is anything :func:`ldct_invrep.data.datalist.read_entry_image` reads (DICOM, NIfTI,
    .npy, TIFF, MATLAB .mat; a volume gives one pair per slice). All files are checked to exist before the
    first pair is read."""
    from ldct_invrep.data.datalist import load_paired_datalist

    return _iter_datalist_pairs(load_paired_datalist(path, section, base_dir=base_dir))


def _iter_datalist_pairs(entries: list[dict[str, Any]]) -> Iterator[Pair]:
    from ldct_invrep.data.datalist import read_entry_image

    for entry in entries:
        noisy = _as_slices(read_entry_image(entry, "noisy"), entry["noisy"])
        clean = _as_slices(read_entry_image(entry, "clean"), entry["clean"])
        if len(noisy) != len(clean) or noisy[0].shape != clean[0].shape:
            raise InputError(f"{entry['noisy']}: {len(noisy)} x {noisy[0].shape} differs from {entry['clean']} ({len(clean)} x {clean[0].shape})")
        stem = str(entry.get("name") or entry.get("id") or Path(entry["noisy"]).name)
        for k, (n, c) in enumerate(zip(noisy, clean, strict=True)):
            yield (stem if len(noisy) == 1 else f"{stem}[{k}]"), n, c


def cache_test_dose_fractions(manifest: dict[str, Any]) -> list[float | None]:
    """The simulated dose fraction of each held-out test pair of a CT training cache, in the cache's order:
    each source's ``test_dose_fractions`` (one per pair, as ``build_ct_training_cache`` records them), else
    the cache's ``dose_fraction`` when it is one number, else ``None`` (not recorded)."""
    default = manifest.get("dose_fraction")
    default = float(default) if isinstance(default, (int, float)) else None
    out: list[float | None] = []
    for e in manifest["sources"]:
        recorded = e.get("test_dose_fractions")
        out += [float(f) for f in recorded] if recorded else [default] * len(e["slice_indices"]["test"])
    return out


def load_pairs_from_cache(path: str | Path) -> list[Pair]:
    """The held-out test pairs ``(name, simulated low dose HU, original HU)`` of a CT training cache
    (``ldct_invrep.data.build_ct_training_cache``), in the cache's order. Names are ``"source:slice"``, plus
    ``" dose F"`` when the cache holds its test slices at several dose fractions."""
    return _cache_test_pairs(path)[0]


def load_pairs_by_dose_from_cache(path: str | Path) -> tuple[dict[float | None, list[Pair]], dict[str, Any]]:
    """The held-out test pairs of a CT training cache grouped by simulated dose fraction (ascending; ``None``:
    not recorded), and the cache's manifest."""
    pairs, fractions, manifest = _cache_test_pairs(path)
    groups: dict[float | None, list[Pair]] = {}
    for f in sorted(set(fractions), key=lambda v: (v is None, v or 0.0)):
        groups[f] = [p for p, g in zip(pairs, fractions, strict=True) if g == f]
    return groups, manifest


def _cache_test_pairs(path: str | Path) -> tuple[list[Pair], list[float | None], dict[str, Any]]:
    from ldct_invrep.data.ct_cache import load_ct_training_cache

    cache = load_ct_training_cache(path, units="hu")
    if not cache.test_noisy:
        raise InputError(f"{path}: the cache has no held-out test pairs")
    fractions = cache_test_dose_fractions(cache.manifest)
    names = []
    for e in cache.manifest["sources"]:  # per source the pairs run fraction by fraction over its test slices
        test = e["slice_indices"]["test"]
        names += [f"{e['name']}:{test[j % len(test)]}" for j in range(len(e.get("test_dose_fractions") or test))]
    if len(set(fractions)) > 1 and len(names) == len(fractions):
        names = [f"{n} dose {f:g}" for n, f in zip(names, fractions, strict=True)]
    if len(names) != len(cache.test_noisy) or len(fractions) != len(cache.test_noisy):
        names, fractions = [f"test{i}" for i in range(len(cache.test_noisy))], [None] * len(cache.test_noisy)
    return list(zip(names, cache.test_noisy, cache.test_clean, strict=True)), fractions, cache.manifest


def check_pair(pair: Any, index: int, ndims: tuple[int, ...] = (2,)) -> Pair:
    """``pair`` as ``(name, float32 noisy, float32 clean)``: two images of one shape with ``ndims`` dimensions."""
    try:
        name, noisy, clean = pair
    except (TypeError, ValueError):
        raise InputError(f"pairs[{index}]: expected (name, noisy, clean)") from None
    noisy = np.asarray(noisy, dtype=np.float32)
    clean = np.asarray(clean, dtype=np.float32)
    if noisy.ndim not in ndims or noisy.shape != clean.shape:
        raise InputError(f"{name}: expected two {' or '.join(f'{n}D' for n in ndims)} images of one shape, got {noisy.shape} and {clean.shape}")
    return str(name), noisy, clean
