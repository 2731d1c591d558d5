"""Write docs/results.md: the paper's Tables 1-4 next to what this implementation measures.

* **Table 3** (CT): (a) the held-out simulated low-dose slices of a CT training cache (``--cache``,
  ``ldct_invrep.data.build_ct_training_cache``), one section per dose fraction its manifest records, (b) the
  real Mayo 2016 L506 quarter/full-dose pair in ``--shared-data``/mayo2016_mapnn_ima (scores only, no figure:
  AAPM data). Methods: the input, BM3D (sigma tuned on seeded random *training* pairs of the cache, never on
  test slices, and reported), RED-CNN (``--redcnn``, supervised on the same simulated pairs,
  ``ldct_invrep.baselines.train_redcnn``) and LIR (``--lir-ct``, default the shipped weights).
* **Table 1**: CBSD68 (colour BSD68), AWGN sigma 25 / 35 / 50, colour BM3D, given a natural_awgn checkpoint
  (``--natural-awgn``).
* **Table 2**: Kodak24 (colour), Poisson noise as scikit-image makes it on the 8-bit values, ANSC (Anscombe +
  colour BM3D), given a natural_poisson checkpoint (``--natural-poisson``).
* **Table 4**: ablations at sigma 25 on CBSD68, given checkpoints ``--ablation a=FILE`` ... ``d=FILE``
  (a: no noise encoder, b: no representation discriminator, c: no background consistency, d: full).

``--channels 1`` runs Tables 1, 2 and 4 in grey instead (BSD68, Kodak24 as rounded BT.601 luma, grey BM3D).
The noisy natural images come from ``ldct_invrep.data.noisy_sets`` with ``--seed`` (default 0), the generator
the natural bundles' evaluation uses: a checkpoint scores the same here as in ``configs/evaluate.json`` with
the same seed.

Each section shows the paper's numbers, ours, and what each model trained on and for how long (read from
the checkpoint headers). A section whose checkpoint is absent says so and shows no numbers of ours; nothing
is filled in. With ``--tables`` naming some tables and ``--overwrite``, the other tables' sections of the
existing ``--out`` are kept as they are. Per-image CSVs, per-section Markdown and figures go to
``--details`` (default docs/results/).

    .venv/bin/python benchmarks/reproduce_tables.py --cache cache/ct_cache.npz --shared-data ../shared/data \\
        [--lir-ct FILE] [--redcnn FILE] [--natural-awgn FILE] [--natural-poisson FILE] \\
        [--ablation a=FILE --ablation b=FILE ...] [--bm3d-sigma-hu 100] [--threads 2] [--overwrite]

Runtime on 2 CPU cores: BM3D takes ~15 s per 512 x 512 grey slice and colour BM3D about twice as long, so
Table 1 with BM3D on CBSD68 (68 images x 3 levels) alone is about an hour; ``--no-natural-bm3d`` skips BM3D
on the natural images, ``--max-images N`` and ``--crop N`` make quick (not comparable) runs for testing.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the report helpers shared with dev_pairs.py

from _report import DEFAULT_SHARED, REPO_ROOT, header_of, present, shown, start_report, training_text  # noqa: E402

from ldct_invrep import __version__  # noqa: E402
from ldct_invrep.baselines import tune_bm3d_sigma  # noqa: E402
from ldct_invrep.errors import InputError  # noqa: E402
from ldct_invrep.evaluation import (  # noqa: E402
    EvaluationResult,
    build_methods,
    build_natural_methods,
    evaluate_methods,
    evaluate_natural,
    load_pairs_by_dose_from_cache,
)
from ldct_invrep.metrics import format_mean_std  # noqa: E402

# ---------------------------------------------------------------------------------------- the paper's numbers
# Du, Chen and Yang, "Learning Invariant Representation for Unsupervised Image Restoration", CVPR 2020.
PAPER_TABLE1 = {  # BSD68, AWGN: method -> sigma -> (PSNR mean, std, SSIM mean, std)
    "BM3D": {25: (30.18, 2.07, 0.921, 0.03), 35: (28.09, 2.17, 0.883, 0.04), 50: (25.87, 2.31, 0.830, 0.06)},
    "DnCNN (supervised)": {25: (30.70, 2.04, 0.931, 0.02), 35: (28.75, 2.10, 0.901, 0.03), 50: (26.54, 2.15, 0.857, 0.05)},
    "N2N": {25: (30.21, 2.19, 0.919, 0.03), 35: (28.28, 2.29, 0.886, 0.04), 50: (25.85, 2.58, 0.832, 0.06)},
    "LIR (paper)": {25: (29.02, 1.93, 0.917, 0.02), 35: (27.58, 1.98, 0.887, 0.03), 50: (24.69, 1.59, 0.787, 0.04)},
}
PAPER_TABLE2 = {  # Kodak, Poisson: method -> (PSNR mean, std, SSIM mean, std)
    "ANSC (Anscombe + BM3D)": (30.68, 1.81, 0.918, 0.02),
    "RedNet-30 (supervised)": (28.34, 2.07, 0.893, 0.03),
    "LIR (paper)": (32.37, 1.55, 0.957, 0.01),
}
PAPER_TABLE3 = {  # Mayo 2016, random 4000/1936 slice split: method -> (PSNR, SSIM); no std, window not stated
    "LDCT (input)": (36.3616, 0.9423),
    "BM3D": (40.6941, 0.9755),
    "RED-CNN (supervised)": (41.8799, 0.9846),
    "DIP": (36.2047, 0.9500),
    "LIR (paper)": (40.5857, 0.9811),
}
PAPER_TABLE4 = {  # BSD68 sigma 25: variant -> (PSNR mean, std, SSIM mean, std)
    "a": (25.997, 1.50, 0.828, 0.07),
    "b": (29.452, 1.71, 0.913, 0.02),
    "c": (25.220, 1.62, 0.817, 0.08),
    "d": (29.022, 1.93, 0.917, 0.02),
}
ABLATION_NAMES = {
    "a": "(a) without the noise encoder E_X^N",
    "b": "(b) without the representation discriminator D_R",
    "c": "(c) without background consistency (BCM)",
    "d": "(d) full model",
}
TABLE_ORDER = ("3", "1", "2", "4")  # the order of the sections in docs/results.md
TABLE3_ROWS = {"input": "LDCT (input)", "bm3d": "BM3D", "redcnn": "RED-CNN (supervised)", "lir": "LIR (paper)"}


def fmt(mean: float, std: float | None, digits: int) -> str:
    return format_mean_std({"mean": mean, "std": std}, digits)


# ---------------------------------------------------------------------------------------- Table 3 (CT)
def read_mayo_pair(shared: Path) -> tuple[str, np.ndarray, np.ndarray] | None:
    from ldct_invrep.io import read_series

    folder = shared / "mayo2016_mapnn_ima"
    quarter = sorted(folder.glob("L506_QD_*.IMA")) if folder.is_dir() else []
    full = sorted(folder.glob("L506_FD_*.IMA")) if folder.is_dir() else []
    if not quarter or not full:
        return None
    return "L506 slice 87 (1 mm, B30f)", read_series(quarter[0]).hu[0], read_series(full[0]).hu[0]


def pick_bm3d_sigma(args: argparse.Namespace, say: Callable[[str], None]) -> tuple[float, str]:
    """(sigma HU, how it was chosen). Tuned on the cache's training pairs (never test slices)."""
    if args.bm3d_sigma_hu is not None:
        return args.bm3d_sigma_hu, f"{args.bm3d_sigma_hu:g} HU, given on the command line (--bm3d-sigma-hu)"
    fallback = 100.0
    if args.cache is None:
        return fallback, (f"{fallback:g} HU, not tuned (no --cache with training pairs); 100 HU sits in the PSNR optimum "
                          "of a sweep on the Mayo L506 slice (benchmarks/bm3d_speed.py --sweep), i.e. chosen on test data")
    from ldct_invrep.baselines.train_redcnn import load_paired_training_slices

    def sample(min_size: int) -> tuple[list, list, list[str]]:
        return load_paired_training_slices(args.cache, max_slices=args.bm3d_tune_slices, seed=args.seed, resampled=False,
                                           min_size=min_size)

    # seeded random slices at their acquired spacing, full-size ones when there are any (as benchmarks/dev_pairs.py
    # tunes): a 3 mm NIfTI slice with 7 HU of simulated noise would pull the sigma far below what 512 x 512 slices
    # need, and the cache's first slices (one series, a few dose draws) would not stand for its dose range
    try:
        try:
            noisy, clean, names = sample(args.bm3d_tune_crop)
        except InputError:  # no slice that large (a small cache): all of them
            noisy, clean, names = sample(0)
    except InputError as exc:
        return fallback, f"{fallback:g} HU, not tuned ({exc}); see benchmarks/bm3d_speed.py --sweep"
    say(f"tuning the BM3D sigma on {len(noisy)} training pairs of the cache: {args.bm3d_tune_sigmas}")
    best, scores = tune_bm3d_sigma(zip(names, noisy, clean), args.bm3d_tune_sigmas, window="abdomen", metric="psnr",
                                   crop=args.bm3d_tune_crop)
    table = ", ".join(f"{s:g} HU: {v:.2f} dB" for s, v in scores.items())
    return best, (f"{best:g} HU, best abdomen-window PSNR on {len(noisy)} simulated *training* pairs of the cache "
                  f"(seeded random, seed {args.seed}, at their acquired spacing; centre {args.bm3d_tune_crop} px crops; {table})")


