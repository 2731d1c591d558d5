"""Slice-by-slice restoration of HU volumes with a trained LIR ``Restorer`` (section 3.3, "Restoration").

After training only ``E_X`` and ``G_Y`` are kept: ``x_denoised = G_Y(E_X(x))``. Slices stream through the
network in small batches, so peak memory depends on the batch size and the slice size, never on the number
of slices. MONAI's ``SliceInferer`` needs the whole volume as one tensor, which is exactly what streaming
avoids, so batches are formed here and each goes through ``monai.inferers.SimpleInferer``.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import SimpleInferer
from torch import nn

from ldct_invrep.cpu_memory import retain_freed_memory
from ldct_invrep.errors import InputError
from ldct_invrep.inferers import SelfEnsembleInferer
from ldct_invrep.transforms.reference_noise import blend_slices_to_reference_noise, check_reference_noise
from ldct_invrep.transforms.windowing import NETWORK_HU_RANGE, hu_to_net, keep_outside_window, net_to_hu

#: Slices per forward pass by device type. On CPU one slice at a time was fastest (denoise of the 20-slice
#: sample, self-ensemble 8, 2 threads: 22 s at batch 1, 38 s at batch 4; benchmarks/denoise_speed.py).
DEFAULT_BATCH_SIZES = {"cpu": 1, "cuda": 4}
#: A plain (n, H, W) stack whose slices are narrower than this, with at least this many of them, is most
#: likely a MONAI (x, y, z) array that lost its metadata: refused rather than denoised along the wrong axis.
_MIN_SLICE_WIDTH = 8


def default_batch_size(device: str | torch.device) -> int:
    """Slices per forward pass for ``device``: :data:`DEFAULT_BATCH_SIZES` (1 on CPU, 4 on CUDA)."""
    return DEFAULT_BATCH_SIZES.get(torch.device(device).type, 1)


def memory_format(device: str | torch.device) -> torch.memory_format:
    """Layout for the Restorer's weights and inputs on ``device``: channels-last on CPU, where oneDNN runs the
    small convolutions of the CPU presets about twice as fast (benchmarks/denoise_speed.py); the default layout
    elsewhere. ``SliceDenoiser`` and the bundles' inference use it, so both compute the same floats."""
    return torch.channels_last if torch.device(device).type == "cpu" else torch.contiguous_format


def self_ensemble_size(header: dict[str, Any], chosen: Any = None) -> int:
    """``chosen`` when given, else the header's ``self_ensemble`` (else 1): how a checkpoint is run, by
    :meth:`SliceDenoiser.from_header` and the bundles' evaluate and inference configs. A ``chosen`` that is not one
    of :data:`~ldct_invrep.io.checkpoint.SELF_ENSEMBLE_SIZES` (``--self_ensemble 3``) raises ``InputError``."""
    from ldct_invrep.io.checkpoint import SELF_ENSEMBLE_SIZES

    if chosen is None:
        return int(header.get("self_ensemble", 1))
    if isinstance(chosen, bool) or str(chosen).strip() not in {str(n) for n in SELF_ENSEMBLE_SIZES}:
        raise InputError(f"self_ensemble must be one of {', '.join(map(str, SELF_ENSEMBLE_SIZES))}, got {chosen!r}")
    return int(chosen)


