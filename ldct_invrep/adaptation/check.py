"""The guard rails of an adaptation: the no-reference check on the held-out slices (input, model before and after)
and the two refusals (soft-tissue drift, more noise than the starting model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ldct_invrep.adaptation.data import AdaptData
from ldct_invrep.image_quality import QualityFigures, quality_figures

#: Largest soft-tissue mean HU drift (held-out slices, adapted output minus input) of a model adapt writes.
DEFAULT_MAX_DRIFT_HU = 5.0
#: Largest ratio of the adapted model's flat-tissue noise to the starting model's (held-out slices) adapt writes:
#: an adapted model that leaves more noise in the user's own slices than the one it started from did not learn
#: to remove their noise (freezing the clean side while adapting on 2 real slices left 39 HU where it began at 11).
DEFAULT_MAX_NOISE_RATIO = 1.25


@dataclass
class CheckResult:
    """The no-reference check on the held-out slices: figures of the input, the model before and after."""

    input: QualityFigures
    before: QualityFigures
    after: QualityFigures
    max_drift_hu: float
    slices: int
    max_noise_ratio: float = DEFAULT_MAX_NOISE_RATIO

    @property
    def drift_before(self) -> float:
        return self.before.soft_tissue_hu - self.input.soft_tissue_hu

    @property
    def drift_after(self) -> float:
        return self.after.soft_tissue_hu - self.input.soft_tissue_hu

    @property
    def noise_ratio(self) -> float:
        """Flat-tissue noise after over before (both on the held-out slices)."""
        return self.after.noise_hu / self.before.noise_hu if self.before.noise_hu > 0 else float("inf")

    @property
    def refusal(self) -> str:
        """Why the adapted model must not be written ("" when it may): soft-tissue drift past ``max_drift_hu``, or
        more flat-tissue noise than the starting model left, by more than ``max_noise_ratio``."""
        if not abs(self.drift_after) <= self.max_drift_hu:
            return (f"the adapted model moves the soft-tissue mean by {self.drift_after:+.1f} HU on the held-out slices "
                    f"(tolerance {self.max_drift_hu:g} HU, --max-drift-hu)")
        if not self.noise_ratio <= self.max_noise_ratio:
            return (f"the adapted model leaves {self.after.noise_hu:.1f} HU of noise in flat soft tissue of the held-out "
                    f"slices where the model it started from left {self.before.noise_hu:.1f} HU (x{self.noise_ratio:.2f}; "
                    f"tolerance x{self.max_noise_ratio:g}, --max-noise-ratio)")
        return ""

    @property
    def accepted(self) -> bool:
        return not self.refusal

    def table(self) -> str:
        rows = [
            ("", "input", "before", "after"),
            ("noise std, flat soft tissue (HU)", *(f"{f.noise_hu:.1f}" for f in (self.input, self.before, self.after))),
            ("edge sharpness (HU/mm)", *(f"{f.edge_hu_per_mm:.1f}" for f in (self.input, self.before, self.after))),
            ("soft-tissue mean (HU)", *(f"{f.soft_tissue_hu:.1f}" for f in (self.input, self.before, self.after))),
            ("drift from input (HU)", "", f"{self.drift_before:+.1f}", f"{self.drift_after:+.1f}"),
        ]
        width = max(len(r[0]) for r in rows)
        plural = "s" if self.slices != 1 else ""
        lines = [f"no-reference check on {self.slices} held-out slice{plural} of the low-dose input"]
        lines += [f"{r[0]:<{width}}  " + "  ".join(f"{c:>8}" for c in r[1:]) for r in rows]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "held_out_slices": self.slices,
            "input": self.input.to_dict(), "before": self.before.to_dict(), "after": self.after.to_dict(),
            "drift_before_hu": round(self.drift_before, 3), "drift_after_hu": round(self.drift_after, 3),
            "max_drift_hu": self.max_drift_hu,
            "noise_ratio": round(self.noise_ratio, 3), "max_noise_ratio": self.max_noise_ratio,
        }  # fmt: skip


def run_check(
    before: Any, after: Any, header: dict[str, Any], data: AdaptData, max_drift_hu: float,
    max_noise_ratio: float = DEFAULT_MAX_NOISE_RATIO,
) -> CheckResult:
    """Denoise the held-out slices with the Restorers ``before`` and ``after`` (run as ``header`` says: HU range,
    self-ensemble) and measure input, before and after on the input's masks."""
    from ldct_invrep.inference import SliceDenoiser

    figures = [quality_figures(data.held_out_hu, data.held_out_masks)]
    for restorer in (before, after):
        denoiser = SliceDenoiser.from_header(restorer, header, batch_size=1)
        figures.append(quality_figures([denoiser.denoise(s) for s in data.held_out_hu], data.held_out_masks))
    return CheckResult(*figures, max_drift_hu=float(max_drift_hu), slices=len(data.held_out_hu),
                       max_noise_ratio=float(max_noise_ratio))