def table3(args: argparse.Namespace, say: Callable[[str], None]) -> str:
    out = ["## Table 3: low-dose CT (Mayo 2016 in the paper)", ""]
    paper = ["Paper (Mayo 2016, 10 patients, 4000 random slices for training, 1936 for testing; PSNR / SSIM, "
             "no std, window and data range not stated):", "", "| method | PSNR | SSIM |", "|---|---:|---:|"]
    paper += [f"| {m} | {p:.4f} | {s:.4f} |" for m, (p, s) in PAPER_TABLE3.items()]
    out += paper + [""]
    lir = args.lir_ct
    names = ["input", "bm3d"]
    trained: list[str] = []
    if present(args.redcnn):
        names.append("redcnn")
        trained.append("RED-CNN: " + training_text(args.redcnn, header_of(args.redcnn, "redcnn")))
    else:
        out.append(f"RED-CNN: no checkpoint given ({'--redcnn not set' if args.redcnn is None else shown(args.redcnn) + ' not found'}); "
                   "train one with `python -m ldct_invrep.baselines.train_redcnn`. No RED-CNN numbers of ours.")
    if present(lir):
        names.append("lir")
        trained.append("LIR: " + training_text(lir, header_of(lir, "lir")))
    else:
        out.append(f"LIR: checkpoint {shown(lir)} not found (shipped weights absent?); no LIR numbers of ours.")
    out.append("")
    sigma, sigma_text = pick_bm3d_sigma(args, say)
    methods = build_methods(names, lir_weights=lir if "lir" in names else None, bm3d_sigma_hu=sigma,
                            redcnn_weights=args.redcnn if "redcnn" in names else None)
    out += [f"BM3D sigma: {sigma_text}.", ""] + [f"- {t}" for t in trained] + ([""] if trained else [])

    sections = []
    if args.cache is not None:
        by_dose, manifest = load_pairs_by_dose_from_cache(args.cache)
        out += [cache_text(args, manifest, lir if "lir" in names else None), ""]
        for fraction, pairs in by_dose.items():
            # full-size slices apart from small ones (the 3 mm NIfTI's 122 x 101): their noise differs tenfold
            is_full = [min(p[1].shape[-2:]) >= args.bm3d_tune_crop for p in pairs]
            for suffix, kind, group in (("", "full-size", [p for p, f in zip(pairs, is_full) if f]),
                                        ("_small", "smaller", [p for p, f in zip(pairs, is_full) if not f])):
                if group:
                    sections.append(simulated_section(args, manifest, fraction, suffix, kind, group))
    else:
        out += ["(a) simulated low dose: no `--cache` given: not run.", ""]
    mayo = read_mayo_pair(args.shared_data)
    if mayo is not None:
        sections.append(("mayo", "(b) real quarter dose: the Mayo 2016 L506 pair (one 1 mm B30f slice, quarter vs full dose; "
                         "the paper's data set, but our models did not train on Mayo data)", [mayo]))
    else:
        out += [f"(b) Mayo pair: not found under {shown(args.shared_data)}/mayo2016_mapnn_ima: not run.", ""]
    results: dict[str, EvaluationResult] = {}
    for key, description, pairs in sections:
        say(f"Table 3 {key}: {len(pairs)} slice(s), methods {names}")
        # no images of the AAPM-Mayo pair are written (its data-use terms); the simulated pairs are open data
        result = evaluate_methods(pairs, methods, ("abdomen", "full"), args.details / f"table3_{key}", figure=key != "mayo",
                                  title=f"Table 3 {description.split(':')[0]}", data_description=description,
                                  notes=[f"BM3D sigma: {sigma_text}"], overwrite=args.overwrite, progress=say)
        results[key] = result
        figure = f", figure `{shown(result.files['figure'])}`" if result.files.get("figure") else ""
        out += [f"### {description}", "", ct_table(result, with_paper=key == "mayo"), "",
                f"Details: `{shown(result.files['markdown'])}`{figure}.", ""]
    out += [window_note(results), ""]
    return "\n".join(out)


