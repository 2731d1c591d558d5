"""The LIR system (paper section 3): generator side :class:`LIRNet`, :class:`LIRDiscriminators`, and the
exported inference network :class:`Restorer` (E_X then G_Y, section 3.3 "Restoration")."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import NORMS, init_weights
from .discriminators import MultiScaleDiscriminator, RepresentationDiscriminator
from .encoders import ContentEncoder, NoiseEncoder
from .generator import Generator

__all__ = [
    "PRESETS",
    "LIRConfig",
    "LIRDiscriminators",
    "LIRForward",
    "LIRNet",
    "Restorer",
    "get_config",
    "restorer_state_dict",
]


@dataclass(frozen=True)
class LIRConfig:
    """Architecture of the LIR system. ``PRESETS["paper"]`` is the UNIT-sized network of the paper."""

    in_channels: int = 1
    base_channels: int = 64
    n_downsample: int = 2
    n_res: int = 4
    norm: str = "instance"  # "instance" | "batch" | "none"
    noise_channels: int | None = None  # None -> same as the content code channels
    dis_channels: int = 64
    dis_layers: int = 4
    dis_scales: int = 3
    dis_high_pass_gain: float = 0.0  # > 0: image discriminators also see the amplified high-pass image
    use_noise_encoder: bool = True  # Table 4 (a) when False
    use_representation_discriminator: bool = True  # Table 4 (b) when False
    content_code_noise: bool = False  # official code adds N(0, 1) to content codes in training
    residual: bool = False  # generators add their output to the image the code came from (see LIRNet)

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        for name in ("in_channels", "base_channels", "dis_channels", "dis_layers", "dis_scales"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_downsample < 0 or self.n_res < 0:
            raise ValueError("n_downsample and n_res must be >= 0")

    @property
    def code_channels(self) -> int:
        """Channels of the content code z = E_X(x)."""
        return self.base_channels * 2**self.n_downsample

    @property
    def noise_code_channels(self) -> int:
        """Channels of the noise code z^N (0 without a noise encoder)."""
        if not self.use_noise_encoder:
            return 0
        return self.code_channels if self.noise_channels is None else self.noise_channels


PRESETS: dict[str, LIRConfig] = {
    # UNIT dims (section 4.1: "similar network architecture as [21]"), 256-channel noise code as the official code.
    "paper": LIRConfig(),
    # CPU preset, chosen by measurement on 2 cores (benchmarks/train_speed.py, docs/shipped_weights.md). Each
    # departure from "paper" below was needed to learn anything in an hour of CPU time:
    # * batch norm, as the official LIR code: instance norm removes each channel's spatial mean, so uniform
    #   patches of fat and of liver encode alike and absolute HU levels must be re-inferred from context;
    # * residual generators (LIRNet): each generator predicts a correction to the image its code came from,
    #   starting at the identity. As a plain encoder-decoder this network was still ~75 HU off after 200
    #   iterations and its first weights scored below their own input;
    # * no downsampling: the content code keeps the full resolution (8 channels). A correction that
    #   cancels noise is a per-pixel signal that a 4x-downsampled code cannot carry: with 2 downsamplings the
    #   residual network had not moved from the identity after 400 iterations, at full resolution it had
    #   gained 1.9 dB on the real Mayo pair after 400;
    # * high-pass discriminator input (MultiScaleDiscriminator): 60-90 HU of CT noise is 0.03-0.04 in the
    #   network range, and plain discriminators stayed at chance level for the first hundreds of iterations.
    "lite": LIRConfig(
        norm="batch",
        base_channels=8,
        n_downsample=0,
        n_res=2,
        noise_channels=8,
        dis_channels=16,
        dis_layers=4,
        dis_scales=3,
        dis_high_pass_gain=20.0,
        residual=True,
    ),
}
# The default model's preset: "lite" with twice the channels and twice the residual blocks (0.14 M
# generator-side parameters), sized by the inference budget of 0.5 s a 512x512 slice on 2 CPU cores
# (16 channels run nearly as fast as 8 in oneDNN; benchmarks/denoise_speed.py measures it).
PRESETS["ct"] = dataclasses.replace(PRESETS["lite"], base_channels=16, n_res=4, noise_channels=16)


def get_config(preset: str, **overrides) -> LIRConfig:
    """A preset's config with fields replaced by ``overrides``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[preset], **overrides)


