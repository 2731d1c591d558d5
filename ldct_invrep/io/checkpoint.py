"""The one inference checkpoint format of ldct-invrep: the Restorer's state dict plus a small JSON header.

File layout (``torch.save`` of a dict, loadable with ``torch.load(weights_only=True)``)::

    {"format": "ldct-invrep-restorer", "header_json": "<JSON>", "state_dict": {name: Tensor}}

The header always holds ``format_version``, ``package_version`` and ``config`` (the LIRConfig fields, so
the network can be rebuilt), plus whatever the caller adds: preset, window, HU range, self-ensemble,
training data, iterations, ... The shipped weights, a bundle's ``models/model.pt`` and the CLI's
``--weights`` all use it. MONAI's bundle tools read the weights with ``key_in_ckpt="state_dict"``
(``python -m monai.bundle ckpt_export ... --key_in_ckpt state_dict``); ``CheckpointLoader`` with
``load_dict={"state_dict": net}``. :func:`load_restorer` also takes a TorchScript file (what
``ckpt_export`` writes), which has no header.

MONAI has no checkpoint type that carries the network's own config, hence this module. It lives in
``io`` so inference reads checkpoints without importing the training engine; torch and the networks
(MONAI) are imported inside the functions, so naming a missing file costs nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ldct_invrep import __version__
from ldct_invrep.errors import InputError
from ldct_invrep.io.atomic import atomic_replace

if TYPE_CHECKING:
    from torch import nn

#: The header's ``self_ensemble`` sizes (``inferers.SelfEnsembleInferer``): 1 the input only; 2 it and its
#: horizontal flip (a larger network at the cost of 4 passes of the default one, docs/shipped_weights.md);
#: 4 the input and its horizontal, vertical and double flips; 8 those and their transposes (the dihedral group).
#: Here, not in ``inferers``, because the CLI's options read it without importing torch.
SELF_ENSEMBLE_SIZES = (1, 2, 4, 8)

__all__ = [
    "SELF_ENSEMBLE_SIZES",
    "FORMAT",
    "FORMAT_VERSION",
    "HEADER_TITLES",
    "TORCHSCRIPT",
    "check_finite_weights",
    "check_header",
    "check_image_channels",
    "checkpoint_text",
    "describe_header",
    "header_value_text",
    "is_torchscript",
    "load_restorer",
    "read_checkpoint",
    "read_header",
    "save_restorer",
]

FORMAT = "ldct-invrep-restorer"
FORMAT_VERSION = 1
TORCHSCRIPT = "torchscript"


def save_restorer(path: str | os.PathLike[str], network: nn.Module, header: dict[str, Any] | None = None) -> Path:
    """Write the Restorer (E_X, G_Y) of ``network`` with ``header`` to ``path`` atomically; returns the path.

    ``network`` is a :class:`~ldct_invrep.networks.LIRNet` (optionally DDP-wrapped; its config goes into the
    header) or a :class:`~ldct_invrep.networks.Restorer` (then ``header["config"]`` must hold the LIRConfig
    fields). Raises ``ValueError`` when the header is not JSON-serialisable.
    """
    import torch

    from ldct_invrep.networks import LIRNet, Restorer, restorer_state_dict

    path = Path(path)
    network = getattr(network, "module", network)  # DistributedDataParallel / DataParallel
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


def is_torchscript(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``; a zip with ``constants.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def _torchscript_header(extra: dict[str, str]) -> dict[str, Any]:
    """Header of a TorchScript file: its format and what MONAI's ``ckpt_export`` stored in ``metadata.json``."""
    header: dict[str, Any] = {"format": TORCHSCRIPT}
    try:
        meta = json.loads(extra.get("metadata.json") or "{}")
    except json.JSONDecodeError:
        meta = {}
    for key in ("name", "version"):
        if key in meta:
            header[f"bundle_{key}"] = meta[key]
    return header


