"""Simulated low dose of the CT training cache's slices: one seed per slice, dose fractions drawn per noisy
copy, and the dose-relative calibration per volume (:class:`SliceSimulator`, used by
:func:`ldct_invrep.data.ct_cache.build_ct_training_cache`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ldct_invrep.transforms.windowing import NETWORK_HU_RANGE

__all__ = ["SliceSimulator", "Simulator", "default_simulator", "dose_draws", "slice_seed"]

Simulator = Callable[..., np.ndarray]


def default_simulator() -> Simulator:
    """:func:`~ldct_invrep.transforms.lowdose.simulate.simulate_low_dose` (imported when first needed)."""
    from ldct_invrep.transforms.lowdose.simulate import simulate_low_dose

    return simulate_low_dose


def slice_seed(*key: int) -> int:
    """A simulation seed from ``(seed, source, [resampling,] slice)``."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])


def dose_draws(dose_fraction: float | Sequence[float], n: int, rng: np.random.Generator) -> list[float]:
    """``n`` dose fractions: the number itself, or log-uniform draws from a ``(low, high)`` range."""
    if np.ndim(dose_fraction) == 0:
        return [float(dose_fraction)] * n  # type: ignore[arg-type]
    lo, hi = (float(v) for v in dose_fraction)  # type: ignore[union-attr]
    return [float(v) for v in np.exp(rng.uniform(np.log(lo), np.log(hi), n))]


class SliceSimulator:
    """Simulated low dose of chosen slices, one seed per (*seed_key, position), clipped to the cache's HU range
    (``NETWORK_HU_RANGE``).

    With the default simulator each slice's own noise sets the flux (``calibration="self"``); a slice with
    too little flat soft tissue takes the median level of its volume's others, and a volume with none falls
    back to the absolute Mayo calibration. ``calibrations`` records what each volume got.
    """

    def __init__(self, simulate: Simulator, kwargs: dict[str, Any], default: bool, say: Callable[[str], None]):
        self.simulate, self.kwargs, self.default, self.say = simulate, kwargs, default, say
        self.calibrations: dict[str, Any] = {}

    def _levels(
        self, hu: np.ndarray, padding: np.ndarray, indices: list[int]
    ) -> tuple[list[float | None] | None, list[float]]:
        """(``own_noise_level`` per index, None where the slice measures its own; None when no slice can) and
        the levels measured."""
        from ldct_invrep.transforms.lowdose.scan_noise import scan_noise_level, series_noise_fallbacks

        slices = sorted(set(indices))
        measured = [scan_noise_level(hu[k], padding[k]) for k in slices]
        fallbacks = series_noise_fallbacks(measured)
        known = [v for v in measured if v is not None]
        if fallbacks is None:
            return None, known
        own = dict(zip(slices, fallbacks))
        return [own[k] for k in indices], known

    def __call__(
        self,
        hu: np.ndarray,
        padding: np.ndarray,
        indices: list[int],
        fractions: list[float],
        spacing_mm: float,
        seed_key: tuple[int, ...],
        name: str,
    ) -> np.ndarray:
        out = np.empty((len(indices),) + hu.shape[1:], dtype=np.float32)
        levels: list[float | None] | None = [None] * len(indices)
        if self.default and indices:
            levels, measured = self._levels(hu, padding, indices)
            self.calibrations[name] = (
                {"mode": "self", "noise_level_hu_median": float(np.median(measured))}
                if measured
                else {"mode": "mayo", "why": "no slice with enough flat soft tissue"}
            )
        for j, (k, f) in enumerate(zip(indices, fractions)):
            self.say(f"{name}: simulating slice {k} at dose {f:.3g} ({j + 1}/{len(indices)})")
            kwargs = dict(self.kwargs)
            if self.default:
                kwargs["padding"] = padding[k]
                if levels is None:
                    kwargs["calibration"] = "mayo"
                elif levels[j] is not None:
                    kwargs["own_noise_level"] = levels[j]
            sim = self.simulate(hu[k], f, spacing_mm, slice_seed(*seed_key, j, k), **kwargs)
            out[j] = np.clip(np.asarray(sim, dtype=np.float32), *NETWORK_HU_RANGE)
        return out
