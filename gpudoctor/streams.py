"""Standard output as Unix tools treat it: any locale's terminal, a closed pipe, a full device.

A terminal whose locale is not UTF-8 (`LC_ALL=en_US.ISO-8859-1`, `LC_ALL=C` without Python's
UTF-8 mode) cannot show the verdict's marks: they become ASCII (`✓` `+`, `✗` `x`) instead of
an encoding error. Output into a closed pipe (`gpudoctor list | head -1`) ends quietly with
exit 141, what a shell reports for any tool that SIGPIPE ends, not a failed check's 1. A
file that accepts the open but refuses the write (`/dev/full`, `/proc/version`) is refused
before anything runs.
"""

from __future__ import annotations

import codecs
import os
import sys
from contextlib import contextmanager

import click

EXIT_PIPE = 128 + 13  # SIGPIPE
ERRORS = "gpudoctor-ascii"
# What gpudoctor prints beyond ASCII; one character for one where it aligns columns.
ASCII = {"✓": "+", "✗": "x", "·": "-", "…": "...", "→": "->", "°": " deg", "×": "x"}


class ClosedOutput(Exception):
    """Standard output's reader went away; not an OSError, so click does not turn it into exit 1."""


def _ascii(error: UnicodeError):
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start:error.end]
    return "".join(ASCII.get(ch, "?") for ch in text), error.end


codecs.register_error(ERRORS, _ascii)


def fit_to_locale() -> None:
    """Marks the terminal's encoding cannot show become ASCII on stdout and stderr, never an error."""
    for stream in (sys.stdout, sys.stderr):
        try:
            "".join(ASCII).encode(stream.encoding)
        except (UnicodeEncodeError, LookupError):
            stream.reconfigure(errors=ERRORS)
        except (AttributeError, TypeError):  # closed (None), or not a text file
            pass


@contextmanager
def closed_pipe_is_quiet():
    """Turn a write into a closed pipe into `ClosedOutput`, for `main` to end quietly."""
    try:
        yield
    except BrokenPipeError:
        raise ClosedOutput() from None


def silence_stdout() -> None:
    """Point stdout at /dev/null so that the flush at exit cannot print 'Exception ignored' (the
    recipe of Python's signal module documentation, 'Note on SIGPIPE')."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def open_output(path: str | None):
    """The stream a command writes to, proven writable now: a device or a /proc file may take the open
    and refuse every write, which a write of nothing shows without writing anything."""
    if path in (None, "-"):
        stream = sys.stdout
        if stream is None:
            raise click.UsageError("standard output is closed: give -o FILE")
    else:
        try:
            stream = open(path, "w", encoding="utf-8")
        except OSError as exc:
            raise click.UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # no file descriptor (a test's StringIO): nothing to prove
        return stream
    try:
        with writing(path):
            os.write(fd, b"")
    except click.UsageError:
        if stream is not sys.stdout:
            stream.close()
        raise
    return stream


@contextmanager
def writing(path: str | None):
    """A write that fails after all (a disk that filled during the run) is one line and exit 2."""
    try:
        yield
    except BrokenPipeError:
        raise ClosedOutput() from None
    except OSError as exc:
        raise click.UsageError(f"cannot write {path if path not in (None, '-') else 'standard output'}: "
                               f"{exc.strerror or exc}") from None
