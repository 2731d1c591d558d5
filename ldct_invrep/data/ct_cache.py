"""Offline training cache for the shipped CT model: normal-dose volumes -> unpaired noisy/clean slices.

The paper's protocol (section 4.2-4.3) applied to normal-dose CT: the axial slices of each volume are split
by a seeded rule into three disjoint sets,

* **test**: a contiguous block of ``hold_out`` of the slices (seeded position), kept as *pairs*
  (simulated low dose, original) for evaluation; ``gap`` slices on each side of the block are dropped so no
  training slice is a direct neighbour of a test slice;
* **train noisy (X)** and **train clean (Y)**: the remaining slices divided into two halves with
  ``split_unpaired``; X slices get simulated low dose (``simulate_low_dose``, projection-domain noise
  insertion), Y slices stay as they are. No slice is in both X and Y.

Optionally (``resample_spacings_mm``) the training slices of both domains are also resampled to other
in-plane pixel spacings, the X copies simulated at the new spacing: a convolutional network sees anatomy and
noise grain at a fixed size in *pixels*, and scanners reconstruct anywhere from ~0.6 to 1 mm a pixel
(field of view), so a model trained at one spacing denoises others worse (docs/shipped_weights.md measures it).
Test slices stay as acquired.

Low-dose simulation is slow (seconds per 512x512 slice), so it runs once, here, not in the training loop.
Slices with almost no body (fraction of pixels above -900 HU below ``min_body_fraction``) are skipped.
Everything is stored in HU (float32) in one ``.npz`` (one array per source and set, since sources differ in
size) with a JSON manifest next to it (sources, slice indices per set, counts, seed, dose fraction).
``load_ct_training_cache`` reads it back as lists of slices, in network range by default. The volumes are read
by :mod:`ldct_invrep.data.ct_volumes`, the noisy slices simulated by :mod:`ldct_invrep.data.cache_simulation`.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ldct_invrep import __version__
from ldct_invrep.data.cache_simulation import Simulator, SliceSimulator, default_simulator, dose_draws
from ldct_invrep.data.ct_volumes import PADDING_BELOW_HU, iter_ct_volumes, read_ct_volumes
from ldct_invrep.data.datasets import AIR_THRESHOLD_HU, split_unpaired
from ldct_invrep.data.image_sets import sha256_file
from ldct_invrep.errors import InputError
from ldct_invrep.io.atomic import atomic_output_file
from ldct_invrep.transforms.windowing import NETWORK_HU_RANGE, hu_to_net

__all__ = [
    "CTCache",
    "SimulatedPair",
    "assign_slices",
    "build_ct_training_cache",
    "iter_simulated_training_pairs",
    "load_ct_training_cache",
    "open_ct_cache",
    "resample_slices",
]

HU_RANGE = NETWORK_HU_RANGE
CACHE_FORMAT = 1
#: Training slices are resampled to a requested spacing only within this zoom factor of their own: beyond it
#: interpolation would invent (or throw away) more detail than the slice has.
MAX_RESAMPLE_FACTOR = 1.5
TRAIN_SETS = ("train_noisy", "train_clean")  # the sets that also get resampled copies
SETS = (*TRAIN_SETS, "test_noisy", "test_clean")


def assign_slices(n: int, seed: int, hold_out: float = 0.1, gap: int = 1, key: int = 0) -> dict[str, list[int]]:
    """Seeded assignment of slice indices ``0..n-1`` to "test", "train_noisy", "train_clean" (and "dropped").

    Test is one contiguous block of ``round(hold_out * n)`` slices (at least 1 when ``hold_out > 0`` and
    ``n >= 3``) at a seeded position; ``gap`` slices on each side are dropped; the rest is split with
    ``split_unpaired``. ``key`` distinguishes volumes sharing a seed.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(key), 7]))
    n_test = int(round(hold_out * n))
    if hold_out > 0 and n >= 3:
        n_test = max(n_test, 1)
    n_test = min(n_test, max(n - 2, 0))
    test: list[int] = []
    dropped: list[int] = []
    if n_test:
        start = int(rng.integers(0, n - n_test + 1))
        test = list(range(start, start + n_test))
        dropped = [i for i in range(start - gap, start + n_test + gap) if 0 <= i < n and i not in test]
    rest = [i for i in range(n) if i not in test and i not in dropped]
    noisy, clean = split_unpaired(rest, seed=int(seed) * 1000003 + int(key))
    return {"test": test, "train_noisy": noisy, "train_clean": clean, "dropped": dropped}


