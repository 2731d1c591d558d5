"""The bundles' inference.json (model-zoo pattern: LoadImaged with our readers, HUWindowd, the self-ensemble
inferer, Invertd, a writer, SupervisedEvaluator) run end to end and write what ``ldct-invrep denoise`` and the
Python API give for the same input and weights; the pieces it is made of (readers, RestoreOutsideWindowd,
SaveDerivedSeriesd, the datalists).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from _helpers import one_thread_fixture, write_ct_slice
from conftest import REPO_ROOT
from PIL import Image
from pydicom.uid import generate_uid
from test_cli import copy_slices, invoke, make_tiny_weights, output_files

from ldct_invrep.data.natural import from_net, load_image_8bit, to_net
from ldct_invrep.errors import InputError
from ldct_invrep.inferers import SelfEnsembleInferer
from ldct_invrep.io.checkpoint import load_restorer, save_restorer
from ldct_invrep.networks import Restorer
from ldct_invrep.package_files import default_weights_path
from ldct_invrep.recipes import lir_config

monai_bundle = pytest.importorskip("monai.bundle")
pytestmark = [pytest.mark.filterwarnings("ignore:parsing config_file:UserWarning"), pytest.mark.filterwarnings("ignore::UserWarning")]
_one_thread = one_thread_fixture()
BUNDLES = REPO_ROOT / "bundles"


def stored_pixels(folder: Path) -> np.ndarray:
    """Stored values of a DICOM series folder, slices in InstanceNumber order (the output marker skipped)."""
    files = [pydicom.dcmread(f) for f in sorted(folder.iterdir()) if not f.name.startswith(".")]
    files.sort(key=lambda ds: int(ds.InstanceNumber))
    return np.stack([ds.pixel_array.astype(np.int32) for ds in files])


def bundle_command(bundle: str, bundle_root: Path, **overrides: object) -> list[str]:
    """``python -m monai.bundle run --config_file bundles/<bundle>/configs/inference.json ...`` as documented."""
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLES / bundle / "configs" / "inference.json"),
           "--bundle_root", str(bundle_root)]  # fmt: skip
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    return cmd


def run_in_process(bundle: str, bundle_root: Path, **overrides: object) -> None:
    monai_bundle.run(
        run_id="run", config_file=str(BUNDLES / bundle / "configs" / "inference.json"), logging_file=False,
        bundle_root=str(bundle_root), **overrides,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------- CT
@pytest.mark.skipif(not default_weights_path().is_file(), reason="no shipped weights in this install")
def test_ldct_simulated_inference_command_equals_denoise(sample_series: Path, tmp_path: Path) -> None:
    """The documented command on a noisier copy of 3 slices of the sample series with the shipped weights
    (self-ensemble 4 and reference noise 10 HU from their header: the output blended with the input,
    ReferenceNoiseBlendd) writes the same stored values as ``ldct-invrep denoise`` with the same weights."""
    from ldct_invrep.io import scan_series, write_derived_series

    info = scan_series(copy_slices(sample_series, tmp_path / "in3", 3))
    rng = np.random.default_rng(0)  # the sample is at normal dose (~9 HU): it would come back whole (weight 1)
    series = tmp_path / "in" / "noisy"
    write_derived_series(info, (s + rng.normal(0, 20, s.shape) for s in info.read_hu()), series, method="TEST")
    bare = tmp_path / "bundle"  # no models/model.pt: ldct_simulated's model is the shipped weights
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        bundle_command("ldct_simulated", bare, input_dir=series, output_dir=tmp_path / "by_bundle", threads=1, progress=False),
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "denoised 3 slices of 1 series" in done.stderr and "self-ensemble 4" in done.stderr
    cli = invoke("denoise", series, tmp_path / "by_cli", "--threads", 1)
    assert "reference noise 10 HU" in cli.stderr  # the blend is on by the header in both
    uid = pydicom.dcmread(next(series.glob("*.dcm"))).SeriesInstanceUID
    by_bundle, by_cli = stored_pixels(tmp_path / "by_bundle" / uid), stored_pixels(tmp_path / "by_cli")
    np.testing.assert_array_equal(by_bundle, by_cli)
    source = stored_pixels(series)
    assert np.abs(by_bundle - source).mean() > 1  # it did denoise
    invoke("denoise", series, tmp_path / "unblended", "--threads", 1, "--quiet", "--reference-noise", 0)
    unblended = stored_pixels(tmp_path / "unblended")
    assert np.abs(by_bundle - source).mean() < np.abs(unblended - source).mean()  # part of the input came back
    out = pydicom.dcmread(sorted((tmp_path / "by_bundle" / uid).glob("IM_*.dcm"))[0])
    assert list(out.ImageType)[:2] == ["DERIVED", "SECONDARY"] and out.SeriesDescription.endswith("[LIR]")


def test_ct_inference_reference_noise_from_the_header_unless_the_config_sets_it(tmp_path: Path) -> None:
    """``blend_noise_hu`` of both CT configs: the checkpoint header's ``reference_noise_hu`` (0 without one),
    or the config key ``reference_noise_hu`` when set, as the CLI's ``--reference-noise``."""
    weights = make_tiny_weights(tmp_path / "models" / "model.pt")
    for bundle in ("ldct_simulated", "ldct_mayo"):
        parser = monai_bundle.ConfigParser()
        parser.read_config(str(BUNDLES / bundle / "configs" / "inference.json"))
        parser["ckpt_path"] = str(weights)
        assert parser.get_parsed_content("blend_noise_hu") == 0.0
        parser["header"] = {"reference_noise_hu": 10.0}
        assert parser.get_parsed_content("blend_noise_hu") == 10.0
        parser["reference_noise_hu"] = 0
        assert parser.get_parsed_content("blend_noise_hu") == 0.0


