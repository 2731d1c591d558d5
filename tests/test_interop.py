"""Bundles, CLI and Python API working together (issue 15): one checkpoint format read by the bundles, the CLI
and MONAI's ckpt_export, the same inference defaults everywhere, MONAI arrays in the Python API, the VGG-19
error and its opt-in download, and a command line that imports torch/MONAI only when it needs them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from _helpers import one_thread_fixture
from conftest import REPO_ROOT
from PIL import Image
from test_cli import copy_slices, error_lines, invoke, make_tiny_weights

from ldct_invrep.io.checkpoint import load_restorer, read_header, save_restorer
from ldct_invrep.package_files import default_weights_path

monai_bundle = pytest.importorskip("monai.bundle")
pytestmark = [
    pytest.mark.filterwarnings("ignore:parsing config_file:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
_one_thread = one_thread_fixture()


def stored_pixels(folder: Path) -> np.ndarray:
    """Stored values of a DICOM series folder, slices in InstanceNumber order."""
    files = [pydicom.dcmread(f) for f in sorted(folder.iterdir()) if not f.name.startswith(".")]  # not the output marker
    files.sort(key=lambda ds: int(ds.InstanceNumber))
    return np.stack([ds.pixel_array.astype(np.int32) for ds in files])


@pytest.fixture(scope="module")
def ensemble_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random weights whose header asks for a self-ensemble of 4 (the shipped weights ask for 8)."""
    path = make_tiny_weights(tmp_path_factory.mktemp("w") / "tiny.pt")
    restorer, header = load_restorer(path)
    return save_restorer(path, restorer, {**header, "self_ensemble": 4})


# --------------------------------------------------------------------------------------------- item 2
def test_bundle_inference_cli_and_torchscript_read_one_checkpoint(
    ensemble_weights: Path, sample_series: Path, tmp_path: Path
) -> None:
    """A bundle's models/model.pt is what ``denoise --weights`` takes; bundle inference and the CLI give the same
    series (self-ensemble from the header in both); the TorchScript export of ckpt_export gives it too."""
    series = copy_slices(sample_series, tmp_path / "in", 2)
    bundle = tmp_path / "mayo"
    invoke("bundle", "export", "ldct_mayo", bundle)
    (bundle / "models" / "model.pt").write_bytes(ensemble_weights.read_bytes())

    monai_bundle.run(
        run_id="run", config_file=str(bundle / "configs" / "inference.json"), logging_file=False,
        bundle_root=str(bundle), input_dir=str(series), output_dir=str(tmp_path / "by_bundle"),
    )  # fmt: skip
    by_bundle = tmp_path / "by_bundle" / "unknown-series"  # <output_dir>/<SeriesInstanceUID>; the sample series has none
    result = invoke("denoise", series, tmp_path / "by_cli", "--weights", bundle / "models" / "model.pt", "--threads", 1)
    assert "self-ensemble of 4" in result.stderr and "batch 1" in result.stderr  # header default; CPU batch 1
    cli_pixels = stored_pixels(tmp_path / "by_cli")
    np.testing.assert_array_equal(stored_pixels(by_bundle), cli_pixels)
    assert not np.array_equal(cli_pixels, stored_pixels(series))  # the random weights did change the slices

    ts = bundle / "models" / "model.ts"
    monai_bundle.ckpt_export(
        net_id="network_def", filepath=str(ts), ckpt_file=str(bundle / "models" / "model.pt"),
        meta_file=str(bundle / "configs" / "metadata.json"), config_file=str(bundle / "configs" / "inference.json"),
        bundle_root=str(bundle), key_in_ckpt="state_dict",
    )  # fmt: skip
    assert read_header(ts)["format"] == "torchscript"
    result = invoke("denoise", series, tmp_path / "by_ts", "--weights", ts, "--self-ensemble", 4, "--threads", 1)
    assert np.abs(stored_pixels(tmp_path / "by_ts") - cli_pixels).max() <= 1  # float rounding of the stored ints
    info = json.loads(invoke("info", bundle / "models" / "model.pt", "--json").stdout)
    assert info["header"]["self_ensemble"] == 4 and info["parameters"] == sum(
        p.numel() for p in load_restorer(ensemble_weights)[0].parameters()
    )


