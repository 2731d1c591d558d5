"""Figures of HU images for notebooks and reports: window grids, difference maps, ROI zooms, line profiles.

Every function takes HU arrays (numpy or torch) and returns a ``matplotlib.figure.Figure`` built without
pyplot (no global state, nothing to close; Jupyter shows it as the cell's value, ``fig.savefig`` writes
it). Every figure names its window as ``name W<width>/L<level> [lo, hi] HU`` in its titles.

A region of interest (ROI) is ``(row, col, height, width)`` in pixels, rows from the top.
Only matplotlib is required; :func:`slice_scroller` uses ipywidgets where installed (the ``notebook`` extra)
and otherwise returns a static montage.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ldct_invrep.errors import InputError
from ldct_invrep.metrics import Window, WindowSpec, resolve_window

__all__ = [
    "compare_grid",
    "draw_roi",
    "edge_profiles",
    "line_profile",
    "montage",
    "noise_power_spectra",
    "roi_noise_std",
    "slice_scroller",
    "window_title",
    "zoom_roi",
]

ROI = tuple[int, int, int, int]
DIFF_CMAP = "RdBu_r"
ROI_COLOR = "#ffd400"


def window_title(window: WindowSpec) -> str:
    """``"abdomen W400/L40 [-160, 240] HU"``."""
    return resolve_window(window).label()


def _as_image(arr: Any, name: str, ndim: int = 2) -> np.ndarray:
    if hasattr(arr, "detach"):
        arr = arr.detach().cpu().numpy()
    a = np.asarray(arr, dtype=np.float64)
    a = np.squeeze(a) if a.ndim > ndim else a
    if a.ndim != ndim:
        raise InputError(f"{name}: expected a {ndim}D HU array, got shape {np.shape(arr)}")
    return a


def _as_images(images: Mapping[str, Any] | Any, ndim: int = 2) -> dict[str, np.ndarray]:
    if not isinstance(images, Mapping):
        images = {"image": images}
    if not images:
        raise InputError("images: nothing to show")
    out = {str(k): _as_image(v, str(k), ndim) for k, v in images.items()}
    shapes = {v.shape for v in out.values()}
    if len(shapes) > 1:
        raise InputError(f"images: different shapes {sorted(shapes)}")
    return out


def _roi_slices(roi: Sequence[int], shape: tuple[int, ...]) -> tuple[slice, slice]:
    try:
        r, c, h, w = (int(v) for v in roi)
    except (TypeError, ValueError):
        raise InputError(f"roi {roi!r}: expected (row, col, height, width)") from None
    if h < 1 or w < 1 or r < 0 or c < 0 or r + h > shape[-2] or c + w > shape[-1]:
        raise InputError(f"roi {roi!r}: outside the {shape[-2]}x{shape[-1]} image or empty")
    return slice(r, r + h), slice(c, c + w)


def roi_noise_std(image: Any, roi: Sequence[int]) -> float:
    """Standard deviation (HU, population, ddof 0) of the unclipped image inside ``roi = (row, col, h, w)``."""
    img = _as_image(image, "image")
    return float(np.std(img[_roi_slices(roi, img.shape)]))


def draw_roi(ax: Any, roi: Sequence[int], image: Any | None = None, *, color: str = ROI_COLOR) -> float | None:
    """Outline ``roi`` on ``ax``; with ``image``, also write its noise std (HU) there and return it."""
    r, c, h, w = (int(v) for v in roi)
    ax.add_patch(Rectangle((c - 0.5, r - 0.5), w, h, fill=False, edgecolor=color, linewidth=1.2))
    if image is None:
        return None
    std = roi_noise_std(image, roi)
    ax.text(
        0.02, 0.98, f"σ = {std:.1f} HU", transform=ax.transAxes, va="top", ha="left", fontsize=8,
        color="black", bbox={"facecolor": color, "alpha": 0.8, "edgecolor": "none", "pad": 1.5},
    )
    return std


def _show(ax: Any, img: np.ndarray, win: Window, title: str) -> Any:
    im = ax.imshow(img, cmap="gray", vmin=win.lo, vmax=win.hi, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def _reference(images: dict[str, np.ndarray], reference: Any) -> tuple[str | None, np.ndarray | None]:
    if reference is None:
        return None, None
    if isinstance(reference, str):
        if reference not in images:
            raise InputError(f"reference {reference!r}: not one of the images {list(images)}")
        return reference, images[reference]
    ref = _as_image(reference, "reference")
    if ref.shape != next(iter(images.values())).shape:
        raise InputError(f"reference: shape {ref.shape} differs from the images'")
    images["reference"] = ref
    return "reference", ref


def _diff_limit(diffs: Iterable[np.ndarray]) -> float:
    """Symmetric colour limit: 99.5th percentile of |difference|, rounded up to 1, 2 or 5 x 10^k HU."""
    diffs = list(diffs)
    if not diffs:
        return 1.0
    q = max(float(np.percentile(np.abs(d), 99.5)) for d in diffs)
    if q <= 0:
        return 1.0
    base = 10.0 ** np.floor(np.log10(q))
    return float(next(m * base for m in (1, 2, 5, 10) if m * base >= q))


def compare_grid(
    images: Mapping[str, Any],
    windows: Iterable[WindowSpec] = ("abdomen", "lung", "bone"),
    reference: str | Any | None = None,
    roi: Sequence[int] | None = None,
    show_difference: bool = True,
    *,
    diff_limit: float | None = None,
    panel_size: float = 2.6,
) -> Figure:
    """Rows = windows, columns = methods, then (with a reference) one difference column per method.

    ``reference``: a key of ``images`` or an HU array (shown as a column "reference").
    Differences are ``method - reference`` of the window-clipped images (what the metrics of that window see),
    in a diverging colormap limited to ``±diff_limit`` HU (default: the 99.5th percentile of ``|difference|``
    in that row, rounded up to 1-2-5 steps), with an HU colorbar. ``roi``: outlined on every panel, its noise std (unclipped HU) written on each image.
    """
    imgs = _as_images(images)
    ref_name, ref = _reference(imgs, reference)
    wins = [resolve_window(w) for w in windows]
    if not wins:
        raise InputError("windows: at least one window needed")
    names = list(imgs)
    diffs = [n for n in names if n != ref_name] if (show_difference and ref is not None) else []
    ncols = len(names) + len(diffs)
    fig = Figure(figsize=(panel_size * ncols + 1.2 * (1 + bool(diffs)), panel_size * len(wins) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(wins), ncols, squeeze=False))
    for i, win in enumerate(wins):
        label = win.label()
        im = None
        for j, name in enumerate(names):
            im = _show(axes[i, j], imgs[name], win, f"{name}\n{label}")
            if roi is not None:
                draw_roi(axes[i, j], roi, imgs[name])
        fig.colorbar(im, ax=list(axes[i, : len(names)]), shrink=0.8, label=f"HU ({win.name})")
        row_diffs = {name: win.clip(imgs[name]) - win.clip(ref) for name in diffs}
        lim = diff_limit if diff_limit is not None else _diff_limit(row_diffs.values())
        dim = None
        for k, (name, d) in enumerate(row_diffs.items()):
            ax = axes[i, len(names) + k]
            dim = ax.imshow(d, cmap=DIFF_CMAP, vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_title(f"{name} − {ref_name}\n{label}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if roi is not None:
                draw_roi(ax, roi)
        if dim is not None:
            fig.colorbar(dim, ax=list(axes[i, len(names) :]), shrink=0.8, label="difference [HU]")
    fig.suptitle("windows: " + "; ".join(w.label() for w in wins), fontsize=9)
    return fig


def zoom_roi(
    images: Mapping[str, Any] | Any,
    roi: Sequence[int],
    window: WindowSpec = "abdomen",
    *,
    panel_size: float = 2.6,
) -> Figure:
    """Top row: each image with ``roi`` outlined; bottom row: the ROI enlarged, with its noise std in HU."""
    imgs = _as_images(images)
    win = resolve_window(window)
    rows, cols = _roi_slices(roi, next(iter(imgs.values())).shape)
    label = win.label()
    fig = Figure(figsize=(panel_size * len(imgs) + 1.2, 2 * panel_size + 0.6), layout="constrained")
    axes = fig.subplots(2, len(imgs), squeeze=False)
    im = None
    for j, (name, img) in enumerate(imgs.items()):
        _show(axes[0, j], img, win, f"{name}\n{label}")
        draw_roi(axes[0, j], roi)
        im = _show(axes[1, j], img[rows, cols], win, f"{name}\nROI rows {rows.start}-{rows.stop - 1}, cols {cols.start}-{cols.stop - 1}")
        draw_roi(axes[1, j], (0, 0, rows.stop - rows.start, cols.stop - cols.start), img[rows, cols])
    fig.colorbar(im, ax=list(axes.ravel()), shrink=0.6, label=f"HU ({win.name})")
    fig.suptitle(f"ROI zoom, window {label}", fontsize=9)
    return fig


def _profile(img: np.ndarray, line: int | Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distance in pixels, values, (rows, cols) of the line ends) for a row index or ((r0, c0), (r1, c1))."""
    if isinstance(line, (int, np.integer)):
        row = int(line)
        if not -img.shape[0] <= row < img.shape[0]:
            raise InputError(f"line {line}: row outside an image of {img.shape[0]} rows")
        row %= img.shape[0]
        return np.arange(img.shape[1], dtype=float), img[row].copy(), np.array([[row, 0], [row, img.shape[1] - 1]])
    try:
        p0, p1 = (np.asarray(p, dtype=float).reshape(2) for p in line)
    except (TypeError, ValueError):
        raise InputError(f"line {line!r}: expected a row index or ((r0, c0), (r1, c1))") from None
    from skimage.measure import profile_line  # noqa: PLC0415

    values = profile_line(img, p0, p1, order=1, mode="reflect", linewidth=1)
    dist = np.linspace(0.0, float(np.hypot(*(p1 - p0))), len(values))
    return dist, values, np.stack([p0, p1])


