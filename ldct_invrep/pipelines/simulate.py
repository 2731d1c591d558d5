"""What ``simulate-dose`` does: projection-domain noise insertion (``transforms.lowdose.simulate_low_dose``,
Yu et al. 2012) slice by slice into a derived DICOM series or a NIfTI file, calibrated on each slice's own
noise (``calibration="self"``) or on the Mayo 2016 scanner (``"mayo"``). The command and the ``demo`` call it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ldct_invrep import __version__
from ldct_invrep.errors import InputError, Remedy

if TYPE_CHECKING:
    import numpy as np

    from ldct_invrep.io.volumes import Volume

__all__ = ["dose_label", "simulate_dose_volumes"]

logger = logging.getLogger(__name__)

#: A scan without flat soft tissue cannot calibrate itself (``errors.Remedy``: API and command-line wording).
USE_MAYO = Remedy(' (calibration "self"); use calibration "mayo"', " (--calibration self); use --calibration mayo", "--calibration")


#: Own noise below this (HU) in flat soft tissue is none at all (a drawing, a mask, a denoised image): real scans
#: keep at least the rounding of their integer stored values, about 0.3 HU; slices below it are not measured.
NOISE_FREE_HU = 0.1


def dose_label(fraction: float) -> str:
    """``0.25`` -> ``"25%"``."""
    return f"{fraction * 100:g}%"


def _in_plane_spacing_mm(vol: Volume) -> float:
    _, row, col = vol.spacing
    if not math.isclose(row, col, rel_tol=0.01):
        logger.warning("%s: anisotropic pixels (%g x %g mm); the simulation uses their mean", vol.path, row, col)
    return 0.5 * (row + col)


def _slice_thickness_mm(vol: Volume) -> float:
    """SliceThickness of a DICOM series (the slice spacing where absent, and for NIfTI); a value that is
    not a positive number is bad input."""
    if vol.info is not None:
        thickness = vol.info.datasets[0].get("SliceThickness")
        if thickness not in (None, ""):
            try:
                value = float(thickness)
            except (TypeError, ValueError):
                value = math.nan
            if not (math.isfinite(value) and value > 0):
                raise InputError(vol.info.paths[0], f"SliceThickness {thickness} is not a positive number")
            return value
    return float(vol.spacing[0])


def _own_noise_levels(vol: Volume, batch_size: int, where: str) -> tuple[list[float | None], list[float]]:
    """Each slice's ``own_noise_level`` (None: measured in the slice; the series median for slices with too
    little flat soft tissue) and the levels measured; bad input naming ``where`` when none was."""
    from ldct_invrep.transforms.lowdose.scan_noise import scan_noise_level, series_noise_fallbacks

    measured = [
        scan_noise_level(s, vol.padding_mask(start + k, s))
        for start, hu in vol.batches(batch_size)
        for k, s in enumerate(hu)
    ]
    noise_free = sum(v is not None and not v >= NOISE_FREE_HU for v in measured)  # synthetic: no dose to scale
    measured = [v if v is None or v >= NOISE_FREE_HU else None for v in measured]
    levels = series_noise_fallbacks(measured)
    if levels is None:
        problem = (
            f"the flat soft tissue has no noise at all (below {NOISE_FREE_HU:g} HU: a synthetic or processed image, "
            "not a scan), so the scan's own noise cannot be measured"
            if noise_free
            else "no slice has enough flat soft tissue to measure the scan's own noise"
        )
        raise InputError(where, problem, remedies=[USE_MAYO])
    return levels, [v for v in measured if v is not None]


def simulate_dose_volumes(
    volumes: Sequence[Volume],
    output: Path,
    fmt: str,
    *,
    dose_fraction: float = 0.25,
    calibration: str = "self",
    seed: int = 0,
    batch_size: int = 4,
    overwrite: bool = False,
    quiet: bool = False,
    all_series: bool = False,
    say: Callable[[str], None] = lambda message: None,
) -> int:
    """Simulate ``dose_fraction`` of each volume's dose into ``output`` (``fmt`` and ``all_series`` as
    ``io.volumes.write_volumes``); returns the number of slices. ``calibration`` ``"self"``: the flux is set per
    slice so the simulated full dose has the slice's own noise (measured first); ``"mayo"``: the absolute flux
    of the Mayo 2016 scanner. Slice i draws from child i of ``seed``'s ``SeedSequence``, so the output does not
    depend on ``batch_size``. ``say`` gets the step messages (the measured noise levels)."""
    import numpy as np

    from ldct_invrep.io import storable_hu_range
    from ldct_invrep.io.volumes import write_volumes
    from ldct_invrep.transforms.lowdose.simulate import DEFAULT_INCIDENT_FLUX, DEFAULT_N_VIEWS, simulate_low_dose

    label = dose_label(dose_fraction)
    say(f"simulating {label} dose (projection-domain noise insertion, calibration {calibration}, seed {seed})")
    spacings = {id(vol): _in_plane_spacing_mm(vol) for vol in volumes}
    thickness = {id(vol): _slice_thickness_mm(vol) for vol in volumes}
    levels: dict[int, list[float | None]] = {}
    calibrated: dict[int, str] = {}
    for vol in volumes:
        if calibration == "self":
            where = f"{vol.path} (series {vol.series_uid})" if len(volumes) > 1 else str(vol.path)
            levels[id(vol)], own = _own_noise_levels(vol, batch_size, where)
            n = len(levels[id(vol)])
            median = float(np.median(own))
            calibrated[id(vol)] = (
                f"calibration self (flux set per slice so the simulated full dose has the slice's own noise in flat "
                f"soft tissue, 25th percentile of the 9x9 local std of the high-passed image: median {median:.2f} HU, "
                f"range {min(own):.2f}-{max(own):.2f} HU, measured on {len(own)} of {n} slices"
                f"{', the others took the series median' if len(own) < n else ''})"
            )
            say(f"{where}: own noise level {median:.2f} HU (measured on {len(own)} of {n} slices)")
        else:
            calibrated[id(vol)] = (
                f"calibration mayo (absolute flux {DEFAULT_INCIDENT_FLUX:.3g} photons/mm/view for 1 mm slices, "
                f"from the Mayo L506 pair, at slice thickness {thickness[id(vol)]:g} mm)"
            )

    clipped = [0]

    def simulate(vol: Volume, start: int, hu: np.ndarray) -> np.ndarray:
        rngs = [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(start + k,))) for k in range(len(hu))]
        out = np.stack([
            simulate_low_dose(
                s, dose_fraction, spacings[id(vol)], rng, slice_thickness_mm=thickness[id(vol)],
                padding=vol.padding_mask(start + k, s),
                calibration=calibration, own_noise_level=levels[id(vol)][start + k] if levels else None,
            )
            for k, (s, rng) in enumerate(zip(hu, rngs))
        ])
        if vol.info is not None and fmt == "dicom":
            # Noise in air goes below what the source can store (e.g. -1024 HU); a scanner clips it the same way.
            for k in range(len(out)):
                lo, hi = storable_hu_range(vol.info, start + k)
                clipped[0] += int(np.count_nonzero((out[k] < lo) | (out[k] > hi)))
                np.clip(out[k], lo, hi, out=out[k])
        return out

    def writer_kwargs(vol: Volume) -> dict[str, Any]:
        derivation = (
            f"Simulated {label} dose by ldct-invrep {__version__}: projection-domain noise insertion (Poisson quanta "
            f"and electronic noise for dose fraction {dose_fraction:g}, parallel beam, {DEFAULT_N_VIEWS} views, "
            f"filtered back projection) added to the original image; {calibrated[id(vol)]}; seed {seed}"
        )
        return {"method": "SIM", "description_suffix": f" [sim {label} dose]", "derivation_description": derivation}

    n = write_volumes(
        volumes, output, fmt, simulate, batch_size=batch_size, overwrite=overwrite, quiet=quiet,
        desc=f"simulate {label} dose", all_series=all_series, writer_kwargs=writer_kwargs,
    )  # fmt: skip
    if clipped[0]:
        logger.info("%s: %d pixels outside the storable HU range clipped (noise in air)", output, clipped[0])
    return n
