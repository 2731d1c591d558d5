"""What the benchmarks that write a Markdown report (``dev_pairs.py``, ``reproduce_tables.py``) share: the start of
a run (torch threads, no silent overwrite, a progress logger timed from the start, the command line as the
document shows it), the atomic write of the report, and how a document names paths (relative to the
repository: no machine paths) and what a checkpoint trained on (from its header, nothing invented).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = Path(os.environ.get("LDCT_INVREP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@dataclass
class ReportRun:
    """One run of a report-writing benchmark: ``say`` prints progress (seconds since the start; silent with
    ``--quiet``), ``command`` is the command line as the document shows it, :meth:`write` puts the report in place."""

    out: Path
    overwrite: bool
    command: str
    say: Callable[[str], None]
    t0: float

    def seconds(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.t0

    def write(self, text: str) -> None:
        """Write ``text`` to ``out`` all or nothing (``ldct_invrep.io.atomic_output_file``) and say so."""
        from ldct_invrep.io import atomic_output_file

        with atomic_output_file(self.out, overwrite=self.overwrite) as tmp:
            tmp.write_text(text, encoding="utf-8")
        self.say(f"wrote {self.out}")


def start_report(script: str, args: argparse.Namespace, argv: Sequence[str] | None) -> ReportRun:
    """Start ``benchmarks/<script>``: torch's threads from ``args.threads``, an existing ``args.out`` refused
    without ``args.overwrite`` (before any work), the clock, the logger (``args.quiet``) and the command text."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.out.exists() and not args.overwrite:
        raise SystemExit(f"{args.out}: exists; pass --overwrite to replace it")
    t0 = time.perf_counter()
    say = (lambda m: None) if args.quiet else (lambda m: print(f"[{time.perf_counter() - t0:7.1f} s] {m}", flush=True))
    command = f"python benchmarks/{script} {command_text(argv if argv is not None else sys.argv[1:])}"
    return ReportRun(args.out, args.overwrite, command, say, t0)


def shown(path: Path | str | None) -> str:
    """A path for the document: relative to the repository (or its parent) when inside it, else its name.
    Symbolic links are kept (``cache -> /elsewhere/cache`` shows as ``cache/...``, not as the machine's path)."""
    if path is None:
        return "-"
    p = Path(os.path.abspath(path))
    for base in (REPO_ROOT, REPO_ROOT.parent):
        try:
            return str(p.relative_to(base))
        except ValueError:
            continue
    return p.name


def command_text(argv: Sequence[str]) -> str:
    """The command line with existing paths shown relative to the repository (no machine paths in docs)."""
    out = []
    for a in argv:
        key, sep, rest = a.partition("=")
        if sep and len(key) == 1 and Path(rest).exists():
            out.append(f"{key}={shown(rest)}")
        elif not a.startswith("-") and ("/" in a or Path(a).exists()):
            out.append(shown(a))
        else:
            out.append(a)
    return " ".join(shlex.quote(a) for a in out)


# ---------------------------------------------------------------------------------------- checkpoints
def header_of(path: Path, kind: str) -> dict[str, Any]:
    """The header of a checkpoint: ``kind`` "redcnn" (``baselines.train_redcnn``) or "lir" (``io.checkpoint``)."""
    if kind == "redcnn":
        from ldct_invrep.baselines.train_redcnn import load_redcnn

        return load_redcnn(path)[1]
    from ldct_invrep.io.checkpoint import read_header

    return read_header(path)


def training_text(path: Path, header: dict[str, Any]) -> str:
    """What a checkpoint trained on and for how long, from its header (nothing invented)."""
    bits = [f"`{path.name}`"]
    if header.get("preset"):
        bits.append(f"preset {header['preset']}")
    data = header.get("training_data") or header.get("data")
    bits.append(f"trained on {data}" if data else "training data not recorded")
    bits.append(f"{header['iterations']} iterations" if header.get("iterations") is not None else "iterations not recorded")
    training = header.get("training") if isinstance(header.get("training"), dict) else {}
    for key, label in (("batch", "batch"), ("patch_size", "patches"), ("seconds", "seconds"), ("cpu_hours", "CPU hours")):
        value = header.get(key, training.get(key))
        if value is not None:
            bits.append(f"{label} {value}")
    for key in ("channels", "ablation", "noise", "sigma_range", "semantic_weight", "dose_fraction", "resample_spacings_mm", "cross_cycle_weight"):
        if header.get(key) is not None:
            bits.append(f"{key} {header[key]}")
    if header.get("selected_by"):
        bits.append(f"weights: {header['selected_by']}")
    if int(header.get("self_ensemble", 1)) > 1:
        bits.append(f"run as a self-ensemble of {header['self_ensemble']} (mean over flips/transposes)")
    if float(header.get("reference_noise_hu", 0.0)) > 0:
        bits.append(f"each output blended with its input to a reference noise of {header['reference_noise_hu']:g} HU "
                    "(header reference_noise_hu)")
    return ", ".join(str(b) for b in bits)


def present(path: Path | None) -> bool:
    """Whether a checkpoint was given and exists."""
    return path is not None and Path(path).is_file()
