"""Dataset scanners (Mayo 2016, TCIA LDCT), datalists from scans, image-set manifests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from _helpers import write_ct_slice
from conftest import shared_path

from ldct_invrep.data import (
    DicomSliceSequence,
    UnpairedPatchDataset,
    domain_paths,
    format_report,
    load_datalist,
    load_manifest,
    prepare,
    scan_mayo2016,
    scan_tcia_ldct,
    verify_image_set,
    write_mayo_datalist,
    write_tcia_datalist,
)
from ldct_invrep.errors import InputError

MAYO_PATIENTS = ["L067", "L096", "L109", "L143", "L192", "L286", "L291", "L310", "L333", "L506"]
N_SLICES = {"1mm": 6, "3mm": 4}


def write_ct(path: Path, z: float, instance: int, thickness: float = 1.0, description: str = "") -> None:
    """A tiny (4x4) but valid CT DICOM file with the header fields the scanners read (stored 1024 + instance)."""
    hu = np.full((4, 4), float(instance))
    write_ct_slice(path, hu, z=z, instance=instance, thickness=thickness, corner=-10.0, description=description)


def make_mayo_tree(root: Path, patients: list[str], series_first: bool = False) -> Path:
    for p in patients:
        for thickness, n in N_SLICES.items():
            step = float(thickness[0])
            for dose, tag in (("full", "FD"), ("quarter", "QD")):
                folder = f"{dose}_{thickness}"
                base = root / f"{thickness} B30" / folder / p / folder if series_first else root / p / folder
                for i in range(1, n + 1):
                    name = f"{p}_{tag}_{thickness[0]}_1.CT.0004.{i:04d}.2015.12.22.20.19.52.{i}.IMA"
                    write_ct(base / name, z=-100.0 - step * i, instance=i, thickness=step)
    return root


@pytest.fixture(scope="module")
def mayo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All patients but L286, plus two stray files."""
    root = make_mayo_tree(tmp_path_factory.mktemp("mayo"), [p for p in MAYO_PATIENTS if p != "L286"])
    (root / "L067" / "notes.txt").write_text("not an image")
    (root / "L067" / "full_3mm" / "thumbnail.png").write_bytes(b"\x89PNG")
    return root


def test_mayo_scan_names_missing_patient_and_stray_files(mayo_root: Path) -> None:
    report = scan_mayo2016(mayo_root)
    assert report.missing_patients == ["L286"]
    assert not report.missing_series and not report.unreadable
    stray = {p.name for p in report.stray_files}
    assert stray == {"notes.txt", "thumbnail.png"}
    assert report.find("L067", "quarter", "1mm", "B30").n == 6
    assert report.find("L506", "full", "3mm", "B30").n == 4
    assert [s.z for s in report.find("L109", "full", "3mm", "B30").slices] == [-112.0, -109.0, -106.0, -103.0]
    assert not report.ok
    text = format_report(report)
    assert "MISSING patients (1): L286" in text
    assert "notes.txt" in text and "thumbnail.png" in text and "NOT OK" in text


def test_mayo_scan_of_one_patient_folder(mayo_root: Path) -> None:
    report = scan_mayo2016(mayo_root / "L096")
    assert report.patients_present == ["L096"] and len(report.missing_patients) == 9
    assert report.stray_files == [] and report.find("L096", "quarter", "3mm", "B30").n == 4


def test_mayo_scan_series_first_layout_and_no_headers(tmp_path: Path) -> None:
    root = make_mayo_tree(tmp_path, MAYO_PATIENTS, series_first=True)
    report = scan_mayo2016(root, read_headers=False)
    assert report.missing_patients == [] and report.stray_files == []
    series = report.find("L333", "quarter", "3mm", "B30")
    assert series is not None and series.n == 4 and [s.instance for s in series.slices] == [1, 2, 3, 4]
    # a complete copy is checked against the manifest's expected totals (2378 slices at 3 mm)
    assert report.warnings == [
        "3mm B30 full dose: 40 slices in total, the manifest expects 2378",
        "3mm B30 quarter dose: 40 slices in total, the manifest expects 2378",
    ]


def test_mayo_scan_reports_count_mismatch_and_unreadable(tmp_path: Path) -> None:
    root = make_mayo_tree(tmp_path, ["L067", "L506"])
    victim = sorted((root / "L067" / "quarter_3mm").iterdir())[0]
    victim.unlink()
    (root / "L506" / "full_1mm" / "L506_FD_1_1.CT.0004.0099.broken.IMA").write_bytes(b"not dicom at all")
    report = scan_mayo2016(root)
    assert any("L067 3mm B30: 4 full-dose but 3 quarter-dose" in w for w in report.warnings)
    assert [p.name for p in report.unreadable] == ["L506_FD_1_1.CT.0004.0099.broken.IMA"]
    assert "UNREADABLE" in format_report(report)


