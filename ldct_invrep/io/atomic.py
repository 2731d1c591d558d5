"""All-or-nothing outputs: write into a hidden sibling, rename into place only on success.

A crash, an exception or Ctrl-C while writing leaves no half-written output folder or file behind,
and an existing output is replaced only after the new one is complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ldct_invrep.errors import InputError

__all__ = ["atomic_output_dir", "atomic_output_file", "atomic_replace", "check_output_location"]

logger = logging.getLogger(__name__)


def _sibling(target: Path, tag: str) -> Path:
    """A hidden, unique name next to ``target`` that keeps its name (and so its suffixes) at the end."""
    return target.parent / f".{tag}-{uuid.uuid4().hex[:12]}-{target.name}"


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_location(input_path: str | os.PathLike, output_path: str | os.PathLike) -> None:
    """Refuse outputs that would mix with or destroy the input.

    Raises :class:`InputError` when the output is the input itself, lies inside the input folder
    (a later folder scan would pick the derived files up), or contains the input (replacing it with
    ``overwrite`` would delete the input).
    """
    inp = Path(input_path).expanduser().resolve()
    out = Path(output_path).expanduser().resolve()
    if out == inp:
        raise InputError(f"{output_path}: output is the input itself; choose another output location")
    if inp.is_dir() and _is_within(out, inp):
        raise InputError(f"{output_path}: output is inside the input folder {input_path}; choose a location outside it")
    if _is_within(inp, out):
        raise InputError(f"{output_path}: output would contain the input {input_path}; choose another output location")


def _check_target(target: Path, overwrite: bool, *, want_dir: bool) -> None:
    if not (target.exists() or target.is_symlink()):
        return
    kind_ok = target.is_dir() if want_dir else target.is_file()
    if not kind_ok:
        what = "a file" if want_dir else "a folder (or not a regular file)"
        raise InputError(f"{target}: output exists and is {what}; choose another output location")
    if not overwrite:
        raise InputError(f"{target}: output already exists; choose another location or allow overwrite")


@contextmanager
def atomic_output_dir(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary folder next to ``target``; rename it to ``target`` when the block succeeds.

    On an exception the temporary folder is removed and ``target`` is left as it was (absent, or the
    previous output when ``overwrite``). An existing ``target`` raises :class:`InputError` unless
    ``overwrite``; then it is replaced only after the new output is complete.
    """
    target = Path(target).expanduser().absolute()
    _check_target(target, overwrite, want_dir=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target, "tmp")
    tmp.mkdir()  # honours the umask, unlike tempfile.mkdtemp (0o700)
    try:
        yield tmp
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


@contextmanager
def atomic_output_file(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``target`` (same name ending, e.g. ``.nii.gz``); move it into place on success.

    The temporary path does not exist yet; the caller writes it. On an exception it is removed and
    ``target`` is untouched. An existing ``target`` raises :class:`InputError` unless ``overwrite``.
    """
    target = Path(target).expanduser().absolute()
    _check_target(target, overwrite, want_dir=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target, "tmp")
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"{tmp}: nothing was written")
        _check_target(target, overwrite, want_dir=False)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
