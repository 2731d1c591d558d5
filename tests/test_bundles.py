"""The MONAI bundles in bundles/: layout and metadata, tiny train/evaluate/inference runs on generated data and
on the real files of ../shared/data, TorchScript export equal to the eager Restorer.

Runs go through ``monai.bundle.run`` in this process (``logging_file=False`` so the bundle's logging.conf does
not reconfigure the test process); one test runs the documented command line in a subprocess.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from _helpers import one_thread_fixture, write_ct_slice
from conftest import REPO_ROOT, shared_path
from PIL import Image
from pydicom.uid import generate_uid

from ldct_invrep.io.checkpoint import load_restorer, read_header
from ldct_invrep.networks import Restorer
from ldct_invrep.recipes import lir_config

monai_bundle = pytest.importorskip("monai.bundle")
pytestmark = [
    pytest.mark.filterwarnings("ignore:parsing config_file:UserWarning"),  # MONAI 1.6 warns at every config parse
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
]

BUNDLES_DIR = REPO_ROOT / "bundles"
BUNDLES = ["ldct_mayo", "ldct_simulated", "natural_awgn", "natural_poisson"]
CONFIGS = ["metadata.json", "train.json", "evaluate.json", "inference.json", "multi_gpu_train.json", "logging.conf"]
META_KEYS = [
    "schema", "version", "changelog", "monai_version", "pytorch_version", "numpy_version",
    "required_packages_version", "task", "description", "authors", "copyright", "references", "network_data_format",
]  # fmt: skip
TENSOR_KEYS = ["type", "format", "modality", "num_channels", "spatial_shape", "dtype", "value_range", "is_patch_data"]
# Architecture overrides shared by train, evaluate, inference and export: the smallest network that runs.
ARCH = {"preset": "lite", "base_channels": 8, "n_res": 1}
TINY_TRAIN = {
    **ARCH,
    "semantic_weight": 0.0,
    "batch_size": 2,
    "epoch_length": 2,
    "train#trainer#max_epochs": 1,
    "log_interval": 1,
    "num_workers": 0,
}


_one_thread = one_thread_fixture()


def run_bundle(bundle: str, config: str, bundle_root: Path, **overrides) -> None:
    """``python -m monai.bundle run --config_file bundles/<bundle>/configs/<config> --bundle_root ...`` in-process."""
    monai_bundle.run(
        run_id="run",
        config_file=str(BUNDLES_DIR / bundle / "configs" / config),
        logging_file=False,
        bundle_root=str(bundle_root),
        **overrides,
    )


def assert_trained(bundle_root: Path, bundle: str, iterations: int = 2) -> dict:
    """Checkpoints and the exported model.pt (one format: state dict + header) exist and agree; returns the header."""
    models = bundle_root / "models"
    assert (models / "checkpoint_final.pt").is_file()
    assert (models / f"checkpoint_iteration={iterations}.pt").is_file()
    assert not (models / "lir_restorer.pt").exists()  # one exported file, not two
    restorer, header = load_restorer(models / "model.pt")
    assert header["bundle"] == bundle and header["iterations"] == iterations
    assert header["config"]["base_channels"] == ARCH["base_channels"] and header["preset"] == "lite"
    state = torch.load(models / "model.pt", weights_only=True)["state_dict"]  # MONAI tools: key_in_ckpt="state_dict"
    assert state.keys() == restorer.state_dict().keys()
    final = torch.load(models / "checkpoint_final.pt", weights_only=True)
    assert final["trainer"]["iteration"] == iterations
    return header


def tensorboard_tags(log_dir: Path) -> tuple[set[str], set[str]]:
    """(scalar tags, image tags) of every TensorBoard event file in ``log_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: set[str] = set()
    images: set[str] = set()
    for f in log_dir.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(f), size_guidance={"images": 0, "scalars": 0})
        acc.Reload()
        scalars |= set(acc.Tags()["scalars"])
        images |= set(acc.Tags()["images"])
    return scalars, images


