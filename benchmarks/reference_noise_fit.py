"""Fit the reference noise (``transforms.reference_noise``) of a CT model on simulated pairs of its *training*
patients, and show what it does on the held-out patients.

For every training source of ``recipes.open_ct_sources`` (up to ``--slices`` slices per volume, those with
body) and every dose fraction, the normal-dose slice gets a simulated low dose (``simulate_low_dose``,
dose-relative, the series median noise where a slice has too little flat soft tissue), the network restores
it once (``reference_noise_hu=0``), and the blend ``c + a (x - c)``, ``a = min(1, (S / sigma_x)^2)``, is
scored for each ``S`` of ``--grid`` (abdomen-window PSNR against the normal-dose slice). The table gives, per
``S`` and dose fraction, the mean gain over the network alone and the worst gain over the input; the ``S``
with the best mean over all pairs is printed last. ``--held-out`` scores the chosen ``--report`` value on the
held-out patients (never used for the fit).

``--oracle`` also gives the ceiling of any blend rule: for each pair the best weight ``w`` of
``c + w (x - c)`` on a grid over [-0.6, 1] (negative: away from the input), chosen on that pair's own
reference, and its gain over the network alone, per dose fraction; with ``--held-out`` for those patients
too, and for the real quarter/full-dose pairs under ``--dataset-dir`` when present (scored only).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reference_noise_fit.py --dataset-dir ../shared/data [--held-out] [--oracle]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from ldct_invrep.data.ct_cache import HU_RANGE
from ldct_invrep.data.ct_volumes import PADDING_BELOW_HU, read_ct_volumes
from ldct_invrep.data.dev_pairs import read_dev_pairs
from ldct_invrep.inference import SliceDenoiser
from ldct_invrep.metrics import compute_metrics
from ldct_invrep.recipes import open_ct_sources
from ldct_invrep.transforms.lowdose import scan_noise_level, series_noise_fallbacks, simulate_low_dose
from ldct_invrep.transforms.reference_noise import reference_noise_weight


def pairs(sources: list[str], fractions: list[float], per_volume: int, seed: int):
    """Yield ``(fraction, normal dose, low dose)`` HU slices (clipped to the network's range) of ``sources``."""
    rng = np.random.default_rng(seed)
    for source in sources:
        for vol in read_ct_volumes(source):
            n = vol.hu.shape[0]
            picks = sorted({int(k) for k in np.linspace(0, n - 1, min(n, per_volume)).round()})
            picks = [k for k in picks if (vol.hu[k] > -500).mean() >= 0.15]
            levels = series_noise_fallbacks([scan_noise_level(vol.hu[k], vol.hu[k] < PADDING_BELOW_HU) for k in picks])
            if levels is None:
                continue
            for k, own in zip(picks, levels, strict=True):
                raw = vol.hu[k].astype(np.float32)
                padding = raw < PADDING_BELOW_HU
                for f in fractions:
                    low = simulate_low_dose(
                        raw, f, vol.pixel_spacing[0], int(rng.integers(1 << 31)), padding=padding,
                        own_noise_level=own, slice_thickness_mm=vol.slice_thickness_mm,
                    )  # fmt: skip
                    yield f, np.clip(raw, *HU_RANGE), np.clip(low, *HU_RANGE).astype(np.float32)


ORACLE_WEIGHTS = np.round(np.linspace(-0.6, 1.0, 33), 2)


def score(denoiser: SliceDenoiser, items, grid: list[float], oracle: bool = False) -> list[dict]:
    """Per pair of ``items`` ``(group, normal dose, low dose)``: its group (a simulated pair's dose fraction, a real
    pair's name), the input's PSNR and the PSNR of the blend for each ``S`` of ``grid``; with ``oracle`` also the
    pair's best weight of ``ORACLE_WEIGHTS`` and its PSNR."""
    rows = []
    for group, normal, low in items:
        restored = denoiser.denoise(low)
        sigma = scan_noise_level(low, low < HU_RANGE[0])
        psnr = lambda im: compute_metrics(im, normal, "abdomen")[0].psnr  # noqa: E731
        blends = [psnr(restored + np.float32(reference_noise_weight(sigma, s)) * (low - restored)) for s in grid]
        rows.append({"group": group, "input": psnr(low), "psnr": blends})
        if oracle:
            by_weight = [psnr(restored + np.float32(w) * (low - restored)) for w in ORACLE_WEIGHTS]
            best = int(np.argmax(by_weight))
            rows[-1].update(oracle_w=float(ORACLE_WEIGHTS[best]), oracle=by_weight[best])
        print(f"  {group if isinstance(group, str) else f'f={group}'} sigma_x={sigma if sigma is None else round(sigma, 1)} input {rows[-1]['input']:.2f} "
              f"network {blends[grid.index(0.0)] if 0.0 in grid else float('nan'):.2f}", flush=True)  # fmt: skip
    return rows


def table(rows: list[dict], grid: list[float], fractions: list[float]) -> str:
    head = "| S [HU] | " + " | ".join(f"f={f:g}: gain over network / worst over input" for f in fractions) + " | mean gain |"
    lines = [head, "|" + "---:|" * (len(fractions) + 2)]
    base = np.array([r["psnr"][0] for r in rows])
    for j, s in enumerate(grid):
        cells = []
        for f in fractions:
            sel = [r for r in rows if r["group"] == f]
            gain = np.mean([r["psnr"][j] - r["psnr"][0] for r in sel])
            worst = min(r["psnr"][j] - r["input"] for r in sel)
            cells.append(f"{gain:+.2f} / {worst:+.2f}")
        mean = np.mean([r["psnr"][j] for r in rows]) - base.mean()
        lines.append(f"| {s:g} | " + " | ".join(cells) + f" | {mean:+.2f} |")
    return "\n".join(lines)


def oracle_table(rows: list[dict], fractions: list, zero: int, rule: int) -> str:
    """Per fraction: the mean and range of the best weights and the oracle's mean gain over the network alone
    (column ``zero`` of each row's ``psnr``) and over the rule (column ``rule``)."""
    lines = ["| dose | pairs | best weight: mean (range) | oracle gain over network | oracle gain over the rule |",
             "|---|---:|---|---:|---:|"]  # fmt: skip
    for f in fractions:
        sel = [r for r in rows if r["group"] == f]
        w = [r["oracle_w"] for r in sel]
        net = np.mean([r["oracle"] - r["psnr"][zero] for r in sel])
        over_rule = np.mean([r["oracle"] - r["psnr"][rule] for r in sel])
        lines.append(f"| {f} | {len(sel)} | {np.mean(w):+.2f} ({min(w):+.2f} to {max(w):+.2f}) | {net:+.2f} | {over_rule:+.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset-dir", type=Path, default=Path(os.environ.get("LDCT_INVREP_SHARED_DATA", "../shared/data")))
    p.add_argument("--weights", type=Path, default=None, help="default: the shipped weights")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 0.5])
    p.add_argument("--grid", type=float, nargs="+", default=[0, 4, 6, 8, 10, 12, 14, 16])
    p.add_argument("--slices", type=int, default=3, help="slices per training volume")
    p.add_argument("--held-out", action="store_true", help="also score --report on the held-out patients")
    p.add_argument("--report", default="10", help="the S shown on the held-out patients (HU), or 'best': the fit's")
    p.add_argument("--oracle", action="store_true", help="also the best weight of each pair, chosen on its reference")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    grid = sorted(set([0.0] + [float(s) for s in args.grid]))
    denoiser, header = SliceDenoiser.from_checkpoint(args.weights, reference_noise_hu=0.0)
    sources = open_ct_sources(args.dataset_dir)
    print(f"weights: {args.weights or 'shipped'} (header reference_noise_hu {header.get('reference_noise_hu')}), "
          f"self-ensemble {denoiser.self_ensemble}; training patients:")  # fmt: skip
    rows = score(denoiser, pairs(sources["train"], args.fractions, args.slices, seed=0), grid, args.oracle)
    print(f"\n{len(rows)} simulated pairs of the training patients (abdomen-window PSNR, dB)\n")
    print(table(rows, grid, args.fractions))
    means = [np.mean([r["psnr"][j] for r in rows]) for j in range(len(grid))]
    print(f"\nbest mean: S = {grid[int(np.argmax(means))]:g} HU")
    args.report = grid[int(np.argmax(means))] if args.report == "best" else float(args.report)
    if args.oracle and args.report in grid:
        print(f"\noracle on the training pairs (rule: S = {args.report:g} HU)\n")
        print(oracle_table(rows, args.fractions, grid.index(0.0), grid.index(args.report)))
    if args.held_out:
        print("\nheld-out patients:")
        held = score(denoiser, pairs(sources["test"], args.fractions, 1, seed=1), [0.0, args.report], args.oracle)
        print(f"\n{len(held)} simulated pairs of the held-out patients, S = {args.report:g} HU\n")
        print(table(held, [0.0, args.report], args.fractions))
        if args.oracle:
            print(f"\noracle on the held-out pairs (rule: S = {args.report:g} HU)\n")
            print(oracle_table(held, args.fractions, 0, 1))
    real = read_dev_pairs(args.dataset_dir) if args.oracle else []
    if real:
        print(f"\nreal pairs (scored only; rule: S = {args.report:g} HU)\n")
        items = [(p.name, np.clip(p.full, *HU_RANGE), np.clip(p.quarter, *HU_RANGE).astype(np.float32)) for p in real]
        real_rows = score(denoiser, items, [0.0, args.report], oracle=True)
        print("| pair | network | rule | best weight | oracle |\n|---|---:|---:|---:|---:|")
        for r in real_rows:
            print(f"| {r['group']} | {r['psnr'][0]:.2f} | {r['psnr'][1]:.2f} | {r['oracle_w']:+.2f} | {r['oracle']:.2f} |")


if __name__ == "__main__":
    main()
