"""Calibrate and check `simulate_low_dose(..., calibration="mayo")` against the real Mayo L506 full/quarter-dose pair.

The absolute Mayo flux (``calibration="mayo"``) is what this script fits and checks; the default, dose-relative
calibration ("self") is checked on every real pair and on other scanners by ``dose_relative_check.py``.

Prints the real quarter-minus-full HU std in the body, the simulated-minus-full std at dose fractions
0.5 / 0.25 / 0.1 (mean over seeds), the radially averaged noise power spectrum (NPS) of both, the std in
rings around the body centre, and seconds per slice. `--exact` also compares the default (pooled forward
projection) against the exact-variance reference (`variance_downsample=1`, slow). `--fit` prints the
`incident_flux` that matches the real std exactly.

    .venv/bin/python benchmarks/lowdose_calibration.py [--data DIR] [--seeds 3] [--exact] [--fit]

Timings depend on the load of the machine; the load average is printed with them.
The data folder defaults to ../shared/data/mayo2016_mapnn_ima next to the repository (or
$LDCT_INVREP_SHARED_DATA/mayo2016_mapnn_ima). The AAPM data is read in place, never copied.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import numpy as np
import pydicom
from scipy import ndimage

from ldct_invrep.transforms.lowdose import DEFAULT_INCIDENT_FLUX, simulate_low_dose

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LDCT_INVREP_SHARED_DATA", REPO.parent / "shared" / "data"))
FRACTIONS = (0.5, 0.25, 0.1)


def read_hu(path: Path) -> tuple[np.ndarray, float]:
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return hu, float(ds.PixelSpacing[0])


def body_mask(full_hu: np.ndarray) -> np.ndarray:
    """Full dose > -500 HU, eroded by 5 pixels (the mask used for every figure here)."""
    return ndimage.binary_erosion(full_hu > -500, iterations=5)


def radial_nps(diff: np.ndarray, mask: np.ndarray, roi: int = 64, step: int = 32, n_bins: int = 8) -> np.ndarray:
    """Radially averaged NPS over ROIs inside the mask, normalised to sum 1, bins over 0..0.5 cycles/pixel."""
    window = np.outer(np.hanning(roi), np.hanning(roi))
    acc = np.zeros((roi, roi))
    for i in range(0, diff.shape[0] - roi + 1, step):
        for j in range(0, diff.shape[1] - roi + 1, step):
            if mask[i : i + roi, j : j + roi].all():
                patch = diff[i : i + roi, j : j + roi]
                acc += np.abs(np.fft.fft2((patch - patch.mean()) * window)) ** 2
    freq = np.fft.fftfreq(roi)
    radius = np.hypot(freq[:, None], freq[None, :])
    index = np.digitize(radius, np.linspace(0, 0.5, n_bins + 1)) - 1
    nps = np.array([acc[index == k].mean() for k in range(n_bins)])
    return nps / nps.sum()


def autocorrelation(diff: np.ndarray, mask: np.ndarray, lag: int, axis: int) -> float:
    """Correlation of the noise with itself shifted by ``lag`` pixels along ``axis`` (1: x, 0: y), in the mask."""
    d, m = (diff, mask) if axis == 1 else (diff.T, mask.T)
    both = m[:, :-lag] & m[:, lag:]
    a, b = d[:, :-lag][both], d[:, lag:][both]
    return float(np.corrcoef(a, b)[0, 1])


def ring_stds(diff: np.ndarray, mask: np.ndarray) -> list[float]:
    cy, cx = ndimage.center_of_mass(mask)
    yy, xx = np.mgrid[: diff.shape[0], : diff.shape[1]]
    r = np.hypot(yy - cy, xx - cx)
    return [float(diff[mask & (r >= a) & (r < a + 50)].std()) for a in range(0, 250, 50)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "mayo2016_mapnn_ima")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--exact", action="store_true", help="compare with variance_downsample=1 (slow)")
    parser.add_argument("--fit", action="store_true", help="print the incident_flux matching the real std")
    args = parser.parse_args()
    full_path = next(args.data.glob("L506_FD_*.IMA"))
    quarter_path = next(args.data.glob("L506_QD_*.IMA"))
    full, spacing = read_hu(full_path)
    quarter, _ = read_hu(quarter_path)
    mask = body_mask(full)
    real = quarter - full
    real_std = float(real[mask].std())
    print(f"data: {full_path.name} / {quarter_path.name}, {full.shape}, pixel {spacing} mm")
    print(f"body mask (full dose > -500 HU, eroded 5 px): {int(mask.sum())} pixels")
    print(f"real quarter - full dose: std {real_std:.1f} HU, mean {real[mask].mean():+.2f} HU")
    print(f"simulated (calibration mayo, incident_flux {DEFAULT_INCIDENT_FLUX:.3g}/mm/view), seeds 0..{args.seeds - 1}:")
    print("  dose   std(sim-full) HU   seed range     mean(sim-full) HU   ratio to real 0.25")
    times: list[float] = []
    sims: dict[float, np.ndarray] = {}
    for f in FRACTIONS:
        stds, means = [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            sim = simulate_low_dose(full, f, spacing, seed=seed, calibration="mayo")
            times.append(time.perf_counter() - t0)
            diff = sim - full
            stds.append(float(diff[mask].std()))
            means.append(float(diff[mask].mean()))
            if seed == 0:
                sims[f] = diff
        print(
            f"  {f:<5}  {np.mean(stds):8.1f}          {min(stds):.1f}-{max(stds):.1f}    "
            f"{np.mean(means):+8.2f}            {np.mean(stds) / real_std:.3f}"
        )
    print(
        f"seconds per 512x512 slice: median {np.median(times):.2f}, min {min(times):.2f} "
        f"({len(times)} runs; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    nps_real, nps_sim = radial_nps(real, mask), radial_nps(sims[0.25], mask)
    edges = np.linspace(0, 0.5, len(nps_real) + 1) / spacing
    print("radial NPS (fraction of power per band, cycles/mm):")
    print("  band       " + " ".join(f"{a:.2f}-{b:.2f}" for a, b in itertools.pairwise(edges)))
    print("  real 0.25  " + " ".join(f"{v:9.3f}" for v in nps_real))
    print("  sim 0.25   " + " ".join(f"{v:9.3f}" for v in nps_sim))
    print(f"  sum |sim - real| = {np.abs(nps_sim - nps_real).sum():.3f}")
    print("noise autocorrelation at lags 1, 2, 3 pixels along x | along y (FBP texture, anisotropy):")
    for name, diff in (("real 0.25", real), ("sim 0.25", sims[0.25])):
        x = " ".join(f"{autocorrelation(diff, mask, k, 1):+.2f}" for k in (1, 2, 3))
        y = " ".join(f"{autocorrelation(diff, mask, k, 0):+.2f}" for k in (1, 2, 3))
        print(f"  {name:<9}  {x} | {y}")
    print("std in 50-pixel rings from the body centre (HU):")
    print("  real 0.25  " + " ".join(f"{v:6.1f}" for v in ring_stds(real, mask)))
    print("  sim 0.25   " + " ".join(f"{v:6.1f}" for v in ring_stds(sims[0.25], mask)))
    if args.exact:
        t0 = time.perf_counter()
        exact = simulate_low_dose(full, 0.25, spacing, seed=0, variance_downsample=1, calibration="mayo") - full
        dt = time.perf_counter() - t0
        err = (sims[0.25] - exact)[mask].std() / exact[mask].std()
        print(
            f"exact variance (variance_downsample=1, {dt:.1f} s): std {exact[mask].std():.2f} HU vs "
            f"{sims[0.25][mask].std():.2f}; RMS difference of the noise images {100 * err:.2f} %"
        )
    if args.fit:
        lo, hi = DEFAULT_INCIDENT_FLUX / 4, DEFAULT_INCIDENT_FLUX * 4
        for _ in range(12):
            mid = np.sqrt(lo * hi)
            s = np.mean(
                [
                    (simulate_low_dose(full, 0.25, spacing, seed=k, calibration="mayo", incident_flux=mid) - full)[mask].std()
                    for k in range(args.seeds)
                ]
            )
            lo, hi = (mid, hi) if s > real_std else (lo, mid)
        print(f"incident_flux matching the real std at 0.25: {np.sqrt(lo * hi):.4g} photons/mm/view")


if __name__ == "__main__":
    main()