def read_checkpoint(
    path: str | os.PathLike[str], map_location: Any = "cpu", plain_state_dict: bool = False
) -> tuple[dict[str, Any], Any]:
    """``(header, weights)``: for an ldct-invrep checkpoint the header and its state dict, for a TorchScript
    file a header ``{"format": "torchscript", ...}`` and the loaded ``ScriptModule``; with ``plain_state_dict``
    also ``({}, state dict)`` for a plain Restorer state dict (the bundles build its network from their preset).

    Raises :class:`~ldct_invrep.errors.InputError` naming the file when it is missing, unreadable, a plain
    state dict (no network config; unless ``plain_state_dict``), of another format or newer than this ldct-invrep.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file")
    if is_torchscript(path):
        extra = {"metadata.json": ""}
        try:
            module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
        except Exception as err:
            raise InputError(f"{path}: not a loadable TorchScript file ({type(err).__name__})") from err
        from ldct_invrep.networks import Restorer

        name = str(getattr(module, "original_name", "") or "")
        if name != Restorer.__name__:  # scripted or traced, an export keeps the class name
            raise InputError(
                f"{path}: TorchScript of a {name or 'unknown module'}, not of an ldct-invrep {Restorer.__name__}; "
                "export one with monai.bundle ckpt_export (a bundle's models/model.ts)"
            )
        return _torchscript_header(extra), module.eval()
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise InputError(f"{path}: not a readable torch checkpoint ({type(err).__name__})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        if isinstance(payload, dict) and payload and all(hasattr(v, "shape") for v in payload.values()):
            if plain_state_dict:
                return {}, payload
            raise InputError(
                f"{path}: a plain state dict without the network config, not an {FORMAT} checkpoint; "
                "export it with ldct_invrep.recipes.export_restorer or load it through a bundle's inference.json"
            )
        other = payload.get("format") if isinstance(payload, dict) else None
        raise InputError(f"{path}: not an {FORMAT} checkpoint" + (f" (its format is {other!r})" if isinstance(other, str) else ""))
    try:
        header = json.loads(payload["header_json"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{path}: checkpoint header is not valid JSON ({type(err).__name__})") from err
    return check_header(path, header), payload.get("state_dict")


def check_image_channels(path: str | os.PathLike[str], header: Mapping[str, Any], channels: int, remedy: str = "") -> None:
    """Raise :class:`InputError` naming ``path`` when the network of ``header`` takes images of another number of
    channels than ``channels`` (1: CT slices or grey images, 3: colour images): a colour natural-image model given
    to CT, or the reverse, which would otherwise fail inside the first convolution. ``remedy`` ends the message.
    A header without a network config (TorchScript, plain state dict) is not checked."""
    config = header.get("config")
    if not isinstance(config, Mapping):
        return
    have = config.get("in_channels", 1)
    if have != channels:
        def text(n: Any) -> str:
            return {1: "1-channel images (CT slices or grey images)", 3: "3-channel (colour) images"}.get(n, f"{n}-channel images")

        raise InputError(f"{path}: a network for {text(have)}, not for {text(channels)}{remedy}")


def check_header(path: str | os.PathLike[str], header: Any) -> dict[str, Any]:
    """``header`` if its run settings are usable, else :class:`InputError` naming ``path`` and the key.

    ``hu_range``: two finite HU values, low < high; ``reference_noise_hu``: a finite number >= 0;
    ``self_ensemble``: one of :data:`SELF_ENSEMBLE_SIZES`; ``config``: a mapping;
    ``format_version``: an integer.
    """
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
    if "reference_noise_hu" in header:
        value = header["reference_noise_hu"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
            raise InputError(f"{path}: checkpoint header reference_noise_hu {value!r} is not a finite number >= 0 HU")
    if "self_ensemble" in header:
        value = header["self_ensemble"]
        if isinstance(value, bool) or value not in SELF_ENSEMBLE_SIZES:
            raise InputError(
                f"{path}: checkpoint header self_ensemble {value!r} is not one of {', '.join(map(str, SELF_ENSEMBLE_SIZES))}"
            )
    return header


def _check_weights(path: str | os.PathLike[str], config: Any, state: Any) -> None:
    """Refuse, before allocating the network, a state dict that does not fit ``config`` (an absurd config in a
    small file), and weights that are not finite. The network is built on the meta device: no memory."""
    import torch

    from ldct_invrep.networks import Restorer

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
    check_finite_weights(path, state)


def check_finite_weights(path: str | os.PathLike[str], state: Mapping[str, Any]) -> None:
    """Raise :class:`InputError` naming ``path`` and the tensor when a floating-point weight is NaN or infinite."""
    import torch

    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise InputError(f"{path}: weights contain NaN or infinite values ({name}); the checkpoint is broken")


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of a checkpoint (config, preset, window, self-ensemble, training description, ...)."""
    return read_checkpoint(path)[0]


