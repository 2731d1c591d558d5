"""Bad input: each case gives one clear one-line InputError naming the path, and modifies nothing.

Bad files are made in tmp_path from copies of the real series (the shared originals are never touched).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from conftest import shared_path

from ldct_invrep.errors import InputError
from ldct_invrep.io import (
    OUTPUT_MARKER,
    atomic_output_dir,
    atomic_output_file,
    check_output_location,
    read_all_series,
    read_nifti,
    read_series,
    scan_folder,
    scan_series,
    write_derived_series,
    write_nifti,
)


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file under ``root`` (to prove nothing was modified)."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def copy_series(src: Path, dst: Path, limit: int | None = None) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    files = [f for f in sorted(src.iterdir()) if f.name != "SHA256SUMS"][:limit]
    for f in files:
        shutil.copy2(f, dst / f.name)
    return dst


def edit(path: Path, **attrs) -> None:
    ds = pydicom.dcmread(path)
    for key, value in attrs.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path)


@pytest.fixture
def ge(tmp_path) -> Path:
    """A private copy of the 4-slice GE 16x16 series."""
    return copy_series(shared_path("ct_dicom_tiny16_monai"), tmp_path / "ge")


def expect_input_error(path: Path, fn, *words: str, named: Path | None = None) -> InputError:
    """``fn()`` raises a one-line InputError that starts with ``named`` (default ``path``) or a file in it
    and contains ``words``; the files under ``path`` are unchanged."""
    before = snapshot(path if path.is_dir() else path.parent)
    with pytest.raises(InputError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    head = Path(message.split(": ")[0])  # the message starts with the offending folder or a file in it
    assert head == (named or path) or (named or path) in head.parents, message
    for word in words:
        assert word.lower() in message.lower(), message
    assert snapshot(path if path.is_dir() else path.parent) == before
    return info.value


def test_missing_path(tmp_path):
    expect_input_error(tmp_path / "nope", lambda: read_series(tmp_path / "nope"), "no such")


def test_empty_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_input_error(empty, lambda: read_series(empty), "empty")


@pytest.mark.shared_data
def test_folder_of_non_dicom_files(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a scan\n")
    shutil.copy2(shared_path("ct_nifti", "example_ct.nii.gz"), folder / "volume.nii.gz")
    (folder / "noext").write_bytes(b"\x00" * 300)
    expect_input_error(folder, lambda: read_series(folder), "no DICOM", "3 non-DICOM")
    assert scan_folder(folder).series == {}


def test_single_non_dicom_file(tmp_path):
    file = tmp_path / "scan.dcm"
    file.write_text("hello")
    expect_input_error(file, lambda: read_series(file), "not a DICOM file")


@pytest.mark.shared_data
def test_dicom_mixed_with_other_files_works(ge):
    (ge / "README.txt").write_text("export notes")
    (ge / "DICOMDIR").write_bytes(b"\x00" * 200)
    (ge / "sub").mkdir()
    shutil.copy2(ge / "7106", ge / "sub" / "copy_in_subfolder")
    before = snapshot(ge)
    series = read_series(ge)
    assert series.hu.shape == (4, 16, 16)
    assert snapshot(ge) == before
    # recursive: the copy in the sub-folder is the same SOP instance: used once
    assert read_series(ge, recursive=True).hu.shape == (4, 16, 16)


@pytest.mark.shared_data
def test_two_images_at_the_same_position(ge):
    position = pydicom.dcmread(ge / "7166").ImagePositionPatient
    edit(ge / "7196", ImagePositionPatient=position)  # a different SOP instance at the same place
    expect_input_error(ge, lambda: read_series(ge), "7166 and 7196 are at the same position")


@pytest.mark.shared_data
def test_two_series_in_one_folder(ge, tmp_path, sample_series):
    for f in sorted(sample_series.iterdir())[:2]:
        shutil.copy2(f, ge / f.name)  # 2 slices of a second (Siemens) series with an empty SeriesInstanceUID
    error = expect_input_error(ge, lambda: read_series(ge), "2 DICOM series", "series_uid")
    ge_uid = pydicom.dcmread(ge / "7106").SeriesInstanceUID
    assert f"{ge_uid} (4 slices, 'Routine Brain')" in str(error)
    assert "<empty SeriesInstanceUID> (2 slices, 'CT Body 3.0')" in str(error)
    assert read_series(ge, series_uid=ge_uid).hu.shape == (4, 16, 16)
    assert read_series(ge, series_uid="").hu.shape == (2, 512, 512)
    assert sorted(len(s.paths) for s in read_all_series(ge)) == [2, 4]
    expect_input_error(ge, lambda: read_series(ge, series_uid="1.2.3"), "no series with")


@pytest.mark.shared_data
def test_two_real_mayo_series_in_one_folder():
    folder = shared_path("mayo2016_mapnn_ima")
    expect_input_error(folder, lambda: read_series(folder), "2 DICOM series", "(1 slice")


@pytest.mark.shared_data
def test_non_ct_modality_refused_unless_forced(ge):
    for f in ge.iterdir():
        edit(f, Modality="MR")
    expect_input_error(ge, lambda: read_series(ge), "MR", "not CT", "force")
    assert read_series(ge, force=True).hu.shape == (4, 16, 16)


def test_missing_rescale_on_unsigned_data_refused(tmp_path, sample_series):
    folder = copy_series(sample_series, tmp_path / "siemens", limit=2)
    for f in folder.iterdir():
        edit(f, RescaleSlope=None, RescaleIntercept=None)
    expect_input_error(folder, lambda: read_series(folder), "RescaleSlope", "unsigned")


@pytest.mark.shared_data
def test_missing_rescale_on_signed_non_hu_data_refused(ge):
    for f in ge.iterdir():  # stored = HU + 1024 >= 0: without the intercept this is not HU
        edit(f, RescaleSlope=None, RescaleIntercept=None)
    expect_input_error(ge, lambda: read_series(ge), "RescaleSlope", "does not look like HU")
    assert read_series(ge, force=True).hu.min() >= 0


@pytest.mark.shared_data
def test_missing_rescale_on_signed_hu_like_data_assumed_identity(ge, caplog):
    reference = read_series(ge).hu
    for f in ge.iterdir():  # store HU directly (signed, air at about -1000) and drop slope/intercept
        ds = pydicom.dcmread(f)
        ds.PixelData = (ds.pixel_array.astype(np.int16) - 1024).astype("<i2").tobytes()
        del ds.RescaleSlope, ds.RescaleIntercept
        ds.save_as(f)
    with caplog.at_level(logging.WARNING):
        series = read_series(ge)
    assert "assuming slope 1, intercept 0" in caplog.text
    np.testing.assert_array_equal(series.hu, reference)


@pytest.mark.shared_data
def test_truncated_uncompressed_file(ge):
    victim = ge / "7136"
    data = victim.read_bytes()
    victim.write_bytes(data[:-200])  # cut into the pixel data
    expect_input_error(victim, lambda: read_series(ge), "pixel data")


def test_truncated_jpeg2000_file(tmp_path, sample_series):
    folder = copy_series(sample_series, tmp_path / "siemens", limit=3)
    victim = sorted(folder.iterdir())[1]
    victim.write_bytes(victim.read_bytes()[:60000])
    info = scan_series(folder)  # the headers are intact ...
    expect_input_error(victim, lambda: info.read_hu(), "truncated")  # ... the pixel data is not


@pytest.mark.shared_data
def test_inconsistent_slice_sizes(ge):
    victim = ge / "7166"
    ds = pydicom.dcmread(victim)
    ds.PixelData = ds.pixel_array[:8, :8].copy().tobytes()
    ds.Rows, ds.Columns = 8, 8
    ds.save_as(victim)
    expect_input_error(ge, lambda: read_series(ge), "different sizes", "16x16 (3 files", "8x8 (1 file")


@pytest.mark.shared_data
def test_one_slice_series_works(tmp_path):
    folder = copy_series(shared_path("ct_dicom_tiny16_monai"), tmp_path / "one", limit=1)
    series = read_series(folder)
    assert series.hu.shape == (1, 16, 16) and series.spacing[0] == pytest.approx(1.25)  # SliceThickness
    expect_input_error(folder, lambda: read_series(folder, allow_single_slice=False), "single slice")


@pytest.mark.shared_data
def test_16x16_series_reads():
    assert read_series(shared_path("ct_dicom_tiny16_monai")).hu.shape == (4, 16, 16)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nifti_with_nan_or_inf(tmp_path, bad):
    data = np.full((6, 5, 4), -1000.0, dtype=np.float32)
    data[2, 3, 1] = bad
    path = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    expect_input_error(path, lambda: read_nifti(path), "1 NaN or infinite voxels")
    fixed = read_nifti(path, nonfinite_fill=-1024.0)
    assert fixed.hu[1, 3, 2] == -1024.0 and np.isfinite(fixed.hu).all()


@pytest.mark.shared_data
def test_output_folder_exists(ge, tmp_path):
    source = read_series(ge)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous result")
    expect_input_error(out, lambda: write_derived_series(source, source.hu, out), "already exists")
    assert (out / "keep.txt").read_text() == "previous result"
    # overwrite replaces only an output of ldct-invrep (the marker), never a folder of the user's
    expect_input_error(out, lambda: write_derived_series(source, source.hu, out, overwrite=True), "not an output of")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    ours = tmp_path / "ours"
    write_derived_series(source, source.hu, ours)
    write_derived_series(source, source.hu * 0 - 1000, ours, overwrite=True)
    assert sorted(p.name for p in ours.iterdir()) == [OUTPUT_MARKER] + [f"IM_{i:05d}.dcm" for i in range(1, 5)]
    assert float(read_series(ours).hu.max()) == -1000.0


@pytest.mark.shared_data
def test_output_inside_the_input_folder(ge, tmp_path):
    inner = ge / "denoised"
    expect_input_error(ge, lambda: check_output_location(ge, inner), "inside the input folder", named=inner)
    expect_input_error(ge, lambda: check_output_location(ge, ge), "is the input itself")
    expect_input_error(ge, lambda: check_output_location(ge, tmp_path), "would contain the input", named=tmp_path)
    file = ge / "7106"
    expect_input_error(file, lambda: check_output_location(file, file), "is the input itself")
    source = read_series(ge)
    expect_input_error(ge, lambda: write_derived_series(source, source.hu, inner), "inside the input", named=inner)
    assert not inner.exists()
    check_output_location(ge, tmp_path / "elsewhere")  # fine
    check_output_location(file, tmp_path / "elsewhere")


@pytest.mark.shared_data
def test_failure_while_writing_leaves_no_output(ge, tmp_path):
    source = read_series(ge)

    def slices():
        yield source.hu[0]
        yield source.hu[1]
        raise RuntimeError("network crashed")

    with pytest.raises(RuntimeError, match="network crashed"):
        write_derived_series(source, slices(), tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ge"]  # neither the output nor a temporary folder

    previous = tmp_path / "previous"
    write_derived_series(source, source.hu, previous)
    before = snapshot(previous)
    with pytest.raises(ValueError, match="NaN"):
        write_derived_series(source, [source.hu[0], np.full((16, 16), np.nan)], previous, overwrite=True)
    assert snapshot(previous) == before  # replaced only after success
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ge", "previous"]


def test_atomic_helpers(tmp_path):
    target = tmp_path / "result"
    with atomic_output_dir(target) as tmp:
        assert tmp.parent == tmp_path and not target.exists()
        (tmp / "a.txt").write_text("a")
    assert (target / "a.txt").read_text() == "a"
    with pytest.raises(InputError, match="already exists"):
        with atomic_output_dir(target):
            pass
    with pytest.raises(KeyError):
        with atomic_output_dir(target, overwrite=True) as tmp:
            (tmp / "b.txt").write_text("b")
            raise KeyError("boom")
    assert sorted(p.name for p in target.iterdir()) == [OUTPUT_MARKER, "a.txt"]

    file = tmp_path / "vol.nii.gz"
    file.write_text("old")
    expect_input_error(file, lambda: write_nifti(file, np.zeros((2, 3, 4)), np.eye(4)), "already exists")
    with pytest.raises(OSError):
        with atomic_output_file(file, overwrite=True) as tmp:
            assert tmp.name.endswith("vol.nii.gz")
            tmp.write_text("half")
            raise OSError("disk full")
    assert file.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result", "vol.nii.gz"]


# --------------------------------------------------------------------------------------------- hostile-input sweep
def _uncompressed_copy(sample_series: Path, dest: Path, n: int = 3) -> Path:
    """The first ``n`` sample slices, decompressed (so headers and pixel data can be edited freely)."""
    dest.mkdir(parents=True)
    for k, f in enumerate(sorted(p for p in sample_series.iterdir() if p.name.startswith("CT."))[:n]):
        ds = pydicom.dcmread(f)
        ds.decompress()
        ds.save_as(dest / f"IM{k:03d}.dcm", enforce_file_format=True)
    return dest


def test_degenerate_orientation_refused(tmp_path, sample_series):
    folder = _uncompressed_copy(sample_series, tmp_path / "iop")
    for f in folder.iterdir():
        edit(f, ImageOrientationPatient=[0, 0, 0, 0, 0, 0])  # was read with NaN spacing and direction
    expect_input_error(folder, lambda: scan_series(folder), "ImageOrientationPatient", "degenerate")


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.4.100", "1.3.6.1.4.1.99999.1.2.3"], ids=["mpeg2", "private"])
def test_undecodable_transfer_syntax_refused_before_decoding(tmp_path, sample_series, syntax):
    folder = copy_series(sample_series, tmp_path / "ts", limit=2)
    for f in folder.iterdir():  # keep the (JPEG 2000) pixel data, relabel it
        ds = pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(f, implicit_vr=False, little_endian=True)
    # refused by the header scan already (was exit 1 "UID is not a transfer syntax" for a private one, and
    # "file truncated or corrupt" for MPEG2 after the weights were loaded)
    error = expect_input_error(folder, lambda: scan_series(folder), "cannot decode", "convert the series to uncompressed")
    assert "truncated" not in str(error)


@pytest.mark.parametrize("keep", [300, 1200], ids=["after-file-meta", "inside-header"])
def test_file_cut_inside_its_header_is_not_dropped_silently(tmp_path, sample_series, keep):
    folder = _uncompressed_copy(sample_series, tmp_path / "cut")
    victim = folder / "IM001.dcm"
    victim.write_bytes(victim.read_bytes()[:keep])  # pydicom reads it without error, minus Rows/Columns
    expect_input_error(folder, lambda: read_series(folder), "header truncated", named=victim)


def test_same_sop_instance_uid_at_two_positions_refused(tmp_path, sample_series):
    folder = _uncompressed_copy(sample_series, tmp_path / "uid")
    uid = pydicom.dcmread(folder / "IM000.dcm").SOPInstanceUID
    edit(folder / "IM001.dcm", SOPInstanceUID=uid)  # another image under the same UID: was dropped as a "copy"
    expect_input_error(folder, lambda: read_series(folder), "IM000.dcm and IM001.dcm", "same SOPInstanceUID")
    copies = _uncompressed_copy(sample_series, tmp_path / "copies")
    shutil.copy2(copies / "IM000.dcm", copies / "IM000 copy.dcm")  # a real copy: still used once
    assert read_series(copies).hu.shape == (3, 512, 512)


def test_macos_appledouble_files_are_not_lost_slices(tmp_path, sample_series, caplog):
    folder = copy_series(sample_series, tmp_path / "mac", limit=2)
    (folder / "._IM000.dcm").write_bytes(b"\x00\x05\x16\x07" + bytes(4092))
    (folder / ".DS_Store").write_bytes(bytes(100))
    with caplog.at_level(logging.WARNING):
        assert read_series(folder).hu.shape == (2, 512, 512)
    assert "looks like a slice" not in caplog.text


def test_colour_nifti_refused_in_plain_words(tmp_path):
    rgb = np.zeros((8, 8, 2), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    path = tmp_path / "rgb.nii.gz"
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), str(path))
    expect_input_error(path, lambda: read_nifti(path), "colour (RGB) voxels, not grey values")


def test_dicom_values_that_are_not_hu_warn_like_nifti(tmp_path, sample_series, caplog):
    folder = copy_series(sample_series, tmp_path / "no_intercept", limit=3)
    for path in folder.iterdir():
        edit(path, RescaleIntercept=0)  # an exporter that dropped the -1024: air reads as 0 "HU"
    with caplog.at_level(logging.WARNING):
        assert read_series(folder).hu.min() >= 0
    assert "do not look like HU" in caplog.text and "no_intercept" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        read_series(copy_series(sample_series, tmp_path / "as_acquired", limit=3))
    assert "do not look like HU" not in caplog.text