def line_profile(
    images: Mapping[str, Any] | Any,
    line: int | Sequence[Sequence[float]],
    window: WindowSpec = "abdomen",
    *,
    show_image: bool = True,
    clip_axis: bool = True,
) -> Figure:
    """HU along image row ``line`` (an int) or the segment ``((r0, c0), (r1, c1))`` (bilinear), one curve per image.

    The curves hold the unclipped HU values; ``clip_axis`` limits the y axis to ``window``, which is also the
    window of the thumbnail (first image, with the line drawn) shown when ``show_image``.
    """
    imgs = _as_images(images)
    win = resolve_window(window)
    label = win.label()
    fig = Figure(figsize=(9.5 if show_image else 6.0, 3.6), layout="constrained")
    if show_image:
        ax_img, ax = fig.subplots(1, 2, width_ratios=[1, 1.8])
    else:
        ax, ax_img = fig.subplots(1, 1), None
    ends = None
    for name, img in imgs.items():
        dist, values, ends = _profile(img, line)
        ax.plot(dist, values, label=name, linewidth=1.0)
    what = f"row {int(line)}" if isinstance(line, (int, np.integer)) else f"({ends[0][0]:g}, {ends[0][1]:g}) → ({ends[1][0]:g}, {ends[1][1]:g})"
    ax.set_xlabel("pixels along the line")
    ax.set_ylabel("HU")
    if clip_axis:
        ax.set_ylim(win.lo, win.hi)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"line profile {what}\n{label}", fontsize=9)
    if ax_img is not None:
        name, first = next(iter(imgs.items()))
        _show(ax_img, first, win, f"{name}\n{label}")
        ax_img.plot(ends[:, 1], ends[:, 0], color=ROI_COLOR, linewidth=1.0)
    return fig