def read_metrics(folder: Path) -> dict[str, float]:
    """``metrics.csv`` of a MetricsSaver (tab separated: name, value)."""
    lines = (folder / "metrics.csv").read_text().strip().splitlines()
    return {name: float(value) for name, value in (line.split("\t") for line in lines)}


# --------------------------------------------------------------------------------------------- data makers
def write_pngs(folder: Path, n: int, shape: tuple[int, ...], seed: int = 0) -> Path:
    """``n`` smooth synthetic 8-bit images (gray, or RGB when ``shape`` has 3 entries)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for i in range(n):
        a, b = rng.uniform(3, 9, 2)
        img = 127 + 60 * np.sin(xx / a + i) + 40 * np.cos(yy / b)
        if len(shape) == 3:
            img = np.stack([img, 0.8 * img, 0.6 * img], axis=-1)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"img{i:03d}.png")
    return folder


def natural_dirs(root: Path) -> Path:
    """The natural bundles' folders: colour (cbsd432 training, cbsd68, kodak24) and grey (train400, bsd68, set12)."""
    write_pngs(root / "train400", 8, (72, 72))
    write_pngs(root / "cbsd432", 8, (72, 72, 3), seed=4)
    write_pngs(root / "set12", 2, (41, 50), seed=1)
    write_pngs(root / "bsd68", 2, (37, 45), seed=2)
    write_pngs(root / "cbsd68", 2, (37, 45, 3), seed=2)
    write_pngs(root / "kodak24", 2, (40, 44, 3), seed=3)
    return root


def link_subset(src: Path, dst: Path, n: int) -> None:
    """Symlinks to the first ``n`` PNG or JPEG images of a real image set (real files, few of them)."""
    dst.mkdir(parents=True, exist_ok=True)
    for p in sorted(q for q in src.iterdir() if q.suffix.lower() in (".png", ".jpg"))[:n]:
        (dst / p.name).symlink_to(p)


def phantom(k: int, size: int = 72) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    body = ((yy - size / 2) / (0.45 * size)) ** 2 + ((xx - size / 2) / (0.4 * size)) ** 2 < 1
    hu = np.where(body, 40.0, -1000.0)
    hu[size // 3 : size // 2, size // 3 + k : size // 2 + k] = 300.0
    return hu


def make_mayo_tree(root: Path, patients=("L067", "L096", "L506"), n: int = 4) -> Path:
    """Mayo 2016 layout ``<root>/<patient>/{full,quarter}_3mm/*.IMA`` with 72x72 phantom slices."""
    rng = np.random.default_rng(0)
    for p in patients:
        for dose, tag, noise in (("full", "FD", 5.0), ("quarter", "QD", 40.0)):
            uid = generate_uid()
            for i in range(1, n + 1):
                name = f"{p}_{tag}_3_1.CT.0004.{i:04d}.2015.12.22.20.19.52.{i}.IMA"
                hu = phantom(i) + rng.normal(0, noise, (72, 72))
                write_ct_slice(
                    root / p / f"{dose}_3mm" / name, hu, z=-100.0 - 3.0 * i, instance=i, thickness=3.0,
                    corner=-24.0, description="synthetic", series_uid=uid,
                )
    return root


def make_nifti(path: Path, n: int = 10) -> Path:
    import nibabel as nib

    vol = np.stack([phantom(k, 72).T for k in range(n)], axis=-1).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(vol, np.diag([1.5, 1.5, 3.0, 1.0])), str(path))
    return path