def test_plain_state_dict_is_refused_with_the_reason(tmp_path: Path, ensemble_weights: Path) -> None:
    plain = tmp_path / "plain.pt"
    torch.save(load_restorer(ensemble_weights)[0].state_dict(), plain)
    result = invoke("info", plain, code=2)
    assert error_lines(result) == [
        f"error: {plain}: a plain state dict without the network config, not an ldct-invrep-restorer checkpoint; "
        "export it with ldct_invrep.recipes.export_restorer or load it through a bundle's inference.json"
    ]


def test_ldct_simulated_bundle_uses_the_shipped_weights_until_it_has_its_own(tmp_path: Path) -> None:
    from monai.bundle import ConfigParser

    if not default_weights_path().is_file():
        pytest.skip("no shipped weights in this install")
    bundle = tmp_path / "sim"
    invoke("bundle", "export", "ldct_simulated", bundle)
    assert (bundle / "models" / "model.pt").read_bytes() == default_weights_path().read_bytes()
    for config in ("inference.json", "evaluate.json"):
        parser = ConfigParser()
        parser.read_config(str(bundle / "configs" / config))
        parser["bundle_root"] = str(tmp_path / "bare")  # a bundle folder without models/model.pt
        assert parser.get_parsed_content("ckpt_path") == str(default_weights_path())
        header = read_header(default_weights_path())
        assert parser.get_parsed_content("header") == header
        assert parser["self_ensemble"] is None and "self_ensemble" in header  # as `denoise`: the header's
        parser["bundle_root"] = str(bundle)
        assert parser.get_parsed_content("ckpt_path") == str(bundle / "models" / "model.pt")


def test_bundle_export_refuses_unknown_names_and_existing_folders(tmp_path: Path) -> None:
    assert error_lines(invoke("bundle", "export", "nope", tmp_path / "x", code=2))[0].startswith("error: nope: no such bundle")
    assert not (tmp_path / "x").exists()
    (tmp_path / "taken").mkdir()
    invoke("bundle", "export", "natural_awgn", tmp_path / "taken", code=2)
    assert not any((tmp_path / "taken").iterdir())


# --------------------------------------------------------------------------------------------- item 1
def _natural_pngs(folder: Path, n: int, size: int = 40) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"img{i:03d}.png")


