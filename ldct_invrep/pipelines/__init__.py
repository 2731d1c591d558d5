"""What the commands do to volumes and folders, as a library: ``denoise`` (LIR, paper eq. 3, slice by slice),
``simulate`` (projection-domain low-dose simulation) and ``evaluate`` (per-slice metrics on named windows).

The ``ldct-invrep`` commands, the ``demo`` and the CT bundles' inference (``recipes``) call these functions;
they read and write through ``ldct_invrep.io.volumes`` and never print except through the callbacks and
progress bars (stderr) they are given. Heavy modules (torch, MONAI) are imported when a function runs.
"""

from ldct_invrep.pipelines.denoise import (
    denoise_volumes,
    load_checkpoint,
    load_denoiser,
    resolve_weights,
)
from ldct_invrep.pipelines.evaluate import (
    DEFAULT_METRIC_WINDOWS,
    align_to_reference,
    evaluate_volumes,
    format_metric_table,
    format_results,
    metrics_document,
    unique_labels,
    write_metrics_json,
)
from ldct_invrep.pipelines.simulate import dose_label, simulate_dose_volumes

__all__ = [
    "DEFAULT_METRIC_WINDOWS",
    "align_to_reference",
    "denoise_volumes",
    "dose_label",
    "evaluate_volumes",
    "format_metric_table",
    "format_results",
    "load_checkpoint",
    "load_denoiser",
    "metrics_document",
    "resolve_weights",
    "simulate_dose_volumes",
    "unique_labels",
    "write_metrics_json",
]