def cache_text(args: argparse.Namespace, manifest: dict[str, Any], lir: Path | None) -> str:
    """Where the simulated test pairs come from, from the cache's manifest (and whether LIR trained on it)."""
    sha = str(manifest.get("cache_sha256", ""))
    counts = manifest.get("counts", {})
    text = (f"Simulated test pairs: the held-out slices of `{shown(args.cache)}` (sha256 {sha[:12] or 'not recorded'}; "
            f"{counts.get('test_noisy', '?')} test pairs, {counts.get('train_noisy', '?')} noisy and "
            f"{counts.get('train_clean', '?')} clean training slices; {manifest.get('generated_by', 'builder not recorded')})")
    header = header_of(lir, "lir") if lir is not None else {}
    if sha and header.get("cache_sha256") == sha:
        text += f", the cache `{lir.name}` trained on (its header's cache_sha256"  # type: ignore[union-attr]
        text += f"; built by its training recipe, {header['bundle']})" if header.get("bundle") else ")"
    return text + "."


def simulated_section(args: argparse.Namespace, manifest: dict[str, Any], fraction: float | None, suffix: str, kind: str,
                      group: list) -> tuple[str, str, list]:
    """``(key, description, pairs)`` of one group of simulated test pairs: one dose fraction, one size class;
    at most ``--max-images`` of them (said in the description)."""
    modes = {c.get("mode") for e in manifest.get("sources", []) if e.get("slice_indices", {}).get("test")
             for c in (e.get("calibration") or {}).values() if isinstance(c, dict)}
    relative = " of each scan's own dose" if modes == {"self"} else ""
    dose = f"dose {fraction:g}{relative}" if fraction is not None else "low dose (dose fraction not recorded)"
    count = f"{len(group)}"
    if args.max_images and len(group) > args.max_images:
        count, group = f"the first {args.max_images} of {len(group)}", group[: args.max_images]
    sizes = ", ".join(dict.fromkeys("x".join(map(str, p[1].shape)) for p in group))
    key = f"simulated{'' if fraction is None else f'_dose{fraction:g}'}{suffix}"
    return key, (f"(a) simulated {dose}: {count} {kind} held-out test slices of `{shown(args.cache)}` ({sizes} pixels; "
                 "projection-domain noise insertion on normal-dose CT; the LIR and RED-CNN models never saw them)"), group


