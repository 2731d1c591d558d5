"""Ablation switches of paper Table 4 and a builder for the three training objects."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ldct_invrep.losses.objective import LIRLossWeights, LIRObjective
from ldct_invrep.networks import LIRConfig, LIRDiscriminators, LIRNet, get_config

__all__ = ["ABLATIONS", "build_lir"]

#: Table 4 variants: name -> (LIRConfig overrides, LIRObjective keyword arguments).
ABLATIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "full": ({}, {}),
    "no_noise_encoder": ({"use_noise_encoder": False}, {}),  # Table 4 (a): G_X takes z only
    "no_representation_discriminator": ({"use_representation_discriminator": False}, {}),  # (b): no D_R
    "no_background_consistency": ({}, {"use_background": False}),  # (c): no L_BC
}


def build_lir(
    config: LIRConfig | str = "lite",
    ablation: str = "full",
    weights: LIRLossWeights | None = None,
    **objective_kwargs: Any,
) -> tuple[LIRNet, LIRDiscriminators, LIRObjective]:
    """(LIRNet, LIRDiscriminators, LIRObjective) for a preset name or config and an ablation of Table 4.

    ``objective_kwargs`` go to :class:`LIRObjective` (e.g. ``vgg_weights``, ``gan_criterion``).
    """
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; expected one of {sorted(ABLATIONS)}")
    config_overrides, objective_overrides = ABLATIONS[ablation]
    config = get_config(config) if isinstance(config, str) else config
    config = replace(config, **config_overrides)
    objective = LIRObjective(
        weights if weights is not None else LIRLossWeights(), **{**objective_kwargs, **objective_overrides}
    )
    return LIRNet(config), LIRDiscriminators(config), objective