@pytest.fixture
def no_vgg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No VGG-19 file anywhere: an empty torch home and no $LDCT_INVREP_VGG19_WEIGHTS. Returns the hub cache file."""
    from ldct_invrep.losses.vgg import VGG19_WEIGHTS_ENV, VGG19_WEIGHTS_FILENAME

    monkeypatch.delenv(VGG19_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home" / "hub" / "checkpoints" / VGG19_WEIGHTS_FILENAME


def test_default_training_without_vgg_weights_says_what_and_how(no_vgg: Path, tmp_path: Path) -> None:
    data = tmp_path / "natural"
    for name in ("cbsd432", "kodak24"):  # the colour default's training and validation sets
        _natural_pngs(data / name, 4)
    bundle = tmp_path / "awgn"
    invoke("bundle", "export", "natural_awgn", bundle)
    result = invoke("train", bundle, f"dataset_dir={data}", "max_iterations=1", "preset=lite", "base_channels=4", code=2)
    (line,) = error_lines(result)
    assert line.startswith("error: vgg19-dcbb9e9d.pth: the ImageNet VGG-19 weights")
    assert str(no_vgg) in line and "ldct-invrep fetch vgg19" in line and "semantic_weight=0" in line
    assert "ConfigExpression" not in result.stderr and "Traceback" not in result.stderr
    readme = (bundle / "docs" / "README.md").read_text()
    assert "ldct-invrep fetch vgg19" in readme and "semantic_weight 0" in readme


def test_fetch_vgg19_downloads_only_on_request(no_vgg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_download(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        calls.append((url, hash_prefix))
        Path(dst).write_bytes(b"weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    assert not no_vgg.exists()
    result = invoke("fetch", "vgg19")
    assert calls == [("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", "dcbb9e9d")]
    assert no_vgg.read_bytes() == b"weights" and f"wrote {no_vgg}" in result.stdout
    assert "already there" in invoke("fetch", "vgg19").stdout and len(calls) == 1


# --------------------------------------------------------------------------------------------- item 5
def test_slice_denoiser_reads_monai_arrays_by_their_metadata(ensemble_weights: Path, sample_series: Path, tmp_path: Path) -> None:
    from monai.data import MetaTensor
    from monai.transforms import EnsureChannelFirst, LoadImage

    from ldct_invrep.inference import SliceDenoiser
    from ldct_invrep.io import LIRDicomReader, read_series

    series = copy_slices(sample_series, tmp_path / "in", 3)
    denoiser, _ = SliceDenoiser.from_checkpoint(ensemble_weights, self_ensemble=1)
    assert denoiser.batch_size == 1  # CPU default
    expected = denoiser.denoise(read_series(series).hu[1:3])  # (z, y, x) numpy
    image = LoadImage(reader=LIRDicomReader(), image_only=True)(str(series))  # MONAI (x, y, z)
    out = denoiser.denoise(image[..., 1:3])
    assert isinstance(out, MetaTensor) and tuple(out.shape) == tuple(image[..., 1:3].shape)
    torch.testing.assert_close(out.affine, image.affine)
    assert out.meta["filename_or_obj"] == image.meta["filename_or_obj"]
    np.testing.assert_allclose(out.numpy(), expected.transpose(2, 1, 0), atol=1e-3)
    channel_first = EnsureChannelFirst()(image)
    np.testing.assert_allclose(denoiser.denoise(channel_first[..., 1:3])[0].numpy(), out.numpy(), atol=1e-3)
    one = denoiser.denoise(image[..., 1])  # (x, y): one slice
    np.testing.assert_allclose(one.numpy(), expected[0].T, atol=1e-3)
    with pytest.raises(ValueError, match=r"reads as 512 slices of 512 x 2 pixels; a MONAI \(x, y, z\) array"):
        denoiser.denoise(image[..., 1:3].numpy())


def test_slice_denoiser_refuses_what_it_cannot_denoise(tiny_weights: Path) -> None:
    """Non-finite HU were spread over their neighbours by the convolutions and returned without a word; a
    batch size below 1 or a NaN reference noise were accepted; an empty stack failed inside numpy."""
    from ldct_invrep.inference import SliceDenoiser

    denoiser, _ = SliceDenoiser.from_checkpoint(tiny_weights)
    hu = np.full((2, 32, 32), -1000.0, dtype=np.float32)
    hu[1, 5, 5] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite HU values in the input"):
        denoiser.denoise(hu)
    with pytest.raises(ValueError, match="H, W >= 1"):
        denoiser.denoise(np.zeros((1, 0, 0), dtype=np.float32))
    assert denoiser.denoise(np.zeros((0, 32, 32), dtype=np.float32)).shape == (0, 32, 32)
    for bad in ({"batch_size": 0}, {"batch_size": -1}, {"reference_noise_hu": float("nan")}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must be"):
            SliceDenoiser.from_checkpoint(tiny_weights, **bad)


# --------------------------------------------------------------------------------------------- item 7
IMPORT_PROBE = """
import sys
from ldct_invrep.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print("MODULES", int("torch" in sys.modules), int("monai" in sys.modules), code, file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("args", "needed"),
    [
        (["--help"], (0, 0)),
        (["denoise", "--help"], (0, 0)),
        (["denoise", "{tmp}/missing", "{tmp}/out"], (0, 0)),
        (["simulate-dose", "{tmp}/missing", "{tmp}/out"], (0, 0)),
        (["evaluate", "{tmp}/missing", "{tmp}/missing2"], (0, 0)),
        (["prepare", "bsd68", "{tmp}/missing"], (0, 0)),
        (["bundle", "export", "nope", "{tmp}/b"], (0, 0)),
        (["adapt", "{tmp}/missing", "--out", "{tmp}/m.pt"], (0, 0)),
        (["adapt", "{tmp}", "--out", "{tmp}/m.pt", "--from", "{tmp}/missing_state.pt"], (0, 0)),
        (["info"], (1, 1)),  # validates the weights against their network, as denoise does
    ],
)
def test_cli_imports_torch_and_monai_only_when_needed(args: list[str], needed: tuple[int, int], tmp_path: Path) -> None:
    if args == ["info"] and not default_weights_path().is_file():
        pytest.skip("no shipped weights in this install")
    argv = [a.format(tmp=tmp_path) for a in args]
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, *argv], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, check=False
    )
    line = next(x for x in proc.stderr.splitlines() if x.startswith("MODULES"))
    _, torch_in, monai_in, code = line.split()
    assert (int(torch_in), int(monai_in)) == needed, proc.stderr
    assert code == ("0" if args == ["info"] or "--help" in args else "2"), proc.stderr


