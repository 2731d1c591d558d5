"""Where a natural-image model loses detail: a *clean* image through E_X -> G_Y (the Restorer) and through
E_Y -> G_Y (the clean domain's self-reconstruction), from a variant's committed training state.

If G_Y rebuilds the image well from the clean encoder's code but not from the noisy encoder's, the detail is
lost in E_X's content code, not in the generator (docs/natural_campaign.md). Networks are built as the
campaign builds them (``natural_colour.lirnet_of``, the driver's defaults); PSNR on 8-bit rounded outputs.

    .venv/bin/python campaign/natural_codes_ceiling.py --dataset-dir ../shared/data [--variant full] [--images 6]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import natural_colour  # noqa: E402

from ldct_invrep.data.natural import from_net, load_image_8bit, to_net  # noqa: E402


def main() -> None:
    p = natural_colour.build_parser()
    p.description = __doc__
    p.add_argument("--variant", default="full", choices=list(natural_colour.VARIANTS))
    p.add_argument("--images", type=int, default=6, help="first N Kodak24 images")
    args = p.parse_args(sys.argv[1:] + ["--work", "unused"])  # the driver's required run folder: not used here
    torch.set_num_threads(1)
    state = args.state / args.variant / "checkpoint.pt"
    net = natural_colour.lirnet_of(args, args.variant, state)
    scores: dict[str, list[float]] = {"E_X -> G_Y (the Restorer)": [], "E_Y -> G_Y (clean self-reconstruction)": []}
    paths = sorted((args.dataset_dir / "kodak24").glob("*.png"))[: args.images]
    with torch.inference_mode():
        for path in paths:
            clean = load_image_8bit(path, args.channels)
            x = torch.from_numpy(to_net(clean))[None]
            for (name, values), encoder in zip(scores.items(), (net.content_encoder_x, net.content_encoder_y), strict=True):
                out = from_net(net.generator_y(encoder(x)), quantize=True)[0].numpy()
                values.append(10 * np.log10(1 / np.mean((out - clean) ** 2)))
    print(f"{args.variant} at {torch.load(state, map_location='cpu', weights_only=False)['trainer']['iteration']} iterations "
          f"(clean Kodak24[:{len(paths)}]):")
    for name, values in scores.items():
        print(f"  {name}: {np.mean(values):.2f} dB")


if __name__ == "__main__":
    main()