# --------------------------------------------------------------------------------------------- layout
@pytest.mark.parametrize("bundle", BUNDLES)
def test_bundle_layout_and_metadata(bundle: str) -> None:
    root = BUNDLES_DIR / bundle
    for name in CONFIGS:
        assert (root / "configs" / name).is_file(), name
    assert (root / "docs" / "README.md").is_file() and (root / "models" / ".gitkeep").is_file()
    assert "Apache License" in (root / "LICENSE").read_text()
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    assert not [k for k in META_KEYS if k not in meta]
    assert meta["schema"].startswith("https://") and meta["schema"].endswith(".json")
    assert meta["version"] in meta["changelog"]
    assert any("Learning Invariant Representation" in r for r in meta["references"])
    ct = bundle.startswith("ldct")
    for section, key in (("inputs", "image"), ("outputs", "pred")):
        spec = meta["network_data_format"][section][key]
        assert not [k for k in TENSOR_KEYS if k not in spec]
        assert spec["format"] == ("hounsfield" if ct else "magnitude")
        assert spec["modality"] == ("CT" if ct else "natural image")
        assert spec["num_channels"] == (1 if ct else 3) and len(spec["channel_def"]) == spec["num_channels"]
        assert spec["spatial_shape"] == ["4*n", "4*n"] and spec["dtype"] == "float32"
        assert spec["value_range"] == [-1, 1] and spec["is_patch_data"] is False
    readme = (root / "docs" / "README.md").read_text()
    for needle in ("torchrun --standalone --nnodes=1 --nproc_per_node", "--node_rank", "--rdzv_endpoint", "ckpt_export"):
        assert needle in readme, needle


@pytest.mark.parametrize("bundle", BUNDLES)
def test_logging_conf_passes_monai_validator(bundle: str) -> None:
    from monai.bundle.workflows import _reject_executable_logging_config

    path = str(BUNDLES_DIR / bundle / "configs" / "logging.conf")
    _reject_executable_logging_config(path)  # raises ValueError on a non-literal args= or foreign class=
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(path)
    assert ini["handler_consoleHandler"]["args"] == "(sys.stdout,)"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_multi_gpu_config_follows_model_zoo_pattern(bundle: str) -> None:
    from monai.bundle import ConfigParser

    configs = BUNDLES_DIR / bundle / "configs"
    parser = ConfigParser()
    parser.read_config([str(configs / "train.json"), str(configs / "multi_gpu_train.json")])
    for name in ("network", "discriminators"):
        assert parser[name]["_target_"] == "torch.nn.parallel.DistributedDataParallel"
    assert parser["train"]["sampler"]["_target_"] == "DistributedSampler"
    assert parser["train"]["dataloader"]["sampler"] == "@train#sampler" and parser["train"]["dataloader"]["shuffle"] is False
    assert parser["validate"]["dataloader"]["sampler"] == "@validate#sampler"
    init = " ".join(parser["initialize"])
    assert "'nccl' if torch.cuda.is_available() else 'gloo'" in init and "idist.sync()" in init
    assert "LOCAL_RANK" in parser["device"] and "destroy_process_group" in " ".join(parser["finalize"])
    assert parser["is_main_process"] == "$torch.distributed.get_rank() == 0"
    # every training handler is switched off on ranks > 0, except validation (its metrics all-gather)
    handlers = [h for h in parser["train"]["handlers"] if isinstance(h, dict)]
    assert handlers and all(h["_disabled_"] == "$not @is_main_process" for h in handlers)


# --------------------------------------------------------------------------------------------- natural images
@pytest.fixture(scope="module")
def awgn_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """natural_awgn trained for 2 iterations on generated PNGs: (bundle_root, dataset_dir)."""
    data = natural_dirs(tmp_path_factory.mktemp("natural_data"))
    root = tmp_path_factory.mktemp("awgn_bundle")
    run_bundle("natural_awgn", "train.json", root, dataset_dir=str(data), **TINY_TRAIN)
    return root, data


