"""Run every method on every pair and write the report, the way the paper's Tables 1-4 compare methods.

* CT (:func:`evaluate_methods`): pairs ``(name, noisy HU, clean HU)``; metrics per named HU window
  (``ldct_invrep.metrics``: both images clipped to the window, data range = its width), default the abdomen
  window [-160, 240] HU (data range 400, the RED-CNN convention of Table 3's neighbours) and the full
  network range [-1024, 3072] HU (data range 4096).
* Natural images (:func:`evaluate_natural`, Tables 1, 2, 4): colour or grey images in [0, 1] with seeded
  AWGN or Poisson noise (``data.noisy_sets``, the bundles' generator), metrics with data range 1
  (``natural_metrics``, the bundles' computation).

Outputs in ``out_dir`` (each file written atomically through ``ldct_invrep.io.atomic``): ``results.csv``,
``results.md`` (``report``) and the figures (``figures``): for CT ``figure.png`` and ``figure_zoom.png``.
Existing outputs are refused before any work unless ``overwrite``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ldct_invrep.data.noisy_sets import NoisyImage
from ldct_invrep.errors import InputError
from ldct_invrep.evaluation.figures import ct_figures, natural_figure
from ldct_invrep.evaluation.pairs import check_pair
from ldct_invrep.evaluation.registry import build_natural_methods, describe
from ldct_invrep.evaluation.report import EvaluationResult, ResultRow
from ldct_invrep.metrics import (
    SliceMetrics,
    Window,
    WindowSpec,
    compute_metrics,
    resolve_window,
    soft_tissue_bias,
)

__all__ = ["FILES", "UNIT_WINDOW", "evaluate_methods", "evaluate_natural"]

#: Window of the natural-image metrics: intensities in [0, 1], data range 1.
UNIT_WINDOW = Window("unit", 0.0, 1.0)
FILES = {"csv": "results.csv", "markdown": "results.md", "figure": "figure.png", "zoom": "figure_zoom.png"}


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
        name, noisy, clean = check_pair(pair, i, ndims)
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


def _write_text(path: Path, text: str, overwrite: bool) -> None:
    from ldct_invrep.io import atomic_output_file

    with atomic_output_file(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write_figure(path: Path, fig: Any, overwrite: bool) -> None:
    from ldct_invrep.io import atomic_output_file

    with atomic_output_file(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def _write_report(result: EvaluationResult, out: Path, overwrite: bool) -> None:
    """``results.csv`` then ``results.md``, whose file list names the CSV, the Markdown and the figures."""
    _write_text(out / FILES["csv"], result.to_csv(), overwrite)
    result.files = {"csv": out / FILES["csv"], "markdown": out / FILES["markdown"], **result.files}
    _write_text(out / FILES["markdown"], result.to_markdown(), overwrite)


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
    the most uniform soft-tissue square of the reference, see ``figures.auto_roi``). Existing files raise ``InputError`` unless ``overwrite``.
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
        grid, zoom = ct_figures(shown, images[figure_index], figure_windows, roi)
        _write_figure(out / FILES["figure"], grid, overwrite)
        _write_figure(out / FILES["zoom"], zoom, overwrite)
        result.files["figure"] = out / FILES["figure"]
        result.files["zoom"] = out / FILES["zoom"]
    _write_report(result, out, overwrite)
    return result


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
    ``methods``: callables, or names for ``registry.build_natural_methods`` (ANSC then gets the set's peak).
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
        _write_figure(out / FILES["figure"], natural_figure(shown, image_names[0]), overwrite)
        result.files["figure"] = out / FILES["figure"]
    _write_report(result, out, overwrite)
    return result
