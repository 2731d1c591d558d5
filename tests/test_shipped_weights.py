"""The shipped weights (ldct_invrep/weights/lir_ct.pt) denoise: simulated low dose of the sample series and of
the patients held out of their training, and the real Mayo pair, with soft-tissue HU kept. Guards against
shipping a checkpoint that does nothing or harm (the first shipped weights scored below their own input)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ldct_invrep.inference import SliceDenoiser
from ldct_invrep.io import read_series
from ldct_invrep.metrics import compute_metrics
from ldct_invrep.package_files import default_weights_path
from ldct_invrep.transforms.lowdose import simulate_low_dose

from _helpers import load_script
from conftest import shared_path

pytestmark = pytest.mark.skipif(not default_weights_path().is_file(), reason="no shipped weights in the package")


def _soft_tissue(reference: np.ndarray) -> np.ndarray:
    return (reference > -200) & (reference < 200)


def _gain(out: np.ndarray, noisy: np.ndarray, clean: np.ndarray) -> float:
    return compute_metrics(out, clean, "abdomen")[0].psnr - compute_metrics(noisy, clean, "abdomen")[0].psnr


def test_header_says_how_the_weights_run() -> None:
    denoiser, header = SliceDenoiser.from_checkpoint()
    assert header["preset"] == "ct" and header["calibration"] == "self"
    assert denoiser.self_ensemble == header["self_ensemble"] == 4
    assert "A056642" in header["held_out_patients"] and not any("A056642" in s for s in header["sources"])


@pytest.mark.slow
def test_shipped_weights_denoise_sample_slices_at_two_doses(sample_series: Path) -> None:
    # training anatomy (the sample series is a training source), fresh noise realisations
    series = read_series(sample_series)
    spacing = float(np.mean(series.spacing[1:]))
    denoiser, _ = SliceDenoiser.from_checkpoint()
    for f, floor in ((0.1, 1.5), (0.25, 0.5), (0.5, 0.0)):  # measured: +4.1, +2.3, +1.0 dB (network alone: +4.1, +1.1, -2.9)
        clean = series.hu[10].astype(np.float32)
        noisy = simulate_low_dose(clean, f, spacing, seed=12345, slice_thickness_mm=3.0)
        out = denoiser.denoise(noisy)
        assert _gain(out, noisy, clean) > floor, f
        tissue = _soft_tissue(clean)
        assert abs(float((out - clean)[tissue].mean())) < 5.0


@pytest.mark.slow
@pytest.mark.shared_data
def test_shipped_weights_on_held_out_patients() -> None:
    """The COVID-19-NY-SBU patients held out of training (1-5 mm, GE and Toshiba) at dose fractions 0.1, 0.25
    and 0.5: never below the input. At 0.5 (the lowest noise) the network alone smooths too much (measured mean
    -0.33 dB, worst slice -1.03 dB); the reference-noise blend of its header is what keeps it above the input."""
    from ldct_invrep.recipes import open_ct_sources

    files = open_ct_sources(shared_path())["test"]
    denoiser, _ = SliceDenoiser.from_checkpoint()
    for f, mean_floor, floor in ((0.1, 2.0, 1.0), (0.25, 1.0, 0.0), (0.5, 0.5, 0.0)):
        gains: list[float] = []
        for i, path in enumerate(files):
            s = read_series(path)
            clean = np.clip(s.hu[0], -1024, 3072).astype(np.float32)
            padding = s.hu[0] < -1500
            noisy = simulate_low_dose(
                clean, f, float(np.mean(s.spacing[1:])), seed=i, padding=padding,
                slice_thickness_mm=float(s.datasets[0].SliceThickness),
            )  # fmt: skip
            gains.append(_gain(denoiser.denoise(noisy), noisy, clean))
        assert np.mean(gains) > mean_floor and min(gains) > floor, (f, gains)


@pytest.mark.shared_data
def test_shipped_weights_improve_the_real_mayo_pair(mayo_pair: tuple[Path, Path]) -> None:
    full, quarter = (read_series(p).hu[0] for p in mayo_pair)
    denoiser, _ = SliceDenoiser.from_checkpoint()
    out = denoiser.denoise(quarter)
    for window in ("abdomen", "full"):
        before = compute_metrics(quarter, full, window)[0]
        after = compute_metrics(out, full, window)[0]
        # measured: +3.9 dB (abdomen)
        assert after.psnr > before.psnr + 3.0 and after.ssim > before.ssim, (window, before, after)
    tissue = _soft_tissue(full)
    assert abs(float((out - full)[tissue].mean() - (quarter - full)[tissue].mean())) < 5.0


@pytest.mark.slow
@pytest.mark.shared_data
def test_ldct_simulated_eval_metrics_are_what_the_shipped_weights_give() -> None:
    """The bundle's metadata.json ``eval_metrics`` are the output of ``benchmarks/shipped_weights_metrics.py``
    (``--write``) on the shipped weights: measured, not typed."""
    import json

    script = load_script("benchmarks/shipped_weights_metrics.py")
    measured = script.measure(shared_path())
    meta = json.loads(script.METADATA.read_text(encoding="utf-8"))
    assert meta["eval_metrics"].keys() == measured.keys()
    for key, value in measured.items():
        assert meta["eval_metrics"][key] == pytest.approx(value, abs=0.011), key