def seconds_text(x: float) -> str:
    return f"{x:.3g}" if x >= 0.01 else "< 0.01"


def ct_table(result: EvaluationResult, with_paper: bool) -> str:
    """One row per method: abdomen and full window PSNR / SSIM (mean ± std), RMSE, seconds (and the paper's)."""
    head = "| method | PSNR abdomen [dB] | SSIM abdomen | PSNR full [dB] | SSIM full | RMSE [HU] | s / slice |"
    rule = "|---|---:|---:|---:|---:|---:|---:|"
    lines = [head + (" paper PSNR / SSIM |" if with_paper else ""), rule + ("---:|" if with_paper else "")]
    for m in result.methods:
        a, f = result.summary(m, "abdomen"), result.summary(m, "full")
        row = (f"| {m} | {fmt(a['psnr']['mean'], a['psnr']['std'], 2)} | {fmt(a['ssim']['mean'], a['ssim']['std'], 4)} | "
               f"{fmt(f['psnr']['mean'], f['psnr']['std'], 2)} | {fmt(f['ssim']['mean'], f['ssim']['std'], 4)} | "
               f"{fmt(a['rmse']['mean'], a['rmse']['std'], 1)} | {seconds_text(a['seconds']['mean'])} |")
        if with_paper:
            paper = PAPER_TABLE3.get(TABLE3_ROWS.get(m, ""))
            row += f" {'%.2f / %.4f' % paper if paper else '-'} |"
        lines.append(row)
    return "\n".join(lines)


