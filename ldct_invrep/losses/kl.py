"""KL loss on the noise code (section 3.3)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.modules.loss import _Loss

from ldct_invrep.losses._reduction import check_reduction, reduce


class NoiseCodeKLLoss(_Loss):
    """KL loss L^KL of section 3.3 (eq. 14, lambda_KL = 0.01) on the noise code z_X^N = E_X^N(x).

    The noise encoder outputs the mean ``mu`` of a Gaussian with fixed unit variance (the UNIT "reduced VAE").
    For ``N(mu, I)`` against the prior ``N(0, I)`` the KL divergence per element is exactly ``0.5 * mu**2``,
    so the loss is ``0.5 * mean(mu**2)`` (``"sum"``: ``0.5 * sum(mu**2)``; ``"none"``: element-wise).

    Deviation from the official code: it uses ``mean(mu**2)`` without the 1/2 and applies it to every code;
    the paper puts it on the noise code only, which is what ``LIRObjective`` does by default.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction=check_reduction(reduction, owner=type(self).__name__))

    def forward(self, mu: Tensor) -> Tensor:
        return reduce(0.5 * torch.square(mu), self.reduction)
