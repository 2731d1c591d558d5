"""Start-up time of the ``ldct-invrep`` command: wall seconds from process start to exit for commands that do
no computing (``--help``, a command's ``--help``, bad input, ``info``) and, for scale, ``import torch`` and
``import torch, monai`` alone. Each is a fresh process, run ``--repeats`` times; the median and the minimum are
printed, with whether torch and MONAI were imported (``python -X importtime`` on one run).

    .venv/bin/python benchmarks/startup_time.py [--repeats 5]

Measure on an idle machine: start-up is mostly reading and compiling Python files, and another process
competing for the cores or the disk cache changes it by a factor of two. The load average is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "ldct_invrep.cli"]


def cases(tmp: Path) -> list[tuple[str, list[str]]]:
    return [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("import torch", [sys.executable, "-c", "import torch"]),
        ("import torch, monai", [sys.executable, "-c", "import torch, monai"]),
        ("ldct-invrep --help", [*CLI, "--help"]),
        ("ldct-invrep denoise --help", [*CLI, "denoise", "--help"]),
        ("denoise MISSING OUT (bad input)", [*CLI, "denoise", str(tmp / "missing"), str(tmp / "out")]),
        ("evaluate MISSING MISSING (bad input)", [*CLI, "evaluate", str(tmp / "a"), str(tmp / "b")]),
        ("prepare bsd68 MISSING (bad input)", [*CLI, "prepare", "bsd68", str(tmp / "missing")]),
        ("info (shipped weights)", [*CLI, "info"]),
    ]


def imported(cmd: list[str]) -> str:
    """Which of torch / monai the command imports (one ``-X importtime`` run)."""
    proc = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, check=False)
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return ", ".join(m for m in ("torch", "monai") if m in names) or "neither"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} on {os.cpu_count()} CPUs; "
          f"{args.repeats} runs each, fresh processes")
    print(f"{'command':40} {'median s':>9} {'min s':>7}  imports")
    with tempfile.TemporaryDirectory() as tmp:
        for label, cmd in cases(Path(tmp)):
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                subprocess.run(cmd, capture_output=True, check=False)
                times.append(time.perf_counter() - t0)
            print(f"{label:40} {statistics.median(times):9.2f} {min(times):7.2f}  {imported(cmd)}", flush=True)


if __name__ == "__main__":
    main()