def window_note(results: dict[str, EvaluationResult]) -> str:
    """Which of our windows the paper's unstated convention resembles, from our own input rows."""
    text = ("The paper states neither window nor data range for Table 3. The abdomen window [-160, 240] HU "
            "(data range 400) is the RED-CNN / CTformer convention; the full range [-1024, 3072] HU (data range "
            "4096) is the network's.")
    result = results.get("mayo") or next(iter(results.values()), None)
    if result is not None and "input" in result.methods:
        a, f = result.summary("input", "abdomen"), result.summary("input", "full")
        text += (f" On {'the Mayo pair' if 'mayo' in results else 'the simulated slices'} our input scores "
                 f"{a['psnr']['mean']:.2f} dB / {a['ssim']['mean']:.4f} (abdomen) and {f['psnr']['mean']:.2f} dB / "
                 f"{f['ssim']['mean']:.4f} (full), against the paper's LDCT row {PAPER_TABLE3['LDCT (input)'][0]:.2f} dB / "
                 f"{PAPER_TABLE3['LDCT (input)'][1]:.4f} over its 1936 test slices: compare gains over the input "
                 "rather than absolute values.")
    return text


# ---------------------------------------------------------------------------------------- natural images
def natural_folder(args: argparse.Namespace, table: str) -> tuple[Path, str]:
    """(folder, label) of a natural-image test set: colour or grey (``--channels``)."""
    colour = args.channels == 3
    if table == "kodak":
        return args.shared_data / "kodak24", ("Kodak24 (colour)" if colour else "Kodak24 as grey (rounded BT.601 luma)")
    return (args.shared_data / "cbsd68", "CBSD68 (colour BSD68)") if colour else (args.shared_data / "bsd68", "BSD68 (grey)")


def test_set(args: argparse.Namespace, folder: Path, noise: str, sigma: float | None):
    """The seeded noisy test set (``data.noisy_sets``), as the bundles' evaluation makes it."""
    from ldct_invrep.data.noisy_sets import noisy_test_set

    return noisy_test_set(folder, noise, sigma, args.seed, channels=args.channels, max_images=args.max_images, crop=args.crop)


def natural_row(label: str, s: dict[str, dict[str, float]], paper: tuple[float, float, float, float] | None) -> str:
    p = f"{fmt(paper[0], paper[1], 2)} / {fmt(paper[2], paper[3], 3)}" if paper else "-"
    return f"| {label} | {fmt(s['psnr']['mean'], s['psnr']['std'], 2)} | {fmt(s['ssim']['mean'], s['ssim']['std'], 3)} | {seconds_text(s['seconds']['mean'])} | {p} |"


NATURAL_HEADER = ["| method | PSNR [dB] | SSIM | s / image | paper PSNR / SSIM |", "|---|---:|---:|---:|---:|"]


def subset_note(args: argparse.Namespace) -> list[str]:
    if not (args.max_images or args.crop):
        return []
    return [f"**Quick run, not comparable with the paper**: at most {args.max_images or 'all'} images, "
            f"{'centre crops of ' + str(args.crop) + ' px' if args.crop else 'full size'}.", ""]


def natural_prelude(args: argparse.Namespace, name: str, ckpt: Path | None, dataset: str, folder: Path) -> tuple[list[str], bool]:
    """The lines that follow the paper's numbers in a natural-image table, and whether the table can run: the LIR
    checkpoint ``ckpt`` (option ``--<name>``) exists and so does the data set's ``folder``."""
    if not present(ckpt):
        given = f"--{name.replace('_', '-')} not set" if ckpt is None else shown(ckpt) + " not found"
        return [f"No {name} checkpoint ({given}): not run; no numbers of ours.", ""], False
    if not folder.is_dir():
        return [f"{dataset} not found under {shown(args.shared_data)}: not run.", ""], False
    return [f"Ours: LIR {training_text(ckpt, header_of(ckpt, 'lir'))}.", ""] + subset_note(args), True


