"""All-or-nothing outputs, and the one convention for what ldct-invrep may replace.

Outputs are written into a hidden sibling and renamed into place only on success: a crash, an exception,
Ctrl-C or SIGTERM while writing leaves no half-written output folder or file behind, and an existing output
is replaced only after the new one is complete.

Output marker (the single source of truth for "this tool wrote it"):

* every output *folder* gets a file :data:`OUTPUT_MARKER` listing the entries the tool wrote in it;
* an output *file* carries the stamp in itself: a NIfTI's ``descrip`` starts with :data:`OWNER`, a JSON
  document has the key :data:`JSON_STAMP_KEY`, a torch checkpoint (``.pt``: models, training states) a
  ``format`` starting with :data:`OWNER`.

``overwrite`` replaces only such outputs, and only when they hold nothing else (:func:`check_replaceable`);
anything else is refused with :class:`InputError`. Temporary siblings are named
``.tmp-<host>-<pid>-<random>-<name>`` (``.old-...`` for an output being replaced), so folder scans can skip
them (:func:`is_temporary_name`) and a later run can remove those of a dead process
(:func:`clean_stale_temporaries`; SIGKILL cannot be caught).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import uuid
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ldct_invrep import __version__
from ldct_invrep.errors import PLACE_ERRNOS as _PLACE_ERRNOS
from ldct_invrep.errors import WRITE_ERRNOS as _WRITE_ERRNOS
from ldct_invrep.errors import InputError, Remedy, as_flag, os_error_cause

__all__ = [
    "JSON_STAMP_KEY",
    "OUTPUT_MARKER",
    "OWNER",
    "StagedOutputDir",
    "atomic_output_dir",
    "atomic_output_file",
    "atomic_replace",
    "check_output_location",
    "check_output_parent",
    "check_replaceable",
    "clean_stale_temporaries",
    "is_own_file",
    "is_temporary_name",
    "mark_output_dir",
]

logger = logging.getLogger(__name__)

OWNER = "ldct-invrep"
"""Stamp of everything the tool writes (NIfTI ``descrip`` prefix, marker ``written_by``)."""
OUTPUT_MARKER = ".ldct-invrep-output"
"""File in every output folder: JSON ``{"written_by", "version", "entries"}``, the names the tool wrote there."""
JSON_STAMP_KEY = "ldct_invrep_version"
"""Top-level key of every JSON document the tool writes (metrics, datalists)."""
#: How an existing output can be replaced (``errors.Remedy``: API and command-line wording).
OR_OVERWRITE = Remedy(" or allow overwrite", " or pass --overwrite", "--overwrite")

_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
_TEMP_RE = re.compile(
    r"^\.(?P<tag>tmp|old)-(?:(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]{6}|[0-9a-f]{12})-(?P<name>.+)$"
)


def _sibling(target: Path, tag: str) -> Path:
    """A hidden, unique name next to ``target`` naming this host and process, ending in ``target``'s name."""
    return target.parent / f".{tag}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:6]}-{target.name}"


def is_temporary_name(name: str) -> bool:
    """True for the hidden temporary siblings this module makes (folder scans skip them)."""
    return _TEMP_RE.match(name) is not None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale_temporaries(target: str | os.PathLike) -> None:
    """Remove the temporaries of ``target`` left by a killed run of this host (its process is gone).

    A stale ``.old-`` sibling is a previous output caught in the middle of its replacement: it is put back
    when ``target`` is missing, removed otherwise. Temporaries of live processes and other hosts are kept.
    """
    target = Path(target)
    try:
        siblings = list(target.parent.iterdir())
    except OSError:
        return
    for sib in siblings:
        m = _TEMP_RE.match(sib.name)
        if m is None or m["name"] != target.name or m["host"] != _HOST or _pid_alive(int(m["pid"])):
            continue
        if m["tag"] == "old" and not (target.exists() or target.is_symlink()):
            os.rename(sib, target)
            logger.warning("%s: restored the previous output from an interrupted replacement (%s)", target, sib.name)
        else:
            _remove(sib)
            logger.info("%s: removed %s, left by an interrupted run", target, sib.name)


