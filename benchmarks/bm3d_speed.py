"""BM3D seconds per 512 x 512 slice and peak RSS.

Runs on the real Mayo L506 quarter-dose slice (../shared/data/mayo2016_mapnn_ima, or
$LDCT_INVREP_SHARED_DATA/mayo2016_mapnn_ima) when present, else on a synthetic noisy phantom. With the
full-dose partner present it also prints PSNR / SSIM / RMSE of input and BM3D in the abdomen and full windows.

    .venv/bin/python benchmarks/bm3d_speed.py [--repeats 1] [--window full] [--sigma-hu 40] [--profile np]
    .venv/bin/python benchmarks/bm3d_speed.py --sweep 17 60 90 120      # metrics per sigma (needs full dose)

Wall seconds depend on what else runs on the machine; the CPU seconds of this process are printed too.
The estimated sigma (wavelet MAD, white-noise model) is far below the sigma that serves CT best:
CT noise is spatially correlated and air clipped at -1024 HU has no noise, so use ``--sweep`` to see.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

from ldct_invrep.baselines import bm3d_denoise, estimate_sigma_hu
from ldct_invrep.metrics import MetricReport, compare_reports

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LDCT_INVREP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _read_hu(path: Path) -> np.ndarray:
    import pydicom

    ds = pydicom.dcmread(path)
    return ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def load_slice() -> tuple[str, np.ndarray, np.ndarray | None]:
    """(description, quarter-dose HU, full-dose HU or None)."""
    folder = SHARED_DATA / "mayo2016_mapnn_ima"
    quarter = sorted(folder.glob("L506_QD_*.IMA")) if folder.is_dir() else []
    if quarter:
        full = sorted(folder.glob("L506_FD_*.IMA"))
        return (f"Mayo L506 quarter dose ({quarter[0].name[:12]}...)", _read_hu(quarter[0]),
                _read_hu(full[0]) if full else None)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:512, :512]
    clean = np.where((yy - 256) ** 2 / 200**2 + (xx - 256) ** 2 / 240**2 < 1, 40.0, -1000.0).astype(np.float32)
    clean[(yy - 256) ** 2 + (xx - 330) ** 2 < 30**2] = 700.0
    return "synthetic 512x512 ellipse phantom + 40 HU white noise", clean + rng.normal(0, 40, clean.shape).astype(np.float32), clean


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--window", default="full", help="BM3D working window (name)")
    parser.add_argument("--sigma-hu", type=float, default=None, help="noise std in HU (default: estimated)")
    parser.add_argument("--profile", default="np")
    parser.add_argument("--sweep", type=float, nargs="+", default=None, metavar="SIGMA_HU",
                        help="also run these sigmas (HU) and print metrics for each (needs the full-dose slice)")
    args = parser.parse_args(argv)

    what, noisy, clean = load_slice()
    print(f"{platform.node()} python {platform.python_version()}, {os.cpu_count()} CPUs; input: {what}, {noisy.shape}")
    rss0 = peak_rss_mib()
    sigma = args.sigma_hu if args.sigma_hu is not None else estimate_sigma_hu(noisy, args.window)
    print(f"sigma: {sigma:.2f} HU ({'given' if args.sigma_hu is not None else 'estimate_sigma, wavelet MAD'}), "
          f"BM3D window {args.window}, profile {args.profile}")
    times, cpu = [], []
    out = noisy
    for _ in range(max(1, args.repeats)):
        t0, c0 = time.perf_counter(), time.process_time()
        out = bm3d_denoise(noisy, sigma_hu=sigma, window=args.window, profile=args.profile)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    rss1 = peak_rss_mib()
    print(f"BM3D: {np.median(times):.2f} s wall, {np.median(cpu):.2f} s CPU per {noisy.shape[0]}x{noisy.shape[1]} "
          f"slice (median of {len(times)}; wall {', '.join(f'{t:.2f}' for t in times)}); "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"peak RSS: {rss1:.0f} MiB (before BM3D {rss0:.0f} MiB, +{rss1 - rss0:.0f} MiB)")
    if clean is not None:
        for window in ("abdomen", "full"):
            reports = [
                MetricReport.from_arrays(noisy, clean, window, method="input (quarter dose)", reference="full dose"),
                MetricReport.from_arrays(out, clean, window, method=f"BM3D (sigma {sigma:.1f} HU)", reference="full dose"),
            ]
            print()
            print(compare_reports(reports))
    if args.sweep and clean is not None:
        outs = {s: bm3d_denoise(noisy, sigma_hu=s, window=args.window, profile=args.profile) for s in args.sweep}
        for window in ("abdomen", "full"):
            reports = [MetricReport.from_arrays(o, clean, window, method=f"BM3D sigma {s:g} HU", reference="full dose")
                       for s, o in outs.items()]
            print()
            print(compare_reports(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
