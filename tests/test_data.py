"""Unpaired patch datasets, paired slices, datalists, natural images, the CT training cache."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ldct_invrep.data import (
    AIR_THRESHOLD_NET,
    DicomSliceSequence,
    PairedSliceDataset,
    UnpairedPatchDataset,
    build_ct_training_cache,
    load_ct_training_cache,
    load_datalist,
    split_unpaired,
    write_datalist,
)
from ldct_invrep import io
from ldct_invrep.data.clean_noise import clean_domain_noise, noise_at_own_dose
from ldct_invrep.data.clean_prefilter import prefilter_clean_domain
from ldct_invrep.data.ct_cache import assign_slices, resample_slices
from ldct_invrep.data.ct_volumes import nifti_axial_slices
from ldct_invrep.errors import InputError


def random_images(n: int, shape: tuple[int, int] = (100, 120), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-0.5, 0.5, shape).astype(np.float32) for _ in range(n)]


# ------------------------------------------------------------------------------------ UnpairedPatchDataset
def test_unpaired_items_shape_dtype_range() -> None:
    ds = UnpairedPatchDataset(random_images(3), random_images(2, seed=1), patch_size=64, samples_per_epoch=10)
    assert len(ds) == 10
    item = ds[0]
    assert set(item) == {"noisy", "clean"}
    for v in item.values():
        assert v.shape == (1, 64, 64) and v.dtype == torch.float32
        assert -0.5 <= float(v.min()) and float(v.max()) <= 0.5
    multi = UnpairedPatchDataset(
        [np.zeros((3, 70, 80), np.float32)], [np.zeros((3, 70, 80), np.float32)], min_tissue_fraction=0
    )
    assert multi[0]["noisy"].shape == (3, 64, 64)
    stack = UnpairedPatchDataset(
        np.zeros((4, 64, 64), np.float32), np.zeros((2, 64, 64), np.float32), min_tissue_fraction=0
    )
    assert stack[1]["clean"].shape == (1, 64, 64)


def test_unpaired_is_deterministic_per_seed_epoch_index() -> None:
    noisy, clean = random_images(4), random_images(4, seed=1)
    a = UnpairedPatchDataset(noisy, clean, samples_per_epoch=8, seed=3)
    b = UnpairedPatchDataset(noisy, clean, samples_per_epoch=8, seed=3)
    order_b = [b[i] for i in reversed(range(8))][::-1]  # access order must not matter
    for i in range(8):
        assert torch.equal(a[i]["noisy"], order_b[i]["noisy"]) and torch.equal(a[i]["clean"], order_b[i]["clean"])
    assert not torch.equal(a[0]["noisy"], a[1]["noisy"])
    assert not torch.equal(a[0]["noisy"], UnpairedPatchDataset(noisy, clean, seed=4)[0]["noisy"])
    first = a[0]["noisy"].clone()
    a.set_epoch(1)
    assert not torch.equal(a[0]["noisy"], first)
    a.set_epoch(0)
    assert torch.equal(a[0]["noisy"], first)


def test_unpaired_same_through_dataloader_workers() -> None:
    ds = UnpairedPatchDataset(random_images(3), random_images(3, seed=1), samples_per_epoch=8, seed=5)
    direct = torch.stack([ds[i]["noisy"] for i in range(8)])
    loaded = torch.cat([b["noisy"] for b in DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)])
    assert torch.equal(direct, loaded)


def test_unpaired_draws_are_independent() -> None:
    # image i is constant i/20, so a patch tells which image it came from
    images = [np.full((64, 64), i / 20.0, dtype=np.float32) for i in range(10)]
    ds = UnpairedPatchDataset(images, images, samples_per_epoch=400, seed=0, min_tissue_fraction=0)
    noisy = np.array([round(float(ds[i]["noisy"][0, 0, 0]) * 20) for i in range(400)])
    clean = np.array([round(float(ds[i]["clean"][0, 0, 0]) * 20) for i in range(400)])
    assert len(set(noisy)) == len(set(clean)) == 10
    same = float(np.mean(noisy == clean))
    assert 0.03 < same < 0.2  # independent draws: ~1/10
    # the noisy stream does not depend on the clean list at all
    other = UnpairedPatchDataset(images, images[:3], samples_per_epoch=400, seed=0, min_tissue_fraction=0)
    assert all(torch.equal(ds[i]["noisy"], other[i]["noisy"]) for i in range(0, 400, 37))


def test_unpaired_skips_air() -> None:
    air = np.full((256, 256), -1.0, dtype=np.float32)
    air[100:200, 60:160] = 0.0  # one tissue block (0 = HU 1024 in network range)
    kwargs = dict(samples_per_epoch=40, seed=1, max_tries=100)
    with_check = UnpairedPatchDataset([air], [air], min_tissue_fraction=0.5, **kwargs)
    no_check = UnpairedPatchDataset([air], [air], min_tissue_fraction=0.0, **kwargs)

    def tissue(t: torch.Tensor) -> float:
        return float((t > AIR_THRESHOLD_NET).float().mean())

    assert all(tissue(with_check[i]["noisy"]) >= 0.5 and tissue(with_check[i]["clean"]) >= 0.5 for i in range(40))
    assert sum(tissue(no_check[i]["noisy"]) < 0.5 for i in range(40)) > 20  # without the check, mostly air
    all_air = UnpairedPatchDataset([np.full((64, 64), -1.0, np.float32)], [air], max_tries=3)
    assert float(all_air[0]["noisy"].max()) == -1.0  # gives up after max_tries and still returns a patch


def test_unpaired_area_weighted_draws_images_by_pixel_count() -> None:
    # one large image of value 0.25 and nine small ones of value -0.25: per image the small ones are drawn
    # 9 times in 10, per pixel the large one (400x400 against 9 x 64x64) about 4 times in 5
    large = [np.full((400, 400), 0.25, np.float32)]
    small = [np.full((64, 64), -0.25, np.float32) for _ in range(9)]
    images = large + small
    frac = {}
    for weighted in (False, True):
        ds = UnpairedPatchDataset(images, images, samples_per_epoch=400, min_tissue_fraction=0, area_weighted=weighted)
        frac[weighted] = np.mean([float(ds[i]["noisy"].mean()) > 0 for i in range(len(ds))])
    expected = 400 * 400 / (400 * 400 + 9 * 64 * 64)
    assert abs(frac[False] - 0.1) < 0.05
    assert abs(frac[True] - expected) < 0.06


def test_unpaired_flips_only_when_asked() -> None:
    ramp = np.tile(np.linspace(-0.5, 0.5, 64, dtype=np.float32), (64, 1))
    flipped = UnpairedPatchDataset([ramp], [ramp], samples_per_epoch=32, min_tissue_fraction=0)
    fixed = UnpairedPatchDataset([ramp], [ramp], samples_per_epoch=32, min_tissue_fraction=0, flips=False)
    assert all(torch.equal(fixed[i]["noisy"][0], torch.from_numpy(ramp)) for i in range(32))
    assert any(float(flipped[i]["noisy"][0, 0, 0]) > 0 for i in range(32))


def test_unpaired_bad_input() -> None:
    with pytest.raises(InputError, match=r"noisy_images\[0\]: image 32x32 is smaller"):
        UnpairedPatchDataset([np.zeros((32, 32))], [np.zeros((64, 64))], min_tissue_fraction=0)[0]
    with pytest.raises(InputError, match="at least one"):
        UnpairedPatchDataset([], [np.zeros((64, 64))])


def test_returned_patches_do_not_alias_the_images() -> None:
    img = np.zeros((64, 64), np.float32)
    ds = UnpairedPatchDataset([img], [img], min_tissue_fraction=0, flips=False)
    ds[0]["noisy"].fill_(1.0)
    assert img.max() == 0.0


# ------------------------------------------------------------------------------------ splits, paired slices
def test_split_unpaired_disjoint_halves() -> None:
    items = list(range(11))
    x, y = split_unpaired(items, seed=0)
    assert len(x) == 6 and len(y) == 5 and not set(x) & set(y) and sorted(x + y) == items
    assert (x, y) == split_unpaired(items, seed=0)
    assert x != split_unpaired(items, seed=1)[0]
    assert x == sorted(x)


def test_paired_slice_dataset() -> None:
    noisy, clean = random_images(2, (40, 50)), random_images(2, (40, 50), seed=1)
    ds = PairedSliceDataset(noisy, clean)
    item = ds[1]
    assert item["noisy"].shape == (1, 40, 50) and item["index"] == 1
    assert np.array_equal(item["clean"][0].numpy(), clean[1])
    with pytest.raises(InputError, match="2 noisy slices but 1 clean"):
        PairedSliceDataset(noisy, clean[:1])
    with pytest.raises(InputError, match="pair 0"):
        PairedSliceDataset([np.zeros((4, 4))], [np.zeros((4, 5))])[0]


@pytest.mark.shared_data
def test_dicom_slice_sequence_real_mayo_pair(mayo_pair: tuple[Path, Path]) -> None:
    full, quarter = mayo_pair
    seq = DicomSliceSequence([full, quarter], cache_size=1)
    f, q = seq[0], seq[1]
    assert f.shape == q.shape == (512, 512) and f.dtype == np.float32
    assert -1.0 <= float(f.min()) and float(f.max()) <= 1.0
    body = f > AIR_THRESHOLD_NET + 0.1
    diff_hu = (q - f)[body] / 2 * 4096
    assert abs(float(diff_hu.mean())) < 10.0 and 30.0 < float(diff_hu.std()) < 150.0  # same anatomy, QD noise
    hu = DicomSliceSequence([full], units="hu")[0]
    np.testing.assert_allclose((np.clip(hu, -1024, 3072) + 1024) / 4096 * 2 - 1, f, atol=1e-5)


# ------------------------------------------------------------------------------------ datalists
def test_datalist_round_trip(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    for name in ("a.dcm", "b.dcm"):
        (tmp_path / "data" / name).write_bytes(b"")
    path = write_datalist(
        tmp_path / "lists" / "d.json",
        {
            "training": [{"noisy": "a.dcm"}, {"clean": "b.dcm"}],
            "test": [{"noisy": "a.dcm", "clean": "missing.dcm"}],
            "validation": [],
        },
        {"data_root": str(tmp_path / "data")},
    )
    assert [p.name for p in path.parent.iterdir()] == ["d.json"]  # written through io.atomic, no temporaries
    training = load_datalist(path)
    assert training == [{"noisy": str(tmp_path / "data" / "a.dcm")}, {"clean": str(tmp_path / "data" / "b.dcm")}]
    assert load_datalist(path, "validation") == []
    assert load_datalist(path, "test")[0]["clean"] == str(tmp_path / "data" / "missing.dcm")
    with pytest.raises(InputError, match="missing.dcm"):
        load_datalist(path, "test", check_exists=True)
    with pytest.raises(InputError, match="no section 'bogus'"):
        load_datalist(path, "bogus")
    assert json.loads(path.read_text())["numTraining"] == 2
    other = load_datalist(path, base_dir=tmp_path / "elsewhere")
    assert other[0]["noisy"] == str(tmp_path / "elsewhere" / "a.dcm")


# ------------------------------------------------------------------------------------ CT cache
def test_assign_slices_disjoint_with_gap() -> None:
    sets = assign_slices(40, seed=0, hold_out=0.1, gap=1)
    test, noisy, clean, dropped = sets["test"], sets["train_noisy"], sets["train_clean"], sets["dropped"]
    assert len(test) == 4 and test == list(range(test[0], test[0] + 4))
    assert not set(noisy) & set(clean) and not (set(noisy) | set(clean)) & (set(test) | set(dropped))
    assert sorted(test + noisy + clean + dropped) == list(range(40))
    assert all(min(abs(i - t) for t in test) > 1 for i in noisy + clean)
    assert sets == assign_slices(40, seed=0, hold_out=0.1, gap=1)
    assert assign_slices(40, seed=0, key=1)["train_noisy"] != noisy


def test_nifti_axial_slices_orientation() -> None:
    data = np.zeros((5, 4, 3), np.float32)  # (i, j, k)
    data[0, 3, 2] = 1.0  # i = 0, j = max, k = max
    hu_kji = data.transpose(2, 1, 0)
    ras, spacing = nifti_axial_slices(hu_kji, np.diag([0.5, 0.7, 3.0, 1.0]))
    # RAS (+x = patient's right): i = 0 is the patient's far left, shown on the viewer's right (last
    # column); j max is the most anterior -> row 0; k max the most superior -> last slice
    assert ras.shape == (3, 4, 5) and spacing == (0.7, 0.5)
    assert ras[2, 0, 4] == 1.0
    las, _ = nifti_axial_slices(hu_kji, np.diag([-0.5, 0.7, 3.0, 1.0]))
    assert las[2, 0, 0] == 1.0  # i = 0 is now the patient's far right -> first column
    lpi, _ = nifti_axial_slices(hu_kji, np.diag([-0.5, -0.7, -3.0, 1.0]))
    assert lpi[0, 3, 0] == 1.0  # j max posterior -> last row; k max inferior -> first slice


def test_nifti_slices_match_dicom_display(sample_series: Path, tmp_path: Path) -> None:
    """A DICOM series written as NIfTI (through ldct_invrep.io) comes back as the same axial images."""
    series = io.read_series(sample_series)
    path = io.write_nifti(tmp_path / "s.nii.gz", series.hu[:3], series.affine(ras=True))
    vol = io.read_nifti(path)
    slices, spacing = nifti_axial_slices(vol.hu, vol.affine)
    np.testing.assert_allclose(slices, series.hu[:3], atol=1e-3)
    assert spacing == pytest.approx(series.spacing[1:])


def phantom_nifti(path: Path, n_slices: int = 12, size: int = 64) -> Path:
    yy, xx = np.mgrid[:size, :size]
    body = ((yy - size / 2) / (size * 0.4)) ** 2 + ((xx - size / 2) / (size * 0.45)) ** 2 < 1
    vol = np.full((size, size, n_slices), -1000.0, np.float32)
    for k in range(n_slices):
        vol[..., k] = np.where(body, 40.0 + k, -1000.0)
    vol[..., 0] = -1000.0  # an empty slice, to be skipped
    nib.save(nib.Nifti1Image(vol, np.diag([0.8, 0.8, 3.0, 1.0])), str(path))
    return path


def fake_low_dose(hu: np.ndarray, dose_fraction: float, pixel_spacing_mm: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return hu + rng.normal(0, 20.0 / np.sqrt(dose_fraction), hu.shape)


def test_build_ct_training_cache_protocol(tmp_path: Path) -> None:
    src = phantom_nifti(tmp_path / "ct.nii.gz")
    out = tmp_path / "cache" / "ct.npz"
    manifest = build_ct_training_cache([src], out, dose_fraction=0.25, seed=0, hold_out=0.2, simulator=fake_low_dose)
    assert out.is_file() and json.loads(out.with_suffix(".json").read_text()) == manifest
    assert sorted(p.name for p in out.parent.iterdir()) == ["ct.json", "ct.npz"]  # io.atomic leaves no temporaries
    entry = manifest["sources"][0]
    assert entry["slices_skipped_no_body"] == 1 and entry["kind"] == "nifti" and entry["orientation"] == "RAS"
    sets = entry["slice_indices"]
    assert 0 not in sum(sets.values(), [])
    assert not set(sets["train_noisy"]) & set(sets["train_clean"])
    assert not (set(sets["train_noisy"]) | set(sets["train_clean"])) & set(sets["test"])
    counts = manifest["counts"]
    assert counts["test_noisy"] == counts["test_clean"] == len(sets["test"]) == 2
    assert counts["train_noisy"] + counts["train_clean"] == 11 - 2 - len(sets["dropped"])
    assert manifest["dose_fraction"] == 0.25 and manifest["seed"] == 0 and "fake_low_dose" in manifest["simulator"]

    hu = load_ct_training_cache(out, units="hu")
    net = load_ct_training_cache(out)
    # clean slices are the source as it is (slice k has body value 40 + k), noisy ones carry noise
    for arr, k in zip(hu.train_clean, sets["train_clean"], strict=True):
        assert arr.shape == (64, 64) and np.isclose(arr.max(), 40.0 + k)
    noise = hu.test_noisy[0] - hu.test_clean[0]
    assert 20.0 < float(noise.std()) < 60.0
    assert -1.0 <= min(float(a.min()) for a in net.train_noisy) and max(float(a.max()) for a in net.train_noisy) <= 1.0
    np.testing.assert_allclose(net.test_clean[0], (hu.test_clean[0] + 1024) / 4096 * 2 - 1, atol=1e-6)

    again = build_ct_training_cache([src], tmp_path / "again.npz", seed=0, hold_out=0.2, simulator=fake_low_dose)
    assert again["sources"][0]["slice_indices"] == sets
    repeat = load_ct_training_cache(tmp_path / "again.npz", units="hu")
    assert all(np.array_equal(a, b) for a, b in zip(repeat.train_noisy, hu.train_noisy, strict=True))
    ds = UnpairedPatchDataset(net.train_noisy, net.train_clean, patch_size=32, samples_per_epoch=4)
    assert ds[0]["noisy"].shape == (1, 32, 32)


def test_prefilter_clean_domain_denoises_only_the_clean_training_slices(tmp_path: Path) -> None:
    src = tmp_path / "noisy_phantom.nii.gz"
    phantom_nifti(src, size=96)
    vol = nib.load(str(src))
    arr = np.asarray(vol.dataobj, dtype=np.float32)
    body = arr > -500
    arr[body] += np.random.default_rng(0).normal(0.0, 25.0, int(body.sum()))  # a normal dose's own noise
    nib.save(nib.Nifti1Image(arr, vol.affine), str(src))
    parent = tmp_path / "ct.npz"
    build_ct_training_cache([src], parent, dose_fraction=0.25, seed=0, hold_out=0.2, simulator=fake_low_dose)
    out = tmp_path / "derived" / "ct.npz"
    manifest = prefilter_clean_domain(parent, out, factor=5.0)

    before, after = np.load(parent), np.load(out)
    assert sorted(before.files) == sorted(after.files)
    for key in before.files:
        if key.startswith("train_clean_"):
            # flat body inside the phantom: the noise std falls several-fold, the mean HU stays
            inner = before[key][:, 30:66, 30:66]
            filtered = after[key][:, 30:66, 30:66]
            assert float(filtered.std(axis=(1, 2)).mean()) < float(inner.std(axis=(1, 2)).mean()) / 3
            assert abs(float(filtered.mean()) - float(inner.mean())) < 3.0
        else:  # noisy domain X and the held-out test pairs are the parent's, bit for bit
            assert np.array_equal(before[key], after[key])
    prefilter = manifest["clean_prefilter"]
    assert prefilter["factor"] == 5.0 and prefilter["parent_sha256"] == json.loads(parent.with_suffix(".json").read_text())["cache_sha256"]
    assert prefilter["slices"] == manifest["counts"]["train_clean"] and manifest["cache_file"] == "ct.npz"
    assert json.loads(out.with_suffix(".json").read_text()) == manifest
    assert len(load_ct_training_cache(out).train_clean) == manifest["counts"]["train_clean"]
    with pytest.raises(InputError, match="must not replace its parent"):
        prefilter_clean_domain(parent, parent)


def test_build_ct_training_cache_resamples_training_slices(tmp_path: Path) -> None:
    src = phantom_nifti(tmp_path / "ct.nii.gz")  # 0.8 mm pixels
    seen: list[float] = []

    def simulate(hu: np.ndarray, dose_fraction: float, pixel_spacing_mm: float, seed: int) -> np.ndarray:
        seen.append(pixel_spacing_mm)
        return fake_low_dose(hu, dose_fraction, pixel_spacing_mm, seed)

    out = tmp_path / "rs.npz"
    # 0.64 mm is a 1.25x zoom (kept), 0.8 mm is the volume's own, 2.0 mm a 2.5x shrink (beyond MAX_RESAMPLE_FACTOR)
    manifest = build_ct_training_cache(
        [src], out, seed=0, hold_out=0.2, simulator=simulate, resample_spacings_mm=[0.64, 0.8, 2.0]
    )
    entry = manifest["sources"][0]
    assert manifest["resample_spacings_mm"] == [0.64, 0.8, 2.0]
    n_noisy = len(entry["slice_indices"]["train_noisy"])
    assert entry["resampled"] == [
        {"key": "r0", "pixel_spacing_mm": 0.64, "shape": [80, 80], "dose_fractions": [0.25] * n_noisy}
    ]
    n_noisy, n_clean = len(entry["slice_indices"]["train_noisy"]), len(entry["slice_indices"]["train_clean"])
    assert manifest["counts"]["train_noisy"] == 2 * n_noisy and manifest["counts"]["train_clean"] == 2 * n_clean
    assert seen.count(0.64) == n_noisy  # the resampled noisy copies are simulated at their new spacing
    cache = load_ct_training_cache(out, units="hu")
    assert len(cache.test_noisy) == manifest["counts"]["test_noisy"] == 2  # test slices stay as acquired
    assert {a.shape for a in cache.test_clean} == {(64, 64)}
    native, zoomed = cache.train_clean[:n_clean], cache.train_clean[n_clean:]
    for a, b in zip(native, zoomed, strict=True):
        assert b.shape == (80, 80)
        # same anatomy (body value, air), 1.25x larger in pixels
        assert np.isclose(np.median(b[b > -500]), np.median(a[a > -500]), atol=1.0)
        assert (b > -500).sum() == pytest.approx((a > -500).sum() * 1.25**2, rel=0.05)
    # the zoomed noisy copies get noise of their own, not a resampled copy of the native realisation
    z_noise = cache.train_noisy[n_noisy] - resample_slices(np.stack([cache.train_noisy[0]]), 0.8, 0.64)[0]
    assert float(np.abs(z_noise).mean()) > 10.0
    with pytest.raises(InputError, match="resample_spacings_mm"):
        build_ct_training_cache([src], tmp_path / "bad.npz", simulator=simulate, resample_spacings_mm=[0.0])


def test_build_ct_training_cache_real_simulator(tmp_path: Path) -> None:
    src = phantom_nifti(tmp_path / "ct.nii.gz", n_slices=6)
    manifest = build_ct_training_cache([src], tmp_path / "c.npz", dose_fraction=0.25, seed=0, hold_out=0.2)
    cache = load_ct_training_cache(tmp_path / "c.npz", units="hu")
    assert "simulate_low_dose" in manifest["simulator"]
    assert float(np.abs(cache.test_noisy[0] - cache.test_clean[0]).mean()) > 1.0  # noise was inserted


def test_build_ct_training_cache_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.npz"):
        build_ct_training_cache([tmp_path], tmp_path / "x.cache", simulator=fake_low_dose)
    with pytest.raises(InputError, match="no such file"):
        build_ct_training_cache([tmp_path / "absent.nii.gz"], tmp_path / "x.npz", simulator=fake_low_dose)


def test_ensure_ct_cache_rebuilds_when_the_resampling_changes(tmp_path: Path) -> None:
    from ldct_invrep.recipes import ensure_ct_cache

    src = str(phantom_nifti(tmp_path / "ct.nii.gz", n_slices=6))
    cache = tmp_path / "c.npz"
    ensure_ct_cache([src], cache, hold_out=0.2)
    built = cache.stat().st_mtime_ns
    ensure_ct_cache([src], cache, hold_out=0.2)  # same request: reused
    assert cache.stat().st_mtime_ns == built
    ensure_ct_cache([src], cache, hold_out=0.2, resample_spacings_mm=[0.64])
    manifest = json.loads(cache.with_suffix(".json").read_text())
    assert manifest["resample_spacings_mm"] == [0.64] and manifest["sources"][0]["resampled"][0]["shape"] == [80, 80]


def test_unpaired_patches_transposes() -> None:
    ramp = np.tile(np.linspace(-0.5, 0.5, 16, dtype=np.float32), (16, 1))  # varies along columns only

    def orientations(transposes: bool) -> set[str]:
        ds = UnpairedPatchDataset([ramp], [ramp], patch_size=16, samples_per_epoch=32, flips=False,
                                  transposes=transposes, min_tissue_fraction=0.0)
        seen = set()
        for i in range(len(ds)):
            p = ds[i]["noisy"][0].numpy()
            seen.add("columns" if np.allclose(p, ramp) else "rows" if np.allclose(p, ramp.T) else "other")
        return seen

    assert orientations(False) == {"columns"}
    assert orientations(True) == {"columns", "rows"}


# ------------------------------------------------------------------------------------ clean-domain noise
def own_level_low_dose(hu: np.ndarray, dose_fraction: float, pixel_spacing_mm: float, seed: int) -> np.ndarray:
    """Dose-relative in the simple Gaussian case: a normal dose with 20 HU of noise, so f adds 20 sqrt(1/f - 1)."""
    rng = np.random.default_rng(seed)
    return hu + rng.normal(0, 20.0 * np.sqrt(1 / dose_fraction - 1), hu.shape)


def test_clean_domain_noise_has_the_normal_dose_level_inside_the_body(tmp_path: Path) -> None:
    src = phantom_nifti(tmp_path / "ct.nii.gz", n_slices=8, size=96)
    cache = tmp_path / "ct.npz"
    manifest = build_ct_training_cache([src], cache, dose_fraction=[0.05, 0.5], seed=0, hold_out=0.2,
                                       simulator=own_level_low_dose, noisy_copies=3, unpaired_split=False,
                                       test_dose_fractions=[0.25])  # fmt: skip
    fractions = manifest["sources"][0]["train_noisy_dose_fractions"]
    maps = clean_domain_noise(cache, min_fraction=0.2)
    assert len(maps) == sum(f >= 0.2 for f in fractions) > 0  # the low-dose copies are left out
    assert len(clean_domain_noise(cache, min_fraction=0.0)) == len(fractions)
    hu = np.concatenate([m[m != 0] for m in maps]) * 2048.0  # network units -> HU
    assert np.std(hu) == pytest.approx(20.0, rel=0.1)  # whatever the dose of the copy it came from
    for m in maps:  # cropped to the body's bounding box (phantom body: 0.8 x 0.9 of 96 px), zero outside it
        assert m.shape == (87, 77) and m[0, 0] == 0.0 and m[43, 38] != 0.0
    with pytest.raises(InputError, match="dose fraction >= 0.9"):
        clean_domain_noise(cache, min_fraction=0.9)
    # X and Y split apart: the originals of X's slices are read again from the source
    unpaired = tmp_path / "unpaired.npz"
    build_ct_training_cache([src], unpaired, dose_fraction=0.25, seed=0, hold_out=0.2, simulator=own_level_low_dose)
    maps = clean_domain_noise(unpaired)
    assert len(maps) == len(json.loads(unpaired.with_suffix(".json").read_text())["sources"][0]["slice_indices"]["train_noisy"])
    assert np.std(np.concatenate([m[m != 0] for m in maps]) * 2048.0) == pytest.approx(20.0, rel=0.1)
    src.unlink()
    with pytest.raises(InputError, match="not found"):
        clean_domain_noise(unpaired)


def test_noise_at_own_dose_keeps_at_least_a_patch() -> None:
    clean = np.full((100, 120), -1000.0, np.float32)
    clean[40:50, 50:60] = 40.0  # a 10 x 10 px body
    noisy = clean + np.float32(30.0)
    noise = noise_at_own_dose(noisy, clean, 0.5, min_size=64)
    assert noise.shape == (64, 64)  # widened about the body to a whole patch
    assert np.count_nonzero(noise) == 100 and np.allclose(noise[noise != 0] * 2048.0, 30.0, atol=1e-2)
    assert noise_at_own_dose(noisy, clean, 0.5, min_size=200).shape == (100, 120)  # never beyond the slice
    with pytest.raises(ValueError, match="dose fraction"):
        noise_at_own_dose(noisy, clean, 1.0)


def test_unpaired_dataset_clean_noise_is_a_third_independent_draw() -> None:
    noisy, clean = random_images(3), random_images(2, seed=1)
    noise = [np.full((70, 80), float(k + 1), np.float32) for k in range(4)]
    plain = UnpairedPatchDataset(noisy, clean, patch_size=32, samples_per_epoch=6, min_tissue_fraction=0.0)
    with_noise = UnpairedPatchDataset(noisy, clean, patch_size=32, samples_per_epoch=6, min_tissue_fraction=0.0,
                                      clean_noise_images=noise)  # fmt: skip
    drawn = set()
    for i in range(6):
        a, b = plain[i], with_noise[i]
        assert "clean_noise" not in a and b["clean_noise"].shape == (1, 32, 32)
        assert torch.equal(a["noisy"], b["noisy"]) and torch.equal(a["clean"], b["clean"])  # same X and Y draws
        drawn.add(float(b["clean_noise"][0, 0, 0]))
    assert len(drawn) > 1  # random maps
    with pytest.raises(InputError, match="clean_noise_images is empty"):
        UnpairedPatchDataset(noisy, clean, clean_noise_images=[])
