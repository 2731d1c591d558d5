"""Turn a scan of a local dataset copy into a MONAI datalist with the paper's unpaired training protocol.

Training entries follow LIR section 4.2-4.3: the training slice positions are split into two disjoint halves
(``split_unpaired``); the low/quarter-dose image of each position of the first half is a noisy-domain entry
``{"noisy": path}`` and the full-dose image of each position of the second half a clean-domain entry
``{"clean": path}``, so no slice appears in both domains. ``validation`` and ``test`` hold paired entries
``{"noisy": path, "clean": path}`` for metrics. Paths are relative to the data root, stored as ``data_root``
(``load_datalist`` resolves against it). Every entry carries an ``info`` dict (patient, dose, z, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ldct_invrep import __version__
from ldct_invrep.data.datalist import write_datalist
from ldct_invrep.data.dev_pairs import DevPairsReport, write_dev_datalist
from ldct_invrep.data.image_sets import ImageSetReport, verify_image_set
from ldct_invrep.data.manifests import load_manifest
from ldct_invrep.data.scanners import ScanReport, SeriesScan, SliceFile, format_report, scan_mayo2016, scan_tcia_ldct
from ldct_invrep.errors import InputError

Pair = tuple[str, SliceFile, SliceFile]  # (patient, low/quarter-dose slice, full-dose slice)
IMAGE_SETS = ("bsd68", "set12", "kodak24", "train400", "cbsd68", "cbsd432")
TRAINING_SETS = ("train400", "cbsd432")
DEV_SET = "ldct-dev"


def pair_slices(low: SeriesScan, full: SeriesScan) -> tuple[list[Pair], int]:
    """Match the slices of a low- and a full-dose series of one patient.

    By z position when every slice has one, else by instance number, else by sorted order when the counts
    agree. Returns the pairs (sorted like the full-dose series) and the number of unmatched slices.
    """
    for attr in ("z", "instance"):
        lows = {getattr(s, attr): s for s in low.slices}
        fulls = {getattr(s, attr): s for s in full.slices}
        if None in lows or None in fulls or len(lows) != low.n or len(fulls) != full.n:
            continue
        pairs = [(full.patient, lows[k], f) for k, f in fulls.items() if k in lows]
        return pairs, low.n + full.n - 2 * len(pairs)
    if low.n == full.n:
        return [(full.patient, lo, f) for lo, f in zip(low.slices, full.slices, strict=True)], 0
    return [], low.n + full.n


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _info(pair: Pair, **extra: Any) -> dict[str, Any]:
    f = pair[2]
    info: dict[str, Any] = {"patient": pair[0]}
    if f.z is not None:
        info["z"] = f.z
    if f.instance is not None:
        info["instance"] = f.instance
    info.update(extra)
    return info


def _sections(
    train: list[Pair], validation: list[Pair], test: list[Pair], root: Path, seed: int, low_name: str, **info: Any
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """Unpaired training entries (two disjoint halves) plus paired validation/test entries."""
    from ldct_invrep.data.datasets import split_unpaired  # torch: imported only once slices are paired

    x_half, y_half = split_unpaired(train, seed)
    training = [{"noisy": _rel(p[1].path, root), "info": _info(p, dose=low_name, **info)} for p in x_half]
    training += [{"clean": _rel(p[2].path, root), "info": _info(p, dose="full", **info)} for p in y_half]

    def paired(pairs: list[Pair]) -> list[dict[str, Any]]:
        return [
            {"noisy": _rel(p[1].path, root), "clean": _rel(p[2].path, root), "info": _info(p, **info)} for p in pairs
        ]

    counts = {
        "train_positions": len(train),
        "train_noisy": len(x_half),
        "train_clean": len(y_half),
        "validation": len(validation),
        "test": len(test),
    }
    return {"training": training, "validation": paired(validation), "test": paired(test)}, counts


def _hold_out(positions: list[Pair], fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(kept, held out): a seeded ``fraction`` of ``positions`` held out, both in original order."""
    n_out = int(round(fraction * len(positions)))
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), 1])).permutation(len(positions))
    out = set(perm[:n_out].tolist())
    return [p for i, p in enumerate(positions) if i not in out], [p for i, p in enumerate(positions) if i in out]


