"""Helpers shared by several test modules (``from _helpers import ...``: pytest puts tests/ on ``sys.path``,
as for ``conftest``). Fixtures live in conftest.py; this module holds plain code and fixture factories."""

from __future__ import annotations

import importlib
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from ldct_invrep.networks import LIRConfig

# The smallest LIR networks the engine and network tests build.
TINY = LIRConfig(base_channels=8, n_res=1, noise_channels=4, dis_channels=8, dis_layers=4, dis_scales=2)


def one_thread_fixture():
    """An autouse, module-scoped fixture that runs the module's tests with one intra-op torch thread, restored
    afterwards. Tiny networks gain nothing from intra-op threads, and on a shared 2-core machine two threads
    contend (a tiny iteration takes up to 10x longer). Use: ``_one_thread = one_thread_fixture()``."""

    @pytest.fixture(autouse=True, scope="module")
    def _one_thread():
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(before)

    return _one_thread


def write_ct_slice(
    path: Path,
    hu: np.ndarray,
    *,
    z: float,
    instance: int,
    thickness: float,
    corner: float,
    description: str,
    series_uid: str | None = None,
) -> None:
    """A valid single-slice CT DICOM file holding ``hu`` (uint16 stored values, slope 1, intercept -1024).

    ImagePositionPatient is ``(corner, corner, z)``, pixels 0.75 mm. With ``series_uid`` the file also gets
    that SeriesInstanceUID and new Study and Frame of Reference UIDs; without, none of the three.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    if series_uid is not None:
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), series_uid, generate_uid()
    ds.Modality, ds.PatientID, ds.SeriesDescription = "CT", "Anonymous", description
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [corner, corner, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceThickness, ds.PixelSpacing = thickness, [0.75, 0.75]
    ds.Rows, ds.Columns = hu.shape
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 15, 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = np.clip(np.round(hu + 1024), 0, 4095).astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def load_script(path: str, name: str | None = None):
    """The repository's script ``path`` (e.g. ``"benchmarks/dev_pairs.py"``, a file outside the package) loaded as a
    module named ``name`` (default: its file name), for tests that call its functions."""
    import importlib.util

    file = Path(__file__).resolve().parents[1] / path
    spec = importlib.util.spec_from_file_location(name or file.stem, file)
    assert spec is not None and spec.loader is not None, file
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _dose_relative_check():
    """benchmarks/dose_relative_check.py as a module (it imports its sibling lowdose_calibration)."""
    bench = str(Path(__file__).resolve().parents[1] / "benchmarks")
    sys.path.insert(0, bench)
    try:
        return importlib.import_module("dose_relative_check")
    finally:
        sys.path.remove(bench)


def roi_noise_ratio(originals, simulated) -> float:
    """Total noise of simulated slices over their originals': RMS over the uniform soft-tissue ROIs of every
    slice of the plain ROI std with a plane removed (benchmarks/dose_relative_check.py), deliberately not the
    calibration's own ``noise_level``."""
    check = _dose_relative_check()
    orig_sq, sim_sq = [], []
    for hu, sim in zip(originals, simulated):
        hu, sim = np.asarray(hu, dtype=np.float64), np.asarray(sim, dtype=np.float64)
        rois = check.flat_rois(hu, np.zeros(hu.shape, dtype=bool))
        assert len(rois) >= 2, "expected uniform soft tissue in the slice"
        orig_sq += [check.detrended_std(hu[box]) ** 2 for box in rois]
        sim_sq += [check.detrended_std(sim[box]) ** 2 for box in rois]
    return float(np.sqrt(np.mean(sim_sq) / np.mean(orig_sq)))
