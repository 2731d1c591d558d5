"""Console behaviour of ``ldct-invrep``: exit statuses, one-line errors, warnings and log lines on stderr.

``ExitStatusGroup`` (the click group class) maps exceptions to exit statuses: :class:`InputError` -> 2 (one
line ``error: <path>: <problem>``), ``KeyboardInterrupt`` -> 130, SIGTERM -> 143 and SIGHUP -> 129 (handled
like Ctrl-C, so outputs being written are removed), anything unexpected -> 1 (one line and a hint to rerun
with ``--debug``, which shows the traceback). click's own usage errors keep their status 2.
"""

from __future__ import annotations

import errno
import logging
import signal
import sys
import threading
import traceback
import warnings
from pathlib import Path
from typing import Any

import click

from ldct_invrep.errors import PLACE_ERRNOS, InputError, first_line, input_error_cause

__all__ = [
    "EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "CLIError", "ExitStatusGroup", "Terminated", "first_line",
    "input_error_cause", "say",
]  # fmt: skip

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: Signals that stop a run the way Ctrl-C does (``timeout``, Slurm, ``docker stop``, systemd send SIGTERM).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """Raised by the handler of a stop signal: unwinds (and cleans up) exactly like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _install_stop_handlers() -> dict[int, Any]:
    """Turn SIGTERM/SIGHUP into :class:`Terminated` (main thread only); returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if not fired:  # a second signal must not interrupt the clean-up of the first
            fired.append(signum)
            raise Terminated(signum)

    return {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}


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


#: Loggers of library handlers that log a traceback for every exception of a run (MONAI's StatsHandler in the
#: bundles run by ``train``); without --debug the command line prints one line instead.
TRACEBACK_LOGGERS = ("monai.handlers.StatsHandler",)


def _no_traceback(record: logging.LogRecord) -> bool:
    """Logging filter: drop the record of a Ctrl-C/SIGTERM (the console says it), keep others without their traceback."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, KeyboardInterrupt):
        return False
    record.exc_info, record.exc_text, record.stack_info = None, None, None
    return True


class ExitStatusGroup(click.Group):
    """Turns exceptions into exit statuses: InputError -> 2, KeyboardInterrupt -> 130, SIGTERM/SIGHUP ->
    128 + signal number, anything else -> 1."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple:
        name, cmd, rest = super().resolve_command(ctx, args)
        ctx.meta["ldct_invrep.command"] = cmd  # its options word the remedies of an InputError
        return name, cmd, rest

    @staticmethod
    def _options(ctx: click.Context) -> set[str] | None:
        cmd = ctx.meta.get("ldct_invrep.command")
        if cmd is None:
            return None
        return {opt for p in cmd.params for opt in getattr(p, "opts", [])}

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
            for name in TRACEBACK_LOGGERS:
                logging.getLogger(name).addFilter(_no_traceback)
        previous_handlers = _install_stop_handlers()
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except InputError as exc:
            if debug:
                click.echo(traceback.format_exc(), err=True)
            raise CLIError(exc.cli_message(self._options(ctx)), EXIT_USAGE) from exc
        except Terminated as exc:
            if debug:
                click.echo(traceback.format_exc(), err=True)
            name = signal.Signals(exc.signum).name
            raise CLIError(f"stopped by {name}; no partial output was left behind", 128 + exc.signum) from exc
        except KeyboardInterrupt as exc:
            if debug:
                click.echo(traceback.format_exc(), err=True)
            raise CLIError("interrupted; no partial output was left behind", EXIT_INTERRUPTED) from exc
        except OSError as exc:
            if exc.errno not in PLACE_ERRNOS or not exc.filename:
                raise self._unexpected(exc, debug) from exc
            if debug:
                click.echo(traceback.format_exc(), err=True)
            raise CLIError(f"{exc.filename}: {exc.strerror or errno.errorcode.get(exc.errno, exc.errno)}", EXIT_USAGE) from exc
        except MemoryError as exc:
            raise CLIError(f"out of memory ({exc}); try a smaller --batch-size", EXIT_FAILURE) from exc
        except Exception as exc:
            wrapped = input_error_cause(exc)
            if wrapped is not None:
                if debug:
                    click.echo(traceback.format_exc(), err=True)
                raise CLIError(wrapped.cli_message(self._options(ctx)), EXIT_USAGE) from exc
            raise self._unexpected(exc, debug) from exc
        finally:
            for sig, old in previous_handlers.items():
                signal.signal(sig, old)
            warnings.showwarning = saved_showwarning
            for name in TRACEBACK_LOGGERS:
                logging.getLogger(name).removeFilter(_no_traceback)
            package_logger.removeHandler(handler)
            package_logger.setLevel(saved[0])
            package_logger.propagate = saved[1]


    @staticmethod
    def _unexpected(exc: Exception, debug: bool) -> CLIError:
        if debug:
            click.echo(traceback.format_exc(), err=True)
            return CLIError(f"{type(exc).__name__}: {' '.join(str(exc).split())}", EXIT_FAILURE)
        if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError, without importing torch here
            return CLIError(f"out of memory: {first_line(exc)}; try a smaller --batch-size", EXIT_FAILURE)
        argv = " ".join(sys.argv[1:]) if Path(sys.argv[0]).name.startswith("ldct-invrep") else "..."
        return CLIError(
            f"unexpected {type(exc).__name__}: {first_line(exc)}",
            EXIT_FAILURE,
            hint=f"rerun with --debug for the traceback: ldct-invrep --debug {argv}".rstrip(),
        )


def say(message: str, quiet: bool = False) -> None:
    """A step message on stderr (stdout keeps the results)."""
    if not quiet:
        click.echo(message, err=True)
