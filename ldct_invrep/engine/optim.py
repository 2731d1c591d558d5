"""Optimisers and learning-rate schedules of the two players (paper section 4.1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.optim.lr_scheduler import ExponentialLR, LRScheduler, StepLR

__all__ = ["make_optimizers", "make_schedulers", "unwrap"]


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel/DataParallel wrapper (or the module itself)."""
    return getattr(module, "module", module)


def make_optimizers(
    network: nn.Module,
    discriminators: nn.Module,
    lr: float = 1e-4,
    betas: Sequence[float] = (0.5, 0.999),
    weight_decay: float = 1e-4,
    *,
    d_lr: float | None = None,
    representation_lr_factor: float = 1.0,
) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for the generator side (encoders, generators) and for the discriminators (D_X, D_Y, D_R).

    Paper section 4.1: Adam, lr 1e-4 (the stated "momentum 0.9" matches neither default below exactly).
    ``betas`` defaults to UNIT's (0.5, 0.999); the official LIR config uses (0.0, 0.9). Weight decay 1e-4
    as both official codes. ``d_lr`` (default ``lr``) is the discriminators' rate;
    ``representation_lr_factor`` scales it for D_R in its own parameter group (the official code trains
    D_R at half the rate, i.e. 0.5).
    """
    betas = (float(betas[0]), float(betas[1]))
    g_opt = torch.optim.Adam(unwrap(network).parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
    d_lr = lr if d_lr is None else d_lr
    core = unwrap(discriminators)
    d_rep = getattr(core, "representation_discriminator", None)
    rep_ids = {id(p) for p in d_rep.parameters()} if d_rep is not None else set()
    image_params = [p for p in core.parameters() if id(p) not in rep_ids]
    groups: list[dict] = [{"params": image_params, "lr": d_lr}]
    if d_rep is not None:
        groups.append({"params": list(d_rep.parameters()), "lr": d_lr * representation_lr_factor})
    d_opt = torch.optim.Adam(groups, lr=d_lr, betas=betas, weight_decay=weight_decay)
    return g_opt, d_opt


def make_schedulers(
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    gamma: float = 0.5,
    step: int = 10_000,
    kind: str = "exponential",
) -> tuple[LRScheduler, LRScheduler]:
    """Learning-rate schedules stepped once per training iteration (LIRTrainer does it).

    ``"exponential"`` (paper section 4.1, "exponential decay over the 10K iterations"): ExponentialLR with
    per-iteration factor ``gamma ** (1 / step)``, i.e. the rate is multiplied by ``gamma`` every ``step``
    iterations, smoothly (default: halves every 10 000 iterations).
    ``"step"`` (official code): StepLR, multiplied by ``gamma`` at every ``step`` iterations
    (the official config: gamma 0.5, step 100 000).
    """
    if step < 1 or not 0 < gamma <= 1:
        raise ValueError(f"make_schedulers: need step >= 1 and 0 < gamma <= 1, got step={step}, gamma={gamma}")
    if kind == "exponential":
        factor = gamma ** (1.0 / step)
        return ExponentialLR(g_optimizer, factor), ExponentialLR(d_optimizer, factor)
    if kind == "step":
        return StepLR(g_optimizer, step, gamma), StepLR(d_optimizer, step, gamma)
    raise ValueError(f"make_schedulers: kind must be 'exponential' or 'step', got {kind!r}")
