"""Bundle recipes for weights: export a trained Restorer in the one checkpoint format (as trained, best in
validation, or the mean of the run's later checkpoints), load it back, and rebuild its network from the header."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ldct_invrep.errors import InputError, first_line
from ldct_invrep.recipes.training import lir_config

__all__ = [
    "bundle_checkpoint",
    "checkpoint_header",
    "export_averaged_restorer",
    "export_best_restorer",
    "export_restorer",
    "load_restorer_weights",
    "restorer_config",
]


def export_restorer(network: nn.Module, ckpt_dir: str | os.PathLike, header: dict[str, Any] | None = None) -> list[str]:
    """Write the trained Restorer (E_X -> G_Y of a LIRNet, DDP-wrapped or not) to ``ckpt_dir/model.pt`` in the
    one checkpoint format (``io.checkpoint.save_restorer``: state dict + JSON header with the network config),
    which the bundles' evaluate/inference configs, ``ldct-invrep denoise --weights``, ``ldct-invrep info`` and
    MONAI's ``ckpt_export --key_in_ckpt state_dict`` all read. Returns ``[path]``."""
    from ldct_invrep.engine import unwrap
    from ldct_invrep.io.checkpoint import save_restorer

    out = Path(ckpt_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [str(save_restorer(out / "model.pt", unwrap(network), header))]


def export_best_restorer(
    network: nn.Module,
    ckpt_dir: str | os.PathLike,
    header: dict[str, Any],
    evaluator: Any,
    epoch_length: int,
    val_interval: int,
    best_file: str = "best_network.pt",
) -> list[str]:
    """:func:`export_restorer` of the network that scored best in validation.

    ``best_file`` in ``ckpt_dir`` is what MONAI's ``CheckpointSaver(save_key_metric=True)`` kept on the
    evaluator. ``evaluator.state.best_metric_epoch`` is the *trainer* epoch of that validation
    (``ValidationHandler`` passes it), so with one validation per epoch (``val_interval == epoch_length``,
    the bundles' default) the network is that of iteration ``best_metric_epoch * epoch_length``, which the
    header's ``iterations`` then says (``iterations_run``: how long training ran). Without a best file (no
    validation ran) the current network is exported as it is.
    """
    from ldct_invrep.engine import unwrap

    best = Path(ckpt_dir) / best_file
    if not best.is_file():
        return export_restorer(network, ckpt_dir, header)
    unwrap(network).load_state_dict(torch.load(best, map_location="cpu", weights_only=True))
    state = evaluator.state
    epoch = int(state.best_metric_epoch)
    header = {
        **header,
        "iterations": epoch * int(epoch_length) if int(val_interval) == int(epoch_length) else None,
        "iterations_run": header.get("iterations"),
        "best_epoch": epoch,
        "selected_by": f"best {state.key_metric_name} in validation ({float(state.best_metric):.4f})",
    }
    return export_restorer(network, ckpt_dir, header)


def export_averaged_restorer(
    network: nn.Module, ckpt_dir: str | os.PathLike, header: dict[str, Any], average_from: int
) -> list[str]:
    """:func:`export_restorer` of the mean of the training checkpoints in ``ckpt_dir`` from iteration
    ``average_from`` on (``engine.average_checkpoints``: weights and batch-norm statistics); the header's
    ``iterations`` is the last of them and ``averaged_iterations`` lists them all."""
    from ldct_invrep.engine.checkpoint import average_checkpoints, checkpoint_iterations

    found = {i: f for i, f in checkpoint_iterations(ckpt_dir).items() if i >= int(average_from)}
    if not found:
        raise InputError(
            f"{ckpt_dir}: no training checkpoint at iteration {average_from} or later to average "
            "(checkpoint_interval too long, or n_checkpoints too small?)"
        )
    average_checkpoints(network, list(found.values()))
    its = list(found)
    header = {
        **header,
        "iterations": its[-1],
        "iterations_run": header.get("iterations"),
        "averaged_iterations": its,
        "selected_by": f"mean of the weights of the {len(its)} checkpoints at iterations {its[0]}-{its[-1]}",
    }
    return export_restorer(network, ckpt_dir, header)


def load_restorer_weights(network: nn.Module, ckpt_file: str | os.PathLike, map_location: Any = "cpu") -> nn.Module:
    """Load ``ckpt_file`` (an ``io.checkpoint`` file such as ``models/model.pt``, or a plain Restorer state dict)
    into ``network`` strictly; returns it in eval mode. A missing, unreadable or foreign file, weights that do
    not fit ``network`` and weights that are not finite raise ``InputError`` naming the file."""
    from ldct_invrep.io.checkpoint import check_finite_weights

    path = Path(ckpt_file)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file (train first, or pass --ckpt_path)")
    _, state = _read(path, map_location)
    check_finite_weights(path, state)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise InputError(f"{path}: weights do not fit the configured network (preset/base_channels?): {first_line(err, 200)}") from err
    return network.eval()


def _read(path: Path, map_location: Any = "cpu") -> tuple[dict[str, Any], Any]:
    """``io.checkpoint.read_checkpoint`` for the bundles: a plain state dict too, a TorchScript file refused."""
    from ldct_invrep.io.checkpoint import TORCHSCRIPT, read_checkpoint

    header, weights = read_checkpoint(path, map_location, plain_state_dict=True)
    if header.get("format") == TORCHSCRIPT:
        raise InputError(
            f"{path}: a TorchScript file; the bundle configs read the checkpoint it was exported from "
            "(models/model.pt), ldct-invrep denoise --weights reads this one"
        )
    return header, weights


def bundle_checkpoint(bundle_root: str | os.PathLike) -> str:
    """``<bundle_root>/models/model.pt`` when it exists, else the weights shipped in the package (what
    ``ldct_simulated``'s evaluate and inference configs read: the shipped weights are that bundle's model)."""
    from ldct_invrep.package_files import default_weights_path

    own = Path(bundle_root) / "models" / "model.pt"
    return str(own if own.is_file() or not default_weights_path().is_file() else default_weights_path())


def checkpoint_header(ckpt_file: str | os.PathLike, channels: int | None = None, remedy: str = "") -> dict[str, Any]:
    """The JSON header of an ``io.checkpoint`` file, or ``{}`` for a plain state dict or a file not written yet
    (loading the weights then names it). A file that is not a checkpoint raises ``InputError`` naming it, and so,
    with ``channels``, does a network for another number of image channels (``io.checkpoint.check_image_channels``:
    1 for the CT bundles, the natural-image bundles' ``channels``; ``remedy`` ends that message)."""
    from ldct_invrep.io.checkpoint import check_image_channels

    path = Path(ckpt_file)
    if not path.is_file():
        return {}
    header, _ = _read(path)
    if channels is not None:
        check_image_channels(path, header, int(channels), remedy)
    return header


def restorer_config(header: dict[str, Any], preset: str = "lite", **overrides: Any):
    """The network config of a checkpoint ``header`` (so evaluation, inference and export rebuild exactly the
    trained network), or :func:`lir_config` ``(preset, **overrides)`` when there is none (plain state dict)."""
    from ldct_invrep.networks import LIRConfig

    return LIRConfig(**header["config"]) if "config" in header else lir_config(preset, **overrides)
