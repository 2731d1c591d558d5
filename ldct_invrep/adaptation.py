"""Adapting a trained LIR model to a user's own scanner from their unpaired low-dose scans (``ldct-invrep adapt``).

LIR needs no pairs (paper section 3): its noisy domain X is just "scans like these". Adaptation continues the
unpaired training of eq. 14 (all five networks, the three discriminators, every loss term, the optimisers
and LR schedules where the training state left them) with the user's low-dose slices, as acquired, as X
and normal-dose slices (the package's sample series plus any the user adds) as the clean domain Y. The
training is the engine's :class:`~ldct_invrep.engine.LIRTrainer` on an
:class:`~ldct_invrep.data.UnpairedPatchDataset`; this module adds the data preparation (held-out slices),
the run control (budget, progress, a resumable state next to the output, averaged snapshots) and the guard
rail: a no-reference check on the held-out slices before and after (:mod:`ldct_invrep.image_quality`), and no
model is written whose soft-tissue mean HU drifts from the input by more than ``max_drift_hu``, or that leaves
more flat-tissue noise than the starting model by more than ``max_noise_ratio``.

The command (``ldct_invrep.cli.adapt``), the bundle config (``bundles/ldct_simulated/configs/adapt.json``)
and ``benchmarks/adapt_eval.py`` all go through :class:`Adaptation`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ldct_invrep.errors import InputError
from ldct_invrep.image_quality import QualityFigures, SliceMasks, quality_figures, slice_masks

__all__ = [
    "DEFAULT_MAX_DRIFT_HU",
    "DEFAULT_MAX_NOISE_RATIO",
    "DEFAULT_MAX_SLICES",
    "Adaptation",
    "AdaptData",
    "CheckResult",
    "SeriesSlices",
    "build_trainer",
    "default_holdout",
    "normal_dose_slices",
    "prepare_data",
    "read_series_slices",
    "resumed_settings",
]

#: Largest soft-tissue mean HU drift (held-out slices, adapted output minus input) of a model adapt writes.
DEFAULT_MAX_DRIFT_HU = 5.0
#: Largest ratio of the adapted model's flat-tissue noise to the starting model's (held-out slices) adapt writes:
#: an adapted model that leaves more noise in the user's own slices than the one it started from did not learn
#: to remove their noise (freezing the clean side while adapting on 2 real slices left 39 HU where it began at 11).
DEFAULT_MAX_NOISE_RATIO = 1.25
#: Slices read from all low-dose inputs together (evenly spaced within each series): bounds memory.
DEFAULT_MAX_SLICES = 200
#: Patch size of the unpaired training (paper section 4.1).
PATCH_SIZE = 64
#: At most this many slices are held out for the check.
MAX_HELD_OUT = 8
#: Epochs of an adaptation trainer: unbounded in effect, the budget stops it.
UNBOUNDED_EPOCHS = 10**9
#: Settings of a run that a resumed run must keep (its data draws and epochs depend on them).
RUN_SETTINGS = ("seed", "batch_size", "checkpoint_every")


# --------------------------------------------------------------------------------------------- data
@dataclass
class SeriesSlices:
    """Slices of one input series in HU and how a model header names it: its SeriesInstanceUID, else a hash
    of the slices read (never a path, patient name or ID)."""

    hu: np.ndarray  # (n, H, W) float32 HU
    pixel_spacing_mm: float
    series_uid: str = ""
    label: str = ""  # a name of the caller's (e.g. "package sample series"); recorded when given

    def identity(self) -> dict[str, Any]:
        out: dict[str, Any] = {"series_uid": self.series_uid} if self.series_uid else {
            "sha256": hashlib.sha256(np.ascontiguousarray(self.hu, dtype=np.float32).tobytes()).hexdigest()[:16]
        }
        if self.label:
            out["label"] = self.label
        out["slices"] = len(self.hu)
        return out


def _evenly_spaced(n: int, count: int) -> list[int]:
    """``count`` indices of ``range(n)`` spread evenly (all of them when ``count >= n``)."""
    if count >= n:
        return list(range(n))
    return sorted({int((k + 0.5) * n / count) for k in range(count)})


def read_series_slices(
    paths: Sequence[str | os.PathLike[str]], *, recursive: bool = False, max_slices: int | None = DEFAULT_MAX_SLICES
) -> list[SeriesSlices]:
    """Every CT series in ``paths`` (DICOM folders or files, all series of a folder; NIfTI files) as HU slices,
    at most ``max_slices`` in all (shared out by series length, evenly spaced within each series).

    Bad input (no DICOM images, a non-CT modality, unreadable files) is an ``InputError`` naming the file.
    """
    from ldct_invrep.io import read_nifti, scan_all_series

    opened: list[tuple[Any, int]] = []  # (SeriesInfo or NiftiVolume, slices)
    for path in paths:
        path = Path(path)
        if str(path).lower().endswith((".nii", ".nii.gz")) and path.is_file():
            vol = read_nifti(path)
            opened.append((vol, vol.hu.shape[0]))
        else:
            opened += [(info, len(info)) for info in scan_all_series(path, recursive=recursive)]
    total = sum(n for _, n in opened)
    out = []
    for source, n in opened:
        count = n if max_slices is None or total <= max_slices else max(1, int(max_slices * n / total))
        idx = _evenly_spaced(n, count)
        if hasattr(source, "read_hu"):
            hu, uid = source.read_hu(idx), source.series_uid
        else:
            hu, uid = source.hu[idx], ""
        out.append(SeriesSlices(np.asarray(hu, dtype=np.float32), float(np.mean(source.spacing[1:])), uid))
    return out


def normal_dose_slices(paths: Sequence[str | os.PathLike[str]] = (), *, recursive: bool = False) -> list[SeriesSlices]:
    """The clean domain: the package's sample series (normal dose, 20 slices) and every series in ``paths``."""
    from ldct_invrep.package_files import sample_series_path

    sample = read_series_slices([sample_series_path()])
    for series in sample:
        series.label = "package sample series"
    return sample + read_series_slices(paths, recursive=recursive, max_slices=None)


