"""Compare denoising methods on paired images, the way the paper's Tables 1-4 do: mean ± std of PSNR and
SSIM over a test set, here with RMSE and the seconds each method took, every figure tied to its window.

* CT (:func:`evaluate_methods`): pairs ``(name, noisy HU, clean HU)``; metrics per named HU window
  (``ldct_invrep.metrics``: both images clipped to the window, data range = its width), default the abdomen
  window [-160, 240] HU (data range 400, the RED-CNN convention of Table 3's neighbours) and the full
  network range [-1024, 3072] HU (data range 4096).
* Natural images (:func:`evaluate_natural`, Tables 1, 2, 4): colour or grey images in [0, 1] with seeded
  AWGN or Poisson noise (``data.noisy_sets``, the bundles' generator), metrics with data range 1
  (``natural_metrics``, the bundles' computation).

Outputs in ``out_dir`` (each file written atomically through ``ldct_invrep.io.atomic``):
``results.csv`` (one row per image x method x window; for CT also the soft-tissue bias,
``ldct_invrep.metrics.soft_tissue_bias``), ``results.md`` (mean ± std per window, what each method is; or,
``to_markdown(per_image=True)``, one table per image and the mean) and, for CT, ``figure.png`` (``viz.compare_grid``: input / methods / reference in two HU windows
with difference maps and an ROI) and ``figure_zoom.png`` (``viz.zoom_roi``).

:func:`build_methods` makes the HU -> HU callables ("input", "bm3d", "bm3d_blind", "lir", "redcnn");
:func:`tune_bm3d_sigma` and :func:`tune_bm3d_blind_factor` fit BM3D's parameters on training pairs;
:func:`load_pairs_from_datalist` and :func:`load_pairs_from_cache` make the pairs.
"""

from __future__ import annotations

import csv
import datetime
import io
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ldct_invrep import __version__
from ldct_invrep.data.noisy_sets import NoisyImage
from ldct_invrep.errors import InputError
from ldct_invrep.metrics import (
    SOFT_TISSUE_HU,
    SSIM_SIGMA,
    SSIM_WIN_SIZE,
    SliceMetrics,
    Window,
    WindowSpec,
    compute_metrics,
    format_mean_std,
    format_number,
    resolve_window,
    soft_tissue_bias,
    summarize,
)
from ldct_invrep.transforms.crop import center_crop

__all__ = [
    "CT_METHODS",
    "NATURAL_METHODS",
    "EvaluationResult",
    "Method",
    "ResultRow",
    "build_methods",
    "build_natural_methods",
    "evaluate_methods",
    "evaluate_natural",
    "load_pairs_from_cache",
    "load_pairs_from_datalist",
    "natural_restorer_fn",
    "tune_bm3d_blind_factor",
    "tune_bm3d_sigma",
]

Pair = tuple[str, np.ndarray, np.ndarray]
ImageFn = Callable[[np.ndarray], np.ndarray]
CT_METHODS = ("input", "bm3d", "bm3d_blind", "lir", "redcnn")
NATURAL_METHODS = ("input", "bm3d", "anscombe_bm3d", "lir")
#: Window of the natural-image metrics: intensities in [0, 1], data range 1.
UNIT_WINDOW = Window("unit", 0.0, 1.0)
#: Display windows of the CT figure: soft tissue (what the abdomen metrics see) and lung (noise in air/lung).
DEFAULT_FIGURE_WINDOWS = ("abdomen", "lung")
FILES = {"csv": "results.csv", "markdown": "results.md", "figure": "figure.png", "zoom": "figure_zoom.png"}


# --------------------------------------------------------------------------------------------- methods
@dataclass
class Method:
    """A denoiser ``image -> image`` with a one-line description for reports and a JSON-able ``info``."""

    fn: ImageFn
    description: str
    info: dict[str, Any] = field(default_factory=dict)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.fn(image)


def describe(name: str, fn: Callable[..., Any]) -> str:
    """``fn.description`` (a :class:`Method`), else the first line of its docstring, else its name."""
    text = getattr(fn, "description", None)
    if text:
        return str(text)
    doc = (getattr(fn, "__doc__", None) or "").strip()
    return doc.split("\n")[0] if doc else name


def _checkpoint_text(header: Mapping[str, Any]) -> str:
    """``preset lite, trained on ..., 20000 iterations`` from a checkpoint header (what is there)."""
    parts = []
    if header.get("preset"):
        parts.append(f"preset {header['preset']}")
    if header.get("training_data"):
        parts.append(f"trained on {header['training_data']}")
    if header.get("iterations") is not None:
        parts.append(f"{header['iterations']} iterations")
    if not parts:
        parts.append("no training description in the header")
    return ", ".join(str(p) for p in parts)