@dataclass
class LIRForward:
    """Everything one training forward pass produces (eq. 3-8 and the self-reconstructions)."""

    x: Tensor  # noisy input batch
    y: Tensor  # clean input batch (unpaired)
    z_x: Tensor  # E_X(x)
    z_y: Tensor  # E_Y(y)
    z_n: Tensor | None  # E_X^N(x), the mean noise code mu
    x_rec: Tensor  # G_X(z_x ⊕ z^N), self-reconstruction
    y_rec: Tensor  # G_Y(z_y)
    x2y: Tensor  # eq. 3: G_Y(z_x), the denoised image
    y2x: Tensor  # eq. 4: G_X(z_y ⊕ z^N), the re-noised clean image
    x_cyc: Tensor  # eq. 5: G_X(E_Y(x2y) ⊕ E_X^N(y2x))
    y_cyc: Tensor  # eq. 6: G_Y(E_X(y2x))
    z_x2y: Tensor  # E_Y(x2y)
    z_y2x: Tensor  # E_X(y2x)
    z_n_y2x: Tensor | None  # E_X^N(y2x), mean code


def _content_encoder(config: LIRConfig) -> ContentEncoder:
    return ContentEncoder(config.in_channels, config.base_channels, config.n_downsample, config.n_res, config.norm)


def _clean_generator(config: LIRConfig) -> Generator:
    return Generator(config.code_channels, config.in_channels, config.n_downsample, config.n_res, config.norm)


def _zero_output_layer(generator: Generator) -> None:
    """Zero a generator's last convolution, so a residual generator starts as the identity map."""
    last = generator.model[-1].conv
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)