def default_holdout(n: int) -> int:
    """Slices held out of ``n`` by default: 10 %, at least 1, at most ``MAX_HELD_OUT``."""
    return max(1, min(MAX_HELD_OUT, round(0.1 * n)))


@dataclass
class AdaptData:
    """The two domains of an adaptation, in network range, and the held-out low-dose slices (HU) with their masks."""

    train_noisy: list[np.ndarray]
    clean: list[np.ndarray]
    held_out_hu: list[np.ndarray]
    held_out_masks: list[SliceMasks]
    record: dict[str, Any] = field(default_factory=dict)


def _choose_held_out(slices: list[tuple[np.ndarray, float]], count: int) -> tuple[list[int], list[SliceMasks]]:
    """``count`` slices spread over the input, each the one nearest its even position that has enough flat
    soft tissue for the check (masks are computed only for the slices looked at)."""
    n = len(slices)
    chosen: list[int] = []
    masks: list[SliceMasks] = []
    looked: dict[int, SliceMasks] = {}
    for target in _evenly_spaced(n, count):
        for offset in range(n):
            hits = [i for i in (target - offset, target + offset) if 0 <= i < n and i not in chosen]
            found = None
            for i in hits:
                if i not in looked:
                    looked[i] = slice_masks(*slices[i])
                if looked[i].usable:
                    found = i
                    break
            if found is not None:
                chosen.append(found)
                masks.append(looked[found])
                break
    return chosen, masks


