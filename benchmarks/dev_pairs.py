"""Write docs/dev_pairs.md: the baselines and an LIR checkpoint on the real quarter/full-dose development pairs,
one table per pair and the mean.

The pairs are the 5 real AAPM-Mayo 2016 slices of ``ldct_invrep.data.dev_pairs``, read through a datalist
(``--pairs``, as ``ldct-invrep prepare ldct-dev DIR`` writes it; default: one written for ``--shared-data`` into
a temporary folder). They are read in place and only scored: nothing below is trained or tuned on them.

* **input**: the quarter-dose slice itself;
* **bm3d**: one sigma for all slices, the best mean abdomen-window PSNR over simulated *training* pairs of the
  CT cache (``--cache``: the default model's, open data only; ``baselines.tune_bm3d_sigma``);
* **bm3d_blind**: sigma = factor x each slice's own noise level (``baselines.bm3d.blind_sigma_hu``), the
  factor fitted on the same training pairs (``baselines.tune_bm3d_blind_factor``);
* **redcnn**: RED-CNN supervised on the same cache's simulated pairs (``--redcnn``, written by
  ``python -m ldct_invrep.baselines.train_redcnn``; it tells simulation gaps from LIR gaps);
* **lir**: ``--weights`` (default: the shipped weights), with the self-ensemble its header names.

Columns: PSNR and SSIM in the abdomen window [-160, 240] HU and the full range [-1024, 3072] HU, the
soft-tissue bias (``metrics.soft_tissue_bias``) and the seconds per slice, measured in this run (the document
records the CPU load average around it: other jobs on the machine slow every method).

    .venv/bin/python benchmarks/dev_pairs.py --cache CACHE.npz \\
        --redcnn benchmarks/models/redcnn32_open_ct_sim.pt [--weights FILE] [--threads 1] [--overwrite]

``--bm3d-sigma-hu`` / ``--bm3d-blind-factor`` skip the tuning (132 BM3D runs on 256 x 256 crops, about 5 min
on an idle core). The RED-CNN weights in ``benchmarks/models/`` (open data only: the default model's cache has
no Mayo data) were trained on the cache's simulated pairs with

    python -m ldct_invrep.baselines.train_redcnn --cache CACHE.npz --out benchmarks/models/redcnn32_open_ct_sim.pt \
        --iterations 12000 --channels 32 --patches 32768 --threads 1 --max-minutes 40

(niced, on a loaded machine: the 40-minute budget stopped it early; its header records the iterations done).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the report helpers shared with reproduce_tables.py

from _report import DEFAULT_SHARED, REPO_ROOT, header_of, present, start_report, training_text  # noqa: E402

from ldct_invrep.baselines import tune_bm3d_blind_factor, tune_bm3d_sigma  # noqa: E402
from ldct_invrep.errors import InputError  # noqa: E402
from ldct_invrep.evaluation import (  # noqa: E402
    EvaluationResult,
    build_methods,
    evaluate_methods,
    load_pairs_from_datalist,
)

METHOD_ORDER = ("input", "bm3d", "bm3d_blind", "redcnn", "lir")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=Path, default=None, help="datalist of the dev pairs (ldct-invrep prepare ldct-dev)")
    p.add_argument("--shared-data", type=Path, default=DEFAULT_SHARED, help="where the pairs are, when --pairs is not given")
    p.add_argument("--cache", type=Path, default=None, help="CT training cache whose simulated training pairs tune BM3D")
    p.add_argument("--redcnn", type=Path, default=None, help="RED-CNN checkpoint (train_redcnn); absent: no RED-CNN row")
    p.add_argument("--weights", type=Path, default=None, help="LIR checkpoint [default: the shipped weights]")
    p.add_argument("--bm3d-sigma-hu", type=float, default=None, help="skip tuning: BM3D's sigma in HU")
    p.add_argument("--bm3d-blind-factor", type=float, default=None, help="skip tuning: blind BM3D's factor")
    p.add_argument("--tune-sigmas", type=float, nargs="+", default=[60, 80, 100, 120, 150, 200])
    p.add_argument("--tune-factors", type=float, nargs="+", default=[2.0, 3.0, 4.0, 5.0, 6.0])
    p.add_argument("--tune-pairs", type=int, default=12, help="seeded random training pairs at their acquired spacing")
    p.add_argument("--tune-crop", type=int, default=256, help="centred crop BM3D is tuned on (pixels)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "dev_pairs.md")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    return p


def tuning_pairs(args: argparse.Namespace) -> list[tuple[str, Any, Any]]:
    """Seeded random simulated training pairs of the cache, full-size slices at their acquired spacing."""
    from ldct_invrep.baselines.train_redcnn import load_paired_training_slices

    noisy, clean, names = load_paired_training_slices(
        args.cache, max_slices=args.tune_pairs, seed=args.seed, resampled=False, min_size=args.tune_crop
    )
    return list(zip(names, noisy, clean, strict=True))


def cache_text(cache: Path) -> str:
    """The cache by name, checksum and recipe (from its manifest)."""
    m = json.loads(cache.with_suffix(".json").read_text(encoding="utf-8"))
    sources = m.get("sources", [])
    held = sum(1 for e in sources if e.get("held_out"))
    return (f"`{cache.name}` (sha256 {str(m.get('cache_sha256'))[:12]}: {len(sources) - held} training and {held} held-out "
            f"series, dose fractions {m.get('dose_fraction')} of each scan's own dose, {m.get('noisy_copies', 1)} noisy "
            f"copies per slice, resampled to {m.get('resample_spacings_mm')} mm)")


def where_text(path: Path) -> str:
    """``path`` relative to the repository (e.g. ``../shared/data``) when it is next to it, else its name."""
    rel = os.path.relpath(path.resolve(), REPO_ROOT)
    return rel if not rel.startswith(os.pardir + os.sep + os.pardir) else path.name


def fit_bm3d(args: argparse.Namespace, say: Callable[[str], None]) -> tuple[float, float, list[str]]:
    """(sigma HU, blind factor, lines saying how each was chosen)."""
    lines = []
    need = args.bm3d_sigma_hu is None or args.bm3d_blind_factor is None
    if need and args.cache is None:
        raise InputError("--cache is needed to tune BM3D (or give --bm3d-sigma-hu and --bm3d-blind-factor)")
    pairs = tuning_pairs(args) if need else []
    where = (f"{len(pairs)} simulated *training* pairs of {cache_text(args.cache)}; seeded random, slices of at least "
             f"{args.tune_crop} px at their acquired spacing, centre {args.tune_crop} px crops, abdomen-window PSNR: "
             + ", ".join(f"`{n}`" for n, _, _ in pairs)) if pairs else ""
    if args.bm3d_sigma_hu is None:
        say(f"tuning BM3D's sigma on {len(pairs)} training pairs: {args.tune_sigmas}")
        sigma, scores = tune_bm3d_sigma(pairs, args.tune_sigmas, crop=args.tune_crop)
        lines.append(f"BM3D sigma {sigma:g} HU: best of " + ", ".join(f"{s:g} HU {v:.2f} dB" for s, v in scores.items()))
    else:
        sigma = args.bm3d_sigma_hu
        lines.append(f"BM3D sigma {sigma:g} HU: given (--bm3d-sigma-hu)")
    if args.bm3d_blind_factor is None:
        say(f"fitting blind BM3D's factor on the same pairs: {args.tune_factors}")
        factor, scores = tune_bm3d_blind_factor(pairs, args.tune_factors, crop=args.tune_crop)
        lines.append(f"blind BM3D factor {factor:g}: best of " + ", ".join(f"{f:g} {v:.2f} dB" for f, v in scores.items()))
    else:
        factor = args.bm3d_blind_factor
        lines.append(f"blind BM3D factor {factor:g}: given (--bm3d-blind-factor)")
    if where:
        lines.append(f"Fitted on {where}.")
    return float(sigma), float(factor), lines


def comparison(result: EvaluationResult) -> str:
    """LIR minus each other method, abdomen-window PSNR (dB) and SSIM, per pair: the issue's acceptance figures."""
    others = [m for m in result.methods if m != "lir"]
    head = "| pair | " + " | ".join(f"vs {m}: PSNR / SSIM" for m in others) + " |"
    lines = [head, "|---|" + "---:|" * len(others)]
    for image in result.images:
        lir = result.summary("lir", "abdomen", [image])
        cells = []
        for m in others:
            o = result.summary(m, "abdomen", [image])
            cells.append(f"{lir['psnr']['mean'] - o['psnr']['mean']:+.2f} / {lir['ssim']['mean'] - o['ssim']['mean']:+.4f}")
        lines.append(f"| {image} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    args = build_parser().parse_args(argv)
    run = start_report("dev_pairs.py", args, argv)
    say = run.say
    with tempfile.TemporaryDirectory() as tmp:
        datalist = args.pairs
        if datalist is None:
            from ldct_invrep.data.dev_pairs import write_dev_datalist

            report, datalist = write_dev_datalist(args.shared_data, Path(tmp) / "ldct_dev.json")
            say(report.format())
        sigma, factor, fit_lines = fit_bm3d(args, say)
        names = ["input", "bm3d", "bm3d_blind"] + (["redcnn"] if present(args.redcnn) else []) + ["lir"]
        methods = build_methods(names, lir_weights=args.weights, bm3d_sigma_hu=sigma, bm3d_blind_factor=factor,
                                redcnn_weights=args.redcnn if present(args.redcnn) else None)
        trained = []
        if present(args.redcnn):
            trained.append("RED-CNN: " + training_text(args.redcnn, header_of(args.redcnn, "redcnn")))
        else:
            trained.append("RED-CNN: no checkpoint (--redcnn); no RED-CNN row.")
        lir_path = Path(methods["lir"].info["checkpoint"])
        trained.append("LIR: " + training_text(lir_path, header_of(lir_path, "lir")))
        load_before = os.getloadavg()
        t_eval = time.perf_counter()
        result = evaluate_methods(
            load_pairs_from_datalist(datalist), methods, ("abdomen", "full"), figure=False,
            title="Real development pairs: input, BM3D, blind BM3D, RED-CNN, LIR", progress=say,
            data_description=(
                f"The {{n}} real quarter/full-dose slice pairs of `{where_text(datalist) if args.pairs else 'ldct-invrep prepare ldct-dev ' + where_text(args.shared_data)}` "
                "(AAPM-Mayo 2016 data from three public copies, `ldct_invrep.data.dev_pairs`; see ../shared/data/SOURCES.md): "
                "Mayo L506 1 mm (DICOM), eunh cases 1-3 (lung/heart, liver/kidneys, pelvis; stored as attenuation), "
                "cncl 0001 (chest, 3 mm-like). Read in place, only scored: no model or parameter here was trained or "
                "tuned on them. No images of them are written (AAPM data-use terms)."
            ),
        )
        minutes = (time.perf_counter() - t_eval) / 60.0
        load_after = os.getloadavg()
    result.data_description = result.data_description.replace("{n}", str(len(result.images)))
    result.notes = [
        *fit_lines,
        *trained,
        f"Seconds per slice: wall time on this machine ({os.cpu_count()} CPU(s), torch {torch.get_num_threads()} "
        f"thread(s)), measured under load: the 1-minute load average was {load_before[0]:.1f} before and "
        f"{load_after[0]:.1f} after the {minutes:.1f} min of scoring (other jobs, e.g. a training campaign, "
        "shared the cores), so they are upper bounds; benchmarks/denoise_speed.py measures LIR's speed properly.",
        f"Command: `{run.command}`",
    ]
    text = result.to_markdown(level=1, per_image=True)
    check = ("## LIR against each method (abdomen window)\n\nLIR minus the method, per pair: PSNR in dB / SSIM "
             "(positive: LIR is better).\n\n" + comparison(result) + "\n\n")
    text = text.replace("## Methods\n", check + "## Methods\n", 1)
    print(result.image_table_markdown())
    run.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
