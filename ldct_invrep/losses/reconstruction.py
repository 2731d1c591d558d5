"""Self-reconstruction loss L^Rec (section 3.3)."""

from __future__ import annotations

from torch import Tensor
from torch.nn.modules.loss import _Loss

from ldct_invrep.losses._reduction import check_reduction, l1_pairs


class SelfReconstructionLoss(_Loss):
    """L1 self-reconstruction loss L^Rec of section 3.3 (weighted by lambda_rec = 10 in eq. 14).

    ``x_rec = G_X(E_X(x) ⊕ E_X^N(x))`` and ``y_rec = G_Y(E_Y(y))`` are compared with their inputs:
    ``L^Rec = ||x_rec - x||_1 + ||y_rec - y||_1`` (each term reduced on its own, then added).
    Either domain may be given alone by leaving the other pair ``None``.
    ``reduction="none"`` returns the element-wise sum ``|x_rec - x| + |y_rec - y|``.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction=check_reduction(reduction, owner=type(self).__name__))

    def forward(
        self, x: Tensor, x_rec: Tensor, y: Tensor | None = None, y_rec: Tensor | None = None
    ) -> Tensor:
        return l1_pairs([(x, x_rec), (y, y_rec)], self.reduction)