def prepare_data(
    low_dose: Sequence[SeriesSlices],
    normal_dose: Sequence[SeriesSlices],
    holdout: int | None = None,
    source: str = "low-dose input",
) -> AdaptData:
    """Split the low-dose slices into training slices and ``holdout`` held-out slices (default
    :func:`default_holdout`) that have flat soft tissue for the check; convert both domains to network range.

    ``source`` names the input in error messages (one line, an ``InputError``): no slices, slices smaller
    than the 64-pixel patch, too few slices to hold some out, no slice with flat soft tissue.
    """
    from ldct_invrep.transforms.windowing import hu_to_net

    slices = [(s.hu[k], s.pixel_spacing_mm) for s in low_dose for k in range(len(s.hu))]
    n = len(slices)
    if n == 0:
        raise InputError(f"{source}: no slices to adapt on")
    for series in list(low_dose) + list(normal_dose):
        if min(series.hu.shape[-2:]) < PATCH_SIZE:
            rows, cols = series.hu.shape[-2:]
            raise InputError(f"{source}: slices of {rows}x{cols} are smaller than the {PATCH_SIZE}-pixel patch")
    count = default_holdout(n) if holdout is None else int(holdout)
    if count < 1 or n - count < 1:
        raise InputError(
            f"{source}: {n} slice{'s' if n != 1 else ''}; adapt holds out {max(count, 1)} for its check and needs "
            "at least one more to train on"
        )
    held, masks = _choose_held_out(slices, count)
    if len(held) < count:
        raise InputError(
            f"{source}: {'no' if not held else f'only {len(held)}'} slice(s) with enough flat soft tissue for the "
            f"no-reference check ({count} needed); add abdominal or chest slices, or hold out fewer"
        )
    train = [hu_to_net(slices[i][0]) for i in range(n) if i not in held]
    clean = [hu_to_net(s.hu[k]) for s in normal_dose for k in range(len(s.hu))]
    if not clean:
        raise InputError(f"{source}: no normal-dose slices for the clean domain")
    record = {
        "low_dose_series": [s.identity() for s in low_dose],
        "normal_dose_series": [s.identity() for s in normal_dose],
        "training_slices": len(train),
        "held_out_slices": sorted(held),
    }
    return AdaptData(train, clean, [slices[i][0] for i in held], masks, record)


# --------------------------------------------------------------------------------------------- check
@dataclass
class CheckResult:
    """The no-reference check on the held-out slices: figures of the input, the model before and after."""

    input: QualityFigures
    before: QualityFigures
    after: QualityFigures
    max_drift_hu: float
    slices: int
    max_noise_ratio: float = DEFAULT_MAX_NOISE_RATIO

    @property
    def drift_before(self) -> float:
        return self.before.soft_tissue_hu - self.input.soft_tissue_hu

    @property
    def drift_after(self) -> float:
        return self.after.soft_tissue_hu - self.input.soft_tissue_hu

    @property
    def noise_ratio(self) -> float:
        """Flat-tissue noise after over before (both on the held-out slices)."""
        return self.after.noise_hu / self.before.noise_hu if self.before.noise_hu > 0 else float("inf")

    @property
    def refusal(self) -> str:
        """Why the adapted model must not be written ("" when it may): soft-tissue drift past ``max_drift_hu``, or
        more flat-tissue noise than the starting model left, by more than ``max_noise_ratio``."""
        if not abs(self.drift_after) <= self.max_drift_hu:
            return (f"the adapted model moves the soft-tissue mean by {self.drift_after:+.1f} HU on the held-out slices "
                    f"(tolerance {self.max_drift_hu:g} HU, --max-drift-hu)")
        if not self.noise_ratio <= self.max_noise_ratio:
            return (f"the adapted model leaves {self.after.noise_hu:.1f} HU of noise in flat soft tissue of the held-out "
                    f"slices where the model it started from left {self.before.noise_hu:.1f} HU (x{self.noise_ratio:.2f}; "
                    f"tolerance x{self.max_noise_ratio:g}, --max-noise-ratio)")
        return ""

    @property
    def accepted(self) -> bool:
        return not self.refusal

    def table(self) -> str:
        rows = [
            ("", "input", "before", "after"),
            ("noise std, flat soft tissue (HU)", *(f"{f.noise_hu:.1f}" for f in (self.input, self.before, self.after))),
            ("edge sharpness (HU/mm)", *(f"{f.edge_hu_per_mm:.1f}" for f in (self.input, self.before, self.after))),
            ("soft-tissue mean (HU)", *(f"{f.soft_tissue_hu:.1f}" for f in (self.input, self.before, self.after))),
            ("drift from input (HU)", "", f"{self.drift_before:+.1f}", f"{self.drift_after:+.1f}"),
        ]
        width = max(len(r[0]) for r in rows)
        plural = "s" if self.slices != 1 else ""
        lines = [f"no-reference check on {self.slices} held-out slice{plural} of the low-dose input"]
        lines += [f"{r[0]:<{width}}  " + "  ".join(f"{c:>8}" for c in r[1:]) for r in rows]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "held_out_slices": self.slices,
            "input": self.input.to_dict(), "before": self.before.to_dict(), "after": self.after.to_dict(),
            "drift_before_hu": round(self.drift_before, 3), "drift_after_hu": round(self.drift_after, 3),
            "max_drift_hu": self.max_drift_hu,
            "noise_ratio": round(self.noise_ratio, 3), "max_noise_ratio": self.max_noise_ratio,
        }  # fmt: skip


