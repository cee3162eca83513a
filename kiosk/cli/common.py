"""What every command-line entry point shares: one-line errors, checked numbers, progress.

* ``fail(program, message_or_error)`` prints ``program: error: ...`` on one line
  and returns exit status 2; the text is never empty (``error_text``).
* ``ArgumentParser`` reports a bad flag in that same single line (argparse's
  own prints the whole usage first) and exits 2.
* ``finite_float`` is the argparse ``type`` for numbers: "nan" and "inf" are
  refused where they are typed.
* ``ProgressBar`` is tqdm on stderr: redrawn in place on a terminal; in a log
  or CI, only its final line.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import NoReturn, TextIO

from tqdm import tqdm

from kiosk.safe_io import FileRefused, expand_user

__all__ = [
    "EXIT_USAGE",
    "ArgumentParser",
    "ProgressBar",
    "UserError",
    "error_text",
    "fail",
    "finite_float",
    "user_path",
]

EXIT_USAGE = 2


class UserError(Exception):
    """Bad input from the user: reported as one line, exit status 2, no traceback."""


# What an exception without a message means, in words a user can act on.
_PLAIN = {
    MemoryError: "out of memory (the input is too large for this machine)",
    RecursionError: "the input is nested too deeply",
    KeyboardInterrupt: "interrupted",
    UnicodeError: "the input is not valid text",
    OverflowError: "a number is too large",
    TimeoutError: "timed out",
}


def error_text(error: BaseException | str) -> str:
    """One non-empty line describing ``error``, for a message after ``program: ``.

    An ``OSError`` names its file; an exception with no message gets a plain
    explanation of its type (``MemoryError`` -> "out of memory ..."), so a
    message is never just ``kiosk: ``.
    """
    if isinstance(error, str):
        text = error
    elif isinstance(error, OSError) and error.strerror:
        text = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    else:
        text = str(error)
        if isinstance(error, KeyError) and error.args:
            text = f"missing {error.args[0]!r}"
    text = " ".join(text.split())
    if text:
        return text
    if isinstance(error, BaseException):
        for kind, plain in _PLAIN.items():
            if isinstance(error, kind):
                return plain
        return f"{type(error).__name__} (no details given)"
    return "failed (no details given)"


def fail(program: str, message: BaseException | str) -> int:
    """Print ``program: error: message`` as one line on stderr; return exit status 2."""
    print(f"{program}: error: {error_text(message)}", file=sys.stderr)
    return EXIT_USAGE


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a bad flag reported as one line (and a pointer to ``--help``)."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split()) or "invalid arguments"
        if len(text) > 300:  # a flag's value can be a megabyte of junk
            text = text[:299] + "…"
        self.exit(EXIT_USAGE, f"{self.prog}: error: {text} (see {self.prog} --help)\n")


def finite_float(text: str) -> float:
    """argparse ``type=``: a finite number; "nan", "inf" and "1e999" are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a finite number")
    return value


def user_path(text: str) -> Path:
    """argparse ``type=`` for paths: ``~`` and ``~user`` expanded, an unknown user refused."""
    try:
        return expand_user(text, "path")
    except FileRefused as error:
        raise argparse.ArgumentTypeError(str(error)) from None


class ProgressBar:
    """A one-line progress bar on stderr (tqdm).

    On a terminal it redraws in place, at most 20 times a second; otherwise
    (a log, CI, a pipe) it stays quiet until ``close`` prints its final line.

    Args:
        label: the bar's name ("embedding", "training", a model file).
        total: the count that means done; None when unknown (a download
            without a length).
        stream: default ``sys.stderr``.
        unit_bytes: count bytes and show them as kB/MB (downloads).
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        stream: TextIO | None = None,
        *,
        unit_bytes: bool = False,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.perf_counter()
        self._done = 0
        self._updated = False
        self._extra = ""
        self._unit = {"unit": "B", "unit_scale": True, "unit_divisor": 1024} if unit_bytes else {}
        self._bar = tqdm(
            total=total,
            desc=label,
            file=self.stream,
            disable=not self.interactive,
            mininterval=0.05,
            dynamic_ncols=True,
            leave=True,
            **self._unit,
        )

    @property
    def done(self) -> int:
        """The last position given to ``update``."""
        return self._done

    @property
    def total(self) -> int | None:
        return self._bar.total

    @total.setter
    def total(self, value: int | None) -> None:
        self._bar.total = value

    def update(self, done: int, extra: str = "") -> None:
        """Show ``done`` of ``total`` with an optional note (e.g. the loss)."""
        self._done = done
        self._updated = True
        if extra != self._extra:
            self._extra = extra
            self._bar.set_postfix_str(extra, refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self, done: int | None = None) -> None:
        """Finish the bar, leaving its last state on a line of its own.

        A bar that was never updated (nothing to show, e.g. a model copied from
        a folder) closes without a line.
        """
        if done is not None and (done or self._updated):
            self.update(done, self._extra)
        elif self._bar.total is not None and self._updated:
            self.update(self._bar.total, self._extra)
        self._bar.close()
        if not self.interactive and self._updated:
            line = tqdm.format_meter(
                self._done,
                self._bar.total,
                time.perf_counter() - self._started,
                prefix=self.label,
                postfix=self._extra or None,
                ncols=100,
                ascii=True,  # a log file or CI page may not be UTF-8
                **self._unit,
            )
            self.stream.write(line + "\n")
            self.stream.flush()