def test_natural_awgn_train_evaluate_inference_generated(awgn_run: tuple[Path, Path], tmp_path: Path) -> None:
    root, data = awgn_run
    header = assert_trained(root, "natural_awgn")
    assert header["noise"] == "awgn" and header["sigma_range"] == [5, 50]
    assert header["channels"] == 3 and header["config"]["in_channels"] == 3 and header["training_data"].startswith("cbsd432 (colour)")
    scalars, images = tensorboard_tags(root / "logs")
    assert {"psnr_0_255", "ssim_0_1"} <= scalars  # validation metrics, at the trainer's iteration
    assert {"rec", "cc", "d_x"} <= scalars and images == {"noisy|denoised|clean"}  # training losses, image grid
    run_bundle("natural_awgn", "evaluate.json", root, dataset_dir=str(data), **ARCH)
    sets = sorted(p.name for p in (root / "eval").iterdir() if p.is_dir())
    assert set(json.loads((root / "eval" / "summary.json").read_text())) == set(sets)
    assert sets == [f"{s}_sigma{g}" for s in ("bsd68", "set12") for g in (25, 35, 50)]
    for s in sets:
        m = read_metrics(root / "eval" / s)
        assert set(m) == {"psnr_0_255", "ssim_0_1"} and 0 < m["psnr_0_255"] < 100 and -1 <= m["ssim_0_1"] <= 1
        raw = (root / "eval" / s / "psnr_0_255_raw.csv").read_text().splitlines()
        assert raw[1].startswith("img000.png") and len(raw) == 3
    run_bundle("natural_awgn", "inference.json", root, input_dir=str(data / "kodak24"), output_dir=str(tmp_path / "out"), **ARCH)
    outs = sorted((tmp_path / "out").glob("*.png"))
    assert [p.name for p in outs] == ["img000.png", "img001.png"]
    with Image.open(outs[1]) as im:
        assert im.mode == "RGB" and im.size == (44, 40)


def test_natural_awgn_grey_option(tmp_path: Path) -> None:
    """``--channels 1``: grey Train400 training, a 1-channel network, grey BSD68/Set12 evaluation, grey PNGs out."""
    data = natural_dirs(tmp_path / "data")
    root = tmp_path / "bundle"
    run_bundle("natural_awgn", "train.json", root, dataset_dir=str(data), channels=1, **TINY_TRAIN)
    header = assert_trained(root, "natural_awgn")
    assert header["channels"] == 1 and header["config"]["in_channels"] == 1 and header["training_data"].startswith("train400 (grey)")
    run_bundle("natural_awgn", "evaluate.json", root, dataset_dir=str(data), channels=1, **ARCH)
    assert 0 < read_metrics(root / "eval" / "bsd68_sigma25")["psnr_0_255"] < 100
    run_bundle("natural_awgn", "inference.json", root, input_dir=str(data / "kodak24"), output_dir=str(tmp_path / "out"), channels=1, **ARCH)
    with Image.open(tmp_path / "out" / "img000.png") as im:
        assert im.mode == "L" and im.size == (44, 40)


def test_resume_continues_from_checkpoint(awgn_run: tuple[Path, Path], tmp_path: Path) -> None:
    """``--resume_from`` restores networks, optimisers and the iteration count; training goes on to epoch 2."""
    root, data = awgn_run
    resumed = tmp_path / "bundle"
    overrides = {**TINY_TRAIN, "train#trainer#max_epochs": 2}
    run_bundle(
        "natural_awgn", "train.json", resumed, dataset_dir=str(data),
        resume_from=str(root / "models" / "checkpoint_final.pt"), **overrides,
    )  # fmt: skip
    assert not (resumed / "models" / "checkpoint_iteration=2.pt").exists()  # iterations 1-2 were not rerun
    assert_trained(resumed, "natural_awgn", iterations=4)
    final = torch.load(resumed / "models" / "checkpoint_final.pt", weights_only=True)
    assert all(s["step"] == 4 for s in final["g_optimizer"]["state"].values())