def resample_slices(hu: np.ndarray, spacing_mm: float, target_mm: float) -> np.ndarray:
    """HU slices ``(n, H, W)`` at ``spacing_mm`` resampled to ``target_mm`` pixels (MONAI ``Zoom``, bicubic,
    same field of view), clipped to the cache's HU range."""
    from monai.transforms import Zoom

    zoom = Zoom(zoom=float(spacing_mm) / float(target_mm), mode="bicubic", keep_size=False, align_corners=False)
    out = [np.asarray(zoom(s[None], lazy=False))[0] for s in np.asarray(hu, dtype=np.float32)]
    return np.clip(np.stack(out), *HU_RANGE).astype(np.float32)


def _resample_targets(spacing_mm: float, targets: Sequence[float]) -> list[float]:
    """The requested spacings a volume at ``spacing_mm`` is resampled to: those within MAX_RESAMPLE_FACTOR,
    not within 2 % of its own."""
    keep = []
    for t in targets:
        factor = spacing_mm / float(t)
        if 1.0 / MAX_RESAMPLE_FACTOR <= factor <= MAX_RESAMPLE_FACTOR and abs(factor - 1.0) > 0.02:
            keep.append(float(t))
    return keep


def _check_fractions(dose_fraction: float | Sequence[float], test_dose_fractions: Sequence[float]) -> None:
    values = [dose_fraction] if np.ndim(dose_fraction) == 0 else list(dose_fraction)  # type: ignore[arg-type]
    if np.ndim(dose_fraction) and (len(values) != 2 or values[0] > values[1]):
        raise InputError(f"dose_fraction {dose_fraction}: a number or a (low, high) range")
    for f in [*values, *test_dose_fractions]:
        if not (np.isfinite(f) and 0.0 < f <= 1.0):
            raise InputError(f"dose_fraction {f}: must be in (0, 1]")


