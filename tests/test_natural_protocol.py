"""The natural-image protocol of issue 16: 8-bit colour/grey loading, the one seeded noisy test-set generator,
the Poisson level on Kodak checked against an independent computation, and bundle evaluation and
docs/results.md (benchmarks/reproduce_tables.py) giving the same numbers for the same checkpoint and seed."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import load_script, one_thread_fixture
from conftest import REPO_ROOT, shared_path
from PIL import Image

from ldct_invrep.data.natural import load_image_8bit
from ldct_invrep.data.noisy_sets import noisy_test_set, poisson_peak
from ldct_invrep.errors import InputError
from ldct_invrep.natural_metrics import natural_image_metrics

_one_thread = one_thread_fixture()


def _write(folder: Path, n: int, shape: tuple[int, ...], seed: int) -> Path:
    """``n`` random 8-bit PNGs (grey, or RGB when ``shape`` has 3 entries) covering the full 0-255 range."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"img{i:03d}.png")
    return folder


# --------------------------------------------------------------------------------------------- loading
def test_load_image_8bit_colour_and_grey(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(rgb[..., 1]).save(tmp_path / "g.png")
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(tmp_path / "deep.png")
    colour = load_image_8bit(tmp_path / "c.png", 3)
    assert colour.shape == (3, 5, 7) and colour.dtype == np.float32
    np.testing.assert_array_equal(np.round(colour * 255).astype(np.uint8), np.moveaxis(rgb, -1, 0))
    grey = load_image_8bit(tmp_path / "c.png", 1)  # rounded BT.601 luma, 8-bit values
    luma = np.round(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2])
    np.testing.assert_array_equal(grey[0] * 255, luma.astype(np.float32))
    repeated = load_image_8bit(tmp_path / "g.png", 3)  # a grey file on three channels, as PIL convert("RGB")
    assert all(np.array_equal(repeated[c], repeated[0]) for c in range(3))
    with pytest.raises(InputError, match="deep.png: not an 8-bit image"):
        load_image_8bit(tmp_path / "deep.png", 3)
    with pytest.raises(InputError, match="channels must be 1"):
        load_image_8bit(tmp_path / "c.png", 2)


# --------------------------------------------------------------------------------------------- generator
def test_noisy_test_set_is_seeded_per_image_and_8_bit(tmp_path: Path) -> None:
    folder = _write(tmp_path / "set", 3, (20, 24, 3), seed=1)
    full = noisy_test_set(folder, "awgn", 25, seed=4)
    again = noisy_test_set(folder, "awgn", 25, seed=4)
    first = noisy_test_set(folder, "awgn", 25, seed=4, max_images=1)
    other = noisy_test_set(folder, "awgn", 25, seed=5)
    assert [t.name for t in full] == ["img000.png", "img001.png", "img002.png"] and full[0].noisy.shape == (3, 20, 24)
    assert all(np.array_equal(a.noisy, b.noisy) for a, b in zip(full, again))
    assert np.array_equal(first[0].noisy, full[0].noisy)  # image i's noise does not depend on the others
    assert not np.array_equal(other[0].noisy, full[0].noisy)
    levels = full[0].noisy * 255
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)  # rounded to 8 bits, as saved PNGs
    residual = np.concatenate([(t.noisy - t.clean).ravel() for t in full]) * 255
    assert 20 < residual.std() < 25  # sigma 25, a little less where clipping to [0, 1] bites
    poisson = noisy_test_set(folder, "poisson", None, seed=4)
    assert {t.peak for t in poisson} == {256.0} and full[0].peak is None
    with pytest.raises(InputError, match="expected one of"):
        noisy_test_set(folder, "speckle", None)


@pytest.mark.shared_data
def test_poisson_input_level_on_kodak_matches_an_independent_computation() -> None:
    """The paper's Poisson protocol on Kodak24 colour: scikit-image's rule on the 8-bit values gives a peak of 256
    and an input PSNR near 28-29 dB. Recomputed here from the PNG bytes with numpy's Poisson generator (other
    seeds), the level must agree to 0.05 dB; a float grey conversion would have given almost no noise."""
    folder = shared_path("kodak24")
    ours = noisy_test_set(folder, "poisson", None, seed=0, channels=3, max_images=3)
    for i, item in enumerate(ours):
        with Image.open(folder / item.name) as im:
            x = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
        peak = 2.0 ** math.ceil(math.log2(len(np.unique(x))))
        counts = np.random.default_rng(1000 + i).poisson(x * peak)
        noisy = np.round(np.clip(counts / peak, 0.0, 1.0) * 255.0) / 255.0
        independent = 10 * math.log10(1.0 / np.mean((noisy - x) ** 2))
        level = natural_image_metrics(item.noisy, item.clean).psnr
        assert item.peak == peak == 256.0
        assert level == pytest.approx(independent, abs=0.05), item.name
        assert 26.0 < level < 31.0, f"{item.name}: Poisson input at {level:.2f} dB"
        grey_float = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])
        assert poisson_peak(grey_float) > 4096  # the trap the 8-bit protocol avoids: weak noise


