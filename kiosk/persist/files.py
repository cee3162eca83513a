"""Small file helpers of the persistence package: checked reads, durable writes.

Every read first checks that the path is a regular file (a FIFO would block
forever, a device never ends) of a bounded size; every problem is a
``ProjectError`` whose one-line message names the file. Writes are atomic
(``kiosk.atomic``) and durable.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from kiosk.atomic import atomic_write

__all__ = [
    "PRIVATE_FILE",
    "PRIVATE_FOLDER",
    "OtherModelError",
    "ProjectError",
    "check_regular_file",
    "fsync_folder",
    "make_private_folder",
    "read_json",
    "remove_quietly",
    "write_json",
]

# The autosave holds photos of visitors: only the kiosk's account may read it.
PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600
# State records are a few kB (a class list, a segment list); this caps a runaway one.
MAX_JSON_BYTES = 32 * 2**20


class ProjectError(ValueError):
    """A project or autosave folder cannot be read or written; ``str(error)`` says why."""


class OtherModelError(ProjectError):
    """The samples were made by another model: re-embed them to use them.

    Attributes:
        model_name: the file name of the model that made them.
        num_samples: how many samples there are (an upper bound).
        reembeddable: every sample has its stored image (so re-embedding can work).
    """

    def __init__(
        self,
        message: str,
        model_name: str = "",
        num_samples: int = 0,
        reembeddable: bool = True,
    ) -> None:
        super().__init__(message)
        self.model_name = model_name
        self.num_samples = num_samples
        self.reembeddable = reembeddable


def check_regular_file(path: Path, max_bytes: int, label: str | None = None) -> int:
    """The size of ``path`` if it is a regular file of at most ``max_bytes``, else ProjectError.

    Special files (FIFOs, devices, sockets) are refused before anything opens them.
    """
    label = label or path.name
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ProjectError(f"{label} is missing") from None
    except OSError as error:
        raise ProjectError(f"{label} cannot be read: {error.strerror or error}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ProjectError(f"{label} is not a regular file")
    if info.st_size > max_bytes:
        raise ProjectError(
            f"{label} is {info.st_size / 2**20:.0f} MiB, more than this kiosk reads "
            f"({max_bytes / 2**20:.0f} MiB)"
        )
    return int(info.st_size)


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """A JSON object from ``path`` (size-checked first); ProjectError otherwise."""
    check_regular_file(path, max_bytes)
    try:
        text = path.read_bytes().decode("utf-8-sig")
        document = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ProjectError(f"{path.name} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ProjectError(f"{path.name} does not hold a JSON object")
    return document


def write_json(path: Path, document: Any, mode: int | None = None) -> None:
    """UTF-8 JSON (non-ASCII kept as is), written atomically and durably."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    atomic_write(path, (text + "\n").encode("utf-8"), mode)


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def fsync_folder(folder: Path) -> None:
    """Make renames in ``folder`` durable (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_private_folder(folder: Path) -> None:
    """Create ``folder`` (and parents) readable by this account only; tighten an existing one."""
    folder.mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER)
    if stat.S_IMODE(folder.stat().st_mode) != PRIVATE_FOLDER:
        os.chmod(folder, PRIVATE_FOLDER)
