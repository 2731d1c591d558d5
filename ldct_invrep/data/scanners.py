"""Check a local copy of a paired LDCT dataset against its manifest (``data_manifests/``).

``scan_mayo2016`` (2016 AAPM-Mayo challenge) and ``scan_tcia_ldct`` (TCIA LDCT-and-Projection-data) walk a
folder, find the series by their folder names (the headers of the Mayo files say ``PatientID = Anonymous``,
so the patient comes from the path), optionally read every header (no pixel data) for slice positions, and
return a ``ScanReport``: what is present, missing patients and series, stray files, unreadable files and count
problems. ``format_report`` says it in words. Datalists are written from a report by ``ldct_invrep.data.preparation``.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydicom
from pydicom.errors import InvalidDicomError

from ldct_invrep.data.image_sets import ImageSetReport, format_image_set_report, name_list
from ldct_invrep.data.manifests import load_manifest
from ldct_invrep.errors import InputError

if TYPE_CHECKING:
    from ldct_invrep.data.dev_pairs import DevPairsReport

DICOM_SUFFIXES = {".ima", ".dcm", ""}
_HEADER_TAGS = ["Modality", "InstanceNumber", "ImagePositionPatient", "SliceThickness", "SeriesDescription"]


@dataclass
class SliceFile:
    """One image file of a series: its path, and (when headers were read) z position and instance number."""

    path: Path
    z: float | None = None
    instance: int | None = None


@dataclass
class SeriesScan:
    """One recognised series folder: patient/subject, dose ("full", "quarter" or "low"), thickness, kernel."""

    patient: str
    dose: str
    thickness: str | None
    kernel: str | None
    folder: Path
    slices: list[SliceFile] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.slices)

    @property
    def label(self) -> str:
        parts = [self.patient, self.dose, self.thickness or "", self.kernel or ""]
        return " ".join(p for p in parts if p)


@dataclass
class ScanReport:
    """What a scan found. ``ok`` means complete and clean: nothing missing, stray, unreadable or inconsistent."""

    dataset: str
    root: Path
    manifest: dict[str, Any]
    expected_patients: list[str]
    series: list[SeriesScan] = field(default_factory=list)
    missing_patients: list[str] = field(default_factory=list)
    missing_series: list[str] = field(default_factory=list)
    extra_patients: list[str] = field(default_factory=list)
    stray_files: list[Path] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    headers_read: bool = False

    @property
    def patients_present(self) -> list[str]:
        return sorted({s.patient for s in self.series})

    @property
    def ok(self) -> bool:
        return not (
            self.missing_patients or self.missing_series or self.stray_files or self.unreadable or self.warnings
        )

    def find(
        self, patient: str, dose: str, thickness: str | None = None, kernel: str | None = None
    ) -> SeriesScan | None:
        """The series of ``patient`` with this dose (and thickness/kernel where the dataset has them)."""
        for s in self.series:
            if s.patient == patient and s.dose == dose and s.thickness == thickness and s.kernel == kernel:
                return s
        return None

    def counts(self) -> dict[str, int]:
        """Slice count per series label."""
        return {s.label: s.n for s in sorted(self.series, key=lambda s: s.label)}


def _walk(root: Path) -> list[Path]:
    """Every non-hidden file under ``root`` (symlinked folders followed), sorted."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in filenames if not f.startswith("."))
    return sorted(out)


