"""Handlers for LIR training, built on ``monai.handlers``: checkpoints with exact resume, TensorBoard
scalars and image grids, validation PSNR of the Restorer on a held-out paired set."""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.engines import SupervisedEvaluator
from monai.handlers import (
    CheckpointLoader,
    CheckpointSaver,
    PeakSignalToNoiseRatio,
    StatsHandler,
    TensorBoardStatsHandler,
    ValidationHandler,
    from_engine,
)
from torch import Tensor, nn

from ldct_invrep.transforms.windowing import net_to_hu, window_from_name_or_range

from .optim import unwrap

__all__ = [
    "ImageGridHandler",
    "RNGState",
    "checkpoint_dict",
    "make_checkpoint_loader",
    "make_checkpoint_saver",
    "make_stats_handlers",
    "make_validation",
    "prepare_paired_batch",
]


class RNGState:
    """Python, NumPy and torch (CPU and CUDA) random states as a checkpointable object.

    MONAI and ignite have no handler for this. Put it in the checkpoint dict: ``CheckpointSaver`` stores
    ``state_dict()`` at save time, ``CheckpointLoader`` calls ``load_state_dict`` at ``Events.STARTED``.
    Stored as tensors and plain numbers, so the checkpoint loads with ``torch.load(weights_only=True)``.
    """

    def state_dict(self) -> dict[str, Any]:
        np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
        version, py_state, gauss = random.getstate()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy_keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "numpy_meta": [str(np_name), int(np_pos), int(np_has_gauss), float(np_gauss)],
            "python_state": torch.tensor(py_state, dtype=torch.int64),
            "python_meta": [int(version), gauss],
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        name, pos, has_gauss, gauss = state["numpy_meta"]
        np.random.set_state((name, state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, gauss))
        version, py_gauss = state["python_meta"]
        random.setstate((version, tuple(int(v) for v in state["python_state"].tolist()), py_gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dict(trainer: Any) -> dict[str, Any]:
    """Everything exact resume needs: both players (unwrapped from DDP), both optimisers and schedulers
    (when present), the trainer's iteration/epoch and the RNG states."""
    objects: dict[str, Any] = {
        "network": unwrap(trainer.network),
        "discriminators": unwrap(trainer.discriminators),
        "g_optimizer": trainer.g_optimizer,
        "d_optimizer": trainer.d_optimizer,
    }
    if trainer.g_scheduler is not None:
        objects["g_scheduler"] = trainer.g_scheduler
    if trainer.d_scheduler is not None:
        objects["d_scheduler"] = trainer.d_scheduler
    objects["trainer"] = trainer
    objects["rng"] = RNGState()
    return objects


def make_checkpoint_saver(
    save_dir: str, trainer: Any, every_n_iterations: int, n_saved: int | None = 3, save_final: bool = True
) -> CheckpointSaver:
    """``CheckpointSaver`` of :func:`checkpoint_dict` every ``every_n_iterations``, keeping the last ``n_saved``
    (files ``checkpoint_iteration=N.pt``), plus a final one at the end of the run.

    Resume is exact (same losses and weights as an uninterrupted run) from checkpoints taken at an epoch
    end: ignite restarts the data iterator of an interrupted epoch from its beginning. Make
    ``every_n_iterations`` a multiple of the epoch length (e.g. epoch length = checkpoint interval).
    """
    epoch_length = trainer.state.epoch_length
    if epoch_length and every_n_iterations % epoch_length:
        warnings.warn(
            f"checkpoint interval {every_n_iterations} is not a multiple of the epoch length {epoch_length}: "
            "a resume from a mid-epoch checkpoint re-reads that epoch's data from its start (not bit-exact)",
            stacklevel=2,
        )
    return CheckpointSaver(
        save_dir=save_dir,
        save_dict=checkpoint_dict(trainer),
        save_final=save_final,
        final_filename="checkpoint_final.pt",
        epoch_level=False,
        save_interval=every_n_iterations,
        n_saved=n_saved,
    )


def make_checkpoint_loader(path: str, trainer: Any, map_location: Any = None) -> CheckpointLoader:
    """``CheckpointLoader`` restoring :func:`checkpoint_dict` at ``Events.STARTED`` (training resumes after
    the saved iteration)."""
    return CheckpointLoader(load_path=path, load_dict=checkpoint_dict(trainer), map_location=map_location)


def make_stats_handlers(log_dir: str | None, every_n_iterations: int = 10, console: bool = True) -> list[Any]:
    """Loss terms of ``engine.state.output`` (a dict of floats) to the console and to TensorBoard scalars."""
    handlers: list[Any] = []
    if console:
        handlers.append(StatsHandler(iteration_log=every_n_iterations, epoch_log=False, output_transform=lambda o: o))
    if log_dir is not None:
        handlers.append(
            TensorBoardStatsHandler(
                log_dir=log_dir, iteration_log=every_n_iterations, epoch_log=False, output_transform=lambda o: o
            )
        )
    return handlers


def _to_display(images: Tensor, window: str | Sequence[float]) -> Tensor:
    """Network range -> [0, 1] on an HU display window."""
    lo, hi = window_from_name_or_range(window)
    return ((net_to_hu(images.float()) - lo) / (hi - lo)).clamp(0, 1)


class ImageGridHandler:
    """Writes an image grid to TensorBoard every ``interval`` iterations: one row per sample of a fixed
    held-out batch, columns noisy | denoised (Restorer) | clean, shown on an HU display window.

    ``monai.handlers.TensorBoardImageHandler`` draws ``engine.state.batch``/``output`` of one item; the
    LIR trainer's output is a dict of loss values and its batches are unpaired, so this handler runs the
    Restorer on its own fixed paired batch instead.
    """

    def __init__(
        self,
        noisy: Tensor,
        clean: Tensor,
        restorer: Callable[[], nn.Module],
        log_dir: str | None = None,
        summary_writer: Any = None,
        interval: int = 500,
        window: str | Sequence[float] = "abdomen",
        tag: str = "noisy|denoised|clean",
    ) -> None:
        if summary_writer is None:
            from torch.utils.tensorboard import SummaryWriter

            summary_writer = SummaryWriter(log_dir=log_dir)
        self.writer = summary_writer
        self.noisy, self.clean = noisy, clean
        self.restorer = restorer
        self.interval = interval
        self.window = window
        self.tag = tag

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.interval), self)

    def grid(self, device: torch.device | str = "cpu") -> Tensor:
        """1 x (B*H) x (3*W) grid (first channel) in [0, 1]."""
        model = self.restorer()
        model.eval()
        with torch.no_grad():
            denoised = model(self.noisy.to(device)).cpu()
        rows = [torch.cat([n[0], d[0], c[0]], dim=-1) for n, d, c in zip(self.noisy.cpu(), denoised, self.clean.cpu())]
        return _to_display(torch.cat(rows, dim=-2), self.window)[None]

    def __call__(self, engine: Engine) -> None:
        self.writer.add_image(self.tag, self.grid(engine.state.device), engine.state.iteration)
        self.writer.flush()


