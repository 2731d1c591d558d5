"""LIR networks: encoders, generators, discriminators, the LIR system and the exported Restorer."""

from .blocks import ConvBlock, Pad2d, ResidualBlock, UpsampleBlock, count_parameters, init_weights
from .discriminators import MultiScaleDiscriminator, RepresentationDiscriminator
from .encoders import ContentEncoder, NoiseEncoder
from .generator import Generator
from .lir import (
    PRESETS,
    LIRConfig,
    LIRDiscriminators,
    LIRForward,
    LIRNet,
    Restorer,
    get_config,
    restorer_state_dict,
)

__all__ = [
    "PRESETS",
    "ContentEncoder",
    "ConvBlock",
    "Generator",
    "LIRConfig",
    "LIRDiscriminators",
    "LIRForward",
    "LIRNet",
    "MultiScaleDiscriminator",
    "NoiseEncoder",
    "Pad2d",
    "RepresentationDiscriminator",
    "ResidualBlock",
    "Restorer",
    "UpsampleBlock",
    "count_parameters",
    "get_config",
    "init_weights",
    "restorer_state_dict",
]