def _patient_pairs(
    report: ScanReport, patients: Sequence[str], low: str, thickness: str | None, kernel: str | None
) -> list[Pair]:
    pairs: list[Pair] = []
    for p in patients:
        lo, full = report.find(p, low, thickness, kernel), report.find(p, "full", thickness, kernel)
        if lo is None or full is None:
            continue
        matched, unmatched = pair_slices(lo, full)
        msg = f"{p}: {unmatched} slice(s) without a partner left out of the datalist"
        if unmatched and msg not in report.warnings:
            report.warnings.append(msg)
        pairs.extend(matched)
    return pairs


def write_mayo_datalist(
    report: ScanReport,
    out_path: str | Path,
    split: str = "patient",
    thickness: str | None = None,
    kernel: str = "B30",
    seed: int | None = None,
    val_fraction: float = 0.05,
) -> Path:
    """Write the Mayo 2016 datalist for ``split`` = ``"patient"`` (L506 test) or ``"paper_random"`` (4000/1936).

    ``thickness`` defaults to the split's manifest default (3mm for "patient", 1mm for "paper_random");
    ``seed`` to the manifest's. ``val_fraction`` of the training positions are held out as paired validation
    entries (0 reproduces the paper's counts exactly). Quarter dose is the noisy domain.
    """
    if report.dataset != "mayo2016":
        raise InputError(f"{report.root}: not a mayo2016 scan ({report.dataset})")
    man = report.manifest
    if split not in man["splits"] or split == "unpaired_training":
        raise InputError(f"{split}: unknown Mayo split (use 'patient' or 'paper_random')")
    cfg = man["splits"][split]
    thickness = thickness or cfg["default_thickness"]
    if thickness not in man["thicknesses"]:
        raise InputError(f"{thickness}: unknown thickness (use {', '.join(man['thicknesses'])})")
    seed = int(cfg.get("seed", 2020) if seed is None else seed)
    present = [p for p in report.expected_patients if p in report.patients_present]
    meta: dict[str, Any] = {"thickness": thickness, "kernel": kernel}

    if split == "patient":
        test_patients = [p for p in cfg["test_patients"] if p in present]
        if not test_patients:
            raise InputError(
                f"{report.root}: test patient(s) {', '.join(cfg['test_patients'])} not found; "
                "the patient split needs them"
            )
        train_patients = [p for p in present if p not in cfg["test_patients"]]
        if not train_patients:
            raise InputError(f"{report.root}: no training patient found")
        train_all = _patient_pairs(report, train_patients, "quarter", thickness, kernel)
        test = _patient_pairs(report, test_patients, "quarter", thickness, kernel)
        train, validation = _hold_out(train_all, val_fraction, seed)
        split_info = {"train_patients": train_patients, "test_patients": test_patients}
    else:
        pairs = _patient_pairs(report, present, "quarter", thickness, kernel)
        pairs.sort(key=lambda p: (p[0], p[2].z if p[2].z is not None else 0.0, p[2].instance or 0, p[2].path.name))
        perm = np.random.default_rng(np.random.SeedSequence([seed])).permutation(len(pairs))
        n_train = int(round(len(pairs) * cfg["n_train"] / cfg["n_total"]))
        train_idx, test_idx = sorted(perm[:n_train].tolist()), sorted(perm[n_train:].tolist())
        n_val = int(round(val_fraction * n_train))
        val_idx = set(perm[:n_val].tolist())
        train = [pairs[i] for i in train_idx if i not in val_idx]
        validation = [pairs[i] for i in train_idx if i in val_idx]
        test = [pairs[i] for i in test_idx]
        split_info = {"patients": present, "n_train_with_validation": n_train, "method": cfg["method"]}
    if not train:
        found = sorted({f"{s.thickness} {s.kernel}" for s in report.series}) or ["no series"]
        raise InputError(
            f"{report.root}: no paired {thickness} {kernel} training slices found (the copy has: {', '.join(found)}; "
            "choose with thickness=/kernel=)"
        )
    sections, counts = _sections(train, validation, test, report.root, seed, "quarter", **meta)
    metadata = {
        "name": f"mayo2016_{split}_{thickness}_{kernel}",
        "description": f"AAPM-Mayo 2016, split '{split}', {thickness} {kernel}: unpaired training "
        "(quarter dose of one half of the training positions as noisy X, full dose of the other half as clean Y), "
        "paired validation/test.",
        "data_root": str(report.root),
        "split": split,
        "seed": seed,
        "val_fraction": val_fraction,
        "counts": counts,
        "split_info": split_info,
        "generated_by": f"ldct_invrep {__version__} (ldct_invrep.data.preparation.write_mayo_datalist)",
        **meta,
    }
    return write_datalist(out_path, sections, metadata)