def table1(args: argparse.Namespace, say: Callable[[str], None]) -> str:
    folder, label = natural_folder(args, "bsd68")
    out = [f"## Table 1: AWGN on {label}", ""]
    paper = ["Paper (trained on Pascal VOC 2007 with sigma drawn in [5, 50]; PSNR / SSIM mean ± std):", "",
             "| method | sigma 25 | sigma 35 | sigma 50 |", "|---|---:|---:|---:|"]
    for m, rows in PAPER_TABLE1.items():
        paper.append(f"| {m} | " + " | ".join(f"{fmt(r[0], r[1], 2)} / {fmt(r[2], r[3], 3)}" for r in rows.values()) + " |")
    out += paper + [""]
    ckpt = args.natural_awgn
    lines, ready = natural_prelude(args, "natural_awgn", ckpt, label, folder)
    out += lines
    if not ready:
        return "\n".join(out)
    names = ["input"] + ([] if args.no_natural_bm3d else ["bm3d"]) + ["lir"]
    for sigma in (25, 35, 50):
        images = test_set(args, folder, "awgn", sigma)
        say(f"Table 1: sigma {sigma}, {len(images)} images, {names}")
        methods = build_natural_methods(names, "awgn", sigma, ckpt)
        result = evaluate_natural(images, "awgn", sigma, seed=args.seed, methods=methods, out_dir=args.details / f"table1_sigma{sigma}",
                                  figure=True, title=f"Table 1, {label}, AWGN sigma {sigma}", overwrite=args.overwrite, progress=say)
        out += [f"### sigma = {sigma} ({len(images)} images; {result.notes[0]})", ""] + NATURAL_HEADER
        for m in result.methods:
            paper_key = {"bm3d": "BM3D", "lir": "LIR (paper)"}.get(m)
            out.append(natural_row(m, result.summary(m), PAPER_TABLE1[paper_key][sigma] if paper_key else None))
        out.append("")
    out += [f"{result.notes[1]} SSIM: Gaussian 11x11, sigma 1.5 (MONAI), mean over the channels. "
            + ("BM3D is colour BM3D (the bm3d package's bm3d_rgb) given the true sigma. The paper's BM3D row (30.18 dB at "
               "sigma 25) is close to colour BM3D on CBSD68 (about 30.7 dB in the DnCNN paper) and far above grey BM3D on "
               "BSD68 (about 28.6 dB): its tables are colour." if args.channels == 3 else
               "Grey run (--channels 1): the paper's tables are colour, so its numbers are not comparable with these."), ""]
    return "\n".join(out)


def table2(args: argparse.Namespace, say: Callable[[str], None]) -> str:
    folder, label = natural_folder(args, "kodak")
    out = [f"## Table 2: Poisson noise on {label}", "", "Paper (PSNR / SSIM mean ± std):", "",
           "| method | PSNR / SSIM |", "|---|---:|"]
    out += [f"| {m} | {fmt(r[0], r[1], 2)} / {fmt(r[2], r[3], 3)} |" for m, r in PAPER_TABLE2.items()] + [""]
    ckpt = args.natural_poisson
    lines, ready = natural_prelude(args, "natural_poisson", ckpt, label, folder)
    out += lines
    if not ready:
        return "\n".join(out)
    images = test_set(args, folder, "poisson", None)
    names = ["input"] + ([] if args.no_natural_bm3d else ["anscombe_bm3d"]) + ["lir"]
    say(f"Table 2: {len(images)} images, {names}")
    result = evaluate_natural(images, "poisson", None, seed=args.seed, methods=names, lir_weights=ckpt,
                              out_dir=args.details / "table2_poisson", figure=True, title=f"Table 2, {label}, Poisson",
                              overwrite=args.overwrite, progress=say)
    out += [f"### {label}, {len(images)} images; {result.notes[0]}", ""] + NATURAL_HEADER
    for m in result.methods:
        paper_key = {"anscombe_bm3d": "ANSC (Anscombe + BM3D)", "lir": "LIR (paper)"}.get(m)
        out.append(natural_row(m, result.summary(m), PAPER_TABLE2[paper_key] if paper_key else None))
    peaks = sorted({t.peak for t in images})
    inp = result.summary("input")["psnr"]
    out += ["", f"The paper's protocol: scikit-image's random_noise(mode='poisson') on the images as loaded, 8-bit values k/255; "
            f"it scales by 2^ceil(log2(number of unique values)), here a peak of {'/'.join(f'{p:g}' for p in peaks)} "
            f"(Poisson counts with mean peak x intensity, divided by the peak), which puts the input at {format_mean_std(inp, 2)} dB: "
            "strong noise (applied to float grey conversions, with thousands of unique values, the same call adds almost none). "
            + _paper_poisson_level(result, inp["mean"]), ""]
    return "\n".join(out)