def _read_headers(series: list[SeriesScan], unreadable: list[Path]) -> dict[str, list[float]]:
    """Fill z/instance of every slice from its header; drop unreadable files. Returns thickness per series label."""
    thickness: dict[str, list[float]] = defaultdict(list)
    for s in series:
        kept = []
        for sl in s.slices:
            try:
                ds = pydicom.dcmread(sl.path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
            except (InvalidDicomError, OSError, ValueError, EOFError):
                unreadable.append(sl.path)
                continue
            if getattr(ds, "Modality", None) not in (None, "CT"):
                unreadable.append(sl.path)
                continue
            ipp = getattr(ds, "ImagePositionPatient", None)
            if ipp is not None and len(ipp) == 3:
                sl.z = round(float(ipp[2]), 3)
            if getattr(ds, "InstanceNumber", None) is not None:
                sl.instance = int(ds.InstanceNumber)
            if getattr(ds, "SliceThickness", None) not in (None, ""):
                thickness[s.label].append(float(ds.SliceThickness))
            kept.append(sl)
        s.slices = kept
    return thickness


def _sort_slices(s: SeriesScan) -> None:
    if all(sl.z is not None for sl in s.slices):
        s.slices.sort(key=lambda sl: (sl.z, sl.instance or 0, sl.path.name))
    elif all(sl.instance is not None for sl in s.slices):
        s.slices.sort(key=lambda sl: (sl.instance, sl.path.name))
    else:
        s.slices.sort(key=lambda sl: sl.path.name)


def _check_root(root: str | Path) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    return root.resolve()


# --------------------------------------------------------------------------------------------- Mayo 2016
def scan_mayo2016(
    root: str | Path,
    read_headers: bool = True,
    manifest: str | Path | dict | None = None,
    thickness: str | None = None,
    kernel: str | None = None,
) -> ScanReport:
    """Scan a local copy of the 2016 AAPM-Mayo data against ``data_manifests/mayo2016.json``.

    ``thickness`` ("1mm", "3mm") and ``kernel`` ("B30", "D45") name the series the copy is meant to have
    (a download of one thickness is complete without the other); by default every thickness of the required
    kernels is expected.

    Accepted layouts (see the manifest): ``<root>/<patient>/{full,quarter}_{1mm,3mm}[_sharp]/*.IMA`` and the
    series-first Box layout (``<root>/1mm B30/full_1mm/<patient>/full_1mm/*.IMA``): the patient is the path
    component matching ``L\\d{3}``, the series the component matching ``(full|quarter)_(1mm|3mm)(_sharp)?``.
    With ``read_headers`` every file's header is read (no pixels) for z position, instance and thickness.
    """
    root = _check_root(root)
    man = load_manifest(manifest if manifest is not None else "mayo2016")
    expected = list(man["patients"])
    patient_re = re.compile(man["patient_pattern"])
    series_re = re.compile(man["series_folder_pattern"])
    file_re = re.compile(man["file_pattern"]["regex"])
    tag_of = {d["file_tag"]: name for name, d in man["doses"].items()}
    prefix_to_dose = {d["folder_prefix"]: name for name, d in man["doses"].items()}
    suffix_to_kernel = {k["folder_suffix"]: name for name, k in man["kernels"].items()}
    report = ScanReport("mayo2016", root, man, expected, headers_read=read_headers)

    groups: dict[tuple[str, str, str, str], SeriesScan] = {}
    misplaced = 0
    for path in _walk(root):
        parts = (root.name, *path.relative_to(root).parts[:-1])  # root itself may be a patient folder
        patients = [p for p in parts if patient_re.match(p)]
        series_parts = [p for p in parts if series_re.match(p)]
        if not patients or not series_parts or path.suffix.lower() not in DICOM_SUFFIXES:
            report.stray_files.append(path)
            continue
        m = series_re.match(series_parts[-1])
        assert m is not None
        dose = prefix_to_dose[m.group(1)]
        kernel = suffix_to_kernel[m.group(3) or ""]
        key = (patients[-1], dose, m.group(2), kernel)
        fm = file_re.match(path.name)
        if fm and (
            tag_of.get(fm.group("tag")) != dose
            or f"{fm.group('thickness')}mm" != m.group(2)
            or fm.group("patient") != patients[-1]
        ):
            misplaced += 1
        s = groups.get(key)
        if s is None:
            s = groups[key] = SeriesScan(key[0], dose, key[2], kernel, path.parent)
        elif s.folder != path.parent:
            report.warnings.append(
                f"{key[0]} {dose}_{key[2]} {kernel}: files in two folders ({s.folder}, {path.parent})"
            )
        s.slices.append(SliceFile(path, instance=int(fm.group("instance")) if fm else None))
    report.series = sorted(groups.values(), key=lambda s: (s.patient, s.thickness or "", s.kernel or "", s.dose))
    if misplaced:
        report.warnings.append(f"{misplaced} file(s) whose name (patient/FD|QD/thickness) disagrees with their folder")
    report.warnings[:] = list(dict.fromkeys(report.warnings))

    if read_headers:
        thick = _read_headers(report.series, report.unreadable)
        for s in report.series:
            values = set(thick.get(s.label, []))
            want = float(man["thicknesses"][s.thickness])
            if values and values != {want}:
                report.warnings.append(
                    f"{s.label}: SliceThickness {sorted(values)} in the headers, folder says {s.thickness}"
                )
    for s in report.series:
        _sort_slices(s)
    report.series = [s for s in report.series if s.n > 0]

    present = set(report.patients_present)
    report.missing_patients = [p for p in expected if p not in present]
    report.extra_patients = sorted(present - set(expected))
    required_kernels = [kernel] if kernel else [k for k, v in man["kernels"].items() if v.get("required")]
    for p in expected:
        if p not in present:
            continue
        for thick in [thickness] if thickness else man["thicknesses"]:
            for kern in required_kernels:
                for dose in man["doses"]:
                    if report.find(p, dose, thick, kern) is None:
                        report.missing_series.append(f"{p} {dose}_{thick} {kern}")
    for p in sorted(present):
        for thickness in man["thicknesses"]:
            for kernel in man["kernels"]:
                full, quarter = report.find(p, "full", thickness, kernel), report.find(p, "quarter", thickness, kernel)
                if full and quarter and full.n != quarter.n:
                    report.warnings.append(
                        f"{p} {thickness} {kernel}: {full.n} full-dose but {quarter.n} quarter-dose slices"
                    )
    _check_expected_totals(report)
    return report


def _check_expected_totals(report: ScanReport) -> None:
    man = report.manifest
    if report.missing_patients:
        return
    expected = man.get("expected_counts", {})
    total3 = expected.get("3mm", {}).get("slices_per_dose_all_patients")
    for dose in man["doses"]:
        n3 = sum(
            s.n
            for s in report.series
            if s.dose == dose and s.thickness == "3mm" and s.kernel == "B30" and s.patient in report.expected_patients
        )
        if total3 and n3 and n3 != total3:
            report.warnings.append(f"3mm B30 {dose} dose: {n3} slices in total, the manifest expects {total3}")
    paper = expected.get("paper_total_images", {}).get("value")
    n1 = sum(
        s.n
        for s in report.series
        if s.dose == "full" and s.thickness == "1mm" and s.kernel == "B30" and s.patient in report.expected_patients
    )
    if paper and n1 and n1 != paper:
        report.notes.append(
            f"1mm B30 full dose: {n1} slices; the paper's total is {paper} images (thickness not stated)"
        )


# --------------------------------------------------------------------------------------------- TCIA
def _tcia_dose(folder_name: str) -> str | None:
    name = folder_name.lower()
    if "full dose" in name:
        return "full"
    if "low dose" in name:
        return "low"
    return None


def scan_tcia_ldct(
    root: str | Path, read_headers: bool = True, manifest: str | Path | dict | None = None
) -> ScanReport:
    """Scan a local copy of TCIA LDCT-and-Projection-data (image series) against ``data_manifests/tcia_ldct.json``.

    A series folder is recognised by "Full Dose"/"Low Dose" in its name (the NBIA Data Retriever names them
    ``1.000000-Full Dose Images-NNNNN``); the subject is the path component matching ``[CLN]\\d{3}``.
    ``metadata.csv`` and other files at the top level are not reported as stray; other unrecognised files are.
    Expected subjects are those of the ldct-benchmark split for the exam types (C/L/N) present in the copy.
    """
    root = _check_root(root)
    man = load_manifest(manifest if manifest is not None else "tcia_ldct")
    subject_re = re.compile(man["subject_pattern"])
    report = ScanReport("tcia_ldct", root, man, [], headers_read=read_headers)
    groups: dict[tuple[str, str], SeriesScan] = {}
    for path in _walk(root):
        folders = path.relative_to(root).parts[:-1]
        parts = (root.name, *folders)  # root itself may be a subject folder
        subjects = [p for p in parts if subject_re.match(p)]
        doses = [(p, _tcia_dose(p)) for p in parts if _tcia_dose(p)]
        if not subjects or not doses or path.suffix.lower() not in DICOM_SUFFIXES:
            # files in the top one or two levels outside subjects (metadata.csv, licences) are expected
            if subjects or doses or len(folders) > 1:
                report.stray_files.append(path)
            continue
        folder_name, dose = doses[-1]
        key = (subjects[-1], dose)
        s = groups.get(key)
        if s is None:
            s = groups[key] = SeriesScan(subjects[-1], dose, None, None, path.parent)
        elif s.folder != path.parent:
            report.warnings.append(
                f"{key[0]} {dose}: files in two series folders ({s.folder.name}, {path.parent.name})"
            )
        digits = re.findall(r"\d+", path.stem)
        s.slices.append(SliceFile(path, instance=int(digits[-1]) if digits else None))
    report.series = sorted(groups.values(), key=lambda s: (s.patient, s.dose))
    report.warnings[:] = list(dict.fromkeys(report.warnings))
    if read_headers:
        _read_headers(report.series, report.unreadable)
    for s in report.series:
        _sort_slices(s)
    report.series = [s for s in report.series if s.n > 0]

    present = set(report.patients_present)
    exams = sorted({p[0] for p in present})
    bench = man["splits"]["ldctbench"]
    listed = [p for k in ("train", "validation", "test") for p in bench[k]]
    report.expected_patients = [p for p in listed if p[0] in exams]
    report.missing_patients = [p for p in report.expected_patients if p not in present]
    report.extra_patients = sorted(present - set(listed))
    for p in sorted(present):
        full, low = report.find(p, "full"), report.find(p, "low")
        if full is None or low is None:
            report.missing_series.append(f"{p} {'low' if full else 'full'} dose (subject unpaired)")
        elif full.n != low.n:
            report.warnings.append(f"{p}: {full.n} full-dose but {low.n} low-dose slices")
    if report.missing_patients:
        report.notes.append(
            f"exam types present: {', '.join(exams) or 'none'}; missing subjects only matter for the 'ldctbench' split"
        )
    return report


# --------------------------------------------------------------------------------------------- reporting
def format_report(report: ScanReport | ImageSetReport | DevPairsReport, limit: int = 12) -> str:
    """A readable summary that names what is missing, stray, unreadable or inconsistent."""
    from ldct_invrep.data.dev_pairs import DevPairsReport

    if isinstance(report, ImageSetReport):
        return format_image_set_report(report, limit)
    if isinstance(report, DevPairsReport):
        return report.format()
    lines = [f"{report.dataset} at {report.root}"]
    present = report.patients_present
    lines.append(f"  patients found ({len(present)}): {name_list(present, 50) or 'none'}")
    if report.missing_patients:
        lines.append(f"  MISSING patients ({len(report.missing_patients)}): {name_list(report.missing_patients, 50)}")
    if report.extra_patients:
        lines.append(f"  patients not in the manifest (ignored by the datalists): {name_list(report.extra_patients)}")
    if report.missing_series:
        lines.append(f"  MISSING series ({len(report.missing_series)}): {name_list(report.missing_series, limit)}")
    by_kind: dict[str, list[SeriesScan]] = defaultdict(list)
    for s in report.series:
        by_kind[" ".join(x for x in (s.dose, s.thickness, s.kernel) if x)].append(s)
    for kind, items in sorted(by_kind.items()):
        lines.append(f"  {kind}: {len(items)} series, {sum(s.n for s in items)} slices")
    if report.stray_files:
        rel = [p.relative_to(report.root) if p.is_relative_to(report.root) else p for p in report.stray_files]
        lines.append(f"  STRAY files ({len(rel)}): {name_list(rel, limit)}")
    if report.unreadable:
        lines.append(f"  UNREADABLE / non-CT files ({len(report.unreadable)}): {name_list(report.unreadable, limit)}")
    for w in report.warnings:
        lines.append(f"  WARNING: {w}")
    for n in report.notes:
        lines.append(f"  note: {n}")
    if not report.headers_read:
        lines.append("  note: headers not read (slices paired by file-name instance numbers)")
    lines.append("  OK: complete and consistent" if report.ok else "  NOT OK: see above")
    return "\n".join(lines)
