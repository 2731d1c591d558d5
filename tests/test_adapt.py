"""``ldct-invrep adapt`` and its pieces: training states, the budgeted run, the no-reference check, the bundle config.

A tiny LIR state (lite preset shrunk to 4 channels, a few iterations on noisy copies of sample slices) stands in
for the shipped model's training state: every step (load all networks and optimisers, train on the user's
slices, check, guard, write, resume) is real, the figures are meaningless.
"""

from __future__ import annotations

import dataclasses
import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from _helpers import load_script, one_thread_fixture
from conftest import REPO_ROOT
from pydicom.uid import ExplicitVRLittleEndian
from test_cli import copy_slices, error_lines, invoke, make_tiny_weights

from ldct_invrep.io.checkpoint import load_restorer, read_header, save_restorer
from ldct_invrep.engine.training_state import (
    FORMAT,
    read_training_state,
    save_training_state,
    state_path_for,
    wrap_checkpoint,
)
from ldct_invrep.errors import InputError

BUNDLE = REPO_ROOT / "bundles" / "ldct_simulated"
# quick runs: 6 slices read, 2-patch batches, a state every 2 iterations, no drift guard unless a test wants one
FAST = ["--max-slices", 6, "--batch-size", 2, "--checkpoint-every", 2, "--threads", 1, "-q"]
LOOSE = ["--max-drift-hu", 1000, "--max-noise-ratio", 1000]

_one_thread = one_thread_fixture()


