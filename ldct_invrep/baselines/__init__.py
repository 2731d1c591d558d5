"""Reference methods every comparison table shows next to LIR: the noisy input (``identity``), BM3D in the
network's HU window and blind BM3D (``bm3d``, optional ``bm3d`` package, imported when called), their
parameters fitted on training pairs (``bm3d_tuning``), BM3D and Anscombe + BM3D of natural images
(``bm3d_natural``) and the supervised paired network RED-CNN (``redcnn``, trained by ``train_redcnn``).

The methods are built by name in one registry, ``ldct_invrep.evaluation.build_methods`` (CT) and
``build_natural_methods`` (natural images).
"""

from __future__ import annotations

from ldct_invrep.baselines.bm3d import (
    blind_sigma_hu,
    bm3d_blind,
    bm3d_denoise,
    estimate_sigma_hu,
    hu_sigma_to_window,
    window_sigma_to_hu,
)
from ldct_invrep.baselines.bm3d_tuning import tune_bm3d_blind_factor, tune_bm3d_sigma
from ldct_invrep.baselines.identity import input_method
from ldct_invrep.baselines.redcnn import REDCNN

__all__ = [
    "REDCNN",
    "blind_sigma_hu",
    "bm3d_blind",
    "bm3d_denoise",
    "estimate_sigma_hu",
    "hu_sigma_to_window",
    "input_method",
    "tune_bm3d_blind_factor",
    "tune_bm3d_sigma",
    "window_sigma_to_hu",
]