def test_wrong_root_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        scan_mayo2016(tmp_path / "absent")


def _positions(entries: list[dict], key: str) -> set[tuple[str, float]]:
    return {(e["info"]["patient"], e["info"]["z"]) for e in entries if key in e}


def test_mayo_patient_split_datalist(mayo_root: Path, tmp_path: Path) -> None:
    report = scan_mayo2016(mayo_root)
    out = write_mayo_datalist(report, tmp_path / "mayo.json", split="patient", val_fraction=0.1)
    training = load_datalist(out, "training", check_exists=True)
    validation = load_datalist(out, "validation", check_exists=True)
    test = load_datalist(out, "test", check_exists=True)
    train_patients = {e["info"]["patient"] for e in training + validation}
    test_patients = {e["info"]["patient"] for e in test}
    assert test_patients == {"L506"}
    assert not train_patients & test_patients
    assert len(train_patients) == 8  # nine training patients minus the missing L286
    # unpaired protocol: quarter dose = noisy X, full dose = clean Y, disjoint slice positions
    assert all(("noisy" in e) != ("clean" in e) for e in training)
    assert all("quarter_3mm" in e["noisy"] for e in training if "noisy" in e)
    assert all("full_3mm" in e["clean"] for e in training if "clean" in e)
    x, y, val = _positions(training, "noisy"), _positions(training, "clean"), _positions(validation, "noisy")
    assert x and y and not x & y and not val & (x | y)
    assert len(x) + len(y) + len(val) == 8 * N_SLICES["3mm"]
    assert all(Path(e["noisy"]).is_absolute() and "quarter" in e["noisy"] and "full" in e["clean"] for e in test)
    assert len(test) == N_SLICES["3mm"]
    doc = json.loads(out.read_text())
    assert doc["split"] == "patient" and doc["numTest"] == len(test)


def test_mayo_datalist_feeds_unpaired_dataset(mayo_root: Path, tmp_path: Path) -> None:
    out = write_mayo_datalist(scan_mayo2016(mayo_root), tmp_path / "mayo.json", split="patient")
    noisy, clean = domain_paths(load_datalist(out, "training"))
    assert noisy and clean and not set(noisy) & set(clean)
    ds = UnpairedPatchDataset(DicomSliceSequence(noisy), DicomSliceSequence(clean), patch_size=4, min_tissue_fraction=0)
    item = ds[0]
    # the fake slices hold HU = instance number (1..4): network value (HU + 1024) / 4096 * 2 - 1
    hu = (item["noisy"].numpy() + 1) / 2 * 4096 - 1024
    assert item["noisy"].shape == (1, 4, 4) and np.allclose(hu, np.round(hu[0, 0, 0]), atol=1e-3)
    assert 1 <= round(float(hu[0, 0, 0])) <= 4


def test_mayo_paper_random_split_is_deterministic_and_proportional(mayo_root: Path, tmp_path: Path) -> None:
    report = scan_mayo2016(mayo_root)
    a = write_mayo_datalist(report, tmp_path / "a.json", split="paper_random", val_fraction=0.0)
    b = write_mayo_datalist(report, tmp_path / "b.json", split="paper_random", val_fraction=0.0)
    c = write_mayo_datalist(report, tmp_path / "c.json", split="paper_random", val_fraction=0.0, seed=7)
    da, db, dc = (json.loads(p.read_text()) for p in (a, b, c))
    assert da["training"] == db["training"] and da["test"] == db["test"]
    assert da["test"] != dc["test"]
    n_pairs = 9 * N_SLICES["1mm"]  # default thickness of the paper split: 1 mm
    n_train = round(n_pairs * 4000 / 5936)
    assert da["counts"]["train_positions"] == n_train and da["counts"]["test"] == n_pairs - n_train
    assert da["counts"]["train_noisy"] + da["counts"]["train_clean"] == n_train
    train_pos = _positions(da["training"], "noisy") | _positions(da["training"], "clean")
    assert not train_pos & _positions(da["test"], "noisy")
    assert all("_1mm" in e["noisy"] for e in da["test"])


def test_mayo_patient_split_needs_test_patient(tmp_path: Path) -> None:
    report = scan_mayo2016(make_mayo_tree(tmp_path / "m", ["L067", "L096"]))
    with pytest.raises(InputError, match="L506"):
        write_mayo_datalist(report, tmp_path / "x.json", split="patient")