def run_check(
    before: Any, after: Any, header: dict[str, Any], data: AdaptData, max_drift_hu: float,
    max_noise_ratio: float = DEFAULT_MAX_NOISE_RATIO,
) -> CheckResult:
    """Denoise the held-out slices with the Restorers ``before`` and ``after`` (run as ``header`` says: HU range,
    self-ensemble) and measure input, before and after on the input's masks."""
    from ldct_invrep.inference import SliceDenoiser

    figures = [quality_figures(data.held_out_hu, data.held_out_masks)]
    for restorer in (before, after):
        denoiser = SliceDenoiser.from_header(restorer, header, batch_size=1)
        figures.append(quality_figures([denoiser.denoise(s) for s in data.held_out_hu], data.held_out_masks))
    return CheckResult(*figures, max_drift_hu=float(max_drift_hu), slices=len(data.held_out_hu),
                       max_noise_ratio=float(max_noise_ratio))


# --------------------------------------------------------------------------------------------- the run
def build_trainer(
    base: Any, data: AdaptData, *, batch_size: int = 16, seed: int = 0, checkpoint_every: int = 20, device: Any = "cpu"
) -> Any:
    """An :class:`~ldct_invrep.engine.LIRTrainer` for ``base``'s networks and loss (built from its header),
    Adam optimisers and schedulers of the kind it holds, on random 64x64 patch pairs (flips and transposes,
    area-weighted draws, as the default model's recipe) of ``data``; one epoch = ``checkpoint_every``
    iterations. The weights and optimiser states are loaded by :class:`Adaptation`."""
    from torch.utils.data import DataLoader

    from ldct_invrep.data import UnpairedPatchDataset
    from ldct_invrep.engine import LIRTrainer, make_optimizers

    network, discriminators, objective = (m.to(device) for m in base.build())
    g_optimizer, d_optimizer = make_optimizers(network, discriminators)
    g_scheduler, d_scheduler = base.make_schedulers(g_optimizer, d_optimizer)
    dataset = UnpairedPatchDataset(
        data.train_noisy, data.clean, patch_size=PATCH_SIZE, samples_per_epoch=checkpoint_every * batch_size,
        seed=seed, area_weighted=True, transposes=True,
    )  # fmt: skip
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=True, num_workers=0)
    return LIRTrainer(
        device, UNBOUNDED_EPOCHS, loader, network, discriminators, objective, g_optimizer, d_optimizer,
        epoch_length=checkpoint_every, g_scheduler=g_scheduler, d_scheduler=d_scheduler,
    )  # fmt: skip


