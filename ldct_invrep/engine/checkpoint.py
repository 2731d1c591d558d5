"""Exported inference checkpoints: the Restorer's plain state dict plus a small JSON-able header.

File layout (``torch.save`` of a dict, loadable with ``torch.load(weights_only=True)``)::

    {"format": "ldct-invrep-restorer", "header_json": "<JSON>", "state_dict": {name: Tensor}}

The header always holds ``format_version``, ``package_version`` and ``config`` (the LIRConfig fields, so
the network can be rebuilt), plus whatever the caller adds: preset, window, training data description,
iterations, ...
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ldct_invrep import __version__
from ldct_invrep.errors import InputError
from ldct_invrep.io.atomic import atomic_replace
from ldct_invrep.networks import LIRConfig, LIRNet, Restorer, restorer_state_dict

from .optim import unwrap

__all__ = ["FORMAT", "FORMAT_VERSION", "check_header", "load_restorer", "read_header", "save_restorer"]

FORMAT = "ldct-invrep-restorer"
FORMAT_VERSION = 1


def save_restorer(path: str | os.PathLike[str], network: nn.Module, header: dict[str, Any] | None = None) -> Path:
    """Write the Restorer (E_X, G_Y) of ``network`` with ``header`` to ``path`` atomically; returns the path.

    ``network`` is a :class:`LIRNet` (optionally DDP-wrapped; its config goes into the header) or a
    :class:`Restorer` (then ``header["config"]`` must hold the LIRConfig fields).
    Raises ``ValueError`` when the header is not JSON-serialisable.
    """
    path = Path(path)
    network = unwrap(network)
    header = dict(header or {})
    if isinstance(network, LIRNet):
        state = restorer_state_dict(network.state_dict())
        header["config"] = dataclasses.asdict(network.config)
    elif isinstance(network, Restorer):
        if "config" not in header:
            raise ValueError("save_restorer: a bare Restorer needs header['config'] (the LIRConfig fields)")
        cfg = header["config"]
        header["config"] = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
        state = network.state_dict()
    else:
        raise TypeError(f"save_restorer: expected LIRNet or Restorer, got {type(network).__name__}")
    header.setdefault("package_version", __version__)
    header["format_version"] = FORMAT_VERSION
    try:
        header_json = json.dumps(header, sort_keys=True)
    except TypeError as err:
        raise ValueError(f"save_restorer: header is not JSON-serialisable: {err}") from err
    payload = {
        "format": FORMAT,
        "header_json": header_json,
        "state_dict": {k: v.detach().cpu().clone() for k, v in state.items()},
    }
    with atomic_replace(path) as tmp:
        torch.save(payload, tmp)
    return path


def _read(path: Path, map_location: Any) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise InputError(f"{path}: not a readable torch checkpoint ({type(err).__name__})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not an {FORMAT} checkpoint")
    return payload


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of a restorer checkpoint (config, preset, window, training description, ...)."""
    return json.loads(_read(Path(path), "cpu")["header_json"])


def check_header(path: str | os.PathLike[str], header: Any) -> dict[str, Any]:
    """``header`` if its run settings are usable, else :class:`InputError` naming ``path`` and the key.

    ``hu_range``: two finite HU values, low < high; ``self_ensemble``: one of
    :data:`ldct_invrep.inferers.SELF_ENSEMBLE_SIZES`; ``config``: a mapping; ``format_version``: an integer.
    """
    from ldct_invrep.inferers import SELF_ENSEMBLE_SIZES

    if not isinstance(header, dict):
        raise InputError(f"{path}: checkpoint header is not a JSON object")
    version = header.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError(f"{path}: checkpoint header format_version {version!r} is not an integer")
    if version > FORMAT_VERSION:
        raise InputError(f"{path}: checkpoint format {version} is newer than this ldct-invrep ({FORMAT_VERSION})")
    if not isinstance(header.get("config"), dict):
        raise InputError(f"{path}: checkpoint header has no network config")
    if "hu_range" in header:
        value = header["hu_range"]
        ok = isinstance(value, (list, tuple)) and len(value) == 2
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        if not ok or value[0] >= value[1]:
            raise InputError(f"{path}: checkpoint header hu_range {value!r} is not [low, high] HU with low < high")
    if "self_ensemble" in header:
        value = header["self_ensemble"]
        if isinstance(value, bool) or value not in SELF_ENSEMBLE_SIZES:
            raise InputError(
                f"{path}: checkpoint header self_ensemble {value!r} is not one of {', '.join(map(str, SELF_ENSEMBLE_SIZES))}"
            )
    return header


def _check_weights(path: Path, config: LIRConfig, state: Any) -> None:
    """Refuse, before allocating the network, a state dict that does not fit ``config`` (an absurd config in a
    small file), and weights that are not finite. The network is built on the meta device: no memory."""
    if not isinstance(state, dict):
        raise InputError(f"{path}: checkpoint state_dict is not a mapping of tensors")
    if config.n_res + config.n_downsample > len(state):  # each such block holds tensors: cannot match; and slow to build
        raise InputError(
            f"{path}: weights do not match the stored config (n_res {config.n_res} + n_downsample "
            f"{config.n_downsample} blocks, but the file holds {len(state)} tensors)"
        )
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in Restorer.from_config(config).state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    if stored != expected:
        wrong = sorted(set(expected) ^ set(stored)) or sorted(k for k in expected if expected[k] != stored[k])
        n_expected = sum(math.prod(s) for s in expected.values())
        raise InputError(
            f"{path}: weights do not match the stored config (which asks for {n_expected:,} values; "
            f"first mismatch: {wrong[0]})"
        )
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise InputError(f"{path}: weights contain NaN or infinite values ({name}); the checkpoint is broken")


def load_restorer(path: str | os.PathLike[str], map_location: Any = "cpu") -> tuple[Restorer, dict[str, Any]]:
    """(Restorer in eval mode, header) from a file written by :func:`save_restorer`.

    Raises :class:`~ldct_invrep.errors.InputError` naming the file when it is missing, unreadable, of
    another format, its header asks for unusable settings (:func:`check_header`), or its weights do not
    fit its config or are not finite (checked before the network is allocated).
    """
    path = Path(path)
    payload = _read(path, map_location)
    try:
        header = json.loads(payload["header_json"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{path}: checkpoint header is not valid JSON ({type(err).__name__})") from err
    check_header(path, header)
    try:
        config = LIRConfig(**header["config"])
    except (TypeError, ValueError) as err:
        raise InputError(f"{path}: checkpoint header config is invalid ({' '.join(str(err).split())[:150]})") from err
    _check_weights(path, config, payload.get("state_dict"))
    try:
        restorer = Restorer.from_config(config)
        restorer.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"{path}: weights do not match the stored config ({type(err).__name__})") from err
    return restorer.eval(), header


def checkpoint_iterations(ckpt_dir: str | os.PathLike[str], prefix: str = "checkpoint_iteration=") -> dict[int, Path]:
    """``{iteration: file}`` of the training checkpoints MONAI's ``CheckpointSaver`` wrote to ``ckpt_dir``
    (``checkpoint_iteration=N.pt``)."""
    found = {}
    for f in Path(ckpt_dir).glob(f"{prefix}*.pt"):
        tail = f.stem[len(prefix) :]
        if tail.isdigit():
            found[int(tail)] = f
    return dict(sorted(found.items()))


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
