"""The full LIR objective (eq. 14): generator-side and discriminator-side losses from one forward pass."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ldct_invrep.losses.adversarial import DomainAdversarialLoss, RepresentationAdversarialLoss
from ldct_invrep.losses.background import BackgroundConsistencyLoss
from ldct_invrep.losses.cross_cycle import CrossCycleLoss
from ldct_invrep.losses.kl import NoiseCodeKLLoss
from ldct_invrep.losses.reconstruction import SelfReconstructionLoss
from ldct_invrep.losses.semantic import SemanticConsistencyLoss

if TYPE_CHECKING:  # annotations only: the objective reads the fields, it never builds networks
    from ldct_invrep.networks.lir import LIRDiscriminators, LIRForward

GENERATOR_TERMS = ("rec", "cc", "adv", "adv_r", "bc", "sc", "kl")
DISCRIMINATOR_TERMS = ("d_x", "d_y", "d_r")
KL_CODES = ("noise", "all")


@dataclass
class LIRLossWeights:
    """The lambdas of eq. 14, paper defaults (section 4.1)."""

    representation: float = 1.0  # lambda_R, eq. 9
    adversarial: float = 1.0  # lambda_adv^domain, eq. 12-13
    semantic: float = 1.0  # lambda_sc, eq. 11 (0 skips VGG entirely)
    cross_cycle: float = 10.0  # lambda_cc, eq. 7-8
    reconstruction: float = 10.0  # lambda_rec, section 3.3
    background: float = 5.0  # lambda_bc, eq. 10
    kl: float = 0.01  # lambda_KL, section 3.3


def _scales(outputs: Tensor | Sequence[Tensor]) -> list[Tensor]:
    """Discriminator output as a list of per-scale maps (a single tensor is one scale)."""
    return [outputs] if isinstance(outputs, Tensor) else list(outputs)


def _split(outputs: Tensor | list[Tensor], sizes: Sequence[int]) -> list[list[Tensor]]:
    """Split batch-concatenated discriminator outputs (a tensor or one map per scale) back per input."""
    parts = [list(torch.split(o, list(sizes), dim=0)) for o in _scales(outputs)]
    return [[scale_parts[i] for scale_parts in parts] for i in range(len(sizes))]


def _cat_or_none(tensors: Sequence[Tensor]) -> Tensor | None:
    """Concatenate along the batch when the non-batch shapes agree, else None."""
    if len({tuple(t.shape[1:]) for t in tensors}) == 1:
        return torch.cat(list(tensors), dim=0)
    return None


class LIRObjective(nn.Module):
    """Eq. 14: ``lambda_R L_adv^R + lambda_adv L_adv^domain + lambda_CC L^CC + lambda_rec L^Rec
    + lambda_bc L^BC + lambda_sc L^SC + lambda_KL L^KL``, split into the two players' losses.

    ``generator_loss`` (encoders and generators): self-reconstruction on (x, x_rec), (y, y_rec); cross-cycle on
    (x, x_cyc), (y, y_cyc); domain adversarial generator terms for D_X on y2x and D_Y on x2y; representation
    confusion on z_x and z_y (when a representation discriminator exists and its weight is > 0); background
    and semantic consistency on (x, x2y) and (y, y2x); KL on the noise code z_n (when present).
    ``discriminator_loss``: D_X real x vs fake y2x, D_Y real y vs fake x2y, D_R real z_y vs fake z_x, all
    generated images/codes detached.

    Both return ``(total, terms)``: ``terms`` holds the *unweighted* value of every term as a float (0.0
    for a skipped term) and ``terms["total"] == sum(weight * term)``.

    The discriminators are called through ``disc(x_images, y_images, codes)`` (``LIRDiscriminators.forward``),
    with real and fake batches concatenated, so a DistributedDataParallel-wrapped ``disc`` works and each step
    runs one discriminator forward. The discriminators have no batch-dependent layers, so this equals separate
    calls. The generator loss back-propagates into the discriminators' parameters too: the training loop
    steps only the generator optimiser with it and zeroes the discriminator gradients before their step.

    Switches: ``use_background=False`` is Table 4 (c); a semantic weight of 0 never builds the VGG (no file
    access); ``gan_criterion`` is ``"least_squares"`` (UNIT/official LSGAN) or ``"bce"`` (eq. 9, 12, 13 as
    written); ``kl_codes="all"`` regularises every code as the official code does (z_x, z_y, z_n and the
    codes of the translated images), default ``"noise"`` only z_n, as the paper says.

    Clean-domain noise (optional, not in the paper): both losses take ``clean_noise``, a batch of noise of the
    clean domain's own level (``data.clean_noise``). D_Y then judges ``x2y + clean_noise`` against the real
    ``y``: the translation measured the way normal-dose scans are, so G_Y's optimum is the noise-free image
    instead of one with invented grain (AmbientGAN's measurement model). Every other term sees ``x2y`` as is.

    Note: with the semantic term on, ``state_dict()`` contains the frozen VGG weights (``semantic.vgg.*``);
    the objective has no trainable state and need not be checkpointed.
    """

    def __init__(
        self,
        weights: LIRLossWeights = LIRLossWeights(),
        *,
        vgg_weights: str | os.PathLike[str] | None = None,
        semantic_layer: str = "conv5_1",
        semantic_feature_norm: str = "none",
        use_background: bool = True,
        gan_criterion: str = "least_squares",
        background_kernel_sizes: Sequence[int] = (5, 9, 15),
        background_weights: Sequence[float] = (0.25, 0.5, 1.0),
        background_sigma: float | Sequence[float] = 25.0,
        kl_codes: str = "noise",
    ) -> None:
        super().__init__()
        if kl_codes not in KL_CODES:
            raise ValueError(f"LIRObjective: kl_codes must be one of {KL_CODES}, got {kl_codes!r}")
        self.weights = dataclasses.replace(weights)
        self.use_background = use_background
        self.kl_codes = kl_codes
        self.reconstruction = SelfReconstructionLoss()
        self.cross_cycle = CrossCycleLoss()
        self.domain_adversarial = DomainAdversarialLoss(criterion=gan_criterion)
        self.representation_adversarial = RepresentationAdversarialLoss(criterion=gan_criterion)
        self.kl = NoiseCodeKLLoss()
        self.background: BackgroundConsistencyLoss | None = None
        if use_background and self.weights.background > 0:
            self.background = BackgroundConsistencyLoss(background_kernel_sizes, background_weights, background_sigma)
        self.semantic: SemanticConsistencyLoss | None = None
        if self.weights.semantic > 0:
            self.semantic = SemanticConsistencyLoss(semantic_layer, vgg_weights, feature_norm=semantic_feature_norm)

    @staticmethod
    def _has_representation_discriminator(disc: nn.Module) -> bool:
        core = getattr(disc, "module", disc)  # unwrap DistributedDataParallel
        return getattr(core, "representation_discriminator", None) is not None

    def _uses_representation(self, disc: nn.Module) -> bool:
        return self.weights.representation > 0 and self._has_representation_discriminator(disc)

    @staticmethod
    def _judge(
        disc: nn.Module, x_images: Sequence[Tensor], y_images: Sequence[Tensor], codes: Sequence[Tensor] | None
    ) -> tuple[list[list[Tensor]], list[list[Tensor]], list[Tensor] | None]:
        """D_X on each of ``x_images``, D_Y on each of ``y_images``, D_R on each of ``codes``.

        One batch-concatenated ``disc`` call when shapes allow it, else the three discriminators one by one."""
        cat_x, cat_y = _cat_or_none(x_images), _cat_or_none(y_images)
        cat_z = _cat_or_none(codes) if codes else None
        if cat_x is not None and cat_y is not None and (not codes or cat_z is not None):
            out_x, out_y, out_z = disc(cat_x, cat_y, cat_z)
            d_x = _split(out_x, [t.shape[0] for t in x_images])
            d_y = _split(out_y, [t.shape[0] for t in y_images])
            d_z = None if not codes else [parts[0] for parts in _split(out_z, [t.shape[0] for t in codes])]
            return d_x, d_y, d_z
        # shapes differ (e.g. x and y patches of different sizes): call each discriminator on its own
        core = getattr(disc, "module", disc)
        d_x = [_scales(core.discriminator_x(t)) for t in x_images]
        d_y = [_scales(core.discriminator_y(t)) for t in y_images]
        d_z = [core.representation_discriminator(t) for t in codes] if codes else None
        return d_x, d_y, d_z

    @staticmethod
    def _measured(x2y: Tensor, clean_noise: Tensor | None) -> Tensor:
        """The translation as D_Y sees it: ``x2y``, plus the clean domain's noise when given."""
        if clean_noise is None:
            return x2y
        if clean_noise.shape != x2y.shape:
            raise ValueError(f"clean_noise has shape {tuple(clean_noise.shape)}, the translation {tuple(x2y.shape)}")
        return x2y + clean_noise

    def _zero(self, ref: Tensor) -> Tensor:
        return torch.zeros((), device=ref.device, dtype=ref.dtype)

    def _kl_codes(self, out: LIRForward) -> list[Tensor]:
        if self.kl_codes == "noise":
            codes = [out.z_n]
        else:
            codes = [out.z_x, out.z_y, out.z_n, out.z_x2y, out.z_y2x, out.z_n_y2x]
        return [c for c in codes if c is not None]

    def _combine(
        self, terms: dict[str, Tensor], weights: dict[str, float], ref: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        total = self._zero(ref)
        for name, value in terms.items():
            if weights[name] != 0:
                total = total + weights[name] * value
        report = {name: float(value.detach()) for name, value in terms.items()}
        report["total"] = float(total.detach())
        return total, report

    def generator_loss(
        self, out: LIRForward, disc: LIRDiscriminators, clean_noise: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Loss of the encoders and generators (eq. 14 without the discriminators' side)."""
        w = self.weights
        zero = self._zero(out.x)
        terms = dict.fromkeys(GENERATOR_TERMS, zero)
        if w.reconstruction > 0:
            terms["rec"] = self.reconstruction(out.x, out.x_rec, out.y, out.y_rec)
        if w.cross_cycle > 0:
            terms["cc"] = self.cross_cycle(out.x, out.x_cyc, out.y, out.y_cyc)
        use_r = self._uses_representation(disc)
        if w.adversarial > 0 or use_r:
            codes = [out.z_x, out.z_y] if use_r else None
            d_x, d_y, d_z = self._judge(disc, [out.y2x], [self._measured(out.x2y, clean_noise)], codes)
            if w.adversarial > 0:
                terms["adv"] = self.domain_adversarial.generator(d_x[0]) + self.domain_adversarial.generator(d_y[0])
            if use_r and d_z is not None:
                terms["adv_r"] = self.representation_adversarial.generator(d_z)
        if self.background is not None:
            terms["bc"] = self.background(out.x, out.x2y) + self.background(out.y, out.y2x)
        if self.semantic is not None:
            terms["sc"] = self.semantic(out.x, out.x2y) + self.semantic(out.y, out.y2x)
        kl_codes = self._kl_codes(out) if w.kl > 0 else []
        if kl_codes:
            kl = self.kl(kl_codes[0])
            for code in kl_codes[1:]:
                kl = kl + self.kl(code)
            terms["kl"] = kl
        weights = {
            "rec": w.reconstruction, "cc": w.cross_cycle, "adv": w.adversarial, "adv_r": w.representation,
            "bc": w.background if self.background is not None else 0.0,
            "sc": w.semantic if self.semantic is not None else 0.0, "kl": w.kl,
        }  # fmt: skip
        return self._combine(terms, weights, out.x)

    def discriminator_loss(
        self, out: LIRForward, disc: LIRDiscriminators, clean_noise: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Loss of D_X, D_Y (eq. 12, 13) and D_R (eq. 9); generated images and codes are detached."""
        w = self.weights
        zero = self._zero(out.x)
        terms = dict.fromkeys(DISCRIMINATOR_TERMS, zero)
        use_r = self._uses_representation(disc)
        if w.adversarial > 0 or use_r:
            codes = [out.z_y.detach(), out.z_x.detach()] if use_r else None
            fake_y = self._measured(out.x2y.detach(), clean_noise)
            d_x, d_y, d_z = self._judge(disc, [out.x, out.y2x.detach()], [out.y, fake_y], codes)
            if w.adversarial > 0:
                terms["d_x"] = self.domain_adversarial.discriminator(d_x[0], d_x[1])
                terms["d_y"] = self.domain_adversarial.discriminator(d_y[0], d_y[1])
            if use_r and d_z is not None:
                terms["d_r"] = self.representation_adversarial.discriminator(d_z[0], d_z[1])
        weights = {"d_x": w.adversarial, "d_y": w.adversarial, "d_r": w.representation}
        return self._combine(terms, weights, out.x)
