"""Bundle recipes for metrics: what ``monai.handlers`` metrics see of the engine output (the HU window of CT, the
8-bit [0, 1] images of natural images), so every metric states its window and data range."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from monai.handlers import from_engine
from torch import Tensor

__all__ = ["natural_output", "windowed_output"]


def natural_output(quantize: bool = True) -> Callable[[Any], tuple[Tensor, Tensor]]:
    """``output_transform`` for ``monai.handlers`` metrics on natural images: engine output (``pred``,
    ``label`` in network range) -> (prediction, reference) in [0, 1] (``data.natural.from_net``: prediction
    clipped and, with ``quantize``, rounded to 8-bit levels; the paper evaluates saved 8-bit images). PSNR
    with ``max_val=1`` then equals PSNR on [0, 255] with peak 255; SSIM uses ``data_range=1``."""
    from ldct_invrep.data.natural import from_net

    get = from_engine(["pred", "label"])

    def transform(output: Any) -> tuple[Tensor, Tensor]:
        pred, label = get(output)
        return from_net(pred, quantize), from_net(label, quantize=False)

    return transform


def windowed_output(window: str | Sequence[float] = "abdomen") -> Callable[[Any], tuple[Tensor, Tensor]]:
    """``output_transform`` for ``monai.handlers`` metrics on CT: engine output (``pred``, ``label`` in network
    range) -> both in HU clipped to ``window`` (``"abdomen"`` [-160, 240], ``"full"`` [-1024, 3072], any
    ``transforms.windowing.WINDOWS`` name or a (lo, hi) pair). Use the window width as data range
    (``PSNR(max_val=hi - lo)``, ``SSIMMetric(data_range=hi - lo)``): ``ldct_invrep.metrics``'s convention."""
    from ldct_invrep.engine.handlers import windowed_hu_output

    return windowed_hu_output(window)
