"""Inference speed of the Restorer (E_X -> G_Y) on 512 x 512 slices, against BM3D and the machine's ceiling.

For the given checkpoint (default: the shipped weights ldct_invrep/weights/lir_ct.pt, else a
random-weight ``lite`` Restorer) and the ``paper`` preset (random weights: speed does not depend on them):
seconds per slice and slices per second in fp32 and bf16 autocast, batch 1 and 4, channels-last off and on,
with the peak RSS during each configuration; the model's FLOPs (``torch.utils.flop_counter.FlopCounterMode``:
convolutions and matrix products; norms and activations are not counted) give its achieved GFLOP/s, shown
against a large ``torch.matmul``'s GFLOP/s on this machine (the practical ceiling; for bf16 the bf16 matmul,
which is emulated and slow on CPUs without AVX512-BF16/AMX). ``--self-ensemble 1 8`` also times the
checkpoint with its outputs averaged over 8 flipped/transposed copies (``SelfEnsembleInferer``). A configuration whose estimated time exceeds
``--max-seconds`` is skipped and says so. BM3D on the same slice for scale (``--no-bm3d`` to skip).

    .venv/bin/python benchmarks/denoise_speed.py [--weights FILE] [--presets paper] [--threads 2]
        [--repeats 1] [--batches 1 4] [--self-ensemble 1 8] [--no-bm3d] [--bm3d-sigma-hu 100] [--slice FILE]

The slice is the first file of the shipped sample series (512 x 512), or ``--slice`` (any DICOM file).
Wall seconds vary 10-20% with whatever else runs on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from ldct_invrep.inference import SliceDenoiser
from ldct_invrep.io.checkpoint import SELF_ENSEMBLE_SIZES
from ldct_invrep.networks import Restorer, count_parameters, get_config
from ldct_invrep.package_files import default_weights_path, sample_series_path

try:
    import psutil  # the 'bench' extra, not a runtime dependency
except ImportError:
    sys.exit("benchmarks/denoise_speed.py: needs psutil: pip install 'ldct-invrep[bench]'")


class PeakRSS:
    """Peak resident set size of this process while the block runs (psutil, polled every 5 ms)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.proc = psutil.Process()
        self.interval = interval
        self.peak = 0
        self.before = 0
        self._stop = threading.Event()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.before = self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def mib(n: float) -> float:
    return n / 2**20


def load_slice(path: Path | None) -> tuple[str, np.ndarray]:
    from ldct_invrep.io import read_series

    path = path or sorted(sample_series_path().iterdir())[0]
    series = read_series(path)
    return f"{path.name} ({series.hu.shape[1]}x{series.hu.shape[2]})", series.hu[0].astype(np.float32)


def matmul_gflops(dtype: torch.dtype = torch.float32, max_n: int = 2048, repeats: int = 8) -> tuple[float, int]:
    """(best GFLOP/s, n) of an n x n x n matrix product (2 n^3 FLOPs); n grows from 256 until one product
    takes 0.2 s or n reaches ``max_n`` (a slow dtype, e.g. bf16 without hardware support, stays small)."""
    n = 256
    while True:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        t0 = time.perf_counter()
        torch.matmul(a, b)
        first = time.perf_counter() - t0
        if first > 0.2 or n >= max_n:
            break
        n *= 2
    best = first
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9, n


def count_flops(restorer: Restorer, size: int) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 1, size, size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        restorer(x)
    return int(counter.get_total_flops())


def build(name: str, weights: Path | None) -> tuple[str, Restorer]:
    if name == "checkpoint":
        path = weights or default_weights_path()
        if path.is_file():
            denoiser, header = SliceDenoiser.from_checkpoint(path)
            return f"{path.name} (preset {header.get('preset', '?')})", denoiser.restorer
        torch.manual_seed(0)
        return "lite (random weights: no shipped weights)", Restorer.from_config(get_config("lite")).eval()
    torch.manual_seed(0)
    return f"{name} (random weights)", Restorer.from_config(get_config(name)).eval()


class _ChannelsLastInput(torch.nn.Module):
    """The restorer fed channels-last input batches (SliceDenoiser builds contiguous NCHW ones)."""

    def __init__(self, restorer: Restorer) -> None:
        super().__init__()
        self.restorer = restorer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.restorer(x.contiguous(memory_format=torch.channels_last))


