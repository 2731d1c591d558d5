"""Training engine: LIRTrainer (D step then G step), optimisers/schedules, handlers, checkpoints.

``save_restorer`` / ``load_restorer`` / ``read_header`` live in ``ldct_invrep.io.checkpoint``; they are
re-exported here because the campaign drivers (``campaign/``) import them from the engine.
"""

from ldct_invrep.io.checkpoint import load_restorer, read_header, save_restorer

from .ablations import ABLATIONS, build_lir
from .handlers import (
    ImageGridHandler,
    RNGState,
    checkpoint_dict,
    make_checkpoint_loader,
    make_checkpoint_saver,
    make_stats_handlers,
    make_validation,
    prepare_paired_batch,
)
from .optim import make_optimizers, make_schedulers, unwrap
from .trainer import LIRTrainer, discriminator_step, generator_step, lir_training_step, prepare_unpaired_batch

__all__ = [
    "ABLATIONS",
    "ImageGridHandler",
    "LIRTrainer",
    "RNGState",
    "build_lir",
    "checkpoint_dict",
    "discriminator_step",
    "generator_step",
    "lir_training_step",
    "load_restorer",
    "make_checkpoint_loader",
    "make_checkpoint_saver",
    "make_optimizers",
    "make_schedulers",
    "make_stats_handlers",
    "make_validation",
    "prepare_paired_batch",
    "prepare_unpaired_batch",
    "read_header",
    "save_restorer",
    "unwrap",
]
