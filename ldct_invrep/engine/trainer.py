"""LIRTrainer: MONAI/ignite trainer whose iteration is one discriminator step then one encoder/generator step.

Follows the MONAI model-zoo pattern of a custom ``monai.engines.Trainer`` subclass overriding
``_iteration`` (the brats_mri_axial_slices_generative_diffusion bundle's ``VaeGanTrainer``).
``monai.engines.GanTrainer`` does not fit: it feeds random latents to one generator and one
discriminator, while LIR translates unpaired image batches with five networks against three
discriminators.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from ignite.engine import Events
from ignite.metrics import Metric
from monai.engines import Trainer
from monai.engines.utils import default_metric_cmp_fn
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler

from ldct_invrep.errors import InputError, as_flag

from .optim import unwrap

__all__ = [
    "LIRTrainer",
    "discriminator_step",
    "generator_step",
    "lir_training_step",
    "prepare_unpaired_batch",
]

AutocastFactory = Callable[[], contextlib.AbstractContextManager]


def _check_patch_size(loader: Any, discriminators: nn.Module) -> None:
    """Refuse, before the first iteration, training patches smaller than the discriminators take (the bundles'
    ``patch_size`` against ``MultiScaleDiscriminator.min_size``, from their layers and scales)."""
    from ldct_invrep.networks.discriminators import MultiScaleDiscriminator

    patch = getattr(getattr(loader, "dataset", None), "patch_size", None)
    need = max((m.min_size for m in unwrap(discriminators).modules() if isinstance(m, MultiScaleDiscriminator)), default=0)
    if isinstance(patch, int) and patch < need:
        raise InputError(
            f"patch_size {patch}: the discriminators take patches of at least {need}x{need} (their layers and scales)"
        )


def prepare_unpaired_batch(
    batchdata: dict[str, Tensor], device: str | torch.device | None = None, non_blocking: bool = False, **kwargs: Any
) -> tuple[Tensor, ...]:
    """``{"noisy": B x C x H x W, "clean": B x C x H x W}`` (independent draws) -> (x, y) on ``device``; with a
    ``"clean_noise"`` entry (``data.UnpairedPatchDataset(clean_noise_images=...)``) -> (x, y, clean_noise)."""
    if not isinstance(batchdata, dict) or "noisy" not in batchdata or "clean" not in batchdata:
        keys = sorted(batchdata) if isinstance(batchdata, dict) else type(batchdata).__name__
        raise ValueError(f"LIRTrainer expects batches {{'noisy': ..., 'clean': ...}}, got {keys}")
    x = batchdata["noisy"].to(device=device, non_blocking=non_blocking, **kwargs)
    y = batchdata["clean"].to(device=device, non_blocking=non_blocking, **kwargs)
    if "clean_noise" in batchdata:
        return x, y, batchdata["clean_noise"].to(device=device, non_blocking=non_blocking, **kwargs)
    return x, y


@contextlib.contextmanager
def _frozen(module: nn.Module):
    """Parameters of ``module`` do not require grad inside the block (inputs still get gradients)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def discriminator_step(
    out: Any,
    discriminators: nn.Module,
    objective: nn.Module,
    d_optimizer: torch.optim.Optimizer,
    autocast: AutocastFactory = contextlib.nullcontext,
    clean_noise: Tensor | None = None,
) -> dict[str, float]:
    """Update D_X, D_Y, D_R on one forward pass (eq. 9, 12, 13, maximised side).

    The objective detaches the generated images and codes, so no generator-side weight or gradient is
    touched. ``clean_noise``: see ``LIRObjective``. Returns the discriminator terms (``d_x``, ``d_y``,
    ``d_r``, ``total``).
    """
    d_optimizer.zero_grad(set_to_none=True)
    with autocast():
        d_loss, terms = objective.discriminator_loss(out, discriminators, clean_noise=clean_noise)
    d_loss.backward()
    d_optimizer.step()
    return terms


def generator_step(
    out: Any,
    discriminators: nn.Module,
    objective: nn.Module,
    g_optimizer: torch.optim.Optimizer,
    autocast: AutocastFactory = contextlib.nullcontext,
    clean_noise: Tensor | None = None,
) -> dict[str, float]:
    """Update the encoders and generators with the generator-side loss of eq. 14.

    The discriminators are used unwrapped (no DDP hooks) with their parameters frozen: gradients flow
    through them to the generated images and codes, none is computed for their weights, and their
    optimiser is not stepped. Returns the generator terms (``rec``, ``cc``, ``adv``, ``adv_r``, ``bc``,
    ``sc``, ``kl``, ``total``).
    """
    g_optimizer.zero_grad(set_to_none=True)
    with _frozen(unwrap(discriminators)) as core:
        with autocast():
            g_loss, terms = objective.generator_loss(out, core, clean_noise=clean_noise)
        g_loss.backward()
    g_optimizer.step()
    return terms


