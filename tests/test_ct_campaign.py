"""campaign/ct_default_model.py and campaign/export_default_model.py without training: a wider network's
overrides reach the bundle command and the curve's scores, the export keeps them and the self-ensemble of 2 in
its header, and ``--score-weights`` prints the adoption rule's figure for the checkpoint as deployed."""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import load_script, one_thread_fixture

from ldct_invrep.engine import read_header
from ldct_invrep.metrics import compute_metrics

_one_thread = one_thread_fixture()


def _cache(work: Path) -> Path:
    from ldct_invrep.data.ct_cache import build_ct_training_cache
    from ldct_invrep.io import write_nifti

    yy, xx = np.mgrid[:48, :48]
    body = np.where((yy - 24) ** 2 + (xx - 24) ** 2 < 20**2, 40.0, -1000.0)
    write_nifti(work / "vol.nii.gz", np.stack([body + 10 * k for k in range(12)]).astype(np.float32), np.eye(4))

    def simulate(hu, dose, spacing, seed):
        return hu + np.random.default_rng(seed).normal(0, 40 * np.sqrt(1 / dose - 1), hu.shape)

    cache = work / "cache" / "ct_default_model.npz"
    cache.parent.mkdir(parents=True)
    build_ct_training_cache([work / "vol.nii.gz"], cache, dose_fraction=[0.1, 0.5], hold_out=0.25, simulator=simulate,
                            unpaired_split=False, test_dose_fractions=[0.1, 0.5])  # fmt: skip
    return cache


def test_wide_campaign_chunk_export_and_score(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from ldct_invrep.networks import LIRNet, get_config

    campaign, export = load_script("campaign/ct_default_model.py"), load_script("campaign/export_default_model.py")
    work, state, data = tmp_path / "work", tmp_path / "state", tmp_path / "no_pairs"
    work.mkdir()
    data.mkdir()
    cache = _cache(work)
    commands: list[list[str]] = []

    def fake_run(cmd, **kwargs):  # the bundle's chunk: a training state of the network the command asks for
        commands.append(cmd)
        until = int(cmd[cmd.index("--max_iterations") + 1])
        widths = {k: int(cmd[cmd.index(f"--{k}") + 1]) for k in ("base_channels", "n_res") if f"--{k}" in cmd}
        torch.manual_seed(until)
        net = LIRNet(get_config("ct", **widths))
        (work / "models").mkdir(exist_ok=True)
        torch.save({"trainer": {"iteration": until}, "network": net.state_dict()}, work / "models" / f"checkpoint_iteration={until}.pt")

    monkeypatch.setattr(campaign.subprocess, "run", fake_run)
    monkeypatch.setattr(sys, "argv", ["ct_default_model.py", "--dataset-dir", str(data), "--work", str(work), "--state", str(state),
                                      "--chunk", "250", "--until", "500", "--threads", "1", "--base-channels", "8", "--n-res", "1",
                                      "--average-from", "250", "--average-to", "500"])  # fmt: skip
    campaign.main()
    assert len(commands) == 2 and all(c[c.index("--base_channels") + 1] == "8" and c[c.index("--n_res") + 1] == "1" for c in commands)
    assert "--resume_from" in commands[1] and torch.load(state / "checkpoint.pt", weights_only=False)["trainer"]["iteration"] == 500
    with open(state / "curve.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted({(r["iteration"], r["name"]) for r in rows}) == [(i, n) for i in ("250", "500") for n in ("sim_f0.1", "sim_f0.5")]
    assert len(rows) == 2 * 6 and all(10 < float(r["input_psnr"]) < 40 for r in rows)  # 3 held-out slices x 2 fractions

    plot = load_script("campaign/plot_curve.py")
    curves = plot.read_curve(state / "curve.csv")
    assert list(curves["sim mean"]) == [250, 500] and "real mean" not in curves
    plot.main(["--curve", str(state / "curve.csv"), "--out", str(tmp_path / "one.png")])
    plot.main(["--curve", str(state / "curve.csv"), "--label", "a", "--curve", str(state / "curve.csv"), "--label", "b",
               "--out", str(tmp_path / "two.png")])  # fmt: skip
    assert all((tmp_path / f).read_bytes()[:4] == b"\x89PNG" for f in ("one.png", "two.png"))
    with pytest.raises(SystemExit):
        plot.main(["--curve", str(state / "curve.csv"), "--curve", str(state / "curve.csv"), "--label", "a"])

    out = tmp_path / "wide.pt"
    monkeypatch.setattr(sys, "argv", ["export_default_model.py", "--run", str(work), "--average-from", "250", "--self-ensemble", "2",
                                      "--reference-noise", "10", "--base-channels", "8", "--n-res", "1", "--out", str(out)])  # fmt: skip
    export.main()
    header = read_header(out)
    # the running mean the driver kept in the state exports the same Restorer as the run folder's checkpoints
    assert torch.load(state / "mean_250_500.pt", weights_only=True)["iterations"] == [250, 500]
    monkeypatch.setattr(sys, "argv", ["export_default_model.py", "--run", str(work), "--mean", str(state / "mean_250_500.pt"),
                                      "--self-ensemble", "2", "--base-channels", "8", "--n-res", "1", "--out", str(tmp_path / "m.pt")])  # fmt: skip
    export.main()
    from ldct_invrep.io.checkpoint import load_restorer

    a, b = load_restorer(out)[0].state_dict(), load_restorer(tmp_path / "m.pt")[0].state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert read_header(tmp_path / "m.pt")["averaged_iterations"] == [250, 500]
    assert header["base_channels"] == 8 and header["config"]["base_channels"] == 8 and header["config"]["n_res"] == 1
    assert header["self_ensemble"] == 2 and header["averaged_iterations"] == [250, 500]
    capsys.readouterr()

    monkeypatch.setattr(sys, "argv", ["ct_default_model.py", "--dataset-dir", str(data), "--work", str(work), "--threads", "1",
                                      "--score-weights", str(out)])  # fmt: skip
    campaign.main()
    printed = capsys.readouterr().out
    assert "(self-ensemble 2, reference noise 10.0 HU)" in printed
    found = re.search(r"all fractions \((\d+)\): ([\d.]+) -> ([\d.]+) dB", printed)
    from ldct_invrep.data import load_ct_training_cache

    test = load_ct_training_cache(cache, units="hu")
    assert found and int(found[1]) == len(test.test_noisy) == 6
    inputs = [compute_metrics(n, c, "abdomen")[0].psnr for n, c in zip(test.test_noisy, test.test_clean, strict=True)]
    assert float(found[2]) == pytest.approx(np.mean(inputs), abs=0.006)  # the inputs' mean, computed here
