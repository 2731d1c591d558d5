"""Bad input to the bundles run the MONAI way (``python -m monai.bundle run --config_file bundles/<name>/configs/
{inference,evaluate,train}.json ...``): one line ``error: <path>: <problem>``, exit status 2, nothing lost
(inputs untouched, outputs whole or absent, nothing the run did not write deleted). Each test failed before the
fix it names; tiny data, one thread.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import one_thread_fixture, write_ct_slice
from conftest import REPO_ROOT
from PIL import Image
from test_cli import invoke, make_tiny_weights

from ldct_invrep.errors import InputError, as_flag, input_error_cause
from ldct_invrep.io import series_folder_name
from ldct_invrep.io.checkpoint import save_restorer
from ldct_invrep.networks import LIRNet, Restorer, get_config
from ldct_invrep.recipes import lir_config

monai_bundle = pytest.importorskip("monai.bundle")
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning")]
_one_thread = one_thread_fixture()
BUNDLES = REPO_ROOT / "bundles"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


# --------------------------------------------------------------------------------------------- helpers
def ct_series(folder: Path, n: int = 2, series_uid: str | None = None) -> Path:
    """A tiny CT series (32 x 36 pixels); without ``series_uid`` it has no SeriesInstanceUID, like the sample."""
    rng = np.random.default_rng(0)
    for i in range(n):
        write_ct_slice(folder / f"s{i}.dcm", np.round(40 + rng.normal(0, 20, (32, 36))), z=3.0 * i, instance=i + 1,
                       thickness=3.0, corner=-10.0, description="tiny", series_uid=series_uid)  # fmt: skip
    return folder


def ct_bundle(root: Path) -> Path:
    make_tiny_weights(root / "models" / "model.pt")
    return root


def natural_bundle(root: Path, channels: int = 3) -> Path:
    torch.manual_seed(0)
    config = lir_config("lite", base_channels=4, n_res=1, in_channels=channels)
    header = {"preset": "lite", "config": dataclasses.asdict(config)}
    save_restorer(root / "models" / "model.pt", Restorer.from_config(config), header)
    return root


def pngs(folder: Path, size: tuple[int, int] = (24, 20), names: tuple[str, ...] = ("a.png", "b.png")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / name)
    return folder


def bundle_error(bundle: str, root: Path, config: str = "inference", **overrides: object) -> InputError:
    """Run ``configs/<config>.json`` in process; the InputError it stopped with (MONAI wraps it)."""
    with pytest.raises(Exception) as failed:  # noqa: PT011 - MONAI's RuntimeError around ours
        monai_bundle.run(config_file=str(BUNDLES / bundle / "configs" / f"{config}.json"), logging_file=False,
                         bundle_root=str(root), **{"threads": 1, **overrides})  # fmt: skip
    cause = input_error_cause(failed.value)
    assert cause is not None, repr(failed.value)
    return cause


def run_ok(bundle: str, root: Path, config: str = "inference", **overrides: object) -> None:
    monai_bundle.run(config_file=str(BUNDLES / bundle / "configs" / f"{config}.json"), logging_file=False,
                     bundle_root=str(root), threads=1, **overrides)  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------------- one line, exit 2
def test_monai_bundle_run_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """``recipes.report_input_errors`` (first in every config's ``initialize``): the documented command with a
    missing --input_dir ended in MONAI's traceback of ~60 lines, exit 1; now one line, exit 2, and the
    traceback with LDCT_INVREP_DEBUG=1. A bug (not bad input) keeps its traceback."""
    root = ct_bundle(tmp_path / "bundle")
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLES / "ldct_mayo" / "configs" / "inference.json"),
           "--bundle_root", str(root), "--input_dir", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "out"), "--threads", "1"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'nope'}: no such file or folder"
    debug = subprocess.run(cmd, capture_output=True, text=True, env={**ENV, "LDCT_INVREP_DEBUG": "1"}, cwd=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "InputError" in debug.stderr
    assert not (tmp_path / "out").exists()


def test_monai_bundle_run_train_and_evaluate_one_line(tmp_path: Path) -> None:
    """The same for train.json (patch_size below the discriminators' minimum: was a ValueError from their
    forward pass after the first batch) and evaluate.json (a datalist with image/label keys: was exit 0 and an
    empty summary.json)."""
    data = tmp_path / "natural"
    for sub in ("cbsd432", "kodak24"):
        pngs(data / sub, (40, 40))
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLES / "natural_awgn" / "configs" / "train.json"),
           "--bundle_root", str(tmp_path / "train"), "--dataset_dir", str(data), "--patch_size", "16", "--preset", "lite",
           "--base_channels", "4", "--n_res", "1", "--semantic_weight", "0", "--epoch_length", "1", "--batch_size", "1",
           "--train#trainer#max_epochs", "1", "--threads", "1"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == "error: patch_size 16: the discriminators take patches of at least 64x64 (their layers and scales)"
    assert not (tmp_path / "train" / "models").exists()

    series = ct_series(tmp_path / "ct")
    datalist = tmp_path / "wrong_keys.json"
    files = sorted(str(p) for p in series.iterdir())
    datalist.write_text(json.dumps({"test": [{"image": files[0], "label": files[1]}]}))
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLES / "ldct_mayo" / "configs" / "evaluate.json"),
           "--bundle_root", str(ct_bundle(tmp_path / "mayo")), "--datalist", str(datalist), "--output_dir", str(tmp_path / "eval"),
           "--threads", "1"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == f"error: {datalist}: entry 0 of 'test' is not a pair (needs 'noisy' and 'clean' paths)"
    assert not (tmp_path / "eval").exists()


# --------------------------------------------------------------------------------------------- CT inference inputs
def test_ct_inference_reader_errors_are_ours(tmp_path: Path) -> None:
    """LoadImaged tried MONAI's other readers when LIRDicomReader raised (io.reader._ReadFailure): a DICOM
    without pixel data ended in pydicom's ValueError, a NIfTI --input_dir was read by nibabel and run through the
    network before the writer refused it."""
    import nibabel as nib
    import pydicom

    root = ct_bundle(tmp_path / "bundle")
    series = ct_series(tmp_path / "nopix" / "s")
    for f in series.iterdir():
        ds = pydicom.dcmread(f)
        del ds.PixelData
        ds.save_as(f)
    err = bundle_error("ldct_mayo", root, input_dir=str(tmp_path / "nopix"), output_dir=str(tmp_path / "out"))
    assert "pixel data missing" in str(err) and str(series) in str(err)
    volume = np.full((8, 8, 3), np.nan, np.float32)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(tmp_path / "v.nii.gz"))
    err = bundle_error("ldct_mayo", root, input_dir=str(tmp_path / "v.nii.gz"), output_dir=str(tmp_path / "out"))
    assert str(err) == f"{tmp_path / 'v.nii.gz'}: a NIfTI file; the bundles read DICOM series (ldct-invrep denoise reads NIfTI)"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("corrupt", "not a readable torch checkpoint"),  # was IndexError from the unpickler
        ("natural", "a network for 3-channel (colour) images, not for 1-channel images"),  # was a conv2d RuntimeError
        ("redcnn", "not an ldct-invrep-restorer checkpoint (its format is 'ldct-invrep-redcnn')"),
        ("nan", "weights contain NaN or infinite values"),  # was NaN output
    ],
)
def test_ct_inference_bad_checkpoints(case: str, expected: str, tmp_path: Path) -> None:
    ckpt = tmp_path / f"{case}.pt"
    if case == "corrupt":
        ckpt.write_bytes(b"not a checkpoint\x00")
    elif case == "natural":
        save_restorer(ckpt, LIRNet(get_config("lite", in_channels=3, base_channels=4, n_res=1, noise_channels=4, dis_channels=4)))
    elif case == "redcnn":
        from ldct_invrep.baselines.redcnn import REDCNN
        from ldct_invrep.baselines.train_redcnn import save_redcnn

        save_redcnn(ckpt, REDCNN(channels=4), {})
    else:
        payload = torch.load(make_tiny_weights(tmp_path / "w.pt"), weights_only=True)
        next(iter(payload["state_dict"].values())).fill_(float("nan"))
        torch.save(payload, ckpt)
    root = tmp_path / "bundle"
    err = bundle_error("ldct_mayo", root, input_dir=str(ct_series(tmp_path / "in" / "s").parent), ckpt_path=str(ckpt), output_dir=str(tmp_path / "out"))
    assert str(err).startswith(f"{ckpt}: ") and expected in str(err)
    assert not (tmp_path / "out").exists()


def test_cli_denoise_refuses_a_colour_checkpoint(tmp_path: Path) -> None:
    """The same check in ``pipelines.load_denoiser``: ``ldct-invrep denoise --weights`` of a natural-image model was
    exit 1 'unexpected RuntimeError' from the first convolution."""
    ckpt = save_restorer(tmp_path / "colour.pt", LIRNet(get_config("lite", in_channels=3, base_channels=4, n_res=1, noise_channels=4, dis_channels=4)))
    done = invoke("denoise", ct_series(tmp_path / "in"), tmp_path / "out", "--weights", ckpt, "--threads", 1, code=2)
    assert f"error: {ckpt}: a network for 3-channel (colour) images" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"self_ensemble": 3}, "self_ensemble must be one of 1, 2, 4, 8, got 3"),  # was ValueError from SelfEnsembleInferer
        ({"self_ensemble": "four"}, "self_ensemble must be one of 1, 2, 4, 8, got 'four'"),  # was int()'s ValueError
        ({"reference_noise_hu": -5}, "reference_noise_hu must be a finite number >= 0 (HU), got -5"),  # was ValueError
        ({"device": "gpu"}, "--device gpu: not a device name (cpu, cuda, cuda:N)"),  # was torch's RuntimeError
        ({"overwrite": "maybe"}, "overwrite 'maybe': not a yes/no value (True or False)"),
        ({"threads": -1}, "threads -1: not a whole number >= 1"),  # was torch's RuntimeError
        ({"batch_size": "abc"}, "batch_size 'abc': not a whole number >= 1"),  # was a TypeError
        ({"batch_size": -2}, "batch_size -2: not a whole number >= 1"),  # was an UnboundLocalError
    ],
)
def test_ct_inference_bad_settings(overrides: dict, expected: str, tmp_path: Path) -> None:
    root = ct_bundle(tmp_path / "bundle")
    err = bundle_error("ldct_mayo", root, input_dir=str(ct_series(tmp_path / "in" / "s").parent), output_dir=str(tmp_path / "out"), **overrides)
    assert str(err) == expected
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bundle", ["ldct_mayo", "ldct_simulated", "natural_awgn", "natural_poisson"])
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"max_iterations": -3}, "max_iterations -3: not a whole number >= 1"),
        ({"epoch_length": 0}, "epoch_length 0: not a whole number >= 1"),
        ({"num_workers": -1}, "num_workers -1: not a whole number >= 0"),
        ({"log_interval": 0}, "log_interval 0: not a whole number >= 1"),
    ],
)
def test_train_whole_number_settings_refused_before_any_work(bundle: str, overrides: dict, expected: str, tmp_path: Path) -> None:
    """``recipes.check_whole_numbers`` in train.json's ``initialize``: before, each of these ended in a traceback
    of 20 lines or more from a config expression, exit 1."""
    err = bundle_error(bundle, tmp_path / "train", "train", dataset_dir=str(tmp_path / "data"), **overrides)
    assert str(err) == expected
    assert not (tmp_path / "train").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks --device cuda without a GPU")
def test_inference_device_cuda_without_gpu(tmp_path: Path) -> None:
    """Was torch's 'AssertionError: Torch not compiled with CUDA enabled' inside the network expression."""
    root = ct_bundle(tmp_path / "bundle")
    err = bundle_error("ldct_mayo", root, input_dir=str(ct_series(tmp_path / "in" / "s").parent), device="cuda")
    assert str(err) == "--device cuda was asked for but no CUDA device is available"


# --------------------------------------------------------------------------------------------- CT inference outputs
def test_ct_inference_output_inside_the_input_is_refused(tmp_path: Path) -> None:
    """An --output_dir inside (or equal to) --input_dir was written into the input tree, where the next run read
    the derived series as input and wrote into another input series' folder; now refused before any work."""
    root = ct_bundle(tmp_path / "bundle")
    study = tmp_path / "study"
    ct_series(study / "s", series_uid="1.2.3.4")
    before = snapshot(study)
    for out in (study, study / "denoised", study / "s"):
        err = bundle_error("ldct_mayo", root, input_dir=str(study), output_dir=str(out))
        assert "output is inside the input folder" in str(err) or "output is the input itself" in str(err), str(err)
    assert snapshot(study) == before


def test_ct_inference_series_without_uid_and_hostile_uid(tmp_path: Path) -> None:
    """``io.series_folder_name``: a series without SeriesInstanceUID was written into --output_dir itself (the
    docs say <output_dir>/<SeriesInstanceUID>/); a UID of '../../x' was written outside --output_dir (also by
    ``denoise --all-series``); two series whose folder names agree are refused before either is written."""
    assert series_folder_name("") == "unknown-series" and series_folder_name("1.2.840.1") == "1.2.840.1"
    assert series_folder_name("../../x") == "_.._x" and series_folder_name("..") == "unknown-series"
    root = ct_bundle(tmp_path / "bundle")
    ct_series(tmp_path / "one" / "a")
    out = tmp_path / "out"
    run_ok("ldct_mayo", root, input_dir=str(tmp_path / "one"), output_dir=str(out), progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["unknown-series"]
    assert len(list((out / "unknown-series").glob("IM_*.dcm"))) == 2
    ct_series(tmp_path / "two" / "a", series_uid="1.2/3")  # two series, one output folder name
    ct_series(tmp_path / "two" / "b", series_uid="1.2_3")
    err = bundle_error("ldct_mayo", root, input_dir=str(tmp_path / "two"), output_dir=str(tmp_path / "out2"))
    assert "would also be that of" in str(err) and not (tmp_path / "out2").exists()
    ct_series(tmp_path / "evil" / "s", series_uid="../../escaped")
    deep = tmp_path / "deep" / "er"
    run_ok("ldct_mayo", root, input_dir=str(tmp_path / "evil"), output_dir=str(deep / "out"), progress=False)
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["er"]
    assert [p.name for p in (deep / "out").iterdir()] == ["_.._escaped"]
    invoke("denoise", tmp_path / "evil", tmp_path / "cli" / "out", "--all-series", "-r", "--weights", root / "models" / "model.pt",
           "--threads", 1, "--quiet")  # fmt: skip
    assert [p.name for p in (tmp_path / "cli").iterdir()] == ["out"]


def test_ct_inference_overwrite_false_as_text_does_not_overwrite(tmp_path: Path) -> None:
    """``--overwrite false`` reaches the config as the string 'false' (fire reads only True/False), which
    SaveDerivedSeriesd took as true and replaced the earlier output (``errors.as_flag``)."""
    assert as_flag("false", "x") is False and as_flag("True", "x") is True and as_flag(0, "x") is False
    root = ct_bundle(tmp_path / "bundle")
    inp = ct_series(tmp_path / "in" / "s").parent
    run_ok("ldct_mayo", root, input_dir=str(inp), output_dir=str(tmp_path / "out"), progress=False)
    before = snapshot(tmp_path / "out")
    err = bundle_error("ldct_mayo", root, input_dir=str(inp), output_dir=str(tmp_path / "out"), overwrite="false")
    assert "output already exists" in str(err) and snapshot(tmp_path / "out") == before
    run_ok("ldct_mayo", root, input_dir=str(inp), output_dir=str(tmp_path / "out"), overwrite="true", progress=False)
    assert snapshot(tmp_path / "out") != before  # new UIDs


# --------------------------------------------------------------------------------------------- natural inference
def test_natural_inference_output_whole_or_absent(tmp_path: Path) -> None:
    """``io.StagedOutputDir``: SaveImaged wrote straight into --output_dir, so a run with --output_dir equal to
    --input_dir replaced the input images, one into a folder of someone's files replaced theirs of the same name,
    and a corrupt image left the images before it behind."""
    root = natural_bundle(tmp_path / "bundle")
    images = pngs(tmp_path / "in")
    before = snapshot(images)
    for out in (images, images / "sub"):
        err = bundle_error("natural_awgn", root, input_dir=str(images), output_dir=str(out))
        assert "output is the input itself" in str(err) or "output is inside the input folder" in str(err)
    theirs = pngs(tmp_path / "theirs", names=("a.png",))
    kept = snapshot(theirs)
    err = bundle_error("natural_awgn", root, input_dir=str(images), output_dir=str(theirs), overwrite=True)
    assert "not an output of ldct-invrep" in str(err) and snapshot(theirs) == kept
    (images / "c.png").write_bytes(b"not a png")
    err = bundle_error("natural_awgn", root, input_dir=str(images), output_dir=str(tmp_path / "out"))
    assert str(err).startswith(f"{images / 'c.png'}: not a readable image")  # was PIL's error after LoadImage's fallback
    del err  # its traceback holds the run's objects; the staged folder goes with them
    gc.collect()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "in", "theirs"]
    (images / "c.png").unlink()
    assert snapshot(images) == before
    run_ok("natural_awgn", root, input_dir=str(images), output_dir=str(tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".ldct-invrep-output", "a.png", "b.png"]


def test_natural_inference_checkpoint_channels_and_same_stem(tmp_path: Path) -> None:
    """A CT (1-channel) model or --channels 1 with a colour model failed in the first convolution; two images of
    one stem silently wrote one output."""
    root = natural_bundle(tmp_path / "bundle")
    images = pngs(tmp_path / "in")
    err = bundle_error("natural_awgn", root, input_dir=str(images), channels=1, output_dir=str(tmp_path / "out"))
    assert "a network for 3-channel (colour) images, not for 1-channel images" in str(err) and "--channels" in str(err)
    ct = make_tiny_weights(tmp_path / "ct.pt")
    err = bundle_error("natural_poisson", root, input_dir=str(images), ckpt_path=str(ct), output_dir=str(tmp_path / "out"))
    assert str(err).startswith(f"{ct}: a network for 1-channel images")
    Image.open(images / "a.png").save(images / "a.jpg")
    err = bundle_error("natural_awgn", root, input_dir=str(images), output_dir=str(tmp_path / "out"))
    assert "its output a.png would also be that of" in str(err)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------- evaluate
def test_evaluate_datalists(tmp_path: Path) -> None:
    """ldct_mayo evaluate.json: an empty test section scored nothing with exit 0; pairs of different sizes named
    'pair 0' and no file."""
    import pydicom

    root = ct_bundle(tmp_path / "bundle")
    series = ct_series(tmp_path / "ct")
    small = tmp_path / "small.dcm"
    write_ct_slice(small, np.zeros((16, 16)), z=0.0, instance=1, thickness=3.0, corner=0.0, description="small")
    noisy = sorted(series.iterdir())[0]
    datalist = tmp_path / "d.json"
    datalist.write_text(json.dumps({"test": []}))
    err = bundle_error("ldct_mayo", root, "evaluate", datalist=str(datalist), output_dir=str(tmp_path / "eval"))
    assert str(err) == f"{datalist}: section 'test' is empty"
    datalist.write_text(json.dumps({"test": [{"noisy": str(noisy), "clean": str(small)}]}))
    err = bundle_error("ldct_mayo", root, "evaluate", datalist=str(datalist), output_dir=str(tmp_path / "eval"))
    assert str(err).startswith(f"{noisy} and {small} (pair 0): noisy shape")
    assert pydicom.dcmread(small).Rows == 16  # input untouched


def test_natural_evaluate_image_smaller_than_ssim_window(tmp_path: Path) -> None:
    """An 8x8 test image ended in MONAI's SSIM 'Kernel size can't be greater than actual input size'."""
    root = natural_bundle(tmp_path / "bundle")
    data = tmp_path / "data"
    pngs(data / "cbsd68", (8, 8), names=("tiny.png",))
    err = bundle_error("natural_awgn", root, "evaluate", dataset_dir=str(data), output_dir=str(tmp_path / "eval"))
    assert str(err) == f"{data / 'cbsd68' / 'tiny.png'}: a 8x8 image, smaller than the 11x11 SSIM window"
