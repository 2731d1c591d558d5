"""Issue 13: never destroy user data, never write a wrong series, never hang.

One section per item of the issue, each built from copies of the sample series shipped with the package or
from generated files (no shared data needed).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from test_cli import copy_slices, error_lines, invoke, make_tiny_weights, output_files, sample_files

from ldct_invrep.io import OUTPUT_MARKER, read_series, scan_folder, scan_series


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


def uncompressed(sample: Path, dest: Path, n: int, edit: Callable[[int, pydicom.Dataset], None] | None = None) -> Path:
    """The first ``n`` sample slices, decompressed (Explicit VR Little Endian), each passed to ``edit(k, ds)``."""
    dest.mkdir(parents=True)
    for k, f in enumerate(sample_files(sample)[:n]):
        ds = pydicom.dcmread(f)
        ds.decompress()
        if edit is not None:
            edit(k, ds)
        ds.save_as(dest / f.name, enforce_file_format=True)
    return dest


def single_line_error(result, *needles: str) -> str:
    (line,) = error_lines(result)
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in line, line
    return line


# --------------------------------------------------------------------------------------------- 1. --overwrite
def test_1_overwrite_refuses_folders_the_tool_did_not_write(
    sample_series: Path, tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = copy_slices(sample_series, tmp_path / "in", 1)
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    for command in (["denoise", "--weights", tiny_weights], ["simulate-dose"]):
        result = invoke(command[0], src, thesis, *command[1:], "--overwrite", code=2)
        single_line_error(result, str(thesis), "not an output of ldct-invrep")
        assert [p.name for p in thesis.iterdir()] == ["chapter1.tex"]
    # ".", the current folder
    monkeypatch.chdir(thesis)
    single_line_error(invoke("denoise", src, ".", "--weights", tiny_weights, "--overwrite", code=2), "not an output of")
    assert (thesis / "chapter1.tex").read_text() == "years of work"


def test_1_overwrite_replaces_only_whole_outputs_and_never_the_weights(
    sample_series: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    src = copy_slices(sample_series, tmp_path / "in", 1)
    out = tmp_path / "den"
    invoke("denoise", src, out, "--weights", tiny_weights)
    marker = json.loads((out / OUTPUT_MARKER).read_text())
    assert marker["written_by"] == "ldct-invrep" and marker["entries"] == ["IM_00001.dcm"]
    invoke("denoise", src, out, "--weights", tiny_weights, "--overwrite")  # our own output: replaced
    # the weights being read, kept inside the output folder
    weights = out / "w.pt"
    shutil.copyfile(tiny_weights, weights)
    result = invoke("denoise", src, out, "--weights", weights, "--overwrite", code=2)
    single_line_error(result, str(out), "w.pt", "which this command reads")
    assert weights.read_bytes() == tiny_weights.read_bytes()
    # a file the user added to an output folder
    weights.unlink()
    (out / "notes.txt").write_text("my notes")
    for command in (["denoise", "--weights", tiny_weights], ["simulate-dose"]):
        result = invoke(command[0], src, out, *command[1:], "--overwrite", code=2)
        single_line_error(result, "notes.txt", "not written by ldct-invrep")
    assert (out / "notes.txt").read_text() == "my notes"


def test_1_overwrite_of_files_nifti_json_datalist(pair_nifti: tuple[Path, Path], tiny_weights: Path, tmp_path: Path) -> None:
    from ldct_invrep.data.datalist import write_datalist

    nii, ref = pair_nifti
    labels = tmp_path / "labels.nii.gz"  # a user's NIfTI, not written by the tool
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.float32), np.eye(4)), labels)
    before = labels.read_bytes()
    result = invoke("denoise", nii, labels, "--weights", tiny_weights, "--overwrite", code=2)
    single_line_error(result, str(labels), "not written by ldct-invrep")
    assert labels.read_bytes() == before
    ours = tmp_path / "den.nii.gz"
    invoke("denoise", nii, ours, "--weights", tiny_weights)
    assert nib.load(ours).header["descrip"].item().startswith(b"ldct-invrep")
    invoke("denoise", nii, ours, "--weights", tiny_weights, "--overwrite")
    # evaluate --json replaces only a metrics file of its own
    config = tmp_path / "config.json"
    config.write_text('{"mine": true}\n')
    single_line_error(invoke("evaluate", nii, ref, "--json", config, code=2), str(config), "not written by ldct-invrep")
    assert config.read_text() == '{"mine": true}\n'
    metrics = tmp_path / "metrics.json"
    invoke("evaluate", nii, ref, "--json", metrics)
    invoke("evaluate", nii, ref, "--json", metrics)
    # prepare's datalists
    with pytest.raises(Exception, match="not written by ldct-invrep"):
        write_datalist(config, {"training": []})
    assert config.read_text() == '{"mine": true}\n'
    write_datalist(tmp_path / "dl.json", {"training": []})
    write_datalist(tmp_path / "dl.json", {"training": [{"image": "a"}]})


@pytest.fixture
def pair_nifti(sample_series: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A 2-slice NIfTI of the sample series (written by the tool) and the DICOM series it came from."""
    src = copy_slices(sample_series, tmp_path / "in2", 2)
    nii = tmp_path / "in2.nii.gz"
    invoke("simulate-dose", src, nii, "--dose-fraction", 1)
    return nii, src


