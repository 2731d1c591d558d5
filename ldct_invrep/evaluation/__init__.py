"""Compare denoising methods on paired images, the way the paper's Tables 1-4 do: mean ± std of PSNR and
SSIM over a test set, here with RMSE and the seconds each method took, every figure tied to its window.

One job per module:

* ``registry``: the methods by name (:func:`build_methods` for CT, HU -> HU: input, BM3D, blind BM3D, LIR,
  RED-CNN; :func:`build_natural_methods` for natural images);
* ``pairs``: the ``(name, noisy, clean)`` pairs (:func:`load_pairs_from_datalist`, :func:`load_pairs_from_cache`,
  :func:`load_pairs_by_dose_from_cache`);
* ``runner``: every method on every pair, outputs written atomically (:func:`evaluate_methods` for CT per
  named HU window, :func:`evaluate_natural` for seeded noisy natural images, data range 1);
* ``report``: :class:`EvaluationResult`, the Markdown report and the CSV;
* ``figures``: the report's figures.

BM3D's parameters are fitted on training pairs by ``ldct_invrep.baselines.tune_bm3d_sigma`` and
``tune_bm3d_blind_factor``.
"""

from ldct_invrep.evaluation.pairs import load_pairs_by_dose_from_cache, load_pairs_from_cache, load_pairs_from_datalist
from ldct_invrep.evaluation.registry import (
    CT_METHODS,
    NATURAL_METHODS,
    Method,
    build_methods,
    build_natural_methods,
    natural_restorer_fn,
)
from ldct_invrep.evaluation.report import EvaluationResult, ResultRow
from ldct_invrep.evaluation.runner import evaluate_methods, evaluate_natural

__all__ = [
    "CT_METHODS",
    "NATURAL_METHODS",
    "EvaluationResult",
    "Method",
    "ResultRow",
    "build_methods",
    "build_natural_methods",
    "evaluate_methods",
    "evaluate_natural",
    "load_pairs_by_dose_from_cache",
    "load_pairs_from_cache",
    "load_pairs_from_datalist",
    "natural_restorer_fn",
]
