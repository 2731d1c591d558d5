"""Validation curve of the natural-image campaign (campaign/natural_colour.py): PSNR against training iterations.

    python campaign/plot_natural_curve.py [--curve campaign/natural_colour/curve.csv] [--out docs/images/natural_campaign_curve.png]

Left: the AWGN models at sigma 25 (full model and the Table 4 ablations); right: the Poisson model. Solid lines:
the test images (CBSD68 / Kodak24 subsets), thin lines: the validation images (Kodak24 / CBSD68 subsets), dashed:
their inputs. Single pass; every table uses the last iteration of a variant's budget, none is picked by this curve.
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

PANELS = (("AWGN, sigma 25", ("full", "a", "b", "c")), ("Poisson", ("poisson",)))
LABELS = {"full": "full model", "a": "(a) no E_X^N", "b": "(b) no D_R", "c": "(c) no BCM", "poisson": "full model, Poisson"}


def read_curve(path: Path) -> dict[tuple[str, str], dict[int, tuple[float, float]]]:
    """``{(variant, split): {iteration: (input PSNR, PSNR)}}`` (the last row wins for a repeated iteration)."""
    out: dict[tuple[str, str], dict[int, tuple[float, float]]] = defaultdict(dict)
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out[(row["variant"], row["split"])][int(row["iteration"])] = (float(row["input_psnr"]), float(row["psnr"]))
    return {k: dict(sorted(v.items())) for k, v in out.items()}


def plot(curves: dict[tuple[str, str], dict[int, tuple[float, float]]], out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (_, variants) in zip(axes, PANELS):
        for variant in variants:
            colour = None
            for split, width in (("test", 2.0), ("val", 0.8)):
                points = curves.get((variant, split))
                if not points:
                    continue
                its = list(points)
                line = ax.plot(its, [points[i][1] for i in its], lw=width, color=colour, marker="o", ms=3,
                               label=f"{LABELS[variant]}, {split}")[0]
                colour = line.get_color()
                ax.axhline(points[its[0]][0], color=colour, ls="--", lw=0.7)
    finish_and_save(fig, axes, [t for t, _ in PANELS], "PSNR [dB] (dashed: input)",
                    "Natural-image campaign (colour): single pass after each chunk", out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--curve", type=Path, default=HERE / "natural_colour" / "curve.csv")
    p.add_argument("--out", type=Path, default=HERE.parent / "docs" / "images" / "natural_campaign_curve.png")
    args = p.parse_args()
    plot(read_curve(args.curve), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
