"""Bundle recipes for reports: the inference summary line and the evaluation's metric table (``summary.json``)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ldct_invrep.io.atomic import atomic_output_file

__all__ = ["print_inference_summary", "summarize_metrics"]


def print_inference_summary(
    n: int, seconds: float, self_ensemble: int, output_dir: str | os.PathLike, unit: str = "slice", n_series: int | None = None
) -> str:
    """Print (stderr) and return the bundles' inference summary line, like the CLI's: what, how fast, where."""
    of = "" if n_series is None else f" of {n_series} series"
    line = (
        f"denoised {n} {unit}{'s' if n != 1 else ''}{of} in {seconds:.1f} s "
        f"({seconds / max(n, 1):.2f} s/{unit}, self-ensemble {self_ensemble}) -> {output_dir}"
    )
    print(line, file=sys.stderr, flush=True)
    return line


def summarize_metrics(output_dir: str | os.PathLike, names: Sequence[str], title: str = "") -> dict[str, dict[str, float]]:
    """Collect ``<output_dir>/<name>/metrics.csv`` (``monai.handlers.MetricsSaver``, tab separated) of each
    evaluator into ``<output_dir>/summary.json`` (written whole or not at all) and print one table: the metric
    names carry the window and data range (e.g. ``abdomen_psnr_dr400``: [-160, 240] HU, data range 400)."""
    out = Path(output_dir)
    summary: dict[str, dict[str, float]] = {}
    for name in names:
        path = out / name / "metrics.csv"
        if not path.is_file():
            continue
        rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        summary[name] = {k: float(v) for k, v in rows}
    with atomic_output_file(out / "summary.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    metrics = sorted({k for m in summary.values() for k in m})
    width = max([len(n) for n in summary] + [8])
    lines = [title] if title else []
    lines.append(" ".join([f"{'':{width}}"] + [f"{m:>20}" for m in metrics]))
    for name, m in summary.items():
        lines.append(" ".join([f"{name:{width}}"] + [f"{m.get(k, float('nan')):>20.4f}" for k in metrics]))
    print("\n".join(lines), flush=True)
    return summary
