"""Reference-noise blending (ldct_invrep/transforms/reference_noise.py): the weight, the MMSE claim on a
phantom whose noise is known, and the denoiser and MONAI transform that apply it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from ldct_invrep.inference import SliceDenoiser
from ldct_invrep.networks import LIRNet, get_config
from ldct_invrep.transforms.lowdose import scan_noise_level
from ldct_invrep.transforms.reference_noise import (
    ReferenceNoiseBlendd,
    blend_to_reference_noise,
    reference_noise_weight,
)


def _phantom(seed: int, reference_std: float, extra_std: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, normal dose = clean + n_r, low dose = normal dose + n_e): a 40 HU disc in air, white noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:256, :256]
    clean = np.where((yy - 128) ** 2 + (xx - 128) ** 2 < 110**2, 40.0, -1000.0).astype(np.float32)
    normal = clean + rng.normal(0, reference_std, clean.shape).astype(np.float32)
    low = normal + rng.normal(0, extra_std, clean.shape).astype(np.float32)
    return clean, normal, low


def test_weight_is_the_squared_noise_ratio_capped_at_one() -> None:
    assert reference_noise_weight(20.0, 10.0) == pytest.approx(0.25)
    assert reference_noise_weight(40.0, 10.0) == pytest.approx(1 / 16)
    assert reference_noise_weight(5.0, 10.0) == 1.0
    assert reference_noise_weight(None, 10.0) == reference_noise_weight(20.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="reference_noise_hu"):
        reference_noise_weight(20.0, -1.0)


def test_blend_comes_closer_to_the_normal_dose_image_than_input_or_noise_free_estimate() -> None:
    # the MMSE argument of the module docstring: with an ideal (noise-free) restoration c, c + a (x - c) is nearer
    # the normal-dose image c + n_r than both c and x, for a measured with the module's own noise statistic
    clean, normal, low = _phantom(0, reference_std=12.0, extra_std=12.0)
    measured = scan_noise_level(low)
    out, a = blend_to_reference_noise(low, clean, reference_noise_hu=measured * np.sqrt(0.5))
    assert a == pytest.approx(0.5, abs=1e-6)
    body = clean > -500
    mse = {name: float(((im - normal)[body] ** 2).mean()) for name, im in (("blend", out), ("c", clean), ("x", low))}
    assert mse["blend"] < 0.6 * mse["c"] and mse["blend"] < 0.6 * mse["x"], mse
    np.testing.assert_allclose(out, clean + np.float32(a) * (low - clean), rtol=0, atol=1e-4)


def test_no_reference_noise_or_no_soft_tissue_keeps_the_restoration() -> None:
    clean, _, low = _phantom(1, 10.0, 20.0)
    out, a = blend_to_reference_noise(low, clean, 0.0)
    assert a == 0.0 and out is not None and np.array_equal(out, clean)
    air = np.full((64, 64), -1000.0, np.float32)  # nothing to measure the noise in
    out, a = blend_to_reference_noise(air + 1, air, 10.0)
    assert a == 0.0 and np.array_equal(out, air)
    with pytest.raises(ValueError, match="one shape"):
        blend_to_reference_noise(low, clean[:10], 10.0)


def _restorer():
    torch.manual_seed(0)
    net = LIRNet(get_config("lite", base_channels=4, n_res=1, noise_channels=4, dis_channels=4))
    torch.nn.init.normal_(net.generator_y.model[-1].conv.weight, std=0.05)
    return net.restorer().eval()


def test_denoiser_takes_reference_noise_from_the_header_and_blends_each_slice() -> None:
    restorer = _restorer()
    _, _, low = _phantom(2, 10.0, 25.0)
    stack = np.stack([low, np.full_like(low, -1000.0)])
    plain = SliceDenoiser.from_header(restorer, {}).denoise(stack)
    denoiser = SliceDenoiser.from_header(restorer, {"reference_noise_hu": 10.0})
    assert denoiser.reference_noise_hu == 10.0
    assert SliceDenoiser.from_header(restorer, {"reference_noise_hu": 10.0}, reference_noise_hu=0.0).reference_noise_hu == 0.0
    out = denoiser.denoise(stack)
    expected, a = blend_to_reference_noise(low, plain[0], 10.0)
    assert 0.05 < a < 0.5
    np.testing.assert_allclose(out[0], expected, atol=1e-3)
    np.testing.assert_array_equal(out[1], plain[1])  # air only: nothing measured, nothing blended
    with pytest.raises(ValueError, match="reference_noise_hu"):
        SliceDenoiser(restorer, reference_noise_hu=-5.0)


def test_monai_transform_matches_the_function_and_keeps_metadata() -> None:
    clean, _, low = _phantom(3, 10.0, 20.0)
    affine = torch.diag(torch.tensor([0.7, 0.7, 1.0]))
    data = {"image": MetaTensor(torch.from_numpy(low)[None], affine=affine), "pred": MetaTensor(torch.from_numpy(clean)[None], affine=affine)}
    out = ReferenceNoiseBlendd("pred", input_key="image", reference_noise_hu=10.0)(data)
    expected, a = blend_to_reference_noise(low, clean, 10.0)
    assert a > 0 and isinstance(out["pred"], MetaTensor) and torch.equal(out["pred"].affine, affine)
    np.testing.assert_allclose(out["pred"][0].numpy(), expected, atol=1e-5)
    assert torch.equal(out["image"], data["image"])


@pytest.mark.parametrize("channel", [True, False])
def test_monai_transform_blends_a_volume_slice_by_slice(channel: bool) -> None:
    """A MONAI (1, x, y, z) / (x, y, z) volume: each z-slice blended as its (row, column) image, with its own
    weight, and pixels below -1024 HU left out of the noise measurement, like ``SliceDenoiser``."""
    slices = [_phantom(10 + k, 10.0, extra) for k, extra in enumerate((5.0, 20.0, 40.0))]
    clean = np.stack([c[::2] for c, _, _ in slices])  # (z, rows, columns): 128 x 256 slices
    low = np.stack([x[::2] for _, _, x in slices])
    low[:, :6] = -3024.0  # padding outside the field of view
    to_monai = (lambda a: a.T[None]) if channel else (lambda a: a.T)  # noqa: E731
    affine = torch.diag(torch.tensor([0.7, 0.7, 2.0, 1.0]))
    data = {
        "image": MetaTensor(torch.from_numpy(np.ascontiguousarray(to_monai(low))), affine=affine),
        "pred": MetaTensor(torch.from_numpy(np.ascontiguousarray(to_monai(clean))), affine=affine),
    }
    out = ReferenceNoiseBlendd("pred", input_key="image", reference_noise_hu=10.0)(data)["pred"]
    assert isinstance(out, MetaTensor) and out.shape == data["pred"].shape and torch.equal(out.affine, affine)
    got = (out[0] if channel else out).numpy().T  # back to (z, rows, columns)
    weights = []
    for k in range(3):
        expected, a = blend_to_reference_noise(low[k], clean[k], 10.0, padding=low[k] < -1024)
        np.testing.assert_allclose(got[k], expected, atol=1e-4)
        weights.append(a)
    assert weights[0] > weights[1] > weights[2] > 0  # the noisier the slice, the less of it comes back
    plain = ReferenceNoiseBlendd("pred", input_key="image", reference_noise_hu=10.0)(
        {"image": data["image"].as_tensor(), "pred": data["pred"].as_tensor()}
    )["pred"]
    np.testing.assert_array_equal(plain.numpy(), out.numpy())  # a plain tensor reads as the same layout
    off = ReferenceNoiseBlendd("pred", input_key="image", reference_noise_hu=0.0)(data)["pred"]
    assert torch.equal(off, data["pred"])
