"""Every bad input of the data layer reaches the user as one ``error: <path>: <problem>`` line and exit 2.

Bad inputs are made in ``tmp_path`` from copies of the sample series; nothing is ever written for them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian
from test_cli import copy_slices, error_lines, invoke, make_tiny_weights, output_files, sample_files


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


def _edit(folder: Path, index: int, change: Callable[[pydicom.Dataset], None]) -> Path:
    path = sorted(folder.iterdir())[index]
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)
    return path


def empty_folder(sample: Path, tmp: Path) -> tuple[Path, str]:
    folder = tmp / "empty"
    folder.mkdir()
    return folder, "folder is empty"


def non_dicom_files(sample: Path, tmp: Path) -> tuple[Path, str]:
    folder = tmp / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not an image\n")
    (folder / "scan.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    return folder, "no DICOM images found"


def two_series(sample: Path, tmp: Path) -> tuple[Path, str]:
    folder = copy_slices(sample, tmp / "two", 2)
    for i, uid in enumerate(["1.2.826.0.1.1", "1.2.826.0.1.2"]):
        _edit(folder, i, lambda ds, uid=uid: setattr(ds, "SeriesInstanceUID", uid))
    return folder, "2 DICOM series found"


def mr_modality(sample: Path, tmp: Path) -> tuple[Path, str]:
    folder = copy_slices(sample, tmp / "mr", 1)
    _edit(folder, 0, lambda ds: setattr(ds, "Modality", "MR"))
    return folder, "Modality is MR, not CT"


def _drop_rescale(ds: pydicom.Dataset) -> None:
    del ds.RescaleSlope
    del ds.RescaleIntercept


def missing_rescale_unsigned(sample: Path, tmp: Path) -> tuple[Path, str]:
    folder = copy_slices(sample, tmp / "norescale", 2)
    _edit(folder, 1, _drop_rescale)
    return folder, "RescaleSlope/RescaleIntercept missing and the pixel data is unsigned"


def truncated_file(sample: Path, tmp: Path) -> tuple[Path, str]:
    folder = copy_slices(sample, tmp / "truncated", 2)
    path = sorted(folder.iterdir())[1]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return folder, path.name


def inconsistent_sizes(sample: Path, tmp: Path) -> tuple[Path, str]:
    folder = copy_slices(sample, tmp / "sizes", 2)

    def crop(ds: pydicom.Dataset) -> None:
        small = np.ascontiguousarray(ds.pixel_array[:256, :256])
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.Rows, ds.Columns = small.shape
        ds.PixelData = small.tobytes()

    _edit(folder, 0, crop)
    return folder, "slices have different sizes"


def nan_nifti(sample: Path, tmp: Path) -> tuple[Path, str]:
    data = np.full((16, 16, 2), -1000.0, dtype=np.float32)
    data[3, 4, 1] = np.nan
    path = tmp / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path, "NaN or infinite voxels"


BAD_INPUTS = [empty_folder, non_dicom_files, two_series, mr_modality, missing_rescale_unsigned, truncated_file,
              inconsistent_sizes, nan_nifti]


@pytest.mark.parametrize("make", BAD_INPUTS, ids=[f.__name__ for f in BAD_INPUTS])
def test_bad_input_one_line_exit_2(make, sample_series: Path, tiny_weights: Path, tmp_path: Path) -> None:
    bad, problem = make(sample_series, tmp_path)
    out = tmp_path / "out" / ("den.nii.gz" if bad.name.endswith(".nii.gz") else "den")
    result = invoke("denoise", bad, out, "--weights", tiny_weights, code=2)
    print(result.stderr)
    (line,) = error_lines(result)
    assert line.startswith(f"error: {bad}") and problem in line, line
    assert "Traceback" not in result.stderr
    assert not out.exists()
    if out.parent.exists():
        assert list(out.parent.iterdir()) == [], "temporary output left behind"


def test_mr_accepted_with_force(sample_series: Path, tiny_weights: Path, tmp_path: Path) -> None:
    bad, _ = mr_modality(sample_series, tmp_path)
    invoke("denoise", bad, tmp_path / "den", "--weights", tiny_weights, "--force")
    assert len(output_files(tmp_path / "den")) == 1


def test_existing_output_needs_overwrite(sample_series: Path, tiny_weights: Path, tmp_path: Path) -> None:
    src = copy_slices(sample_series, tmp_path / "in", 1)
    out = tmp_path / "den"
    out.mkdir()
    (out / "old.txt").write_text("previous result")
    result = invoke("denoise", src, out, "--weights", tiny_weights, code=2)
    assert error_lines(result) == [f"error: {out}: output already exists; pass --overwrite to replace it"]
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    refused = invoke("denoise", src, out, "--weights", tiny_weights, "--overwrite", code=2)  # not an output of ours
    assert "not an output of ldct-invrep" in error_lines(refused)[0]
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    ours = tmp_path / "ours"
    invoke("denoise", src, ours, "--weights", tiny_weights)
    invoke("denoise", src, ours, "--weights", tiny_weights, "--overwrite")
    assert [p.suffix for p in output_files(ours)] == [".dcm"]


def test_output_inside_input_refused(sample_series: Path, tiny_weights: Path, tmp_path: Path) -> None:
    src = copy_slices(sample_series, tmp_path / "in", 1)
    result = invoke("denoise", src, src / "den", "--weights", tiny_weights, code=2)
    (line,) = error_lines(result)
    assert "inside the input folder" in line
    assert sorted(p.name for p in src.iterdir()) == [sample_files(sample_series)[0].name]


def test_missing_weights_file(sample_series: Path, tmp_path: Path) -> None:
    src = copy_slices(sample_series, tmp_path / "in", 1)
    weights = tmp_path / "nowhere.pt"
    result = invoke("denoise", src, tmp_path / "den", "--weights", weights, code=2)
    assert error_lines(result) == [f"error: {weights}: weights file not found"]


def test_corrupt_weights_file(sample_series: Path, tmp_path: Path) -> None:
    src = copy_slices(sample_series, tmp_path / "in", 1)
    weights = tmp_path / "garbage.pt"
    weights.write_bytes(b"not a checkpoint")
    result = invoke("denoise", src, tmp_path / "den", "--weights", weights, code=2)
    (line,) = error_lines(result)
    assert line.startswith(f"error: {weights}")
    assert not (tmp_path / "den").exists()


def test_missing_input_and_bad_usage(tmp_path: Path, tiny_weights: Path) -> None:
    result = invoke("denoise", tmp_path / "absent", tmp_path / "den", "--weights", tiny_weights, code=2)
    assert error_lines(result) == [f"error: {tmp_path / 'absent'}: no such file or folder"]
    invoke("denoise", tmp_path, tmp_path / "x.nii.gz", "--format", "dicom", code=2)
    invoke("denoise", tmp_path, "--batch-size", 0, code=2)
    shutil.rmtree(tmp_path / "den", ignore_errors=True)


# --------------------------------------------------------------------------------------------- structured errors
def test_input_error_words_its_remedies_for_the_api_and_for_each_command(tmp_path: Path) -> None:
    import pickle

    from ldct_invrep.errors import InputError
    from ldct_invrep.io.dicom_read import CHOOSE_SERIES

    error = InputError(tmp_path, "2 DICOM series found: a, b; ", remedies=CHOOSE_SERIES)
    assert (error.path, error.problem) == (tmp_path, "2 DICOM series found: a, b; ")
    assert str(error) == f"{tmp_path}: 2 DICOM series found: a, b; choose one with series_uid (or read them all with read_all_series)"
    assert error.cli_message() == f"{tmp_path}: 2 DICOM series found: a, b; choose one with --series-uid (or read them all with --all-series)"
    assert error.cli_message({"--label"}) == f"{tmp_path}: 2 DICOM series found: a, b; give the folder of one series"
    assert pickle.loads(pickle.dumps(error)).cli_message({"--series-uid"}).endswith("choose one with --series-uid")
    plain = InputError("methods: none given")
    assert plain.path is None and str(plain) == plain.cli_message() == "methods: none given"


def test_two_series_folder_names_the_options_of_the_command(sample_series: Path, tmp_path: Path) -> None:
    from ldct_invrep.io.volumes import open_volumes

    study = tmp_path / "study"
    copy_slices(sample_series, study, 2)
    for path in sorted(study.iterdir())[:1]:
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.10.999.7"
        ds.save_as(path)
    line = error_lines(invoke("simulate-dose", study, tmp_path / "sim", code=2))[0]
    assert "choose one with --series-uid (or read them all with --all-series)" in line and "series_uid " not in line
    line = error_lines(invoke("evaluate", study, study, code=2))[0]
    assert line.endswith("give the folder of one series"), line
    with pytest.raises(Exception, match=r"choose one with series_uid \(or read them all with read_all_series\)"):
        open_volumes(study)


def test_evaluate_slices_smaller_than_the_ssim_window_names_the_file(sample_series: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.nii.gz"
    nib.save(nib.Nifti1Image(np.full((8, 8, 2), -1000.0, dtype=np.float32), np.eye(4)), small)
    (line,) = error_lines(invoke("evaluate", small, small, code=2))  # was "error: pred_hu: ..."
    assert line == f"error: {small}: slices of 8x8 are smaller than the 11x11 SSIM window"


# --------------------------------------------------------------------------------------------- output places
def test_output_under_a_file_is_one_line_exit_2(tmp_path: Path) -> None:
    from ldct_invrep.errors import InputError
    from ldct_invrep.io import atomic_output_file, atomic_replace

    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine\n")
    result = invoke("bundle", "export", "ldct_simulated", blocker / "bundle", code=2)  # was exit 1, FileExistsError
    assert error_lines(result) == [f"error: {blocker / 'bundle'}: cannot write the output: {blocker} is a file, not a folder"]
    for writer in (atomic_replace, atomic_output_file):  # training states and checkpoints; datalists and metrics
        with pytest.raises(InputError, match=f"{blocker}/sub/x.pt: cannot write the output: {blocker} is a file"):
            with writer(blocker / "sub" / "x.pt"):
                pass
    assert blocker.read_text() == "mine\n" and list(tmp_path.iterdir()) == [blocker]


@pytest.mark.shared_data
def test_prepare_out_that_is_a_file_names_it(tmp_path: Path) -> None:
    from conftest import shared_path

    root = shared_path("set12")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    (line,) = error_lines(invoke("prepare", "set12", root, "--out", notes, code=2))  # was exit 1, FileExistsError
    assert line == f"error: {notes / 'set12.json'}: cannot write the output: {notes} is a file, not a folder"
    assert notes.read_text() == "mine\n" and list(tmp_path.iterdir()) == [notes]


# --------------------------------------------------------------------------------------------- evaluate --pairs
def _pairs_datalist(tmp: Path, noisy: np.ndarray, clean: np.ndarray, **entry: object) -> tuple[Path, Path, Path]:
    np.save(tmp / "noisy.npy", noisy)
    np.save(tmp / "clean.npy", clean)
    datalist = tmp / "pairs.json"
    datalist.write_text(json.dumps({"test": [{"noisy": "noisy.npy", "clean": "clean.npy", **entry}]}))
    return datalist, tmp / "noisy.npy", tmp / "clean.npy"


def test_evaluate_pairs_bad_images_name_their_file(tmp_path: Path) -> None:
    good = np.random.default_rng(0).normal(40, 20, (32, 32)).astype(np.float32)
    bad = good.copy()
    bad[3, 4] = np.nan
    datalist, noisy, clean = _pairs_datalist(tmp_path, good, bad)
    (line,) = error_lines(invoke("evaluate", "--pairs", datalist, "-m", "input", code=2))  # was "error: ref_hu: ..."
    assert line == f"error: {clean}: NaN or infinite values"
    datalist, noisy, _ = _pairs_datalist(tmp_path, np.zeros((5, 5), np.float32), np.zeros((5, 5), np.float32))
    (line,) = error_lines(invoke("evaluate", "--pairs", datalist, "-m", "input", code=2))  # was "error: pred_hu: ..."
    assert line == f"error: {noisy}: slices of 5x5 are smaller than the 11x11 SSIM window"
    datalist.write_text(json.dumps({"test": [{"noisy": 3, "clean": "clean.npy"}]}))
    (line,) = error_lines(invoke("evaluate", "--pairs", datalist, "-m", "input", code=2))  # named no datalist
    assert line == f"error: {datalist}: entry 0 of 'test' is not a pair (needs 'noisy' and 'clean' paths)"


# --------------------------------------------------------------------------------------------- fetch
def test_fetch_offline_is_one_line_exit_2_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import urllib.error

    import torch

    timeouts: list[float | None] = []

    def offline(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        timeouts.append(socket.getdefaulttimeout())
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    dest = tmp_path / "new" / "deeper" / "vgg19-dcbb9e9d.pth"
    result = invoke("fetch", "vgg19", "--to", dest, code=2)  # was exit 1 "unexpected URLError", folders left
    (line,) = error_lines(result)
    assert line.startswith("error: https://download.pytorch.org/models/vgg19-dcbb9e9d.pth: download failed (") and (
        "Name or service not known" in line and "nothing was written" in line
    ), line
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []
    assert timeouts and timeouts[0] is not None and socket.getdefaulttimeout() is None  # bounded, then restored


# --------------------------------------------------------------------------------------------- demo --output
def test_demo_refuses_other_outputs_the_sample_folder_and_bad_weights_before_any_work(
    sample_series: Path, tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ldct_invrep import package_files

    two = copy_slices(sample_series, tmp_path / "sample2", 2)
    monkeypatch.setattr(package_files, "sample_series_path", lambda: two)
    denoised = tmp_path / "den"
    invoke("denoise", two, denoised, "--weights", tiny_weights, "--quiet")
    before = sorted(p.name for p in denoised.iterdir())
    (line,) = error_lines(invoke("demo", "--output", denoised, "--weights", tiny_weights, "--quiet", code=2))
    assert line.startswith(f"error: {denoised / before[1]}: not part of an earlier demo's output"), line  # was mixed in
    assert sorted(p.name for p in denoised.iterdir()) == before
    inside = two / "demo"
    (line,) = error_lines(invoke("demo", "--output", inside, "--weights", tiny_weights, "--quiet", code=2))
    assert f"output is inside the input folder {two}" in line and not inside.exists()  # was left there, marker and all
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    fresh = tmp_path / "fresh"
    (line,) = error_lines(invoke("demo", "--output", fresh, "--weights", junk, "--quiet", code=2))
    assert line.startswith(f"error: {junk}") and not fresh.exists()  # was found after the simulation, in fresh/


# --------------------------------------------------------------------------------------------- train
def _bundle(tmp: Path, config: object) -> Path:
    (tmp / "bundle" / "configs").mkdir(parents=True)
    text = config if isinstance(config, str) else json.dumps(config)
    (tmp / "bundle" / "configs" / "train.json").write_text(text)
    return tmp / "bundle"


TINY_BUNDLE = {
    "imports": ["$import ignite"],
    "max_iterations": 2,
    "engine": {"_target_": "ignite.engine.Engine", "process_function": "$lambda e, b: (_ for _ in ()).throw(KeyboardInterrupt())"},
    "stats": {"_target_": "StatsHandler", "iteration_log": False, "epoch_log": False},
    "run": ["$@stats.attach(@engine)", "$@engine.run([1, 2], max_epochs=1)"],
    "noop": "$int(@max_iterations)",
}


def test_train_bad_config_and_run_id_are_one_line_exit_2(tmp_path: Path) -> None:
    bad = _bundle(tmp_path / "a", "{not json")
    (line,) = error_lines(invoke("train", bad, code=2))  # were exit 1 (JSONDecodeError, AttributeError, ValueError)
    assert line.startswith(f"error: {bad / 'configs' / 'train.json'}: not a readable bundle config (Expecting")
    listed = _bundle(tmp_path / "b", [1, 2])
    (line,) = error_lines(invoke("train", listed, code=2))
    assert line == f"error: {listed / 'configs' / 'train.json'}: a bundle config must be a JSON/YAML mapping of ids to values, not list"
    tiny = _bundle(tmp_path / "c", TINY_BUNDLE)
    (line,) = error_lines(invoke("train", tiny, "--run-id", "nop", code=2))
    assert line == f"error: {tiny / 'configs' / 'train.json'}: no id 'nop' to run (--run-id) (did you mean noop?)"
    result = invoke("train", tiny, "--meta_file", tmp_path / "absent.json", "--run-id", "noop", "max_iteration=3")  # was exit 1: meta_file twice
    assert "warning: override max_iteration: no such key in the config, added as a new one (did you mean max_iterations?)" in result.stderr
    invoke("train", tiny, "--config_file", "x.json", code=2)
    result = invoke("train", tiny, "--run-id", "noop", "max_iterations=abc", code=2)  # was exit 1, after the run started
    assert "override max_iterations=abc: expected a number, as the config's max_iterations (2)" in result.output


def test_train_interrupted_shows_no_traceback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    result = invoke("train", _bundle(tmp_path, TINY_BUNDLE), code=130)
    assert error_lines(result) == ["error: interrupted; no partial output was left behind"]
    logged = [r for r in caplog.records if r.exc_info]  # MONAI's StatsHandler logged the traceback of the Ctrl-C
    assert "Traceback" not in result.output and logged == [], logged


def test_evaluate_pairs_usage_problems_found_before_the_work(tmp_path: Path) -> None:
    good = np.random.default_rng(0).normal(40, 20, (32, 32)).astype(np.float32)
    datalist, _, _ = _pairs_datalist(tmp_path, good, good)
    (line,) = error_lines(invoke("evaluate", "--pairs", datalist, "-m", "redcnn", code=2))  # named the API's redcnn_weights
    assert line == "error: redcnn: needs a trained RED-CNN checkpoint (--redcnn-weights FILE; see ldct_invrep.baselines.train_redcnn)"
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    result = invoke("evaluate", "--pairs", datalist, "-m", "input", "--json", notes / "m.json", code=2)
    assert error_lines(result) == [f"error: {notes / 'm.json'}: cannot write the output: {notes} is a file, not a folder"]
    assert result.stdout == ""  # was refused only after the tables were printed


@pytest.mark.parametrize("method", ["bm3d", "bm3d_blind"])
def test_evaluate_pairs_without_the_bm3d_extra_is_refused_before_the_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "bm3d", None)  # import bm3d -> ImportError: the extra is not installed
    good = np.random.default_rng(0).normal(40, 20, (32, 32)).astype(np.float32)
    datalist, _, _ = _pairs_datalist(tmp_path, good, good)
    result = invoke("evaluate", "--pairs", datalist, "-m", "input", "-m", method, code=2)  # was exit 1, "unexpected ImportError", mid-run
    assert error_lines(result) == [
        f"error: {method}: BM3D needs the optional 'bm3d' package (non-commercial licence): pip install 'ldct-invrep[baselines]'"
    ]
    assert result.stdout == "" and "--debug" not in result.stderr


def test_prepare_split_is_for_the_ct_sets_only(tmp_path: Path) -> None:
    result = invoke("prepare", "set12", tmp_path, "--split", "patient", "--out", tmp_path / "x.json", code=2)  # was ignored
    assert "--split is for mayo2016 and tcia_ldct only" in result.stderr and not (tmp_path / "x.json").exists()


def test_train_on_a_bundle_name_says_how_to_export_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert error_lines(invoke("train", "ldct_mayo", code=2)) == [
        "error: ldct_mayo: no such bundle folder; ldct_mayo is a shipped bundle: `ldct-invrep bundle export ldct_mayo DIR` writes it"
    ]
    assert error_lines(invoke("train", "nope", code=2)) == ["error: nope: no such bundle folder"]
