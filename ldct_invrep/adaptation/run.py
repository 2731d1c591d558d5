"""The run of an adaptation: the trainer on the adaptation data, and :class:`Adaptation` (budget, progress,
resumable state, averaged snapshots, the check and the output file)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ldct_invrep.adaptation.check import DEFAULT_MAX_DRIFT_HU, DEFAULT_MAX_NOISE_RATIO, CheckResult, run_check
from ldct_invrep.adaptation.data import PATCH_SIZE, AdaptData
from ldct_invrep.errors import InputError

#: Epochs of an adaptation trainer: unbounded in effect, the budget stops it.
UNBOUNDED_EPOCHS = 10**9
#: Settings of a run that a resumed run must keep (its data draws and epochs depend on them).
RUN_SETTINGS = ("seed", "batch_size", "checkpoint_every")


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
