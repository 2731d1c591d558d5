"""Slice-by-slice restoration of HU volumes with a trained LIR ``Restorer`` (section 3.3, "Restoration").

After training only ``E_X`` and ``G_Y`` are kept: ``x_denoised = G_Y(E_X(x))``. Slices stream through the
network in small batches, so peak memory depends on the batch size and the slice size, never on the number
of slices. MONAI's ``SliceInferer`` needs the whole volume as one tensor, which is exactly what streaming
avoids, so batches are formed here and each goes through ``monai.inferers.SimpleInferer``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers import SimpleInferer

from ldct_invrep.inferers import SelfEnsembleInferer
from ldct_invrep.networks import Restorer
from ldct_invrep.transforms.windowing import NETWORK_HU_RANGE, hu_to_net, net_to_hu

DEFAULT_WEIGHTS_NAME = "lir_ct.pt"


def default_weights_path() -> Path:
    """The weights shipped inside the package (the CLI default)."""
    return Path(str(resources.files("ldct_invrep") / "weights" / DEFAULT_WEIGHTS_NAME))


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU; ``cuda`` without a GPU is a usage error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available")
    return torch.device(device)


class SliceDenoiser:
    """Denoise HU slices with a ``Restorer``; HU outside the network's window pass through unchanged.

    Pixels outside ``hu_range`` (padding outside the field of view, dense metal) are not what the network
    was trained on; they keep their input value so a derived series never loses them. ``self_ensemble``
    (1, 4 or 8) averages the outputs over that many flipped/transposed copies (:class:`SelfEnsembleInferer`).
    """

    def __init__(
        self,
        restorer: Restorer,
        hu_range: tuple[float, float] = NETWORK_HU_RANGE,
        device: str | torch.device = "cpu",
        batch_size: int = 4,
        bf16: bool = False,
        self_ensemble: int = 1,
    ) -> None:
        self.device = torch.device(device)
        # channels-last runs the small convolutions of the CPU presets about twice as fast in oneDNN
        # (benchmarks/denoise_speed.py); on other devices the default layout is kept
        self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.restorer = restorer.to(self.device, memory_format=self.memory_format).eval()
        self.hu_range = (float(hu_range[0]), float(hu_range[1]))
        self.batch_size = int(batch_size)
        self.bf16 = bf16
        self.self_ensemble = int(self_ensemble)
        self.inferer = SelfEnsembleInferer(self.self_ensemble, SimpleInferer())

    @classmethod
    def from_header(cls, restorer: Restorer, header: dict, **kwargs: Any) -> SliceDenoiser:
        """Build for ``restorer`` as its checkpoint ``header`` says it is run: its ``hu_range`` and, unless
        ``self_ensemble`` is given, its ``self_ensemble`` (else 1)."""
        kwargs.setdefault("self_ensemble", int(header.get("self_ensemble", 1)))
        return cls(restorer, hu_range=tuple(header.get("hu_range", NETWORK_HU_RANGE)), **kwargs)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, **kwargs: Any) -> tuple[SliceDenoiser, dict]:
        """Build from a checkpoint written by ``ldct_invrep.engine.save_restorer`` (default: shipped weights),
        with :meth:`from_header`."""
        from ldct_invrep.engine.checkpoint import load_restorer

        restorer, header = load_restorer(Path(path) if path is not None else default_weights_path())
        return cls.from_header(restorer, header, **kwargs), header

    @torch.inference_mode()
    def denoise_batch(self, hu: np.ndarray) -> np.ndarray:
        """Denoise a stack ``(n, H, W)`` of HU slices in one forward pass."""
        hu = np.asarray(hu, dtype=np.float32)
        if hu.ndim != 3:
            raise ValueError(f"expected (n, H, W) HU slices, got shape {hu.shape}")
        x = torch.from_numpy(hu_to_net(hu, self.hu_range))[:, None].to(self.device, memory_format=self.memory_format)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        with autocast:
            y = self.inferer(x, self.restorer)
        out = net_to_hu(y[:, 0].float().cpu().numpy(), self.hu_range)
        outside = (hu < self.hu_range[0]) | (hu > self.hu_range[1])
        out[outside] = hu[outside]
        return out

    def denoise(self, hu: np.ndarray) -> np.ndarray:
        """Denoise a 2D slice or a ``(n, H, W)`` volume, ``batch_size`` slices at a time."""
        hu = np.asarray(hu, dtype=np.float32)
        if hu.ndim == 2:
            return self.denoise_batch(hu[None])[0]
        return np.concatenate([self.denoise_batch(hu[i : i + self.batch_size]) for i in range(0, len(hu), self.batch_size)])

    def iter_denoised(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Stream: yield one denoised ``(n, H, W)`` batch per input batch."""
        for batch in batches:
            yield self.denoise_batch(batch)
