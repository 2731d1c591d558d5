"""Supervised RED-CNN training (paper Table 3's paired reference) with monai.engines.SupervisedTrainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ldct_invrep.baselines.train_redcnn import (
    extract_paired_patches,
    load_redcnn,
    redcnn_method,
    train_redcnn,
)
from ldct_invrep.errors import InputError


def _tiny_pairs(n: int = 32, size: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-constant patches in network range; noisy = clean + a 0.1 offset + white noise (std 0.02)."""
    rng = np.random.default_rng(seed)
    clean = np.empty((n, 1, size, size), dtype=np.float32)
    for i in range(n):
        level = rng.uniform(-0.6, -0.3)
        clean[i, 0] = level
        r, c = rng.integers(0, size // 2, 2)
        clean[i, 0, r : r + size // 2, c : c + size // 2] = level + 0.2
    noisy = clean + 0.1 + rng.normal(0, 0.02, clean.shape).astype(np.float32)
    return noisy, clean


def test_a_few_iterations_lower_the_loss_and_save_a_checkpoint(tmp_path) -> None:
    noisy, clean = _tiny_pairs()
    result = train_redcnn(noisy, clean, iterations=20, batch=8, lr=3e-3, seed=0, channels=8,
                          out=tmp_path / "redcnn.pt", training_data="tiny synthetic")
    assert len(result.losses) == 20
    first, last = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert last < 0.5 * first, (first, last)

    model, header = load_redcnn(tmp_path / "redcnn.pt")
    assert header["iterations"] == 20 and header["training_data"] == "tiny synthetic"
    assert header["arch"]["channels"] == 8 and header["training"]["loss"].startswith("MSE")
    x = torch.from_numpy(noisy[:2])
    with torch.no_grad():
        assert torch.allclose(model(x), result.model(x))


def test_a_time_budget_stops_training_and_the_header_says_so(tmp_path) -> None:
    noisy, clean = _tiny_pairs(16)
    result = train_redcnn(noisy, clean, iterations=50, batch=4, seed=0, channels=4, max_minutes=0.0,
                          out=tmp_path / "r.pt")
    assert len(result.losses) == 1  # stops after the first iteration past the budget
    header = load_redcnn(tmp_path / "r.pt")[1]
    assert header["iterations"] == 1 and header["training"]["planned_iterations"] == 50
    assert header["training"]["max_minutes"] == 0.0


def test_training_is_seeded() -> None:
    noisy, clean = _tiny_pairs(16)
    a = train_redcnn(noisy, clean, iterations=3, batch=4, seed=5, channels=4).losses
    b = train_redcnn(noisy, clean, iterations=3, batch=4, seed=5, channels=4).losses
    assert a == b


def test_bad_inputs_are_input_errors(tmp_path) -> None:
    noisy, clean = _tiny_pairs(4)
    with pytest.raises(InputError, match="differ"):
        train_redcnn(noisy, clean[:2], iterations=1)
    with pytest.raises(InputError, match="at least 21"):
        train_redcnn(noisy[..., :16, :16], clean[..., :16, :16], iterations=1, channels=4)
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="x.pt"):
        load_redcnn(tmp_path / "x.pt")


def test_patches_are_aligned_and_mostly_body() -> None:
    yy, xx = np.mgrid[:96, :96]
    clean = np.where((yy - 48) ** 2 + (xx - 48) ** 2 < 40**2, 40.0, -1024.0).astype(np.float32)
    noisy = clean + 7.0  # a constant offset: aligned patches differ by exactly 7 HU
    pn, pc = extract_paired_patches([noisy], [clean], patch_size=32, n_patches=20, seed=1)
    assert pn.shape == pc.shape == (20, 1, 32, 32)
    assert np.allclose(pn - pc, 7.0 / 4096 * 2, atol=1e-5)
    assert ((pc > (-900 + 1024) / 4096 * 2 - 1).mean(axis=(1, 2, 3)) >= 0.5).all()


def test_redcnn_method_is_hu_in_hu_out() -> None:
    model = torch.nn.Identity()
    hu = np.array([[-2000.0, 0.0], [100.0, 3000.0]], dtype=np.float32)
    out = redcnn_method(model)(hu)
    assert np.allclose(out, hu, atol=1e-3) and out[0, 0] == -2000.0


def test_area_weighted_patches_follow_slice_area() -> None:
    # a 400x400 slice of 100 HU and nine 64x64 slices of 0 HU: drawn per slice the large one gives 1 patch in
    # 10, drawn per pixel about 4 in 5 (400^2 against 9 x 64^2)
    slices = [np.full((400, 400), 100.0, np.float32)] + [np.zeros((64, 64), np.float32) for _ in range(9)]
    share = {}
    for weighted in (False, True):
        noisy, _ = extract_paired_patches(slices, slices, 64, 400, seed=0, min_tissue_fraction=0, area_weighted=weighted)
        share[weighted] = float((noisy.mean(axis=(1, 2, 3)) > noisy.min()).mean())
    assert abs(share[False] - 0.1) < 0.05
    assert abs(share[True] - 400**2 / (400**2 + 9 * 64**2)) < 0.06