def _tiny_trainer(iterations: int, epochs: int = 1):
    """A tiny lite LIRTrainer (``epochs`` epochs of ``iterations // epochs``) on noisy/clean sample patches
    (Gaussian noise: a stand-in noisy domain X), and the header of its training state."""
    from torch.utils.data import DataLoader

    from ldct_invrep.data import UnpairedPatchDataset
    from ldct_invrep.package_files import sample_series_path
    from ldct_invrep.engine import LIRTrainer, build_lir, make_optimizers, make_schedulers
    from ldct_invrep.io import read_series
    from ldct_invrep.losses import LIRLossWeights
    from ldct_invrep.networks import get_config
    from ldct_invrep.transforms.windowing import hu_to_net

    torch.manual_seed(0)
    config = get_config("lite", base_channels=4, n_res=1, noise_channels=4, dis_channels=4)
    weights = LIRLossWeights(semantic=0.0, cross_cycle=1.0)
    network, discriminators, objective = build_lir(config, weights=weights)
    g_opt, d_opt = make_optimizers(network, discriminators)
    g_sch, d_sch = make_schedulers(g_opt, d_opt)
    hu = read_series(sample_series_path()).hu[::4]
    rng = np.random.default_rng(0)
    noisy = [hu_to_net(h + rng.normal(0, 40, h.shape).astype(np.float32)) for h in hu[::2]]
    clean = [hu_to_net(h) for h in hu[1::2]]
    data = UnpairedPatchDataset(noisy, clean, samples_per_epoch=2 * iterations // epochs, seed=0)
    trainer = LIRTrainer(
        "cpu", epochs, DataLoader(data, batch_size=2), network, discriminators, objective, g_opt, d_opt,
        epoch_length=iterations // epochs, g_scheduler=g_sch, d_scheduler=d_sch,
    )  # fmt: skip
    header = {
        "config": dataclasses.asdict(config), "preset": "lite", "loss_weights": dataclasses.asdict(weights),
        "hu_range": [-1024.0, 3072.0], "training_data": "tiny test state", "iterations": iterations,
    }  # fmt: skip
    return trainer, header


@pytest.fixture(scope="module")
def tiny_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ldct_invrep.engine import checkpoint_dict

    trainer, header = _tiny_trainer(3)
    trainer.run()
    return save_training_state(tmp_path_factory.mktemp("state") / "tiny_state.pt", checkpoint_dict(trainer), header)


@pytest.fixture
def my_scanner(sample_series: Path, tmp_path: Path) -> Path:
    """6 sample slices as a user's series: a SeriesInstanceUID, a patient name and ID (which must never be
    recorded), in a folder named after the patient."""
    folder = copy_slices(sample_series, tmp_path / "patient_PID12345", 6)
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.10.999.1"
        ds.PatientName, ds.PatientID = "Doe^Jane", "PID12345"
        ds.save_as(path)
    return folder


def adapt(*args, code: int = 0):
    return invoke("adapt", *args, code=code)


# --------------------------------------------------------------------------------------------- end to end
def test_help_lists_adapt_with_examples() -> None:
    assert "adapt " in invoke("--help").stdout
    text = invoke("adapt", "--help").stdout
    assert re.search(r"Examples:\n\s+ldct-invrep adapt ", text) and "[default: 10, unless --iterations;" in text


def test_adapt_end_to_end_then_denoise(my_scanner: Path, tiny_state: Path, tmp_path: Path) -> None:
    out = tmp_path / "my_model.pt"
    before = {p.name: p.read_bytes() for p in my_scanner.iterdir()}
    result = adapt(my_scanner, "--out", out, "--from", tiny_state, "--iterations", 4, *FAST, *LOOSE)
    # the check table and the summary line on stdout
    assert "no-reference check on 1 held-out slice" in result.stdout
    for row in ("noise std, flat soft tissue (HU)", "edge sharpness (HU/mm)", "soft-tissue mean (HU)", "drift from input"):
        assert row in result.stdout
    assert "adapted for 4 iterations" in result.stdout and str(out) in result.stdout
    # 5 training slices: the one-line warning about adapting on few slices
    assert "warning: " in result.stderr and "adapting on 5 low-dose slices" in result.stderr
    assert {p.name: p.read_bytes() for p in my_scanner.iterdir()} == before  # inputs untouched

    restorer, header = load_restorer(out)
    adapted = header["adapted"]
    assert adapted["iterations"] == 4 and adapted["budget"] == {"iterations": 4} and adapted["seconds"] > 0
    assert adapted["from"] == "tiny_state.pt" and adapted["from_iteration"] == 3
    assert adapted["low_dose_series"] == [{"series_uid": "1.2.826.0.1.3680043.10.999.1", "slices": 6}]
    assert adapted["normal_dose_series"][0]["label"] == "package sample series"
    assert adapted["training_slices"] == 5 and adapted["held_out_slices"] == 1
    check = adapted["check"]
    assert set(check) >= {"input", "before", "after", "drift_after_hu", "max_drift_hu", "noise_ratio", "max_noise_ratio"}
    assert check["noise_ratio"] == pytest.approx(check["after"]["noise_hu"] / check["before"]["noise_hu"], rel=1e-2)
    assert check["drift_after_hu"] == pytest.approx(check["after"]["soft_tissue_hu"] - check["input"]["soft_tissue_hu"], abs=0.01)
    assert header["preset"] == "lite" and "adapted (ldct-invrep adapt, 4 iterations)" in header["training_data"]
    text = json.dumps(header)
    assert "PID12345" not in text and "Doe" not in text  # no patient data, not even the folder name

    # the adapted weights are not the starting ones, and the state next to the output holds everything
    start = read_training_state(tiny_state).restorer()
    assert any(not torch.equal(a, b) for a, b in zip(start.state_dict().values(), restorer.state_dict().values()))
    state = read_training_state(state_path_for(out))
    assert {"network", "discriminators", "g_optimizer", "d_optimizer", "g_scheduler", "trainer", "rng", "budget", "snapshots"} <= set(state.entries)
    assert state.entries["trainer"]["iteration"] == 4 and state.header["adapt"]["iterations"] == 4
    assert "PID12345" not in json.dumps(state.header)

    # denoise and info use it
    denoised = tmp_path / "den.nii.gz"
    invoke("denoise", my_scanner, denoised, "--weights", out, "--threads", 1, "-q")
    assert denoised.is_file()
    assert "adapted" in invoke("info", out).stdout


def test_adapt_from_its_own_state_and_nifti_input(my_scanner: Path, tiny_state: Path, tmp_path: Path) -> None:
    """A state written by adapt is a --from for further adapting; NIfTI inputs are identified by a hash."""
    first = tmp_path / "first.pt"
    adapt(my_scanner, "--out", first, "--from", tiny_state, "--iterations", 2, *FAST, *LOOSE)
    nifti = tmp_path / "scan.nii.gz"
    invoke("denoise", my_scanner, nifti, "--weights", first, "-q")  # any NIfTI volume of CT slices will do
    second = tmp_path / "second.pt"
    adapt(nifti, "--out", second, "--from", state_path_for(first), "--iterations", 2, *FAST, *LOOSE)
    adapted = read_header(second)["adapted"]
    assert adapted["from"] == "first_state.pt" and adapted["from_iteration"] == 2
    (series,) = adapted["low_dose_series"]
    assert set(series) == {"sha256", "slices"} and len(series["sha256"]) == 16


# --------------------------------------------------------------------------------------------- resume
def test_resume_is_exact_and_replaces_its_own_output(my_scanner: Path, tiny_state: Path, tmp_path: Path) -> None:
    straight, split = tmp_path / "straight.pt", tmp_path / "split.pt"
    adapt(my_scanner, "--out", straight, "--from", tiny_state, "--iterations", 4, *FAST, *LOOSE)
    adapt(my_scanner, "--out", split, "--from", tiny_state, "--iterations", 2, *FAST, *LOOSE)
    assert read_header(split)["adapted"]["iterations"] == 2
    # the same command with --resume and a larger budget goes on; it replaces the model it wrote itself
    adapt(my_scanner, "--out", split, "--from", tiny_state, "--iterations", 4, "--resume", *FAST, *LOOSE)
    a = torch.load(state_path_for(straight), weights_only=True)
    b = torch.load(state_path_for(split), weights_only=True)
    assert a["trainer"]["iteration"] == b["trainer"]["iteration"] == 4
    for key in ("network", "discriminators"):
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], rtol=0, atol=0, msg=f"{key}.{name}")
    assert b["budget"]["elapsed_seconds"] > 0
    assert read_header(split)["adapted"]["iterations"] == 4


