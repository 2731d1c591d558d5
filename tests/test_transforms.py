"""HU windowing (invertible MONAI transform, numpy/torch helpers) and natural-image noise transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureTyped, Invertd
from skimage.util import random_noise

from ldct_invrep.errors import InputError
from ldct_invrep.transforms import (
    NETWORK_HU_RANGE,
    WINDOWS,
    HUWindowd,
    RandBlindGaussianNoised,
    RandPoissonNoised,
    add_poisson_noise,
    hu_to_net,
    net_to_hu,
    window_from_name_or_range,
)

# ----------------------------------------------------------------------------------------------- windows


@pytest.mark.parametrize(
    "name,level,width",
    [
        ("abdomen", 40, 400),
        ("soft_tissue", 40, 400),
        ("lung", -600, 1500),
        ("bone", 400, 1800),
        ("brain", 40, 80),
        ("liver", 30, 150),
        ("mediastinum", 50, 350),
    ],
)
def test_named_windows_level_width(name, level, width):
    lo, hi = WINDOWS[name]
    assert (lo + hi) / 2 == level and hi - lo == width


def test_full_and_metric_windows():
    assert WINDOWS["full"] == NETWORK_HU_RANGE == (-1024.0, 3072.0)
    assert WINDOWS["abdomen"] == (-160.0, 240.0)


def test_window_from_name_or_range():
    assert window_from_name_or_range("Abdomen") == (-160.0, 240.0)
    assert window_from_name_or_range("soft-tissue") == (-160.0, 240.0)
    assert window_from_name_or_range((-100, 300)) == (-100.0, 300.0)
    with pytest.raises(InputError, match="unknown window"):
        window_from_name_or_range("pelvis")
    with pytest.raises(InputError, match="lo < hi"):
        window_from_name_or_range((300, -100))
    with pytest.raises(InputError, match="lo < hi"):
        window_from_name_or_range((1, 2, 3))
    with pytest.raises(InputError, match="lo < hi"):
        window_from_name_or_range(5)  # type: ignore[arg-type]


def test_one_window_registry_for_transforms_and_metrics():
    """metrics resolves every WINDOWS name (case-insensitive) to the same (lo, hi); bad names fail alike."""
    from ldct_invrep.metrics import METRIC_WINDOWS, resolve_window

    for name, (lo, hi) in WINDOWS.items():
        win = resolve_window(name.upper())
        assert (win.name, win.lo, win.hi) == (name, lo, hi)
    assert all(METRIC_WINDOWS[k] == WINDOWS[k] for k in METRIC_WINDOWS) and set(METRIC_WINDOWS) == {"abdomen", "full"}
    with pytest.raises(InputError, match="unknown window"):
        resolve_window("pelvis")


def test_hu_to_net_and_back_numpy_and_torch():
    hu = np.array([-3000.0, -1024.0, 0.0, 1024.0, 3072.0, 5000.0], dtype=np.float32)
    net = hu_to_net(hu)
    np.testing.assert_allclose(net, [-1.0, -1.0, -0.5, 0.0, 1.0, 1.0], atol=1e-6)
    assert isinstance(net, np.ndarray) and net.dtype == np.float32
    back = net_to_hu(net)
    np.testing.assert_allclose(back, np.clip(hu, -1024, 3072), atol=1e-3)
    t = torch.tensor(hu)
    net_t = hu_to_net(t)
    assert isinstance(net_t, torch.Tensor)
    np.testing.assert_allclose(net_t.numpy(), net, atol=1e-6)
    np.testing.assert_allclose(net_to_hu(net_t).numpy(), back, atol=1e-3)
    # integer input becomes float; a named window and a custom output range
    assert hu_to_net(np.array([0, 40], dtype=np.int16), "abdomen", (0, 1)).tolist() == pytest.approx([0.4, 0.5])


def test_huwindowd_round_trip_inside_window_and_clipping_outside():
    rng = np.random.default_rng(0)
    hu = rng.uniform(-1500, 4000, size=(1, 32, 32)).astype(np.float32)
    t = HUWindowd("image", window="full")
    out = t({"image": hu})
    img = out["image"]
    assert isinstance(img, MetaTensor) and img.dtype == torch.float32
    assert float(img.min()) == -1.0 and float(img.max()) == 1.0  # clipped
    inside = (hu > -1024) & (hu < 3072)
    np.testing.assert_allclose(img.numpy()[inside], (hu[inside] + 1024) / 4096 * 2 - 1, atol=1e-6)
    restored = t.inverse(out)["image"]
    np.testing.assert_allclose(restored.numpy()[inside], hu[inside], atol=2e-3)
    np.testing.assert_array_equal(restored.numpy()[hu <= -1024], -1024.0)
    np.testing.assert_array_equal(restored.numpy()[hu >= 3072], 3072.0)
    assert len(restored.applied_operations) == 0  # the inverse popped its trace entry


def test_huwindowd_custom_window_and_out_range():
    hu = torch.tensor([[[-200.0, -160.0, 40.0, 240.0, 500.0]]])
    t = HUWindowd("image", window="abdomen", out_range=(0.0, 1.0))
    out = t({"image": hu})["image"]
    np.testing.assert_allclose(out.numpy().ravel(), [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
    info = out.applied_operations[-1]["extra_info"]
    assert info["window"] == [-160.0, 240.0] and info["out_range"] == [0.0, 1.0]


def test_invertd_maps_a_prediction_back_to_hu():
    hu = np.array([[[-2000.0, -160.0, 0.0, 40.0, 240.0, 900.0]]], dtype=np.float32)
    pre = Compose([EnsureTyped("image"), HUWindowd("image", window="abdomen")])
    data = pre({"image": hu})
    data["pred"] = data["image"] * 0.5  # a "network output": halves the distance to the window centre (40 HU)
    post = Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=False)
    out = post(data)
    np.testing.assert_allclose(out["pred"].numpy().ravel(), [-60.0, -60.0, 20.0, 40.0, 140.0, 140.0], atol=1e-3)


# ------------------------------------------------------------------------------------------------- noise


@pytest.fixture
def image() -> np.ndarray:
    """A smooth 1 x 64 x 64 image in [0.25, 0.75] on the 8-bit grid (so clipping never triggers)."""
    y, x = np.mgrid[:64, :64]
    return (np.round((0.5 + 0.25 * np.sin(x / 7.0) * np.cos(y / 5.0)) * 255) / 255)[None].astype(np.float32)


def test_blind_gaussian_sigma_within_range_and_matches_noise(image):
    t = RandBlindGaussianNoised("img", sigma_range=(5, 50), clip=False)
    t.set_random_state(0)
    sigmas = []
    for _ in range(20):
        out = t({"img": image})["img"]
        sigma = t.sigmas["img"]
        assert 5.0 <= sigma <= 50.0
        measured = float((out - image).std()) * 255.0
        assert measured == pytest.approx(sigma, rel=0.05)
        sigmas.append(sigma)
    assert max(sigmas) - min(sigmas) > 10.0  # blind: sigma varies from image to image


def test_blind_gaussian_fixed_sigma_seeded_and_clipped(image):
    t = RandBlindGaussianNoised("img", sigma_range=(50, 50))
    t.set_random_state(3)
    a = t({"img": torch.from_numpy(image)})["img"]
    assert isinstance(a, torch.Tensor) and a.dtype == torch.float32
    assert t.sigmas["img"] == 50.0
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert float(a.min()) == 0.0 or float(a.max()) == 1.0  # sigma 50 on [0.25, 0.75] does reach a bound
    b = t({"img": torch.from_numpy(image)})["img"]
    assert not torch.equal(a, b)
    t.set_random_state(3)
    torch.testing.assert_close(t({"img": torch.from_numpy(image)})["img"], a, rtol=0, atol=0)


def test_blind_gaussian_rejects_bad_range():
    with pytest.raises(ValueError, match="sigma_range"):
        RandBlindGaussianNoised("img", sigma_range=(50, 5))


@pytest.mark.parametrize("seed", [0, 12345])
def test_poisson_matches_scikit_image(image, seed):
    np.testing.assert_array_equal(add_poisson_noise(image, seed), random_noise(image, mode="poisson", rng=seed))
    signed = image * 2 - 1  # the signed path of random_noise
    np.testing.assert_array_equal(add_poisson_noise(signed, seed), random_noise(signed, mode="poisson", rng=seed))
    as_uint8 = np.round(image * 255).astype(np.uint8)
    np.testing.assert_array_equal(add_poisson_noise(as_uint8, seed), random_noise(as_uint8, mode="poisson", rng=seed))


def test_poisson_transform_seeded_range_and_equal_to_random_noise(image):
    t = RandPoissonNoised("img")
    t.set_random_state(7)
    out = t({"img": image})["img"]
    assert out.dtype == np.float32 and out.shape == image.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.array_equal(out, image)
    np.testing.assert_array_equal(out, random_noise(image, mode="poisson", rng=t.seed).astype(np.float32))
    # counts are image * vals with vals = 2 ** ceil(log2(unique levels)) = 128 here: std sqrt(x / vals)
    vals = 2 ** np.ceil(np.log2(len(np.unique(image))))
    assert vals == 128
    assert float((out - image).std()) == pytest.approx(float(np.sqrt(image.mean() / vals)), rel=0.1)
    again = t({"img": image})["img"]
    assert not np.array_equal(again, out)
    t.set_random_state(7)
    np.testing.assert_array_equal(t({"img": image})["img"], out)


def test_center_crop_matches_index_arithmetic():
    from ldct_invrep.transforms import center_crop

    a = np.arange(300 * 200, dtype=np.float32).reshape(300, 200)
    out = center_crop(a, 128)
    assert out.shape == (128, 128) and out.dtype == np.float32
    np.testing.assert_array_equal(out, a[86:214, 36:164])
    assert center_crop(a, 256).shape == (256, 200)  # the short side stays whole
    np.testing.assert_array_equal(center_crop(a, None), a)
    rgb = np.stack([a, a + 1, a + 2]).astype(np.uint8)  # channel-first colour image
    np.testing.assert_array_equal(center_crop(rgb, 128), rgb[:, 86:214, 36:164])


def test_random_transforms_carry_the_monai_rand_prefix():
    import importlib
    import pkgutil

    from monai.transforms import RandomizableTransform

    import ldct_invrep.transforms as package

    found = {}
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, RandomizableTransform) and value.__module__.startswith(package.__name__):
                found[f"{info.name}.{name}"] = value
    assert {cls.__name__ for cls in found.values()} >= {"RandBlindGaussianNoised", "RandPoissonNoised", "RandSimulateLowDosed"}
    # every random transform under its MONAI ``Rand`` name only: no alias without the prefix (issue 14)
    assert all(name.rpartition(".")[2] == cls.__name__ and cls.__name__.startswith("Rand") for name, cls in found.items()), found