def _paper_poisson_level(result: EvaluationResult, input_psnr: float) -> str:
    """How this protocol's noise compares with the paper's, read from the baselines: its ANSC row against ours, and
    its supervised RedNet-30 row against our input (a supervised network scores well above its input)."""
    ansc = PAPER_TABLE2["ANSC (Anscombe + BM3D)"][0]
    rednet = PAPER_TABLE2["RedNet-30 (supervised)"][0]
    input_psnr = round(input_psnr, 2)  # as the table shows it
    text = (f"The paper's supervised RedNet-30 row ({rednet:.2f} dB) sits {rednet - input_psnr:+.2f} dB from this input")
    if "anscombe_bm3d" in result.methods:
        ours = result.summary("anscombe_bm3d")["psnr"]["mean"]
        text += f", and Anscombe + colour BM3D scores {ours:.2f} dB here against the paper's {ansc:.2f}"
    return text + ": the paper's inputs were probably noisier than this call makes them (it does not say how it loaded Kodak24)."


def table4(args: argparse.Namespace, say: Callable[[str], None]) -> str:
    folder, label = natural_folder(args, "bsd68")
    out = [f"## Table 4: ablations, AWGN sigma 25 on {label}", "", "| variant | paper PSNR / SSIM | ours PSNR | ours SSIM | trained |",
           "|---|---:|---:|---:|---|"]
    given = dict(args.ablation or [])
    images = test_set(args, folder, "awgn", 25) if given and folder.is_dir() else None
    inputs = None
    for key, name in ABLATION_NAMES.items():
        paper = PAPER_TABLE4[key]
        paper_text = f"{fmt(paper[0], paper[1], 2)} / {fmt(paper[2], paper[3], 3)}"
        ckpt = given.get(key)
        if not present(ckpt):
            out.append(f"| {name} | {paper_text} | - | - | no checkpoint{'' if ckpt is None else ' (' + shown(ckpt) + ' not found)'} |")
            continue
        if images is None:
            out.append(f"| {name} | {paper_text} | - | - | {label} not found |")
            continue
        say(f"Table 4 {key}: {len(images)} images")
        result = evaluate_natural(images, "awgn", 25, seed=args.seed, methods=build_natural_methods(["input", "lir"], "awgn", 25, ckpt),
                                  out_dir=args.details / f"table4_{key}", title=f"Table 4 {name}", overwrite=args.overwrite,
                                  progress=say)
        s, inputs = result.summary("lir"), result.summary("input")
        out.append(f"| {name} | {paper_text} | {fmt(s['psnr']['mean'], s['psnr']['std'], 2)} | "
                   f"{fmt(s['ssim']['mean'], s['ssim']['std'], 3)} | {training_text(ckpt, header_of(ckpt, 'lir'))} |")
    out.append("")
    if inputs is not None:
        out += [f"The noisy input scores {fmt(inputs['psnr']['mean'], inputs['psnr']['std'], 2)} dB / "
                f"{fmt(inputs['ssim']['mean'], inputs['ssim']['std'], 3)} ({len(images)} images, seed {args.seed}).", ""]
    if given:
        out += subset_note(args)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------- main
def parse_ablation(text: str) -> tuple[str, Path]:
    key, sep, path = text.partition("=")
    if not sep or key not in ABLATION_NAMES:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a=FILE, b=FILE, c=FILE or d=FILE")
    return key, Path(path)