def resumed_settings(out: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``RUN_SETTINGS`` and the budget (``{"iterations": n}`` or ``{"minutes": m}``) recorded in the state
    of an earlier adaptation to ``out``."""
    from ldct_invrep.engine.training_state import read_training_state, state_path_for

    path = state_path_for(out)
    if not path.is_file():
        raise InputError(f"{path}: no adaptation state to resume (run without --resume first)")
    job = read_training_state(path).header.get("adapt", {})
    missing = [k for k in (*RUN_SETTINGS, "budget") if k not in job]
    if missing:
        raise InputError(f"{path}: not the state of an adaptation (no {', '.join(missing)})")
    return {k: job[k] for k in RUN_SETTINGS}, dict(job["budget"])


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


#: Keys of a state header that describe that file rather than the training it carries.
_FILE_KEYS = ("format_version", "package_version", "adapt", "adapted")


class Adaptation:
    """One adaptation run around a built ``LIRTrainer`` (network, discriminators, optimisers and schedulers as
    built from ``base``; data loader over ``data``; epoch length = how often the state is written).

    On construction it loads ``base``'s players, optimisers and schedulers into the trainer, or with ``resume``
    everything (iteration, RNG, elapsed time, snapshots) from the state of an earlier run with the same inputs
    and settings next to ``out`` (``<out stem>_state.pt``; the model that run wrote to ``out`` may be replaced),
    and attaches the run control: the budget (``iterations`` or ``minutes`` in total, over resumes), a progress
    bar, snapshot averaging over the budget's second half and the state writer. :meth:`run` trains;
    :meth:`finish` runs the held-out check and writes ``out`` unless the soft-tissue drift exceeds
    ``max_drift_hu`` or its noise rises past ``max_noise_ratio`` (then ``InputError``; the state stays, so ``--resume`` with a longer budget or another
    tolerance goes on from it).
    """

    def __init__(
        self,
        trainer: Any,
        base: Any,
        data: AdaptData,
        out: str | os.PathLike[str],
        *,
        iterations: int | None = None,
        minutes: float | None = None,
        max_drift_hu: float = DEFAULT_MAX_DRIFT_HU,
        max_noise_ratio: float = DEFAULT_MAX_NOISE_RATIO,
        resume: bool = False,
        overwrite: bool = False,
        quiet: bool = False,
    ) -> None:
        import ignite.distributed as idist

        from ldct_invrep.engine.handlers import checkpoint_dict
        from ldct_invrep.io.atomic import check_replaceable
        from ldct_invrep.engine.run_control import (
            BudgetProgressBar,
            SnapshotAverage,
            TrainingBudget,
            TrainingStateWriter,
        )
        from ldct_invrep.engine.training_state import MODEL_KEYS, REQUIRED_KEYS, read_training_state, state_path_for

        self.trainer, self.base, self.data = trainer, base, data
        self.out = Path(out)
        self.state_path = state_path_for(self.out)
        self.max_drift_hu = float(max_drift_hu)
        self.max_noise_ratio = float(max_noise_ratio)
        self.main = idist.get_rank() == 0
        trainer_state = base.entries.get("trainer") or {}
        self.job = {
            "from": base.path.name,
            "from_sha256": _sha256_file(base.path),
            "from_iteration": int(trainer_state.get("iteration", base.header.get("iterations") or 0)),
            **data.record,
            "budget": {"iterations": iterations} if iterations is not None else {"minutes": minutes},
            **self.run_settings(trainer),
        }
        if base.path.resolve() in (self.out.resolve(), self.state_path.resolve()):
            raise InputError(f"{base.path}: the training state to start from would be overwritten; choose another --out")
        earlier = None
        if resume:
            if not self.state_path.is_file():
                raise InputError(f"{self.state_path}: no adaptation state to resume (run without --resume first)")
            earlier = read_training_state(self.state_path)
            self._check_same_job(earlier.header.get("adapt", {}))
        elif self.state_path.exists():
            if not overwrite:
                raise InputError(
                    f"{self.state_path}: the state of an earlier adaptation; pass --resume to continue it or "
                    "--overwrite to start over"
                )
            check_replaceable(self.state_path)
        if self.out.exists() and not (resume and self._wrote_out()):
            if not overwrite:
                raise InputError(f"{self.out}: output already exists; pass --overwrite to replace it")
            check_replaceable(self.out)
        self.budget = TrainingBudget(iterations=iterations, minutes=minutes)
        every = int(trainer.state.epoch_length)
        self.snapshots = SnapshotAverage(trainer.network, self.budget, every)
        self.objects = {**checkpoint_dict(trainer), "budget": self.budget, "snapshots": self.snapshots}
        if earlier is not None:
            earlier.load(self.objects)
        else:
            keys = [k for k in MODEL_KEYS if k in self.objects and (k in REQUIRED_KEYS or k in base.entries)]
            base.load({k: self.objects[k] for k in keys})
        self.budget.attach(trainer)
        BudgetProgressBar(self.budget, disable=quiet or not self.main).attach(trainer)
        self.snapshots.attach(trainer)
        TrainingStateWriter(self.state_path, self.objects, self.state_header, every).attach(trainer)

    @staticmethod
    def run_settings(trainer: Any) -> dict[str, Any]:
        """The trainer's ``RUN_SETTINGS``: patch-draw seed, batch size (per process) and epoch length."""
        loader = trainer.data_loader
        return {
            "seed": int(loader.dataset.seed), "batch_size": int(loader.batch_size),
            "checkpoint_every": int(trainer.state.epoch_length),
        }  # fmt: skip

    def _check_same_job(self, earlier: dict[str, Any]) -> None:
        checks = [("from_sha256", "--from training state"), ("low_dose_series", "low-dose series"),
                  ("normal_dose_series", "normal-dose series"), ("held_out_slices", "held-out slices")]  # fmt: skip
        checks += [(k, k.replace("_", " ")) for k in RUN_SETTINGS]
        for key, what in checks:
            if earlier.get(key) != self.job.get(key):
                raise InputError(
                    f"{self.state_path}: that adaptation ran with other {what}; give the same inputs to resume it, "
                    "or --overwrite to start over"
                )

    def _wrote_out(self) -> bool:
        """Whether ``out`` is the model an earlier run of this adaptation wrote (which a resumed run replaces)."""
        from ldct_invrep.io.checkpoint import read_header

        try:
            adapted = read_header(self.out).get("adapted", {})
        except InputError:
            return False
        return all(adapted.get(k) == self.job[k] for k in ("from_sha256", "low_dose_series", "normal_dose_series"))

    @property
    def iterations(self) -> int:
        return int(self.trainer.state.iteration)

    def state_header(self) -> dict[str, Any]:
        """Header of the adaptation's own training state: the base's training description and this job."""
        carried = {k: v for k, v in self.base.header.items() if k not in _FILE_KEYS}
        seconds = round(self.budget.seconds_run(), 2)
        return {**carried, "adapt": {**self.job, "iterations": self.iterations, "seconds": seconds}}

    def run(self) -> None:
        """Train until the budget is used (nothing to do when a resumed run had already used it)."""
        if not self.budget.done(self.iterations):
            self.trainer.run()

    def adapted_network(self) -> Any:
        """The averaged snapshots, or the live network before the first snapshot."""
        from ldct_invrep.engine import unwrap

        averaged = self.snapshots.averaged()
        return averaged if averaged is not None else unwrap(self.trainer.network)

    def finish(self, report: Callable[[str], None] = print) -> CheckResult | None:
        """Held-out check (reported through ``report``) and, within the drift tolerance, the output file.
        Returns the check (None on other ranks than the main one, which write nothing)."""
        import copy

        from ldct_invrep.io.checkpoint import save_restorer

        if not self.main:
            return None
        network = copy.deepcopy(self.adapted_network()).cpu().eval()
        result = run_check(self.base.restorer(), network.restorer(), self.base.header, self.data, self.max_drift_hu,
                           self.max_noise_ratio)
        report(result.table())
        if not result.accepted:
            raise InputError(
                f"{self.out}: not written: {result.refusal}; its training state is kept in {self.state_path.name} "
                "(--resume with a longer budget or another tolerance)"
            )
        save_restorer(self.out, network, self.output_header(result))
        return result

    def output_header(self, result: CheckResult) -> dict[str, Any]:
        """The adapted model's header: the base model's (preset, HU range, self-ensemble, ...) and ``adapted``:
        inputs (series UIDs or hashes), starting weights, iterations, training seconds, snapshots, the check."""
        carried = {k: v for k, v in self.base.header.items() if k not in (*_FILE_KEYS, "config")}
        n_series = len(self.job["low_dose_series"])
        adapted = {
            **{k: v for k, v in self.job.items() if k != "held_out_slices"},
            "held_out_slices": len(self.job["held_out_slices"]),
            "iterations": self.iterations,
            "seconds": round(self.budget.seconds_run(), 2),
            "averaged_snapshots": self.snapshots.count,
            "check": result.to_dict(),
        }
        base_data = carried.get("training_data") or carried.get("data") or "see 'adapted.from'"
        carried["training_data"] = (
            f"{base_data}; then adapted (ldct-invrep adapt, {self.iterations} iterations) with "
            f"{adapted['training_slices']} low-dose slices of {n_series} series as the noisy domain"
        )
        return {**carried, "adapted": adapted}