def build_ct_training_cache(
    sources: Sequence[str | Path],
    out: str | Path,
    dose_fraction: float | Sequence[float] = 0.25,
    seed: int = 0,
    hold_out: float = 0.1,
    gap: int = 1,
    min_body_fraction: float = 0.05,
    simulator: Simulator | None = None,
    simulator_kwargs: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    resample_spacings_mm: Sequence[float] = (),
    *,
    noisy_copies: int = 1,
    unpaired_split: bool = True,
    test_sources: Sequence[str | Path] = (),
    test_dose_fractions: Sequence[float] = (),
) -> dict[str, Any]:
    """Build the unpaired CT training cache ``out`` (``.npz``) and its manifest ``out`` with suffix ``.json``.

    ``sources``: NIfTI files and/or DICOM series folders (or files) of *normal-dose* CT. ``dose_fraction``
    (e.g. 0.25 = quarter dose, or a ``(low, high)`` range drawn log-uniformly for every noisy copy) goes to
    ``simulator`` (default :func:`~ldct_invrep.transforms.lowdose.simulate_low_dose`, dose-relative: each
    slice's own noise sets the flux, padding outside the field of view (below ``PADDING_BELOW_HU``) is kept),
    called once per noisy slice with a seed derived from ``(seed, source, slice)``.

    Slices of ``sources`` are split per volume (``assign_slices``: a held-out test block of ``hold_out``,
    then two disjoint halves X and Y when ``unpaired_split``, else X and Y both hold every training slice;
    the training loss never pairs them either way). Each X slice gets ``noisy_copies`` simulated versions.
    ``test_sources`` are held out whole (split by patient): every body slice of them becomes a test pair at
    each of ``test_dose_fractions`` (default: ``dose_fraction``).

    ``resample_spacings_mm``: in-plane pixel spacings the *training* slices of each volume are also
    resampled to (:func:`resample_slices`; only spacings within ``MAX_RESAMPLE_FACTOR`` of the volume's own),
    the noisy-domain copies resampled from the original and then simulated at the new spacing with their own
    seeds; they are stored as ``train_*_{volume}_r{j}`` arrays and listed in the manifest's ``resampled``.
    Returns the manifest dict. Never use the Mayo data here: the shipped model must not train on it.
    """
    if any(not (np.isfinite(t) and t > 0) for t in resample_spacings_mm):
        raise InputError(f"resample_spacings_mm {list(resample_spacings_mm)}: spacings must be positive numbers")
    out = Path(out)
    if not out.name.endswith(".npz"):
        raise InputError(f"{out}: the cache file name must end with .npz")
    if not sources:
        raise InputError(f"{out}: no sources given")
    _check_fractions(dose_fraction, test_dose_fractions)
    if noisy_copies < 1:
        raise InputError(f"noisy_copies {noisy_copies}: must be >= 1")
    if not test_dose_fractions:
        if np.ndim(dose_fraction):
            raise InputError("a dose_fraction range needs explicit test_dose_fractions")
        test_dose_fractions = [float(dose_fraction)]  # type: ignore[arg-type]
    simulate = simulator or default_simulator()
    kwargs = dict(simulator_kwargs or {})
    say = progress or (lambda msg: None)
    arrays: dict[str, np.ndarray] = {}
    source_entries: list[dict[str, Any]] = []
    totals = dict.fromkeys(SETS, 0)
    all_sources = [(s, False) for s in sources] + [(s, True) for s in test_sources]
    for vi, (vol, src, held_out) in enumerate(iter_ct_volumes(all_sources)):
        raw = np.asarray(vol.hu, dtype=np.float32)
        padding = raw < PADDING_BELOW_HU
        hu = np.clip(raw, *HU_RANGE).astype(np.float32)
        body = ((hu > AIR_THRESHOLD_HU) & ~padding).mean(axis=(1, 2))
        usable = [int(i) for i in np.flatnonzero(body >= min_body_fraction)]
        if not usable:
            say(f"{vol.name}: no slice with body, skipped")
            continue
        if held_out:
            sets = {"test": list(range(len(usable))), "train_noisy": [], "train_clean": [], "dropped": []}
        else:
            sets = assign_slices(len(usable), seed, hold_out, gap, key=vi)
            if not unpaired_split:
                both = sorted(sets["train_noisy"] + sets["train_clean"])
                sets["train_noisy"], sets["train_clean"] = both, list(both)
        idx = {k: [usable[i] for i in v] for k, v in sets.items()}
        spacing_mm = float(np.mean(vol.pixel_spacing))
        default_sim = simulate is default_simulator()
        slice_kwargs = dict(kwargs)
        if default_sim:
            slice_kwargs.setdefault("slice_thickness_mm", vol.slice_thickness_mm)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), vi, 11]))
        noisy_idx = [k for k in idx["train_noisy"] for _ in range(noisy_copies)]
        noisy_f = dose_draws(dose_fraction, len(noisy_idx), rng)
        test_idx = [k for f in test_dose_fractions for k in idx["test"]]
        test_f = [float(f) for f in test_dose_fractions for _ in idx["test"]]
        sim = SliceSimulator(simulate, slice_kwargs, default_sim, say)
        tag = f"{vi:03d}"
        arrays[f"train_noisy_{tag}"] = sim(hu, padding, noisy_idx, noisy_f, spacing_mm, (seed, vi), vol.name)
        arrays[f"train_clean_{tag}"] = hu[idx["train_clean"]]
        arrays[f"test_noisy_{tag}"] = sim(hu, padding, test_idx, test_f, spacing_mm, (seed, vi, 1 << 20), vol.name)
        arrays[f"test_clean_{tag}"] = hu[test_idx]
        resampled = []
        targets = _resample_targets(spacing_mm, resample_spacings_mm) if idx["train_noisy"] else []
        for j, target in enumerate(targets):
            rtag = f"{tag}_r{j}"
            say(f"{vol.name}: resampling training slices from {spacing_mm:g} to {target:g} mm pixels")
            noisy_src = resample_slices(hu[idx["train_noisy"]], spacing_mm, target)
            pad_src = resample_slices(padding[idx["train_noisy"]].astype(np.float32), spacing_mm, target) > 0.5
            r_idx = [k for k in range(len(noisy_src)) for _ in range(noisy_copies)]
            r_f = dose_draws(dose_fraction, len(r_idx), rng)
            arrays[f"train_noisy_{rtag}"] = sim(
                noisy_src, pad_src, r_idx, r_f, target, (seed, vi, j + 1), f"{vol.name}@{target:g}mm"
            )
            arrays[f"train_clean_{rtag}"] = resample_slices(hu[idx["train_clean"]], spacing_mm, target)
            resampled.append(
                {"key": f"r{j}", "pixel_spacing_mm": target, "shape": list(noisy_src.shape[1:]), "dose_fractions": r_f}
            )
            for k in TRAIN_SETS:
                totals[k] += int(arrays[f"{k}_{rtag}"].shape[0])
        for k in SETS:
            totals[k] += int(arrays[f"{k}_{tag}"].shape[0])
        source_entries.append(
            {
                "index": vi,
                "source": str(src),
                "held_out": held_out,
                "name": vol.name,
                **vol.meta,
                "shape": list(vol.hu.shape),
                "pixel_spacing_mm": list(vol.pixel_spacing),
                "slice_thickness_mm": vol.slice_thickness_mm,
                "slices_used": len(usable),
                "slices_skipped_no_body": int(vol.hu.shape[0] - len(usable)),
                "slice_indices": {k: idx[k] for k in ("train_noisy", "train_clean", "test", "dropped")},
                "train_noisy_dose_fractions": noisy_f,
                "test_dose_fractions": test_f,
                "calibration": sim.calibrations,
                "resampled": resampled,
            }
        )
    if not source_entries:
        raise InputError(f"{out}: no usable slices in {', '.join(str(s) for s, _ in all_sources)}")
    save_npz_atomic(out, arrays)
    manifest = {
        "format": CACHE_FORMAT,
        "description": "Unpaired CT training cache (LIR section 4.2-4.3 protocol): train_noisy = simulated low dose "
        "(dose relative to each scan's own) of training slices, train_clean = training slices as acquired, "
        "test = held-out pairs (simulated low dose, original). Arrays in HU, clipped to [-1024, 3072].",
        "cache_file": out.name,
        "cache_sha256": sha256_file(out),
        "units": "HU",
        "hu_range": list(HU_RANGE),
        "dose_fraction": dose_fraction if np.ndim(dose_fraction) == 0 else [float(v) for v in dose_fraction],  # type: ignore[union-attr]
        "test_dose_fractions": [float(f) for f in test_dose_fractions],
        "noisy_copies": noisy_copies,
        "unpaired_split": unpaired_split,
        "seed": seed,
        "hold_out": hold_out,
        "gap": gap,
        "min_body_fraction": min_body_fraction,
        "resample_spacings_mm": [float(t) for t in resample_spacings_mm],
        "simulator": f"{getattr(simulate, '__module__', '?')}.{getattr(simulate, '__qualname__', repr(simulate))}",
        "simulator_kwargs": kwargs,
        "counts": totals,
        "sources": source_entries,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "generated_by": f"ldct_invrep {__version__} (ldct_invrep.data.ct_cache.build_ct_training_cache)",
    }
    with atomic_output_file(out.with_suffix(".json"), overwrite=True) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def save_npz_atomic(out: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` through :func:`ldct_invrep.io.atomic.atomic_output_file` (a file object, so
    numpy does not append ``.npz`` to the temporary name)."""
    with atomic_output_file(out, overwrite=True) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


@dataclass
class CTCache:
    """A loaded cache: lists of 2D slices per set (HU or network range), and the manifest."""

    train_noisy: list[np.ndarray]
    train_clean: list[np.ndarray]
    test_noisy: list[np.ndarray]
    test_clean: list[np.ndarray]
    manifest: dict[str, Any]
    units: str


def open_ct_cache(path: str | Path) -> tuple[dict[str, Any], Any]:
    """``(manifest, arrays)`` of the cache ``path``: its ``.json`` manifest and its ``.npz`` opened lazily
    (``np.load``; close it, e.g. ``with arrays:``). A missing or unreadable file is one ``InputError`` line."""
    path = Path(path)
    try:
        manifest = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        data = np.load(path)
    except FileNotFoundError as exc:
        raise InputError(f"{exc.filename}: cache file not found") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable cache ({exc})") from exc
    return manifest, data


def load_ct_training_cache(path: str | Path, units: str = "net") -> CTCache:
    """Read a cache written by ``build_ct_training_cache``; ``units`` "net" ([-1, 1], default) or "hu"."""
    path = Path(path)
    if units not in ("net", "hu"):
        raise ValueError(f"units must be 'net' or 'hu', got {units!r}")
    manifest, data = open_ct_cache(path)
    sets: dict[str, list[np.ndarray]] = {k: [] for k in SETS}
    with data:
        for entry in manifest["sources"]:
            keys = [(k, f"{k}_{entry['index']:03d}") for k in SETS]
            keys += [(k, f"{k}_{entry['index']:03d}_{r['key']}") for r in entry.get("resampled", []) for k in TRAIN_SETS]
            for k, key in keys:
                arr = data[key].astype(np.float32)
                sets[k].extend(list(hu_to_net(arr) if units == "net" else arr))
    return CTCache(**sets, manifest=manifest, units=units)


@dataclass(frozen=True)
class SimulatedPair:
    """One simulated training copy of a cache and its normal-dose original (HU, as stored, float32)."""

    name: str  # "source:slice", "source@0.7mm:slice" for a resampled copy
    noisy: np.ndarray
    clean: np.ndarray
    dose_fraction: float | None  # of the slice's own dose; None in a cache that did not record it


def iter_simulated_training_pairs(path: str | Path, *, resampled: bool = True) -> Iterator[SimulatedPair]:
    """Every simulated training copy of the cache ``path`` with its original, its dose fraction and its name.

    The cache stores ``noisy_copies`` simulated copies of each ``train_noisy`` slice. Built with
    ``unpaired_split=False`` its ``train_clean`` set holds the same slices, so the originals come from the cache,
    resampled copies included (``resampled``). Otherwise the originals are read again from the manifest's sources
    (which must still be at the recorded paths) and only the copies at the acquired spacing are paired. Held-out
    test slices are never yielded. A cache whose arrays disagree with its manifest is an ``InputError`` naming
    the array. The one walk over a cache's pairs: RED-CNN's training data (``baselines.train_redcnn``) and the
    clean domain's noise maps (``data.clean_noise``) both read it.
    """
    path = Path(path)
    manifest, data = open_ct_cache(path)
    copies = int(manifest.get("noisy_copies", 1))
    with data:
        for entry in manifest["sources"]:
            indices = list(entry["slice_indices"]["train_noisy"])
            if not indices:
                continue
            tag = f"{entry['index']:03d}"
            paired = indices == list(entry["slice_indices"]["train_clean"])
            groups = [("", entry["name"], entry.get("train_noisy_dose_fractions"))]
            if paired and resampled:
                groups += [(f"_{r['key']}", f"{entry['name']}@{r['pixel_spacing_mm']:g}mm", r.get("dose_fractions"))
                           for r in entry.get("resampled", [])]  # fmt: skip
            for suffix, label, fractions in groups:
                key = f"train_noisy_{tag}{suffix}"
                noisy = data[key]
                clean = data[f"train_clean_{tag}{suffix}"] if paired else _source_slices(path, entry, indices)
                if len(noisy) != len(indices) * copies or len(clean) != len(indices):
                    raise InputError(f"{path}: {key}: {len(noisy)} slices and {len(clean)} originals, the manifest "
                                     f"{len(indices)} x {copies} copies")  # fmt: skip
                if fractions is not None and len(fractions) != len(noisy):
                    raise InputError(f"{path}: {key}: {len(noisy)} slices, {len(fractions)} dose fractions")
                for j, x in enumerate(noisy):
                    yield SimulatedPair(
                        name=f"{label}:{indices[j // copies]}",
                        noisy=x.astype(np.float32),
                        clean=clean[j // copies].astype(np.float32),
                        dose_fraction=None if fractions is None else float(fractions[j]),
                    )


def _source_slices(cache_path: Path, entry: dict[str, Any], indices: list[int]) -> np.ndarray:
    """The normal-dose slices ``indices`` of a cache source, read again from its recorded path."""
    source = Path(entry["source"])
    if not source.exists():
        raise InputError(f"{source}: source of {cache_path} not found (needed for the normal-dose originals)")
    volumes = read_ct_volumes(source)
    volume = ([v for v in volumes if v.name == entry["name"]] or volumes[:1])[0]
    if list(volume.hu.shape) != list(entry["shape"]):
        raise InputError(f"{source}: shape {volume.hu.shape} differs from the cache's {entry['shape']}")
    return volume.hu[indices]
