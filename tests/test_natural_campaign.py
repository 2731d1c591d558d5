"""campaign/natural_colour.py without training: chunk targets (the full model stops at the ablation budget for
Table 4 (d)), committed state, curve rows scored on real tiny images, exports, resume on a fresh work folder;
campaign/plot_natural_curve.py draws the curve."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import load_script, one_thread_fixture
from PIL import Image

from ldct_invrep.engine import read_header

_one_thread = one_thread_fixture()


def _data(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name, n in (("cbsd68", 2), ("kodak24", 2)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(root / name / f"{i:03d}.png")
    return root


def test_campaign_chunks_exports_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign = load_script("campaign/natural_colour.py")
    chunks: list[tuple[str, int, str | None]] = []

    def fake_chunk(args, variant, work, start, until, log):  # a chunk's checkpoint, without the training
        chunks.append((variant, until, None if start is None else start.name))
        from ldct_invrep.engine.ablations import ABLATIONS
        from ldct_invrep.networks import LIRNet
        from ldct_invrep.recipes import lir_config

        net = LIRNet(lir_config(args.preset, in_channels=3, base_channels=args.base_channels, n_res=args.n_res,
                                **ABLATIONS[campaign.VARIANTS[variant][1]][0]))
        (work / "models").mkdir(parents=True, exist_ok=True)
        torch.save({"trainer": {"iteration": until}, "network": net.state_dict()}, work / "models" / f"checkpoint_iteration={until}.pt")
        return 36.0  # CPU seconds

    monkeypatch.setattr(campaign, "run_chunk", fake_chunk)
    data, state = _data(tmp_path / "data"), tmp_path / "state"
    argv = ["--dataset-dir", str(data), "--work", str(tmp_path / "work"), "--state", str(state), "--preset", "lite",
            "--base-channels", "4", "--n-res", "1", "--epoch-length", "2", "--chunk", "4", "--until", "10",
            "--ablation-budget", "6", "--poisson-budget", "2", "--curve-images", "1", "--variants", "full", "b", "poisson"]
    campaign.main(argv)
    # the full model stops at 6 (the ablation budget) on its way to 10; the others run to their own budgets
    assert chunks == [("full", 4, None), ("full", 6, "checkpoint_iteration=4.pt"), ("full", 10, "checkpoint_iteration=6.pt"),
                      ("b", 4, None), ("b", 6, "checkpoint_iteration=4.pt"), ("poisson", 2, None)]
    assert read_header(state / "full" / "lir_restorer_6.pt")["iterations"] == 6
    # each table's Restorer is the mean of the checkpoints of the second half of its budget
    assert read_header(state / "full" / "lir_restorer_6.pt")["averaged_checkpoints"] == [4, 6]
    final = read_header(state / "full" / "lir_restorer.pt")
    assert final["iterations"] == 10 and final["cpu_hours"] == pytest.approx(0.03) and final["config"]["in_channels"] == 3
    assert final["averaged_checkpoints"] == [6, 10] and (state / "full" / "mean_10.pt").is_file()
    b = read_header(state / "b" / "lir_restorer.pt")
    assert b["iterations"] == 6 and b["ablation"] == "no_representation_discriminator"
    assert b["config"]["use_representation_discriminator"] is False
    assert read_header(state / "poisson" / "lir_restorer.pt")["noise"] == "poisson"
    with open(state / "curve.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], r["iteration"], r["split"]) for r in rows][:2] == [("full", "4", "val"), ("full", "4", "test")]
    assert {r["images"] for r in rows if r["variant"] == "full"} == {"kodak24[:2]", "cbsd68[:1]"}
    assert {r["images"] for r in rows if r["variant"] == "poisson"} == {"cbsd68[:2]", "kodak24[:1]"}
    assert all(10 < float(r["input_psnr"]) < 40 for r in rows)

    # a fresh machine: no work folder, the committed state only; a larger budget goes on from it
    chunks.clear()
    shutil.rmtree(tmp_path / "work")
    campaign.main([a if a != "10" else "14" for a in argv])
    assert chunks == [("full", 14, "checkpoint.pt")]
    assert read_header(state / "full" / "lir_restorer.pt")["iterations"] == 14
    # a budget raised after its checkpoints were lost averages what it still sees: set budgets before a run
    assert read_header(state / "full" / "lir_restorer.pt")["averaged_checkpoints"] == [14]

    with pytest.raises(SystemExit, match="not a multiple"):
        campaign.main(argv + ["--chunk", "3"])

    plot = load_script("campaign/plot_natural_curve.py")
    curves = plot.read_curve(state / "curve.csv")
    assert list(curves[("full", "test")]) == [4, 6, 10, 14]
    plot.plot(curves, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