@pytest.mark.slow
def test_bundle_cli_as_documented(awgn_run: tuple[Path, Path], tmp_path: Path) -> None:
    """The README command line (python -m monai.bundle run ...) in a subprocess, smoke overrides."""
    _, data = awgn_run
    root = tmp_path / "bundle"
    cmd = [
        sys.executable, "-m", "monai.bundle", "run",
        "--config_file", str(BUNDLES_DIR / "natural_awgn" / "configs" / "train.json"),
        "--bundle_root", str(root), "--dataset_dir", str(data), "--threads", "1",
    ]  # fmt: skip
    for k, v in TINY_TRAIN.items():
        cmd += [f"--{k}", str(v)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Epoch[1] Metrics -- psnr_0_255" in proc.stdout + proc.stderr  # logging.conf routes StatsHandler output
    assert_trained(root, "natural_awgn")


def test_ckpt_export_torchscript_trace_equals_eager(awgn_run: tuple[Path, Path], tmp_path: Path) -> None:
    """``ckpt_export --use_trace True``: same output as the eager Restorer on H, W multiples of 4 (the
    metadata's spatial_shape ["4*n", "4*n"]), also at a size other than the traced one."""
    root, _ = awgn_run
    configs = BUNDLES_DIR / "natural_awgn" / "configs"
    ts = tmp_path / "model.ts"
    monai_bundle.ckpt_export(
        net_id="network_def",
        filepath=str(ts),
        ckpt_file=str(root / "models" / "model.pt"),
        meta_file=str(configs / "metadata.json"),
        config_file=str(configs / "inference.json"),
        bundle_root=str(root),
        use_trace=True,
        input_shape=[1, 3, 64, 64],
        key_in_ckpt="state_dict",
        **ARCH,
    )
    scripted = torch.jit.load(str(ts))
    eager, _ = load_restorer(root / "models" / "model.pt")
    torch.manual_seed(0)
    for shape in ((1, 3, 64, 64), (2, 3, 48, 80)):
        x = torch.rand(shape) * 2 - 1
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), eager(x), rtol=1e-5, atol=1e-5)


def test_restorer_is_scriptable_for_ckpt_export() -> None:
    """ckpt_export without --use_trace scripts the Restorer: any H x W, including padding and cropping."""
    net = Restorer.from_config(lir_config(**ARCH)).eval()
    scripted = torch.jit.script(net)
    for shape in ((1, 1, 37, 50), (1, 1, 64, 64), (1, 1, 5, 3)):
        x = torch.rand(shape) * 2 - 1
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), net(x))


def test_verify_net_in_out(tmp_path: Path) -> None:
    configs = BUNDLES_DIR / "ldct_simulated" / "configs"
    monai_bundle.verify_net_in_out(
        net_id="network_def",
        meta_file=str(configs / "metadata.json"),
        config_file=str(configs / "inference.json"),
        n=16,
        **ARCH,
    )


@pytest.mark.slow
@pytest.mark.shared_data
def test_natural_awgn_real_images(tmp_path: Path) -> None:
    """Colour: CBSD432 JPEGs for training, Kodak24 validation, CBSD68 and Set12 (grey, repeated) evaluation."""
    data = tmp_path / "data"
    link_subset(shared_path("cbsd432"), data / "cbsd432", 8)
    link_subset(shared_path("kodak24"), data / "kodak24", 1)
    link_subset(shared_path("set12"), data / "set12", 1)
    link_subset(shared_path("cbsd68"), data / "cbsd68", 1)
    root = tmp_path / "bundle"
    run_bundle("natural_awgn", "train.json", root, dataset_dir=str(data), **TINY_TRAIN)
    assert_trained(root, "natural_awgn")
    run_bundle("natural_awgn", "evaluate.json", root, dataset_dir=str(data), **ARCH)
    m = read_metrics(root / "eval" / "bsd68_sigma50")
    assert 0 < m["psnr_0_255"] < 60


def test_natural_poisson_generated(tmp_path: Path) -> None:
    data = natural_dirs(tmp_path / "data")
    root = tmp_path / "bundle"
    run_bundle("natural_poisson", "train.json", root, dataset_dir=str(data), bf16=True, **TINY_TRAIN)
    header = assert_trained(root, "natural_poisson")
    assert header["noise"] == "poisson" and "sigma_range" not in header and header["bf16"] is True
    run_bundle("natural_poisson", "evaluate.json", root, dataset_dir=str(data), **ARCH)
    assert [p.name for p in (root / "eval").iterdir() if p.is_dir()] == ["kodak24_poisson"]
    m = read_metrics(root / "eval" / "kodak24_poisson")
    assert 0 < m["psnr_0_255"] < 100


