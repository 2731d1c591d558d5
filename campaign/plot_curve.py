"""Validation curve of a CT campaign (campaign/ct_default_model.py): abdomen-window PSNR against training iterations.

    python campaign/plot_curve.py [--curve campaign/ct_default_model/curve.csv] [--out docs/images/campaign_curve.png]
    python campaign/plot_curve.py --curve campaign/ct_default_model/curve.csv --label "16 channels (shipped)" \\
        --curve campaign/ct_wide24/curve.csv --label "24 channels" --out docs/images/ct_wide24_curve.png

One curve: left, the simulated held-out patients (mean over their slices) at dose fractions 0.1, 0.25 and 0.5;
right, each real quarter/full-dose development pair and their mean. Several curves (``--curve`` and ``--label``
repeated): one colour a run, its mean over the simulated held-out slices (left) and over the real pairs (right),
up to the shortest run's last iteration. Dashed lines: the inputs. Single pass, no self-ensemble.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from figures import finish_and_save  # noqa: E402 (selects the Agg backend before pyplot)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

Curves = dict[str, dict[int, tuple[float, float]]]
TITLES = ["simulated held-out patients", "real quarter/full-dose pairs"]
YLABEL = "PSNR, abdomen window (dB)"


def read_curve(path: Path) -> Curves:
    """``{series name: {iteration: (mean input PSNR, mean output PSNR)}}``; "sim mean" and "real mean" are added
    (the means over every simulated slice and over the real pairs)."""
    acc: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            it, pair = int(row["iteration"]), (float(row["input_psnr"]), float(row["psnr"]))
            acc[row["name"]][it].append(pair)
            acc[f"{row['split']} mean"][it].append(pair)
    return {
        name: {it: tuple(np.mean(v, axis=0)) for it, v in sorted(by_it.items())}  # type: ignore[misc]
        for name, by_it in acc.items()
    }


def _line(ax, points: dict[int, tuple[float, float]], **kwargs) -> None:
    its = list(points)
    vals = np.array([points[i] for i in its])
    line = ax.plot(its, vals[:, 1], **kwargs)[0]
    ax.axhline(vals[0, 0], color=line.get_color(), ls="--", lw=0.8)


def plot(curves: Curves, out: Path) -> None:
    """One run: every simulated dose fraction and every real pair."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    panels = [
        sorted(n for n in curves if n.startswith("sim_")),
        sorted(n for n in curves if not n.startswith("sim") and n != "real mean") + ["real mean"] * ("real mean" in curves),
    ]
    for ax, names in zip(axes, panels, strict=True):
        for name in names:
            _line(ax, curves[name], lw=2.5 if name == "real mean" else 1.2, label=name.replace("sim_f", "dose "))
    finish_and_save(fig, axes, TITLES, YLABEL, "Default model campaign: validation (single pass; dashed = input)", out)


def plot_runs(runs: dict[str, Curves], out: Path) -> None:
    """Several runs side by side: each run's mean over the simulated slices and over the real pairs."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    last = min(max(c["sim mean"]) for c in runs.values())
    for colour, (label, curves) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], runs.items()):
        for ax, series in zip(axes, ("sim mean", "real mean"), strict=True):
            if series in curves:
                points = {i: v for i, v in curves[series].items() if i <= last}
                _line(ax, points, lw=1.8, color=colour, marker="o", ms=3, label=label)
    finish_and_save(fig, axes, [f"{t} (mean)" for t in TITLES], YLABEL,
                    "CT campaigns compared: validation (single pass; dashed = input)", out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--curve", type=Path, action="append", help="a campaign's curve.csv; repeat to compare runs "
                   "[default: campaign/ct_default_model/curve.csv]")
    p.add_argument("--label", action="append", default=[], help="a name for each --curve, in order")
    p.add_argument("--out", type=Path, default=HERE.parent / "docs" / "images" / "campaign_curve.png")
    args = p.parse_args(argv)
    paths = args.curve or [HERE / "ct_default_model" / "curve.csv"]
    if len(paths) == 1:
        plot(read_curve(paths[0]), args.out)
    else:
        if len(args.label) != len(paths):
            p.error(f"give one --label for each of the {len(paths)} --curve")
        plot_runs({label: read_curve(path) for label, path in zip(args.label, paths, strict=True)}, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
