"""Supervised RED-CNN training: the paired reference of paper Table 3 ("RedCNN [4]").

RED-CNN (Chen et al. 2017) learns ``clean = f(noisy)`` from *paired* slices with an MSE loss and Adam.
Here it trains on the very simulated pairs the LIR model sees unpaired: the cache's ``train_noisy`` slices
(simulated low dose) with their own normal-dose originals, re-read from the cache's sources
(:func:`load_paired_training_slices`). So the two models differ only in supervision, not in data.

The loop is ``monai.engines.SupervisedTrainer`` (MSE, Adam); only patch sampling and the checkpoint format
are ours. A checkpoint is a plain state dict plus a JSON header (architecture, HU range, what it trained on
and for how long), loadable with ``torch.load(weights_only=True)``::

    .venv/bin/python -m ldct_invrep.baselines.train_redcnn --cache ct_cache.npz --out redcnn.pt \\
        --iterations 20000 --channels 96 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ldct_invrep import __version__
from ldct_invrep.baselines.redcnn import REDCNN
from ldct_invrep.data.ct_cache import iter_simulated_training_pairs
from ldct_invrep.data.datasets import area_probabilities
from ldct_invrep.errors import InputError
from ldct_invrep.io.atomic import atomic_replace
from ldct_invrep.transforms.windowing import NETWORK_HU_RANGE, hu_to_net, net_to_hu

__all__ = [
    "FORMAT",
    "RedcnnTraining",
    "extract_paired_patches",
    "load_paired_training_slices",
    "load_redcnn",
    "redcnn_method",
    "save_redcnn",
    "train_redcnn",
]

FORMAT = "ldct-invrep-redcnn"
FORMAT_VERSION = 1
HU_RANGE = NETWORK_HU_RANGE
AIR_HU = -900.0


# --------------------------------------------------------------------------------------------- data
def load_paired_training_slices(
    cache_path: str | Path, max_slices: int | None = None, seed: int = 0, *, resampled: bool = True, min_size: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """(noisy HU, clean HU clipped to the network range, names) of the cache's simulated training slices paired
    with their originals (``data.ct_cache.iter_simulated_training_pairs``, ``resampled`` as there).

    ``min_size`` keeps slices at least that many pixels on each side; ``max_slices`` a seeded random subset
    (e.g. for tuning). Never contains a held-out test slice.
    """
    noisy_all: list[np.ndarray] = []
    clean_all: list[np.ndarray] = []
    names: list[str] = []
    for pair in iter_simulated_training_pairs(cache_path, resampled=resampled):
        if min(pair.noisy.shape) < min_size:
            continue
        noisy_all.append(pair.noisy)
        clean_all.append(np.clip(pair.clean, *HU_RANGE))
        names.append(pair.name)
    if not noisy_all:
        raise InputError(f"{cache_path}: the cache has no training slices" + (f" of at least {min_size} pixels" if min_size else ""))
    if max_slices is not None and max_slices < len(noisy_all):
        keep = sorted(np.random.default_rng(seed).choice(len(noisy_all), size=max_slices, replace=False).tolist())
        noisy_all = [noisy_all[i] for i in keep]
        clean_all = [clean_all[i] for i in keep]
        names = [names[i] for i in keep]
    return noisy_all, clean_all, names


def extract_paired_patches(
    noisy_slices: Sequence[np.ndarray],
    clean_slices: Sequence[np.ndarray],
    patch_size: int = 64,
    n_patches: int = 4096,
    seed: int = 0,
    min_tissue_fraction: float = 0.5,
    max_tries: int = 20,
    area_weighted: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Random aligned patches (same slice, same position) in network range: two ``(n, 1, p, p)`` float32 arrays.

    Inputs are HU slices. A patch is redrawn (up to ``max_tries`` times) while less than
    ``min_tissue_fraction`` of its clean pixels are above -900 HU, so patches are mostly body, not air.
    Slices are drawn uniformly, or with ``area_weighted`` in proportion to their pixel count, as
    ``data.UnpairedPatchDataset(area_weighted=True)`` draws LIR's patches in the ``ldct_simulated`` bundle.
    """
    if len(noisy_slices) != len(clean_slices) or not noisy_slices:
        raise InputError(f"paired slices: {len(noisy_slices)} noisy and {len(clean_slices)} clean (need equal, > 0)")
    rng = np.random.default_rng(seed)
    probabilities = area_probabilities(noisy_slices) if area_weighted else None
    noisy_out = np.empty((n_patches, 1, patch_size, patch_size), dtype=np.float32)
    clean_out = np.empty_like(noisy_out)
    for i in range(n_patches):
        for _ in range(max_tries):
            k = int(rng.integers(len(noisy_slices)) if probabilities is None else rng.choice(len(noisy_slices), p=probabilities))
            n, c = noisy_slices[k], clean_slices[k]
            if n.shape != c.shape or min(n.shape) < patch_size:
                raise InputError(f"slice {k}: shapes {n.shape}/{c.shape} differ or are smaller than {patch_size}")
            r = int(rng.integers(n.shape[0] - patch_size + 1))
            q = int(rng.integers(n.shape[1] - patch_size + 1))
            cp = c[r : r + patch_size, q : q + patch_size]
            if (cp > AIR_HU).mean() >= min_tissue_fraction:
                break
        noisy_out[i, 0] = hu_to_net(n[r : r + patch_size, q : q + patch_size])
        clean_out[i, 0] = hu_to_net(cp)
    return noisy_out, clean_out


