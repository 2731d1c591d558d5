"""NIfTI reading/writing: (slice, row, col) order, affine kept, orientation, atomic replace, DICOM geometry."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_path

from ldct_invrep.io import read_nifti, read_series, write_nifti


def oblique_affine() -> np.ndarray:
    """A LPS-ish oblique affine with anisotropic voxels (rotation about z by 30 degrees, axes flipped)."""
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    rot = np.array([[-c, -s, 0.0], [s, -c, 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.7, 0.8, 2.5])
    affine[:3, 3] = [120.0, -40.0, -300.0]
    return affine


@pytest.mark.shared_data
def test_read_real_ct_nifti():
    path = shared_path("ct_nifti", "example_ct.nii.gz")
    vol = read_nifti(path)
    img = nib.load(str(path))
    assert img.shape == (122, 101, 112)
    assert vol.hu.shape == (112, 101, 122) and vol.hu.dtype == np.float32
    np.testing.assert_array_equal(vol.hu, np.asarray(img.dataobj).transpose(2, 1, 0))
    assert vol.orientation == "RAS"
    assert vol.spacing == pytest.approx((3.0, 3.0, 3.0))
    np.testing.assert_allclose(vol.affine, img.affine)
    assert vol.hu.min() == -1207 and vol.hu.max() == 3382


def test_write_read_round_trip_keeps_affine_and_values(tmp_path):
    rng = np.random.default_rng(1)
    hu = rng.uniform(-1024, 3000, size=(5, 6, 7)).astype(np.float32)
    affine = oblique_affine()
    path = write_nifti(tmp_path / "vol.nii.gz", hu, affine)
    vol = read_nifti(path)
    np.testing.assert_array_equal(vol.hu, hu)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-5)
    assert vol.spacing == pytest.approx((2.5, 0.8, 0.7))
    assert vol.orientation == "".join(nib.aff2axcodes(affine))
    header = nib.load(str(path)).header
    assert int(header["qform_code"]) == 1 and int(header["sform_code"]) == 1
    np.testing.assert_allclose(header.get_qform(), affine, atol=1e-5)

    as_int = read_nifti(write_nifti(tmp_path / "vol_int16.nii", hu + 0.4, affine, dtype=np.int16))
    np.testing.assert_array_equal(as_int.hu, np.rint(hu + 0.4))
    assert nib.load(str(tmp_path / "vol_int16.nii")).get_data_dtype() == np.int16


def test_overwrite_replaces_only_when_asked(tmp_path):
    path = tmp_path / "vol.nii.gz"
    write_nifti(path, np.zeros((2, 3, 4)), np.eye(4))
    write_nifti(path, np.ones((2, 3, 4)), np.eye(4), overwrite=True)
    assert read_nifti(path).hu.max() == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["vol.nii.gz"]
    with pytest.raises(ValueError, match="NaN"):
        write_nifti(path, np.full((2, 3, 4), np.nan), np.eye(4), overwrite=True)
    assert read_nifti(path).hu.max() == 1.0


def test_dicom_series_to_nifti_keeps_patient_geometry(tmp_path, sample_series):
    """SeriesInfo.affine(ras=True) is the NIfTI affine: ITK reads the NIfTI back at the DICOM position."""
    series = read_series(sample_series)
    path = write_nifti(tmp_path / "ct.nii.gz", series.hu, series.affine(ras=True))
    img = sitk.ReadImage(str(path))
    assert img.GetOrigin() == pytest.approx(series.origin, abs=1e-4)
    assert img.GetSpacing() == pytest.approx(series.spacing[::-1])
    np.testing.assert_allclose(np.reshape(img.GetDirection(), (3, 3)), series.direction, atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), series.hu)
    assert read_nifti(path).orientation == "LPS"
