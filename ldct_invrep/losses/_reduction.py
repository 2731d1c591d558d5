"""Reduction helpers shared by the loss modules (``torch.nn.modules.loss._Loss`` semantics).

The reduction names are MONAI's :class:`monai.utils.LossReduction` (``"none"``, ``"mean"``, ``"sum"``); a
member of that enum or its string works wherever a loss takes ``reduction``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.utils import LossReduction
from torch import Tensor

REDUCTIONS = tuple(r.value for r in LossReduction)


def check_reduction(reduction: LossReduction | str, allowed: Sequence[str] = REDUCTIONS, *, owner: str = "loss") -> str:
    """The string value of ``reduction`` if it is one of ``allowed``, else raise ``ValueError``."""
    value = reduction.value if isinstance(reduction, LossReduction) else reduction
    if value not in allowed:
        raise ValueError(f"{owner}: reduction must be one of {tuple(allowed)}, got {reduction!r}")
    return value


def reduce(values: Tensor, reduction: str) -> Tensor:
    """Apply ``"none"`` / ``"mean"`` / ``"sum"`` to an element-wise loss tensor."""
    if reduction == LossReduction.MEAN:
        return values.mean()
    if reduction == LossReduction.SUM:
        return values.sum()
    return values


def sum_of_pair_losses(pair_losses: Sequence[Tensor], reduction: str) -> Tensor:
    """Add per-pair losses; with ``reduction="none"`` the element-wise maps must have one shape."""
    if reduction == LossReduction.NONE:
        shapes = {tuple(t.shape) for t in pair_losses}
        if len(shapes) > 1:
            raise ValueError(f"reduction='none' needs pairs of one shape, got {sorted(shapes)}")
    total = pair_losses[0]
    for term in pair_losses[1:]:
        total = total + term
    return total


def l1_pairs(pairs: Sequence[tuple[Tensor | None, Tensor | None]], reduction: str) -> Tensor:
    """Sum over ``(a, b)`` pairs of the reduced ``|a - b|``; pairs with a ``None`` member are skipped."""
    terms = []
    for a, b in pairs:
        if a is None and b is None:
            continue
        if a is None or b is None:
            raise ValueError("l1 pair: both tensors of a pair must be given")
        if a.shape != b.shape:
            raise ValueError(f"l1 pair: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
        terms.append(reduce(torch.abs(a - b), reduction))
    if not terms:
        raise ValueError("l1 pair: no tensors given")
    return sum_of_pair_losses(terms, reduction)
