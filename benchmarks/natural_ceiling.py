"""The fidelity ceiling of a natural-image Restorer: E_X -> G_Y given the *clean* image (AWGN of sigma 0).

No denoiser can return an image closer to the truth than it returns the truth itself, so this PSNR bounds
what the Restorer can score on noisy inputs of the same images; a model whose ceiling sits near its noisy-input
scores is limited by its generator, not by the noise it removes (docs/natural_campaign.md). The images and
metrics are the campaign curve's (``data.noisy_sets``, ``evaluation.evaluate_natural``, 8-bit rounding).

    .venv/bin/python benchmarks/natural_ceiling.py campaign/natural_colour/full/lir_restorer.pt --dataset-dir ../shared/data
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from ldct_invrep.data.noisy_sets import noisy_test_set
from ldct_invrep.evaluation import Method, evaluate_natural, natural_restorer_fn
from ldct_invrep.io.checkpoint import load_restorer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("restorers", type=Path, nargs="+", help="Restorer files (io.checkpoint.save_restorer)")
    p.add_argument("--dataset-dir", type=Path, default=Path(os.environ.get("LDCT_INVREP_SHARED_DATA", "../shared/data")))
    p.add_argument("--sets", nargs="+", default=["kodak24:6", "cbsd68:8"], metavar="FOLDER:N", help="first N images of each")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for path in args.restorers:
        restorer, header = load_restorer(path)
        fn = natural_restorer_fn(restorer.eval())
        channels = int(header.get("config", {}).get("in_channels", 3))
        scores = []
        for spec in args.sets:
            folder, _, n = spec.partition(":")
            images = noisy_test_set(args.dataset_dir / folder, "awgn", 0.0, 0, channels=channels, max_images=int(n) if n else None)
            s = evaluate_natural(images, "awgn", 0.0, methods={"lir": Method(fn, "LIR")}).summary("lir")
            scores.append(f"{folder}[:{len(images)}] {s['psnr']['mean']:.2f} dB / {s['ssim']['mean']:.3f}")
        print(f"{path}: {header.get('iterations', '?')} iterations; clean image in -> " + "; ".join(scores))


if __name__ == "__main__":
    main()
