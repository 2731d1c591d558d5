"""The real development pairs as a datalist (``prepare ldct-dev``, ``evaluate --pairs``) on generated files in
the staged layout, and the shipped weights against the input and blind BM3D on the real pairs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from _helpers import load_script, write_ct_slice
from click.testing import CliRunner
from PIL import Image
from scipy.io import savemat

from ldct_invrep.cli import cli
from ldct_invrep.data.datalist import read_entry_image
from ldct_invrep.data.dev_pairs import DEV_PAIR_NAMES, MU_WATER_EUNH, read_dev_pairs, write_dev_datalist
from ldct_invrep.errors import InputError
from ldct_invrep.evaluation import load_pairs_from_datalist


def _body(seed: int, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """(quarter, full) HU: a soft-tissue disc in air, the quarter dose with 40 HU of white noise."""
    yy, xx = np.mgrid[:size, :size]
    full = np.where((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.4 * size) ** 2, 40.0, -1000.0).astype(np.float32)
    full += np.random.default_rng(100 + seed).normal(0, 5, full.shape).astype(np.float32)
    return full + np.random.default_rng(seed).normal(0, 40, full.shape).astype(np.float32), full


def _staged_copy(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The staged layout of ../shared/data with generated pairs; returns the HU each pair must read as."""
    want = {}
    q, f = _body(0)
    for dose, hu in (("QD", q), ("FD", f)):
        write_ct_slice(root / "mayo2016_mapnn_ima" / f"L506_{dose}_1_1.CT.0087.IMA", hu, z=-299.8, instance=87,
                       thickness=1.0, corner=-190.0, description=dose)
    stored = lambda hu: np.clip(np.round(hu + 1024), 0, 4095) - 1024  # noqa: E731 (uint16 values, intercept -1024)
    want["mayo_L506_1mm"] = (stored(q), stored(f))
    eunh = root / "ldct_pairs_dev" / "eunh_low_dose_CT"
    eunh.mkdir(parents=True)
    for case in (1, 2):
        q, f = _body(case)
        to_mu = lambda hu: (hu / 1000.0 + 1.0) * MU_WATER_EUNH  # noqa: E731
        savemat(eunh / f"test_case{case}.mat", {"quarter_dose": to_mu(q), "routine_dose": to_mu(f)})
        want[f"eunh_test_case{case}"] = (q, f)
    cncl = root / "ldct_pairs_dev" / "cncl_denoising"
    cncl.mkdir(parents=True)
    q, f = _body(4)
    Image.fromarray(q, mode="F").save(cncl / "noisy_0001.tif")
    Image.fromarray(f, mode="F").save(cncl / "clean_0001.tif")
    want["cncl_0001"] = (q, f)
    return want


