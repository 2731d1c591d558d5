"""PSNR, SSIM and RMSE (HU) on a named HU window with an explicit data range.

Every number this module produces is tied to a window ``[lo, hi]`` HU: both images are clipped to the
window and the data range is ``hi - lo``. The two windows every report shows (docs/metrics.md, "The convention"):

* ``"abdomen"``: [-160, 240] HU, data range 400 (the RED-CNN / CTformer test convention);
* ``"full"``: [-1024, 3072] HU, data range 4096 (the network's HU range).

Any other name of ``ldct_invrep.transforms.windowing.WINDOWS`` or an explicit ``(lo, hi)`` tuple works too.

The computation is ``monai.metrics`` (``PSNRMetric``, ``SSIMMetric``, ``RMSEMetric``) slice by slice.
SSIM is MONAI's: 11 x 11 Gaussian, sigma 1.5, K1 0.01, K2 0.03, *valid* convolution (no padding), mean of
the map. That equals scikit-image's ``structural_similarity(data_range=R, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)``: skimage filters with a truncated (radius 5, 11 taps) normalised Gaussian
and crops 5 border pixels, which leaves exactly the valid-convolution pixels (agreement to float32
precision, checked in tests/test_metrics.py). RED-CNN's own ``measure.py`` zero-pads instead, so its SSIM
differs slightly at the borders.

SSIM, unlike PSNR and RMSE, is not shift invariant: its luminance term depends on where zero lies.
``ssim_intensity="hu"`` (default) computes it on the clipped HU values (RED-CNN's convention);
``"window"`` on the window shifted to [0, data range] (the same as the window mapped to [0, 1] with data
range 1, the ldct-benchmark convention). Reports name the convention they used.

The soft-tissue bias (:func:`soft_tissue_bias`) is the mean of prediction minus reference over the pixels
where the reference is soft tissue (``SOFT_TISSUE_HU``): a denoiser that shifts the HU of organs shows there,
whatever its PSNR. It is computed on the unclipped HU.

A volume's metric is the mean of its slice metrics (the per-slice average every LDCT paper reports), not
the metric of the pooled voxels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from monai.metrics import PSNRMetric, RMSEMetric, SSIMMetric

from ldct_invrep.errors import InputError
from ldct_invrep.transforms.windowing import WINDOWS, window_from_name_or_range, window_key

__all__ = [
    "METRIC_WINDOWS",
    "MetricReport",
    "SliceMetrics",
    "Window",
    "compare_reports",
    "compute_metrics",
    "format_mean_std",
    "format_number",
    "resolve_window",
    "soft_tissue_bias",
    "summarize",
]

#: The metric windows every report shows (HU), taken from the one registry ``transforms.windowing.WINDOWS``.
METRIC_WINDOWS: dict[str, tuple[float, float]] = {name: WINDOWS[name] for name in ("abdomen", "full")}

#: Reference HU counted as soft tissue by :func:`soft_tissue_bias` (open interval): organs, muscle, blood,
#: not fat (about -100 HU and below), lung, bone or contrast-filled vessels.
SOFT_TISSUE_HU = (-100.0, 200.0)
SSIM_WIN_SIZE = 11
SSIM_SIGMA = 1.5
METRIC_NAMES = ("psnr", "ssim", "rmse_hu")
SsimIntensity = Literal["hu", "window"]


@dataclass(frozen=True)
class Window:
    """A named HU window ``[lo, hi]``; ``data_range = hi - lo``."""

    name: str
    lo: float
    hi: float

    @property
    def data_range(self) -> float:
        return self.hi - self.lo

    @property
    def width(self) -> float:
        return self.hi - self.lo

    @property
    def level(self) -> float:
        return 0.5 * (self.hi + self.lo)

    def label(self) -> str:
        """E.g. ``"abdomen W400/L40 [-160, 240] HU"``: names the window, W/L and the HU range."""
        return f"{self.name} W{_num(self.width)}/L{_num(self.level)} [{_num(self.lo)}, {_num(self.hi)}] HU"

    def clip(self, hu: np.ndarray) -> np.ndarray:
        return np.clip(hu, self.lo, self.hi)


WindowSpec = str | tuple[float, float] | Sequence[float] | Window


def _num(x: float) -> str:
    return f"{x:g}"


def resolve_window(window: WindowSpec) -> Window:
    """A window name of ``transforms.windowing.WINDOWS`` (``"abdomen"``, ``"full"``, ``"lung"``, ...;
    case-insensitive), a ``(lo, hi)`` pair in HU, or a :class:`Window`. Bad input raises ``InputError``."""
    if isinstance(window, Window):
        return window
    lo, hi = window_from_name_or_range(window)
    return Window(window_key(window) if isinstance(window, str) else "custom", lo, hi)


@dataclass(frozen=True)
class SliceMetrics:
    """Metrics of one slice: PSNR (dB; ``inf`` for identical slices), SSIM, RMSE in HU."""

    psnr: float
    ssim: float
    rmse_hu: float

    def to_dict(self) -> dict[str, float | str]:
        return {k: _json_float(v) for k, v in asdict(self).items()}


def _as_stack(arr: Any, name: str) -> np.ndarray:
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu().numpy()
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise InputError(f"{name}: expected a 2D slice or a (z, y, x) volume, got shape {a.shape}")
    if a.shape[1] < SSIM_WIN_SIZE or a.shape[2] < SSIM_WIN_SIZE:
        raise InputError(f"{name}: slices of {a.shape[1:]} are smaller than the {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} SSIM window")
    if not np.isfinite(a).all():
        raise InputError(f"{name}: contains NaN or infinite values")
    return a


def compute_metrics(
    pred_hu: Any,
    ref_hu: Any,
    window: WindowSpec = "abdomen",
    *,
    ssim_intensity: SsimIntensity = "hu",
    chunk: int = 8,
) -> list[SliceMetrics]:
    """Per-slice PSNR, SSIM and RMSE (HU) of ``pred_hu`` against ``ref_hu`` in ``window``.

    Both inputs are HU, 2D (one slice) or (z, y, x); both are clipped to the window, and
    ``data_range = hi - lo``. ``chunk`` slices go through MONAI at a time (bounded memory for long volumes).
    """
    win = resolve_window(window)
    if ssim_intensity not in ("hu", "window"):
        raise InputError(f"ssim_intensity {ssim_intensity!r}: expected 'hu' or 'window'")
    pred = _as_stack(pred_hu, "pred_hu")
    ref = _as_stack(ref_hu, "ref_hu")
    if pred.shape != ref.shape:
        raise InputError(f"pred_hu: shape {pred.shape} differs from ref_hu shape {ref.shape}")
    r = win.data_range
    psnr_m = PSNRMetric(max_val=r, reduction="none")
    rmse_m = RMSEMetric(reduction="none")
    # MONAI computes SSIM in float32; data_range enters only through C1 = (K1 R)^2 and C2 = (K2 R)^2.
    ssim_m = SSIMMetric(spatial_dims=2, data_range=r, win_size=SSIM_WIN_SIZE, kernel_sigma=SSIM_SIGMA, reduction="none")
    shift = win.lo if ssim_intensity == "window" else 0.0
    out: list[SliceMetrics] = []
    for start in range(0, pred.shape[0], max(1, chunk)):
        p = torch.from_numpy(win.clip(pred[start : start + chunk]))[:, None]
        y = torch.from_numpy(win.clip(ref[start : start + chunk]))[:, None]
        psnr = psnr_m(p, y).reshape(-1).double()  # MSE 0 gives +inf (reported, not an error)
        rmse = rmse_m(p, y).reshape(-1).double()
        ssim = ssim_m(p - shift, y - shift).reshape(-1).double()
        for m in (psnr_m, rmse_m, ssim_m):
            m.reset()
        out.extend(SliceMetrics(float(a), float(b), float(c)) for a, b, c in zip(psnr, ssim, rmse, strict=True))
    return out


def soft_tissue_bias(pred_hu: Any, ref_hu: Any, soft_tissue: tuple[float, float] = SOFT_TISSUE_HU) -> float:
    """Mean of ``pred_hu - ref_hu`` (HU) over the pixels where ``lo < ref_hu < hi`` (``soft_tissue``); NaN when
    there is none. Inputs as :func:`compute_metrics` (2D or (z, y, x), same shape), not clipped."""
    pred = _as_stack(pred_hu, "pred_hu")
    ref = _as_stack(ref_hu, "ref_hu")
    if pred.shape != ref.shape:
        raise InputError(f"pred_hu: shape {pred.shape} differs from ref_hu shape {ref.shape}")
    mask = (ref > soft_tissue[0]) & (ref < soft_tissue[1])
    return float((pred - ref)[mask].mean()) if mask.any() else float("nan")


def summarize(per_slice: Sequence[SliceMetrics]) -> dict[str, dict[str, float]]:
    """``{"psnr": {"mean", "std"}, "ssim": {...}, "rmse_hu": {...}}`` over slices (population std, ddof 0).

    A slice with infinite PSNR (identical to the reference) makes the PSNR mean ``inf`` and its std ``nan``.
    """
    if not per_slice:
        raise InputError("per_slice: no slices to summarize")
    summary: dict[str, dict[str, float]] = {}
    for name in METRIC_NAMES:
        values = np.array([getattr(s, name) for s in per_slice], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            mean = float(values.mean())
            std = float(values.std()) if np.isfinite(values).all() else float("nan")
        summary[name] = {"mean": mean, "std": std}
    return summary


def _json_float(x: float) -> float | str:
    """Finite floats as they are; inf / nan as strings, so ``json.dumps(allow_nan=False)`` works."""
    return float(x) if math.isfinite(x) else str(x)


_COLUMNS = (("psnr", "PSNR [dB]", 3), ("ssim", "SSIM", 4), ("rmse_hu", "RMSE [HU]", 2))


def format_number(x: float, digits: int) -> str:
    """``x`` with ``digits`` decimals; ``inf`` / ``nan`` as words."""
    return f"{x:.{digits}f}" if math.isfinite(x) else str(x)


def format_mean_std(stats: Mapping[str, float | None], digits: int) -> str:
    """``"mean ± std"`` of a :func:`summarize` entry (``{"mean", "std"}``), the one format of every report
    and table; only the mean when ``std`` is absent or ``None``."""
    mean, std = stats["mean"], stats.get("std")
    assert mean is not None
    return format_number(mean, digits) if std is None else f"{format_number(mean, digits)} ± {format_number(std, digits)}"


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = lambda cells: "  ".join(  # noqa: E731
        (c.ljust(w) if i == 0 else c.rjust(w)) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )
    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


@dataclass
class MetricReport:
    """Per-slice metrics of one method against a reference in one window, with mean ± std.

    Build it with :meth:`from_arrays`; print :meth:`to_table` or :meth:`to_markdown`; store :meth:`to_dict`.
    """

    window: Window
    per_slice: list[SliceMetrics]
    method: str = "prediction"
    reference: str = "reference"
    ssim_intensity: SsimIntensity = "hu"
    slice_labels: list[str] | None = field(default=None)

    @classmethod
    def from_arrays(
        cls,
        pred_hu: Any,
        ref_hu: Any,
        window: WindowSpec = "abdomen",
        *,
        method: str = "prediction",
        reference: str = "reference",
        ssim_intensity: SsimIntensity = "hu",
        slice_labels: Sequence[str] | None = None,
    ) -> MetricReport:
        win = resolve_window(window)
        per_slice = compute_metrics(pred_hu, ref_hu, win, ssim_intensity=ssim_intensity)
        if slice_labels is not None and len(slice_labels) != len(per_slice):
            raise InputError(f"slice_labels: {len(slice_labels)} labels for {len(per_slice)} slices")
        labels = None if slice_labels is None else [str(s) for s in slice_labels]
        return cls(win, per_slice, method, reference, ssim_intensity, labels)

    @property
    def data_range(self) -> float:
        return self.window.data_range

    @property
    def summary(self) -> dict[str, dict[str, float]]:
        return summarize(self.per_slice)

    @property
    def volume(self) -> SliceMetrics:
        """The per-volume metrics: the mean over slices."""
        s = self.summary
        return SliceMetrics(s["psnr"]["mean"], s["ssim"]["mean"], s["rmse_hu"]["mean"])

    def header(self) -> str:
        ssim_on = "clipped HU" if self.ssim_intensity == "hu" else f"window shifted to [0, {_num(self.data_range)}]"
        return (
            f"{self.method} vs {self.reference}: window {self.window.label()}, data range "
            f"{_num(self.data_range)} HU (both clipped to the window); SSIM on {ssim_on}, "
            f"Gaussian {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} sigma {SSIM_SIGMA}, valid convolution"
        )

    def _rows(self) -> tuple[list[str], list[list[str]]]:
        header = ["slice"] + [title for _, title, _ in _COLUMNS]
        labels = self.slice_labels or [str(i) for i in range(len(self.per_slice))]
        rows = [[lab] + [format_number(getattr(s, k), d) for k, _, d in _COLUMNS] for lab, s in zip(labels, self.per_slice, strict=True)]
        summary = self.summary
        rows.append(["mean ± std"] + [format_mean_std(summary[k], d) for k, _, d in _COLUMNS])
        return header, rows

    def to_table(self) -> str:
        """Aligned text table: one row per slice, then mean ± std; the header names window and data range."""
        header, rows = self._rows()
        table = _text_table(header, rows[:-1] + [rows[-1]])
        lines = table.split("\n")
        lines.insert(len(lines) - 1, lines[1])  # rule before the summary row
        return self.header() + "\n" + "\n".join(lines)

    def to_markdown(self) -> str:
        header, rows = self._rows()
        rows[-1] = [f"**{c}**" for c in rows[-1]]
        return f"{self.header()}\n\n{_md_table(header, rows)}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (``inf``/``nan`` become strings): window, range, convention, per-slice and summary."""
        summary = {k: {kk: _json_float(vv) for kk, vv in v.items()} for k, v in self.summary.items()}
        return {
            "method": self.method,
            "reference": self.reference,
            "window": {"name": self.window.name, "lo": self.window.lo, "hi": self.window.hi},
            "data_range": self.data_range,
            "ssim_intensity": self.ssim_intensity,
            "ssim": {"kernel": "gaussian", "win_size": SSIM_WIN_SIZE, "sigma": SSIM_SIGMA, "padding": "valid"},
            "n_slices": len(self.per_slice),
            "slice_labels": self.slice_labels,
            "per_slice": [s.to_dict() for s in self.per_slice],
            "summary": summary,
        }


def compare_reports(reports: Sequence[MetricReport], *, markdown: bool = False) -> str:
    """One row per method (mean ± std over slices); all reports must share window and SSIM convention."""
    if not reports:
        raise InputError("reports: nothing to compare")
    first = reports[0]
    for r in reports[1:]:
        if r.window != first.window or r.ssim_intensity != first.ssim_intensity:
            raise InputError(f"reports: {r.method!r} uses another window or SSIM convention than {first.method!r}")
    title = (
        f"vs {first.reference}: window {first.window.label()}, data range {_num(first.data_range)} HU; "
        f"SSIM on {'clipped HU' if first.ssim_intensity == 'hu' else 'shifted window'}, "
        f"mean ± std over {len(first.per_slice)} slice(s)"
    )
    header = ["method"] + [title_ for _, title_, _ in _COLUMNS]
    rows = [[r.method] + [format_mean_std(r.summary[k], d) for k, _, d in _COLUMNS] for r in reports]
    return f"{title}\n\n{_md_table(header, rows)}" if markdown else f"{title}\n{_text_table(header, rows)}"
