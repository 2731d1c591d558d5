"""Full LIR training states with a header: what ``ldct-invrep adapt`` continues training from.

An exported inference checkpoint holds only the Restorer (E_X, G_Y). Continuing the unpaired training of
eq. 14 needs every network and both optimisers, i.e. the dictionary MONAI's ``CheckpointSaver`` writes for
:func:`~ldct_invrep.engine.handlers.checkpoint_dict`, plus the network config, which that dictionary lacks.
File layout (``torch.save`` of a dict, loadable with ``torch.load(weights_only=True)``)::

    {"format": "ldct-invrep-training-state", "header_json": "<JSON>",
     "network": LIRNet state dict (E_X, E_Y, E_X^N, G_X, G_Y),      required
     "discriminators": LIRDiscriminators state dict (D_X, D_Y, D_R), required
     "g_optimizer", "d_optimizer": Adam state dicts,                 required
     "g_scheduler", "d_scheduler": LR scheduler state dicts,         optional (ExponentialLR or StepLR)
     "trainer": ignite engine state, "rng": RNGState,                optional (exact resume only)
     ... any further checkpointable objects of the writer (``adapt``: "budget", "averaged_network")}

Header contract: ``config`` (the LIRConfig fields) is required. ``loss_weights`` (LIRLossWeights fields)
sets the lambdas of eq. 14; without it they are read from the ``semantic_weight`` / ``adversarial_weight``
/ ``cross_cycle_weight`` keys of a bundle's export header, the other lambdas at their defaults.
``ablation`` (Table 4 variant, default "full"), ``preset``, ``hu_range``, ``self_ensemble``, ``window``,
``training_data`` and ``iterations`` are carried over to the models adapted from it.

A campaign's ``CheckpointSaver`` file becomes such a state with (header taken from the exported weights)::

    python -m ldct_invrep.engine.training_state models/checkpoint_iteration=40000.pt \\
        ldct_invrep/weights/lir_ct_state.pt --header-from ldct_invrep/weights/lir_ct.pt --average-from 20000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.handlers import Checkpoint
from torch import nn
from torch.optim.lr_scheduler import ExponentialLR, StepLR

from ldct_invrep import __version__
from ldct_invrep.errors import InputError
from ldct_invrep.io.atomic import atomic_replace

from ldct_invrep.io.checkpoint import FORMAT as RESTORER_FORMAT

__all__ = [
    "FORMAT",
    "REQUIRED_KEYS",
    "TrainingState",
    "default_training_state_path",
    "loss_weights_from_header",
    "read_training_state",
    "save_training_state",
    "state_path_for",
]

FORMAT = "ldct-invrep-training-state"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("network", "discriminators", "g_optimizer", "d_optimizer")
#: The players and their optimisers/schedulers: what a new run takes over from a state (not its iteration,
#: RNG or clock, which belong to the run that wrote it).
MODEL_KEYS = (*REQUIRED_KEYS, "g_scheduler", "d_scheduler")


def state_path_for(weights: str | os.PathLike[str]) -> Path:
    """The training state that goes with an inference checkpoint: ``name.pt`` -> ``name_state.pt``."""
    path = Path(weights)
    return path.with_name(f"{path.stem}_state.pt")


def default_training_state_path() -> Path:
    """The shipped default model's training state (``weights/<default weights>_state.pt`` in the package)."""
    from ldct_invrep.package_files import default_weights_path

    return state_path_for(default_weights_path())