def build_parser() -> argparse.ArgumentParser:
    from ldct_invrep.package_files import default_weights_path

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "results.md")
    p.add_argument("--details", type=Path, default=None, help="per-section outputs (default: OUT's folder / results)")
    p.add_argument("--shared-data", type=Path, default=DEFAULT_SHARED, help="holds mayo2016_mapnn_ima, cbsd68, bsd68, kodak24")
    p.add_argument("--cache", type=Path, default=None, help="CT training cache .npz (held-out test pairs, BM3D tuning)")
    p.add_argument("--lir-ct", type=Path, default=default_weights_path(), help="LIR CT checkpoint [shipped weights]")
    p.add_argument("--redcnn", type=Path, default=None, help="RED-CNN checkpoint (baselines.train_redcnn)")
    p.add_argument("--natural-awgn", type=Path, default=None)
    p.add_argument("--natural-poisson", type=Path, default=None)
    p.add_argument("--ablation", type=parse_ablation, action="append", metavar="KEY=FILE", help="a|b|c|d=checkpoint")
    p.add_argument("--bm3d-sigma-hu", type=float, default=None, help="skip tuning and use this sigma")
    p.add_argument("--bm3d-tune-sigmas", type=float, nargs="+", default=[60, 80, 100, 120, 150, 200, 250])
    p.add_argument("--bm3d-tune-slices", type=int, default=12, help="seeded random training pairs BM3D is tuned on")
    p.add_argument("--bm3d-tune-crop", type=int, default=256)
    p.add_argument("--no-natural-bm3d", action="store_true", help="skip BM3D / ANSC on natural images (slow)")
    p.add_argument("--tables", nargs="+", default=list(TABLE_ORDER), choices=["1", "2", "3", "4"],
                   help="tables to run; with --overwrite the others are kept from the existing --out")
    p.add_argument("--channels", type=int, default=3, choices=[1, 3], help="natural-image tables in colour (3) or grey (1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noisy natural test sets (the bundles' evaluation default: 0) and of "
                   "the BM3D tuning pairs")
    p.add_argument("--max-images", type=int, default=None, help="quick runs only: first N images / slices")
    p.add_argument("--crop", type=int, default=None, help="quick runs only: centre crops of natural images")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--load", default=None, metavar="TEXT",
                   help="what else ran on the machine while the tables were timed (printed with each table written)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true")
    return p


def kept_sections(path: Path, keep: Sequence[str]) -> dict[str, str]:
    """``{table: section text}`` of the tables ``keep`` in an existing results document (each section runs from
    its ``## Table N`` heading to the next ``## `` heading or the closing ``_Generated`` line)."""
    if not path.is_file():
        return {}
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"## Table (\d)\b", line)
        if m or line.startswith("## ") or line.startswith("_Generated by"):
            current = found.setdefault(m.group(1), []) if m and m.group(1) in keep else None
        if current is not None:
            current.append(line)
    return {k: "\n".join(v).rstrip() + "\n" for k, v in found.items()}


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    args = build_parser().parse_args(argv)
    args.details = args.details or args.out.parent / "results"
    run = start_report("reproduce_tables.py", args, argv)
    say, command = run.say, run.command
    sections = {"3": table3, "1": table1, "2": table2, "4": table4}
    kept = kept_sections(args.out, [k for k in TABLE_ORDER if k not in args.tables])
    parts = [
        "# LIR (CVPR 2020) tables reproduced with ldct-invrep", "",
        "Du, Chen and Yang, *Learning Invariant Representation for Unsupervised Image Restoration*, CVPR 2020. Each "
        "section puts the paper's numbers next to ours and says what our models trained on and for how long "
        "(from the checkpoint headers). Sections without a checkpoint show no numbers of ours. The paper trained "
        "on a GPU for far more iterations; ours train on 2 CPU cores, so read the gaps with that in mind. Each "
        "section ends with the command that wrote it.", "",
        f"Command: `{command}`" + (f" ({'tables' if len(kept) > 1 else 'table'} {', '.join(sorted(kept))} kept from the "
                                   "previous document)" if kept else ""), "",
    ]
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for key in TABLE_ORDER:
        if key in args.tables:
            load = f" Timings (s / image) taken under load: {args.load}." if args.load else ""
            parts.append(sections[key](args, say) + f"\n_Table {key} written by `{command}` on {now}.{load}_\n")
        elif key in kept:
            parts.append(kept[key])
    parts.append(f"_Generated by ldct-invrep {__version__} on {now} in {run.seconds():.0f} s; "
                 f"{platform.machine()}, {os.cpu_count()} CPU(s), torch {torch.__version__}, {torch.get_num_threads()} thread(s)._\n")
    run.write("\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