class LIRNet(nn.Module):
    """Generator side of LIR: content encoders E_X, E_Y, noise encoder E_X^N, generators G_X, G_Y.

    Only the modules that are used are built: without the noise encoder (Table 4 (a)) there is no
    ``noise_encoder`` and G_X takes the content code alone. Every parameter then receives a gradient
    from the generator loss, so DistributedDataParallel needs no ``find_unused_parameters``.
    Generator-side weights are kaiming-normal initialised with zero biases.

    With ``config.residual`` every generator output is added to the image whose content code it decodes
    (``x2y = x + G_Y(E_X(x))``, ``y2x = y + G_X(E_Y(y) ⊕ z^N)``, ``x_cyc = x2y + G_X(...)``, ...), and the
    generators' output layers start at zero: the system starts as the identity and G_Y learns the noise
    to subtract, G_X the noise to add. The losses of eq. 7-14 are unchanged.
    """

    def __init__(self, config: LIRConfig = LIRConfig()) -> None:
        super().__init__()
        self.config = config
        self.content_encoder_x = _content_encoder(config)
        self.content_encoder_y = _content_encoder(config)
        if config.use_noise_encoder:
            self.noise_encoder = NoiseEncoder(
                config.in_channels, config.base_channels, config.n_downsample, config.noise_code_channels, config.norm
            )
        else:
            self.noise_encoder = None
        self.generator_x = Generator(
            config.code_channels + config.noise_code_channels,
            config.in_channels,
            config.n_downsample,
            config.n_res,
            config.norm,
        )
        self.generator_y = _clean_generator(config)
        init_weights(self, "kaiming")
        if config.residual:
            _zero_output_layer(self.generator_x)
            _zero_output_layer(self.generator_y)

    def _sample(self, mu: Tensor, enabled: bool = True) -> Tensor:
        """Reparameterised sample mu + eps, eps ~ N(0, I), in training only (UNIT's reduced VAE)."""
        if self.training and enabled:
            return mu + torch.randn_like(mu)
        return mu

    def _add_source(self, decoded: Tensor, source: Tensor) -> Tensor:
        """``source + decoded`` for residual generators, else ``decoded``."""
        return source + decoded if self.config.residual else decoded

    def _decode_x(self, z: Tensor, z_n: Tensor | None, source: Tensor) -> Tensor:
        """G_X(z ⊕ z^N) (eq. 4-5), or G_X(z) without a noise encoder; ``source`` is the image z came from."""
        return self._add_source(self.generator_x(z if z_n is None else torch.cat([z, z_n], dim=1)), source)

    def _decode_y(self, z: Tensor, source: Tensor) -> Tensor:
        """G_Y(z) (eq. 3, 6); ``source`` is the image z came from."""
        return self._add_source(self.generator_y(z), source)

    def _noise_code(self, x: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """(mu, sample) of E_X^N(x), or (None, None) without a noise encoder."""
        if self.noise_encoder is None:
            return None, None
        mu = self.noise_encoder(x)
        return mu, self._sample(mu)

    def forward(self, x: Tensor, y: Tensor) -> LIRForward:
        """One training pass on an unpaired batch: noisy ``x``, clean ``y`` (both B x C x H x W, H and W
        multiples of 2**n_downsample)."""
        cn = self.config.content_code_noise
        z_x = self.content_encoder_x(x)
        z_y = self.content_encoder_y(y)
        z_n, zn_s = self._noise_code(x)
        zx_s, zy_s = self._sample(z_x, cn), self._sample(z_y, cn)

        x_rec = self._decode_x(zx_s, zn_s, x)
        y_rec = self._decode_y(zy_s, y)
        x2y = self._decode_y(zx_s, x)  # eq. 3
        y2x = self._decode_x(zy_s, zn_s, y)  # eq. 4

        z_x2y = self.content_encoder_y(x2y)
        z_y2x = self.content_encoder_x(y2x)
        z_n_y2x, zn_y2x_s = self._noise_code(y2x)
        x_cyc = self._decode_x(self._sample(z_x2y, cn), zn_y2x_s, x2y)  # eq. 5
        y_cyc = self._decode_y(self._sample(z_y2x, cn), y2x)  # eq. 6
        return LIRForward(
            x=x, y=y, z_x=z_x, z_y=z_y, z_n=z_n, x_rec=x_rec, y_rec=y_rec, x2y=x2y, y2x=y2x,
            x_cyc=x_cyc, y_cyc=y_cyc, z_x2y=z_x2y, z_y2x=z_y2x, z_n_y2x=z_n_y2x,
        )  # fmt: skip

    def restorer(self) -> Restorer:
        """The inference network E_X -> G_Y, sharing this network's modules (no copy)."""
        return Restorer(self.content_encoder_x, self.generator_y, residual=self.config.residual)

    def restorer_state_dict(self) -> dict[str, Tensor]:
        """State dict of :meth:`restorer`, keys ``content_encoder.*`` and ``generator.*``."""
        return restorer_state_dict(self.state_dict())


class LIRDiscriminators(nn.Module):
    """Discriminators D_X, D_Y (image domains, eq. 12-13) and D_R (content codes, eq. 9; absent when
    ``use_representation_discriminator`` is False, Table 4 (b)). Initialised N(0, 0.02), zero biases."""

    def __init__(self, config: LIRConfig = LIRConfig()) -> None:
        super().__init__()
        self.config = config
        self.discriminator_x = self._image_discriminator(config)
        self.discriminator_y = self._image_discriminator(config)
        if config.use_representation_discriminator:
            self.representation_discriminator = RepresentationDiscriminator(config.code_channels, config.code_channels)
        else:
            self.representation_discriminator = None
        init_weights(self, "gan")

    @staticmethod
    def _image_discriminator(config: LIRConfig) -> MultiScaleDiscriminator:
        return MultiScaleDiscriminator(
            config.in_channels,
            config.dis_channels,
            config.dis_layers,
            config.dis_scales,
            high_pass_gain=config.dis_high_pass_gain,
        )

    def forward(
        self, x: Tensor, y: Tensor, z: Tensor | None = None
    ) -> tuple[list[Tensor], list[Tensor], Tensor | None]:
        """D_X(x), D_Y(y) and D_R(z) (None when z or D_R is absent); lets DDP wrap all three as one module."""
        d_r = None
        if z is not None and self.representation_discriminator is not None:
            d_r = self.representation_discriminator(z)
        return self.discriminator_x(x), self.discriminator_y(y), d_r


def restorer_state_dict(lirnet_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The Restorer subset of a :class:`LIRNet` state dict: ``content_encoder_x.*`` -> ``content_encoder.*``,
    ``generator_y.*`` -> ``generator.*``."""
    rename = {"content_encoder_x.": "content_encoder.", "generator_y.": "generator."}
    out = {}
    for key, value in lirnet_state.items():
        for old, new in rename.items():
            if key.startswith(old):
                out[new + key[len(old) :]] = value
    return out


class Restorer(nn.Module):
    """Inference network x -> G_Y(E_X(x)) (section 3.3, "Restoration").

    Accepts any H x W: pads to a multiple of 2**n_downsample (at least two code pixels per side) by
    reflection, or by replication where the image is too small to reflect, and crops the output back.
    With ``residual`` (:attr:`LIRConfig.residual`) the output is ``x + G_Y(E_X(x))``, clamped to the network
    range [-1, 1] (CT: [-1024, 3072] HU), where a non-residual generator's tanh output lies by construction.
    """

    def __init__(self, content_encoder: ContentEncoder, generator: Generator, residual: bool = False) -> None:
        super().__init__()
        self.content_encoder = content_encoder
        self.generator = generator
        self.residual = residual

    @classmethod
    def from_config(cls, config: LIRConfig) -> Restorer:
        return cls(_content_encoder(config), _clean_generator(config), residual=config.residual)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        m = 1 << self.content_encoder.n_downsample  # an int under TorchScript too (2**n would be a float)
        th, tw = max(-(-h // m) * m, 2 * m), max(-(-w // m) * m, 2 * m)
        ph, pw = th - h, tw - w
        pad = [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2]
        if ph or pw:
            mode = "reflect" if max(pad[0], pad[1]) < w and max(pad[2], pad[3]) < h else "replicate"
            x = F.pad(x, pad, mode=mode)
        out = self.generator(self.content_encoder(x))
        if self.residual:  # kept in the network range, where the tanh of a non-residual generator stays
            out = (out + x).clamp(-1.0, 1.0)
        if ph or pw:
            out = out[..., pad[2] : pad[2] + h, pad[0] : pad[0] + w]
        return out