@dataclasses.dataclass
class TrainingState:
    """A read training state: its file, header and the raw state dicts (tensors on CPU)."""

    path: Path
    header: dict[str, Any]
    entries: dict[str, Any]

    def build(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        """(LIRNet, LIRDiscriminators, LIRObjective) of the header's config, ablation and loss weights, with the
        state's weights loaded (strictly)."""
        from ldct_invrep.networks import LIRConfig

        from .ablations import build_lir

        try:
            config = LIRConfig(**self.header["config"])
        except (TypeError, ValueError) as err:
            raise InputError(f"{self.path}: header 'config' is not an LIR config ({err})") from err
        network, discriminators, objective = build_lir(
            config, self.header.get("ablation", "full"), loss_weights_from_header(self.header)
        )
        self.load({"network": network, "discriminators": discriminators})
        return network, discriminators, objective

    def restorer(self) -> nn.Module:
        """The Restorer (E_X -> G_Y, eval mode) of the state's network: the model the state starts from."""
        from ldct_invrep.networks import LIRConfig, LIRNet

        network = LIRNet(LIRConfig(**self.header["config"]))
        self.load({"network": network})
        return network.restorer().eval()

    def make_schedulers(self, g_optimizer: torch.optim.Optimizer, d_optimizer: torch.optim.Optimizer):
        """Schedulers of the kind the state holds (ExponentialLR, or StepLR when its state has a ``step_size``),
        to be loaded from it; ``(None, None)`` when the state has none."""
        if "g_scheduler" not in self.entries:
            return None, None
        if "step_size" in self.entries["g_scheduler"]:
            return StepLR(g_optimizer, 1), StepLR(d_optimizer, 1)
        return ExponentialLR(g_optimizer, 1.0), ExponentialLR(d_optimizer, 1.0)

    def load(self, objects: Mapping[str, Any]) -> None:
        """``load_state_dict`` of every object in ``objects`` from the entry of the same name (ignite's
        ``Checkpoint.load_objects``); a missing entry or a mismatch is an ``InputError`` naming the file."""
        missing = [k for k in objects if k not in self.entries]
        if missing:
            raise InputError(f"{self.path}: training state has no {', '.join(repr(k) for k in missing)}")
        try:
            Checkpoint.load_objects(to_load=dict(objects), checkpoint=self.entries)
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            first = " ".join(str(err).split())[:200]
            raise InputError(f"{self.path}: training state does not fit its header's networks ({first})") from err


def loss_weights_from_header(header: Mapping[str, Any]):
    """:class:`LIRLossWeights` of a header: its ``loss_weights``, else the bundle export keys ``*_weight``."""
    from ldct_invrep.losses import LIRLossWeights

    if "loss_weights" in header:
        return LIRLossWeights(**header["loss_weights"])
    names = {"semantic_weight": "semantic", "adversarial_weight": "adversarial", "cross_cycle_weight": "cross_cycle"}
    return LIRLossWeights(**{field: float(header[key]) for key, field in names.items() if header.get(key) is not None})


def _state_dict(obj: Any) -> Any:
    from .optim import unwrap

    obj = unwrap(obj)
    return obj.state_dict() if hasattr(obj, "state_dict") else obj


def save_training_state(path: str | os.PathLike[str], objects: Mapping[str, Any], header: Mapping[str, Any]) -> Path:
    """Write ``objects`` (e.g. :func:`checkpoint_dict` of a trainer: modules, optimisers, schedulers, engine,
    RNG, anything with ``state_dict``; DDP wrappers are unwrapped) with ``header`` to ``path`` atomically.

    ``header`` must hold ``config``; ``format_version`` and ``package_version`` are added.
    """
    missing = [k for k in REQUIRED_KEYS if k not in objects]
    if missing or "config" not in header:
        raise ValueError(f"save_training_state: need {list(REQUIRED_KEYS)} and header['config'], missing {missing}")
    header = {**header, "format_version": FORMAT_VERSION, "package_version": header.get("package_version", __version__)}
    if dataclasses.is_dataclass(header["config"]):
        header["config"] = dataclasses.asdict(header["config"])
    try:
        header_json = json.dumps(header, sort_keys=True)
    except TypeError as err:
        raise ValueError(f"save_training_state: header is not JSON-serialisable: {err}") from err
    payload = {k: _state_dict(v) for k, v in objects.items()}
    payload.update(format=FORMAT, header_json=header_json)
    with atomic_replace(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_training_state(path: str | os.PathLike[str]) -> TrainingState:
    """Read and check a training state; every problem is an ``InputError`` naming the file, in one line,
    telling an inference checkpoint (Restorer only) and a header-less ``CheckpointSaver`` file apart."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such training state file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
        raise InputError(f"{path}: not a readable torch checkpoint ({type(err).__name__})") from err
    if not isinstance(payload, dict):
        raise InputError(f"{path}: not an ldct-invrep training state")
    if payload.get("format") == RESTORER_FORMAT:
        raise InputError(
            f"{path}: an inference checkpoint (E_X and G_Y only) without the training state; adapting needs all "
            "networks, the discriminators and optimisers: pass a *_state.pt file"
        )
    if payload.get("format") != FORMAT:
        if all(k in payload for k in REQUIRED_KEYS):
            raise InputError(
                f"{path}: a training checkpoint without a header (no network config); "
                "wrap it with python -m ldct_invrep.engine.training_state"
            )
        raise InputError(f"{path}: not an ldct-invrep training state")
    header = json.loads(payload.pop("header_json"))
    payload.pop("format")
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise InputError(f"{path}: training state format {header['format_version']} is newer than this ldct-invrep")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing or "config" not in header:
        lacking = missing + ([] if "config" in header else ["header config"])
        raise InputError(f"{path}: training state lacks {', '.join(lacking)}")
    return TrainingState(path, header, payload)


# --------------------------------------------------------------------------------------------- wrapping
def wrap_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    header_from: str | os.PathLike[str],
    average_from: int | None = None,
) -> tuple[Path, float]:
    """Turn a ``CheckpointSaver`` file into a training state at ``out``, with the header of the exported weights
    ``header_from``. With ``average_from``, the network is the mean of the checkpoints of the same folder from
    that iteration on (as ``recipes.export_averaged_restorer`` exported it). Returns ``(out, difference)``:
    the largest absolute difference between the state's Restorer and the weights of ``header_from`` (0 when
    the state starts exactly where those weights are)."""
    from ldct_invrep.networks import LIRConfig, LIRNet, restorer_state_dict

    from .checkpoint import average_checkpoints, checkpoint_iterations, load_restorer

    restorer, header = load_restorer(header_from)
    entries = torch.load(checkpoint, map_location="cpu", weights_only=True)
    missing = [k for k in REQUIRED_KEYS if k not in entries]
    if missing:
        raise InputError(f"{checkpoint}: not a full training checkpoint (no {', '.join(missing)})")
    if average_from is not None:
        files = [f for i, f in checkpoint_iterations(Path(checkpoint).parent).items() if i >= average_from]
        network = average_checkpoints(LIRNet(LIRConfig(**header["config"])), files)
        entries["network"] = network.state_dict()
    header = {**header, "loss_weights": dataclasses.asdict(loss_weights_from_header(header))}
    save_training_state(out, entries, header)
    mine, theirs = restorer_state_dict(entries["network"]), restorer.state_dict()
    floats = [k for k in theirs if theirs[k].is_floating_point()]
    diff = max(float((mine[k].float() - theirs[k].float()).abs().max()) for k in floats)
    return Path(out), diff


def main(argv: list[str] | None = None) -> None:
    """``python -m ldct_invrep.engine.training_state CHECKPOINT OUT --header-from WEIGHTS [--average-from N]``."""
    p = argparse.ArgumentParser(description=wrap_checkpoint.__doc__)
    p.add_argument("checkpoint", help="CheckpointSaver file (checkpoint_iteration=N.pt or checkpoint_final.pt)")
    p.add_argument("out", help="training state to write, e.g. ldct_invrep/weights/<name>_state.pt")
    p.add_argument("--header-from", required=True, help="the exported weights of the same run (save_restorer file)")
    p.add_argument("--average-from", type=int, default=None, help="average the checkpoints from this iteration on")
    args = p.parse_args(argv)
    try:
        out, diff = wrap_checkpoint(args.checkpoint, args.out, args.header_from, args.average_from)
    except InputError as err:
        raise SystemExit(f"error: {err}") from err
    print(f"wrote {out}; its Restorer differs from {args.header_from} by at most {diff:.3g}")


if __name__ == "__main__":  # pragma: no cover
    main()