def write_tcia_datalist(
    report: ScanReport,
    out_path: str | Path,
    split: str = "ldctbench",
    exams: Sequence[str] | None = None,
    seed: int | None = None,
) -> Path:
    """Write the TCIA LDCT datalist for ``split`` = ``"ldctbench"`` (ldct-benchmark subjects) or ``"random_patient"``.

    ``exams`` restricts to exam types ("C" chest 10 % dose, "L" abdomen 25 %, "N" head 25 %); default all
    present. Low dose is the noisy domain.
    """
    if report.dataset != "tcia_ldct":
        raise InputError(f"{report.root}: not a tcia_ldct scan ({report.dataset})")
    man = report.manifest
    splits = man["splits"]
    if split not in ("ldctbench", "random_patient"):
        raise InputError(f"{split}: unknown TCIA split (use 'ldctbench' or 'random_patient')")
    seed = int(splits["random_patient"]["seed"] if seed is None else seed)
    paired = [p for p in report.patients_present if report.find(p, "full") and report.find(p, "low")]
    if exams is not None:
        paired = [p for p in paired if p[0] in set(exams)]
    groups: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    if split == "ldctbench":
        for k in groups:
            groups[k] = [p for p in splits["ldctbench"][k] if p in paired]
    else:
        fractions = splits["random_patient"]["fractions"]
        for exam in sorted({p[0] for p in paired}):
            ids = sorted(p for p in paired if p[0] == exam)
            perm = np.random.default_rng(np.random.SeedSequence([seed])).permutation(len(ids))
            n_train = int(round(fractions[0] * len(ids)))
            n_val = int(round(fractions[1] * len(ids)))
            groups["train"] += sorted(ids[i] for i in perm[:n_train])
            groups["validation"] += sorted(ids[i] for i in perm[n_train : n_train + n_val])
            groups["test"] += sorted(ids[i] for i in perm[n_train + n_val :])
    if not groups["train"]:
        raise InputError(f"{report.root}: no paired training subject found for split '{split}'")
    train = _patient_pairs(report, groups["train"], "low", None, None)
    validation = _patient_pairs(report, groups["validation"], "low", None, None)
    test = _patient_pairs(report, groups["test"], "low", None, None)
    sections, counts = _sections(train, validation, test, report.root, seed, "low")
    metadata = {
        "name": f"tcia_ldct_{split}",
        "description": f"TCIA LDCT-and-Projection-data, split '{split}': unpaired training "
        "(low dose of one half of the training positions as noisy X, full dose of the other half as clean Y), "
        "paired validation/test.",
        "data_root": str(report.root),
        "split": split,
        "seed": seed,
        "exams": sorted({p[0] for p in paired}),
        "counts": counts,
        "split_info": {k: v for k, v in groups.items()},
        "generated_by": f"ldct_invrep {__version__} (ldct_invrep.data.preparation.write_tcia_datalist)",
    }
    return write_datalist(out_path, sections, metadata)


def write_image_set_datalist(report: ImageSetReport, manifest: dict[str, Any], out_path: str | Path) -> Path:
    """Datalist ``{"training" or "test": [{"image": file}]}`` of a verified natural-image set."""
    section = "training" if manifest["name"] in TRAINING_SETS else "test"
    entries = [{"image": f["path"]} for f in manifest["files"]]
    metadata = {
        "name": manifest["name"],
        "description": manifest.get("description", ""),
        "data_root": str(report.folder.resolve()),
        "source": manifest.get("source", {}),
        "generated_by": f"ldct_invrep {__version__} (ldct_invrep.data.preparation.write_image_set_datalist)",
    }
    return write_datalist(out_path, {section: entries}, metadata)


