"""Pieces the MONAI bundles in ``bundles/`` call from their configs (``$ldct_invrep.recipes.<name>(...)``).

The bundles hold no code of their own (model-zoo rule: custom code is imported, not copied). What a
config cannot say in one expression lives here: the unpaired natural-image sets of paper section 4.2, the
seeded noisy test sets, the metric views (HU window / 8-bit natural images) given to ``monai.handlers``,
the CT training cache and Mayo datalist preparation (built once, on one rank under DDP), the export of a
trained Restorer, and the inference datalists and summary line. One job a module: ``training`` (network
config, validation slices and image grid), ``natural`` (natural-image sets), ``ct_data`` (CT cache, sources,
Mayo datalist, paired slices), ``metric_views`` (what metrics see), ``weights`` (export, load, header),
``datalists`` (inference inputs) and ``reporting`` (summary line and metric table). Configs name everything
as ``ldct_invrep.recipes.<name>``, so this package exports all of it, with the two header rules of
``ldct_invrep.inference`` the inference configs use and its device check.
"""

from __future__ import annotations

from ldct_invrep.inference import reference_noise_level, resolve_device, self_ensemble_size
from ldct_invrep.recipes.ct_data import (
    HELD_OUT_PATIENTS,
    ensure_ct_cache,
    ensure_mayo_datalist,
    open_ct_sources,
    paired_dicom_dataset,
)
from ldct_invrep.recipes.datalists import image_datalist, series_datalist
from ldct_invrep.recipes.metric_views import natural_output, windowed_output
from ldct_invrep.recipes.natural import natural_test_items, natural_unpaired_images
from ldct_invrep.recipes.reporting import check_whole_numbers, print_inference_summary, report_input_errors, summarize_metrics
from ldct_invrep.recipes.training import lir_config, validation_image_grid, validation_indices
from ldct_invrep.recipes.weights import (
    bundle_checkpoint,
    checkpoint_header,
    export_averaged_restorer,
    export_best_restorer,
    export_restorer,
    load_restorer_weights,
    restorer_config,
)

__all__ = [
    "HELD_OUT_PATIENTS",
    "bundle_checkpoint",
    "check_whole_numbers",
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
    "open_ct_sources",
    "paired_dicom_dataset",
    "print_inference_summary",
    "reference_noise_level",
    "report_input_errors",
    "resolve_device",
    "restorer_config",
    "self_ensemble_size",
    "series_datalist",
    "summarize_metrics",
    "validation_image_grid",
    "validation_indices",
    "windowed_output",
]
