"""ldct_invrep.viz: figure layout, window names in titles, ROI noise, line profiles, scroller fallback."""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ldct_invrep.errors import InputError  # noqa: E402
from ldct_invrep.viz import (  # noqa: E402
    compare_grid,
    line_profile,
    roi_noise_std,
    slice_scroller,
    window_title,
    zoom_roi,
)

ROI = (20, 24, 16, 12)  # row, col, height, width


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    clean = np.where((yy - 32) ** 2 + (xx - 32) ** 2 < 26**2, 40.0, -1000.0)
    clean[28:36, 40:48] = 900.0
    return {"full dose": clean, "quarter dose": clean + rng.normal(0, 40, clean.shape), "denoised": clean + rng.normal(0, 8, clean.shape)}


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]


def _titles(fig) -> str:
    return "\n".join([ax.get_title() for ax in fig.axes] + [fig._suptitle.get_text() if fig._suptitle else ""])


def test_compare_grid_layout_and_titles(images) -> None:
    windows = ("abdomen", "full", (-1350, 150))
    fig = compare_grid(images, windows=windows, reference="full dose", roi=ROI)
    image_axes = _image_axes(fig)
    # 3 windows x (3 images + 2 differences), plus per row a gray and a difference colorbar
    assert len(image_axes) == 3 * 5
    assert len(fig.axes) == 3 * 5 + 3 * 2
    titles = _titles(fig)
    for w in windows:
        assert window_title(w) in titles
    assert "abdomen W400/L40 [-160, 240] HU" in titles and "full W4096/L1024 [-1024, 3072] HU" in titles
    assert "quarter dose − full dose" in titles
    # difference panels: diverging colormap, symmetric limits, values = clipped difference
    diff_ax = next(ax for ax in image_axes if ax.get_title().startswith("quarter dose − full dose\nabdomen"))
    im = diff_ax.images[0]
    lo, hi = im.get_clim()
    assert im.get_cmap().name == "RdBu_r" and lo == -hi and hi in (50.0, 100.0, 200.0)  # 99.5th pct of |d|, 1-2-5
    expected = np.clip(images["quarter dose"], -160, 240) - np.clip(images["full dose"], -160, 240)
    np.testing.assert_allclose(np.asarray(im.get_array()), expected)
    # gray panels are displayed in their window
    gray = next(ax for ax in image_axes if ax.get_title().startswith("denoised\nfull"))
    assert gray.images[0].get_clim() == (-1024.0, 3072.0)
    # the ROI noise is written on each image panel
    texts = [t.get_text() for ax in image_axes for t in ax.texts]
    assert f"σ = {roi_noise_std(images['quarter dose'], ROI):.1f} HU" in texts
    fig.savefig(__import__("io").BytesIO(), format="png")  # renders


def test_compare_grid_difference_limits(images) -> None:
    fig = compare_grid(images, windows=("full",), reference="full dose", diff_limit=30.0)
    diff_axes = [ax for ax in _image_axes(fig) if "−" in ax.get_title()]
    assert len(diff_axes) == 2 and all(ax.images[0].get_clim() == (-30.0, 30.0) for ax in diff_axes)
    fig = compare_grid(images, windows=("full",), reference="full dose")
    # noise of 40 HU: the 99.5th percentile of |d| is ~2.8 sigma = ~113 HU -> 200
    assert [ax.images[0].get_clim() for ax in _image_axes(fig) if "−" in ax.get_title()][0] == (-200.0, 200.0)


def test_compare_grid_without_reference_has_no_differences(images) -> None:
    fig = compare_grid(images, windows=("abdomen",), show_difference=True)
    assert len(_image_axes(fig)) == 3 and len(fig.axes) == 4
    fig = compare_grid(images, windows=("abdomen",), reference=images["full dose"], show_difference=False)
    assert len(_image_axes(fig)) == 4  # the reference array becomes a column


def test_compare_grid_default_windows(images) -> None:
    fig = compare_grid(images)
    titles = _titles(fig)
    assert all(name in titles for name in ("abdomen", "lung", "bone"))


def test_roi_noise_std_hand_computed() -> None:
    img = np.zeros((10, 10))
    img[2:4, 3:5] = [[1.0, 3.0], [5.0, 7.0]]  # mean 4, deviations -3 -1 1 3 -> variance 5
    assert roi_noise_std(img, (2, 3, 2, 2)) == pytest.approx(np.sqrt(5.0))
    assert roi_noise_std(img, (6, 6, 3, 3)) == 0.0
    with pytest.raises(InputError, match="roi"):
        roi_noise_std(img, (8, 8, 4, 4))


def test_line_profile_values_equal_the_image_row(images) -> None:
    fig = line_profile(images, 30, window="abdomen")
    profile_ax = next(ax for ax in fig.axes if ax.lines and not ax.images)
    lines = {ln.get_label(): ln for ln in profile_ax.lines}
    for name, img in images.items():
        np.testing.assert_array_equal(lines[name].get_ydata(), img[30])
        np.testing.assert_array_equal(lines[name].get_xdata(), np.arange(64))
    assert "row 30" in profile_ax.get_title() and "abdomen W400/L40" in profile_ax.get_title()
    assert profile_ax.get_ylim() == (-160.0, 240.0)
    # a horizontal segment between two points samples the same row (bilinear at integer points)
    fig2 = line_profile(images, ((30, 5), (30, 50)), window="full", show_image=False)
    (ax2,) = fig2.axes
    np.testing.assert_allclose(ax2.lines[0].get_ydata(), images["full dose"][30, 5:51])
    assert "full W4096" in ax2.get_title()


