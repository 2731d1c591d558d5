"""Torch datasets for LIR training (unpaired patches) and evaluation (paired full slices).

The paper trains on *unpaired* data (section 4.2, "Samples are randomly divided into two parts without
coinciding"; section 4.3 for CT): one clean corpus is split into two disjoint halves, one half is corrupted
and used as the noisy domain X, the other half stays clean as Y. Each training sample pairs a random 64x64
patch of X with an independent random 64x64 patch of Y (section 4.1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from ldct_invrep.errors import InputError
from ldct_invrep.transforms.windowing import hu_to_net

T = TypeVar("T")

#: Air / body threshold in HU, and the same value in network range (``transforms.windowing.hu_to_net``).
AIR_THRESHOLD_HU = -900.0
AIR_THRESHOLD_NET = float(hu_to_net(np.float64(AIR_THRESHOLD_HU)))

ImageLike = np.ndarray | torch.Tensor


def split_unpaired(items: Sequence[T], seed: int = 0) -> tuple[list[T], list[T]]:
    """Split one corpus into two disjoint halves ``(X half, Y half)`` (paper section 4.2, 4.3).

    The X half is the one to corrupt (noisy domain), the Y half stays clean. A seeded permutation picks the
    members; each half keeps the original order. With an odd count the X half gets the extra item.
    """
    n = len(items)
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED])).permutation(n)
    n_x = (n + 1) // 2
    x_idx = sorted(perm[:n_x].tolist())
    y_idx = sorted(perm[n_x:].tolist())
    return [items[i] for i in x_idx], [items[i] for i in y_idx]


def area_probabilities(images: Sequence[Any]) -> np.ndarray:
    """Draw probabilities proportional to each image's pixel count (last two axes): every pixel equally likely."""
    areas = np.array([float(np.prod(np.shape(im)[-2:])) for im in images])
    return areas / areas.sum()


