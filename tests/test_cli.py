"""The ``ldct-invrep`` command line, end to end through click's CliRunner (and one real console-script run).

A tiny random-weight checkpoint (base 4 channels, 1 residual block) stands in for the shipped weights, so
the denoised HU are meaningless but every step (read, stream, denoise, write, geometry, UIDs) is real.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from _helpers import roi_noise_ratio
from click.testing import CliRunner, Result

from ldct_invrep.cli import cli

SAMPLE_N = 20


# --------------------------------------------------------------------------------------------- helpers
def invoke(*args: object, code: int = 0) -> Result:
    """Run the CLI in-process; on an unexpected exit status show what it printed."""
    result = CliRunner().invoke(cli, [str(a) for a in args], prog_name="ldct-invrep")
    assert result.exit_code == code, (
        f"exit {result.exit_code} (expected {code}) for {args}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
        f"exception: {result.exception!r}"
    )
    return result


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def copy_slices(sample: Path, dest: Path, n: int) -> Path:
    """The first ``n`` files of the sample series (sorted by name, which is slice order) into ``dest``."""
    dest.mkdir(parents=True)
    for f in sample_files(sample)[:n]:
        shutil.copyfile(f, dest / f.name)  # not copy2: the packaged files are read-only
    return dest


def sample_files(sample: Path) -> list[Path]:
    """The DICOM files of the sample series (the folder also holds SHA256SUMS)."""
    return sorted(p for p in sample.iterdir() if p.name.startswith("CT."))


def output_files(folder: Path) -> list[Path]:
    """The files of an output folder without its ldct-invrep output marker, sorted."""
    from ldct_invrep.io import OUTPUT_MARKER

    assert (folder / OUTPUT_MARKER).is_file(), f"{folder}: no output marker"
    return sorted(p for p in folder.iterdir() if p.name != OUTPUT_MARKER)


def read_hu(folder: Path) -> np.ndarray:
    from ldct_invrep.io import read_series

    return read_series(folder).hu


def make_tiny_weights(path: Path) -> Path:
    """A random-weight lite Restorer (4 base channels, 1 residual block) saved with ``save_restorer``.

    The lite generators are residual with a zero-initialised output layer (the identity map); that layer is
    drawn at random here too, so the tests can tell a denoised series from its input."""
    from ldct_invrep.io.checkpoint import save_restorer
    from ldct_invrep.networks import LIRNet, get_config

    torch.manual_seed(0)
    config = get_config("lite", base_channels=4, n_res=1, noise_channels=4, dis_channels=4)
    header = {"preset": "lite", "training_data": "none (random weights for tests)", "iterations": 0, "hu_range": [-1024, 3072]}
    net = LIRNet(config)
    torch.nn.init.normal_(net.generator_y.model[-1].conv.weight, std=0.05)
    return save_restorer(path, net, header)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


@pytest.fixture
def series3(sample_series: Path, tmp_path: Path) -> Path:
    return copy_slices(sample_series, tmp_path / "in3", 3)


# --------------------------------------------------------------------------------------------- help
def test_help_lists_commands_and_each_teaches_with_an_example() -> None:
    top = invoke("--help").stdout
    commands = ["denoise", "simulate-dose", "evaluate", "info", "prepare", "train", "fetch", "demo"]
    for name in commands:
        assert re.search(rf"^\s+{name}\s", top, re.MULTILINE), f"{name} missing from --help"
    for name in commands:
        text = invoke(name, "--help").stdout
        assert re.search(r"Examples?:\n\s+ldct-invrep " + name, text), f"{name} --help has no example"
    assert re.search(r"\[default:\s+1\s+on\s+CPU", invoke("denoise", "--help").stdout)
    assert re.search(r"--batch-size.*\n?.*\[default:\s+4\]", invoke("simulate-dose", "--help").stdout)  # was denoise's wording
    assert re.search(r"Examples?:\n\s+ldct-invrep bundle export", invoke("bundle", "export", "--help").stdout)
    assert re.search(r"\[default:\s+0.25", invoke("simulate-dose", "--help").stdout)
    assert "[-160, 240]" in invoke("evaluate", "--help").stdout


# --------------------------------------------------------------------------------------------- denoise
def _dciodvfy(files: list[Path]) -> None:
    """No "Error" line from dicom3tools' dciodvfy (warnings allowed, printed)."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) not installed: DICOM conformance not checked")
    for f in files:
        proc = subprocess.run(["dciodvfy", str(f)], check=False, capture_output=True, text=True, timeout=60)
        lines = (proc.stdout + proc.stderr).splitlines()
        warnings = [ln for ln in lines if ln.startswith("Warning")]
        if warnings:
            print(f"dciodvfy warnings for {f.name}:\n  " + "\n  ".join(warnings))
        errors = [ln for ln in lines if ln.startswith("Error")]
        assert not errors, f"dciodvfy errors for {f}:\n" + "\n".join(errors)


