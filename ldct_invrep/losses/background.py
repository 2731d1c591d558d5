"""Background consistency loss L_BC (eq. 10), the Background Consistency Module (BCM, Fig. 3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers import separable_filtering
from torch import Tensor
from torch.nn.modules.loss import _Loss

from ldct_invrep.losses._reduction import check_reduction, reduce


def gaussian_kernel_1d(kernel_size: int, sigma: float) -> Tensor:
    """Normalised 1-D Gaussian of odd length ``kernel_size`` (sums to 1, float32)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd integer, got {kernel_size}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    centre = (kernel_size - 1) / 2
    offsets = torch.arange(kernel_size, dtype=torch.float64) - centre
    kernel = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    return (kernel / kernel.sum()).to(torch.float32)


class BackgroundConsistencyLoss(_Loss):
    """Multi-scale blurred L1, eq. 10: ``L_BC = sum_k lambda_k ||B_k(chi) - B_k(chi~)||_1``.

    ``B_k`` is a fixed (not learned) depthwise Gaussian blur, the same kernel on every channel, so any
    channel count works. ``chi`` is the input and ``chi~`` its translation: the objective applies it to
    ``(x, x2y)`` and ``(y, y2x)``.

    Reading of the paper: eq. 10 writes "sigma = 5, 9, 15" with weights 0.25, 0.5, 1.0. The official code
    uses 5, 9, 15 as the kernel *sizes* with a Gaussian standard deviation of 25 for all three, which at
    these sizes is practically a box (mean) filter. We follow the code: defaults ``kernel_sizes=(5, 9, 15)``,
    ``sigma=25.0``; pass e.g. ``kernel_sizes=(31, 55, 91), sigma=(5, 9, 15)`` for the other reading.

    The 2-D kernel is the outer product of a normalised 1-D Gaussian with itself (sums to 1), applied as two
    separable 1-D convolutions with reflect padding (``kernel_size // 2`` on each side, so the output has
    the input's size). Reflect padding needs the image to be larger than the pad; smaller images fall back
    to replicate padding. The 1-D kernels are non-persistent buffers: ``.to(device)`` moves them and they do
    not appear in state dicts.

    Reduction: each scale's ``|B_k(a) - B_k(b)|`` is reduced (``"mean"``/``"sum"``), weighted and summed;
    ``"none"`` returns the weighted element-wise sum, shaped like the input.

    The convolution is MONAI's ``separable_filtering`` (reflect mode). ``monai.networks.layers.GaussianFilter``
    is not used because it derives the kernel size from sigma and a truncation, while eq. 10 as implemented
    fixes the kernel size, and it pads with zeros, which darkens the borders of the blurred images.
    """

    def __init__(
        self,
        kernel_sizes: Sequence[int] = (5, 9, 15),
        weights: Sequence[float] = (0.25, 0.5, 1.0),
        sigma: float | Sequence[float] = 25.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction=check_reduction(reduction, owner=type(self).__name__))
        sizes = [int(k) for k in kernel_sizes]
        sigmas = [float(sigma)] * len(sizes) if isinstance(sigma, (int, float)) else [float(s) for s in sigma]
        if not sizes or len(weights) != len(sizes) or len(sigmas) != len(sizes):
            raise ValueError(
                f"BackgroundConsistencyLoss: need one weight and sigma per kernel size, got "
                f"kernel_sizes={tuple(sizes)}, weights={tuple(weights)}, sigma={sigma}"
            )
        self.kernel_sizes = tuple(sizes)
        self.weights = tuple(float(w) for w in weights)
        self.sigmas = tuple(sigmas)
        for i, (size, s) in enumerate(zip(sizes, sigmas)):
            self.register_buffer(f"kernel_{i}", gaussian_kernel_1d(size, s), persistent=False)

    def kernel_1d(self, scale: int) -> Tensor:
        """The 1-D Gaussian of blur level ``scale`` (index into ``kernel_sizes``)."""
        return getattr(self, f"kernel_{scale}")

    def blur(self, image: Tensor, scale: int) -> Tensor:
        """``B_k(image)`` for ``image`` of shape B x C x H x W; the output has the same shape."""
        if image.ndim != 4:
            raise ValueError(f"BackgroundConsistencyLoss: expected B x C x H x W, got {tuple(image.shape)}")
        kernel = self.kernel_1d(scale)
        pad = kernel.numel() // 2
        if pad == 0:
            return image
        mode = "reflect" if min(image.shape[-2:]) > pad else "replicate"
        return separable_filtering(image, [kernel, kernel], mode=mode)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 (torch loss naming)
        if input.shape != target.shape:
            raise ValueError(
                f"BackgroundConsistencyLoss: shapes differ, {tuple(input.shape)} vs {tuple(target.shape)}"
            )
        total: Tensor | None = None
        for scale, weight in enumerate(self.weights):
            diff = torch.abs(self.blur(input, scale) - self.blur(target, scale))
            term = weight * reduce(diff, self.reduction)
            total = term if total is None else total + term
        assert total is not None
        return total

    def extra_repr(self) -> str:
        return f"kernel_sizes={self.kernel_sizes}, weights={self.weights}, sigma={self.sigmas}"


__all__ = ["BackgroundConsistencyLoss", "gaussian_kernel_1d"]
