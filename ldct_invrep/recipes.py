"""Pieces the MONAI bundles in ``bundles/`` call from their configs (``$ldct_invrep.recipes.<name>(...)``).

The bundles hold no code of their own (model-zoo rule: custom code is imported, not copied). What a
config cannot say in one expression lives here: the unpaired natural-image sets of paper section 4.2, the
seeded noisy test sets, the metric views (HU window / 8-bit natural images) given to ``monai.handlers``,
the CT training cache and Mayo datalist preparation (built once, on one rank under DDP), the export of a
trained Restorer, and the inference datalists and summary line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.handlers import from_engine
from torch import Tensor, nn

from ldct_invrep.data.natural import IMAGE_SUFFIXES
from ldct_invrep.errors import InputError
from ldct_invrep.inference import reference_noise_level, self_ensemble_size  # the bundles' configs name them here

__all__ = [
    "bundle_checkpoint",
    "checkpoint_header",
    "ensure_ct_cache",
    "ensure_mayo_datalist",
    "export_averaged_restorer",
    "export_best_restorer",
    "export_restorer",
    "image_datalist",
    "lir_config",
    "load_restorer_weights",
    "natural_output",
    "natural_test_items",
    "natural_unpaired_images",
    "paired_dicom_dataset",
    "print_inference_summary",
    "reference_noise_level",
    "restorer_config",
    "self_ensemble_size",
    "series_datalist",
    "summarize_metrics",
    "validation_image_grid",
    "validation_indices",
    "windowed_output",
]

NOISES = ("awgn", "poisson")


# --------------------------------------------------------------------------------------------- networks
def lir_config(preset: str = "lite", **overrides: Any):
    """``networks.get_config(preset, **overrides)`` with ``None`` overrides dropped (a config key left null
    keeps the preset's value, so ``--base_channels 8`` on the command line changes only that field)."""
    from ldct_invrep.networks import get_config

    return get_config(preset, **{k: v for k, v in overrides.items() if v is not None})


# --------------------------------------------------------------------------------------------- natural images
def _noise_transform(noise: str, sigma_range: Sequence[float], seed: int):
    from ldct_invrep.transforms.noise import RandBlindGaussianNoised, RandPoissonNoised

    if noise == "awgn":
        t = RandBlindGaussianNoised(keys="image", sigma_range=sigma_range, scale=255.0, clip=True)
    elif noise == "poisson":
        t = RandPoissonNoised(keys="image", clip=True)
    else:
        raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")
    return t.set_random_state(seed=int(seed))


def _image_paths(folder: str | os.PathLike, suffixes: Sequence[str]) -> list[Path]:
    from ldct_invrep.data.natural import list_images

    suffixes = tuple(s.lower() for s in suffixes)
    paths = [p for p in list_images(folder) if p.suffix.lower() in suffixes]
    if not paths:
        raise InputError(f"{folder}: no {'/'.join(suffixes)} images found")
    return paths


def natural_unpaired_images(
    folder: str | os.PathLike,
    noise: str = "awgn",
    seed: int = 0,
    sigma_range: Sequence[float] = (5.0, 50.0),
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
    quantize: bool = True,
    channels: int = 3,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The unpaired training domains of paper section 4.2, in network range: ``(noisy X, clean Y)``, each a
    list of ``channels x H x W`` arrays (3: colour, 1: grey; ``data.natural.load_image_8bit``).

    The images of ``folder`` are split into two disjoint halves (``data.split_unpaired``); each image of the
    first half is corrupted once, with its own draw (AWGN with sigma uniform in ``sigma_range`` on the 0-255
    scale, or scikit-image's Poisson noise on the 8-bit values), seeded by ``seed``; the second half stays
    clean. ``quantize`` rounds the corrupted images to 8-bit levels, as the official code saved them as PNGs.
    """
    from ldct_invrep.data import load_image_8bit, split_unpaired
    from ldct_invrep.data.natural import quantize8, to_net

    x_paths, y_paths = split_unpaired(_image_paths(folder, suffixes), seed=seed)
    corrupt = _noise_transform(noise, sigma_range, seed)
    noisy = []
    for p in x_paths:
        img = corrupt({"image": load_image_8bit(p, channels)})["image"]
        noisy.append(to_net(quantize8(img) if quantize else np.clip(img, 0.0, 1.0)))
    clean = [to_net(load_image_8bit(p, channels)) for p in y_paths]
    return noisy, clean


def natural_test_items(
    folder: str | os.PathLike,
    noise: str = "awgn",
    sigma: float | None = 25.0,
    seed: int = 0,
    quantize: bool = True,
    channels: int = 3,
    max_images: int | None = None,
) -> list[dict[str, Any]]:
    """Seeded noisy/clean test pairs ``{"noisy": CxHxW, "clean": CxHxW, "name": file}`` in network range for
    the bundles' validation and evaluation: ``data.noisy_sets.noisy_test_set`` (the generator
    ``docs/results.md`` uses too) of the first ``max_images`` images of ``folder``, mapped with ``to_net``.

    ``noise="awgn"`` adds white Gaussian noise of a fixed ``sigma`` (0-255 scale; BSD68 at 25, 35, 50,
    paper Table 1); ``"poisson"`` scikit-image's Poisson noise on the 8-bit values (Kodak, Table 2).
    ``channels``: 3 colour, 1 grey. Same seed, same noisy images.
    """
    from ldct_invrep.data.natural import to_net
    from ldct_invrep.data.noisy_sets import noisy_test_set

    test_set = noisy_test_set(folder, noise, sigma, seed, channels=channels, quantize=quantize, max_images=max_images)
    return [
        {"noisy": torch.from_numpy(to_net(t.noisy)), "clean": torch.from_numpy(to_net(t.clean)), "name": t.name}
        for t in test_set
    ]


def natural_output(quantize: bool = True) -> Callable[[Any], tuple[Tensor, Tensor]]:
    """``output_transform`` for ``monai.handlers`` metrics on natural images: engine output (``pred``,
    ``label`` in network range) -> (prediction, reference) in [0, 1] (``data.natural.from_net``: prediction
    clipped and, with ``quantize``, rounded to 8-bit levels; the paper evaluates saved 8-bit images). PSNR
    with ``max_val=1`` then equals PSNR on [0, 255] with peak 255; SSIM uses ``data_range=1``."""
    from ldct_invrep.data.natural import from_net

    get = from_engine(["pred", "label"])

    def transform(output: Any) -> tuple[Tensor, Tensor]:
        pred, label = get(output)
        return from_net(pred, quantize), from_net(label, quantize=False)

    return transform


def windowed_output(window: str | Sequence[float] = "abdomen") -> Callable[[Any], tuple[Tensor, Tensor]]:
    """``output_transform`` for ``monai.handlers`` metrics on CT: engine output (``pred``, ``label`` in network
    range) -> both in HU clipped to ``window`` (``"abdomen"`` [-160, 240], ``"full"`` [-1024, 3072], any
    ``transforms.windowing.WINDOWS`` name or a (lo, hi) pair). Use the window width as data range
    (``PSNR(max_val=hi - lo)``, ``SSIMMetric(data_range=hi - lo)``): ``ldct_invrep.metrics``'s convention."""
    from ldct_invrep.engine.handlers import windowed_hu_output

    return windowed_hu_output(window)


# --------------------------------------------------------------------------------------------- CT data
def _is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _on_main_rank(build: Callable[[], Any]) -> None:
    """Run ``build`` on rank 0 only (all ranks wait for it) under torch.distributed, else just run it."""
    if not _is_distributed():
        build()
        return
    error = None
    if torch.distributed.get_rank() == 0:
        try:
            build()
        except Exception as exc:  # noqa: BLE001 - re-raised after the barrier so no rank hangs
            error = exc
    torch.distributed.barrier()
    if error is not None:
        raise error


def _cache_matches(cache: Path, sources: Sequence[str], options: dict[str, Any]) -> bool:
    """Whether the cache ``cache`` was built from ``sources`` with the manifest fields ``options``."""
    manifest = cache.with_suffix(".json")
    if not (cache.is_file() and manifest.is_file()):
        return False
    try:
        m = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    built_from = {os.path.realpath(str(s["source"])) for s in m.get("sources", [])}
    return built_from == {os.path.realpath(str(s)) for s in sources} and all(
        json.dumps(m.get(k)) == json.dumps(v) for k, v in options.items()
    )


def _every(seconds: float) -> Callable[[str], None]:
    """A progress callback printing at most one message every ``seconds`` (the first at once)."""
    last = [-float("inf")]

    def say(message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= seconds:
            print(message, flush=True)
            last[0] = now

    return say


def ensure_ct_cache(
    sources: Sequence[str | os.PathLike],
    cache_file: str | os.PathLike,
    dose_fraction: float | Sequence[float] = 0.25,
    seed: int = 0,
    hold_out: float = 0.1,
    rebuild: bool = False,
    simulator_kwargs: dict[str, Any] | None = None,
    resample_spacings_mm: Sequence[float] = (),
    noisy_copies: int = 1,
    unpaired_split: bool = True,
    test_sources: Sequence[str | os.PathLike] = (),
    test_dose_fractions: Sequence[float] = (),
) -> str:
    """Path of the CT training cache ``cache_file``, built with ``data.build_ct_training_cache`` (same
    arguments) unless a cache of the same sources and options is already there (or ``rebuild``).

    The low-dose simulation takes seconds a slice, so it runs once; under torch.distributed only rank 0
    builds and the other ranks wait. Sources are compared as resolved paths (relative to the working folder).
    Sources that are missing raise ``InputError`` naming them.
    """
    from ldct_invrep.data import build_ct_training_cache

    srcs, tests = [str(s) for s in sources], [str(s) for s in test_sources]
    for s in srcs + tests:
        if not os.path.exists(s):
            raise InputError(f"{s}: CT source not found (set --dataset_dir or --ct_sources)")
    cache = Path(cache_file)
    fraction = float(dose_fraction) if np.ndim(dose_fraction) == 0 else [float(v) for v in dose_fraction]  # type: ignore[union-attr]
    options = {
        "dose_fraction": fraction,
        "seed": int(seed),
        "hold_out": float(hold_out),
        "resample_spacings_mm": [float(t) for t in resample_spacings_mm],
        "noisy_copies": int(noisy_copies),
        "unpaired_split": bool(unpaired_split),
        "test_dose_fractions": [float(f) for f in test_dose_fractions] or ([fraction] if np.ndim(fraction) == 0 else []),
    }

    def build() -> None:
        if rebuild or not _cache_matches(cache, srcs + tests, options):
            print(f"building the CT training cache {cache} (low-dose simulation, a second or two a slice)", flush=True)
            t0 = time.perf_counter()
            build_ct_training_cache(
                srcs,
                cache,
                dose_fraction=fraction,
                seed=seed,
                hold_out=hold_out,
                simulator_kwargs=simulator_kwargs,
                resample_spacings_mm=resample_spacings_mm,
                noisy_copies=noisy_copies,
                unpaired_split=unpaired_split,
                test_sources=tests,
                test_dose_fractions=test_dose_fractions,
                progress=_every(10.0),
            )
            print(f"built the CT training cache {cache} in {time.perf_counter() - t0:.0f} s", flush=True)

    _on_main_rank(build)
    return str(cache)


#: Patients of COVID-19-NY-SBU held out of the default model's training, for its simulated validation
#: (GE 2.5 and 1.25 mm; Toshiba 3 and 1 mm; GE 5 mm twice): split by patient, thicknesses 1-5 mm, 2 vendors.
HELD_OUT_PATIENTS = ("A056642", "A067967", "A048383")


def open_ct_sources(dataset_dir: str | os.PathLike, held_out: Sequence[str] = HELD_OUT_PATIENTS) -> dict[str, list[str]]:
    """The openly licensed normal-dose CT the default model trains on, split by patient.

    ``dataset_dir`` holds ``ct_nifti/example_ct.nii.gz`` (TotalSegmentator, Apache-2.0),
    ``ct_more/covid19_nysbu_chest_axial/*.dcm`` (TCIA COVID-19-NY-SBU, CC BY 4.0; file names start with the
    patient) and ``ct_more/dcmqi_liver_ct_3slice`` (dcmqi test data, BSD-3); the TotalSegmentator series
    shipped in the package is always a training source. Returns ``{"train": [...], "test": [...]}``: the files
    of the ``held_out`` patients go to "test". Missing parts raise ``InputError`` naming them.
    """
    from ldct_invrep.package_files import sample_series_path

    root = Path(dataset_dir)
    covid = root / "ct_more" / "covid19_nysbu_chest_axial"
    parts = [root / "ct_nifti" / "example_ct.nii.gz", covid, root / "ct_more" / "dcmqi_liver_ct_3slice"]
    for part in parts:
        if not part.exists():
            raise InputError(f"{part}: not found (the default model's training data; see docs/shipped_weights.md)")
    slices = sorted(covid.glob("*.dcm"))
    train = [str(sample_series_path()), str(parts[0]), str(parts[2])]
    train += [str(f) for f in slices if f.name.split("_")[0] not in held_out]
    test = [str(f) for f in slices if f.name.split("_")[0] in held_out]
    return {"train": train, "test": test}


def validation_indices(images: Sequence[Any], min_size: int, max_count: int | None = None) -> list[int]:
    """Indices of the held-out slices to validate on: those at least ``min_size`` pixels on each side (full-size
    slices, like those a model is used on), or all of them when none is that large; at most ``max_count``."""
    large = [i for i, im in enumerate(images) if min(np.shape(im)[-2:]) >= min_size]
    chosen = large or list(range(len(images)))
    return chosen if max_count is None else chosen[: int(max_count)]


def validation_image_grid(
    dataset: Any, network: nn.Module, log_dir: str | os.PathLike, interval: int, window: str = "abdomen", n_images: int = 2
):
    """``engine.ImageGridHandler`` for TensorBoard (``logs/``): noisy | denoised | clean rows of the first
    ``n_images`` validation items that share the first one's size, every ``interval`` iterations, shown on
    ``window`` (natural images: ``"full"``, which maps the network range [-1, 1] to [0, 1]). None without
    validation items."""
    from ldct_invrep.engine import ImageGridHandler, unwrap

    items = [dataset[i] for i in range(min(len(dataset), 4 * n_images))]
    if not items:
        return None
    same = [it for it in items if it["noisy"].shape == items[0]["noisy"].shape][:n_images]
    return ImageGridHandler(
        torch.stack([it["noisy"] for it in same]),
        torch.stack([it["clean"] for it in same]),
        lambda: unwrap(network).restorer(),
        log_dir=str(log_dir),
        interval=int(interval),
        window=window,
    )


def ensure_mayo_datalist(
    dataset_dir: str | os.PathLike | None,
    datalist: str | os.PathLike,
    split: str = "patient",
    accept_incomplete: bool = False,
    **kwargs: Any,
) -> str:
    """Path of the Mayo 2016 datalist ``datalist``; written by ``data.prepare("mayo2016", dataset_dir, datalist)``
    when it does not exist yet (on rank 0 only under torch.distributed), which prints its report. A copy whose
    report is NOT OK stops the run (``data.IncompleteDatasetError``) unless ``accept_incomplete``. ``kwargs``
    (``thickness``, ``kernel``; None: the split's) go to ``data.prepare``."""
    from ldct_invrep.data import IncompleteDatasetError, format_report, prepare

    path = Path(datalist)
    if path.is_file():
        return str(path)
    if dataset_dir is None:
        raise InputError(f"{path}: datalist not found; give --dataset_dir (the Mayo 2016 root) to write it")

    def build() -> None:
        if path.is_file():
            return
        print(f"writing the Mayo 2016 datalist {path} (split {split}) from {dataset_dir}", flush=True)
        try:
            report, written = prepare(
                "mayo2016", dataset_dir, path, split=split, require_ok=not accept_incomplete,
                **{k: v for k, v in kwargs.items() if v is not None},
            )  # fmt: skip
        except IncompleteDatasetError as exc:
            print(format_report(exc.report), flush=True)
            raise
        print(format_report(report), f"wrote datalist -> {written}", sep="\n", flush=True)

    _on_main_rank(build)
    return str(path)


def paired_dicom_dataset(entries: Iterable[dict[str, Any]], cache_size: int = 64):
    """``PairedSliceDataset`` of the paired ``{"noisy": file, "clean": file}`` entries of a datalist section
    (validation/test), each slice read lazily in network range."""
    from ldct_invrep.data import DicomSliceSequence, PairedSliceDataset

    pairs = [e for e in entries if "noisy" in e and "clean" in e]
    noisy = DicomSliceSequence([e["noisy"] for e in pairs], cache_size=cache_size)
    clean = DicomSliceSequence([e["clean"] for e in pairs], cache_size=cache_size)
    return PairedSliceDataset(noisy, clean)


# --------------------------------------------------------------------------------------------- weights
def export_restorer(network: nn.Module, ckpt_dir: str | os.PathLike, header: dict[str, Any] | None = None) -> list[str]:
    """Write the trained Restorer (E_X -> G_Y of a LIRNet, DDP-wrapped or not) to ``ckpt_dir/model.pt`` in the
    one checkpoint format (``io.checkpoint.save_restorer``: state dict + JSON header with the network config),
    which the bundles' evaluate/inference configs, ``ldct-invrep denoise --weights``, ``ldct-invrep info`` and
    MONAI's ``ckpt_export --key_in_ckpt state_dict`` all read. Returns ``[path]``."""
    from ldct_invrep.engine import unwrap
    from ldct_invrep.io.checkpoint import save_restorer

    out = Path(ckpt_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [str(save_restorer(out / "model.pt", unwrap(network), header))]


def export_best_restorer(
    network: nn.Module,
    ckpt_dir: str | os.PathLike,
    header: dict[str, Any],
    evaluator: Any,
    epoch_length: int,
    val_interval: int,
    best_file: str = "best_network.pt",
) -> list[str]:
    """:func:`export_restorer` of the network that scored best in validation.

    ``best_file`` in ``ckpt_dir`` is what MONAI's ``CheckpointSaver(save_key_metric=True)`` kept on the
    evaluator. ``evaluator.state.best_metric_epoch`` is the *trainer* epoch of that validation
    (``ValidationHandler`` passes it), so with one validation per epoch (``val_interval == epoch_length``,
    the bundles' default) the network is that of iteration ``best_metric_epoch * epoch_length``, which the
    header's ``iterations`` then says (``iterations_run``: how long training ran). Without a best file (no
    validation ran) the current network is exported as it is.
    """
    from ldct_invrep.engine import unwrap

    best = Path(ckpt_dir) / best_file
    if not best.is_file():
        return export_restorer(network, ckpt_dir, header)
    unwrap(network).load_state_dict(torch.load(best, map_location="cpu", weights_only=True))
    state = evaluator.state
    epoch = int(state.best_metric_epoch)
    header = {
        **header,
        "iterations": epoch * int(epoch_length) if int(val_interval) == int(epoch_length) else None,
        "iterations_run": header.get("iterations"),
        "best_epoch": epoch,
        "selected_by": f"best {state.key_metric_name} in validation ({float(state.best_metric):.4f})",
    }
    return export_restorer(network, ckpt_dir, header)


def export_averaged_restorer(
    network: nn.Module, ckpt_dir: str | os.PathLike, header: dict[str, Any], average_from: int
) -> list[str]:
    """:func:`export_restorer` of the mean of the training checkpoints in ``ckpt_dir`` from iteration
    ``average_from`` on (``engine.average_checkpoints``: weights and batch-norm statistics); the header's
    ``iterations`` is the last of them and ``averaged_iterations`` lists them all."""
    from ldct_invrep.engine.checkpoint import average_checkpoints, checkpoint_iterations

    found = {i: f for i, f in checkpoint_iterations(ckpt_dir).items() if i >= int(average_from)}
    if not found:
        raise InputError(
            f"{ckpt_dir}: no training checkpoint at iteration {average_from} or later to average "
            "(checkpoint_interval too long, or n_checkpoints too small?)"
        )
    average_checkpoints(network, list(found.values()))
    its = list(found)
    header = {
        **header,
        "iterations": its[-1],
        "iterations_run": header.get("iterations"),
        "averaged_iterations": its,
        "selected_by": f"mean of the weights of the {len(its)} checkpoints at iterations {its[0]}-{its[-1]}",
    }
    return export_restorer(network, ckpt_dir, header)


def load_restorer_weights(network: nn.Module, ckpt_file: str | os.PathLike, map_location: Any = "cpu") -> nn.Module:
    """Load ``ckpt_file`` (an ``io.checkpoint`` file such as ``models/model.pt``, or a plain Restorer state dict)
    into ``network`` strictly; returns it in eval mode."""
    from ldct_invrep.io.checkpoint import FORMAT

    path = Path(ckpt_file)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file (train first, or pass --ckpt_path)")
    state = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(state, dict) and state.get("format") == FORMAT:
        state = state["state_dict"]
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise InputError(f"{path}: weights do not fit the configured network (preset/base_channels?): {err}") from err
    return network.eval()


def bundle_checkpoint(bundle_root: str | os.PathLike) -> str:
    """``<bundle_root>/models/model.pt`` when it exists, else the weights shipped in the package (what
    ``ldct_simulated``'s evaluate and inference configs read: the shipped weights are that bundle's model)."""
    from ldct_invrep.package_files import default_weights_path

    own = Path(bundle_root) / "models" / "model.pt"
    return str(own if own.is_file() or not default_weights_path().is_file() else default_weights_path())


def checkpoint_header(ckpt_file: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of an ``io.checkpoint`` file, or ``{}`` for a plain state dict or a file not written yet
    (loading the weights then names it)."""
    from ldct_invrep.io.checkpoint import FORMAT, read_header

    path = Path(ckpt_file)
    if not path.is_file():
        return {}
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return read_header(path) if isinstance(payload, dict) and payload.get("format") == FORMAT else {}


def restorer_config(header: dict[str, Any], preset: str = "lite", **overrides: Any):
    """The network config of a checkpoint ``header`` (so evaluation, inference and export rebuild exactly the
    trained network), or :func:`lir_config` ``(preset, **overrides)`` when there is none (plain state dict)."""
    from ldct_invrep.networks import LIRConfig

    return LIRConfig(**header["config"]) if "config" in header else lir_config(preset, **overrides)


# --------------------------------------------------------------------------------------------- inference
def series_datalist(input_dir: str | os.PathLike | None, recursive: bool = True) -> list[dict[str, str]]:
    """The inference datalist of a folder of DICOM CT series: ``[{"image": series folder}]``, one entry per
    series found under ``input_dir`` (sub-folders too with ``recursive``), for ``LoadImaged`` with
    ``io.LIRDicomReader``. Each series must have its own folder (MONAI's convention for DICOM series); a folder
    holding several series raises ``InputError`` naming it (``ldct-invrep denoise --all-series`` takes those)."""
    from ldct_invrep.io import scan_all_series

    if input_dir is None:
        raise InputError("inference: no input folder; pass --input_dir (a folder of DICOM series)")
    if Path(input_dir).is_file():
        return [{"image": str(input_dir)}]
    folders: dict[str, list[str]] = {}
    for info in scan_all_series(input_dir, recursive=recursive):
        parents = {str(p.parent) for p in info.paths}
        if len(parents) != 1:
            raise InputError(f"{input_dir}: series {info.series_uid} is spread over {len(parents)} folders; give each series one folder")
        folders.setdefault(parents.pop(), []).append(info.series_uid)
    for folder, uids in folders.items():
        if len(uids) > 1:
            raise InputError(
                f"{folder}: {len(uids)} DICOM series in one folder; give each series its own folder "
                "(or use ldct-invrep denoise --all-series)"
            )
    return [{"image": folder} for folder in sorted(folders)]


def image_datalist(input_dir: str | os.PathLike | None, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[dict[str, str]]:
    """The inference datalist of a folder of images: ``[{"image": file}]`` (``data.natural.list_images`` order)."""
    if input_dir is None:
        raise InputError("inference: no input folder; pass --input_dir (a folder of images)")
    return [{"image": str(p)} for p in _image_paths(input_dir, suffixes)]


def print_inference_summary(
    n: int, seconds: float, self_ensemble: int, output_dir: str | os.PathLike, unit: str = "slice", n_series: int | None = None
) -> str:
    """Print (stderr) and return the bundles' inference summary line, like the CLI's: what, how fast, where."""
    of = "" if n_series is None else f" of {n_series} series"
    line = (
        f"denoised {n} {unit}{'s' if n != 1 else ''}{of} in {seconds:.1f} s "
        f"({seconds / max(n, 1):.2f} s/{unit}, self-ensemble {self_ensemble}) -> {output_dir}"
    )
    print(line, file=sys.stderr, flush=True)
    return line


# --------------------------------------------------------------------------------------------- reporting
def summarize_metrics(output_dir: str | os.PathLike, names: Sequence[str], title: str = "") -> dict[str, dict[str, float]]:
    """Collect ``<output_dir>/<name>/metrics.csv`` (``monai.handlers.MetricsSaver``, tab separated) of each
    evaluator into ``<output_dir>/summary.json`` and print one table: the metric names carry the window and
    data range (e.g. ``abdomen_psnr_dr400``: [-160, 240] HU, data range 400)."""
    out = Path(output_dir)
    summary: dict[str, dict[str, float]] = {}
    for name in names:
        path = out / name / "metrics.csv"
        if not path.is_file():
            continue
        rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        summary[name] = {k: float(v) for k, v in rows}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    metrics = sorted({k for m in summary.values() for k in m})
    width = max([len(n) for n in summary] + [8])
    lines = [title] if title else []
    lines.append(" ".join([f"{'':{width}}"] + [f"{m:>20}" for m in metrics]))
    for name, m in summary.items():
        lines.append(" ".join([f"{name:{width}}"] + [f"{m.get(k, float('nan')):>20.4f}" for k in metrics]))
    print("\n".join(lines), flush=True)
    return summary