# --------------------------------------------------------------------------------------------- 2. evaluate geometry
def _save_nifti(path: Path, hu_kji: np.ndarray, affine: np.ndarray) -> Path:
    img = nib.Nifti1Image(np.ascontiguousarray(hu_kji.transpose(2, 1, 0)), affine)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    nib.save(img, path)
    return path


def test_2_evaluate_reorients_or_refuses_other_geometry(sample_series: Path, tmp_path: Path) -> None:
    ref = copy_slices(sample_series, tmp_path / "ref", 1)
    info = scan_series(ref)
    hu, affine = info.read_hu(), info.affine(ras=True)
    assert "".join(nib.aff2axcodes(affine)) == "LPS"
    # The same image in LAS: the row axis (j) reversed, with the matching affine.
    flip = np.eye(4)
    flip[1, 1], flip[1, 3] = -1, hu.shape[1] - 1
    las = _save_nifti(tmp_path / "las.nii.gz", hu[:, ::-1, :], affine @ flip)
    assert "".join(nib.aff2axcodes(nib.load(las).affine)) == "LAS"
    result = invoke("evaluate", las, ref, "--json", tmp_path / "m.json")
    assert "geometry: las: reoriented from LAS to LPS" in result.stdout
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["predictions"][0]["geometry"].startswith("las: reoriented from LAS to LPS")
    for report in doc["reports"]:
        assert report["summary"]["rmse_hu"]["mean"] < 0.01, report["summary"]  # the same image: no error
    # Geometries that disagree: refused, naming what differs.
    shifted = affine.copy()
    shifted[:3, 3] += [5.0, 0.0, 0.0]
    moved = _save_nifti(tmp_path / "moved.nii.gz", hu, shifted)
    single_line_error(invoke("evaluate", moved, ref, code=2), str(moved), "geometry differs", "origin differs by 5 mm")
    scaled = affine @ np.diag([1.1, 1.0, 1.0, 1.0])
    bigger = _save_nifti(tmp_path / "bigger.nii.gz", hu, scaled)
    single_line_error(invoke("evaluate", bigger, ref, code=2), "voxel size")


# --------------------------------------------------------------------------------------------- 3. padding
_YY, _XX = np.mgrid[:512, :512]
OUTSIDE_FOV = (_YY - 255.5) ** 2 + (_XX - 255.5) ** 2 > 230.0**2


def _pad_unsigned(k: int, ds: pydicom.Dataset) -> None:
    """Unsigned pixels, intercept -1024, PixelPaddingValue 0 (padding at -1024 HU) outside a circular field of view."""
    arr = ds.pixel_array.astype(np.uint16)
    arr[~OUTSIDE_FOV & (arr == 0)] = 1
    arr[OUTSIDE_FOV] = 0
    ds.add_new("PixelPaddingValue", "US", 0)
    ds.PixelData = arr.tobytes()


