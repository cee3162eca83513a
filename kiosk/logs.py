"""Logging, set up by the entry points (library code only calls ``logging.getLogger``).

Every command takes ``--log-level`` (debug, info, warning, error, critical),
else ``KIOSK_LOG_LEVEL``, else warning. Records at that level or above go to
stderr as ``<program>: <level>: <message>``. The ``kiosk`` command also keeps
a rotating log file, ``kiosk.log`` in the data folder (``$KIOSK_DATA_DIR``,
else the platformdirs user data folder, ``~/.local/share/kiosk`` on Linux):
at most ``MAX_LOG_BYTES`` plus ``BACKUP_COUNT`` older files, at info level
unless a level is asked for, so a device in the field says what happened.

Qt-free.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import platformdirs

from kiosk.safe_io import FileRefused, expand_user, special_kind

__all__ = [
    "BACKUP_COUNT",
    "DATA_DIR_ENV",
    "FILE_ONLY",
    "LEVELS",
    "LOG_FILE_NAME",
    "LOG_LEVEL_ENV",
    "MAX_LOG_BYTES",
    "add_log_level_argument",
    "data_dir",
    "log_level",
    "remove_handlers",
    "setup_logging",
]

LOG_LEVEL_ENV = "KIOSK_LOG_LEVEL"
DATA_DIR_ENV = "KIOSK_DATA_DIR"
LOG_FILE_NAME = "kiosk.log"
LEVELS = ("debug", "info", "warning", "error", "critical")
MAX_LOG_BYTES = 2 * 2**20
BACKUP_COUNT = 3
_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"
# ``log.info(..., extra=FILE_ONLY)``: for the log file only, when the same
# words are already printed on stderr by the command itself.
FILE_ONLY = {"file_only": True}
# Marks the handlers set up here, so a second setup (tests, a re-run main())
# replaces them instead of printing every record twice.
_OURS = "_kiosk_handler"


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--log-level`` (default: ``KIOSK_LOG_LEVEL``, else warning)."""
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LEVELS,
        default=None,
        metavar="LEVEL",
        help=f"how much to log: {', '.join(LEVELS)} (default: ${LOG_LEVEL_ENV}, else warning)",
    )


def log_level(flag: str | None, environ: Mapping[str, str] | None = None) -> int | None:
    """The level asked for by the flag, else ``KIOSK_LOG_LEVEL``; None when neither is set.

    Raises:
        ValueError: ``KIOSK_LOG_LEVEL`` is not one of ``LEVELS`` (one line).
    """
    environ = os.environ if environ is None else environ
    text = flag or environ.get(LOG_LEVEL_ENV, "").strip()
    if not text:
        return None
    if text.lower() not in LEVELS:
        raise ValueError(f"{LOG_LEVEL_ENV} must be one of {', '.join(LEVELS)}, got {text[:40]!r}")
    return logging.getLevelName(text.upper())


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$KIOSK_DATA_DIR``, else the user data folder (``~/.local/share/kiosk`` on Linux).

    Raises:
        ValueError: ``KIOSK_DATA_DIR`` cannot be expanded (``~nosuchuser/x``), in one line.
    """
    environ = os.environ if environ is None else environ
    if environ.get(DATA_DIR_ENV):
        return expand_user(environ[DATA_DIR_ENV], f"data folder ({DATA_DIR_ENV})")
    return Path(platformdirs.user_data_dir("kiosk"))


class _ProgramFormatter(logging.Formatter):
    """``kiosk-train: warning: message``: the shape of the commands' own error lines."""

    def __init__(self, program: str) -> None:
        super().__init__()
        self.program = program

    def format(self, record: logging.LogRecord) -> str:
        text = f"{self.program}: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time of the record, not at setup.

    A test harness (or an embedding program) may replace ``sys.stderr`` after
    the command set logging up; a handler holding the old stream would then
    write into a closed one.
    """

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def remove_handlers() -> None:
    """Take away (and close) the handlers ``setup_logging`` added."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
        handler.close()


def setup_logging(
    program: str,
    level: int | None = None,
    *,
    log_file: Path | None = None,
    stream: TextIO | None = None,
) -> str | None:
    """Configure the root logger for one command; returns a warning to show, or None.

    Args:
        program: the command's name, the prefix of every line on ``stream``.
        level: from ``log_level``; None means warning on ``stream`` and info in the file.
        log_file: the rotating log file, or None for none. A file that cannot be
            opened (read-only folder, a FIFO in its place) does not stop the
            command: the returned text says why there is no log file.
        stream: where records go (default: stderr).
    """
    remove_handlers()
    root = logging.getLogger()
    console = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    console.setLevel(level if level is not None else logging.WARNING)
    console.setFormatter(_ProgramFormatter(program))
    console.addFilter(lambda record: not getattr(record, "file_only", False))
    setattr(console, _OURS, True)
    handlers: list[logging.Handler] = [console]
    problem = None
    if log_file is not None:
        try:
            handlers.append(_file_handler(log_file, level))
        except (OSError, FileRefused) as error:
            reason = str(error) if isinstance(error, FileRefused) else error.strerror or error
            problem = f"no log file: {reason}"
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(min(handler.level for handler in handlers))
    return problem


def _file_handler(path: Path, level: int | None) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        kind = special_kind(os.stat(path).st_mode)
    except FileNotFoundError:
        kind = None
    if kind is not None:
        # Appending to a FIFO blocks until someone reads it.
        raise FileRefused(f"{path} is {kind}, not a regular file")
    handler = logging.handlers.RotatingFileHandler(
        path,
        maxBytes=MAX_LOG_BYTES,
        backupCount=BACKUP_COUNT,
        encoding="utf-8",
        errors="backslashreplace",  # a file name that is not UTF-8 is still logged
    )
    handler.setLevel(level if level is not None else logging.INFO)
    handler.setFormatter(logging.Formatter(_FILE_FORMAT))
    setattr(handler, _OURS, True)
    return handler
