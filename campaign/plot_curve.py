"""Validation curve of the default model's campaign: abdomen-window PSNR against training iterations.

    python campaign/plot_curve.py [--curve campaign/ct_default_model/curve.csv] [--out docs/images/campaign_curve.png]

Left: the simulated held-out patients (mean over their slices) at dose fractions 0.1, 0.25 and 0.5; right: each
real quarter/full-dose development pair and their mean. Dashed lines: the inputs. Single pass, no self-ensemble.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent


def read_curve(path: Path) -> dict[str, dict[int, tuple[float, float]]]:
    """``{series name: {iteration: (mean input PSNR, mean output PSNR)}}``; "real mean" is added."""
    acc: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            it, pair = int(row["iteration"]), (float(row["input_psnr"]), float(row["psnr"]))
            acc[row["name"]][it].append(pair)
            if row["split"] == "real":
                acc["real mean"][it].append(pair)
    return {
        name: {it: tuple(np.mean(v, axis=0)) for it, v in sorted(by_it.items())}  # type: ignore[misc]
        for name, by_it in acc.items()
    }


def plot(curves: dict[str, dict[int, tuple[float, float]]], out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    panels = [
        ("simulated held-out patients", sorted(n for n in curves if n.startswith("sim_"))),
        ("real quarter/full-dose pairs", sorted(n for n in curves if not n.startswith("sim_"))),
    ]
    for ax, (title, names) in zip(axes, panels):
        for name in names:
            its = list(curves[name])
            vals = np.array([curves[name][i] for i in its])
            bold = name == "real mean"
            line = ax.plot(its, vals[:, 1], lw=2.5 if bold else 1.2, label=name.replace("sim_f", "dose "))[0]
            ax.axhline(vals[0, 0], color=line.get_color(), ls="--", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("training iteration")
        ax.set_ylabel("PSNR, abdomen window (dB)")
        ax.grid(alpha=0.3)
        if names:
            ax.legend(fontsize=7)
    fig.suptitle("Default model campaign: validation (single pass; dashed = input)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--curve", type=Path, default=HERE / "ct_default_model" / "curve.csv")
    p.add_argument("--out", type=Path, default=HERE.parent / "docs" / "images" / "campaign_curve.png")
    args = p.parse_args()
    plot(read_curve(args.curve), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