@pytest.mark.slow
@pytest.mark.shared_data
def test_natural_poisson_real_kodak(tmp_path: Path) -> None:
    data = tmp_path / "data"
    link_subset(shared_path("cbsd432"), data / "cbsd432", 8)
    link_subset(shared_path("cbsd68"), data / "cbsd68", 1)
    link_subset(shared_path("kodak24"), data / "kodak24", 2)
    root = tmp_path / "bundle"
    run_bundle("natural_poisson", "train.json", root, dataset_dir=str(data), val_num_images=1, **TINY_TRAIN)
    assert_trained(root, "natural_poisson")
    run_bundle("natural_poisson", "evaluate.json", root, dataset_dir=str(data), **ARCH)
    raw = (root / "eval" / "kodak24_poisson" / "ssim_0_1_raw.csv").read_text().splitlines()
    assert [line.split("\t")[0] for line in raw[1:]] == ["kodim01.png", "kodim02.png"]


# --------------------------------------------------------------------------------------------- CT
def test_ldct_mayo_generated_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--dataset_dir only: the datalist is written by data.prepare('mayo2016', ...) on the first run, which
    prints its report; a copy with 3 of the 10 patients stops the run unless accept_incomplete. No validation
    entries (5 % of 8 positions rounds to 0), so the validation handler is left out."""
    tree = make_mayo_tree(tmp_path / "mayo")
    root = tmp_path / "bundle"
    with pytest.raises(Exception) as stopped:
        run_bundle("ldct_mayo", "train.json", root, dataset_dir=str(tree), **TINY_TRAIN)
    assert "NOT OK" in str(stopped.value.__cause__ or stopped.value) and not (root / "datalists").exists()
    assert "MISSING patients (7)" in capsys.readouterr().out
    run_bundle("ldct_mayo", "train.json", root, dataset_dir=str(tree), accept_incomplete=True, **TINY_TRAIN)
    printed = capsys.readouterr().out
    assert "NOT OK" in printed and "wrote datalist ->" in printed and "MISSING series" not in printed  # 3 mm only
    datalist = json.loads((root / "datalists" / "mayo2016_patient.json").read_text())
    assert datalist["split_info"]["test_patients"] == ["L506"] and len(datalist["test"]) == 4
    header = assert_trained(root, "ldct_mayo")
    assert header["hu_range"] == [-1024.0, 3072.0]
    run_bundle("ldct_mayo", "evaluate.json", root, dataset_dir=str(tree), **ARCH)
    lir, noisy = read_metrics(root / "eval" / "lir"), read_metrics(root / "eval" / "input")
    names = {f"{w}_{m}" for w, dr in (("abdomen", 400), ("full", 4096)) for m in (f"psnr_dr{dr}", f"ssim_dr{dr}", "rmse_hu")}
    assert set(lir) == set(noisy) == names
    assert noisy["abdomen_psnr_dr400"] > 15  # quarter vs full dose phantom: noise std ~40 HU
    assert noisy["full_psnr_dr4096"] > noisy["abdomen_psnr_dr400"]  # same error, 10x the data range
    out = tmp_path / "denoised"
    run_bundle("ldct_mayo", "inference.json", root, input_dir=str(tree / "L506"), output_dir=str(out), **ARCH)
    series = sorted(out.iterdir())
    assert len(series) == 2  # full_3mm and quarter_3mm of L506
    ds = pydicom.dcmread(next(series[0].glob("*.dcm")))
    assert "DERIVED" in ds.ImageType and ds.Rows == 72


@pytest.mark.slow
@pytest.mark.shared_data
def test_ldct_mayo_real_pair(tmp_path: Path, mayo_pair: tuple[Path, Path]) -> None:
    """The real L506 quarter/full-dose slice: unpaired training entries and a paired validation/test entry."""
    full, quarter = mayo_pair
    datalist = tmp_path / "mayo.json"
    datalist.write_text(
        json.dumps(
            {
                "data_root": str(full.parent),
                "training": [{"noisy": quarter.name}, {"clean": full.name}],
                "validation": [{"noisy": quarter.name, "clean": full.name}],
                "test": [{"noisy": quarter.name, "clean": full.name}],
            }
        )
    )
    root = tmp_path / "bundle"
    run_bundle("ldct_mayo", "train.json", root, datalist=str(datalist), **TINY_TRAIN)
    assert_trained(root, "ldct_mayo")
    run_bundle("ldct_mayo", "evaluate.json", root, datalist=str(datalist), **ARCH)
    noisy = read_metrics(root / "eval" / "input")
    # quarter vs full dose of the same slice (noise std ~64 HU in the body): ~20 dB in the abdomen window
    # [-160, 240] HU (data range 400), where air clips to the same value in both images
    assert 15 < noisy["abdomen_psnr_dr400"] < 30 and noisy["full_psnr_dr4096"] > noisy["abdomen_psnr_dr400"]
    assert read_metrics(root / "eval" / "lir")["abdomen_psnr_dr400"] > 0


def test_ldct_simulated_synthetic_cache(tmp_path: Path) -> None:
    nifti = make_nifti(tmp_path / "ct" / "tiny.nii.gz")
    root = tmp_path / "bundle"
    run_bundle("ldct_simulated", "train.json", root, ct_sources=[str(nifti)], **TINY_TRAIN)
    manifest = json.loads((root / "cache" / "ct_cache.json").read_text())
    assert manifest["dose_fraction"] == 0.25 and manifest["counts"]["test_noisy"] >= 1
    header = assert_trained(root, "ldct_simulated")
    assert header["sources"] == ["tiny.nii.gz"] and header["cache_sha256"] == manifest["cache_sha256"]
    assert header["semantic_weight"] == 0.0 and header["dose_fraction"] == 0.25
    # by default the export is the mean of the second half's checkpoints (here only iteration 2's)
    assert header["averaged_iterations"] == [2] and header["selected_by"].startswith("mean of the weights")
    assert (root / "models" / "best_network.pt").is_file()
    mtime = (root / "cache" / "ct_cache.npz").stat().st_mtime_ns
    run_bundle("ldct_simulated", "evaluate.json", root, **ARCH)
    assert (root / "cache" / "ct_cache.npz").stat().st_mtime_ns == mtime  # evaluation reads, never rebuilds
    noisy = read_metrics(root / "eval" / "input")
    raw = (root / "eval" / "lir" / "abdomen_psnr_dr400_raw.csv").read_text().splitlines()
    assert len(raw) - 1 == manifest["counts"]["test_noisy"] and 10 < noisy["abdomen_psnr_dr400"] < 60


def test_ldct_simulated_clean_domain_noise(tmp_path: Path) -> None:
    """``clean_domain_noise``: the training items carry noise maps from the cache's pairs; the header says so."""
    nifti = make_nifti(tmp_path / "ct" / "tiny.nii.gz")
    root = tmp_path / "bundle"
    run_bundle("ldct_simulated", "train.json", root, ct_sources=[str(nifti)], unpaired_split=False,
               clean_domain_noise=True, **TINY_TRAIN)  # fmt: skip
    assert assert_trained(root, "ldct_simulated")["clean_domain_noise"] is True
    parser = monai_bundle.ConfigParser()
    parser.read_config(str(BUNDLES_DIR / "ldct_simulated" / "configs" / "train.json"))
    parser.update({"bundle_root": str(root), "ct_sources": [str(nifti)], "unpaired_split": False, "clean_domain_noise": True})
    item = parser.get_parsed_content("train#dataset")[0]
    assert item["clean_noise"].shape == item["clean"].shape and float(item["clean_noise"].abs().max()) > 0


