"""Bundle recipes for training: the network config from the command line, the held-out slices to validate on
and the TensorBoard image grid of validation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["lir_config", "validation_image_grid", "validation_indices"]


def lir_config(preset: str = "lite", **overrides: Any):
    """``networks.get_config(preset, **overrides)`` with ``None`` overrides dropped (a config key left null
    keeps the preset's value, so ``--base_channels 8`` on the command line changes only that field)."""
    from ldct_invrep.networks import get_config

    return get_config(preset, **{k: v for k, v in overrides.items() if v is not None})


def validation_indices(images: Sequence[Any], min_size: int, max_count: int | None = None) -> list[int]:
    """Indices of the held-out slices to validate on: those at least ``min_size`` pixels on each side (full-size
    slices, like those a model is used on), or all of them when none is that large; at most ``max_count``."""
    large = [i for i, im in enumerate(images) if min(np.shape(im)[-2:]) >= min_size]
    chosen = large or list(range(len(images)))
    return chosen if max_count is None else chosen[: int(max_count)]


def validation_image_grid(
    dataset: Any, network: nn.Module, log_dir: str | os.PathLike, interval: int, window: str = "abdomen", n_images: int = 2
):
    """``engine.ImageGridHandler`` for TensorBoard (``logs/``): noisy | denoised | clean rows of the first
    ``n_images`` validation items that share the first one's size, every ``interval`` iterations, shown on
    ``window`` (natural images: ``"full"``, which maps the network range [-1, 1] to [0, 1]). None without
    validation items."""
    from ldct_invrep.engine import ImageGridHandler, unwrap

    items = [dataset[i] for i in range(min(len(dataset), 4 * n_images))]
    if not items:
        return None
    same = [it for it in items if it["noisy"].shape == items[0]["noisy"].shape][:n_images]
    return ImageGridHandler(
        torch.stack([it["noisy"] for it in same]),
        torch.stack([it["clean"] for it in same]),
        lambda: unwrap(network).restorer(),
        log_dir=str(log_dir),
        interval=int(interval),
        window=window,
    )
