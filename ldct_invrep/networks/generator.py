"""Domain generators G_X (noisy, takes z ⊕ z^N, eq. 4-5) and G_Y (clean, takes z, eq. 3, 6)."""

from __future__ import annotations

from torch import Tensor, nn

from .blocks import ConvBlock, ResidualBlock, UpsampleBlock

__all__ = ["Generator"]


class Generator(nn.Module):
    """UNIT-style decoder: ``n_res`` residual blocks at the code width, ``n_upsample`` x [nearest x2 upsample,
    5x5 conv halving the channels, layer norm, ReLU], then a 7x7 conv to ``out_channels`` and tanh,
    so the output lies in the network range [-1, 1].

    ``in_channels`` is the code width: the content code channels for G_Y, content + noise code channels
    for G_X (channel concatenation, eq. 4-5).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 1,
        n_upsample: int = 2,
        n_res: int = 4,
        norm: str = "instance",
        pad_mode: str = "reflect",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [ResidualBlock(in_channels, norm=norm, pad_mode=pad_mode) for _ in range(n_res)]
        ch = in_channels
        for _ in range(n_upsample):
            layers.append(UpsampleBlock(ch, ch // 2, pad_mode=pad_mode))
            ch //= 2
        layers.append(ConvBlock(ch, out_channels, 7, norm="none", act="tanh", pad_mode=pad_mode))
        self.model = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.out_channels = out_channels

    def forward(self, z: Tensor) -> Tensor:
        return self.model(z)