def test_ldct_simulated_export_average_or_best(tmp_path: Path) -> None:
    nifti = make_nifti(tmp_path / "ct" / "tiny.nii.gz")
    tiny = {**TINY_TRAIN, "epoch_length": 1, "train#trainer#max_epochs": 5, "n_checkpoints": 5}
    averaged = tmp_path / "averaged"
    run_bundle("ldct_simulated", "train.json", averaged, ct_sources=[str(nifti)], **tiny)
    header = assert_trained(averaged, "ldct_simulated", iterations=5)
    assert header["averaged_iterations"] == [2, 3, 4, 5] and header["iterations_run"] == 5
    # the exported Restorer is the mean of those checkpoints' E_X and G_Y weights and batch-norm statistics
    states = [torch.load(averaged / "models" / f"checkpoint_iteration={i}.pt", weights_only=True)["network"] for i in (2, 3, 4, 5)]
    exported = torch.load(averaged / "models" / "model.pt", weights_only=True)["state_dict"]
    for name in ("content_encoder.model.0.conv.weight", "content_encoder.model.0.norm.running_var"):
        full = name.replace("content_encoder.", "content_encoder_x.")
        torch.testing.assert_close(exported[name], torch.stack([s[full] for s in states]).mean(0))
    best = tmp_path / "best"
    run_bundle("ldct_simulated", "train.json", best, ct_sources=[str(nifti)], average_checkpoints=False, **tiny)
    _, header = load_restorer(best / "models" / "model.pt")
    assert header["selected_by"].startswith("best abdomen_psnr_dr400") and header["iterations_run"] == 5
    assert header["iterations"] in (1, 2, 3, 4, 5) and "averaged_iterations" not in header


