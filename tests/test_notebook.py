"""docs/notebooks/hu_window_comparison.ipynb: committed without outputs, and runs headless.

The run executes the notebook the way ``pytest --nbmake docs/notebooks/hu_window_comparison.ipynb`` does
(nbclient, kernel ``python3``), plus one probe cell appended in memory that reports what the notebook
computed. It needs the shipped weights (``ldct_invrep/weights/lir_ct.pt``) and is skipped, saying so,
where they are absent. ``LDCT_INVREP_NOTEBOOK_WEIGHTS=FILE`` runs it with another checkpoint instead (e.g. a
random-weight one made with ``ldct_invrep.io.checkpoint.save_restorer``), for checks before the weights exist.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO_ROOT / "docs" / "notebooks" / "hu_window_comparison.ipynb"
KERNEL = "python3"
WEIGHTS_ENV = "LDCT_INVREP_NOTEBOOK_WEIGHTS"
PROBE = "__probe__ "
PROBE_SOURCE = f"""
import json as _json
print({PROBE!r} + _json.dumps({{
    "weights": str(weights),
    "denoised": "LIR" in methods,
    "methods": list(methods),
    "finite": bool(all(np.isfinite(v).all() for v in methods.values())),
    "shapes": {{name: list(v.shape) for name, v in methods.items()}},
    "slices": [int(i) for i in SLICES],
    "labels": labels,
    "trained_on": [int(i) for i in trained_on],
    "roi_noise": roi_noise,
    "roi_bias": roi_bias,
    "abdomen_psnr": {{name: reports["abdomen", name].volume.psnr for name in methods}},
}}))
"""


def _read() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def _parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    return cells[0]


def test_notebook_is_committed_clean_and_uses_the_shipped_weights() -> None:
    nb = _read()
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "no code cells"
    for i, cell in enumerate(code):
        assert cell.outputs == [], f"code cell {i} has outputs: clear them before committing"
        assert cell.execution_count is None, f"code cell {i} has an execution count: clear it"
    assert nb.metadata["kernelspec"]["name"] == KERNEL
    params = _parameters_cell(nb).source
    assert "WEIGHTS = None" in params, "the committed notebook must default to the shipped weights"
    assert "SERIES = None" in params and "FULL_DOSE = None" in params and "DIFF_LIMIT_HU = 100" in params
    source = "\n".join(c.source for c in code)
    for call in (
        "simulate_low_dose(",
        "SliceDenoiser.from_checkpoint(",
        "bm3d_denoise(",
        "assign_slices(",
        "viz.noise_power_spectra(",
        "viz.edge_profiles(",
        "image_quality.roi_mean_bias(",
        "diff_limit=DIFF_LIMIT_HU",
        "viz.compare_grid(",
        "viz.zoom_roi(",
        "viz.line_profile(",
        "viz.roi_noise_std(",
        "metrics.MetricReport",
    ):
        assert call in source, f"the notebook no longer calls {call}"


def test_the_notebook_kernel_exists_and_runs_this_python() -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(KERNEL)  # raises NoSuchKernel when absent
    # "python" / "python3" in argv[0] is replaced by sys.executable (jupyter_client), so the kernel is this venv.
    assert Path(spec.argv[0]).name in {"python", "python3"} or Path(spec.argv[0]).is_file(), spec.argv
    assert "ipykernel_launcher" in " ".join(spec.argv) or "ipykernel" in " ".join(spec.argv)


def _weights() -> Path | None:
    """The checkpoint to run with: $LDCT_INVREP_NOTEBOOK_WEIGHTS, else the shipped file (None: absent)."""
    override = os.environ.get(WEIGHTS_ENV)
    if override:
        path = Path(override).expanduser().resolve()
        assert path.is_file(), f"${WEIGHTS_ENV}={override}: no such file"
        return path
    from ldct_invrep.package_files import default_weights_path

    path = default_weights_path()
    return path if path.is_file() else None


def _run(nb: nbformat.NotebookNode, tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int, dict]:
    """Execute ``nb`` (plus the probe cell) in ``tmp_path``; returns (all text output, figures, probe)."""
    nbclient = pytest.importorskip("nbclient")
    nb.cells.append(nbformat.v4.new_code_cell(PROBE_SOURCE))
    # Kernel connection files and IPython's profile go to a scratch folder (CI homes may be read-only);
    # cells run in tmp_path: the notebook must not need (or write into) the repository folder.
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(scratch / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(scratch / "ipython"))
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL, timeout=900, allow_errors=False, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    texts = []
    images = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                texts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                texts.append(out.data.get("text/markdown", "") + out.data.get("text/plain", ""))
                images += "image/png" in out.data
    text = "\n".join(texts)
    probe = json.loads(next(line for line in text.splitlines() if line.startswith(PROBE))[len(PROBE) :])
    assert not list(tmp_path.iterdir()), "the notebook wrote files"
    return text, images, probe


def _has_bm3d() -> bool:
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
def test_notebook_runs_headless(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = _weights()
    if weights is None:
        from ldct_invrep.package_files import default_weights_path

        pytest.skip(
            f"shipped weights absent ({default_weights_path()}): the notebook run needs them "
            f"(or set ${WEIGHTS_ENV} to a checkpoint)"
        )
    nb = _read()
    if os.environ.get(WEIGHTS_ENV):
        _parameters_cell(nb).source += f"\nWEIGHTS = {str(weights)!r}  # injected by tests/test_notebook.py"
    text, images, probe = _run(nb, tmp_path, tmp_path_factory.mktemp("jupyter"), monkeypatch)

    assert "NO WEIGHTS" not in text
    assert probe["denoised"] and probe["weights"] == str(weights)
    assert probe["finite"]
    assert len(set(map(tuple, probe["shapes"].values()))) == 1, probe["shapes"]
    assert ("BM3D" in probe["methods"]) == _has_bm3d()
    # slices labelled by InstanceNumber; held-out slices when there are any, and a warning whenever a slice shown
    # was a training slice (the shipped lir_ct.pt trained on every slice of the sample series)
    assert probe["trained_on"] and all(label.startswith("#") for label in probe["labels"]), probe
    seen = set(probe["slices"]) & set(probe["trained_on"])
    assert ("WARNING: training slices among them" in text) == bool(seen), probe
    assert ("none of them was a training slice" in text) == (not seen)
    # every metric names its window and data range
    assert "abdomen W400/L40 [-160, 240] HU, data range 400" in text
    assert "full W4096/L1024 [-1024, 3072] HU, data range 4096" in text
    # compare grid, zoom, noise power spectrum, edge, two profiles (and a montage without ipywidgets)
    assert images >= 6, f"only {images} figures rendered"
    if not os.environ.get(WEIGHTS_ENV):
        # The shipped weights must lower the noise in the homogeneous liver ROI on every slice, and keep its level.
        noisy, lir = probe["roi_noise"][next(iter(probe["abdomen_psnr"]))], probe["roi_noise"]["LIR"]
        assert all(d < q for d, q in zip(lir, noisy, strict=True)), f"ROI noise std: LIR {lir} vs input {noisy}"
        assert all(abs(b) < 15 for b in probe["roi_bias"]["LIR"]), probe["roi_bias"]


@pytest.mark.slow
@pytest.mark.shared_data
def test_notebook_on_a_real_low_and_full_dose_pair(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, mayo_pair: tuple[Path, Path]
) -> None:
    """SERIES / FULL_DOSE: the real Mayo L506 quarter/full-dose slice (read in place), no simulation."""
    if _weights() is None:
        pytest.skip("no weights to run the notebook with")
    full, quarter = mayo_pair
    nb = _read()
    _parameters_cell(nb).source += (
        f"\nSERIES = {str(quarter)!r}\nFULL_DOSE = {str(full)!r}\nBM3D_SIGMA_HU = None\nSHOW = 0  # injected by the test"
    )
    text, _, probe = _run(nb, tmp_path, tmp_path_factory.mktemp("jupyter"), monkeypatch)
    assert probe["methods"] == ["low dose (real)", "LIR"] and probe["slices"] == [0] and probe["trained_on"] == []
    assert probe["finite"] and "simulate" not in " ".join(probe["methods"])


def test_make_demo_needs_no_root_and_no_bm3d_and_sets_up_the_notebook() -> None:
    text = (REPO_ROOT / "Makefile").read_text()
    stamp = text.split("$(STAMP): ", 1)[1].split("\n\n", 1)[0]  # the set-up that demo and notebook depend on
    test_stamp = text.split("$(TEST_STAMP): ", 1)[1].split("\n\n", 1)[0]
    assert "apt-get" not in stamp and "baselines" not in stamp and '".[notebook]"' in stamp
    assert "apt-get" in test_stamp and "baselines" in test_stamp
    for target, needs in (("demo", "setup"), ("notebook", "setup"), ("test", "test-setup")):
        line = next(line for line in text.splitlines() if line.startswith(f"{target}:"))
        assert line.split(":", 1)[1].split() == [needs], line
    assert "jupyter nbconvert --to notebook --execute docs/notebooks/hu_window_comparison.ipynb" in text
    from importlib.metadata import requires

    notebook = [r.split(";")[0] for r in requires("ldct-invrep") or [] if 'extra == "notebook"' in r]
    assert {"nbconvert>=7", "ipykernel>=6"} <= set(notebook) and not any("bm3d" in r for r in notebook)
