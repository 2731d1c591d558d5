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

from ldct_invrep.adaptation.check import DEFAULT_MAX_DRIFT_HU, DEFAULT_MAX_NOISE_RATIO, CheckResult, run_check
from ldct_invrep.adaptation.data import (
    DEFAULT_MAX_SLICES,
    MAX_HELD_OUT,
    PATCH_SIZE,
    AdaptData,
    SeriesSlices,
    default_holdout,
    normal_dose_slices,
    prepare_data,
    read_series_slices,
)
from ldct_invrep.adaptation.run import RUN_SETTINGS, UNBOUNDED_EPOCHS, Adaptation, build_trainer, resumed_settings

__all__ = [
    "DEFAULT_MAX_DRIFT_HU",
    "DEFAULT_MAX_NOISE_RATIO",
    "DEFAULT_MAX_SLICES",
    "MAX_HELD_OUT",
    "PATCH_SIZE",
    "RUN_SETTINGS",
    "UNBOUNDED_EPOCHS",
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
    "run_check",
]
