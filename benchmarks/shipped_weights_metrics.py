"""The shipped weights' figures for the ``ldct_simulated`` bundle's ``metadata.json`` ``eval_metrics``: measured,
not typed. Prints them as JSON; ``--write`` puts them into ``bundles/ldct_simulated/configs/metadata.json``.

* ``heldout_patients_dose{0.1,0.25,0.5}_abdomen_psnr_dr400``: mean abdomen-window PSNR (data range 400) of
  the shipped weights' output over the first slice of each file of the COVID-19-NY-SBU patients held out of
  their training (``recipes.open_ct_sources(DIR)["test"]``), low dose simulated with today's simulator
  (``simulate_low_dose``, seed = file index, padding kept; ``tests/test_shipped_weights.py``'s protocol);
* ``mayo_L506_abdomen_psnr_dr400`` and ``eunh_case1_abdomen_psnr_dr400``: the same on the real
  quarter/full-dose pairs of ``data.dev_pairs`` (AAPM-Mayo data, read in place, only scored).

The weights run as ``ldct-invrep denoise`` and the bundle's inference run them
(``SliceDenoiser.from_checkpoint``: the header's self-ensemble and reference-noise blend).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/shipped_weights_metrics.py --shared-data ../shared/data --threads 1 [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
METADATA = REPO_ROOT / "bundles" / "ldct_simulated" / "configs" / "metadata.json"
DOSES = (0.1, 0.25, 0.5)
REAL_PAIRS = {"mayo_L506_1mm": "mayo_L506", "eunh_test_case1": "eunh_case1"}


def _psnr(out: np.ndarray, clean: np.ndarray) -> float:
    from ldct_invrep.metrics import compute_metrics

    return float(compute_metrics(out, clean, "abdomen")[0].psnr)


def measure(shared: Path) -> dict[str, float]:
    """The five ``eval_metrics`` of the shipped weights (rounded to 0.01 dB)."""
    from ldct_invrep.data.dev_pairs import read_dev_pairs
    from ldct_invrep.inference import SliceDenoiser
    from ldct_invrep.io import read_series
    from ldct_invrep.recipes import open_ct_sources
    from ldct_invrep.transforms.lowdose import simulate_low_dose

    denoiser, _ = SliceDenoiser.from_checkpoint()
    series = [read_series(path) for path in open_ct_sources(shared)["test"]]
    figures: dict[str, float] = {}
    for f in DOSES:
        scores = []
        for i, s in enumerate(series):
            clean = np.clip(s.hu[0], -1024, 3072).astype(np.float32)
            noisy = simulate_low_dose(
                clean, f, float(np.mean(s.spacing[1:])), seed=i, padding=s.hu[0] < -1500,
                slice_thickness_mm=float(s.datasets[0].SliceThickness),
            )  # fmt: skip
            scores.append(_psnr(denoiser.denoise(noisy), clean))
        figures[f"heldout_patients_dose{f:g}_abdomen_psnr_dr400"] = round(float(np.mean(scores)), 2)
    pairs = {p.name: p for p in read_dev_pairs(shared)}
    for name, key in REAL_PAIRS.items():
        if name not in pairs:
            raise SystemExit(f"{shared}: the real pair {name} is missing (data.dev_pairs layout)")
        figures[f"{key}_abdomen_psnr_dr400"] = round(_psnr(denoiser.denoise(pairs[name].quarter), pairs[name].full), 2)
    return figures


def write_metadata(figures: dict[str, float], path: Path = METADATA) -> None:
    """Replace ``eval_metrics`` in the bundle's metadata.json (key order and the rest of the file kept)."""
    from ldct_invrep.io import atomic_output_file

    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["eval_metrics"] = figures
    with atomic_output_file(path, overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=4) + "\n", encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared-data", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--write", action="store_true", help=f"write the figures into {METADATA.relative_to(REPO_ROOT)}")
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    figures = measure(args.shared_data)
    print(json.dumps(figures, indent=1))
    if args.write:
        write_metadata(figures)
        print(f"wrote eval_metrics -> {METADATA}", file=sys.stderr)


if __name__ == "__main__":
    main()