def prepare_paired_batch(
    batchdata: dict[str, Tensor], device: str | torch.device | None = None, non_blocking: bool = False, **kwargs: Any
) -> tuple[Tensor, Tensor]:
    """Paired evaluation batch ``{"noisy", "clean"}`` -> (input, target) for ``SupervisedEvaluator``."""
    return (
        batchdata["noisy"].to(device=device, non_blocking=non_blocking, **kwargs),
        batchdata["clean"].to(device=device, non_blocking=non_blocking, **kwargs),
    )


def windowed_hu_output(window: str | Sequence[float]) -> Callable[[Any], tuple[Tensor, Tensor]]:
    """``output_transform``: engine output (``pred``, ``label`` in network range) -> both in HU clipped to ``window``
    (a ``transforms.windowing.WINDOWS`` name or a (lo, hi) pair); ``recipes.windowed_output`` for the bundles."""
    lo, hi = window_from_name_or_range(window)
    get = from_engine(["pred", "label"])

    def transform(output: Any) -> tuple[Tensor, Tensor]:
        pred, label = get(output)
        return net_to_hu(pred.float()).clamp(lo, hi), net_to_hu(label.float()).clamp(lo, hi)

    return transform


def make_validation(
    val_data_loader: Any,
    network: nn.Module,
    device: str | torch.device,
    interval: int,
    window: str | Sequence[float] = "abdomen",
    val_handlers: Sequence | None = None,
    amp: bool = False,
) -> tuple[ValidationHandler, SupervisedEvaluator]:
    """A ``SupervisedEvaluator`` computing PSNR of the Restorer (E_X -> G_Y of ``network``, shared weights)
    on a paired held-out set, in HU clipped to ``window`` with data range = window width (``"abdomen"``:
    [-160, 240] HU, data range 400; ``"full"``: [-1024, 3072], 4096), run every ``interval`` iterations
    by a ``ValidationHandler``. The metric is ``evaluator.state.metrics["val_psnr"]``.
    """
    lo, hi = window_from_name_or_range(window)
    evaluator = SupervisedEvaluator(
        device=device,
        val_data_loader=val_data_loader,
        network=unwrap(network).restorer(),
        prepare_batch=prepare_paired_batch,
        key_val_metric={
            "val_psnr": PeakSignalToNoiseRatio(max_val=hi - lo, output_transform=windowed_hu_output(window))
        },
        val_handlers=val_handlers,
        decollate=False,
        amp=amp,
    )
    return ValidationHandler(interval=interval, validator=evaluator, epoch_level=False), evaluator
