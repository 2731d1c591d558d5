"""Bundle recipes for reports: the inference summary line, the evaluation's metric table (``summary.json``) and
bad input as one line (:func:`report_input_errors`, :func:`check_whole_numbers`)."""

from __future__ import annotations

import atexit
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ldct_invrep.errors import as_count, input_error_cause
from ldct_invrep.io.atomic import atomic_output_file

__all__ = ["check_whole_numbers", "print_inference_summary", "report_input_errors", "summarize_metrics"]

#: Exit status of a run stopped by bad input, as the ``ldct-invrep`` commands (``cli.console.EXIT_USAGE``).
EXIT_BAD_INPUT = 2


def report_input_errors() -> None:
    """End a bundle run (``python -m monai.bundle run``) stopped by bad input as the ``ldct-invrep`` commands end:
    one line ``error: <path>: <problem>`` on stderr and exit status 2, not the traceback of every config
    expression MONAI re-raised it through. The bundles' ``initialize`` calls it first.

    ``monai.bundle`` has no error handler of its own, so this is a ``sys.excepthook``: it only sees an exception
    nothing else caught, and passes anything that is not an :class:`~ldct_invrep.errors.InputError` (a bug) to the
    previous hook, traceback and all; so does bad input with ``LDCT_INVREP_DEBUG=1`` (``ldct-invrep --debug``).
    Outputs being written were already removed while the exception unwound; the exit handlers (log files) run
    before the process ends.
    """
    previous = sys.excepthook
    if getattr(previous, "ldct_invrep_one_line", False):
        return

    def hook(exc_type, exc, tb) -> None:
        cause = input_error_cause(exc) if isinstance(exc, Exception) else None
        if cause is None or os.environ.get("LDCT_INVREP_DEBUG", "").lower() not in ("", "0", "false"):
            previous(exc_type, exc, tb)
            return
        print(f"error: {' '.join(str(cause).split())}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        atexit._run_exitfuncs()  # noqa: SLF001 - what a normal exit runs; os._exit alone skips it
        os._exit(EXIT_BAD_INPUT)  # the only way to another status: after the hook Python exits with 1

    hook.ldct_invrep_one_line = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def check_whole_numbers(minimum: int = 1, **settings: object) -> None:
    """Refuse, before any work, a bundle setting that must be a whole number ``>= minimum`` and is not
    (:func:`~ldct_invrep.errors.as_count`); ``None`` (null: the default) passes. The bundles' ``initialize``
    calls it right after :func:`report_input_errors` with their threads, batch size and iteration counts, which
    torch, the data loader or ignite otherwise reject in a traceback of their own, or take a negative
    ``max_iterations`` as nothing to do."""
    for name, value in settings.items():
        if value is not None:
            as_count(value, name, minimum)


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
