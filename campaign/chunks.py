"""What the campaign drivers (ct_default_model.py, natural_colour.py) do after each chunk: keep the new training
state as the committed one, and append the chunk's scores to the curve."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

from ldct_invrep.io.atomic import atomic_replace


def commit_state(checkpoint: Path, state_file: Path) -> None:
    """Copy the training state ``checkpoint`` to ``state_file`` (the small file a fresh machine resumes from),
    atomically."""
    with atomic_replace(state_file) as tmp:
        shutil.copyfile(checkpoint, tmp)


def append_curve_rows(curve: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` to the CSV ``curve`` (columns ``fields``, header written when the file is new; floats with
    4 decimals)."""
    new = not curve.is_file()
    with open(curve, "a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fields)
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
