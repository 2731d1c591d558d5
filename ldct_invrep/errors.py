"""Error types the command line turns into one-line messages, the OSErrors that count as bad input, and
:func:`as_flag`, the one reading of a yes/no setting given as text; :func:`as_count`, of a whole-number one.

An :class:`InputError` carries its parts: the ``path`` (file, folder or argument) at fault, the ``problem``
and any :class:`Remedy` naming a parameter. ``str(error)`` words the remedies for the Python API
(``force=True``); the command line prints :meth:`InputError.cli_message`, the same line in terms of the
running command's options (``--force``), with no rewriting of the text.
"""

from __future__ import annotations

import errno
from collections.abc import Collection, Sequence
from dataclasses import dataclass

__all__ = [
    "PLACE_ERRNOS", "WRITE_ERRNOS", "InputError", "Remedy", "as_count", "as_flag", "first_line", "input_error_cause", "os_error_cause",
]  # fmt: skip

#: ``OSError`` numbers of the place being written (disk full, quota, read-only, file too large): not bugs.
WRITE_ERRNOS = frozenset(
    e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS, errno.EFBIG) if e is not None
)
#: ... and of a place that cannot be used at all (permissions, name too long, a file where a folder should be).
PLACE_ERRNOS = WRITE_ERRNOS | {errno.EACCES, errno.EPERM, errno.ENAMETOOLONG, errno.ENOTDIR}


@dataclass(frozen=True)
class Remedy:
    """The end of an error message that names a parameter, worded for the Python API (``api``) and for the
    command line (``cli``). ``option`` is the command-line option ``cli`` needs: a command without it shows
    ``otherwise`` instead ("" leaves the remedy out). Texts are appended as they are (leading space or
    punctuation included)."""

    api: str
    cli: str
    option: str | None = None
    otherwise: str = ""

    def for_cli(self, options: Collection[str] | None) -> str:
        """The command-line wording for a command with ``options`` (None: every option is available)."""
        if self.option is None or options is None or self.option in options:
            return self.cli
        return self.otherwise


class InputError(ValueError):
    """Bad user input: a missing, unreadable or unsupported file or folder, or a bad argument.

    ``InputError(path, problem, remedies=...)`` reads ``"<path>: <problem><remedies>"``, e.g.
    ``InputError(folder, "no DICOM files found")``. ``InputError(message)`` is a message that names its
    subject itself (an argument rather than a file: ``"window 'x': unknown window name"``). The CLI prints one
    line and exits with status 2; nothing is written.
    """

    def __init__(self, path: object, problem: str | None = None, *, remedies: Sequence[Remedy] = ()) -> None:
        if problem is None:
            path, problem = None, str(path)
        self.path = path
        self.problem = problem
        self.remedies = tuple(remedies)
        super().__init__(self._line("".join(r.api for r in self.remedies)))

    def _line(self, remedies: str) -> str:
        text = f"{self.problem}{remedies}"
        return text if self.path is None else f"{self.path}: {text}"

    def cli_message(self, options: Collection[str] | None = None) -> str:
        """The one line the command line prints: remedies in terms of ``options``, the running command's
        option names (None: every option is available)."""
        return " ".join(self._line("".join(r.for_cli(options) for r in self.remedies)).split())


def input_error_cause(exc: BaseException) -> InputError | None:
    """The :class:`InputError` an exception is or wraps, if any: MONAI re-raises the error of a config expression
    as ``RuntimeError("Failed to evaluate ConfigExpression ...")`` and of a transform as ``RuntimeError("applying
    transform ...")``, each from the one before (bundles under ``monai.bundle run`` and ``ldct-invrep train``)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, InputError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def os_error_cause(exc: BaseException) -> OSError | None:
    """The first ``OSError`` with an errno in ``exc`` and its causes: libraries re-raise a write's ``OSError``
    without its errno (pydicom: ``OSError("With tag (7FE0,0010) got exception: ...")`` from the real one)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno is not None:
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def first_line(exc: BaseException, limit: int = 300) -> str:
    """``exc``'s message on one line, at most ``limit`` characters (its type's name when it has none)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


_FLAG_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def as_flag(value: object, name: str) -> bool:
    """The yes/no setting ``name`` as a bool: a bool, 0 or 1, or one of true/false/yes/no/1/0 in any case.

    ``python -m monai.bundle run --overwrite false`` passes the *string* ``'false'`` (its command line reads only
    ``True``/``False`` as booleans), which ``bool()`` would take as true; anything else raises :class:`InputError`.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _FLAG_WORDS:
        return _FLAG_WORDS[value.strip().lower()]
    raise InputError(f"{name} {value!r}: not a yes/no value (True or False)")


def as_count(value: object, name: str, minimum: int = 1) -> int:
    """The whole-number setting ``name`` (threads, a batch size, an iteration count) as an int ``>= minimum``.

    ``python -m monai.bundle run --threads -1`` or ``--batch_size abc`` reached torch or a data loader as they
    were and ended in a traceback of their own; anything but an int (not a bool) ``>= minimum`` raises
    :class:`InputError` naming the setting.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} {value!r}: not a whole number >= {minimum}")
    return value
