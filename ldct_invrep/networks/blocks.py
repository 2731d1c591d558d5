"""Building blocks shared by the LIR encoders, generators and discriminators.

MONAI reuse: normalisation and activation layers come from MONAI's layer factories
(``monai.networks.layers.get_norm_layer`` / ``get_act_layer``). The convolution itself is our own:
``monai.networks.blocks.Convolution`` only zero-pads (no padding mode), while the UNIT/LIR generator
side pads by reflection, and ``monai.networks.blocks.ResidualUnit`` cannot express the UNIT residual
block (conv-norm-act, conv-norm, identity add): its last subunit is either a full
norm+activation unit or a bare convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.layers import get_act_layer, get_norm_layer
from torch import Tensor, nn

__all__ = [
    "NORMS",
    "PAD_MODES",
    "ConvBlock",
    "Pad2d",
    "ResidualBlock",
    "UpsampleBlock",
    "count_parameters",
    "init_weights",
    "make_act",
    "make_norm",
]

NORMS = ("instance", "batch", "layer", "none")
PAD_MODES = ("reflect", "replicate", "zeros")


def make_norm(norm: str, channels: int) -> nn.Module:
    """Normalisation layer by name.

    ``"instance"``: InstanceNorm2d without affine (UNIT); ``"batch"``: BatchNorm2d (official LIR code);
    ``"layer"``: UNIT's layer norm, i.e. per sample over C x H x W with a per-channel affine, which is
    exactly ``GroupNorm(1, C)``; ``"none"``: identity.
    """
    if norm == "instance":
        return get_norm_layer("instance", spatial_dims=2, channels=channels)
    if norm == "batch":
        return get_norm_layer("batch", spatial_dims=2, channels=channels)
    if norm == "layer":
        return get_norm_layer(("group", {"num_groups": 1}), spatial_dims=2, channels=channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


def make_act(act: str) -> nn.Module:
    """Activation by name: ``relu``, ``lrelu`` (slope 0.2), ``tanh`` or ``none``."""
    if act == "relu":
        return get_act_layer(("relu", {"inplace": True}))
    if act == "lrelu":
        return get_act_layer(("leakyrelu", {"negative_slope": 0.2, "inplace": True}))
    if act == "tanh":
        return get_act_layer("tanh")
    if act == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {act!r}")


class Pad2d(nn.Module):
    """Explicit spatial padding by ``reflect``, ``replicate`` or ``zeros``.

    Reflection needs the padding to be smaller than the padded dimension; for maps too small for that
    (e.g. a 1 x 1 code of a tiny image) reflection falls back to replication, so any input size works.
    """

    def __init__(self, padding: int | tuple[int, int, int, int], mode: str = "reflect") -> None:
        super().__init__()
        if mode not in PAD_MODES:
            raise ValueError(f"unknown pad mode {mode!r}; expected one of {PAD_MODES}")
        self.padding = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        if not any(self.padding):
            return x
        mode = self.mode
        if mode == "zeros":
            return F.pad(x, self.padding, mode="constant", value=0.0)
        if mode == "reflect":
            left, right, top, bottom = self.padding
            h, w = x.shape[-2:]
            if max(left, right) >= w or max(top, bottom) >= h:
                mode = "replicate"
        return F.pad(x, self.padding, mode=mode)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, mode={self.mode!r}"


class ConvBlock(nn.Sequential):
    """Explicit pad, conv (with bias), norm, activation: the unit every LIR network is made of."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | None = None,
        *,
        norm: str = "none",
        act: str = "relu",
        pad_mode: str = "reflect",
    ) -> None:
        pad = (kernel_size - 1) // 2 if padding is None else padding
        super().__init__()
        self.add_module("pad", Pad2d(pad, pad_mode))
        self.add_module("conv", nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=0, bias=True))
        self.add_module("norm", make_norm(norm, out_channels))
        self.add_module("act", make_act(act))


class ResidualBlock(nn.Module):
    """UNIT residual block: 3x3 conv-norm-ReLU, 3x3 conv-norm, identity skip, no activation after the add."""

    def __init__(self, channels: int, norm: str = "instance", pad_mode: str = "reflect") -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBlock(channels, channels, 3, norm=norm, act="relu", pad_mode=pad_mode),
            ConvBlock(channels, channels, 3, norm=norm, act="none", pad_mode=pad_mode),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class UpsampleBlock(nn.Sequential):
    """Nearest-neighbour x2 upsampling, then 5x5 conv with layer norm and ReLU (UNIT decoder stage)."""

    def __init__(self, in_channels: int, out_channels: int, pad_mode: str = "reflect") -> None:
        super().__init__()
        self.add_module("up", nn.Upsample(scale_factor=2, mode="nearest"))
        self.add_module("conv", ConvBlock(in_channels, out_channels, 5, norm="layer", act="relu", pad_mode=pad_mode))


def init_weights(module: nn.Module, kind: str) -> None:
    """Initialise conv/linear weights in place: ``"kaiming"`` (normal, fan-in; generator side) or
    ``"gan"`` (N(0, 0.02); discriminators). Biases are set to zero, norm layers keep their defaults."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if kind == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0.0, mode="fan_in")
            elif kind == "gan":
                nn.init.normal_(m.weight, 0.0, 0.02)
            else:
                raise ValueError(f"unknown init {kind!r}")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@torch.no_grad()
def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
