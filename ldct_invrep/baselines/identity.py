"""The "input" method: the noisy image itself, the lower bound every comparison table shows."""

from __future__ import annotations

from typing import Any

import numpy as np


def input_method(hu: Any) -> np.ndarray:
    """Return a float32 copy of the HU image (2D or 3D), unchanged."""
    return np.array(hu, dtype=np.float32, copy=True)