def noise_power_spectra(images: Mapping[str, Any] | Any, roi: Sequence[int], pixel_mm: float) -> Figure:
    """Radially averaged noise power spectrum of ``roi`` (a homogeneous region) in each image
    (:func:`ldct_invrep.image_quality.noise_power_spectrum`), log scale; the legend gives the ROI's noise std."""
    from ldct_invrep.image_quality import noise_power_spectrum

    imgs = _as_images(images)
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.subplots(1, 1)
    for name, img in imgs.items():
        freq, nps = noise_power_spectrum(img, roi, pixel_mm)
        ax.semilogy(freq, nps, label=f"{name} (σ {roi_noise_std(img, roi):.1f} HU)", linewidth=1.2)
    r, c, h, w = roi
    ax.set_xlabel("spatial frequency [1/mm]")
    ax.set_ylabel("NPS [HU² mm²]")
    ax.set_title(f"noise power spectrum, ROI rows {r}-{r + h - 1}, cols {c}-{c + w - 1} (plane removed)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


def edge_profiles(
    images: Mapping[str, Any] | Any,
    line: Sequence[Sequence[float]],
    pixel_mm: float,
    window: WindowSpec = "abdomen",
    band: int = 5,
) -> Figure:
    """Profiles across an edge along the segment ``line`` = ``((r0, c0), (r1, c1))``, each the mean of ``band``
    parallel lines one pixel apart (less noise, same edge), with the 10-90 % rise distance in mm
    (:func:`ldct_invrep.image_quality.edge_rise_distance_mm`) in the legend: a blurred edge rises over more mm."""
    from ldct_invrep.image_quality import edge_rise_distance_mm

    imgs = _as_images(images)
    win = resolve_window(window)
    (r0, c0), (r1, c1) = line
    length = float(np.hypot(r1 - r0, c1 - c0)) or 1.0
    normal = np.array([-(c1 - c0), r1 - r0]) / length  # (row, col) perpendicular to the segment
    offsets = np.arange(band) - (band - 1) / 2
    fig = Figure(figsize=(9.5, 3.6), layout="constrained")
    ax_img, ax = fig.subplots(1, 2, width_ratios=[1, 1.8])
    for name, img in imgs.items():
        curves = []
        for o in offsets:
            seg = ((r0 + o * normal[0], c0 + o * normal[1]), (r1 + o * normal[0], c1 + o * normal[1]))
            dist, values, _ = _profile(img, seg)
            curves.append(values)
        mean = np.mean(curves, axis=0)
        rise = edge_rise_distance_mm(mean, pixel_mm)
        ax.plot(dist * pixel_mm, mean, label=f"{name}: 10-90 % rise {rise:.2f} mm", linewidth=1.2)
    ax.set_xlabel("mm along the line")
    ax.set_ylabel(f"HU (mean of {band} parallel lines)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"edge profile ({r0:g}, {c0:g}) → ({r1:g}, {c1:g})", fontsize=9)
    name, first = next(iter(imgs.items()))
    _show(ax_img, first, win, f"{name}\n{win.label()}")
    ax_img.plot([c0, c1], [r0, r1], color=ROI_COLOR, linewidth=1.0)
    return fig


def _as_volumes(volumes: Mapping[str, Any] | Any) -> dict[str, np.ndarray]:
    return _as_images(volumes, ndim=3)


def _slice_figure(vols: dict[str, np.ndarray], z: int, win: Window, panel_size: float = 3.0) -> Figure:
    fig = Figure(figsize=(panel_size * len(vols) + 1.0, panel_size + 0.6), layout="constrained")
    axes = fig.subplots(1, len(vols), squeeze=False)[0]
    im = None
    for ax, (name, vol) in zip(axes, vols.items(), strict=True):
        im = _show(ax, vol[z], win, f"{name}, z = {z}\n{win.label()}")
    fig.colorbar(im, ax=list(axes), shrink=0.8, label=f"HU ({win.name})")
    return fig


def montage(
    volumes: Mapping[str, Any] | Any, window: WindowSpec = "abdomen", n_slices: int = 6, *, panel_size: float = 2.2
) -> Figure:
    """Static montage: rows = volumes, columns = ``n_slices`` evenly spaced slices (z, y, x)."""
    vols = _as_volumes(volumes)
    win = resolve_window(window)
    nz = next(iter(vols.values())).shape[0]
    zs = np.unique(np.linspace(0, nz - 1, min(n_slices, nz)).round().astype(int))
    fig = Figure(figsize=(panel_size * len(zs) + 1.0, panel_size * len(vols) + 0.6), layout="constrained")
    axes = fig.subplots(len(vols), len(zs), squeeze=False)
    im = None
    for i, (name, vol) in enumerate(vols.items()):
        for j, z in enumerate(zs):
            im = _show(axes[i, j], vol[z], win, f"{name}, z = {z}\n{win.label()}")
    fig.colorbar(im, ax=list(axes.ravel()), shrink=0.6, label=f"HU ({win.name})")
    fig.suptitle(f"montage, window {win.label()}", fontsize=9)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def slice_scroller(
    volumes: Mapping[str, Any] | Any, window: WindowSpec = "abdomen", *, n_static: int = 6
) -> Any:
    """Scroll through (z, y, x) HU volumes side by side.

    With ipywidgets: a widget (slider + rendered PNG, independent of the matplotlib backend).
    Without: a static :func:`montage` figure of ``n_static`` slices.
    """
    vols = _as_volumes(volumes)
    win = resolve_window(window)
    try:
        import ipywidgets as widgets  # noqa: PLC0415 (optional: the notebook extra)
    except ImportError:
        return montage(vols, win, n_static)
    nz = next(iter(vols.values())).shape[0]
    slider = widgets.IntSlider(value=nz // 2, min=0, max=nz - 1, step=1, description="z", continuous_update=False)
    image = widgets.Image(format="png", value=_png(_slice_figure(vols, slider.value, win)))

    def _update(change: dict) -> None:
        image.value = _png(_slice_figure(vols, int(change["new"]), win))

    slider.observe(_update, names="value")
    box = widgets.VBox([widgets.HTML(f"<b>window {win.label()}</b>"), slider, image])
    box.slider, box.image = slider, image  # handles for tests and callers
    return box
