"""Handlers for budgeted training runs: stop after N iterations or M minutes (across resumes), a progress bar
over the whole budget, and the full training state written to one file as the run goes.

ignite's ``ProgressBar`` counts iterations within an epoch and knows nothing of a time budget, and MONAI's
``CheckpointSaver`` writes numbered files without the network config; a run that a user stops, resumes and
extends needs one state file with a header (:mod:`~ldct_invrep.engine.training_state`), hence these.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from torch import nn

from .optim import unwrap
from .training_state import save_training_state

__all__ = ["BudgetProgressBar", "SnapshotAverage", "TrainingBudget", "TrainingStateWriter"]


class TrainingBudget:
    """Terminates a trainer once it has run ``iterations`` iterations in total, or ``minutes`` of training
    time in total (counted over resumes: the elapsed time is in :meth:`state_dict`, so put the budget in
    the checkpointed objects). Under torch.distributed the ranks agree (the stop flag is all-reduced), so
    all stop at the same iteration.
    """

    def __init__(self, iterations: int | None = None, minutes: float | None = None) -> None:
        if (iterations is None) == (minutes is None):
            raise ValueError("TrainingBudget: give exactly one of iterations and minutes")
        self.iterations = None if iterations is None else int(iterations)
        self.seconds = None if minutes is None else 60.0 * float(minutes)
        self.elapsed = 0.0
        self._t0: float | None = None

    def state_dict(self) -> dict[str, float]:
        return {"elapsed_seconds": self.seconds_run()}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.elapsed = float(state["elapsed_seconds"])

    def seconds_run(self) -> float:
        """Training seconds so far, this run and the earlier ones."""
        return self.elapsed + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)

    def done(self, iteration: int) -> bool:
        """Whether a run at ``iteration`` has used up the budget."""
        if self.iterations is not None:
            return iteration >= self.iterations
        return self.seconds_run() >= self.seconds  # type: ignore[operator]

    @property
    def total(self) -> float:
        """The budget, in iterations or seconds."""
        return float(self.iterations if self.iterations is not None else self.seconds)  # type: ignore[arg-type]

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._check)
        engine.add_event_handler(Events.COMPLETED, self._stop)

    def _start(self, engine: Engine) -> None:
        self._t0 = time.perf_counter()

    def _stop(self, engine: Engine) -> None:
        self.elapsed, self._t0 = self.seconds_run(), None

    def _check(self, engine: Engine) -> None:
        stop = torch.tensor(float(self.done(engine.state.iteration)))
        if float(idist.all_reduce(stop, op="MAX")) > 0:
            engine.terminate()


class BudgetProgressBar:
    """A tqdm bar (stderr) over a :class:`TrainingBudget`: iterations or seconds done, the loss terms of
    ``engine.state.output`` (``output_keys``) and the time left."""

    def __init__(
        self,
        budget: TrainingBudget,
        output_keys: tuple[str, ...] = ("g_total", "d_total", "cc", "adv"),
        disable: bool = False,
    ) -> None:
        self.budget = budget
        self.output_keys = output_keys
        self.disable = disable
        self.bar: Any = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._open)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._update)
        engine.add_event_handler(Events.COMPLETED, self._close)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self._failed)

    def _position(self, engine: Engine) -> float:
        if self.budget.iterations is not None:
            return float(engine.state.iteration)
        return min(self.budget.seconds_run(), self.budget.total)

    def _open(self, engine: Engine) -> None:
        from tqdm import tqdm

        by_time = self.budget.iterations is None
        self.bar = tqdm(
            total=math.ceil(self.budget.total), initial=int(self._position(engine)), desc="adapt",
            unit="s" if by_time else "it", file=sys.stderr, disable=self.disable, dynamic_ncols=True, leave=False,
            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit} "
            "[{elapsed}<{remaining} left{postfix}]",
        )  # fmt: skip

    def _update(self, engine: Engine) -> None:
        if self.bar is None:
            return
        out = engine.state.output if isinstance(engine.state.output, dict) else {}
        losses = " ".join(f"{k} {out[k]:.3g}" for k in self.output_keys if k in out)
        self.bar.set_postfix_str(f"iteration {engine.state.iteration} {losses}", refresh=False)
        self.bar.update(int(self._position(engine)) - self.bar.n)

    def _close(self, engine: Engine) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _failed(self, engine: Engine, error: BaseException) -> None:
        """Close the bar and re-raise: ignite swallows an exception that an EXCEPTION_RAISED handler handles."""
        self._close(engine)
        raise error


class TrainingStateWriter:
    """Writes ``objects`` (the run's checkpointable objects) with the header ``header()`` to ``path`` (one file,
    replaced atomically) every ``every`` iterations and when the run ends (completed or terminated), on the
    main process only. An interrupted run loses at most ``every`` iterations."""

    def __init__(
        self, path: str | Path, objects: Mapping[str, Any], header: Callable[[], dict[str, Any]], every: int
    ) -> None:
        self.path = Path(path)
        self.objects = objects
        self.header = header
        self.every = int(every)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.every), self)
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if idist.get_rank() == 0:
            save_training_state(self.path, self.objects, self.header())


class SnapshotAverage:
    """Mean of ``network``'s snapshots (weights and batch-norm statistics, ``torch.optim.swa_utils.AveragedModel``)
    taken every ``every`` iterations once half of ``budget`` is spent, and at the end of the run.

    Adversarial training circles around its equilibrium and the output HU level wobbles by a few HU from
    snapshot to snapshot; the mean of the second half's snapshots sits nearer the centre (the same stochastic
    weight averaging as ``engine.checkpoint.average_checkpoints``, here in memory). Checkpointable: put it in
    the saved objects so a resumed run keeps its snapshots.
    """

    def __init__(self, network: nn.Module, budget: TrainingBudget, every: int) -> None:
        from torch.optim.swa_utils import AveragedModel

        self.network = unwrap(network)
        self.model = AveragedModel(self.network, use_buffers=True)
        self.budget = budget
        self.every = int(every)
        self.last_iteration = -1

    @property
    def count(self) -> int:
        """Snapshots averaged so far."""
        return int(self.model.n_averaged)

    def averaged(self) -> nn.Module | None:
        """The averaged network, or None before the first snapshot."""
        return self.model.module if self.count else None

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "last_iteration": self.last_iteration}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.last_iteration = int(state["last_iteration"])

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.every), self._periodic)
        engine.add_event_handler(Events.COMPLETED, self._final)

    def _take(self, engine: Engine) -> None:
        if engine.state.iteration != self.last_iteration:
            self.model.update_parameters(self.network)
            self.last_iteration = engine.state.iteration

    def _periodic(self, engine: Engine) -> None:
        spent = engine.state.iteration if self.budget.iterations is not None else self.budget.seconds_run()
        if 2 * spent >= self.budget.total:
            self._take(engine)

    def _final(self, engine: Engine) -> None:
        self._take(engine)
