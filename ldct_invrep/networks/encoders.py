"""Content encoders E_X, E_Y and the noise encoder E_X^N (paper section 3.1, eq. 3-6)."""

from __future__ import annotations

from torch import Tensor, nn

from .blocks import ConvBlock, ResidualBlock

__all__ = ["ContentEncoder", "NoiseEncoder"]


def _downsampling_stem(
    in_channels: int, base_channels: int, n_downsample: int, norm: str, pad_mode: str
) -> tuple[list[nn.Module], int]:
    """The layers both encoders start with, and their output channels: a 7x7 conv to ``base_channels``, then
    ``n_downsample`` stride-2 4x4 convs doubling the channels (all with ``norm`` and ReLU)."""
    layers: list[nn.Module] = [ConvBlock(in_channels, base_channels, 7, norm=norm, act="relu", pad_mode=pad_mode)]
    ch = base_channels
    for _ in range(n_downsample):
        layers.append(ConvBlock(ch, ch * 2, 4, stride=2, padding=1, norm=norm, act="relu", pad_mode=pad_mode))
        ch *= 2
    return layers, ch


class ContentEncoder(nn.Module):
    """Content encoder E_X / E_Y: z = E(x) (eq. 3-6).

    7x7 conv to ``base_channels``, ``n_downsample`` stride-2 4x4 convs doubling the channels, then
    ``n_res`` residual blocks. Output: ``out_channels = base_channels * 2**n_downsample`` channels at
    H / 2**n_downsample x W / 2**n_downsample (H, W must be multiples of 2**n_downsample;
    :class:`~ldct_invrep.networks.lir.Restorer` pads arbitrary sizes).
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 64,
        n_downsample: int = 2,
        n_res: int = 4,
        norm: str = "instance",
        pad_mode: str = "reflect",
    ) -> None:
        super().__init__()
        layers, ch = _downsampling_stem(in_channels, base_channels, n_downsample, norm, pad_mode)
        layers += [ResidualBlock(ch, norm=norm, pad_mode=pad_mode) for _ in range(n_res)]
        self.model = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.n_downsample = n_downsample
        self.out_channels = ch

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class NoiseEncoder(nn.Module):
    """Noise encoder E_X^N: the noise code z^N = E_X^N(x) (eq. 4-5).

    A spatial code with the same H/4 x W/4 size as the content code, so it can be concatenated with it
    channel-wise (the ``⊕`` of eq. 4-5): 7x7 conv, ``n_downsample`` stride-2 4x4 convs doubling the
    channels, then a 1x1 conv (no norm, no activation) to ``out_channels``. The output is the mean code
    mu; in training :class:`~ldct_invrep.networks.lir.LIRNet` samples z^N = mu + eps with unit variance
    (UNIT's reduced VAE), whose KL to N(0, I) is 0.5 * mean(mu^2).
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 64,
        n_downsample: int = 2,
        out_channels: int | None = None,
        norm: str = "instance",
        pad_mode: str = "reflect",
    ) -> None:
        super().__init__()
        layers, ch = _downsampling_stem(in_channels, base_channels, n_downsample, norm, pad_mode)
        out_channels = ch if out_channels is None else out_channels
        layers.append(nn.Conv2d(ch, out_channels, 1))
        self.model = nn.Sequential(*layers)
        self.n_downsample = n_downsample
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)