class _PairedPatches(torch.utils.data.Dataset):
    def __init__(self, noisy: np.ndarray, clean: np.ndarray) -> None:
        self.noisy = torch.as_tensor(_as_nchw(noisy, "noisy_patches"))
        self.clean = torch.as_tensor(_as_nchw(clean, "clean_patches"))
        if self.noisy.shape != self.clean.shape:
            raise InputError(f"patches: noisy {tuple(self.noisy.shape)} and clean {tuple(self.clean.shape)} differ")

    def __len__(self) -> int:
        return len(self.noisy)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.noisy[i], "label": self.clean[i]}


def _as_nchw(a: Any, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or a.shape[1] != 1 or len(a) == 0:
        raise InputError(f"{name}: expected (n, H, W) or (n, 1, H, W) patches in network range, got {a.shape}")
    return np.ascontiguousarray(a)


# --------------------------------------------------------------------------------------------- training
@dataclass
class RedcnnTraining:
    """What :func:`train_redcnn` returns: the trained network, the loss of every iteration, the header."""

    model: REDCNN
    losses: list[float]
    header: dict[str, Any]
    checkpoint: Path | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def train_redcnn(
    noisy_patches: Any,
    clean_patches: Any,
    iterations: int,
    batch: int = 16,
    lr: float = 1e-4,
    seed: int = 0,
    *,
    channels: int = 96,
    out: str | Path | None = None,
    training_data: str = "",
    device: str | torch.device = "cpu",
    log_every: int = 0,
    progress: Callable[[str], None] | None = None,
    max_minutes: float | None = None,
) -> RedcnnTraining:
    """Train RED-CNN on paired patches (network range, ``(n, [1,] H, W)``) for ``iterations`` Adam steps.

    ``monai.engines.SupervisedTrainer`` with ``MSELoss`` and Adam (``lr``, betas 0.9/0.999 as in RED-CNN);
    one epoch of ``iterations`` batches drawn with replacement by a seeded sampler. ``channels`` 96 is the
    paper's width (about 1 TFLOP per 512 x 512 slice); fewer are much cheaper on a CPU. With ``out`` the
    checkpoint is written there (:func:`save_redcnn`); ``training_data`` describes the data in its header.
    ``max_minutes``: a wall-time budget; training stops after the first iteration past it, and the header's
    ``iterations`` is the number done (``training.planned_iterations`` the number asked for).
    """
    from ignite.engine import Events
    from monai.engines import SupervisedTrainer
    from monai.utils import set_determinism

    if iterations < 1 or batch < 1:
        raise InputError(f"iterations {iterations} and batch {batch}: must be >= 1")
    set_determinism(seed=seed)
    try:
        dataset = _PairedPatches(noisy_patches, clean_patches)
        model = REDCNN(in_channels=1, channels=channels)
        if min(dataset.noisy.shape[-2:]) < model.min_size:
            raise InputError(f"patches of {tuple(dataset.noisy.shape[-2:])}: RED-CNN needs at least {model.min_size}")
        generator = torch.Generator().manual_seed(seed)
        sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=iterations * batch, generator=generator)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=sampler, drop_last=True, num_workers=0)
        device = torch.device(device)
        model = model.to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999))
        trainer = SupervisedTrainer(
            device=device, max_epochs=1, train_data_loader=loader, network=model, optimizer=optimizer,
            loss_function=nn.MSELoss(), epoch_length=iterations, decollate=False,
        )
        losses: list[float] = []
        say = progress or (lambda msg: None)

        @trainer.on(Events.ITERATION_COMPLETED)
        def _record(engine: Any) -> None:
            losses.append(float(engine.state.output["loss"].detach()))
            if max_minutes is not None and time.perf_counter() - t0 > 60.0 * max_minutes:
                say(f"RED-CNN: time budget of {max_minutes:g} min reached after {engine.state.iteration} iterations")
                engine.terminate()
            if log_every and engine.state.iteration % log_every == 0:
                say(f"RED-CNN iteration {engine.state.iteration}/{iterations}: MSE {losses[-1]:.3e}")

        t0 = time.perf_counter()
        trainer.run()
        seconds = time.perf_counter() - t0
    finally:
        set_determinism(seed=None)
    model = model.cpu().eval()
    header = {
        "model": "REDCNN",
        "preset": f"redcnn-{channels}",
        "arch": {"in_channels": 1, "channels": channels, "kernel": model.kernel, "n_layers": model.n_layers,
                 "output_relu": model.output_relu},
        "hu_range": list(HU_RANGE),
        "iterations": len(losses),
        "training_data": training_data or f"{len(dataset)} paired patches of {dataset.noisy.shape[-1]}x{dataset.noisy.shape[-2]}",
        "training": {
            "loss": "MSE (network range [-1, 1])", "optimizer": "Adam", "lr": lr, "betas": [0.9, 0.999], "batch": batch,
            "seed": seed, "n_patches": len(dataset), "planned_iterations": iterations,
            "max_minutes": max_minutes, "patch_size": list(dataset.noisy.shape[-2:]),
            "seconds": round(seconds, 1), "threads": torch.get_num_threads(), "device": str(device),
            "final_loss_mean_last_10": float(np.mean(losses[-10:])),
        },
        "reference": "Chen et al., Low-dose CT with a residual encoder-decoder CNN, IEEE TMI 36(12), 2017",
    }
    path = save_redcnn(out, model, header) if out is not None else None
    return RedcnnTraining(model, losses, header, path, seconds)