def test_dev_datalist_points_at_the_files_in_place_and_reads_them_in_hu(tmp_path) -> None:
    root = tmp_path / "data"
    want = _staged_copy(root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    report, path = write_dev_datalist(root, tmp_path / "lists" / "ldct_dev.json")
    assert report.found == [n for n in DEV_PAIR_NAMES if n in want] and report.missing == ["eunh_test_case3"]
    assert not report.ok and "MISSING pairs (1): eunh_test_case3" in report.format()

    doc = json.loads(path.read_text())
    assert doc["data_root"] == str(root.resolve()) and doc["numTest"] == 4
    entry = {e["name"]: e for e in doc["test"]}
    assert entry["eunh_test_case1"]["noisy"] == "ldct_pairs_dev/eunh_low_dose_CT/test_case1.mat"  # relative, in place
    assert entry["eunh_test_case1"]["units"] == "mu_per_mm" and entry["eunh_test_case1"]["clean_variable"] == "routine_dose"
    assert entry["mayo_L506_1mm"]["info"]["pixel_spacing_mm"] == 0.75
    noisy_bytes = (root / entry["cncl_0001"]["noisy"]).read_bytes()
    assert entry["cncl_0001"]["info"]["sha256"]["noisy"] == hashlib.sha256(noisy_bytes).hexdigest()

    pairs = list(load_pairs_from_datalist(path))
    assert [p[0] for p in pairs] == list(want)
    for name, noisy, clean in pairs:
        assert noisy.shape == clean.shape == (48, 48)
        np.testing.assert_allclose(noisy, want[name][0], atol=0.05)  # mu -> HU undone to float precision
        np.testing.assert_allclose(clean, want[name][1], atol=0.05)
    for pair, (name, noisy, clean) in zip(read_dev_pairs(root), pairs, strict=True):  # one reader, two entry points
        assert pair.name == name and np.array_equal(pair.quarter, noisy) and np.array_equal(pair.full, clean)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # nothing written or moved


def test_a_changed_file_is_reported_against_its_sha256sums(tmp_path) -> None:
    root = tmp_path / "data"
    _staged_copy(root)
    cncl = root / "ldct_pairs_dev" / "cncl_denoising"
    (cncl / "SHA256SUMS").write_text(f"{'0' * 64}  noisy_0001.tif\n")
    report, _ = write_dev_datalist(root, tmp_path / "dl.json")
    assert any("noisy_0001.tif: SHA-256 differs" in w for w in report.warnings) and not report.ok


def test_prepare_ldct_dev_and_evaluate_pairs_on_the_command_line(tmp_path) -> None:
    root = tmp_path / "data"
    _staged_copy(root)
    runner = CliRunner()
    result = runner.invoke(cli, ["prepare", "ldct-dev", str(root), "--out", str(tmp_path / "lists")])
    assert result.exit_code == 0, result.output
    assert "pairs found (4)" in result.stdout and (tmp_path / "lists" / "ldct_dev.json").is_file()

    result = runner.invoke(cli, ["evaluate", "--pairs", str(tmp_path / "lists" / "ldct_dev.json"), "-m", "input",
                                 "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert "# Mean over the 4 images" in result.stdout and "## cncl_0001" in result.stdout
    assert "soft-tissue bias [HU]" in result.stdout
    rows = json.loads((tmp_path / "m.json").read_text())["rows"]
    assert len(rows) == 4 * 2  # pairs x windows
    assert all(abs(r["bias"]) < 5 for r in rows)  # zero-mean noise: the input's soft-tissue bias is small

    empty = runner.invoke(cli, ["prepare", "ldct-dev", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.json")])
    assert empty.exit_code == 2 and "no real quarter/full-dose pair found" in empty.stderr
    assert not (tmp_path / "x.json").exists()
    mixed = runner.invoke(cli, ["evaluate", "--pairs", str(tmp_path / "lists" / "ldct_dev.json"), "a", "b"])
    assert mixed.exit_code == 2


def test_entry_reader_names_the_file_and_the_problem(tmp_path) -> None:
    savemat(tmp_path / "c.mat", {"quarter_dose": np.ones((4, 4))})
    with pytest.raises(InputError, match=r"c.mat: a .mat entry needs the name of its array"):
        read_entry_image({"noisy": str(tmp_path / "c.mat")}, "noisy")
    with pytest.raises(InputError, match=r"c.mat: no array named 'routine_dose'"):
        read_entry_image({"clean": str(tmp_path / "c.mat"), "clean_variable": "routine_dose"}, "clean")
    with pytest.raises(InputError, match="units 'kelvin' unknown"):
        read_entry_image({"noisy": str(tmp_path / "c.mat"), "noisy_variable": "quarter_dose", "units": "kelvin"}, "noisy")
    with pytest.raises(InputError, match="mu_water_per_mm"):
        read_entry_image({"noisy": str(tmp_path / "c.mat"), "noisy_variable": "quarter_dose", "units": "mu_per_mm"}, "noisy")
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(InputError, match="bad.tif: not a readable .tif file"):
        read_entry_image({"noisy": str(tmp_path / "bad.tif")}, "noisy")


def _bench_module():
    return load_script("benchmarks/dev_pairs.py", "dev_pairs_bench")


@pytest.mark.filterwarnings("ignore:blind BM3D:UserWarning")
def test_dev_pairs_benchmark_tunes_on_the_cache_and_writes_one_table_per_pair(tmp_path) -> None:
    pytest.importorskip("bm3d")
    import torch

    from ldct_invrep.data.ct_cache import build_ct_training_cache
    from ldct_invrep.io.checkpoint import save_restorer
    from ldct_invrep.io import write_nifti
    from ldct_invrep.networks import Restorer, get_config

    root = tmp_path / "data"
    _staged_copy(root)
    vol = np.stack([_body(10 + k)[1] for k in range(4)])
    write_nifti(tmp_path / "vol.nii.gz", vol, np.eye(4))
    build_ct_training_cache([tmp_path / "vol.nii.gz"], tmp_path / "c.npz", hold_out=0.0, noisy_copies=2, unpaired_split=False,
                            simulator=lambda hu, d, s, seed: hu + np.random.default_rng(seed).normal(0, 40, hu.shape))
    torch.manual_seed(0)
    cfg = get_config("lite", base_channels=4, n_res=1, noise_channels=4)
    weights = save_restorer(tmp_path / "lir.pt", Restorer.from_config(cfg), {"config": cfg, "preset": "tiny", "iterations": 3})
    out = tmp_path / "docs" / "dev_pairs.md"
    args = ["--shared-data", str(root), "--cache", str(tmp_path / "c.npz"), "--weights", str(weights), "--out", str(out),
            "--tune-pairs", "3", "--tune-crop", "32", "--tune-sigmas", "5", "40", "--tune-factors", "0.1", "2", "--quiet"]
    assert _bench_module().main(args) == 0
    doc = out.read_text()
    assert "## Mean over the 4 images" in doc and all(f"## {n}" in doc for n in ("mayo_L506_1mm", "cncl_0001"))
    assert "BM3D sigma 40 HU: best of 5 HU" in doc  # 40 HU of white noise: the larger sigma wins
    assert "blind BM3D factor 2: best of 0.1" in doc and "3 simulated *training* pairs of `c.npz`" in doc
    assert "no RED-CNN row" in doc and "| redcnn |" not in doc
    assert "| mayo_L506_1mm | " in doc.split("## LIR against each method")[1]
    with pytest.raises(SystemExit, match="exists"):
        _bench_module().main(args)


def _abdomen_psnr(pairs: list[tuple], methods: list[str]) -> dict[str, dict[str, float]]:
    """``{pair: {method: abdomen-window PSNR}}`` (``evaluation.evaluate_methods``; LIR as its header says)."""
    from ldct_invrep.evaluation import build_methods, evaluate_methods

    result = evaluate_methods(pairs, build_methods(methods), ("abdomen",), figure=False)
    return {image: {m: result.summary(m, "abdomen", [image])["psnr"]["mean"] for m in result.methods} for image in result.images}


@pytest.fixture(scope="module")
def shipped_on_real_pairs() -> tuple[list[tuple], dict[str, dict[str, float]]]:
    """The real pairs and the shipped weights' (self-ensemble and blend as their header says) and the input's
    abdomen PSNR on each, computed once for both tests below."""
    from conftest import shared_path

    from ldct_invrep.package_files import default_weights_path

    if not default_weights_path().is_file():
        pytest.skip("no shipped weights in this copy")
    pairs = [(p.name, p.quarter, p.full) for p in read_dev_pairs(shared_path())]
    if not pairs:
        pytest.skip("no real dev pairs under the shared data")
    return pairs, _abdomen_psnr(pairs, ["input", "lir"])


def _losses(lir: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]], method: str) -> list[str]:
    """One line per pair where the shipped weights do not beat ``method``."""
    return [f"{image}: LIR {lir[image]['lir']:.2f} dB <= {method} {baseline[image][method]:.2f} dB"
            for image in lir if lir[image]["lir"] <= baseline[image][method]]


@pytest.mark.shared_data
@pytest.mark.slow
def test_shipped_weights_beat_the_input_on_every_real_dev_pair(shipped_on_real_pairs) -> None:
    """Never below the quarter-dose input on a real pair (issue 12's floor)."""
    _, psnr = shipped_on_real_pairs
    losses = _losses(psnr, psnr, "input")
    assert not losses, "; ".join(losses)


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="lir_ct.pt (with its reference-noise blend) loses to blind BM3D on Mayo L506 "
                   "(-0.4 dB) and cncl (-1.4 dB); no campaign closed it (docs/shipped_weights.md). Strict: an XPASS "
                   "means new weights did, and this mark goes")
def test_shipped_weights_beat_blind_bm3d_on_every_real_dev_pair(shipped_on_real_pairs) -> None:
    """Blind BM3D (factor fitted on simulated training pairs, never on these) on each real pair."""
    pytest.importorskip("bm3d")
    pairs, psnr = shipped_on_real_pairs
    losses = _losses(psnr, _abdomen_psnr(pairs, ["bm3d_blind"]), "bm3d_blind")
    assert not losses, "; ".join(losses)