def _pad_signed_range(k: int, ds: pydicom.Dataset) -> None:
    """Signed pixels, padding between PixelPaddingValue -2000 and PixelPaddingRangeLimit -1990 (about -3024 HU)."""
    arr = ds.pixel_array.astype(np.int16)
    arr[OUTSIDE_FOV] = np.random.default_rng(k).integers(-2000, -1989, int(OUTSIDE_FOV.sum()))
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 1, 16, 15
    ds.add_new("PixelPaddingValue", "SS", -2000)
    ds.add_new("PixelPaddingRangeLimit", "SS", -1990)
    ds.PixelData = arr.tobytes()


def _check_padding(src: Path, out: Path, limits: tuple[int, int]) -> None:
    low, high = limits
    changed = 0
    for s, o in zip(sorted(src.iterdir()), output_files(out), strict=True):
        a, b = pydicom.dcmread(s), pydicom.dcmread(o)
        assert int(b.PixelPaddingValue) == low
        stored_in, stored_out = a.pixel_array, b.pixel_array
        padding = (stored_in >= low) & (stored_in <= high)
        assert padding.sum() == OUTSIDE_FOV.sum()
        np.testing.assert_array_equal(stored_out[padding], stored_in[padding])  # padding kept exactly
        inside = stored_out[~padding]
        assert not np.any((inside >= low) & (inside <= high)), "a pixel inside the field of view became padding"
        changed += int(np.count_nonzero(stored_out[~padding] != stored_in[~padding]))
    assert changed > 10_000, "the series was not processed"