def _metal_series(folder: Path, n: int = 2) -> Path:
    """A small series with a metal insert above the network's HU range (4000 HU) and a body of noisy soft tissue."""
    rng = np.random.default_rng(1)
    uid = generate_uid()
    for i in range(n):
        hu = np.full((48, 52), -1000.0)
        hu[8:40, 6:46] = 40.0 + rng.normal(0, 30, (32, 40))
        path = folder / f"s{i}.dcm"
        write_ct_slice(path, np.round(hu), z=3.0 * i, instance=i + 1, thickness=3.0, corner=-20.0,
                       description="metal", series_uid=uid)  # fmt: skip
        ds = pydicom.dcmread(path)  # the helper stores at most 3071 HU; 16 bits hold the metal
        stored = ds.pixel_array.copy()
        stored[20:24, 20:26] = 4000 + 1024
        ds.PixelData = stored.tobytes()
        ds.save_as(path, enforce_file_format=True)
    return folder


def test_ct_inference_keeps_hu_outside_the_window_as_denoise_does(tmp_path: Path) -> None:
    """ldct_mayo's inference (in process) with tiny random weights: HU above 3072 pass through unchanged
    (RestoreOutsideWindowd), everything equal to the CLI's stored values; an existing output is refused."""
    series = _metal_series(tmp_path / "in" / "metal")
    bundle = tmp_path / "mayo"
    (bundle / "models").mkdir(parents=True)
    make_tiny_weights(bundle / "models" / "model.pt")
    run_in_process("ldct_mayo", bundle, input_dir=str(tmp_path / "in"), output_dir=str(tmp_path / "out"), progress=False)
    uid = pydicom.dcmread(series / "s0.dcm").SeriesInstanceUID
    by_bundle = stored_pixels(tmp_path / "out" / uid)
    invoke("denoise", series, tmp_path / "by_cli", "--weights", bundle / "models" / "model.pt", "--threads", 1, "--quiet")
    np.testing.assert_array_equal(by_bundle, stored_pixels(tmp_path / "by_cli"))
    source = stored_pixels(series)
    metal = source > 3072 + 1024
    assert metal.any() and np.array_equal(by_bundle[metal], source[metal])
    assert not np.array_equal(by_bundle[~metal], source[~metal])
    with pytest.raises(RuntimeError) as failed:  # MONAI wraps the error of a config expression
        run_in_process("ldct_mayo", bundle, input_dir=str(tmp_path / "in"), output_dir=str(tmp_path / "out"), progress=False)
    causes, exc = [], failed.value
    while exc is not None:
        causes.append(exc)
        exc = exc.__cause__
    assert any(isinstance(c, InputError) and "already exists" in str(c) for c in causes), causes


def test_series_datalist_one_folder_per_series(sample_series: Path, tmp_path: Path) -> None:
    from ldct_invrep.recipes import series_datalist

    a = copy_slices(sample_series, tmp_path / "study" / "a", 2)
    _metal_series(tmp_path / "study" / "b" / "deeper")
    assert series_datalist(tmp_path / "study") == [{"image": str(a)}, {"image": str(tmp_path / "study" / "b" / "deeper")}]
    _metal_series(tmp_path / "study" / "a")  # a second series in folder a
    with pytest.raises(InputError, match=r"a: 2 DICOM series in one folder"):
        series_datalist(tmp_path / "study")
    with pytest.raises(InputError, match="pass --input_dir"):
        series_datalist(None)


def test_save_derived_series_reads_the_source_from_the_metadata(sample_series: Path, tmp_path: Path) -> None:
    """LoadImaged(LIRDicomReader) -> SaveDerivedSeriesd of the unchanged image writes the source's stored values."""
    from monai.transforms import Compose, CopyItemsd, EnsureChannelFirstd, LoadImaged

    from ldct_invrep.io import LIRDicomReader, SaveDerivedSeriesd

    series = copy_slices(sample_series, tmp_path / "in", 2)
    load = Compose([
        LoadImaged("image", reader=LIRDicomReader(reverse_indexing=True), image_only=True),
        EnsureChannelFirstd("image", channel_dim="no_channel"),
        CopyItemsd("image", names="source_hu"),
    ])  # fmt: skip
    item = load({"image": str(series)})
    writer = SaveDerivedSeriesd("image", source_key="source_hu", output_dir=tmp_path / "out")
    writer(item)
    out = tmp_path / "out" / "unknown-series"  # the sample has no SeriesInstanceUID (was written to out/ itself)
    assert writer.n_slices == 2 and writer.written == [str(out)]
    np.testing.assert_array_equal(stored_pixels(out), stored_pixels(series))


