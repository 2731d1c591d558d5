"""Seconds per full LIR training iteration (discriminator step + encoder/generator step) on this machine.

One iteration = ``ldct_invrep.engine.lir_training_step``, as LIRTrainer runs it: one LIRNet forward (6
generator and 6 encoder passes on an unpaired batch), the discriminator step (D_X, D_Y, D_R) on the detached
outputs, then the encoder/generator step with every term of ``LIRObjective`` (eq. 14) except the VGG
semantic term (weight 0 here: it needs ImageNet weights, and its cost does not depend on the preset).

    python benchmarks/train_speed.py --presets paper lite --batch 16 --size 64 --iters 5 --threads 2 [--bf16]

Wall time is what counts, but on a shared machine it is inflated by other processes (with 2 threads,
OpenMP waits for the slower core). The process CPU time per iteration is printed too: with ``--threads 1``
it is close to the wall time of an idle machine, a contention-robust figure to compare presets with.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import sys
import time

import torch

from ldct_invrep.engine import lir_training_step, make_optimizers
from ldct_invrep.losses.objective import LIRLossWeights, LIRObjective
from ldct_invrep.networks import LIRDiscriminators, LIRNet, count_parameters, get_config


def make_step(config, bf16: bool):
    """(network, discriminators, step(x, y)): a full training iteration with the engine's step function,
    ``LIRObjective`` without the semantic term, Adam for both players."""
    net, disc = LIRNet(config).train(), LIRDiscriminators(config).train()
    objective = LIRObjective(LIRLossWeights(semantic=0.0))
    g_opt, d_opt = make_optimizers(net, disc)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def step(x, y):
        return lir_training_step(net, disc, objective, g_opt, d_opt, x, y, autocast=autocast)

    return net, disc, step


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def parse_overrides(items: list[str]) -> dict:
    """``["base_channels=8", "use_noise_encoder=false"]`` -> LIRConfig overrides."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        low = value.lower()
        out[key] = True if low == "true" else False if low == "false" else None if low == "none" else int(value)
    return out


def bench(
    preset: str, batch: int, size: int, iters: int, bf16: bool, warmup: int, overrides: dict | None = None
) -> dict:
    torch.manual_seed(0)
    config = get_config(preset, **(overrides or {}))
    net, disc, step = make_step(config, bf16)
    x = torch.rand(batch, config.in_channels, size, size) * 2 - 1
    y = torch.rand(batch, config.in_channels, size, size) * 2 - 1
    times, cpu_times = [], []
    for i in range(warmup + iters):
        t0, c0 = time.perf_counter(), time.process_time()
        step(x, y)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    return {
        "preset": preset,
        "s_per_iter": statistics.median(times),
        "min": min(times),
        "cpu_s_per_iter": statistics.median(cpu_times),
        "max": max(times),
        "gen_params": count_parameters(net),
        "dis_params": count_parameters(disc),
        "peak_rss_mib": peak_rss_mib(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["lite", "paper"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--iters", type=int, default=5, help="timed iterations (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="CPU bf16 autocast")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="LIRConfig overrides, e.g. n_res=1")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"batch {args.batch} x 1 x {args.size} x {args.size}, {'bf16 autocast' if args.bf16 else 'fp32'}, "
        f"{args.threads} threads, torch {torch.__version__}, median of {args.iters} after {args.warmup} warm-up"
    )
    for preset in args.presets:
        r = bench(preset, args.batch, args.size, args.iters, args.bf16, args.warmup, parse_overrides(args.set))
        print(
            f"{preset:6s} {r['s_per_iter']:7.2f} s/iter (min {r['min']:.2f}, max {r['max']:.2f}; "
            f"CPU time {r['cpu_s_per_iter']:.2f} s/iter)  "
            f"generator side {r['gen_params'] / 1e6:6.2f} M params, discriminators {r['dis_params'] / 1e6:6.2f} M  "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB (process so far)",
            flush=True,
        )


if __name__ == "__main__":
    main()
