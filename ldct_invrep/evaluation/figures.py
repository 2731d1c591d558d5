"""The figures of a comparison report, built without pyplot: for CT the ``viz.compare_grid`` of input,
methods and reference in two HU windows with an ROI, and its ``viz.zoom_roi``; for natural images each
image with a centred zoom. :func:`auto_roi` picks the region where noise is judged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ldct_invrep.metrics import WindowSpec, resolve_window

__all__ = ["DEFAULT_FIGURE_WINDOWS", "auto_roi", "ct_figures", "natural_figure"]

#: Display windows of the CT figure: soft tissue (what the abdomen metrics see) and lung (noise in air/lung).
DEFAULT_FIGURE_WINDOWS = ("abdomen", "lung")


def auto_roi(reference: np.ndarray, body_threshold: float | None) -> tuple[int, int, int, int]:
    """A square ROI (row, col, h, w) of side min(H, W) // 8 (at least 16 px) where the noise std means something.

    CT (``body_threshold`` given): among squares on a half-side grid whose reference pixels are all soft
    tissue (2nd-98th percentile within [-100, 200] HU), the one with the smallest reference std (e.g. inside the liver); if none, a square
    on the body's centroid (pixels above ``body_threshold``). Natural images: the image centre.
    """
    h, w = reference.shape
    side = min(max(16, min(h, w) // 8), h, w)
    if body_threshold is not None:
        best, best_std = None, np.inf
        step = max(1, side // 2)
        for r in range(0, h - side + 1, step):
            for c in range(0, w - side + 1, step):
                patch = reference[r : r + side, c : c + side]
                lo, hi = np.percentile(patch, (2, 98))
                if lo >= -100.0 and hi <= 200.0:
                    std = float(patch.std())
                    if std < best_std:
                        best, best_std = (r, c, side, side), std
        if best is not None:
            return best
    if body_threshold is not None and (reference > body_threshold).any():
        rr, cc = np.nonzero(reference > body_threshold)
        r0, c0 = int(rr.mean()), int(cc.mean())
    else:
        r0, c0 = h // 2, w // 2
    r = int(np.clip(r0 - side // 2, 0, h - side))
    c = int(np.clip(c0 - side // 2, 0, w - side))
    return r, c, side, side


def ct_figures(
    images: Mapping[str, np.ndarray],
    name: str,
    windows: Sequence[WindowSpec] | None = None,
    roi: Sequence[int] | None = None,
) -> tuple[Any, Any]:
    """``(grid, zoom)`` of HU ``images`` (input, methods, ``"reference"``) of the image ``name``: the
    ``viz.compare_grid`` in ``windows`` (default :data:`DEFAULT_FIGURE_WINDOWS`) with difference maps and the
    ROI ``roi`` (row, col, h, w; default :func:`auto_roi` of the reference), and ``viz.zoom_roi`` of that ROI
    in the first window."""
    from ldct_invrep.viz import compare_grid, zoom_roi

    fig_wins = list(windows or DEFAULT_FIGURE_WINDOWS)
    region = tuple(roi) if roi is not None else auto_roi(images["reference"], -300.0)
    grid = compare_grid(images, windows=fig_wins, reference="reference", roi=region)
    grid.suptitle(f"{name}, windows: " + "; ".join(resolve_window(w).label() for w in fig_wins), fontsize=9)
    return grid, zoom_roi(images, region, window=fig_wins[0])


def natural_figure(images: Mapping[str, np.ndarray], name: str) -> Any:
    """Top row: each image ([0, 1], grey or RGB); bottom row: a centred zoom (one fifth of the size)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    images = {k: (np.moveaxis(v, 0, -1) if v.ndim == 3 and v.shape[0] == 3 else v.reshape(v.shape[-2:])) for k, v in images.items()}
    first = next(iter(images.values()))
    r, c, h, w = auto_roi(first[..., 0] if first.ndim == 3 else first, None)
    fig = Figure(figsize=(2.6 * len(images), 5.6), layout="constrained")
    axes = fig.subplots(2, len(images), squeeze=False)
    for j, (label, img) in enumerate(images.items()):
        axes[0, j].imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0, j].add_patch(Rectangle((c - 0.5, r - 0.5), w, h, fill=False, edgecolor="#ffd400", linewidth=1.2))
        axes[1, j].imshow(img[r : r + h, c : c + w], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0, j].set_title(f"{label}\n[0, 1]", fontsize=8)
        axes[1, j].set_title(f"{label}, zoom", fontsize=8)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{name}: [0, 1] (0 black, 1 white)", fontsize=9)
    return fig
