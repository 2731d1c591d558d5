"""Data: unpaired patch datasets (LIR section 4.1-4.3), datalists, dataset scanners, CT training cache.

Names are imported on first use (module ``__getattr__``), so ``ldct_invrep.data.preparation`` and the
scanners load without torch or MONAI (the command line's ``prepare`` starts fast).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "AIR_THRESHOLD_NET": "ldct_invrep.data.datasets",
    "CTCache": "ldct_invrep.data.ct_cache",
    "DicomSliceSequence": "ldct_invrep.data.slices",
    "ImageSetReport": "ldct_invrep.data.image_sets",
    "IncompleteDatasetError": "ldct_invrep.data.preparation",
    "NoisyImage": "ldct_invrep.data.noisy_sets",
    "PairedSliceDataset": "ldct_invrep.data.datasets",
    "ScanReport": "ldct_invrep.data.scanners",
    "SeriesScan": "ldct_invrep.data.scanners",
    "UnpairedPatchDataset": "ldct_invrep.data.datasets",
    "build_ct_training_cache": "ldct_invrep.data.ct_cache",
    "clean_domain_noise": "ldct_invrep.data.clean_noise",
    "domain_paths": "ldct_invrep.data.slices",
    "format_report": "ldct_invrep.data.scanners",
    "load_ct_training_cache": "ldct_invrep.data.ct_cache",
    "load_datalist": "ldct_invrep.data.datalist",
    "load_image_8bit": "ldct_invrep.data.natural",
    "load_paired_datalist": "ldct_invrep.data.datalist",
    "load_manifest": "ldct_invrep.data.manifests",
    "manifest_dir": "ldct_invrep.data.manifests",
    "noisy_test_set": "ldct_invrep.data.noisy_sets",
    "prepare": "ldct_invrep.data.preparation",
    "rgb_to_gray": "ldct_invrep.data.natural",
    "scan_mayo2016": "ldct_invrep.data.scanners",
    "scan_tcia_ldct": "ldct_invrep.data.scanners",
    "split_unpaired": "ldct_invrep.data.datasets",
    "verify_image_set": "ldct_invrep.data.image_sets",
    "write_datalist": "ldct_invrep.data.datalist",
    "write_image_set_datalist": "ldct_invrep.data.preparation",
    "write_mayo_datalist": "ldct_invrep.data.preparation",
    "write_tcia_datalist": "ldct_invrep.data.preparation",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
