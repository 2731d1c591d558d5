"""DICOM series reading (sorting, HU, geometry, streaming), derived-series writing and the MONAI reader."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from conftest import shared_path
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless

from ldct_invrep.io import (
    OUTPUT_MARKER,
    DerivedSeriesWriter,
    hu_to_stored,
    iter_series_slices,
    read_all_series,
    read_series,
    scan_folder,
    scan_series,
    write_derived_series,
)


def sitk_read(folder: Path) -> sitk.Image:
    """Read the only series in ``folder`` with SimpleITK/GDCM (an independent DICOM implementation)."""
    reader = sitk.ImageSeriesReader()
    ids = reader.GetGDCMSeriesIDs(str(folder))
    assert len(ids) == 1
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), ids[0]))
    return reader.Execute()


def copy_files(src: Path, dst: Path, names: list[str] | None = None) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if f.name != "SHA256SUMS" and (names is None or f.name in names):
            shutil.copy2(f, dst / f.name)
    return dst


# ------------------------------------------------------------------------------------------------ reading
def test_scan_reads_extensionless_files_and_ignores_others(sample_series):
    scan = scan_folder(sample_series)
    assert list(scan.series) == [""]  # the anonymised TotalSegmentator series has an empty SeriesInstanceUID
    assert len(scan.series[""]) == 20
    assert all(p.name.startswith("CT.") and not p.name.endswith(".dcm") for p, _ in scan.series[""])
    assert [p.name for p in scan.non_dicom] == ["SHA256SUMS"]


def test_read_siemens_jpeg2000_series_matches_gdcm(sample_series):
    first = next(p for p in sample_series.iterdir() if p.name.startswith("CT."))
    assert pydicom.dcmread(first, stop_before_pixels=True).file_meta.TransferSyntaxUID == JPEG2000Lossless
    series = read_series(sample_series)
    assert series.hu.shape == (20, 512, 512) and series.hu.dtype == np.float32
    assert series.spacing == pytest.approx((2.0, 0.9765625, 0.9765625))
    assert series.origin == pytest.approx((-249.51171875, -437.51171875, -804.5))  # lowest z first
    np.testing.assert_allclose(series.direction, np.eye(3))
    positions = [float(ds.ImagePositionPatient[2]) for ds in series.datasets]
    assert positions == sorted(positions) and positions[0] == -804.5 and positions[-1] == -766.5
    assert all("PixelData" not in ds for ds in series.datasets)  # headers only are kept
    assert -1024.0 <= series.hu.min() < -1000 and series.hu.max() > 1000
    ref = sitk_read(sample_series)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ref).astype(np.float32), series.hu)
    assert ref.GetOrigin() == pytest.approx(series.origin)
    assert ref.GetSpacing() == pytest.approx(series.spacing[::-1])
    np.testing.assert_allclose(np.reshape(ref.GetDirection(), (3, 3)), series.direction)


@pytest.mark.shared_data
def test_ge_tiny_16x16_signed_series():
    folder = shared_path("ct_dicom_tiny16_monai")
    series = read_series(folder)
    assert series.hu.shape == (4, 16, 16)
    assert [ds.InstanceNumber for ds in series.datasets] == [18, 180, 181, 182]
    assert series.spacing == pytest.approx((1.25, 0.488281, 0.488281))  # median gap; the first gap is 202.5 mm
    ref = sitk.GetArrayFromImage(sitk_read(folder))
    np.testing.assert_array_equal(ref.astype(np.float32), series.hu)


@pytest.mark.shared_data
def test_rle_compressed_copy_reads_the_same_and_writes_uncompressed(tmp_path):
    """Another encapsulated transfer syntax (RLE Lossless, encoded here by pydicom), signed 16-bit data."""
    src = shared_path("ct_dicom_tiny16_monai")
    folder = copy_files(src, tmp_path / "rle")
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.compress(pydicom.uid.RLELossless)
        ds.save_as(f)
    assert pydicom.dcmread(f).file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    series = read_series(folder)
    np.testing.assert_array_equal(series.hu, read_series(src).hu)
    paths = write_derived_series(series, series.hu, tmp_path / "out")
    ds = pydicom.dcmread(paths[0])
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert not ds["PixelData"].is_undefined_length and len(ds.PixelData) == 16 * 16 * 2
    np.testing.assert_array_equal(read_series(tmp_path / "out").hu, series.hu)


@pytest.mark.shared_data
def test_sorting_uses_the_slice_normal_not_instance_number(tmp_path):
    """Sagittal slices: normal = row x col = (-1, 0, 0), so the largest x comes first; InstanceNumber misleads."""
    folder = copy_files(shared_path("ct_dicom_tiny16_monai"), tmp_path / "sag")
    files = sorted(folder.iterdir())
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.ImagePositionPatient = [10.0 + 2.5 * k, -5.0, 7.0]
        ds.InstanceNumber = k + 1  # increasing with x, i.e. opposite to the normal
        ds.save_as(f)
    stored = {f.name: pydicom.dcmread(f).pixel_array for f in files}
    series = read_series(folder)
    assert [p.name for p in series.paths] == [f.name for f in reversed(files)]
    np.testing.assert_allclose(series.direction[:, 2], [-1.0, 0.0, 0.0])
    assert series.origin == pytest.approx((17.5, -5.0, 7.0))
    assert series.spacing[0] == pytest.approx(2.5)
    np.testing.assert_array_equal(series.hu[0], stored[files[-1].name].astype(np.float32) - 1024)
    ref = sitk_read(folder)
    assert ref.GetOrigin() == pytest.approx(series.origin)
    np.testing.assert_allclose(np.reshape(ref.GetDirection(), (3, 3)), series.direction, atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ref).astype(np.float32), series.hu)


@pytest.mark.shared_data
def test_single_ima_file(mayo_pair):
    full, _ = mayo_pair
    series = read_series(full)
    assert series.hu.shape == (1, 512, 512)
    assert series.spacing == pytest.approx((1.0, 0.7421875, 0.7421875))  # SliceThickness for one slice
    stored = pydicom.dcmread(full).pixel_array
    np.testing.assert_array_equal(series.hu[0], stored.astype(np.float32) - 1024.0)


def test_streaming_equals_full_read(sample_series):
    info = scan_series(sample_series)
    assert info.shape == (20, 512, 512)
    batches = list(iter_series_slices(info, batch=7))
    assert [start for start, _ in batches] == [0, 7, 14]
    assert [b.shape[0] for _, b in batches] == [7, 7, 6]
    full = read_series(sample_series).hu
    np.testing.assert_array_equal(np.concatenate([b for _, b in batches]), full)
    np.testing.assert_array_equal(info.read_hu([19, 3]), full[[19, 3]])
    np.testing.assert_array_equal(info.read_slice(5), full[5])


@pytest.mark.shared_data
def test_read_all_series_separates_series(tmp_path):
    folder = copy_files(shared_path("ct_dicom_tiny16_monai"), tmp_path / "two")
    for f in sorted(folder.iterdir())[:2]:
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = "1.2.3.4.5"
        ds.save_as(f)
    all_series = read_all_series(folder)
    assert sorted(len(s.paths) for s in all_series) == [2, 2]
    assert sorted(s.series_uid for s in all_series)[0] == "1.2.3.4.5"
    chosen = read_series(folder, series_uid="1.2.3.4.5")
    assert chosen.hu.shape == (2, 16, 16)


# ------------------------------------------------------------------------------------------------ writing
def _ds(bits_stored: int, signed: int) -> Dataset:
    ds = Dataset()
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation = 16, bits_stored, signed
    return ds


def test_hu_to_stored_rounds_and_clips_to_bits_stored():
    hu = np.array([[-3000.0, -1024.4, 0.6, 3071.0, 5000.0]])
    stored, n = hu_to_stored(hu, 1.0, -1024.0, _ds(12, 0))
    assert stored.dtype == np.dtype("<u2")
    assert stored.tolist() == [[0, 0, 1025, 4095, 4095]] and n == 2
    stored, n = hu_to_stored(hu, 1.0, 0.0, _ds(12, 1))
    assert stored.dtype == np.dtype("<i2")
    assert stored.tolist() == [[-2048, -1024, 1, 2047, 2047]] and n == 3
    stored, n = hu_to_stored(np.array([[-1024.0, 0.0]]), 0.5, -1024.0, _ds(16, 0))
    assert stored.tolist() == [[0, 2048]] and n == 0


def test_derived_siemens_series_reads_back_in_simpleitk(sample_series, tmp_path, caplog):
    source = read_series(sample_series)
    rng = np.random.default_rng(0)
    hu = source.hu + rng.normal(0.0, 30.0, source.hu.shape).astype(np.float32)
    out = tmp_path / "denoised"
    with caplog.at_level(logging.WARNING):
        paths = write_derived_series(source, hu, out, method="LIR", uid_root="1.2.826.0.1.3680043.10.999")
    assert paths == [out / f"IM_{i:05d}.dcm" for i in range(1, 21)] and all(p.is_file() for p in paths)
    assert "clipped" in caplog.text  # noise pushed air below -1024 HU = stored 0 (12 bits unsigned)
    expected = np.clip(np.rint(hu), -1024, 3071)
    assert paths.clipped_pixels == int(np.count_nonzero(np.rint(hu) < -1024) + np.count_nonzero(np.rint(hu) > 3071))
    assert paths.clipped_pixels > 0 and paths.clipped_slices == 20

    img = sitk_read(out)
    ref = sitk_read(sample_series)
    assert img.GetSize() == ref.GetSize()
    assert img.GetOrigin() == pytest.approx(ref.GetOrigin())
    assert img.GetSpacing() == pytest.approx(ref.GetSpacing())
    assert img.GetDirection() == pytest.approx(ref.GetDirection())
    np.testing.assert_allclose(sitk.GetArrayFromImage(img), expected, atol=0.5 + 1e-3)

    headers = [pydicom.dcmread(p) for p in paths]
    src0 = source.datasets[0]
    series_uids = {ds.SeriesInstanceUID for ds in headers}
    sop_uids = {ds.SOPInstanceUID for ds in headers}
    assert len(series_uids) == 1 and len(sop_uids) == 20
    assert all(u.startswith("1.2.826.0.1.3680043.10.999.") for u in series_uids | sop_uids)
    for ds, src in zip(headers, source.datasets, strict=True):
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPClassUID == pydicom.uid.CTImageStorage  # empty in the anonymised source: filled in
        assert not ds["PixelData"].is_undefined_length and len(ds.PixelData) == 512 * 512 * 2
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "AXIAL", "CT_SOM5 SPI"]
        assert ds.SeriesDescription == "CT Body 3.0 [LIR]"
        assert "ldct-invrep" in ds.DerivationDescription
        assert ds.SeriesNumber == 1000  # source SeriesNumber is empty
        assert ds.ImagePositionPatient == src.ImagePositionPatient
        assert (ds.RescaleSlope, ds.RescaleIntercept, ds.BitsStored) == (1, -1024, 12)
        assert ds.WindowCenter == src.WindowCenter and ds.PatientWeight == src0.PatientWeight
        assert ds.FrameOfReferenceUID == src.FrameOfReferenceUID and ds.StudyDate == src.StudyDate
        assert "LargestImagePixelValue" not in ds
    assert len({ds.StudyInstanceUID for ds in headers}) == 1 and headers[0].StudyInstanceUID
    again = read_series(out)
    np.testing.assert_array_equal(again.hu, expected.astype(np.float32))
    assert again.origin == pytest.approx(source.origin) and again.spacing == pytest.approx(source.spacing)


@pytest.mark.shared_data
def test_derived_ge_series_keeps_geometry_and_signed_values(tmp_path):
    folder = shared_path("ct_dicom_tiny16_monai")
    source = read_series(folder)
    hu = source.hu.copy()
    hu[:, 0, 0] = -3024.0  # below -1024: fits the signed 16-bit range, must not be clipped
    paths = write_derived_series(source, list(hu), tmp_path / "out")
    img = sitk_read(tmp_path / "out")
    ref = sitk_read(folder)
    assert img.GetOrigin() == pytest.approx(ref.GetOrigin())
    assert img.GetSpacing() == pytest.approx(ref.GetSpacing())
    assert img.GetDirection() == pytest.approx(ref.GetDirection())
    np.testing.assert_allclose(sitk.GetArrayFromImage(img), hu, atol=0.5)
    for p, src in zip(paths, source.datasets, strict=True):
        ds = pydicom.dcmread(p)
        assert ds.ImagePositionPatient == src.ImagePositionPatient
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.PatientID == src.PatientID
        assert ds.SeriesNumber == 1002 and ds.SeriesDescription == "Routine Brain [LIR]"
        assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.SOPInstanceUID != src.SOPInstanceUID
        assert ds.PixelRepresentation == 1 and ds.pixel_array.dtype == np.int16


def test_streaming_writer_any_order_and_incomplete_leaves_nothing(sample_series, tmp_path):
    info = scan_series(sample_series)
    out = tmp_path / "stream"
    with DerivedSeriesWriter(info, out, method="LIR-lite", description_suffix=" (denoised)") as writer:
        for start, batch in reversed(list(info.iter_batches(8))):
            for k, sl in enumerate(batch):
                writer.write(start + k, sl - 10.0)
    names = [DerivedSeriesWriter.file_name(i) for i in range(20)]
    assert sorted(p.name for p in out.iterdir()) == sorted([OUTPUT_MARKER, *names])
    assert json.loads((out / OUTPUT_MARKER).read_text())["entries"] == names  # the marker lists what was written
    back = read_series(out)
    np.testing.assert_array_equal(back.hu, np.clip(read_series(sample_series).hu - 10.0, -1024, 3071))
    assert back.description == "CT Body 3.0 (denoised)"

    with pytest.raises(ValueError, match="wrote 1 of 20"):
        with DerivedSeriesWriter(info, tmp_path / "partial") as writer:
            writer.write(0, info.read_slice(0))
    assert not (tmp_path / "partial").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stream"]  # no temporary folder left behind


@pytest.mark.shared_data
def test_long_description_is_cut_to_64_characters_keeping_the_suffix(tmp_path):
    folder = copy_files(shared_path("ct_dicom_tiny16_monai"), tmp_path / "in")
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.SeriesDescription = "X" * 64
        ds.save_as(f)
    source = read_series(folder)
    paths = write_derived_series(source, source.hu, tmp_path / "out", method="LIR")
    desc = pydicom.dcmread(paths[0]).SeriesDescription
    assert len(desc) == 64 and desc.endswith(" [LIR]")


# ------------------------------------------------------------------------------------------------ MONAI
def test_monai_load_image_with_lir_reader(sample_series):
    from monai.transforms import LoadImage

    from ldct_invrep.io import LIRDicomReader

    img = LoadImage(reader=LIRDicomReader(), image_only=True)(sample_series)
    assert img.meta["reader"] == "LIRDicomReader"
    assert tuple(img.shape) == (512, 512, 20)
    series = read_series(sample_series)
    np.testing.assert_array_equal(img.numpy(), series.hu.transpose(2, 1, 0))
    np.testing.assert_allclose(img.meta["spacing"], [0.9765625, 0.9765625, 2.0])
    # RAS affine: voxel (i, j, k) -> world; LPS -> RAS flips x and y of the DICOM position
    corner = img.affine.numpy() @ np.array([511, 0, 19, 1.0])
    lps = np.array(series.origin) + np.array([511 * 0.9765625, 0.0, 19 * 2.0])
    np.testing.assert_allclose(corner[:3], lps * [-1, -1, 1])

    # MONAI's own PydicomReader stacks the same slices in the opposite order: same world, same values
    ref = LoadImage(reader="PydicomReader", image_only=True)(sample_series)
    np.testing.assert_array_equal(ref.numpy()[..., ::-1], img.numpy())
    np.testing.assert_allclose(ref.affine.numpy() @ [3, 5, 19, 1], img.affine.numpy() @ [3, 5, 0, 1], atol=1e-4)


@pytest.mark.shared_data
def test_monai_load_imaged_pipeline_numpy_order():
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    from ldct_invrep.io import LIRDicomReader

    folder = shared_path("ct_dicom_tiny16_monai")
    series = read_series(folder)
    load = Compose([LoadImaged("image", reader=LIRDicomReader(reverse_indexing=True)), EnsureChannelFirstd("image")])
    data = load({"image": str(folder)})
    assert tuple(data["image"].shape) == (1, 4, 16, 16)
    np.testing.assert_array_equal(data["image"][0].numpy(), series.hu)
    # index (slice, row, col) -> RAS (slice 0: the 4 GE slices are not evenly spaced, a grid fits one)
    world = data["image"].affine.numpy() @ [0, 2, 15, 1]
    lps = np.array(series.datasets[0].ImagePositionPatient, dtype=float) + [15 * 0.488281, 2 * 0.488281, 0]
    np.testing.assert_allclose(world[:3], lps * [-1, -1, 1], atol=1e-4)
    assert data["image"].meta["SeriesInstanceUID"] == series.series_uid
