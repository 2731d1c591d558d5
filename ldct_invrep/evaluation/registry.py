"""The package's one method registry: denoisers by name for the comparison tables.

* CT (:func:`build_methods`, names :data:`CT_METHODS`): HU -> HU callables ``"input"``, ``"bm3d"``,
  ``"bm3d_blind"`` (``ldct_invrep.baselines``), ``"lir"`` (a ``SliceDenoiser`` checkpoint) and ``"redcnn"``.
* Natural images (:func:`build_natural_methods`, names :data:`NATURAL_METHODS`): [0, 1] -> [0, 1] callables
  ``"input"``, ``"bm3d"``, ``"anscombe_bm3d"`` (``baselines.bm3d_natural``) and ``"lir"``.

Every method is a :class:`Method`: the callable, the one-line description the report prints and a
JSON-able ``info``. Heavy imports (torch, the ``bm3d`` extra) happen when a method is built.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ldct_invrep.errors import InputError, Remedy
from ldct_invrep.io.checkpoint import checkpoint_text

__all__ = [
    "CT_METHODS",
    "NATURAL_METHODS",
    "ImageFn",
    "Method",
    "build_methods",
    "build_natural_methods",
    "describe",
    "natural_restorer_fn",
]

ImageFn = Callable[[np.ndarray], np.ndarray]
CT_METHODS = ("input", "bm3d", "bm3d_blind", "lir", "redcnn")
NATURAL_METHODS = ("input", "bm3d", "anscombe_bm3d", "lir")


@dataclass
class Method:
    """A denoiser ``image -> image`` with a one-line description for reports and a JSON-able ``info``."""

    fn: ImageFn
    description: str
    info: dict[str, Any] = field(default_factory=dict)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.fn(image)


def describe(name: str, fn: Callable[..., Any]) -> str:
    """``fn.description`` (a :class:`Method`), else the first line of its docstring, else its name."""
    text = getattr(fn, "description", None)
    if text:
        return str(text)
    doc = (getattr(fn, "__doc__", None) or "").strip()
    return doc.split("\n")[0] if doc else name


def _require_bm3d(name: str) -> None:
    """Import the optional ``bm3d`` extra when a BM3D method is built, so that a missing one is refused (one
    line naming the method) before any image is read, not at the first call."""
    from ldct_invrep.baselines.bm3d import _import_bm3d

    try:
        _import_bm3d()
    except ImportError as exc:
        raise InputError(name, str(exc)) from exc


# --------------------------------------------------------------------------------------------- CT
def _bm3d_ct(sigma_hu: float | None) -> Method:
    from ldct_invrep.baselines import bm3d_denoise

    _require_bm3d("bm3d")
    if sigma_hu is None:
        warnings.warn(
            "BM3D sigma not given: estimating it per slice with skimage's wavelet MAD, which is known to be about "
            "5x too low for CT (correlated, non-stationary noise); tune it on validation data (baselines.tune_bm3d_sigma)",
            stacklevel=3,
        )
        text = "BM3D (Dabov et al. 2007, bm3d package), full window [-1024, 3072] HU scaled to [0, 1], sigma estimated per slice (skimage MAD: known to be too low for CT)"
    else:
        text = f"BM3D (Dabov et al. 2007, bm3d package), full window [-1024, 3072] HU scaled to [0, 1], sigma {sigma_hu:g} HU"
    return Method(lambda hu: bm3d_denoise(hu, sigma_hu), text, {"sigma_hu": sigma_hu})


def _bm3d_blind_ct(factor: float | None) -> Method:
    from ldct_invrep.baselines.bm3d import DEFAULT_BLIND_FACTOR, bm3d_blind

    _require_bm3d("bm3d_blind")
    fitted = "" if factor is not None else " (the factor fitted on the default model's simulated training pairs)"
    factor = DEFAULT_BLIND_FACTOR if factor is None else float(factor)
    text = (f"blind BM3D (bm3d package), full window [-1024, 3072] HU scaled to [0, 1], sigma = {factor:g} x each slice's "
            f"own noise level in flat soft tissue (transforms.lowdose.scan_noise_level){fitted}")
    return Method(lambda hu: bm3d_blind(hu, factor), text, {"factor": factor})


def _lir_ct(weights: str | Path | None) -> Method:
    from ldct_invrep.inference import SliceDenoiser
    from ldct_invrep.package_files import default_weights_path

    path = Path(weights) if weights is not None else default_weights_path()
    if not path.is_file():
        raise InputError(f"{path}: LIR checkpoint not found" + ("" if weights else " (no shipped weights; give lir_weights)"))
    denoiser, header = SliceDenoiser.from_checkpoint(path)
    ensemble = denoiser.self_ensemble
    mean_over = f", mean over {ensemble} flipped/transposed copies" if ensemble > 1 else ""
    if denoiser.reference_noise_hu:
        mean_over += f", blended with its input to a reference noise of {denoiser.reference_noise_hu:g} HU"
    text = f"LIR (ours, unsupervised): E_X then G_Y{mean_over}, {path.name}: {checkpoint_text(header)}"
    return Method(denoiser.denoise, text, {"checkpoint": str(path), "header": header})


#: Where a RED-CNN checkpoint comes from, worded for the API and for ``evaluate --pairs``.
REDCNN_WEIGHTS = Remedy(
    " (redcnn_weights; see ldct_invrep.baselines.train_redcnn)",
    " (--redcnn-weights FILE; see ldct_invrep.baselines.train_redcnn)",
    "--redcnn-weights",
)


def _redcnn_ct(weights: str | Path | None) -> Method:
    from ldct_invrep.baselines.train_redcnn import load_redcnn, redcnn_method

    if weights is None:
        raise InputError("redcnn", "needs a trained RED-CNN checkpoint", remedies=[REDCNN_WEIGHTS])
    model, header = load_redcnn(weights)
    text = f"RED-CNN (Chen et al. 2017, supervised on pairs), {Path(weights).name}: {checkpoint_text(header)}"
    return Method(redcnn_method(model, header.get("hu_range", (-1024.0, 3072.0))), text, {"checkpoint": str(weights), "header": header})


def build_methods(
    names: Iterable[str],
    lir_weights: str | Path | None = None,
    bm3d_sigma_hu: float | None = None,
    redcnn_weights: str | Path | None = None,
    bm3d_blind_factor: float | None = None,
) -> dict[str, Method]:
    """HU -> HU methods by name, in the given order: ``"input"`` (the noisy image), ``"bm3d"`` (sigma in HU;
    ``None`` estimates it per slice, with a warning that the estimate is known to be low for CT),
    ``"bm3d_blind"`` (sigma ``bm3d_blind_factor`` x each slice's noise level; ``None``: the fitted
    ``baselines.bm3d.DEFAULT_BLIND_FACTOR``), ``"lir"`` (a ``SliceDenoiser``
    checkpoint, default the shipped weights) and ``"redcnn"`` (a trained RED-CNN)."""
    from ldct_invrep.baselines import input_method

    methods: dict[str, Method] = {}
    for name in names:
        if name == "input":
            methods[name] = Method(input_method, "the low-dose input itself (no denoising)")
        elif name == "bm3d":
            methods[name] = _bm3d_ct(bm3d_sigma_hu)
        elif name == "bm3d_blind":
            methods[name] = _bm3d_blind_ct(bm3d_blind_factor)
        elif name == "lir":
            methods[name] = _lir_ct(lir_weights)
        elif name == "redcnn":
            methods[name] = _redcnn_ct(redcnn_weights)
        else:
            raise InputError(f"method {name!r}: unknown; known: {', '.join(CT_METHODS)}")
    if not methods:
        raise InputError("methods: none given")
    return methods


# --------------------------------------------------------------------------------------------- natural images
def natural_restorer_fn(restorer: Any) -> ImageFn:
    """A Restorer (E_X then G_Y) as a ``[0, 1] image -> [0, 1] image`` function on ``(H, W)`` or ``(C, H, W)``
    images: the same conversions as the bundles (``data.natural.to_net`` in, ``from_net`` out, unrounded;
    ``evaluate_natural`` rounds every method's output to 8 bits when asked)."""
    import torch

    from ldct_invrep.data.natural import from_net, to_net

    @torch.inference_mode()
    def denoise(image: np.ndarray) -> np.ndarray:
        a = np.asarray(image, dtype=np.float32)
        x = torch.from_numpy(to_net(np.clip(a, 0.0, 1.0)).reshape((1, -1) + a.shape[-2:]))
        return from_net(restorer(x), quantize=False)[0].numpy().reshape(a.shape)

    return denoise


def _natural_lir(weights: str | Path) -> Method:
    from ldct_invrep.io.checkpoint import load_restorer

    restorer, header = load_restorer(weights)
    fn, channels = natural_restorer_fn(restorer.eval()), int(header.get("config", {}).get("in_channels", 1))

    def denoise(image: np.ndarray) -> np.ndarray:
        got = image.shape[0] if image.ndim == 3 else 1
        if got != channels:
            raise InputError(f"{weights}: the network takes {channels}-channel images, the test set has {got} (channels 1: grey, 3: colour)")
        return fn(image)

    text = f"LIR (ours, unsupervised): E_X then G_Y on [0, 1] -> [-1, 1], {Path(weights).name}: {checkpoint_text(header)}"
    return Method(denoise, text, {"checkpoint": str(weights), "header": header})


def build_natural_methods(
    names: Iterable[str],
    noise: str = "awgn",
    sigma: float | None = None,
    lir_weights: str | Path | None = None,
    poisson_peak: float | None = None,
) -> dict[str, Method]:
    """[0, 1] -> [0, 1] methods on grey ``(H, W)``/``(1, H, W)`` or colour ``(3, H, W)`` images: ``"input"``,
    ``"bm3d"`` (BM3D, colour BM3D on RGB; AWGN: the true sigma / 255; Poisson: sigma estimated),
    ``"anscombe_bm3d"`` (Poisson, the paper's ANSC, with scikit-image's scale ``poisson_peak``; ``None``
    infers it from unrounded noisy values) and ``"lir"`` (a natural-image checkpoint)."""
    from ldct_invrep.baselines.bm3d_natural import anscombe_bm3d, bm3d_natural

    methods: dict[str, Method] = {}
    for name in names:
        if name == "input":
            methods[name] = Method(lambda x: np.array(x, dtype=np.float32), "the noisy input itself")
        elif name == "bm3d":
            if noise == "awgn" and sigma is not None:
                s = float(sigma) / 255.0
                methods[name] = Method(lambda x, s=s: bm3d_natural(x, s),
                                       f"BM3D (bm3d package; colour BM3D, bm3d_rgb, on RGB images) with the true sigma {sigma:g}/255",
                                       {"sigma_255": sigma})
            else:
                methods[name] = Method(lambda x: bm3d_natural(x, None),
                                       "BM3D (bm3d package; colour BM3D on RGB), sigma estimated per image (skimage wavelet MAD)")
        elif name in ("anscombe_bm3d", "ansc"):
            peak_text = f"peak {poisson_peak:g}" if poisson_peak else "peak inferred from the values"
            methods[name] = Method(lambda x, p=poisson_peak: anscombe_bm3d(x, p),
                                   f"ANSC: Anscombe transform + BM3D (colour BM3D on RGB) + exact unbiased inverse (Mäkitalo & Foi 2011), {peak_text}",
                                   {"peak": poisson_peak})
        elif name == "lir":
            if lir_weights is None:
                raise InputError("lir: needs a natural-image checkpoint (lir_weights)")
            methods[name] = _natural_lir(lir_weights)
        else:
            raise InputError(f"method {name!r}: unknown; known: {', '.join(NATURAL_METHODS)}")
    return methods