# --------------------------------------------------------------------------------------------- one number
def _reproduce_tables():
    return load_script("benchmarks/reproduce_tables.py")


def _bundle_raw(folder: Path, metric: str) -> dict[str, float]:
    """Per-image values of a MetricsSaver ``<metric>_raw.csv`` (tab separated, first row a header)."""
    lines = (folder / f"{metric}_raw.csv").read_text().strip().splitlines()[1:]
    return {row.split("\t")[0]: float(row.split("\t")[1]) for row in lines}


def _report_rows(csv_file: Path) -> dict[str, dict[str, float]]:
    with open(csv_file, newline="") as f:
        return {r["image"]: {"psnr": float(r["psnr"]), "ssim": float(r["ssim"])} for r in csv.DictReader(f) if r["method"] == "lir"}


@pytest.mark.slow
def test_bundle_evaluation_and_report_score_the_same_numbers(tmp_path: Path) -> None:
    """One freshly initialised (then perturbed, so not the identity) colour checkpoint, seed 0: the natural bundles'
    evaluate.json and reproduce_tables.py Tables 1 and 2 give the same per-image PSNR and SSIM."""
    from monai.bundle import run

    from ldct_invrep.networks import LIRNet
    from ldct_invrep.recipes import export_restorer, lir_config

    data = tmp_path / "shared"
    for name, shape, seed in (("cbsd68", (40, 52, 3), 1), ("kodak24", (44, 36, 3), 2), ("set12", (40, 40), 3)):
        _write(data / name, 2, shape, seed)
    arch = {"preset": "lite", "base_channels": 8, "n_res": 1}
    torch.manual_seed(0)
    net = LIRNet(lir_config(in_channels=3, **arch))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    models = tmp_path / "bundle" / "models"
    export_restorer(net, models, {"preset": "lite", "iterations": 0, "training_data": "none (freshly initialised)"})
    for bundle in ("natural_awgn", "natural_poisson"):
        run(run_id="run", config_file=str(REPO_ROOT / "bundles" / bundle / "configs" / "evaluate.json"), logging_file=False,
            bundle_root=str(tmp_path / "bundle"), dataset_dir=str(data), output_dir=str(tmp_path / "eval" / bundle), **arch)
    out = tmp_path / "docs" / "results.md"
    ckpt = str(models / "model.pt")
    assert _reproduce_tables().main(["--out", str(out), "--shared-data", str(data), "--tables", "1", "2", "--natural-awgn", ckpt,
                                     "--natural-poisson", ckpt, "--no-natural-bm3d", "--seed", "0", "--quiet"]) == 0
    pairs = [(tmp_path / "eval" / "natural_awgn" / f"bsd68_sigma{s}", out.parent / "results" / f"table1_sigma{s}" / "results.csv")
             for s in (25, 35, 50)]
    pairs.append((tmp_path / "eval" / "natural_poisson" / "kodak24_poisson", out.parent / "results" / "table2_poisson" / "results.csv"))
    for bundle_dir, report_csv in pairs:
        psnr, ssim, report = _bundle_raw(bundle_dir, "psnr_0_255"), _bundle_raw(bundle_dir, "ssim_0_1"), _report_rows(report_csv)
        assert set(psnr) == set(report) == {"img000.png", "img001.png"}
        for image, r in report.items():
            assert r["psnr"] == pytest.approx(psnr[image], abs=1e-4), (bundle_dir.name, image)  # the CSV keeps 4 decimals
            assert r["ssim"] == pytest.approx(ssim[image], abs=1e-6), (bundle_dir.name, image)
        assert 5 < np.mean(list(psnr.values())) < 40
    doc = out.read_text()
    assert "## Table 1: AWGN on CBSD68 (colour BSD68)" in doc and "## Table 2: Poisson noise on Kodak24 (colour)" in doc
    assert "peak of 256" in doc and "seed 0" in doc
