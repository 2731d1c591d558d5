"""The results of a comparison and their reports: :class:`ResultRow` (one image x method x window) and
:class:`EvaluationResult` (mean ± std per method and window, the Markdown report with what each method is and
how every figure was computed, the per-image CSV). The tables of the paper (Tables 1-4) are mean ± std of
PSNR and SSIM; here with RMSE, the seconds per image and, for CT, the soft-tissue bias."""

from __future__ import annotations

import csv
import datetime
import io
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ldct_invrep import __version__
from ldct_invrep.metrics import (
    SOFT_TISSUE_HU,
    SSIM_SIGMA,
    SSIM_WIN_SIZE,
    SliceMetrics,
    Window,
    format_mean_std,
    format_number,
    summarize,
)

__all__ = ["EvaluationResult", "ResultRow"]


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
    """Which ldct-invrep wrote the report, when, on what machine and torch with how many threads."""
    import torch

    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return (f"_Written by ldct-invrep {__version__} on {now}; {platform.machine()} {os.cpu_count()} CPU(s), "
            f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)._")

