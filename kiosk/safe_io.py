"""Opening files a user named, without trusting them.

Every path the kiosk reads on someone's word (a model, an image, the config
file, a project) goes through here first, so that

* a FIFO, a character or block device (``/dev/zero``) or a socket is refused
  *before* it is opened: opening a FIFO blocks until a writer comes, reading
  ``/dev/zero`` never ends, and opening some devices has side effects;
* a file larger than the caller's limit is refused before a byte is read, so a
  3 GB "model" or a 6 GB ".jpg" costs one ``stat`` instead of all the memory;
* every refusal is a ``FileRefused`` (a ``ValueError``) whose message is one
  line naming what the file was meant to be, the path and the reason.

``open_regular_file`` checks again on the opened descriptor (``fstat``), and
opens with ``O_NONBLOCK``, so a file swapped for a FIFO between the check and
the open is still refused and never blocks.

``expand_user`` is ``Path.expanduser`` with a one-line error instead of
``RuntimeError`` for ``~nosuchuser/x``.

Qt-free, numpy-free: persistence, configuration and the command lines share it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "MAX_MODEL_BYTES",
    "FileRefused",
    "check_regular_file",
    "expand_user",
    "format_size",
    "open_regular_file",
    "read_regular_file",
    "special_kind",
    "writable_target",
]


# The largest .tflite accepted (the core's MobileNet extractors are 4-7 MB; a
# large Edge TPU model some tens of MB). Shared by the interpreter's loader
# (kiosk.vision) and the flatbuffer tools (kiosk.learn), which never import each other.
MAX_MODEL_BYTES = 1 << 29


class FileRefused(ValueError):
    """A path that must not be read (or written) as a file; ``str()`` is one line."""


def special_kind(mode: int) -> str | None:
    """What a non-regular file is, in words ("a named pipe (FIFO)"...), or None if regular."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def format_size(size: int) -> str:
    """Bytes for people: "3.0 GB", "512 MB", "40 kB", "12 bytes" (powers of 1000)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"


def check_regular_file(
    path: str | os.PathLike[str], max_bytes: int | None, what: str = "file"
) -> os.stat_result:
    """``stat`` a path (following symlinks) and refuse anything but a small enough regular file.

    Args:
        path: the file.
        max_bytes: the largest size accepted; ``None`` for no limit.
        what: what the file is meant to be, for the message ("model file", "image").

    Returns:
        The ``os.stat_result`` of the file.

    Raises:
        FileRefused: missing, unreadable, a folder, a FIFO, a device, a socket, or
            larger than ``max_bytes``. The file is never opened.
    """
    shown = _show(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise FileRefused(f"{what} {shown} is a symbolic link to nothing") from None
        raise FileRefused(f"{what} {shown} does not exist") from None
    except (OSError, ValueError) as error:  # ELOOP, ENAMETOOLONG, EACCES, embedded NUL
        raise FileRefused(f"cannot read {what} {shown}: {_reason(error)}") from None
    _check_stat(info, shown, max_bytes, what)
    return info


def open_regular_file(
    path: str | os.PathLike[str], max_bytes: int | None, what: str = "file"
) -> BinaryIO:
    """Open a checked regular file for binary reading (see ``check_regular_file``).

    The open itself never blocks (``O_NONBLOCK``), and the opened descriptor is
    checked again, so a path swapped for a FIFO or device after the first check
    is refused too. The caller closes the file.
    """
    check_regular_file(path, max_bytes, what)
    shown = _show(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise FileRefused(f"cannot read {what} {shown}: {_reason(error)}") from None
    try:
        _check_stat(os.fstat(fd), shown, max_bytes, what)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_file(
    path: str | os.PathLike[str], max_bytes: int | None, what: str = "file"
) -> bytes:
    """The whole content of a checked regular file (see ``check_regular_file``).

    Reads at most ``max_bytes`` + 1 bytes, so a file that grows while it is
    read is refused rather than followed.
    """
    shown = _show(path)
    with open_regular_file(path, max_bytes, what) as stream:
        try:
            data = stream.read() if max_bytes is None else stream.read(max_bytes + 1)
        except OSError as error:
            raise FileRefused(f"cannot read {what} {shown}: {_reason(error)}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise FileRefused(f"{what} {shown} is larger than {format_size(max_bytes)}")
    return data


def writable_target(path: str | os.PathLike[str], what: str = "file") -> Path:
    """Where writing ``path`` should land: through a symbolic link to its target.

    An atomic write replaces a file by renaming a new one over it; done on a
    symbolic link that would replace the link itself. Writing to the link's
    target instead keeps the link, as a shell redirection does. An existing
    target that is not a regular file (a folder, FIFO, device) is refused.

    Raises:
        FileRefused: the target exists and is not a regular file, or the link
            cannot be resolved (a loop).
    """
    shown = _show(path)
    try:
        target = Path(os.path.realpath(path, strict=False)) if os.path.islink(path) else Path(path)
        info = os.stat(target)
    except FileNotFoundError:
        return target
    except (OSError, ValueError, RuntimeError) as error:
        raise FileRefused(f"cannot write {what} {shown}: {_reason(error)}") from None
    kind = special_kind(info.st_mode)
    if kind is not None:
        raise FileRefused(f"cannot write {what} {shown}: it is {kind}, not a regular file")
    return target


def expand_user(text: str | os.PathLike[str], what: str = "path") -> Path:
    """``Path(text).expanduser()``, or ``FileRefused`` in one line for an unknown ``~user``."""
    path = Path(text)
    try:
        return path.expanduser()
    except RuntimeError:
        head = str(text).split("/", 1)[0]
        user = head[1:]
        reason = f"there is no user {user!r}" if user else "the home folder is unknown (no HOME)"
        raise FileRefused(f"{what} {str(text)!r} cannot be expanded: {reason}") from None


def _check_stat(info: os.stat_result, shown: str, max_bytes: int | None, what: str) -> None:
    kind = special_kind(info.st_mode)
    if kind is not None:
        raise FileRefused(f"{what} {shown} is {kind}, not a regular file")
    if max_bytes is not None and info.st_size > max_bytes:
        raise FileRefused(
            f"{what} {shown} is {format_size(info.st_size)}; "
            f"the largest accepted is {format_size(max_bytes)}"
        )


def _show(path: str | os.PathLike[str]) -> str:
    # One line even for a name with a newline in it; undecodable bytes stay visible.
    text = os.fsdecode(path) if isinstance(path, bytes) else str(path)
    return text if text.isprintable() else repr(text)


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).strip() or type(error).__name__
