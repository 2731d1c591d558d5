"""Adversarial losses: domain adversarial (eq. 12, 13) and representation adversarial (eq. 9)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.loss import _Loss

from ldct_invrep.losses._reduction import check_reduction

CRITERIA = ("least_squares", "bce")

Outputs = Tensor | Sequence[Tensor]


def _as_list(outputs: Outputs) -> list[Tensor]:
    if isinstance(outputs, Tensor):
        return [outputs]
    items = list(outputs)
    if not items:
        raise ValueError("adversarial loss: empty list of discriminator outputs")
    return items


class _AdversarialLoss(_Loss):
    """Shared criterion: a discriminator output (logits) against a constant target, summed over outputs.

    ``"least_squares"``: raw LSGAN, ``(D - t)**2`` on the logits, no activation.
    ``"bce"``: ``binary_cross_entropy_with_logits(D, t)``, i.e. ``-t log s(D) - (1 - t) log(1 - s(D))``,
    the log form the paper writes (s = sigmoid).
    Each output is reduced on its own (``"mean"`` or ``"sum"``) and the results are added.
    ``"none"`` is not offered: multi-scale maps have different shapes and cannot be added element-wise.
    """

    def __init__(self, criterion: str = "least_squares", reduction: str = "mean") -> None:
        super().__init__(reduction=check_reduction(reduction, ("mean", "sum"), owner=type(self).__name__))
        if criterion not in CRITERIA:
            raise ValueError(f"{type(self).__name__}: criterion must be one of {CRITERIA}, got {criterion!r}")
        self.criterion = criterion

    def _single(self, logits: Tensor, target: float) -> Tensor:
        target_map = torch.full_like(logits, float(target))
        if self.criterion == "least_squares":
            return F.mse_loss(logits, target_map, reduction=self.reduction)
        return F.binary_cross_entropy_with_logits(logits, target_map, reduction=self.reduction)

    def forward(self, outputs: Outputs, target: bool | float) -> Tensor:
        """Loss of ``outputs`` (one tensor or a list, e.g. one per scale) against ``target``.

        ``target``: ``True`` / ``1.0`` for "real", ``False`` / ``0.0`` for "fake", or any value in [0, 1]
        (0.5 for the representation confusion objective). Summed over the list.
        """
        value = float(target)
        terms = [self._single(o, value) for o in _as_list(outputs)]
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total


class DomainAdversarialLoss(_AdversarialLoss):
    """Target-domain adversarial loss L_adv^domain = L_adv^X + L_adv^Y (eq. 12, 13).

    D_X judges noisy images (real x against the degraded translation y2x, eq. 12) and D_Y clean images
    (real y against the restored translation x2y, eq. 13). Both are multi-scale patch discriminators, so
    ``outputs`` may be a list with one logit map per scale; the per-scale losses are **summed**, as in the
    UNIT framework the paper builds on (section 4.1).

    * ``discriminator(real_outputs, fake_outputs)``: ``sum_s [c(D_s(real), 1) + c(D_s(fake), 0)]``.
    * ``generator(fake_outputs)``: ``sum_s c(D_s(fake), 1)``, the non-saturating generator objective
      (for ``"bce"`` this is ``-log D(fake)`` rather than the ``log(1 - D(fake))`` of the minimax in eq. 12,
      the usual choice because it does not saturate early in training).
    * ``forward(outputs, target)``: one side only, target ``True``/``False``.

    ``criterion="least_squares"`` (default) is the raw LSGAN of UNIT / the official LIR code;
    ``"bce"`` is the log form written in eq. 12, 13 (on logits, numerically stable).

    Why not ``monai.losses.PatchAdversarialLoss``: it *averages* the losses of a list of discriminator
    outputs, whereas UNIT sums them (averaging divides the adversarial term by the number of scales, 3,
    and so changes its balance against eq. 14's other terms), and its least-squares criterion applies
    ``LeakyReLU(0.05)`` to the logits before the squared error unless ``no_activation_leastsq=True``, which
    is not the raw LSGAN that UNIT and the official LIR code use. It also has no 0.5 target for the representation confusion objective.
    """

    def discriminator(self, real_outputs: Outputs, fake_outputs: Outputs) -> Tensor:
        """Discriminator side: real outputs labelled 1, fake outputs labelled 0, summed over scales."""
        return self.forward(real_outputs, True) + self.forward(fake_outputs, False)

    def generator(self, fake_outputs: Outputs) -> Tensor:
        """Generator side: fake outputs pushed to the real label 1, summed over scales."""
        return self.forward(fake_outputs, True)


class RepresentationAdversarialLoss(_AdversarialLoss):
    """Representation (feature) adversarial loss L_adv^R (eq. 9) with the representation discriminator D_R.

    Eq. 9 is ``E_X[1/2 log D_R(z_X) + 1/2 log(1 - D_R(z_X))] + E_Y[same for z_Y]``: the encoders E_X, E_Y
    are trained so that D_R cannot tell the codes apart, i.e. its output is 0.5 for both domains.

    * ``generator(outputs)`` (encoder side, confusion objective): every output in ``outputs``
      (``[D_R(z_x), D_R(z_y)]``) is pushed to 0.5 and the terms are added. With ``"bce"`` each term is the
      cross-entropy against 0.5, ``-(1/2 log D + 1/2 log(1 - D))``, the negative of eq. 9's summand; it is
      ``log 2`` (its minimum, not 0) when D_R outputs 0.5. With ``"least_squares"``: ``(D - 0.5)**2``.
    * ``discriminator(real_outputs, fake_outputs)`` (D_R side, standard real/fake objective): the clean
      code ``D_R(z_y)`` is labelled 1 ("real"), the noisy code ``D_R(z_x)`` 0, as in the official code.

    Deviation we do not reproduce by default: the official code steps D_R three extra times per iteration
    (plus once in the discriminator update) and, through a stray optimiser step in its generator update,
    also moves D_R toward outputting 0.5 on both domains, which works against D_R's own objective
    (docs/architecture.md, "Deviations from the official code"). Here D_R is updated once per iteration by ``discriminator`` only; extra D_R steps
    are a training-loop choice (the engine), not part of the loss.
    """

    confusion_target: float = 0.5

    def discriminator(self, real_outputs: Outputs, fake_outputs: Outputs) -> Tensor:
        """D_R side: ``real_outputs = D_R(z_y)`` labelled 1, ``fake_outputs = D_R(z_x)`` labelled 0."""
        return self.forward(real_outputs, True) + self.forward(fake_outputs, False)

    def generator(self, outputs: Outputs) -> Tensor:
        """Encoder side: each of ``outputs`` (e.g. ``[D_R(z_x), D_R(z_y)]``) pushed to 0.5, summed."""
        return self.forward(outputs, self.confusion_target)
