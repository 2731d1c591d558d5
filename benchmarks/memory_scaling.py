"""Peak memory of ``ldct-invrep denoise`` against the number of slices: it must stay flat.

Series of 20, 100 and 300 slices are made from the shipped sample series (ldct_invrep/sample_data/
totalsegmentator_ct, 20 slices of 512 x 512, JPEG 2000 lossless) by repetition: each copy gets its own
SOPInstanceUID, InstanceNumber and an ImagePositionPatient shifted along the slice normal (one new
SeriesInstanceUID per series), written to a temporary folder. Each series is denoised DICOM -> DICOM by the
CLI in a subprocess; its peak RSS comes from ``/usr/bin/time -v`` ("Maximum resident set size") where that
exists, else from psutil polling of the process tree every 10 ms.

    .venv/bin/python benchmarks/memory_scaling.py [--sizes 20 100 300] [--weights FILE] [--threads 2]
        [--batch-size 4] [--keep DIR]

Speed is not the point here, so without ``--weights`` (and without shipped weights) a tiny random-weight
Restorer (``lite`` with 4 base channels, 1 residual block) keeps the run short; memory streaming is the same
code path for every network. Exit status 1 when the peak grows by more than ``--tolerance`` (default 15%)
from the smallest to the largest series.
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.misc import is_dicom
from pydicom.uid import generate_uid

try:
    import psutil  # the 'bench' extra, not a runtime dependency
except ImportError:
    sys.exit("benchmarks/memory_scaling.py: needs psutil: pip install 'ldct-invrep[bench]'")

TIME = Path("/usr/bin/time")


def make_series(source: Path, n: int, out_dir: Path) -> Path:
    """Write an ``n``-slice series into ``out_dir`` by repeating ``source``'s slices along the slice normal."""
    files = sorted(p for p in source.iterdir() if p.is_file() and is_dicom(p))
    datasets = [pydicom.dcmread(p) for p in files]
    normal = np.cross(*np.reshape(np.asarray(datasets[0].ImageOrientationPatient, dtype=float), (2, 3)))
    datasets.sort(key=lambda d: float(np.dot(normal, np.asarray(d.ImagePositionPatient, dtype=float))))
    positions = [np.asarray(d.ImagePositionPatient, dtype=float) for d in datasets]
    step = (positions[-1] - positions[0]) / (len(positions) - 1)
    series_uid = generate_uid()
    out_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ds = copy.deepcopy(datasets[i % len(datasets)])
        sop = generate_uid()
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = i + 1
        position = positions[0] + i * step
        ds.ImagePositionPatient = [round(float(v), 4) for v in position]
        if "SliceLocation" in ds:
            ds.SliceLocation = round(float(np.dot(normal, position)), 4)
        ds.save_as(out_dir / f"slice_{i:04d}.dcm", enforce_file_format=True)
    return out_dir


def tiny_checkpoint(path: Path) -> Path:
    import torch

    from ldct_invrep.io.checkpoint import save_restorer
    from ldct_invrep.networks import Restorer, get_config

    torch.manual_seed(0)
    config = get_config("lite", base_channels=4, n_res=1, noise_channels=4)
    return save_restorer(path, Restorer.from_config(config),
                         {"config": config, "preset": "tiny-random", "training_data": "none (random weights)"})


def run_peak_rss(cmd: list[str]) -> tuple[float, float, str]:
    """(peak RSS MiB, wall seconds, how measured); raises when the command fails."""
    t0 = time.perf_counter()
    if TIME.exists():
        proc = subprocess.run([str(TIME), "-v", *cmd], capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        if match:
            return int(match.group(1)) / 1024.0, seconds, "/usr/bin/time -v"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.01)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out}\n{err}")
    return peak / 2**20, time.perf_counter() - t0, "psutil polling (10 ms)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[20, 100, 300])
    p.add_argument("--weights", type=Path, default=None, help="checkpoint (default: shipped weights, else tiny random)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--tolerance", type=float, default=0.15)
    p.add_argument("--keep", type=Path, default=None, help="make the series here and keep them")
    args = p.parse_args(argv)

    from ldct_invrep.package_files import default_weights_path, sample_series_path

    work = Path(tempfile.mkdtemp(prefix="ldct_memory_")) if args.keep is None else args.keep
    cli = Path(sys.executable).with_name("ldct-invrep")
    base_cmd = [str(cli)] if cli.exists() else [sys.executable, "-m", "ldct_invrep.cli"]
    try:
        weights = args.weights or (default_weights_path() if default_weights_path().is_file() else None)
        weights = weights or tiny_checkpoint(work / "tiny_random.pt")
        print(f"weights: {weights}; threads {args.threads}; batch size {args.batch_size}")
        print(f"{'slices':>6} {'peak RSS':>10} {'wall s':>8} {'slices/s':>8}")
        peaks = []
        how = ""
        for n in args.sizes:
            series = make_series(sample_series_path(), n, work / f"series_{n}")
            out = work / f"denoised_{n}"
            cmd = [*base_cmd, "denoise", str(series), str(out), "--weights", str(weights), "--device", "cpu",
                   "--threads", str(args.threads), "--batch-size", str(args.batch_size), "--quiet", "--overwrite"]
            peak, seconds, how = run_peak_rss(cmd)
            written = len(list(out.iterdir()))
            if written != n:
                raise RuntimeError(f"{out}: {written} files written for {n} slices")
            peaks.append(peak)
            print(f"{n:>6} {peak:>8.0f} M {seconds:>8.1f} {n / seconds:>8.2f}", flush=True)
            if args.keep is None:
                shutil.rmtree(series)
                shutil.rmtree(out)
        growth = (peaks[-1] - peaks[0]) / peaks[0]
        verdict = "flat" if growth <= args.tolerance else "GROWS"
        print(f"peak RSS ({how}) from {args.sizes[0]} to {args.sizes[-1]} slices: {growth * 100:+.1f}% -> {verdict}")
        return 0 if verdict == "flat" else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