@pytest.mark.slow
@pytest.mark.shared_data
def test_ldct_simulated_real_nifti_and_series_inference(tmp_path: Path) -> None:
    """The shipped-weights recipe on the real TotalSegmentator NIfTI (the DICOM series would take minutes of
    low-dose simulation), then inference.json over the real 4-slice MONAI DICOM series."""
    nifti = shared_path("ct_nifti", "example_ct.nii.gz")
    root = tmp_path / "bundle"
    run_bundle("ldct_simulated", "train.json", root, ct_sources=[str(nifti)], val_max_slices=2, **TINY_TRAIN)
    assert_trained(root, "ldct_simulated")
    out = tmp_path / "denoised"
    series_dir = shared_path("ct_dicom_tiny16_monai")
    run_bundle("ldct_simulated", "inference.json", root, input_dir=str(series_dir), output_dir=str(out), **ARCH)
    (series,) = list(out.iterdir())
    files = sorted(series.glob("*.dcm"))
    ds = pydicom.dcmread(files[0])
    # output folder named after the source series; the derived series has its own UID
    assert len(files) == 4 and ds.SeriesInstanceUID != series.name and "DERIVED" in ds.ImageType
    assert read_header(root / "models" / "model.pt")["sources"] == ["example_ct.nii.gz"]


def test_validation_indices_prefer_full_size_slices() -> None:
    from ldct_invrep.recipes import validation_indices

    images = [np.zeros((101, 122)), np.zeros((512, 512)), np.zeros((64, 64)), np.zeros((1, 512, 512))]
    assert validation_indices(images, 256) == [1, 3]
    assert validation_indices(images, 256, 1) == [1]
    assert validation_indices(images[:1] + images[2:3], 256) == [0, 1]  # none large enough: all of them


def test_export_averaged_restorer_without_checkpoints(tmp_path: Path) -> None:
    from ldct_invrep.errors import InputError
    from ldct_invrep.networks import LIRNet, get_config
    from ldct_invrep.recipes import export_averaged_restorer

    with pytest.raises(InputError, match="no training checkpoint at iteration 0 or later"):
        export_averaged_restorer(LIRNet(get_config("lite")), tmp_path, {}, 0)