def _bm3d_ct(sigma_hu: float | None) -> Method:
    from ldct_invrep.baselines import bm3d_denoise

    if sigma_hu is None:
        warnings.warn(
            "BM3D sigma not given: estimating it per slice with skimage's wavelet MAD, which is known to be about "
            "5x too low for CT (correlated, non-stationary noise); tune it on validation data (tune_bm3d_sigma)",
            stacklevel=3,
        )
        text = "BM3D (Dabov et al. 2007, bm3d package), full window [-1024, 3072] HU scaled to [0, 1], sigma estimated per slice (skimage MAD: known to be too low for CT)"
    else:
        text = f"BM3D (Dabov et al. 2007, bm3d package), full window [-1024, 3072] HU scaled to [0, 1], sigma {sigma_hu:g} HU"
    return Method(lambda hu: bm3d_denoise(hu, sigma_hu), text, {"sigma_hu": sigma_hu})


def _bm3d_blind_ct(factor: float | None) -> Method:
    from ldct_invrep.baselines.bm3d import DEFAULT_BLIND_FACTOR, bm3d_blind

    fitted = "" if factor is not None else " (the factor fitted on the default model's simulated training pairs)"
    factor = DEFAULT_BLIND_FACTOR if factor is None else float(factor)
    text = (f"blind BM3D (bm3d package), full window [-1024, 3072] HU scaled to [0, 1], sigma = {factor:g} x each slice's "
            f"own noise level in flat soft tissue (transforms.lowdose.scan_noise_level){fitted}")
    return Method(lambda hu: bm3d_blind(hu, factor), text, {"factor": factor})


def _lir_ct(weights: str | Path | None) -> Method:
    from ldct_invrep.inference import SliceDenoiser
    from ldct_invrep.package_files import default_weights_path

    path = Path(weights) if weights is not None else default_weights_path()
    if not path.is_file():
        raise InputError(f"{path}: LIR checkpoint not found" + ("" if weights else " (no shipped weights; give lir_weights)"))
    denoiser, header = SliceDenoiser.from_checkpoint(path)
    ensemble = denoiser.self_ensemble
    mean_over = f", mean over {ensemble} flipped/transposed copies" if ensemble > 1 else ""
    text = f"LIR (ours, unsupervised): E_X then G_Y{mean_over}, {path.name}: {_checkpoint_text(header)}"
    return Method(denoiser.denoise, text, {"checkpoint": str(path), "header": header})


def _redcnn_ct(weights: str | Path | None) -> Method:
    from ldct_invrep.baselines.train_redcnn import load_redcnn, redcnn_method

    if weights is None:
        raise InputError("redcnn: needs a trained RED-CNN checkpoint (redcnn_weights; see ldct_invrep.baselines.train_redcnn)")
    model, header = load_redcnn(weights)
    text = f"RED-CNN (Chen et al. 2017, supervised on pairs), {Path(weights).name}: {_checkpoint_text(header)}"
    return Method(redcnn_method(model, header.get("hu_range", (-1024.0, 3072.0))), text, {"checkpoint": str(weights), "header": header})


def build_methods(
    names: Iterable[str],
    lir_weights: str | Path | None = None,
    bm3d_sigma_hu: float | None = None,
    redcnn_weights: str | Path | None = None,
    bm3d_blind_factor: float | None = None,
) -> dict[str, Method]:
    """HU -> HU methods by name, in the given order: ``"input"`` (the noisy image), ``"bm3d"`` (sigma in HU;
    ``None`` estimates it per slice, with a warning that the estimate is known to be low for CT),
    ``"bm3d_blind"`` (sigma ``bm3d_blind_factor`` x each slice's noise level; ``None``: the fitted
    ``baselines.bm3d.DEFAULT_BLIND_FACTOR``), ``"lir"`` (a ``SliceDenoiser``
    checkpoint, default the shipped weights) and ``"redcnn"`` (a trained RED-CNN)."""
    from ldct_invrep.baselines import input_method

    methods: dict[str, Method] = {}
    for name in names:
        if name == "input":
            methods[name] = Method(input_method, "the low-dose input itself (no denoising)")
        elif name == "bm3d":
            methods[name] = _bm3d_ct(bm3d_sigma_hu)
        elif name == "bm3d_blind":
            methods[name] = _bm3d_blind_ct(bm3d_blind_factor)
        elif name == "lir":
            methods[name] = _lir_ct(lir_weights)
        elif name == "redcnn":
            methods[name] = _redcnn_ct(redcnn_weights)
        else:
            raise InputError(f"method {name!r}: unknown; known: {', '.join(CT_METHODS)}")
    if not methods:
        raise InputError("methods: none given")
    return methods


