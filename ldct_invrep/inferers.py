"""Geometric self-ensemble: the mean of a network's outputs over flipped and transposed copies of its input.

Not part of LIR; a standard restoration practice (Timofte et al., CVPR 2016, "Seven ways to improve
example-based single image super resolution"; Lim et al., CVPRW 2017, EDSR+). A small denoiser does not
respond to noise in exactly the same way at every orientation, and CT noise itself is anisotropic, so
averaging its outputs over the 8 rotations/reflections of the square (or the 4 flips, or 2) cancels part of what
it gets wrong (docs/shipped_weights.md measures it on the shipped model). Costs ``n_transforms`` forward passes.

MONAI's ``monai.data.TestTimeAugmentation`` draws *random* invertible dictionary transforms to estimate
uncertainty; this is the deterministic, tensor-level mean over a fixed group, written as a MONAI ``Inferer``
so it wraps any other inferer (``SimpleInferer``, ``SlidingWindowInferer``) and fits bundle configs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer, SimpleInferer
from torch import Tensor

from ldct_invrep.io.checkpoint import SELF_ENSEMBLE_SIZES

__all__ = ["SELF_ENSEMBLE_SIZES", "SelfEnsembleInferer"]


def _transform(x: Tensor, k: int) -> Tensor:
    """Element ``k`` (0-7) of the dihedral group on the last two axes: bit 0 flips W, bit 1 flips H, bit 2 transposes.
    The first ``n`` elements of a self-ensemble of ``n`` (:data:`SELF_ENSEMBLE_SIZES`) are: the input (1), and its
    horizontal flip (2), and the vertical and both flips (4), and the transposes of these (8)."""
    if k & 1:
        x = torch.flip(x, dims=(-1,))
    if k & 2:
        x = torch.flip(x, dims=(-2,))
    if k & 4:
        x = x.transpose(-1, -2)
    return x


def _inverse(x: Tensor, k: int) -> Tensor:
    """Undo :func:`_transform` ``k`` (the same steps in reverse order)."""
    if k & 4:
        x = x.transpose(-1, -2)
    if k & 2:
        x = torch.flip(x, dims=(-2,))
    if k & 1:
        x = torch.flip(x, dims=(-1,))
    return x


class SelfEnsembleInferer(Inferer):
    """Run ``inferer`` on ``n_transforms`` flipped/transposed copies of ``(B, C, H, W)`` inputs and return the
    mean of the outputs mapped back (``n_transforms`` in :data:`SELF_ENSEMBLE_SIZES`; 1 is plain inference).

    Transposed copies are W x H, so the network must take any size (fully convolutional); copies go
    through one at a time, so peak memory is that of one forward pass.
    """

    def __init__(self, n_transforms: int = 8, inferer: Inferer | None = None) -> None:
        super().__init__()
        if n_transforms not in SELF_ENSEMBLE_SIZES:
            raise ValueError(f"self-ensemble size must be one of {SELF_ENSEMBLE_SIZES}, got {n_transforms!r}")
        self.n_transforms = int(n_transforms)
        self.inferer = inferer if inferer is not None else SimpleInferer()

    def __call__(self, inputs: Tensor, network: Callable[..., Tensor], *args: Any, **kwargs: Any) -> Tensor:
        total: Tensor | None = None
        for k in range(self.n_transforms):
            out = _inverse(self.inferer(_transform(inputs, k), network, *args, **kwargs), k).float()
            total = out if total is None else total + out
        assert total is not None
        return total / self.n_transforms