def test_resume_refuses_other_inputs_and_a_missing_state(my_scanner: Path, tiny_state: Path, sample_series: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    result = adapt(my_scanner, "--out", out, "--from", tiny_state, "--iterations", 2, "--resume", *FAST, code=2)
    assert error_lines(result) == [f"error: {state_path_for(out)}: no adaptation state to resume (run without --resume first)"]
    adapt(my_scanner, "--out", out, "--from", tiny_state, "--iterations", 2, *FAST, *LOOSE)
    other = copy_slices(sample_series, tmp_path / "other", 4)
    result = adapt(other, "--out", out, "--from", tiny_state, "--iterations", 4, "--resume", *FAST, *LOOSE, code=2)
    (line,) = error_lines(result)
    assert "that adaptation ran with other low-dose series" in line
    # a model file the run did not write is not replaced; without --resume, an earlier run's state is not either
    out.write_bytes(b"someone else's model")
    result = adapt(my_scanner, "--out", out, "--from", tiny_state, "--iterations", 4, "--resume", *FAST, *LOOSE, code=2)
    assert error_lines(result) == [f"error: {out}: output already exists; pass --overwrite to replace it"]
    result = adapt(my_scanner, "--out", out, "--from", tiny_state, "--iterations", 2, "--overwrite", *FAST, *LOOSE, code=2)
    assert error_lines(result) == [
        f"error: {out}: file exists and was not written by ldct-invrep; refusing to replace it, choose another output location"
    ]
    assert out.read_bytes() == b"someone else's model"
    out.unlink()
    result = adapt(my_scanner, "--out", out, "--from", tiny_state, "--iterations", 2, *FAST, *LOOSE, code=2)
    assert error_lines(result) == [
        f"error: {state_path_for(out)}: the state of an earlier adaptation; pass --resume to continue it or "
        "--overwrite to start over"
    ]
    # the state to start from is never an output
    result = adapt(my_scanner, "--out", tiny_state, "--from", tiny_state, "--iterations", 2, "--overwrite", *FAST, code=2)
    assert error_lines(result) == [
        f"error: {tiny_state}: the training state to start from would be overwritten; choose another --out"
    ]


@pytest.mark.parametrize(("stop", "code", "how"), [(KeyboardInterrupt, 130, "interrupted"), (15, 143, "stopped by SIGTERM")])
def test_interrupted_run_says_how_to_resume(
    stop, code: int, how: str, my_scanner: Path, tiny_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ldct_invrep.engine.trainer as trainer_module
    from ldct_invrep.cli.console import Terminated

    step, calls = trainer_module.lir_training_step, []

    def interrupted_at_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Terminated(stop) if isinstance(stop, int) else stop()
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "lir_training_step", interrupted_at_third)
    out = tmp_path / "m.pt"
    result = adapt(my_scanner, "--out", out, "--from", tiny_state, "--iterations", 4, *FAST, *LOOSE, code=code)
    assert error_lines(result) == [
        f"error: {how}; {state_path_for(out)} holds the state written last (every 2 iterations): the same "
        "command with --resume goes on"
    ]
    assert not out.exists()
    assert torch.load(state_path_for(out), weights_only=True)["trainer"]["iteration"] == 2
    monkeypatch.setattr(trainer_module, "lir_training_step", step)
    adapt(my_scanner, "--out", out, "--from", tiny_state, "--iterations", 4, "--resume", *FAST, *LOOSE)
    assert read_header(out)["adapted"]["iterations"] == 4


# --------------------------------------------------------------------------------------------- guard rail
def test_drift_guard_refuses_then_resume_rechecks_without_training(my_scanner: Path, tiny_state: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    result = adapt(my_scanner, "--out", out, "--from", tiny_state, "--iterations", 2, *FAST, "--max-drift-hu", 0, code=2)
    (line,) = error_lines(result)
    assert line.startswith(f"error: {out}: not written: the adapted model moves the soft-tissue mean by")
    assert "tolerance 0 HU" in line and "m_state.pt" in line
    assert "drift from input" in result.stdout  # the table that explains it came first
    assert not out.exists() and state_path_for(out).is_file()
    state_before = state_path_for(out).read_bytes()
    # a resumed run whose budget (by default the earlier one) is used up only re-checks, here with a wider tolerance
    adapt(my_scanner, "--out", out, "--from", tiny_state, "--resume", *FAST, *LOOSE)
    assert read_header(out)["adapted"]["iterations"] == 2
    assert torch.load(state_path_for(out), weights_only=True)["trainer"]["iteration"] == 2
    assert state_path_for(out).read_bytes() == state_before


def test_noise_guard_refuses_a_model_that_leaves_more_noise() -> None:
    """The second guard: more flat-tissue noise than the starting model, by more than max_noise_ratio."""
    from ldct_invrep.adaptation import DEFAULT_MAX_NOISE_RATIO, CheckResult
    from ldct_invrep.image_quality import QualityFigures

    def check(after_noise: float, drift: float = 0.0) -> CheckResult:
        return CheckResult(QualityFigures(55.6, 215.0, 8.6), QualityFigures(11.0, 212.0, 8.8),
                           QualityFigures(after_noise, 212.0, 8.6 + drift), max_drift_hu=5.0, slices=1)

    assert check(11.0 * DEFAULT_MAX_NOISE_RATIO).accepted and check(8.0).accepted
    noisy = check(38.9)
    assert not noisy.accepted and noisy.noise_ratio == pytest.approx(38.9 / 11.0)
    assert "leaves 38.9 HU of noise" in noisy.refusal and "left 11.0 HU" in noisy.refusal and "--max-noise-ratio" in noisy.refusal
    assert "--max-drift-hu" in check(11.0, drift=6.0).refusal  # the drift is checked first
    assert noisy.to_dict()["noise_ratio"] == pytest.approx(3.536, abs=1e-3)


# --------------------------------------------------------------------------------------------- bad inputs
def _empty(sample: Path, tmp: Path, state: Path) -> tuple[list, str, str]:
    (tmp / "empty").mkdir()
    return [tmp / "empty", "--from", state], str(tmp / "empty"), "folder is empty"


def _non_ct(sample: Path, tmp: Path, state: Path) -> tuple[list, str, str]:
    folder = copy_slices(sample, tmp / "mr", 3)
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.Modality = "MR"
        ds.save_as(path)
    return [folder, "--from", state], str(folder), "Modality is MR, not CT"


def _one_slice(sample: Path, tmp: Path, state: Path) -> tuple[list, str, str]:
    folder = copy_slices(sample, tmp / "one", 1)
    return [folder, "--from", state], str(folder), "1 slice; adapt holds out 1 for its check and needs at least one more"


def _no_soft_tissue(sample: Path, tmp: Path, state: Path) -> tuple[list, str, str]:
    folder = copy_slices(sample, tmp / "air", 3)
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        stored = round((-1000.0 - float(ds.RescaleIntercept)) / float(ds.RescaleSlope))  # air everywhere
        dtype = np.int16 if ds.PixelRepresentation else np.uint16
        ds.PixelData = np.full((ds.Rows, ds.Columns), stored, dtype).tobytes()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(path)
    return [folder, "--from", state], str(folder), "no slice(s) with enough flat soft tissue"


def _restorer_weights(sample: Path, tmp: Path, state: Path) -> tuple[list, str, str]:
    weights = make_tiny_weights(tmp / "model.pt")
    return [sample, "--from", weights], str(weights), "an inference checkpoint (E_X and G_Y only) without the training state"


def _headerless_checkpoint(sample: Path, tmp: Path, state: Path) -> tuple[list, str, str]:
    raw = {k: v for k, v in torch.load(state, weights_only=True).items() if k not in ("format", "header_json")}
    torch.save(raw, tmp / "checkpoint_iteration=3.pt")
    path = tmp / "checkpoint_iteration=3.pt"
    return [sample, "--from", path], str(path), "a training checkpoint without a header"


def _garbage_state(sample: Path, tmp: Path, state: Path) -> tuple[list, str, str]:
    (tmp / "junk.pt").write_bytes(b"not a checkpoint")
    return [sample, "--from", tmp / "junk.pt"], str(tmp / "junk.pt"), "not a readable torch checkpoint"


BAD = [_empty, _non_ct, _one_slice, _no_soft_tissue, _restorer_weights, _headerless_checkpoint, _garbage_state]


@pytest.mark.parametrize("make", BAD, ids=[f.__name__.strip("_") for f in BAD])
def test_bad_input_one_line_exit_2(make, sample_series: Path, tiny_state: Path, tmp_path: Path) -> None:
    args, path, problem = make(sample_series, tmp_path, tiny_state)
    out = tmp_path / "out" / "m.pt"
    result = adapt(*args, "--out", out, "--iterations", 2, *FAST, code=2)
    (line,) = error_lines(result)
    assert line.startswith(f"error: {path}") and problem in line, line
    assert "Traceback" not in result.stderr
    assert not out.exists() and not state_path_for(out).exists()


def test_missing_shipped_state_and_bad_usage(sample_series: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absent = tmp_path / "weights" / "lir_ct_state.pt"
    monkeypatch.setattr("ldct_invrep.engine.training_state.default_training_state_path", lambda: absent)
    result = adapt(sample_series, "--out", tmp_path / "m.pt", "--iterations", 2, *FAST, code=2)
    assert error_lines(result) == [
        f"error: {absent}: the shipped model's training state is not installed in this copy of ldct-invrep; "
        "pass --from STATE (a NAME_state.pt file)"
    ]
    result = adapt(sample_series, "--out", tmp_path / "m.pt", "--iterations", 2, "--minutes", 1, code=2)
    assert "give --minutes or --iterations, not both" in result.stderr
    adapt(sample_series, code=2)  # --out is required
    adapt("--out", tmp_path / "m.pt", code=2)  # no LOW_DOSE


# --------------------------------------------------------------------------------------------- pieces
def test_training_state_round_trip_and_wrap(tiny_state: Path, tmp_path: Path) -> None:
    """A campaign's CheckpointSaver files become a state with the exported weights' header; averaged on request."""
    from ldct_invrep.engine import make_checkpoint_saver
    from ldct_invrep.engine.checkpoint import average_checkpoints, checkpoint_iterations
    from ldct_invrep.networks import LIRConfig, LIRNet

    trainer, header = _tiny_trainer(4, epochs=2)
    make_checkpoint_saver(str(tmp_path / "ckpt"), trainer, 2, n_saved=None).attach(trainer)
    trainer.run()
    files = checkpoint_iterations(tmp_path / "ckpt")
    assert list(files) == [2, 4]
    exported = save_restorer(tmp_path / "exported.pt", trainer.network, {k: v for k, v in header.items() if k != "loss_weights"}
                             | {"semantic_weight": 0.0, "cross_cycle_weight": 1.0})  # fmt: skip
    out, diff = wrap_checkpoint(files[4], tmp_path / "wrapped_state.pt", exported)
    assert diff == 0.0
    state = read_training_state(out)
    assert state.header["loss_weights"]["cross_cycle"] == 1.0 and state.header["loss_weights"]["semantic"] == 0.0
    assert state.entries["trainer"]["iteration"] == 4 and state.header["preset"] == "lite"
    network, discriminators, objective = state.build()
    assert objective.weights.cross_cycle == 1.0 and objective.semantic is None
    # averaged: the state's network is the mean of the checkpoints from iteration 2 on
    out, diff = wrap_checkpoint(files[4], tmp_path / "avg_state.pt", exported, average_from=2)
    assert diff > 0
    mean = average_checkpoints(LIRNet(LIRConfig(**header["config"])), [files[2], files[4]])
    for name, value in mean.state_dict().items():
        torch.testing.assert_close(read_training_state(out).entries["network"][name], value)
    with pytest.raises(InputError, match="no 'snapshots'"):
        state.load({"snapshots": torch.nn.Linear(1, 1)})
    assert torch.load(out, weights_only=True)["format"] == FORMAT


def test_checkpoints_of_the_tool_are_its_own_files(tiny_state: Path, tmp_path: Path) -> None:
    """--overwrite replaces only outputs of ldct-invrep (io.atomic): a .pt counts when its format says so."""
    from ldct_invrep.io.atomic import is_own_file

    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    assert is_own_file(tiny_state) and is_own_file(make_tiny_weights(tmp_path / "model.pt"))
    assert not is_own_file(tmp_path / "other.pt")


def test_time_budget_stops_the_run_and_counts_over_resumes() -> None:
    from ldct_invrep.engine.run_control import TrainingBudget

    trainer, _ = _tiny_trainer(2000)
    budget = TrainingBudget(minutes=0.5 / 60.0)
    budget.attach(trainer)
    trainer.run()
    assert 1 <= trainer.state.iteration < 2000
    assert budget.state_dict()["elapsed_seconds"] >= 0.5
    resumed = TrainingBudget(minutes=0.5 / 60.0)
    resumed.load_state_dict(budget.state_dict())
    assert resumed.done(trainer.state.iteration)
    with pytest.raises(ValueError):
        TrainingBudget(iterations=3, minutes=1.0)


def test_snapshot_average_is_the_mean_of_the_second_half() -> None:
    from ignite.engine import Engine

    from ldct_invrep.engine.run_control import SnapshotAverage, TrainingBudget

    net = torch.nn.Linear(1, 1, bias=False)

    def step(engine, batch):
        with torch.no_grad():
            net.weight.fill_(float(engine.state.iteration))

    engine = Engine(step)
    budget = TrainingBudget(iterations=8)
    budget.attach(engine)
    snapshots = SnapshotAverage(net, budget, every=2)
    snapshots.attach(engine)
    engine.run(range(100), max_epochs=1)
    assert engine.state.iteration == 8 and snapshots.count == 3  # iterations 4, 6, 8
    assert snapshots.averaged().weight.item() == pytest.approx(6.0)


def test_quality_figures_see_noise_blur_and_drift() -> None:
    from scipy import ndimage

    from ldct_invrep.image_quality import quality_figures, slice_masks

    yy, xx = np.mgrid[:256, :256]
    body = np.where((yy - 128) ** 2 + (xx - 128) ** 2 < 110**2, 40.0, -1000.0)
    body[(yy - 128) ** 2 + (xx - 150) ** 2 < 25**2] = 300.0  # an organ with an edge
    noisy = (body + np.random.default_rng(0).normal(0, 30, body.shape)).astype(np.float32)
    masks = [slice_masks(noisy, 0.8)]
    assert masks[0].usable
    base = quality_figures([noisy], masks)
    smooth = quality_figures([ndimage.gaussian_filter(noisy, 1.5)], masks)
    shifted = quality_figures([noisy + 10.0], masks)
    assert smooth.noise_hu < 0.5 * base.noise_hu
    assert smooth.edge_hu_per_mm < base.edge_hu_per_mm
    assert shifted.soft_tissue_hu - base.soft_tissue_hu == pytest.approx(10.0, abs=1e-3)
    assert 25.0 < base.soft_tissue_hu < 55.0


# --------------------------------------------------------------------------------------------- bundle
def _bundle_args(tiny_state: Path, low: Path, root: Path) -> dict:
    return {
        "low_dose": [str(low)], "from_state": str(tiny_state), "iterations": 4, "checkpoint_every": 2,
        "batch_size": 2, "max_slices": 6, "max_drift_hu": 1000.0, "max_noise_ratio": 1000.0, "threads": 1, "bundle_root": str(root),
    }  # fmt: skip


@pytest.mark.filterwarnings("ignore:parsing config_file:UserWarning")
def test_bundle_adapt_config(tiny_state: Path, my_scanner: Path, tmp_path: Path) -> None:
    from monai.bundle import run

    configs = [str(BUNDLE / "configs" / "train.json"), str(BUNDLE / "configs" / "adapt.json")]
    run(run_id="run", config_file=configs, logging_file=False, **_bundle_args(tiny_state, my_scanner, tmp_path))
    header = read_header(tmp_path / "models" / "adapted.pt")
    assert header["adapted"]["iterations"] == 4
    assert header["adapted"]["low_dose_series"][0]["series_uid"] == "1.2.826.0.1.3680043.10.999.1"
    assert not (tmp_path / "cache").exists()  # train.json's simulated-dose cache is not built


@pytest.mark.slow
def test_bundle_adapt_under_torchrun(tiny_state: Path, my_scanner: Path, tmp_path: Path) -> None:
    configs = [str(BUNDLE / "configs" / n) for n in ("train.json", "adapt.json", "multi_gpu_train.json")]
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    cmd = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]) + [
        "--standalone", "--nnodes=1", "--nproc_per_node=2", "-m", "monai.bundle", "run", "--config_file", json.dumps(configs),
    ]  # fmt: skip
    for key, value in _bundle_args(tiny_state, my_scanner, tmp_path).items():
        cmd += [f"--{key}", json.dumps(value) if isinstance(value, list) else str(value)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600, env=env, cwd=REPO_ROOT)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    assert read_header(tmp_path / "models" / "adapted.pt")["adapted"]["iterations"] == 4
    assert proc.stdout.count("no-reference check on") == 1  # only rank 0 checks and writes
    state = torch.load(tmp_path / "models" / "adapted_state.pt", weights_only=True)
    assert state["trainer"]["iteration"] == 4


# --------------------------------------------------------------------------------------------- benchmark
@pytest.mark.shared_data
def test_adapt_eval_benchmark_smoke(tiny_state: Path, tmp_path: Path) -> None:
    """benchmarks/adapt_eval.py at a tiny budget: adapts on the real quarter-dose slices only, scores all three."""
    import hashlib
    from conftest import shared_path

    from ldct_invrep.data.dev_pairs import read_dev_pairs

    root = shared_path("ldct_pairs_dev", "eunh_low_dose_CT").parents[1]
    result = load_script("benchmarks/adapt_eval.py").main([
        "--dataset-dir", str(root), "--from", str(tiny_state), "--iterations", "2", "--batch-size", "2",
        "--checkpoint-every", "2", "--threads", "1", "--quiet", "--work", str(tmp_path),
    ])  # fmt: skip
    assert list(result["rows"]) == ["quarter dose (input)", "before (unadapted)", "adapted 2 it"]
    assert result["rows"]["adapted 2 it"]["iterations"] == 2
    assert all(len(row["scores"]["abdomen"]) == 3 for row in result["rows"].values())
    assert len(result["held_out"]) == 1
    # the adaptation saw the quarter-dose slices, never the full-dose ones
    pairs = [p for p in read_dev_pairs(root) if p.name.startswith("eunh_")]
    digest = lambda a: hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()[:16]  # noqa: E731
    assert result["adapted_on"][0]["sha256"] == digest(np.stack([p.quarter for p in pairs]))
    assert result["adapted_on"][0]["sha256"] != digest(np.stack([p.full for p in pairs]))
    assert json.loads((tmp_path / "results.json").read_text())["from"] == "tiny_state.pt"


def test_out_in_a_scan_folder_or_under_a_file_is_refused_before_any_work(my_scanner: Path, tiny_state: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in my_scanner.iterdir())
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    cases = [
        (my_scanner / "m.pt", f"error: {my_scanner / 'm.pt'}: output is inside the input folder {my_scanner}"),  # was written there
        (notes / "m.pt", f"error: {notes / 'm.pt'}: cannot write the output: {notes} is a file, not a folder"),  # was exit 1
    ]
    for out, expected in cases:
        (line,) = error_lines(adapt(my_scanner, "--out", out, "--from", tiny_state, "--iterations", 2, *FAST, code=2))
        assert line.startswith(expected), line
    assert sorted(p.name for p in my_scanner.iterdir()) == before and notes.read_text() == "mine\n"