def reference_noise_level(header: dict[str, Any], chosen: Any = None) -> float:
    """``chosen`` when given, else the header's ``reference_noise_hu`` (else 0, no blending): by
    :meth:`SliceDenoiser.from_header` and the CT bundles' ``ReferenceNoiseBlendd``. A ``chosen`` that is not a
    finite number >= 0 HU raises ``InputError``."""
    if chosen is None:
        return float(header.get("reference_noise_hu", 0.0))
    try:
        if isinstance(chosen, bool):
            raise TypeError(chosen)
        return check_reference_noise(float(chosen))
    except (TypeError, ValueError):
        raise InputError(f"reference_noise_hu must be a finite number >= 0 (HU), got {chosen!r}") from None


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` picks CUDA when available, else CPU; ``cuda`` without a GPU and a name torch does not know are
    bad input (``InputError``; the CLI's ``--device``, the bundles' ``device``, checked in their ``initialize``)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"--device {device}: not a device name (cpu, cuda, cuda:N)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but no CUDA device is available")
    return resolved


class SliceDenoiser:
    """Denoise HU slices with a ``Restorer``; HU outside the network's window pass through unchanged.

    Pixels outside ``hu_range`` (padding outside the field of view, dense metal) are not what the network
    was trained on; they keep their input value so a derived series never loses them. ``self_ensemble``
    (1, 2, 4 or 8) averages the outputs over that many flipped/transposed copies (:class:`SelfEnsembleInferer`).
    ``reference_noise_hu`` > 0 blends each slice back towards its input by the noise a normal-dose reference
    keeps (:mod:`ldct_invrep.transforms.reference_noise`); 0 returns the network's output alone.
    On the CPU it keeps freed memory in the process (:func:`~ldct_invrep.cpu_memory.retain_freed_memory`).
    ``batch_size`` None: :func:`default_batch_size` of the device. ``restorer`` is a
    :class:`~ldct_invrep.networks.Restorer` or its TorchScript export.
    """

    def __init__(
        self,
        restorer: nn.Module,
        hu_range: tuple[float, float] = NETWORK_HU_RANGE,
        device: str | torch.device = "cpu",
        batch_size: int | None = None,
        bf16: bool = False,
        self_ensemble: int = 1,
        reference_noise_hu: float = 0.0,
    ) -> None:
        self.device = torch.device(device)
        if self.device.type == "cpu":
            retain_freed_memory()  # ~30 % faster on 512 x 512 slices (ldct_invrep.cpu_memory)
        self.memory_format = memory_format(self.device)
        self.restorer = restorer.to(self.device, memory_format=self.memory_format).eval()
        self.hu_range = (float(hu_range[0]), float(hu_range[1]))
        self.batch_size = int(batch_size) if batch_size is not None else default_batch_size(self.device)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.bf16 = bf16
        self.self_ensemble = int(self_ensemble)
        self.inferer = SelfEnsembleInferer(self.self_ensemble, SimpleInferer())
        self.reference_noise_hu = check_reference_noise(reference_noise_hu)
        #: the input's weight ``a`` of every slice blended so far (reference-noise blending; empty when off)
        self.blend_weights: list[float] = []

    @classmethod
    def from_header(cls, restorer: nn.Module, header: dict, **kwargs: Any) -> SliceDenoiser:
        """Build for ``restorer`` as its checkpoint ``header`` says it is run: its ``hu_range`` and, unless
        given (and not None), its ``self_ensemble`` (else 1) and ``reference_noise_hu`` (else 0). The CLI and the
        bundles' inference both build their denoiser here, so the same weights give the same output."""
        kwargs["self_ensemble"] = self_ensemble_size(header, kwargs.get("self_ensemble"))
        kwargs["reference_noise_hu"] = reference_noise_level(header, kwargs.get("reference_noise_hu"))
        return cls(restorer, hu_range=tuple(header.get("hu_range", NETWORK_HU_RANGE)), **kwargs)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, **kwargs: Any) -> tuple[SliceDenoiser, dict]:
        """Build from a checkpoint (``ldct_invrep.io.checkpoint``: the ldct-invrep format or TorchScript; default:
        the shipped weights), with :meth:`from_header`."""
        from ldct_invrep.io.checkpoint import load_restorer
        from ldct_invrep.package_files import default_weights_path

        restorer, header = load_restorer(Path(path) if path is not None else default_weights_path())
        return cls.from_header(restorer, header, **kwargs), header

    @torch.inference_mode()
    def denoise_batch(self, hu: np.ndarray) -> np.ndarray:
        """Denoise a stack ``(n, H, W)`` of HU slices in one forward pass."""
        hu = np.asarray(hu, dtype=np.float32)
        if hu.ndim != 3:
            raise ValueError(f"expected (n, H, W) HU slices, got shape {hu.shape}")
        if 0 in hu.shape[1:]:
            raise ValueError(f"expected (n, H, W) HU slices with H, W >= 1, got shape {hu.shape}")
        bad = hu.size - int(np.count_nonzero(np.isfinite(hu)))
        if bad:  # the convolutions would spread them over their neighbours
            raise ValueError(f"{bad} NaN or infinite HU values in the input; replace them (e.g. by -1024 HU) first")
        x = torch.from_numpy(hu_to_net(hu, self.hu_range))[:, None].to(self.device, memory_format=self.memory_format)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        with autocast:
            y = self.inferer(x, self.restorer)
        out = keep_outside_window(net_to_hu(y[:, 0].float().cpu().numpy(), self.hu_range), hu, self.hu_range)
        if self.reference_noise_hu:
            out, weights = blend_slices_to_reference_noise(hu, out, self.reference_noise_hu, self.hu_range[0])
            self.blend_weights.extend(weights)
        return out

    def denoise(self, hu: np.ndarray | MetaTensor) -> np.ndarray | MetaTensor:
        """Denoise a 2D slice or a ``(n, H, W)`` volume, ``batch_size`` slices at a time.

        A MONAI ``MetaTensor`` (what ``LoadImage`` gives) is read in MONAI's layout, found from its number of axes and its affine:
        ``(x, y, z)`` or channel-first ``(1, x, y, z)``, or ``(x, y)`` / ``(1, x, y)`` for one slice; each
        z-slice is denoised as the (row, column) image it is, and the result is a float32 ``MetaTensor`` of
        the same layout and metadata. A plain array is ``(n, H, W)`` (or ``(H, W)``); one whose slices are
        narrower than 8 pixels while there are at least 8 of them is refused as ambiguous (``ValueError``).
        """
        if isinstance(hu, MetaTensor):
            return self._denoise_metatensor(hu)
        hu = np.asarray(hu, dtype=np.float32)
        if hu.ndim == 2:
            return self.denoise_batch(hu[None])[0]
        if hu.ndim != 3:
            raise ValueError(f"expected a (H, W) slice or (n, H, W) slices, got shape {hu.shape}")
        if hu.shape[-1] < _MIN_SLICE_WIDTH <= min(hu.shape[:2]):
            raise ValueError(
                f"shape {hu.shape} reads as {hu.shape[0]} slices of {hu.shape[1]} x {hu.shape[2]} pixels; "
                "a MONAI (x, y, z) array? pass the MetaTensor itself, or (n, H, W) slices"
            )
        if len(hu) == 0:
            return hu.copy()
        return np.concatenate([self.denoise_batch(hu[i : i + self.batch_size]) for i in range(0, len(hu), self.batch_size)])

    def _denoise_metatensor(self, image: MetaTensor) -> MetaTensor:
        """:meth:`denoise` of a MONAI array: (x, y) / (x, y, z), or channel-first (1, x, y) with a 2D affine /
        (1, x, y, z)."""
        spatial = 2 if image.ndim == 2 or image.affine.shape[-1] == 3 else 3
        channel = image.ndim - spatial
        if channel not in (0, 1) or (channel and image.shape[0] != 1):
            raise ValueError(
                f"MetaTensor of shape {tuple(image.shape)} with a {image.affine.shape[-1] - 1}D affine: expected "
                "(x, y, z), (1, x, y, z), (x, y) or (1, x, y)"
            )
        xyz = image.detach().cpu().numpy().astype(np.float32, copy=False)
        xyz = xyz[0] if channel else xyz
        slices = xyz.T[None] if xyz.ndim == 2 else xyz.T  # (z, y, x): rows then columns
        out = np.concatenate([self.denoise_batch(slices[i : i + self.batch_size]) for i in range(0, len(slices), self.batch_size)])
        out = out[0].T if xyz.ndim == 2 else out.T
        out = np.ascontiguousarray(out[None] if channel else out)
        return MetaTensor(torch.from_numpy(out), affine=image.affine.clone(), meta=dict(image.meta))