# --------------------------------------------------------------------------------------------- item 9
def test_nifti_output_names_the_method_and_keeps_an_integer_dtype(tiny_weights: Path, sample_series: Path, tmp_path: Path) -> None:
    import nibabel as nib

    series = copy_slices(sample_series, tmp_path / "in", 2)
    invoke("denoise", series, tmp_path / "d.nii.gz", "--weights", tiny_weights, "--threads", 1)
    img = nib.load(str(tmp_path / "d.nii.gz"))
    assert img.get_data_dtype() == np.int16  # the DICOM series holds integer HU (slope 1)
    assert img.header["descrip"].item().decode().startswith("ldct-invrep ") and img.header["descrip"].item().endswith(b" LIR")
    # an integer NIfTI with scaling keeps its dtype and scaling; values come back as HU
    hu = np.asarray(img.dataobj, dtype=np.float32)
    raw = nib.Nifti1Image(np.clip(hu + 1024, 0, None).astype(np.uint16), img.affine)
    raw.header.set_slope_inter(1.0, -1024.0)
    nib.save(raw, str(tmp_path / "u16.nii.gz"))
    invoke("simulate-dose", tmp_path / "u16.nii.gz", tmp_path / "s.nii.gz", "--threads", 1)
    out = nib.load(str(tmp_path / "s.nii.gz"))
    assert out.get_data_dtype() == np.uint16 and (out.dataobj.slope, out.dataobj.inter) == (1.0, -1024.0)
    assert out.header["descrip"].item().endswith(b"SIM [sim 25% dose]")
    assert out.get_fdata().min() >= -1024 and abs(float(out.get_fdata().mean()) - float(hu.mean())) < 30
    # float32 stays float32
    nib.save(nib.Nifti1Image(hu, img.affine), str(tmp_path / "f.nii.gz"))
    invoke("denoise", tmp_path / "f.nii.gz", tmp_path / "fd.nii.gz", "--weights", tiny_weights)
    assert nib.load(str(tmp_path / "fd.nii.gz")).get_data_dtype() == np.float32


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("tiny") / "tiny.pt")


def test_every_computing_command_takes_threads() -> None:
    for command in ("denoise", "simulate-dose", "evaluate", "train", "demo"):
        assert "--threads" in invoke(command, "--help").stdout, command


def test_bundle_metadata_lists_requirements_and_metrics() -> None:
    import re
    from importlib.metadata import requires

    from ldct_invrep import __version__
    from ldct_invrep.package_files import bundle_names, bundles_dir

    deps = [r for r in requires("ldct-invrep") or [] if "extra ==" not in r]
    names = {re.split(r"[<>=!~ ;\[]", d)[0].lower() for d in deps} - {"torch", "monai", "numpy"}
    shipped = (REPO_ROOT / "docs" / "shipped_weights.md").read_text()
    assert bundle_names() == ["ldct_mayo", "ldct_simulated", "natural_awgn", "natural_poisson"]
    for name in bundle_names():
        meta = json.loads((bundles_dir() / name / "configs" / "metadata.json").read_text())
        required = {k.lower(): v for k, v in meta["required_packages_version"].items()}
        assert names <= set(required), (name, names - set(required))
        assert set(required) - {"ldct-invrep"} <= names, (name, set(required) - names)  # nothing test- or bench-only
        assert required["ldct-invrep"] == __version__
        assert isinstance(meta["eval_metrics"], dict)
        for metric, value in meta["eval_metrics"].items():  # the shipped weights' figures, as documented
            assert f"{value:.2f}" in shipped or f"{value:.4f}" in shipped, (metric, value)
    assert len(json.loads((bundles_dir() / "ldct_simulated" / "configs" / "metadata.json").read_text())["eval_metrics"]) == 5
    # the shipped weights are ldct_simulated's model (docs/shipped_weights.md: self-ensemble 4, abdomen window)


