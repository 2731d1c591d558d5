"""What ``denoise`` does: find and load the weights, then stream each volume (DICOM series or NIfTI) through
``inference.SliceDenoiser`` (LIR's ``G_Y(E_X(x))``, paper eq. 3) into a derived DICOM series or a NIfTI file.

The ``denoise`` command and the ``demo`` write through :func:`denoise_volumes`; the CT bundles' inference
configs build the same ``SliceDenoiser`` steps from MONAI transforms (tests/test_bundle_inference.py checks
the files agree).
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ldct_invrep import __version__
from ldct_invrep.errors import InputError, Remedy, first_line

if TYPE_CHECKING:
    import torch

    from ldct_invrep.inference import SliceDenoiser
    from ldct_invrep.io.volumes import Volume

__all__ = ["denoise_volumes", "load_checkpoint", "load_denoiser", "resolve_weights"]

#: Where other weights come from (``errors.Remedy``: API and command-line wording; ``info`` takes an argument).
PASS_WEIGHTS = Remedy("; pass a weights file", "; pass --weights FILE", "--weights", "; give a weights file")


def resolve_weights(weights: str | PathLike | None) -> Path:
    """``weights``, or the shipped weights when None; a missing file is bad input."""
    from ldct_invrep.package_files import default_weights_path

    path = Path(weights) if weights is not None else default_weights_path()
    if not path.is_file():
        if weights is None:
            raise InputError(path, "the shipped weights are not installed in this copy of ldct-invrep", remedies=[PASS_WEIGHTS])
        raise InputError(path, "weights file not found")
    return path


def load_checkpoint(path: Path) -> tuple[Any, dict[str, Any]]:
    """``(Restorer or TorchScript module, header)`` via ``ldct_invrep.io.checkpoint.load_restorer``; a bad file is bad input."""
    from ldct_invrep.io.checkpoint import load_restorer

    try:
        return load_restorer(path)
    except InputError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise InputError(path, f"not a readable ldct-invrep checkpoint ({first_line(exc, 200)})") from exc


def load_denoiser(
    weights_path: Path,
    device: str | torch.device = "cpu",
    *,
    batch_size: int | None = None,
    bf16: bool = False,
    self_ensemble: int | None = None,
    reference_noise_hu: float | None = None,
) -> tuple[SliceDenoiser, dict[str, Any]]:
    """``(SliceDenoiser, header)`` for the checkpoint at ``weights_path``, run as its header says
    (``SliceDenoiser.from_header``) unless ``self_ensemble`` or ``reference_noise_hu`` is given. A network for
    colour images (a natural-image bundle's) is refused: CT slices have one channel."""
    from ldct_invrep.inference import SliceDenoiser
    from ldct_invrep.io.checkpoint import check_image_channels

    restorer, header = load_checkpoint(weights_path)
    check_image_channels(weights_path, header, 1)
    denoiser = SliceDenoiser.from_header(
        restorer, header, device=device, batch_size=batch_size, bf16=bf16, self_ensemble=self_ensemble,
        reference_noise_hu=reference_noise_hu,
    )  # fmt: skip
    return denoiser, header


def _derivation(denoiser: SliceDenoiser, header: dict[str, Any], weights_name: str | None) -> str:
    """The DerivationDescription of a denoised series: method, weights, self-ensemble, HU pass-through."""
    preset = header.get("preset", header.get("format", "?"))
    weights = f"weights {weights_name} (preset {preset})" if weights_name else f"weights of preset {preset}"
    ensemble, (lo, hi) = denoiser.self_ensemble, denoiser.hu_range
    return (
        f"Denoised by ldct-invrep {__version__}: LIR (CVPR 2020) content encoder E_X then clean generator G_Y, "
        f"{weights}{f', mean over {ensemble} flipped/transposed copies' if ensemble > 1 else ''}"
        f"{f', blended with the input to keep {denoiser.reference_noise_hu:g} HU reference noise' if denoiser.reference_noise_hu else ''}; "
        f"HU outside [{lo:g}, {hi:g}] unchanged; stored values re-quantised with the source RescaleSlope/RescaleIntercept"
    )


def denoise_volumes(
    volumes: Sequence[Volume],
    output: Path,
    fmt: str,
    denoiser: SliceDenoiser,
    header: dict[str, Any],
    *,
    weights_name: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    all_series: bool = False,
    desc: str = "denoise",
) -> int:
    """Denoise ``volumes`` into ``output`` (``fmt`` ``"dicom"`` or ``"nifti"``; ``all_series``: one output per
    series inside the folder ``output``) with ``io.volumes.write_volumes``; returns the number of slices.
    ``header`` is the checkpoint's (its preset goes into the DICOM DerivationDescription)."""
    from ldct_invrep.io.volumes import write_volumes

    return write_volumes(
        volumes, output, fmt, lambda vol, start, hu: denoiser.denoise_batch(hu),
        batch_size=denoiser.batch_size, overwrite=overwrite, quiet=quiet, desc=desc, all_series=all_series,
        writer_kwargs={"method": "LIR", "derivation_description": _derivation(denoiser, header, weights_name)},
    )  # fmt: skip