def tune_bm3d_sigma(
    pairs: Iterable[Pair],
    sigmas_hu: Sequence[float] = (40, 60, 80, 100, 120, 150),
    window: WindowSpec = "abdomen",
    metric: str = "psnr",
    crop: int | None = 256,
) -> tuple[float, dict[float, float]]:
    """The BM3D sigma (HU) of ``sigmas_hu`` with the best mean ``metric`` over ``pairs`` in ``window``.

    Use validation pairs, never the test set. ``crop``: a centred ``crop x crop`` region of each slice
    (BM3D takes ~15 s per 512 x 512 slice on 2 cores, ~4 s at 256 x 256). Returns (best, {sigma: mean}).
    """
    return _tune_bm3d(pairs, sigmas_hu, lambda sigma, noisy: float(sigma), window, metric, crop)


def tune_bm3d_blind_factor(
    pairs: Iterable[Pair],
    factors: Sequence[float] = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0),
    window: WindowSpec = "abdomen",
    metric: str = "psnr",
    crop: int | None = 256,
) -> tuple[float, dict[float, float]]:
    """The factor of blind BM3D (sigma = factor x the slice's noise level, ``baselines.blind_sigma_hu``) of
    ``factors`` with the best mean ``metric`` over ``pairs``: as :func:`tune_bm3d_sigma`, the noise level
    measured on each whole noisy slice, BM3D run on its centred crop. Returns (best, {factor: mean})."""
    from ldct_invrep.baselines import blind_sigma_hu

    return _tune_bm3d(pairs, factors, lambda factor, noisy: blind_sigma_hu(noisy, float(factor)), window, metric, crop)


def _tune_bm3d(
    pairs: Iterable[Pair],
    candidates: Sequence[float],
    sigma_of: Callable[[float, np.ndarray], float],
    window: WindowSpec,
    metric: str,
    crop: int | None,
) -> tuple[float, dict[float, float]]:
    """The candidate with the best mean ``metric`` of BM3D with ``sigma_of(candidate, whole noisy slice)``."""
    from ldct_invrep.baselines import bm3d_denoise

    if metric not in ("psnr", "ssim", "rmse_hu"):
        raise InputError(f"metric {metric!r}: expected psnr, ssim or rmse_hu")
    data = [(np.asarray(n, dtype=np.float32), center_crop(n, crop), center_crop(c, crop)) for _, n, c in pairs]
    if not data:
        raise InputError("BM3D tuning: no pairs")
    scores: dict[float, float] = {}
    for candidate in candidates:
        values = [
            getattr(compute_metrics(bm3d_denoise(n, sigma_of(candidate, whole)), c, window)[0], metric)
            for whole, n, c in data
        ]
        scores[float(candidate)] = float(np.mean(values))
    pick = min if metric == "rmse_hu" else max
    best = pick(scores, key=scores.__getitem__)
    return best, scores


# --------------------------------------------------------------------------------------------- pairs
def _as_slices(a: np.ndarray, path: str) -> list[np.ndarray]:
    if a.ndim == 2:
        return [a]
    if a.ndim == 3:
        return list(a)
    raise InputError(f"{path}: expected a 2D slice or a 3D volume, got shape {a.shape}")


def load_pairs_from_datalist(path: str | Path, section: str = "test", base_dir: str | Path | None = None) -> Iterator[Pair]:
    """Lazily yield ``(name, noisy HU, clean HU)`` for each paired entry ``{"noisy": p, "clean": p}`` of
    ``section``; p is anything :func:`ldct_invrep.data.datalist.read_entry_image` reads (DICOM, NIfTI,
    .npy, TIFF, MATLAB .mat; a volume gives one pair per slice). All files are checked to exist before the
    first pair is read."""
    from ldct_invrep.data.datalist import load_datalist

    entries = load_datalist(path, section, base_dir=base_dir, check_exists=True)
    if not entries:
        raise InputError(f"{path}: section '{section}' is empty")
    for i, entry in enumerate(entries):
        if "noisy" not in entry or "clean" not in entry:
            raise InputError(f"{path}: entry {i} of '{section}' is not a pair (needs 'noisy' and 'clean')")
    return _iter_datalist_pairs(entries)


def _iter_datalist_pairs(entries: list[dict[str, Any]]) -> Iterator[Pair]:
    from ldct_invrep.data.datalist import read_entry_image

    for entry in entries:
        noisy = _as_slices(read_entry_image(entry, "noisy"), entry["noisy"])
        clean = _as_slices(read_entry_image(entry, "clean"), entry["clean"])
        if len(noisy) != len(clean) or noisy[0].shape != clean[0].shape:
            raise InputError(f"{entry['noisy']}: {len(noisy)} x {noisy[0].shape} differs from {entry['clean']} ({len(clean)} x {clean[0].shape})")
        stem = str(entry.get("name") or entry.get("id") or Path(entry["noisy"]).name)
        for k, (n, c) in enumerate(zip(noisy, clean, strict=True)):
            yield (stem if len(noisy) == 1 else f"{stem}[{k}]"), n, c


