"""Baselines: BM3D in the network window, RED-CNN shape and initialisation, the input method in the one registry."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from ldct_invrep.baselines import (
    REDCNN,
    blind_sigma_hu,
    bm3d_blind,
    bm3d_denoise,
    estimate_sigma_hu,
    hu_sigma_to_window,
    input_method,
    window_sigma_to_hu,
)
from ldct_invrep.errors import InputError

SIGMA_HU = 30.0
DISC = (slice(50, 78), slice(40, 60))  # a flat 28 x 20 region inside the soft-tissue disc


@pytest.fixture(scope="module")
def phantom() -> tuple[np.ndarray, np.ndarray]:
    """128 x 128: -700 HU background, a 40 HU disc with a 400 HU insert, plus white noise of 30 HU.

    The background is not air so that no noise is clipped at -1024 HU (the window's lower end).
    """
    yy, xx = np.mgrid[:128, :128]
    clean = np.full((128, 128), -700.0)
    clean[(yy - 64) ** 2 + (xx - 64) ** 2 < 45**2] = 40.0
    clean[(yy - 64) ** 2 + (xx - 84) ** 2 < 10**2] = 400.0
    noisy = clean + np.random.default_rng(0).normal(0.0, SIGMA_HU, clean.shape)
    return noisy, clean


def test_sigma_conversion_hand_checked() -> None:
    assert hu_sigma_to_window(40.0, "abdomen") == pytest.approx(0.1)  # 40 / 400
    assert hu_sigma_to_window(40.0, "full") == pytest.approx(40.0 / 4096.0)
    assert hu_sigma_to_window(40.0, (-1000, 1000)) == pytest.approx(0.02)
    assert window_sigma_to_hu(0.05, "abdomen") == pytest.approx(20.0)
    assert window_sigma_to_hu(hu_sigma_to_window(25.0, "full"), "full") == pytest.approx(25.0)


def test_estimated_sigma_is_close_to_the_true_sigma(phantom) -> None:
    noisy, _ = phantom
    assert estimate_sigma_hu(noisy, "full") == pytest.approx(SIGMA_HU, rel=0.1)
    # the same noise level comes out in HU whatever window carries the estimate (no clipping in 2 sigma)
    assert estimate_sigma_hu(noisy, (-900, 600)) == pytest.approx(estimate_sigma_hu(noisy, "full"), rel=0.02)


def test_bm3d_reduces_noise_on_the_phantom(phantom) -> None:
    noisy, clean = phantom
    out = bm3d_denoise(noisy)  # sigma estimated, full window
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert out[DISC].std() < 0.25 * noisy[DISC].std()
    rmse_in, rmse_out = (np.sqrt(np.mean((a - clean) ** 2)) for a in (noisy, out))
    assert rmse_out < 0.5 * rmse_in
    assert abs(out[DISC].mean() - 40.0) < 5.0  # no bias in the flat region


def test_bm3d_gets_sigma_in_window_units(monkeypatch, phantom) -> None:
    """With a stand-in bm3d: the image handed over is the window scaled to [0, 1], sigma is sigma_hu / range."""
    noisy, _ = phantom
    seen: dict = {}

    class FakeBM3D:
        @staticmethod
        def bm3d(z, sigma_psd, profile="np"):
            seen.update(z=z.copy(), sigma=sigma_psd, profile=profile)
            return z

    monkeypatch.setitem(sys.modules, "bm3d", FakeBM3D)
    out = bm3d_denoise(noisy, sigma_hu=20.0, window="abdomen")
    assert seen["sigma"] == pytest.approx(20.0 / 400.0)
    np.testing.assert_allclose(seen["z"], (np.clip(noisy, -160, 240) + 160) / 400)
    # identity stand-in: the output is the input clipped to the window, back in HU
    np.testing.assert_allclose(out, np.clip(noisy, -160, 240), atol=1e-3)
    vol = bm3d_denoise(np.stack([noisy, noisy]), sigma_hu=20.0, window="abdomen")
    assert vol.shape == (2, *noisy.shape)


def _body(noise_hu: float, size: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    clean = np.where((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.45 * size) ** 2, 40.0, -1000.0)
    return clean + np.random.default_rng(1).normal(0.0, noise_hu, clean.shape)


def test_blind_sigma_follows_each_slice_noise(monkeypatch) -> None:
    """Blind BM3D's sigma is factor x the slice's own noise level: twice the noise, twice the sigma."""
    low, high = blind_sigma_hu(_body(30.0), 1.0), blind_sigma_hu(_body(60.0), 1.0)
    assert 15.0 < low < 35.0 and high / low == pytest.approx(2.0, rel=0.05)
    assert blind_sigma_hu(_body(30.0), 2.5) == pytest.approx(2.5 * low)
    seen: dict = {}

    class FakeBM3D:
        @staticmethod
        def bm3d(z, sigma_psd, profile="np"):
            seen.setdefault("sigma", []).append(sigma_psd)
            return z

    monkeypatch.setitem(sys.modules, "bm3d", FakeBM3D)
    bm3d_blind(np.stack([_body(30.0), _body(60.0)]), 2.0)
    assert seen["sigma"] == pytest.approx([2.0 * low / 4096, 2.0 * high / 4096])  # per slice, full window
    air = np.full((64, 64), -700.0) + np.random.default_rng(0).normal(0, 20, (64, 64))
    with pytest.warns(UserWarning, match="too little flat soft tissue"):
        assert blind_sigma_hu(air, 1.0) == pytest.approx(estimate_sigma_hu(air))
    with pytest.raises(InputError, match="factor"):
        blind_sigma_hu(_body(30.0), 0.0)


def test_missing_bm3d_gives_a_clear_error(monkeypatch, phantom) -> None:
    monkeypatch.setitem(sys.modules, "bm3d", None)  # import bm3d -> ImportError
    with pytest.raises(ImportError, match=r"ldct-invrep\[baselines\]"):
        bm3d_denoise(phantom[0], sigma_hu=10.0)


def test_bm3d_bad_input(phantom) -> None:
    with pytest.raises(InputError):
        bm3d_denoise(phantom[0], sigma_hu=-1.0)
    with pytest.raises(InputError):
        estimate_sigma_hu(np.zeros((2, 3, 4, 5)))


@pytest.mark.parametrize("size", [(37, 41), (21, 64), (55, 55)])
def test_redcnn_keeps_the_size_and_starts_at_identity(size) -> None:
    torch.manual_seed(0)
    net = REDCNN()
    x = torch.randn(2, 1, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x)  # zero last deconvolution + outer shortcut = identity


def test_redcnn_follows_the_paper_shape() -> None:
    net = REDCNN()
    # 5 conv + 5 deconv, 96 channels, 5 x 5: 2400+96 + 4 x (96*96*25+96) twice + (96*25+1) = 1 848 865
    assert len(net.encoder) == 5 and len(net.decoder) == 5
    per_hidden = 96 * 96 * 25 + 96
    assert sum(p.numel() for p in net.parameters()) == 2 * (25 * 96 + 96) - 95 + 8 * per_hidden
    assert net.shortcut_levels == frozenset({0, 2, 4})
    assert net.min_size == 21
    with pytest.raises(ValueError, match="at least 21"):
        net(torch.zeros(1, 1, 20, 64))


def test_redcnn_learns_away_from_identity() -> None:
    torch.manual_seed(0)
    net = REDCNN(channels=4, identity_init=True)
    x = torch.randn(2, 1, 21, 21)
    target = 0.5 * x  # the residual to learn: -x / 2
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(0.25 * float((x**2).mean()), rel=1e-5)  # identity at the start
    assert losses[2] < losses[1] < losses[0]
    # at identity only the last deconvolution gets a gradient; after a step it reaches the encoder too
    assert net.encoder[0].weight.grad is not None and net.encoder[0].weight.grad.abs().sum() > 0
    # without identity init the output differs from the input; with output_relu it is non-negative
    y = REDCNN(channels=8, identity_init=False, output_relu=True)(x)
    assert not torch.allclose(y, x) and (y >= 0).all()


def test_baselines_are_built_by_the_one_registry() -> None:
    from ldct_invrep.evaluation import CT_METHODS, build_methods

    assert {"input", "bm3d", "bm3d_blind", "redcnn"} <= set(CT_METHODS)
    img = np.arange(12.0).reshape(3, 4)
    out = build_methods(["input"])["input"](img)
    np.testing.assert_array_equal(out, img)
    assert out is not img and out.dtype == np.float32
    assert input_method(img) is not img
    with pytest.raises(InputError, match="unknown"):
        build_methods(["nope"])