def test_restore_outside_window_numpy_and_torch() -> None:
    from ldct_invrep.transforms import RestoreOutsideWindowd, keep_outside_window

    source = np.array([[-2000.0, 0.0], [100.0, 4000.0]], dtype=np.float32)
    pred = np.array([[-1024.0, 5.0], [90.0, 3072.0]], dtype=np.float32)
    expected = np.array([[-2000.0, 5.0], [90.0, 4000.0]], dtype=np.float32)
    np.testing.assert_array_equal(keep_outside_window(pred.copy(), source), expected)
    out = RestoreOutsideWindowd("pred", source_key="src", window="full")({"pred": torch.from_numpy(pred), "src": torch.from_numpy(source)})
    np.testing.assert_array_equal(out["pred"].numpy(), expected)
    narrow = RestoreOutsideWindowd("pred", source_key="src", window=(-10, 95))({"pred": pred.copy(), "src": source})
    np.testing.assert_array_equal(narrow["pred"], np.array([[-2000.0, 5.0], [100.0, 4000.0]]))  # 100 HU is outside (-10, 95)


# --------------------------------------------------------------------------------------------- natural images
def _natural_bundle(root: Path, channels: int, self_ensemble: int) -> Restorer:
    """A bundle folder with tiny random weights (every parameter drawn, so the output differs from the input)."""
    torch.manual_seed(channels)
    config = lir_config("lite", base_channels=8, n_res=1, in_channels=channels)
    net = Restorer.from_config(config).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    (root / "models").mkdir(parents=True)
    header = {"preset": "lite", "config": dataclasses.asdict(config), "self_ensemble": self_ensemble}
    save_restorer(root / "models" / "model.pt", net, header)
    return load_restorer(root / "models" / "model.pt")[0].eval()


def _pngs(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (40, 44), dtype=np.uint8)).save(folder / "b.png")
    return folder


def _python_api(net: Restorer, path: Path, channels: int, self_ensemble: int) -> np.ndarray:
    """What the Python API gives: ``load_image_8bit`` -> ``to_net`` -> (self-ensemble) Restorer -> ``from_net``, 8-bit."""
    x = torch.from_numpy(to_net(load_image_8bit(path, channels)))[None]
    with torch.no_grad():
        y = SelfEnsembleInferer(self_ensemble)(x, net)
    return np.round(from_net(y[0]).numpy() * 255).astype(np.uint8)


def _png_channels_first(path: Path) -> np.ndarray:
    arr = np.asarray(Image.open(path))
    return np.moveaxis(arr, -1, 0) if arr.ndim == 3 else arr[None]


def test_natural_awgn_inference_command_equals_python_api(tmp_path: Path) -> None:
    """The documented command (colour, self-ensemble 4 from the header) writes 8-bit PNGs equal to the Python API."""
    net = _natural_bundle(tmp_path / "bundle", 3, 4)
    images = _pngs(tmp_path / "in")
    done = subprocess.run(
        bundle_command("natural_awgn", tmp_path / "bundle", input_dir=images, output_dir=tmp_path / "out", threads=1),
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "denoised 2 images" in done.stderr and "self-ensemble 4" in done.stderr
    assert [p.name for p in output_files(tmp_path / "out")] == ["a.png", "b.png"]  # and the output marker
    for name in ("a", "b"):
        got = _png_channels_first(tmp_path / "out" / f"{name}.png")
        assert got.shape[0] == 3 and Image.open(tmp_path / "out" / f"{name}.png").mode == "RGB"
        np.testing.assert_array_equal(got, _python_api(net, images / f"{name}.png", 3, 4))
        assert not np.array_equal(got, np.round(load_image_8bit(images / f"{name}.png", 3) * 255).astype(np.uint8))


@pytest.mark.parametrize("bundle", ["natural_awgn", "natural_poisson"])
def test_natural_inference_grey_equals_python_api(bundle: str, tmp_path: Path) -> None:
    net = _natural_bundle(tmp_path / "bundle", 1, 1)
    images = _pngs(tmp_path / "in")
    run_in_process(bundle, tmp_path / "bundle", input_dir=str(images), output_dir=str(tmp_path / "out"), channels=1)
    for name in ("a", "b"):
        got = _png_channels_first(tmp_path / "out" / f"{name}.png")
        assert got.shape == (1, *Image.open(images / f"{name}.png").size[::-1])
        np.testing.assert_array_equal(got, _python_api(net, images / f"{name}.png", 1, 1))


def test_image8bit_reader_gives_the_training_arrays(tmp_path: Path) -> None:
    from monai.transforms import LoadImage

    from ldct_invrep.io import Image8bitReader

    images = _pngs(tmp_path / "in")
    for channels in (1, 3):
        for name in ("a.png", "b.png"):
            img = LoadImage(reader=Image8bitReader(channels), image_only=True)(str(images / name))
            np.testing.assert_array_equal(img.numpy(), load_image_8bit(images / name, channels))
            assert img.meta["filename_or_obj"] == str(images / name)
