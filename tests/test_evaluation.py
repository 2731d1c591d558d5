"""Evaluation: per-image CSV, mean ± std Markdown naming window and data range, figures, method builders,
pair loaders (datalist, cache), natural-image noise conventions."""

from __future__ import annotations

import csv
import json
import math
import warnings

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from ldct_invrep.baselines import tune_bm3d_blind_factor, tune_bm3d_sigma
from ldct_invrep.baselines.bm3d_natural import anscombe_bm3d, infer_poisson_peak
from ldct_invrep.data.noisy_sets import poisson_peak
from ldct_invrep.errors import InputError
from ldct_invrep.evaluation import (
    EvaluationResult,
    build_methods,
    build_natural_methods,
    evaluate_methods,
    evaluate_natural,
    load_pairs_by_dose_from_cache,
    load_pairs_from_cache,
    load_pairs_from_datalist,
)
from ldct_invrep.metrics import compute_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _phantom(seed: int, size: int = 64, sigma: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    clean = np.full((size, size), -60.0, dtype=np.float32)  # inside the abdomen window: no clipped noise
    clean[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.4 * size) ** 2] = 40.0
    clean[(yy - size / 2) ** 2 + (xx - 0.65 * size) ** 2 < (0.1 * size) ** 2] = 120.0
    noisy = clean + np.random.default_rng(seed).normal(0, sigma, clean.shape).astype(np.float32)
    return noisy, clean


@pytest.fixture
def pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    return [(f"slice{i}", *_phantom(i)) for i in range(3)]


def _smooth(hu: np.ndarray) -> np.ndarray:
    """Gaussian smoothing, sigma 1 px"""
    return gaussian_filter(hu, 1.0)


