"""Cross-cycle consistency loss L^CC (eq. 7, 8)."""

from __future__ import annotations

from torch import Tensor
from torch.nn.modules.loss import _Loss

from ldct_invrep.losses._reduction import check_reduction, l1_pairs


class CrossCycleLoss(_Loss):
    """L1 cross-cycle consistency loss, eq. 7 (noisy domain X) plus eq. 8 (clean domain Y).

    ``x_cyc = G_X(E_Y(x2y) ⊕ E_X^N(y2x))`` (eq. 5) is compared with ``x`` and
    ``y_cyc = G_Y(E_X(y2x))`` (eq. 6) with ``y``: ``L^CC = ||x_cyc - x||_1 + ||y_cyc - y||_1``, each term
    reduced on its own, then added. Either domain may be given alone by leaving the other pair ``None``.
    ``reduction="none"`` returns the element-wise sum ``|x_cyc - x| + |y_cyc - y|``.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction=check_reduction(reduction, owner=type(self).__name__))

    def forward(
        self, x: Tensor, x_cyc: Tensor, y: Tensor | None = None, y_cyc: Tensor | None = None
    ) -> Tensor:
        return l1_pairs([(x, x_cyc), (y, y_cyc)], self.reduction)
