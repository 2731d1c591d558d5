"""Multi-process training through the bundles' multi_gpu_train.json on CPU (gloo), as documented:

    torchrun --standalone --nproc_per_node 2 -m monai.bundle run \
        --config_file "['configs/train.json','configs/multi_gpu_train.json']"

A third config (written by the test) gives each rank its own checkpoint folder and dumps each rank's
weights in ``finalize``, so the test can check that DDP kept both ranks identical and that only rank 0
wrote checkpoints and the exported Restorer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT
from PIL import Image

BUNDLE = REPO_ROOT / "bundles" / "natural_awgn"


_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")

def _write_pngs(folder: Path, n: int, shape: tuple[int, int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for i in range(n):
        img = 127 + 60 * np.sin(xx / (4 + i) + i) + 40 * np.cos(yy / (6 + i))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"img{i:03d}.png")


def _torchrun() -> list[str]:
    exe = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "torch.distributed.run"]


@pytest.mark.slow
def test_two_process_gloo_training_keeps_ranks_identical(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _write_pngs(data / "train400", 8, (72, 72))
    _write_pngs(data / "set12", 2, (48, 52))
    out = tmp_path / "out"
    out.mkdir()
    extra = tmp_path / "rank_dump.json"
    extra.write_text(
        json.dumps(
            {
                "ckpt_dir": f"$os.path.join({str(out)!r}, 'models_rank' + os.environ['RANK'])",
                "finalize": [
                    (
                        f"$torch.save(ldct_invrep.engine.unwrap(@network).state_dict(), os.path.join({str(out)!r}, "
                        "'network_rank' + os.environ['RANK'] + '.pt'))"
                    ),
                    (
                        f"$torch.save(ldct_invrep.engine.unwrap(@discriminators).state_dict(), os.path.join({str(out)!r}, "
                        "'discriminators_rank' + os.environ['RANK'] + '.pt'))"
                    ),
                    "$torch.distributed.is_initialized() and torch.distributed.destroy_process_group()",
                ],
            }
        )
    )
    configs = [str(BUNDLE / "configs" / "train.json"), str(BUNDLE / "configs" / "multi_gpu_train.json"), str(extra)]
    cmd = _torchrun() + [
        "--standalone", "--nnodes=1", "--nproc_per_node=2",
        "-m", "monai.bundle", "run", "--config_file", json.dumps(configs),
        "--bundle_root", str(tmp_path / "bundle"), "--dataset_dir", str(data),
        "--train#trainer#max_epochs", "1", "--epoch_length", "2", "--batch_size", "2",
        "--preset", "lite", "--base_channels", "8", "--n_res", "1", "--semantic_weight", "0",
        "--threads", "1", "--log_interval", "1", "--channels", "1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=400, env=env, cwd=REPO_ROOT)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])

    for name in ("network", "discriminators"):
        r0 = torch.load(out / f"{name}_rank0.pt", weights_only=True)
        r1 = torch.load(out / f"{name}_rank1.pt", weights_only=True)
        assert r0.keys() == r1.keys() and r0
        # Batch-norm running statistics are per-rank buffers: DDP broadcasts rank 0's at every forward, so they
        # differ after the last local update and rank 0's (the one checkpointed) are the reference. Weights
        # (every parameter) must be bit-identical.
        weights = [k for k in r0 if not k.endswith(_BN_BUFFERS)]
        assert len(weights) < len(r0) if name == "network" else len(weights) == len(r0)
        for k in weights:
            torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=0, msg=f"{name}.{k} differs between ranks")

    rank0, rank1 = out / "models_rank0", out / "models_rank1"
    assert sorted(p.name for p in rank0.iterdir()) == [
        "checkpoint_final.pt", "checkpoint_iteration=2.pt", "model.pt",
    ]  # fmt: skip
    assert not rank1.exists() or not any(rank1.iterdir())
    final = torch.load(rank0 / "checkpoint_final.pt", weights_only=True)
    assert final["trainer"]["iteration"] == 2  # both iterations ran (and were all-reduced)
    assert all(s["step"] == 2 for s in final["g_optimizer"]["state"].values())
    exported = torch.load(rank0 / "model.pt", weights_only=True)["state_dict"]
    r1 = torch.load(out / "network_rank1.pt", weights_only=True)
    torch.testing.assert_close(exported["generator.model.0.body.0.conv.weight"], r1["generator_y.model.0.body.0.conv.weight"])
    # only rank 0 logs: training scalars, validation scalars and image grids, all from one process
    # (event files are named events.out.tfevents.<time>.<host>.<pid>.<n>)
    events = list((tmp_path / "bundle" / "logs").glob("events.out.tfevents.*"))
    assert len(events) == 3 and len({f.name.split(".")[-2] for f in events}) == 1, events
