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
    "update_checkpoint_mean",
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
    _fold_in(averaged, target, files, key)
    return network


def _fold_in(averaged: nn.Module, target: nn.Module, files: list[Path], key: str) -> None:
    """Add the ``key`` entry of each checkpoint in ``files`` to ``averaged`` (an ``AveragedModel`` of
    ``target``, loaded through ``target``), then leave the mean in ``target``."""
    for f in files:
        state = torch.load(f, map_location="cpu", weights_only=True)
        if key not in state:
            raise InputError(f"{f}: no {key!r} entry in the checkpoint")
        target.load_state_dict(state[key])
        averaged.update_parameters(target)
    target.load_state_dict(averaged.module.state_dict())


def update_checkpoint_mean(
    mean_file: str | os.PathLike[str],
    network: nn.Module,
    files: dict[int, Path],
    first: int,
    last: int,
    key: str = "network",
) -> list[int]:
    """Fold the checkpoints of ``files`` (``{iteration: file}``, e.g. :func:`checkpoint_iterations`) whose
    iteration is in ``(first, last]`` into the running mean kept in ``mean_file``: the mean of
    :func:`average_checkpoints`, built one chunk at a time, so a run that resumes on another machine (its
    earlier checkpoints gone, ``mean_file`` committed) still averages every checkpoint of the range once.
    Iterations already in the mean are skipped. Returns the iterations in the mean; ``network`` (the
    architecture of the checkpoints) ends up holding the mean. ``mean_file`` holds ``{"network": state dict,
    "iterations": [...], "first": first, "last": last}``, written atomically."""
    from torch.optim.swa_utils import AveragedModel

    from ldct_invrep.io.atomic import atomic_replace

    mean_file = Path(mean_file)
    target = unwrap(network)
    done: list[int] = []
    if mean_file.is_file():
        saved = torch.load(mean_file, map_location="cpu", weights_only=True)
        if (saved["first"], saved["last"]) != (first, last):
            raise InputError(f"{mean_file}: a mean over ({saved['first']}, {saved['last']}], not ({first}, {last}]")
        target.load_state_dict(saved["network"])
        done = list(saved["iterations"])
    averaged = AveragedModel(target, use_buffers=True)
    averaged.n_averaged.fill_(len(done))
    new = {i: f for i, f in sorted(files.items()) if first < i <= last and i not in done}
    _fold_in(averaged, target, list(new.values()), key)
    done += list(new)
    if new:
        with atomic_replace(mean_file) as tmp:
            torch.save({"network": target.state_dict(), "iterations": sorted(done), "first": first, "last": last}, tmp)
    return sorted(done)
