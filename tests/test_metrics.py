"""ldct_invrep.metrics against scikit-image and hand computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pydicom
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ldct_invrep.errors import InputError
from ldct_invrep.metrics import (
    METRIC_WINDOWS,
    MetricReport,
    SliceMetrics,
    compare_reports,
    compute_metrics,
    resolve_window,
    soft_tissue_bias,
    summarize,
)

SK_SSIM = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def _phantom(seed: int = 0, shape: tuple[int, int] = (96, 80), noise_hu: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    """Air background, a soft-tissue disc with a bone insert; the noisy copy adds Gaussian noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    ref = np.full(shape, -1000.0)
    ref[(yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2 < (0.4 * min(shape)) ** 2] = 40.0
    ref[(yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2 - 8) ** 2 < 36] = 700.0
    return ref + rng.normal(0, noise_hu, shape), ref


def _read_hu(path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


@pytest.mark.parametrize("window", ["abdomen", "full"])
def test_psnr_matches_skimage(window: str) -> None:
    lo, hi = METRIC_WINDOWS[window]
    pred, ref = _phantom()
    (m,) = compute_metrics(pred, ref, window)
    expected = peak_signal_noise_ratio(np.clip(ref, lo, hi), np.clip(pred, lo, hi), data_range=hi - lo)
    assert m.psnr == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("window", ["abdomen", "full"])
def test_ssim_matches_skimage_on_the_same_pixels(window: str) -> None:
    # skimage's Gaussian (truncate 3.5 -> radius 5, 11 taps) then a 5-pixel border crop keeps exactly the
    # pixels of MONAI's valid 11x11 convolution with the same normalised kernel, so only rounding separates
    # the two. MONAI casts to float32 and forms variances as E[x^2] - E[x]^2: the cancellation error is about
    # eps32 * max|x|^2, against a denominator of at least C2 = (0.03 R)^2. That bound is the tolerance
    # (4.8e-5 for the abdomen window, 1.3e-4 for the full window shifted to [0, 4096]).
    lo, hi = METRIC_WINDOWS[window]
    pred, ref = _phantom(seed=1)
    p, r = np.clip(pred, lo, hi), np.clip(ref, lo, hi)
    c2 = (0.03 * (hi - lo)) ** 2
    eps = float(np.finfo(np.float32).eps)
    (m_hu,) = compute_metrics(pred, ref, window, ssim_intensity="hu")
    (m_win,) = compute_metrics(pred, ref, window, ssim_intensity="window")
    sk_hu = structural_similarity(p, r, data_range=hi - lo, **SK_SSIM)
    sk_win = structural_similarity(p - lo, r - lo, data_range=hi - lo, **SK_SSIM)
    assert m_hu.ssim == pytest.approx(sk_hu, abs=eps * max(abs(lo), abs(hi)) ** 2 / c2)
    assert m_win.ssim == pytest.approx(sk_win, abs=eps * (hi - lo) ** 2 / c2)
    # and the two conventions are really different numbers (SSIM's luminance term is not shift invariant)
    assert abs(m_hu.ssim - m_win.ssim) > 1e-3


def test_window_clipping_hides_errors_outside_the_window() -> None:
    _, ref = _phantom(seed=2)
    pred = ref.copy()
    pred[ref < -500] -= 300.0  # errors only in air (below -160 HU; clipped in the abdomen window)
    (abd,) = compute_metrics(pred, ref, "abdomen")
    assert math.isinf(abd.psnr) and abd.rmse_hu == 0.0 and abd.ssim == pytest.approx(1.0, abs=1e-6)
    # the same pixels are in the full window only as far as pred stays above -1024 HU: -1300 is clipped to -1024
    (full,) = compute_metrics(pred, ref, "full")
    n_air = (ref < -500).sum()
    assert full.rmse_hu == pytest.approx(math.sqrt(n_air * 24.0**2 / ref.size), rel=1e-9)
    # explicit (lo, hi) tuple gives the same as the name
    (tup,) = compute_metrics(pred, ref, (-1024, 3072))
    assert tup == full


def test_identical_images_give_inf_psnr_and_ssim_one() -> None:
    _, ref = _phantom(seed=3)
    (m,) = compute_metrics(ref, ref.copy(), "abdomen")
    assert math.isinf(m.psnr) and m.psnr > 0
    assert m.ssim == pytest.approx(1.0, abs=1e-6)
    assert m.rmse_hu == 0.0
    report = MetricReport.from_arrays(np.stack([ref, ref]), np.stack([ref, ref]), "abdomen")
    assert math.isinf(report.summary["psnr"]["mean"])
    text = report.to_table()
    assert "inf" in text
    json.dumps(report.to_dict(), allow_nan=False)  # strict JSON: inf/nan written as strings


def test_volume_metric_is_the_mean_of_slice_metrics() -> None:
    pairs = [_phantom(seed=s, noise_hu=10.0 * (s + 1)) for s in range(4)]
    pred = np.stack([p for p, _ in pairs])
    ref = np.stack([r for _, r in pairs])
    report = MetricReport.from_arrays(pred, ref, "abdomen", method="noisy", reference="clean")
    singles = [compute_metrics(p, r, "abdomen")[0] for p, r in pairs]
    assert len(report.per_slice) == 4
    for got, want in zip(report.per_slice, singles, strict=True):
        assert got.psnr == pytest.approx(want.psnr, abs=1e-9)
        assert got.ssim == pytest.approx(want.ssim, abs=1e-6)
        assert got.rmse_hu == pytest.approx(want.rmse_hu, abs=1e-9)
    vol = report.volume
    assert vol.psnr == pytest.approx(np.mean([s.psnr for s in singles]))
    assert vol.ssim == pytest.approx(np.mean([s.ssim for s in singles]))
    assert vol.rmse_hu == pytest.approx(np.mean([s.rmse_hu for s in singles]))
    assert report.summary["psnr"]["std"] == pytest.approx(np.std([s.psnr for s in singles]))
    # noisier slices score worse
    assert [s.psnr for s in report.per_slice] == sorted((s.psnr for s in report.per_slice), reverse=True)


def test_rmse_in_hu_hand_computed() -> None:
    ref = np.zeros((32, 32))
    pred = ref.copy()
    pred[:16] += 10.0  # half the pixels (512 of 1024) off by 10 HU
    pred[0, 0] = 1000.0  # clipped to 240 in the abdomen window -> that pixel is off by 240, not 1000
    mse = (511 * 10.0**2 + 1 * 240.0**2) / 1024
    (m,) = compute_metrics(pred, ref, "abdomen")
    assert m.rmse_hu == pytest.approx(math.sqrt(mse), rel=1e-12)
    assert m.psnr == pytest.approx(10 * math.log10(400.0**2 / mse), abs=1e-9)


def test_report_tables_name_window_and_data_range() -> None:
    pred, ref = _phantom(seed=4)
    report = MetricReport.from_arrays(pred, ref, "abdomen", method="BM3D", reference="full dose")
    for text in (report.to_table(), report.to_markdown()):
        assert "abdomen" in text and "[-160, 240] HU" in text and "data range 400" in text
        assert "mean ± std" in text and "BM3D" in text
    lines = report.to_table().splitlines()
    assert len({len(line) for line in lines[1:]}) == 1  # aligned: every table line has the same width
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["data_range"] == 400.0 and d["window"] == {"name": "abdomen", "lo": -160.0, "hi": 240.0}
    assert d["per_slice"][0]["psnr"] == pytest.approx(report.per_slice[0].psnr)
    other = MetricReport.from_arrays(ref, ref, "abdomen", method="oracle", reference="full dose")
    table = compare_reports([report, other], markdown=True)
    assert "| BM3D |" in table and "| oracle |" in table
    with pytest.raises(InputError):
        compare_reports([report, MetricReport.from_arrays(pred, ref, "full")])


def test_bad_input_raises_input_error() -> None:
    pred, ref = _phantom()
    with pytest.raises(InputError, match="shape"):
        compute_metrics(pred[:-1], ref)
    with pytest.raises(InputError, match="unknown"):
        compute_metrics(pred, ref, "no-such-window")
    with pytest.raises(InputError):
        resolve_window((240, -160))
    with pytest.raises(InputError, match="NaN"):
        compute_metrics(np.full_like(pred, np.nan), ref)
    with pytest.raises(InputError):
        summarize([])
    assert resolve_window("abdomen").data_range == 400.0
    assert resolve_window("full").label() == "full W4096/L1024 [-1024, 3072] HU"


def test_summarize_handles_infinite_psnr() -> None:
    s = summarize([SliceMetrics(float("inf"), 1.0, 0.0), SliceMetrics(30.0, 0.9, 5.0)])
    assert math.isinf(s["psnr"]["mean"]) and math.isnan(s["psnr"]["std"])
    assert s["ssim"]["mean"] == pytest.approx(0.95) and s["rmse_hu"]["std"] == pytest.approx(2.5)


@pytest.mark.shared_data
def test_mayo_quarter_vs_full_dose_is_plausible(mayo_pair) -> None:
    full_path, quarter_path = mayo_pair
    full, quarter = _read_hu(full_path), _read_hu(quarter_path)
    abd = MetricReport.from_arrays(quarter, full, "abdomen", method="quarter dose", reference="full dose")
    fr = MetricReport.from_arrays(quarter, full, "full", method="quarter dose", reference="full dose")
    win = MetricReport.from_arrays(quarter, full, "abdomen", ssim_intensity="window", method="quarter dose")
    print("\n" + abd.to_table() + "\n" + fr.to_table() + "\n" + win.to_table())
    a, f = abd.per_slice[0], fr.per_slice[0]
    # 1 mm B30f quarter dose: about 60 HU of inserted noise in the body, half the image is air
    assert 15.0 < a.psnr < 30.0 and 25.0 < a.rmse_hu < 70.0 and 0.5 < a.ssim < 0.9
    assert 30.0 < f.psnr < 45.0 and f.ssim > a.ssim
    # the abdomen window hides errors outside [-160, 240] but divides by a 10x smaller range
    assert a.rmse_hu < f.rmse_hu and a.psnr < f.psnr
    # the same noise, measured in two ranges: PSNR difference = 20 log10(4096/400) - 20 log10(rmse_f/rmse_a)
    expect = 20 * math.log10(4096 / 400) - 20 * math.log10(f.rmse_hu / a.rmse_hu)
    assert f.psnr - a.psnr == pytest.approx(expect, abs=1e-6)


def test_format_mean_std_is_the_one_report_format() -> None:
    from ldct_invrep.metrics import format_mean_std, format_number

    assert format_mean_std({"mean": 31.2345, "std": 0.5}, 2) == "31.23 ± 0.50"
    assert format_mean_std({"mean": 0.91234, "std": None}, 3) == "0.912"
    assert format_mean_std({"mean": float("inf"), "std": float("nan")}, 2) == "inf ± nan"
    assert format_number(1.0, 4) == "1.0000"


def test_soft_tissue_bias_counts_only_the_reference_soft_tissue() -> None:
    _, ref = _phantom()  # air, a 40 HU disc, a 700 HU insert
    pred = ref.copy()
    pred[ref == 40.0] += 7.0
    pred[ref == 700.0] -= 300.0  # bone and air errors do not count
    pred[ref == -1000.0] += 50.0
    assert soft_tissue_bias(pred, ref) == pytest.approx(7.0)
    assert soft_tissue_bias(np.stack([pred, ref]), np.stack([ref, ref])) == pytest.approx(3.5)
    assert math.isnan(soft_tissue_bias(np.zeros((16, 16)), np.full((16, 16), -1000.0)))
    with pytest.raises(InputError, match="differs"):
        soft_tissue_bias(np.zeros((16, 16)), np.zeros((16, 17)))