# --------------------------------------------------------------------------------------------- marker
def mark_output_dir(folder: str | os.PathLike, entries: Iterable[str] | None = None) -> None:
    """Write :data:`OUTPUT_MARKER` into ``folder`` listing ``entries`` (default: what the folder holds now)."""
    folder = Path(folder)
    names = sorted(p.name for p in folder.iterdir() if p.name != OUTPUT_MARKER) if entries is None else sorted(entries)
    doc = {"written_by": OWNER, "version": __version__, "entries": names}
    (folder / OUTPUT_MARKER).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def _marker_entries(folder: Path) -> set[str] | None:
    try:
        doc = json.loads((folder / OUTPUT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("written_by") != OWNER or not isinstance(doc.get("entries"), list):
        return None
    return {str(e) for e in doc["entries"]}


def is_own_file(path: str | os.PathLike) -> bool:
    """True for a file that carries the tool's stamp (NIfTI ``descrip``, JSON :data:`JSON_STAMP_KEY`, a ``.pt``
    checkpoint's ``format``)."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            descrip = nib.load(str(path)).header["descrip"].item()
            return (descrip.decode("latin-1") if isinstance(descrip, bytes) else str(descrip)).startswith(OWNER)
        if name.endswith(".pt"):
            import torch

            payload = torch.load(path, map_location="cpu", weights_only=True)
            return isinstance(payload, dict) and str(payload.get("format", "")).startswith(OWNER)
        if name.endswith(".json"):
            doc = json.loads(path.read_text(encoding="utf-8"))
            legacy = isinstance(doc, dict) and str(doc.get("generated_by", "")).startswith("ldct_invrep ")
            return isinstance(doc, dict) and (JSON_STAMP_KEY in doc or legacy)
    except Exception:  # noqa: BLE001 - an unreadable file is not ours
        return False
    return False


def check_replaceable(path: str | os.PathLike) -> None:
    """Raise :class:`InputError` unless ``path`` is absent, an empty folder, or a whole output of this tool.

    A folder is the tool's when it holds :data:`OUTPUT_MARKER` and nothing that the marker does not list
    (listed sub-folders are checked the same way); a file when :func:`is_own_file`.
    """
    path = Path(path)
    if path.is_symlink():
        raise InputError(f"{path}: output is a symbolic link; refusing to replace it, choose another output location")
    if not path.exists():
        return
    if path.is_dir():
        children = sorted(path.iterdir())
        if not children:
            return
        entries = _marker_entries(path)
        if entries is None:
            raise InputError(
                f"{path}: folder exists and is not an output of {OWNER} (no {OUTPUT_MARKER} in it); "
                "refusing to replace it, choose another output location"
            )
        for child in children:
            if child.name == OUTPUT_MARKER:
                continue
            if child.name not in entries or child.is_symlink() or not (child.is_dir() or child.is_file()):
                raise InputError(
                    f"{child}: not written by {OWNER}; refusing to replace the folder {path} that holds it "
                    "(move it away or choose another output location)"
                )
            if child.is_dir():
                check_replaceable(child)
        return
    if not path.is_file() or not is_own_file(path):
        raise InputError(
            f"{path}: file exists and was not written by {OWNER}; refusing to replace it, choose another output location"
        )


# --------------------------------------------------------------------------------------------- locations
def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_location(
    input_path: str | os.PathLike, output_path: str | os.PathLike, also_read: Iterable[str | os.PathLike] = ()
) -> None:
    """Refuse outputs that would mix with or destroy what is read.

    Raises :class:`InputError` when the output is the input itself, lies inside the input folder
    (a later folder scan would pick the derived files up), or contains the input or any of ``also_read``
    (e.g. the weights file: replacing the output with ``overwrite`` would delete it).
    """
    inp = Path(input_path).expanduser().resolve()
    out = Path(output_path).expanduser().resolve()
    if out == inp:
        raise InputError(f"{output_path}: output is the input itself; choose another output location")
    if inp.is_dir() and _is_within(out, inp):
        raise InputError(f"{output_path}: output is inside the input folder {input_path}; choose a location outside it")
    if _is_within(inp, out):
        raise InputError(f"{output_path}: output would contain the input {input_path}; choose another output location")
    for other in also_read:
        if _is_within(Path(other).expanduser().resolve(), out):
            raise InputError(f"{output_path}: output would contain {other}, which this command reads; choose another output location")


def check_output_parent(target: str | os.PathLike) -> None:
    """Raise :class:`InputError` when the folder ``target`` goes in cannot be made because part of its path is
    a file (``out.txt/result.json``); ``mkdir`` would fail with a bare "File exists" or "Not a directory"."""
    target = Path(target).expanduser().absolute()
    for folder in target.parents:
        if folder.exists():
            if not folder.is_dir():
                raise InputError(f"{target}: cannot write the output: {folder} is a file, not a folder")
            return


def _make_parent(target: Path) -> None:
    """Create ``target``'s folder: :func:`check_output_parent`, then place errors as :class:`InputError`."""
    check_output_parent(target)
    with _place_errors(target, _PLACE_ERRNOS):
        target.parent.mkdir(parents=True, exist_ok=True)


def _check_target(target: Path, overwrite: bool, *, want_dir: bool, own_only: bool = True) -> None:
    if not (target.exists() or target.is_symlink()):
        return
    kind_ok = not target.is_symlink() and (target.is_dir() if want_dir else target.is_file())
    if not kind_ok:
        what = "a symbolic link" if target.is_symlink() else "a file" if want_dir else "a folder (or not a regular file)"
        raise InputError(f"{target}: output exists and is {what}; choose another output location")
    if not overwrite:
        raise InputError(target, "output already exists; choose another location", remedies=[OR_OVERWRITE])
    if own_only:
        check_replaceable(target)


@contextmanager
def _place_errors(target: Path, errnos: frozenset[int]) -> Iterator[None]:
    """An ``OSError`` of the output place (disk full, read-only, ...) as one-line :class:`InputError`."""
    try:
        yield
    except OSError as exc:
        cause = os_error_cause(exc)
        if cause is None or cause.errno not in errnos:
            raise
        raise InputError(f"{target}: cannot write the output: {cause.strerror or os.strerror(cause.errno)}") from exc


@contextmanager
def atomic_output_dir(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary folder next to ``target``; rename it to ``target`` when the block succeeds.

    The folder gets :data:`OUTPUT_MARKER` listing what the block wrote. On an exception the temporary folder
    is removed and ``target`` is left as it was (absent, or the previous output when ``overwrite``). An
    existing ``target`` raises :class:`InputError` unless ``overwrite`` and :func:`check_replaceable`; then it
    is replaced only after the new output is complete. Disk full, read-only or permission errors become
    :class:`InputError` naming ``target``.
    """
    target = Path(target).expanduser().absolute()
    clean_stale_temporaries(target)  # first: it may put back a previous output
    _check_target(target, overwrite, want_dir=True)
    _make_parent(target)
    with _place_errors(target, _PLACE_ERRNOS):
        tmp = _sibling(target, "tmp")
        tmp.mkdir()  # honours the umask, unlike tempfile.mkdtemp (0o700)
    try:
        with _place_errors(target, _WRITE_ERRNOS):
            yield tmp
        with _place_errors(target, _PLACE_ERRNOS):
            mark_output_dir(tmp)
            _check_target(target, overwrite, want_dir=True)  # it may have appeared meanwhile
            if target.exists():
                old = _sibling(target, "old")
                os.rename(target, old)
                try:
                    os.rename(tmp, target)
                except BaseException:
                    os.rename(old, target)
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, target)
        logger.debug("wrote %s", target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class StagedOutputDir:
    """:func:`atomic_output_dir` for writers that cannot run inside a ``with`` block (a MONAI bundle's
    ``SaveImaged``, whose run ends in the config's ``finalize``): write into :attr:`path`, then :meth:`commit`.

    ``target`` is checked when this is made, before anything is written: not one of ``inputs``, inside or around
    one (:func:`check_output_location`), not existing unless ``overwrite`` and ours. Until :meth:`commit` nothing
    is at ``target``, and a run that never commits (an exception) leaves nothing behind: the temporary folder is
    removed when this object is collected or the interpreter exits (a killed run's by the next run,
    :func:`clean_stale_temporaries`).
    """

    def __init__(self, target: str | os.PathLike, overwrite: bool = False, inputs: Iterable[str | os.PathLike | None] = ()) -> None:
        for read in inputs:
            if read is not None:
                check_output_location(read, target)
        self.target = Path(target).expanduser().absolute()
        self._ctx = atomic_output_dir(self.target, as_flag(overwrite, "overwrite"))
        self.path: Path = self._ctx.__enter__()
        error = RuntimeError(f"{self.target}: the output was not completed")
        self._discard = weakref.finalize(self, self._ctx.__exit__, RuntimeError, error, None)

    def commit(self) -> Path:
        """Move everything written into :attr:`path` to ``target`` (marked as ldct-invrep's); returns ``target``."""
        if self._discard.detach() is not None:
            self._ctx.__exit__(None, None, None)
        return self.target


@contextmanager
def atomic_output_file(target: str | os.PathLike, overwrite: bool = False, own_only: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``target`` (same name ending, e.g. ``.nii.gz``); move it into place on success.

    The temporary path does not exist yet; the caller writes it. On an exception it is removed and
    ``target`` is untouched. An existing ``target`` raises :class:`InputError` unless ``overwrite``; with
    ``own_only`` also unless it carries the tool's stamp (:func:`is_own_file`). Disk full, read-only or
    permission errors become :class:`InputError` naming ``target``.
    """
    target = Path(target).expanduser().absolute()
    clean_stale_temporaries(target)
    _check_target(target, overwrite, want_dir=False, own_only=own_only)
    _make_parent(target)
    tmp = _sibling(target, "tmp")
    try:
        with _place_errors(target, _WRITE_ERRNOS):
            yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"{tmp}: nothing was written")
        _check_target(target, overwrite, want_dir=False, own_only=own_only)
        with _place_errors(target, _PLACE_ERRNOS):
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_replace(path: str | os.PathLike) -> Iterator[str]:
    """Yield the name of a new, empty temporary file next to ``path``; it replaces ``path`` when the block succeeds.

    Unlike :func:`atomic_output_file` there is no overwrite check: an existing file is always replaced. The
    temporary file is made by ``tempfile.mkstemp`` (hidden ``.<name>.*.tmp``, mode 0600, which the result keeps);
    ``path``'s folder is created if needed. On an exception it is removed and ``path`` is untouched.
    """
    path = Path(path)
    _make_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
