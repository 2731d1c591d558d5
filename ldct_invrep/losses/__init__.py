"""LIR losses (paper eq. 7-14) and the combined objective ``LIRObjective``."""

from .adversarial import DomainAdversarialLoss, RepresentationAdversarialLoss
from .background import BackgroundConsistencyLoss, gaussian_kernel_1d
from .cross_cycle import CrossCycleLoss
from .kl import NoiseCodeKLLoss
from .objective import DISCRIMINATOR_TERMS, GENERATOR_TERMS, LIRLossWeights, LIRObjective
from .reconstruction import SelfReconstructionLoss
from .semantic import SemanticConsistencyLoss
from .vgg import (
    LAYER_INDEX,
    LAYER_NAMES,
    VGG19_WEIGHTS_ENV,
    VGG19_WEIGHTS_FILENAME,
    VGG19Features,
    VGGWeightsNotFoundError,
    resolve_vgg19_weights,
)

__all__ = [
    "DomainAdversarialLoss",
    "RepresentationAdversarialLoss",
    "BackgroundConsistencyLoss",
    "gaussian_kernel_1d",
    "CrossCycleLoss",
    "NoiseCodeKLLoss",
    "DISCRIMINATOR_TERMS",
    "GENERATOR_TERMS",
    "LIRLossWeights",
    "LIRObjective",
    "SelfReconstructionLoss",
    "SemanticConsistencyLoss",
    "LAYER_INDEX",
    "LAYER_NAMES",
    "VGG19_WEIGHTS_ENV",
    "VGG19_WEIGHTS_FILENAME",
    "VGG19Features",
    "VGGWeightsNotFoundError",
    "resolve_vgg19_weights",
]