def load_restorer(path: str | os.PathLike[str], map_location: Any = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(Restorer in eval mode, header) from a file written by :func:`save_restorer`, or (ScriptModule, header)
    from a TorchScript file.

    Raises :class:`~ldct_invrep.errors.InputError` naming the file as :func:`read_checkpoint` does, when its
    header asks for unusable settings (:func:`check_header`), and when its weights do not fit its config or are
    not finite (checked before the network is allocated).
    """
    header, weights = read_checkpoint(path, map_location)
    if header.get("format") == TORCHSCRIPT:
        return weights, header
    from ldct_invrep.networks import LIRConfig, Restorer

    try:
        config = LIRConfig(**header["config"])
    except (TypeError, ValueError) as err:
        raise InputError(f"{path}: checkpoint header config is invalid ({' '.join(str(err).split())[:150]})") from err
    _check_weights(path, config, weights)
    try:
        restorer = Restorer.from_config(config)
        restorer.load_state_dict(weights, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"{path}: weights do not match the stored config ({type(err).__name__})") from err
    return restorer.eval(), header


# --------------------------------------------------------------------------------------------- header as text
#: Header keys a description shows first, in this order, with their titles; any other key follows under its name.
HEADER_TITLES = (
    ("preset", "preset"),
    ("config", "config"),
    ("training_data", "training data"),
    ("training", "training"),
    ("iterations", "iterations"),
    ("window", "window"),
    ("hu_range", "HU range"),
    ("self_ensemble", "self-ensemble"),
    ("package_version", "written by ldct-invrep"),
    ("format_version", "checkpoint format"),
)
#: What the one-line :func:`checkpoint_text` says of a header key, in this order.
_SUMMARY = (("preset", "preset {}"), ("training_data", "trained on {}"), ("iterations", "{} iterations"))


def header_value_text(value: Any) -> str:
    """A header value as text: a mapping as ``key=value, ...``, a list as ``[a, b]``, anything else as ``str``."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={header_value_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(header_value_text(v) for v in value) + "]"
    return str(value)


def describe_header(header: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(key, title, text)`` of every entry of a checkpoint ``header``: the keys of :data:`HEADER_TITLES` first,
    in that order and under those titles, then the others under their own names.

    The one rendering of a header as text: ``ldct-invrep info`` prints it as a table and :func:`checkpoint_text`
    takes the reports' one-line description from it.
    """
    titles = dict(HEADER_TITLES)
    keys = [key for key, _ in HEADER_TITLES if key in header] + [key for key in header if key not in titles]
    return [(key, titles.get(key, key), header_value_text(header[key])) for key in keys]


def checkpoint_text(header: Mapping[str, Any]) -> str:
    """``preset lite, trained on ..., 20000 iterations``: what a checkpoint's header states of its preset, training
    data and iterations (:func:`describe_header`), the description comparison reports print next to a method."""
    stated = {key: text for key, _, text in describe_header(header) if header[key] is not None and header[key] != ""}
    return ", ".join(form.format(stated[key]) for key, form in _SUMMARY if key in stated) or (
        "no training description in the header"
    )