# --------------------------------------------------------------------------------------------- checkpoints
def save_redcnn(path: str | Path, model: REDCNN, header: dict[str, Any]) -> Path:
    """Write ``{"format", "header_json", "state_dict"}`` to ``path`` atomically (temp file, then rename)."""
    path = Path(path)
    header = dict(header)
    header.setdefault("package_version", __version__)
    header["format_version"] = FORMAT_VERSION
    payload = {
        "format": FORMAT,
        "header_json": json.dumps(header, sort_keys=True),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    with atomic_replace(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_redcnn(path: str | Path) -> tuple[REDCNN, dict[str, Any]]:
    """(REDCNN in eval mode, header) from :func:`save_redcnn`; bad files raise ``InputError`` naming them."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such RED-CNN checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(f"{path}: not a readable torch checkpoint ({type(err).__name__})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not an {FORMAT} checkpoint")
    header = json.loads(payload["header_json"])
    try:
        model = REDCNN(**header["arch"])
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"{path}: weights do not match the stored architecture ({type(err).__name__})") from err
    return model.eval(), header


def redcnn_method(model: REDCNN, hu_range: Sequence[float] = HU_RANGE) -> Callable[[np.ndarray], np.ndarray]:
    """HU -> HU callable (2D slice or (n, H, W)) for a trained RED-CNN; HU outside ``hu_range`` pass through."""
    lo, hi = float(hu_range[0]), float(hu_range[1])

    @torch.inference_mode()
    def denoise(hu: np.ndarray) -> np.ndarray:
        a = np.asarray(hu, dtype=np.float32)
        stack = a[None] if a.ndim == 2 else a
        out = np.empty_like(stack)
        for i, s in enumerate(stack):
            y = model(torch.from_numpy(hu_to_net(s, (lo, hi)))[None, None])[0, 0].numpy()
            out[i] = net_to_hu(y, (lo, hi))
            outside = (s < lo) | (s > hi)
            out[i][outside] = s[outside]
        return out[0] if a.ndim == 2 else out

    return denoise


# --------------------------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", required=True, type=Path, help="CT training cache .npz (build_ct_training_cache)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint to write (.pt)")
    parser.add_argument("--iterations", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--channels", type=int, default=96, help="feature maps per layer (paper: 96)")
    parser.add_argument("--patch-size", type=int, default=64, help="as LIR's training patches (RED-CNN paper: 55)")
    parser.add_argument("--patches", type=int, default=8192, help="patches drawn once from the paired slices")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--uniform-slices",
        action="store_true",
        help="draw patches from every slice equally often (default: in proportion to slice area, like LIR's CT bundle)",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-minutes", type=float, default=None, help="wall-time budget: stop after the first iteration past it")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    noisy, clean, _ = load_paired_training_slices(args.cache)
    print(f"{len(noisy)} paired training slices from {args.cache}", flush=True)
    pn, pc = extract_paired_patches(
        noisy, clean, args.patch_size, args.patches, seed=args.seed, area_weighted=not args.uniform_slices
    )
    manifest = json.loads(args.cache.with_suffix(".json").read_text(encoding="utf-8"))
    description = (
        f"{len(noisy)} simulated low-dose training slices of {args.cache.name} (sha256 {str(manifest.get('cache_sha256'))[:12]}, "
        f"dose fractions {manifest.get('dose_fraction')}) paired with their normal-dose originals; "
        f"{args.patches} patches {args.patch_size}x{args.patch_size}"
        f"{', slices drawn uniformly' if args.uniform_slices else ', slices drawn in proportion to their area'}"
    )
    result = train_redcnn(
        pn, pc, args.iterations, args.batch, args.lr, args.seed, channels=args.channels, out=args.out,
        training_data=description, log_every=max(1, args.iterations // 20), progress=lambda m: print(m, flush=True),
        max_minutes=args.max_minutes,
    )
    print(f"wrote {result.checkpoint} after {len(result.losses)} iterations in {result.seconds:.0f} s; "
          f"MSE first 10 {np.mean(result.losses[:10]):.3e}, last 10 {np.mean(result.losses[-10:]):.3e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
