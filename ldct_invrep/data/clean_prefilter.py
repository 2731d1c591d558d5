"""A CT training cache whose clean domain Y is denoised: normal-dose slices made closer to noise-free.

LIR's clean generator G_Y learns to produce images the domain discriminator D_Y cannot tell from the clean
domain (eq. 12-13). A normal-dose scan is not noise-free (the open training scans keep 10-38 HU of their own
noise in flat soft tissue, docs/data.md), so G_Y learns to leave that much grain in its output: on the real
pairs the shipped model's output has the full dose's high-pass texture (38.0 HU against 38.1 HU in flat tissue
on Mayo L506) where BM3D leaves 21 HU, and PSNR against a full dose, whose own noise no method can predict,
pays for it. Denoising Y first with blind BM3D (``baselines.bm3d``: sigma a fixed factor of each slice's own
noise level) moves the target domain towards the noise-free image, the estimate PSNR rewards; the reference-
noise blend (``transforms.reference_noise``) puts a normal dose's grain back at inference.

The derived cache copies the noisy domain X and the held-out test pairs unchanged (the test references stay the
acquired full doses), so a run on it differs from a run on its parent only in Y. Ours: a one-off preparation
step of our cache format, nothing in MONAI does it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ldct_invrep.data.ct_cache import open_ct_cache, save_npz_atomic
from ldct_invrep.data.image_sets import sha256_file
from ldct_invrep.errors import InputError
from ldct_invrep.io.atomic import atomic_output_file

__all__ = ["prefilter_clean_domain"]

_CLEAN_PREFIX = "train_clean_"


def prefilter_clean_domain(
    cache: str | Path,
    out: str | Path,
    factor: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write ``out`` (``.npz`` and manifest ``.json``): the cache ``cache`` with every clean-domain training
    slice (``train_clean_*``, resampled copies included) replaced by blind BM3D of it, sigma ``factor`` x the
    slice's noise level in flat soft tissue (default ``DEFAULT_BLIND_FACTOR``). Returns the new manifest, which
    records the parent's checksum and the filter under ``clean_prefilter``."""
    from ldct_invrep.baselines.bm3d import DEFAULT_BLIND_FACTOR, blind_sigma_hu, bm3d_denoise

    cache, out = Path(cache), Path(out)
    if not out.name.endswith(".npz"):
        raise InputError(f"{out}: the cache file name must end with .npz")
    if out.resolve() == cache.resolve():
        raise InputError(f"{out}: the derived cache must not replace its parent")
    factor = DEFAULT_BLIND_FACTOR if factor is None else float(factor)
    if not (np.isfinite(factor) and factor > 0):
        raise InputError(f"factor {factor!r}: expected a positive number")
    manifest, data = open_ct_cache(cache)
    say = progress or (lambda msg: None)
    arrays: dict[str, np.ndarray] = {}
    sigmas: list[float] = []
    with data, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the noise-level fallback on slices without flat soft tissue
        for key in data.files:
            arr = data[key]
            if key.startswith(_CLEAN_PREFIX) and len(arr):
                say(f"{key}: blind BM3D of {len(arr)} slice(s) of {arr.shape[1]}x{arr.shape[2]}")
                filtered = []
                for s in arr:
                    sigma = blind_sigma_hu(s, factor)
                    sigmas.append(sigma)
                    filtered.append(bm3d_denoise(s, sigma, "full"))
                arr = np.stack(filtered).astype(arr.dtype)
            arrays[key] = arr
    if not sigmas:
        raise InputError(f"{cache}: no clean-domain training slices to filter")
    save_npz_atomic(out, arrays)
    derived = {
        **manifest,
        "cache_file": out.name,
        "cache_sha256": sha256_file(out),
        "clean_prefilter": {
            "method": "blind BM3D (ldct_invrep.baselines.bm3d), full window",
            "factor": factor,
            "sigma_hu": {"min": round(min(sigmas), 2), "median": round(float(np.median(sigmas)), 2), "max": round(max(sigmas), 2)},
            "slices": len(sigmas),
            "parent": manifest.get("cache_file"),
            "parent_sha256": manifest.get("cache_sha256"),
        },
    }
    with atomic_output_file(out.with_suffix(".json"), overwrite=True) as tmp:
        tmp.write_text(json.dumps(derived, indent=1) + "\n", encoding="utf-8")
    return derived


def main(argv: list[str] | None = None) -> None:
    """``python -m ldct_invrep.data.clean_prefilter CACHE OUT [--factor F]``."""
    import argparse
    import time

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cache", type=Path, help="a CT training cache (.npz, its manifest .json beside it)")
    p.add_argument("out", type=Path, help="the derived cache to write (.npz)")
    p.add_argument("--factor", type=float, default=None, help="blind BM3D sigma over each slice's noise level [5]")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    manifest = prefilter_clean_domain(args.cache, args.out, args.factor, progress=lambda m: print(m, flush=True))
    info = manifest["clean_prefilter"]
    print(f"wrote {args.out}: {info['slices']} clean slices, BM3D sigma {info['sigma_hu']} HU, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