def make_tcia_tree(root: Path) -> Path:
    subjects = {"L081": 5, "L033": 4, "L241": 3, "L999": 3}  # train, validation, test, not in ldct-benchmark
    base = root / "LDCT-and-Projection-data"
    for sid, n in subjects.items():
        for dose, num in (("Full", "92811"), ("Low", "00959")):
            folder = base / sid / "12-23-2021-NA-NA-61870" / f"1.000000-{dose} Dose Images-{num}"
            for i in range(1, n + 1):
                write_ct(folder / f"1-{i:03d}.dcm", z=10.0 * i, instance=i, description=f"{dose} Dose Images")
    only_full = base / "L107" / "12-23-2021-NA-NA-02131" / "1.000000-Full Dose Images-64229"
    write_ct(only_full / "1-001.dcm", z=0.0, instance=1)
    (root / "metadata.csv").write_text("Subject ID,Series Description\n")
    (base / "L081" / "stray.txt").write_text("x")
    return root


def test_tcia_scan_and_ldctbench_datalist(tmp_path: Path) -> None:
    root = make_tcia_tree(tmp_path / "tcia")
    report = scan_tcia_ldct(root)
    assert "L999" in report.extra_patients
    assert any(m.startswith("L107 low dose") for m in report.missing_series)
    assert [p.name for p in report.stray_files] == ["stray.txt"]
    assert "L221" in report.missing_patients and "C121" not in report.missing_patients  # only exam types present
    out = write_tcia_datalist(report, tmp_path / "tcia.json", split="ldctbench")
    doc = json.loads(out.read_text())
    assert doc["split_info"] == {"train": ["L081"], "validation": ["L033"], "test": ["L241"]}
    training = load_datalist(out, "training", check_exists=True)
    assert all("Low Dose" in e["noisy"] for e in training if "noisy" in e)
    assert all("Full Dose" in e["clean"] for e in training if "clean" in e)
    assert len(training) == 5 and len(load_datalist(out, "test")) == 3 and len(load_datalist(out, "validation")) == 4
    assert "L107" in format_report(report)


def test_prepare_mayo_returns_report_and_datalist(mayo_root: Path, tmp_path: Path) -> None:
    report, path = prepare("mayo2016", mayo_root, tmp_path)
    assert path == tmp_path / "mayo2016_patient.json" and path.is_file()
    assert report.missing_patients == ["L286"]
    with pytest.raises(InputError, match="unknown dataset"):
        prepare("mayo2017", mayo_root, tmp_path)


def test_image_manifests_match_sources() -> None:
    for name, n in {"bsd68": 68, "set12": 12, "kodak24": 24, "train400": 400, "cbsd68": 68, "cbsd432": 200}.items():
        man = load_manifest(name)
        assert man["n_files"] == n == len(man["files"])
        assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in man["files"])
    mayo = load_manifest("mayo2016")
    assert mayo["patients"] == MAYO_PATIENTS
    assert mayo["splits"]["patient"]["test_patients"] == ["L506"]
    tcia = load_manifest("tcia_ldct")
    bench = tcia["splits"]["ldctbench"]
    ids = bench["train"] + bench["validation"] + bench["test"]
    assert len(ids) == len(set(ids)) == 150


@pytest.mark.shared_data
def test_verify_image_set_real_bsd68_and_modified_copy(tmp_path: Path) -> None:
    folder = shared_path("bsd68")
    report = verify_image_set(folder, "bsd68")
    assert report.ok and report.n_verified == 68, format_report(report)
    copy = tmp_path / "bsd68"
    shutil.copytree(folder, copy)
    (copy / "test002.png").unlink()
    with open(copy / "test010.png", "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    (copy / "extra.png").write_bytes(b"x")
    bad = verify_image_set(copy, "bsd68")
    assert not bad.ok
    assert bad.missing == ["test002.png"] and bad.mismatched == ["test010.png"] and bad.extra == ["extra.png"]
    text = format_report(bad)
    assert "test002.png" in text and "test010.png" in text
    with pytest.raises(InputError, match="does not match"):
        prepare("bsd68", copy, tmp_path / "out")
    _, datalist = prepare("bsd68", folder, tmp_path / "out")
    entries = load_datalist(datalist, "test", check_exists=True)
    assert len(entries) == 68 and entries[0]["image"].endswith("test001.png")


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["set12", "kodak24", "train400", "cbsd68", "cbsd432"])
def test_other_image_sets_verify(name: str) -> None:
    report = verify_image_set(shared_path(name), name)
    assert report.ok, format_report(report)


@pytest.mark.shared_data
def test_prepare_colour_sets_write_training_and_test_datalists(tmp_path: Path) -> None:
    _, train = prepare("cbsd432", shared_path("cbsd432"), tmp_path)
    _, test = prepare("cbsd68", shared_path("cbsd68"), tmp_path)
    assert len(load_datalist(train, "training", check_exists=True)) == 200
    entries = load_datalist(test, "test", check_exists=True)
    assert len(entries) == 68 and all(e["image"].endswith(".png") for e in entries)  # mapping.csv is not an image