def test_zoom_roi(images) -> None:
    fig = zoom_roi(images, ROI, window="abdomen")
    axes = _image_axes(fig)
    assert len(axes) == 2 * len(images)
    crop_ax = next(ax for ax in axes if ax.get_title().startswith("quarter dose\nROI rows 20-35, cols 24-35"))
    np.testing.assert_array_equal(np.asarray(crop_ax.images[0].get_array()), images["quarter dose"][20:36, 24:36])
    assert f"σ = {roi_noise_std(images['quarter dose'], ROI):.1f} HU" in [t.get_text() for t in crop_ax.texts]
    assert "abdomen W400/L40 [-160, 240] HU" in _titles(fig)


def test_slice_scroller_falls_back_to_a_static_montage(monkeypatch, images) -> None:
    from matplotlib.figure import Figure

    vols = {k: np.stack([v + z for z in range(10)]) for k, v in images.items()}
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets -> ImportError
    fig = slice_scroller(vols, window="abdomen", n_static=4)
    assert isinstance(fig, Figure)
    axes = _image_axes(fig)
    assert len(axes) == 3 * 4
    titles = _titles(fig)
    assert "z = 0" in titles and "z = 9" in titles and "abdomen W400/L40 [-160, 240] HU" in titles


def test_slice_scroller_widget_updates(images) -> None:
    pytest.importorskip("ipywidgets")
    vols = {"a": np.stack([images["full dose"]] * 5), "b": np.stack([images["quarter dose"]] * 5)}
    box = slice_scroller(vols, window="full")
    assert box.slider.max == 4 and box.slider.value == 2
    first = bytes(box.image.value)
    assert first.startswith(b"\x89PNG")
    box.slider.value = 0
    assert bytes(box.image.value).startswith(b"\x89PNG")
    assert "full W4096/L1024" in box.children[0].value


def test_bad_inputs(images) -> None:
    with pytest.raises(InputError, match="shapes"):
        compare_grid({"a": np.zeros((8, 8)), "b": np.zeros((8, 9))}, windows=("abdomen",))
    with pytest.raises(InputError, match="reference"):
        compare_grid(images, windows=("abdomen",), reference="nope")
    with pytest.raises(InputError, match="3D"):
        slice_scroller(np.zeros((8, 8)))


# --------------------------------------------------------------------------------------------- image quality
def test_noise_power_spectrum_of_white_noise_is_flat_at_its_variance() -> None:
    from scipy.ndimage import gaussian_filter

    from ldct_invrep.image_quality import noise_power_spectrum

    rng = np.random.default_rng(0)
    white = rng.normal(40.0, 10.0, (128, 128)) + np.linspace(0, 50, 128)[None]  # a tilt, removed by the fit
    freq, nps = noise_power_spectrum(white, (0, 0, 128, 128), pixel_mm=0.5)
    assert freq[0] > 0 and freq[-1] <= 1.0  # up to Nyquist, 1 / (2 x 0.5 mm)
    assert abs(nps.mean() / (100.0 * 0.25) - 1) < 0.1 and nps.min() > 0.3 * nps.mean()  # white: sigma^2 dx dy, flat
    blurred = gaussian_filter(rng.normal(0.0, 10.0, (128, 128)), 1.5)
    _, nps_b = noise_power_spectrum(blurred, (0, 0, 128, 128), pixel_mm=0.5)
    assert nps_b[:5].mean() > 50 * nps_b[-10:].mean()  # blurred noise: low frequencies only
    with pytest.raises(InputError, match="roi"):
        noise_power_spectrum(white, (120, 0, 20, 20), pixel_mm=0.5)


def test_edge_rise_distance_of_a_gaussian_blurred_step() -> None:
    from scipy.special import erf

    from ldct_invrep.image_quality import edge_rise_distance_mm, roi_mean_bias

    x = np.arange(-30, 31, dtype=float)
    sigma_px = 2.0
    step = -1000 + 1040 * 0.5 * (1 + erf(x / (sigma_px * np.sqrt(2))))  # air to soft tissue
    assert edge_rise_distance_mm(step, pixel_mm=0.7) == pytest.approx(2.563 * sigma_px * 0.7, rel=0.05)
    assert edge_rise_distance_mm(step[::-1], pixel_mm=0.7) == pytest.approx(2.563 * sigma_px * 0.7, rel=0.05)
    assert np.isnan(edge_rise_distance_mm(np.full(40, 30.0), pixel_mm=0.7))
    img = np.zeros((20, 20))
    assert roi_mean_bias(img + 3.5, img, (2, 2, 10, 10)) == pytest.approx(3.5)


def test_noise_power_and_edge_figures(images: dict[str, np.ndarray]) -> None:
    from ldct_invrep.viz import edge_profiles, noise_power_spectra

    fig = noise_power_spectra(images, (10, 10, 24, 24), pixel_mm=0.7)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == len(images) and ax.get_yscale() == "log"
    assert all("σ" in t.get_text() for t in ax.get_legend().get_texts())
    fig = edge_profiles(images, ((30, 2), (30, 40)), pixel_mm=0.7)
    texts = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert len(texts) == len(images) and all("10-90 % rise" in t and t.endswith(" mm") for t in texts)