def load_pairs_from_cache(path: str | Path) -> list[Pair]:
    """The held-out test pairs ``(name "source:slice", simulated low dose HU, original HU)`` of a CT
    training cache (``ldct_invrep.data.build_ct_training_cache``)."""
    from ldct_invrep.data.ct_cache import load_ct_training_cache

    cache = load_ct_training_cache(path, units="hu")
    names = [f"{e['name']}:{k}" for e in cache.manifest["sources"] for k in e["slice_indices"]["test"]]
    if not cache.test_noisy:
        raise InputError(f"{path}: the cache has no held-out test pairs")
    if len(names) != len(cache.test_noisy):
        names = [f"test{i}" for i in range(len(cache.test_noisy))]
    return list(zip(names, cache.test_noisy, cache.test_clean, strict=True))


# --------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ResultRow:
    """One image x method x window. ``rmse`` is in HU for CT, on the [0, 1] scale for natural images."""

    image: str
    method: str
    window: str
    lo: float
    hi: float
    psnr: float
    ssim: float
    rmse: float
    seconds: float
    bias: float = math.nan  # CT: soft-tissue bias in HU (the same in every window); NaN for natural images

    @property
    def data_range(self) -> float:
        return self.hi - self.lo


@dataclass
class EvaluationResult:
    """Per-image rows plus everything a report states: windows, units, what each method is, notes."""

    rows: list[ResultRow]
    methods: dict[str, str]
    windows: list[Window]
    images: list[str]
    unit: str = "HU"
    title: str = "Evaluation"
    data_description: str = ""
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    ssim_intensity: str = "hu"

    def _rows(self, method: str, window: str) -> list[ResultRow]:
        rows = [r for r in self.rows if r.method == method and r.window == window]
        if not rows:
            raise KeyError(f"no results for method {method!r} in window {window!r}")
        return rows

    def summary(self, method: str, window: str | Window | None = None, images: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
        """``{"psnr"|"ssim"|"rmse"|"seconds"|"bias": {"mean", "std"}}`` over ``images`` (default all;
        population std). ``bias`` is the soft-tissue bias (HU, CT; NaN for natural images)."""
        win = (window.name if isinstance(window, Window) else window) or self.windows[0].name
        rows = self._rows(method, win)
        if images is not None:
            rows = [r for r in rows if r.image in set(images)]
            if not rows:
                raise KeyError(f"no results for method {method!r} on images {list(images)}")
        s = summarize([SliceMetrics(r.psnr, r.ssim, r.rmse) for r in rows])
        seconds = np.array([r.seconds for r in rows])
        bias = np.array([r.bias for r in rows])
        return {"psnr": s["psnr"], "ssim": s["ssim"], "rmse": s["rmse_hu"],
                "seconds": {"mean": float(seconds.mean()), "std": float(seconds.std())},
                "bias": {"mean": float(bias.mean()), "std": float(bias.std())}}

    def window_text(self, window: Window) -> str:
        if self.unit == "HU":
            return f"window {window.label()}, data range {window.data_range:g} HU"
        return f"intensities [{window.lo:g}, {window.hi:g}], data range {window.data_range:g}"

    def metric_note(self) -> str:
        on = "clipped HU" if self.unit == "HU" and self.ssim_intensity == "hu" else "the clipped intensities"
        return (
            f"Both images clipped to the window; PSNR with peak = data range; SSIM (MONAI) Gaussian "
            f"{SSIM_WIN_SIZE}x{SSIM_WIN_SIZE}, sigma {SSIM_SIGMA}, valid convolution, on {on}; RMSE in "
            f"{'HU' if self.unit == 'HU' else 'units of the [0, 1] scale'}; mean ± std (population) over "
            f"{len(self.images)} image(s); seconds = wall time of the method per image on this machine."
            + (f" Soft-tissue bias: mean of output minus reference (HU, not clipped) where the reference is in "
               f"({SOFT_TISSUE_HU[0]:g}, {SOFT_TISSUE_HU[1]:g}) HU." if self.unit == "HU" else "")
        )

    def table_markdown(self, window: Window | str) -> str:
        win = window if isinstance(window, Window) else next(w for w in self.windows if w.name == window)
        rmse_title = "RMSE [HU]" if self.unit == "HU" else "RMSE"
        out = [f"| method | PSNR [dB] | SSIM | {rmse_title} | seconds / image |", "|---|---:|---:|---:|---:|"]
        for m in self.methods:
            s = self.summary(m, win.name)
            out.append(
                f"| {m} | {format_mean_std(s['psnr'], 2)} | {format_mean_std(s['ssim'], 4)} | "
                f"{format_mean_std(s['rmse'], 1 if self.unit == 'HU' else 4)} | {s['seconds']['mean']:.3g} |"
            )
        return "\n".join(out)

    def image_table_markdown(self, image: str | None = None) -> str:
        """One row per method, PSNR and SSIM in every window, then (CT) the soft-tissue bias and the seconds,
        for ``image`` or (``None``) the mean over all images."""
        images = None if image is None else [image]
        cols = [f"{w.name} PSNR [dB] | {w.name} SSIM" for w in self.windows]
        bias = " soft-tissue bias [HU] |" if self.unit == "HU" else ""
        out = [f"| method | {' | '.join(cols)} |{bias} seconds |", "|---|" + "---:|---:|" * len(self.windows) + ("---:|" if bias else "") + "---:|"]
        for m in self.methods:
            per_window = [self.summary(m, w.name, images) for w in self.windows]
            cells = [c for s in per_window for c in (format_number(s["psnr"]["mean"], 2), format_number(s["ssim"]["mean"], 4))]
            shared = per_window[0]  # bias and seconds do not depend on the window
            if bias:
                cells.append(f"{shared['bias']['mean']:+.1f}" if math.isfinite(shared["bias"]["mean"]) else "n/a")
            seconds = shared["seconds"]["mean"]
            cells.append(f"{seconds:.3g}" if seconds >= 0.01 else "< 0.01")
            out.append(f"| {m} | " + " | ".join(cells) + " |")
        return "\n".join(out)

    def to_markdown(self, level: int = 1, per_image: bool = False) -> str:
        """The report: tables of mean ± std per window, or (``per_image``) the mean over images and then one
        table per image (:meth:`image_table_markdown`); the methods, notes and provenance."""
        h = "#" * level
        parts = [f"{h} {self.title}", ""]
        if self.data_description:
            parts += [self.data_description, ""]
        parts += [self.metric_note(), ""]
        if per_image:
            windows = "; ".join(f"{w.label()} (data range {w.data_range:g})" for w in self.windows)
            parts += [f"{h}# Mean over the {len(self.images)} images", "", f"Windows: {windows}.", "",
                      self.image_table_markdown(), ""]
            for image in self.images:
                parts += [f"{h}# {image}", "", self.image_table_markdown(image), ""]
        for win in self.windows if not per_image else ():
            parts += [f"{h}# {self.window_text(win)}", "", self.table_markdown(win), ""]
        parts += [f"{h}# Methods", ""]
        parts += [f"- **{m}**: {d}" for m, d in self.methods.items()]
        parts.append("")
        if self.notes:
            parts += [f"{h}# Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        if self.files:
            parts.append("Files: " + ", ".join(f"`{p.name}`" for p in self.files.values()) + " (per-image values in the CSV).")
            parts.append("")
        parts.append(_provenance())
        return "\n".join(parts) + "\n"

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        ct = self.unit == "HU"
        rmse_col = "rmse_hu" if ct else "rmse"
        writer.writerow(["image", "method", "window", "window_lo", "window_hi", "data_range", "psnr", "ssim", rmse_col, "seconds"]
                        + (["soft_tissue_bias_hu"] if ct else []))
        for r in self.rows:
            writer.writerow([r.image, r.method, r.window, f"{r.lo:g}", f"{r.hi:g}", f"{r.data_range:g}",
                             format_number(r.psnr, 4), format_number(r.ssim, 6), format_number(r.rmse, 4), f"{r.seconds:.4f}"]
                            + ([format_number(r.bias, 3)] if ct else []))
        return buf.getvalue()


def _provenance() -> str:
    import torch

    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return (f"_Written by ldct-invrep {__version__} on {now}; {platform.machine()} {os.cpu_count()} CPU(s), "
            f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)._")


# --------------------------------------------------------------------------------------------- core loop
def _check_pair(pair: Any, index: int, ndims: tuple[int, ...] = (2,)) -> Pair:
    try:
        name, noisy, clean = pair
    except (TypeError, ValueError):
        raise InputError(f"pairs[{index}]: expected (name, noisy, clean)") from None
    noisy = np.asarray(noisy, dtype=np.float32)
    clean = np.asarray(clean, dtype=np.float32)
    if noisy.ndim not in ndims or noisy.shape != clean.shape:
        raise InputError(f"{name}: expected two {' or '.join(f'{n}D' for n in ndims)} images of one shape, got {noisy.shape} and {clean.shape}")
    return str(name), noisy, clean


def _run(
    pairs: Iterable[Any],
    methods: Mapping[str, Callable[[np.ndarray], np.ndarray]],
    windows: list[Window],
    unit: str,
    figure_index: int | None,
    progress: Callable[[str], None] | None,
    ssim_intensity: str = "hu",
    score: Callable[[np.ndarray, np.ndarray, Window], SliceMetrics] | None = None,
    ndims: tuple[int, ...] = (2,),
) -> tuple[list[ResultRow], list[str], dict[str, np.ndarray] | None]:
    """Run every method on every pair; metrics in every window (``score``, default ``metrics.compute_metrics``
    of a 2D slice; ``ndims``: the image dimensions accepted). Keeps only the figure pair's images."""
    say = progress or (lambda msg: None)
    rows: list[ResultRow] = []
    images: list[str] = []
    shown: dict[str, np.ndarray] | None = None
    for i, pair in enumerate(pairs):
        name, noisy, clean = _check_pair(pair, i, ndims)
        if name in images:
            name = f"{name}#{i}"
        images.append(name)
        outputs: dict[str, np.ndarray] = {}
        for method, fn in methods.items():
            t0 = time.perf_counter()
            out = np.asarray(fn(noisy.copy()), dtype=np.float32)
            seconds = time.perf_counter() - t0
            if out.shape != clean.shape:
                raise InputError(f"{name}: method {method!r} returned shape {out.shape}, expected {clean.shape}")
            outputs[method] = out
            bias = soft_tissue_bias(out, clean) if unit == "HU" else math.nan
            for win in windows:
                m = score(out, clean, win) if score else compute_metrics(out, clean, win, ssim_intensity=ssim_intensity)[0]
                rows.append(ResultRow(name, method, win.name, win.lo, win.hi, m.psnr, m.ssim, m.rmse_hu, seconds, bias))
            say(f"{name}: {method} {seconds:.2f} s, PSNR {rows[-len(windows)].psnr:.2f} dB ({windows[0].name})")
        if figure_index is not None and i == figure_index:
            shown = {"input": noisy, **{k: v for k, v in outputs.items() if k != "input"}, "reference": clean}
    if not images:
        raise InputError("pairs: no image pairs to evaluate")
    return rows, images, shown


def _auto_roi(reference: np.ndarray, body_threshold: float | None) -> tuple[int, int, int, int]:
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


def _write_text(path: Path, text: str, overwrite: bool) -> None:
    from ldct_invrep.io import atomic_output_file

    with atomic_output_file(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write_figure(path: Path, fig: Any, overwrite: bool) -> None:
    from ldct_invrep.io import atomic_output_file

    with atomic_output_file(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def _prepare_out_dir(out_dir: str | Path | None, names: Iterable[str], overwrite: bool) -> Path | None:
    """Fail before any work when an output exists and ``overwrite`` is off."""
    if out_dir is None:
        return None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    if not overwrite:
        for n in names:
            if (out / n).exists():
                raise InputError(f"{out / n}: already exists; choose another folder or allow overwrite")
    return out


def evaluate_methods(
    pairs: Iterable[Any],
    methods: Mapping[str, Callable[[np.ndarray], np.ndarray]],
    windows: Sequence[WindowSpec] = ("abdomen", "full"),
    out_dir: str | Path | None = None,
    figure: bool = True,
    *,
    title: str = "Denoising results",
    data_description: str = "",
    notes: Sequence[str] = (),
    figure_windows: Sequence[WindowSpec] | None = None,
    figure_index: int = 0,
    roi: Sequence[int] | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Every method on every CT pair ``(name, noisy HU 2D, clean HU 2D)``: PSNR, SSIM, RMSE [HU] per window,
    plus the seconds per image. Pairs are consumed one at a time (an iterator keeps memory flat).

    With ``out_dir``: ``results.csv``, ``results.md`` and (``figure``) ``figure.png`` + ``figure_zoom.png`` of
    pair ``figure_index`` in ``figure_windows`` (default abdomen and lung), ROI ``roi`` (row, col, h, w; default
    the most uniform soft-tissue square of the reference, see :func:`_auto_roi`). Existing files raise ``InputError`` unless ``overwrite``.
    """
    wins = list(dict.fromkeys(resolve_window(w) for w in windows))
    if not wins:
        raise InputError("windows: at least one window needed")
    if not methods:
        raise InputError("methods: none given")
    names = [FILES["csv"], FILES["markdown"]] + ([FILES["figure"], FILES["zoom"]] if figure else [])
    out = _prepare_out_dir(out_dir, names, overwrite)
    rows, images, shown = _run(pairs, methods, wins, "HU", figure_index if (figure and out) else None, progress)
    result = EvaluationResult(
        rows, {m: describe(m, fn) for m, fn in methods.items()}, wins, images, "HU", title, data_description, list(notes)
    )
    if out is None:
        return result
    out.mkdir(parents=True, exist_ok=True)
    if figure and shown is not None:
        from ldct_invrep.viz import compare_grid, zoom_roi

        fig_wins = list(figure_windows or DEFAULT_FIGURE_WINDOWS)
        region = tuple(roi) if roi is not None else _auto_roi(shown["reference"], -300.0)
        grid = compare_grid(shown, windows=fig_wins, reference="reference", roi=region)
        grid.suptitle(f"{images[figure_index]}, windows: " + "; ".join(resolve_window(w).label() for w in fig_wins), fontsize=9)
        _write_figure(out / FILES["figure"], grid, overwrite)
        _write_figure(out / FILES["zoom"], zoom_roi(shown, region, window=fig_wins[0]), overwrite)
        result.files["figure"] = out / FILES["figure"]
        result.files["zoom"] = out / FILES["zoom"]
    _write_text(out / FILES["csv"], result.to_csv(), overwrite)
    result.files = {"csv": out / FILES["csv"], "markdown": out / FILES["markdown"], **result.files}
    _write_text(out / FILES["markdown"], result.to_markdown(), overwrite)
    return result


# --------------------------------------------------------------------------------------------- natural images
def natural_restorer_fn(restorer: Any) -> ImageFn:
    """A Restorer (E_X then G_Y) as a ``[0, 1] image -> [0, 1] image`` function on ``(H, W)`` or ``(C, H, W)``
    images: the same conversions as the bundles (``data.natural.to_net`` in, ``from_net`` out, unrounded;
    :func:`evaluate_natural` rounds every method's output to 8 bits when asked)."""
    import torch

    from ldct_invrep.data.natural import from_net, to_net

    @torch.inference_mode()
    def denoise(image: np.ndarray) -> np.ndarray:
        a = np.asarray(image, dtype=np.float32)
        x = torch.from_numpy(to_net(np.clip(a, 0.0, 1.0)).reshape((1, -1) + a.shape[-2:]))
        return from_net(restorer(x), quantize=False)[0].numpy().reshape(a.shape)

    return denoise


def _natural_lir(weights: str | Path) -> Method:
    from ldct_invrep.io.checkpoint import load_restorer

    restorer, header = load_restorer(weights)
    fn, channels = natural_restorer_fn(restorer.eval()), int(header.get("config", {}).get("in_channels", 1))

    def denoise(image: np.ndarray) -> np.ndarray:
        got = image.shape[0] if image.ndim == 3 else 1
        if got != channels:
            raise InputError(f"{weights}: the network takes {channels}-channel images, the test set has {got} (channels 1: grey, 3: colour)")
        return fn(image)

    text = f"LIR (ours, unsupervised): E_X then G_Y on [0, 1] -> [-1, 1], {Path(weights).name}: {_checkpoint_text(header)}"
    return Method(denoise, text, {"checkpoint": str(weights), "header": header})


def build_natural_methods(
    names: Iterable[str],
    noise: str = "awgn",
    sigma: float | None = None,
    lir_weights: str | Path | None = None,
    poisson_peak: float | None = None,
) -> dict[str, Method]:
    """[0, 1] -> [0, 1] methods on grey ``(H, W)``/``(1, H, W)`` or colour ``(3, H, W)`` images: ``"input"``,
    ``"bm3d"`` (BM3D, colour BM3D on RGB; AWGN: the true sigma / 255; Poisson: sigma estimated),
    ``"anscombe_bm3d"`` (Poisson, the paper's ANSC, with scikit-image's scale ``poisson_peak``; ``None``
    infers it from unrounded noisy values) and ``"lir"`` (a natural-image checkpoint)."""
    from ldct_invrep.baselines.bm3d_natural import anscombe_bm3d, bm3d_natural

    methods: dict[str, Method] = {}
    for name in names:
        if name == "input":
            methods[name] = Method(lambda x: np.array(x, dtype=np.float32), "the noisy input itself")
        elif name == "bm3d":
            if noise == "awgn" and sigma is not None:
                s = float(sigma) / 255.0
                methods[name] = Method(lambda x, s=s: bm3d_natural(x, s),
                                       f"BM3D (bm3d package; colour BM3D, bm3d_rgb, on RGB images) with the true sigma {sigma:g}/255",
                                       {"sigma_255": sigma})
            else:
                methods[name] = Method(lambda x: bm3d_natural(x, None),
                                       "BM3D (bm3d package; colour BM3D on RGB), sigma estimated per image (skimage wavelet MAD)")
        elif name in ("anscombe_bm3d", "ansc"):
            peak_text = f"peak {poisson_peak:g}" if poisson_peak else "peak inferred from the values"
            methods[name] = Method(lambda x, p=poisson_peak: anscombe_bm3d(x, p),
                                   f"ANSC: Anscombe transform + BM3D (colour BM3D on RGB) + exact unbiased inverse (Mäkitalo & Foi 2011), {peak_text}",
                                   {"peak": poisson_peak})
        elif name == "lir":
            if lir_weights is None:
                raise InputError("lir: needs a natural-image checkpoint (lir_weights)")
            methods[name] = _natural_lir(lir_weights)
        else:
            raise InputError(f"method {name!r}: unknown; known: {', '.join(NATURAL_METHODS)}")
    return methods


def evaluate_natural(
    images: Sequence[np.ndarray] | Mapping[str, np.ndarray] | Sequence[NoisyImage],
    noise: str = "awgn",
    sigma: float | None = 25.0,
    seed: int = 0,
    methods: Mapping[str, Callable[[np.ndarray], np.ndarray]] | Sequence[str] = ("input", "bm3d"),
    out_dir: str | Path | None = None,
    *,
    clip: bool = True,
    quantize: bool = True,
    lir_weights: str | Path | None = None,
    figure: bool = False,
    title: str | None = None,
    data_description: str = "",
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Every method on a seeded noisy natural-image test set; PSNR/SSIM/RMSE with data range 1.

    ``images``: clean images in [0, 1] (``(H, W)`` grey or ``(C, H, W)``; a mapping name -> image, or a
    sequence), noised here by ``data.noisy_sets.noisy_test_set`` (``noise``, ``sigma``, ``seed``, ``clip``,
    ``quantize``), the generator the bundles use; or a ready ``noisy_test_set`` (then those arguments only
    label the report). Metrics: ``natural_metrics.natural_image_metrics``, the bundles' numbers. The paper
    (Tables 1, 2, 4) scores 0-255 uint8 images: PSNR on [0, 1] with data range 1 is the same number as on
    [0, 255] with 255. ``quantize`` rounds the noisy inputs and every method's output to 8-bit levels.
    ``methods``: callables, or names for :func:`build_natural_methods` (ANSC then gets the set's peak).
    """
    from ldct_invrep.data.natural import quantize8
    from ldct_invrep.data.noisy_sets import NOISES, noisy_test_set
    from ldct_invrep.natural_metrics import natural_image_metrics

    if noise not in NOISES:
        raise InputError(f"noise {noise!r}: expected 'awgn' or 'poisson'")
    listed = list(images.items()) if isinstance(images, Mapping) else list(images)
    if listed and all(isinstance(i, NoisyImage) for i in listed):
        test_set = listed
    else:
        named = listed if isinstance(images, Mapping) else [(f"image{i:03d}", im) for i, im in enumerate(listed)]
        test_set = noisy_test_set(named, noise, sigma, seed, clip=clip, quantize=quantize)
    if not isinstance(methods, Mapping):
        peaks = {t.peak for t in test_set}
        methods = build_natural_methods(methods, noise, sigma, lir_weights, peaks.pop() if len(peaks) == 1 else None)
    if not methods:
        raise InputError("methods: none given")
    q = quantize8 if quantize else (lambda a: np.asarray(a, dtype=np.float32))
    pairs = ((t.name, t.noisy, t.clean) for t in test_set)
    fns = {k: (lambda x, f=f: q(np.asarray(f(x), dtype=np.float32))) for k, f in methods.items()}
    names = [FILES["csv"], FILES["markdown"]] + ([FILES["figure"]] if figure else [])
    out = _prepare_out_dir(out_dir, names, overwrite)
    rows, image_names, shown = _run(pairs, fns, [UNIT_WINDOW], "[0, 1]", 0 if (figure and out) else None, progress,
                                    score=lambda o, c, w: natural_image_metrics(o, c), ndims=(2, 3))
    level = f"sigma {sigma:g} (0-255 scale)" if noise == "awgn" else "scikit-image random_noise(mode='poisson') on the 8-bit values"
    channels = test_set[0].clean.shape[0] if test_set[0].clean.ndim == 3 else 1
    peaks = sorted({t.peak for t in test_set if t.peak is not None})
    result = EvaluationResult(
        rows, {m: describe(m, fn) for m, fn in methods.items()}, [UNIT_WINDOW], image_names, "[0, 1]",
        title or f"{'AWGN' if noise == 'awgn' else 'Poisson'} noise, {level}", data_description,
        [
            f"noise: {noise}, {level}, seed {seed} (image i: SeedSequence([seed, i]), data.noisy_sets)"
            + (f", peak {'/'.join(f'{p:g}' for p in peaks)}" if peaks else "")
            + (f", {'clipped' if clip else 'not clipped'} to [0, 1]" if noise == "awgn" else ""),
            f"{'colour (RGB)' if channels == 3 else 'grey'} images in [0, 1], data range 1: the same PSNR as 0-255 images "
            "with peak 255 (the paper's convention); "
            + ("noisy inputs and outputs rounded to 1/255 steps (uint8)." if quantize else "no rounding to uint8."),
        ],
    )
    if out is None:
        return result
    out.mkdir(parents=True, exist_ok=True)
    if figure and shown is not None:
        _write_figure(out / FILES["figure"], _natural_figure(shown, image_names[0]), overwrite)
        result.files["figure"] = out / FILES["figure"]
    _write_text(out / FILES["csv"], result.to_csv(), overwrite)
    result.files = {"csv": out / FILES["csv"], "markdown": out / FILES["markdown"], **result.files}
    _write_text(out / FILES["markdown"], result.to_markdown(), overwrite)
    return result


def _natural_figure(images: Mapping[str, np.ndarray], name: str) -> Any:
    """Top row: each image ([0, 1], grey or RGB); bottom row: a centred zoom (one fifth of the size)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    images = {k: (np.moveaxis(v, 0, -1) if v.ndim == 3 and v.shape[0] == 3 else v.reshape(v.shape[-2:])) for k, v in images.items()}
    first = next(iter(images.values()))
    r, c, h, w = _auto_roi(first[..., 0] if first.ndim == 3 else first, None)
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
