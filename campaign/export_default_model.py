"""Export the default model from the campaign's training checkpoints: the mean of the checkpoints from
``--average-from`` on (weights and batch-norm statistics, ``engine.average_checkpoints``), as the shipped
Restorer with its header (data, recipe, selection, self-ensemble).

    python campaign/export_default_model.py --run runs/ct_campaign --average-from 2000 --self-ensemble 4 \
        --out ldct_invrep/weights/lir_ct.pt
    python campaign/export_default_model.py --run runs/ct_wide --mean campaign/ct_wide24/mean_1750_3500.pt \
        --base-channels 24 --self-ensemble 2 --out wide.pt

``--mean`` takes the running mean a campaign kept (``ct_default_model.py --average-from/--average-to``) instead
of the run folder's checkpoints.

The averaging rule (second half of the run) is fixed before looking at any score; the self-ensemble is
chosen by the inference budget (0.5 s a 512x512 slice on 2 cores, benchmarks/denoise_speed.py).
``--reference-noise`` (HU) is the normal-dose noise the output keeps (``transforms.reference_noise``): 10 HU
was fitted on simulated pairs of the *training* patients (benchmarks/reference_noise_fit.py), never on the
held-out patients or the real pairs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from ldct_invrep.engine.checkpoint import average_checkpoints, checkpoint_iterations  # noqa: E402
from ldct_invrep.io.checkpoint import SELF_ENSEMBLE_SIZES, save_restorer  # noqa: E402
from ldct_invrep.networks import LIRNet, get_config  # noqa: E402
from ldct_invrep.recipes import HELD_OUT_PATIENTS  # noqa: E402
from ct_default_model import network_overrides  # noqa: E402 (the campaign's --base-channels/--n-res, read alike)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="the campaign's --work folder (its cache's manifest goes in the header)")
    p.add_argument("--average-from", type=int, default=None, help="first checkpoint iteration in the mean")
    p.add_argument("--average-to", type=int, default=None, help="last checkpoint iteration in the mean (default: all)")
    p.add_argument("--self-ensemble", type=int, default=4, choices=SELF_ENSEMBLE_SIZES)
    p.add_argument("--reference-noise", type=float, default=10.0, help="reference_noise_hu in the header (0: off)")
    p.add_argument("--base-channels", type=int, default=None, help="as the campaign's (default: the ct preset's 16)")
    p.add_argument("--n-res", type=int, default=None, help="as the campaign's (default: the ct preset's 4)")
    p.add_argument("--mean", type=Path, default=None,
                   help="instead of --average-from/--average-to: a running mean the campaign kept (its --average-from/-to; "
                   "committed with the state, so it outlives the run folder's checkpoints)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    if (args.mean is None) == (args.average_from is None):
        p.error("give --average-from (checkpoints of --run) or --mean (a campaign's running mean), one of them")
    overrides = network_overrides(args)
    net = LIRNet(get_config("ct", **overrides))
    if args.mean is not None:
        saved = torch.load(args.mean, map_location="cpu", weights_only=True)
        net.load_state_dict(saved["network"])
        its = list(saved["iterations"])
    else:
        found = {i: f for i, f in checkpoint_iterations(args.run / "models").items() if i >= args.average_from and (args.average_to is None or i <= args.average_to)}
        if not found:
            raise SystemExit(f"{args.run}/models: no checkpoint from iteration {args.average_from} on")
        net = average_checkpoints(net, list(found.values()))
        its = sorted(found)
    manifest = json.loads((args.run / "cache" / "ct_default_model.json").read_text(encoding="utf-8"))
    header = {
        "bundle": "ldct_simulated (configs/train.json + configs/train_default_model.json)",
        "preset": "ct",
        **overrides,
        "ablation": "full",
        "semantic_weight": 0.0,
        "adversarial_weight": 1.0,
        "cross_cycle_weight": 1.0,
        "self_ensemble": args.self_ensemble,
        "reference_noise_hu": args.reference_noise,
        "learning_rate": 3e-4,
        "d_learning_rate": 1e-3,
        "lr_decay": "x0.5 every 20000 iterations (exponential)",
        "batch_size": 16,
        "patch_size": 64,
        "iterations": its[-1],
        "averaged_iterations": its,
        "selected_by": f"mean of the weights of the {len(its)} checkpoints at iterations {its[0]}-{its[-1]} "
        "(second half of the run, fixed in advance)",
        "hu_range": [-1024.0, 3072.0],
        "value_range": [-1.0, 1.0],
        "window": "full",
        "data": "openly licensed normal-dose CT (12 patients, 3 vendors) with simulated low dose, dose fractions "
        "0.05-0.5 of each scan's own (dose-relative projection-domain noise insertion); X and Y both hold every "
        "training slice, drawn independently (unpaired)",
        "dose_fraction": manifest["dose_fraction"],
        "calibration": "self",
        "sources": sorted({Path(s["source"]).name for s in manifest["sources"] if not s.get("held_out")}),
        "held_out_patients": list(HELD_OUT_PATIENTS),
        "attribution": "TotalSegmentator (Apache-2.0, Wasserthal et al. 2023); TCIA COVID-19-NY-SBU (CC BY 4.0); "
        "QIICR dcmqi liver CT (BSD-3); see ldct_invrep/weights/ATTRIBUTION.md",
        "cache_sha256": manifest["cache_sha256"],
        "seed": manifest["seed"],
    }
    save_restorer(args.out, net, header)
    print(f"wrote {args.out}: mean of {len(its)} checkpoints ({its[0]}-{its[-1]}), self-ensemble {args.self_ensemble}, "
          f"reference noise {args.reference_noise:g} HU")


if __name__ == "__main__":
    main()
