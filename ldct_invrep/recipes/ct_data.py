"""Bundle recipes for CT data: the CT training cache and the Mayo 2016 datalist (built once, on rank 0 under
torch.distributed), the openly licensed sources of the default model and the paired validation/test slices."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ldct_invrep.errors import InputError, as_flag

__all__ = ["HELD_OUT_PATIENTS", "ensure_ct_cache", "ensure_mayo_datalist", "open_ct_sources", "paired_dicom_dataset"]


def _is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _on_main_rank(build: Callable[[], Any]) -> None:
    """Run ``build`` on rank 0 only (all ranks wait for it) under torch.distributed, else just run it."""
    if not _is_distributed():
        build()
        return
    error = None
    if torch.distributed.get_rank() == 0:
        try:
            build()
        except Exception as exc:  # noqa: BLE001 - re-raised after the barrier so no rank hangs
            error = exc
    torch.distributed.barrier()
    if error is not None:
        raise error


def _cache_matches(cache: Path, sources: Sequence[str], options: dict[str, Any]) -> bool:
    """Whether the cache ``cache`` was built from ``sources`` with the manifest fields ``options``."""
    manifest = cache.with_suffix(".json")
    if not (cache.is_file() and manifest.is_file()):
        return False
    try:
        m = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    built_from = {os.path.realpath(str(s["source"])) for s in m.get("sources", [])}
    return built_from == {os.path.realpath(str(s)) for s in sources} and all(
        json.dumps(m.get(k)) == json.dumps(v) for k, v in options.items()
    )


def _every(seconds: float) -> Callable[[str], None]:
    """A progress callback printing at most one message every ``seconds`` (the first at once)."""
    last = [-float("inf")]

    def say(message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= seconds:
            print(message, flush=True)
            last[0] = now

    return say


def ensure_ct_cache(
    sources: Sequence[str | os.PathLike],
    cache_file: str | os.PathLike,
    dose_fraction: float | Sequence[float] = 0.25,
    seed: int = 0,
    hold_out: float = 0.1,
    rebuild: bool = False,
    simulator_kwargs: dict[str, Any] | None = None,
    resample_spacings_mm: Sequence[float] = (),
    noisy_copies: int = 1,
    unpaired_split: bool = True,
    test_sources: Sequence[str | os.PathLike] = (),
    test_dose_fractions: Sequence[float] = (),
) -> str:
    """Path of the CT training cache ``cache_file``, built with ``data.build_ct_training_cache`` (same
    arguments) unless a cache of the same sources and options is already there (or ``rebuild``).

    The low-dose simulation takes seconds a slice, so it runs once; under torch.distributed only rank 0
    builds and the other ranks wait. Sources are compared as resolved paths (relative to the working folder).
    Sources that are missing raise ``InputError`` naming them.
    """
    from ldct_invrep.data import build_ct_training_cache

    srcs, tests = [str(s) for s in sources], [str(s) for s in test_sources]
    rebuild = as_flag(rebuild, "rebuild_cache")
    for s in srcs + tests:
        if not os.path.exists(s):
            raise InputError(f"{s}: CT source not found (set --dataset_dir or --ct_sources)")
    cache = Path(cache_file)
    fraction = float(dose_fraction) if np.ndim(dose_fraction) == 0 else [float(v) for v in dose_fraction]  # type: ignore[union-attr]
    options = {
        "dose_fraction": fraction,
        "seed": int(seed),
        "hold_out": float(hold_out),
        "resample_spacings_mm": [float(t) for t in resample_spacings_mm],
        "noisy_copies": int(noisy_copies),
        "unpaired_split": bool(unpaired_split),
        "test_dose_fractions": [float(f) for f in test_dose_fractions] or ([fraction] if np.ndim(fraction) == 0 else []),
    }

    def build() -> None:
        if rebuild or not _cache_matches(cache, srcs + tests, options):
            print(f"building the CT training cache {cache} (low-dose simulation, a second or two a slice)", flush=True)
            t0 = time.perf_counter()
            build_ct_training_cache(
                srcs,
                cache,
                dose_fraction=fraction,
                seed=seed,
                hold_out=hold_out,
                simulator_kwargs=simulator_kwargs,
                resample_spacings_mm=resample_spacings_mm,
                noisy_copies=noisy_copies,
                unpaired_split=unpaired_split,
                test_sources=tests,
                test_dose_fractions=test_dose_fractions,
                progress=_every(10.0),
            )
            print(f"built the CT training cache {cache} in {time.perf_counter() - t0:.0f} s", flush=True)

    _on_main_rank(build)
    return str(cache)


#: Patients of COVID-19-NY-SBU held out of the default model's training, for its simulated validation
#: (GE 2.5 and 1.25 mm; Toshiba 3 and 1 mm; GE 5 mm twice): split by patient, thicknesses 1-5 mm, 2 vendors.
HELD_OUT_PATIENTS = ("A056642", "A067967", "A048383")


def open_ct_sources(dataset_dir: str | os.PathLike, held_out: Sequence[str] = HELD_OUT_PATIENTS) -> dict[str, list[str]]:
    """The openly licensed normal-dose CT the default model trains on, split by patient.

    ``dataset_dir`` holds ``ct_nifti/example_ct.nii.gz`` (TotalSegmentator, Apache-2.0),
    ``ct_more/covid19_nysbu_chest_axial/*.dcm`` (TCIA COVID-19-NY-SBU, CC BY 4.0; file names start with the
    patient) and ``ct_more/dcmqi_liver_ct_3slice`` (dcmqi test data, BSD-3); the TotalSegmentator series
    shipped in the package is always a training source. Returns ``{"train": [...], "test": [...]}``: the files
    of the ``held_out`` patients go to "test". Missing parts raise ``InputError`` naming them.
    """
    from ldct_invrep.package_files import sample_series_path

    root = Path(dataset_dir)
    covid = root / "ct_more" / "covid19_nysbu_chest_axial"
    parts = [root / "ct_nifti" / "example_ct.nii.gz", covid, root / "ct_more" / "dcmqi_liver_ct_3slice"]
    for part in parts:
        if not part.exists():
            raise InputError(f"{part}: not found (the default model's training data; see docs/shipped_weights.md)")
    slices = sorted(covid.glob("*.dcm"))
    train = [str(sample_series_path()), str(parts[0]), str(parts[2])]
    train += [str(f) for f in slices if f.name.split("_")[0] not in held_out]
    test = [str(f) for f in slices if f.name.split("_")[0] in held_out]
    return {"train": train, "test": test}


def ensure_mayo_datalist(
    dataset_dir: str | os.PathLike | None,
    datalist: str | os.PathLike,
    split: str = "patient",
    accept_incomplete: bool = False,
    **kwargs: Any,
) -> str:
    """Path of the Mayo 2016 datalist ``datalist``; written by ``data.prepare("mayo2016", dataset_dir, datalist)``
    when it does not exist yet (on rank 0 only under torch.distributed), which prints its report. A copy whose
    report is NOT OK stops the run (``data.IncompleteDatasetError``) unless ``accept_incomplete``. ``kwargs``
    (``thickness``, ``kernel``; None: the split's) go to ``data.prepare``."""
    from ldct_invrep.data import IncompleteDatasetError, format_report, prepare

    path = Path(datalist)
    accept_incomplete = as_flag(accept_incomplete, "accept_incomplete")
    if path.is_file():
        return str(path)
    if dataset_dir is None:
        raise InputError(f"{path}: datalist not found; give --dataset_dir (the Mayo 2016 root) to write it")

    def build() -> None:
        if path.is_file():
            return
        print(f"writing the Mayo 2016 datalist {path} (split {split}) from {dataset_dir}", flush=True)
        try:
            report, written = prepare(
                "mayo2016", dataset_dir, path, split=split, require_ok=not accept_incomplete,
                **{k: v for k, v in kwargs.items() if v is not None},
            )  # fmt: skip
        except IncompleteDatasetError as exc:
            print(format_report(exc.report), flush=True)
            raise
        print(format_report(report), f"wrote datalist -> {written}", sep="\n", flush=True)

    _on_main_rank(build)
    return str(path)


def paired_dicom_dataset(entries: Iterable[dict[str, Any]], cache_size: int = 64):
    """``PairedSliceDataset`` of the paired ``{"noisy": file, "clean": file}`` entries of a datalist section
    (validation/test), each slice read lazily in network range."""
    from ldct_invrep.data import DicomSliceSequence, PairedSliceDataset

    pairs = [e for e in entries if "noisy" in e and "clean" in e]
    noisy = DicomSliceSequence([e["noisy"] for e in pairs], cache_size=cache_size)
    clean = DicomSliceSequence([e["clean"] for e in pairs], cache_size=cache_size)
    return PairedSliceDataset(noisy, clean)
