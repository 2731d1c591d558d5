"""Console behaviour of ``ldct-invrep``: exit statuses, one-line errors, warnings and log lines on stderr.

``ExitStatusGroup`` (the click group class) maps exceptions to exit statuses: :class:`InputError` -> 2 (one
line ``error: <path>: <problem>``), ``KeyboardInterrupt`` -> 130, anything unexpected -> 1 (one line and a
hint to rerun with ``--debug``, which shows the traceback). click's own usage errors keep their status 2.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import click

from ldct_invrep.errors import InputError

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "CLIError", "ExitStatusGroup", "first_line", "say"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CLIError(click.ClickException):
    """A one-line ``error: ...`` message and an exit status."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE, hint: str | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.hint = hint

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)
        if self.hint:
            click.echo(f"hint: {self.hint}", err=True)


# The data layer names its keyword arguments in messages; on the command line they are options.
_API_TO_OPTION = (
    (r"\bforce=True\b", "--force"),
    (r"\bread_all_series\b", "--all-series"),
    (r"\bseries_uid\b", "--series-uid"),
    (r"\ballow overwrite\b", "pass --overwrite"),
    (r"\bfix the file or pass a fill value\b", "fix the file (e.g. set them to -1024 HU)"),
)


def _cli_wording(message: str) -> str:
    """Rewrite the part after ``<path>: `` of an :class:`InputError` in terms of command-line options."""
    text = " ".join(str(message).split())
    head, sep, tail = text.partition(": ")
    if not sep:
        head, tail = "", text
    for pattern, option in _API_TO_OPTION:
        tail = re.sub(pattern, option, tail)
    return f"{head}{sep}{tail}"


def _echo_err(line: str) -> None:
    """One line on the current stderr without breaking a running progress bar."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings (e.g. pydicom's about a damaged file) as one ``warning: ...`` line, no source location."""
    _echo_err("warning: " + " ".join(str(message).split()))


class _EchoHandler(logging.Handler):
    """Log records as ``warning: ...`` lines on the current stderr (resolved at each call, so CliRunner sees them)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            prefix = {logging.WARNING: "warning: ", logging.ERROR: "error: ", logging.CRITICAL: "error: "}.get(record.levelno, "")
            _echo_err(prefix + record.getMessage())
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class ExitStatusGroup(click.Group):
    """Turns exceptions into exit statuses: InputError -> 2, KeyboardInterrupt -> 130, anything else -> 1."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        handler = _EchoHandler()
        package_logger = logging.getLogger("ldct_invrep")
        saved = package_logger.level, package_logger.propagate
        package_logger.addHandler(handler)
        package_logger.setLevel(logging.DEBUG if debug else logging.INFO if ctx.params.get("verbose") else logging.WARNING)
        package_logger.propagate = False
        saved_showwarning = warnings.showwarning
        if not debug:
            warnings.showwarning = _show_warning
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except InputError as exc:
            if debug:
                click.echo(traceback.format_exc(), err=True)
            raise CLIError(_cli_wording(str(exc)), EXIT_USAGE) from exc
        except KeyboardInterrupt as exc:
            if debug:
                click.echo(traceback.format_exc(), err=True)
            raise CLIError("interrupted; no partial output was left behind", EXIT_INTERRUPTED) from exc
        except MemoryError as exc:
            raise CLIError(f"out of memory ({exc}); try a smaller --batch-size", EXIT_FAILURE) from exc
        except Exception as exc:
            if debug:
                click.echo(traceback.format_exc(), err=True)
                raise CLIError(f"{type(exc).__name__}: {' '.join(str(exc).split())}", EXIT_FAILURE) from exc
            if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError, without importing torch here
                raise CLIError(f"out of memory: {first_line(exc)}; try a smaller --batch-size", EXIT_FAILURE) from exc
            argv = " ".join(sys.argv[1:]) if Path(sys.argv[0]).name.startswith("ldct-invrep") else "..."
            raise CLIError(
                f"unexpected {type(exc).__name__}: {first_line(exc)}",
                EXIT_FAILURE,
                hint=f"rerun with --debug for the traceback: ldct-invrep --debug {argv}".rstrip(),
            ) from exc
        finally:
            warnings.showwarning = saved_showwarning
            package_logger.removeHandler(handler)
            package_logger.setLevel(saved[0])
            package_logger.propagate = saved[1]


def first_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def say(message: str, quiet: bool = False) -> None:
    """A step message on stderr (stdout keeps the results)."""
    if not quiet:
        click.echo(message, err=True)