class IncompleteDatasetError(InputError):
    """A dataset copy whose report is NOT OK, when a complete one was required; ``report`` says what is wrong."""

    def __init__(self, report: ScanReport) -> None:
        super().__init__(
            f"{report.root}: the {report.dataset} copy is NOT OK (the report above names what); no datalist written. "
            "Fix the copy, or accept it as it is (prepare --accept-incomplete; a bundle: --accept_incomplete True; Python: require_ok=False)"
        )
        self.report = report


def prepare(
    dataset_name: str,
    root: str | Path,
    out: str | Path,
    split: str | None = None,
    read_headers: bool = True,
    require_ok: bool = False,
    **kwargs: Any,
) -> tuple[ScanReport | ImageSetReport | DevPairsReport, Path]:
    """Scan/verify ``root`` for ``dataset_name`` and write its datalist; returns ``(report, datalist_path)``.

    ``dataset_name``: "mayo2016", "tcia_ldct", "ldct-dev" (the real quarter/full-dose development pairs,
    ``ldct_invrep.data.dev_pairs``: a ``test`` section only), or an image set (``IMAGE_SETS``: "bsd68", "set12", "kodak24",
    "train400", "cbsd68", "cbsd432").
    ``out`` is the datalist file, or a folder (then ``<out>/<dataset>_<split>.json`` for the CT sets,
    ``<out>/<dataset>.json`` for image sets). Missing parts of a CT copy do not stop the datalist
    (``format_report(report)`` names them) unless ``require_ok`` (then :class:`IncompleteDatasetError`) or the
    split cannot be formed; an image set with missing or modified files raises ``InputError``. For mayo2016
    ``thickness`` (default: the split's) and ``kernel`` (default B30) also say which series the copy must have.
    Extra ``kwargs`` go to the writer.
    """
    out = Path(out)
    if dataset_name == "mayo2016":
        split = split or "patient"
        man = load_manifest("mayo2016")
        if split in man["splits"]:
            kwargs["thickness"] = kwargs.get("thickness") or man["splits"][split].get("default_thickness")
        kwargs["kernel"] = kwargs.get("kernel") or "B30"
        for key, known in (("thickness", man["thicknesses"]), ("kernel", man["kernels"])):
            if kwargs.get(key) is not None and kwargs[key] not in known:
                raise InputError(f"{kwargs[key]}: unknown Mayo {key} (use {', '.join(known)})")
        report: ScanReport | ImageSetReport = scan_mayo2016(
            root, read_headers=read_headers, manifest=man, thickness=kwargs.get("thickness"), kernel=kwargs["kernel"]
        )
        assert isinstance(report, ScanReport)
        if require_ok and not report.ok:
            raise IncompleteDatasetError(report)
        return report, write_mayo_datalist(report, _out_file(out, f"mayo2016_{split}"), split=split, **kwargs)
    if dataset_name == "tcia_ldct":
        split = split or "ldctbench"
        report = scan_tcia_ldct(root, read_headers=read_headers)
        assert isinstance(report, ScanReport)
        if require_ok and not report.ok:
            raise IncompleteDatasetError(report)
        return report, write_tcia_datalist(report, _out_file(out, f"tcia_ldct_{split}"), split=split, **kwargs)
    if dataset_name == DEV_SET:
        return write_dev_datalist(root, _out_file(out, "ldct_dev"))
    if dataset_name in IMAGE_SETS:
        manifest = load_manifest(dataset_name)
        report = verify_image_set(root, manifest)
        if not report.ok:
            raise InputError(
                f"{root}: {dataset_name} does not match its manifest: " + format_report(report).replace("\n", ";")
            )
        return report, write_image_set_datalist(report, manifest, _out_file(out, dataset_name))
    raise InputError(f"{dataset_name}: unknown dataset (use mayo2016, tcia_ldct, {DEV_SET}, {', '.join(IMAGE_SETS)})")


def _out_file(out: Path, stem: str) -> Path:
    return out / f"{stem}.json" if out.is_dir() or out.suffix.lower() != ".json" else out
