"""The wheel as a pip user gets it: built from the checkout, installed in a fresh virtual environment outside it
(torch==2.13.0, the CPU build, installed first and pinned, so nothing can swap in a CUDA build), then
``prepare``, ``bundle export``, ``denoise`` and ``info`` run from a folder that is not the checkout.

Slow (a venv and the dependencies: a minute or two from the local package index).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, SAMPLE_SERIES, shared_path

pytestmark = pytest.mark.slow
TORCH_PIN = "torch==2.13.0"


def run(cmd: list[str | Path], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "LDCT_INVREP"))}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{cmd}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(venv bin folder, a work folder outside the checkout) with the freshly built wheel installed."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy, so the build's folders never land in the checkout
    skip = shutil.ignore_patterns(".git", ".venv", "build", "dist", "out", "runs", "cache", "__pycache__", "*.egg-info", "logs", "eval")
    shutil.copytree(REPO_ROOT, source, ignore=skip)
    dist = root / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, source], cwd=root)
    (wheel,) = dist.glob("ldct_invrep-*.whl")
    run([sys.executable, "-m", "venv", root / "venv"], cwd=root)
    bin_dir = root / "venv" / "bin"
    run([bin_dir / "python", "-m", "pip", "install", "--quiet", TORCH_PIN], cwd=root)
    probe = "import torch, importlib.metadata as m; print(m.version('torch'), torch.version.cuda)"
    version, cuda = run([bin_dir / "python", "-c", probe], cwd=root).stdout.split()
    assert cuda == "None", f"a CUDA build of torch was installed: {version}"
    (root / "constraints.txt").write_text(f"torch=={version}\n")  # the wheel's dependencies cannot replace it
    run([bin_dir / "python", "-m", "pip", "install", "--quiet", "--constraint", root / "constraints.txt", wheel], cwd=root)
    listed = run([bin_dir / "python", "-m", "pip", "list", "--format", "json"], cwd=root).stdout
    names = {p["name"].lower(): p["version"] for p in json.loads(listed)}
    assert names["torch"] == version and not [n for n in names if n.startswith("nvidia")]
    assert not {"simpleitk", "psutil"} & set(names)  # test and benchmark extras: the commands below run without them
    work = root / "work"
    work.mkdir()
    return bin_dir, work


@pytest.mark.shared_data
def test_wheel_prepares_data_and_denoises_outside_the_checkout(installed: tuple[Path, Path]) -> None:
    bin_dir, work = installed
    cli = bin_dir / "ldct-invrep"
    where = run([bin_dir / "python", "-c", "import ldct_invrep, sys; print(ldct_invrep.__file__)"], cwd=work).stdout.strip()
    assert str(REPO_ROOT) not in where and "site-packages" in where

    # prepare: the manifests come from the wheel
    set12 = shared_path("set12")
    proc = run([cli, "prepare", "set12", set12, "--out", work / "datalists"], cwd=work)
    datalist = json.loads((work / "datalists" / "set12.json").read_text())
    assert len(datalist["test"]) == 12 and "set12.json" in proc.stdout

    # bundle export: the bundles come from the wheel; ldct_simulated gets the shipped weights as models/model.pt
    run([cli, "bundle", "export", "ldct_simulated", work / "sim"], cwd=work)
    assert (work / "sim" / "configs" / "inference.json").is_file() and (work / "sim" / "models" / "model.pt").is_file()

    # denoise two slices of the sample series with the bundle's model.pt (the shipped weights), one thread
    series = work / "series"
    series.mkdir()
    for f in sorted(SAMPLE_SERIES.glob("CT.*"))[:2]:
        (series / f.name).write_bytes(f.read_bytes())
    proc = run(
        [cli, "denoise", series, work / "out", "--weights", work / "sim" / "models" / "model.pt", "--threads", "1",
         "--self-ensemble", "1", "--quiet"], cwd=work,
    )  # fmt: skip
    assert "denoised 2 slices" in proc.stdout and len(list((work / "out").glob("*.dcm"))) == 2
    info = json.loads(run([cli, "info", "--json"], cwd=work).stdout)
    assert info["header"]["preset"] and info["parameters"] > 0
