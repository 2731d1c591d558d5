"""Training checkpoints (MONAI ``CheckpointSaver`` files): find them by iteration and average them.

The inference checkpoint format (the Restorer plus a JSON header) is ``ldct_invrep.io.checkpoint``; its
``save_restorer`` / ``load_restorer`` / ``read_header`` are re-exported here for the campaign drivers
(``campaign/``), which import them from this module.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ldct_invrep.errors import InputError
from ldct_invrep.io.checkpoint import load_restorer, read_header, save_restorer

from .optim import unwrap

__all__ = [
    "average_checkpoints",
    "checkpoint_iterations",
    "latest_training_state",
    "load_restorer",
    "read_header",
    "save_restorer",
]


def checkpoint_iterations(ckpt_dir: str | os.PathLike[str], prefix: str = "checkpoint_iteration=") -> dict[int, Path]:
    """``{iteration: file}`` of the training checkpoints MONAI's ``CheckpointSaver`` wrote to ``ckpt_dir``
    (``checkpoint_iteration=N.pt``)."""
    found = {}
    for f in Path(ckpt_dir).glob(f"{prefix}*.pt"):
        tail = f.stem[len(prefix) :]
        if tail.isdigit():
            found[int(tail)] = f
    return dict(sorted(found.items()))


def latest_training_state(ckpt_dir: str | os.PathLike[str], committed: str | os.PathLike[str]) -> tuple[int, Path | None]:
    """``(iteration, file)`` of the newest full training state: the last of :func:`checkpoint_iterations`
    in ``ckpt_dir`` or ``committed`` (a copy kept elsewhere, e.g. a campaign's committed state), whichever
    is further; ``(0, None)`` when there is neither."""
    import torch

    found = list(checkpoint_iterations(ckpt_dir).items())
    committed = Path(committed)
    if committed.is_file():
        state = torch.load(committed, map_location="cpu", weights_only=False)
        found.append((int(state["trainer"]["iteration"]), committed))
    return max(found, key=lambda t: t[0]) if found else (0, None)


def average_checkpoints(network: nn.Module, files: list[Path], key: str = "network") -> nn.Module:
    """Load into ``network`` the mean of the weights *and buffers* (batch-norm statistics) stored under ``key``
    in training checkpoints ``files``: a uniform average of snapshots along one run (stochastic weight
    averaging, Izmailov et al., UAI 2018), with ``torch.optim.swa_utils.AveragedModel``.

    Adversarial training does not settle at a point: the generator circles around one, and with it the mean
    HU level of its output drifts by several HU from snapshot to snapshot. The average of snapshots sits
    nearer the centre (docs/shipped_weights.md measures it). Returns ``network``.
    """
    from torch.optim.swa_utils import AveragedModel

    if not files:
        raise InputError("average_checkpoints: no checkpoint files given")
    target = unwrap(network)
    averaged = AveragedModel(target, use_buffers=True)
    for f in files:
        state = torch.load(f, map_location="cpu", weights_only=True)
        if key not in state:
            raise InputError(f"{f}: no {key!r} entry in the checkpoint")
        target.load_state_dict(state[key])
        averaged.update_parameters(target)
    target.load_state_dict(averaged.module.state_dict())
    return network
