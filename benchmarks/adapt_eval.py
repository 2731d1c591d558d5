"""Does ``ldct-invrep adapt`` help on real scans it was never trained on? PSNR/SSIM against full dose before
and after adapting on real quarter-dose slices only (issue 17, "Done means").

Data: the 3 real quarter/full-dose pairs of ``ldct_pairs_dev/eunh_low_dose_CT`` (AAPM-Mayo 2016 data, read in
place by ``ldct_invrep.data.dev_pairs.read_dev_pairs``; never copied, never committed, never in the default
model's training). The adaptation sees the 3 quarter-dose slices only, as one low-dose series (one of them is
held out for the no-reference check, as ``adapt`` always does); the full-dose slices are used for scoring
only. For each budget an independent adaptation starts from the training state (``--from``, default the
shipped model's) with ``Adaptation`` exactly as the command runs it, except that the drift guard is reported
instead of enforced (tolerance infinite here, the default tolerance's verdict shown), so every budget gets
its figures. All 3 slices are scored, the held-out one marked. ``--nested`` runs one adaptation instead and
extends it budget by budget with ``--resume`` (as a user would), so the largest budget costs its own time only;
with ``--iterations`` the figures do not depend on the machine's load, and ``--minutes`` budgets translate to
iterations by the rate ``adapt`` reaches on idle cores.

    .venv/bin/python benchmarks/adapt_eval.py --dataset-dir ../shared/data --minutes 5 10 20 --threads 2
    .venv/bin/python benchmarks/adapt_eval.py --dataset-dir ../shared/data --from STATE --iterations 4 \\
        --batch-size 2 --checkpoint-every 2    # smoke run

Prints one table per HU window (abdomen [-160, 240], data range 400; full [-1024, 3072], 4096): PSNR and SSIM
per slice and their mean for the quarter-dose input, the unadapted model ("before") and each budget, and the
check's soft-tissue drift; writes ``results.json`` to ``--work`` (default: a temporary folder). The adapted
weights are derived from AAPM data: they stay in ``--work`` and must not be shipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ldct_invrep.adaptation import (
    DEFAULT_MAX_DRIFT_HU,
    DEFAULT_MAX_NOISE_RATIO,
    Adaptation,
    SeriesSlices,
    build_trainer,
    normal_dose_slices,
    prepare_data,
)
from ldct_invrep.data.dev_pairs import read_dev_pairs
from ldct_invrep.engine.training_state import default_training_state_path, read_training_state
from ldct_invrep.inference import SliceDenoiser
from ldct_invrep.metrics import compute_metrics

WINDOWS = ("abdomen", "full")


def score(restorer: torch.nn.Module, header: dict, quarter: np.ndarray, full: np.ndarray) -> dict[str, list]:
    """Per-slice (PSNR, SSIM) of the restored quarter dose against full dose, by window."""
    out = SliceDenoiser.from_header(restorer, header, batch_size=1).denoise(quarter)
    return {w: [(m.psnr, m.ssim) for m in compute_metrics(out, full, w)] for w in WINDOWS}


def table(window: str, names: list[str], held_out: list[int], rows: dict[str, dict]) -> str:
    cols = [f"{n}{' (held out)' if i in held_out else ''}" for i, n in enumerate(names)] + ["mean"]
    lines = [f"{window} window: PSNR (dB) / SSIM against full dose"]
    lines.append("| | " + " | ".join(cols) + " | soft-tissue drift (HU) |")
    lines.append("|---" * (len(cols) + 2) + "|")
    for label, row in rows.items():
        per = row["scores"][window]
        cells = [f"{p:.2f} / {s:.4f}" for p, s in per]
        cells.append(f"{np.mean([p for p, _ in per]):.2f} / {np.mean([s for _, s in per]):.4f}")
        drift = row.get("drift_hu")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {'' if drift is None else f'{drift:+.1f}'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset-dir", type=Path, required=True, help="holds ldct_pairs_dev/eunh_low_dose_CT")
    p.add_argument("--from", dest="from_state", type=Path, default=None, help="training state [default: the shipped one]")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, nargs="+", default=None, help="budgets in minutes [default: 5 10 20]")
    budget.add_argument("--iterations", type=int, nargs="+", default=None, help="budgets in iterations instead")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--checkpoint-every", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=None, help="folder for the adapted models and results.json")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--nested", action="store_true", help="one adaptation, extended budget by budget (--resume)")
    p.add_argument("--normal-dose", type=Path, nargs="+", default=[], help="normal-dose series added to the clean domain")
    p.add_argument("--lr-scale", type=float, default=1.0, help="multiply the state's learning rates (fine-tuning)")
    p.add_argument("--adversarial-scale", type=float, default=1.0,
                   help="multiply the domain adversarial weight (eq. 12-13) of the generators' loss")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    pairs = [x for x in read_dev_pairs(args.dataset_dir) if x.name.startswith("eunh_")]
    if not pairs:
        raise SystemExit(f"{args.dataset_dir}: no ldct_pairs_dev/eunh_low_dose_CT pairs found")
    state_path = args.from_state or default_training_state_path()
    if not state_path.is_file():
        raise SystemExit(f"{state_path}: no training state (the new default model's state ships later); pass --from")
    base = read_training_state(state_path)
    work = args.work or Path(tempfile.mkdtemp(prefix="adapt_eval_"))
    work.mkdir(parents=True, exist_ok=True)

    names = [x.name for x in pairs]
    quarter = np.stack([x.quarter for x in pairs])
    full = np.stack([x.full for x in pairs])
    low = SeriesSlices(quarter, pairs[0].pixel_spacing_mm, label="eunh_low_dose_CT quarter dose")
    source = str(args.dataset_dir / "ldct_pairs_dev" / "eunh_low_dose_CT")
    data = prepare_data([low], normal_dose_slices(args.normal_dose), source=source)
    held_out = data.record["held_out_slices"]

    rows: dict[str, dict] = {
        "quarter dose (input)": {"scores": {w: [(m.psnr, m.ssim) for m in compute_metrics(quarter, full, w)] for w in WINDOWS}},
        "before (unadapted)": {"scores": score(base.restorer(), base.header, quarter, full)},
    }
    if args.iterations:
        budgets = [("iterations", n) for n in args.iterations]
    else:
        budgets = [("minutes", m) for m in (args.minutes or [5.0, 10.0, 20.0])]
    if args.nested:
        budgets.sort(key=lambda b: b[1])
    for i, (kind, amount) in enumerate(budgets):
        label = f"adapted {amount:g} {'min' if kind == 'minutes' else 'it'}"
        out = work / ("adapted.pt" if args.nested else f"adapted_{amount:g}{'min' if kind == 'minutes' else 'it'}.pt")
        resume = args.nested and i > 0
        torch.manual_seed(args.seed)
        trainer = build_trainer(
            base, data, batch_size=args.batch_size, seed=args.seed, checkpoint_every=args.checkpoint_every
        )
        trainer.objective.weights.adversarial *= args.adversarial_scale
        run = Adaptation(
            trainer, base, data, out, **{kind: amount}, max_drift_hu=math.inf, max_noise_ratio=math.inf, overwrite=not resume, resume=resume,
            quiet=args.quiet,
        )  # fmt: skip
        if not resume:  # a resumed run's optimiser state holds the scaled rates already
            for optimizer in (trainer.g_optimizer, trainer.d_optimizer):
                for group in optimizer.param_groups:
                    group["lr"] *= args.lr_scale
        t0 = time.perf_counter()
        run.run()
        check = run.finish(report=lambda text: print(text, file=sys.stderr))
        restorer, header = run.adapted_network().cpu().eval().restorer(), base.header
        rows[label] = {
            "scores": score(restorer, header, quarter, full),
            "iterations": run.iterations,
            "seconds": round(time.perf_counter() - t0, 1),
            "seconds_in_total": round(run.budget.seconds_run(), 1),
            "drift_hu": check.drift_after,
            "guard_at_default_tolerance": "passes" if dataclasses.replace(
                check, max_drift_hu=DEFAULT_MAX_DRIFT_HU, max_noise_ratio=DEFAULT_MAX_NOISE_RATIO).accepted else "refuses",
            "check": check.to_dict(),
        }
        rows["before (unadapted)"]["drift_hu"] = check.drift_before
    for window in WINDOWS:
        print(table(window, names, held_out, rows))
        print()
    for label, row in rows.items():
        if "iterations" in row:
            guard = (f"guards at their defaults (drift {DEFAULT_MAX_DRIFT_HU:g} HU, noise x{DEFAULT_MAX_NOISE_RATIO:g}): "
                     f"{row['guard_at_default_tolerance']}")
            print(f"{label}: {row['iterations']} iterations, {row['seconds']} s in this run ({row['seconds_in_total']} s in total); {guard}")
    result = {
        "from": state_path.name, "threads": args.threads, "batch_size": args.batch_size, "nested": args.nested, "slices": names,
        "normal_dose": [str(x) for x in args.normal_dose], "lr_scale": args.lr_scale,
        "adversarial_scale": args.adversarial_scale,
        "held_out": [names[i] for i in held_out], "adapted_on": data.record["low_dose_series"], "rows": rows,
    }  # fmt: skip
    (work / "results.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {work / 'results.json'}")
    return result


if __name__ == "__main__":
    main()
