"""RED-CNN (Chen et al., "Low-dose CT with a residual encoder-decoder convolutional neural network",
IEEE TMI 36(12), 2017): the supervised, paired baseline, trained by the same engine as LIR.

Written from the paper's description (Sec. II-C, Fig. 2):

* an encoder of ``n_layers`` (5) convolutions and a symmetric decoder of ``n_layers`` (5) deconvolutions
  (transposed convolutions), ``kernel`` x ``kernel`` (5 x 5), stride 1, **no padding and no pooling**: each
  convolution shrinks the image by ``kernel - 1`` and each deconvolution grows it back, so the output has
  the input's size for any (also odd) size larger than ``n_layers * (kernel - 1)``;
* ``channels`` (96) feature maps in every layer but the last (one per input channel);
* residual compensation: shortcuts add a convolution output to the output of the deconvolution of the
  same size, every second layer, the outermost one adding the input image to the output (for 5 layers:
  input -> deconv 5, conv 2 -> deconv 3, conv 4 -> deconv 1); the sum then goes through the ReLU;
* a ReLU after every layer.

Two deviations, both switchable:

* ``output_relu=False``: the paper's last ReLU assumes images in [0, 1]. Our network range is [-1, 1]
  (HU [-1024, 3072]), where a final ReLU would clip everything below +1024 HU.
* ``identity_init=True``: the last deconvolution starts at zero, so the untrained network is exactly the
  identity (output = input through the outer shortcut) and learns the noise residual from there. The paper
  initialises all layers from N(0, 0.01); the other layers here keep PyTorch's default initialisation.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["REDCNN"]


class REDCNN(nn.Module):
    """Residual encoder-decoder CNN: ``(B, C, H, W) -> (B, C, H, W)``, H and W > ``n_layers * (kernel - 1)``."""

    def __init__(
        self,
        in_channels: int = 1,
        channels: int = 96,
        kernel: int = 5,
        n_layers: int = 5,
        *,
        output_relu: bool = False,
        identity_init: bool = True,
    ) -> None:
        super().__init__()
        if n_layers < 1 or kernel < 1 or channels < 1 or in_channels < 1:
            raise ValueError("REDCNN: in_channels, channels, kernel and n_layers must be positive")
        self.in_channels, self.channels, self.kernel, self.n_layers = in_channels, channels, kernel, n_layers
        self.output_relu = output_relu
        self.encoder = nn.ModuleList(
            nn.Conv2d(in_channels if i == 0 else channels, channels, kernel) for i in range(n_layers)
        )
        self.decoder = nn.ModuleList(
            nn.ConvTranspose2d(channels, in_channels if i == n_layers - 1 else channels, kernel)
            for i in range(n_layers)
        )
        # Encoder level k: 0 = the input, k = output of convolution k. Decoder step i restores level
        # n_layers - 1 - i. Shortcuts every second level counted from the input (Fig. 2).
        self.shortcut_levels: frozenset[int] = frozenset(range(0, n_layers, 2))
        if identity_init:
            nn.init.zeros_(self.decoder[-1].weight)
            nn.init.zeros_(self.decoder[-1].bias)

    @property
    def min_size(self) -> int:
        """Smallest H, W the unpadded convolutions accept."""
        return self.n_layers * (self.kernel - 1) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"REDCNN: expected B x {self.in_channels} x H x W, got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"REDCNN: H and W must be at least {self.min_size}, got {tuple(x.shape[-2:])}")
        kept: dict[int, torch.Tensor] = {0: x} if 0 in self.shortcut_levels else {}
        h = x
        for k, conv in enumerate(self.encoder, start=1):
            h = F.relu(conv(h))
            if k in self.shortcut_levels:
                kept[k] = h
        last = self.n_layers - 1
        for i, deconv in enumerate(self.decoder):
            h = deconv(h)
            level = last - i
            if level in kept:
                h = h + kept.pop(level)
            if i < last or self.output_relu:
                h = F.relu(h)
        return h