def _as_chw(image: Any, name: str) -> np.ndarray:
    """A 2D (H, W) or 3D (C, H, W) image as a float32 (C, H, W) array (no copy when already float32)."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"{name}: expected a 2D (H, W) or 3D (C, H, W) image, got shape {arr.shape}")
    return arr.astype(np.float32, copy=False)


class UnpairedPatchDataset(Dataset):
    """Independent random patches of the noisy domain X and the clean domain Y (paper section 4.1-4.3).

    Each item is ``{"noisy": 1 x P x P, "clean": 1 x P x P}`` (float32 tensors, network range [-1, 1],
    C x P x P for C-channel inputs): the noisy patch comes from a random image of ``noisy_images``, the clean
    patch from a random image of ``clean_images``, drawn with two independent generators, so the pair is not
    aligned in any way (the unpaired protocol). Each patch is a random ``patch_size`` crop with a random
    horizontal and a random vertical flip (``flips``) and, with ``transposes``, a random transpose (with the
    flips: all eight 90-degree rotations and reflections). CT noise is anisotropic (streaks along the most
    attenuating direction: wide patients have more left-right noise), so a model trained on a few patients
    without transposes learns their noise orientation and denoises rotated noise worse
    (docs/shipped_weights.md measures it).

    Air rejection (CT): a crop is kept when at least ``min_tissue_fraction`` of its pixels (channel mean) are
    above ``tissue_threshold`` (default HU -900 in network range). Otherwise a new image and position are
    drawn, up to ``max_tries`` times; after that the crop with the most tissue seen is used, so a sample is
    always returned. ``min_tissue_fraction=0`` disables the check (natural images).

    Image choice: uniform over images, or with ``area_weighted`` in proportion to each image's pixel count,
    so every pixel is equally likely to be sampled (this reads every image once, at construction). CT
    corpora mix 512 x 512 slices with small ones (a 3 mm NIfTI volume has 122 x 101 slices whose noise at
    3 mm pixels is ten times weaker); drawn per image, the many small slices would crowd out the large ones
    that look like the scans the model is used on.

    Determinism: item ``index`` is a pure function of ``(seed, epoch, index)``: the generators are seeded
    from ``numpy.random.SeedSequence([seed, epoch, index])``. DataLoader workers, their number and resuming
    at any index therefore give the same patches. Call ``set_epoch`` at the start of each epoch for new
    draws (with non-persistent workers, the DataLoader picks the new epoch up at each ``iter``).

    Inputs are sequences of 2D (H, W) or 3D (C, H, W) arrays or tensors already in network range; a 3D
    ndarray (N, H, W) is taken as N single-channel images. Images are indexed lazily, so any sequence whose
    ``__getitem__`` loads from disk works too. ``transform`` (optional) is applied to the output dict.

    ``clean_noise_images`` (optional, CT): noise maps of the clean domain (``data.clean_noise``); each item
    then also holds ``"clean_noise"``, a patch of a random map drawn with a third independent generator
    (flips and transposes as above, no air rejection), which the objective adds to the translation D_Y
    judges (``losses.LIRObjective``). The noisy and clean draws are the same with or without it.
    """

    def __init__(
        self,
        noisy_images: Sequence[ImageLike],
        clean_images: Sequence[ImageLike],
        patch_size: int = 64,
        samples_per_epoch: int = 16 * 1000,
        seed: int = 0,
        min_tissue_fraction: float = 0.5,
        tissue_threshold: float = AIR_THRESHOLD_NET,
        flips: bool = True,
        transposes: bool = False,
        max_tries: int = 10,
        epoch: int = 0,
        transform: Callable[[dict[str, torch.Tensor]], Any] | None = None,
        area_weighted: bool = False,
        clean_noise_images: Sequence[ImageLike] | None = None,
    ) -> None:
        if clean_noise_images is not None and len(clean_noise_images) == 0:
            raise InputError("UnpairedPatchDataset: clean_noise_images is empty (give None for no clean-domain noise)")
        if len(noisy_images) == 0 or len(clean_images) == 0:
            raise InputError(
                f"UnpairedPatchDataset: need at least one noisy and one clean image "
                f"(got {len(noisy_images)} noisy, {len(clean_images)} clean)"
            )
        if patch_size < 1 or samples_per_epoch < 1 or max_tries < 1:
            raise ValueError("patch_size, samples_per_epoch and max_tries must be positive")
        if not 0.0 <= min_tissue_fraction <= 1.0:
            raise ValueError(f"min_tissue_fraction must be in [0, 1], got {min_tissue_fraction}")
        self.noisy_images = noisy_images
        self.clean_images = clean_images
        self.patch_size = int(patch_size)
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.min_tissue_fraction = float(min_tissue_fraction)
        self.tissue_threshold = float(tissue_threshold)
        self.flips = bool(flips)
        self.transposes = bool(transposes)
        self.max_tries = int(max_tries)
        self.epoch = int(epoch)
        self.transform = transform
        self.area_weighted = bool(area_weighted)
        self.clean_noise_images = clean_noise_images
        # per-image draw probabilities, keyed like _draw's ``name``; None draws uniformly
        sets = {"noisy_images": noisy_images, "clean_images": clean_images, "clean_noise_images": clean_noise_images}
        self._image_probabilities = {
            name: area_probabilities(images) if self.area_weighted and images is not None else None
            for name, images in sets.items()
        }

    def set_epoch(self, epoch: int) -> None:
        """Select the draws of another epoch (same seed, new patches)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def generators(self, index: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
        """The three independent generators (noisy, clean, clean noise) of item ``index`` in the current epoch
        (the first two are the same as when the dataset had only two)."""
        seq = np.random.SeedSequence([self.seed, self.epoch, int(index)])
        noisy_seq, clean_seq, noise_seq = seq.spawn(3)
        return np.random.default_rng(noisy_seq), np.random.default_rng(clean_seq), np.random.default_rng(noise_seq)

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(index)
        rng_noisy, rng_clean, rng_noise = self.generators(index)
        item = {
            "noisy": torch.from_numpy(self._draw(self.noisy_images, rng_noisy, "noisy_images")),
            "clean": torch.from_numpy(self._draw(self.clean_images, rng_clean, "clean_images")),
        }
        if self.clean_noise_images is not None:
            noise = self._draw(self.clean_noise_images, rng_noise, "clean_noise_images", reject_air=False)
            item["clean_noise"] = torch.from_numpy(noise)
        return self.transform(item) if self.transform is not None else item

    def tissue_fraction(self, patch: np.ndarray) -> float:
        """Fraction of pixels above ``tissue_threshold`` (channel mean), the air-rejection statistic."""
        return float(np.mean(patch.mean(axis=0) > self.tissue_threshold))

    def _draw(self, images: Sequence[ImageLike], rng: np.random.Generator, name: str, reject_air: bool = True) -> np.ndarray:
        p = self.patch_size
        best: np.ndarray | None = None
        best_fraction = -1.0
        probabilities = self._image_probabilities[name]
        for _ in range(self.max_tries):
            i = int(rng.integers(len(images)) if probabilities is None else rng.choice(len(images), p=probabilities))
            image = _as_chw(images[i], f"{name}[{i}]")
            _, h, w = image.shape
            if h < p or w < p:
                raise InputError(f"{name}[{i}]: image {h}x{w} is smaller than the {p}x{p} patch")
            top = int(rng.integers(h - p + 1))
            left = int(rng.integers(w - p + 1))
            patch = image[:, top : top + p, left : left + p]
            if self.flips:
                if rng.random() < 0.5:
                    patch = patch[:, :, ::-1]
                if rng.random() < 0.5:
                    patch = patch[:, ::-1, :]
            if self.transposes and rng.random() < 0.5:
                patch = patch.transpose(0, 2, 1)
            if self.min_tissue_fraction <= 0.0 or not reject_air:
                return np.array(patch, dtype=np.float32, copy=True)
            fraction = self.tissue_fraction(patch)
            if fraction >= self.min_tissue_fraction:
                return np.array(patch, dtype=np.float32, copy=True)
            if fraction > best_fraction:
                best, best_fraction = patch, fraction
        assert best is not None
        return np.array(best, dtype=np.float32, copy=True)


class PairedSliceDataset(Dataset):
    """Full paired slices for evaluation: ``{"noisy": C x H x W, "clean": C x H x W, "index": i}``.

    ``noisy[i]`` and ``clean[i]`` must show the same anatomy (e.g. simulated or real low dose and the
    original). Inputs as for ``UnpairedPatchDataset`` (2D or C x H x W, network range); shapes are checked
    per item. ``transform`` (optional) is applied to the output dict.
    """

    def __init__(
        self,
        noisy: Sequence[ImageLike],
        clean: Sequence[ImageLike],
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        if len(noisy) != len(clean):
            raise InputError(f"PairedSliceDataset: {len(noisy)} noisy slices but {len(clean)} clean slices")
        self.noisy = noisy
        self.clean = clean
        self.transform = transform

    def __len__(self) -> int:
        return len(self.noisy)

    def __getitem__(self, index: int) -> Any:
        noisy = _as_chw(self.noisy[index], f"noisy[{index}]")
        clean = _as_chw(self.clean[index], f"clean[{index}]")
        if noisy.shape != clean.shape:
            where = f"pair {index}"
            if hasattr(self.noisy, "paths") and hasattr(self.clean, "paths"):  # DicomSliceSequence: name the files
                where = f"{self.noisy.paths[index]} and {self.clean.paths[index]} (pair {index})"
            raise InputError(f"{where}: noisy shape {noisy.shape} != clean shape {clean.shape}")
        item = {
            "noisy": torch.from_numpy(np.array(noisy, copy=True)),
            "clean": torch.from_numpy(np.array(clean, copy=True)),
            "index": index,
        }
        return self.transform(item) if self.transform is not None else item
