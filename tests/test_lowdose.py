"""Projection-domain low-dose simulation: determinism, dose scaling, geometry, calibration on real Mayo data."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from _helpers import roi_noise_ratio
from conftest import SAMPLE_SERIES, SHARED_DATA
from scipy import ndimage

from ldct_invrep.transforms.lowdose import (
    RandSimulateLowDosed,
    back_project,
    filter_sinogram,
    insertion_noise_variance,
    line_integrals,
    scan_noise_level,
    series_noise_fallbacks,
    simulate_low_dose,
)

SPACING = 0.75  # mm
FLUX = 1.0e4  # a low incident flux: the small phantom attenuates little, this gives it clear noise


def phantom(size: int = 128, spacing: float = SPACING) -> tuple[np.ndarray, np.ndarray]:
    """A water ellipse (0.9 x 0.66 of the field) with two lungs and a bone in air; returns (HU, soft mask)."""
    c = (size - 1) / 2.0
    y, x = (np.mgrid[:size, :size] - c) / size  # fractions of the field of view
    body = (x / 0.45) ** 2 + (y / 0.33) ** 2 <= 1.0
    hu = np.full((size, size), -1000.0)
    hu[body] = 40.0
    hu[((x - 0.18) / 0.12) ** 2 + (y / 0.16) ** 2 <= 1] = -800.0
    hu[((x + 0.18) / 0.12) ** 2 + (y / 0.16) ** 2 <= 1] = -800.0
    hu[(x**2 + (y - 0.21) ** 2) <= 0.05**2] = 1000.0
    soft = ndimage.binary_erosion(body & (hu == 40.0), iterations=3)
    return hu, soft


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray]:
    return phantom()


def test_same_seed_identical_and_different_seeds_differ(small):
    hu, _ = small
    a = simulate_low_dose(hu, 0.25, SPACING, seed=3, calibration="mayo", incident_flux=FLUX)
    b = simulate_low_dose(hu, 0.25, SPACING, seed=3, calibration="mayo", incident_flux=FLUX)
    c = simulate_low_dose(hu, 0.25, SPACING, seed=4, calibration="mayo", incident_flux=FLUX)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == hu.shape
    assert np.abs(a - c).mean() > 1.0


def test_generator_seed_is_accepted_and_reproducible(small):
    hu, _ = small
    a = simulate_low_dose(hu, 0.25, SPACING, seed=np.random.default_rng(7), calibration="mayo", incident_flux=FLUX)
    b = simulate_low_dose(hu, 0.25, SPACING, seed=np.random.default_rng(7), calibration="mayo", incident_flux=FLUX)
    np.testing.assert_array_equal(a, b)


def test_noise_grows_as_dose_falls(small):
    hu, soft = small
    stds = [
        float((simulate_low_dose(hu, f, SPACING, seed=0, calibration="mayo", incident_flux=FLUX) - hu)[soft].std())
        for f in (0.5, 0.25, 0.1)
    ]
    assert stds[0] < stds[1] < stds[2]
    # quantum noise alone scales as sqrt((1 - f) / f): 1.0, 1.73, 3.0; electronic noise adds at low dose
    assert 1.5 < stds[1] / stds[0] < 2.0
    assert stds[2] / stds[0] > 2.8


def test_full_dose_returns_input_unchanged(small):
    hu, _ = small
    out = simulate_low_dose(hu, 1.0, SPACING, seed=0, calibration="mayo", incident_flux=FLUX)
    np.testing.assert_array_equal(out, hu.astype(np.float32))
    assert out is not hu


def test_mean_hu_preserved_in_body(small):
    hu, soft = small
    for seed in (0, 1):
        diff = simulate_low_dose(hu, 0.1, SPACING, seed=seed, calibration="mayo", incident_flux=FLUX) - hu
        assert diff[soft].std() > 20.0  # there is noise ...
        assert abs(diff[soft].mean()) < 3.0  # ... with zero mean


@pytest.mark.parametrize("fraction", [0.0, -0.25, 1.5, float("nan")])
def test_invalid_dose_fraction_raises(small, fraction):
    hu, _ = small
    with pytest.raises(ValueError, match="dose_fraction"):
        simulate_low_dose(hu, fraction, SPACING, seed=0, calibration="mayo", incident_flux=FLUX)
    with pytest.raises(ValueError, match="dose_fraction"):
        RandSimulateLowDosed("image", dose_fraction=fraction)


def test_bad_slice_and_spacing_raise(small):
    hu, _ = small
    with pytest.raises(ValueError, match="2D"):
        simulate_low_dose(hu[None], 0.25, SPACING)
    with pytest.raises(ValueError, match="pixel_spacing_mm"):
        simulate_low_dose(hu, 0.25, 0.0)
    with pytest.raises(ValueError, match="n_views"):
        simulate_low_dose(hu, 0.25, SPACING, n_views=30)


def test_insertion_variance_is_low_dose_minus_full_dose_variance():
    p = np.linspace(0.0, 8.0, 50)
    flux, ev, f = 1.5e5, 7.0, 0.3
    counts = flux * np.exp(-p)

    def post_log_var(i: np.ndarray) -> np.ndarray:
        return 1.0 / i * (1.0 + ev / i)

    expected = post_log_var(f * counts) - post_log_var(counts)
    np.testing.assert_allclose(insertion_noise_variance(p, f, flux, ev), expected, rtol=1e-10)
    assert np.all(insertion_noise_variance(p, 1.0, flux, ev) == 0.0)


def _direct_back_projection(q: np.ndarray, size: int) -> np.ndarray:
    n_views, n_det = q.shape
    coord = np.arange(size) - (size - 1) / 2.0
    bins = np.arange(n_det) - (n_det - 1) / 2.0
    out = np.zeros((size, size))
    for k in range(n_views):
        theta = k * np.pi / n_views
        t = np.add.outer(-coord * np.sin(theta), coord * np.cos(theta))
        out += np.interp(t, bins, q[k], left=0.0, right=0.0)
    return out * np.pi / n_views


@pytest.mark.parametrize("size,n_views", [(24, 8), (33, 12), (48, 40)])
def test_symmetric_back_projection_matches_direct_one(size, n_views):
    n_det = int(np.ceil(np.sqrt(2) * size)) + 3
    q = ndimage.gaussian_filter1d(np.random.default_rng(size).standard_normal((n_views, n_det)), 2.0, axis=1)
    direct = _direct_back_projection(q, size)
    fast = back_project(q, size)
    # the 16-times upsampled table look-up moves samples by <= 1/32 bin: ~1 % here; a wrong view mapping is ~100 %
    assert np.abs(fast - direct).max() < 0.02 * np.abs(direct).max()


@pytest.mark.parametrize("size,downsample", [(80, 1), (81, 2), (80, 4)])
def test_fbp_of_line_integrals_reconstructs_discs(size, downsample):
    # geometry and scale of line_integrals (scikit-image radon, pooled) against back_project
    yy, xx = np.mgrid[:size, :size]
    disc1 = (yy - 25) ** 2 + (xx - 50) ** 2
    disc2 = (yy - 55) ** 2 + (xx - 25) ** 2
    img = 1.0 * (disc1 < 12**2) + 2.0 * (disc2 < 10**2)
    n_det = int(np.ceil(np.sqrt(2) * size)) + 3
    rec = back_project(filter_sinogram(line_integrals(img, 96, n_det, downsample), "ramp"), size)
    tol = 0.02 * downsample  # pooling blurs the edges
    assert rec[disc1 < 5**2].mean() == pytest.approx(1.0, abs=tol)
    assert rec[disc2 < 4**2].mean() == pytest.approx(2.0, abs=2 * tol)
    weights = np.clip(rec, 0, None) * (disc1 < 16**2)
    centroid = (float((weights * yy).sum() / weights.sum()), float((weights * xx).sum() / weights.sum()))
    assert centroid == pytest.approx((25.0, 50.0), abs=0.1)


def test_pooled_variance_is_close_to_exact(small):
    hu, soft = small
    exact = simulate_low_dose(hu, 0.25, SPACING, seed=0, n_views=240, variance_downsample=1, calibration="mayo", incident_flux=FLUX) - hu
    fast = simulate_low_dose(hu, 0.25, SPACING, seed=0, n_views=240, calibration="mayo", incident_flux=FLUX) - hu
    assert (fast - exact)[soft].std() < 0.05 * exact[soft].std()


def test_noise_level_does_not_depend_on_pixel_size():
    # the same 14 x 10 cm object at 0.7 and 0.55 mm pixels (filter cutoff fixed in cycles/mm)
    stds = []
    for spacing in (0.7, 0.55):
        size = round(150 / spacing)
        y, x = (np.mgrid[:size, :size] - (size - 1) / 2.0) * spacing
        body = (x / 70.0) ** 2 + (y / 50.0) ** 2 <= 1.0
        hu = np.where(body, 40.0, -1000.0)
        centre = (x / 35.0) ** 2 + (y / 25.0) ** 2 <= 1.0
        stds.append(float((simulate_low_dose(hu, 0.25, spacing, seed=1, calibration="mayo") - hu)[centre].std()))
    assert stds[1] == pytest.approx(stds[0], rel=0.12)


def test_noise_is_fbp_textured_not_white(small):
    hu, soft = small
    diff = simulate_low_dose(hu, 0.25, SPACING, seed=0, filter_cutoff_per_mm=None, calibration="mayo", incident_flux=FLUX) - hu
    both = soft[:, :-1] & soft[:, 1:]
    lag1 = np.corrcoef(diff[:, :-1][both], diff[:, 1:][both])[0, 1]
    assert abs(lag1) > 0.1  # white noise would give ~0


def test_dict_transform_channels_seed_and_meta(small):
    hu, soft = small
    img = MetaTensor(
        torch.from_numpy(np.stack([hu, hu]).astype(np.float32)),
        affine=torch.diag(torch.tensor([SPACING, SPACING, 1.0, 1.0])),
    )
    t = RandSimulateLowDosed("image", dose_fraction=0.25, seed=5, calibration="mayo", incident_flux=FLUX)
    out = t({"image": img, "other": 1})
    assert isinstance(out["image"], MetaTensor) and out["image"].shape == (2, *hu.shape)
    assert out["other"] == 1
    noisy = out["image"].numpy()
    assert not np.array_equal(noisy[0], noisy[1])  # independent noise per slice
    assert 20.0 < (noisy[0] - hu)[soft].std() < 200.0
    second = t({"image": img})["image"].numpy()
    assert not np.array_equal(second, noisy)  # a new draw per call
    t.set_random_state(5)
    np.testing.assert_array_equal(t({"image": img})["image"].numpy(), noisy)


def test_dict_transform_spacing_sources(small):
    hu, _ = small
    arr = hu[None].astype(np.float32)
    by_key = RandSimulateLowDosed("image", seed=1, pixel_spacing_key="spacing", calibration="mayo")(
        {"image": arr, "spacing": (SPACING, SPACING, 5.0)}
    )
    fixed = RandSimulateLowDosed("image", seed=1, pixel_spacing_mm=SPACING, calibration="mayo")({"image": arr})
    assert isinstance(fixed["image"], np.ndarray)
    np.testing.assert_array_equal(by_key["image"], fixed["image"])
    volume = np.stack([arr, arr], axis=-1)  # C x H x W x D
    out = RandSimulateLowDosed("image", seed=1, pixel_spacing_mm=SPACING, calibration="mayo")({"image": volume})["image"]
    assert out.shape == volume.shape and not np.array_equal(out[..., 0], out[..., 1])
    with pytest.raises(ValueError, match="pixel spacing"):
        RandSimulateLowDosed("image")({"image": arr})
    with pytest.raises(ValueError, match="non-square"):
        RandSimulateLowDosed("image", pixel_spacing_key="s")({"image": arr, "s": (SPACING, 1.0)})


def _read_hu(path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


@pytest.mark.shared_data
def test_quarter_dose_noise_matches_real_mayo_pair(mayo_pair):
    full_path, quarter_path = mayo_pair
    full, quarter = _read_hu(full_path), _read_hu(quarter_path)
    spacing = float(pydicom.dcmread(full_path, stop_before_pixels=True).PixelSpacing[0])
    mask = ndimage.binary_erosion(full > -500, iterations=5)
    real = quarter - full
    sim = simulate_low_dose(full, 0.25, spacing, seed=0) - full
    assert sim[mask].std() == pytest.approx(real[mask].std(), rel=0.2)
    # texture: neighbour correlation along x and y (FBP correlation and its anisotropy) as in the real data
    for axis in (0, 1):
        d_real, d_sim, m = (real, sim, mask) if axis == 1 else (real.T, sim.T, mask.T)
        both = m[:, :-1] & m[:, 1:]
        lag1_real = np.corrcoef(d_real[:, :-1][both], d_real[:, 1:][both])[0, 1]
        lag1_sim = np.corrcoef(d_sim[:, :-1][both], d_sim[:, 1:][both])[0, 1]
        assert lag1_sim == pytest.approx(lag1_real, abs=0.1)


def test_thicker_slices_carry_less_noise(small):
    """A bin of a 3 mm slice collects three times the photons of a 1 mm one: noise std falls ~ 1/sqrt(3)."""
    hu, soft = small
    thin = simulate_low_dose(hu, 0.25, SPACING, seed=0, calibration="mayo", incident_flux=FLUX, electronic_noise_std=0.0)
    thick = simulate_low_dose(
        hu, 0.25, SPACING, seed=0, calibration="mayo", incident_flux=FLUX, electronic_noise_std=0.0, slice_thickness_mm=3.0
    )
    ratio = float((thick - hu)[soft].std() / (thin - hu)[soft].std())
    assert ratio == pytest.approx(1 / np.sqrt(3), rel=0.05)
    with pytest.raises(ValueError, match="slice_thickness_mm"):
        simulate_low_dose(hu, 0.25, SPACING, slice_thickness_mm=0.0)


# ------------------------------------------------------------------------------- dose-relative calibration
@pytest.fixture(scope="module")
def sample_slices() -> tuple[np.ndarray, float, float]:
    """Slices 0 and 10 of the sample series (HU), pixel spacing and slice thickness (mm)."""
    from ldct_invrep.io import read_series

    series = read_series(SAMPLE_SERIES)
    return series.hu[[0, 10]].astype(np.float64), float(series.spacing[1]), float(series.datasets[0].SliceThickness)


def test_quarter_of_the_scans_own_dose_doubles_its_roi_noise(sample_slices):
    """Quantum noise std ~ 1/sqrt(dose): a quarter of the sample's own dose doubles the noise in soft tissue
    (the issue measured ~11 HU liver noise there; the Mayo flux gave ~56 HU)."""
    hu, spacing, thickness = sample_slices
    sims = [simulate_low_dose(s, 0.25, spacing, seed=k, slice_thickness_mm=thickness) for k, s in enumerate(hu)]
    assert roi_noise_ratio(hu, sims) == pytest.approx(2.0, rel=0.2)


def test_self_calibration_follows_the_scans_own_noise_and_mayo_does_not(sample_slices):
    """The same anatomy with more noise of its own: "self" inserts proportionally more, "mayo" the same."""
    hu = sample_slices[0][0]
    spacing, thickness = sample_slices[1], sample_slices[2]
    noisier = hu + ndimage.gaussian_filter(np.random.default_rng(0).normal(0.0, 60.0, hu.shape), 0.7)
    body = ndimage.binary_erosion(hu > -500, iterations=5)
    own = {name: scan_noise_level(img) for name, img in (("base", hu), ("noisier", noisier))}
    assert own["noisier"] > 1.5 * own["base"]

    def inserted(img, calibration):
        sim = simulate_low_dose(img, 0.25, spacing, seed=3, calibration=calibration, slice_thickness_mm=thickness)
        return float((sim - img)[body].std())

    self_ratio = inserted(noisier, "self") / inserted(hu, "self")
    assert self_ratio == pytest.approx(own["noisier"] / own["base"], rel=0.2)
    mayo_base = inserted(hu, "mayo")
    assert inserted(noisier, "mayo") == pytest.approx(mayo_base, rel=0.03)
    assert mayo_base > 2.0 * inserted(hu, "self")  # the Mayo flux is far too low a dose for this scan
    with pytest.raises(ValueError, match="calibration"):
        simulate_low_dose(hu, 0.25, spacing, calibration="scanner")
    with pytest.raises(ValueError, match="incident_flux"):
        simulate_low_dose(hu, 0.25, spacing, incident_flux=1e5)  # an absolute flux needs calibration="mayo"


def test_padding_is_returned_exactly(sample_slices):
    """Pixels outside the field of view (GE stores -3024 HU there) stay what they were, in either calibration."""
    hu = sample_slices[0][0].copy()
    yy, xx = np.mgrid[: hu.shape[0], : hu.shape[1]] - (hu.shape[0] - 1) / 2.0
    padding = np.hypot(yy, xx) > 250
    hu[padding] = -3024.0
    for calibration in ("self", "mayo"):
        out = simulate_low_dose(hu, 0.25, sample_slices[1], seed=0, calibration=calibration, padding=padding)
        np.testing.assert_array_equal(out[padding], hu[padding].astype(np.float32))
        assert np.abs(out - hu)[~padding].mean() > 1.0


def test_slices_without_flat_tissue_take_the_series_level(sample_slices):
    hu, spacing, _ = sample_slices
    air = np.full_like(hu[0], -1000.0)
    air[200:260, 200:260] = 40.0  # a small object: too little flat soft tissue to measure
    assert scan_noise_level(air) is None
    with pytest.raises(ValueError, match="own_noise_level"):
        simulate_low_dose(air, 0.25, spacing, seed=0)
    assert series_noise_fallbacks([8.0, None, 10.0, 9.5]) == [None, 9.5, None, None]
    assert series_noise_fallbacks([None, None]) is None
    volume = np.stack([hu[0], air], axis=-1)[None].astype(np.float32)  # C x H x W x D
    out = RandSimulateLowDosed("image", seed=0, pixel_spacing_mm=spacing)({"image": volume})["image"]
    assert np.abs(out[0, ..., 1] - air)[200:260, 200:260].std() > 1.0  # the air slice got the series' level
    with pytest.raises(ValueError, match="no slice has enough flat soft tissue"):
        RandSimulateLowDosed("image", seed=0, pixel_spacing_mm=spacing)({"image": np.stack([air, air], -1)[None]})
    fixed = RandSimulateLowDosed("image", seed=0, pixel_spacing_mm=spacing, own_noise_level=9.0)
    assert fixed({"image": air[None, ..., None]})["image"].shape == (1, *air.shape, 1)


@pytest.fixture(scope="module")
def dev_pairs():
    from ldct_invrep.data.dev_pairs import read_dev_pairs

    return {p.name: p for p in read_dev_pairs(SHARED_DATA)}


_KERNEL_GAP = (
    "measured 1.25 / 1.30: the inserted noise is coarser than this pair's real noise (sim/real 0.93 on the "
    "high-passed local std, 1.3 in total), a reconstruction-kernel texture the fixed FBP filter does not follow"
)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "name",
    [
        "mayo_L506_1mm",
        "eunh_test_case1",
        pytest.param("eunh_test_case2", marks=pytest.mark.xfail(strict=True, reason=_KERNEL_GAP)),
        pytest.param("eunh_test_case3", marks=pytest.mark.xfail(strict=True, reason=_KERNEL_GAP)),
        "cncl_0001",
    ],
)
def test_simulated_quarter_dose_noise_matches_each_real_pair(dev_pairs, name):
    """Full dose -> a quarter of its own dose: the inserted noise std in the body is within 20 % of the real
    quarter-minus-full (benchmarks/dose_relative_check.py prints all pairs over 3 seeds)."""
    if name not in dev_pairs:
        pytest.skip(f"real pair {name} not present under {SHARED_DATA}")
    pair = dev_pairs[name]
    full = pair.full.astype(np.float64)
    mask = ndimage.binary_erosion(full > -500, iterations=5)
    real = float((pair.quarter - full)[mask].std())
    sim = float((simulate_low_dose(full, 0.25, pair.pixel_spacing_mm, seed=0) - full)[mask].std())
    assert sim == pytest.approx(real, rel=0.2)