def _sitk_geometry(files: list[Path]) -> tuple:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    img = reader.Execute()
    return img.GetSize(), img.GetOrigin(), img.GetSpacing(), img.GetDirection(), sitk.GetArrayFromImage(img)


@pytest.mark.slow
def test_denoise_sample_series_to_dicom(sample_series: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "denoised"
    result = invoke("denoise", sample_series, out, "--weights", tiny_weights, "--threads", 2)
    assert re.search(rf"denoised {SAMPLE_N} slices in [\d.]+ s \([\d.]+ slices/s\) -> {re.escape(str(out))}", result.stdout)
    files = output_files(out)
    assert len(files) == len(sample_files(sample_series)) == SAMPLE_N

    from ldct_invrep.io import scan_series

    src = scan_series(sample_series)
    size_o, origin_o, spacing_o, direction_o, arr_o = _sitk_geometry(files)
    size_i, origin_i, spacing_i, direction_i, arr_i = _sitk_geometry(src.paths)
    assert size_o == size_i == (512, 512, SAMPLE_N)
    np.testing.assert_allclose(origin_o, origin_i, atol=1e-4)
    np.testing.assert_allclose(spacing_o, spacing_i, atol=1e-4)
    np.testing.assert_allclose(direction_o, direction_i, atol=1e-6)
    assert np.abs(arr_o.astype(np.float64) - arr_i).mean() > 1.0, "HU unchanged by denoising"

    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    uids = {h.SeriesInstanceUID for h in headers}
    assert len(uids) == 1 and uids != {src.series_uid} and all(uids)
    assert len({h.SOPInstanceUID for h in headers}) == SAMPLE_N
    assert headers[0].SeriesDescription.endswith("[LIR]")
    assert list(headers[0].ImageType[:2]) == ["DERIVED", "SECONDARY"]
    assert "LIR" in headers[0].DerivationDescription
    _dciodvfy([files[0], files[-1]])


def test_denoise_to_nifti_and_nifti_to_nifti(series3: Path, tiny_weights: Path, tmp_path: Path) -> None:
    from ldct_invrep.io import scan_series

    nii = tmp_path / "den.nii.gz"
    invoke("denoise", series3, nii, "--weights", tiny_weights, "--quiet")
    img = nib.load(nii)
    assert img.shape == (512, 512, 3)
    np.testing.assert_allclose(img.affine, scan_series(series3).affine(ras=True), atol=1e-4)
    # NIfTI in, NIfTI out (format from the suffix); DICOM output from NIfTI is a usage error.
    again = tmp_path / "den2.nii"
    result = invoke("denoise", nii, again, "--weights", tiny_weights)
    assert result.stdout.startswith("denoised 3 slices")
    assert nib.load(again).shape == (512, 512, 3)
    np.testing.assert_allclose(nib.load(again).affine, img.affine, atol=1e-5)
    bad = invoke("denoise", nii, tmp_path / "folder", "--weights", tiny_weights, "--format", "dicom", code=2)
    assert "DICOM output needs DICOM source headers" in bad.stderr
    assert not (tmp_path / "folder").exists()


def test_denoise_self_ensemble(series3: Path, tiny_weights: Path, tmp_path: Path) -> None:
    from ldct_invrep.inference import SliceDenoiser
    from ldct_invrep.io import read_series

    plain, ensemble = tmp_path / "plain.nii.gz", tmp_path / "ens.nii.gz"
    invoke("denoise", series3, plain, "--weights", tiny_weights)
    result = invoke("denoise", series3, ensemble, "--weights", tiny_weights, "--self-ensemble", 8)
    assert "self-ensemble of 8" in result.stderr
    a, b = (np.asarray(nib.load(p).dataobj, dtype=np.float32) for p in (plain, ensemble))
    assert float(np.abs(a - b).max()) > 1.0
    denoiser, _ = SliceDenoiser.from_checkpoint(tiny_weights, self_ensemble=8)
    expected = denoiser.denoise(read_series(series3).hu)  # (z, y, x); the NIfTI is (x, y, z) in RAS
    assert float(np.abs(np.sort(b.ravel()) - np.sort(expected.ravel())).max()) < 1.0
    assert invoke("denoise", series3, tmp_path / "x.nii.gz", "--self-ensemble", 3, code=2).stderr


def test_denoise_reference_noise(series3: Path, tiny_weights: Path, tmp_path: Path) -> None:
    from ldct_invrep.io import read_series

    source = read_series(series3).hu
    plain = invoke("denoise", series3, tmp_path / "plain", "--weights", tiny_weights)  # header: none -> off
    assert "reference noise" not in plain.stderr and "blend" not in plain.stderr
    kept = invoke("denoise", series3, tmp_path / "kept", "--weights", tiny_weights, "--reference-noise", 1e4)
    assert "reference noise 10000 HU" in kept.stderr and "input weight 1.00-1.00 (median 1.00) over 3 slices" in kept.stderr
    np.testing.assert_array_equal(read_series(tmp_path / "kept").hu, source)  # a = 1: the input, to the stored value
    assert float(np.abs(read_series(tmp_path / "plain").hu - source).max()) > 1.0
    assert "reference noise" in str(pydicom.dcmread(sorted((tmp_path / "kept").glob("*.dcm"))[0]).DerivationDescription)
    assert invoke("denoise", series3, tmp_path / "x", "--reference-noise", -1, code=2).stderr


def test_denoise_single_dicom_file(series3: Path, tiny_weights: Path, tmp_path: Path) -> None:
    one = sorted(series3.iterdir())[1]
    out = tmp_path / "one"
    invoke("denoise", one, out, "--weights", tiny_weights)
    files = output_files(out)
    assert len(files) == 1
    ds = pydicom.dcmread(files[0])
    src = pydicom.dcmread(one)
    assert ds.ImagePositionPatient == src.ImagePositionPatient
    assert ds.pixel_array.shape == src.pixel_array.shape


def test_denoise_recursive_folder(sample_series: Path, tiny_weights: Path, tmp_path: Path) -> None:
    nested = copy_slices(sample_series, tmp_path / "study" / "series" / "a", 1).parents[1]
    empty = invoke("denoise", nested, tmp_path / "den", "--weights", tiny_weights, code=2)
    (line,) = error_lines(empty)
    assert "no files in the folder itself, but 1 sub-folder (e.g. series)" in line and "--recursive (-r)" in line, line
    invoke("denoise", nested, tmp_path / "den", "--weights", tiny_weights, "--recursive")
    assert len(output_files(tmp_path / "den")) == 1


@pytest.mark.shared_data
def test_denoise_real_mayo_ima(mayo_pair: tuple[Path, Path], tiny_weights: Path, tmp_path: Path) -> None:
    _, quarter = mayo_pair
    out = tmp_path / "mayo"
    invoke("denoise", quarter, out, "--weights", tiny_weights)
    (written,) = output_files(out)
    ds, src = pydicom.dcmread(written), pydicom.dcmread(quarter)
    assert ds.Rows == src.Rows and ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert ds.StudyInstanceUID == src.StudyInstanceUID
    _dciodvfy([written])


def test_denoise_two_series_pick_one_or_all(series3: Path, tiny_weights: Path, tmp_path: Path) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    files = sorted(series3.iterdir())
    for f, uid in zip(files, ["1.2.3.1", "1.2.3.1", "1.2.3.2"]):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = uid
        ds.save_as(folder / f.name)
    refused = invoke("denoise", folder, tmp_path / "o", "--weights", tiny_weights, code=2)
    assert "1.2.3.1" in refused.stderr and "1.2.3.2" in refused.stderr and "--series-uid" in refused.stderr
    invoke("denoise", folder, tmp_path / "one", "--weights", tiny_weights, "--series-uid", "1.2.3.2")
    assert len(output_files(tmp_path / "one")) == 1
    invoke("denoise", folder, tmp_path / "all", "--weights", tiny_weights, "--all-series")
    assert [p.name for p in output_files(tmp_path / "all")] == ["1.2.3.1", "1.2.3.2"]
    assert len(output_files(tmp_path / "all" / "1.2.3.1")) == 2


def _no_leftovers(parent: Path, name: str) -> None:
    assert not (parent / name).exists()
    assert [p.name for p in parent.iterdir() if p.name.startswith(".")] == [], "temporary output left behind"


def test_interrupt_leaves_no_partial_output(series3: Path, tiny_weights: Path, tmp_path: Path, monkeypatch) -> None:
    from ldct_invrep.inference import SliceDenoiser

    original = SliceDenoiser.denoise_batch
    calls = []

    def interrupted(self, hu):
        calls.append(len(hu))
        if len(calls) > 1:
            raise KeyboardInterrupt
        return original(self, hu)

    monkeypatch.setattr(SliceDenoiser, "denoise_batch", interrupted)
    parent = tmp_path / "outputs"
    parent.mkdir()
    result = invoke("denoise", series3, parent / "den", "--weights", tiny_weights, "--batch-size", 1, code=130)
    assert calls == [1, 1]
    assert error_lines(result) == ["error: interrupted; no partial output was left behind"]
    _no_leftovers(parent, "den")
    invoke("denoise", series3, parent / "den.nii.gz", "--weights", tiny_weights, "--batch-size", 1, code=130)
    _no_leftovers(parent, "den.nii.gz")


def test_unexpected_failure_is_exit_1_with_debug_hint(series3: Path, tiny_weights: Path, tmp_path: Path, monkeypatch) -> None:
    from ldct_invrep.inference import SliceDenoiser

    def boom(self, hu):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(SliceDenoiser, "denoise_batch", boom)
    result = invoke("denoise", series3, tmp_path / "den", "--weights", tiny_weights, code=1)
    assert error_lines(result) == ["error: unexpected RuntimeError: simulated bug"]
    assert "--debug" in result.stderr and "Traceback" not in result.stderr
    _no_leftovers(tmp_path, "den")
    debug = invoke("--debug", "denoise", series3, tmp_path / "den", "--weights", tiny_weights, code=1)
    assert "Traceback" in debug.stderr and "simulated bug" in debug.stderr


# --------------------------------------------------------------------------------------------- simulate-dose
def test_simulate_dose_dicom_is_deterministic(sample_series: Path, tmp_path: Path) -> None:
    one = copy_slices(sample_series, tmp_path / "in1", 1)
    a, b = tmp_path / "a", tmp_path / "b"
    result = invoke("simulate-dose", one, a, "--dose-fraction", 0.25, "--seed", 3)
    assert result.stdout.startswith("simulated 25% dose for 1 slice in")
    invoke("simulate-dose", one, b, "--dose-fraction", 0.25, "--seed", 3, "--quiet")
    (fa,), (fb,) = output_files(a), output_files(b)
    ds = pydicom.dcmread(fa)
    assert ds.SeriesDescription == "CT Body 3.0 [sim 25% dose]"
    assert "projection-domain noise insertion" in ds.DerivationDescription and "seed 3" in ds.DerivationDescription
    np.testing.assert_array_equal(ds.pixel_array, pydicom.dcmread(fb).pixel_array)
    diff = read_hu(a) - read_hu(one)
    assert 5.0 < diff.std() < 500.0, diff.std()


def test_simulate_dose_nifti(sample_series: Path, tmp_path: Path) -> None:
    one = copy_slices(sample_series, tmp_path / "in1", 1)
    out = tmp_path / "q.nii.gz"
    invoke("simulate-dose", one, out, "--dose-fraction", 0.5, "--seed", 1)
    data = np.asarray(nib.load(out).dataobj)
    assert data.shape == (512, 512, 1) and np.isfinite(data).all()
    assert np.abs(data[..., 0].T - read_hu(one)[0]).mean() > 1.0


def test_simulate_dose_is_relative_to_the_scans_own_dose(sample_series: Path, tmp_path: Path) -> None:
    """Default --calibration self: a quarter of the sample's own dose doubles its soft-tissue noise, and the
    measured level is recorded; --calibration mayo (the Mayo scanner's absolute flux) inserts far more here."""
    two = copy_slices(sample_series, tmp_path / "in2", 2)
    own, mayo = tmp_path / "own", tmp_path / "mayo"
    result = invoke("simulate-dose", two, own, "--seed", 2)
    assert "own noise level" in result.stderr and "measured on 2 of 2 slices" in result.stderr
    derivation = pydicom.dcmread(next(own.iterdir())).DerivationDescription
    assert "calibration self" in derivation and re.search(r"median \d+\.\d\d HU", derivation), derivation
    invoke("simulate-dose", two, mayo, "--seed", 2, "--calibration", "mayo", "--quiet")
    assert "calibration mayo" in pydicom.dcmread(next(mayo.iterdir())).DerivationDescription
    original, self_dose, mayo_dose = read_hu(two), read_hu(own), read_hu(mayo)
    assert roi_noise_ratio(original, self_dose) == pytest.approx(2.0, rel=0.2)
    body = original > -500
    assert (mayo_dose - original)[body].std() > 2.0 * (self_dose - original)[body].std()


def test_simulate_dose_without_flat_tissue_fails_in_one_line(tmp_path: Path) -> None:
    """No slice with flat soft tissue (here a small object in air): exit 2, one line naming the input and
    the way out, nothing written; --calibration mayo needs no measurement and runs."""
    hu = np.full((64, 64, 2), -1000.0, dtype=np.float32)
    hu[20:40, 20:40] = 40.0
    src = tmp_path / "small_object.nii.gz"
    nib.save(nib.Nifti1Image(hu, np.diag([0.8, 0.8, 2.0, 1.0])), src)
    out = tmp_path / "out.nii.gz"
    result = invoke("simulate-dose", src, out, code=2)
    (line,) = error_lines(result)
    assert str(src) in line and "flat soft tissue" in line and "--calibration mayo" in line
    assert not out.exists()
    invoke("simulate-dose", src, out, "--calibration", "mayo", "--quiet")
    assert out.is_file()


def test_simulate_dose_of_a_noise_free_image_fails_in_one_line(tmp_path: Path) -> None:
    """Flat soft tissue without any noise (a mask, a phantom drawing): its own noise measures 0 HU. Was exit 1
    ("noise levels must be positive"); now exit 2 naming the input and the way out."""
    hu = np.full((128, 128, 2), -1000.0, dtype=np.float32)
    hu[16:-16, 16:-16] = 40.0
    src = tmp_path / "drawing.nii.gz"
    nib.save(nib.Nifti1Image(hu, np.diag([0.8, 0.8, 2.0, 1.0])), src)
    out = tmp_path / "out.nii.gz"
    result = invoke("simulate-dose", src, out, code=2)
    (line,) = error_lines(result)
    assert line.startswith(f"error: {src}: ") and "no noise at all" in line and "--calibration mayo" in line
    assert "Traceback" not in result.stderr and not out.exists()


# --------------------------------------------------------------------------------------------- evaluate
@pytest.fixture
def pair3(series3: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A noisy copy (Gaussian HU noise, written through the DICOM writer) of the 3-slice reference."""
    from ldct_invrep.io import scan_series, write_derived_series

    info = scan_series(series3)
    rng = np.random.default_rng(0)
    noisy = tmp_path / "noisy"
    write_derived_series(info, (s + rng.normal(0, 20, s.shape) for s in info.read_hu()), noisy, method="TEST")
    return noisy, series3


def test_evaluate_table_and_json(pair3: tuple[Path, Path], tmp_path: Path) -> None:
    noisy, ref = pair3
    result = invoke("evaluate", noisy, ref, ref)
    out = result.stdout
    assert "window abdomen W400/L40 [-160, 240] HU, data range 400 HU" in out
    assert "window full W4096/L1024 [-1024, 3072] HU, data range 4096 HU" in out
    assert len(re.findall(r"^mean ", out, re.MULTILINE)) == 2 and "noisy | in3 vs in3, 3 slices" in out
    # identical prediction and reference: PSNR inf, SSIM 1, RMSE 0 in the second column group
    assert re.search(r"^0\s+[\d.]+\s+0\.9\d+\s+1\d\.\d \|\s+inf\s+1\.0000\s+0\.0$", out, re.MULTILINE), out

    doc = json.loads(invoke("evaluate", noisy, ref, "--json", "-", "--window=-160,240").stdout)
    (report,) = doc["reports"]
    assert report["data_range"] == 400 and report["n_slices"] == 3
    # Gaussian noise of 20 HU: RMSE at most 20 HU (less where the window clips air and bone)
    assert 5 < report["summary"]["rmse_hu"]["mean"] < 21

    path = tmp_path / "m.json"
    summary = invoke("evaluate", noisy, ref, "-w", "lung", "--json", path, "--summary", "--label", "gauss20").stdout
    assert "gauss20" in summary and "lung" in summary and "slice" not in summary.split("\n", 1)[1]
    assert json.loads(path.read_text())["windows"][0]["name"] == "lung"


def test_evaluate_takes_threads_like_every_computing_command(pair3: tuple[Path, Path]) -> None:
    import torch

    noisy, ref = pair3
    before = torch.get_num_threads()
    try:
        result = invoke("evaluate", noisy, ref, "--summary", "--threads", "1")  # was exit 2: "--threads need --pairs"
        assert torch.get_num_threads() == 1 and "data range 400 HU" in result.stdout
    finally:
        torch.set_num_threads(before)
    refused = invoke("evaluate", noisy, ref, "--bm3d-sigma", "10", code=2).stderr  # the --pairs options still need it
    assert "--redcnn-weights need --pairs" in refused and "--threads" not in refused


def test_evaluate_refuses_mismatched_shapes(pair3: tuple[Path, Path], sample_series: Path, tmp_path: Path) -> None:
    noisy, _ = pair3
    two = copy_slices(sample_series, tmp_path / "in2", 2)
    result = invoke("evaluate", noisy, two, code=2)
    (line,) = error_lines(result)
    assert str(noisy) in line and "differs from the reference" in line
    invoke("evaluate", noisy, code=2)  # no REF
    invoke("evaluate", noisy, two, "--window", "nope", code=2)


# --------------------------------------------------------------------------------------------- info, prepare, train
def test_info_reports_checkpoint(tiny_weights: Path) -> None:
    from ldct_invrep.io.checkpoint import checkpoint_text, describe_header, load_restorer, read_header

    restorer, _ = load_restorer(tiny_weights)
    n_params = sum(p.numel() for p in restorer.parameters())
    out = invoke("info", tiny_weights).stdout
    assert re.search(r"^preset\s+lite$", out, re.MULTILINE) and re.search(r"^iterations\s+0$", out, re.MULTILINE)
    assert "base_channels=4" in out and f"{n_params:,}" in out and "installed ldct-invrep" in out
    # one rendering of a header: info's table and the reports' one-line description (checkpoint_text) share it
    header = read_header(tiny_weights)
    for _, title, text in describe_header(header):
        assert re.search(rf"^{re.escape(title)}\s+{re.escape(text)}$", out, re.MULTILINE), title
    assert checkpoint_text(header) == "preset lite, trained on none (random weights for tests), 0 iterations"
    assert checkpoint_text({"iterations": None, "preset": ""}) == "no training description in the header"
    doc = json.loads(invoke("info", tiny_weights, "--json").stdout)
    assert doc["parameters"] == n_params and doc["header"]["preset"] == "lite"
    invoke("info", tiny_weights.with_name("absent.pt"), code=2)


def test_prepare_errors_are_exit_2(tmp_path: Path) -> None:
    result = invoke("prepare", "mayo2016", tmp_path / "absent", "--out", tmp_path / "dl.json", code=2)
    assert len(error_lines(result)) == 1
    invoke("prepare", "nonsense", tmp_path, code=2)


def test_train_runs_bundle_with_overrides(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    marker = tmp_path / "ran.txt"
    config = {"message": "default", "run": [f"$open({str(marker)!r}, 'w').write(@message + ' ' + str(@bundle_root))"]}
    (bundle / "configs" / "train.json").write_text(json.dumps(config))
    dry = invoke("train", bundle, "message=dry", "--dry-run")
    assert "python -m monai.bundle run" in dry.stderr and not marker.exists()
    invoke("train", bundle, "message=hello")
    assert marker.read_text() == f"hello {bundle.resolve()}"
    invoke("train", tmp_path / "absent", code=2)
    invoke("train", bundle, "not-an-override", code=2)


# --------------------------------------------------------------------------------------------- demo
def test_demo_on_two_slices(sample_series: Path, tiny_weights: Path, tmp_path: Path, monkeypatch) -> None:
    from ldct_invrep import package_files

    two = copy_slices(sample_series, tmp_path / "sample2", 2)
    monkeypatch.setattr(package_files, "sample_series_path", lambda: two)
    out = tmp_path / "demo"
    text = invoke("demo", "--output", out, "--weights", tiny_weights, "--quiet").stdout
    for step in ("[1/3]", "[2/3]", "[3/3]", "ldct-invrep simulate-dose", "ldct-invrep denoise", "ldct-invrep evaluate"):
        assert step in text
    assert "data range 400 HU" in text and "data range 4096 HU" in text and "LIR denoised" in text
    assert len(output_files(out / "quarter_dose")) == 2 and len(output_files(out / "denoised")) == 2
    assert [p.name for p in output_files(out)] == ["denoised", "metrics.json", "quarter_dose"]
    invoke("demo", "--output", out, "--weights", tiny_weights, "--quiet")  # a demo replaces an earlier demo
    assert len(json.loads((out / "metrics.json").read_text())["reports"]) == 4
    other = tmp_path / "not_a_demo"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    invoke("demo", "--output", other, "--weights", tiny_weights, code=2)
    assert [p.name for p in other.iterdir()] == ["keep.txt"]


# --------------------------------------------------------------------------------------------- console script
@pytest.mark.slow
def test_console_script_exit_codes(series3: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("ldct-invrep")
    if not exe.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")

    def run(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run([str(exe), *map(str, args)], check=False, capture_output=True, text=True, timeout=300)

    ok = run("--version")
    assert ok.returncode == 0 and "0." in ok.stdout
    missing = run("evaluate", tmp_path / "absent", series3)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [f"error: {tmp_path / 'absent'}: no such file or folder"]
    usage = run("denoise", series3)
    assert usage.returncode == 2 and "Missing argument 'OUTPUT'" in usage.stderr
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "train.json").write_text(json.dumps({"run": ["$1 // 0"]}))
    failed = run("train", bundle)
    assert failed.returncode == 1, failed.stderr
    assert "error: unexpected" in failed.stderr and "--debug" in failed.stderr