@pytest.mark.parametrize(("edit", "limits"), [(_pad_unsigned, (0, 0)), (_pad_signed_range, (-2000, -1990))], ids=["unsigned", "signed-range"])
def test_3_padding_kept_by_denoise_and_simulate_dose(
    edit, limits: tuple[int, int], sample_series: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    src = uncompressed(sample_series, tmp_path / "padded", 1, edit)
    assert scan_series(src).padding == [limits]
    invoke("denoise", src, tmp_path / "den", "--weights", tiny_weights)
    _check_padding(src, tmp_path / "den", limits)
    invoke("simulate-dose", src, tmp_path / "sim", "--dose-fraction", 0.25)
    _check_padding(src, tmp_path / "sim", limits)
    # NIfTI output of a padded series: padding keeps its HU
    invoke("simulate-dose", src, tmp_path / "sim.nii.gz", "--dose-fraction", 0.25)
    hu_in = read_series(src).hu[0]
    hu_out = np.asarray(nib.load(tmp_path / "sim.nii.gz").dataobj)[..., 0].T
    np.testing.assert_array_equal(hu_out[OUTSIDE_FOV], hu_in[OUTSIDE_FOV])


# --------------------------------------------------------------------------------------------- 4. SIGTERM/SIGHUP
def _temporaries(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith((".tmp-", ".old-"))]


def test_4_sigterm_leaves_no_partial_series(sample_series: Path, tiny_weights: Path, tmp_path: Path) -> None:
    parent = tmp_path / "outputs"
    parent.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "ldct_invrep.cli", "denoise", str(sample_series), str(parent / "den"),
        "--weights", str(tiny_weights), "--batch-size", "1", "--threads", "1", "-q",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 240
        while not any(t.is_dir() and any(t.glob("*.dcm")) for t in _temporaries(parent)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no partial output appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "error: stopped by SIGTERM; no partial output was left behind" in stderr
    assert list(parent.iterdir()) == []


def test_4_sighup_handled_like_ctrl_c(series_and_weights, monkeypatch: pytest.MonkeyPatch) -> None:
    from ldct_invrep.inference import SliceDenoiser

    src, weights, parent = series_and_weights
    original, calls = SliceDenoiser.denoise_batch, []

    def hang_up(self, hu):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(5)  # the handler raises before this ends
        return original(self, hu)

    monkeypatch.setattr(SliceDenoiser, "denoise_batch", hang_up)
    def safety(signum, frame):  # were the CLI's handler missing, the test process would not die
        pass

    before = signal.signal(signal.SIGHUP, safety)
    try:
        result = invoke("denoise", src, parent / "den", "--weights", weights, "--batch-size", 1, code=128 + signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) is safety  # the CLI put the previous handler back
    finally:
        signal.signal(signal.SIGHUP, before)
    assert error_lines(result) == ["error: stopped by SIGHUP; no partial output was left behind"]
    assert list(parent.iterdir()) == []


@pytest.fixture
def series_and_weights(sample_series: Path, tiny_weights: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    parent = tmp_path / "outputs"
    parent.mkdir()
    return copy_slices(sample_series, tmp_path / "in", 3), tiny_weights, parent


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_4_scans_skip_and_runs_clean_stale_temporaries(sample_series: Path, tiny_weights: Path, tmp_path: Path) -> None:
    from ldct_invrep.io import atomic

    study = tmp_path / "study"
    copy_slices(sample_series, study / "series", 3)
    # What a SIGKILLed run leaves: a hidden partial series (another SeriesInstanceUID) next to its target.
    pid = _dead_pid()
    stale = study / f".tmp-{atomic._HOST}-{pid}-abcdef-den"
    stale.mkdir()
    ds = pydicom.dcmread(sample_files(sample_series)[5])
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(stale / "IM_00001.dcm")
    result = invoke("denoise", study, tmp_path / "all", "--weights", tiny_weights, "-r")  # one series, not two
    assert len(output_files(tmp_path / "all")) == 3, result.stderr
    # The next run writing the same target removes the temporary of the dead process.
    invoke("denoise", study / "series", study / "den", "--weights", tiny_weights)
    assert not stale.exists() and len(output_files(study / "den")) == 3
    # A previous output caught in the middle of its replacement is put back, never deleted.
    old = study / f".old-{atomic._HOST}-{pid}-abcdef-den"
    os.rename(study / "den", old)
    result = invoke("denoise", study / "series", study / "den", "--weights", tiny_weights, code=2)
    assert "restored the previous output" in result.stderr and "already exists" in error_lines(result)[0]
    assert len(output_files(study / "den")) == 3 and not old.exists()
    # A live process's temporary is left alone.
    live = study / f".tmp-{atomic._HOST}-{os.getpid()}-abcdef-den"
    live.mkdir()
    invoke("denoise", study / "series", study / "den", "--weights", tiny_weights, "--overwrite")
    assert live.is_dir()


# --------------------------------------------------------------------------------------------- 5. lost slices
def test_5_unreadable_slice_and_gap_are_reported(sample_series: Path, tiny_weights: Path, tmp_path: Path) -> None:
    src = copy_slices(sample_series, tmp_path / "in", 6)
    names = [p.name for p in sorted(src.iterdir())]  # by name = by descending z, 2 mm apart
    (src / names[2]).write_bytes(b"")  # a failed copy
    (src / "extra.dcm").write_bytes(b"garbage, not DICOM")
    (src / "notes.txt").write_text("not a slice")
    scan = scan_folder(src)
    assert sorted(p.name for p, _ in scan.lost) == sorted([names[2], "extra.dcm"])
    result = invoke("denoise", src, tmp_path / "den", "--weights", tiny_weights)
    assert f"warning: {src / names[2]}: looks like a slice but cannot be read (empty file (0 bytes))" in result.stderr
    assert "extra.dcm" in result.stderr and "notes.txt" not in result.stderr
    gap = [ln for ln in result.stderr.splitlines() if "uneven slice spacing" in ln]
    assert len(gap) == 1 and f"4 mm between {names[3]}" in gap[0] and f"and {names[1]}" in gap[0], gap
    assert "about 1 missing slice" in gap[0]
    assert len(output_files(tmp_path / "den")) == 5


# --------------------------------------------------------------------------------------------- 6. FIFO
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_6_fifo_in_tree_is_skipped_not_read(sample_series: Path, tiny_weights: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    series = copy_slices(sample_series, study / "series", 2)
    os.mkfifo(study / "pipe")
    os.mkfifo(series / "IM_pipe.dcm")
    found: dict = {}
    worker = threading.Thread(target=lambda: found.update(scan=scan_folder(study, recursive=True)), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "scan_folder blocked on a FIFO"
    assert sorted(p.name for p in found["scan"].non_regular) == ["IM_pipe.dcm", "pipe"]
    result = invoke("denoise", study, tmp_path / "den", "--weights", tiny_weights, "-r")
    assert "skipped 2 FIFOs" in result.stderr and len(output_files(tmp_path / "den")) == 2
    single_line_error(invoke("denoise", study / "pipe", tmp_path / "x", code=2), "not a regular file or folder")


# --------------------------------------------------------------------------------------------- 7. RescaleSlope 0
def test_7_rescale_slope_zero_refused_even_with_force(sample_series: Path, tiny_weights: Path, tmp_path: Path) -> None:
    src = copy_slices(sample_series, tmp_path / "in", 2)
    bad = sorted(src.iterdir())[1]
    ds = pydicom.dcmread(bad)
    ds.RescaleSlope = 0
    ds.save_as(bad)
    for extra in ([], ["--force"]):
        result = invoke("denoise", src, tmp_path / "den", "--weights", tiny_weights, *extra, code=2)
        single_line_error(result, str(bad), "RescaleSlope is 0")
    assert not (tmp_path / "den").exists()
    # A missing slope with --force keeps the real intercept (it used to be dropped: +1024 HU everywhere).
    del ds.RescaleSlope
    ds.save_as(bad)
    info = scan_series(src, force=True)
    assert info.rescale == [(1.0, -1024.0), (1.0, -1024.0)]
    assert info.paths[0] == bad  # lower z first
    np.testing.assert_array_equal(info.read_hu([0])[0], read_series(sample_files(sample_series)[1]).hu[0])


# --------------------------------------------------------------------------------------------- 8. bad values
def _checkpoint_with(tmp_path: Path, tiny: Path, name: str, header: dict | None = None, state: Callable | None = None) -> Path:
    payload = torch.load(tiny, weights_only=True)
    doc = json.loads(payload["header_json"])
    doc.update(header or {})
    payload["header_json"] = json.dumps(doc)
    if state is not None:
        state(payload["state_dict"])
    path = tmp_path / name
    torch.save(payload, path)
    return path


def _nan_weight(state: dict) -> None:
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first].view(-1)[0] = float("nan")


BAD_CHECKPOINTS = [
    ("hu_range", {"hu_range": [3072, -1024]}, None),
    ("hu_range", {"hu_range": ["a", "b"]}, None),
    ("hu_range", {"hu_range": [-1024, float("nan")]}, None),
    ("self_ensemble", {"self_ensemble": 3}, None),
    ("self_ensemble", {"self_ensemble": "eight"}, None),
    ("reference_noise_hu", {"reference_noise_hu": float("nan")}, None),
    ("reference_noise_hu", {"reference_noise_hu": -5}, None),
    ("NaN or infinite", {}, _nan_weight),
]


@pytest.mark.parametrize(("problem", "header", "state"), BAD_CHECKPOINTS, ids=[f"{p}-{i}" for i, (p, _, _) in enumerate(BAD_CHECKPOINTS)])
def test_8_bad_checkpoints_are_bad_input_for_denoise_and_info(
    problem: str, header: dict, state, series_and_weights, tmp_path: Path
) -> None:
    src, tiny, parent = series_and_weights
    bad = _checkpoint_with(tmp_path, tiny, "bad.pt", header, state)
    single_line_error(invoke("denoise", src, parent / "den", "--weights", bad, code=2), str(bad), problem)
    single_line_error(invoke("info", bad, code=2), str(bad), problem)
    assert list(parent.iterdir()) == []


@pytest.mark.parametrize("absurd", [{"base_channels": 3000}, {"n_res": 10**9}], ids=["base_channels", "n_res"])
def test_8_absurd_network_refused_before_allocating(absurd: dict, series_and_weights, tmp_path: Path) -> None:
    import resource

    src, tiny, parent = series_and_weights
    config = json.loads(torch.load(tiny, weights_only=True)["header_json"])["config"]
    bad = _checkpoint_with(tmp_path, tiny, "huge.pt", {"config": {**config, **absurd}})
    assert bad.stat().st_size < 200_000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    single_line_error(invoke("info", bad, code=2), str(bad), "do not match the stored config")
    single_line_error(invoke("denoise", src, parent / "den", "--weights", bad, code=2), str(bad), "do not match")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 1_000_000  # KiB: far below 1 GB


def test_8_bad_header_values_and_options(sample_series: Path, tmp_path: Path) -> None:
    def edit_first(folder: Path, change: Callable[[pydicom.Dataset], None]) -> Path:
        path = sorted(folder.iterdir())[0]
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path)
        return path

    zero = copy_slices(sample_series, tmp_path / "zero", 2)
    path = edit_first(zero, lambda ds: setattr(ds, "PixelSpacing", [0, 0]))
    single_line_error(invoke("simulate-dose", zero, tmp_path / "o1", code=2), str(path), "PixelSpacing")
    negative = copy_slices(sample_series, tmp_path / "neg", 1)
    path = edit_first(negative, lambda ds: setattr(ds, "SliceThickness", -3))
    single_line_error(invoke("simulate-dose", negative, tmp_path / "o2", code=2), str(path), "SliceThickness -3")
    for option in (["--dose-fraction", "nan"], ["--seed", "-1"]):
        result = invoke("simulate-dose", negative, tmp_path / "o3", *option, code=2)
        assert f"Invalid value for '{option[0]}'" in result.stderr and "Traceback" not in result.stderr
    assert not any((tmp_path / n).exists() for n in ("o1", "o2", "o3"))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["disk-full", "read-only"])
def test_8_full_or_read_only_disk_is_one_line(code: int, series_and_weights, monkeypatch: pytest.MonkeyPatch) -> None:
    src, weights, parent = series_and_weights

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(pydicom, "dcmwrite", fail)
    monkeypatch.setattr(nib, "save", fail)
    for out in (parent / "den", parent / "den.nii.gz"):
        result = invoke("denoise", src, out, "--weights", weights, code=2)
        assert error_lines(result) == [f"error: {out}: cannot write the output: {os.strerror(code)}"]
        assert "Traceback" not in result.stderr
    assert list(parent.iterdir()) == []


def test_8_disk_full_inside_pydicom_is_one_line(series_and_weights, monkeypatch: pytest.MonkeyPatch) -> None:
    """pydicom re-raises a write's OSError as ``OSError("With tag (7FE0,0010) got exception: ... Traceback ...")``
    without its errno; that was exit 1 with traceback text in the line."""
    import pydicom.filewriter

    src, weights, parent = series_and_weights
    original = pydicom.filewriter.write_data_element

    def full(fp, elem, *args, **kwargs):
        if elem.tag == 0x7FE00010:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(fp, elem, *args, **kwargs)

    monkeypatch.setattr(pydicom.filewriter, "write_data_element", full)
    for command in (["denoise", src, parent / "den", "--weights", weights], ["simulate-dose", src, parent / "sim"]):
        result = invoke(*command, code=2)
        assert error_lines(result) == [f"error: {command[2]}: cannot write the output: {os.strerror(errno.ENOSPC)}"]
        assert "Traceback" not in result.stderr
    assert list(parent.iterdir()) == []


def test_8_torchscript_of_another_network_refused(series_and_weights, tmp_path: Path) -> None:
    src, weights, parent = series_and_weights
    foreign = tmp_path / "foreign.ts"
    torch.jit.script(torch.nn.Conv2d(1, 1, 3, padding=1)).save(str(foreign))  # runs on a slice: was used as weights
    for command in (["denoise", src, parent / "den", "--weights", foreign], ["info", foreign]):
        single_line_error(invoke(*command, code=2), str(foreign), "TorchScript of a Conv2d, not of an ldct-invrep Restorer")
    assert list(parent.iterdir()) == []
    from ldct_invrep.io.checkpoint import load_restorer

    restorer, _ = load_restorer(weights)
    ours = tmp_path / "model.ts"
    torch.jit.script(restorer).save(str(ours))
    invoke("denoise", src, parent / "den", "--weights", ours)  # an export of ours still runs


# --------------------------------------------------------------------------------------------- 9. NIfTI geometry
def test_9_nifti_affine_follows_tilted_positions(sample_series: Path, tiny_weights: Path, tmp_path: Path) -> None:
    def tilt(k: int, ds: pydicom.Dataset) -> None:
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + 0.6 * (z + 766.5), z]  # the table moves 0.6 mm in y per mm of z
        ds.GantryDetectorTilt = 16.7

    src = uncompressed(sample_series, tmp_path / "tilted", 4, tilt)
    out = tmp_path / "den.nii.gz"
    invoke("denoise", src, out, "--weights", tiny_weights)
    img = nib.load(out)
    ipps = sorted((np.array([float(v) for v in pydicom.dcmread(f).ImagePositionPatient]) for f in src.iterdir()), key=lambda p: p[2])
    for k, ipp in enumerate(ipps):
        ras = img.affine @ [0, 0, k, 1]
        np.testing.assert_allclose(ras[:3], [-ipp[0], -ipp[1], ipp[2]], atol=1e-3)
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 0  # a qform cannot hold the shear


def test_9_nifti_refused_for_missing_slice(sample_series: Path, tiny_weights: Path, tmp_path: Path) -> None:
    src = copy_slices(sample_series, tmp_path / "in", 5)
    sorted(src.iterdir())[2].unlink()
    result = invoke("denoise", src, tmp_path / "den.nii.gz", "--weights", tiny_weights, code=2)
    single_line_error(result, str(src), "uneven slice spacing", "a NIfTI affine cannot place")
    assert not (tmp_path / "den.nii.gz").exists()
    invoke("denoise", src, tmp_path / "den", "--weights", tiny_weights)  # a DICOM series keeps each position
    assert len(output_files(tmp_path / "den")) == 4


# --------------------------------------------------------------------------------------------- 10. messages
def test_10_messages_fit_the_command(sample_series: Path, tmp_path: Path) -> None:
    nested = tmp_path / "study"
    copy_slices(sample_series, nested / "series", 1)
    line = single_line_error(invoke("evaluate", nested, nested, code=2), "no files in the folder itself")
    assert "give the sub-folder that holds the series" in line and "recursive" not in line  # evaluate has no -r
    mr = copy_slices(sample_series, tmp_path / "mr", 1)
    path = sorted(mr.iterdir())[0]
    ds = pydicom.dcmread(path)
    ds.Modality = "MR"
    ds.save_as(path)
    line = single_line_error(invoke("evaluate", mr, nested / "series", code=2), "Modality is MR")
    assert "--force" not in line  # evaluate has no --force
    assert "--force" in single_line_error(invoke("simulate-dose", mr, tmp_path / "s", code=2), "Modality is MR")


def test_10_uint8_and_orientationless_nifti(tiny_weights: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    eight_bit = tmp_path / "photo.nii.gz"
    nib.save(nib.Nifti1Image(rng.integers(0, 256, (64, 64, 2)).astype(np.uint8), np.eye(4)), eight_bit)
    result = invoke("denoise", eight_bit, tmp_path / "a.nii.gz", "--weights", tiny_weights)
    assert f"warning: {eight_bit}: values 0..255" in result.stderr and "do not look like HU" in result.stderr
    bare = tmp_path / "bare.nii.gz"
    img = nib.Nifti1Image(rng.normal(0, 50, (64, 64, 2)).astype(np.float32) - 1000 * (rng.random((64, 64, 2)) > 0.5), None)
    img.header.set_zooms((0.7, 0.7, 2.0))
    nib.save(img, bare)
    assert int(nib.load(bare).header["qform_code"]) == int(nib.load(bare).header["sform_code"]) == 0
    out = tmp_path / "b.nii.gz"
    result = invoke("denoise", bare, out, "--weights", tiny_weights)
    assert "no qform/sform" in result.stderr
    header = nib.load(out).header
    assert int(header["qform_code"]) == int(header["sform_code"]) == 0  # not claimed as scanner coordinates
    np.testing.assert_allclose(header.get_zooms(), (0.7, 0.7, 2.0))
    assert "compared voxel by voxel" in invoke("evaluate", out, bare).stdout