def time_config(
    restorer: Restorer, hu: np.ndarray, batch: int, bf16: bool, channels_last: bool, repeats: int, ensemble: int = 1
) -> tuple[float, float, float]:
    """(median seconds per slice, peak RSS MiB, peak - before MiB) of ``repeats`` batches, after one warm-up."""
    restorer = restorer.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    network = _ChannelsLastInput(restorer) if channels_last else restorer
    denoiser = SliceDenoiser(network, batch_size=batch, bf16=bf16, self_ensemble=ensemble)  # type: ignore[arg-type]
    stack = np.repeat(hu[None], batch, axis=0)
    denoiser.denoise_batch(stack[:1])  # warm-up (allocator, oneDNN primitive cache)
    times = []
    with PeakRSS() as rss:
        for _ in range(repeats):
            t0 = time.perf_counter()
            denoiser.denoise_batch(stack)
            times.append((time.perf_counter() - t0) / batch)
    return statistics.median(times), mib(rss.peak), mib(rss.peak - rss.before)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--presets", nargs="*", default=["paper"], help="random-weight presets to time as well")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    p.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--channels-last", nargs="+", default=["off", "on"], choices=["off", "on"])
    p.add_argument("--self-ensemble", type=int, nargs="+", default=[1], choices=SELF_ENSEMBLE_SIZES,
                   help="self-ensemble sizes to time the checkpoint with (presets: 1 only)")
    p.add_argument("--max-seconds", type=float, default=90.0,
                   help="skip a configuration whose estimated time (from FLOPs and the speed seen so far) exceeds this")
    p.add_argument("--no-bm3d", action="store_true")
    p.add_argument("--bm3d-sigma-hu", type=float, default=100.0)
    p.add_argument("--slice", type=Path, default=None, help="a DICOM file (default: the sample series' first)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    label, hu = load_slice(args.slice)
    size = hu.shape[0]
    ceiling32, n32 = matmul_gflops()
    ceiling16, n16 = matmul_gflops(dtype=torch.bfloat16)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), torch {torch.__version__}, "
          f"{args.threads} thread(s); slice {label}", flush=True)
    print(f"matmul ceiling: fp32 {ceiling32:.1f} GFLOP/s (n={n32}), bf16 {ceiling16:.1f} GFLOP/s (n={n16}); "
          f"process RSS at start {mib(psutil.Process().memory_info().rss):.0f} MiB", flush=True)
    achieved: dict[tuple[str, str], float] = {}  # (dtype, channels-last) -> GFLOP/s last seen (any model)
    header = f"{'model':<34} {'ens':>3} {'dtype':<5} {'batch':>5} {'ch-last':>7} {'s/slice':>8} {'slices/s':>8} {'GFLOP/s':>8} {'% ceil':>6} {'peak RSS':>9} {'+RSS':>7}"
    for name in ["checkpoint", *args.presets]:
        model_label, restorer = build(name, args.weights)
        flops = count_flops(restorer, size)
        print(f"\n{model_label}: {count_parameters(restorer) / 1e6:.2f} M parameters, {flops / 1e9:.1f} GFLOP per {size}x{size} slice", flush=True)
        print(header)
        print("-" * len(header))
        for ens in args.self_ensemble if name == "checkpoint" else [1]:
            for dtype in args.dtypes:
                ceiling = ceiling16 if dtype == "bf16" else ceiling32
                for cl in args.channels_last:
                    for batch in args.batches:
                        speed = achieved.get((dtype, cl), max([v for (d, _), v in achieved.items() if d == dtype], default=ceiling))
                        estimate = ens * (1 + batch * args.repeats) * flops / 1e9 / speed
                        if estimate > args.max_seconds:
                            print(f"{model_label[:34]:<34} {ens:>3} {dtype:<5} {batch:>5} {cl:>7}   skipped: about {estimate:.0f} s "
                                  f"at {speed:.1f} GFLOP/s (> --max-seconds {args.max_seconds:g})", flush=True)
                            continue
                        sec, peak, delta = time_config(restorer, hu, batch, dtype == "bf16", cl == "on", args.repeats, ens)
                        gflops = ens * flops / sec / 1e9
                        achieved[(dtype, cl)] = gflops
                        print(f"{model_label[:34]:<34} {ens:>3} {dtype:<5} {batch:>5} {cl:>7} {sec:>8.3f} {1 / sec:>8.2f} "
                              f"{gflops:>8.1f} {100 * gflops / ceiling:>5.0f}% {peak:>7.0f} M {delta:>5.0f} M", flush=True)
        del restorer
    if not args.no_bm3d:
        from ldct_invrep.baselines import bm3d_denoise

        with PeakRSS() as rss:
            t0 = time.perf_counter()
            bm3d_denoise(hu, args.bm3d_sigma_hu)
            sec = time.perf_counter() - t0
        print(f"\nBM3D (bm3d package, profile np, sigma {args.bm3d_sigma_hu:g} HU): {sec:.2f} s/slice, "
              f"{1 / sec:.3f} slices/s, peak RSS {mib(rss.peak):.0f} MiB (+{mib(rss.peak - rss.before):.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
