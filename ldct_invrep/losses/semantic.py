"""Semantic consistency loss L_SC (eq. 11), the Semantic Consistency Module (SCM)."""

from __future__ import annotations

import os

import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.loss import _Loss

from ldct_invrep.losses._reduction import check_reduction
from ldct_invrep.losses.vgg import VGG19Features

FEATURE_NORMS = ("none", "instance")


class SemanticConsistencyLoss(_Loss):
    """Eq. 11: ``L_SC = ||phi_l(chi) - phi_l(chi~)||_2^2`` on VGG-19 features, as a mean squared error.

    ``phi_l`` is the ImageNet VGG-19 truncated after ``layer`` (paper: ``"conv5_1"``, the default; any of
    ``conv1_1`` ... ``conv5_4`` or ``relu*_*``). The objective applies it to ``(x, x2y)`` and ``(y, y2x)``.
    Inputs are in network range [-1, 1] with 1 or 3 channels (see ``VGG19Features``).

    The network is frozen: parameters have ``requires_grad=False`` and it stays in eval mode even when the
    loss module is put in train mode; gradients flow to the images only.

    ``feature_norm="instance"`` instance-normalises both feature maps (no affine) before the error, as the
    official code does (it also uses conv4_1 rather than the paper's conv5_1: ``layer="conv4_1"``).
    Default ``"none"`` follows eq. 11.

    Weights: ``network`` (an already loaded ``VGG19Features``) or loaded at construction from
    ``weights_path`` / ``$LDCT_INVREP_VGG19_WEIGHTS`` / the torch hub cache (``vgg19-dcbb9e9d.pth``);
    a missing file raises ``FileNotFoundError`` naming the paths. Never downloads.
    Not ``monai.losses.PerceptualLoss``: its VGG option is LPIPS on a downloaded VGG-16, not a VGG-19
    feature MSE at one named layer, and offline use must never trigger a download.
    """

    def __init__(
        self,
        layer: str = "conv5_1",
        weights_path: str | os.PathLike[str] | None = None,
        feature_norm: str = "none",
        reduction: str = "mean",
        network: VGG19Features | None = None,
    ) -> None:
        super().__init__(reduction=check_reduction(reduction, owner=type(self).__name__))
        if feature_norm not in FEATURE_NORMS:
            raise ValueError(
                f"SemanticConsistencyLoss: feature_norm must be one of {FEATURE_NORMS}, got {feature_norm!r}"
            )
        if network is None:
            network = VGG19Features.from_pretrained(layer, weights_path)
        elif network.layer != layer:
            raise ValueError(f"SemanticConsistencyLoss: network is truncated at {network.layer!r}, not {layer!r}")
        self.layer = layer
        self.feature_norm = feature_norm
        self.vgg = network.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> SemanticConsistencyLoss:
        """Switch the loss module's mode; the VGG stays in eval mode."""
        super().train(mode)
        self.vgg.eval()
        return self

    def features(self, image: Tensor) -> Tensor:
        """``phi_l(image)``, instance-normalised when ``feature_norm="instance"``."""
        feats = self.vgg(image)
        if self.feature_norm == "instance":
            feats = F.instance_norm(feats)
        return feats

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 (torch loss naming)
        return F.mse_loss(self.features(input), self.features(target), reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, feature_norm={self.feature_norm!r}"
