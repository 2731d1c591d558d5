"""Checksummed natural-image test/training sets (BSD68, Set12, Kodak24, Train400): build and verify manifests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from ldct_invrep.data.manifests import load_manifest
from ldct_invrep.errors import InputError

SKIP_NAMES = {"SHA256SUMS", "SOURCES.md", "README.md"}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _data_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name not in SKIP_NAMES
    )


@dataclass
class ImageSetReport:
    """Result of ``verify_image_set``: ``ok`` when every listed file is present with the right checksum."""

    name: str
    folder: Path
    n_expected: int
    n_verified: int = 0
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # wrong sha256 or size
    extra: list[str] = field(default_factory=list)  # files not in the manifest (not an error)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched and self.n_verified == self.n_expected


def verify_image_set(folder: str | Path, manifest: str | Path | dict[str, Any]) -> ImageSetReport:
    """Check ``folder`` against a manifest (name, path or dict): presence, size and SHA-256 of every file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    man = load_manifest(manifest)
    listed = {f["path"]: f for f in man["files"]}
    report = ImageSetReport(name=str(man.get("name", "")), folder=folder, n_expected=len(listed))
    for rel, entry in listed.items():
        p = folder / rel
        if not p.is_file():
            report.missing.append(rel)
        elif p.stat().st_size != entry["bytes"] or sha256_file(p) != entry["sha256"]:
            report.mismatched.append(rel)
        else:
            report.n_verified += 1
    report.extra = [p.name for p in _data_files(folder) if p.name not in listed]
    return report


def name_list(items: list[Any], limit: int = 12) -> str:
    """``"a, b, c (+N more)"``: the first ``limit`` items, then how many were left out."""
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def format_image_set_report(report: ImageSetReport, max_names: int = 10) -> str:
    """Human-readable summary naming what is missing or modified."""
    lines = [f"{report.name or 'image set'} at {report.folder}: {report.n_verified}/{report.n_expected} files verified"]
    if report.missing:
        lines.append(f"  missing ({len(report.missing)}): {name_list(report.missing, max_names)}")
    if report.mismatched:
        lines.append(f"  checksum/size mismatch ({len(report.mismatched)}): {name_list(report.mismatched, max_names)}")
    if report.extra:
        lines.append(f"  not in the manifest ({len(report.extra)}): {name_list(report.extra, max_names)}")
    lines.append("  OK" if report.ok else "  NOT OK")
    return "\n".join(lines)
