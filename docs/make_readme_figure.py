"""Make the README's before/after picture, docs/images/before_after.png, from the shipped sample series.

One slice of the sample series (TotalSegmentator example CT, shipped in the package), a simulated
quarter-dose version of it (projection-domain noise insertion, seeded as ``ldct-invrep simulate-dose``),
that slice denoised by LIR, and the original as reference; rows: abdomen window, lung window, and an
enlarged region (abdomen window) with the noise standard deviation of a homogeneous liver box.
Panels are drawn with ``ldct_invrep.viz`` (window titles, ROI boxes, noise std).

    .venv/bin/python docs/make_readme_figure.py                      # the shipped weights
    .venv/bin/python docs/make_readme_figure.py --weights FILE.pt    # any other checkpoint

The weights default to the shipped file (``ldct_invrep/weights/lir_ct.pt``); without it the script
stops. A random-weight checkpoint is used only when passed explicitly with ``--weights`` (layout checks);
the figure's title always names the checkpoint and what it was trained on, so such a picture shows it.
About 10 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ldct_invrep import viz
from ldct_invrep.package_files import sample_series_path
from ldct_invrep.inference import SliceDenoiser
from ldct_invrep.io import atomic_output_file, read_series
from ldct_invrep.metrics import compute_metrics, resolve_window
from ldct_invrep.package_files import default_weights_path
from ldct_invrep.transforms.lowdose import simulate_low_dose

DOCS = Path(__file__).resolve().parent
DEFAULT_OUT = DOCS / "images" / "before_after.png"
SLICE = 8
NOISE_ROI = (220, 136, 40, 40)  # homogeneous liver (row, col, height, width)
ZOOM_ROI = (180, 96, 160, 160)  # liver with vessels, around NOISE_ROI


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--weights", type=Path, default=None, help="checkpoint (default: the shipped weights)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write (replaced)")
    p.add_argument("--slice", type=int, default=SLICE, help="slice index in the 20-slice sample series")
    p.add_argument("--dose-fraction", type=float, default=0.25, help="simulated dose fraction")
    p.add_argument("--seed", type=int, default=0, help="noise seed (slice i uses child i, as simulate-dose)")
    p.add_argument("--noise-roi", type=int, nargs=4, default=NOISE_ROI, metavar=("ROW", "COL", "H", "W"))
    p.add_argument("--zoom-roi", type=int, nargs=4, default=ZOOM_ROI, metavar=("ROW", "COL", "H", "W"))
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--dpi", type=int, default=100)
    return p.parse_args(argv)


def make_figure(images: dict[str, np.ndarray], caption: str, noise_roi: tuple, zoom_roi: tuple) -> Figure:
    """3 columns (images) x 3 rows (abdomen, lung, abdomen zoom), no pyplot."""
    abdomen, lung = resolve_window("abdomen"), resolve_window("lung")
    zr, zc, zh, zw = zoom_roi
    nr, nc, nh, nw = noise_roi
    if not (zr <= nr and zc <= nc and nr + nh <= zr + zh and nc + nw <= zc + zw):
        raise SystemExit(f"--noise-roi {noise_roi} must lie inside --zoom-roi {zoom_roi}")
    inner = (nr - zr, nc - zc, nh, nw)
    fig = Figure(figsize=(3.0 * len(images) + 1.0, 3 * 3.0 + 0.9), layout="constrained")
    axes = fig.subplots(3, len(images), squeeze=False)
    for j, (name, img) in enumerate(images.items()):
        crop = img[zr : zr + zh, zc : zc + zw]
        for i, (win, data, what) in enumerate(
            [
                (abdomen, img, ""),
                (lung, img, ""),
                (abdomen, crop, f"zoom rows {zr}-{zr + zh - 1}, cols {zc}-{zc + zw - 1}\n"),
            ]
        ):
            ax = axes[i, j]
            ax.imshow(data, cmap="gray", vmin=win.lo, vmax=win.hi, interpolation="nearest")
            ax.set_title(f"{name}\n{what}{viz.window_title(win)}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        viz.draw_roi(axes[0, j], zoom_roi)
        viz.draw_roi(axes[2, j], inner, crop)  # writes the noise std (HU) of the liver box
    fig.suptitle("\n".join(textwrap.fill(line, 120) for line in caption.split("\n")), fontsize=9)
    return fig


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    weights = args.weights if args.weights is not None else default_weights_path()
    if not weights.is_file():
        hint = ""
        if args.weights is None:
            hint = " (the shipped weights are not in this copy: train them, docs/shipped_weights.md, or pass --weights)"
        print(f"error: {weights}: no such checkpoint{hint}", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    series = read_series(sample_series_path())
    if not 0 <= args.slice < len(series.hu):
        print(f"error: --slice {args.slice}: the sample series has {len(series.hu)} slices", file=sys.stderr)
        return 2
    full = series.hu[args.slice]
    _, row_mm, col_mm = series.spacing
    thickness = float(series.datasets[args.slice].get("SliceThickness") or series.spacing[0])
    rng = np.random.default_rng(np.random.SeedSequence(args.seed, spawn_key=(args.slice,)))
    low = simulate_low_dose(full, args.dose_fraction, 0.5 * (row_mm + col_mm), rng, slice_thickness_mm=thickness)
    denoiser, header = SliceDenoiser.from_checkpoint(weights)
    restored = denoiser.denoise(low)

    dose = f"simulated {args.dose_fraction * 100:g}% dose"
    images = {dose: low, "LIR denoised": restored, "original (full dose)": full}
    trained = header.get("training_data") or header.get("data") or "training data not recorded"
    caption = (
        f"ldct-invrep sample series (TotalSegmentator example CT, {thickness:g} mm), slice {args.slice}: {dose} "
        f"(seed {args.seed}) -> LIR\nweights {weights.name}, preset {header.get('preset', '?')}, "
        f"{header.get('iterations', '?')} iterations; trained on: {trained}\n"
        "bottom row: sigma = noise std (HU) in the small liver box"
    )
    fig = make_figure(images, caption, tuple(args.noise_roi), tuple(args.zoom_roi))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output_file(args.out, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=args.dpi)
    print(f"wrote {args.out}")
    for name in (dose, "LIR denoised"):
        m = {w: compute_metrics(images[name], full, w)[0] for w in ("abdomen", "full")}
        print(
            f"  {name}: noise std in the liver box {viz.roi_noise_std(images[name], args.noise_roi):.1f} HU; "
            "vs original "
            f"abdomen [-160, 240] HU (data range 400) PSNR {m['abdomen'].psnr:.2f} dB SSIM {m['abdomen'].ssim:.4f}; "
            f"full [-1024, 3072] HU (data range 4096) PSNR {m['full'].psnr:.2f} dB SSIM {m['full'].ssim:.4f}"
        )
    print(f"  original: noise std in the liver box {viz.roi_noise_std(full, args.noise_roi):.1f} HU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
