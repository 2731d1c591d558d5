"""VGG-19 ``features`` stack (torchvision state-dict layout) for the semantic consistency loss (eq. 11).

torchvision is not a dependency, so the stack is written here with the same module indices as
``torchvision.models.vgg19().features`` and loads its ImageNet state dict (``vgg19-dcbb9e9d.pth``) from a
local file. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from ldct_invrep.errors import InputError

VGG19_WEIGHTS_FILENAME = "vgg19-dcbb9e9d.pth"
VGG19_WEIGHTS_ENV = "LDCT_INVREP_VGG19_WEIGHTS"
#: torchvision's ImageNet VGG-19 weights (548 MB); the file name carries the first 8 hex digits of its SHA-256.
VGG19_WEIGHTS_URL = f"https://download.pytorch.org/models/{VGG19_WEIGHTS_FILENAME}"
VGG19_SHA256_PREFIX = "dcbb9e9d"
VGG19_FETCH_COMMAND = "ldct-invrep fetch vgg19"
#: Seconds a connection or a read of the download may stall before it fails (``socket`` default timeout).
DOWNLOAD_TIMEOUT_S = 30.0

# VGG-19 ("E" configuration): channels per conv, "M" = 2x2 max pool.
_VGG19_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_names() -> list[str]:
    """Names of the modules of ``features`` in index order: conv1_1, relu1_1, ..., pool5."""
    names: list[str] = []
    block, conv = 1, 0
    for item in _VGG19_CONFIG:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            conv += 1
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    return names


LAYER_NAMES: tuple[str, ...] = tuple(_layer_names())
LAYER_INDEX: dict[str, int] = {name: i for i, name in enumerate(LAYER_NAMES)}  # conv5_1 -> 28


class VGGWeightsNotFoundError(InputError, FileNotFoundError):
    """The VGG-19 ImageNet weights file was not found (an ``InputError`` and a ``FileNotFoundError``)."""


def default_weight_paths() -> list[Path]:
    """Where weights are looked for without an explicit path: the env variable, then the torch hub cache."""
    paths: list[Path] = []
    env = os.environ.get(VGG19_WEIGHTS_ENV)
    if env:
        paths.append(Path(env).expanduser())
    paths.append(Path(os.path.join(torch.hub.get_dir(), "checkpoints", VGG19_WEIGHTS_FILENAME)))
    return paths


def resolve_vgg19_weights(path: str | os.PathLike[str] | None = None) -> Path:
    """Return the weights file: ``path`` if given (only it), else the first of ``default_weight_paths()``.

    Raises ``VGGWeightsNotFoundError`` (a ``FileNotFoundError``) with a one-line message naming the file,
    the paths searched and how to skip the term.
    """
    candidates = [Path(path).expanduser()] if path is not None else default_weight_paths()
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise VGGWeightsNotFoundError(
        f"{VGG19_WEIGHTS_FILENAME}: the ImageNet VGG-19 weights of the semantic consistency loss (eq. 11) were not "
        f"found; looked in: {searched}. Download them once with `{VGG19_FETCH_COMMAND}` (548 MB, into the torch hub "
        f"cache), or set {VGG19_WEIGHTS_ENV}=/path/to/{VGG19_WEIGHTS_FILENAME}, or train without the term: "
        "semantic weight 0 (bundles: semantic_weight=0)."
    )


def fetch_vgg19_weights(dest: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """Download torchvision's ImageNet VGG-19 weights from :data:`VGG19_WEIGHTS_URL` to ``dest`` (default: the
    torch hub cache, the last place :func:`resolve_vgg19_weights` looks) and return the file; a file already
    there is kept. Only ever called on the user's request (``ldct-invrep fetch vgg19``): ``torch.hub`` writes a
    temporary file, checks its SHA-256 against the prefix in the file name and only then moves it into place.
    A stalled connection fails after :data:`DOWNLOAD_TIMEOUT_S`; on any failure the folders made for ``dest``
    are removed again and the error (``OSError``, e.g. ``URLError`` offline, or torch's hash ``RuntimeError``)
    propagates.
    """
    from ldct_invrep.io.atomic import check_output_parent

    target = Path(dest).expanduser() if dest is not None else default_weight_paths()[-1]
    if target.is_file():
        return target
    check_output_parent(target)
    made = [folder for folder in target.parents if not folder.exists()]  # deepest first: removed again on failure
    target.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # torch.hub's urlopen has none: a silent network would hang
    try:
        torch.hub.download_url_to_file(VGG19_WEIGHTS_URL, str(target), hash_prefix=VGG19_SHA256_PREFIX, progress=progress)
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    finally:
        socket.setdefaulttimeout(previous)
    return target


def _features_only(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Keep the ``features.*`` entries of a full vgg19 state dict, or prefix a features-only one."""
    keys = list(state_dict)
    if any(k.startswith("features.") for k in keys):
        return {k: v for k, v in state_dict.items() if k.startswith("features.")}
    if keys and all(k.split(".", 1)[0].isdigit() for k in keys):
        return {f"features.{k}": v for k, v in state_dict.items()}
    return {}


class VGG19Features(nn.Module):
    """VGG-19 ``features`` truncated after ``layer`` (e.g. ``"conv5_1"`` -> ``features[:29]``), plus the
    input mapping from network range.

    ``state_dict()`` keys are those of torchvision's vgg19 (``features.0.weight``, ...). ``layer`` is one of
    ``LAYER_NAMES`` (``conv1_1`` ... ``conv5_4``, ``relu*_*``, ``pool1`` ... ``pool5``) or ``None`` for the
    whole stack. ``forward`` takes B x C x H x W in [-1, 1] with C = 1 (grey, repeated to RGB) or 3, maps
    it to [0, 1] and normalises with the ImageNet mean/std that torchvision's weights expect.
    Randomly initialised until ``load_torchvision_state_dict`` or ``from_pretrained``.
    """

    def __init__(self, layer: str | None = "conv5_1") -> None:
        super().__init__()
        if layer is not None and layer not in LAYER_INDEX:
            raise ValueError(f"unknown VGG-19 layer {layer!r}; expected one of {', '.join(LAYER_NAMES)}")
        self.layer = layer
        last = LAYER_INDEX[layer] if layer is not None else len(LAYER_NAMES) - 1
        modules: list[nn.Module] = []
        in_channels = 3
        for name in LAYER_NAMES[: last + 1]:
            if name.startswith("conv"):
                out_channels = _conv_channels(name)
                modules.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
                in_channels = out_channels
            elif name.startswith("relu"):
                modules.append(nn.ReLU(inplace=False))
            else:
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*modules)
        self.out_channels = in_channels
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, image: Tensor) -> Tensor:
        """[-1, 1] grey or RGB -> ImageNet-normalised RGB."""
        if image.ndim != 4 or image.shape[1] not in (1, 3):
            raise ValueError(f"VGG19Features: expected B x 1 x H x W or B x 3 x H x W, got {tuple(image.shape)}")
        rgb = (image + 1.0) / 2.0
        if rgb.shape[1] == 1:
            rgb = rgb.expand(-1, 3, -1, -1)
        return (rgb - self.mean.to(rgb.dtype)) / self.std.to(rgb.dtype)

    def forward(self, image: Tensor) -> Tensor:
        return self.features(self.preprocess(image))

    def load_torchvision_state_dict(self, state_dict: Mapping[str, Tensor], source: str = "state dict") -> None:
        """Load a torchvision vgg19 state dict (full, or ``vgg19().features`` only); keys past the truncation
        and the classifier are ignored. Raises ``InputError`` naming ``source`` when it does not fit."""
        own = self.state_dict()
        given = _features_only(state_dict)
        missing = [k for k in own if k not in given]
        if missing:
            raise InputError(f"{source}: not a torchvision VGG-19 state dict (missing {missing[0]})")
        for key, value in own.items():
            if tuple(given[key].shape) != tuple(value.shape):
                raise InputError(
                    f"{source}: not a torchvision VGG-19 state dict ({key} has shape "
                    f"{tuple(given[key].shape)}, expected {tuple(value.shape)})"
                )
        self.load_state_dict({k: given[k] for k in own}, strict=True)

    @classmethod
    def from_pretrained(
        cls, layer: str | None = "conv5_1", weights_path: str | os.PathLike[str] | None = None
    ) -> VGG19Features:
        """Build and load ImageNet weights from ``weights_path``, ``$LDCT_INVREP_VGG19_WEIGHTS`` or the torch hub
        cache (``<torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth``). Never downloads."""
        path = resolve_vgg19_weights(weights_path)
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt or non-torch file: one-line message naming it
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{path}: cannot read VGG-19 weights ({reason})") from exc
        if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
            loaded = loaded["state_dict"]
        if not isinstance(loaded, Mapping):
            raise InputError(f"{path}: not a state dict (got {type(loaded).__name__})")
        model = cls(layer)
        model.load_torchvision_state_dict(loaded, source=str(path))
        return model


def _conv_channels(name: str) -> int:
    block = int(name[len("conv")])
    return {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}[block]