def test_test_and_benchmark_tools_are_extras_not_runtime_dependencies() -> None:
    """SimpleITK (the tests' independent DICOM/NIfTI reader) and psutil (the benchmarks' memory figures) come
    with the ``test`` and ``bench`` extras; the package itself never imports them."""
    import re
    from importlib.metadata import requires

    reqs = requires("ldct-invrep") or []
    runtime = {re.split(r"[<>=!~ ;\[]", r)[0].lower() for r in reqs if "extra ==" not in r}
    assert not {"simpleitk", "psutil"} & runtime
    assert any(r.lower().startswith("simpleitk") and 'extra == "test"' in r for r in reqs)
    assert any(r.lower().startswith("psutil") and 'extra == "bench"' in r for r in reqs)
    pattern = re.compile(r"^\s*(import|from)\s+(SimpleITK|psutil)\b", re.M)
    assert not [p for p in (REPO_ROOT / "ldct_invrep").rglob("*.py") if pattern.search(p.read_text())]


# --------------------------------------------------------------------------------------------- item 4
@pytest.fixture(scope="module")
def mayo_by_thickness(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two copies of all 10 patients (tiny files): one with the 3 mm series only, one with the 1 mm only."""
    import shutil

    from test_scanners import MAYO_PATIENTS, make_mayo_tree

    full = make_mayo_tree(tmp_path_factory.mktemp("mayo_full"), MAYO_PATIENTS)
    copies = {}
    for keep, drop in (("3mm", "1mm"), ("1mm", "3mm")):
        copy = tmp_path_factory.mktemp(f"mayo_{keep}")
        shutil.copytree(full, copy, dirs_exist_ok=True)
        for folder in copy.glob(f"*/*_{drop}"):
            shutil.rmtree(folder)
        copies[keep] = copy
    return copies


def test_prepare_mayo_fits_downloads_of_one_thickness(mayo_by_thickness: dict[str, Path], tmp_path: Path) -> None:
    # the tiny copies hold 4 slices a series, not the manifest's totals: accepted as they are
    result = invoke("prepare", "mayo2016", mayo_by_thickness["3mm"], "--out", tmp_path / "a", "--accept-incomplete")
    assert "MISSING" not in result.stdout and "patients found (10)" in result.stdout
    assert json.loads((tmp_path / "a" / "mayo2016_patient.json").read_text())["thickness"] == "3mm"

    one_mm = mayo_by_thickness["1mm"]
    result = invoke("prepare", "mayo2016", one_mm, "--out", tmp_path / "b", code=2)  # the patient split is 3 mm
    assert "NOT OK" in result.stdout and "MISSING series (20)" in result.stdout
    assert error_lines(result)[0].startswith(f"error: {one_mm}: the mayo2016 copy is NOT OK") and not (tmp_path / "b").exists()
    result = invoke("prepare", "mayo2016", one_mm, "--out", tmp_path / "b", "--thickness", "1mm", "--accept-incomplete")
    assert "MISSING" not in result.stdout
    assert json.loads((tmp_path / "b" / "mayo2016_patient.json").read_text())["thickness"] == "1mm"
    result = invoke("prepare", "mayo2016", one_mm, "--out", tmp_path / "c", "--accept-incomplete", code=2)
    assert "no paired 3mm B30 training slices found (the copy has: 1mm B30" in error_lines(result)[0]


def test_prepare_refuses_an_incomplete_copy_unless_accepted(
    mayo_by_thickness: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from ldct_invrep.data import load_manifest

    copy = tmp_path / "nine"
    shutil.copytree(mayo_by_thickness["3mm"], copy)
    shutil.rmtree(copy / "L286")
    result = invoke("prepare", "mayo2016", copy, "--out", tmp_path / "dl.json", code=2)
    assert "MISSING patients (1): L286" in result.stdout and not (tmp_path / "dl.json").exists()
    # a complete copy passes without --accept-incomplete: the tiny tree with the manifest's totals set to its own
    manifest = load_manifest("mayo2016")
    manifest["expected_counts"] = {}
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "mayo2016.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("LDCT_INVREP_MANIFESTS", str(tmp_path / "manifests"))
    result = invoke("prepare", "mayo2016", mayo_by_thickness["3mm"], "--out", tmp_path / "ok.json")
    assert result.stdout.rstrip().endswith("wrote datalist -> " + str(tmp_path / "ok.json"))
    assert "OK: complete and consistent" in result.stdout
    monkeypatch.delenv("LDCT_INVREP_MANIFESTS")
    result = invoke("prepare", "mayo2016", copy, "--out", tmp_path / "dl.json", "--accept-incomplete")
    assert "NOT OK" in result.stdout and (tmp_path / "dl.json").is_file()
    invoke("prepare", "bsd68", copy, "--thickness", "1mm", code=2)  # mayo2016 only
