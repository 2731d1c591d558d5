"""Reference methods every comparison table shows next to LIR.

``METHODS`` maps a name to a callable HU -> HU (2D slice or (z, y, x) volume, float32 out):

* ``"input"``: the noisy image itself;
* ``"bm3d"``: BM3D in the network's window (optional ``bm3d`` package, imported when called).

``REDCNN`` is the supervised paired baseline network (Chen et al. 2017); it needs training by the engine,
so it is not a ready HU -> HU method here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ldct_invrep.baselines.bm3d import (
    blind_sigma_hu,
    bm3d_blind,
    bm3d_denoise,
    estimate_sigma_hu,
    hu_sigma_to_window,
    window_sigma_to_hu,
)
from ldct_invrep.baselines.identity import input_method
from ldct_invrep.baselines.redcnn import REDCNN
from ldct_invrep.errors import InputError

HUMethod = Callable[[np.ndarray], np.ndarray]

METHODS: dict[str, HUMethod] = {
    "input": input_method,
    "bm3d": bm3d_denoise,
}


def get_method(name: str) -> HUMethod:
    """The HU -> HU callable registered as ``name``."""
    try:
        return METHODS[name]
    except KeyError:
        raise InputError(f"method {name!r}: unknown; known: {', '.join(sorted(METHODS))}") from None


__all__ = [
    "METHODS",
    "REDCNN",
    "HUMethod",
    "blind_sigma_hu",
    "bm3d_blind",
    "bm3d_denoise",
    "estimate_sigma_hu",
    "get_method",
    "hu_sigma_to_window",
    "input_method",
    "window_sigma_to_hu",
]