def test_evaluate_methods_writes_csv_markdown_and_figures(tmp_path, pairs) -> None:
    methods = {"input": lambda x: x, "smooth": _smooth}
    result = evaluate_methods(pairs, methods, out_dir=tmp_path / "out", title="Phantom")
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert files == {"results.csv", "results.md", "figure.png", "figure_zoom.png"}
    assert (tmp_path / "out" / "figure.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "out" / "figure_zoom.png").read_bytes()[:8] == PNG_MAGIC

    with open(tmp_path / "out" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 2 * 2  # images x methods x windows
    assert set(rows[0]) >= {"image", "method", "window", "psnr", "ssim", "rmse_hu", "seconds", "data_range"}
    # each CSV value is the metric of that image in that window
    name, noisy, clean = pairs[1]
    want = compute_metrics(_smooth(noisy), clean, "full")[0]
    row = next(r for r in rows if r["image"] == name and r["method"] == "smooth" and r["window"] == "full")
    assert float(row["psnr"]) == pytest.approx(want.psnr, abs=1e-3)
    assert float(row["rmse_hu"]) == pytest.approx(want.rmse_hu, abs=1e-3)
    assert float(row["data_range"]) == 4096

    # the summary is mean ± std over images; smoothing beats the input on white noise
    s = result.summary("smooth", "abdomen")
    per_image = [compute_metrics(_smooth(n), c, "abdomen")[0].psnr for _, n, c in pairs]
    assert s["psnr"]["mean"] == pytest.approx(np.mean(per_image), abs=1e-6)
    assert s["psnr"]["std"] == pytest.approx(np.std(per_image), abs=1e-6)
    assert s["psnr"]["mean"] > result.summary("input", "abdomen")["psnr"]["mean"] + 3

    md = (tmp_path / "out" / "results.md").read_text()
    assert "# Phantom" in md
    assert "[-160, 240] HU, data range 400 HU" in md and "[-1024, 3072] HU, data range 4096 HU" in md
    assert "- **smooth**: Gaussian smoothing, sigma 1 px" in md
    assert f"{s['psnr']['mean']:.2f} ± {s['psnr']['std']:.2f}" in md


def test_existing_outputs_are_refused_before_any_work(tmp_path, pairs) -> None:
    evaluate_methods(pairs[:1], {"input": lambda x: x}, out_dir=tmp_path, figure=False)
    calls = []
    with pytest.raises(InputError, match="results.csv"):
        evaluate_methods(pairs, {"input": lambda x: calls.append(1) or x}, out_dir=tmp_path, figure=False)
    assert calls == []
    evaluate_methods(pairs, {"input": lambda x: x}, out_dir=tmp_path, figure=False, overwrite=True)
    assert len((tmp_path / "results.csv").read_text().strip().split("\n")) == 1 + 3 * 2


def test_a_failing_method_leaves_no_output(tmp_path, pairs) -> None:
    def broken(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        evaluate_methods(pairs, {"input": lambda x: x, "broken": broken}, out_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_wrong_output_shape_names_method_and_image(pairs) -> None:
    with pytest.raises(InputError, match="slice0: method 'crop'"):
        evaluate_methods(pairs, {"crop": lambda x: x[1:]})


def test_build_methods_input_bm3d_and_errors() -> None:
    with pytest.warns(UserWarning, match="too low for CT"):
        methods = build_methods(["input", "bm3d"])
    assert list(methods) == ["input", "bm3d"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tuned = build_methods(["bm3d"], bm3d_sigma_hu=100.0)["bm3d"]
    assert "sigma 100 HU" in tuned.description and tuned.info["sigma_hu"] == 100.0
    x = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    assert np.array_equal(methods["input"](x), x)
    with pytest.raises(InputError, match="unknown"):
        build_methods(["dncnn"])
    with pytest.raises(InputError, match="RED-CNN checkpoint"):
        build_methods(["redcnn"])
    with pytest.raises(InputError, match="not found"):
        build_methods(["lir"], lir_weights="/nonexistent/lir.pt")


def test_build_methods_lir_and_redcnn_checkpoints(tmp_path) -> None:
    import torch

    from ldct_invrep.baselines.train_redcnn import train_redcnn
    from ldct_invrep.io.checkpoint import save_restorer
    from ldct_invrep.networks import Restorer, get_config

    torch.manual_seed(0)
    cfg = get_config("lite")
    save_restorer(tmp_path / "lir.pt", Restorer.from_config(cfg),
                  {"config": cfg, "preset": "lite", "iterations": 7, "training_data": "nothing at all"})
    rng = np.random.default_rng(0)
    patches = rng.uniform(-0.6, -0.4, (8, 1, 32, 32)).astype(np.float32)
    train_redcnn(patches, patches, 2, batch=4, channels=4, out=tmp_path / "redcnn.pt", training_data="tiny")
    methods = build_methods(["lir", "redcnn"], lir_weights=tmp_path / "lir.pt", redcnn_weights=tmp_path / "redcnn.pt")
    assert "preset lite" in methods["lir"].description and "7 iterations" in methods["lir"].description
    assert "trained on tiny" in methods["redcnn"].description and "2 iterations" in methods["redcnn"].description
    hu = _phantom(0, 48)[0]
    hu[0, 0] = -3000.0  # outside the network's HU range: passes through unchanged
    for m in methods.values():
        out = m(hu)
        assert out.shape == hu.shape and out.dtype == np.float32 and np.isfinite(out).all()
        assert out[0, 0] == -3000.0


def test_load_pairs_from_datalist_npy_and_dicom(tmp_path, sample_series) -> None:
    noisy, clean = _phantom(0, 32)
    vol_n, vol_c = np.stack([noisy, noisy + 1]), np.stack([clean, clean])
    np.save(tmp_path / "n.npy", noisy)
    np.save(tmp_path / "c.npy", clean)
    np.save(tmp_path / "vn.npy", vol_n)
    np.save(tmp_path / "vc.npy", vol_c)
    dicom = sorted(sample_series.iterdir())[0]
    datalist = {
        "training": [],
        "test": [{"noisy": "n.npy", "clean": "c.npy"}, {"noisy": "vn.npy", "clean": "vc.npy"},
                 {"noisy": str(dicom), "clean": str(dicom)}],
    }
    (tmp_path / "d.json").write_text(json.dumps(datalist))
    got = list(load_pairs_from_datalist(tmp_path / "d.json"))
    assert [g[0] for g in got] == ["n.npy", "vn.npy[0]", "vn.npy[1]", dicom.name]
    assert np.array_equal(got[0][1], noisy) and np.array_equal(got[2][1], noisy + 1)
    assert got[3][1].shape == (512, 512) and got[3][1].min() < -500  # HU, not stored values

    (tmp_path / "bad.json").write_text(json.dumps({"test": [{"noisy": "n.npy", "clean": "missing.npy"}]}))
    with pytest.raises(InputError, match="missing.npy"):
        load_pairs_from_datalist(tmp_path / "bad.json")
    (tmp_path / "unpaired.json").write_text(json.dumps({"test": [{"noisy": "n.npy"}]}))
    with pytest.raises(InputError, match="not a pair"):
        load_pairs_from_datalist(tmp_path / "unpaired.json")


def _tiny_cache(tmp_path):
    from ldct_invrep.data.ct_cache import build_ct_training_cache
    from ldct_invrep.io import write_nifti

    yy, xx = np.mgrid[:48, :48]
    body = np.where((yy - 24) ** 2 + (xx - 24) ** 2 < 20**2, 40.0, -1000.0)
    vol = np.stack([body + 10 * k for k in range(12)]).astype(np.float32)
    write_nifti(tmp_path / "vol.nii.gz", vol, np.eye(4))

    def simulate(hu, dose, spacing, seed):
        return hu + np.random.default_rng(seed).normal(0, 50, hu.shape)

    build_ct_training_cache([tmp_path / "vol.nii.gz"], tmp_path / "cache.npz", hold_out=0.25, simulator=simulate)
    return tmp_path / "cache.npz"


def test_pairs_from_cache_and_paired_training_slices(tmp_path) -> None:
    from ldct_invrep.baselines.train_redcnn import load_paired_training_slices

    cache = _tiny_cache(tmp_path)
    manifest = json.loads(cache.with_suffix(".json").read_text())
    test_idx = manifest["sources"][0]["slice_indices"]["test"]
    pairs = load_pairs_from_cache(cache)
    assert [p[0] for p in pairs] == [f"vol.nii.gz:{k}" for k in test_idx]
    for _, n, c in pairs:
        assert n.shape == c.shape == (48, 48)
        assert 30 < np.std(n - c) < 70  # the simulated noise of 50 HU
    noisy, clean, names = load_paired_training_slices(cache)
    train_idx = manifest["sources"][0]["slice_indices"]["train_noisy"]
    assert names == [f"vol.nii.gz:{k}" for k in train_idx] and not set(train_idx) & set(test_idx)
    for n, c in zip(noisy, clean):
        assert 30 < np.std(n - c) < 70  # each noisy slice is paired with its own original


def test_cache_pairs_at_several_doses_are_named_and_grouped_by_dose(tmp_path) -> None:
    from ldct_invrep.data.ct_cache import build_ct_training_cache
    from ldct_invrep.evaluation.pairs import cache_test_dose_fractions
    from ldct_invrep.io import write_nifti

    yy, xx = np.mgrid[:48, :48]
    body = np.where((yy - 24) ** 2 + (xx - 24) ** 2 < 20**2, 40.0, -1000.0)
    write_nifti(tmp_path / "vol.nii.gz", np.stack([body + 10 * k for k in range(12)]).astype(np.float32), np.eye(4))

    def simulate(hu, dose, spacing, seed):  # noise 20 HU at full dose, growing as 1 / sqrt(dose)
        return hu + np.random.default_rng(seed).normal(0, 20 / np.sqrt(dose), hu.shape)

    cache = tmp_path / "cache.npz"
    build_ct_training_cache([tmp_path / "vol.nii.gz"], cache, dose_fraction=[0.05, 0.5], hold_out=0.25,
                            simulator=simulate, test_dose_fractions=[0.5, 0.1])
    test_idx = json.loads(cache.with_suffix(".json").read_text())["sources"][0]["slice_indices"]["test"]
    assert len(test_idx) >= 2
    names = [p[0] for p in load_pairs_from_cache(cache)]
    assert names == [f"vol.nii.gz:{k} dose {f}" for f in ("0.5", "0.1") for k in test_idx]
    groups, manifest = load_pairs_by_dose_from_cache(cache)
    assert list(groups) == [0.1, 0.5] and manifest["test_dose_fractions"] == [0.5, 0.1]
    for fraction, pairs in groups.items():
        assert [p[0] for p in pairs] == [f"vol.nii.gz:{k} dose {fraction:g}" for k in test_idx]
        for _, noisy, clean in pairs:  # each pair carries its own dose's noise: 63 HU at 0.1, 28 HU at 0.5
            assert np.std(noisy - clean) == pytest.approx(20 / np.sqrt(fraction), rel=0.15)
    # a cache from before per-pair fractions were recorded: the cache's one dose fraction, else not recorded
    old = {"dose_fraction": 0.25, "sources": [{"slice_indices": {"test": [3, 7]}}, {"slice_indices": {"test": []}}]}
    assert cache_test_dose_fractions(old) == [0.25, 0.25]
    assert cache_test_dose_fractions({**old, "dose_fraction": [0.05, 0.5]}) == [None, None]


def test_evaluate_natural_awgn_follows_the_0_255_convention(tmp_path) -> None:
    rng = np.random.default_rng(1)
    images = [np.clip(gaussian_filter(rng.uniform(0.2, 0.8, (64, 64)), 3), 0, 1) for _ in range(2)]
    result = evaluate_natural(images, "awgn", 25, seed=3, methods=["input"], clip=False, quantize=False, out_dir=tmp_path, figure=True)
    # PSNR of the unclipped noisy input: 20 log10(255 / 25) = 20.17 dB (data range 1 on [0, 1])
    assert result.summary("input")["psnr"]["mean"] == pytest.approx(20 * math.log10(255 / 25), abs=0.3)
    md = (tmp_path / "results.md").read_text()
    assert "data range 1" in md and "0-255" in md and "sigma 25 (0-255 scale)" in md
    assert (tmp_path / "figure.png").read_bytes()[:8] == PNG_MAGIC
    with open(tmp_path / "results.csv", newline="") as f:
        assert "rmse" in next(csv.DictReader(f))
    again = evaluate_natural(images, "awgn", 25, seed=3, methods=["input"], clip=False, quantize=False)
    assert [r.psnr for r in again.rows] == [r.psnr for r in result.rows]  # seeded


def test_evaluate_natural_poisson_with_anscombe_bm3d() -> None:
    pytest.importorskip("bm3d")
    rng = np.random.default_rng(2)
    img = np.round(np.clip(gaussian_filter(rng.uniform(0, 1, (64, 64)), 2) * 1.5 - 0.25, 0, 1) * 255) / 255
    result = evaluate_natural([img], "poisson", None, seed=0, methods=["input", "anscombe_bm3d"])
    assert isinstance(result, EvaluationResult)
    assert result.summary("anscombe_bm3d")["psnr"]["mean"] > result.summary("input")["psnr"]["mean"] + 2
    with pytest.raises(InputError, match="natural-image checkpoint"):
        build_natural_methods(["lir"], "poisson")


def _colour_images(n: int, size: int = 64) -> list[np.ndarray]:
    """Smooth 8-bit colour images (3, size, size), values k / 255."""
    rng = np.random.default_rng(7)
    out = []
    for _ in range(n):
        base = gaussian_filter(rng.uniform(0, 1, (size, size)), 3) * 2.0 - 0.5
        rgb = np.stack([base, 0.7 * base + 0.2, 1.0 - 0.8 * base])
        out.append(np.round(np.clip(rgb, 0, 1) * 255) / 255)
    return out


def test_evaluate_natural_colour_bm3d_and_ansc(tmp_path) -> None:
    """Colour (3, H, W) images: colour BM3D on AWGN and Anscombe + colour BM3D on 8-bit Poisson noise (the peak
    of the test set passed on, the noisy images rounded to 8 bits) beat their input; colour figure written."""
    pytest.importorskip("bm3d")
    images = _colour_images(2)
    awgn = evaluate_natural(images, "awgn", 25, seed=0, methods=["input", "bm3d"], out_dir=tmp_path, figure=True)
    assert awgn.summary("bm3d")["psnr"]["mean"] > awgn.summary("input")["psnr"]["mean"] + 5
    assert "colour (RGB)" in awgn.notes[1] and "bm3d_rgb" in awgn.methods["bm3d"]
    assert (tmp_path / "figure.png").read_bytes()[:8] == PNG_MAGIC
    poisson = evaluate_natural(images, "poisson", None, seed=0, methods=["input", "anscombe_bm3d"])
    (peak,) = {poisson_peak(im) for im in images}  # scikit-image's scale, from the number of unique values
    assert f"peak {peak:g}" in poisson.notes[0] and f"peak {peak:g}" in poisson.methods["anscombe_bm3d"]
    assert poisson.summary("anscombe_bm3d")["psnr"]["mean"] > poisson.summary("input")["psnr"]["mean"] + 3


def test_lir_checkpoint_of_other_channel_count_is_named(tmp_path) -> None:
    from ldct_invrep.io.checkpoint import save_restorer
    from ldct_invrep.networks import Restorer, get_config

    cfg = get_config("lite", base_channels=4, n_res=1, noise_channels=4, in_channels=1)
    ckpt = save_restorer(tmp_path / "grey.pt", Restorer.from_config(cfg), {"config": cfg})
    with pytest.raises(InputError, match="grey.pt: the network takes 1-channel images, the test set has 3"):
        evaluate_natural(_colour_images(1), "awgn", 25, methods=["lir"], lir_weights=ckpt)


def test_poisson_peak_is_inferred_from_the_counts() -> None:
    x = np.random.default_rng(0).poisson(50, (16, 16)) / 256.0
    assert infer_poisson_peak(np.clip(x, 0, 1)) == 256.0
    with pytest.raises(InputError, match="give peak"):
        infer_poisson_peak(np.round(np.clip(x, 0, 1) * 255) / 255 + 1e-3)
    out = anscombe_bm3d(np.clip(x, 0, 1)) if _has_bm3d() else None
    assert out is None or (out.shape == x.shape and abs(out.mean() - 50 / 256) < 0.02)


def _has_bm3d() -> bool:
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


def test_tune_bm3d_sigma_picks_the_true_noise_level() -> None:
    pytest.importorskip("bm3d")
    pairs = [("a", *_phantom(5, 64, sigma=30.0))]
    best, scores = tune_bm3d_sigma(pairs, (3, 30, 600), window="full", crop=None)
    assert best == 30.0 and set(scores) == {3.0, 30.0, 600.0}


def test_tune_bm3d_blind_factor_measures_noise_on_the_whole_slice() -> None:
    pytest.importorskip("bm3d")
    from ldct_invrep.baselines import blind_sigma_hu

    pairs = [("a", *_phantom(6, 128, sigma=30.0))]
    right = 30.0 / blind_sigma_hu(pairs[0][1], 1.0)  # the factor that gives BM3D the true sigma
    best, scores = tune_bm3d_blind_factor(pairs, (0.05, right, 20.0), window="full", crop=64)
    assert best == pytest.approx(right) and len(scores) == 3


def test_per_image_tables_and_the_soft_tissue_bias(pairs) -> None:
    result = evaluate_methods(pairs, {"input": lambda x: x, "brighter": lambda x: x + 10.0}, figure=False)
    for name, noisy, clean in pairs:
        soft = (clean > -100) & (clean < 200)
        assert result.summary("input", "abdomen", [name])["bias"]["mean"] == pytest.approx(float((noisy - clean)[soft].mean()), abs=1e-4)
    assert result.summary("brighter")["bias"]["mean"] == pytest.approx(result.summary("input")["bias"]["mean"] + 10.0, abs=1e-4)
    one = result.image_table_markdown("slice1")
    psnr = compute_metrics(pairs[1][1], pairs[1][2], "full")[0].psnr
    assert one.startswith("| method | abdomen PSNR [dB] | abdomen SSIM | full PSNR [dB] | full SSIM | soft-tissue bias [HU] |")
    assert f"| input | {compute_metrics(pairs[1][1], pairs[1][2], 'abdomen')[0].psnr:.2f} |" in one and f"{psnr:.2f}" in one
    md = result.to_markdown(per_image=True)
    assert "## Mean over the 3 images" in md and all(f"## {n}" in md for n, _, _ in pairs)
    assert md.index("## Mean over") < md.index("## slice0") and "(-100, 200) HU" in md
    assert "soft_tissue_bias_hu" in result.to_csv().split("\n")[0]


def test_paired_cache_pairs_every_noisy_copy_and_resampled_slice_with_its_original(tmp_path) -> None:
    from ldct_invrep.baselines.train_redcnn import load_paired_training_slices
    from ldct_invrep.data.ct_cache import build_ct_training_cache
    from ldct_invrep.io import write_nifti

    yy, xx = np.mgrid[:48, :48]
    body = np.where((yy - 24) ** 2 + (xx - 24) ** 2 < 20**2, 40.0, -1000.0)
    vol = np.stack([body + 40 * k for k in range(6)]).astype(np.float32)  # each slice its own level
    write_nifti(tmp_path / "vol.nii.gz", vol, np.diag([1.0, 1.0, 1.0, 1.0]))

    def simulate(hu, dose, spacing, seed):
        return hu + np.random.default_rng(seed).normal(0, 20, hu.shape)

    build_ct_training_cache([tmp_path / "vol.nii.gz"], tmp_path / "c.npz", hold_out=0.0, simulator=simulate,
                            noisy_copies=3, unpaired_split=False, resample_spacings_mm=[0.8])
    noisy, clean, names = load_paired_training_slices(tmp_path / "c.npz")
    assert len(noisy) == 6 * 3 * 2  # slices x copies x (acquired + resampled)
    assert names[:4] == ["vol.nii.gz:0", "vol.nii.gz:0", "vol.nii.gz:0", "vol.nii.gz:1"]
    assert names[18] == "vol.nii.gz@0.8mm:0" and noisy[18].shape == (60, 60)
    for n, c in zip(noisy, clean, strict=True):
        inside = c > -500
        assert abs(float((n - c)[inside].mean())) < 5 and 10 < float((n - c)[inside].std()) < 30
    only, _, _ = load_paired_training_slices(tmp_path / "c.npz", resampled=False, min_size=40)
    assert len(only) == 18
    with pytest.raises(InputError, match="at least 64 pixels"):
        load_paired_training_slices(tmp_path / "c.npz", min_size=64)