def lir_training_step(
    network: nn.Module,
    discriminators: nn.Module,
    objective: nn.Module,
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    autocast: AutocastFactory = contextlib.nullcontext,
    clean_noise: Tensor | None = None,
) -> dict[str, float]:
    """One LIR iteration on an unpaired batch (noisy ``x``, clean ``y``; optionally the clean domain's noise,
    see ``LIRObjective``): one forward pass of the generator side, the discriminator step on its detached
    outputs, then the encoder/generator step against the updated discriminators.

    The official code runs a separate generator forward for each step; sharing one is equivalent (the
    generator weights do not change in between) up to the draw of the noise-code sample, and saves a pass.
    Returns the generator terms plus ``g_total``, ``d_x``, ``d_y``, ``d_r``, ``d_total``.
    """
    with autocast():
        out = network(x, y)
    d_terms = discriminator_step(out, discriminators, objective, d_optimizer, autocast, clean_noise)
    g_terms = generator_step(out, discriminators, objective, g_optimizer, autocast, clean_noise)
    result = {k: float(v) for k, v in g_terms.items() if k != "total"}
    result["g_total"] = float(g_terms["total"])
    result.update({k: float(v) for k, v in d_terms.items() if k != "total"})
    result["d_total"] = float(d_terms["total"])
    return result


class LIRTrainer(Trainer):
    """Unsupervised LIR training (paper section 3, eq. 14) as a MONAI ``Trainer``.

    Each batch is ``{"noisy": B x C x H x W, "clean": B x C x H x W}``, the two halves drawn independently,
    optionally with ``"clean_noise"`` (the clean domain's own noise, passed to the objective; see ``LIRObjective``).
    ``_iteration`` performs the discriminator step (D_X, D_Y, D_R) then the encoder/generator step
    (:func:`lir_training_step`), steps both LR schedulers (per iteration), and returns the loss terms as
    floats in ``engine.state.output`` (keys ``rec, cc, adv, adv_r, bc, sc, kl, g_total, d_x, d_y, d_r,
    d_total, lr``), ready for ``TensorBoardStatsHandler(output_transform=lambda o: o)``.

    ``amp=True`` runs forward passes under ``torch.autocast(device.type, dtype=amp_dtype)`` with bfloat16
    (no gradient scaler needed; float16 is refused). On CPU it pays off only for wide networks: measured
    with benchmarks/train_speed.py, the ``lite`` preset is about 20x *slower* under bf16 autocast.
    At every epoch start ``set_epoch(epoch - 1)`` is called on the data loader's dataset when it has one
    (``UnpairedPatchDataset`` draws new patches per epoch).
    ``network`` and ``discriminators`` may be DistributedDataParallel-wrapped.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Any,
        network: nn.Module,
        discriminators: nn.Module,
        objective: nn.Module,
        g_optimizer: torch.optim.Optimizer,
        d_optimizer: torch.optim.Optimizer,
        epoch_length: int | None = None,
        g_scheduler: LRScheduler | None = None,
        d_scheduler: LRScheduler | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable = prepare_unpaired_batch,
        iteration_update: Callable | None = None,
        postprocessing: Callable | None = None,
        key_train_metric: dict[str, Metric] | None = None,
        additional_metrics: dict[str, Metric] | None = None,
        metric_cmp_fn: Callable = default_metric_cmp_fn,
        train_handlers: Sequence | None = None,
        amp: bool = False,
        amp_dtype: torch.dtype = torch.bfloat16,
        decollate: bool = False,
        to_kwargs: dict | None = None,
        amp_kwargs: dict | None = None,
    ) -> None:
        amp = as_flag(amp, "bf16")
        if amp and amp_dtype != torch.bfloat16:
            raise ValueError("LIRTrainer: only bfloat16 autocast is supported (float16 would need gradient scalers)")
        _check_patch_size(train_data_loader, discriminators)
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=prepare_batch,
            iteration_update=iteration_update,
            postprocessing=postprocessing,
            key_metric=key_train_metric,
            additional_metrics=additional_metrics,
            metric_cmp_fn=metric_cmp_fn,
            handlers=None,
            amp=False,  # the base class would build a CUDA GradScaler; bf16 autocast needs none
            decollate=decollate,
            to_kwargs=to_kwargs,
            amp_kwargs=amp_kwargs,
        )
        self.network = network
        self.discriminators = discriminators
        self.objective = objective
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.g_scheduler = g_scheduler
        self.d_scheduler = d_scheduler
        self.use_autocast = amp
        self.amp_dtype = amp_dtype
        self.add_event_handler(Events.EPOCH_STARTED, self._set_dataset_epoch)
        if train_handlers is not None:
            self._register_handlers(train_handlers)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context of this trainer's forward passes (a no-op unless ``amp``)."""
        if not self.use_autocast:
            return contextlib.nullcontext()
        return torch.autocast(self.state.device.type, dtype=self.amp_dtype, **self.amp_kwargs)

    @staticmethod
    def _set_dataset_epoch(engine: LIRTrainer) -> None:
        dataset = getattr(engine.data_loader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(engine.state.epoch - 1)

    def _iteration(self, engine: LIRTrainer, batchdata: dict[str, Tensor]) -> dict[str, float]:
        if batchdata is None:
            raise ValueError("must provide batch data for current iteration.")
        x, y, *clean_noise = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        # an evaluator running the shared Restorer may have left E_X / G_Y in eval mode
        engine.network.train()
        engine.discriminators.train()
        output = lir_training_step(
            engine.network, engine.discriminators, engine.objective, engine.g_optimizer, engine.d_optimizer,
            x, y, autocast=engine.autocast, clean_noise=clean_noise[0] if clean_noise else None,
        )  # fmt: skip
        output["lr"] = float(engine.g_optimizer.param_groups[0]["lr"])
        for scheduler in (engine.g_scheduler, engine.d_scheduler):
            if scheduler is not None:
                scheduler.step()
        return output
