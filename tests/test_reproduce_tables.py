"""benchmarks/reproduce_tables.py on tiny data: paper numbers next to ours, absent checkpoints said, not invented."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from _helpers import load_script
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]


def _module():
    return load_script("benchmarks/reproduce_tables.py")


def _lir_checkpoint(path: Path, iterations: int, data: str, in_channels: int = 1, **header) -> Path:
    import torch

    from ldct_invrep.io.checkpoint import save_restorer
    from ldct_invrep.networks import Restorer, get_config

    torch.manual_seed(iterations)
    cfg = get_config("lite", base_channels=4, n_res=1, noise_channels=4, in_channels=in_channels)
    return save_restorer(path, Restorer.from_config(cfg),
                         {"config": cfg, "preset": "tiny", "iterations": iterations, "training_data": data, **header})


@pytest.mark.slow
def test_tiny_run_puts_paper_and_ours_side_by_side(tmp_path) -> None:
    from ldct_invrep.data.ct_cache import build_ct_training_cache
    from ldct_invrep.io import write_nifti

    # tiny CT cache: one 12-slice NIfTI volume, 50 HU white noise as the "low dose"
    yy, xx = np.mgrid[:48, :48]
    body = np.where((yy - 24) ** 2 + (xx - 24) ** 2 < 20**2, 40.0, -1000.0)
    write_nifti(tmp_path / "vol.nii.gz", np.stack([body + 5 * k for k in range(12)]).astype(np.float32), np.eye(4))
    build_ct_training_cache([tmp_path / "vol.nii.gz"], tmp_path / "cache.npz", hold_out=0.25,
                            simulator=lambda hu, d, s, seed: hu + np.random.default_rng(seed).normal(0, 50, hu.shape))
    # fake shared data: CBSD68-like colour PNGs, no Kodak, no Mayo
    shared = tmp_path / "shared"
    (shared / "cbsd68").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(60, 200, (40, 56, 3), dtype=np.uint8)).save(shared / "cbsd68" / f"{100 + i}.png")
    lir = _lir_checkpoint(tmp_path / "lir_ct.pt", 11, "tiny cache")
    awgn = _lir_checkpoint(tmp_path / "awgn.pt", 22, "Train400 patches", in_channels=3)
    ablation_b = _lir_checkpoint(tmp_path / "abl_b.pt", 33, "Train400, no D_R", in_channels=3)
    out = tmp_path / "docs" / "results.md"
    args = ["--out", str(out), "--shared-data", str(shared), "--cache", str(tmp_path / "cache.npz"),
            "--lir-ct", str(lir), "--natural-awgn", str(awgn), "--ablation", f"b={ablation_b}",
            "--bm3d-tune-sigmas", "20", "50", "--bm3d-tune-slices", "2", "--max-images", "2", "--crop", "32",
            "--no-natural-bm3d", "--quiet"]
    assert _module().main(args) == 0
    doc = out.read_text()

    # Table 3: paper numbers, our simulated section with measured rows, tuned sigma reported, Mayo absent
    assert "40.5857" in doc and "41.8799" in doc
    assert re.search(r"BM3D sigma: (20|50) HU, best abdomen-window PSNR on 2 simulated \*training\* pairs", doc)
    assert re.search(r"\| lir \| \d+\.\d\d ± \d+\.\d\d \|", doc)
    assert "preset tiny, trained on tiny cache, 11 iterations" in doc
    assert "RED-CNN: no checkpoint given" in doc and "| redcnn |" not in doc
    assert "Mayo pair: not found" in doc
    # Table 1 ran for the three sigmas with our LIR; Table 2 had no checkpoint and shows no numbers of ours
    for sigma in (25, 35, 50):
        assert f"### sigma = {sigma}" in doc
    assert "trained on Train400 patches, 22 iterations" in doc
    assert "No natural_poisson checkpoint (--natural-poisson not set): not run; no numbers of ours." in doc
    # Table 4: only (b) has numbers
    rows = {line.split("|")[1].strip(): line for line in doc.splitlines() if line.startswith("| (")}
    assert "no checkpoint" in rows["(a) without the noise encoder E_X^N"]
    assert "33 iterations" in rows["(b) without the representation discriminator D_R"]
    assert "Quick run, not comparable with the paper" in doc
    # the 48 x 48 test slices are below the full-size threshold (the tuning crop): reported as "smaller" slices,
    # at the cache's one test dose (build_ct_training_cache's default 0.25)
    assert re.search(r"### \(a\) simulated dose 0\.25: the first 2 of \d+ smaller held-out test slices", doc)
    assert "full-size held-out" not in doc
    assert (tmp_path / "docs" / "results" / "table3_simulated_dose0.25_small" / "results.csv").is_file()
    assert (tmp_path / "docs" / "results" / "table1_sigma25" / "figure.png").is_file()

    with pytest.raises(SystemExit, match="exists"):
        _module().main(args)

    # rerunning only Table 4 keeps the other sections of the existing document as they were
    table3 = doc[doc.index("## Table 3"):doc.index("## Table 1")]
    assert _module().main(args[:-1] + ["--tables", "4", "--overwrite", "--quiet", "--load", "a test"]) == 0
    again = out.read_text()
    assert table3.strip() in again and "tables 1, 2, 3 kept from the previous document" in again
    assert again.count("taken under load: a test.") == 1  # the table written this time says its load
    assert again.count("## Table 4") == 1 and again.index("## Table 3") < again.index("## Table 1") < again.index("## Table 4")


def test_table3_groups_the_simulated_pairs_by_dose_and_runs_lir_as_its_header_says(tmp_path) -> None:
    import csv
    import json

    from ldct_invrep.data.ct_cache import build_ct_training_cache
    from ldct_invrep.io import write_nifti

    # the default model's cache layout: every held-out slice at several dose fractions (noise 20 / sqrt(dose) HU)
    yy, xx = np.mgrid[:48, :48]
    body = np.where((yy - 24) ** 2 + (xx - 24) ** 2 < 20**2, 40.0, -1000.0)
    write_nifti(tmp_path / "vol.nii.gz", np.stack([body + 5 * k for k in range(12)]).astype(np.float32), np.eye(4))
    cache = tmp_path / "cache.npz"
    build_ct_training_cache([tmp_path / "vol.nii.gz"], cache, dose_fraction=[0.05, 0.5], hold_out=0.25, test_dose_fractions=[0.1, 0.5],
                            simulator=lambda hu, d, s, seed: hu + np.random.default_rng(seed).normal(0, 20 / np.sqrt(d), hu.shape))
    manifest = json.loads(cache.with_suffix(".json").read_text())
    sha, n_test = manifest["cache_sha256"], len(manifest["sources"][0]["slice_indices"]["test"])
    assert n_test >= 2
    lir = _lir_checkpoint(tmp_path / "lir_ct.pt", 11, "tiny cache", self_ensemble=4, reference_noise_hu=10.0, cache_sha256=sha)
    out = tmp_path / "docs" / "results.md"
    assert _module().main(["--out", str(out), "--shared-data", str(tmp_path / "no_shared"), "--cache", str(cache), "--lir-ct", str(lir),
                           "--tables", "3", "--bm3d-sigma-hu", "50", "--max-images", "1", "--quiet"]) == 0
    doc = out.read_text()
    dose_01 = doc.index(f"### (a) simulated dose 0.1: the first 1 of {n_test} smaller held-out test slices of `cache.npz`")
    dose_05 = doc.index(f"### (a) simulated dose 0.5: the first 1 of {n_test} smaller held-out test slices")
    assert dose_01 < dose_05 and "quarter dose" not in doc  # no Mayo pair here: the (b) section is absent
    assert f"the held-out slices of `cache.npz` (sha256 {sha[:12]}; {2 * n_test} test pairs" in doc
    assert "the cache `lir_ct.pt` trained on (its header's cache_sha256)" in doc
    # the LIR row is the checkpoint as its header says it runs: self-ensemble and reference-noise blending
    assert "run as a self-ensemble of 4" in doc and "reference noise of 10 HU (header reference_noise_hu)" in doc
    details = tmp_path / "docs" / "results"
    assert "mean over 4 flipped/transposed copies, blended with its input to a reference noise of 10 HU" in (
        details / "table3_simulated_dose0.1_small" / "results.md").read_text()
    rmse = {}
    for fraction in ("0.1", "0.5"):
        with open(details / f"table3_simulated_dose{fraction}_small" / "results.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["method"] == "input" and r["window"] == "full"]
        assert len(rows) == 1 and rows[0]["image"].endswith(f" dose {fraction}")
        rmse[fraction] = float(rows[0]["rmse_hu"])
    assert rmse["0.1"] == pytest.approx(20 / np.sqrt(0.1), rel=0.2) and rmse["0.5"] == pytest.approx(20 / np.sqrt(0.5), rel=0.2)
    assert str(tmp_path) not in doc


def test_table2_states_the_poisson_input_level_against_the_papers_rows(tmp_path) -> None:
    """Table 2 on tiny colour Kodak-like images: the paper's protocol (peak 256 on 8-bit values), the input's
    measured level, and how far the paper's supervised RedNet-30 row sits from it (computed here from the table)."""
    shared = tmp_path / "shared"
    (shared / "kodak24").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(shared / "kodak24" / f"kodim0{i + 1}.png")
    poisson = _lir_checkpoint(tmp_path / "poisson.pt", 44, "CBSD432 (colour)", in_channels=3, noise="poisson")
    out = tmp_path / "results.md"
    assert _module().main(["--out", str(out), "--shared-data", str(shared), "--tables", "2", "--natural-poisson", str(poisson),
                           "--no-natural-bm3d", "--max-images", "2", "--crop", "32", "--quiet"]) == 0  # fmt: skip
    doc = out.read_text()
    input_psnr = float(re.search(r"^\| input \| (\d+\.\d\d) ±", doc, re.M).group(1))
    assert "here a peak of 256" in doc and f"puts the input at {input_psnr:.2f} ±" in doc
    assert f"RedNet-30 row (28.34 dB) sits {28.34 - input_psnr:+.2f} dB from this input" in doc
    assert "Anscombe + colour BM3D scores" not in doc  # not run (--no-natural-bm3d), so not compared
